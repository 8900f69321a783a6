"""The one place the bridge reads the wall clock, and how ``--now`` pins it.

Everything below the CLI and the scheduled jobs takes ``now`` as an argument (STYLE.md: time is
an argument), so a test, a demo or a reproducible README sample passes it in.
"""

from __future__ import annotations

from datetime import datetime, tzinfo

from sheets_bridge.errors import UsageError

__all__ = ["parse_now"]


def parse_now(override: str | None, tz: tzinfo) -> datetime:
    """The current time in the practice's zone, or ``override`` (ISO 8601; the practice's zone
    when it gives none) for demos and reproducible output."""
    if not override:
        return datetime.now(tz)
    try:
        moment = datetime.fromisoformat(override.strip())
    except ValueError:
        raise UsageError(
            f"--now {override!r} is not a date and time: write it like 2026-11-27T10:00"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.astimezone(tz)
