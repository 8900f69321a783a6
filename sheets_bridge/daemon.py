"""``sheets-bridge run``: the daemon. APScheduler 3.x runs the sync and the weekly digest.

Months unattended: the first sign that something is wrong reaches a person once, in words
they can act on, and the bridge comes back by itself when the cause goes away.

- Schedules are rebuilt from the config at every start (a memory job store: "job stores must
  never be shared between schedulers", and the bridge's own state file records what ran), with
  IDs that carry the practice (``sync:<slug>``, ``digest:<slug>``), so a restart never
  duplicates a schedule and several practices could share one store.
- Jobs run one at a time on a single worker thread (the sync and the digest never overlap); one
  daemon per state folder (``daemon.lock``, held for the daemon's lifetime); a cycle holds the
  state lock (``bridge.lock``), so a manual ``sync`` waits for it and never runs beside one.
- A failing cycle is retried after a wait that doubles each time (capped by
  ``schedule.max_backoff_minutes``, back to normal at the first success). The failure is
  reported once when it starts (an ERROR line, a Bridge Log row, ``status``, the next digest)
  and once when it ends ("recovered after N failed cycles"); the cycles between log one INFO
  line each.
- The config is re-read at each job; one that no longer validates is reported once and the last
  good one is kept.
- A job that runs late (the machine slept) runs once, at once; after each sync the digest is
  made if its hour this ISO week has passed and it is not made yet, so a digest slept through
  goes out once on wake, whatever the scheduler's timers did across the clock change.
- SIGTERM: the cycle under way stops at its next safe point (nothing of it written) and the
  daemon exits within seconds.

The jobs in ``jobs/`` are textual references (``jobs.sync:run``) that look the running daemon up
by its slug (:func:`running`) and call one method: no logic lives there.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from apscheduler.events import EVENT_SCHEDULER_STARTED
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from sheets_bridge.collector import settle_after_cycle
from sheets_bridge.config import BridgeConfig, load_config
from sheets_bridge.cycle import CycleInterruptedError, CycleReport
from sheets_bridge.digest import digest_key
from sheets_bridge.digest_run import digest_due, maybe_digest
from sheets_bridge.errors import ConfigError, StateLockedError, describe_failure
from sheets_bridge.files import LockHeldError, take_lock
from sheets_bridge.logs import practice_context, practice_slug
from sheets_bridge.runner import run_sync

log = logging.getLogger(__name__)

#: The daemon's own status, for ``sheets-bridge status`` (pid, since, next runs, failures).
STATUS_FILE = "daemon.json"
#: A cycle waits this long for a manual ``sync`` to let go of the state folder, then skips.
LOCK_WAIT_SECONDS = 10.0
JOBS = ("sync", "digest")

_RUNNING: dict[str, Daemon] = {}
"""The daemons of this process by practice slug: what the textual job references call."""


def running(slug: str) -> Daemon:
    """The daemon running for the practice ``slug`` in this process (for ``jobs/``)."""
    return _RUNNING[slug]


def job_id(job: str, slug: str) -> str:
    """``sync:riverside-physical-therapy``: a job's ID carries its practice."""
    return f"{job}:{slug}"


def backoff_delay(failures: int, interval: timedelta, cap: timedelta) -> timedelta:
    """How long after a failed cycle the next one runs: the usual interval doubled for each
    failure in a row, at most ``cap`` (and never less than the usual interval)."""
    if failures <= 0:
        return interval
    return max(interval, min(interval * (2 ** min(failures, 30)), cap))


@dataclass
class JobHealth:
    """A job's failures in a row, as this process saw them (the state file keeps the sync's)."""

    failures: int = 0
    since: datetime | None = None
    last_error: str = ""
    last_error_at: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("since", "last_error_at"):
            data[key] = data[key].isoformat(timespec="seconds") if data[key] else None
        return data


def _interval(config: BridgeConfig) -> timedelta:
    return timedelta(minutes=config.schedule.sync_minutes)


def build_scheduler(
    config: BridgeConfig, slug: str, *, first_sync: datetime | None = None
) -> BlockingScheduler:
    """The scheduler with the practice's jobs, in its time zone; not started."""
    scheduler = BlockingScheduler(
        timezone=config.tz,
        executors={"default": ThreadPoolExecutor(max_workers=1)},
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            # A job that could not start on time (the machine slept, a long cycle ran) runs once
            # when it can, however late: the sync is harmless to run late, and the digest is
            # keyed by ISO week, so a late one is still the only one.
            "misfire_grace_time": None,
        },
    )
    scheduler.add_job(
        "jobs.sync:run",
        _sync_trigger(config),
        args=[slug],
        next_run_time=first_sync,  # the first cycle at start, then every N minutes
        id=job_id("sync", slug),
        name=f"sync {slug}",
        replace_existing=True,
    )
    scheduler.add_job(
        "jobs.digest:run",
        _digest_trigger(config),
        args=[slug],
        id=job_id("digest", slug),
        name=f"weekly digest {slug}",
        replace_existing=True,
    )
    return scheduler


def _sync_trigger(config: BridgeConfig) -> IntervalTrigger:
    return IntervalTrigger(seconds=_interval(config).total_seconds(), timezone=config.tz)


def _digest_trigger(config: BridgeConfig) -> CronTrigger:
    return CronTrigger(
        day_of_week=config.digest.weekday, hour=config.digest.hour, minute=0, timezone=config.tz
    )


class Daemon:
    """One practice's scheduled jobs, their health and the config they run with.

    ``clock`` is the only wall clock the jobs read (tests pass their own, so hours, DST nights
    and clock jumps are walked through without sleeping).
    """

    def __init__(
        self,
        config: BridgeConfig,
        config_path: Path,
        *,
        clock: Callable[[], datetime] | None = None,
        log_file: Path | None = None,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.slug = practice_slug(config.practice.name)
        self.clock = clock or (lambda: datetime.now(self.config.tz))
        self.log_file = log_file
        self.health = {job: JobHealth() for job in JOBS}
        self.config_problem: str | None = None
        self.stopping = threading.Event()
        self.started = self.clock()
        self.scheduler: BlockingScheduler | None = None
        self.digest_made_for: str | None = None
        """The ISO week whose digest this process knows is done (made, or found made)."""

    # -- the jobs --------------------------------------------------------------------------
    def sync(self) -> CycleReport | None:
        """One cycle, then the digest if it is due and not made: the body of ``jobs.sync``.

        Never raises: APScheduler would log the exception's text (which may quote a cell)."""
        with practice_context(self.slug):
            try:
                return self._sync()
            except Exception as error:  # noqa: BLE001 - the daemon outlives every failure
                self._failed("sync", error, self.clock(), self.config)
                return None

    def _sync(self) -> CycleReport | None:
        config = self.reload()
        now = self.clock()
        report: CycleReport | None = None
        try:
            report = run_sync(
                config, now=now, wait=LOCK_WAIT_SECONDS, should_stop=self.stopping.is_set
            )
        except StateLockedError as busy:
            log.info("sync skipped: %s", busy)
        except CycleInterruptedError:
            log.info("sync stopped at a safe point: the daemon is stopping")
            return None
        except Exception as error:  # noqa: BLE001 - the daemon outlives every failure
            self._failed("sync", error, now, config)
        else:
            self._succeeded("sync", now, config)
            log.info("%s", cycle_line(report))
        if not self.stopping.is_set():
            self.catch_up_digest(config, now)
        # (The digest's own failures are its own: caught and reported inside ``digest``.)
        self.write_status()
        settle_after_cycle()
        return report

    def digest(self) -> str | None:
        """This ISO week's digest if its hour has come and it is not made: ``jobs.digest``.

        Never raises, like :meth:`sync`."""
        try:
            return self._digest()
        except Exception as error:  # noqa: BLE001 - the daemon outlives every failure
            self._failed("digest", error, self.clock(), self.config)
            return None

    def _digest(self) -> str | None:
        config = self.reload()
        now = self.clock()
        try:
            made = maybe_digest(config, now)
        except StateLockedError as busy:
            log.info("digest skipped for now: %s", busy)
            return None
        except Exception as error:  # noqa: BLE001 - the daemon outlives every failure
            self._failed("digest", error, now, config)
            return None
        finally:
            self.write_status()
        self._succeeded("digest", now, config)
        if now.timestamp() >= digest_due(now, config.digest).timestamp():
            self.digest_made_for = digest_key(now)
        if made:
            log.info("%s", made)
        return made

    def catch_up_digest(self, config: BridgeConfig, now: datetime) -> None:
        """After a sync: the digest, if this week's hour has passed and it is not known done."""
        if now.timestamp() < digest_due(now, config.digest).timestamp():
            return
        if self.digest_made_for == digest_key(now):
            return
        self.digest()

    # -- failure and recovery --------------------------------------------------------------
    def _failed(self, job: str, error: BaseException, now: datetime, config: BridgeConfig) -> None:
        health = self.health[job]
        text = describe_failure(error)
        health.failures += 1
        if health.since is None:
            health.since = now
        changed = health.last_error != text
        health.last_error, health.last_error_at = text, now
        delay = backoff_delay(
            health.failures, _interval(config),
            timedelta(minutes=config.schedule.max_backoff_minutes),
        )
        # Counted from the end of the failed cycle (a long one must not eat the wait).
        retry = self.clock() + delay
        then = f"next try at {retry:%H:%M:%S}" if job == "sync" else "tried again after a sync"
        if health.failures == 1:
            log.error("%s failed: %s (%s; `sheets-bridge status` shows more)", job, text, then)
        elif changed:
            log.warning("%s still failing, now because: %s (%s)", job, text, then)
        else:
            log.info("%s failed again (%d in a row; %s)", job, health.failures, then)
        log.debug("%s failed in:\n%s", job, "".join(traceback.format_tb(error.__traceback__)))
        if job == "sync":
            self._reschedule_sync(retry)

    def _succeeded(self, job: str, now: datetime, config: BridgeConfig) -> None:
        health = self.health[job]
        if health.failures:
            since = health.since.isoformat(timespec="minutes") if health.since else "?"
            word = "cycle" if health.failures == 1 else "cycles"
            log.info("%s recovered after %d failed %s (failing since %s)", job,
                     health.failures, word, since)
            if job == "sync":
                self._reschedule_sync(self.clock() + _interval(config))
        self.health[job] = JobHealth()

    def _reschedule_sync(self, when: datetime) -> None:
        if self.scheduler is not None and self.scheduler.running:
            with contextlib.suppress(Exception):
                self.scheduler.modify_job(job_id("sync", self.slug), next_run_time=when)

    # -- the config, re-read at each job ---------------------------------------------------
    def reload(self) -> BridgeConfig:
        """The config file as it is now; the last good one while it does not validate."""
        try:
            new = load_config(self.config_path)
        except ConfigError as error:
            text = "; ".join([str(error), *error.problems])
            if text != self.config_problem:
                log.error("the config no longer validates, so the daemon keeps using the last "
                          "good one: %s", text)
                self.config_problem = text
            return self.config
        if self.config_problem is not None:
            log.info("the config validates again: using it")
            self.config_problem = None
        if new.state_dir != self.config.state_dir:
            log.warning("state_dir changed in the config: restart the daemon to use %s; it "
                        "keeps %s until then", new.state_dir, self.config.state_dir)
            new = new.model_copy(update={"state_dir": self.config.state_dir})
        old, self.config = self.config, new
        if (old.schedule, old.digest.weekday, old.digest.hour, old.tz) != (
            new.schedule, new.digest.weekday, new.digest.hour, new.tz
        ):
            self._apply_schedule(new)
        return new

    def _apply_schedule(self, config: BridgeConfig) -> None:
        if self.scheduler is None:
            return
        log.info("schedule changed: a sync every %s minutes, the digest on %s at %d:00",
                 f"{config.schedule.sync_minutes:g}", config.digest.weekday, config.digest.hour)
        with contextlib.suppress(Exception):
            self.scheduler.reschedule_job(job_id("sync", self.slug), trigger=_sync_trigger(config))
            self.scheduler.reschedule_job(
                job_id("digest", self.slug), trigger=_digest_trigger(config)
            )

    # -- status ----------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """What ``status`` reads of the running daemon (written to ``daemon.json``)."""
        next_runs: dict[str, str | None] = {}
        if self.scheduler is not None:
            for job in self.scheduler.get_jobs():
                when = getattr(job, "next_run_time", None)
                next_runs[job.id] = when.isoformat(timespec="seconds") if when else None
        return {
            "pid": os.getpid(),
            "since": self.started.isoformat(timespec="seconds"),
            "practice": self.slug,
            "config": str(self.config_path),
            "log_file": str(self.log_file) if self.log_file else None,
            "next_runs": next_runs,
            "jobs": {job: health.as_json() for job, health in self.health.items()},
            "config_problem": self.config_problem,
        }

    def write_status(self) -> None:
        """``daemon.json`` in the state folder, replaced atomically; best effort."""
        path = self.config.state_dir / STATUS_FILE
        temp = path.with_name(f".{STATUS_FILE}.tmp")
        try:
            temp.write_text(json.dumps(self.status(), indent=2), encoding="utf-8")
            os.replace(temp, path)
        except OSError as error:
            log.debug("could not write %s: %s", path.name, describe_failure(error))

    # -- running ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def registered(self) -> Iterator[None]:
        """While inside, the textual jobs (``jobs.sync:run`` with this slug) reach this daemon."""
        _RUNNING[self.slug] = self
        try:
            yield
        finally:
            _RUNNING.pop(self.slug, None)

    def run(self) -> int:
        """Run until SIGTERM or SIGINT; the job in progress stops at its next safe point."""
        with daemon_lock(self.config.state_dir), practice_context(self.slug):
            self.scheduler = build_scheduler(self.config, self.slug, first_sync=self.clock())
            executor = self.scheduler._lookup_executor("default")
            # ``status`` knows the daemon and its next runs from the moment it starts.
            self.scheduler.add_listener(lambda _event: self.write_status(),
                                        EVENT_SCHEDULER_STARTED)

            def stop(signum: int, frame: FrameType | None) -> None:
                log.info("signal %d: stopping at the next safe point", signum)
                self.stopping.set()
                if self.scheduler is not None and self.scheduler.running:
                    self.scheduler.shutdown(wait=False)

            previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
            registration = self.registered()
            registration.__enter__()
            server = _start_addon(self.config, self.scheduler) if self.config.addon.listen \
                else None
            try:
                log.info("daemon started (pid %d): a sync every %s minutes, the digest on %s "
                         "at %d:00", os.getpid(), f"{self.config.schedule.sync_minutes:g}",
                         self.config.digest.weekday, self.config.digest.hour)
                self.scheduler.start()
                executor.shutdown(wait=True)  # the job under way reaches its safe point
            finally:
                if server is not None:
                    server.should_exit = True
                registration.__exit__(None, None, None)
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
                with contextlib.suppress(OSError):
                    (self.config.state_dir / STATUS_FILE).unlink()
            log.info("daemon stopped")
        return 0


def _start_addon(config: BridgeConfig, scheduler: BlockingScheduler) -> Any:
    """The add-on's endpoints beside the scheduler (``addon.listen``): "Sync now" moves the
    scheduled job, so the scheduler stays the one writer."""
    from sheets_bridge.addon.app import create_app
    from sheets_bridge.addon.server import SchedulerSync, build_server, start_in_thread

    server = build_server(create_app(config, SchedulerSync(scheduler, config)), config.addon.listen)
    start_in_thread(server)
    log.info("add-on endpoints listening on %s", config.addon.listen)
    return server


def cycle_line(report: CycleReport) -> str:
    """The one INFO line a cycle leaves in the log: counts only."""
    drafts = len(report.drafts_made)
    parts = [
        f"sync {report.outcome}: {report.rows_read} rows",
        f"{report.cells_written} {'cell' if report.cells_written == 1 else 'cells'} written",
        f"{drafts} {'draft' if drafts == 1 else 'drafts'}",
        f"{report.rows_with_problems} with problems",
    ]
    if report.ids_assigned:
        parts.append(f"{report.ids_assigned} new Referral "
                     f"{'ID' if report.ids_assigned == 1 else 'IDs'}")
    if report.outcome == "stopped":
        parts.append(f"stopped: {report.stop_reason}")
    return ", ".join(parts) + f" ({report.duration:.1f} s)"


@contextlib.contextmanager
def daemon_lock(state_dir: Path) -> Iterator[None]:
    """One daemon per state folder, for the daemon's lifetime (freed by the OS if it dies)."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        # A moment's wait: ``status`` probes this lock (a shared lock, released at once).
        fd = take_lock(state_dir / "daemon.lock", wait=1.0)
    except LockHeldError as held:
        raise StateLockedError(
            f"A sheets-bridge daemon (pid {held.holder}) already runs for the state folder "
            f"{state_dir}: stop it first (one daemon per state folder)",
            holder=held.holder,
        ) from None
    try:
        yield
    finally:
        os.close(fd)


def run_daemon(config: BridgeConfig, config_path: Path, *, log_file: Path | None = None) -> int:
    """``sheets-bridge run``: the daemon for one practice, until SIGTERM."""
    from sheets_bridge.private import refuse_exposed

    refuse_exposed(config)  # keys, tokens and the state folder must be private (chmod)
    return Daemon(config, config_path, log_file=log_file).run()


__all__ = [
    "Daemon",
    "JobHealth",
    "backoff_delay",
    "build_scheduler",
    "cycle_line",
    "daemon_lock",
    "job_id",
    "run_daemon",
    "running",
]
