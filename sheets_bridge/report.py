"""How a cycle's report reads to a person: the lines ``sync`` and ``demo`` print.

Counts, Referral IDs and column names only: nothing here names a patient.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sheets_bridge.settings import LocalSheetConfig

if TYPE_CHECKING:
    from sheets_bridge.config import BridgeConfig
    from sheets_bridge.cycle import CycleReport

__all__ = ["drafts_where", "report_lines", "sheet_where"]


def report_lines(report: CycleReport, config: BridgeConfig, *, dry_run: bool) -> list[str]:
    """What ``sync`` prints about one cycle (and ``demo`` after it), a line each."""
    lines: list[str] = []
    add = lines.append
    verb = "to write" if dry_run else "written"
    add(f"Sheet: {sheet_where(config)}")
    lines.extend(report.notes)
    add(f"Rows read: {report.rows_read} ({report.referrals} referrals)")
    add(f"Rows with problems (see their Attention cells): {report.rows_with_problems}")
    if report.outcome == "stopped":
        add(f"STOPPED, nothing written: {report.stop_reason}")
        return lines
    if report.outcome == "quiet":
        add("Nothing to change: the sheet was left untouched.")
    if report.ids_assigned:
        add(f"Referral IDs assigned: {report.ids_assigned}")
    if report.headers_added:
        add(f"Columns added: {', '.join(report.headers_added)}")
    add(f"Cells {verb}: {report.cells_written}")
    if report.cells_skipped:
        add(f"Cells skipped (the row moved or changed; next cycle retries): {report.cells_skipped}")
    add(f"Tabs {verb}: {', '.join(report.tabs_written) or 'none'}")
    if dry_run and report.result is not None:
        drafts = report.result.plan.drafts
        add(f"Drafts it would make: {len(drafts)}")
    else:
        where = f" (in {drafts_where(config)})" if report.drafts_made else ""
        add(f"Drafts made: {len(report.drafts_made)}{where}")
    for problem in report.problems:
        add(f"  - {problem.message}")
    return lines


def sheet_where(config: BridgeConfig) -> str:
    if isinstance(config.sheet, LocalSheetConfig):
        return f"{config.sheet.path} (tab {config.sheet.tab})"
    return f"Google Sheet {config.sheet.spreadsheet_id}"


def drafts_where(config: BridgeConfig) -> str:
    path = getattr(config.mail, "path", None)
    return str(path) if path else "Gmail drafts"
