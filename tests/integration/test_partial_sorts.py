"""Nothing lost, nothing twice, whatever staff do to the sheet (issue: partial sorts and pastes).

On a real workbook and a real state folder: staff columns sorted alone (the classic A:Q sort
that leaves the bridge columns where they were), bridge columns sorted alone, Referral IDs
pasted from another copy, a column of IDs deleted. Each ends in a safety stop that writes no
cell and drafts nothing, or in a correct re-tie; no patient ever gets a second draft of a kind,
and no staff cell changes. Also the probe's defects #1 (a row corrected before its ID landed)
and #2 (an ID reused after the state was lost).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from crash_child import make_practice, read_bridge_cells
from openpyxl import load_workbook

from sheets_bridge.cli import main
from sheets_bridge.config import load_config
from sheets_bridge.demo import demo_rows
from sheets_bridge.model import BRIDGE_COLUMNS
from sheets_bridge.runner import run_sync

NY = ZoneInfo("America/New_York")
NOW = datetime(2025, 3, 4, 10, 0, tzinfo=NY)


@pytest.fixture
def practice(tmp_path: Path) -> Path:
    """A practice synced once: every row has its ID, drafts made."""
    config = make_practice(tmp_path / "p", demo_rows(NOW, seed=3, count=60))
    report = run_sync(load_config(config), now=NOW)
    assert report.drafts_made
    return config


def grid(config: Path) -> list[list[object]]:
    wb = load_workbook(config.parent / "referrals.xlsx")
    try:
        return [[c.value for c in row] for row in wb["Referrals"].iter_rows()]
    finally:
        wb.close()


def save_grid(config: Path, rows: list[list[object]]) -> None:
    path = config.parent / "referrals.xlsx"
    wb = load_workbook(path)
    ws = wb["Referrals"]
    for r, row in enumerate(rows, start=1):
        for c, value in enumerate(row, start=1):
            cell = ws.cell(r, c)
            cell.value = value
            if isinstance(value, str) and value.startswith("="):
                cell.data_type = "s"  # text that looks like a formula stays text, as typed
    wb.save(path)


def columns(rows: list[list[object]]) -> tuple[list[int], list[int]]:
    headers = [str(h) for h in rows[0]]
    bridge = [i for i, h in enumerate(headers) if h in BRIDGE_COLUMNS]
    staff = [i for i in range(len(headers)) if i not in bridge]
    return staff, bridge


def sort_part(rows: list[list[object]], part: list[int], key: int) -> list[list[object]]:
    """Sort only the cells of columns ``part`` of the data rows by column ``key``."""
    body = rows[1:]
    order = sorted(range(len(body)), key=lambda i: str(body[i][key] or ""))
    out = [list(r) for r in rows]
    for new, old in enumerate(order, start=1):
        for c in part:
            out[new][c] = body[old][c]
    return out


def staff_cells(rows: list[list[object]]) -> Counter[tuple[object, ...]]:
    staff, _ = columns(rows)
    return Counter(tuple(r[c] for c in staff) for r in rows[1:])


def drafts_by_patient(folder: Path) -> Counter[tuple[str, str]]:
    """(recipient, kind) of every draft; a patient kind twice for one address is a duplicate."""
    out: Counter[tuple[str, str]] = Counter()
    for path in sorted((folder / "drafts").glob("R-*.eml")):
        msg = message_from_bytes(path.read_bytes(), policy=policy.default)
        kind = path.name.split(".")[1]
        if kind.startswith("patient") or kind == "appointment_reminder":
            out[(str(msg["To"]), kind)] += 1
    return out


def draft_files(folder: Path) -> set[str]:
    return {p.name for p in (folder / "drafts").glob("*.eml")}


def sync(config: Path, *extra: str, now: datetime = NOW) -> int:
    return main(["sync", "--config", str(config), "--now", now.isoformat(), *extra])


@pytest.mark.parametrize("which", ["staff columns", "bridge columns"])
def test_sorting_half_the_columns_stops_everything_until_undone(
    practice: Path, which: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = grid(practice)
    staff, bridge = columns(rows)
    last_name = [str(h) for h in rows[0]].index("Patient Last Name")
    moved = sort_part(rows, staff if which == "staff columns" else bridge, last_name)
    save_grid(practice, moved)
    before_files = draft_files(practice.parent)
    before_staff = staff_cells(grid(practice))
    bridge_before = read_bridge_cells(practice.parent / "referrals.xlsx")

    later = NOW + timedelta(minutes=5)
    capsys.readouterr()
    assert sync(practice, now=later) == 3
    out = capsys.readouterr().out
    assert "carry another patient's Referral ID" in out and "--force" in out
    assert draft_files(practice.parent) == before_files  # no draft
    assert read_bridge_cells(practice.parent / "referrals.xlsx") == bridge_before  # no cell
    assert staff_cells(grid(practice)) == before_staff

    # Undoing the sort (the file as it was) lets the next cycle run as if nothing happened.
    save_grid(practice, rows)
    assert sync(practice, now=later) == 0
    assert draft_files(practice.parent) == before_files


def test_forcing_ties_ids_to_rows_as_they_stand_and_drafts_nothing_twice(
    practice: Path,
) -> None:
    rows = grid(practice)
    staff, _ = columns(rows)
    last_name = [str(h) for h in rows[0]].index("Patient Last Name")
    save_grid(practice, sort_part(rows, staff, last_name))
    before_staff = staff_cells(grid(practice))
    later = NOW + timedelta(minutes=5)
    assert sync(practice, "--force", now=later) == 0
    assert staff_cells(grid(practice)) == before_staff
    twice = {k: n for k, n in drafts_by_patient(practice.parent).items() if n > 1}
    assert not twice, twice
    # The stop does not come back: the IDs are tied to their rows now.
    assert sync(practice, now=later + timedelta(minutes=5)) == 0


def test_ids_pasted_from_another_copy_stop(practice: Path) -> None:
    rows = grid(practice)
    id_col = [str(h) for h in rows[0]].index("Referral ID")
    ids = [r[id_col] for r in rows[1:]]
    shifted = ids[1:] + ids[:1]  # the column pasted one row off
    pasted = [list(r) for r in rows]
    for i, rid in enumerate(shifted, start=1):
        pasted[i][id_col] = rid
    save_grid(practice, pasted)
    before = draft_files(practice.parent)
    assert sync(practice, now=NOW + timedelta(minutes=5)) == 3
    assert draft_files(practice.parent) == before


def test_a_deleted_id_column_stops_then_force_gives_every_row_its_own_id_back(
    practice: Path,
) -> None:
    rows = grid(practice)
    id_col = [str(h) for h in rows[0]].index("Referral ID")
    want = {tuple(r[c] for c in columns(rows)[0]): r[id_col] for r in rows[1:]}
    cleared = [list(r) for r in rows]
    for r in cleared[1:]:
        r[id_col] = None
    save_grid(practice, cleared)
    before = draft_files(practice.parent)
    later = NOW + timedelta(minutes=5)
    assert sync(practice, now=later) == 3  # most IDs gone: the breaker
    assert sync(practice, "--force", now=later) == 0
    after = grid(practice)
    got = {tuple(r[c] for c in columns(after)[0]): r[id_col] for r in after[1:]}
    assert got == want  # a correct re-tie: each patient has their own ID again
    assert draft_files(practice.parent) == before


def test_one_retyped_name_keeps_its_id_and_says_so_once(practice: Path) -> None:
    rows = grid(practice)
    headers = [str(h) for h in rows[0]]
    first, id_col = headers.index("Patient First Name"), headers.index("Referral ID")
    att = headers.index("Attention")
    rows[5][first] = f"{rows[5][first]}a"  # a typo fixed
    rid = rows[5][id_col]
    save_grid(practice, rows)
    assert sync(practice, now=NOW + timedelta(minutes=5)) == 0
    after = grid(practice)
    row = next(r for r in after[1:] if r[id_col] == rid)
    assert row[first] == rows[5][first]
    assert "changed since the bridge gave it this ID" in str(row[att])


def test_a_row_corrected_before_its_id_landed_keeps_that_id_and_drafts_once(
    tmp_path: Path,
) -> None:
    """Probe #1: the workbook was open, so the cycle drafted but could not write; then staff
    corrected the patient's name; the row must get the ID its drafts were made under."""
    config = make_practice(tmp_path / "p", demo_rows(NOW, seed=3, count=60))
    lock = config.parent / ".~lock.referrals.xlsx#"
    lock.write_text("someone")
    assert sync(config) == 1  # drafted, not written
    drafted = draft_files(config.parent)
    assert drafted
    rows = grid(config)
    headers = [str(h) for h in rows[0]]
    first = headers.index("Patient First Name")
    for r in rows[1:]:
        if r[first]:
            r[first] = f"{r[first]}x"  # every name corrected meanwhile
    save_grid(config, rows)
    lock.unlink()
    assert sync(config, now=NOW + timedelta(minutes=5)) == 0
    assert draft_files(config.parent) == drafted  # no second welcome, no second thanks
    final = grid(config)
    now_headers = [str(h) for h in final[0]]
    ids = [r[now_headers.index("Referral ID")] for r in final[1:] if r[first]]
    assert len(ids) == len(set(ids))
    numbers = sorted(int(str(i)[2:]) for i in ids)
    assert numbers == list(range(1, len(numbers) + 1))  # no second ID for any row


def test_an_id_is_never_reused_after_the_state_is_lost(practice: Path) -> None:
    """Probe #2: the row with the highest ID is deleted, then the state file is lost."""
    rows = grid(practice)
    id_col = [str(h) for h in rows[0]].index("Referral ID")
    top = max(rows[1:], key=lambda r: int(str(r[id_col])[2:]))
    highest = int(str(top[id_col])[2:])
    kept = [r for r in rows if r is not top]
    path = practice.parent / "referrals.xlsx"
    wb = load_workbook(path)
    ws = wb["Referrals"]
    ws.delete_rows(rows.index(top) + 1)
    wb.save(path)
    assert len(grid(practice)) == len(kept)
    (practice.parent / "state" / "state.sqlite").unlink()
    # A new referral comes in.
    new = demo_rows(NOW, seed=9, count=1)[0]
    wb = load_workbook(path)
    ws = wb["Referrals"]
    headers = [c.value for c in ws[1]]
    ws.append([new.get(str(h)) for h in headers])
    wb.save(path)
    assert sync(practice, now=NOW + timedelta(minutes=5)) == 0
    after = grid(practice)
    ids = [str(r[id_col]) for r in after[1:] if r[id_col]]
    assert f"R-{highest:05d}" not in ids  # the deleted row's ID stays retired
    assert f"R-{highest + 1:05d}" in ids
