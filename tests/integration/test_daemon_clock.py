"""The daemon's jobs under an injected clock (RELIABILITY.md F22, F23): hours, DST nights,
restarts and clock jumps walked through without sleeping. The scheduler's part is its real
``CronTrigger``; the jobs are the daemon's own methods on a real workbook and state."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import pytest

from sheets_bridge.config import BridgeConfig, load_config
from sheets_bridge.daemon import Daemon, build_scheduler
from sheets_bridge.model import STAFF_COLUMNS

ROOT = Path(__file__).resolve().parents[2]
HOUR = timedelta(hours=1)


def practice(tmp_path: Path, zone: str, weekday: str, hour: int) -> tuple[BridgeConfig, Path]:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Referrals"
    ws.append(list(STAFF_COLUMNS))
    ws.append(["2025-01-20 09:00", "Ann", "Lee", None, None, "Google"])
    wb.save(tmp_path / "referrals.xlsx")
    text = (ROOT / "config.example.yaml").read_text(encoding="utf-8")
    text = text.replace("timezone: America/New_York", f"timezone: {zone}")
    text = text.replace("  weekday: mon\n  hour: 7", f"  weekday: {weekday}\n  hour: {hour}")
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(path), path


class Walk:
    """A fake wall clock and the daemon's schedule over it: the sync every ``sync_every``, the
    digest when its real cron trigger fires, a restart or a clock jump when the test says."""

    def __init__(self, config: BridgeConfig, path: Path, start: datetime) -> None:
        self.config, self.path = config, path
        self.now = start
        self.made: list[tuple[datetime, str]] = []
        self.trigger = build_scheduler(config, "p").get_job("digest:p").trigger
        self.restart()

    def restart(self) -> None:
        """A new daemon process: schedules rebuilt from the config, the first sync at once."""
        self.daemon = Daemon(self.config, self.path, clock=lambda: self.now)
        self.next_digest = self.trigger.get_next_fire_time(None, self.now)
        self.next_sync = self.now
        self.tick()

    def tick(self) -> None:
        if self.now.timestamp() >= self.next_sync.timestamp():
            self._record(self.daemon.sync, "sync")
            self.next_sync = self.now + 6 * HOUR
        if self.next_digest is not None and self.now.timestamp() >= self.next_digest.timestamp():
            self._record(self.daemon.digest, "digest")
            self.next_digest = self.trigger.get_next_fire_time(self.next_digest, self.now)

    def _record(self, job: object, name: str) -> None:
        before = set(self.digests())
        job()  # type: ignore[operator]
        for key in sorted(set(self.digests()) - before):
            self.made.append((self.now, key))

    def walk(self, hours: int) -> None:
        """Advance in steps of one real hour (UTC), so a repeated hour is lived twice."""
        for _ in range(hours):
            self.now = (self.now.astimezone(UTC) + HOUR).astimezone(self.config.tz)
            self.tick()

    def jump(self, delta: timedelta) -> None:
        """The system clock stepped (NTP, a VM resumed): the scheduler's times stay as they were."""
        self.now = (self.now.astimezone(UTC) + delta).astimezone(self.config.tz)
        self.tick()

    def digests(self) -> Iterator[str]:
        folder = self.config.mail.path  # type: ignore[union-attr]
        return (p.stem for p in folder.glob("digest.*.eml"))


@pytest.mark.parametrize(
    ("zone", "sunday"),
    [
        ("America/New_York", datetime(2025, 11, 2)),  # fall back: 01:00-02:00 twice
        ("America/New_York", datetime(2025, 3, 9)),  # spring forward: no 02:00-03:00
        ("Europe/Berlin", datetime(2025, 3, 30)),
        ("Europe/Berlin", datetime(2025, 10, 26)),
    ],
)
def test_the_digest_is_made_once_at_its_hour_on_a_dst_sunday_across_a_restart(
    tmp_path: Path, zone: str, sunday: datetime
) -> None:
    config, path = practice(tmp_path, zone, "sun", 7)
    tz = ZoneInfo(zone)
    walk = Walk(config, path, sunday.replace(hour=0, tzinfo=tz) - 30 * HOUR)  # Friday evening
    walk.walk(30)  # to Sunday 00:00, through the night of the change
    walk.walk(4)
    walk.restart()  # the daemon restarted in the small hours of the digest day
    walk.walk(30)
    assert [key for _, key in walk.made] == [f"digest.{sunday:%G-W%V}"]
    when = walk.made[0][0]
    assert (when.date(), when.hour) == (sunday.date(), 7)  # on time, in the practice's zone
    walk.restart()
    walk.walk(12)
    assert len(walk.made) == 1


@pytest.mark.slow
def test_clock_jumps_neither_redraft_nor_skip_a_digest_week(tmp_path: Path) -> None:
    config, path = practice(tmp_path, "America/New_York", "mon", 7)
    tz = ZoneInfo("America/New_York")
    walk = Walk(config, path, datetime(2025, 6, 2, 5, tzinfo=tz))  # a Monday, before the hour
    walk.walk(5)
    assert [key for _, key in walk.made] == ["digest.2025-W23"]
    walk.restart()
    walk.jump(-timedelta(days=1))  # back into last week (the scheduler's times stay ahead)
    walk.daemon.sync()  # a cycle run now refuses: nothing written, no digest for W22
    assert walk.daemon.health["sync"].failures == 1
    assert "earlier than the last run" in walk.daemon.health["sync"].last_error
    walk.walk(30)  # the clock catches up with the last run; nothing is made again
    assert [key for _, key in walk.made] == ["digest.2025-W23"]
    assert walk.daemon.health["sync"].failures == 0  # and the sync runs again
    walk.jump(timedelta(days=7))  # a VM resumed a week later, past next Monday's hour
    woke = walk.now
    walk.walk(24)
    assert [key for _, key in walk.made] == ["digest.2025-W23", "digest.2025-W24"]
    assert walk.made[1][0] == woke  # made on wake, once
    walk.restart()
    walk.walk(6 * 24)  # the rest of that week, and into the next: one more, on time
    keys = [key for _, key in walk.made]
    assert keys == ["digest.2025-W23", "digest.2025-W24", "digest.2025-W25"]
    assert (walk.made[2][0].weekday(), walk.made[2][0].hour) == (0, 7)
