"""The pieces a cycle plugs in: summary tab builders and the drafting engine with its journal.

The planner takes them as arguments so its core stays testable without templates or mail. The
exactly-once protocol for drafts lives here (R1, R2): reconcile pending keys, then for each new
draft journal the key as pending, create the draft (its key travels in the message), confirm.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import date, datetime
from email.message import EmailMessage

from sheets_bridge.config import BridgeConfig
from sheets_bridge.cycle import StepHook
from sheets_bridge.drafting import (
    REFERRER_KINDS,
    DraftHistory,
    TemplateSet,
    plan_drafts,
    referrer_key,
    referrer_of_key,
)
from sheets_bridge.errors import BackendError
from sheets_bridge.mail import Drafter, open_drafter
from sheets_bridge.messages import HeaderInjectionError, InvalidAddressError, build_message
from sheets_bridge.metrics import read_gifts
from sheets_bridge.model import GIFTS_TAB, DraftRequest, Referral, Snapshot, TabContent
from sheets_bridge.planner import DraftPlanner, PlanResult, TabBuilder
from sheets_bridge.state import StateStore
from sheets_bridge.state_view import StateView
from sheets_bridge.summaries import build_dashboard, build_gifts_summary, build_referrers

log = logging.getLogger(__name__)


def summary_builders(config: BridgeConfig) -> Sequence[TabBuilder]:
    """Dashboard and Referrers, built from the parsed rows and the draft ledger."""

    def build(
        referrals: Sequence[Referral],
        now: datetime,
        cfg: BridgeConfig,
        snapshot: Snapshot,
        view: StateView,
    ) -> Sequence[TabContent]:
        gifts_tab = snapshot.tabs.get(GIFTS_TAB)
        gifts = (
            build_gifts_summary(
                read_gifts(
                    gifts_tab,
                    date_order=cfg.practice.date_order or "MDY",
                    date1904=snapshot.date1904,
                ),
                cfg.summaries,
                now.year,
            )
            if gifts_tab is not None
            else None
        )
        return [
            build_dashboard(referrals, now, cfg.summaries, cfg.practice.name, gifts),
            build_referrers(
                referrals, now, cfg.summaries, drafted_by_referrer(view, cfg, referrals)
            ),
        ]

    return [build]


def drafted_by_referrer(
    view: StateView, config: BridgeConfig, referrals: Sequence[Referral] = ()
) -> dict[str, dict[str, date]]:
    """The last acknowledgement and check-in drafted per referrer, for the Referrers tab.

    A draft adopted into a rebuilt state (F20) has no referrer key of its own; its referrer is
    then found from its key (check-ins) or from the row with its Referral ID (acknowledgements).
    """
    by_id = {r.referral_id: r for r in referrals if r.referral_id}
    out: dict[str, dict[str, date]] = {}
    for record in view.drafts.values():
        if record.kind not in ("referrer_acknowledgement", "referrer_checkin"):
            continue
        who = record.referrer_key or referrer_of_key(record.key)
        if not who and record.referral_id in by_id:
            who = referrer_key(by_id[record.referral_id])
        if record.status != "confirmed" or not who:
            continue
        day = record.created.astimezone(config.tz).date()
        kinds = out.setdefault(who, {})
        if record.kind not in kinds or kinds[record.kind] < day:
            kinds[record.kind] = day
    return out


def history_of(view: StateView) -> DraftHistory:
    """The journal as the drafting engine sees it: every key, and when referrers last heard."""
    last: dict[tuple[str, str], datetime] = {}
    for record in view.drafts.values():
        if record.kind in REFERRER_KINDS:
            who = referrer_of_key(record.key) or record.referrer_key
            slot = (who, record.kind)
            if slot not in last or last[slot] < record.created:
                last[slot] = record.created
    return DraftHistory(keys=frozenset(view.drafts), last_sent=last)


def _step(hook: StepHook | None, name: str) -> None:
    if hook is not None:
        hook(name)


def reconcile(state: StateStore, drafter: Drafter, now: datetime) -> None:
    """Before anything is created: settle every pending key, and adopt drafts a lost state forgot.

    A pending key whose draft exists is confirmed; one whose draft does not exist is dropped, so
    the planner may plan it again. After a lost or corrupt state file, every draft the drafter
    still holds is adopted, so nothing is drafted twice (F20).
    """
    for record in state.pending_drafts():
        ref = drafter.find(record.key)
        if ref is not None:
            state.draft_confirmed(record.key, ref, now)
        else:
            state.draft_forget(record.key)
    known = state.draft_keys()
    created_at = getattr(drafter, "created_at", None)
    for key, ref in drafter.list_keys().items():
        if key not in known:
            referral_id, _, rest = key.partition(".")
            kind = rest.split(".", 1)[0]
            # The draft's own time, not now: the Emails column and the referrer rate limits
            # must say when it was made, not when the state was lost.
            made = created_at(key) if created_at is not None else None
            state.draft_adopt(key, referral_id, kind, ref, made if made and made <= now else now)


def draft_hooks(
    config: BridgeConfig,
    state: StateStore,
    *,
    now: datetime,
    dry_run: bool,
    hook: StepHook | None,
) -> tuple[DraftPlanner | None, Callable[[PlanResult], list[str]] | None]:
    """The draft planner for ``plan_cycle`` and the maker that creates drafts exactly once."""
    templates = TemplateSet.from_settings(config.drafts)

    def planner(
        referrals: Sequence[Referral], now: datetime, cfg: BridgeConfig, view: StateView
    ) -> tuple[Sequence[DraftRequest], Sequence[tuple[str, str]]]:
        return plan_drafts(
            referrals,
            now=now,
            practice=cfg.practice,
            settings=cfg.drafts,
            history=history_of(view),
            env=templates,
        )

    if dry_run:
        return planner, None
    drafter = open_drafter(config)
    drafter.prepare()
    reconcile(state, drafter, now)
    domain = config.practice.owner_email.rpartition("@")[2] or "sheets-bridge.invalid"

    def maker(result: PlanResult) -> list[str]:
        """Journal every key (one transaction), create each draft, confirm them (one more).

        Two durable transactions per cycle rather than two per draft: a first sync can make
        hundreds of drafts. A crash anywhere leaves keys pending, which the next start settles
        by looking each one up before anything is created again.
        """
        by_id = {r.referral_id: r for r in result.referrals}
        ready: list[tuple[DraftRequest, EmailMessage, str]] = []
        for draft in result.plan.drafts:
            try:
                message = build_message(
                    draft,
                    from_addr=config.practice.owner_email,
                    from_name=config.practice.name,
                    now=now,
                    domain=domain,
                )
            except (HeaderInjectionError, InvalidAddressError) as error:
                log.warning("no %s draft for %s: %s", draft.kind, draft.referral_id, error)
                continue
            referral = by_id.get(draft.referral_id)
            who = referrer_of_key(draft.key) or (referrer_key(referral) if referral else "")
            ready.append((draft, message, who))
        if not ready:
            return []
        state.drafts_pending(((d.key, d.referral_id, d.kind, who) for d, _, who in ready), now)
        _step(hook, "draft-pending")
        made: list[tuple[str, str]] = []
        try:
            for draft, message, _ in ready:
                try:
                    ref = drafter.create(draft.key, message)
                except BackendError as error:
                    log.warning("draft %s not created (%s); it stays pending", draft.key, error)
                    continue
                made.append((draft.key, ref))
                _step(hook, "draft-created")
        finally:
            state.drafts_confirmed(made, now)
        _step(hook, "draft-confirmed")
        return [key for key, _ in made]

    return planner, maker
