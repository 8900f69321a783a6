"""Cheaper per-row code gives the very results of the code it replaced (issue 13).

Each reference below is the earlier implementation, kept here so the two can be compared on
generated inputs: any difference would change a stored digest or a comparison.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Sequence
from datetime import date, datetime

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sheets_bridge.identity import row_facets, row_fingerprint
from sheets_bridge.model import SheetRow, TabContent, TabValues
from sheets_bridge.values import _ZERO_WIDTH_TABLE, cell_text, comparison_key
from sheets_bridge.worktabs import _out_text, _rstrip, display_phone, tab_matches


def reference_comparison_key(s: str) -> str:
    folded = unicodedata.normalize("NFC", s).casefold().translate(_ZERO_WIDTH_TABLE)
    return " ".join(unicodedata.normalize("NFC", folded).split())


def reference_fingerprint(values: tuple[object, ...], staff_cols: dict[str, int]) -> str:
    digest = hashlib.blake2b(digest_size=8)
    for col in sorted(staff_cols.values()):
        value = values[col] if col < len(values) else None
        digest.update(cell_text(value).encode("utf-8", "surrogatepass"))  # type: ignore[arg-type]
        digest.update(b"\x1f")
    return digest.hexdigest()


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(alphabet=st.characters(max_codepoint=127)), st.text()))
def test_comparison_key_is_unchanged(s: str) -> None:
    comparison_key.cache_clear()
    assert comparison_key(s) == reference_comparison_key(s)


CELLS = st.one_of(
    st.none(), st.text(), st.booleans(), st.integers(-10**6, 10**6),
    st.floats(allow_nan=False, allow_infinity=False),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(CELLS, max_size=12).map(tuple),
       st.dictionaries(st.text(min_size=1, max_size=3), st.integers(0, 14), max_size=8))
def test_row_fingerprint_is_unchanged(values: tuple[object, ...], cols: dict[str, int]) -> None:
    assert row_fingerprint(values, cols) == reference_fingerprint(values, cols)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([b"s1", b"s2", b"k" * 128, b"long" * 60]), st.sampled_from("epnfld"),
                          st.sampled_from(["ana", "ana", "zoë", "2026-03-01", ""])),
                max_size=20))
def test_facet_digests_are_plain_hmac_whatever_the_memo_holds(
    calls: list[tuple[bytes, str, str]],
) -> None:
    """The memo of repeated facets gives what HMAC-BLAKE2b of the facet gives, secret by secret
    (a changed secret must never be answered from another secret's memo)."""
    import hmac

    from sheets_bridge.identity import _mac

    for secret, kind, text in calls:
        expected = hmac.new(secret, f"{kind}:{text}".encode(), hashlib.blake2b).hexdigest()[:20]
        assert _mac(secret, kind, text) == kind + expected


def reference_tab_matches(content: TabContent, current: TabValues | None, date1904: bool) -> bool:
    """The comparison before issue 13's third round: both whole grids trimmed, then compared."""
    if current is None:
        return False

    def trim(rows: Sequence[Sequence[object]]) -> list[tuple[str, ...]]:
        out = [tuple(_out_text(v, date1904) for v in row) for row in rows]  # type: ignore[arg-type]
        out = [tuple(_rstrip(row)) for row in out]
        while out and not out[-1]:
            out.pop()
        return out

    return trim(current.rows) == trim(content.rows)


#: Cells as a tab holds them and as a read gives them back: blanks, text that may be blank,
#: numbers, dates (written as serials), so equal-looking rows of different types are drawn.
TAB_CELLS = st.one_of(
    st.none(), st.sampled_from(["", "a", "1", "TRUE", "45720"]), st.booleans(),
    st.sampled_from([0, 1, 45720, 1.0, 1.5, 45720.0]),
    st.sampled_from([date(2025, 3, 1), datetime(2025, 3, 1, 0, 0), datetime(2025, 3, 1, 9, 30)]),
)
TAB_ROWS = st.lists(st.lists(TAB_CELLS, max_size=4).map(tuple), max_size=5).map(tuple)


@settings(max_examples=800, deadline=None)
@given(TAB_ROWS, TAB_ROWS, st.booleans(), st.booleans())
def test_tab_matches_row_by_row_is_the_whole_grid_comparison(
    ours: tuple[tuple[object, ...], ...], theirs: tuple[tuple[object, ...], ...],
    date1904: bool, same: bool,
) -> None:
    """Stopping at the first differing row, and skipping rows that are the same object, tells
    exactly what trimming both grids and comparing them told (trailing blanks ignored)."""
    if same:
        theirs = ours + theirs  # the same row objects first, then whatever follows
    content = TabContent("Follow-ups", ours)  # type: ignore[arg-type]
    current = TabValues("Follow-ups", theirs)  # type: ignore[arg-type]
    expected = reference_tab_matches(content, current, date1904)
    assert tab_matches(content, current, date1904=date1904) is expected
    assert tab_matches(content, None, date1904=date1904) is False


def reference_display_phone(e164: str | None, region: str) -> str:
    """:func:`display_phone` before its cache: ``phonenumbers`` parsed on every call."""
    if not e164:
        return ""
    try:
        number = phonenumbers.parse(e164, region)
    except phonenumbers.NumberParseException:
        return e164
    same_country = phonenumbers.region_code_for_number(number) == region.upper()
    fmt = (
        phonenumbers.PhoneNumberFormat.NATIONAL
        if same_country
        else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )
    return phonenumbers.format_number(number, fmt)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(
    st.one_of(st.none(), st.sampled_from(["", "+16465550147", "+442079460958", "+33142685300",
                                          "not a phone", "+1"])),
    st.sampled_from(["US", "GB", "us", "FR"]),
), max_size=12))
def test_display_phone_cached_is_display_phone(calls: list[tuple[str | None, str]]) -> None:
    """The cache answers each (number, region) as a fresh parse does, in any order of calls."""
    for e164, region in calls:
        assert display_phone(e164, region) == reference_display_phone(e164, region)
def reference_row_facets(row: SheetRow, staff_cols: dict[str, int], secret: bytes) -> tuple[str, ...]:
    """``identity.row_facets`` before issue 13's third round, with a plain ``hmac.new`` per facet."""
    import hmac
    import re

    not_word, decimal_zeros = re.compile(r"[\W_]+"), re.compile(r"\.0+$")

    def mac(kind: str, text: str) -> str:
        message = f"{kind}:{text}".encode("utf-8", "surrogatepass")
        return kind + hmac.new(secret, message, hashlib.blake2b).hexdigest()[:20]

    def text(name: str) -> str:
        return comparison_key(cell_text(row.get(staff_cols.get(name)))).strip()

    def words(text: str) -> str:
        return " ".join(not_word.sub(" ", comparison_key(text)).split())

    out = []
    email = text("Patient Email")
    if "@" in email:
        out.append(mac("e", email))
    digits = "".join(re.findall(r"\d", decimal_zeros.sub("", text("Patient Phone"))))
    if len(digits) >= 7:
        out.append(mac("p", digits[-10:]))
    first, last = words(text("Patient First Name")), words(text("Patient Last Name"))
    received = text("Received")
    if first and received:
        out.append(mac("n", f"{first}|{last}|{received}"))
    for kind, part in (("f", first), ("l", last), ("d", received)):
        if part:
            out.append(mac(kind, part))
    return tuple(out)


_FACET_CELLS = st.one_of(
    CELLS,
    st.sampled_from(["Ann", "ANN ", "María", "Mari\u0301a", "O'Brien", "Lee\u200b", "张伟",
                     "ann@example.com", " Ann@Example.COM ", "(212) 555-0100 x12", "2125550100.0",
                     "٢١٢٥٥٥٠١٠٠", "2025-03-04", "=Lee", "\u00a0", "#REF!", "555-0100"]),
)
_FACET_NAMES = ("Patient Email", "Patient Phone", "Patient First Name", "Patient Last Name",
                "Received", "Notes")


@settings(max_examples=400, deadline=None)
@given(st.lists(_FACET_CELLS, max_size=8).map(tuple),
       st.lists(st.sampled_from(_FACET_NAMES), unique=True).flatmap(
           lambda names: st.fixed_dictionaries({n: st.integers(0, 9) for n in names})),
       st.sampled_from([b"", b"s1", b"k" * 32, b"k" * 128, b"long" * 60]))
def test_row_facets_are_unchanged(
    values: tuple[object, ...], cols: dict[str, int], secret: bytes
) -> None:
    row = SheetRow(2, values)  # type: ignore[arg-type]
    assert row_facets(row, cols, secret) == reference_row_facets(row, cols, secret)


@pytest.mark.parametrize("phone", ["(212) 555-0100", "٢١٢٥٥٥٠١٠٠", "2125550100.0", "555-01", None])
@pytest.mark.parametrize("secret", [b"s1", b"long" * 60])
def test_row_facets_of_typical_rows_are_unchanged(phone: str | None, secret: bytes) -> None:
    cols = {name: i for i, name in enumerate(_FACET_NAMES)}
    for row in (
        SheetRow(2, (" Ann@Example.COM ", phone, "María", "O'Brien", "2025-03-04")),
        SheetRow(3, ("none", phone, "Mari\u0301a", "", 45720.0)),
        SheetRow(4, (None, phone)),
    ):
        assert row_facets(row, cols, secret) == reference_row_facets(row, cols, secret)
