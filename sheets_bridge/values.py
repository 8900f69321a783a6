"""Reading what staff typed into one cell: dates, phones, emails, names and dropdown values.

Staff type freely into the Referrals tab, so every reader here accepts the common written forms
and says plainly what is wrong with the rest. The rules (RELIABILITY.md, BAD-INPUT catalog B7-B26):

* A reader never raises on cell content. It returns ``Parsed(value, problem)``: ``value`` is what
  the rules may use (``None`` when the cell is empty or cannot be read) and ``problem`` is one
  Attention line, or ``None``.
* A problem is one line of plain words that starts with the column name and says what to do. It
  never repeats the cell's value, because Attention lines also reach logs and the Bridge Log and
  cell values are patient data. Spreadsheet error codes (``#REF!``) are the one exception: they
  are not patient data and they tell staff which formula broke.
* Nothing is "fixed" silently: a value is used as typed or reported. Where a guess would be
  needed (``3/4/25`` with no configured day/month order) the reader asks instead.

Everything is pure (no clock, no I/O): ``now`` and the practice time zone come from the caller, so
a cycle reads every row against the same moment and tests never see the real clock. The readers
run on every row every cycle (10,000 rows and several date columns), so regexes are compiled once,
the common forms take a short path, and values that repeat across rows are memoised.
"""

from __future__ import annotations

import binascii
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Generic, Literal, TypeAlias, TypeVar
from zoneinfo import ZoneInfo

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from sheets_bridge.model import CHANNELS, CellError, CellValue

__all__ = [
    "DEFAULT_HOW_HEARD_KEYWORDS",
    "Parsed",
    "When",
    "cell_text",
    "classify_how_heard",
    "comparison_key",
    "format_moment",
    "has_control_chars",
    "is_blank",
    "parse_choice",
    "parse_email",
    "parse_phone",
    "parse_text",
    "parse_when",
    "same_text",
    "serial_to_datetime",
    "source_tag_for",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Parsed(Generic[T]):
    """What a reader made of one cell.

    ``value`` is ``None`` when the cell is empty or could not be read (the rules that need it are
    then skipped, never guessed); ``problem`` is the Attention line to show, or ``None``. A few
    readers return both (consent falls back to "No" and still asks for a plain answer).
    """

    value: T | None
    problem: str | None


@dataclass(frozen=True, slots=True)
class When:
    """A date or date-time read from a cell, placed in the practice's time zone.

    ``has_time`` is False for a date-only value (``at`` is then local midnight), so the rules can
    tell "received on the 4th" from "received at midnight on the 4th" when computing deadlines.
    """

    at: datetime
    has_time: bool


# --------------------------------------------------------------------------------------------
# Blank cells and text forms of values
# --------------------------------------------------------------------------------------------

#: Characters that make a cell look empty: every Unicode space (NBSP, narrow NBSP, ideographic
#: space...) plus the zero-width characters that paste in from web pages and chat apps (B1).
_ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
_BLANK_CHARS = "".join(chr(c) for c in range(0x3001) if chr(c).isspace()) + _ZERO_WIDTH


def is_blank(value: CellValue) -> bool:
    """True when a cell holds nothing a person typed on purpose (B1).

    Spaces, NBSP and zero-width characters alone count as empty: a row of them must not get a
    Referral ID or Attention lines. Numbers, booleans and error values are never blank.
    """
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip(_BLANK_CHARS)
    return False


def _trim(s: str) -> str:
    """``s`` without leading/trailing spaces, NBSP and zero-width characters; inside untouched."""
    return s.strip(_BLANK_CHARS)


def cell_text(value: CellValue) -> str:
    """How a value reads as text, for comparisons and for writing back.

    The spreadsheet shows ``45720`` for the number 45720.0 and ``TRUE`` for a boolean, so that is
    what staff expect to see when the bridge echoes a value into another tab.
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if value.is_integer():
        return str(int(value))
    return str(float(value))


_ERROR_CODE = re.compile(r"#[A-Z0-9/_.!?]{1,15}")


def _error_text(value: CellError) -> str:
    """The error code to echo in a message, or a neutral word if the value is not a pure code.

    Error codes are safe to show; anything else a backend might have put in a ``CellError`` is
    not checked to be free of patient data, so it is not echoed.
    """
    text = str(value).strip()
    return text if _ERROR_CODE.fullmatch(text) else "an error"


# --------------------------------------------------------------------------------------------
# Dates and times (B7-B11, B19)
# --------------------------------------------------------------------------------------------

_MAX_SERIAL = 2_958_465  # 9999-12-31, the last day a spreadsheet can show
_EPOCH_1900 = datetime(1899, 12, 30)  # Excel 1900 system from serial 61 on, and Google Sheets
_EPOCH_1900_EARLY = datetime(1899, 12, 31)  # serials 1-59: before Lotus's fake 1900-02-29
_EPOCH_1904 = datetime(1904, 1, 1)


def serial_to_datetime(serial: float, date1904: bool) -> datetime | None:
    """The naive date-time a spreadsheet serial stands for, or ``None`` when there is none.

    Excel's 1900 system counts 1900-02-29, a day that never existed (kept from Lotus 1-2-3), so
    serial 60 is no date at all and serials before it are one day off from the 1899-12-30 epoch
    that applies from 61 on. Old Mac workbooks count from 1904-01-01. The fraction is the time of
    day, rounded to the nearest second because it is stored in binary and 14:30 comes back as
    14:29:59.99999.
    """
    if not math.isfinite(serial) or serial < 0 or serial > _MAX_SERIAL + 1:
        return None
    day, seconds = divmod(round(serial * 86_400), 86_400)
    if day > _MAX_SERIAL:
        return None
    if date1904:
        base = _EPOCH_1904
    elif 1 <= day < 60:
        base = _EPOCH_1900_EARLY
    elif day == 60:
        return None
    else:
        base = _EPOCH_1900
    try:
        return base + timedelta(days=day, seconds=seconds)
    except OverflowError:
        return None


_MONTHS: dict[str, int] = {}
for _number, _names in enumerate(
    (
        ("jan", "january"),
        ("feb", "february"),
        ("mar", "march"),
        ("apr", "april"),
        ("may",),
        ("jun", "june"),
        ("jul", "july"),
        ("aug", "august"),
        ("sep", "sept", "september"),
        ("oct", "october"),
        ("nov", "november"),
        ("dec", "december"),
    ),
    start=1,
):
    for _name in _names:
        _MONTHS[_name] = _number

_DAYS_IN_MONTH = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

#: Words staff type instead of a date. Each changes meaning as days pass, so none is read (B10).
_RELATIVE_WORDS = frozenset(
    {
        "yesterday",
        "today",
        "tomorrow",
        "tonight",
        "now",
        "asap",
        "tbd",
        "tba",
        "na",
        "soon",
        "later",
        "nextweek",
        "lastweek",
        "thisweek",
        "pending",
        "unknown",
        "none",
    }
)
_NOT_WORD = re.compile(r"[\W_]+")

# Text forms, matched on the lowercased, trimmed cell. Each leaves the rest (a time) in a group.
_ISO = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(.*)", re.DOTALL)
_NUMERIC = re.compile(r"(\d{1,2})([-/.])(\d{1,2})\2(\d{4}|\d{2})(?![\d:])(.*)", re.DOTALL)
#: "11/3" with no year (slashes only: "11.3" or "11-3" read too much like numbers or ranges).
_NUMERIC_NO_YEAR = re.compile(r"(\d{1,2})/(\d{1,2})(?![\d/:])(.*)", re.DOTALL)
_WEEKDAY = re.compile(
    r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday"
    r"|mon|tues|tue|wed|thurs|thur|thu|fri|sat|sun)\.?,?\s+"
)
_YEAR_AFTER = r"(\d{4}(?![\d:])|\d{2}(?![\d:]|\s*[ap]\.?\s*m\b))"
_DAY_MONTH = re.compile(
    r"(\d{1,2})(?:st|nd|rd|th)?[\s\-/.]*(?:of\s+)?([a-z]+)\.?"
    r"(?:[\s,\-/.]+" + _YEAR_AFTER + r")?(.*)",
    re.DOTALL,
)
_MONTH_DAY = re.compile(
    r"([a-z]+)\.?[\s\-/.]*(\d{1,2})(?!\d)(?:st|nd|rd|th)?(?:[\s,\-/.]+(\d{4})(?![\d:]))?(.*)",
    re.DOTALL,
)
_TIME = re.compile(
    r"[\s,]*(?:t|at\s*|@\s*)?"
    r"(\d{1,2})(?::(\d{2})(?::(\d{2})(?:[.,]\d+)?)?)?"
    r"\s*(?:([ap])\.?\s*m\.?)?"
    r"\s*(z|utc|gmt|[+-]\d{2}(?::?\d{2})?)?\s*",
    re.DOTALL,
)

Order: TypeAlias = Literal["MDY", "DMY"] | None


class _Unreadable(Exception):
    """Internal: the text is not a date; ``message`` is the Attention line (without column)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


_NOT_A_DATE = "is not a date the bridge can read: type it like 2025-03-04 or 3/4/2025"
_NOT_REAL = "is not a real date: check the day and month"
_BAD_TIME = "has a time that is not on the clock: check the hours and minutes"
_AMBIGUOUS = (
    "is an ambiguous date (day and month could be swapped): "
    "write it as 2025-03-04 or set practice.date_order in the config"
)
_A_WORD = "says a word, not a date: type the date it happened (like 2025-03-04)"


def _is_real(year: int, month: int, day: int) -> bool:
    """True when the calendar has this day (Feb 29 only in leap years)."""
    if not (1 <= year <= 9999 and 1 <= month <= 12 and 1 <= day <= _DAYS_IN_MONTH[month]):
        return False
    return not (month == 2 and day == 29 and not _is_leap(year))


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _two_digit_year(text: str) -> int:
    """Years as typed: two digits pivot at 70 (00-69 are 20xx, 70-99 are 19xx), like Excel."""
    year = int(text)
    if len(text) == 2:
        return year + (2000 if year < 70 else 1900)
    return year


def _parse_time(rest: str) -> tuple[int, int, int, tzinfo | None] | None:
    """Hours, minutes, seconds and an explicit offset from the text after a date.

    ``None`` when there is no time; raises ``_Unreadable`` for text that is not a time or for a
    time that is not on the clock (25:00, 13pm). A bare number ("4 March 14") is not a time: it
    needs minutes or am/pm.
    """
    if not rest or rest.isspace():
        return None
    m = _TIME.fullmatch(rest)
    if m is None:
        raise _Unreadable(_NOT_A_DATE)
    hh, mm, ss, ampm, zone = m.groups()
    if mm is None and ampm is None:
        raise _Unreadable(_NOT_A_DATE)
    hour = int(hh)
    minute = int(mm) if mm is not None else 0
    second = int(ss) if ss is not None else 0
    if ampm is not None:
        if not 1 <= hour <= 12:
            raise _Unreadable(_BAD_TIME)
        hour %= 12
        if ampm == "p":
            hour += 12
    if hour > 23 or minute > 59 or second > 59:
        raise _Unreadable(_BAD_TIME)
    offset: tzinfo | None = None
    if zone is not None:
        if zone in ("z", "utc", "gmt"):
            offset = UTC
        else:
            sign = -1 if zone[0] == "-" else 1
            digits = zone[1:].replace(":", "")
            minutes = int(digits[:2]) * 60 + (int(digits[2:]) if len(digits) > 2 else 0)
            if minutes >= 24 * 60:
                raise _Unreadable(_BAD_TIME)
            offset = timezone(sign * timedelta(minutes=minutes))
    return hour, minute, second, offset


def _year_for(month: int, day: int, today: date, allow_future: bool) -> int:
    """The year staff meant when they typed a day and month only (B8).

    Past events (Received, First Contact) take the nearest such day on or before today. Future
    ones (Appointment) take the nearest such day in either direction, so "Jan 5" typed in
    December is next January. Feb 29 searches back to the last leap year.
    """
    if allow_future:
        best: int | None = None
        for year in (today.year - 1, today.year, today.year + 1):
            if _is_real(year, month, day) and (
                best is None
                or abs((date(year, month, day) - today).days)
                < abs((date(best, month, day) - today).days)
            ):
                best = year
        if best is not None:
            return best
    for year in range(today.year, today.year - 9, -1):
        if _is_real(year, month, day) and date(year, month, day) <= today:
            return year
    raise _Unreadable(_NOT_REAL)


@dataclass(frozen=True, slots=True, eq=False)
class _Frame:
    """What plausibility needs from ``now``, computed once per cycle rather than once per cell.

    Compared and hashed by identity (``eq=False``): it is part of the memo key of each cell.
    """

    today: date
    allow_future: bool
    earliest_year: int
    latest: datetime
    latest_year: int


_last_frame: tuple[datetime, ZoneInfo, bool, _Frame] | None = None


def _frame(now: datetime, tz: ZoneInfo, allow_future: bool) -> _Frame:
    """The frame for this cycle. One cycle passes the same objects for every cell, so the last
    frame is kept by identity: hashing an aware datetime would cost a time-zone lookup per cell."""
    global _last_frame
    last = _last_frame
    if last is not None and last[0] is now and last[1] is tz and last[2] is allow_future:
        return last[3]
    frame = _make_frame(now, tz, allow_future)
    _last_frame = (now, tz, allow_future, frame)
    return frame


@lru_cache(maxsize=64)
def _make_frame(now: datetime, tz: ZoneInfo, allow_future: bool) -> _Frame:
    local = now.astimezone(tz)
    latest = now + (timedelta(days=731) if allow_future else timedelta(days=1))
    return _Frame(
        today=local.date(),
        allow_future=allow_future,
        earliest_year=local.year - 25,
        latest=latest,
        latest_year=latest.astimezone(tz).year,
    )


def _text_to_naive(
    text: str, date_order: Order, frame: _Frame, allow_future: bool, date1904: bool
) -> tuple[datetime, bool, tzinfo | None]:
    """Read a trimmed, lowercased text cell: (naive local date-time, has_time, offset if given).

    Raises ``_Unreadable`` with the message (without the column name) for anything else.
    """
    m = _ISO.fullmatch(text)
    if m is not None:
        year, month, day = int(m[1]), int(m[2]), int(m[3])
        rest = m[4]
    elif (m := _NUMERIC.fullmatch(text)) is not None:
        a, b = int(m[1]), int(m[3])
        year = _two_digit_year(m[4])
        rest = m[5]
        if date_order == "MDY":
            month, day = a, b
        elif date_order == "DMY":
            month, day = b, a
        else:
            mdy, dmy = _is_real(year, a, b), _is_real(year, b, a)
            if mdy and dmy and a != b:
                raise _Unreadable(_AMBIGUOUS)
            month, day = (a, b) if mdy else (b, a)
    elif (m := _NUMERIC_NO_YEAR.fullmatch(text)) is not None:
        # "11/3" or "11/3 2pm": the year is the one that makes it the nearest past date (like
        # "Nov 3"), in the configured day/month order.
        a, b = int(m[1]), int(m[2])
        if date_order == "MDY":
            month, day = a, b
        elif date_order == "DMY":
            month, day = b, a
        else:
            mdy, dmy = _is_real(2000, a, b), _is_real(2000, b, a)
            if mdy and dmy and a != b:
                raise _Unreadable(_AMBIGUOUS)
            month, day = (a, b) if mdy else (b, a)
        if not _is_real(2000, month, day):
            raise _Unreadable(_NOT_REAL)
        year = _year_for(month, day, frame.today, allow_future)
        rest = m[3]
    elif text.isdigit() and text.isascii():
        # A serial number pasted or imported as text ("45720"): five digits and a plausible day.
        serial = int(text)
        if len(text) == 5 and 20_000 <= serial <= 80_000:
            naive = serial_to_datetime(serial, date1904)
            if naive is not None:
                return naive, False, None
        raise _Unreadable(_NOT_A_DATE)
    elif _NOT_WORD.sub("", text) in _RELATIVE_WORDS:
        raise _Unreadable(_A_WORD)
    else:
        return _month_name_to_naive(text, frame, allow_future)
    if not _is_real(year, month, day):
        raise _Unreadable(_NOT_REAL)
    clock = _parse_time(rest)
    if clock is None:
        return datetime(year, month, day), False, None
    return datetime(year, month, day, clock[0], clock[1], clock[2]), True, clock[3]


def _month_name_to_naive(
    text: str, frame: _Frame, allow_future: bool
) -> tuple[datetime, bool, tzinfo | None]:
    """Forms with a month name: "4 Mar 2025", "March 4, 2025", "Tue, 4 Mar 2025 2pm", "4 March"."""
    w = _WEEKDAY.match(text)
    if w is not None:
        text = text[w.end() :]
    m = _DAY_MONTH.fullmatch(text)
    if m is not None and m[2] in _MONTHS:
        day, month, year_text, rest = int(m[1]), _MONTHS[m[2]], m[3], m[4]
    else:
        m = _MONTH_DAY.fullmatch(text)
        if m is None or m[1] not in _MONTHS:
            raise _Unreadable(_NOT_A_DATE)
        month, day, year_text, rest = _MONTHS[m[1]], int(m[2]), m[3], m[4]
    if year_text is not None:
        year = _two_digit_year(year_text)
        if not _is_real(year, month, day):
            raise _Unreadable(_NOT_REAL)
    elif not _is_real(2000, month, day):  # 2000 is a leap year: only impossible days fail
        raise _Unreadable(_NOT_REAL)
    else:
        year = _year_for(month, day, frame.today, allow_future)
    clock = _parse_time(rest)
    if clock is None:
        return datetime(year, month, day), False, None
    return datetime(year, month, day, clock[0], clock[1], clock[2]), True, clock[3]


def _place(naive: datetime, offset: tzinfo | None, tz: ZoneInfo) -> datetime:
    """Put a wall-clock time into the practice zone (or convert one that carried an offset).

    A time in the spring-forward gap (02:30 on a DST start night) does not exist: going through
    UTC moves it forward by the gap, to 03:30, which is what a clock that was not changed yet
    would have shown. A time in the autumn fold (01:30 twice) takes the first, daylight-time
    occurrence (fold=0).
    """
    if offset is not None:
        return naive.replace(tzinfo=offset).astimezone(tz)
    # Built with positional arguments: datetime.replace() costs several times more, and this
    # runs for every date cell of every row.
    y, mo, d, h, mi, s = naive.year, naive.month, naive.day, naive.hour, naive.minute, naive.second
    aware = datetime(y, mo, d, h, mi, s, 0, tz)
    # Fast path (all but two hours a year): both folds agree, the wall time exists exactly once.
    # In a gap fold=0 has the earlier (smaller) offset; in a fold fold=0 is the larger one.
    before, after = aware.utcoffset(), datetime(y, mo, d, h, mi, s, 0, tz, fold=1).utcoffset()
    if before is None or after is None or before >= after:
        return aware
    return aware.astimezone(UTC).astimezone(tz)


def parse_when(
    value: CellValue,
    *,
    column: str,
    tz: ZoneInfo,
    date_order: Order,
    now: datetime,
    date1904: bool = False,
    allow_future: bool = False,
) -> Parsed[When]:
    """Read a date or date-time cell (Received, First Contact, Appointment) (B7-B11, B19).

    Accepts spreadsheet serials (in the workbook's epoch), ISO dates, numeric dates in the
    practice's day/month order, dates with month names, and a time after any of them. Naive values
    are the practice's wall clock. A value that is not plausible (more than a day ahead, or with
    ``allow_future`` more than two years ahead; more than 25 years back) is reported and not
    used, because a wrong year would silently skew every deadline and summary.
    """
    if value is None:
        return _EMPTY_WHEN
    if now.tzinfo is None:
        raise ValueError("parse_when needs an aware 'now'")
    if isinstance(value, bool):
        return Parsed(None, f"{column} holds TRUE/FALSE, not a date: type the date")
    if isinstance(value, CellError):
        return Parsed(
            None, f"{column} shows {_error_text(value)}: fix the formula or type the date"
        )
    return _read_when(value, column, tz, date_order, _frame(now, tz, allow_future), date1904)


@lru_cache(maxsize=16_384, typed=True)
def _read_when(
    value: str | float,
    column: str,
    tz: ZoneInfo,
    date_order: Order,
    frame: _Frame,
    date1904: bool,
) -> Parsed[When]:
    """``parse_when`` for a text or number cell, memoised for the cycle.

    Dates repeat across rows (many referrals arrive on the same day) and the result depends only
    on these arguments, ``frame`` standing for ``now`` (and ``allow_future``) of this cycle.
    """
    offset: tzinfo | None = None
    allow_future = frame.allow_future
    if isinstance(value, str):
        text = value.strip(_BLANK_CHARS)
        if not text:
            return _EMPTY_WHEN
        text = text.lower()
        try:
            naive, has_time, offset = _text_to_naive(
                text, date_order, frame, allow_future, date1904
            )
        except _Unreadable as bad:
            return Parsed(None, f"{column} {bad.message}")
    else:
        serial = float(value)
        converted = serial_to_datetime(serial, date1904) if serial >= 1 else None
        if converted is None:
            if not date1904 and 60 <= serial < 61:  # Excel's 1900-02-29, which never existed
                return Parsed(None, f"{column} {_NOT_REAL}")
            return Parsed(None, f"{column} {_NOT_A_DATE}")
        naive = converted
        has_time = bool(naive.hour or naive.minute or naive.second)
    # Check the year before placing the value in the zone: far-off years overflow astimezone().
    if naive.year < frame.earliest_year:
        return Parsed(None, f"{column} is too far in the past: check the year")
    if naive.year > frame.latest_year + 1:
        return Parsed(None, f"{column} is in the future: check the year")
    at = _place(naive, offset, tz)
    if at > frame.latest:
        return Parsed(None, f"{column} is in the future: check the year")
    if at.year < frame.earliest_year:
        return Parsed(None, f"{column} is too far in the past: check the year")
    return Parsed(When(at, has_time), None)


_EMPTY_WHEN: Parsed[When] = Parsed(None, None)


# --------------------------------------------------------------------------------------------
# Phone numbers (B13)
# --------------------------------------------------------------------------------------------

_PHONE_FLOAT_TEXT = re.compile(r"(\+?\d+)\.0+")
_PHONE_E_NOTATION = re.compile(r"[+-]?\d+(?:[.,]\d+)?\s*e\s*\+?\d+", re.IGNORECASE)
_PHONE_EXTENSION = re.compile(r"[\s,;]*(?:ext|extn|extension|x|#)[\s.:]*\d{1,7}\s*", re.IGNORECASE)
_PHONE_SEPARATORS = re.compile(r"[/;,&\n\r|]|\bor\b|\band\b", re.IGNORECASE)
_MIN_DIGITS_ONE_NUMBER = 7  # a local number without area code has 7 digits in NANP


def parse_phone(value: CellValue, *, column: str, region: str) -> Parsed[str]:
    """Read a phone cell into E.164 (``+12125550100``, ``;ext=3`` appended when typed) (B13).

    Spreadsheets turn digits into numbers: ``2125550100.0`` is undone; ``2.12555E+09`` text has
    already lost digits and cannot be undone, so staff are asked to retype it. A number without
    a country code is read in the practice's ``region``. Only numbers ``phonenumbers`` calls
    valid are used: a wrong number in an outreach draft is worse than none.
    """
    if value is None:
        return _EMPTY_STR
    if isinstance(value, bool):
        return Parsed(None, f"{column} holds TRUE/FALSE, not a phone number: type the number")
    if isinstance(value, CellError):
        return Parsed(
            None, f"{column} shows {_error_text(value)}: fix the formula or type the number"
        )
    incomplete = f"{column} is not a complete phone number: include the area code"
    if isinstance(value, int | float):
        if isinstance(value, float) and not value.is_integer():
            return Parsed(None, incomplete)
        if value <= 0:
            return Parsed(None, incomplete)
        text = str(int(value))
    else:
        text = _trim(value)
        if not text:
            return _EMPTY_STR
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
    fast = _nanp_fast(text, region)
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


_EMPTY_STR: Parsed[str] = Parsed(None, None)

_NANP_TEXT = re.compile(r"(?:\+?1[\s.-]*)?\(?(\d{3})\)?[\s.-]*(\d{3})[\s.-]*(\d{4})")


@lru_cache(maxsize=8)
def _region_patterns(region: str) -> tuple[re.Pattern[str], ...] | None:
    """The national-number patterns ``phonenumbers`` uses to call a number of ``region`` valid."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if metadata is None or metadata.country_code != 1:
        return None
    patterns = []
    for desc in (metadata.fixed_line, metadata.mobile):
        if desc is not None and desc.national_number_pattern:
            patterns.append(re.compile(desc.national_number_pattern))
    return tuple(patterns) or None


def _nanp_fast(text: str, region: str) -> str | None:
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


# --------------------------------------------------------------------------------------------
# Email addresses (B14, B16)
# --------------------------------------------------------------------------------------------

#: What staff type when there is no address; asked to leave the cell empty instead.
_NO_ADDRESS_WORDS = frozenset(
    {
        "",
        "na",
        "none",
        "nil",
        "null",
        "unknown",
        "noemail",
        "noaddress",
        "noemailaddress",
        "declined",
        "refused",
        "notprovided",
        "noneprovided",
        "nonegiven",
    }
)
_EMAIL_DISPLAY = re.compile(r'(?:"[^"\\<>]*"|[^"<>@,;]*)\s*<\s*([^<>\s]*)\s*>')
_EMAIL_PARTS = re.compile(r"[\s,;]+")


_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_ASCII_ADDRESS = re.compile(
    rf"(?P<local>{_ATEXT}(?:\.{_ATEXT})*)@(?P<domain>(?:[A-Za-z0-9](?:[A-Za-z0-9-]{{0,61}}"
    rf"[A-Za-z0-9])?\.)+[A-Za-z](?:[A-Za-z0-9-]{{0,61}}[A-Za-z0-9])?)"
)
#: email-validator refuses these special-use domains; such addresses take the full check.
_SPECIAL_TLDS = frozenset({"arpa", "invalid", "local", "localhost", "onion", "test"})


@lru_cache(maxsize=4096)
def _email_ok(address: str) -> bool:
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


def parse_email(value: CellValue, *, column: str) -> Parsed[str]:
    """Read one email address, as typed, or say why it cannot be used (B14, B16).

    The bare address is returned exactly as typed (trimmed), never "fixed": a guessed address
    would send patient mail to a stranger. ``John <j@x.com>`` gives ``j@x.com``. International
    domains are fine. Line breaks and bidi controls are refused because the address ends up in
    a mail header. ``email.utils.parseaddr`` is not used: this Python's version lacks
    ``strict=`` (CVE-2023-27043), so the one accepted display form is matched here.
    """
    if value is None:
        return _EMPTY_STR
    if isinstance(value, bool):
        return Parsed(None, f"{column} holds TRUE/FALSE, not an email address: type the address")
    if isinstance(value, CellError):
        return Parsed(
            None, f"{column} shows {_error_text(value)}: fix the formula or type the address"
        )
    invalid = f"{column} is not a valid email address: check it (like name@example.com)"
    if not isinstance(value, str):
        return Parsed(None, invalid)
    text = _trim(value)
    if not text:
        return _EMPTY_STR
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
    if not _email_ok(address):
        return Parsed(None, invalid)
    return Parsed(address, None)


_CONTROL_CHARS = re.compile(
    "[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)
_ENCODED_WORD = re.compile(r"=\?[^?\s]*\?([qb])\?([^?\s]*)\?=", re.IGNORECASE)
_QP_BREAK = re.compile(r"=(?:0[ad]|00)", re.IGNORECASE)


def has_control_chars(s: str) -> bool:
    """True when ``s`` could break out of a mail header or display reversed (B16).

    Catches CR, LF, NUL and the other C0/C1 controls except TAB, Unicode line/paragraph
    separators, bidi overrides and marks, and RFC 2047 encoded words that decode to a line break
    or NUL (``=?UTF-8?Q?=0A?=``): some mail software decodes those before splitting headers.
    """
    if _CONTROL_CHARS.search(s):
        return True
    if "=?" not in s:
        return False
    for m in _ENCODED_WORD.finditer(s):
        encoding, payload = m[1].lower(), m[2]
        if encoding == "q":
            if _QP_BREAK.search(payload):
                return True
            continue
        try:
            decoded = binascii.a2b_base64(payload + "=" * (-len(payload) % 4))
        except binascii.Error:
            return True  # undecodable: refuse rather than guess what a mail client will do
        if b"\r" in decoded or b"\n" in decoded or b"\0" in decoded:
            return True
    return False


# --------------------------------------------------------------------------------------------
# Names and free text (B15, B19)
# --------------------------------------------------------------------------------------------


def parse_text(value: CellValue, *, column: str, number_ok: bool = False) -> Parsed[str]:
    """Read a name or free-text cell, kept exactly as typed (B15, B19).

    Names are never re-cased or re-normalised (O'Brien, María-José, 张伟 and ALL CAPS stay as
    staff wrote them); only surrounding spaces are dropped. A number in a name column usually
    means a shifted paste, so it is reported unless the caller says numbers are fine.
    """
    if value is None:
        return _EMPTY_STR
    if isinstance(value, CellError):
        return Parsed(
            None, f"{column} shows {_error_text(value)}: fix the formula or type the value"
        )
    if isinstance(value, str):
        text = _trim(value)
        return Parsed(text, None) if text else _EMPTY_STR
    if isinstance(value, bool):
        return Parsed(None, f"{column} holds TRUE/FALSE: type the value")
    if number_ok:
        return Parsed(cell_text(value), None)
    return Parsed(cell_text(value), f"{column} holds a number: type the name")


_ZERO_WIDTH_TABLE = {ord(c): None for c in _ZERO_WIDTH}


@lru_cache(maxsize=8192)
def comparison_key(s: str) -> str:
    """The key two texts are compared by: NFC, case-folded, zero-width dropped, spaces collapsed.

    "María-José" typed on a Mac (decomposed accents) and on Windows (composed) must be the same
    referrer; "O'BRIEN" and "O'Brien" too. The key is for comparing only, never for display.
    """
    folded = unicodedata.normalize("NFC", s).casefold().translate(_ZERO_WIDTH_TABLE)
    return " ".join(unicodedata.normalize("NFC", folded).split())


def same_text(a: str, b: str) -> bool:
    """True when two texts differ only in case, Unicode composition or spacing."""
    return a == b or comparison_key(a) == comparison_key(b)


# --------------------------------------------------------------------------------------------
# Dropdown columns (B25, B26)
# --------------------------------------------------------------------------------------------

ChoiceKind: TypeAlias = Literal["fit", "visit", "outcome", "consent"]

_CANONICAL: dict[str, tuple[str, ...]] = {
    "fit": ("Good fit", "Not a fit", "Unsure"),
    "visit": ("Scheduled", "Attended", "No-show", "Cancelled"),
    "outcome": ("Ongoing care", "Completed", "Not a fit", "Lost"),
    "consent": ("Yes", "No"),
}

_SYNONYMS_RAW: dict[str, dict[str, tuple[str, ...]]] = {
    "fit": {
        "Good fit": ("good", "yes", "fit", "good fit", "great fit"),
        "Not a fit": ("no", "not fit", "not a fit", "poor fit", "bad fit"),
        "Unsure": ("unsure", "maybe", "?", "unknown", "tbd"),
    },
    "visit": {
        "Scheduled": ("scheduled", "booked", "sched"),
        "Attended": ("attended", "seen", "came", "showed", "showed up", "arrived"),
        "No-show": ("no show", "no-show", "ns", "dna", "did not attend", "missed"),
        "Cancelled": ("cancelled", "canceled", "cancel", "cx", "cxl"),
    },
    "outcome": {
        "Ongoing care": (
            "ongoing",
            "ongoing care",
            "long term",
            "long-term care",
            "long term care",
            "active",
        ),
        "Completed": ("completed", "complete", "done", "discharged", "finished"),
        "Not a fit": ("not a fit", "not fit", "no fit"),
        "Lost": ("lost", "no response", "lost to follow up", "ltfu"),
    },
}


@lru_cache(maxsize=4096)
def _choice_key(text: str) -> str:
    """Case, spaces, hyphens and punctuation do not matter in a dropdown value ("No-show" ==
    "no show" == "NOSHOW"); a value of punctuation alone ("?") is kept as it is."""
    key = _NOT_WORD.sub("", text.casefold())
    return key or text.strip()


_SYNONYMS: dict[str, dict[str, str]] = {
    kind: {
        _choice_key(word): canonical
        for canonical, words in table.items()
        for word in (canonical, *words)
    }
    for kind, table in _SYNONYMS_RAW.items()
}

_PLAIN_YES = frozenset({"yes", "y"})
_PLAIN_NO = frozenset({"no", "n"})


def parse_choice(value: CellValue, *, column: str, kind: ChoiceKind) -> Parsed[str]:
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
        text = _trim(value) if value is not None else ""
        if not text:
            return Parsed("No", None)
        answer = text.casefold()
        if answer in _PLAIN_YES:
            return Parsed("Yes", None)
        if answer in _PLAIN_NO:
            return Parsed("No", None)
        return Parsed("No", ask)
    if value is None:
        return _EMPTY_STR
    if isinstance(value, CellError):
        return Parsed(
            None, f"{column} shows {_error_text(value)}: fix the formula or pick one from the list"
        )
    if isinstance(value, bool):
        return Parsed(None, f"{column} holds TRUE/FALSE: pick one from the list")
    text = _trim(cell_text(value))
    if not text:
        return _EMPTY_STR
    found = _SYNONYMS[kind].get(_choice_key(text))
    if found is None:
        return Parsed(
            None, f"{column} is not one of {', '.join(canonical)}: pick one from the list"
        )
    return Parsed(found, None)


# --------------------------------------------------------------------------------------------
# How Heard and source tags (B25)
# --------------------------------------------------------------------------------------------

#: Keywords that map free text in How Heard to a channel. The config may replace these; the
#: Sources tab lets a manager tag whatever neither the dropdown nor the keywords cover.
DEFAULT_HOW_HEARD_KEYWORDS: dict[str, tuple[str, ...]] = {
    "Provider": (
        "dr",
        "doctor",
        "physician",
        "md",
        "clinic",
        "provider",
        "referral from",
        "referred by dr",
        "pcp",
        "chiropractor",
        "therapist",
        "specialist",
        "dentist",
        "hospital",
        "np",
    ),
    "Patient": (
        "friend",
        "friends",
        "family",
        "patient",
        "word of mouth",
        "neighbor",
        "neighbour",
        "coworker",
        "co worker",
        "colleague",
        "spouse",
        "relative",
    ),
    "Google": (
        "google",
        "googled",
        "search",
        "online search",
        "web search",
        "web",
        "website",
        "online",
        "internet",
        "bing",
    ),
    "Social media": (
        "facebook",
        "instagram",
        "fb",
        "ig",
        "insta",
        "tiktok",
        "social",
        "twitter",
        "linkedin",
        "youtube",
        "nextdoor",
    ),
    "Directory": (
        "yelp",
        "zocdoc",
        "psychology today",
        "directory",
        "healthgrades",
        "insurance list",
        "insurance",
        "vitals",
    ),
    "Event": ("event", "health fair", "fair", "talk", "workshop", "seminar", "expo", "booth"),
    "Walk-in": ("walk", "walk in", "walked in", "walkin", "drive by", "drove by", "sign"),
    "Other": ("self", "self referred", "self referral", "selfreferral"),
}

_SOURCE_TAGS: dict[str, str] = {
    "Provider": "Provider Referral",
    "Patient": "Patient Referral",
    **{channel: "Self-Referral" for channel in CHANNELS if channel not in ("Provider", "Patient")},
}


def source_tag_for(channel: str | None) -> str:
    """The Source Tag a channel gives: referred by a provider, by a patient, or self-referred."""
    if channel is None:
        return "Unknown"
    return _SOURCE_TAGS.get(channel, "Unknown")


@lru_cache(maxsize=4096)
def _words(text: str) -> str:
    """Lowercase words separated by single spaces: "Dr. Smith" -> "dr smith". The same few How
    Heard values repeat across thousands of rows, hence the cache."""
    return " ".join(_NOT_WORD.sub(" ", unicodedata.normalize("NFC", text).casefold()).split())


_CHANNEL_BY_NAME: dict[str, str] = {}
for _channel in CHANNELS:
    _CHANNEL_BY_NAME[_words(_channel)] = _channel
    _CHANNEL_BY_NAME[_words(_channel).replace(" ", "")] = _channel


@lru_cache(maxsize=4096)
def _classify(words: str, table: tuple[tuple[str, tuple[str, ...]], ...]) -> tuple[str, ...]:
    """The channels whose keywords occur in ``words`` as whole words or phrases."""
    padded = f" {words} "
    return tuple(
        channel for channel, keywords in table if any(f" {kw} " in padded for kw in keywords if kw)
    )


def classify_how_heard(value: CellValue, keywords: Mapping[str, Sequence[str]]) -> Parsed[str]:
    """Map How Heard to a channel: a channel's own name, else its keywords, else ask (B25).

    Keywords match whole words, so "md" does not fire inside "cmd". When keywords of two channels
    match ("friend saw us on facebook") the bridge asks rather than picks. Keys of ``keywords``
    that are not channels are ignored (config validation reports them).
    """
    if is_blank(value):
        return Parsed(None, "How Heard is empty: pick how the patient heard of the practice")
    if isinstance(value, CellError):
        return Parsed(
            None, f"How Heard shows {_error_text(value)}: fix the formula or pick one from the list"
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


def format_moment(moment: datetime | None, tz: tzinfo | None = None) -> str:
    """How the bridge writes a time: ISO-like, practice zone, sorts correctly as text.

    Without ``tz`` the moment keeps its own zone (parsed rows are already in the practice's).
    """
    if moment is None:
        return ""
    m = moment.astimezone(tz) if tz is not None else moment
    return f"{m.year:04d}-{m.month:02d}-{m.day:02d} {m.hour:02d}:{m.minute:02d}"
