"""The scheduled sync job: exactly what ``sheets-bridge sync --config PATH`` does.

APScheduler refers to jobs by textual reference (``jobs.sync:run``), so this stays a few lines.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from pathlib import Path

from sheets_bridge.config import load_config
from sheets_bridge.cycle import CycleReport
from sheets_bridge.errors import BridgeError, StateLockedError
from sheets_bridge.runner import run_sync

log = logging.getLogger(__name__)

LOCK_ATTEMPTS = 5
LOCK_WAIT_SECONDS = 1.0


def run(config_path: str) -> CycleReport | None:
    """One cycle; a failure is logged (no patient data) and the next run is the retry.

    The report is returned for the scheduler's listeners (the add-on's "Sync now" shows it)."""
    config = load_config(Path(config_path))
    try:
        for attempt in range(LOCK_ATTEMPTS):
            try:
                report = run_sync(config, now=datetime.now(config.tz))
                break
            except StateLockedError:
                # The add-on's panel holds the state lock for a moment while it takes a view;
                # wait that out rather than skip a whole interval.
                if attempt == LOCK_ATTEMPTS - 1:
                    raise
                time.sleep(LOCK_WAIT_SECONDS)
    except BridgeError as error:
        log.warning("sync did not run: %s", error)
        return None
    log.info("sync %s: %d cells, %d tabs", report.outcome, report.cells_written,
             len(report.tabs_written))
    return report
