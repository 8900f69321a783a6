"""The scheduled digest job: make this ISO week's digest once its weekday and hour have come.

APScheduler refers to jobs by textual reference (``jobs.digest:run``); run it every few minutes
or at start: ``maybe_digest`` makes the digest at most once a week, so a digest missed while the
bridge was down still goes out, once, at the next run.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

from sheets_bridge.config import load_config
from sheets_bridge.digest_run import maybe_digest
from sheets_bridge.errors import BridgeError

log = logging.getLogger(__name__)


def run(config_path: str) -> None:
    """One check; a failure is logged (no patient data) and the next run is the retry."""
    config = load_config(Path(config_path))
    try:
        made = maybe_digest(config, datetime.now(config.tz))
    except BridgeError as error:
        log.warning("digest not made: %s", error)
        return
    if made:
        log.info("%s", made)
