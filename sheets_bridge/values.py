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
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Generic, TypeVar

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from sheets_bridge.model import CellError, CellValue

__all__ = [
    "Parsed",
    "cell_text",
    "comparison_key",
    "has_control_chars",
    "is_blank",
    "parse_email",
    "parse_phone",
    "parse_text",
    "same_text",
]

_NOT_WORD = re.compile(r"[\W_]+")

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


# --------------------------------------------------------------------------------------------
# Blank cells and text forms of values
# --------------------------------------------------------------------------------------------

#: Characters that make a cell look empty: every Unicode space (NBSP, narrow NBSP, ideographic
#: space...) plus the zero-width characters that paste in from web pages and chat apps (B1).
_ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
BLANK_CHARS = "".join(chr(c) for c in range(0x3001) if chr(c).isspace()) + _ZERO_WIDTH


def is_blank(value: CellValue) -> bool:
    """True when a cell holds nothing a person typed on purpose (B1).

    Spaces, NBSP and zero-width characters alone count as empty: a row of them must not get a
    Referral ID or Attention lines. Numbers, booleans and error values are never blank.
    """
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip(BLANK_CHARS)
    return False


def trim(s: str) -> str:
    """``s`` without leading/trailing spaces, NBSP and zero-width characters; inside untouched."""
    return s.strip(BLANK_CHARS)


def cell_text(value: CellValue) -> str:
    """How a value reads as text, for comparisons and for writing back.

    The spreadsheet shows ``45720`` for the number 45720.0 and ``TRUE`` for a boolean, so that is
    what staff expect to see when the bridge echoes a value into another tab.
    """
    if value is None:
        return ""
    if value.__class__ is str:  # most cells: one identity check before the isinstance chain
        return value
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


def error_text(value: CellError) -> str:
    """The error code to echo in a message, or a neutral word if the value is not a pure code.

    Error codes are safe to show; anything else a backend might have put in a ``CellError`` is
    not checked to be free of patient data, so it is not echoed.
    """
    text = str(value).strip()
    return text if _ERROR_CODE.fullmatch(text) else "an error"


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
        else:
            # The common shape first (issue 13): a text that is a plain North American number
            # has no letters and at most 11 digits, so neither check below (two numbers of 7+
            # digits; letters outside an extension) can refuse it, and the same _nanp_fast
            # would accept it after them. Anything else takes the whole way.
            fast = _nanp_fast(text, region)
            if fast is not None:
                return Parsed(fast, None)
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


EMPTY_TEXT: Parsed[str] = Parsed(None, None)

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


_ZERO_WIDTH_TABLE = {ord(c): None for c in _ZERO_WIDTH}


@lru_cache(maxsize=8192)
def comparison_key(s: str) -> str:
    """The key two texts are compared by: NFC, case-folded, zero-width dropped, spaces collapsed.

    "María-José" typed on a Mac (decomposed accents) and on Windows (composed) must be the same
    referrer; "O'BRIEN" and "O'Brien" too. The key is for comparing only, never for display.
    """
    if s.isascii():
        # The same key, cheaper: ASCII is already NFC, folds as lower() does, and holds no
        # zero-width characters (most cells of most sheets: names, emails, dates as typed).
        return " ".join(s.lower().split())
    folded = unicodedata.normalize("NFC", s).casefold().translate(_ZERO_WIDTH_TABLE)
    return " ".join(unicodedata.normalize("NFC", folded).split())


def same_text(a: str, b: str) -> bool:
    """True when two texts differ only in case, Unicode composition or spacing."""
    return a == b or comparison_key(a) == comparison_key(b)
