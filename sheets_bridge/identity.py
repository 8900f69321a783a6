"""Who a row is, as digests: Referral IDs, row identities, staff fingerprints, referrer keys.

Every backend, the planner, drafting and the summaries name rows and referrers the same way, so
these live once, here, below all of them. Each is a digest or an opaque key, never a name: they
are stored in the state file and in draft keys, which hold no patient data.

- A **Referral ID** (``R-00012``) is the row's identity in the sheet, written in its own column.
- A row's **identity** (who and when: first and last name and Received, as typed) re-finds the
  ID of a row whose ID cell was cleared, and tells a copied row from its original.
- A row's **fingerprint** (every staff cell) finds, at write time, a row that has no ID yet.
- A **referrer key** groups a referrer's rows: the Referrers tab, rate limits, the digest.
"""

from __future__ import annotations

import hashlib
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
    "row_fingerprint",
    "row_identity",
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
    digest = hashlib.blake2b(digest_size=8)
    for col in sorted(staff_cols.values()):
        value = values[col] if col < len(values) else None
        digest.update(cell_text(value).encode("utf-8", "surrogatepass"))
        digest.update(b"\x1f")
    return digest.hexdigest()


def identity_from_cells(first: CellValue, last: CellValue, received: CellValue) -> str:
    """A stable digest of who and when (names + Received as typed, compared loosely)."""
    parts = [comparison_key(str(v)) if v is not None else "" for v in (first, last, received)]
    joined = "\x1f".join(parts).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(joined, digest_size=16, person=b"sb-identity").hexdigest()


_IDENTITY_COLUMNS = ("Patient First Name", "Patient Last Name", "Received")


def row_identity(row: SheetRow, staff_cols: Mapping[str, int]) -> str:
    """The identity digest of a Referrals row (see :func:`identity_from_cells`)."""
    return identity_from_cells(*(row.get(staff_cols.get(name)) for name in _IDENTITY_COLUMNS))


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
