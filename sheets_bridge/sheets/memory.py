"""``MemorySheet``: the sheet role in memory, for the planner's property tests and ``--dry-run``.

It applies plans with the same compare-and-set rules a real backend must follow: a write finds
its row by Referral ID (or, for a row with no ID yet, by staff fingerprint) wherever the row has
moved, and lands only if the cell still holds ``expected``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

from sheets_bridge.model import (
    CellValue,
    CellWrite,
    Plan,
    ReferralsTab,
    SheetRow,
    Snapshot,
    TabValues,
)
from sheets_bridge.sheets import ApplyReport
from sheets_bridge.values import cell_text

Fingerprint = Callable[[SheetRow], str]


class MemorySheet:
    """A Referrals tab as a list of rows (row 1 = headers) plus other tabs as lists of rows."""

    kind: ClassVar[str] = "memory"

    def __init__(
        self,
        grid: Sequence[Sequence[CellValue]] | None,
        *,
        title: str = "Referrals",
        tabs: dict[str, list[list[CellValue]]] | None = None,
        fingerprint: Fingerprint | None = None,
    ) -> None:
        self.grid: list[list[CellValue]] | None = (
            [list(row) for row in grid] if grid is not None else None
        )
        self.title = title
        self.tabs: dict[str, list[list[CellValue]]] = tabs or {}
        self.fingerprint = fingerprint
        self.version = 0
        self.reads = 0
        self.applies = 0

    def describe(self) -> str:
        return f"memory:{self.title}"

    def read(self) -> Snapshot:
        self.reads += 1
        tab = None
        if self.grid is not None:
            headers = tuple(self.grid[0]) if self.grid else ()
            rows = tuple(
                SheetRow(number, tuple(values))
                for number, values in enumerate(self.grid[1:], start=2)
                if any(v is not None and v != "" for v in values)
            )
            tab = ReferralsTab(self.title, headers, rows)
        titles = ((self.title,) if self.grid is not None else ()) + tuple(self.tabs)
        return Snapshot(
            tab_titles=titles,
            referrals=tab,
            tabs={
                title: TabValues(title, tuple(tuple(r) for r in rows))
                for title, rows in self.tabs.items()
            },
            version=str(self.version),
        )

    def _find_row(self, write: CellWrite, id_col: int | None) -> int | None:
        assert self.grid is not None
        number = write.row.number
        if 0 < number - 1 < len(self.grid) and self._is_row(self.grid[number - 1], write, id_col):
            return number - 1
        matches = [
            i for i, row in enumerate(self.grid[1:], start=1) if self._is_row(row, write, id_col)
        ]
        return matches[0] if len(matches) == 1 else None

    def _is_row(self, row: list[CellValue], write: CellWrite, id_col: int | None) -> bool:
        current = cell_text(row[id_col]).strip() if id_col is not None and id_col < len(row) else ""
        if write.row.referral_id:
            return current == write.row.referral_id
        if current:
            return False
        if self.fingerprint is None:
            return True
        return self.fingerprint(SheetRow(0, tuple(row))) == write.row.fingerprint

    def is_current(self, snapshot: Snapshot) -> bool:
        """True when nothing was applied since ``snapshot`` was read."""
        return snapshot.version == str(self.version)

    def apply(self, snapshot: Snapshot, plan: Plan, columns: dict[str, int]) -> ApplyReport:
        self.applies += 1
        report = ApplyReport()
        # The other tabs (the Bridge Log above all) are written even when Referrals is missing.
        for content in plan.tab_contents:
            self.tabs[content.title] = [list(r) for r in content.rows]
            report.tabs_written.append(content.title)
        if self.grid is None:
            if report.tabs_written:
                self.version += 1
                report.saved = True
            return report
        if not self.grid:
            self.grid.append([])
        for header in plan.header_writes:
            row = self.grid[0]
            row.extend([None] * (header.col + 1 - len(row)))
            row[header.col] = header.header
            report.headers_added.append(header)
        id_col = columns.get("Referral ID")
        # Locate every row before writing, so assigning an ID cannot hide a row from its other writes.
        located = {}
        for write in plan.cell_writes:
            key = (write.row.number, write.row.referral_id, write.row.fingerprint)
            if key not in located:
                located[key] = self._find_row(write, id_col)
        for write in plan.cell_writes:
            index = located[(write.row.number, write.row.referral_id, write.row.fingerprint)]
            col = columns.get(write.column)
            if index is None or col is None:
                report.skipped.append((write, "row not found"))
                continue
            row = self.grid[index]
            row.extend([None] * (col + 1 - len(row)))
            if cell_text(row[col]) != write.expected:
                report.skipped.append((write, "cell changed"))
                continue
            row[col] = write.new if write.new != "" else None
            report.applied.append(write)
        if report.applied or report.headers_added or report.tabs_written:
            self.version += 1
            report.saved = True
        return report
