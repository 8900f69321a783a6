"""Wiring for one sync: open the state and the backends, run the cycle, record a failure.

Kept apart from ``cycle`` so the cycle can be driven in tests with in-memory parts, and apart
from ``cli`` so the daemon's jobs call exactly what ``sheets-bridge sync`` calls.

A cycle that fails (the workbook open in Excel, a damaged file, Google down, a full disk) is
recorded in the state as a failed run: ``status`` shows it, the episode's first failure gets a
Bridge Log row at the next write, and the cycle that succeeds after it says "Recovered after N
failed cycles" there. Drafts made before a write that failed stay recorded in the ledger, so the
next write fills their rows' Emails cells (issue 12).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from sheets_bridge.config import BridgeConfig
from sheets_bridge.cycle import CycleInterruptedError, CycleReport, StepHook, StopCheck, run_cycle
from sheets_bridge.drafting import draft_planner
from sheets_bridge.errors import ClockBehindError, StateLockedError, describe_failure
from sheets_bridge.mail import open_drafter
from sheets_bridge.outbox import Outbox
from sheets_bridge.private import refuse_exposed
from sheets_bridge.sheets import SheetBackend, open_sheet
from sheets_bridge.state import Episode, RunRecord, StateStore
from sheets_bridge.summaries import summary_tabs

log = logging.getLogger(__name__)

#: Errors that are not failures of the cycle: nothing was tried (another process has the state,
#: the clock is behind, a stop was asked for), so nothing is recorded as a failed run.
NOT_FAILURES = (StateLockedError, ClockBehindError, CycleInterruptedError)


def run_sync(
    config: BridgeConfig,
    *,
    now: datetime,
    dry_run: bool = False,
    force: bool = False,
    sheet: SheetBackend | None = None,
    hook: StepHook | None = None,
    wait: float = 0.0,
    on_wait: Callable[[str], None] | None = None,
    should_stop: StopCheck | None = None,
    on_failure: Callable[[Episode], None] | None = None,
) -> CycleReport:
    """One cycle against the configured sheet and mail, under the state folder's lock.

    ``wait`` seconds are spent waiting for another bridge process to let go of the state
    folder (a manual ``sync`` while the daemon is mid-cycle); they never run side by side.
    A failure is recorded (``on_failure`` is told the episode) and raised again.
    """
    refuse_exposed(config)  # keys, tokens and the state folder must be private (chmod)
    report = CycleReport()
    with contextlib.ExitStack() as stack:
        state_dir = config.state_dir
        if dry_run and not (state_dir / "state.sqlite").exists():
            # A dry run writes nothing, not even a first state folder: plan against an empty one.
            state_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sb-dry-")))
        state = stack.enter_context(StateStore(state_dir, wait=wait, on_wait=on_wait))
        try:
            sheet = sheet or open_sheet(config, step=hook)
            if not dry_run:
                sheet.prepare()
            outbox = None
            if not dry_run:
                drafter = open_drafter(config)
                drafter.prepare()
                outbox = Outbox(state, drafter, hook=hook)
            return run_cycle(
                config,
                sheet,
                state,
                now=now,
                dry_run=dry_run,
                force=force,
                tab_builders=summary_tabs(),
                draft_planner=draft_planner(config),
                outbox=outbox,
                hook=hook,
                report=report,
                should_stop=should_stop,
            )
        except NOT_FAILURES:
            raise
        except Exception as error:
            if dry_run:
                raise
            episode = _record_failure(state, report, error, now)
            if episode is not None and on_failure is not None:
                on_failure(episode)
            raise


def _record_failure(
    state: StateStore, report: CycleReport, error: BaseException, now: datetime
) -> Episode | None:
    """The failed run in the state, best effort: the state itself may be what failed."""
    drafts = len(report.drafts_made)
    summary = "Failed: the sheet was not written"
    if drafts:
        summary += (
            f"; {drafts} email {'draft' if drafts == 1 else 'drafts'} made (their Emails cells "
            "are filled at the next write)"
        )
    run = RunRecord(
        started=now, rows_read=report.rows_read, drafts=drafts, summary=summary,
        duration=report.duration,
    )
    try:
        return state.record_failure(run, describe_failure(error), now)
    except Exception as second:  # noqa: BLE001 - the first error is the one to report
        log.warning("could not record the failed run in the state: %s", describe_failure(second))
        return None
