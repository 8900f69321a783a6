"""Kill -9 at random moments over hundreds of cycles: nothing lost, nothing twice (issue 12).

    python bench/kill_soak.py [--rows 5000] [--cycles 300] [--seconds 900] [--seed 1]

A practice of ``--rows`` demo referrals is synced by real ``sheets-bridge sync`` processes, each
at a clock six hours later than the last, so stages move, follow-ups fall due and drafts are made
along the way. Most processes get SIGKILL at a random moment of their run (a power cut, an OOM
kill); a killed cycle is run again at the same clock, as the daemon would. At the end one clean
cycle runs and the soak checks what a practice would notice:

- no draft exists twice (by its exactly-once key), none for the same patient and kind twice;
- every staff cell is what staff typed (the bridge never changed one);
- every row has a Referral ID and no ID is on two rows;
- no temp file is left beside the workbook.

It is in ``bench/`` because a few hundred cycles over 5,000 rows take minutes; the suite runs the
same kill-at-every-step harness on a small practice (tests/integration/test_crash_harness.py).
Exit status 0 when every check holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from zoneinfo import ZoneInfo

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "integration"))

from crash_child import make_practice

from sheets_bridge.demo import demo_rows
from sheets_bridge.draft_keys import DraftKey
from sheets_bridge.messages import FOR_HEADER, KEY_HEADER
from sheets_bridge.model import STAFF_COLUMNS

NY = ZoneInfo("America/New_York")
START = datetime(2025, 3, 4, 10, 0, tzinfo=NY)
STEP = timedelta(hours=6)


def sheet_grid(workbook: Path) -> tuple[list[tuple[object, ...]], list[object]]:
    """(staff cells per row, Referral ID per row) as openpyxl reads them."""
    from openpyxl import load_workbook

    wb = load_workbook(workbook, read_only=True)
    try:
        ws = wb["Referrals"]
        rows = ws.iter_rows(values_only=True)
        headers = list(next(rows))
        staff = [i for i, h in enumerate(headers) if h in STAFF_COLUMNS]
        id_col = headers.index("Referral ID") if "Referral ID" in headers else None
        grid, ids = [], []
        for row in rows:
            cells = tuple(row[i] if i < len(row) else None for i in staff)
            if not any(c not in (None, "") for c in cells):
                continue
            grid.append(cells)
            ids.append(row[id_col] if id_col is not None and id_col < len(row) else None)
        return grid, ids
    finally:
        wb.close()


def draft_keys(folder: Path) -> tuple[list[str], list[tuple[str, str, str]]]:
    """Every draft's key, and (who it is for, kind, period) for the drafts about a patient."""
    keys, for_kind = [], []
    for path in sorted(folder.glob("*.eml")):
        msg = message_from_bytes(path.read_bytes(), policy=policy.default)
        key = str(msg[KEY_HEADER] or "")
        keys.append(key)
        who = str(msg[FOR_HEADER] or "")
        parsed = DraftKey.parse(key)
        if who and parsed is not None:
            for_kind.append((who, parsed.kind, parsed.period))
    return keys, for_kind


def sync(config: Path, now: datetime, kill_after: float | None) -> str:
    """One ``sheets-bridge sync``; 'killed', 'ok' or 'failed:<code>'."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sheets_bridge", "sync", "--config", str(config),
         "--now", now.isoformat()],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    if kill_after is not None:
        try:
            proc.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return "killed"
    _, err = proc.communicate(timeout=600)
    if proc.returncode == 0:
        return "ok"
    return f"failed:{proc.returncode}:{err.decode(errors='replace').strip()[:200]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--cycles", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=900)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the practice folder")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)

    folder = Path(tempfile.mkdtemp(prefix="kill-soak-")) / "practice"
    config = make_practice(folder, demo_rows(START, seed=args.seed, count=args.rows))
    workbook = folder / "referrals.xlsx"
    staff_before, _ = sheet_grid(workbook)

    began = time.monotonic()
    outcomes: Counter[str] = Counter()
    durations: list[float] = []
    now = START
    cycles = 0
    while cycles < args.cycles and time.monotonic() - began < args.seconds:
        typical = sorted(durations)[len(durations) // 2] if durations else None
        kill_after = rng.uniform(0.0, typical * 1.2) if typical and rng.random() < 0.8 else None
        t0 = time.monotonic()
        outcome = sync(config, now, kill_after)
        if outcome == "ok":
            durations.append(time.monotonic() - t0)
            now += STEP
        outcomes[outcome.split(":")[0]] += 1
        if outcome.startswith("failed"):
            print(f"cycle {cycles}: {outcome}")
            outcomes[outcome] += 0
        cycles += 1
    final = sync(config, now, None)

    keys, for_kind = draft_keys(folder / "drafts")
    staff_after, ids = sheet_grid(workbook)
    duplicates = sum(n - 1 for n in Counter(keys).values() if n > 1)
    twice = sum(n - 1 for n in Counter(for_kind).values() if n > 1)
    changed = sum(1 for a, b in zip(staff_before, staff_after, strict=False) if a != b)
    changed += abs(len(staff_before) - len(staff_after))
    # Note-only rows ("see row above") get no ID by design; every referral row must have one.
    named = [STAFF_COLUMNS.index(c) for c in ("Received", "Patient First Name", "Patient Last Name")]
    missing = sum(
        1
        for cells, i in zip(staff_after, ids, strict=True)
        if not i and any(str(cells[n] or "").strip() for n in named)
    )
    shared = sum(n - 1 for n in Counter(i for i in ids if i).values() if n > 1)
    leftovers = [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]

    print(f"rows {args.rows}, cycles {cycles} in {time.monotonic() - began:.0f} s "
          f"(clock moved {(now - START).days} days), final cycle {final}")
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
    if durations:
        print(f"uninterrupted cycle: median {sorted(durations)[len(durations) // 2]:.2f} s")
    print(f"drafts {len(keys)}; duplicate keys {duplicates}; same patient and kind twice {twice}")
    print(f"staff rows changed {changed}; rows without an ID {missing}; IDs on two rows {shared}; "
          f"temp files left {len(leftovers)}")
    ok = final == "ok" and not (duplicates or twice or changed or missing or shared or leftovers)
    print("PASS" if ok else "FAIL")
    if args.keep:
        print(f"kept: {folder}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
