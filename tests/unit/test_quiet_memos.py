"""The memos that make a daemon's quiet cycle cheap (issue 13): each must be invisible.

A memo that hands back a stale answer would lose a staff edit (a hand edit not put back), keep
an old tab, or plan from a state another process has changed. Each test changes exactly one
input a memo's key must hold, between two plans in one process, and checks the second plan is
the one a process with no memo (``incremental=False``) makes.
"""

from __future__ import annotations

import sqlite3
from datetime import timedelta

from conftest import FIXED_NOW, make_sheet, patient, record_of, run_one

from sheets_bridge import decide as decide_module
from sheets_bridge.config import BridgeConfig
from sheets_bridge.model import CellValue
from sheets_bridge.planner import plan_cycle
from sheets_bridge.sheets.memory import MemorySheet
from sheets_bridge.state import StateStore


def _set(sheet: MemorySheet, first_name: str, column: str, value: CellValue) -> None:
    assert sheet.grid is not None
    col = sheet.grid[0].index(column)
    for row in sheet.grid[1:]:
        if row[sheet.grid[0].index("Patient First Name")] == first_name:
            row[col] = value
            return
    raise AssertionError(first_name)


def _plans(config: BridgeConfig, sheet: MemorySheet, now=FIXED_NOW) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """The plan made incrementally (after the memos of earlier plans) and from scratch."""
    with StateStore(config.state_dir) as state:
        view = state.view(now)
        snapshot = sheet.read()
        fast = plan_cycle(snapshot, now, config, view)
        full = plan_cycle(snapshot, now, config, view, incremental=False)
    return repr(fast.plan), repr(full.plan)


def _sheet() -> MemorySheet:
    return make_sheet([patient("Ada"), patient("Ben", "Other", How_Heard="Google")])


def test_a_quiet_row_is_reused_and_a_hand_edit_after_it_is_still_put_back(
    config: BridgeConfig,
) -> None:
    sheet = _sheet()
    run_one(config, sheet, FIXED_NOW)
    assert run_one(config, sheet, FIXED_NOW).outcome == "quiet"
    fast, full = _plans(config, sheet)
    assert fast == full
    kept = decide_module._DECIDED_ROWS.current[1]
    assert len(kept) == 2 and all(e.at is None for e in kept.values())  # quiet, held
    _set(sheet, "Ada", "Stage", "Closed")  # a hand edit of a bridge cell
    fast, full = _plans(config, sheet)
    assert fast == full
    assert "Stage" in fast and "'Closed'" in fast  # the write that puts it back
    report = run_one(config, sheet, FIXED_NOW)
    assert report.cells_written >= 1
    assert record_of(sheet, "Ada")["Stage"] != "Closed"


def test_a_record_changed_by_another_process_is_seen(config: BridgeConfig) -> None:
    """The view's reuse compares what the file holds now: a write from another connection
    (another process: a CLI sync, say) is planned from, not the records read before it."""
    sheet = _sheet()
    run_one(config, sheet, FIXED_NOW)
    run_one(config, sheet, FIXED_NOW)
    with StateStore(config.state_dir) as state:
        first = state.view(FIXED_NOW)
        again = state.view(FIXED_NOW)
        assert again.written is first.written and again.ids is first.ids  # reused: unchanged
    rid = str(record_of(sheet, "Ada")["Referral ID"])
    other = sqlite3.connect(config.state_dir / "state.sqlite")
    with other:
        # As if the value in the cell were not the bridge's: the last write record forgotten.
        other.execute("UPDATE written SET hash = 'feedfacefeedface' WHERE referral_id = ? "
                      "AND col = 'Stage'", (rid,))
    other.close()
    with StateStore(config.state_dir) as state:
        view = state.view(FIXED_NOW)
        assert view.written[(rid, "Stage")].hash == "feedfacefeedface"
        assert view.written is not first.written
    fast, full = _plans(config, sheet)
    assert fast == full



def test_unchanged_tables_are_not_read_again_and_a_restored_backup_is(
    config: BridgeConfig,
) -> None:
    """The tables' version tokens: a view after a cycle that changed nothing reads neither
    table; a state file put back from a backup (same path, older rows) is read afresh."""
    import shutil

    sheet = _sheet()
    run_one(config, sheet, FIXED_NOW)
    db_path = config.state_dir / "state.sqlite"
    backup = config.state_dir.parent / "state-backup.sqlite"
    with StateStore(config.state_dir) as state:
        state.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copyfile(db_path, backup)
    _set(sheet, "Ada", "Stage", "Closed")  # a hand edit: the next cycle puts it back
    run_one(config, sheet, FIXED_NOW)
    run_one(config, sheet, FIXED_NOW)  # quiet
    with StateStore(config.state_dir) as state:
        state.view(FIXED_NOW)
        statements: list[str] = []
        state.db.set_trace_callback(statements.append)
        kept = state.view(FIXED_NOW)
        state.db.set_trace_callback(None)
    assert not [q for q in statements if "FROM ids" in q or "FROM written" in q], statements
    rid = str(record_of(sheet, "Ada")["Referral ID"])
    with StateStore(config.state_dir) as state:
        state.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copyfile(backup, db_path)
    with StateStore(config.state_dir) as state:
        restored = state.view(FIXED_NOW)
    with sqlite3.connect(backup) as direct:
        want = {(r, c): h for r, c, h in direct.execute(
            "SELECT referral_id, col, hash FROM written")}
    assert {k: w.hash for k, w in restored.written.items()} == want
    assert restored.written[(rid, "Stage")] != kept.written[(rid, "Stage")]
    fast, full = _plans(config, sheet)
    assert fast == full

def test_a_quiet_cycle_rewrites_only_the_ids_that_changed(config: BridgeConfig) -> None:
    """record_quiet leaves every ids row as a full rewrite would (but last_seen), and does not
    touch the rows that did not change."""
    sheet = _sheet()
    run_one(config, sheet, FIXED_NOW)
    db_path = config.state_dir / "state.sqlite"

    def rows() -> dict[str, tuple[object, ...]]:
        db = sqlite3.connect(db_path)
        try:
            return {r[0]: r[1:] for r in db.execute(
                "SELECT referral_id, identity, present, pending, facets, last_seen FROM ids")}
        finally:
            db.close()

    before = rows()
    later = FIXED_NOW + timedelta(minutes=2)
    assert run_one(config, sheet, later).outcome == "quiet"
    assert rows() == before  # nothing changed: not even last_seen was rewritten
    # Ben leaves the sheet; another process marked Ada's ID pending meanwhile.
    ada = str(record_of(sheet, "Ada")["Referral ID"])
    ben = str(record_of(sheet, "Ben")["Referral ID"])
    assert sheet.grid is not None
    sheet.grid[:] = [row for row in sheet.grid if "Ben" not in row]
    other = sqlite3.connect(db_path)
    with other:
        other.execute("UPDATE ids SET pending = 1 WHERE referral_id = ?", (ada,))
    other.close()
    run_one(config, sheet, later + timedelta(minutes=2))
    after = rows()
    assert after[ben][1:3] == (0, 0)  # absent, not pending
    assert after[ada][1:3] == (1, 0)  # present, the stray pending cleared
    assert after[ada][0] == before[ada][0] and after[ada][3] == before[ada][3]  # same identity


def test_the_follow_ups_tab_follows_a_changed_row(config: BridgeConfig) -> None:
    sheet = _sheet()
    run_one(config, sheet, FIXED_NOW)
    run_one(config, sheet, FIXED_NOW)
    fast, full = _plans(config, sheet)
    assert fast == full
    _set(sheet, "Ada", "Patient Last Name", "Renamed")
    fast, full = _plans(config, sheet)
    assert fast == full
    assert "Renamed" in fast  # the Follow-ups tab is built again, with the new name
    report = run_one(config, sheet, FIXED_NOW)
    assert "Follow-ups" in report.tabs_written


def test_a_cell_typed_true_over_1_is_read_again(config: BridgeConfig) -> None:
    """``True == 1`` in Python, but the cell now reads "TRUE", not "1": the row memos (keyed by
    equal cells) must not hand the row its earlier digests or derivation. The patient's last
    name changes as far as the bridge can tell, which the full plan says on the row."""
    sheet = make_sheet([patient("Ada", 1), patient("Ben", "Other")])  # type: ignore[arg-type]
    run_one(config, sheet, FIXED_NOW)
    assert run_one(config, sheet, FIXED_NOW).outcome == "quiet"
    _set(sheet, "Ada", "Patient Last Name", True)
    fast, full = _plans(config, sheet)
    assert fast == full
    assert "The name or Received of" in full
    _set(sheet, "Ada", "Patient Last Name", 1.0)  # a float 1.0 reads "1", as the int did
    fast, full = _plans(config, sheet)
    assert fast == full
