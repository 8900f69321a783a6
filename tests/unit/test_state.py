"""The state folder: one bridge at a time (F21), private files, corrupt state (F20), audit, no PHI."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import (
    CANARY_PATIENTS,
    CANARY_STRINGS,
    FIXED_NOW,
    make_sheet,
    patient,
    records,
    run_one,
)

from sheets_bridge.config import BridgeConfig
from sheets_bridge.errors import StateLockedError
from sheets_bridge.model import CellValue
from sheets_bridge.sheets.memory import MemorySheet
from sheets_bridge.state import StateStore


def _ids(sheet: MemorySheet) -> list[CellValue]:
    return [r.get("Referral ID") for r in records(sheet)]


def test_a_second_store_on_the_same_folder_is_refused_until_the_first_closes(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "state"
    first = StateStore(folder)
    first.open()
    try:
        with pytest.raises(StateLockedError) as caught, StateStore(folder):
            pass
        message = str(caught.value)
        assert f"pid {os.getpid()}" in message
        assert str(folder) in message
        assert "stop it first, or give this one its own state_dir" in message
    finally:
        first.close()
    with StateStore(folder) as second:
        assert second.view(FIXED_NOW).next_id_number == 1


CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from sheets_bridge.state import StateStore
    store = StateStore(Path(sys.argv[1]))
    store.open()
    print("locked", flush=True)
    time.sleep(60)
    """
)


def test_the_lock_is_freed_when_the_holding_process_dies(tmp_path: Path) -> None:
    folder = tmp_path / "state"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(folder)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(StateLockedError, match=f"pid {child.pid}"), StateStore(folder):
            pass
    finally:
        child.kill()
        child.wait(timeout=10)
    deadline = time.monotonic() + 5
    while True:
        try:
            with StateStore(folder) as store:
                assert store.view(FIXED_NOW).ids == {}
            break
        except StateLockedError:
            assert time.monotonic() < deadline, "lock still held after the holder was killed"
            time.sleep(0.05)


def test_state_folder_and_files_are_private(config: BridgeConfig) -> None:
    old = os.umask(0o022)
    try:
        run_one(config, make_sheet([patient("Ann")]), FIXED_NOW)
    finally:
        os.umask(old)
    folder = config.state_dir
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in ("state.sqlite", "bridge.lock"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name


def test_an_existing_open_folder_is_made_private(tmp_path: Path) -> None:
    folder = tmp_path / "state"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    with StateStore(folder):
        pass
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_a_corrupt_state_file_is_set_aside_and_rebuilt_from_the_sheet(
    config: BridgeConfig,
) -> None:
    """F20: nothing is lost in the sheet, no ID is issued twice, no hand-edit notes appear."""
    sheet = make_sheet([patient("Ann"), patient("Bob"), patient("Cy")])
    run_one(config, sheet, FIXED_NOW)
    before = records(sheet)
    path = config.state_dir / "state.sqlite"
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    path.write_bytes(b"this is not a database" * 100)
    with StateStore(config.state_dir) as store:
        assert store.recovered_from is not None
        assert store.recovered_from.exists()
        assert store.recovered_from.read_bytes().startswith(b"this is not a database")
        assert store.view(FIXED_NOW).fresh
    report = run_one(config, sheet, FIXED_NOW)
    assert report.outcome in ("ok", "quiet")
    assert records(sheet) == before
    # A new row gets the next number after the highest one in the sheet.
    assert sheet.grid is not None
    headers = sheet.grid[0]
    row: list[CellValue] = [None] * len(headers)
    sheet.grid.append(row)
    for key, value in patient("Dee", Received="2025-03-04 09:00").items():
        row[headers.index(key)] = value
    run_one(config, sheet, FIXED_NOW + timedelta(minutes=1))
    assert _ids(sheet) == ["R-00001", "R-00002", "R-00003", "R-00004"]
    assert not any("by hand" in str(r.get("Attention") or "") for r in records(sheet))


def test_the_audit_table_is_append_only(state_store: StateStore) -> None:
    db = state_store.db
    db.execute(
        "INSERT INTO audit(at, action, referral_id, columns) VALUES(?, 'write', 'R-00001', 'Stage')",
        (FIXED_NOW.isoformat(),),
    )
    assert db.execute("SELECT count(*) FROM audit").fetchone()[0] == 1
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE audit SET result = 'x'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM audit")
    assert db.execute("SELECT referral_id, columns FROM audit").fetchall() == [("R-00001", "Stage")]


def test_a_cycle_audits_its_writes_by_id_and_column(config: BridgeConfig) -> None:
    run_one(config, make_sheet([patient("Ann")]), FIXED_NOW)
    with StateStore(config.state_dir) as store:
        rows = store.db.execute("SELECT action, referral_id, columns FROM audit").fetchall()
    assert rows == [
        ("write", "R-00001", "Referral ID, Source Tag, Stage, Follow-up Due, Bridge Updated")
    ]


def test_state_never_holds_patient_data(config: BridgeConfig) -> None:
    """Canary: after cycles with hand edits, copies and problems, no patient value is in state."""
    rows = [
        patient(
            p["Patient First Name"],
            p["Patient Last Name"],
            Patient_Phone=p["Patient Phone"],
            Patient_Email=p["Patient Email"],
            Reason=p["Reason"],
            Consent_to_Update_Referrer="yes (verbal)",
        )
        for p in CANARY_PATIENTS
    ]
    sheet = make_sheet(rows)
    run_one(config, sheet, FIXED_NOW)
    assert sheet.grid is not None
    headers = sheet.grid[0]
    sheet.grid[1][headers.index("Stage")] = "Seen"
    sheet.grid.append(list(sheet.grid[2]))  # a copy with its ID
    run_one(config, sheet, FIXED_NOW)
    run_one(config, sheet, FIXED_NOW + timedelta(hours=30))
    blob = b"".join(
        p.read_bytes() for p in sorted(config.state_dir.iterdir()) if p.is_file()
    ).lower()
    for canary in CANARY_STRINGS:
        assert canary.lower().encode() not in blob, canary
