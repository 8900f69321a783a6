"""Summary tabs on Google look as they do in the workbook (issue 11's looks on the Google side).

What a manager would notice: "62%" and "of 8" rather than "0.62" and "8", dates as dates, bold
headings, numbers under right-aligned headers, and a name like ``=1+1`` shown as typed; all of it
sent in the same one write a summary rewrite already cost, and nothing at all on a quiet cycle.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXED_NOW, patient, sheet_grid
from fakes.google_server import FakeGoogle
from google_support import FAST, SHEET_ID, google_config, sheets_calls

from sheets_bridge.columns import column_letter
from sheets_bridge.config import BridgeConfig
from sheets_bridge.cycle import CycleReport, run_cycle
from sheets_bridge.model import DASHBOARD_TAB, Hours, OutOf, Plan, Share, Snapshot, TabContent
from sheets_bridge.sheets import ApplyReport
from sheets_bridge.sheets.google import GoogleSheet
from sheets_bridge.state import StateStore
from sheets_bridge.summaries import summary_tabs

NAMES = ["Ana", "Ben", "Cy", "Dee", "Eli", "Fay", "Gus", "Hal"]


class RecordingSheet(GoogleSheet):
    """The real Google backend, keeping the summary tabs it was asked to write (the oracle)."""

    written: dict[str, TabContent]

    def apply(self, snapshot: Snapshot, plan: Plan, columns: dict[str, int]) -> ApplyReport:
        for content in plan.tab_contents:
            self.written[content.title] = content
        return super().apply(snapshot, plan, columns)


def cycle(config: BridgeConfig, sheet: Any, *, now: datetime = FIXED_NOW) -> CycleReport:
    with StateStore(config.state_dir) as state:
        return run_cycle(config, sheet, state, now=now, tab_builders=summary_tabs())


@pytest.fixture
def synced(fake_google: FakeGoogle, tmp_path: Path) -> tuple[BridgeConfig, RecordingSheet]:
    grid = sheet_grid([
        patient(name, f"{name}son", Received=f"2025-03-0{1 + i % 3} 0{8 + i % 2}:00",
                Patient_Email=f"p{i}@example.org", Referrer_Email="dr@example.com")
        for i, name in enumerate(NAMES)
    ])
    fake_google.add_spreadsheet(SHEET_ID, {"Referrals": grid})
    config = google_config(fake_google, tmp_path)
    sheet = RecordingSheet.from_config(config.sheet, policy=FAST)
    assert isinstance(sheet, RecordingSheet)
    sheet.written = {}
    # staff typed '=1+1 (text) as a first name: as the UI stores it, a RAW text cell
    sheet.client.values_update(SHEET_ID, "'Referrals'!B2", params={"valueInputOption": "RAW"},
                               body={"values": [["=1+1"]]})
    # A day on, everyone is in the Follow-ups queue (names on a summary tab).
    assert cycle(config, sheet, now=FIXED_NOW + timedelta(days=1)).outcome == "ok"
    return config, sheet


def _number_type(value: object) -> str | None:
    kinds: Sequence[tuple[type, str]] = (
        (Share, "PERCENT"), (OutOf, "NUMBER"), (Hours, "NUMBER"),
        (datetime, "DATE_TIME"), (date, "DATE"),
    )
    return next((name for kind, name in kinds if isinstance(value, kind)), None)


def test_every_summary_cell_carries_the_workbook_look(
    synced: tuple[BridgeConfig, RecordingSheet], fake_google: FakeGoogle
) -> None:
    _, sheet = synced
    assert DASHBOARD_TAB in sheet.written
    seen: set[str] = set()
    for title, content in sheet.written.items():
        for r, row in enumerate(content.rows):
            for c, value in enumerate(row):
                a1 = f"{column_letter(c)}{r + 1}"
                look = fake_google.format_at(SHEET_ID, title, a1) or {}
                kind = _number_type(value)
                assert (look.get("numberFormat") or {}).get("type") == kind, (title, a1, value)
                if kind is not None:
                    seen.add(type(value).__name__)
                if isinstance(value, OutOf):
                    assert look["numberFormat"]["pattern"] == '"of "0'
                if isinstance(value, Share):
                    assert look["numberFormat"]["pattern"] == "0%"
                if value is None or value == "":
                    assert not look, (title, a1)  # an empty cell keeps no look behind
                    continue
                bold = r in content.heading_rows or (r, c) in content.heading_cells
                assert bool((look.get("textFormat") or {}).get("bold")) == bold, (title, a1)
                right = (r, c) in content.right_cells
                assert (look.get("horizontalAlignment") == "RIGHT") == right, (title, a1)
                wrap = c in content.wrap_cols
                assert (look.get("wrapStrategy") == "WRAP") == wrap, (title, a1)
                if isinstance(value, str) and value:
                    assert fake_google.formula_at(SHEET_ID, title, a1) is None
    # The practice above has shares, "of N" and dates to show: the check cannot pass empty.
    assert {"Share", "OutOf", "datetime"} <= seen
    assert any(content.right_cells for content in sheet.written.values())


def test_a_share_reads_back_as_its_number_and_a_name_as_text(
    synced: tuple[BridgeConfig, RecordingSheet], fake_google: FakeGoogle
) -> None:
    _, sheet = synced
    dashboard = sheet.written[DASHBOARD_TAB]
    grid = fake_google.grid(SHEET_ID, DASHBOARD_TAB)
    shares = [(r, c, v) for r, row in enumerate(dashboard.rows) for c, v in enumerate(row)
              if isinstance(v, Share)]
    assert shares
    for r, c, v in shares:
        assert grid[r][c] == pytest.approx(float(v))  # 0.62, not "62%": sorts as a number
    names = [(t, r, c) for t, content in sheet.written.items()
             for r, row in enumerate(content.rows) for c, v in enumerate(row)
             if isinstance(v, str) and v.startswith("=1+1")]
    assert names, "the patient named =1+1 shows on a summary tab"
    for title, r, c in names:
        assert fake_google.formula_at(SHEET_ID, title, f"{column_letter(c)}{r + 1}") is None
        assert str(fake_google.grid(SHEET_ID, title)[r][c]).startswith("=1+1")


def test_a_quiet_cycle_after_a_formatted_write_sends_only_the_read(
    synced: tuple[BridgeConfig, RecordingSheet], fake_google: FakeGoogle
) -> None:
    config, sheet = synced
    fake_google.reset_requests()
    later = FIXED_NOW + timedelta(days=1, minutes=3)
    assert cycle(config, sheet, now=later).outcome == "quiet"
    assert [line.split(" ")[0] for line in sheets_calls(fake_google)] == ["GET"]


def test_a_shorter_tab_clears_the_old_cells_and_their_looks(
    synced: tuple[BridgeConfig, RecordingSheet], fake_google: FakeGoogle
) -> None:
    _, sheet = synced
    dashboard = sheet.written[DASHBOARD_TAB]
    height = len(dashboard.rows)
    short = TabContent(title=DASHBOARD_TAB, rows=(("Nothing yet",),))
    snapshot = sheet.read()
    sheet.apply(snapshot, Plan(tab_contents=(short,)), {})
    assert fake_google.grid(SHEET_ID, DASHBOARD_TAB) == [["Nothing yet"]]
    assert (fake_google.format_at(SHEET_ID, DASHBOARD_TAB, "A1") or {})["textFormat"]["bold"]
    for r in range(1, height):
        for c in range(len(dashboard.rows[r])):
            assert fake_google.format_at(SHEET_ID, DASHBOARD_TAB, f"{column_letter(c)}{r + 1}") is None


def test_a_refused_summary_write_is_reported_unwritten_and_the_next_one_lands(
    synced: tuple[BridgeConfig, RecordingSheet], fake_google: FakeGoogle
) -> None:
    _, sheet = synced
    new = TabContent(title=DASHBOARD_TAB, rows=(("Shown", Share(0.5)),))
    fake_google.fail_next(400, match=":batchUpdate")
    report = sheet.apply(sheet.read(), Plan(tab_contents=(new,)), {})
    assert report.tabs_written == [] and not report.saved
    assert fake_google.grid(SHEET_ID, DASHBOARD_TAB)[0][0] != "Shown"
    report = sheet.apply(sheet.read(), Plan(tab_contents=(new,)), {})
    assert report.tabs_written == [DASHBOARD_TAB]
    assert fake_google.grid(SHEET_ID, DASHBOARD_TAB) == [["Shown", 0.5]]
    assert (fake_google.format_at(SHEET_ID, DASHBOARD_TAB, "B1") or {})["numberFormat"]["type"] == "PERCENT"
