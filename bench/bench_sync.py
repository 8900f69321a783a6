"""Time a sync cycle on generated workbooks of 1,000, 10,000 and 50,000 rows.

For each size, in a fresh subprocess (so peak memory is that run's own):
  first   the first sync of a sheet with no bridge columns: every row gets an ID and 7 cells
  quiet   the next sync with nothing changed: must not save (file bytes unchanged)
  edit    a sync after staff edited 20 rows (Visit, First Contact): a few cells change
Columns: wall time, where it went (load = read + parse the workbook, plan = pure planning,
summaries and the SQLite journal, (summ) = the part of plan spent building the Dashboard and
Referrers tabs, save = patching and replacing
the file), peak RSS.

    python bench/bench_sync.py [--sizes 1000,10000,50000] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / ".cache"
NOW = datetime(2026, 11, 27, 10, 0, tzinfo=ZoneInfo("America/New_York"))


def workbook_for(size: int) -> Path:
    """A demo-like workbook of ``size`` rows, generated once and cached."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"referrals-{size}.xlsx"
    if not path.exists():
        from sheets_bridge.demo import demo_rows, write_demo_workbook

        write_demo_workbook(path, demo_rows(NOW, seed=11, count=size))
    return path


def _config(folder: Path) -> Path:
    text = (ROOT / "config.example.yaml").read_text(encoding="utf-8")
    path = folder / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _edit(path: Path, rows: int) -> None:
    """Simulate staff editing ``rows`` rows in Excel (openpyxl stands in for Excel here)."""
    import openpyxl

    wb = openpyxl.load_workbook(path)
    ws = wb["Referrals"]
    headers = [c.value for c in ws[1]]
    visit = headers.index("Visit") + 1
    contact = headers.index("First Contact") + 1
    for number in range(2, 2 + rows):
        ws.cell(number, visit, "Attended")
        ws.cell(number, contact, datetime(2026, 11, 20, 9, 30))
    wb.save(path)


def measure(size: int, scenario: str) -> dict[str, float]:
    """Run in a child process: prepare the scenario, then time one cycle of it."""
    from sheets_bridge.config import load_config
    from sheets_bridge.cycle import run_cycle
    from sheets_bridge.drafting import draft_planner
    from sheets_bridge.mail import open_drafter
    from sheets_bridge.outbox import Outbox
    from sheets_bridge.sheets.xlsx import LocalWorkbook
    from sheets_bridge.state import StateStore
    from sheets_bridge.summaries import summary_tabs

    folder = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        config = load_config(_config(folder))
        shutil.copyfile(workbook_for(size), config.sheet.path)  # type: ignore[union-attr]
        timings = {"load": 0.0, "save": 0.0, "summaries": 0.0}
        builders = summary_tabs()

        def timed_summaries(*args):  # type: ignore[no-untyped-def]
            start = time.perf_counter()
            try:
                return [tab for build in builders for tab in build(*args)]
            finally:
                timings["summaries"] += time.perf_counter() - start

        class Timed(LocalWorkbook):
            def read(self):  # type: ignore[no-untyped-def]
                start = time.perf_counter()
                try:
                    return super().read()
                finally:
                    timings["load"] += time.perf_counter() - start

            def apply(self, snapshot, plan, columns):  # type: ignore[no-untyped-def]
                start = time.perf_counter()
                try:
                    return super().apply(snapshot, plan, columns)
                finally:
                    timings["save"] += time.perf_counter() - start

        sheet = Timed(config.sheet.path)  # type: ignore[union-attr]

        def cycle() -> object:
            with StateStore(config.state_dir) as state:
                return run_cycle(
                    config, sheet, state, now=NOW, tab_builders=[timed_summaries],
                    draft_planner=draft_planner(config),
                    outbox=Outbox(state, open_drafter(config)),
                )

        if scenario != "first":
            cycle()
            if scenario == "edit":
                _edit(config.sheet.path, 20)  # type: ignore[union-attr]
        before = config.sheet.path.read_bytes()  # type: ignore[union-attr]
        timings["load"] = timings["save"] = timings["summaries"] = 0.0
        start = time.perf_counter()
        report = cycle()
        wall = time.perf_counter() - start
        after = config.sheet.path.read_bytes()  # type: ignore[union-attr]
        return {
            "size": size,
            "scenario": scenario,
            "wall": wall,
            "load": timings["load"],
            "save": timings["save"],
            "plan": max(wall - timings["load"] - timings["save"], 0.0),
            "summaries": timings["summaries"],
            "cells": getattr(report, "cells_written", 0),
            "unchanged": float(before == after),
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,50000")
    parser.add_argument("--scenarios", default="first,quiet,edit")
    parser.add_argument("--json", help="also write the results as JSON to this file")
    parser.add_argument("--child", nargs=2, metavar=("SIZE", "SCENARIO"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(int(args.child[0]), args.child[1])))
        return 0
    sizes = [int(s) for s in args.sizes.split(",")]
    results = []
    for size in sizes:
        workbook_for(size)  # generate outside the timed child
        for scenario in args.scenarios.split(","):
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(size), scenario],
                check=True, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"},
            )
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    header = (
        f"{'rows':>7} {'cycle':<6} {'wall s':>7} {'load s':>7} {'plan s':>7} {'(summ)':>7} "
        f"{'save s':>7} "
        f"{'cells':>7} {'file unchanged':>14} {'peak MB':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r['size']:>7} {r['scenario']:<6} {r['wall']:>7.2f} {r['load']:>7.2f} "
            f"{r['plan']:>7.2f} {r['summaries']:>7.2f} {r['save']:>7.2f} {int(r['cells']):>7} "
            f"{'yes' if r['unchanged'] else 'no':>14} {r['peak_mb']:>8.0f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
