"""Serving the add-on: uvicorn beside the daemon's scheduler (``run``), or alone (``serve``).

"Sync now" never makes a second writer. In the daemon it moves the scheduled sync job's next run
to now and waits for that job (the scheduler runs one job at a time on one worker). Served
alone, it runs one cycle here, and only while no daemon holds the state folder; the cycle itself
takes the state lock every cycle takes.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any

import uvicorn
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent

from sheets_bridge.config import BridgeConfig
from sheets_bridge.dates import format_moment
from sheets_bridge.errors import StateLockedError

if TYPE_CHECKING:
    from apscheduler.schedulers.base import BaseScheduler
    from starlette.applications import Starlette

log = logging.getLogger(__name__)

#: How long "Sync now" waits for the cycle before answering (Google waits about 30 s).
SYNC_WAIT_SECONDS = 20.0


class SchedulerSync:
    """"Sync now" in the daemon: move the ``sync`` job to now; the scheduler stays the writer."""

    def __init__(self, scheduler: BaseScheduler, config: BridgeConfig,
                 wait: float = SYNC_WAIT_SECONDS) -> None:
        self._scheduler = scheduler
        self._config = config
        self._wait = wait
        from sheets_bridge.daemon import job_id
        from sheets_bridge.logs import practice_slug

        self._job = job_id("sync", practice_slug(config.practice.name))
        self._done = threading.Condition()
        self._finished = 0
        self._last: list[str] = []
        scheduler.add_listener(self._on_event, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)

    def _on_event(self, event: JobExecutionEvent) -> None:
        if event.job_id != self._job:
            return
        from sheets_bridge.report import report_lines

        if event.exception is not None:
            lines = [f"The sync failed ({type(event.exception).__name__}); the next one retries."]
        elif event.retval is None:
            lines = ["The sync could not run; `sheets-bridge status` and the log say why."]
        else:
            lines = report_lines(event.retval, self._config, dry_run=False)
        with self._done:
            self._finished += 1
            self._last = lines
            self._done.notify_all()

    def sync_now(self) -> list[str]:
        with self._done:
            before = self._finished
        self._scheduler.modify_job(self._job, next_run_time=datetime.now(self._config.tz))
        with self._done:
            if not self._done.wait_for(lambda: self._finished > before, timeout=self._wait):
                return [("The sync has started and is still running: open the panel again in a "
                        "minute to see what it changed.")]
            return list(self._last)

    def next_sync(self) -> str:
        job = self._scheduler.get_job(self._job)
        if job is None or job.next_run_time is None:
            return "not scheduled"
        return format_moment(job.next_run_time, self._config.tz)


class DirectSync:
    """"Sync now" under ``sheets-bridge serve``: one cycle here, only if no daemon runs."""

    def __init__(self, config: BridgeConfig) -> None:
        self._config = config

    def sync_now(self) -> list[str]:
        from sheets_bridge.daemon import daemon_lock
        from sheets_bridge.report import report_lines
        from sheets_bridge.runner import run_sync

        try:
            with daemon_lock(self._config.state_dir):
                report = run_sync(self._config, now=datetime.now(self._config.tz))
        except StateLockedError:
            return [("A sync is running already (or a daemon serves this sheet): it is the one "
                    "writer. Open the panel again in a minute.")]
        return report_lines(report, self._config, dry_run=False)

    def next_sync(self) -> str:
        return "not scheduled here (`sheets-bridge serve` runs no schedule; `run` does)"


def _uvicorn_config(app: Starlette, listen: str, **extra: Any) -> uvicorn.Config:
    host, _, port = listen.rpartition(":")
    return uvicorn.Config(
        app, host=host or "127.0.0.1", port=int(port), log_level="warning",
        access_log=False, proxy_headers=True, **extra,
    )


def build_server(app: Starlette, listen: str, **extra: Any) -> uvicorn.Server:
    return uvicorn.Server(_uvicorn_config(app, listen, **extra))


def start_in_thread(server: uvicorn.Server) -> threading.Thread:
    """Serve on a daemon thread (uvicorn installs no signal handlers off the main thread)."""
    thread = threading.Thread(target=server.run, name="addon-http", daemon=True)
    thread.start()
    return thread


def serve(config: BridgeConfig) -> int:
    """``sheets-bridge serve``: the add-on alone, in the foreground, until Ctrl-C."""
    from sheets_bridge.addon.app import create_app

    app = create_app(config, DirectSync(config))
    build_server(app, config.addon.listen).run()
    return 0
