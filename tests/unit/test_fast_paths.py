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
from hypothesis import given, settings
from hypothesis import strategies as st

from sheets_bridge.identity import row_fingerprint
from sheets_bridge.model import TabContent, TabValues
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
@given(st.lists(st.tuples(st.sampled_from([b"s1", b"s2"]), st.sampled_from("epnfld"),
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
