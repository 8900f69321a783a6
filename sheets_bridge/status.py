"""``sheets-bridge status``: is the bridge healthy, what ran, what runs next, what went wrong.

Read without taking the state folder's lock (the state file is opened read-only; SQLite's WAL
lets it be read while the daemon writes), so ``status`` answers at once even mid-cycle. The
daemon's own part (pid, since, next runs) comes from ``daemon.json``, trusted only while the
daemon's lock is held. ``--json`` prints the same as one object whose keys are stable (the
README lists them) for monitoring tools; the exit code is 0 healthy, 1 failing.

Counts, times and the bridge's own messages only: nothing here names a patient.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from datetime import datetime
from typing import Any

from sheets_bridge.config import BridgeConfig
from sheets_bridge.daemon import STATUS_FILE, job_id
from sheets_bridge.files import lock_is_held
from sheets_bridge.logs import LOG_FILE, practice_slug
from sheets_bridge.state import read_episode

__all__ = ["STATUS_KEYS", "plural", "read_status", "status_lines"]

#: The top-level keys of ``status --json`` (a test and the README keep them in step).
STATUS_KEYS = (
    "practice", "healthy", "state_dir", "daemon", "failing", "last_error", "last_runs",
    "last_quiet", "next_runs", "drafts",
)


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 draft``, ``2 drafts``, ``1 Referral ID``."""
    return f"{count} {word if count == 1 else (many or word + 's')}"


def _seconds(ms: object) -> float | None:
    return round(int(ms) / 1000, 1) if isinstance(ms, int) else None


def _daemon(config: BridgeConfig) -> dict[str, Any]:
    holder = lock_is_held(config.state_dir / "daemon.lock")
    info: dict[str, Any] = {
        "running": holder is not None,
        "pid": int(holder) if holder and holder.isdigit() else None,
        "since": None,
        "log_file": str(config.state_dir / LOG_FILE)
        if (config.state_dir / LOG_FILE).exists() else None,
        "config_problem": None,
        "jobs": {},
        "next_runs": {},
    }
    if holder is None:
        return info
    with contextlib.suppress(OSError, ValueError):
        data = json.loads((config.state_dir / STATUS_FILE).read_text(encoding="utf-8"))
        if isinstance(data, dict) and str(data.get("pid")) == holder:
            info.update(
                since=data.get("since"), config_problem=data.get("config_problem"),
                jobs=data.get("jobs") or {}, next_runs=data.get("next_runs") or {},
                log_file=data.get("log_file") or info["log_file"],
            )
    return info


def _open_read_only(config: BridgeConfig) -> sqlite3.Connection | None:
    path = config.state_dir / "state.sqlite"
    if not path.exists():
        return None
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        db.execute("SELECT count(*) FROM meta").fetchone()
    except sqlite3.Error:
        return None
    return db


def read_status(config: BridgeConfig, now: datetime, *, limit: int = 10) -> dict[str, Any]:
    """Everything ``status`` shows, as plain JSON-ready data."""
    slug = practice_slug(config.practice.name)
    daemon = _daemon(config)
    data: dict[str, Any] = {
        "practice": slug,
        "healthy": True,
        "state_dir": str(config.state_dir),
        "daemon": {k: daemon[k] for k in ("running", "pid", "since", "log_file",
                                          "config_problem")},
        "failing": None,
        "last_error": None,
        "last_runs": [],
        "last_quiet": None,
        "next_runs": {
            job: daemon["next_runs"].get(job_id(job, slug)) for job in ("sync", "digest")
        },
        "drafts": {"waiting": None, "being_made": 0},
    }
    db = _open_read_only(config)
    if db is not None:
        try:
            _from_state(db, data, now, limit)
        finally:
            db.close()
    if data["failing"] is None:
        # The state may be what fails (a full disk): then only the daemon knows.
        for job, health in sorted(daemon["jobs"].items()):
            if isinstance(health, dict) and health.get("failures"):
                data["failing"] = _failing(
                    job, health["failures"], health.get("since"), health.get("last_error", ""),
                    health.get("last_error_at"), now,
                )
                break
    if data["failing"] is not None:
        data["healthy"] = False
        data["last_error"] = {
            "at": data["failing"]["last_error_at"], "message": data["failing"]["last_error"]
        }
    if config.mail.kind == "eml":
        from sheets_bridge.mail import open_drafter

        with contextlib.suppress(Exception):
            data["drafts"]["waiting"] = open_drafter(config).count_waiting()
    return data


def _failing(job: str, failures: int, since: str | None, error: str, at: str | None,
             now: datetime) -> dict[str, Any]:
    seconds = None
    with contextlib.suppress(TypeError, ValueError):
        seconds = max(0, int(now.timestamp() - datetime.fromisoformat(str(since)).timestamp()))
    return {
        "job": job, "since": since, "failed_cycles": int(failures), "for_seconds": seconds,
        "last_error": error, "last_error_at": at,
    }


def _from_state(db: sqlite3.Connection, data: dict[str, Any], now: datetime, limit: int) -> None:
    meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    if meta.get("last_quiet"):
        quiet_ms = meta.get("last_quiet_ms")
        data["last_quiet"] = {
            "at": meta["last_quiet"],
            "duration_seconds": _seconds(int(str(quiet_ms))) if str(quiet_ms).isdigit() else None,
        }
    columns = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
    duration = "duration_ms" if "duration_ms" in columns else "NULL"
    for started, outcome, rows, cells, drafts, problems, summary, text, ms in db.execute(
        "SELECT started, outcome, rows_read, cells_written, drafts, problems, summary, "
        f"problem_text, {duration} FROM runs ORDER BY id DESC LIMIT ?",
        (limit,),
    ):
        data["last_runs"].append({
            "started": started, "outcome": outcome, "duration_seconds": _seconds(ms),
            "rows_read": rows, "cells_written": cells, "drafts": drafts, "problems": problems,
            "summary": summary, "error": text if outcome == "failed" else None,
        })
    episode = read_episode(db)
    if episode is not None:
        data["failing"] = _failing(
            "sync", episode.failures, episode.since.isoformat(timespec="seconds"),
            episode.last_error, episode.last_error_at.isoformat(timespec="seconds"), now,
        )
    else:
        row = db.execute(
            "SELECT started, problem_text FROM runs WHERE outcome = 'failed' "
            "ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if row is not None:
            data["last_error"] = {"at": row[0], "message": row[1]}
    with contextlib.suppress(sqlite3.Error):
        data["drafts"]["being_made"] = int(db.execute(
            "SELECT count(*) FROM drafts WHERE status IN ('pending', 'unknown')"
        ).fetchone()[0])


def _when(text: str | None) -> str:
    if not text:
        return "-"
    try:
        return datetime.fromisoformat(text).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return text


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return plural(minutes, "minute")
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{plural(hours, 'hour')} {plural(minutes, 'minute')}" if minutes else plural(
            hours, "hour")
    return plural(hours // 24, "day")


def status_lines(data: dict[str, Any]) -> list[str]:
    """``status`` for a person, a line each."""
    lines: list[str] = []
    add = lines.append
    add(f"Practice: {data['practice']} (state folder {data['state_dir']})")
    daemon = data["daemon"]
    if daemon["running"]:
        since = f", since {_when(daemon['since'])}" if daemon["since"] else ""
        where = f"; log: {daemon['log_file']}" if daemon["log_file"] else ""
        add(f"Daemon: running (pid {daemon['pid']}{since}{where})")
    else:
        add("Daemon: not running (start it with `sheets-bridge run --config PATH`)")
    if daemon.get("config_problem"):
        add(f"  The config no longer validates; the daemon keeps the last good one: "
            f"{daemon['config_problem']}")
    failing = data["failing"]
    if failing is None:
        add("Health: OK")
    else:
        how_long = _duration(failing["for_seconds"])
        add(f"Health: FAILING{' for ' + how_long if how_long else ''} "
            f"({plural(failing['failed_cycles'], 'failed cycle')} in a row since "
            f"{_when(failing['since'])})")
        add(f"  Last error: {failing['last_error']}")
    runs = data["next_runs"]
    if any(runs.values()):
        add(f"Next runs: sync {_when(runs.get('sync'))}, digest {_when(runs.get('digest'))}")
    drafts = data["drafts"]
    waiting = drafts["waiting"]
    text = f"{plural(waiting, 'draft')} waiting for a person to review" if waiting is not None \
        else "drafts are in Gmail's Drafts folder"
    add(f"Drafts: {text}; {drafts['being_made']} being made")
    quiet = data["last_quiet"]
    if quiet:
        took = f" ({_duration(quiet['duration_seconds'])})" if quiet["duration_seconds"] else ""
        add(f"Last quiet cycle (nothing to change): {_when(quiet['at'])}{took}")
    add("Recent runs that changed something, stopped or failed:")
    for run in data["last_runs"]:
        took = _duration(run["duration_seconds"])
        add(
            f"  {_when(run['started'])}  {run['outcome']:<8} {plural(run['cells_written'], 'cell')}"
            f", {plural(run['drafts'], 'draft')}, {plural(run['problems'], 'problem')}"
            f"{', ' + took if took else ''}  {run['summary']}"
        )
    if not data["last_runs"]:
        add("  (none)")
    if failing is None and data["last_error"]:
        add(f"Last error ({_when(data['last_error']['at'])}, since recovered): "
            f"{data['last_error']['message']}")
    return lines
