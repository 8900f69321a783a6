"""Cheaper per-row code gives the very results of the code it replaced (issue 13).

Each reference below is the earlier implementation, kept here so the two can be compared on
generated inputs: any difference would change a stored digest or a comparison.
"""

from __future__ import annotations

import hashlib
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from sheets_bridge.identity import row_fingerprint
from sheets_bridge.values import _ZERO_WIDTH_TABLE, cell_text, comparison_key


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
