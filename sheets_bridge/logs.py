"""The daemon's logging: every line names its practice, files rotate in ``state_dir``.

A practice is named by its slug (``riverside-physical-therapy``), set for the code that runs
on its behalf with :func:`practice_context`, so every line a job logs (the library's included)
says whose it is; several practices can then share a daemon and a log. Lines carry counts,
Referral IDs and column names, never patient data (the library logs nothing else), and the
scheduler's own chatter ("Added job", "Running job", "skipped: maximum number of running
instances") stays below the default level.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import logging.handlers
import re
import sys
import unicodedata
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "LOG_FILE",
    "LOG_FORMAT",
    "PracticeFilter",
    "practice_context",
    "practice_slug",
    "setup_daemon_logging",
]

LOG_FILE = "sheets-bridge.log"
LOG_FORMAT = "%(asctime)s %(levelname)s [%(practice)s] %(name)s: %(message)s"
#: Size-capped files, a few kept: months unattended fill no disk.
MAX_BYTES = 1_000_000
BACKUPS = 5

_practice: contextvars.ContextVar[str] = contextvars.ContextVar("practice", default="-")


def practice_slug(name: str, fallback: str = "practice") -> str:
    """A practice's name as a stable, readable token for job IDs and log lines.

    ``Riverside Physical Therapy`` gives ``riverside-physical-therapy``; accents are folded
    and anything else becomes a dash, so the slug is safe in an ID, a file name or a log.
    """
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", folded.lower()).strip("-")[:40].strip("-")
    return slug or fallback


@contextlib.contextmanager
def practice_context(slug: str) -> Iterator[None]:
    """Every line logged inside (this thread) names ``slug``."""
    token = _practice.set(slug)
    try:
        yield
    finally:
        _practice.reset(token)


class PracticeFilter(logging.Filter):
    """Puts the current practice's slug on each record as ``%(practice)s``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "practice"):
            record.practice = _practice.get()
        return True


def setup_daemon_logging(state_dir: Path, level: str = "INFO") -> Path:
    """Log to stderr and to a rotating file in ``state_dir``; returns the file's path.

    Replaces the root logger's handlers (the CLI's plain stderr one). APScheduler logs at
    ERROR only, unless ``level`` is DEBUG.
    """
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = state_dir / LOG_FILE
    formatter = logging.Formatter(LOG_FORMAT)
    handlers: list[logging.Handler] = [
        logging.handlers.RotatingFileHandler(
            path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8"
        ),
        logging.StreamHandler(sys.stderr),
    ]
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(PracticeFilter())
        root.addHandler(handler)
    root.setLevel(numeric)
    # ERROR, not WARNING: "skipped: maximum number of running instances reached" comes at every
    # interval while a long cycle runs, which is normal (the next one runs after it).
    logging.getLogger("apscheduler").setLevel(
        logging.DEBUG if numeric <= logging.DEBUG else logging.ERROR
    )
    with contextlib.suppress(OSError):
        path.chmod(0o600)
    return path
