"""Wiring for one sync: open the backends and the state, build the hooks, run the cycle.

Kept apart from ``cycle`` so the cycle can be driven in tests with in-memory parts, and apart
from ``cli`` so the scheduled jobs call exactly what ``sheets-bridge sync`` calls.
"""

from __future__ import annotations

import contextlib
import tempfile
from datetime import datetime
from pathlib import Path

from sheets_bridge.config import BridgeConfig
from sheets_bridge.cycle import CycleReport, StepHook, run_cycle
from sheets_bridge.drafting import draft_planner
from sheets_bridge.mail import open_drafter
from sheets_bridge.outbox import Outbox
from sheets_bridge.private import refuse_exposed
from sheets_bridge.sheets import SheetBackend, open_sheet
from sheets_bridge.state import StateStore
from sheets_bridge.summaries import summary_tabs


def run_sync(
    config: BridgeConfig,
    *,
    now: datetime,
    dry_run: bool = False,
    force: bool = False,
    sheet: SheetBackend | None = None,
    hook: StepHook | None = None,
) -> CycleReport:
    """One cycle against the configured sheet and mail, under the state folder's lock."""
    refuse_exposed(config)  # keys, tokens and the state folder must be private (chmod)
    sheet = sheet or open_sheet(config, step=hook)
    with contextlib.ExitStack() as stack:
        state_dir = config.state_dir
        if dry_run and not (state_dir / "state.sqlite").exists():
            # A dry run writes nothing, not even a first state folder: plan against an empty one.
            state_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sb-dry-")))
        state = stack.enter_context(StateStore(state_dir))
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
        )
