"""Cell readers against the BAD-INPUT catalog (RELIABILITY.md section c).

Each table row is one example from the catalog or the readers' contract; the B-number in the
comment says which catalog line it covers. ``now`` is fixed: no test reads the real clock.
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from sheets_bridge.choices import (
    DEFAULT_HOW_HEARD_KEYWORDS,
    classify_how_heard,
    parse_choice,
    source_tag_for,
)
from sheets_bridge.dates import parse_when, serial_to_datetime
from sheets_bridge.model import CHANNELS, CellError, CellValue, DateSerial
from sheets_bridge.values import (
    Parsed,
    cell_text,
    comparison_key,
    has_control_chars,
    is_blank,
    parse_email,
    parse_phone,
    parse_text,
    same_text,
)

NY = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2025, 6, 15, 12, 0, tzinfo=NY)
#: A moment after both 2025 DST changes, so the DST cases are in the past.
LATE_NOW = datetime(2025, 12, 1, 12, 0, tzinfo=NY)

NOT_A_DATE = "Received is not a date the bridge can read: type it like 2025-03-04 or 3/4/2025"
NOT_REAL = "Received is not a real date: check the day and month"
A_WORD = "Received says a word, not a date: type the date it happened (like 2025-03-04)"
AMBIGUOUS = (
    "Received is an ambiguous date (day and month could be swapped): "
    "write it as 2025-03-04 or set practice.date_order in the config"
)
BAD_TIME = "Received has a time that is not on the clock: check the hours and minutes"
FUTURE = "Received is in the future: check the year"
PAST = "Received is too far in the past: check the year"


def ny(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=NY)


def when(value: CellValue, **kwargs: Any) -> tuple[datetime | None, bool | None, str | None]:
    """parse_when with the test defaults, flattened for table comparison."""
    options: dict[str, Any] = {
        "column": "Received",
        "tz": NY,
        "date_order": None,
        "now": NOW,
    }
    options.update(kwargs)
    parsed = parse_when(value, **options)
    if parsed.value is None:
        return None, None, parsed.problem
    assert parsed.problem is None
    return parsed.value.at, parsed.value.has_time, None


# --------------------------------------------------------------------------------------------
# is_blank, cell_text
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "blank"),
    [
        (None, True),  # B1
        ("", True),  # B1
        ("   \t\n", True),  # B1 spaces only
        ("\u00a0\u00a0", True),  # B1 NBSP only
        ("\u200b\u200c\u200d\u2060\ufeff", True),  # B1 zero-width only
        (" \u200b\u00a0 ", True),  # B1 mixed
        ("x", False),
        (" a ", False),
        (0, False),
        (0.0, False),
        (False, False),
        (CellError("#REF!"), False),
    ],
)
def test_is_blank(value: CellValue, blank: bool) -> None:
    assert is_blank(value) is blank


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("abc", "abc"),
        (" keep  spaces ", " keep  spaces "),
        (45720.0, "45720"),
        (DateSerial(45720), "45720"),
        (45720, "45720"),
        (45720.5, "45720.5"),
        (0.1, "0.1"),
        (-0.0, "0"),
        (True, "TRUE"),
        (False, "FALSE"),
        (None, ""),
        (CellError("#N/A"), "#N/A"),
    ],
)
def test_cell_text(value: CellValue, text: str) -> None:
    assert cell_text(value) == text


# --------------------------------------------------------------------------------------------
# serial_to_datetime (B9)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("serial", "date1904", "expected"),
    [
        (45720, False, datetime(2025, 3, 4)),  # B9 Excel/Sheets serial
        (45720.5, False, datetime(2025, 3, 4, 12)),
        (45720.604166666664, False, datetime(2025, 3, 4, 14, 30)),  # rounds to the second
        (45720.99999999, False, datetime(2025, 3, 5)),  # rounds over midnight
        (61, False, datetime(1900, 3, 1)),
        (60, False, None),  # B9 Lotus's fake 1900-02-29
        (60.5, False, None),
        (59, False, datetime(1900, 2, 28)),
        (1, False, datetime(1900, 1, 1)),
        (2958465, False, datetime(9999, 12, 31)),
        (2958466, False, None),
        (-1, False, None),
        (float("nan"), False, None),
        (float("inf"), False, None),
        (0, True, datetime(1904, 1, 1)),  # B9 1904-epoch workbook
        (1, True, datetime(1904, 1, 2)),
        (60, True, datetime(1904, 3, 1)),
        (44258, True, datetime(2025, 3, 4)),
    ],
)
def test_serial_to_datetime(serial: float, date1904: bool, expected: datetime | None) -> None:
    assert serial_to_datetime(serial, date1904) == expected


# --------------------------------------------------------------------------------------------
# parse_when (B7-B11, B19)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "at", "has_time"),
    [
        # B8 ISO forms
        ("2025-03-04", ny(2025, 3, 4), False),
        ("2025-03-04 14:30", ny(2025, 3, 4, 14, 30), True),
        ("2025-03-04T14:30:00", ny(2025, 3, 4, 14, 30), True),
        ("2025-03-04t14:30:15.250", ny(2025, 3, 4, 14, 30, 15), True),
        ("2025/03/04", ny(2025, 3, 4), False),
        ("  2025-03-04\u00a0", ny(2025, 3, 4), False),  # surrounding spaces and NBSP
        ("\u200b2025-03-04", ny(2025, 3, 4), False),
        # B8 explicit offsets are converted to the practice zone
        ("2025-03-04T14:30:00Z", ny(2025, 3, 4, 9, 30), True),
        ("2025-03-04T14:30:00+01:00", ny(2025, 3, 4, 8, 30), True),
        ("2025-03-04T14:30:00-0800", ny(2025, 3, 4, 17, 30), True),
        # B7 one reading only: used whatever the order
        ("13/4/25", ny(2025, 4, 13), False),
        ("4/13/2025", ny(2025, 4, 13), False),
        ("4/4/25", ny(2025, 4, 4), False),  # both readings the same day
        # B8 month names
        ("4 Mar 2025", ny(2025, 3, 4), False),
        ("4 March 2025", ny(2025, 3, 4), False),
        ("March 4, 2025", ny(2025, 3, 4), False),
        ("Mar 4 2025", ny(2025, 3, 4), False),
        ("MARCH 4, 2025", ny(2025, 3, 4), False),
        ("Tue, 4 Mar 2025", ny(2025, 3, 4), False),
        ("Tuesday, March 4, 2025", ny(2025, 3, 4), False),
        ("4-Mar-25", ny(2025, 3, 4), False),
        ("4 March 14", ny(2014, 3, 4), False),  # two-digit year, like Excel's 4-Mar-14
        ("4th of March 2025", ny(2025, 3, 4), False),
        ("Sept 4, 2024", ny(2024, 9, 4), False),
        ("4 Sep 2024", ny(2024, 9, 4), False),
        # B8 no year: the nearest such day on or before today (2025-06-15)
        ("March 4", ny(2025, 3, 4), False),
        ("4 March", ny(2025, 3, 4), False),
        ("June 15", ny(2025, 6, 15), False),
        ("December 4", ny(2024, 12, 4), False),
        ("Feb 29", ny(2024, 2, 29), False),
        # B8 times after the date
        ("4 Mar 2025 2pm", ny(2025, 3, 4, 14), True),
        ("4 Mar 2025 2 pm", ny(2025, 3, 4, 14), True),
        ("4 Mar 2025 2:30 PM", ny(2025, 3, 4, 14, 30), True),
        ("4 Mar 2025 2:30pm", ny(2025, 3, 4, 14, 30), True),
        ("4 Mar 2025 2:30 p.m.", ny(2025, 3, 4, 14, 30), True),
        ("4 March 14:30", ny(2025, 3, 4, 14, 30), True),
        ("4 March 12pm", ny(2025, 3, 4, 12), True),
        ("March 4, 2025 at 9am", ny(2025, 3, 4, 9), True),
        ("2025-03-04 14:30:15", ny(2025, 3, 4, 14, 30, 15), True),
        ("2025-03-04 12am", ny(2025, 3, 4, 0), True),
        ("2025-03-04 12pm", ny(2025, 3, 4, 12), True),
        ("2025-03-04 12:45 AM", ny(2025, 3, 4, 0, 45), True),
        # B9 spreadsheet serials, as a date cell, a plain number, or text
        (DateSerial(45720), ny(2025, 3, 4), False),
        (DateSerial(45720.604166666664), ny(2025, 3, 4, 14, 30), True),
        (45720, ny(2025, 3, 4), False),
        (45720.5, ny(2025, 3, 4, 12), True),
        ("45720", ny(2025, 3, 4), False),
    ],
)
def test_parse_when_reads(value: CellValue, at: datetime, has_time: bool) -> None:
    got_at, got_has_time, problem = when(value)
    assert problem is None
    assert got_at == at
    assert got_at is not None and got_at.tzinfo is NY
    assert (got_at.year, got_at.month, got_at.day, got_at.hour, got_at.minute) == (
        at.year,
        at.month,
        at.day,
        at.hour,
        at.minute,
    )
    assert got_has_time is has_time


@pytest.mark.parametrize(
    ("value", "order", "at"),
    [
        ("3/4/25", "MDY", ny(2025, 3, 4)),  # B7
        ("3/4/25", "DMY", ny(2025, 4, 3)),  # B7
        ("3/4/2025", "MDY", ny(2025, 3, 4)),
        ("03-04-2025", "MDY", ny(2025, 3, 4)),
        ("4.3.2025", "DMY", ny(2025, 3, 4)),  # dots, European day first
        ("3/4/25 2:30 PM", "MDY", ny(2025, 3, 4, 14, 30)),
        ("04/03/2025 14:30", "DMY", ny(2025, 3, 4, 14, 30)),
    ],
)
def test_parse_when_date_order(value: str, order: str, at: datetime) -> None:
    assert when(value, date_order=order)[0] == at


@pytest.mark.parametrize(
    ("value", "kwargs", "problem"),
    [
        # B7 both readings valid, no order configured
        ("3/4/25", {}, AMBIGUOUS),
        ("03-04-2025", {}, AMBIGUOUS),
        ("4.3.2025", {}, AMBIGUOUS),
        ("3/4/2025 14:30", {}, AMBIGUOUS),
        # B7 a configured order is not second-guessed: the other reading is not tried
        ("13/4/25", {"date_order": "MDY"}, NOT_REAL),
        ("4/13/25", {"date_order": "DMY"}, NOT_REAL),
        # B10 relative words
        ("yesterday", {}, A_WORD),
        ("today", {}, A_WORD),
        ("Tomorrow", {}, A_WORD),
        ("ASAP", {}, A_WORD),
        ("tbd", {}, A_WORD),
        ("n/a", {}, A_WORD),
        ("N/A", {}, A_WORD),
        ("soon", {}, A_WORD),
        ("next week", {}, A_WORD),
        ("pending", {}, A_WORD),
        # unreadable text
        ("sometime in spring", {}, NOT_A_DATE),
        ("3/4", {}, AMBIGUOUS),  # no year, and no day/month order configured
        ("2025", {}, NOT_A_DATE),
        ("20250304", {}, NOT_A_DATE),
        ("4 Foo 2025", {}, NOT_A_DATE),
        ("March 4 14", {}, NOT_A_DATE),  # a bare number is not a time
        ("2025-03-04 noonish", {}, NOT_A_DATE),
        ("March 2025", {}, NOT_A_DATE),
        # B11 impossible dates
        ("2025-02-30", {}, NOT_REAL),
        ("13/13/2025", {}, NOT_REAL),
        ("2025-13-01", {}, NOT_REAL),
        ("2/29/2025", {"date_order": "MDY"}, NOT_REAL),
        ("31 April 2025", {}, NOT_REAL),
        ("April 31", {}, NOT_REAL),
        (DateSerial(60), {}, NOT_REAL),  # B9 the fake 1900-02-29
        # B8 times not on the clock
        ("2025-03-04 25:00", {}, BAD_TIME),
        ("2025-03-04 24:00", {}, BAD_TIME),
        ("2025-03-04 14:60", {}, BAD_TIME),
        ("2025-03-04 13pm", {}, BAD_TIME),
        ("2025-03-04 0am", {}, BAD_TIME),
        ("4 Mar 2025 14:30:61", {}, BAD_TIME),
        # B11 implausible years
        ("2052-01-01", {}, FUTURE),
        ("2025-06-17", {}, FUTURE),  # two days ahead
        ("1925-01-01", {}, PAST),
        ("3/4/1999", {"date_order": "MDY"}, PAST),
        (DateSerial(61), {}, PAST),
        (5, {}, PAST),
        (DateSerial(47500), {}, FUTURE),
        ("2028-01-01", {"allow_future": True}, FUTURE),  # more than two years ahead
        # serials out of range
        (DateSerial(0.5), {}, NOT_A_DATE),  # a time with no date
        (-3, {}, NOT_A_DATE),
        (3_000_000, {}, NOT_A_DATE),
        (float("nan"), {}, NOT_A_DATE),
        ("12345", {}, NOT_A_DATE),  # five digits but not a plausible serial
        # B19 errors and booleans
        (CellError("#REF!"), {}, "Received shows #REF!: fix the formula or type the date"),
        (CellError("#N/A"), {}, "Received shows #N/A: fix the formula or type the date"),
        (True, {}, "Received holds TRUE/FALSE, not a date: type the date"),
        (False, {}, "Received holds TRUE/FALSE, not a date: type the date"),
    ],
)
def test_parse_when_problems(value: CellValue, kwargs: dict[str, Any], problem: str) -> None:
    assert when(value, **kwargs) == (None, None, problem)


@pytest.mark.parametrize("value", [None, "", "   ", "\u00a0", "\u200b\t"])
def test_parse_when_blank(value: CellValue) -> None:  # B1, B2: empty is not a problem here
    assert when(value) == (None, None, None)


def test_parse_when_plausibility_edges() -> None:  # B11
    assert when("2025-06-16 11:59")[2] is None  # within a day of now
    assert when("2025-06-16 12:01")[2] == FUTURE
    assert when("2000-01-01")[2] is None  # exactly 25 years back is still fine
    assert when("1999-12-31")[2] == PAST
    appointment = {"column": "Appointment", "allow_future": True}
    assert when("2026-03-04 10:00", **appointment)[0] == ny(2026, 3, 4, 10)
    assert when("2027-06-14", **appointment)[0] == ny(2027, 6, 14)


def test_parse_when_message_names_the_column() -> None:
    parsed = parse_when("tbd", column="First Contact", tz=NY, date_order=None, now=NOW)
    assert parsed.problem is not None and parsed.problem.startswith("First Contact ")


@pytest.mark.parametrize(
    ("value", "now", "at"),
    [
        # B8 no year on a future-allowed column: the nearest such day either way
        ("Jan 5", datetime(2025, 12, 15, 9, tzinfo=NY), ny(2026, 1, 5)),
        ("Dec 20", datetime(2025, 12, 15, 9, tzinfo=NY), ny(2025, 12, 20)),
        ("Dec 20", datetime(2026, 1, 3, 9, tzinfo=NY), ny(2025, 12, 20)),
    ],
)
def test_parse_when_no_year_future_column(value: str, now: datetime, at: datetime) -> None:
    assert when(value, now=now, allow_future=True, column="Appointment")[0] == at


def test_parse_when_1904_workbook() -> None:  # B9
    assert when(DateSerial(44258), date1904=True)[0] == ny(2025, 3, 4)
    assert when("44258", date1904=True)[0] == ny(2025, 3, 4)
    assert when(DateSerial(45720), date1904=True)[2] == FUTURE  # 1900 serial read as 1904: 2029


def test_parse_when_now_in_another_zone() -> None:
    utc_now = NOW.astimezone(ZoneInfo("UTC"))
    assert when("2025-03-04", now=utc_now)[0] == ny(2025, 3, 4)


def test_parse_when_needs_aware_now() -> None:
    with pytest.raises(ValueError):
        parse_when(
            "2025-03-04", column="Received", tz=NY, date_order=None, now=datetime(2025, 6, 1)
        )


# DST (B8, B12, F23): a wall time that does not exist moves forward by the gap; one that exists
# twice takes its first (daylight-time) occurrence.
@pytest.mark.parametrize(
    ("value", "tz", "wall", "offset_hours", "fold"),
    [
        ("2025-03-09 02:30", NY, (2025, 3, 9, 3, 30), -4, 0),  # spring-forward gap
        ("3/9/2025 2:30 AM", NY, (2025, 3, 9, 3, 30), -4, 0),
        (DateSerial(45725 + 2.5 / 24), NY, (2025, 3, 9, 3, 30), -4, 0),
        ("2025-03-09 01:59", NY, (2025, 3, 9, 1, 59), -5, 0),
        ("2025-03-09 03:00", NY, (2025, 3, 9, 3, 0), -4, 0),
        ("2025-11-02 01:30", NY, (2025, 11, 2, 1, 30), -4, 0),  # fall-back fold: first one
        ("2025-11-02 02:30", NY, (2025, 11, 2, 2, 30), -5, 0),
        ("2025-11-02T06:30:00Z", NY, (2025, 11, 2, 1, 30), -5, 1),  # offset picks the second
        ("2025-03-30 02:30", BERLIN, (2025, 3, 30, 3, 30), 2, 0),  # Berlin gap
        ("2025-10-26 02:30", BERLIN, (2025, 10, 26, 2, 30), 2, 0),  # Berlin fold
        ("2025-03-09", NY, (2025, 3, 9, 0, 0), -5, 0),
    ],
)
def test_parse_when_dst(
    value: CellValue, tz: ZoneInfo, wall: tuple[int, ...], offset_hours: int, fold: int
) -> None:
    at, _, problem = when(value, tz=tz, now=LATE_NOW, date_order="MDY")
    assert problem is None and at is not None
    assert (at.year, at.month, at.day, at.hour, at.minute) == wall
    assert at.utcoffset() == timedelta(hours=offset_hours)
    assert at.fold == fold
    assert at.tzinfo is tz


# --------------------------------------------------------------------------------------------
# parse_phone (B13)
# --------------------------------------------------------------------------------------------

PHONE = "Patient Phone"
PHONE_MANY = f"{PHONE} holds more than one number: keep one here and put the other in Notes"
PHONE_LETTERS = f"{PHONE} is not a phone number: type the number with its area code"
PHONE_SHORT = f"{PHONE} is not a complete phone number: include the area code"
PHONE_E = (
    f"{PHONE} was turned into a number by the spreadsheet and lost digits: "
    "format the column as Text and type the number again"
)


@pytest.mark.parametrize(
    ("value", "expected", "problem"),
    [
        ("212-555-0100", "+12125550100", None),
        ("(212) 555-0100", "+12125550100", None),
        ("212.555.0100", "+12125550100", None),
        ("212/555-0100", "+12125550100", None),
        ("+1 212 555 0100", "+12125550100", None),
        ("1-212-555-0100", "+12125550100", None),
        ("+44 20 7946 0958", "+442079460958", None),  # a foreign number keeps its country
        (" 212-555-0100\u00a0", "+12125550100", None),
        # B13 extensions
        ("212-555-0100 ext 3", "+12125550100;ext=3", None),
        ("(212) 555-0100 ext. 3", "+12125550100;ext=3", None),
        ("212-555-0100 x3", "+12125550100;ext=3", None),
        ("212-555-0100 extension 3", "+12125550100;ext=3", None),
        ("212-555-0100, ext 3", "+12125550100;ext=3", None),
        # B13 float artefacts undone
        (2125550100.0, "+12125550100", None),
        (2125550100, "+12125550100", None),
        (12125550100.0, "+12125550100", None),
        ("2125550100.0", "+12125550100", None),
        # B13 E notation has lost digits for good
        ("2.12555E+09", None, PHONE_E),
        ("2.12555e9", None, PHONE_E),
        # B13 no area code, too short, invalid
        ("555-0100", None, PHONE_SHORT),
        ("5550100", None, PHONE_SHORT),
        ("12345", None, PHONE_SHORT),
        ("000-000-0000", None, PHONE_SHORT),
        (212.5, None, PHONE_SHORT),
        (-2125550100, None, PHONE_SHORT),
        # B13 letters
        ("call mom", None, PHONE_LETTERS),
        ("N/A", None, PHONE_LETTERS),
        ("1-800-FLOWERS", None, PHONE_LETTERS),  # vanity letters are not dialable as typed
        ("cell 212-555-0100", None, PHONE_LETTERS),
        # B13 two numbers
        ("212-555-0100 / 646-555-0199", None, PHONE_MANY),
        ("212-555-0100; 646-555-0199", None, PHONE_MANY),
        ("212-555-0100, 646-555-0199", None, PHONE_MANY),
        ("212-555-0100 or 646-555-0199", None, PHONE_MANY),
        ("212-555-0100 & 646-555-0199", None, PHONE_MANY),
        ("212-555-0100\n646-555-0199", None, PHONE_MANY),
        ("cell 212-555-0100 / home 646-555-0199", None, PHONE_MANY),
        # blank and non-text cells
        (None, None, None),
        ("", None, None),
        ("  \u200b", None, None),
        (True, None, f"{PHONE} holds TRUE/FALSE, not a phone number: type the number"),
        (CellError("#N/A"), None, f"{PHONE} shows #N/A: fix the formula or type the number"),
    ],
)
def test_parse_phone(value: CellValue, expected: str | None, problem: str | None) -> None:
    parsed = parse_phone(value, column=PHONE, region="US")
    assert (parsed.value, parsed.problem) == (expected, problem)


def test_parse_phone_region() -> None:  # B13 default region applies to national numbers
    assert parse_phone("020 7946 0958", column=PHONE, region="GB").value == "+442079460958"
    assert parse_phone(2079460958.0, column=PHONE, region="GB").value == "+442079460958"


# --------------------------------------------------------------------------------------------
# parse_email (B14, B16)
# --------------------------------------------------------------------------------------------

EMAIL = "Patient Email"
EMAIL_BAD = f"{EMAIL} is not a valid email address: check it (like name@example.com)"
EMAIL_MANY = f"{EMAIL} holds more than one address: keep one"
EMAIL_NONE = f"{EMAIL} says there is no address: leave it empty when there is none"
EMAIL_CONTROL = f"{EMAIL} contains a line break or control character: retype the address"


@pytest.mark.parametrize(
    ("value", "expected", "problem"),
    [
        ("j@x.com", "j@x.com", None),
        ("  J.Doe@Example.COM ", "J.Doe@Example.COM", None),  # as typed, never re-cased
        ("first.last+tag@sub.example.org", "first.last+tag@sub.example.org", None),
        ("John <j@x.com>", "j@x.com", None),  # B14 display-name form
        ('"Smith, John" <j@x.com>', "j@x.com", None),
        ("<j@x.com>", "j@x.com", None),
        ("jo@bücher.de", "jo@bücher.de", None),  # B14 IDN domain
        ("jo@xn--bcher-kva.de", "jo@xn--bcher-kva.de", None),
        ("a@x.com\n", "a@x.com", None),  # a trailing line break is just surrounding space
        # B14 invalid
        ("john@gmail", None, EMAIL_BAD),
        ("a@@b.com", None, EMAIL_BAD),
        ("john@", None, EMAIL_BAD),
        ("@x.com", None, EMAIL_BAD),
        ("jo hn@x.com", None, EMAIL_BAD),
        ("john.gmail.com", None, EMAIL_BAD),
        ("john@gmail..com", None, EMAIL_BAD),
        ("John <j@x.com", None, EMAIL_BAD),
        ("John <j@gmail>", None, EMAIL_BAD),
        (42, None, EMAIL_BAD),
        # B14 more than one
        ("a@x.com; b@y.com", None, EMAIL_MANY),
        ("a@x.com, b@y.com", None, EMAIL_MANY),
        ("a@x.com b@y.com", None, EMAIL_MANY),
        ("<a@x.com>, <b@y.com>", None, EMAIL_MANY),
        # B14 placeholders for "none"
        ("n/a", None, EMAIL_NONE),
        ("N/A", None, EMAIL_NONE),
        ("none", None, EMAIL_NONE),
        ("-", None, EMAIL_NONE),
        ("unknown", None, EMAIL_NONE),
        ("no email", None, EMAIL_NONE),
        ("Declined", None, EMAIL_NONE),
        # B16 header injection and bidi
        ("a@x.com\r\nBcc: e@v.com", None, EMAIL_CONTROL),
        ("a@x.com\nb@y.com", None, EMAIL_CONTROL),
        ("a\x00@x.com", None, EMAIL_CONTROL),
        ("moc.x@\u202ea", None, EMAIL_CONTROL),
        ("a\u2066@x.com", None, EMAIL_CONTROL),
        # blank and non-text cells
        (None, None, None),
        ("", None, None),
        ("\u00a0", None, None),
        (True, None, f"{EMAIL} holds TRUE/FALSE, not an email address: type the address"),
        (CellError("#REF!"), None, f"{EMAIL} shows #REF!: fix the formula or type the address"),
    ],
)
def test_parse_email(value: CellValue, expected: str | None, problem: str | None) -> None:
    parsed = parse_email(value, column=EMAIL)
    assert (parsed.value, parsed.problem) == (expected, problem)


# --------------------------------------------------------------------------------------------
# has_control_chars (B16)
# --------------------------------------------------------------------------------------------


def _b_word(raw: bytes) -> str:
    return "=?UTF-8?B?" + base64.b64encode(raw).decode() + "?="


@pytest.mark.parametrize(
    ("text", "bad"),
    [
        ("Dr. Jane O'Brien", False),
        ("María-José Nguyễn 张伟 مريم", False),
        ("tab\tis fine", False),
        ("=?UTF-8?Q?Mar=C3=ADa?=", False),  # an encoded word without a break is harmless
        (_b_word("María".encode()), False),
        ("line\nbreak", True),
        ("carriage\rreturn", True),
        ("nul\x00", True),
        ("bell\x07", True),
        ("esc\x1b[31m", True),
        ("del\x7f", True),
        ("next line\x85", True),
        ("line\u2028separator", True),
        ("para\u2029separator", True),
        ("rtl\u202eoverride", True),
        ("lre\u202a", True),
        ("isolate\u2066x\u2069", True),
        ("mark\u200e", True),
        ("mark\u200f", True),
        ("=?UTF-8?Q?=0A?=", True),  # B16 encoded-word header injection
        ("=?utf-8?q?x=0d=0aBcc:_a@b.c?=", True),
        ("Referred =?UTF-8?Q?by=0DX?= Smith", True),
        ("=?UTF-8?Q?nul=00?=", True),
        (_b_word(b"x\r\nBcc: a@b.c"), True),
    ],
)
def test_has_control_chars(text: str, bad: bool) -> None:
    assert has_control_chars(text) is bad


# --------------------------------------------------------------------------------------------
# parse_text, same_text, comparison_key (B15, B19)
# --------------------------------------------------------------------------------------------

NAME = "Patient First Name"


@pytest.mark.parametrize(
    ("value", "kwargs", "expected", "problem"),
    [
        # B15 kept byte-exact
        ("O'Brien", {}, "O'Brien", None),
        ("María-José", {}, "María-José", None),
        ("Mari\u0301a-Jose\u0301", {}, "Mari\u0301a-Jose\u0301", None),  # not re-normalised
        ("Nguyễn", {}, "Nguyễn", None),
        ("张伟", {}, "张伟", None),
        ("مريم", {}, "مريم", None),
        ("שרה", {}, "שרה", None),
        ("Zoë 🌻", {}, "Zoë 🌻", None),
        ("MCDONALD", {}, "MCDONALD", None),
        ("  Ann  Lee \u00a0", {}, "Ann  Lee", None),  # only the ends are trimmed
        ("=1+2", {}, "=1+2", None),  # B18 a formula-looking value is just text
        ("{{ secret }}", {}, "{{ secret }}", None),  # B20 data, never template source
        # B19 errors, booleans, numbers
        (CellError("#REF!"), {}, None, f"{NAME} shows #REF!: fix the formula or type the value"),
        (True, {}, None, f"{NAME} holds TRUE/FALSE: type the value"),
        (42.0, {}, "42", f"{NAME} holds a number: type the name"),
        (42.0, {"number_ok": True}, "42", None),
        (3.5, {"number_ok": True}, "3.5", None),
        # blank
        (None, {}, None, None),
        ("", {}, None, None),
        ("\u200b ", {}, None, None),
    ],
)
def test_parse_text(
    value: CellValue, kwargs: dict[str, Any], expected: str | None, problem: str | None
) -> None:
    parsed = parse_text(value, column=NAME, **kwargs)
    assert (parsed.value, parsed.problem) == (expected, problem)


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("María-José", "Mari\u0301a-Jose\u0301", True),  # B15 composed vs decomposed
        ("O'BRIEN", "o'brien", True),
        ("  Ann   Lee ", "ann lee", True),
        ("Ann\u00a0Lee", "Ann Lee", True),
        ("Ann\u200bLee", "AnnLee", True),
        ("Straße", "STRASSE", True),
        ("Nguyễn", "Nguyen", False),  # accents matter
        ("Ann Lee", "Anne Lee", False),
        ("O'Brien", "OBrien", False),
    ],
)
def test_same_text(a: str, b: str, same: bool) -> None:
    assert same_text(a, b) is same
    assert (comparison_key(a) == comparison_key(b)) is same


def test_comparison_key() -> None:
    assert comparison_key("  María  JOSÉ ") == "maría josé"


# --------------------------------------------------------------------------------------------
# parse_choice (B25, B26)
# --------------------------------------------------------------------------------------------

CONSENT = "Consent to Update Referrer"
CONSENT_ASK = (
    f"{CONSENT} is not a plain Yes or No: choose Yes or No (until then the bridge treats it as No)"
)


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        ("fit", "Good fit", "Good fit"),
        ("fit", "good", "Good fit"),
        ("fit", "YES", "Good fit"),
        ("fit", "fit", "Good fit"),
        ("fit", "goodfit", "Good fit"),
        ("fit", "Great fit!", "Good fit"),
        ("fit", "no", "Not a fit"),
        ("fit", "not fit", "Not a fit"),
        ("fit", "Not a fit", "Not a fit"),
        ("fit", "poor fit", "Not a fit"),
        ("fit", "bad-fit", "Not a fit"),
        ("fit", "unsure", "Unsure"),
        ("fit", "Maybe", "Unsure"),
        ("fit", "?", "Unsure"),
        ("fit", "unknown", "Unsure"),
        ("fit", "TBD", "Unsure"),
        ("visit", "Scheduled", "Scheduled"),
        ("visit", "booked", "Scheduled"),
        ("visit", "sched.", "Scheduled"),
        ("visit", "attended", "Attended"),
        ("visit", "Seen", "Attended"),
        ("visit", "came", "Attended"),
        ("visit", "showed", "Attended"),
        ("visit", "showed up", "Attended"),
        ("visit", "arrived", "Attended"),
        ("visit", "No show", "No-show"),  # B25
        ("visit", "NS", "No-show"),  # B25
        ("visit", "noshow", "No-show"),
        ("visit", "No-Show", "No-show"),
        ("visit", "DNA", "No-show"),
        ("visit", "did not attend", "No-show"),
        ("visit", "missed", "No-show"),
        ("visit", "cancelled", "Cancelled"),
        ("visit", "canceled", "Cancelled"),
        ("visit", "cancel", "Cancelled"),
        ("visit", "CX", "Cancelled"),
        ("visit", "cxl", "Cancelled"),
        ("outcome", "ongoing", "Ongoing care"),
        ("outcome", "Ongoing care", "Ongoing care"),
        ("outcome", "long term", "Ongoing care"),
        ("outcome", "longterm", "Ongoing care"),
        ("outcome", "Long-term care", "Ongoing care"),
        ("outcome", "active", "Ongoing care"),
        ("outcome", "completed", "Completed"),
        ("outcome", "complete", "Completed"),
        ("outcome", "done", "Completed"),
        ("outcome", "discharged", "Completed"),
        ("outcome", "finished", "Completed"),
        ("outcome", "not a fit", "Not a fit"),
        ("outcome", "not fit", "Not a fit"),
        ("outcome", "nofit", "Not a fit"),
        ("outcome", "lost", "Lost"),
        ("outcome", "no response", "Lost"),
        ("outcome", "lost to follow-up", "Lost"),
        ("outcome", "LTFU", "Lost"),
    ],
)
def test_parse_choice_synonyms(kind: Any, value: str, expected: str) -> None:
    parsed = parse_choice(f"  {value} ", column=kind.title(), kind=kind)
    assert (parsed.value, parsed.problem) == (expected, None)


@pytest.mark.parametrize(
    ("kind", "value", "problem"),
    [
        ("fit", "meh", "Fit is not one of Good fit, Not a fit, Unsure: pick one from the list"),
        (
            "visit",
            "rescheduled?",
            "Visit is not one of Scheduled, Attended, No-show, Cancelled: pick one from the list",
        ),
        (
            "outcome",
            "moved away",
            "Outcome is not one of Ongoing care, Completed, Not a fit, Lost: pick one from the list",
        ),
        ("fit", 3, "Fit is not one of Good fit, Not a fit, Unsure: pick one from the list"),
        ("fit", "??", "Fit is not one of Good fit, Not a fit, Unsure: pick one from the list"),
        ("visit", CellError("#N/A"), "Visit shows #N/A: fix the formula or pick one from the list"),
        ("visit", True, "Visit holds TRUE/FALSE: pick one from the list"),
        ("fit", None, None),
        ("outcome", " \u00a0", None),
    ],
)
def test_parse_choice_problems(kind: Any, value: CellValue, problem: str | None) -> None:
    assert parse_choice(value, column=kind.title(), kind=kind) == Parsed(None, problem)


@pytest.mark.parametrize(
    ("value", "expected", "problem"),
    [
        ("yes", "Yes", None),
        ("Yes", "Yes", None),
        ("YES", "Yes", None),
        ("y", "Yes", None),
        (" Y ", "Yes", None),
        ("no", "No", None),
        ("N", "No", None),
        (None, "No", None),  # B26 blank: fail closed, nothing to fix
        ("", "No", None),
        ("\u00a0", "No", None),
        ("yes (verbal)", "No", CONSENT_ASK),  # B26
        ("Y?", "No", CONSENT_ASK),  # B26
        ("maybe", "No", CONSENT_ASK),
        ("verbal ok", "No", CONSENT_ASK),
        ("yes.", "No", CONSENT_ASK),
        ("yeah", "No", CONSENT_ASK),
        (True, "No", CONSENT_ASK),
        (1, "No", CONSENT_ASK),
        (CellError("#REF!"), "No", CONSENT_ASK),
    ],
)
def test_parse_consent(value: CellValue, expected: str, problem: str | None) -> None:
    parsed = parse_choice(value, column=CONSENT, kind="consent")
    assert (parsed.value, parsed.problem) == (expected, problem)


# --------------------------------------------------------------------------------------------
# classify_how_heard, source_tag_for (B25)
# --------------------------------------------------------------------------------------------

HH_MANY = (
    "How Heard matches more than one channel: pick one from the list, "
    "or set its tag on the Sources tab"
)
HH_UNKNOWN = (
    "How Heard is not a known channel: pick one from the list, or set its tag on the Sources tab"
)
HH_EMPTY = "How Heard is empty: pick how the patient heard of the practice"


@pytest.mark.parametrize(
    ("value", "channel", "problem"),
    [
        # channel names win
        ("Provider", "Provider", None),
        ("provider", "Provider", None),
        ("Walk-in", "Walk-in", None),
        ("walk in", "Walk-in", None),
        ("WALKIN", "Walk-in", None),
        ("social media", "Social media", None),
        ("Patient", "Patient", None),
        ("other", "Other", None),
        # B25 keywords, whole words only
        ("dr referral", "Provider", None),
        ("Dr. Smith", "Provider", None),
        ("referral from Dr Patel's office", "Provider", None),
        ("PCP", "Provider", None),
        ("her chiropractor", "Provider", None),
        ("cmd", None, HH_UNKNOWN),  # "md" must not match inside a word
        ("friend", "Patient", None),
        ("word of mouth", "Patient", None),
        ("Google search", "Google", None),
        ("googled", "Google", None),
        ("FB", "Social media", None),
        ("Instagram ad", "Social media", None),
        ("Psychology Today", "Directory", None),
        ("zocdoc", "Directory", None),
        ("health fair", "Event", None),
        ("saw the sign", "Walk-in", None),
        ("walked in", "Walk-in", None),
        # ambiguous, unknown, empty
        ("friend saw on facebook", None, HH_MANY),
        ("doctor's facebook page", None, HH_MANY),
        ("xyz", None, HH_UNKNOWN),
        ("???", None, HH_UNKNOWN),
        (12, None, HH_UNKNOWN),
        (None, None, HH_EMPTY),
        ("", None, HH_EMPTY),
        (" \u00a0\u200b", None, HH_EMPTY),
        (
            CellError("#REF!"),
            None,
            "How Heard shows #REF!: fix the formula or pick one from the list",
        ),
        (True, None, "How Heard holds TRUE/FALSE: pick one from the list"),
    ],
)
def test_classify_how_heard(value: CellValue, channel: str | None, problem: str | None) -> None:
    parsed = classify_how_heard(value, DEFAULT_HOW_HEARD_KEYWORDS)
    assert (parsed.value, parsed.problem) == (channel, problem)


def test_classify_how_heard_custom_keywords() -> None:
    keywords = {"Event": ["Rotary lunch"], "Provider": ["Smith Clinic"], "Other": []}
    assert classify_how_heard("rotary  lunch", keywords).value == "Event"
    assert classify_how_heard("smith clinic", keywords).value == "Provider"
    assert classify_how_heard("dr", keywords).problem == HH_UNKNOWN  # defaults not merged in
    assert classify_how_heard("rotary lunch", {"Nonsense": ["rotary"]}).problem == HH_UNKNOWN


def test_default_keywords_cover_channels() -> None:
    assert set(DEFAULT_HOW_HEARD_KEYWORDS) == set(CHANNELS)


@pytest.mark.parametrize(
    ("channel", "tag"),
    [
        ("Provider", "Provider Referral"),
        ("Patient", "Patient Referral"),
        ("Google", "Self-Referral"),
        ("Social media", "Self-Referral"),
        ("Directory", "Self-Referral"),
        ("Event", "Self-Referral"),
        ("Walk-in", "Self-Referral"),
        ("Other", "Self-Referral"),
        (None, "Unknown"),
    ],
)
def test_source_tag_for(channel: str | None, tag: str) -> None:
    assert source_tag_for(channel) == tag


# --------------------------------------------------------------------------------------------
# Messages never echo patient data
# --------------------------------------------------------------------------------------------

CANARY_VALUES: list[str] = [
    "Zyxwq call mom",
    "Zyxwq@@example.com",
    "zyxwq@example.com; other.zyxwq@example.com",
    "zyxwq 212-555-0100 / 646-555-0199",
    "4 Zyxwq 2025",
    "zyxwq",
    "13/13/2025",
    "2099-01-01 zyxwq",
    "zyxwq\r\nBcc: x@y.z",
    "Y? zyxwq",
]


@pytest.mark.parametrize("value", CANARY_VALUES)
def test_messages_do_not_echo_values(value: str) -> None:
    problems = [
        parse_when(value, column="Received", tz=NY, date_order=None, now=NOW).problem,
        parse_phone(value, column=PHONE, region="US").problem,
        parse_email(value, column=EMAIL).problem,
        parse_choice(value, column="Visit", kind="visit").problem,
        parse_choice(value, column=CONSENT, kind="consent").problem,
        classify_how_heard(value, DEFAULT_HOW_HEARD_KEYWORDS).problem,
    ]
    for problem in problems:
        assert problem is not None
        assert "zyxwq" not in problem.lower()
        assert value not in problem
        assert "13/13" not in problem and "2099" not in problem and "555-01" not in problem
        assert "\n" not in problem and "\r" not in problem


def test_error_value_not_echoed_unless_it_is_an_error_code() -> None:
    parsed = parse_text(CellError("Jane Doe 212-555-0100"), column=NAME)
    assert parsed.problem == f"{NAME} shows an error: fix the formula or type the value"


@pytest.mark.parametrize(
    ("text", "order", "expected"),
    [
        ("11/3", "MDY", datetime(2024, 11, 3, tzinfo=NY)),  # nearest past 3 November
        ("11/3", "DMY", datetime(2025, 3, 11, tzinfo=NY)),
        ("6/15 2pm", "MDY", datetime(2025, 6, 15, 14, 0, tzinfo=NY)),
        ("13/4", None, datetime(2025, 4, 13, tzinfo=NY)),  # only one reading is a date
    ],
)
def test_slash_dates_without_a_year_take_the_nearest_past_year(
    text: str, order: str | None, expected: datetime
) -> None:
    parsed = parse_when(text, column="Received", tz=NY, date_order=order, now=NOW)  # type: ignore[arg-type]
    assert parsed.problem is None
    assert parsed.value is not None and parsed.value.at == expected
