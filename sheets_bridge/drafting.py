"""Which email drafts are due, rendered from templates: pure, no clock, no disk, no network.

The bridge drafts; a person sends (PRODUCT.md, "Emails the bridge drafts"). This module decides,
for one cycle, which drafts should exist and what they say. It never creates one: the apply step
journals each :class:`~sheets_bridge.model.DraftRequest` by its key before handing it to a
drafter, so a crash or retry can never draft twice (RELIABILITY.md R1, R2).

Rules that shape everything here:

* **Minimum necessary.** A template sees plain dicts holding only the fields its kind may use
  (:data:`CONTEXT_FIELDS`), never the :class:`~sheets_bridge.model.Referral`. The Reason is never
  in any context unless ``drafts.allow_fields`` names it for that kind on purpose, and
  :meth:`TemplateSet.check` fails a template that reaches for a field it may not have, so the
  practice learns at config time, not from a draft in a referrer's inbox.
* **Cell text is data.** Values are passed to templates as strings; nothing typed in a cell is
  ever compiled as a template, so ``{{ 7*7 }}`` in a name shows literally (B20).
* **Header safety before anything.** A name or address with a line break, NUL or bidi control
  makes no draft for the row, and the row's Attention names the column (B16).
* **No flood.** Only events in the recent window make drafts, so adopting the bridge on a sheet
  with years of history drafts nothing for the history.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from email.headerregistry import Address
from typing import TYPE_CHECKING

from sheets_bridge.draft_keys import DraftKey, quarter_of
from sheets_bridge.email_context import PracticeInfo, build_context, clip
from sheets_bridge.email_kinds import KIND_LABELS, PER_REFERRAL_KINDS, RECIPIENTS, REFERRER_KINDS
from sheets_bridge.email_templates import TemplateSet
from sheets_bridge.identity import referrer_key, strong
from sheets_bridge.ledger import DraftHistory, PatientDraft, history_of
from sheets_bridge.model import DraftRequest, Referral
from sheets_bridge.phase_memo import PhaseMemo, earliest_crossing, next_midnight
from sheets_bridge.settings import DraftsSettings
from sheets_bridge.state_view import StateView

if TYPE_CHECKING:
    from sheets_bridge.config import BridgeConfig
    from sheets_bridge.planner import DraftPlanner
from sheets_bridge.values import has_control_chars, parse_email

__all__ = ["draft_planner", "drafts_next_change", "plan_drafts"]

#: At most one feedback request per referrer in this many days, across quarter boundaries too.
FEEDBACK_MIN_GAP = timedelta(days=90)




_REFERRED = ("Provider Referral", "Patient Referral")
_TAGGED = (*_REFERRED, "Self-Referral")
_NOT_CONTACTED_STAGES = frozenset({"New", "Contact due", "OVERDUE"})


def _in_window(moment: datetime | None, now: datetime, settings: DraftsSettings) -> bool:
    """True when ``moment`` happened within the recent window ending now."""
    if moment is None:
        return False
    return now - timedelta(days=settings.recent_window_days) <= moment <= now


def _event_time(kind: str, referral: Referral) -> datetime | None:
    """When the event a per-referral kind answers happened, for the recent window.

    Acknowledgement and outreach answer the referral coming in (Received). Closing the loop and
    the thank-you answer the visit, and the sheet has no date for when Visit or Outcome was
    typed, so the Appointment stands in (Received when there is none). A thank-you whose
    Outcome is typed weeks after the Appointment is therefore not drafted: staff can still
    write one; flooding a sheet's history is the worse failure.
    """
    if kind in ("referrer_acknowledgement", "patient_outreach"):
        return referral.received
    if kind in ("closing_the_loop", "patient_thank_you"):
        return referral.appointment or referral.received
    return None


def _fires(kind: str, r: Referral, now: datetime, settings: DraftsSettings) -> bool:
    """Whether a per-referral kind's trigger (PRODUCT.md's table) holds for ``r`` now."""
    if kind == "referrer_acknowledgement":
        wanted = r.source_tag == "Provider Referral" or (
            r.source_tag == "Patient Referral" and r.consent
        )
        return wanted and _in_window(r.received, now, settings)
    if kind == "patient_outreach":
        return (
            r.first_contact is None
            and r.stage in _NOT_CONTACTED_STAGES
            and _in_window(r.received, now, settings)
        )
    if kind == "appointment_reminder":
        return (
            r.visit == "Scheduled"
            and r.appointment is not None
            and now < r.appointment <= now + timedelta(hours=settings.reminder_hours)
        )
    if kind == "closing_the_loop":
        permitted = r.consent or (
            settings.referrer_updates_without_consent and r.source_tag == "Provider Referral"
        )
        return (
            r.visit == "Attended"
            and r.source_tag in _REFERRED
            and permitted
            and _in_window(_event_time(kind, r), now, settings)
        )
    if kind == "patient_thank_you":
        return r.outcome in ("Ongoing care", "Completed") and _in_window(
            _event_time(kind, r), now, settings
        )
    raise ValueError(f"not a per-referral kind: {kind}")


def _column_flagged(referral: Referral, column: str) -> bool:
    """True when the rules already put a line about ``column`` in the row's Attention."""
    return any(line.startswith(column) for line in referral.attention)


def _header_fields(kind: str, r: Referral) -> dict[str, str]:
    """The cell values a kind's draft puts in its headers or context, by column (B16)."""
    if kind in REFERRER_KINDS:
        return {"Referred By": r.referred_by, "Referrer Practice": r.referrer_practice}
    patient = {"Patient First Name": r.first_name, "Patient Last Name": r.last_name}
    if RECIPIENTS[kind] == "referrer":
        return {"Referred By": r.referred_by, "Referrer Practice": r.referrer_practice, **patient}
    return patient


@dataclass(frozen=True)
class _Made:
    facets: tuple[str, ...]
    referrer: str
    referral_id: str


@dataclass
class _Planner:
    """One cycle's drafting: the inputs, and the drafts and problems found so far."""

    now: datetime
    practice: PracticeInfo
    settings: DraftsSettings
    history: DraftHistory
    templates: TemplateSet
    drafts: dict[str, DraftRequest] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)
    gaps: dict[tuple[str, str, bool], list[str]] = field(default_factory=dict)
    made_for: dict[str, list[_Made]] = field(default_factory=dict)

    def taken(self, key: str) -> bool:
        return key in self.history.keys or key in self.drafts

    def drafted_for_patient(self, kind: str, r: Referral) -> str | None:
        """The Referral ID under which this patient already got a ``kind`` draft lately, if any.

        The exactly-once key names the Referral ID a draft was filed under; a patient is
        recognised by their facets too, so re-tied IDs, a copied or re-entered row, or a row
        whose ID never reached the sheet cannot draft the same email again (issue: nothing
        twice).
        """
        if not r.facets or self.settings.same_patient_days <= 0:
            return None
        mine = strong(r.facets)
        since = self.now - timedelta(days=self.settings.same_patient_days)
        referrer = referrer_key(r) if RECIPIENTS[kind] == "referrer" else ""
        earlier = [
            *self.history.patients.get(kind, ()),
            *(
                PatientDraft(frozenset(d.facets), d.referrer, self.now, d.referral_id)
                for d in self.made_for.get(kind, ())
            ),
        ]
        for draft in earlier:
            if (
                draft.referral_id != r.referral_id
                and draft.created >= since
                and draft.referrer == referrer
                and mine & draft.facets
            ):
                return draft.referral_id
        return None

    def problem(self, referral_id: str, line: str) -> None:
        if (referral_id, line) not in self.problems:
            self.problems.append((referral_id, line))

    def attempt(self, kind: str, r: Referral, key: str, *, report_gaps: bool = True) -> bool:
        """Render and record one draft; False (with problems noted) when it cannot be made."""
        hazards = [
            col for col, value in _header_fields(kind, r).items() if has_control_chars(value)
        ]
        for column in hazards:
            self.problem(
                r.referral_id,
                f"{column} contains a line break or hidden control character: "
                f"no {KIND_LABELS[kind]} was drafted; retype it",
            )
        recipient = RECIPIENTS[kind]
        column = "Referrer Email" if recipient == "referrer" else "Patient Email"
        address = r.referrer_email if recipient == "referrer" else r.email
        if address is not None and parse_email(address, column=column).value != address.strip():
            address = None
        if address is None:
            if report_gaps:
                flagged = _column_flagged(r, column)
                self.gaps.setdefault((r.referral_id, column, flagged), []).append(KIND_LABELS[kind])
            return False
        if hazards:
            return False
        name = r.referred_by if recipient == "referrer" else f"{r.first_name} {r.last_name}"
        try:
            to = str(Address(display_name=clip(" ".join(name.split())), addr_spec=address.strip()))
        except (ValueError, IndexError):
            self.problem(r.referral_id, f"{column} cannot be used in an email: check it")
            return False
        context = build_context(kind, r, self.practice, self.settings)
        try:
            subject = " ".join(self.templates.render(kind, "subject", context).split())
            text = self.templates.render(kind, "text", context).strip() + "\n"
            html = self.templates.render(kind, "html", context).strip() + "\n"
        except Exception:  # noqa: BLE001 - TemplateError, or the sandbox's OverflowError
            self.problem(
                r.referral_id,
                f"The {KIND_LABELS[kind]} template has an error, so none was drafted: "
                "run sheets-bridge check",
            )
            return False
        self.drafts[key] = DraftRequest(
            key=key,
            referral_id=r.referral_id,
            kind=kind,
            to=to,
            subject=subject,
            text=text,
            html=html,
            facets=r.facets if kind in PER_REFERRAL_KINDS else (),
        )
        if kind in PER_REFERRAL_KINDS:
            referrer = referrer_key(r) if RECIPIENTS[kind] == "referrer" else ""
            self.made_for.setdefault(kind, []).append(_Made(r.facets, referrer, r.referral_id))
        return True

    def report_gaps(self) -> None:
        for (referral_id, column, flagged), labels in self.gaps.items():
            what = " or ".join(labels)
            if flagged:
                line = f"No {what} was drafted: {column} cannot be used until it is fixed"
            else:
                line = f"{column} is empty: add it to draft the {what}"
            self.problem(referral_id, line)


def _usable(r: Referral) -> bool:
    """A row drafting may act on: it has an ID, a readable Received (so a Stage) and a tag."""
    return (
        bool(r.referral_id) and bool(r.stage) and r.received is not None and r.source_tag in _TAGGED
    )


def plan_drafts(
    referrals: Sequence[Referral],
    *,
    now: datetime,
    practice: PracticeInfo,
    settings: DraftsSettings,
    history: DraftHistory,
    env: TemplateSet,
) -> tuple[list[DraftRequest], list[tuple[str, str]]]:
    """The drafts due now, and ``(Referral ID, Attention line)`` problems that stopped some.

    Deterministic and independent of row order (staff sort the sheet at will): drafts come out
    sorted by key. Nothing in ``history.keys`` is planned again, and no key appears twice.
    """
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    planner = _Planner(now, practice, settings, history, env)
    usable = sorted((r for r in referrals if _usable(r)), key=lambda r: r.referral_id)
    # The kinds switched on, in their order, asked once rather than per row and kind.
    enabled = [kind for kind in PER_REFERRAL_KINDS if settings.is_enabled(kind)]
    for r in usable:
        for kind in enabled:
            if not _fires(kind, r, now, settings):
                continue
            key = str(DraftKey.of(r.referral_id, kind))
            if planner.taken(key):
                continue
            before = planner.drafted_for_patient(kind, r)
            if before is not None:
                planner.problem(
                    r.referral_id,
                    f"The {KIND_LABELS[kind]} was already drafted for this patient (under "
                    f"{before}), so it was not drafted again",
                )
                continue
            planner.attempt(kind, r, key)
    _plan_referrer_kinds(planner, referrals)
    planner.report_gaps()
    drafts = [planner.drafts[key] for key in sorted(planner.drafts)]
    problems = sorted(planner.problems)
    return drafts, problems


def _plan_referrer_kinds(planner: _Planner, referrals: Sequence[Referral]) -> None:
    """Feedback requests and check-ins: per provider referrer, rate-limited by period.

    Only Provider Referrals count: a patient who told a friend is not asked how referring went,
    nor checked in on. A referrer with any row whose Received cannot be read gets no check-in,
    since that row might be a recent referral.
    """
    settings, tz = planner.settings, planner.practice.tz
    by_referrer: dict[str, list[Referral]] = defaultdict(list)
    for r in referrals:
        if r.source_tag == "Provider Referral" and r.referral_id:
            rk = referrer_key(r)
            if rk:
                by_referrer[rk].append(r)
    for rk in sorted(by_referrer):
        rows = by_referrer[rk]
        dated = sorted((r for r in rows if _usable(r)), key=lambda r: (r.received, r.referral_id))
        if settings.is_enabled("referrer_feedback"):
            _plan_feedback(planner, rk, dated)
        if settings.is_enabled("referrer_checkin") and dated and len(dated) == len(rows):
            _plan_checkin(planner, rk, dated, tz)


def _plan_feedback(planner: _Planner, rk: str, rows: list[Referral]) -> None:
    settings, now, history = planner.settings, planner.now, planner.history
    kind = "referrer_feedback"
    last = history.last_sent.get((rk, kind))
    if last is not None and now - last < FEEDBACK_MIN_GAP:
        return
    after = timedelta(days=settings.feedback_after_days)
    due = [
        r for r in rows if r.received is not None and _in_window(r.received + after, now, settings)
    ]
    keys = [
        str(DraftKey.of(rk, kind, quarter_of(r.received + after, planner.practice.tz)))
        for r in due
        if r.received
    ]
    if any(planner.taken(key) for key in keys):
        return  # one this quarter already (or in this plan): at most once a quarter
    for r, key in zip(due, keys, strict=True):
        if r.referrer_email is not None:
            planner.attempt(kind, r, key, report_gaps=False)
            return


def _plan_checkin(planner: _Planner, rk: str, rows: list[Referral], tz: tzinfo) -> None:
    settings, now, history = planner.settings, planner.now, planner.history
    kind = "referrer_checkin"
    latest = rows[-1]
    assert latest.received is not None  # rows are usable, so dated
    elapsed = latest.received + timedelta(days=settings.checkin_quiet_days)
    if not _in_window(elapsed, now, settings):
        return
    last = history.last_sent.get((rk, kind))
    if last is not None and last >= latest.received:
        return  # already checked in during this quiet period
    key = str(DraftKey.of(rk, kind, quarter_of(elapsed, tz)))
    if planner.taken(key):
        return
    with_address = [r for r in rows if r.referrer_email is not None]
    if with_address:
        planner.attempt(kind, with_address[-1], key, report_gaps=False)


def drafts_next_change(
    referrals: Sequence[Referral], now: datetime, settings: DraftsSettings, history: DraftHistory,
) -> float:
    """The first instant (a timestamp) after which the clock alone could change
    :func:`plan_drafts` for these rows and this ledger, mirroring each of its time tests:

    - :func:`_in_window` (``now - window <= moment <= now``) over Received (acknowledgement,
      outreach), the Appointment or Received (closing the loop, thank-you), Received plus
      ``feedback_after_days`` (:func:`_plan_feedback`) and plus ``checkin_quiet_days``
      (:func:`_plan_checkin`): each such moment, and the moment plus the window;
    - the reminder (``now < appointment <= now + reminder_hours``): the appointment less those
      hours, and the appointment;
    - the feedback gap (``now - last < FEEDBACK_MIN_GAP``) and the same patient
      (:meth:`_Planner.drafted_for_patient`, ``created >= now - same_patient_days``): a ledger
      entry plus either span;
    - and, defensively, the next local midnight (nothing here reads today's date now).

    Draft keys' quarters are those of the moments, not of ``now``; a draft made in this plan
    counts as made ``now``, which the clock does not move past ``now - same_patient_days``.
    """
    window = timedelta(days=settings.recent_window_days)
    after = timedelta(days=settings.feedback_after_days)
    quiet = timedelta(days=settings.checkin_quiet_days)
    zero = timedelta(0)
    received = earliest_crossing(
        (r.received for r in referrals), (zero, window, after, after + window, quiet,
                                          quiet + window), now,
    )
    appointment = earliest_crossing(
        (r.appointment for r in referrals),
        (zero, window, -timedelta(hours=settings.reminder_hours)), now,
    )
    ledger = earliest_crossing(
        [
            *history.last_sent.values(),
            *(draft.created for drafts in history.patients.values() for draft in drafts),
        ],
        (FEEDBACK_MIN_GAP, timedelta(days=settings.same_patient_days)), now,
    )
    return min(received, appointment, ledger, next_midnight(now, now.tzinfo or UTC))


#: The latest drafting answer, reused across cycles while its rows are the same objects, the
#: ledger, settings and templates are equal and the clock is short of its horizon (PhaseMemo).
_DRAFTS_MEMO = PhaseMemo()


def draft_planner(config: BridgeConfig) -> DraftPlanner:
    """The drafting engine as the planner calls it, with the practice's templates loaded once.

    Its answer is reused (when the plan is incremental) while the rows are the very same
    Referral objects, the ledger's records, the practice and drafts settings and the templates'
    text are equal, and ``now`` is short of :func:`drafts_next_change` or is the very instant
    it was made at.
    """
    templates = TemplateSet.from_settings(config.drafts)

    def planner(
        referrals: Sequence[Referral], now: datetime, cfg: BridgeConfig, view: StateView
    ) -> tuple[Sequence[DraftRequest], Sequence[tuple[str, str]]]:
        history = history_of(view)

        def made() -> tuple[list[DraftRequest], list[tuple[str, str]]]:
            return plan_drafts(
                referrals,
                now=now,
                practice=cfg.practice,
                settings=cfg.drafts,
                history=history,
                env=templates,
            )

        drafts, problems = _DRAFTS_MEMO.reuse(
            "drafts", referrals, (cfg.practice, cfg.drafts, history, templates.sources), now,
            made, lambda _made: drafts_next_change(referrals, now, cfg.drafts, history),
        )
        return list(drafts), list(problems)

    return planner
