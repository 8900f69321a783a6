"""The daemon: its schedule in the practice's zone, one daemon per state folder, a clean stop,
and the real daemon in a subprocess: it syncs, reports, fails once, recovers once, stops."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl
import pytest
import yaml

from sheets_bridge.config import load_config
from sheets_bridge.daemon import build_scheduler, daemon_lock
from sheets_bridge.errors import StateLockedError
from sheets_bridge.model import BRIDGE_LOG_TAB, STAFF_COLUMNS
from sheets_bridge.status import STATUS_KEYS, read_status

ROOT = Path(__file__).resolve().parents[2]
NY = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
SLUG = "riverside-physical-therapy"


def practice(tmp_path: Path, digest: str = "", rows: int = 1) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Referrals"
    ws.append(list(STAFF_COLUMNS))
    ws.append(["2026-11-20 09:00", "Ann", "Lee", None, None, "Google"])
    for n in range(rows - 1):
        ws.append([f"2026-11-{1 + n % 28:02d} 09:00", f"P{n}", "Example", None, None, "Google"])
    wb.save(tmp_path / "referrals.xlsx")
    text = (ROOT / "config.example.yaml").read_text(encoding="utf-8")
    text = text.replace("name: Your Practice Name", "name: Riverside Physical Therapy", 1)
    (tmp_path / "config.yaml").write_text(text + digest, encoding="utf-8")
    return tmp_path / "config.yaml"


@pytest.mark.parametrize(
    ("zone", "fall_back", "spring_forward"),
    [
        (NY, datetime(2025, 11, 1, 12, tzinfo=NY), datetime(2025, 3, 8, 12, tzinfo=NY)),
        (BERLIN, datetime(2025, 10, 25, 12, tzinfo=BERLIN),
         datetime(2025, 3, 29, 12, tzinfo=BERLIN)),
    ],
)
def test_the_digest_fires_once_at_its_hour_on_both_dst_days(
    tmp_path: Path, zone: ZoneInfo, fall_back: datetime, spring_forward: datetime
) -> None:
    path = practice(tmp_path)
    loaded = load_config(path)
    config = loaded.model_copy(update={
        "digest": loaded.digest.model_copy(update={"weekday": "sun", "hour": 7}),
        "practice": loaded.practice.model_copy(update={"timezone": str(zone)}),
    })
    scheduler = build_scheduler(config, SLUG)
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {f"sync:{SLUG}", f"digest:{SLUG}"}
    trigger = jobs[f"digest:{SLUG}"].trigger
    standard = zone.utcoffset(datetime(2025, 1, 15)).total_seconds() / 3600
    for day, offset in ((fall_back, standard), (spring_forward, standard + 1)):
        fire = trigger.get_next_fire_time(None, day)
        assert (fire.hour, fire.weekday()) == (7, 6)
        assert fire.utcoffset().total_seconds() == offset * 3600
        again = trigger.get_next_fire_time(fire, fire)
        assert (again - fire).days == 7  # once a week, not twice on the fall-back night
    assert jobs[f"sync:{SLUG}"].trigger.interval.total_seconds() == 5 * 60


def test_one_daemon_per_state_folder(tmp_path: Path) -> None:
    with (
        daemon_lock(tmp_path / "state"),
        pytest.raises(StateLockedError, match="already runs"),
        daemon_lock(tmp_path / "state"),
    ):
        pass
    with daemon_lock(tmp_path / "state"):
        pass  # freed when the first one ended


# -- the real daemon, in a subprocess ----------------------------------------------------------
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
COMMAND = [sys.executable, "-m", "sheets_bridge"]


def _ids(path: Path) -> list[object]:
    try:
        ws = openpyxl.load_workbook(path)["Referrals"]
    except Exception:  # noqa: BLE001 - the file may be mid-replace or away; try again
        return []
    headers = [c.value for c in ws[1]]
    if "Referral ID" not in headers:
        return []
    return [row[headers.index("Referral ID")] for row in ws.iter_rows(min_row=2, values_only=True)]


def _bridge_log(path: Path) -> list[str]:
    ws = openpyxl.load_workbook(path)[BRIDGE_LOG_TAB]
    return [str(r[1] or "") for r in ws.iter_rows(min_row=2, values_only=True)]


def wait_for(what: Callable[[], bool], timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if what():
            return True
        time.sleep(0.2)
    return what()


def status(config: Path) -> tuple[int, dict[str, Any]]:
    """``status --json`` as a user runs it: a process of its own."""
    done = subprocess.run([*COMMAND, "status", "--config", str(config), "--json"],
                          env=ENV, capture_output=True, text=True, timeout=60, check=False)
    return done.returncode, json.loads(done.stdout)


def peek(config: Path) -> dict[str, Any]:
    """The same data, read in this process (to poll without starting a process each time)."""
    loaded = load_config(config)
    return read_status(loaded, datetime.now(loaded.tz))


@contextlib.contextmanager
def daemon(config: Path, *extra: str) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen([*COMMAND, "run", "--config", str(config), *extra], env=ENV,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _fast(config: Path, digest: str = "") -> None:
    """Three-second cycles, a six-second cap on the backoff."""
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["schedule"] = {"sync_minutes": 0.05, "max_backoff_minutes": 0.1}
    if digest:
        data["digest"] = {**data["digest"], **yaml.safe_load(digest)}
    config.write_text(yaml.safe_dump(data), encoding="utf-8")


@pytest.mark.slow
def test_the_real_daemon_syncs_reports_fails_once_recovers_once_and_stops(
    tmp_path: Path,
) -> None:
    config = practice(tmp_path)
    today = datetime.now(NY)
    weekday = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[today.weekday()]
    _fast(config, f"{{weekday: {weekday}, hour: 0}}")  # this week's digest is due: made at start
    workbook = tmp_path / "referrals.xlsx"
    log_file = tmp_path / "state" / "sheets-bridge.log"
    with daemon(config) as first:
        assert wait_for(lambda: _ids(workbook) == ["R-00001"])
        assert wait_for(lambda: len(list((tmp_path / "drafts").glob("digest.*.eml"))) == 1)
        code, data = status(config)
        assert code == 0
        assert tuple(data) == STATUS_KEYS
        assert data["daemon"]["running"] is True and data["daemon"]["pid"] == first.pid
        assert data["daemon"]["since"]
        assert data["next_runs"]["sync"] and data["next_runs"]["digest"]
        assert data["healthy"] is True and data["failing"] is None

        # A second daemon refuses; a manual sync runs one cycle beside it, never at once.
        twin = subprocess.run([*COMMAND, "run", "--config", str(config)], env=ENV,
                              capture_output=True, text=True, timeout=60, check=False)
        assert twin.returncode == 1 and "already runs" in twin.stderr
        manual = subprocess.run([*COMMAND, "sync", "--config", str(config)], env=ENV,
                                capture_output=True, text=True, timeout=120, check=False)
        assert manual.returncode == 0, manual.stderr

        # The workbook unreadable for three cycles: one failure report, one recovery report.
        away = tmp_path / "away.xlsx"
        workbook.rename(away)
        assert wait_for(lambda: (peek(config)["failing"] or {}).get("failed_cycles", 0) >= 3,
                        timeout=90)
        code, data = status(config)
        assert code == 1 and data["healthy"] is False
        assert "does not exist" in data["failing"]["last_error"]
        away.rename(workbook)
        assert wait_for(lambda: peek(config)["healthy"], timeout=90)
        assert wait_for(lambda: any(r.startswith("Recovered") for r in _bridge_log(workbook)))

        started = time.monotonic()
        first.send_signal(signal.SIGTERM)
        try:
            assert first.wait(timeout=60) == 0
        finally:
            print(log_file.read_text(encoding="utf-8")[-3000:])  # shown if this fails
        assert time.monotonic() - started < 30

    text = log_file.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if " ERROR " in line]
    assert len(errors) == 1, errors
    assert "does not exist" in errors[0]
    assert len([line for line in lines if "recovered after" in line]) == 1
    log_rows = _bridge_log(workbook)
    assert len([r for r in log_rows if r.startswith("Failed")]) == 1
    assert len([r for r in log_rows if r.startswith("Recovered after")]) == 1
    assert all(f"[{SLUG}]" in line for line in lines if line[:4].isdigit())
    assert "Added job" not in text and "Running job" not in text
    assert "Ann Lee" not in text and "Ann\t" not in text

    # Restarted: schedules rebuilt, the digest already made this week is not made again.
    with daemon(config) as second:
        assert wait_for(lambda: peek(config)["daemon"]["running"])
        time.sleep(4)
        assert len(list((tmp_path / "drafts").glob("digest.*.eml"))) == 1
        # Killed outright: its lock dies with it, and a new daemon takes the folder over.
        second.kill()
        second.wait()
    assert peek(config)["daemon"]["running"] is False
    with daemon(config) as third:
        assert wait_for(lambda: peek(config)["daemon"]["pid"] == third.pid)
        third.send_signal(signal.SIGTERM)
        assert third.wait(timeout=30) == 0
    shutil.rmtree(tmp_path / "state", ignore_errors=True)


@pytest.mark.slow
def test_sigterm_mid_cycle_stops_within_seconds_and_leaves_a_consistent_state(
    tmp_path: Path,
) -> None:
    """F24: SIGTERM at moments spread over the first cycles of a 400-row workbook."""
    config = practice(tmp_path, rows=400)
    _fast(config)
    workbook = tmp_path / "referrals.xlsx"
    log_file = tmp_path / "state" / "sheets-bridge.log"

    def starts() -> int:
        return log_file.read_text(encoding="utf-8").count("daemon started") if log_file.exists() \
            else 0

    for number, delay in enumerate((0.2, 0.7, 1.5, 3.0), start=1):
        with daemon(config) as process:
            assert wait_for(lambda: starts() == number)  # noqa: B023 - used at once
            time.sleep(delay)
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
            assert time.monotonic() - started < 10
    done = subprocess.run([*COMMAND, "sync", "--config", str(config)], env=ENV,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    ids = _ids(workbook)
    assert len(ids) == 400 and len(set(ids)) == 400
    keys = [p.name for p in (tmp_path / "drafts").glob("*.eml")]
    assert len(keys) == len(set(keys))
    again = subprocess.run([*COMMAND, "sync", "--config", str(config)], env=ENV,
                           capture_output=True, text=True, timeout=120, check=False)
    assert "Nothing to change" in again.stdout
