"""The first phase of a plan: where the columns are, which cells may be written, what stops it all.

Columns are found by header name (PRODUCT.md: never by position), so staff may reorder, insert and
rename columns at will. This phase decides, before any row is read: whether the Referrals tab can
be planned at all (a missing tab, headers that moved off row 1, a duplicated Referral ID column
stop everything), where each bridge column is or will be added, and which cells merged cells
keep the bridge from writing (B3). Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sheets_bridge.columns import ColumnMap, column_letter, header_row_elsewhere, resolve_columns
from sheets_bridge.model import CellValue, HeaderWrite, Problem, ReferralsTab

__all__ = ["Layout", "read_layout"]


@dataclass(frozen=True)
class Layout:
    """The Referrals tab's columns as this cycle sees them."""

    cols: ColumnMap
    columns: dict[str, int]
    """Bridge header -> 0-based column, missing ones placed at the right end, duplicates left out."""
    header_writes: tuple[HeaderWrite, ...]
    problems: tuple[Problem, ...]
    blocked_cells: frozenset[tuple[int, int]]
    """(row, column) bridge cells inside merged ranges: never written."""
    merged_notes: Mapping[int, tuple[str, ...]]
    """Row number -> Attention lines about staff cells merged across rows."""
    overrides: Mapping[int, Mapping[int, CellValue]]
    """Row number -> column -> the value a merged range shows there (its top-left cell)."""

    @property
    def staff(self) -> Mapping[str, int]:
        return self.cols.staff

    def writable(self, number: int, name: str) -> int | None:
        """The column of bridge column ``name`` if the bridge may write it in row ``number``."""
        col = self.columns.get(name)
        return None if col is None or (number, col) in self.blocked_cells else col


def _header_stop(tab: ReferralsTab, cols: ColumnMap,
                 aliases: Mapping[str, tuple[str, ...]]) -> str | None:
    if len(cols.staff) + len(cols.bridge) >= 2:
        return None
    where = header_row_elsewhere([r.values for r in tab.rows], aliases)
    if where is not None:
        return (
            f"The headers of the {tab.title} tab seem to be on row {tab.rows[where].number}: "
            "move them to row 1 (the bridge never reads data rows as headers)"
        )
    if not tab.rows:
        return (
            f"The {tab.title} tab has no header row: run `sheets-bridge init --config PATH` "
            "to add the headers"
        )
    return (
        f"Row 1 of the {tab.title} tab holds none of the expected headers (Received, Patient "
        "First Name, ...): put the headers back in row 1, or add aliases under columns.aliases"
    )


def read_layout(tab: ReferralsTab, aliases: Mapping[str, tuple[str, ...]]) -> Layout | str:
    """The tab's layout, or the reason (a safety stop, in words) why nothing may be written."""
    cols = resolve_columns(tab.headers, aliases)
    stop = _header_stop(tab, cols, aliases)
    if stop is not None:
        return stop
    problems: list[Problem] = []
    for name, positions in sorted(cols.duplicates.items()):
        letters = " and ".join(column_letter(p) for p in positions)
        problems.append(
            Problem(
                f"{name} appears more than once (columns {letters}): rename or delete all but one; "
                "the bridge reads and writes none of them until then",
                column=name,
            )
        )
    if "Referral ID" in cols.duplicates:
        return "; ".join(p.message for p in problems)
    for name in cols.missing_staff:
        if name == "Notes":
            continue
        problems.append(
            Problem(
                f"The {name} column is missing: add a column headed {name} (or an alias in "
                "columns.aliases); the rules that need it are skipped",
                column=name,
                severity="info" if name not in ("Received", "Patient First Name") else "warning",
            )
        )

    # Bridge columns: where they are, and where the missing ones will be added.
    width = max([len(tab.headers), *(len(r.values) for r in tab.rows)], default=0)
    columns = dict(cols.bridge)
    header_writes = []
    for name in cols.missing_bridge:
        columns[name] = width
        header_writes.append(HeaderWrite(width, name))
        width += 1
    for name in cols.duplicates:
        columns.pop(name, None)

    # Merged cells (B3).
    blocked: set[tuple[int, int]] = set()
    notes: dict[int, list[str]] = {}
    overrides: dict[int, dict[int, CellValue]] = {}
    by_number = {r.number: r for r in tab.rows} if tab.merged else {}
    bridge_positions = {col: name for name, col in columns.items()}
    staff_positions = {col: name for name, col in cols.staff.items()}
    for rng in tab.merged:
        if rng.first_row == rng.last_row and rng.first_col == rng.last_col:
            continue
        top = by_number.get(rng.first_row)
        top_value = top.get(rng.first_col) if top else None
        for col in range(rng.first_col, rng.last_col + 1):
            if col in bridge_positions:
                for number in range(max(rng.first_row, 2), rng.last_row + 1):
                    blocked.add((number, col))
                problems.append(
                    Problem(
                        f"Cells of {bridge_positions[col]} are merged across rows "
                        f"{rng.first_row}–{rng.last_row}: unmerge them so the bridge can write there",
                        column=bridge_positions[col],
                    )
                )
            elif col in staff_positions and rng.last_row > rng.first_row:
                for number in range(max(rng.first_row, 2), rng.last_row + 1):
                    notes.setdefault(number, []).append(
                        f"{staff_positions[col]} is merged across rows "
                        f"{rng.first_row}–{rng.last_row}: unmerge the cells and fill in each row"
                    )
                    if number != rng.first_row:
                        overrides.setdefault(number, {})[col] = top_value
    return Layout(
        cols=cols,
        columns=columns,
        header_writes=tuple(header_writes),
        problems=tuple(problems),
        blocked_cells=frozenset(blocked),
        merged_notes={n: tuple(lines) for n, lines in notes.items()},
        overrides=overrides,
    )
