"""``MemorySheet``: the sheet role in memory, for the planner's property tests and ``--dry-run``.

It applies plans with the same compare-and-set rules every backend follows
(:mod:`sheets_bridge.sheets.locate`): a write finds its row by Referral ID (or, for a row with no
ID yet, by staff fingerprint) wherever the row has moved, and lands only if the cell still holds
``expected``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import ClassVar

from sheets_bridge.dates import to_serial
from sheets_bridge.identity import row_fingerprint
from sheets_bridge.model import (
    CellValue,
    DateSerial,
    OutValue,
    Plan,
    ReferralsTab,
    SheetRow,
    Snapshot,
    TabValues,
)
from sheets_bridge.sheets import ApplyReport, SetupReport
from sheets_bridge.sheets.locate import place_writes
from sheets_bridge.values import cell_text


class _GridRows:
    """The locator's view of the grid (row ``n`` is ``grid[n - 1]``)."""

    def __init__(self, grid: list[list[CellValue]], id_col: int | None,
                 staff: Mapping[str, int]) -> None:
        self.grid = grid
        self.id_col = id_col
        self.staff = staff

    def id_at(self, number: int) -> str | None:
        if not 2 <= number <= len(self.grid):
            return None
        row = self.grid[number - 1]
        col = self.id_col
        return cell_text(row[col]).strip() if col is not None and col < len(row) else ""

    def fingerprint_at(self, number: int) -> str:
        return row_fingerprint(tuple(self.grid[number - 1]), self.staff)

    def numbers(self) -> Iterable[int]:
        return range(2, len(self.grid) + 1)

    unchanged_since_read = False  # the grid may have been edited since: check fingerprints

    def text(self, number: int, col: int) -> str:
        row = self.grid[number - 1]
        return cell_text(row[col]) if col < len(row) else ""


class MemorySheet:
    """A Referrals tab as a list of rows (row 1 = headers) plus other tabs as lists of rows."""

    kind: ClassVar[str] = "memory"

    def __init__(
        self,
        grid: Sequence[Sequence[CellValue]] | None,
        *,
        title: str = "Referrals",
        tabs: dict[str, list[list[CellValue]]] | None = None,
    ) -> None:
        self.grid: list[list[CellValue]] | None = (
            [list(row) for row in grid] if grid is not None else None
        )
        self.title = title
        self.tabs: dict[str, list[list[CellValue]]] = tabs or {}
        self.version = 0
        self.reads = 0
        self.applies = 0

    def describe(self) -> str:
        return f"memory:{self.title}"

    def link(self) -> str | None:
        return None

    def prepare(self) -> None:
        """Nothing is left behind in memory by a crash."""

    def setup(self) -> SetupReport:
        return SetupReport(lines=["Nothing to set up: the sheet is in memory"])

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

    def snapshot_reusable(self, snapshot: Snapshot) -> bool:
        """True when nothing was applied since ``snapshot`` was read."""
        return snapshot.version == str(self.version)

    def apply(self, snapshot: Snapshot, plan: Plan, columns: dict[str, int]) -> ApplyReport:
        self.applies += 1
        report = ApplyReport()
        # The other tabs (the Bridge Log above all) are written even when Referrals is missing.
        for content in plan.tab_contents:
            self.tabs[content.title] = [[_as_cell(v) for v in r] for r in content.rows]
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
        rows = _GridRows(self.grid, columns.get("Referral ID"), plan.staff_columns)
        placement = place_writes(plan.cell_writes, rows, columns, rows.text)
        report.skipped.extend(placement.skipped)
        for write, number in placement.writes:
            row = self.grid[number - 1]
            col = columns[write.column]
            row.extend([None] * (col + 1 - len(row)))
            row[col] = write.new if write.new != "" else None
            report.applied.append(write)
        if report.applied or report.headers_added or report.tabs_written:
            self.version += 1
            report.saved = True
        return report


def _as_cell(value: OutValue) -> CellValue:
    """A written value as a spreadsheet holds it: a date as its serial (a DateSerial)."""
    if isinstance(value, datetime | date):
        return DateSerial(to_serial(value))
    return value
