"""``sheets-bridge init`` on a Google Sheet (the fake): everything the sheet lacks, added once."""

from __future__ import annotations

from pathlib import Path

from fakes.google_server import FakeGoogle
from google_support import SHEET_ID, google_config, open_fast_sheet

from sheets_bridge.model import BRIDGE_COLUMNS, BRIDGE_TABS, GIFTS_TAB, STAFF_COLUMNS


def test_init_on_an_empty_spreadsheet_builds_the_whole_sheet(
    fake_google: FakeGoogle, tmp_path: Path
) -> None:
    fake_google.add_spreadsheet(SHEET_ID, {"Sheet1": []})
    sheet = open_fast_sheet(google_config(fake_google, tmp_path, mail="eml"))
    fake_google.reset_requests()
    report = sheet.setup({})
    assert report.created
    assert len(fake_google.batch_updates(SHEET_ID)) == 1  # every structural change at once
    titles = [p["title"] for p in fake_google.sheet_properties(SHEET_ID)]
    assert titles[0] == "Referrals"
    assert set(BRIDGE_TABS) | {GIFTS_TAB} <= set(titles)
    assert fake_google.grid(SHEET_ID, "Referrals")[0] == [*STAFF_COLUMNS, *BRIDGE_COLUMNS]
    referrals = next(p for p in fake_google.sheet_properties(SHEET_ID) if p["title"] == "Referrals")
    assert referrals["gridProperties"]["frozenRowCount"] == 1
    extras = fake_google.tab_extras(SHEET_ID, "Referrals")
    protected = extras["protectedRanges"]
    assert len(protected) == len(BRIDGE_COLUMNS) and all(p["warningOnly"] for p in protected)
    assert len(extras["dataValidations"]) == 5
    rule = extras["conditionalFormats"][0]
    assert '"OVERDUE"' in str(rule)


def test_init_on_a_practice_sheet_adds_only_what_is_missing_and_a_second_init_nothing(
    fake_google: FakeGoogle, tmp_path: Path
) -> None:
    headers = ["Received", "Patient First Name", "Patient Last Name", "Referring Doctor"]
    fake_google.add_spreadsheet(SHEET_ID, {"Referrals": [headers, ["2025-03-01", "Ana", "A", "Dr X"]]})
    config = google_config(fake_google, tmp_path, mail="eml",
                           columns={"aliases": {"Referred By": ["Referring Doctor"]}})
    sheet = open_fast_sheet(config)
    first = sheet.setup(config.columns.aliases)
    assert not first.created
    grid = fake_google.grid(SHEET_ID, "Referrals")
    assert grid[0][:4] == headers and "Referred By" not in grid[0]
    assert grid[1][:4] == ["2025-03-01", "Ana", "A", "Dr X"]
    assert set(BRIDGE_COLUMNS) <= set(grid[0])
    assert any("Froze the header row" in line for line in first.lines)
    updates = len(fake_google.batch_updates(SHEET_ID))
    second = sheet.setup(config.columns.aliases)
    assert second.lines == ["Nothing to repair"]
    assert len(fake_google.batch_updates(SHEET_ID)) == updates
