"""Finding columns by header name, wherever staff moved them.

Headers match without regard to case, spacing or punctuation ("referred-by:" is Referred By), and
through aliases: a few common ones built in, more from the config. A header that appears twice is
ambiguous: nothing is read from or written to it, and the Bridge Log names both positions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from sheets_bridge.model import BRIDGE_COLUMNS, STAFF_COLUMNS, CellValue

#: Names practices commonly use for the staff columns; config aliases add to these.
BUILTIN_ALIASES: dict[str, tuple[str, ...]] = {
    "Received": ("Date", "Date Received", "Received Date", "Referral Date", "Received On"),
    "Patient First Name": ("First Name", "First", "Patient First"),
    "Patient Last Name": ("Last Name", "Surname", "Family Name", "Patient Last"),
    "Patient Phone": ("Phone", "Phone Number", "Patient Phone Number", "Mobile", "Cell"),
    "Patient Email": ("Email", "E-mail", "Email Address", "Patient E-mail"),
    "How Heard": ("How Did You Hear", "How They Heard", "Lead Source", "Referral Source", "Source"),
    "Referred By": ("Referrer", "Referring Doctor", "Referring Provider", "Referred From"),
    "Referrer Email": ("Referring Doctor Email", "Referring Provider Email", "Referrer E-mail"),
    "Referrer Practice": ("Referring Practice", "Referring Clinic", "Referrer Clinic"),
    "Reason": ("Reason for Referral", "Referral Reason"),
    "Fit": ("Good Fit", "Fit?"),
    "First Contact": ("First Contacted", "Date Contacted", "Contacted On"),
    "Appointment": ("Appt", "Appointment Date", "First Appointment", "Appt Date"),
    "Visit": ("Visit Status", "Attendance"),
    "Outcome": ("Result",),
    "Consent to Update Referrer": ("Consent", "Consent to Update", "Referrer Consent"),
    "Notes": ("Note", "Comments", "Comment"),
}


@lru_cache(maxsize=4096)
def normalize_header(text: str) -> str:
    """Lowercase letters and digits only: ``"Referred-By:"`` and ``"referred by"`` are one name."""
    return "".join(ch for ch in text.casefold() if ch.isalnum())


@dataclass(frozen=True)
class ColumnMap:
    """Where each known column is (0-based), and what could not be placed."""

    staff: Mapping[str, int]
    bridge: Mapping[str, int]
    duplicates: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    unknown: tuple[tuple[int, str], ...] = ()
    width: int = 0

    @property
    def missing_staff(self) -> tuple[str, ...]:
        return tuple(
            name for name in STAFF_COLUMNS if name not in self.staff and name not in self.duplicates
        )

    @property
    def missing_bridge(self) -> tuple[str, ...]:
        return tuple(
            name
            for name in BRIDGE_COLUMNS
            if name not in self.bridge and name not in self.duplicates
        )

    def known(self) -> int:
        return len(self.staff) + len(self.bridge) + len(self.duplicates)


def column_letter(col: int) -> str:
    """0-based column index to the spreadsheet's letters (0 -> A, 27 -> AB)."""
    letters = ""
    col += 1
    while col:
        col, rest = divmod(col - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _lookup(aliases: Mapping[str, Sequence[str]]) -> dict[str, str]:
    table: dict[str, str] = {}
    for name in (*STAFF_COLUMNS, *BRIDGE_COLUMNS):
        table[normalize_header(name)] = name
    for source in (BUILTIN_ALIASES, aliases):
        for name, names in source.items():
            for alias in names:
                table.setdefault(normalize_header(alias), name)
    # A practice's own alias wins over a built-in one.
    for name, names in aliases.items():
        for alias in names:
            table[normalize_header(alias)] = name
    return table


def canonical_name(text: str, aliases: Mapping[str, Sequence[str]]) -> str | None:
    """The column a header means, or None when the bridge does not know it."""
    return _lookup(aliases).get(normalize_header(text))


def resolve_columns(headers: Sequence[CellValue], aliases: Mapping[str, Sequence[str]]) -> ColumnMap:
    """Place every header of row 1; duplicates are reported, never guessed."""
    table = _lookup(aliases)
    positions: dict[str, list[int]] = {}
    unknown: list[tuple[int, str]] = []
    for col, value in enumerate(headers):
        if value is None or isinstance(value, bool):
            continue
        text = str(value).strip()
        key = normalize_header(text)
        if not key:
            continue
        name = table.get(key)
        if name is None:
            unknown.append((col, text))
        else:
            positions.setdefault(name, []).append(col)
    staff: dict[str, int] = {}
    bridge: dict[str, int] = {}
    duplicates: dict[str, tuple[int, ...]] = {}
    for name, cols in positions.items():
        if len(cols) > 1:
            duplicates[name] = tuple(cols)
        elif name in BRIDGE_COLUMNS:
            bridge[name] = cols[0]
        else:
            staff[name] = cols[0]
    return ColumnMap(staff, bridge, duplicates, tuple(unknown), width=len(headers))


def header_row_elsewhere(
    rows: Sequence[Sequence[CellValue]], aliases: Mapping[str, Sequence[str]], *, scan: int = 10
) -> int | None:
    """The index among the first ``scan`` data rows that looks like the header row, if any.

    Used when row 1 holds no known header: data rows are never read as headers, so the bridge
    stops and says where the headers seem to be.
    """
    for index, values in enumerate(rows[:scan]):
        found = resolve_columns(values, aliases)
        if len(found.staff) + len(found.bridge) >= 3:
            return index
    return None
