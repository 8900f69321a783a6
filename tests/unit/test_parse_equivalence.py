"""The per-row parse gives the very Referral, and every Attention line byte for byte, that it
gave before issue 13's third round.

``rules.read_referral`` now picks a row's cells in one call, memoises the parse of values that
repeat across rows (dates, dropdowns, How Heard, the referrer columns, deadlines) and reads a
plain North American phone number by a short path. This file keeps the earlier implementation
(the reader and the value parsers it called, copied as they were) as the reference, and
compares both on Hypothesis-generated rows full of staff mistakes (odd dates, serials, text
dates in several formats, phones with extensions and letters, emails with spaces, choices in
odd case, leading ``=``, errors, booleans, short rows, missing columns), under varied clocks,
zones, date orders and Sources overrides, and on the demo workbook's rows. Each generated row
is read twice by the new code: once as memos find it, once after they saw it.
"""


from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
import pytest
from conftest import BASE_CONFIG, deep_merge
from email_validator import EmailNotValidError, validate_email
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sheets_bridge.choices import (
    _CANONICAL,
    _CHANNEL_BY_NAME,
    _PLAIN_NO,
    _PLAIN_YES,
    _SOURCE_TAGS,
    _SYNONYMS,
    ChoiceKind,
    _choice_key,
    _classify,
    _words,
    source_tag_for,
)
from sheets_bridge.columns import ColumnMap
from sheets_bridge.config import parse_config
from sheets_bridge.dates import When, parse_when
from sheets_bridge.model import (
    CHANNELS,
    STAFF_COLUMNS,
    CellError,
    CellValue,
    DateSerial,
    Referral,
    SheetRow,
)
from sheets_bridge.rules import (
    _UTC,
    TAG_CHANNEL,
    RuleContext,
    derive_stage,
    follow_up_due,
    read_referral,
)
from sheets_bridge.values import (
    _ASCII_ADDRESS,
    _EMAIL_DISPLAY,
    _EMAIL_PARTS,
    _MIN_DIGITS_ONE_NUMBER,
    _NANP_TEXT,
    _NO_ADDRESS_WORDS,
    _NOT_WORD,
    _PHONE_E_NOTATION,
    _PHONE_EXTENSION,
    _PHONE_FLOAT_TEXT,
    _PHONE_SEPARATORS,
    _SPECIAL_TLDS,
    EMPTY_TEXT,
    Parsed,
    _region_patterns,
    cell_text,
    comparison_key,
    error_text,
    has_control_chars,
    is_blank,
    parse_phone,
    trim,
)

# --------------------------------------------------------------------------------------------
# The reference: rules._Reader and read_referral, and the value parsers, as they were before
# --------------------------------------------------------------------------------------------

@dataclass
class _RefReader:
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


def reference_read_referral(
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
    r = _RefReader(row, cols, attention)
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
        parsed_name = ref_parse_text(r.cell("Patient First Name"), column="Patient First Name")
        r.note(parsed_name.problem)
        if (
            parsed_name.value is None
            and parsed_name.problem is None
            and "Patient First Name" not in uncalculated
        ):
            attention.append("Patient First Name is empty: add the patient's first name")
        first_name = parsed_name.value or ""
    last = ref_parse_text(r.cell("Patient Last Name"), column="Patient Last Name")
    r.note(last.problem)

    phone = ref_parse_phone(r.cell("Patient Phone"), column="Patient Phone", region=ctx.phone_region)
    r.note(phone.problem)
    email = ref_parse_email(r.cell("Patient Email"), column="Patient Email")
    r.note(email.problem)

    how_heard_raw = r.cell("How Heard")
    how_heard = "" if is_blank(how_heard_raw) else str(how_heard_raw).strip()
    channel: str | None = None
    override = ctx.tag_overrides.get(comparison_key(how_heard)) if how_heard else None
    if override:
        source_tag = override
        channel = TAG_CHANNEL.get(override)
    elif has("How Heard"):
        heard = ref_classify_how_heard(how_heard_raw, ctx.keywords)
        r.note(heard.problem)
        channel = heard.value
        source_tag = source_tag_for(channel)
    else:
        source_tag = "Unknown"

    referred_by = ref_parse_text(r.cell("Referred By"), column="Referred By", number_ok=True)
    r.note(referred_by.problem)
    if (
        source_tag in ("Provider Referral", "Patient Referral")
        and has("Referred By")
        and referred_by.value is None
        and referred_by.problem is None
    ):
        who = "referring provider" if source_tag == "Provider Referral" else "referring patient"
        attention.append(f"Referred By is empty: add the {who}'s name")
    referrer_email = ref_parse_email(r.cell("Referrer Email"), column="Referrer Email")
    r.note(referrer_email.problem)
    practice = ref_parse_text(r.cell("Referrer Practice"), column="Referrer Practice", number_ok=True)
    r.note(practice.problem)
    reason = ref_parse_text(r.cell("Reason"), column="Reason", number_ok=True)

    fit = ref_parse_choice(r.cell("Fit"), column="Fit", kind="fit") if has("Fit") else None
    visit = ref_parse_choice(r.cell("Visit"), column="Visit", kind="visit") if has("Visit") else None
    outcome = (
        ref_parse_choice(r.cell("Outcome"), column="Outcome", kind="outcome") if has("Outcome") else None
    )
    consent = ref_parse_choice(
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
            if received is not None and _ref_before(
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


def _ref_before(
    first_contact: datetime, contact_has_time: bool, received: datetime, received_has_time: bool
) -> bool:
    """A date without a time means "some time that day": the same day is never "before"."""
    if received_has_time and contact_has_time:
        return first_contact.astimezone(_UTC) < received.astimezone(_UTC)
    return first_contact.date() < received.date()


def ref_parse_phone(value: CellValue, *, column: str, region: str) -> Parsed[str]:
    """Read a phone cell into E.164 (``+12125550100``, ``;ext=3`` appended when typed) (B13).

    Spreadsheets turn digits into numbers: ``2125550100.0`` is undone; ``2.12555E+09`` text has
    already lost digits and cannot be undone, so staff are asked to retype it. A number without
    a country code is read in the practice's ``region``. Only numbers ``phonenumbers`` calls
    valid are used: a wrong number in an outreach draft is worse than none.
    """
    if value is None:
        return EMPTY_TEXT
    if isinstance(value, bool):
        return Parsed(None, f"{column} holds TRUE/FALSE, not a phone number: type the number")
    if isinstance(value, CellError):
        return Parsed(
            None, f"{column} shows {error_text(value)}: fix the formula or type the number"
        )
    incomplete = f"{column} is not a complete phone number: include the area code"
    if isinstance(value, int | float):
        if isinstance(value, float) and not value.is_integer():
            return Parsed(None, incomplete)
        if value <= 0:
            return Parsed(None, incomplete)
        text = str(int(value))
    else:
        text = trim(value)
        if not text:
            return EMPTY_TEXT
        if _PHONE_E_NOTATION.fullmatch(text):
            return Parsed(
                None,
                f"{column} was turned into a number by the spreadsheet and lost digits: "
                "format the column as Text and type the number again",
            )
        m = _PHONE_FLOAT_TEXT.fullmatch(text)
        if m is not None:
            text = m[1]
        numbers = [
            part
            for part in _PHONE_SEPARATORS.split(text)
            if sum(c.isdigit() for c in part) >= _MIN_DIGITS_ONE_NUMBER
        ]
        if len(numbers) >= 2:
            return Parsed(
                None,
                f"{column} holds more than one number: keep one here and put the other in Notes",
            )
        # Letters are only allowed as an extension marker. Vanity numbers (1-800-FLOWERS) are
        # refused too: the draft needs digits a patient can dial.
        if any(c.isalpha() for c in _PHONE_EXTENSION.sub(" ", text)):
            return Parsed(
                None, f"{column} is not a phone number: type the number with its area code"
            )
    fast = _ref_nanp_fast(text, region)
    if fast is not None:
        return Parsed(fast, None)
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return Parsed(None, incomplete)
    if not phonenumbers.is_valid_number(number):
        return Parsed(None, incomplete)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if number.extension:
        e164 += f";ext={number.extension}"
    return Parsed(e164, None)


def _ref_nanp_fast(text: str, region: str) -> str | None:
    """E.164 for a plain 10-digit North American number that ``phonenumbers`` would accept.

    ``phonenumbers.parse`` plus ``is_valid_number`` cost ~100 µs a number, most of a 10,000-row
    cycle's budget; the common shape is checked here against the same metadata patterns, and
    anything else (extensions, other countries, toll-free) still goes the full way.
    """
    patterns = _region_patterns(region)
    if patterns is None:
        return None
    match = _NANP_TEXT.fullmatch(text)
    if match is None:
        return None
    national = match[1] + match[2] + match[3]
    if any(p.fullmatch(national) for p in patterns):
        return "+1" + national
    return None


def _ref_email_ok(address: str) -> bool:
    """Strict syntax check (no DNS): referrer addresses repeat across rows, so it is memoised.

    A plain ASCII dot-atom address is checked by one regex (what email-validator enforces for
    it, at a fraction of the cost); anything else goes through email-validator itself.
    """
    match = _ASCII_ADDRESS.fullmatch(address)
    if (
        match is not None
        and len(match["local"]) <= 64
        and len(address) <= 254
        and match["domain"].rsplit(".", 1)[-1].lower() not in _SPECIAL_TLDS
    ):
        return True
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


def ref_parse_email(value: CellValue, *, column: str) -> Parsed[str]:
    """Read one email address, as typed, or say why it cannot be used (B14, B16).

    The bare address is returned exactly as typed (trimmed), never "fixed": a guessed address
    would send patient mail to a stranger. ``John <j@x.com>`` gives ``j@x.com``. International
    domains are fine. Line breaks and bidi controls are refused because the address ends up in
    a mail header. ``email.utils.parseaddr`` is not used: this Python's version lacks
    ``strict=`` (CVE-2023-27043), so the one accepted display form is matched here.
    """
    if value is None:
        return EMPTY_TEXT
    if isinstance(value, bool):
        return Parsed(None, f"{column} holds TRUE/FALSE, not an email address: type the address")
    if isinstance(value, CellError):
        return Parsed(
            None, f"{column} shows {error_text(value)}: fix the formula or type the address"
        )
    invalid = f"{column} is not a valid email address: check it (like name@example.com)"
    if not isinstance(value, str):
        return Parsed(None, invalid)
    text = trim(value)
    if not text:
        return EMPTY_TEXT
    if has_control_chars(text):
        return Parsed(
            None, f"{column} contains a line break or control character: retype the address"
        )
    if _NOT_WORD.sub("", text.casefold()) in _NO_ADDRESS_WORDS:
        return Parsed(None, f"{column} says there is no address: leave it empty when there is none")
    if sum(1 for part in _EMAIL_PARTS.split(text) if "@" in part.strip("@")) >= 2:
        return Parsed(None, f"{column} holds more than one address: keep one")
    address = text
    if "<" in text or ">" in text:
        m = _EMAIL_DISPLAY.fullmatch(text)
        if m is None:
            return Parsed(None, invalid)
        address = m[1]
    if not _ref_email_ok(address):
        return Parsed(None, invalid)
    return Parsed(address, None)


def ref_parse_text(value: CellValue, *, column: str, number_ok: bool = False) -> Parsed[str]:
    """Read a name or free-text cell, kept exactly as typed (B15, B19).

    Names are never re-cased or re-normalised (O'Brien, María-José, 张伟 and ALL CAPS stay as
    staff wrote them); only surrounding spaces are dropped. A number in a name column usually
    means a shifted paste, so it is reported unless the caller says numbers are fine.
    """
    if value is None:
        return EMPTY_TEXT
    if isinstance(value, CellError):
        return Parsed(
            None, f"{column} shows {error_text(value)}: fix the formula or type the value"
        )
    if isinstance(value, str):
        text = trim(value)
        return Parsed(text, None) if text else EMPTY_TEXT
    if isinstance(value, bool):
        return Parsed(None, f"{column} holds TRUE/FALSE: type the value")
    if number_ok:
        return Parsed(cell_text(value), None)
    return Parsed(cell_text(value), f"{column} holds a number: type the name")




def ref_parse_choice(value: CellValue, *, column: str, kind: ChoiceKind) -> Parsed[str]:
    """Read a dropdown column (Fit, Visit, Outcome, Consent) into its canonical value (B25, B26).

    Free text staff commonly type instead of the dropdown value is mapped ("NS", "No show",
    "booked"). Consent is the exception: only a plain yes counts; blank or anything else means
    No (fail closed), and anything that is neither blank nor a plain answer also asks for one,
    because "yes (verbal)" or "Y?" is not a consent the bridge can act on.
    """
    canonical = _CANONICAL[kind]
    if kind == "consent":
        ask = (
            f"{column} is not a plain Yes or No: choose Yes or No "
            "(until then the bridge treats it as No)"
        )
        if isinstance(value, CellError | bool) or not isinstance(value, str | None):
            return Parsed("No", ask)
        text = trim(value) if value is not None else ""
        if not text:
            return Parsed("No", None)
        answer = text.casefold()
        if answer in _PLAIN_YES:
            return Parsed("Yes", None)
        if answer in _PLAIN_NO:
            return Parsed("No", None)
        return Parsed("No", ask)
    if value is None:
        return EMPTY_TEXT
    if isinstance(value, CellError):
        return Parsed(
            None, f"{column} shows {error_text(value)}: fix the formula or pick one from the list"
        )
    if isinstance(value, bool):
        return Parsed(None, f"{column} holds TRUE/FALSE: pick one from the list")
    text = trim(cell_text(value))
    if not text:
        return EMPTY_TEXT
    found = _SYNONYMS[kind].get(_choice_key(text))
    if found is None:
        return Parsed(
            None, f"{column} is not one of {', '.join(canonical)}: pick one from the list"
        )
    return Parsed(found, None)




def ref_classify_how_heard(value: CellValue, keywords: Mapping[str, Sequence[str]]) -> Parsed[str]:
    """Map How Heard to a channel: a channel's own name, else its keywords, else ask (B25).

    Keywords match whole words, so "md" does not fire inside "cmd". When keywords of two channels
    match ("friend saw us on facebook") the bridge asks rather than picks. Keys of ``keywords``
    that are not channels are ignored (config validation reports them).
    """
    if is_blank(value):
        return Parsed(None, "How Heard is empty: pick how the patient heard of the practice")
    if isinstance(value, CellError):
        return Parsed(
            None, f"How Heard shows {error_text(value)}: fix the formula or pick one from the list"
        )
    if isinstance(value, bool):
        return Parsed(None, "How Heard holds TRUE/FALSE: pick one from the list")
    words = _words(cell_text(value))
    exact = _CHANNEL_BY_NAME.get(words) or _CHANNEL_BY_NAME.get(words.replace(" ", ""))
    if exact is not None:
        return Parsed(exact, None)
    table = tuple(
        (channel, tuple(_words(kw) for kw in kws))
        for channel, kws in keywords.items()
        if channel in _SOURCE_TAGS
    )
    matched = _classify(words, table)
    if len(matched) == 1:
        return Parsed(matched[0], None)
    if matched:
        return Parsed(
            None,
            "How Heard matches more than one channel: pick one from the list, "
            "or set its tag on the Sources tab",
        )
    return Parsed(
        None,
        "How Heard is not a known channel: pick one from the list, "
        "or set its tag on the Sources tab",
    )


# --------------------------------------------------------------------------------------------
# Generated rows full of staff mistakes
# --------------------------------------------------------------------------------------------

NY = ZoneInfo("America/New_York")
_BLANKS = ("", " ", "\u00a0", "\u200b", "  \t ")
_ERRORS = (CellError("#REF!"), CellError("#N/A"), CellError("#VALUE!"), CellError("odd"))

_TEXT_DATES = (
    "2025-03-04", "2025-03-04 09:30", "2025-3-4", "3/4/25", "03/04/2025", "4/3/2025 14:05",
    "13/4/2025", "4/13/2025", "March 4, 2025", "4 Mar 2025", "Mar 4", "4 march 10:00 am",
    "2025-02-30", "2025-02-29", "2024-02-29", "yesterday", "today", "tomorrow", "next week",
    "2026-11-26 1:30 pm", "2026-11-28", "2026-11-30", "2029-01-01", "1990-01-01", "1999-12-31",
    "2025-03-04T09:30:00Z", "2025-03-04T09:30:00+01:00", "2025-03-04 25:00", "=TODAY()",
    "2026-11-01 01:30", "2025-11-02 01:30", "2025-03-09 02:30", "  2025-03-04  ", "45720",
    "45720.5", "3.4.25", "04.03.2025", "Tues 4 March", "noon", "#REF!", "sometime",
)
_DATE_CELLS = st.one_of(
    st.sampled_from(_TEXT_DATES),
    st.builds(DateSerial, st.floats(min_value=-5, max_value=80_000, allow_nan=False)),
    st.builds(DateSerial, st.sampled_from((0.5, 1.0, 59.0, 60.0, 60.5, 61.0, 45720.0, 46172.0,
                                           46172.43, 46353.0, 46358.99, 2_958_466.0))),
    st.floats(min_value=0, max_value=60_000, allow_nan=False),
    st.integers(min_value=-1, max_value=60_000),
    st.booleans(),
    st.sampled_from(_ERRORS + _BLANKS),
    st.none(),
)
_PHONES = (
    "(212) 555-0100", "212-555-0100", "212.555.0100", "2125550100", "+1 212 555 0100",
    "1-212-555-0100", "212 555 0100 x12", "212-555-0100 ext. 7", "212-555-0100 #3",
    "+1 (646) 555-0199 extension 45", "1-800-FLOWERS", "212-555-CALL", "555-0100",
    "2125550100.0", "2125550100.00", "212555.0000", "2.12555E+09", "2,12555e9", "212555",
    "212-555-0100 / 646-555-0199", "212-555-0100 or 646-555-0199", "212\n555 0100",
    "+44 20 7946 0958", "020 7946 0958", "+49 30 1234567", "800-555-0100", "011 44 20",
    "(000) 000-0000", "999-999-9999", "+1 212 555 0100;ext=4", "=212-555-0100", " ",
    "212 - 555 - 0100", "(212)5550100", "+12125550100", "1 212 555 0100", "12125550100.0",
)
_PHONE_CELLS = st.one_of(
    st.sampled_from(_PHONES),
    st.integers(min_value=-5, max_value=99_999_999_999),
    st.floats(min_value=-1, max_value=1e11, allow_nan=False),
    st.builds(lambda d: "".join(d), st.lists(st.sampled_from("0123456789 ()-.+x"), max_size=16)),
    st.booleans(),
    st.sampled_from(_ERRORS + _BLANKS),
    st.none(),
)
_EMAILS = (
    "ann@example.com", " ann@example.com ", "ann @example.com", "Ann Lee <ann@example.com>",
    '"Lee, Ann" <ann@example.com>', "ann@example", "ann@@example.com", "none", "N/A", "n/a",
    "no email", "declined", "-@n.a", "ann@example.com, bob@example.com", "ann@example.com;b@x.org",
    "ann@localhost", "ann@example.test", "maría@example.com", "ann@exämple.com",
    "=?utf-8?q?=0a?=@example.com", "ann\n@example.com", "ann@example.com\u202e",
    "<ann@example.com>", "Ann <ann@example.com", "ann.lee+ref@clinic.example.org",
    "a" * 70 + "@example.com", "=ann@example.com", "ann@ex_ample.com",
)
_EMAIL_CELLS = st.one_of(
    st.sampled_from(_EMAILS), st.text(max_size=12), st.integers(), st.floats(allow_nan=False),
    st.booleans(), st.sampled_from(_ERRORS + _BLANKS), st.none(),
)
_CHOICE_WORDS = (
    "Good fit", "good FIT", "Not a fit", "NOT A FIT", "unsure", "?", "maybe", "Scheduled",
    "booked", "ATTENDED", "seen", "No-show", "no show", "NS", "dna", "Cancelled", "canceled",
    "cx", "Ongoing care", "ongoing", "long-term care", "Completed", "done", "Lost", "ltfu",
    "Yes", "yes", "Y", "y", "No", "n", "yes (verbal)", "Y?", "yes please", "=Yes", "  Yes  ",
    "Attended!", "no", "good", "fit", "??", "-", "1",
)
_CHOICE_CELLS = st.one_of(
    st.sampled_from(_CHOICE_WORDS), st.text(max_size=8), st.integers(min_value=-2, max_value=3),
    st.floats(allow_nan=False), st.booleans(), st.sampled_from(_ERRORS + _BLANKS), st.none(),
)
_NAMES = (
    "Ann", "ann", "ANN", "O'Brien", "María-José", "Mari\u0301a", "张伟", " Lee ", "=Lee",
    "Dr. Rivera", "Dr Rivera", "dr. rivera", "Harbor Clinic", "Lee\u200b", "", "x",
)
_NAME_CELLS = st.one_of(
    st.sampled_from(_NAMES), st.text(max_size=10), st.integers(), st.floats(allow_nan=False),
    st.booleans(), st.sampled_from(_ERRORS + _BLANKS), st.none(),
)
_HEARD = (
    "Provider", "provider", "Patient", "Google", "googled us", "Social media", "facebook",
    "friend saw us on facebook", "Dr. Smith", "dr referral", "cmd", "Walk-in", "walked in",
    "self referred", "Yelp", "health fair", "Event", "Other", "word of mouth", "radio",
    "insurance list", "ZocDoc", "?", "=Google", "  Google  ", "Socialmedia", "WALK IN",
)
_HEARD_CELLS = st.one_of(
    st.sampled_from(_HEARD), st.text(max_size=10), st.integers(), st.floats(allow_nan=False),
    st.booleans(), st.sampled_from(_ERRORS + _BLANKS), st.none(),
)

_CELLS: dict[str, st.SearchStrategy[Any]] = {
    "Received": _DATE_CELLS,
    "Patient First Name": _NAME_CELLS,
    "Patient Last Name": _NAME_CELLS,
    "Patient Phone": _PHONE_CELLS,
    "Patient Email": _EMAIL_CELLS,
    "How Heard": _HEARD_CELLS,
    "Referred By": _NAME_CELLS,
    "Referrer Email": _EMAIL_CELLS,
    "Referrer Practice": _NAME_CELLS,
    "Reason": _NAME_CELLS,
    "Fit": _CHOICE_CELLS,
    "First Contact": _DATE_CELLS,
    "Appointment": _DATE_CELLS,
    "Visit": _CHOICE_CELLS,
    "Outcome": _CHOICE_CELLS,
    "Consent to Update Referrer": _CHOICE_CELLS,
    "Notes": _NAME_CELLS,
}

_NOWS = (
    datetime(2026, 11, 27, 10, 0, tzinfo=NY),
    datetime(2025, 3, 4, 10, 0, tzinfo=NY),
    datetime(2025, 11, 2, 1, 30, tzinfo=NY),
    datetime(2025, 11, 2, 1, 30, fold=1, tzinfo=NY),
    datetime(2025, 3, 9, 3, 0, tzinfo=NY),
    datetime(2024, 12, 31, 23, 59, tzinfo=NY),
    datetime(2025, 3, 4, 10, 0, tzinfo=ZoneInfo("Europe/Berlin")),
)


def _config(
    zone: str, date_order: str | None, window: int, region: str,
    keywords: dict[str, list[str]] | None = None, **more: Any,
) -> Any:
    practice = {"timezone": zone, "date_order": date_order, "phone_region": region, **more}
    sections = {"practice": practice, "sync": {"contact_window_hours": window},
                "sources": {"keywords": keywords or {}}}
    return parse_config(deep_merge(BASE_CONFIG, sections), base=Path("."))


#: Practices' settings; the first nine differ from the first in one setting each, so a memo
#: that ignored one would be caught by reading the same values under two of them in turn.
_CONFIGS = [
    _config("America/New_York", "MDY", 24, "US"),
    _config("America/New_York", "DMY", 24, "US"),
    _config("America/New_York", None, 24, "US"),
    _config("America/New_York", "MDY", 48, "US"),
    _config("America/New_York", "MDY", 24, "US", holidays=["2026-11-27", "2025-03-05"]),
    _config("America/New_York", "MDY", 24, "US", business_hours={"start": "09:30"}),
    _config("America/New_York", "MDY", 24, "US", business_hours={"end": "12:00"}),
    _config("America/New_York", "MDY", 24, "US", business_hours={"open_days": ["mon", "sat"]}),
    _config("America/Chicago", "MDY", 24, "US"),
    _config("America/New_York", "MDY", 24, "US",
            keywords={"Event": ["radio", "dr"], "Google": ["facebook"]}),
    _config("America/New_York", None, 24, "CA"),
    _config("Europe/Berlin", "DMY", 36, "DE"),
    _config("Australia/Sydney", "DMY", 24, "AU"),
]


@dataclass
class Case:
    row: SheetRow
    cols: ColumnMap
    ctx: RuleContext
    kwargs: dict[str, Any]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    """A row of generated cells, in a sheet with some staff columns missing and others moved."""
    names = draw(st.lists(st.sampled_from(STAFF_COLUMNS), unique=True, min_size=0))
    if draw(st.booleans()):
        names = list(STAFF_COLUMNS)
        draw(st.randoms()).shuffle(names)
    offset = draw(st.integers(min_value=0, max_value=3))
    staff = {name: offset + i for i, name in enumerate(names)}
    width = offset + len(names)
    cells = [draw(_CELLS[name]) for name in names]
    values: list[CellValue] = [draw(_NAME_CELLS) for _ in range(offset)] + cells
    values += [draw(_NAME_CELLS) for _ in range(draw(st.integers(min_value=0, max_value=2)))]
    cut = draw(st.integers(min_value=0, max_value=len(values)))
    if draw(st.integers(min_value=0, max_value=4)) == 0:
        values = values[:cut]  # a short row: its last cells were never written
    cols = ColumnMap(staff=staff, bridge={}, width=width)
    config = draw(st.sampled_from(_CONFIGS))
    now = draw(st.sampled_from(_NOWS))
    heard = [h for h in _HEARD if h.strip()]
    tags = ("Provider Referral", "Patient Referral", "Self-Referral", "Unknown", "Bogus")
    overrides = draw(st.dictionaries(st.sampled_from(heard).map(comparison_key),
                                     st.sampled_from(tags), max_size=3))
    ctx = RuleContext.from_config(config, now, tag_overrides=overrides,
                                  date1904=draw(st.booleans()))
    kwargs = {
        "referral_id": draw(st.sampled_from(("", "R-00001", "R-12345"))),
        "leading": tuple(draw(st.lists(st.sampled_from(("Merged cells here", "Blocked")),
                                       max_size=2))),
        "emails": draw(st.sampled_from(("", "thanks 2025-03-04"))),
        "uncalculated": frozenset(draw(st.lists(st.sampled_from(STAFF_COLUMNS), max_size=2))),
        "facets": tuple(draw(st.lists(st.sampled_from(("eabc", "pdef", "n123")), max_size=3))),
    }
    return Case(SheetRow(draw(st.integers(min_value=2, max_value=9999)), tuple(values)),
                cols, ctx, kwargs)


def _same(case: Case) -> None:
    expected = reference_read_referral(case.row, case.cols, case.ctx, **case.kwargs)
    first = read_referral(case.row, case.cols, case.ctx, **case.kwargs)
    again = read_referral(case.row, case.cols, case.ctx, **case.kwargs)
    assert first == expected
    assert again == expected
    assert first.attention == expected.attention  # the Attention lines, byte for byte
    for moment in ("received", "first_contact", "appointment", "follow_up_due"):
        # == on aware datetimes of one zone ignores fold: the instants must match too.
        a, b = getattr(first, moment), getattr(expected, moment)
        assert (a is None) == (b is None)
        if a is not None:
            assert a.astimezone(_UTC) == b.astimezone(_UTC)
            assert a.utcoffset() == b.utcoffset()


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_read_referral_is_unchanged_on_rows_full_of_mistakes(case: Case) -> None:
    _same(case)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(cases(), min_size=2, max_size=5), st.randoms())
def test_memos_never_carry_one_contexts_reading_into_another(
    batch: list[Case], rng: Any
) -> None:
    """Every row read under every generated context (clock, zone, date order, epoch, column
    layout), in a shuffled order: the memos are kept across contexts whose settings agree and
    must be dropped when they do not, so the same cell value must read as each context says."""
    mixed = [
        Case(row.row, layout.cols, context.ctx, row.kwargs)
        for row in batch for layout in batch for context in batch
    ]
    rng.shuffle(mixed)
    for case in mixed:
        _same(case)


_POOL: tuple[CellValue, ...] = (
    *_TEXT_DATES, *_PHONES, *_EMAILS, *_CHOICE_WORDS, *_NAMES, *_HEARD, *_ERRORS, *_BLANKS,
    None, True, False, 0, 1, 1.0, 45720, 45720.0, DateSerial(45720.0), DateSerial(46353.4),
    DateSerial(46354.0), DateSerial(46355.5), DateSerial(45720.75), 2125550100, 2125550100.0,
)


def test_every_value_reads_as_each_context_says_whatever_was_read_before() -> None:
    """Each value of the generators' pools, in every column at once, read under every context
    (five practices' settings, seven clocks including both sides of a DST fold, both epochs)
    in a shuffled order: what a memo holds from one context must never answer another."""
    import random

    cols = ColumnMap(staff={name: i for i, name in enumerate(STAFF_COLUMNS)}, bridge={})
    ctx: dict[tuple[int, datetime, bool], RuleContext] = {
        (c, now, epoch): RuleContext.from_config(config, now, date1904=epoch)
        for c, config in enumerate(_CONFIGS) for epoch in (False, True) for now in _NOWS
    }
    # The memos follow the last context's settings, so contexts that differ in one setting
    # only are read one after the other: clocks within a practice and epoch, the two epochs,
    # the first practice and each other one in turn; and once more in a shuffled order.
    by_clock = [(value, ctx[c, now, e]) for c in range(len(_CONFIGS)) for e in (False, True)
                for now in _NOWS for value in _POOL]
    by_epoch = [(value, ctx[c, now, e]) for c in range(len(_CONFIGS)) for now in _NOWS
                for e in (False, True) for value in _POOL]
    by_practice = [(value, ctx[c, now, False]) for now in _NOWS[:2]
                   for other in range(1, len(_CONFIGS)) for c in (0, other) for value in _POOL]
    shuffled = list(by_clock)
    random.Random(13).shuffle(shuffled)
    for order in (by_clock, by_epoch, by_practice, shuffled):
        for value, context in order:
            _same(Case(SheetRow(2, (value,) * len(STAFF_COLUMNS)), cols, context, {}))


@settings(max_examples=400, deadline=None)
@given(st.one_of(_PHONE_CELLS, st.text(max_size=20)), st.sampled_from(("US", "CA", "DE", "GB")))
def test_parse_phone_is_unchanged(value: CellValue, region: str) -> None:
    assert parse_phone(value, column="Patient Phone", region=region) == ref_parse_phone(
        value, column="Patient Phone", region=region
    )


def test_the_demo_workbooks_rows_read_as_before(tmp_path: Path) -> None:
    from sheets_bridge.columns import resolve_columns
    from sheets_bridge.demo import demo_rows, write_demo_workbook
    from sheets_bridge.sheets.xlsx import LocalWorkbook

    now = datetime(2026, 11, 27, 10, 0, tzinfo=NY)
    path = tmp_path / "demo.xlsx"
    write_demo_workbook(path, demo_rows(now, seed=11, count=600))
    tab = LocalWorkbook(path).read().referrals
    assert tab is not None
    cols = resolve_columns(tab.headers, {})
    for config in _CONFIGS[:3]:
        for at in (now, now + timedelta(days=3), now - timedelta(days=40)):
            ctx = RuleContext.from_config(config, at)
            for row in tab.rows:
                _same(Case(row, cols, ctx, {}))


@pytest.mark.parametrize("value", [1, 1.0, True, DateSerial(1.0), "1", CellError("1")])
def test_equal_values_of_different_types_are_told_apart(value: CellValue) -> None:
    """``1 == 1.0 == True`` in Python, but each reads differently: a memo must not mix them."""
    config = _CONFIGS[0]
    ctx = RuleContext.from_config(config, _NOWS[0])
    cols = ColumnMap(staff={name: i for i, name in enumerate(STAFF_COLUMNS)}, bridge={})
    for other in (1, 1.0, True, DateSerial(1.0), "1", CellError("1"), value):
        row = SheetRow(2, (other,) * len(STAFF_COLUMNS))
        _same(Case(row, cols, ctx, {}))
