"""The daemon: its schedule in the practice's zone, one daemon per state folder, a clean stop."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import pytest

from sheets_bridge.config import load_config
from sheets_bridge.daemon import build_scheduler, daemon_lock
from sheets_bridge.errors import StateLockedError
from sheets_bridge.model import STAFF_COLUMNS

ROOT = Path(__file__).resolve().parents[2]
NY = ZoneInfo("America/New_York")


def practice(tmp_path: Path, digest: str = "") -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Referrals"
    ws.append(list(STAFF_COLUMNS))
    ws.append(["2026-11-20 09:00", "Ann", "Lee", None, None, "Google"])
    wb.save(tmp_path / "referrals.xlsx")
    text = (ROOT / "config.example.yaml").read_text(encoding="utf-8")
    (tmp_path / "config.yaml").write_text(text + digest, encoding="utf-8")
    return tmp_path / "config.yaml"


def test_the_digest_fires_once_at_its_hour_on_both_dst_days(tmp_path: Path) -> None:
    path = practice(tmp_path)
    config = load_config(path).model_copy(
        update={"digest": load_config(path).digest.model_copy(update={"weekday": "sun", "hour": 7})}
    )
    scheduler = build_scheduler(config, path)
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"sync", "digest"}
    trigger = jobs["digest"].trigger
    fall_back, spring_forward = datetime(2025, 11, 1, 12, tzinfo=NY), datetime(2025, 3, 8, 12, tzinfo=NY)
    for day, offset in ((fall_back, -5), (spring_forward, -4)):
        fire = trigger.get_next_fire_time(None, day)
        assert (fire.hour, fire.weekday()) == (7, 6)
        assert fire.utcoffset().total_seconds() == offset * 3600
        again = trigger.get_next_fire_time(fire, fire)
        assert (again - fire).days == 7  # once a week, not twice on the fall-back night
    assert jobs["sync"].trigger.interval.total_seconds() == 5 * 60


def test_one_daemon_per_state_folder(tmp_path: Path) -> None:
    with (
        daemon_lock(tmp_path / "state"),
        pytest.raises(StateLockedError, match="already runs"),
        daemon_lock(tmp_path / "state"),
    ):
        pass
    with daemon_lock(tmp_path / "state"):
        pass  # freed when the first one ended


def _ids(path: Path) -> list[object]:
    try:
        ws = openpyxl.load_workbook(path)["Referrals"]
    except Exception:  # noqa: BLE001 - the file may be mid-replace; try again
        return []
    headers = [c.value for c in ws[1]]
    if "Referral ID" not in headers:
        return []
    return [row[headers.index("Referral ID")] for row in ws.iter_rows(min_row=2, values_only=True)]


def test_the_daemon_syncs_at_start_refuses_a_twin_and_stops_on_sigterm(tmp_path: Path) -> None:
    config = practice(tmp_path)
    command = [sys.executable, "-m", "sheets_bridge", "run", "--config", str(config)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    daemon = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _ids(tmp_path / "referrals.xlsx") != ["R-00001"]:
            time.sleep(0.3)
        assert _ids(tmp_path / "referrals.xlsx") == ["R-00001"]
        twin = subprocess.run(
            command, check=False, env=env, capture_output=True, text=True, timeout=60
        )
        assert twin.returncode == 1
        assert "already runs" in twin.stderr
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    shutil.rmtree(tmp_path / "state", ignore_errors=True)
