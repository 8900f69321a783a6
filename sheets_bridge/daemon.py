"""``sheets-bridge run``: the daemon. APScheduler 3.x runs the sync and the weekly digest.

Schedules are rebuilt from the config at every start (a memory job store: "job stores must never
be shared between schedulers", and the bridge's own state file already records what ran), so a
restart never duplicates a schedule. What must survive a restart survives in the state: a digest
missed while the daemon was down is made once at the next start (``maybe_digest`` is keyed by
ISO week). Jobs run one at a time on a single worker thread, so the sync and the digest never
overlap; one daemon per state folder (an OS lock held for the daemon's lifetime).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import FrameType

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from sheets_bridge.config import BridgeConfig
from sheets_bridge.errors import StateLockedError
from sheets_bridge.files import LockHeldError, take_lock

log = logging.getLogger(__name__)

#: A job that could not start on time (the machine slept, a long cycle ran) still runs if it is
#: at most this late; later than that, the next run is the catch-up (the digest checks at start).
MISFIRE_GRACE_SECONDS = 600


def build_scheduler(config: BridgeConfig, config_path: Path) -> BlockingScheduler:
    """The scheduler with the bridge's jobs, in the practice's time zone; not started."""
    scheduler = BlockingScheduler(
        timezone=config.tz,
        executors={"default": ThreadPoolExecutor(max_workers=1)},
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": MISFIRE_GRACE_SECONDS,
        },
    )
    path = str(config_path)
    scheduler.add_job(
        "jobs.sync:run",
        IntervalTrigger(minutes=config.schedule.sync_minutes, timezone=config.tz),
        args=[path],
        next_run_time=datetime.now(config.tz),  # the first cycle at start, then every N minutes
        id="sync",
        name="sync",
        replace_existing=True,
    )
    scheduler.add_job(
        "jobs.digest:run",
        CronTrigger(
            day_of_week=config.digest.weekday,
            hour=config.digest.hour,
            minute=0,
            timezone=config.tz,
        ),
        args=[path],
        id="digest",
        name="weekly digest",
        replace_existing=True,
    )
    scheduler.add_listener(_on_job_event, EVENT_JOB_ERROR | EVENT_JOB_MISSED)
    return scheduler


def _on_job_event(event: JobExecutionEvent) -> None:
    # The exception's text may quote cell values: only its type is logged.
    if event.exception is not None:
        log.error("job %s failed: %s", event.job_id, type(event.exception).__name__)
    else:
        log.warning("job %s missed its time; it runs at its next time", event.job_id)


@contextlib.contextmanager
def daemon_lock(state_dir: Path) -> Iterator[None]:
    """One daemon per state folder, for the daemon's lifetime (freed by the OS if it dies)."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = take_lock(state_dir / "daemon.lock")
    except LockHeldError as held:
        raise StateLockedError(
            f"A sheets-bridge daemon (pid {held.holder}) already runs for the state folder "
            f"{state_dir}: stop it first (one daemon per state folder)"
        ) from None
    try:
        yield
    finally:
        os.close(fd)


def run_daemon(config: BridgeConfig, config_path: Path) -> int:
    """Run until SIGTERM or SIGINT; the job in progress finishes first (a safe point)."""
    import jobs.digest
    from sheets_bridge.private import refuse_exposed

    refuse_exposed(config)
    with daemon_lock(config.state_dir):
        scheduler = build_scheduler(config, config_path)

        def stop(signum: int, frame: FrameType | None) -> None:
            log.info("signal %d: stopping after the job in progress", signum)
            scheduler.shutdown(wait=False)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        # A digest missed while the daemon was down goes out now, once (keyed by ISO week).
        jobs.digest.run(str(config_path))
        scheduler.start()
    return 0
