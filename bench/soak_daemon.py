"""Soak: the real daemon for minutes on a big workbook while a second process edits it as staff do.

Not part of the test suite (it runs for minutes). What it does:

- builds a demo practice of ``--rows`` rows (5,000 by default) in a temporary folder and starts
  ``sheets-bridge run`` on it with a sync every ``--interval`` seconds;
- starts a second process, the "office": every few seconds it opens the workbook with openpyxl
  and changes staff cells (a Visit, a First Contact, a token appended to Notes), adds rows, or
  sorts all rows by last name, then saves a copy and renames it over the workbook, as an office
  program saves;
- in the middle, makes the workbook unwritable for ``--outage`` seconds (a LibreOffice lock
  file, as when someone leaves it open);
- at the end stops both, runs one more ``sync``, and reports: cycles run, edits injected, edits
  lost (every Notes token and every added row must still be there: 0), duplicate drafts (two
  drafts of one kind for one Referral ID or one recipient: 0), failure episodes seen in the
  per-cycle log lines against failures reported (ERROR lines, Bridge Log rows) and recoveries
  reported (must be equal), and the daemon's memory after its first cycle and at the end.

    python bench/soak_daemon.py [--minutes 10] [--rows 5000] [--interval 5] [--outage 60]
                                [--json FILE]
"""

from __future__ import annotations

import argparse
import email
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
CLI = [sys.executable, "-m", "sheets_bridge"]
TZ = ZoneInfo("America/New_York")
#: Kinds addressed to one patient: the same address twice in one kind is worth a look (a
#: patient referred twice may legitimately get two), not a duplicate by itself.
PATIENT_KINDS = ("patient_outreach", "appointment_reminder", "patient_thank_you")


def rss_kib(pid: int) -> int:
    """Resident memory of a live process (Linux ``/proc``), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def build(folder: Path, rows: int, interval: float) -> Path:
    from sheets_bridge.demo import demo_rows, write_demo_workbook

    write_demo_workbook(folder / "referrals.xlsx", demo_rows(datetime.now(TZ), seed=5,
                                                             count=rows))
    text = (ROOT / "config.example.yaml").read_text(encoding="utf-8")
    text = text.replace("  sync_minutes: 5", f"  sync_minutes: {interval / 60:.4f}")
    text = text.replace("  max_backoff_minutes: 30", "  max_backoff_minutes: 0.5")
    path = folder / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# -- the office: a second process that edits the workbook ------------------------------------
def office(folder: Path, stop_file: Path, journal: Path, seed: int) -> None:
    """Edit the workbook every few seconds until ``stop_file`` exists; journal every edit."""
    rng = random.Random(seed)
    workbook = folder / "referrals.xlsx"
    number = 0
    while not stop_file.exists():
        time.sleep(rng.uniform(2, 6))
        wb = _load(workbook)
        if wb is None:
            continue  # mid-replace: the next try reads the new file
        ws = wb["Referrals"]
        headers = [c.value for c in ws[1]]
        col = {h: headers.index(h) + 1 for h in headers if h}
        last_row = ws.max_row
        action = rng.choice(["values", "values", "values", "add", "sort"])
        tokens: list[str] = []
        if action == "values":
            for _ in range(rng.randint(1, 5)):
                r = rng.randint(2, last_row)
                number += 1
                token = f"soak-{seed}-{number}"
                notes = ws.cell(row=r, column=col["Notes"])
                notes.value = f"{notes.value or ''} {token}".strip()
                notes.data_type = "s"
                if rng.random() < 0.5:
                    ws.cell(row=r, column=col["Visit"]).value = rng.choice(
                        ["Scheduled", "Attended", "No-show"])
                else:
                    ws.cell(row=r, column=col["First Contact"]).value = datetime.now(TZ).strftime(
                        "%Y-%m-%d %H:%M")
                tokens.append(token)
        elif action == "add":
            for _ in range(rng.randint(1, 3)):
                number += 1
                token = f"soak-{seed}-{number}"
                values = {
                    "Received": datetime.now(TZ).strftime("%Y-%m-%d %H:%M"),
                    "Patient First Name": f"Soak{number}", "Patient Last Name": "Tester",
                    "How Heard": "Google", "Notes": token,
                }
                row = ws.max_row + 1
                for header, value in values.items():
                    ws.cell(row=row, column=col[header]).value = value
                tokens.append(token)
        else:  # whole rows sorted by last name, as a careful person sorts
            data = [[c.value for c in row] for row in ws.iter_rows(min_row=2)]
            data.sort(key=lambda r: str(r[col["Patient Last Name"] - 1] or ""))
            for i, values in enumerate(data, start=2):
                for j, value in enumerate(values, start=1):
                    ws.cell(row=i, column=j).value = value
        temp = folder / f".office-{seed}.xlsx"
        wb.save(temp)
        os.replace(temp, workbook)  # an office program saves a copy and renames it over
        with journal.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"action": action, "tokens": tokens, "t": time.time()}) + "\n")


def _load(path: Path) -> Any:
    import openpyxl

    try:
        return openpyxl.load_workbook(path)
    except Exception:  # noqa: BLE001 - any unreadable moment is skipped
        return None


# -- checking ---------------------------------------------------------------------------------
def check(folder: Path, journal: Path) -> dict[str, object]:
    import openpyxl

    entries = [json.loads(line) for line in journal.read_text().splitlines() if line.strip()]
    tokens = [t for e in entries for t in e["tokens"]]
    wb = openpyxl.load_workbook(folder / "referrals.xlsx", read_only=True)
    ws = wb["Referrals"]
    rows = list(ws.iter_rows(values_only=True))
    headers = list(rows[0])
    notes = " ".join(str(r[headers.index("Notes")] or "") for r in rows[1:])
    present = set(re.findall(r"soak-\d+-\d+", notes))
    lost = [t for t in tokens if t not in present]
    ids = [r[headers.index("Referral ID")] for r in rows[1:] if r[headers.index("Referral ID")]]
    log_rows = [str(r[1] or "") for r in list(wb["Bridge Log"].iter_rows(values_only=True))[1:]]
    by_id: Counter[tuple[str, str]] = Counter()
    by_to: Counter[tuple[str, str]] = Counter()
    for path in (folder / "drafts").glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes())
        key = str(message.get("X-Sheets-Bridge-Key", path.stem))
        if key.startswith("digest."):
            continue
        parts = key.split(".")
        by_id[(parts[0], parts[1] if len(parts) > 1 else "")] += 1
        if len(parts) > 1 and parts[1] in PATIENT_KINDS:
            by_to[(str(message.get("To", "")), parts[1])] += 1
    return {
        "edits_injected": len(entries),
        "cells_and_rows_injected": len(tokens),
        "edits_lost": len(lost),
        "referral_ids": len(ids),
        "duplicate_ids": len(ids) - len(set(ids)),
        "drafts": sum(by_id.values()),
        "duplicate_drafts": sum(n - 1 for n in by_id.values() if n > 1),
        "patient_address_and_kind_twice": sum(n - 1 for n in by_to.values() if n > 1),
        "bridge_log_failed_rows": sum(1 for r in log_rows if r.startswith("Failed")),
        "bridge_log_recovered_rows": sum(1 for r in log_rows if r.startswith("Recovered")),
    }


def episodes(log_text: str) -> dict[str, int]:
    """Failure episodes from the per-cycle lines, and the reports, counted apart."""
    outcomes = []
    for line in log_text.splitlines():
        if "sheets_bridge.daemon: sync " not in line:
            continue
        message = line.split("sheets_bridge.daemon: ", 1)[1]
        if message.startswith(("sync failed", "sync still failing")):
            outcomes.append("failed")
        elif re.match(r"sync (ok|quiet|stopped):", message):
            outcomes.append("ok")
    seen = sum(1 for i, o in enumerate(outcomes) if o == "failed" and (i == 0 or outcomes[i - 1]
                                                                       == "ok"))
    return {
        "cycles_run": len(outcomes),
        "failed_cycles": outcomes.count("failed"),
        "failure_episodes": seen,
        "error_lines": sum(1 for line in log_text.splitlines() if " ERROR " in line),
        "recovery_lines": log_text.count("sync recovered after"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--interval", type=float, default=5, help="seconds between cycles")
    parser.add_argument("--outage", type=float, default=60, help="seconds the file is locked")
    parser.add_argument("--json", help="also write the result here")
    parser.add_argument("--office", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.office:
        office(Path(args.office[0]), Path(args.office[1]), Path(args.office[2]), seed=7)
        return 0

    folder = Path(tempfile.mkdtemp(prefix="sb-soak-"))
    config = build(folder, args.rows, args.interval)
    stop_file, journal = folder / "stop-office", folder / "office.jsonl"
    journal.touch()
    log_file = folder / "state" / "sheets-bridge.log"
    daemon = subprocess.Popen([*CLI, "run", "--config", str(config)], env=ENV,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = time.monotonic()
    while not (log_file.exists() and "sync ok" in log_file.read_text(encoding="utf-8")):
        time.sleep(0.5)
        if daemon.poll() is not None:
            print("the daemon exited early", file=sys.stderr)
            return 1
    first_cycle = time.monotonic() - started
    rss_start = rss_kib(daemon.pid)
    editor = subprocess.Popen([sys.executable, __file__, "--office", str(folder), str(stop_file),
                               str(journal)], env=ENV)
    duration = args.minutes * 60
    lock = folder / ".~lock.referrals.xlsx#"
    outage_at = started + duration / 2 - args.outage / 2
    outage_done = False
    samples: list[tuple[float, int]] = []
    next_sample = time.monotonic()
    while time.monotonic() - started < duration:
        now = time.monotonic()
        if now >= next_sample:
            samples.append((round(now - started), rss_kib(daemon.pid)))
            next_sample = now + 30
        if not outage_done and now >= outage_at and not lock.exists():
            lock.write_text("soak,office,outage", encoding="utf-8")
        if lock.exists() and now >= outage_at + args.outage:
            lock.unlink()
            outage_done = True
        time.sleep(0.5)
    stop_file.touch()
    editor.wait(timeout=120)
    time.sleep(args.interval * 3)  # the edits of the last seconds are synced
    rss_end = rss_kib(daemon.pid)
    daemon.send_signal(signal.SIGTERM)
    daemon.wait(timeout=60)
    final = subprocess.run([*CLI, "sync", "--config", str(config)], env=ENV,
                           capture_output=True, text=True, check=False)
    result: dict[str, object] = {
        "minutes": args.minutes, "rows": args.rows, "interval_seconds": args.interval,
        "outage_seconds": args.outage, "first_cycle_seconds": round(first_cycle, 1),
        **episodes(log_file.read_text(encoding="utf-8")),
        **check(folder, journal),
        "final_sync_exit": final.returncode,
        "rss_kib_after_first_cycle": rss_start, "rss_kib_at_end": rss_end,
        # Warm: after the first quarter (imports done, the first digest made, caches full).
        "rss_kib_warm": next((kib for t, kib in samples if t >= duration / 4), rss_start),
        "rss_kib_samples": samples,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2), encoding="utf-8")
    ok = (result["edits_lost"] == 0 and result["duplicate_drafts"] == 0
          and result["duplicate_ids"] == 0
          and result["failure_episodes"] == result["error_lines"])
    shutil.rmtree(folder, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
