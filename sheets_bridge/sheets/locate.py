"""Where a planned write lands: the row that carries its Referral ID now, checked cell by cell.

Every backend applies a plan the same way (STYLE.md, "Apply is compare-and-set"): staff may have
sorted, inserted or deleted rows since the sheet was read, so a write is addressed by Referral ID,
never by row number. This module is that rule, once, for every backend:

1. the row where the write's row was read, if it still carries the same Referral ID (or, for a
   row that had no ID yet, still has no ID and the same staff fingerprint);
2. else the one row anywhere that carries that ID (or fingerprint); none, or more than one, and
   the row's writes are skipped, to be planned again next cycle;
3. each cell is written only if it still holds what the plan expected there.

All of a row's writes are located before any is applied, so the Referral ID a plan gives a new
row cannot hide that row from its own other writes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sheets_bridge.model import CellWrite, RowRef

__all__ = ["Placement", "RowSource", "locate", "place_writes"]


class RowSource(Protocol):
    """The Referrals tab as it is at write time, as much as the locator needs of it."""

    def id_at(self, number: int) -> str | None:
        """The Referral ID cell's text (stripped) of row ``number``; ``""`` when it has none,
        None when there is no such row."""
        ...

    def fingerprint_at(self, number: int) -> str:
        """The staff fingerprint (:func:`sheets_bridge.identity.row_fingerprint`) of a row."""
        ...

    def numbers(self) -> Iterable[int]:
        """Every data row's number (row 2 onwards), for the search when a row has moved."""
        ...

    @property
    def unchanged_since_read(self) -> bool:
        """True when the backend knows the sheet is exactly as the plan read it (the workbook,
        byte-identical): a row is where it was, so a row without an ID needs no fingerprint."""
        ...


@dataclass
class _Search:
    """Lazily built indexes of a RowSource: only a moved row pays for them."""

    rows: RowSource
    _by_id: dict[str, list[int]] | None = None
    _by_fingerprint: dict[str, list[int]] | None = None

    def by_id(self, referral_id: str) -> list[int]:
        if self._by_id is None:
            self._by_id = {}
            for number in self.rows.numbers():
                rid = self.rows.id_at(number)
                if rid:
                    self._by_id.setdefault(rid, []).append(number)
        return self._by_id.get(referral_id, [])

    def by_fingerprint(self, fingerprint: str) -> list[int]:
        if self._by_fingerprint is None:
            self._by_fingerprint = {}
            for number in self.rows.numbers():
                if self.rows.id_at(number) == "":
                    fp = self.rows.fingerprint_at(number)
                    self._by_fingerprint.setdefault(fp, []).append(number)
        return self._by_fingerprint.get(fingerprint, [])


def _is_row(ref: RowRef, rows: RowSource, number: int) -> bool:
    current = rows.id_at(number)
    if current is None:
        return False
    if ref.referral_id:
        return current == ref.referral_id
    if current:
        return False
    # A write planned for a row without an ID and without a fingerprint (a hand-made plan), or
    # on a sheet known unchanged since the read, trusts the position, while that row has no ID.
    if not ref.fingerprint or (number == ref.number and rows.unchanged_since_read):
        return True
    return rows.fingerprint_at(number) == ref.fingerprint


def locate(ref: RowRef, rows: RowSource, search: _Search | None = None) -> tuple[int | None, str]:
    """The row number ``ref``'s writes go to now, or None and why not (no patient data)."""
    if _is_row(ref, rows, ref.number):
        return ref.number, ""
    search = search or _Search(rows)
    who = ref.referral_id or ref.target_id or "a new row"
    if ref.referral_id:
        found = search.by_id(ref.referral_id)
        if len(found) > 1:
            return None, f"{ref.referral_id} is on more than one row"
    elif ref.fingerprint:
        found = search.by_fingerprint(ref.fingerprint)
        if len(found) > 1:
            return None, f"{who}: more than one row has the same staff cells"
    else:
        found = []
    if not found:
        return None, f"the row of {who} is no longer in the sheet (deleted, or changed)"
    return found[0], ""


@dataclass
class Placement:
    """The writes of a plan that can land, each with its row now, and those that cannot."""

    writes: list[tuple[CellWrite, int]] = field(default_factory=list)
    skipped: list[tuple[CellWrite, str]] = field(default_factory=list)
    moved: int = 0
    """Rows found somewhere other than where they were read (staff sorted in between)."""

    def rows(self) -> dict[int, list[CellWrite]]:
        """The placed writes by row number."""
        out: dict[int, list[CellWrite]] = {}
        for write, number in self.writes:
            out.setdefault(number, []).append(write)
        return out


def place_writes(
    writes: Sequence[CellWrite],
    rows: RowSource,
    columns: Mapping[str, int],
    cell_text: Callable[[int, int], str],
    *,
    refuse: Callable[[int, int], str | None] | None = None,
) -> Placement:
    """Locate every write's row, then keep each write whose cell still holds ``expected``.

    ``columns`` maps bridge headers to 0-based columns; ``cell_text(row, col)`` is a cell's
    compare-and-set text now; ``refuse(row, col)`` may name a reason a cell cannot be written
    (merged cells, a shared formula). Two rows whose writes land on the same row (an ambiguous
    match) are both skipped.
    """
    placement = Placement()
    search = _Search(rows)
    located: dict[RowRef, tuple[int | None, str]] = {}
    # A plan gives a row's writes one after another with the same RowRef object: the same
    # object as the write before needs no dict lookup (a RowRef hashes in Python, slowly).
    last: RowRef | None = None
    for write in writes:
        ref = write.row
        if ref is not last and ref not in located:
            located[ref] = locate(ref, rows, search)
        last = ref
    # A row given its Referral ID by this very plan may be named by that ID in its other writes.
    gets_id = {
        write.row: write.new.strip()
        for write in writes
        if write.column == "Referral ID" and located[write.row][0] is not None
    }
    issued = {new: located[ref] for ref, new in gets_id.items()}
    for ref, (number, _) in list(located.items()):
        if number is None and ref.referral_id in issued:
            located[ref] = issued[ref.referral_id]
    claimed: dict[int, set[str]] = {}
    for ref, (number, _) in located.items():
        if number is not None:
            name = gets_id.get(ref) or (ref.referral_id if ref.referral_id in issued else "")
            claimed.setdefault(number, set()).add(name or repr(ref))
    last = None
    found: tuple[int | None, str] = (None, "")
    for write in writes:
        if write.row is not last:
            last = write.row
            found = located[last]
        number, reason = found
        col = columns.get(write.column)
        if number is not None and len(claimed[number]) > 1:
            number, reason = None, f"row {number} matches more than one planned row"
        if number is None:
            placement.skipped.append((write, reason))
            continue
        if col is None:
            placement.skipped.append((write, f"column {write.column} is not in the sheet"))
            continue
        refused = refuse(number, col) if refuse is not None else None
        if refused:
            placement.skipped.append((write, refused))
            continue
        if cell_text(number, col) != write.expected:
            placement.skipped.append((write, f"{write.column} changed since it was read"))
            continue
        placement.writes.append((write, number))
    placement.moved = sum(
        1 for ref, (number, _) in located.items() if number is not None and number != ref.number
    )
    return placement
