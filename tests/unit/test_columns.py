"""Finding columns by header name (B4, B5, B6) and adding missing bridge columns."""

from __future__ import annotations

from datetime import datetime

import pytest
from conftest import ConfigFactory, make_sheet, patient, record_of, run_one

from sheets_bridge.columns import (
    canonical_name,
    column_letter,
    header_row_elsewhere,
    normalize_header,
    resolve_columns,
)
from sheets_bridge.model import (
    BRIDGE_COLUMNS,
    STAFF_COLUMNS,
    CellValue,
    ReferralsTab,
    SheetRow,
    Snapshot,
)
from sheets_bridge.planner import plan_cycle
from sheets_bridge.sheets.memory import MemorySheet
from sheets_bridge.state_view import StateView


@pytest.mark.parametrize(
    ("typed", "column"),
    [
        ("referred-by:", "Referred By"),
        ("REFERRED BY", "Referred By"),
        ("  Referred   By ", "Referred By"),
        ("referred_by", "Referred By"),
        ("Patient first-name", "Patient First Name"),
        ("follow up due", "Follow-up Due"),
        ("referral id", "Referral ID"),
        ("Referring Doctor", "Referred By"),  # built-in alias
        ("Appt.", "Appointment"),  # built-in alias, punctuated
        ("e-mail", "Patient Email"),
        ("Consent", "Consent to Update Referrer"),
    ],
)
def test_header_matching_ignores_case_spacing_and_punctuation(typed: str, column: str) -> None:
    assert canonical_name(typed, {}) == column
    cols = resolve_columns(["Received", typed], {})
    placed = {**cols.staff, **cols.bridge}
    assert placed[column] == 1


def test_normalize_header_keeps_letters_and_digits_only() -> None:
    assert normalize_header("Referred-By:") == normalize_header("referred by") == "referredby"


def test_config_alias_places_a_practice_name() -> None:
    aliases = {"Referred By": ("Sent By Whom",), "Received": ("Intake Day",)}
    cols = resolve_columns(["intake day", "SENT BY WHOM?", "Patient First Name"], aliases)
    assert cols.staff == {"Received": 0, "Referred By": 1, "Patient First Name": 2}
    assert cols.unknown == ()


def test_config_alias_wins_over_a_builtin_alias() -> None:
    # "Source" is a built-in alias of How Heard; this practice means Referrer Practice by it.
    cols = resolve_columns(["Source"], {"Referrer Practice": ("Source",)})
    assert cols.staff == {"Referrer Practice": 0}


def test_duplicate_header_is_not_placed_and_is_reported() -> None:
    cols = resolve_columns(["Received", "Referred By", "referred-by", "Stage", "stage "], {})
    assert "Referred By" not in cols.staff
    assert "Stage" not in cols.bridge
    assert cols.duplicates == {"Referred By": (1, 2), "Stage": (3, 4)}
    # A duplicated column is ambiguous, not missing: it is neither read nor added again.
    assert "Referred By" not in cols.missing_staff
    assert "Stage" not in cols.missing_bridge


def test_blank_header_cells_are_ignored_and_unknown_headers_listed() -> None:
    cols = resolve_columns([None, "Received", "", "   ", "Favourite Colour", True, "Notes"], {})
    assert cols.staff == {"Received": 1, "Notes": 6}
    assert cols.unknown == ((4, "Favourite Colour"),)
    assert cols.width == 7


def test_missing_columns_are_listed_in_order() -> None:
    cols = resolve_columns(["Patient First Name", "Received", "Referral ID"], {})
    assert cols.missing_staff == tuple(
        name for name in STAFF_COLUMNS if name not in ("Patient First Name", "Received")
    )
    assert cols.missing_bridge == BRIDGE_COLUMNS[1:]


@pytest.mark.parametrize(
    ("col", "letters"), [(0, "A"), (25, "Z"), (26, "AA"), (27, "AB"), (701, "ZZ"), (702, "AAA")]
)
def test_column_letter(col: int, letters: str) -> None:
    assert column_letter(col) == letters


def test_header_row_elsewhere_finds_the_header_row() -> None:
    rows = [["Referrals 2025"], [], ["Received", "Patient First Name", "How Heard"]]
    assert header_row_elsewhere(rows, {}) == 2
    assert header_row_elsewhere([["2025-03-01", "Ann", "Provider"]], {}) is None


# -- through the planner ----------------------------------------------------------------------
def _snapshot(grid: list[list[object]]) -> Snapshot:
    rows = tuple(SheetRow(n, tuple(v)) for n, v in enumerate(grid[1:], start=2))  # type: ignore[arg-type]
    return Snapshot(("Referrals",), ReferralsTab("Referrals", tuple(grid[0]), rows))  # type: ignore[arg-type]


def test_headers_not_in_row_1_stop_and_name_the_row(
    make_config: ConfigFactory, fixed_now: datetime
) -> None:
    """B6: a title row above the headers: data rows are never read as headers."""
    grid: list[list[object]] = [
        ["Harbor Physio referrals", None, None],
        [None, None, None],
        ["Received", "Patient First Name", "How Heard"],
        ["2025-03-03", "Ann", "Provider"],
    ]
    result = plan_cycle(_snapshot(grid), fixed_now, make_config(), StateView())
    assert result.plan.stop is not None
    assert "row 3" in result.plan.stop.reason
    assert "move them to row 1" in result.plan.stop.reason
    assert not result.plan.cell_writes and not result.plan.header_writes
    assert [t.title for t in result.plan.tab_contents] == ["Bridge Log"]


def test_headers_not_in_row_1_write_nothing_to_the_sheet(
    make_config: ConfigFactory, fixed_now: datetime
) -> None:
    config = make_config()
    grid = [
        ["Referrals"],
        ["Received", "Patient First Name", "How Heard"],
        ["2025-03-03", "Ann", "Provider"],
    ]
    sheet = MemorySheet(grid)
    before = [list(r) for r in grid]
    report = run_one(config, sheet, fixed_now)
    assert report.outcome == "stopped"
    assert "row 2" in report.stop_reason
    assert sheet.grid == before


def test_missing_staff_column_is_reported_and_its_rules_skipped(
    make_config: ConfigFactory, fixed_now: datetime
) -> None:
    """B5: no First Contact column: the Stage rule that needs it is skipped, never guessed."""
    headers = [h for h in STAFF_COLUMNS if h not in ("First Contact", "Visit")]
    sheet = make_sheet([patient("Ann", Appointment="2025-03-01 10:00")], headers)
    report = run_one(make_config(), sheet, fixed_now)
    messages = [p.message for p in report.problems]
    assert any(m.startswith("The First Contact column is missing") for m in messages)
    assert any(m.startswith("The Visit column is missing") for m in messages)
    row = record_of(sheet, "Ann")
    assert row["Stage"] == "Scheduled"
    # Without a Visit column the bridge cannot ask for the Visit: no guess, no Attention line.
    assert "record the Visit" not in str(row["Attention"] or "")
    assert report.outcome == "ok"


def test_missing_bridge_columns_are_added_after_the_widest_data_row(
    make_config: ConfigFactory, fixed_now: datetime
) -> None:
    headers: list[CellValue] = ["Received", "Patient First Name", "Stage", "How Heard"]
    grid: list[list[CellValue]] = [
        headers,
        ["2025-03-03 09:00", "Ann", None, "Provider"],
        ["2025-03-03 09:30", "Bob", None, "Google", None, "stray text in F"],
    ]
    sheet = MemorySheet(grid)
    report = run_one(make_config(), sheet, fixed_now)
    assert sheet.grid is not None
    assert sheet.grid[0][:4] == headers
    # Column F (index 5) holds staff text under no header: the new columns go after it.
    assert sheet.grid[0][4:6] == [None, None]
    added = [h for h in BRIDGE_COLUMNS if h != "Stage"]
    assert sheet.grid[0][6:] == added
    assert report.headers_added == added
    assert sheet.grid[2][5] == "stray text in F"
    assert record_of(sheet, "Bob")["Stage"] == "OVERDUE"


def test_duplicate_bridge_column_gets_no_writes(
    make_config: ConfigFactory, fixed_now: datetime
) -> None:
    headers = [*STAFF_COLUMNS, "Stage", "Referral ID", "stage"]
    sheet = make_sheet([patient("Ann")], headers[:-1])
    assert sheet.grid is not None
    sheet.grid[0].append("stage")
    sheet.grid[1].append("hand")
    report = run_one(make_config(), sheet, fixed_now)
    assert any("Stage appears more than once" in p.message for p in report.problems)
    stage_cols = [i for i, h in enumerate(sheet.grid[0]) if str(h).lower() == "stage"]
    assert [sheet.grid[1][i] if i < len(sheet.grid[1]) else None for i in stage_cols] == [
        None,
        "hand",
    ]
    # Only the one header that is missing is added; Stage is ambiguous, not missing.
    assert sheet.grid[0].count("Stage") == 1
    assert record_of(sheet, "Ann")["Referral ID"] == "R-00001"


def test_duplicate_referral_id_column_stops_everything(
    make_config: ConfigFactory, fixed_now: datetime
) -> None:
    sheet = make_sheet([patient("Ann")], [*STAFF_COLUMNS, "Referral ID", "referral-id"])
    assert sheet.grid is not None
    before = [list(r) for r in sheet.grid]
    report = run_one(make_config(), sheet, fixed_now)
    assert report.outcome == "stopped"
    assert "Referral ID appears more than once (columns R and S)" in report.stop_reason
    assert sheet.grid == before
