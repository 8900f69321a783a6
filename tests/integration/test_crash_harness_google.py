"""Harness K on the Google backend: kill a sync at every journalled step, restart, compare.

As :mod:`test_crash_harness` does for the workbook, against the fake Google over HTTP: a
reference child runs uninterrupted; then for every step n a fresh fake (a sheet and a mailbox of
its own) gets the same practice, a child dies by ``os._exit(100)`` at step n, and a restart here
must end exactly where the reference ended: the same bridge cells per Referral ID, the same
Dashboard and Referrers tabs, exactly one Gmail draft per key, every ledger key confirmed; and the
run after that writes nothing and drafts nothing. Zero duplicate drafts, zero lost staff edits.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from crash_child import KILLED, read_ledger
from fakes.google_server import FakeGoogle
from google_support import SHEET_ID, credential_files, sheets_writes

from sheets_bridge.config import load_config
from sheets_bridge.demo import demo_rows
from sheets_bridge.model import BRIDGE_COLUMNS, DASHBOARD_TAB, REFERRERS_TAB, STAFF_COLUMNS
from sheets_bridge.runner import run_sync

NY = ZoneInfo("America/New_York")
NOW = datetime(2025, 3, 4, 10, 0, tzinfo=NY)
CHILD = Path(__file__).with_name("crash_child.py")
ROWS = demo_rows(NOW, seed=3, count=14)
#: Gmail's search may lag, so a key whose draft is not found is given up (and drafted again)
#: only after three looks ten minutes apart (outbox.RECHECK_AFTER): both runs go on to then.
LATER = [NOW + timedelta(minutes=11 * k) for k in (1, 2, 3)]
_STAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d ")


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def practice(folder: Path) -> tuple[FakeGoogle, Path]:
    """A started fake holding the demo sheet, and a config for it (Gmail on the same fake)."""
    fake = FakeGoogle()
    fake.start()
    grid: list[list[object]] = [list(STAFF_COLUMNS)]
    grid += [[row.get(h) for h in STAFF_COLUMNS] for row in ROWS]
    fake.add_spreadsheet(SHEET_ID, {"Referrals": grid})
    key, token = credential_files(folder / "secrets")
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump({
        "practice": {"name": "Harbor Physio", "owner_email": "owner@example.com"},
        "sheet": {"kind": "google", "spreadsheet": SHEET_ID, "credentials": str(key),
                  "endpoint": fake.endpoint},
        "mail": {"kind": "gmail", "credentials": str(token), "endpoint": fake.endpoint},
        "state_dir": "state",
    }))
    return fake, config


def run_child(config: Path, kill_at: int = 0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost"}
    return subprocess.run(
        [sys.executable, str(CHILD), str(config), NOW.isoformat(), str(kill_at)],
        cwd=config.parent, capture_output=True, text=True, timeout=120, check=False, env=env,
    )


def end_state(fake: FakeGoogle, folder: Path) -> dict[str, object]:
    grid = fake.grid(SHEET_ID, "Referrals")
    headers = [str(h) for h in grid[0]]
    rid = headers.index("Referral ID")
    bridge = {}
    staff = Counter()
    for row in grid[1:]:
        cells = {h: (row[i] if i < len(row) else "") for i, h in enumerate(headers)}
        record = {c: cells.get(c, "") for c in BRIDGE_COLUMNS if c != "Bridge Updated"}
        # A draft made after the wait says so with a later time: compare what, not when.
        record["Emails"] = sorted(_STAMP.sub("", str(record["Emails"])).splitlines())
        bridge[str(row[rid])] = record
        staff[tuple(str(cells.get(c, "")) for c in STAFF_COLUMNS)] += 1
    keys = Counter(
        str(message_from_bytes(raw, policy=policy.default)["X-Sheets-Bridge-Key"])
        for raw in fake.drafts.values()
    )
    return {
        "bridge": bridge,
        "staff": staff,
        "tabs": {t: fake.grid(SHEET_ID, t) for t in (DASHBOARD_TAB, REFERRERS_TAB)},
        "drafts": keys,
        "ledger": read_ledger(folder / "state"),
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[str], dict]]:
    folder = tmp_path_factory.mktemp("google-harness") / "reference"
    folder.mkdir()
    fake, config = practice(folder)
    try:
        done = run_child(config)
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout.strip().splitlines()[-1])
        for when in LATER:
            run_sync(load_config(config), now=when)
        yield out["steps"], end_state(fake, folder)
    finally:
        fake.stop()


def test_the_google_reference_run_drafts_once_and_is_followed_by_a_quiet_run(
    reference: tuple[list[str], dict], tmp_path: Path
) -> None:
    steps, state = reference
    assert {"read", "ids", "draft-pending", "draft-created", "drafts", "journal", "apply",
            "commit"} <= set(steps)
    assert state["drafts"] and set(state["drafts"].values()) == {1}
    assert set(state["ledger"].values()) == {"confirmed"}


@pytest.mark.slow
def test_a_kill_at_every_step_on_google_ends_where_the_uninterrupted_run_ended(
    reference: tuple[list[str], dict], tmp_path: Path
) -> None:
    steps, want = reference

    def crash(n: int) -> tuple[int, FakeGoogle, Path, list[str]]:
        folder = tmp_path / f"kill-{n:02d}"
        folder.mkdir()
        fake, config = practice(folder)
        killed = run_child(config, kill_at=n)
        problems = [] if killed.returncode == KILLED else [
            f"the child was not killed (exit {killed.returncode}): {killed.stderr[-300:]}"
        ]
        return n, fake, config, problems

    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = list(pool.map(crash, range(1, len(steps) + 1)))
    failures: list[str] = []
    try:
        for n, fake, config, problems in runs:
            if not problems:
                try:
                    for when in (NOW, *LATER):
                        run_sync(load_config(config), now=when)
                except Exception as error:  # noqa: BLE001 - reported with its step
                    problems.append(f"the restart failed: {type(error).__name__}: {error}")
            if not problems:
                got = end_state(fake, config.parent)
                for part in ("bridge", "staff", "tabs", "drafts", "ledger"):
                    if got[part] != want[part]:
                        problems.append(f"{part} differs from the uninterrupted run")
                twice = [k for k, c in got["drafts"].items() if c > 1]  # type: ignore[attr-defined]
                if twice:
                    problems.append(f"drafts made twice: {twice}")
            if not problems:
                fake.reset_requests()
                report = run_sync(load_config(config), now=LATER[-1])
                if report.outcome != "quiet" or sheets_writes(fake) or report.drafts_made:
                    problems.append(f"the next run was {report.outcome}: {sheets_writes(fake)}")
            failures.extend(f"killed at step {n} ({steps[n - 1]}): {p}" for p in problems)
    finally:
        for _, fake, _, _ in runs:
            fake.stop()
    assert not failures, "\n".join(failures)
