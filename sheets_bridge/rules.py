"""Pure row derivations: what a row says, its Source Tag, Stage, Follow-up Due and Attention lines.

Everything here is a function of the row's cells, the practice's settings and ``now``; nothing reads
a clock, a file or the network, so every rule is tested table-driven.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from operator import itemgetter
from zoneinfo import ZoneInfo

from sheets_bridge.choices import (
    DEFAULT_HOW_HEARD_KEYWORDS,
    ChoiceKind,
    classify_how_heard,
    parse_choice,
    source_tag_for,
)
from sheets_bridge.columns import ColumnMap
from sheets_bridge.config import BridgeConfig
from sheets_bridge.dates import When, parse_when
from sheets_bridge.model import CHANNELS, CellValue, Referral, SheetRow
from sheets_bridge.settings import WEEKDAYS
from sheets_bridge.values import (
    BLANK_CHARS,
    EMPTY_TEXT,
    Parsed,
    comparison_key,
    is_blank,
    parse_email,
    parse_phone,
    parse_text,
)

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

    def settings_key(self) -> tuple[object, ...]:
        """Every setting a row's parse reads besides ``now``, as one comparable value: what a
        memo of parse results is valid for (the derive memo's rows, this module's values)."""
        return (
            str(self.tz), self.date_order, self.phone_region, self.window,
            tuple(sorted(self.open_days)), self.opens, self.closes, tuple(sorted(self.holidays)),
            tuple(sorted((k, tuple(v)) for k, v in self.keywords.items())),
            tuple(sorted(self.tag_overrides.items())), self.date1904,
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


#: The staff columns a row's parse reads, in the order :func:`read_referral` unpacks them.
_READ_COLUMNS: tuple[str, ...] = (
    "Received",
    "Patient First Name",
    "Patient Last Name",
    "Patient Phone",
    "Patient Email",
    "How Heard",
    "Referred By",
    "Referrer Email",
    "Referrer Practice",
    "Reason",
    "Fit",
    "First Contact",
    "Appointment",
    "Visit",
    "Outcome",
    "Consent to Update Referrer",
)
#: How many results each per-column memo holds before it starts afresh: far more than the
#: distinct days, choices and referrers of most practices, few enough to stay a few MB (a
#: memo that fills up starts afresh: the values that repeat are soon back).
_MEMO_LIMIT = 8_192

_Key = object
_Memo = dict[_Key, object]


@dataclass(frozen=True, slots=True)
class _Picker:
    """Where :data:`_READ_COLUMNS` are in rows laid out by one ColumnMap.

    ``pick`` takes all sixteen cells of a row in one C call; a column the sheet lacks points
    at the last cell of the padded row, which is always the ``None`` added by :meth:`cells`.
    """

    pick: Callable[[tuple[CellValue, ...]], tuple[CellValue, ...]]
    span: int
    """One more than the rightmost column read: a row padded to it (and one more cell)."""

    def cells(self, values: tuple[CellValue, ...]) -> tuple[CellValue, ...]:
        short = self.span - len(values)
        return self.pick(values + _PADS[short] if 0 < short < len(_PADS) else
                         values + (None,) * max(short, 0) + (None,))


#: ``(None,) * (n + 1)`` for the common shortfalls: a row padded to the span plus the last None.
_PADS: tuple[tuple[None, ...], ...] = tuple((None,) * (n + 1) for n in range(64))

_picker_slot: tuple[ColumnMap, _Picker] | None = None


def _picker_for(cols: ColumnMap) -> _Picker:
    """The :class:`_Picker` of ``cols``, kept for the last ColumnMap seen (one per plan)."""
    global _picker_slot
    slot = _picker_slot
    if slot is not None and slot[0] is cols:
        return slot[1]
    staff = cols.staff
    span = max([c for n in _READ_COLUMNS if (c := staff.get(n)) is not None], default=-1) + 1
    picker = _Picker(itemgetter(*(staff.get(n, -1) for n in _READ_COLUMNS)), span)
    _picker_slot = (cols, picker)
    return picker


def _key(value: CellValue) -> _Key:
    """A memo key that tells ``1``, ``1.0``, ``True`` and ``DateSerial(1)`` apart (they are
    equal in Python but read differently): text is its own key, anything else goes with its
    type. A text and a tuple are never equal, so both kinds share one dict."""
    return value if value.__class__ is str else (value.__class__, value)


class _Memos:
    """Parse results of repeated cell values, for the settings they were computed under.

    Each memo caches one pure function of a cell's value, with every other argument fixed
    (the column name, the date order, ``now``...): dates, dropdown values, How Heard and the
    referrer columns repeat across thousands of rows (issue 13: a first sync parsed each again).
    Columns that are one patient's own (phone, email, names) are not memoised: nothing repeats,
    and a memo of them would hold a second index of the patients for nothing. ``basis`` is what
    the memos depend on besides the values; a different basis starts afresh.
    """

    __slots__ = ("basis", "choice", "due", "heard", "referrer", "when")

    def __init__(self, basis: tuple[object, ...]) -> None:
        self.basis = basis
        self.when: dict[str, _Memo] = {name: {} for name in _DATE_COLUMNS}
        self.choice: dict[str, _Memo] = {name: {} for name in _CHOICE_COLUMNS}
        self.referrer: dict[str, _Memo] = {name: {} for name in _REFERRER_COLUMNS}
        self.heard: _Memo = {}
        self.due: dict[datetime, datetime] = {}


_DATE_COLUMNS = ("Received", "First Contact", "Appointment")
_CHOICE_COLUMNS = ("Fit", "Visit", "Outcome", "Consent to Update Referrer")
_REFERRER_COLUMNS = ("Referred By", "Referrer Email", "Referrer Practice")

_memo_slot: tuple[RuleContext, _Memos] | None = None


def _memos_for(ctx: RuleContext) -> _Memos:
    """The memos valid under ``ctx``: kept across contexts whose settings are the same.

    A plan makes one RuleContext, so the settings are compared once per plan, not per row.
    ``now`` enters as its UTC instant: two aware datetimes of one zone that differ only in
    ``fold`` compare equal but are different instants. The settings are
    :meth:`RuleContext.settings_key`, the same list the derive memo is valid for.
    """
    global _memo_slot
    slot = _memo_slot
    if slot is not None and slot[0] is ctx:
        return slot[1]
    basis = (ctx.now.astimezone(_UTC), ctx.settings_key())
    memos = slot[1] if slot is not None and slot[1].basis == basis else _Memos(basis)
    _memo_slot = (ctx, memos)
    return memos


def _remember(memo: _Memo, key: _Key, result: object) -> None:
    if len(memo) >= _MEMO_LIMIT:
        memo.clear()
    memo[key] = result


def _when(
    memos: _Memos, value: CellValue, name: str, ctx: RuleContext, allow_future: bool = False
) -> Parsed[When]:
    """:func:`parse_when` of a date column, remembered by value under this ``ctx``'s basis."""
    memo = memos.when[name]
    key = _key(value)
    found = memo.get(key)
    if found is None:
        found = parse_when(
            value,
            column=name,
            tz=ctx.tz,
            date_order=ctx.date_order,  # type: ignore[arg-type]
            now=ctx.now,
            date1904=ctx.date1904,
            allow_future=allow_future,
        )
        _remember(memo, key, found)
    return found  # type: ignore[return-value]


def _choice(memos: _Memos, value: CellValue, name: str, kind: ChoiceKind) -> Parsed[str]:
    """:func:`parse_choice`, remembered by value: a dropdown holds a handful of values."""
    memo = memos.choice[name]
    key = _key(value)
    found = memo.get(key)
    if found is None:
        found = parse_choice(value, column=name, kind=kind)
        _remember(memo, key, found)
    return found  # type: ignore[return-value]


def _referrer_text(memos: _Memos, value: CellValue, name: str) -> Parsed[str]:
    """:func:`parse_text` (numbers allowed) of a referrer column, remembered by value."""
    memo = memos.referrer[name]
    key = _key(value)
    found = memo.get(key)
    if found is None:
        found = parse_text(value, column=name, number_ok=True)
        _remember(memo, key, found)
    return found  # type: ignore[return-value]


def _referrer_email(memos: _Memos, value: CellValue) -> Parsed[str]:
    """:func:`parse_email` of Referrer Email, remembered: a referrer's address recurs."""
    memo = memos.referrer["Referrer Email"]
    key = _key(value)
    found = memo.get(key)
    if found is None:
        found = parse_email(value, column="Referrer Email")
        _remember(memo, key, found)
    return found  # type: ignore[return-value]


def _text(value: CellValue, name: str) -> Parsed[str]:
    """:func:`parse_text` with its common case (text) inline: same result, no call chain."""
    if value.__class__ is str:
        text = value.strip(BLANK_CHARS)
        return Parsed(text, None) if text else EMPTY_TEXT
    return parse_text(value, column=name)


def _due(memos: _Memos, received: datetime, ctx: RuleContext) -> datetime:
    """:func:`follow_up_due`, remembered by the instant it is due before business hours."""
    due_utc = received.astimezone(_UTC) + ctx.window
    found = memos.due.get(due_utc)
    if found is None:
        found = next_opening(due_utc, ctx)
        if len(memos.due) >= _MEMO_LIMIT:
            memos.due.clear()
        memos.due[due_utc] = found
    return found


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

    Every cell is read and every Attention line made in the order the rules always had (the
    reference in ``tests/unit/test_parse_equivalence.py`` is the code before issue 13's third
    round, and the two are compared on generated rows full of staff mistakes). What changed is
    the cost: the row's cells are picked in one call, and the values that repeat across rows
    (dates, dropdowns, How Heard, the referrer columns, deadlines) are parsed once each.
    """
    attention: list[str] = list(leading)
    note = attention.append
    for name in sorted(uncalculated):
        note(
            f"{name} is a formula the workbook has not calculated yet: open the workbook in "
            "Excel or LibreOffice and save it, or type the value"
        )
    memos = _memos_for(ctx)
    (
        received_raw, first_raw, last_raw, phone_raw, email_raw, how_heard_raw, referred_raw,
        referrer_email_raw, practice_raw, reason_raw, fit_raw, contact_raw, appointment_raw,
        visit_raw, outcome_raw, consent_raw,
    ) = _picker_for(cols).cells(row.values)
    staff = cols.staff

    received = None
    received_has_time = False
    if "Received" in staff:
        if is_blank(received_raw):
            if "Received" not in uncalculated:
                note("Received is empty: add the date the referral came in")
        else:
            parsed_when = _when(memos, received_raw, "Received", ctx)
            if parsed_when.problem:
                note(parsed_when.problem)
            read = parsed_when.value
            if read is not None:
                received, received_has_time = read.at, read.has_time

    first_name = ""
    if "Patient First Name" in staff:
        parsed_name = _text(first_raw, "Patient First Name")
        if parsed_name.problem:
            note(parsed_name.problem)
        if (
            parsed_name.value is None
            and parsed_name.problem is None
            and "Patient First Name" not in uncalculated
        ):
            note("Patient First Name is empty: add the patient's first name")
        first_name = parsed_name.value or ""
    last = _text(last_raw, "Patient Last Name")
    if last.problem:
        note(last.problem)

    phone = parse_phone(phone_raw, column="Patient Phone", region=ctx.phone_region)
    if phone.problem:
        note(phone.problem)
    email = parse_email(email_raw, column="Patient Email")
    if email.problem:
        note(email.problem)

    how_heard = "" if is_blank(how_heard_raw) else str(how_heard_raw).strip()
    channel: str | None = None
    override = ctx.tag_overrides.get(comparison_key(how_heard)) if how_heard else None
    if override:
        source_tag = override
        channel = TAG_CHANNEL.get(override)
    elif "How Heard" in staff:
        key = _key(how_heard_raw)
        heard = memos.heard.get(key)
        if heard is None:
            heard = classify_how_heard(how_heard_raw, ctx.keywords)
            _remember(memos.heard, key, heard)
        if heard.problem:  # type: ignore[attr-defined]
            note(heard.problem)  # type: ignore[attr-defined]
        channel = heard.value  # type: ignore[attr-defined]
        source_tag = source_tag_for(channel)
    else:
        source_tag = "Unknown"

    referred_by = _referrer_text(memos, referred_raw, "Referred By")
    if referred_by.problem:
        note(referred_by.problem)
    if (
        source_tag in ("Provider Referral", "Patient Referral")
        and "Referred By" in staff
        and referred_by.value is None
        and referred_by.problem is None
    ):
        who = "referring provider" if source_tag == "Provider Referral" else "referring patient"
        note(f"Referred By is empty: add the {who}'s name")
    referrer_email = _referrer_email(memos, referrer_email_raw)
    if referrer_email.problem:
        note(referrer_email.problem)
    practice = _referrer_text(memos, practice_raw, "Referrer Practice")
    if practice.problem:
        note(practice.problem)
    reason = parse_text(reason_raw, column="Reason", number_ok=True)

    fit = _choice(memos, fit_raw, "Fit", "fit") if "Fit" in staff else None
    visit = _choice(memos, visit_raw, "Visit", "visit") if "Visit" in staff else None
    outcome = _choice(memos, outcome_raw, "Outcome", "outcome") if "Outcome" in staff else None
    consent = _choice(memos, consent_raw, "Consent to Update Referrer", "consent")
    for choice in (fit, visit, outcome, consent):
        if choice is not None and choice.problem:
            note(choice.problem)

    first_contact = None
    if "First Contact" in staff and not is_blank(contact_raw):
        parsed_when = _when(memos, contact_raw, "First Contact", ctx)
        if parsed_when.problem:
            note(parsed_when.problem)
        contact = parsed_when.value
        if contact is not None:
            first_contact = contact.at
            if received is not None and _before(
                contact.at, contact.has_time, received, received_has_time
            ):
                note("First Contact is before Received: check both dates")

    appointment = None
    if "Appointment" in staff and not is_blank(appointment_raw):
        parsed_when = _when(memos, appointment_raw, "Appointment", ctx, allow_future=True)
        if parsed_when.problem:
            note(parsed_when.problem)
        booked = parsed_when.value
        if booked is not None:
            appointment = booked.at

    visit_value = visit.value if visit else None
    if (
        appointment is not None
        and appointment.astimezone(_UTC) < ctx.now.astimezone(_UTC)
        and "Visit" in staff
        and not visit_value
        and (visit is None or visit.problem is None)
    ):
        note("Appointment has passed: record the Visit (Attended, No-show or Cancelled)")

    due = _due(memos, received, ctx) if received is not None else None
    fit_value = fit.value if fit else None
    outcome_value = outcome.value if outcome else None
    stage = derive_stage(
        received=received,
        due=due,
        fit=fit_value,
        first_contact=first_contact,
        appointment=appointment,
        visit=visit_value,
        outcome=outcome_value,
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
        fit=fit_value,
        first_contact=first_contact,
        appointment=appointment,
        visit=visit_value,
        outcome=outcome_value,
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
