"""Time sync cycles on generated workbooks, beside the floors, in one run.

For each size, each scenario runs in a fresh subprocess; its figures are the measured cycle's
own (the first sync and the staff edits that prepare it run before the clock and the memory
peak are reset):
  first    the first sync of a sheet with no bridge columns: every row gets an ID and 7 cells,
           and the drafts are made (.eml)
  quiet    a sync with nothing changed, in the process that ran the last ones (a daemon's
           steady state: the third cycle after the first sync): must not save
           (file bytes unchanged)
  cold     a quiet sync in a fresh process, the first sync having run in another (a CLI
           ``sync`` from cron: nothing kept in memory from the last cycle)
  edit     a sync after staff edited 10 rows (Visit, First Contact) of a sheet the last cycle
           found quiet (a daemon's steady state): a few cells change
  editN    the same after N edited rows (``edit100``, ``edit1000``: the per-changed-row fit)
  memory   a quiet cycle on the in-memory sheet built from the same rows: the CPU part of a
           cycle once a read has returned (what a Google cycle costs after its batchGet)
  daemon   a daemon's hour: 30 consecutive cycles in one process (after the quiet scenario's
           two), the clock advancing 2 minutes each, nothing edited; the median and the max
           cycle, and how many were quiet. The other scenarios all run at the same NOW, which
           flatters whatever is reused at one instant; this one does not
Beside them, in the same run: ``calamine`` (python-calamine reads the workbook's Referrals
tab: the fastest reader there is) and ``openpyxl`` (load + save: what a naive bridge does).

``--before TREE`` runs every measurement for TREE too (a checkout of an older commit),
interleaved with this tree's, and ``--repeat N`` takes the median of N runs.

    python bench/bench_sync.py [--sizes 1000,10000,50000,100000] [--repeat 3]
                               [--before /work/bench-before] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / ".cache"
NOW = datetime(2026, 11, 27, 10, 0, tzinfo=ZoneInfo("America/New_York"))
CYCLES = ("first", "quiet", "cold", "edit", "memory", "daemon")
#: The daemon scenario: this many cycles, this far apart.
DAEMON_CYCLES, DAEMON_STEP = 30, timedelta(minutes=2)
FLOORS = ("calamine", "openpyxl")
LARGE = 50_000


def workbook_for(size: int) -> Path:
    """A demo-like workbook of ``size`` distinct patients, generated once and cached."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"referrals-v2-{size}.xlsx"
    if not path.exists():
        from sheets_bridge.demo import demo_rows, write_demo_workbook

        write_demo_workbook(path, demo_rows(NOW, seed=11, count=size))
    return path


def _config(folder: Path) -> Path:
    text = (Path.cwd() / "config.example.yaml").read_text(encoding="utf-8")
    path = folder / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def edit_rows(path: Path, rows: int) -> None:
    """Staff edit ``rows`` rows (Visit "Attended", First Contact typed as text) in place.

    The cells are patched in the sheet XML, as Excel would leave them, without a load + save
    through openpyxl (which takes a minute at 100,000 rows and is no part of what is measured).
    """
    from sheets_bridge.sheets import ooxml_rows as oxr
    from sheets_bridge.sheets.ooxml import col_letters
    from sheets_bridge.sheets.xlsx_package import Package

    data = path.read_bytes()
    pkg = Package(data, path)
    entry = pkg.find_sheet("Referrals")
    assert entry is not None
    part = entry.part
    xml = pkg.read(part)
    assert xml is not None
    shared = __import__("sheets_bridge.sheets.ooxml", fromlist=["shared_strings"]).shared_strings(
        pkg.read(pkg.shared_part)
    )
    index, _ = oxr.index_rows(xml)
    header = oxr.row_cells(index[1].inner)
    names: dict[str, int] = {}
    for col in header.cols:
        cell = header.cell(col)
        assert cell is not None
        body = cell.body or b""
        text = body.decode("utf-8")
        if cell.attrs.get(b"t") == b"s":
            text = shared[int(text.split(">")[1].split("<")[0])]
        else:
            text = text.replace("<is>", "").replace("</is>", "")
            text = text.split(">", 1)[-1].split("<", 1)[0]
        names[text] = col
    visit, contact = names["Visit"], names["First Contact"]
    max_col = max(names.values())
    edits = []
    for number in range(2, 2 + rows):
        row = index[number]
        cells = oxr.row_cells(row.inner)
        new = {
            visit: oxr.inline_string_cell(row.prefix, f"{col_letters(visit)}{number}", None,
                                          "Attended"),
            contact: oxr.inline_string_cell(row.prefix, f"{col_letters(contact)}{number}", None,
                                            "2026-11-20 09:30"),
        }
        edits.append((row.start, row.end, oxr.rebuild_row(row, cells, new, max_col)))
    new_xml = oxr.splice(xml, edits)
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            out.writestr(info, new_xml if info.filename == part else src.read(info.filename))
    os.replace(tmp, path)


def prepare(folder: Path, source: Path, scenario: str) -> tuple[Callable[[], object], Path]:
    """A state folder and workbook ready for ``scenario``, and the cycle to measure."""
    from sheets_bridge.config import load_config
    from sheets_bridge.cycle import run_cycle
    from sheets_bridge.drafting import draft_planner
    from sheets_bridge.mail import open_drafter
    from sheets_bridge.outbox import Outbox
    from sheets_bridge.sheets.xlsx import LocalWorkbook
    from sheets_bridge.state import StateStore
    from sheets_bridge.summaries import summary_tabs

    fresh = not (folder / "config.yaml").exists()
    config = load_config(_config(folder) if fresh else folder / "config.yaml")
    path = Path(config.sheet.path)  # type: ignore[union-attr]
    if fresh:
        shutil.copyfile(source, path)
    sheet = LocalWorkbook(path)

    def cycle(now: datetime = NOW) -> object:
        with StateStore(config.state_dir) as state:
            return run_cycle(
                config, sheet, state, now=now, tab_builders=summary_tabs(),
                draft_planner=draft_planner(config),
                outbox=Outbox(state, open_drafter(config)),
            )

    if scenario == "cold":
        # The first sync in another process: this one starts as a CLI `sync` does, holding
        # nothing, and its peak is the cycle's own.
        subprocess.run([sys.executable, __file__, "--prepare", str(folder), str(source)],
                       check=True, capture_output=True)
        return cycle, path
    settle = _daemon_settle()
    if scenario != "first":
        cycle()
        settle()
    if scenario in ("quiet", "daemon") or scenario.startswith("edit"):
        # The cycle after the first sync reads what it wrote; a daemon's life is after it, so
        # staff edits land on a sheet the last cycle found quiet (not on the first sync's output).
        cycle()
        settle()
    if scenario.startswith("edit"):
        edit_rows(path, int(scenario[4:] or 10))
    if scenario == "memory":
        return _memory_cycle(config, sheet, path), path
    return cycle, path


def _daemon_settle() -> Callable[[], None]:
    """What the daemon does after each cycle (``Daemon._sync``): the prepared cycles of a
    daemon's scenarios do it too. A checkout from before it had none."""
    try:
        from sheets_bridge.collector import settle_after_cycle
    except ImportError:
        return lambda: None
    return settle_after_cycle


def _memory_cycle(config: object, sheet: object, path: Path) -> Callable[[], object]:
    """A quiet cycle over a MemorySheet holding what the workbook holds (no file I/O)."""
    from sheets_bridge.cycle import run_cycle
    from sheets_bridge.drafting import draft_planner
    from sheets_bridge.sheets.memory import MemorySheet
    from sheets_bridge.state import StateStore
    from sheets_bridge.summaries import summary_tabs

    snap = sheet.read()  # type: ignore[attr-defined]
    ref = snap.referrals
    width = max(len(ref.headers), max((len(r.values) for r in ref.rows), default=0))
    grid = [list(ref.headers) + [None] * (width - len(ref.headers))]
    grid += [list(r.values) + [None] * (width - len(r.values)) for r in ref.rows]
    tabs = {title: [list(row) for row in t.rows] for title, t in snap.tabs.items()}
    memory = MemorySheet(grid, title=ref.title, tabs=tabs)

    def cycle() -> object:
        with StateStore(config.state_dir) as state:  # type: ignore[attr-defined]
            return run_cycle(
                config, memory, state, now=NOW,  # type: ignore[arg-type]
                tab_builders=summary_tabs(), draft_planner=draft_planner(config),  # type: ignore[arg-type]
            )

    cycle()  # the memory sheet's own first cycle (tab formatting differs from the file's)
    return cycle


def _reset_peak() -> None:
    """Start the peak-RSS count from here (Linux: clear_refs 5 resets VmHWM)."""
    gc.collect()
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _peak_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(size: int, scenario: str) -> dict[str, object]:
    """Run in a child process: prepare the scenario, then time one cycle (or floor) of it."""
    source = workbook_for(size)
    folder = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        if scenario in FLOORS:
            return _floor(size, scenario, source, folder)
        cycle, path = prepare(folder, source, scenario)
        if scenario == "daemon":
            return _daemon(size, cycle, path)
        before = path.read_bytes()
        _reset_peak()
        start, cpu = time.perf_counter(), time.process_time()
        report = cycle()
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        peak = _peak_mb()
        after = path.read_bytes()
        return {
            "size": size, "scenario": scenario, "wall": wall, "cpu": cpu, "peak_mb": peak,
            "cells": getattr(report, "cells_written", 0),
            "drafts": len(getattr(report, "drafts_made", ()) or ()),
            "unchanged": before == after,
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _daemon(size: int, cycle: Callable[..., object], path: Path) -> dict[str, object]:
    """A daemon's hour: ``DAEMON_CYCLES`` cycles, ``DAEMON_STEP`` apart, in this process."""
    before = path.read_bytes()
    settle_after_cycle = _daemon_settle()  # timed with the cycle, as the daemon runs it
    _reset_peak()
    walls, cpus, quiet, cells, drafts = [], [], 0, 0, 0
    for i in range(1, DAEMON_CYCLES + 1):
        start, cpu = time.perf_counter(), time.process_time()
        report = cycle(NOW + i * DAEMON_STEP)
        settle_after_cycle()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
        quiet += getattr(report, "outcome", "") == "quiet"
        cells += getattr(report, "cells_written", 0)
        drafts += len(getattr(report, "drafts_made", ()) or ())
    return {
        "size": size, "scenario": "daemon", "wall": statistics.median(walls),
        "cpu": statistics.median(cpus), "cpu_max": max(cpus), "wall_max": max(walls),
        "quiet": quiet, "cycles": DAEMON_CYCLES, "peak_mb": _peak_mb(), "cells": cells,
        "drafts": drafts, "unchanged": before == path.read_bytes(),
    }


def _floor(size: int, scenario: str, source: Path, folder: Path) -> dict[str, object]:
    path = folder / "referrals.xlsx"
    shutil.copyfile(source, path)
    _reset_peak()
    start, cpu = time.perf_counter(), time.process_time()
    if scenario == "calamine":
        from python_calamine import CalamineWorkbook

        rows = CalamineWorkbook.from_path(str(path)).get_sheet_by_name("Referrals").to_python()
        assert len(rows) >= size
    else:
        import openpyxl

        wb = openpyxl.load_workbook(path)
        wb.save(path)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"size": size, "scenario": scenario, "wall": wall, "cpu": cpu, "peak_mb": _peak_mb()}


def _run_child(tree: Path, size: int, scenario: str) -> dict[str, object]:
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(size), scenario],
        check=True, capture_output=True, text=True, env=env, cwd=tree,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares slope and intercept of (x, y) points."""
    if len(points) < 2:
        return 0.0, points[0][1] if points else 0.0
    slope, intercept = statistics.linear_regression([p[0] for p in points],
                                                    [p[1] for p in points])
    return slope, intercept


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,50000,100000")
    parser.add_argument("--scenarios", default=",".join(CYCLES + FLOORS))
    parser.add_argument("--fit-edits", default="10,100,1000",
                        help="edit counts at 10,000 rows for the per-changed-row fit ('' = none)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--metric", choices=("cpu", "wall"), default="cpu",
                        help="what the ratios and fits use (cpu: robust on a shared machine)")
    parser.add_argument("--before", help="a checkout of the code to compare against")
    parser.add_argument("--json", help="also write the results as JSON to this file")
    parser.add_argument("--child", nargs=2, metavar=("SIZE", "SCENARIO"), help=argparse.SUPPRESS)
    parser.add_argument("--prepare", nargs=2, metavar=("FOLDER", "SOURCE"), help=argparse.SUPPRESS)
    parser.add_argument("--large-scenarios", default="first,quiet,calamine,openpyxl",
                        help=f"what runs at {LARGE:,} rows and more (each cycle there costs a "
                        "first sync to prepare)")
    parser.add_argument("--before-sizes", default="1000,10000",
                        help="the sizes --before runs at (its 100,000-row runs take long)")
    args = parser.parse_args()
    if args.prepare:
        cycle, _ = prepare(Path(args.prepare[0]), Path(args.prepare[1]), "first")
        cycle()
        return 0
    if args.child:
        print(json.dumps(measure(int(args.child[0]), args.child[1])))
        return 0
    trees = {"after": ROOT}
    if args.before:
        trees = {"before": Path(args.before).resolve(), "after": ROOT}
    sizes = [int(s) for s in args.sizes.split(",")]
    before_sizes = {int(s) for s in args.before_sizes.split(",") if s}
    large = set(args.large_scenarios.split(","))
    jobs = [
        (size, s) for size in sizes for s in args.scenarios.split(",")
        if size < LARGE or s in large
    ]
    fit_edits = [int(n) for n in args.fit_edits.split(",") if n]
    if fit_edits and 10000 in sizes:
        jobs += [(10000, f"edit{n}") for n in fit_edits if n != 10]
    for size in sizes:
        workbook_for(size)  # generate outside the timed children
    runs: dict[tuple[str, int, str], list[dict[str, object]]] = {}
    for _ in range(args.repeat):
        for size, scenario in jobs:
            for name, tree in trees.items():  # interleaved: before, after, before, after...
                if name != "after" and (scenario in FLOORS or size not in before_sizes):
                    continue
                r = _run_child(tree, size, scenario)
                runs.setdefault((name, size, scenario), []).append(r)
                print(f"  {name:<6} {size:>7} {scenario:<9} {r['wall']:7.2f} s wall "
                      f"{r['cpu']:7.2f} s cpu {r['peak_mb']:6.0f} MB", file=sys.stderr, flush=True)
    results = []
    for (name, _size, _scenario), rs in runs.items():
        med = dict(rs[0])
        med["wall"] = statistics.median(float(r["wall"]) for r in rs)  # type: ignore[arg-type]
        med["cpu"] = statistics.median(float(r["cpu"]) for r in rs)  # type: ignore[arg-type]
        med["peak_mb"] = statistics.median(float(r["peak_mb"]) for r in rs)  # type: ignore[arg-type]
        med["tree"] = name
        med["runs"] = len(rs)
        results.append(med)
    _print(results, trees, sizes, fit_edits, args.metric)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


def _print(results: list[dict[str, object]], trees: dict[str, Path], sizes: list[int],
           fit_edits: list[int], metric: str) -> None:
    """The table (ratios and fits on ``metric``: "cpu" seconds, robust on a shared machine, or
    "wall")."""
    by = {(r["tree"], r["size"], r["scenario"]): r for r in results}

    def of(r: dict[str, object]) -> float:
        return float(r[metric])  # type: ignore[arg-type]

    header = (f"{'tree':<6} {'rows':>7} {'cycle':<9} {'cpu s':>7} {'wall s':>7} {'peak MB':>8} "
              f"{'cells':>6} {'drafts':>6} {'same':>4} {'÷calamine':>9} {'÷openpyxl':>9}")
    print(header)
    print("-" * len(header))
    for size in sizes:
        cal = by.get(("after", size, "calamine"))
        opx = by.get(("after", size, "openpyxl"))
        for r in sorted((r for r in results if r["size"] == size),
                        key=lambda r: (r["scenario"] in FLOORS, str(r["scenario"]),
                                       r["tree"] != "before")):
            floor = r["scenario"] in FLOORS
            ratio_c = "" if floor or cal is None else f"{of(r) / of(cal):.2f}×"
            ratio_o = "" if floor or opx is None else f"{of(r) / of(opx):.2f}×"
            cells = "" if floor else str(r.get("cells", 0))
            drafts = "" if floor else str(r.get("drafts", 0))
            same = "" if floor else ("yes" if r.get("unchanged") else "no")
            print(f"{r['tree']:<6} {size:>7} {r['scenario']:<9} {of_key(r, 'cpu'):>7.2f} "
                  f"{of_key(r, 'wall'):>7.2f} {of_key(r, 'peak_mb'):>8.0f} {cells:>6} "
                  f"{drafts:>6} {same:>4} {ratio_c:>9} {ratio_o:>9}")
    for r in results:
        if r["scenario"] == "daemon":
            print(f"{r['tree']}: daemon at {r['size']:,} rows: {r['cycles']} cycles "
                  f"{DAEMON_STEP.seconds // 60} min apart, median {of_key(r, 'cpu'):.2f} s cpu, "
                  f"max {of_key(r, 'cpu_max'):.2f} s cpu, {r['quiet']} quiet")
    for name in trees:
        first = [(float(s), of(by[(name, s, "first")])) for s in sizes if (name, s, "first") in by]
        if len(first) >= 2:
            slope, icpt = _fit(first)
            print(f"{name}: first sync ≈ {icpt:.2f} s + {slope * 1000:.3f} s per 1,000 rows "
                  f"({metric})")
        edits = []
        for n in fit_edits:
            key = (name, 10000, f"edit{n}" if n != 10 else "edit")
            if key in by:
                edits.append((float(n), of(by[key])))
        if len(edits) >= 2:
            slope, icpt = _fit(edits)
            print(f"{name}: edit cycle at 10,000 rows ≈ {icpt:.2f} s + {slope * 1000:.2f} ms "
                  f"per changed row ({metric})")


def of_key(r: dict[str, object], key: str) -> float:
    return float(r.get(key, 0.0))  # type: ignore[arg-type]


if __name__ == "__main__":
    raise SystemExit(main())
