"""Reading dates and times from cells (B7-B11, B19): strict, in the practice's zone and order.

Received, First Contact and Appointment drive every deadline and summary, so the reader is
strict: spreadsheet serials in the workbook's epoch (1900 or 1904, with the 1900 leap-day quirk),
ISO dates, numeric dates in the practice's day/month order (an ambiguous "3/4/25" is said so
when no order is set), month names, a missing year taken as the nearest past date, a time after
any of them; relative words ("yesterday", "asap") and implausible years are refused. Naive values
are the practice's wall clock, placed across DST gaps and folds. Also: how the bridge writes a
moment back (:func:`format_moment`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Literal, TypeAlias
from zoneinfo import ZoneInfo

from sheets_bridge.model import CellError, CellValue
from sheets_bridge.values import BLANK_CHARS, Parsed, error_text

__all__ = ["Order", "When", "format_moment", "parse_when", "serial_to_datetime"]

_NOT_WORD = re.compile(r"[\W_]+")


@dataclass(frozen=True, slots=True)
class When:
    """A date or date-time read from a cell, placed in the practice's time zone.

    ``has_time`` is False for a date-only value (``at`` is then local midnight), so the rules can
    tell "received on the 4th" from "received at midnight on the 4th" when computing deadlines.
    """

    at: datetime
    has_time: bool




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
            None, f"{column} shows {error_text(value)}: fix the formula or type the date"
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
        text = value.strip(BLANK_CHARS)
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




def format_moment(moment: datetime | None, tz: tzinfo | None = None) -> str:
    """How the bridge writes a time: ISO-like, practice zone, sorts correctly as text.

    Without ``tz`` the moment keeps its own zone (parsed rows are already in the practice's).
    """
    if moment is None:
        return ""
    m = moment.astimezone(tz) if tz is not None else moment
    return f"{m.year:04d}-{m.month:02d}-{m.day:02d} {m.hour:02d}:{m.minute:02d}"


# --------------------------------------------------------------------------------------------
# Writing moments as spreadsheet serials (the bridge's own date cells)

_MOMENT_TEXT = re.compile(r"(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2})")


def to_serial(value: datetime | date, date1904: bool = False) -> float:
    """A wall time (or a day) as the workbook's serial: the number a date cell holds.

    An aware datetime is written as its own wall time (the practice's, for the bridge's
    values): a spreadsheet date has no zone. Rounded to the second, so the same moment always
    gives the same bytes and a quiet cycle compares equal.
    """
    if isinstance(value, datetime):
        naive = value.replace(tzinfo=None)
    else:
        naive = datetime(value.year, value.month, value.day)
    delta = naive - (_EPOCH_1904 if date1904 else _EPOCH_1900)
    seconds = delta.days * 86400 + delta.seconds
    return round(seconds / 86400, 10)


def serial_text(serial: float, date1904: bool = False) -> str | None:
    """A serial read back from a date cell as ``format_moment`` text, to the nearest minute."""
    moment = serial_to_datetime(serial, date1904)
    if moment is None:
        return None
    moment = (moment + timedelta(seconds=30)).replace(second=0, microsecond=0)
    return format_moment(moment)


def moment_text_serial(text: str, date1904: bool = False) -> float | None:
    """The serial for ``format_moment`` text ("2025-03-04 09:00"), or None for any other text."""
    m = _MOMENT_TEXT.fullmatch(text)
    if m is None:
        return None
    try:
        y, mo, d, h, mi = (int(g) for g in m.groups())
        naive = datetime(y, mo, d, h, mi)
    except ValueError:
        return None
    return to_serial(naive, date1904)
