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
import hmac
import re
from collections.abc import Mapping

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


_DIGITS = re.compile(r"\d")
_DECIMAL_ZEROS = re.compile(r"\.0+$")


_keyed: tuple[bytes, hmac.HMAC, dict[str, str]] | None = None
#: How many facets :func:`_mac` remembers per secret before it starts afresh.
_MAC_MEMO_SIZE = 200_000


def _mac(secret: bytes, kind: str, text: str) -> str:
    # HMAC-BLAKE2b, as ``hmac.new(secret, msg, hashlib.blake2b)``; the keyed state (the padded
    # key already hashed in) is made once per secret and copied per message, which is the same
    # computation without redoing the key schedule for each of the ~6 facets of every row.
    # Facets repeat across rows (first names, last names, days received): each distinct one is
    # computed once per secret and the one string shared by every row that has it (issue 13:
    # a first sync's ~6 facets per row). The memo lives in this process only, beside the
    # snapshot that holds the same names, and is dropped when the secret changes.
    global _keyed
    keyed = _keyed
    if keyed is None or keyed[0] != secret:
        keyed = _keyed = (secret, hmac.new(secret, digestmod=hashlib.blake2b), {})
    message = f"{kind}:{text}"
    memo = keyed[2]
    found = memo.get(message)
    if found is not None:
        return found
    digest = keyed[1].copy()
    digest.update(message.encode("utf-8", "surrogatepass"))
    found = kind + digest.hexdigest()[:20]
    if len(memo) >= _MAC_MEMO_SIZE:
        memo.clear()
    memo[message] = found
    return found


#: Facets that recognise a patient on their own: the email, the phone, the names with the day.
STRONG_FACETS = "epn"


def row_facets(row: SheetRow, staff_cols: Mapping[str, int], secret: bytes) -> tuple[str, ...]:
    """Keyed digests of the ways to recognise a row's patient, each marked by its kind.

    ``e`` the email, ``p`` the phone (its last ten digits), ``n`` the first and last name with
    Received; and the parts alone, ``f`` the first name, ``l`` the last name, ``d`` Received.
    The strong ones (:data:`STRONG_FACETS`) name one patient by themselves; two of the others
    together do. Keyed with the state's secret (HMAC), so a digest in the state file or in a
    draft's header cannot be tested against a guessed name or phone. Empty parts give none.
    """

    def text(name: str) -> str:
        return comparison_key(cell_text(row.get(staff_cols.get(name)))).strip()

    out = []
    email = text("Patient Email")
    if "@" in email:
        out.append(_mac(secret, "e", email))
    digits = "".join(_DIGITS.findall(_DECIMAL_ZEROS.sub("", text("Patient Phone"))))
    if len(digits) >= 7:
        out.append(_mac(secret, "p", digits[-10:]))
    first, last = _words(text("Patient First Name")), _words(text("Patient Last Name"))
    received = text("Received")
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
