"""The planner through cycles on a MemorySheet: IDs, hand edits, stale saves, crashes, breakers.

Each test drives ``run_cycle`` (or ``plan_cycle`` where the snapshot needs merged cells or
hidden rows, which a MemorySheet does not model) with fixed aware datetimes, and checks what a
person would see in the sheet: which ID each patient's row carries, what Attention says.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from conftest import (
    FIXED_NOW,
    NY,
    ConfigFactory,
    attention_of,
    make_sheet,
    patient,
    record_of,
    records,
    run_cycles,
    run_one,
    staff_cells,
)

from sheets_bridge.columns import resolve_columns
from sheets_bridge.config import BridgeConfig
from sheets_bridge.model import (
    BRIDGE_COLUMNS,
    BRIDGE_LOG_TAB,
    SOURCES_TAB,
    STAFF_COLUMNS,
    CellRange,
    CellValue,
    ReferralsTab,
    SheetRow,
    Snapshot,
)
from sheets_bridge.planner import plan_cycle
from sheets_bridge.sheets.memory import MemorySheet
from sheets_bridge.state import StateStore
from sheets_bridge.state_view import StateView

LATER = FIXED_NOW + timedelta(hours=3)
NAMES = ("Ann", "Bob", "Cy", "Dee", "Eve", "Fay", "Gus", "Hal", "Ivy", "Jo", "Kim", "Lou")

COPY_NOTE = (
    "This row carried the same Referral ID as another row (R-00001), as a copy does: it got its "
    "own ID"
)


def people(n: int, **cells: CellValue) -> list[dict[str, CellValue]]:
    """``n`` distinct clean rows, received an hour apart on Monday."""
    return [
        patient(NAMES[i], f"Lastname{i}", Received=f"2025-03-03 {8 + i % 9:02d}:{i:02d}", **cells)
        for i in range(n)
    ]


def ids_by_name(sheet: MemorySheet) -> dict[str, CellValue]:
    return {
        str(r["Patient First Name"]): r.get("Referral ID")
        for r in records(sheet)
        if r.get("Patient First Name")
    }


def hand_lines(sheet: MemorySheet) -> list[str]:
    return [
        line
        for r in records(sheet)
        for line in str(r.get("Attention") or "").splitlines()
        if "by hand" in line
    ]


def log_rows(sheet: MemorySheet) -> list[list[CellValue]]:
    return sheet.tabs.get(BRIDGE_LOG_TAB, [])[1:]


def move(sheet: MemorySheet, order: list[int]) -> None:
    """Reorder the data rows: ``order`` lists old data-row indexes (0-based) in their new order."""
    assert sheet.grid is not None
    data = sheet.grid[1:]
    sheet.grid[1:] = [data[i] for i in order]


def set_cell(sheet: MemorySheet, first_name: str, column: str, value: CellValue) -> None:
    assert sheet.grid is not None
    col = sheet.grid[0].index(column)
    for row in sheet.grid[1:]:
        if row[sheet.grid[0].index("Patient First Name")] == first_name:
            row.extend([None] * (col + 1 - len(row)))
            row[col] = value
            return
    raise AssertionError(first_name)


def add_row(sheet: MemorySheet, values: dict[str, CellValue], at: int | None = None) -> None:
    assert sheet.grid is not None
    row = [values.get(str(h)) for h in sheet.grid[0]]
    if at is None:
        sheet.grid.append(row)
    else:
        sheet.grid.insert(at, row)


def delete_row(sheet: MemorySheet, first_name: str) -> None:
    assert sheet.grid is not None
    col = sheet.grid[0].index("Patient First Name")
    sheet.grid[:] = [r for r in sheet.grid if r[col] != first_name]


# -- Referral IDs ----------------------------------------------------------------------------
def test_ids_are_assigned_once_in_row_order(config: BridgeConfig) -> None:
    sheet = make_sheet(people(3))
    report = run_one(config, sheet, FIXED_NOW)
    assert report.ids_assigned == 3
    assert ids_by_name(sheet) == {"Ann": "R-00001", "Bob": "R-00002", "Cy": "R-00003"}
    second = run_one(config, sheet, LATER)
    assert second.ids_assigned == 0
    assert ids_by_name(sheet) == {"Ann": "R-00001", "Bob": "R-00002", "Cy": "R-00003"}


def test_ids_are_never_reused_after_a_row_is_deleted(config: BridgeConfig) -> None:
    sheet = make_sheet(people(3))
    run_one(config, sheet, FIXED_NOW)
    delete_row(sheet, "Cy")
    run_one(config, sheet, FIXED_NOW)
    add_row(sheet, patient("Dee", "New", Received="2025-03-04 08:00"))
    run_one(config, sheet, FIXED_NOW)
    assert ids_by_name(sheet) == {"Ann": "R-00001", "Bob": "R-00002", "Dee": "R-00004"}


def test_ids_stay_with_their_rows_through_sort_insert_and_delete(config: BridgeConfig) -> None:
    sheet = make_sheet(people(6))
    run_one(config, sheet, FIXED_NOW)
    before = ids_by_name(sheet)
    move(sheet, [5, 3, 1, 0, 4, 2])
    add_row(sheet, patient("Gus", "Inserted", Received="2025-03-04 08:30"), at=3)
    delete_row(sheet, "Dee")
    staff_before = staff_cells(sheet)
    run_one(config, sheet, FIXED_NOW)
    after = ids_by_name(sheet)
    assert after == {**{k: v for k, v in before.items() if k != "Dee"}, "Gus": "R-00007"}
    assert staff_cells(sheet) == staff_before
    assert not hand_lines(sheet)
    # ...and again after a second shuffle with no new rows: nothing moves but the rows.
    move(sheet, [5, 0, 4, 1, 3, 2])
    run_one(config, sheet, FIXED_NOW)
    assert ids_by_name(sheet) == after


def test_a_copied_row_gets_its_own_id_and_the_original_keeps_its_own(
    config: BridgeConfig,
) -> None:
    """B23: staff copy Ann's row (ID included) above it to start a new referral for Anna."""
    sheet = make_sheet(people(2))
    run_one(config, sheet, FIXED_NOW)
    assert sheet.grid is not None
    copy = list(sheet.grid[1])
    copy[sheet.grid[0].index("Patient First Name")] = "Anna"
    sheet.grid.insert(1, copy)
    run_one(config, sheet, FIXED_NOW)
    assert ids_by_name(sheet) == {"Anna": "R-00003", "Ann": "R-00001", "Bob": "R-00002"}
    assert COPY_NOTE in attention_of(sheet, "Anna")
    assert COPY_NOTE not in attention_of(sheet, "Ann")
    assert not hand_lines(sheet)


def test_an_exact_copy_below_leaves_the_original_row_its_id(config: BridgeConfig) -> None:
    sheet = make_sheet(people(2))
    run_one(config, sheet, FIXED_NOW)
    assert sheet.grid is not None
    sheet.grid.insert(2, list(sheet.grid[1]))
    run_one(config, sheet, FIXED_NOW)
    ids = [r["Referral ID"] for r in records(sheet)]
    assert ids == ["R-00001", "R-00003", "R-00002"]
    attention = [str(r["Attention"] or "") for r in records(sheet)]
    assert COPY_NOTE in attention[1] and COPY_NOTE not in attention[0]
    assert len(set(ids)) == len(ids)


def test_a_cleared_referral_id_is_restored_by_identity_and_said_so(config: BridgeConfig) -> None:
    sheet = make_sheet(people(3))
    run_one(config, sheet, FIXED_NOW)
    set_cell(sheet, "Bob", "Referral ID", None)
    move(sheet, [1, 2, 0])
    run_one(config, sheet, FIXED_NOW)
    assert ids_by_name(sheet) == {"Ann": "R-00001", "Bob": "R-00002", "Cy": "R-00003"}
    assert (
        "Referral ID was cleared (by hand, or by saving an older copy of the workbook over the "
        "bridge's changes): the bridge put back R-00002" in attention_of(sheet, "Bob")
    )


def test_an_edited_id_with_a_matching_row_is_put_back(config: BridgeConfig) -> None:
    sheet = make_sheet(people(2))
    run_one(config, sheet, FIXED_NOW)
    set_cell(sheet, "Bob", "Referral ID", "R-12345")
    run_one(config, sheet, FIXED_NOW)
    assert ids_by_name(sheet)["Bob"] == "R-00002"
    assert "Referral ID was changed by hand: the bridge put back R-00002" in attention_of(
        sheet, "Bob"
    )


@pytest.mark.parametrize("typed", ["R-99999", "hello", "R-1"])
def test_an_edited_id_that_matches_no_row_blocks_the_row(config: BridgeConfig, typed: str) -> None:
    """B24: the row's name changed too, so nothing tells which referral it is: Attention only."""
    sheet = make_sheet(people(2))
    run_one(config, sheet, FIXED_NOW)
    set_cell(sheet, "Bob", "Referral ID", typed)
    set_cell(sheet, "Bob", "Patient First Name", "Robert")
    set_cell(sheet, "Robert", "Visit", "Attended")
    before = record_of(sheet, "Robert")
    report = run_one(config, sheet, FIXED_NOW)
    after = record_of(sheet, "Robert")
    assert after["Referral ID"] == typed
    assert after["Stage"] == before["Stage"] == "OVERDUE"  # not moved to Seen: no writes
    assert after["Bridge Updated"] == before["Bridge Updated"]
    assert str(after["Attention"]).startswith("Referral ID was changed by hand and the bridge")
    written = {(w.row.referral_id, w.column) for w in report.result.plan.cell_writes}  # type: ignore[union-attr]
    assert written == {(typed, "Attention")}
    assert report.ids_assigned == 0
    # Nothing else was issued or moved; the next cycle is quiet.
    assert run_one(config, sheet, FIXED_NOW).outcome == "quiet"


# -- hand edits of bridge cells (F7) and stale saves (F15) -----------------------------------
@pytest.mark.parametrize("column", ["Stage", "Source Tag", "Follow-up Due"])
def test_a_hand_edited_bridge_cell_is_put_back_and_said_so(
    config: BridgeConfig, column: str
) -> None:
    sheet = make_sheet(people(2))
    run_one(config, sheet, FIXED_NOW)
    right = record_of(sheet, "Ann")[column]
    set_cell(sheet, "Ann", column, "typed by staff")
    run_one(config, sheet, FIXED_NOW)
    assert record_of(sheet, "Ann")[column] == right
    line = f"{column} was changed by hand: the bridge put its value back (it keeps that column)"
    assert attention_of(sheet, "Ann") == [line]
    assert hand_lines(sheet) == [line]
    applies = sheet.applies
    report = run_one(config, sheet, FIXED_NOW + timedelta(minutes=5))
    assert report.outcome == "quiet"
    assert sheet.applies == applies


def test_a_hand_edited_attention_is_put_back_and_said_so(config: BridgeConfig) -> None:
    sheet = make_sheet(people(2))
    run_one(config, sheet, FIXED_NOW)
    set_cell(sheet, "Ann", "Attention", "called, left message")
    run_one(config, sheet, FIXED_NOW)
    assert attention_of(sheet, "Ann") == [
        "Attention was changed by hand: the bridge put its value back (write notes in Notes)"
    ]
    assert run_one(config, sheet, FIXED_NOW).outcome == "quiet"


def test_two_hand_edits_in_one_row_then_quiet(config: BridgeConfig) -> None:
    sheet = make_sheet(people(2))
    run_one(config, sheet, FIXED_NOW)
    set_cell(sheet, "Ann", "Stage", "Seen")
    set_cell(sheet, "Ann", "Attention", "x")
    run_one(config, sheet, FIXED_NOW)
    lines = attention_of(sheet, "Ann")
    assert sorted(lines) == sorted(
        [
            "Stage was changed by hand: the bridge put its value back (it keeps that column)",
            "Attention was changed by hand: the bridge put its value back (write notes in Notes)",
        ]
    )
    for minutes in (1, 2, 3):
        report = run_one(config, sheet, FIXED_NOW + timedelta(minutes=minutes))
        assert report.outcome == "quiet", report.summary


def test_hand_edit_notes_expire_after_notice_hours(config: BridgeConfig) -> None:
    sheet = make_sheet(people(1))
    run_one(config, sheet, FIXED_NOW)
    set_cell(sheet, "Ann", "Stage", "Seen")
    run_one(config, sheet, FIXED_NOW)
    assert hand_lines(sheet)
    run_one(config, sheet, FIXED_NOW + timedelta(hours=25))
    assert hand_lines(sheet) == []


def test_a_stale_save_is_reapplied_without_a_hand_edit_note(config: BridgeConfig) -> None:
    """F15: someone saves an old copy over the bridge's write: Stage goes back to New."""
    sheet = make_sheet([patient("Ann", Received="2025-03-04 09:00"), *people(2)[1:]])
    run_one(config, sheet, FIXED_NOW)
    assert record_of(sheet, "Ann")["Stage"] == "New"
    assert sheet.grid is not None
    old_copy = [list(r) for r in sheet.grid]
    next_day = datetime(2025, 3, 5, 10, 0, tzinfo=NY)
    run_one(config, sheet, next_day)
    assert record_of(sheet, "Ann")["Stage"] == "OVERDUE"
    # The stale copy also carries a staff edit made in it: that edit is kept.
    sheet.grid[:] = old_copy
    set_cell(sheet, "Bob", "Notes", "called twice")
    report = run_one(config, sheet, next_day)
    assert record_of(sheet, "Ann")["Stage"] == "OVERDUE"
    assert record_of(sheet, "Bob")["Notes"] == "called twice"
    assert hand_lines(sheet) == []
    assert "re-applied" in report.summary


# -- a crash between the sheet write and the commit (pending journal) -----------------------
def _crash_after_apply(config: BridgeConfig, sheet: MemorySheet, now: datetime) -> None:
    with StateStore(config.state_dir) as state:
        snapshot = sheet.read()
        result = plan_cycle(snapshot, now, config, state.view(now))
        plan = result.plan
        state.record_intent(plan.cell_writes, plan.assigned_ids, plan.next_id_number, now)
        sheet.apply(snapshot, plan, result.columns)
        # killed here: no commit_cycle


def _crash_before_apply(config: BridgeConfig, sheet: MemorySheet, now: datetime) -> None:
    with StateStore(config.state_dir) as state:
        snapshot = sheet.read()
        result = plan_cycle(snapshot, now, config, state.view(now))
        plan = result.plan
        state.record_intent(plan.cell_writes, plan.assigned_ids, plan.next_id_number, now)
        # killed here: the sheet was never written


@pytest.mark.parametrize("crash", [_crash_after_apply, _crash_before_apply])
def test_a_crash_mid_cycle_ends_like_an_uninterrupted_run(
    make_config: ConfigFactory, tmp_path: Any, crash: Any
) -> None:
    """F1: crash, restart, carry on: same sheet as a run with no crash, no notes, no duplicates."""
    rows = people(3)
    crashed_cfg = make_config(state_dir=str(tmp_path / "crashed"))
    clean_cfg = make_config(state_dir=str(tmp_path / "clean"))
    crashed, clean = make_sheet(rows), make_sheet(rows)
    crash(crashed_cfg, crashed, FIXED_NOW)
    times = [FIXED_NOW, FIXED_NOW + timedelta(minutes=1), datetime(2025, 3, 4, 20, 0, tzinfo=NY)]
    add = patient("Dee", "Later", Received="2025-03-04 09:30")
    for index, now in enumerate(times):
        if index == 2:
            add_row(crashed, add)
            add_row(clean, add)
            set_cell(crashed, "Ann", "Visit", "Attended")
            set_cell(clean, "Ann", "Visit", "Attended")
        run_one(crashed_cfg, crashed, now)
        if index != 1:
            run_one(clean_cfg, clean, now)
        assert hand_lines(crashed) == []
        assert ids_by_name(crashed) == ids_by_name(clean)
        ids = [r["Referral ID"] for r in records(crashed)]
        assert len(set(ids)) == len(ids)
    assert records(crashed) == records(clean)
    assert run_one(crashed_cfg, crashed, times[-1]).outcome == "quiet"


# -- circuit breakers (F19, B27) ---------------------------------------------------------------
def _twelve(config: BridgeConfig) -> MemorySheet:
    sheet = make_sheet(people(12))
    run_one(config, sheet, FIXED_NOW)
    return sheet


def _assert_stopped_once(config: BridgeConfig, sheet: MemorySheet, reason_part: str) -> None:
    grid = [list(r) for r in sheet.grid] if sheet.grid is not None else None
    log_before = len(log_rows(sheet))
    report = run_one(config, sheet, LATER)
    assert report.outcome == "stopped"
    assert reason_part in report.stop_reason
    assert report.result is not None and not report.result.plan.cell_writes
    assert sheet.grid == grid
    assert len(log_rows(sheet)) == log_before + 1
    assert log_rows(sheet)[0][1] == "Stopped: nothing was written"
    assert reason_part in str(log_rows(sheet)[0][2])
    for _ in range(2):
        again = run_one(config, sheet, LATER + timedelta(minutes=5))
        assert again.outcome == "stopped"
        assert sheet.grid == grid
        assert len(log_rows(sheet)) == log_before + 1


def test_breaker_referrals_tab_missing(config: BridgeConfig) -> None:
    sheet = _twelve(config)
    sheet.grid = None
    _assert_stopped_once(config, sheet, "The Referrals tab is missing")
    assert run_one(config, sheet, LATER, force=True).outcome == "stopped"


def test_breaker_tab_emptied(config: BridgeConfig) -> None:
    sheet = _twelve(config)
    assert sheet.grid is not None
    sheet.grid[1:] = []
    _assert_stopped_once(config, sheet, "tab is empty but held 12 referrals")
    forced = run_one(config, sheet, LATER, force=True)
    assert forced.outcome == "ok"
    assert run_one(config, sheet, LATER).outcome in ("ok", "quiet")


def test_breaker_most_ids_gone(config: BridgeConfig) -> None:
    sheet = _twelve(config)
    for name in NAMES[:7]:
        delete_row(sheet, name)
    _assert_stopped_once(config, sheet, "7 of the 12 Referral IDs seen last time are gone")
    forced = run_one(config, sheet, LATER, force=True)
    assert forced.outcome == "ok"
    assert ids_by_name(sheet) == {n: f"R-{i + 1:05d}" for i, n in enumerate(NAMES) if i >= 7}
    assert run_one(config, sheet, LATER).outcome in ("ok", "quiet")


def test_breaker_most_ids_cleared(config: BridgeConfig) -> None:
    sheet = _twelve(config)
    for name in NAMES[:8]:
        set_cell(sheet, name, "Referral ID", None)
    _assert_stopped_once(config, sheet, "8 of the 12 Referral IDs seen last time are gone")


def test_half_the_ids_gone_is_not_a_breaker(config: BridgeConfig) -> None:
    sheet = _twelve(config)
    for name in NAMES[:6]:
        delete_row(sheet, name)
    assert run_one(config, sheet, LATER).outcome == "ok"


def test_small_sheets_do_not_trip_the_breaker(config: BridgeConfig) -> None:
    sheet = make_sheet(people(3))
    run_one(config, sheet, FIXED_NOW)
    assert sheet.grid is not None
    sheet.grid[1:] = []
    assert run_one(config, sheet, LATER).outcome == "ok"


# -- merged cells (B3), hidden rows (B27) ----------------------------------------------------
HEADERS = (*STAFF_COLUMNS, *BRIDGE_COLUMNS)


def _snapshot(rows: list[dict[str, CellValue]], **tab: Any) -> Snapshot:
    sheet_rows = tuple(
        SheetRow(n, tuple(r.get(h) for h in HEADERS), hidden=bool(r.get("_hidden")))
        for n, r in enumerate(rows, start=2)
    )
    referrals = ReferralsTab("Referrals", HEADERS, sheet_rows, **tab)
    return Snapshot(("Referrals",), referrals)


def test_merged_staff_cells_use_the_top_left_value_and_ask_to_unmerge(
    config: BridgeConfig,
) -> None:
    col = HEADERS.index("Referred By")
    rows = [patient("Ann"), patient("Bob", Referred_By=None), patient("Cy")]
    for row in rows[1:]:
        row.pop("Referred By")
    snapshot = _snapshot(rows, merged=(CellRange(2, col, 4, col),))
    result = plan_cycle(snapshot, FIXED_NOW, config, StateView())
    by_name = {r.first_name: r for r in result.referrals}
    assert by_name["Bob"].referred_by == "Dr Rivera"
    assert by_name["Cy"].referred_by == "Dr Rivera"
    line = "Referred By is merged across rows 2–4: unmerge the cells and fill in each row"
    for name in ("Ann", "Bob", "Cy"):
        assert line in by_name[name].attention
    assert not any("Referred By is empty" in a for r in result.referrals for a in r.attention)


def test_merged_bridge_cells_get_no_writes(config: BridgeConfig) -> None:
    col = HEADERS.index("Stage")
    snapshot = _snapshot(people(4), merged=(CellRange(3, col, 4, col),))
    result = plan_cycle(snapshot, FIXED_NOW, config, StateView())
    stage_rows = {w.row.number for w in result.plan.cell_writes if w.column == "Stage"}
    assert stage_rows == {2, 5}
    assert any(
        p.message.startswith("Cells of Stage are merged across rows 3–4: unmerge them")
        for p in result.plan.problems
    )
    # The other bridge cells of those rows are still written.
    assert {w.row.number for w in result.plan.cell_writes if w.column == "Referral ID"} == {
        2,
        3,
        4,
        5,
    }


def test_hidden_rows_are_processed(config: BridgeConfig) -> None:
    rows = people(3)
    rows[1]["_hidden"] = True
    snapshot = _snapshot(rows)
    assert snapshot.referrals is not None and snapshot.referrals.rows[1].hidden
    result = plan_cycle(snapshot, FIXED_NOW, config, StateView())
    assert [r.referral_id for r in result.referrals] == ["R-00001", "R-00002", "R-00003"]
    assert {w.row.number for w in result.plan.cell_writes if w.column == "Stage"} == {2, 3, 4}


# -- empty rows (B1) and duplicates (B22) ------------------------------------------------------
def test_blank_whitespace_and_notes_only_rows_get_no_id(config: BridgeConfig) -> None:
    rows: list[dict[str, CellValue]] = [
        patient("Ann"),
        {},
        {"Patient First Name": "   ", "Received": "\u00a0"},
        {"Patient Last Name": "\u200b", "Reason": "\u2060\ufeff"},
        {"Notes": "ask Dr Rivera about this one"},
        patient("Bob"),
    ]
    sheet = make_sheet(rows)
    run_one(config, sheet, FIXED_NOW)
    got = [(r.get("Referral ID"), r.get("Attention")) for r in records(sheet)]
    assert [g[0] for g in got] == ["R-00001", None, None, None, None, "R-00002"]
    assert all(g[1] is None for g in got[1:5])
    assert records(sheet)[4]["Notes"] == "ask Dr Rivera about this one"


def test_the_same_patient_twice_within_the_window_is_flagged_on_both_rows(
    config: BridgeConfig,
) -> None:
    rows = [
        patient("Ann", "Lee", Received="2025-02-25 09:00"),
        patient("Bob", "Ray", Received="2025-03-03 09:00"),
        patient("ANN", "lee", Received="2025-03-03 10:00"),
        patient("Cy", "Old", Received="2025-01-02 09:00", Patient_Email=None),
        patient("Cyrus", "Old", Received="2025-03-03 11:00"),
    ]
    rows[3]["Patient Email"] = "cy@example.org"
    rows[4]["Patient Email"] = "CY@example.org"
    sheet = make_sheet(rows)
    run_one(config, sheet, FIXED_NOW)
    lines = [
        [line for line in str(r["Attention"] or "").splitlines() if "duplicate" in line]
        for r in records(sheet)
    ]
    expected = (
        "Possible duplicate of R-00003 (same patient within 14 days): if it is, delete one row; "
        "if not, say why in Notes"
    )
    assert lines[0] == [expected]
    assert lines[2] == [lines[0][0].replace("R-00003", "R-00001")]
    assert lines[1] == []
    assert lines[3] == [] and lines[4] == []  # same email, but 60 days apart


def test_the_same_phone_is_a_possible_duplicate(config: BridgeConfig) -> None:
    rows = [
        patient("Ann", "Lee", Patient_Phone="212-555-0100"),
        patient("Annie", "Lee-Park", Patient_Phone="(212) 555 0100"),
    ]
    sheet = make_sheet(rows)
    run_one(config, sheet, FIXED_NOW)
    assert any("Possible duplicate of R-00002" in line for line in attention_of(sheet, "Ann"))
    assert any("Possible duplicate of R-00001" in line for line in attention_of(sheet, "Annie"))


# -- quiet cycles, the Bridge Log, the Sources tab ---------------------------------------------
def test_a_second_cycle_with_nothing_new_is_quiet(config: BridgeConfig) -> None:
    sheet = make_sheet(people(4))
    first = run_one(config, sheet, FIXED_NOW)
    assert first.outcome == "ok"
    applies, log = sheet.applies, log_rows(sheet)
    with StateStore(config.state_dir) as state:
        result = plan_cycle(sheet.read(), FIXED_NOW, config, state.view(FIXED_NOW))
    assert result.plan.is_quiet
    assert not result.plan.cell_writes and not result.plan.header_writes
    report = run_one(config, sheet, FIXED_NOW + timedelta(minutes=1))
    assert report.outcome == "quiet"
    assert sheet.applies == applies
    assert log_rows(sheet) == log


def test_the_bridge_log_gets_a_line_only_when_something_changed(config: BridgeConfig) -> None:
    sheet = make_sheet(people(2))
    run_one(config, sheet, FIXED_NOW)
    assert len(log_rows(sheet)) == 1
    assert "assigned 2 Referral IDs" in str(log_rows(sheet)[0][1])
    run_cycles(config, sheet, FIXED_NOW, 3)
    assert len(log_rows(sheet)) == 1
    set_cell(sheet, "Ann", "First Contact", "2025-03-04 09:30")
    run_one(config, sheet, FIXED_NOW)
    assert len(log_rows(sheet)) == 2
    assert str(log_rows(sheet)[0][1]).startswith("Updated")
    assert log_rows(sheet)[1][1] == log_rows(sheet)[1][1]


def test_the_bridge_log_names_no_patient(config: BridgeConfig) -> None:
    sheet = make_sheet([patient("Zebediah", "Quuxworthington", Reason="canary-lumbago-xq7")])
    run_one(config, sheet, FIXED_NOW)
    text = repr(sheet.tabs[BRIDGE_LOG_TAB])
    assert "Zebediah" not in text and "Quuxworthington" not in text and "canary" not in text


def _sources(sheet: MemorySheet) -> dict[str, list[CellValue]]:
    return {str(r[0]): r for r in sheet.tabs[SOURCES_TAB][1:]}


def test_a_sources_override_changes_the_tag_from_the_next_cycle(config: BridgeConfig) -> None:
    rows = [patient("Ann", How_Heard="saw a flyer at the gym", Referred_By=None), patient("Bob")]
    sheet = make_sheet(rows)
    run_one(config, sheet, FIXED_NOW)
    assert record_of(sheet, "Ann")["Source Tag"] == "Unknown"
    flyer = _sources(sheet)["saw a flyer at the gym"]
    assert flyer[1:4] == [1, "(not recognised)", "Unknown"]
    flyer[4] = "Patient Referral"
    run_one(config, sheet, FIXED_NOW)
    assert record_of(sheet, "Ann")["Source Tag"] == "Patient Referral"
    assert _sources(sheet)["saw a flyer at the gym"][3:5] == [
        "Patient Referral",
        "Patient Referral",
    ]
    assert not any("How Heard" in line for line in attention_of(sheet, "Ann"))
    # The override survives the rewrites, and everything settles.
    run_one(config, sheet, FIXED_NOW)
    assert run_one(config, sheet, FIXED_NOW).outcome == "quiet"
    assert _sources(sheet)["saw a flyer at the gym"][4] == "Patient Referral"
    # Once no row uses the value, the manager's override is still listed.
    delete_row(sheet, "Ann")
    run_one(config, sheet, FIXED_NOW)
    assert any(str(r[4]) == "Patient Referral" for r in sheet.tabs[SOURCES_TAB][1:])


def test_an_unknown_override_tag_is_reported_not_used(config: BridgeConfig) -> None:
    sheet = make_sheet([patient("Ann", How_Heard="gym flyer", Referred_By=None)])
    run_one(config, sheet, FIXED_NOW)
    _sources(sheet)["gym flyer"][4] = "Friends"
    report = run_one(config, sheet, FIXED_NOW)
    assert record_of(sheet, "Ann")["Source Tag"] == "Unknown"
    assert any("Use Tag Instead must be" in p.message for p in report.problems)


def test_no_write_touches_a_staff_cell(config: BridgeConfig) -> None:
    rows = [
        patient("Ann", Patient_Phone="212 555 0100 ext 3", Visit="ns"),
        patient("=1+1", Received="asap"),
        patient("Bob", Fit="maybe?", Consent_to_Update_Referrer="Y?"),
    ]
    sheet = make_sheet(rows)
    before = staff_cells(sheet)
    report = run_one(config, sheet, FIXED_NOW)
    assert report.result is not None
    assert {w.column for w in report.result.plan.cell_writes} <= set(BRIDGE_COLUMNS)
    assert staff_cells(sheet) == before


def test_a_column_map_places_config_aliases(make_config: ConfigFactory) -> None:
    config = make_config(columns={"aliases": {"Referred By": ["Sent By"]}})
    headers = [h if h != "Referred By" else "sent by" for h in STAFF_COLUMNS]
    rows = [{("sent by" if k == "Referred By" else k): v for k, v in patient("Ann").items()}]
    sheet = make_sheet(rows, headers)
    report = run_one(config, sheet, FIXED_NOW)
    assert not any("Referred By" in p.message for p in report.problems)
    assert report.result is not None and report.result.column_map is not None
    assert resolve_columns(headers, config.columns.aliases).staff["Referred By"] == 6
    assert record_of(sheet, "Ann")["Attention"] is None


def test_a_row_typed_twice_thanks_the_referrer_once(config: BridgeConfig) -> None:
    """B22: both rows are kept and flagged; only the earlier one makes drafts."""
    from sheets_bridge.runner import run_sync

    rows = [
        patient("Ann", "Lee", Received="2025-03-03 09:00", Referrer_Email="rivera@example.org"),
        patient("Ann", "Lee", Received="2025-03-03 11:00", Referrer_Email="rivera@example.org"),
        patient("Bo", "Kim", Received="2025-03-03 10:00", Referrer_Email="rivera@example.org"),
    ]
    sheet = make_sheet(rows)
    report = run_sync(config, now=FIXED_NOW, sheet=sheet)
    acknowledgements = sorted(k for k in report.drafts_made if k.endswith("acknowledgement"))
    assert acknowledgements == [
        "R-00001.referrer_acknowledgement",
        "R-00003.referrer_acknowledgement",
    ]
    later = next(r for r in records(sheet) if r["Referral ID"] == "R-00002")
    assert "Possible duplicate of R-00001" in str(later["Attention"])
    assert not later["Emails"]


def test_two_identical_new_rows_never_share_the_id_a_dead_cycle_journalled(
    config: BridgeConfig,
) -> None:
    """Found by the drafting state machine: a cycle journalled R-00001 for a new row and died
    before the sheet was written; staff then typed the same patient again. One row gets
    R-00001 back, the other a new ID: never the same one twice by matching facets."""
    from conftest import FIXED_NOW, patient, sheet_grid

    from sheets_bridge.planner import plan_cycle
    from sheets_bridge.sheets.memory import MemorySheet
    from sheets_bridge.state import StateStore

    row = patient("Ann", Received="2025-03-04 09:00")
    with StateStore(config.state_dir) as state:
        first = plan_cycle(MemorySheet(sheet_grid([row])).read(), FIXED_NOW, config,
                           state.view(FIXED_NOW))
        plan = first.plan
        assert [w.new for w in plan.cell_writes if w.column == "Referral ID"] == ["R-00001"]
        # What the cycle journals before it drafts; then it dies, the sheet never written.
        state.record_intent(plan.cell_writes, plan.assigned_ids, plan.next_id_number,
                            FIXED_NOW, facets=first.facets)
    with StateStore(config.state_dir) as state:
        again = plan_cycle(MemorySheet(sheet_grid([row, dict(row)])).read(), FIXED_NOW, config,
                           state.view(FIXED_NOW))
    ids = [w.new for w in again.plan.cell_writes if w.column == "Referral ID"]
    assert sorted(ids) == ["R-00001", "R-00002"], ids


def test_a_plan_made_before_its_drafts_leaves_out_only_the_tabs(config: BridgeConfig) -> None:
    """A cycle with an outbox plans, drafts, then plans again; the first plan's tabs are never
    written, so it builds none. Its IDs, cell writes and drafts are the full plan's, and a plan
    with no drafts is built whole (it is the one applied)."""
    from sheets_bridge.drafting import draft_planner
    from sheets_bridge.summaries import summary_tabs

    rows = [
        patient("Ann", "Lee", Received="2025-03-03 09:00", Referrer_Email="rivera@example.org"),
        patient("Bo", "Kim", Received="2025-03-03 10:00"),
    ]
    snapshot = make_sheet(rows).read()
    with StateStore(config.state_dir) as state:
        view = state.view(FIXED_NOW)

        def plan(drafts_first: bool) -> Any:
            return plan_cycle(snapshot, FIXED_NOW, config, view, tab_builders=summary_tabs(),
                              draft_planner=draft_planner(config), drafts_first=drafts_first)

        full, early = plan(False), plan(True)
    assert early.plan.drafts and early.plan.drafts == full.plan.drafts
    assert early.plan.cell_writes == full.plan.cell_writes
    assert early.plan.assigned_ids == full.plan.assigned_ids
    assert early.facets == full.facets and early.present == full.present
    assert early.plan.tab_contents == ()
    assert {t.title for t in full.plan.tab_contents} >= {"Follow-ups", "Sources", "Bridge Log"}

    # Without drafts there is no second plan: the drafts-first plan is the whole plan.
    quiet = make_sheet([patient("Cy", "Ng", Received="2025-03-03 10:00")]).read()
    with StateStore(config.state_dir) as state:
        view = state.view(FIXED_NOW)
        whole = plan_cycle(quiet, FIXED_NOW, config, view, tab_builders=summary_tabs())
        same = plan_cycle(quiet, FIXED_NOW, config, view, tab_builders=summary_tabs(),
                          drafts_first=True)
    assert same.plan == whole.plan and same.plan.tab_contents
