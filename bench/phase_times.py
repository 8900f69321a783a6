"""Real CPU seconds per named function in one bench cycle, without a profiler's overhead.

    python bench/phase_times.py edit 10000 sheets_bridge.planner:_plan_cycle,\
sheets_bridge.sheets.xlsx:LocalWorkbook.apply

cProfile inflates functions called many times (3-5x overall, more for small ones), which can
rank a cheap function first; this wraps only the functions named (``module:function`` or
``module:Class.method``, and where a module imported the function by name, that name too)
with ``time.process_time`` and prints each one's total and number of calls. The scenario is
prepared as ``bench_sync.py`` prepares it (``first``, ``quiet``, ``edit``, ``editN``); nested
functions are counted inside their callers too.
"""

from __future__ import annotations

import functools
import importlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bench_sync

_totals: dict[str, list[Any]] = {}


def _wrap(target: str) -> None:
    module_name, _, name = target.partition(":")
    owner: Any = importlib.import_module(module_name)
    parts = name.split(".")
    for part in parts[:-1]:
        owner = getattr(owner, part)
    original = getattr(owner, parts[-1])

    @functools.wraps(original)
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.process_time()
        try:
            return original(*args, **kwargs)
        finally:
            entry = _totals.setdefault(name, [0, 0.0])
            entry[0] += 1
            entry[1] += time.process_time() - start

    setattr(owner, parts[-1], timed)
    if len(parts) == 1:  # `from module import function` elsewhere: that name too
        for module in list(sys.modules.values()):
            if getattr(module, "__name__", "").startswith("sheets_bridge") and getattr(
                module, name, None
            ) is original:
                setattr(module, name, timed)


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    scenario, rows, targets = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(",")
    os.chdir(ROOT)  # its config.example.yaml
    for target in targets:
        _wrap(target)
    folder = Path(tempfile.mkdtemp(prefix="phases-"))
    try:
        cycle, _path = bench_sync.prepare(folder, bench_sync.workbook_for(rows), scenario)
        _totals.clear()
        start = time.process_time()
        cycle()
        print(f"cycle {time.process_time() - start:.3f} s cpu")
        for name, (calls, seconds) in sorted(_totals.items(), key=lambda kv: -kv[1][1]):
            print(f"  {seconds:7.3f} s {calls:6d}x  {name}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
