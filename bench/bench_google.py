"""Requests and time per sync cycle on Google (the tests' fake Google, over loopback HTTP).

For each size, a fake spreadsheet with that many demo-like rows:
  first   the first sync: every row gets an ID and six more bridge cells, five tabs are added
  edit    the next sync after staff edited 20 rows (Visit, First Contact)
  quiet   the sync after that, at the same moment: nothing changed
next to a naive gspread script that writes the same bridge cells row by row (one ``ws.update``
per row, the way most Sheets scripts are written). The naive script is timed over its first
``--naive-sample`` rows and its time extrapolated (its requests are exact: one per row). At
Google's write quota (60 requests per minute per user) the naive script needs rows / 60 minutes.

    python bench/bench_google.py [--sizes 1000,10000,50000] [--naive-sample 300]

Drafts go to a temporary ``.eml`` folder, so only Sheets requests are counted.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
NOW = datetime(2026, 11, 27, 10, 0, tzinfo=ZoneInfo("America/New_York"))
SHEET = "1BenchSheet"


def _grid(size: int) -> list[list[object]]:
    from sheets_bridge.demo import demo_rows
    from sheets_bridge.model import STAFF_COLUMNS

    rows = demo_rows(NOW, seed=11, count=size)
    out: list[list[object]] = [list(STAFF_COLUMNS)]
    for row in rows:
        values = []
        for h in STAFF_COLUMNS:
            v = row.get(h)
            values.append(v.strftime("%Y-%m-%d %H:%M") if isinstance(v, datetime) else v)
        out.append(values)
    return out


def _config(fake: Any, folder: Path) -> Any:
    from fakes.google_server import write_service_account_key

    from sheets_bridge.config import parse_config

    key = folder / "key.json"
    write_service_account_key(key)
    os.chmod(key, 0o600)
    data = {
        "practice": {"name": "Bench Physio", "owner_email": "owner@example.com"},
        "sheet": {"kind": "google", "spreadsheet": SHEET, "credentials": str(key),
                  "endpoint": fake.endpoint},
        "mail": {"kind": "eml", "path": "drafts"},
        "state_dir": "state",
    }
    return parse_config(data, base=folder)


def _cycle(config: Any, sheet: Any, now: datetime) -> tuple[float, str]:
    from sheets_bridge.cycle import run_cycle
    from sheets_bridge.drafting import draft_planner
    from sheets_bridge.mail import open_drafter
    from sheets_bridge.outbox import Outbox
    from sheets_bridge.state import StateStore
    from sheets_bridge.summaries import summary_tabs

    start = time.perf_counter()
    with StateStore(config.state_dir) as state:
        report = run_cycle(
            config, sheet, state, now=now, tab_builders=summary_tabs(),
            draft_planner=draft_planner(config), outbox=Outbox(state, open_drafter(config)),
        )
    return time.perf_counter() - start, report.outcome


def _sheets_requests(fake: Any) -> int:
    return sum(1 for r in fake.requests if r.api == "sheets")


def _naive(fake: Any, config: Any, sample: int) -> tuple[float, int]:
    """A typical script: open the sheet, then one ``ws.update`` per row. (seconds per row, rows)"""
    import gspread
    from gspread.http_client import HTTPClient

    from sheets_bridge.google.credentials import SHEETS_SCOPE, load_credentials

    endpoint = fake.endpoint

    class Local(HTTPClient):
        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            url = url.replace("https://sheets.googleapis.com", endpoint)
            return super().request(method, url, *args, **kwargs)

    creds = load_credentials(config.sheet.credentials, scopes=[SHEETS_SCOPE], endpoint=endpoint)
    gc = gspread.Client(auth=creds.credentials, http_client=Local)
    ws = gc.open_by_key(SHEET).worksheet("Referrals")
    values = ws.get_all_values()
    width = len(values[0])
    start = time.perf_counter()
    done = 0
    for number in range(2, min(len(values), sample + 1) + 1):
        bridge = [f"R-{number - 1:05d}", "Provider Referral", "New", "", "", "", "2026-11-27"]
        first = gspread.utils.rowcol_to_a1(number, width + 1)
        last = gspread.utils.rowcol_to_a1(number, width + len(bridge))
        ws.update(values=[bridge], range_name=f"{first}:{last}")
        done += 1
    return (time.perf_counter() - start) / max(done, 1), len(values) - 1


def bench(size: int, sample: int) -> dict[str, Any]:
    from fakes.google_server import FakeGoogle

    from sheets_bridge.google.transport import RetryPolicy
    from sheets_bridge.sheets.google import GoogleSheet

    folder = Path(tempfile.mkdtemp(prefix="bench-google-"))
    fake = FakeGoogle()
    fake.start()
    try:
        grid = _grid(size)
        fake.add_spreadsheet(SHEET, {"Referrals": grid})
        config = _config(fake, folder)
        sheet = GoogleSheet.from_config(config.sheet, policy=RetryPolicy(read_timeout=600.0))
        out: dict[str, Any] = {"rows": size}
        for name, now, edit in (
            ("first", NOW, False),
            ("edit", NOW + timedelta(minutes=5), True),
            ("quiet", NOW + timedelta(minutes=5), False),  # same moment: nothing is due
        ):
            if edit:
                current = fake.grid(SHEET, "Referrals")
                headers = current[0]
                visit, contact = headers.index("Visit"), headers.index("First Contact")
                for row in current[1:21]:
                    row.extend([""] * (len(headers) - len(row)))
                    row[visit], row[contact] = "Attended", "2026-11-20 09:30"
                fake.set_grid(SHEET, "Referrals", current)
            fake.reset_requests()
            seconds, outcome = _cycle(config, sheet, now)
            out[name] = (seconds, _sheets_requests(fake), outcome)
            calls = Counter(
                f"{r.method} {r.path.rsplit('/', 1)[-1].replace(SHEET, '')}"
                for r in fake.requests if r.api == "sheets"
            )
            out[name + " calls"] = dict(calls)
        # the naive script, on a fresh copy of the sheet as it was before the first sync
        fake.add_spreadsheet(SHEET, {"Referrals": grid})
        fake.reset_requests()
        per_row, rows = _naive(fake, config, sample)
        out["naive"] = (per_row * rows, rows + 2, per_row)
        return out
    finally:
        fake.stop()
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,50000")
    parser.add_argument("--naive-sample", type=int, default=300)
    parser.add_argument("--calls", action="store_true", help="print each cycle's calls")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="  (%(message)s)")  # shows any retry
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
    header = (f"{'rows':>7} {'cycle':<6} {'requests':>8} {'seconds':>8}   "
              f"{'naive req':>9} {'naive s':>9} {'at quota':>9} {'req ratio':>9}")
    print(header)
    print("-" * len(header))
    for size in (int(s) for s in args.sizes.split(",")):
        result = bench(size, args.naive_sample)
        naive_s, naive_req, _ = result["naive"]
        for name in ("first", "edit", "quiet"):
            seconds, requests, _outcome = result[name]
            extra = (
                f"{naive_req:>9} {naive_s:>9.0f} {naive_req / 60:>7.0f} m {naive_req / requests:>8.0f}x"
                if name == "first" else ""
            )
            print(f"{size:>7} {name:<6} {requests:>8} {seconds:>8.2f}   {extra}".rstrip(),
                  flush=True)
            if args.calls:
                print(f"{'':>15}{result[name + ' calls']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
