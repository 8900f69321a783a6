"""Profile one sync cycle: cProfile of a quiet cycle, or tracemalloc of its peak.

    python bench/profile_cycle.py --rows 10000 --scenario quiet [--top 25]
    python bench/profile_cycle.py --rows 50000 --scenario quiet --memory

The first sync (and, for ``edit``, the staff edits) run before profiling starts, so the figures
are the measured cycle's own. ``--tree`` names the checkout whose code is profiled
(default: the one this file is in).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import bench_sync


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10000)
    parser.add_argument("--scenario", default="quiet", choices=("first", "quiet", "edit"))
    parser.add_argument("--memory", action="store_true", help="tracemalloc instead of cProfile")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--workbook", help="use this workbook instead of the bench's own")
    parser.add_argument("--tree", default=str(ROOT),
                        help="the checkout whose code is profiled (default: this one)")
    args = parser.parse_args()
    sys.path.insert(0, args.tree)
    os.chdir(args.tree)  # its config.example.yaml
    source = Path(args.workbook) if args.workbook else bench_sync.workbook_for(args.rows)
    folder = Path(tempfile.mkdtemp(prefix="profile-"))
    try:
        cycle, _path = bench_sync.prepare(folder, source, args.scenario)
        if args.memory:
            tracemalloc.start(12)
            cycle()
            current, peak = tracemalloc.get_traced_memory()
            snap = tracemalloc.take_snapshot()
            tracemalloc.stop()
            print(f"tracemalloc peak {peak / 2**20:.0f} MB (still held at the end "
                  f"{current / 2**20:.0f} MB)")
            for stat in snap.statistics("lineno")[: args.top]:
                print(f"{stat.size / 2**20:8.1f} MB {stat.count:>9} {stat.traceback[0]}")
            return 0
        # CPU time, not wall: on a shared machine waiting for a core is no function's cost.
        profile = cProfile.Profile(time.process_time)
        profile.enable()
        cycle()
        profile.disable()
        out = io.StringIO()
        stats = pstats.Stats(profile, stream=out)
        stats.sort_stats("cumulative").print_stats(args.top)
        stats.sort_stats("tottime").print_stats(args.top)
        print(out.getvalue())
        return 0
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
