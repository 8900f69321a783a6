"""Who a row is, as digests: Referral IDs, row identities, staff fingerprints, referrer keys.

Every backend, the planner, drafting and the summaries name rows and referrers the same way, so
these live once, here, below all of them. Each is a digest or an opaque key, never a name: they
are stored in the state file and in draft keys, which hold no patient data.

- A **Referral ID** (``R-00012``) is the row's identity in the sheet, written in its own column.
- A row's **identity** (who and when: first and last name and Received, as typed) re-finds the
  ID of a row whose ID cell was cleared, and tells a copied row from its original.
- A row's **fingerprint** (every staff cell) finds, at write time, a row that has no ID yet.
- A **referrer key** groups a referrer's rows: the Referrers tab, rate limits, the digest.
- A row's **facets** (keyed digests of the patient's email, phone, and name with the day
  received) recognise the same patient when one of them was corrected: a Referral ID that never
  reached the sheet finds its row again, and no patient gets a second draft of one kind.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from typing import Any

from sheets_bridge.model import CellValue, Referral, SheetRow
from sheets_bridge.values import cell_text, comparison_key

ID_PATTERN = re.compile(r"R-(\d{5,})")
_NOT_WORD = re.compile(r"[\W_]+")

__all__ = [
    "ID_PATTERN",
    "format_id",
    "id_number",
    "identity_from_cells",
    "referrer_key",
    "referrer_key_of",
    "row_facets",
    "row_fingerprint",
    "row_identity",
    "strong",
]


def format_id(number: int) -> str:
    """The Referral ID with ``number``: ``R-00012`` (five digits at least, more when needed)."""
    return f"R-{number:05d}"


def id_number(text: str) -> int | None:
    """The number inside a well-formed Referral ID, or None for anything else."""
    match = ID_PATTERN.fullmatch(text)
    return int(match.group(1)) if match else None


def row_fingerprint(values: tuple[CellValue, ...], staff_cols: Mapping[str, int]) -> str:
    """A digest of a row's staff cells: finds a row that has no Referral ID yet at write time.

    ``staff_cols`` maps each staff header to its 0-based column; bridge cells are left out, so a
    write that lands in a bridge cell never changes the row's fingerprint.
    """
    # One update of the joined cells, each followed by the separator: the same bytes, so the
    # same digest, as one update per cell and separator (a third of the calls).
    width = len(values)
    joined = "".join(
        [cell_text(values[col] if col < width else None) + "\x1f"
         for col in sorted(staff_cols.values())]
    )
    return hashlib.blake2b(joined.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def identity_from_cells(first: CellValue, last: CellValue, received: CellValue) -> str:
    """A stable digest of who and when (names + Received as typed, compared loosely)."""
    parts = [comparison_key(str(v)) if v is not None else "" for v in (first, last, received)]
    joined = "\x1f".join(parts).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(joined, digest_size=16, person=b"sb-identity").hexdigest()


_IDENTITY_COLUMNS = ("Patient First Name", "Patient Last Name", "Received")


def row_identity(row: SheetRow, staff_cols: Mapping[str, int]) -> str:
    """The identity digest of a Referrals row (see :func:`identity_from_cells`)."""
    return identity_from_cells(*(row.get(staff_cols.get(name)) for name in _IDENTITY_COLUMNS))


_DECIMAL_ZEROS = re.compile(r"\.0+$")


_Keyed = tuple[bytes, Callable[[], Any], Callable[[], Any], dict[str, str]]
_keyed: _Keyed | None = None
#: How many facets :func:`_mac` remembers per secret before it starts afresh.
_MAC_MEMO_SIZE = 200_000
#: BLAKE2b's block size: HMAC pads (or first hashes) the key to it (RFC 2104).
_BLOCK = 128
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


def forget_facet_texts() -> None:
    """Drop :func:`_mac`'s memo of facet texts (kept for one plan's rows, not a process's).

    Within a plan it spares every repeated first name, last name and day its HMAC; after it,
    the rows' digests are held by the plan's memo by their cells, and the memo would only keep
    each patient's name, email and phone text alive (10 MB at 50,000 rows) until the next
    first sync.
    """
    keyed = _keyed
    if keyed is not None:
        keyed[3].clear()


def _keyed_for(secret: bytes) -> _Keyed:
    """HMAC-BLAKE2b's keyed inner and outer states for ``secret``, and its memo of facets.

    ``hmac.new(secret, msg, hashlib.blake2b)`` is, by RFC 2104, BLAKE2b over the padded key
    XOR opad and BLAKE2b over the padded key XOR ipad and ``msg``; the two keyed states are
    made once per secret here and copied per message, which is the same computation without
    ``hmac.HMAC``'s Python-level copy of three objects per facet (issue 13). The test compares
    it with ``hmac.new`` for short and long secrets.
    """
    global _keyed
    keyed = _keyed
    if keyed is None or keyed[0] != secret:
        key = hashlib.blake2b(secret).digest() if len(secret) > _BLOCK else secret
        key = key.ljust(_BLOCK, b"\0")
        inner = hashlib.blake2b(key.translate(_IPAD))
        outer = hashlib.blake2b(key.translate(_OPAD))
        keyed = _keyed = (secret, inner.copy, outer.copy, {})
    return keyed


def _mac(secret: bytes, kind: str, text: str) -> str:
    # HMAC-BLAKE2b of "kind:text", cut to 20 hex digits and marked by its kind. Facets repeat
    # across rows (first names, last names, days received): each distinct one is computed
    # once per secret and the one string shared by every row that has it (issue 13: a first
    # sync's ~6 facets per row). The memo lives in this process only, beside the snapshot that
    # holds the same names, and is dropped when the secret changes.
    _secret, inner_copy, outer_copy, memo = _keyed_for(secret)
    message = f"{kind}:{text}"
    found = memo.get(message)
    if found is not None:
        return found
    inner = inner_copy()
    inner.update(message.encode("utf-8", "surrogatepass"))
    outer = outer_copy()
    outer.update(inner.digest())
    found = kind + outer.hexdigest()[:20]
    if len(memo) >= _MAC_MEMO_SIZE:
        memo.clear()
    memo[message] = found
    return found


#: Facets that recognise a patient on their own: the email, the phone, the names with the day.
STRONG_FACETS = "epn"

_FACET_COLUMNS = ("Patient Email", "Patient Phone", "Patient First Name", "Patient Last Name",
                  "Received")
_NOT_DIGIT = re.compile(r"\D")


def row_facets(row: SheetRow, staff_cols: Mapping[str, int], secret: bytes) -> tuple[str, ...]:
    """Keyed digests of the ways to recognise a row's patient, each marked by its kind.

    ``e`` the email, ``p`` the phone (its last ten digits), ``n`` the first and last name with
    Received; and the parts alone, ``f`` the first name, ``l`` the last name, ``d`` Received.
    The strong ones (:data:`STRONG_FACETS`) name one patient by themselves; two of the others
    together do. Keyed with the state's secret (HMAC), so a digest in the state file or in a
    draft's header cannot be tested against a guessed name or phone. Empty parts give none.
    """
    values = row.values
    width = len(values)
    email, phone, first, last, received = [
        comparison_key(cell_text(values[col])).strip()
        if (col := staff_cols.get(name)) is not None and col < width
        else ""
        for name in _FACET_COLUMNS
    ]
    out = []
    if "@" in email:
        out.append(_mac(secret, "e", email))
    # ``\D`` removed is ``\d`` kept: the digits, Unicode ones included, in one call.
    digits = _NOT_DIGIT.sub("", _DECIMAL_ZEROS.sub("", phone))
    if len(digits) >= 7:
        out.append(_mac(secret, "p", digits[-10:]))
    first, last = _words(first), _words(last)
    if first and received:
        out.append(_mac(secret, "n", f"{first}|{last}|{received}"))
    for kind, part in (("f", first), ("l", last), ("d", received)):
        if part:
            out.append(_mac(secret, kind, part))
    return tuple(out)


def strong(facets: tuple[str, ...]) -> frozenset[str]:
    """The facets that recognise a patient on their own (see :func:`row_facets`)."""
    return frozenset(f for f in facets if f[:1] in STRONG_FACETS)


def _words(text: str) -> str:
    return " ".join(_NOT_WORD.sub(" ", comparison_key(text)).split())


def referrer_key_of(name: str, practice: str = "", email: str | None = None) -> str:
    """The key of a referrer: the Referrer Email when there is one, else Referred By and
    Referrer Practice, compared loosely.

    An address names one person best (two "Dr. Lee"s at different practices are two
    referrers; one provider typed "Dr Lee" and "dr. lee" is one); without one, case, spacing and
    punctuation do not matter. The Referrers tab groups rows by it, the recurring referrer
    emails are rate-limited by it, and the digest counts by it. Only a hash is returned: the
    key may sit in the state file and in draft keys. ``""`` when there is no referrer at all.
    """
    if email and email.strip():
        basis = "email:" + comparison_key(email.strip())
    else:
        who = _words(name)
        if not who:
            return ""
        basis = f"name:{who}|{_words(practice)}"
    return "referrer-" + hashlib.sha256(basis.encode("utf-8")).hexdigest()[:8]


def referrer_key(referral: Referral) -> str:
    """The referrer key of a parsed row (:func:`referrer_key_of` of its referrer columns)."""
    return referrer_key_of(
        referral.referred_by, referral.referrer_practice, referral.referrer_email
    )
