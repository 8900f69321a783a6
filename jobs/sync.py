"""The scheduled sync job (``sync:<slug>``): one cycle of the practice's running daemon.

APScheduler refers to jobs by textual reference (``jobs.sync:run``) with the practice's slug as
the argument, so this stays a line: the cycle, its backoff and its reports live in
:mod:`sheets_bridge.daemon`.
"""

from __future__ import annotations

from sheets_bridge.cycle import CycleReport
from sheets_bridge.daemon import running


def run(slug: str) -> CycleReport | None:
    """One cycle for the practice ``slug`` (then the digest, if it is due and not made).

    The report is returned for the scheduler's listeners (the add-on's "Sync now" shows it)."""
    return running(slug).sync()
