"""The pieces a cycle plugs in: summary tab builders and the drafting engine.

The planner takes them as arguments so its core stays testable without templates or mail.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from sheets_bridge.config import BridgeConfig
from sheets_bridge.cycle import StepHook
from sheets_bridge.model import Referral, Snapshot, TabContent
from sheets_bridge.planner import DraftPlanner, PlanResult, TabBuilder
from sheets_bridge.state import StateStore


def summary_builders(config: BridgeConfig) -> Sequence[TabBuilder]:
    """Dashboard and Referrers, built from the parsed rows."""

    def build(
        referrals: Sequence[Referral], now: datetime, cfg: BridgeConfig, snapshot: Snapshot
    ) -> Sequence[TabContent]:
        return []

    return [build]


def draft_hooks(
    config: BridgeConfig, state: StateStore, *, dry_run: bool, hook: StepHook | None
) -> tuple[DraftPlanner | None, Callable[[PlanResult], list[str]] | None]:
    """No drafting engine yet: plan no drafts."""
    return None, None
