""""Sync now" in the daemon moves the scheduled job (the scheduler stays the one writer), and
``serve`` alone never runs a cycle while a daemon holds the state folder."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from addon_harness import FakeGoogle, post, running, sheets_event, texts, write_practice
from test_addon_http import Practice, fmt, staff_row

from sheets_bridge.addon.app import create_app
from sheets_bridge.addon.card_schema import check_response
from sheets_bridge.addon.server import DirectSync, SchedulerSync
from sheets_bridge.config import load_config
from sheets_bridge.daemon import Daemon, build_scheduler, daemon_lock
from sheets_bridge.state import StateStore


@pytest.fixture(scope="module")
def google() -> Iterator[FakeGoogle]:
    fake = FakeGoogle()
    yield fake
    fake.close()


def test_sync_now_in_the_daemon_moves_the_sync_job_and_shows_its_result(
    tmp_path: Path, google: FakeGoogle
) -> None:
    now = datetime.now().astimezone()
    path = write_practice(tmp_path, [staff_row(Received=fmt(now - timedelta(days=2)),
                                               Patient_First_Name="Ann", How_Heard="Google")],
                          google.certs_url)
    config = load_config(path)
    daemon = Daemon(config, path)
    scheduler = build_scheduler(config, daemon.slug, first_sync=datetime.now(config.tz))
    daemon.scheduler = scheduler
    job = f"sync:{daemon.slug}"
    control = SchedulerSync(scheduler, config, wait=20)
    registration = daemon.registered()
    registration.__enter__()
    thread = threading.Thread(target=scheduler.start, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while control._finished < 1:  # the cycle the daemon runs at start
            assert time.monotonic() < deadline, "the first sync did not run"
            time.sleep(0.05)
        scheduled = scheduler.get_job(job).next_run_time
        assert scheduled > datetime.now(config.tz) + timedelta(minutes=3)  # every 5 minutes
        app = create_app(config, control)
        with running(app) as base:
            home = post(base, "home", sheets_event(google), google.token()).json()
            # A new row; the next scheduled sync is minutes away.
            from openpyxl import load_workbook

            wb = load_workbook(config.sheet.path)  # type: ignore[union-attr]
            wb["Referrals"].append(["2026-01-01 09:00", "Bea"])
            wb.save(config.sheet.path)  # type: ignore[union-attr]
            started = time.monotonic()
            synced = post(base, "sync", sheets_event(google), google.token()).json()
            took = time.monotonic() - started
        assert check_response(home) == [] and check_response(synced) == []
        assert "not scheduled" not in texts(home)  # the scheduler's next run time
        assert "Referral IDs assigned: 1" in texts(synced)
        assert control._finished == 2 and took < 15
        # The job ran in the scheduler (one writer) and its schedule goes on from now.
        assert scheduler.get_job(job).next_run_time > datetime.now(config.tz)
        with StateStore(config.state_dir) as state:
            assert len(state.recent_runs(10)) == 2
    finally:
        scheduler.shutdown(wait=True)
        thread.join(5)
        registration.__exit__(None, None, None)


def test_serve_alone_never_syncs_while_a_daemon_holds_the_state_folder(
    tmp_path: Path, google: FakeGoogle
) -> None:
    practice = Practice(tmp_path, google)
    with daemon_lock(practice.config.state_dir):
        lines = DirectSync(practice.config).sync_now()
    assert "running already" in " ".join(lines)
    with StateStore(practice.config.state_dir) as state:
        assert len(state.recent_runs(10)) == 1  # only the fixture's own first sync


def test_a_scheduled_sync_waits_out_a_panel_reading_the_state(
    tmp_path: Path, google: FakeGoogle
) -> None:
    practice = Practice(tmp_path, google)
    held = threading.Event()

    def panel_reads() -> None:
        with StateStore(practice.config.state_dir):
            held.set()
            time.sleep(1.5)

    reader = threading.Thread(target=panel_reads)
    reader.start()
    held.wait(5)
    report = Daemon(practice.config, practice.path).sync()  # what ``jobs.sync:run`` calls
    reader.join()
    assert report is not None and report.outcome in ("ok", "quiet")


@pytest.mark.slow
def test_run_serves_the_add_on_beside_the_scheduler_and_stops_cleanly(
    tmp_path: Path, google: FakeGoogle
) -> None:
    import os
    import signal
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    now = datetime.now().astimezone()
    path = write_practice(tmp_path, [staff_row(Received=fmt(now - timedelta(days=2)),
                                               Patient_First_Name="Ann", How_Heard="Google")],
                          google.certs_url, listen=f"127.0.0.1:{port}")
    root = Path(__file__).resolve().parents[2]
    daemon = subprocess.Popen(
        [sys.executable, "-m", "sheets_bridge", "run", "--config", str(path)],
        env={**os.environ, "PYTHONPATH": str(root)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        answer = None
        while time.monotonic() < deadline:
            try:
                answer = post(base, "home", sheets_event(google), google.token())
            except httpx.TransportError:  # not listening yet
                answer = None
            if answer is not None and "No sync has run yet" not in answer.text:
                break
            time.sleep(0.3)
        assert answer is not None and answer.status_code == 200
        assert check_response(answer.json()) == []
        assert "No sync has run yet" not in answer.text  # the daemon's first sync ran
        refused = post(base, "home", sheets_event(google), None)
        assert refused.status_code == 401
    finally:
        daemon.send_signal(signal.SIGTERM)
        _out, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err.decode()
