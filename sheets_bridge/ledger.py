"""The drafts ledger as the pure code reads it: what was drafted, for whom, and when.

The ledger itself lives in the state file and is written only by :mod:`sheets_bridge.outbox`;
this module turns the :class:`~sheets_bridge.state_view.StateView`'s records into what drafting
(:class:`DraftHistory`: keys taken, when each referrer last heard), the Emails column and the
Referrers tab and digest (last acknowledgement and check-in per referrer) need. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo

from sheets_bridge.dates import format_moment
from sheets_bridge.draft_keys import DraftKey
from sheets_bridge.email_kinds import KIND_LABELS, RECIPIENTS, REFERRER_KINDS
from sheets_bridge.identity import referrer_key
from sheets_bridge.model import MAX_CELL_CHARS, Referral
from sheets_bridge.state_view import DraftRecord, StateView

__all__ = ["DraftHistory", "PatientDraft", "drafted_by_referrer", "emails_column", "history_of", "is_taken"]


@dataclass(frozen=True)
class PatientDraft:
    """A per-referral draft as far as "never twice for one patient" needs it."""

    facets: frozenset[str]
    referrer: str
    """The referrer key for a draft to a referrer (the same patient may be thanked to two
    referrers), ``""`` for a draft to the patient."""
    created: datetime
    referral_id: str


@dataclass(frozen=True)
class DraftHistory:
    """What was drafted before, from the journal: drafting never repeats itself.

    ``keys`` holds every key journalled and not given up on (pending, unknown or confirmed): a
    pending key may already be a draft (crash before confirm), so it must never be planned
    again. ``last_sent`` maps ``(referrer_key, kind)`` to when the last draft of that kind went
    to that referrer, for the rate limits of the recurring referrer kinds.
    """

    keys: frozenset[str] = frozenset()
    last_sent: Mapping[tuple[str, str], datetime] = field(default_factory=dict)
    patients: Mapping[str, tuple[PatientDraft, ...]] = field(default_factory=dict)
    """Kind -> the per-referral drafts of that kind, with the facets of their patients."""


def is_taken(record: DraftRecord) -> bool:
    """A key that must not be planned again: all but one the outbox has given up looking for."""
    return record.status != "forgotten"


def _referrer_of(record: DraftRecord) -> str:
    parsed = DraftKey.parse(record.key)
    return (parsed.referrer if parsed else "") or record.referrer_key


def history_of(view: StateView) -> DraftHistory:
    """The journal as the drafting engine sees it: every key taken, when referrers last heard."""
    last: dict[tuple[str, str], datetime] = {}
    for record in view.drafts.values():
        if record.kind in REFERRER_KINDS and is_taken(record):
            slot = (_referrer_of(record), record.kind)
            if slot not in last or last[slot] < record.created:
                last[slot] = record.created
    keys = frozenset(key for key, record in view.drafts.items() if is_taken(record))
    patients: dict[str, list[PatientDraft]] = {}
    for record in view.drafts.values():
        if record.facets and is_taken(record):
            referrer = record.referrer_key if RECIPIENTS.get(record.kind) == "referrer" else ""
            patients.setdefault(record.kind, []).append(
                PatientDraft(frozenset(record.facets), referrer, record.created, record.referral_id)
            )
    return DraftHistory(
        keys=keys, last_sent=last, patients={k: tuple(v) for k, v in patients.items()}
    )


def drafted_by_referrer(
    view: StateView, tz: tzinfo, referrals: Sequence[Referral] = ()
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
        who = _referrer_of(record)
        if not who and record.referral_id in by_id:
            who = referrer_key(by_id[record.referral_id])
        if record.status != "confirmed" or not who:
            continue
        day = record.created.astimezone(tz).date()
        kinds = out.setdefault(who, {})
        if record.kind not in kinds or kinds[record.kind] < day:
            kinds[record.kind] = day
    return out


def emails_column(view: StateView, tz: tzinfo) -> dict[str, str]:
    """The Emails column from the ledger: what was drafted and when, newest last, per ID.

    B17: a cell stays under Excel's limit by dropping the oldest lines first.
    """
    lines: dict[str, list[tuple[datetime, str]]] = {}
    for record in view.drafts.values():
        if record.status != "confirmed" or not record.referral_id.startswith("R-"):
            continue
        label = KIND_LABELS.get(record.kind, record.kind.replace("_", " "))
        lines.setdefault(record.referral_id, []).append((record.created, label))
    out = {}
    for rid, items in lines.items():
        items.sort()
        rendered = [f"{format_moment(at, tz)} {label} drafted" for at, label in items]
        text = "\n".join(rendered)
        while len(text) >= MAX_CELL_CHARS and len(rendered) > 1:
            rendered.pop(0)
            text = "\n".join(rendered)
        out[rid] = text
    return out
