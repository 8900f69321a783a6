"""Failed cycles, a clock set back, a manual sync beside the daemon: real workbook, real state."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import yaml

from sheets_bridge.cli import main
from sheets_bridge.config import load_config
from sheets_bridge.daemon import Daemon, daemon_lock
from sheets_bridge.errors import StateLockedError
from sheets_bridge.files import take_lock
from sheets_bridge.model import BRIDGE_LOG_TAB, STAFF_COLUMNS
from sheets_bridge.runner import run_sync
from sheets_bridge.status import STATUS_KEYS, plural, read_status, status_lines

NOW = "2025-03-04T10:00:00"
CONFIG: dict[str, Any] = {
    "practice": {"name": "Harbor Physio", "owner_email": "owner@example.com"},
    "sheet": {"kind": "local", "path": "referrals.xlsx"},
    "mail": {"kind": "eml", "path": "drafts"},
    "state_dir": "state",
}


def practice(folder: Path, data: dict[str, Any] | None = None) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Referrals"
    ws.append(list(STAFF_COLUMNS))
    ws.append(["2025-03-03 09:00", "Ann", "Lee", None, "ann@example.org", "Provider",
               "Dr Kim", "kim@example.org"])
    ws.append(["2025-03-03 11:00", "Bo", "Chan", None, None, "Google"])
    wb.save(folder / "referrals.xlsx")
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(data or CONFIG), encoding="utf-8")
    return path


def sync(config: Path, *extra: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["sync", "--config", str(config), *extra])
    out, err = capsys.readouterr()
    return code, out, err


def bridge_log(folder: Path) -> list[tuple[str, str]]:
    ws = openpyxl.load_workbook(folder / "referrals.xlsx")[BRIDGE_LOG_TAB]
    return [(str(r[1] or ""), str(r[2] or "")) for r in ws.iter_rows(min_row=2, values_only=True)]


def column(folder: Path, header: str) -> list[object]:
    ws = openpyxl.load_workbook(folder / "referrals.xlsx")["Referrals"]
    headers = [c.value for c in ws[1]]
    return [r[headers.index(header)] for r in ws.iter_rows(min_row=2, values_only=True)]


def runs(folder: Path) -> list[tuple[str, int]]:
    db = sqlite3.connect(folder / "state" / "state.sqlite")
    try:
        return db.execute("SELECT outcome, logged FROM runs ORDER BY id").fetchall()
    finally:
        db.close()


def test_a_cycle_that_cannot_write_keeps_its_drafts_and_is_in_status_and_the_bridge_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = practice(tmp_path)
    lock = tmp_path / ".~lock.referrals.xlsx#"
    lock.write_text("someone,at the front desk", encoding="utf-8")
    code, _, err = sync(config, "--now", NOW, capsys=capsys)
    assert code == 1
    assert "is open in Excel or LibreOffice" in err
    drafts = sorted(p.name for p in (tmp_path / "drafts").glob("*.eml"))
    assert drafts, "the drafts are made while staff keep the workbook open"
    assert column(tmp_path, "Patient First Name") == ["Ann", "Bo"]  # not written
    assert runs(tmp_path) == [("failed", 1)]

    code = main(["status", "--config", str(config), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 1
    assert data["healthy"] is False
    assert data["failing"]["failed_cycles"] == 1
    assert "open in Excel or LibreOffice" in data["failing"]["last_error"]
    assert data["last_runs"][0]["outcome"] == "failed"

    # Still open at the next cycle: a second failed run, not a second Bridge Log row.
    assert sync(config, "--now", "2025-03-04T10:05:00", capsys=capsys)[0] == 1
    assert runs(tmp_path) == [("failed", 1), ("failed", 0)]

    lock.unlink()
    assert sync(config, "--now", "2025-03-04T10:10:00", capsys=capsys)[0] == 0
    assert sorted(p.name for p in (tmp_path / "drafts").glob("*.eml")) == drafts  # none twice
    emails = column(tmp_path, "Emails")
    assert emails[0], "the drafts made while the workbook was open are in the Emails cell now"
    log = bridge_log(tmp_path)
    failed = [row for row in log if row[0].startswith("Failed")]
    recovered = [row for row in log if row[0].startswith("Recovered after 2 failed cycles")]
    assert len(failed) == 1 and "open in Excel" in failed[0][1]
    assert "email draft" in failed[0][0]
    assert len(recovered) == 1
    code = main(["status", "--config", str(config)])
    out = capsys.readouterr().out
    assert code == 0
    assert "Health: OK" in out
    assert "since recovered" in out

    # The Bridge Log keeps both rows and adds neither again.
    assert sync(config, "--now", "2025-03-04T10:15:00", capsys=capsys)[0] == 0
    after = bridge_log(tmp_path)
    assert len([r for r in after if r[0].startswith("Failed")]) == 1
    assert len([r for r in after if r[0].startswith("Recovered")]) == 1


def test_a_clock_set_back_writes_nothing_and_drafts_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = practice(tmp_path)
    assert sync(config, "--now", NOW, capsys=capsys)[0] == 0
    before = (tmp_path / "referrals.xlsx").read_bytes()
    drafts = sorted((tmp_path / "drafts").iterdir())
    state_runs = runs(tmp_path)
    code, out, err = sync(config, "--now", "2025-01-04T10:00:00", capsys=capsys)
    assert code == 3
    lines = [line for line in (out + err).splitlines() if line.strip()]
    assert len(lines) == 1
    assert "earlier than the last run (2025-03-04 10:00)" in lines[0]
    assert "--force" in lines[0]
    assert (tmp_path / "referrals.xlsx").read_bytes() == before
    assert sorted((tmp_path / "drafts").iterdir()) == drafts
    assert runs(tmp_path) == state_runs
    # A dry run says the same; --force runs (the clock is right, the last run was not).
    assert sync(config, "--now", "2025-01-04T10:00:00", "--dry-run", capsys=capsys)[0] == 3
    assert sync(config, "--now", "2025-01-04T10:00:00", "--force", capsys=capsys)[0] == 0


def test_a_manual_sync_waits_for_the_cycle_under_way(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_path = practice(tmp_path)
    config = load_config(config_path)
    config.state_dir.mkdir(mode=0o700)
    fd = take_lock(config.state_dir / "bridge.lock")  # the daemon's cycle, say
    threading.Timer(1.0, lambda: __import__("os").close(fd)).start()
    started = time.monotonic()
    code, _, err = sync(config_path, "--now", NOW, capsys=capsys)
    assert code == 0
    assert time.monotonic() - started >= 0.9
    assert "mid-cycle: waiting" in err


def test_a_manual_sync_says_plainly_that_the_daemon_is_mid_cycle(tmp_path: Path) -> None:
    config = load_config(practice(tmp_path))
    from datetime import datetime

    now = datetime.fromisoformat(NOW).replace(tzinfo=config.tz)
    with daemon_lock(config.state_dir):
        fd = take_lock(config.state_dir / "bridge.lock")
        try:
            with pytest.raises(StateLockedError, match="daemon .* is mid-cycle"):
                run_sync(config, now=now, wait=0.3)
        finally:
            import os

            os.close(fd)
    assert not (tmp_path / "state" / "state.sqlite").exists()  # nothing ran beside it


def test_the_daemon_keeps_its_last_good_config_and_says_so_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from datetime import datetime, timedelta

    path = practice(tmp_path)
    config = load_config(path)
    moments = iter(datetime(2025, 3, 4, 10, tzinfo=config.tz) + timedelta(minutes=5 * i)
                   for i in range(10))
    daemon = Daemon(config, path, clock=lambda: next(moments))
    caplog.set_level(logging.INFO)
    assert daemon.sync() is not None
    path.write_text("practice: [unclosed", encoding="utf-8")
    caplog.clear()
    first, second = daemon.sync(), daemon.sync()
    assert first is not None and second is not None  # it kept syncing
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "keeps using the last good one" in errors[0].getMessage()
    assert daemon.status()["config_problem"]
    path.write_text(yaml.safe_dump({**CONFIG, "schedule": {"sync_minutes": 1}}),
                    encoding="utf-8")
    daemon.sync()
    assert daemon.config_problem is None
    assert daemon.config.schedule.sync_minutes == 1
    assert any("validates again" in r.getMessage() for r in caplog.records)


def test_a_failing_daemon_reports_once_backs_off_and_reports_the_recovery_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from datetime import datetime, timedelta

    path = practice(tmp_path)
    config = load_config(path)
    clock = [datetime(2025, 3, 4, 10, tzinfo=config.tz)]

    def now() -> datetime:
        clock[0] += timedelta(minutes=5)
        return clock[0]

    daemon = Daemon(config, path, clock=now)
    caplog.set_level(logging.INFO)
    daemon.sync()
    workbook = tmp_path / "referrals.xlsx"
    workbook.rename(tmp_path / "away.xlsx")
    caplog.clear()
    for _ in range(4):
        daemon.sync()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "does not exist" in errors[0].getMessage()
    assert daemon.health["sync"].failures == 4
    data = read_status(config, clock[0])
    assert data["failing"]["failed_cycles"] == 4
    assert "FAILING" in "\n".join(status_lines(data))
    (tmp_path / "away.xlsx").rename(workbook)
    daemon.sync()
    recovered = [r.getMessage() for r in caplog.records if "recovered after" in r.getMessage()]
    assert recovered == [recovered[0]] and "after 4 failed cycles" in recovered[0]
    assert daemon.health["sync"].failures == 0
    log = bridge_log(tmp_path)
    assert len([r for r in log if r[0].startswith("Failed")]) == 1
    assert len([r for r in log if r[0].startswith("Recovered after 4 failed cycles")]) == 1
    assert read_status(config, clock[0])["healthy"] is True


def test_backoff_doubles_and_is_capped() -> None:
    from datetime import timedelta

    from sheets_bridge.daemon import backoff_delay

    minute = timedelta(minutes=1)
    delays = [backoff_delay(n, 5 * minute, 30 * minute) for n in range(6)]
    assert delays == [5 * minute, 10 * minute, 20 * minute, 30 * minute, 30 * minute,
                      30 * minute]
    assert backoff_delay(3, 5 * minute, 2 * minute) == 5 * minute  # never below the interval


def test_status_words_and_json_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert [plural(1, "draft"), plural(2, "draft"), plural(1, "Referral ID")] == [
        "1 draft", "2 drafts", "1 Referral ID"]
    config = practice(tmp_path)
    assert sync(config, "--now", NOW, capsys=capsys)[0] == 0
    assert main(["status", "--config", str(config), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert tuple(data) == STATUS_KEYS
    assert data["daemon"]["running"] is False
    assert data["last_runs"][0]["outcome"] == "ok"
    assert isinstance(data["last_runs"][0]["duration_seconds"], float)
    assert main(["status", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "1 drafts" not in out and " 1 cells" not in out
    assert "Daemon: not running" in out


def test_the_next_digest_says_the_bridge_is_failing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import email
    from email.message import Message

    config = practice(tmp_path)
    (tmp_path / ".~lock.referrals.xlsx#").write_text("x", encoding="utf-8")
    assert sync(config, "--now", NOW, capsys=capsys)[0] == 1
    assert main(["digest", "--config", str(config), "--now", "2025-03-04T10:30:00"]) == 0
    capsys.readouterr()
    (path,) = (tmp_path / "drafts").glob("digest.*.eml")
    message = email.message_from_bytes(path.read_bytes())

    def text(part: Message) -> str:
        payload = part.get_payload(decode=True)
        return payload.decode("utf-8") if isinstance(payload, bytes) else ""

    body = " ".join(text(p) for p in message.walk() if p.get_content_type() == "text/plain")
    assert "The bridge has been failing since" in body
    assert "open in Excel or LibreOffice" in body
