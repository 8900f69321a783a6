"""Pure row derivations: what a row says, its Source Tag, Stage, Follow-up Due and Attention lines.

Everything here is a function of the row's cells, the practice's settings and ``now``; nothing reads
a clock, a file or the network, so every rule is tested table-driven.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sheets_bridge.choices import (
    DEFAULT_HOW_HEARD_KEYWORDS,
    classify_how_heard,
    parse_choice,
    source_tag_for,
)
from sheets_bridge.columns import ColumnMap
from sheets_bridge.config import BridgeConfig
from sheets_bridge.dates import When, parse_when
from sheets_bridge.model import CHANNELS, CellValue, Referral, SheetRow
from sheets_bridge.settings import WEEKDAYS
from sheets_bridge.values import comparison_key, is_blank, parse_email, parse_phone, parse_text

_UTC = ZoneInfo("UTC")

#: The channel a manager's Source Tag override implies, for "by channel" counts.
TAG_CHANNEL = {"Provider Referral": "Provider", "Patient Referral": "Patient", "Self-Referral": "Other"}


@dataclass(frozen=True)
class RuleContext:
    """The practice settings the rules need, resolved once per cycle."""

    now: datetime
    tz: ZoneInfo
    date_order: str | None
    phone_region: str
    window: timedelta
    open_days: frozenset[int]
    opens: time
    closes: time
    holidays: frozenset[date]
    keywords: Mapping[str, Sequence[str]]
    tag_overrides: Mapping[str, str] = field(default_factory=dict)
    date1904: bool = False

    @classmethod
    def from_config(
        cls,
        config: BridgeConfig,
        now: datetime,
        *,
        tag_overrides: Mapping[str, str] | None = None,
        date1904: bool = False,
    ) -> RuleContext:
        hours = config.practice.business_hours
        keywords = dict(DEFAULT_HOW_HEARD_KEYWORDS)
        keywords.update(config.sources.keywords)
        return cls(
            now=now.astimezone(config.tz),
            tz=config.tz,
            date_order=config.practice.date_order,
            phone_region=config.practice.phone_region,
            window=timedelta(hours=config.sync.contact_window_hours),
            open_days=frozenset(WEEKDAYS.index(day) for day in hours.open_days),
            opens=hours.start,
            closes=hours.end,
            holidays=frozenset(config.practice.holidays),
            keywords=keywords,
            tag_overrides=dict(tag_overrides or {}),
            date1904=date1904,
        )


def is_open_day(day: date, ctx: RuleContext) -> bool:
    return day.weekday() in ctx.open_days and day not in ctx.holidays


def next_opening(moment: datetime, ctx: RuleContext) -> datetime:
    """``moment`` if the practice is open then, else when it next opens (practice time zone)."""
    local = moment.astimezone(ctx.tz)
    day = local.date()
    for _ in range(800):
        if is_open_day(day, ctx):
            opens = datetime.combine(day, ctx.opens, tzinfo=ctx.tz)
            closes = datetime.combine(day, ctx.closes, tzinfo=ctx.tz)
            if local < opens:
                return opens
            if local < closes:
                return local
        day += timedelta(days=1)
        local = datetime.combine(day, time(0), tzinfo=ctx.tz)
    return local  # no opening in two years: the config is odd, keep the plain due time


def follow_up_due(received: datetime, ctx: RuleContext) -> datetime:
    """Received plus the contact window (elapsed time), moved to the next opening if closed then."""
    due_utc = received.astimezone(_UTC) + ctx.window
    return next_opening(due_utc, ctx)


def derive_stage(
    *,
    received: datetime | None,
    due: datetime | None,
    fit: str | None,
    first_contact: datetime | None,
    appointment: datetime | None,
    visit: str | None,
    outcome: str | None,
    ctx: RuleContext,
) -> str:
    """The first Stage of PRODUCT.md's list that holds; empty while Received cannot be read."""
    if received is None:
        return ""
    if outcome == "Ongoing care":
        return "Long-term"
    if outcome in ("Completed", "Not a fit") or fit == "Not a fit":
        return "Closed"
    if outcome == "Lost":
        return "Lost"
    if visit == "Attended":
        return "Seen"
    if visit == "No-show":
        return "No-show"
    if visit == "Cancelled":
        # The appointment did not happen: it needs rebooking, even while the Appointment cell
        # still holds its date. Staff record a rebooking by setting Visit back to Scheduled
        # (or clearing it) beside the new Appointment.
        return "Contacted"
    if appointment is not None or visit == "Scheduled":
        return "Scheduled"
    if first_contact is not None:
        return "Contacted"
    if due is not None:
        # In UTC: two datetimes sharing a tzinfo compare (and subtract) as wall times, which is
        # wrong in the hour a DST change repeats or skips (F23: the SLA is elapsed time).
        now_utc, due_utc = ctx.now.astimezone(_UTC), due.astimezone(_UTC)
        if now_utc >= due_utc:
            return "OVERDUE"
        if now_utc >= due_utc - ctx.window / 4:
            return "Contact due"
    return "New"


def is_empty_row(row: SheetRow, cols: ColumnMap) -> bool:
    """B1: a row with nothing but blanks (spaces, NBSP, zero-width) or only Notes is empty."""
    notes = cols.staff.get("Notes")
    bridge = set(cols.bridge.values())
    for col, value in enumerate(row.values):
        if col == notes or col in bridge:
            continue
        if not is_blank(value):
            return False
    return True


@dataclass
class _Reader:
    row: SheetRow
    cols: ColumnMap
    attention: list[str]

    def cell(self, name: str) -> CellValue:
        col = self.cols.staff.get(name)
        values = self.row.values
        return values[col] if col is not None and col < len(values) else None

    def note(self, problem: str | None) -> None:
        if problem:
            self.attention.append(problem)

    def when(self, name: str, ctx: RuleContext, *, allow_future: bool = False) -> When | None:
        """Read a date column in the practice's zone and order; its problem goes to Attention."""
        parsed = parse_when(
            self.cell(name),
            column=name,
            tz=ctx.tz,
            date_order=ctx.date_order,  # type: ignore[arg-type]
            now=ctx.now,
            date1904=ctx.date1904,
            allow_future=allow_future,
        )
        self.note(parsed.problem)
        return parsed.value


def read_referral(
    row: SheetRow,
    cols: ColumnMap,
    ctx: RuleContext,
    *,
    referral_id: str = "",
    leading: Sequence[str] = (),
    emails: str = "",
    uncalculated: frozenset[str] = frozenset(),
    facets: tuple[str, ...] = (),
) -> Referral:
    """Parse one row and derive its bridge values; problems become Attention lines.

    ``leading`` lines (about the row as a whole, such as merged cells) come first in Attention.
    ``uncalculated`` names staff columns whose cell is a formula with no saved result (a file
    written by a program, never opened in Excel): said so, instead of "is empty".
    """
    attention: list[str] = list(leading)
    for name in sorted(uncalculated):
        attention.append(
            f"{name} is a formula the workbook has not calculated yet: open the workbook in "
            "Excel or LibreOffice and save it, or type the value"
        )
    r = _Reader(row, cols, attention)
    has = cols.staff.__contains__

    received = None
    received_has_time = False
    if has("Received"):
        raw = r.cell("Received")
        if is_blank(raw):
            if "Received" not in uncalculated:
                attention.append("Received is empty: add the date the referral came in")
        else:
            read = r.when("Received", ctx)
            if read is not None:
                received, received_has_time = read.at, read.has_time

    first_name = ""
    if has("Patient First Name"):
        parsed_name = parse_text(r.cell("Patient First Name"), column="Patient First Name")
        r.note(parsed_name.problem)
        if (
            parsed_name.value is None
            and parsed_name.problem is None
            and "Patient First Name" not in uncalculated
        ):
            attention.append("Patient First Name is empty: add the patient's first name")
        first_name = parsed_name.value or ""
    last = parse_text(r.cell("Patient Last Name"), column="Patient Last Name")
    r.note(last.problem)

    phone = parse_phone(r.cell("Patient Phone"), column="Patient Phone", region=ctx.phone_region)
    r.note(phone.problem)
    email = parse_email(r.cell("Patient Email"), column="Patient Email")
    r.note(email.problem)

    how_heard_raw = r.cell("How Heard")
    how_heard = "" if is_blank(how_heard_raw) else str(how_heard_raw).strip()
    channel: str | None = None
    override = ctx.tag_overrides.get(comparison_key(how_heard)) if how_heard else None
    if override:
        source_tag = override
        channel = TAG_CHANNEL.get(override)
    elif has("How Heard"):
        heard = classify_how_heard(how_heard_raw, ctx.keywords)
        r.note(heard.problem)
        channel = heard.value
        source_tag = source_tag_for(channel)
    else:
        source_tag = "Unknown"

    referred_by = parse_text(r.cell("Referred By"), column="Referred By", number_ok=True)
    r.note(referred_by.problem)
    if (
        source_tag in ("Provider Referral", "Patient Referral")
        and has("Referred By")
        and referred_by.value is None
        and referred_by.problem is None
    ):
        who = "referring provider" if source_tag == "Provider Referral" else "referring patient"
        attention.append(f"Referred By is empty: add the {who}'s name")
    referrer_email = parse_email(r.cell("Referrer Email"), column="Referrer Email")
    r.note(referrer_email.problem)
    practice = parse_text(r.cell("Referrer Practice"), column="Referrer Practice", number_ok=True)
    r.note(practice.problem)
    reason = parse_text(r.cell("Reason"), column="Reason", number_ok=True)

    fit = parse_choice(r.cell("Fit"), column="Fit", kind="fit") if has("Fit") else None
    visit = parse_choice(r.cell("Visit"), column="Visit", kind="visit") if has("Visit") else None
    outcome = (
        parse_choice(r.cell("Outcome"), column="Outcome", kind="outcome") if has("Outcome") else None
    )
    consent = parse_choice(
        r.cell("Consent to Update Referrer"), column="Consent to Update Referrer", kind="consent"
    )
    for choice in (fit, visit, outcome, consent):
        if choice is not None:
            r.note(choice.problem)

    first_contact = None
    if has("First Contact") and not is_blank(r.cell("First Contact")):
        contact = r.when("First Contact", ctx)
        if contact is not None:
            first_contact = contact.at
            if received is not None and _before(
                contact.at, contact.has_time, received, received_has_time
            ):
                attention.append("First Contact is before Received: check both dates")

    appointment = None
    if has("Appointment") and not is_blank(r.cell("Appointment")):
        booked = r.when("Appointment", ctx, allow_future=True)
        if booked is not None:
            appointment = booked.at

    visit_value = visit.value if visit else None
    if (
        appointment is not None
        and appointment.astimezone(_UTC) < ctx.now.astimezone(_UTC)
        and has("Visit")
        and not visit_value
        and (visit is None or visit.problem is None)
    ):
        attention.append(
                "Appointment has passed: record the Visit (Attended, No-show or Cancelled)"
            )

    due = follow_up_due(received, ctx) if received is not None else None
    stage = derive_stage(
        received=received,
        due=due,
        fit=fit.value if fit else None,
        first_contact=first_contact,
        appointment=appointment,
        visit=visit_value,
        outcome=outcome.value if outcome else None,
        ctx=ctx,
    )
    return Referral(
        referral_id=referral_id,
        row=row.number,
        received=received,
        received_has_time=received_has_time,
        first_name=first_name,
        last_name=last.value or "",
        phone=phone.value,
        email=email.value,
        how_heard=how_heard,
        channel=channel if channel in CHANNELS else None,
        source_tag=source_tag,
        referred_by=referred_by.value or "",
        referrer_email=referrer_email.value,
        referrer_practice=practice.value or "",
        reason=reason.value or "",
        fit=fit.value if fit else None,
        first_contact=first_contact,
        appointment=appointment,
        visit=visit_value,
        outcome=outcome.value if outcome else None,
        consent=consent.value == "Yes",
        stage=stage,
        follow_up_due=due,
        attention=tuple(attention),
        emails=emails,
        facets=facets,
    )


def _before(
    first_contact: datetime, contact_has_time: bool, received: datetime, received_has_time: bool
) -> bool:
    """A date without a time means "some time that day": the same day is never "before"."""
    if received_has_time and contact_has_time:
        return first_contact.astimezone(_UTC) < received.astimezone(_UTC)
    return first_contact.date() < received.date()
