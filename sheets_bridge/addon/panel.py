"""What the bridge knows, gathered for the side panel: through the roles, never around them.

The panel reads exactly what a cycle reads: a view of the state, taken under the state folder's
lock (the one every cycle holds, so the panel never reads half a commit), and a snapshot through
the :class:`SheetBackend` role, and plans from them without applying anything. The plan's referrals
carry the Stage, Follow-up Due and Attention lines the next cycle would write, so a card says
what the sheet says (or is about to). Nothing here is written anywhere; nothing is logged.
"""

from __future__ import annotations

import contextlib
import time
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from sheets_bridge.config import BridgeConfig
from sheets_bridge.dates import format_moment
from sheets_bridge.drafting import draft_planner
from sheets_bridge.email_kinds import KIND_LABELS, PER_REFERRAL_KINDS
from sheets_bridge.errors import StateLockedError
from sheets_bridge.ledger import is_taken
from sheets_bridge.model import Referral
from sheets_bridge.planner import plan_cycle
from sheets_bridge.settings import GoogleSheetConfig
from sheets_bridge.sheets import SheetBackend, open_sheet
from sheets_bridge.state import StateStore
from sheets_bridge.state_view import StateView

#: Stages that put a row in the work queue, most urgent first.
QUEUE_STAGES = ("OVERDUE", "Contact due")
QUEUE_LENGTH = 10

#: When each per-referral kind is drafted (PRODUCT.md's table), for "the next draft" line.
DRAFT_CONDITIONS: dict[str, str] = {
    "referrer_acknowledgement": "a new Provider Referral with a Referrer Email (a Patient "
    "Referral only with Consent to Update Referrer = Yes)",
    "patient_outreach": "a new referral with a Patient Email, not yet contacted",
    "appointment_reminder": "an Appointment within the reminder window and Visit = Scheduled",
    "closing_the_loop": "Visit = Attended and Consent to Update Referrer = Yes",
    "patient_thank_you": "Outcome = Ongoing care or Completed",
}


def served_spreadsheet(config: BridgeConfig) -> str:
    """The Google Sheet this bridge serves ("" when none is configured)."""
    if config.addon.spreadsheet_id:
        return config.addon.spreadsheet_id
    if isinstance(config.sheet, GoogleSheetConfig):
        return config.sheet.spreadsheet_id
    return ""


def short_name(ref: Referral) -> str:
    """First name and last initial: what the sheet's users already see, and no more."""
    first = _visible(ref.first_name)
    last = _visible(ref.last_name)
    initial = f" {last[:1].upper()}." if last else ""
    return f"{first}{initial}".strip() or "(no name)"


def _visible(text: str) -> str:
    """Without invisible format characters (zero-width spaces pasted in with a name)."""
    return " ".join("".join(ch for ch in text if unicodedata.category(ch) != "Cf").split())


def explain_stage(ref: Referral) -> str:
    """The rule that set the Stage, in PRODUCT.md's order (the same order as ``derive_stage``)."""
    stage = ref.stage
    if not stage:
        return "No Stage until Received can be read"
    if stage == "Long-term":
        return "Outcome is Ongoing care"
    if stage == "Closed":
        if ref.outcome == "Completed":
            return "Outcome is Completed"
        return "Outcome is Not a fit" if ref.outcome == "Not a fit" else "Fit is Not a fit"
    if stage == "Lost":
        return "Outcome is Lost"
    if stage == "Seen":
        return "Visit is Attended"
    if stage == "No-show":
        return "Visit is No-show"
    if stage == "Scheduled":
        return "An Appointment is set" if ref.appointment else "Visit is Scheduled"
    if stage == "Contacted":
        if ref.visit == "Cancelled":
            return "Visit is Cancelled: the appointment needs rebooking"
        return "First Contact is filled in"
    if stage == "OVERDUE":
        return "Follow-up Due has passed and there is no First Contact"
    if stage == "Contact due":
        return "Follow-up Due is near (the last quarter of the contact window)"
    return "Received, not yet due for contact"


@dataclass(frozen=True)
class QueueItem:
    referral_id: str
    name: str
    stage: str
    due: str


@dataclass(frozen=True)
class ReferralCard:
    """One referral as the panel shows it: never the Reason, never contact details."""

    referral_id: str
    name: str
    stage: str
    stage_reason: str
    follow_up_due: str
    attention: tuple[str, ...]
    drafts_made: tuple[tuple[str, str], ...]
    """(what, when) of each draft made for this referral, oldest first."""
    next_drafts: tuple[tuple[str, str], ...]
    """(what, on what condition) of each draft not made yet; "due now" when the next sync makes
    it."""
    recent_days: int = 7
    """``drafts.recent_window_days``: older events are never drafted for."""


@dataclass(frozen=True)
class Knowledge:
    """One consistent reading of the sheet and the state, at ``now``."""

    now: datetime
    referrals: tuple[Referral, ...]
    view: StateView
    due_drafts: frozenset[tuple[str, str]]
    """(Referral ID, kind) of the drafts the next cycle would make."""
    last_run: dict[str, object] | None
    last_quiet: str | None
    stop_reason: str = ""
    problems: tuple[str, ...] = ()
    drafts_waiting: int | None = None
    unnumbered: frozenset[str] = frozenset()
    """IDs the next cycle will give to rows that carry none yet: not in the sheet, so a person
    cannot have typed them, and the panel does not show them before the sheet does."""

    def queue(self, config: BridgeConfig, limit: int = QUEUE_LENGTH) -> list[QueueItem]:
        rows = [r for r in self.referrals if r.stage in QUEUE_STAGES and r.referral_id
                and r.referral_id not in self.unnumbered]
        rows.sort(key=lambda r: (QUEUE_STAGES.index(r.stage), r.follow_up_due or self.now))
        return [
            QueueItem(
                r.referral_id, short_name(r), r.stage,
                format_moment(r.follow_up_due, config.tz) if r.follow_up_due else "",
            )
            for r in rows[:limit]
        ]

    def count(self, stage: str) -> int:
        return sum(1 for r in self.referrals if r.stage == stage)

    @property
    def needing_attention(self) -> int:
        return sum(1 for r in self.referrals if r.attention)

    def referral(self, config: BridgeConfig, referral_id: str) -> ReferralCard | None:
        found = [r for r in self.referrals if r.referral_id == referral_id]
        if len(found) != 1 or referral_id in self.unnumbered:
            return None
        ref = found[0]
        records = sorted(
            (r for r in self.view.drafts.values()
             if r.referral_id == referral_id and is_taken(r)),
            key=lambda r: r.created,
        )
        made = tuple(
            (KIND_LABELS.get(r.kind, r.kind), format_moment(r.created, config.tz)
             + ("" if r.status == "confirmed" else " (being confirmed)"))
            for r in records
        )
        done = {r.kind for r in records}
        upcoming = []
        for kind in PER_REFERRAL_KINDS:
            if kind in done or not config.drafts.is_enabled(kind) or kind not in DRAFT_CONDITIONS:
                continue
            if (referral_id, kind) in self.due_drafts:
                upcoming.append((KIND_LABELS[kind], "due now: the next sync drafts it"))
            else:
                upcoming.append((KIND_LABELS[kind], "when " + DRAFT_CONDITIONS[kind]))
        return ReferralCard(
            referral_id=ref.referral_id,
            name=short_name(ref),
            stage=ref.stage or "(none)",
            stage_reason=explain_stage(ref),
            follow_up_due=format_moment(ref.follow_up_due, config.tz) if ref.follow_up_due else "",
            attention=ref.attention,
            drafts_made=made,
            next_drafts=tuple(upcoming),
            recent_days=config.drafts.recent_window_days,
        )


@contextlib.contextmanager
def state_lock(config: BridgeConfig, wait: float = 15.0) -> Iterator[StateStore]:
    """The state under the lock every cycle holds; waits out a cycle in progress."""
    deadline = time.monotonic() + wait
    while True:
        try:
            store = StateStore(config.state_dir)
            store.open()
        except StateLockedError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)
            continue
        try:
            yield store
        finally:
            store.close()
        return


def gather(
    config: BridgeConfig,
    now: datetime,
    *,
    sheet: SheetBackend | None = None,
    count_drafts: bool = True,
) -> Knowledge:
    """Read the state (under the state lock, for a moment) and the sheet, and plan without
    applying.

    The lock is held only while the state is read, so a scheduled sync that starts meanwhile
    waits a moment rather than misses its turn; the sheet is read after, through the backend,
    which reads it whole at one moment as a cycle does."""
    sheet = sheet or open_sheet(config)
    with state_lock(config) as state:
        view = state.view(now, notice_hours=config.sync.notice_hours)
        runs = state.recent_runs(1)
        quiet = state.last_quiet()
    snapshot = sheet.read()
    result = plan_cycle(snapshot, now, config, view, draft_planner=draft_planner(config))
    plan = result.plan
    waiting = None
    if count_drafts:
        from sheets_bridge.mail import open_drafter

        with contextlib.suppress(Exception):  # a count the panel can live without
            waiting = open_drafter(config).count_waiting()
    return Knowledge(
        now=now,
        referrals=result.referrals,
        view=view,
        due_drafts=frozenset((d.referral_id, d.kind) for d in plan.drafts),
        last_run=runs[0] if runs else None,
        last_quiet=quiet,
        stop_reason=plan.stop.reason if plan.stop else "",
        problems=tuple(p.message for p in plan.problems),
        drafts_waiting=waiting,
        unnumbered=frozenset(plan.assigned_ids),
    )


__all__: Sequence[str] = [
    "Knowledge", "QueueItem", "ReferralCard", "explain_stage", "gather", "served_spreadsheet",
    "short_name", "state_lock",
]
