"""One behaviour suite, three backends: memory, the local workbook, and Google (the fake, over HTTP).

Each test drives whole cycles (real SQLite state, the real planner and summary tabs) against a
backend handle that can show the Referrals tab as text, let staff edit it, and run a staff edit
between the bridge's read and its write (a sort during the cycle). What a person would notice
must be the same on every backend: IDs stay with their patients, staff cells never change, hand
edits are put back, copies get their own ID, a moved header is followed, and a circuit breaker
writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import pytest
from conftest import FIXED_NOW, patient, sheet_grid
from openpyxl import Workbook, load_workbook

from sheets_bridge.config import BridgeConfig
from sheets_bridge.cycle import CycleReport, run_cycle
from sheets_bridge.dates import format_moment
from sheets_bridge.model import BRIDGE_COLUMNS, BRIDGE_LOG_TAB, Plan, Snapshot
from sheets_bridge.sheets import ApplyReport, SheetBackend
from sheets_bridge.sheets.memory import MemorySheet
from sheets_bridge.sheets.xlsx import LocalWorkbook
from sheets_bridge.state import StateStore
from sheets_bridge.summaries import summary_tabs
from sheets_bridge.values import cell_text

Grid = list[list[object]]
Hook = Callable[[], None]


class Handle(Protocol):
    name: str
    sheet: SheetBackend

    def grid(self) -> list[list[str]]: ...
    def set_grid(self, rows: Grid) -> None: ...
    def during_write(self, hook: Hook) -> None: ...
    def writes(self) -> int | None: ...


def _shown(value: Any) -> str:
    """A cell as the bridge's own text: a real date-time cell (the workbook writes Follow-up
    Due and Bridge Updated as dates) reads as the planner's moment text."""
    if isinstance(value, datetime):
        return format_moment(value)
    return cell_text(value)


def _text(rows: list[list[Any]]) -> list[list[str]]:
    out = [[_shown(v) for v in row] for row in rows]
    for row in out:
        while row and row[-1] == "":
            row.pop()
    while out and not out[-1]:
        out.pop()
    return out


class _Hooked:
    """Runs a staff edit once, just before the next apply that writes cells (a sort while the
    bridge writes); mixed in before a backend class."""

    hook: Hook | None = None

    def apply(self, snapshot: Snapshot, plan: Plan, columns: dict[str, int]) -> ApplyReport:
        if self.hook is not None and plan.cell_writes:
            hook, self.hook = self.hook, None
            hook()
        return super().apply(snapshot, plan, columns)  # type: ignore[misc]


# ------------------------------------------------------------------------------ memory
class _HookedMemory(_Hooked, MemorySheet):
    pass


class MemoryHandle:
    name = "memory"

    def __init__(self, rows: Grid, tmp: Path) -> None:
        self.sheet = _HookedMemory(rows)
        self.applied = 0

    def grid(self) -> list[list[str]]:
        assert self.sheet.grid is not None
        return _text(self.sheet.grid)

    def set_grid(self, rows: Grid) -> None:
        self.sheet.grid = [list(r) for r in rows]

    def during_write(self, hook: Hook) -> None:
        self.sheet.hook = hook

    def writes(self) -> int | None:
        return None


# ------------------------------------------------------------------------------ workbook
class _HookedWorkbook(_Hooked, LocalWorkbook):
    pass


class WorkbookHandle:
    name = "workbook"

    def __init__(self, rows: Grid, tmp: Path) -> None:
        self.path = tmp / "referrals.xlsx"
        wb = Workbook()
        ws = wb.active
        assert ws is not None
        ws.title = "Referrals"
        wb.save(self.path)
        self.set_grid(rows)
        self.sheet = _HookedWorkbook(self.path)

    def grid(self) -> list[list[str]]:
        wb = load_workbook(self.path)
        try:
            return _text([[c.value for c in row] for row in wb["Referrals"].iter_rows()])
        finally:
            wb.close()

    def set_grid(self, rows: Grid) -> None:
        wb = load_workbook(self.path)
        ws = wb["Referrals"]
        ws.delete_rows(1, ws.max_row + 1)
        for r, row in enumerate(rows, start=1):
            for c, value in enumerate(row, start=1):
                cell = ws.cell(r, c)
                cell.value = value if value != "" else None
                if isinstance(value, str) and value.startswith("="):
                    cell.data_type = "s"
        wb.save(self.path)

    def during_write(self, hook: Hook) -> None:
        self.sheet.hook = hook

    def writes(self) -> int | None:
        return None


# ------------------------------------------------------------------------------ google
class GoogleHandle:
    name = "google"

    def __init__(self, rows: Grid, tmp: Path, fake: Any) -> None:
        from google_support import SHEET_ID, credential_files

        from sheets_bridge.google.credentials import SHEETS_SCOPE, load_credentials
        from sheets_bridge.sheets.google import GoogleSheet

        self.fake = fake
        self.id = SHEET_ID
        fake.add_spreadsheet(SHEET_ID, {"Referrals": [list(r) for r in rows]})
        key, _ = credential_files(tmp / "secrets")
        creds = load_credentials(key, scopes=[SHEETS_SCOPE], endpoint=fake.endpoint)
        from google_support import FAST

        self.sheet = GoogleSheet(SHEET_ID, credentials=creds, endpoint=fake.endpoint, policy=FAST)

    def grid(self) -> list[list[str]]:
        return _text(self.fake.grid(self.id, "Referrals"))

    def set_grid(self, rows: Grid) -> None:
        self.fake.set_grid(self.id, "Referrals", [list(r) for r in rows])

    def during_write(self, hook: Hook) -> None:
        self.fake.on_before(lambda _fake: hook(), match=f"POST /v4/spreadsheets/{self.id}/values:batchUpdate")

    def writes(self) -> int | None:
        return sum(1 for r in self.fake.requests if r.api == "sheets" and r.method != "GET")


@pytest.fixture(params=["memory", "workbook", "google"])
def backend_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_backend(
    backend_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[[Grid], Handle]]:
    def make(rows: Grid) -> Handle:
        if backend_kind == "memory":
            return MemoryHandle(rows, tmp_path)
        if backend_kind == "workbook":
            return WorkbookHandle(rows, tmp_path)
        fake = request.getfixturevalue("fake_google")
        return GoogleHandle(rows, tmp_path, fake)

    yield make


# ------------------------------------------------------------------------------ helpers
NAMES = ["Ana", "Ben", "Cy", "Dee", "Eli", "Fay", "Gus", "Hal", "Ivy", "Jo", "Kit", "Lu"]


def rows_for(names: list[str] = NAMES) -> Grid:
    return sheet_grid([
        patient(name, f"{name}son", Received=f"2025-03-0{1 + i % 3} 0{8 + i % 2}:00")
        for i, name in enumerate(names)
    ])


def cycle(config: BridgeConfig, handle: Handle, now: datetime = FIXED_NOW, **kw: Any) -> CycleReport:
    with StateStore(config.state_dir) as state:
        return run_cycle(config, handle.sheet, state, now=now, tab_builders=summary_tabs(), **kw)


def by_name(grid: list[list[str]]) -> dict[str, dict[str, str]]:
    headers = grid[0]
    out = {}
    for row in grid[1:]:
        record = {h: (row[i] if i < len(row) else "") for i, h in enumerate(headers)}
        out[record["Patient First Name"]] = record
    return out


def staff_of(grid: list[list[str]]) -> dict[str, dict[str, str]]:
    return {
        name: {k: v for k, v in rec.items() if k not in BRIDGE_COLUMNS}
        for name, rec in by_name(grid).items()
    }


def sort_rows(grid: Grid, key: Callable[[list[Any]], Any], reverse: bool = False) -> Grid:
    return [grid[0], *sorted(grid[1:], key=key, reverse=reverse)]


# ------------------------------------------------------------------------------ the suite
def test_first_cycle_gives_every_row_an_id_and_a_stage(
    make_backend: Callable[[Grid], Handle], config: BridgeConfig
) -> None:
    handle = make_backend(rows_for())
    staff_before = staff_of(_text(rows_for()))
    report = cycle(config, handle)
    assert report.outcome == "ok"
    grid = handle.grid()
    assert grid[0][: len(rows_for()[0])] == [str(h) for h in rows_for()[0]]
    assert set(BRIDGE_COLUMNS) <= set(grid[0])
    records = by_name(grid)
    ids = [records[n]["Referral ID"] for n in NAMES]
    assert ids == [f"R-{i:05d}" for i in range(1, len(NAMES) + 1)]
    assert all(records[n]["Stage"] for n in NAMES)
    assert staff_of(grid) == staff_before
    assert BRIDGE_LOG_TAB in report.tabs_written


def test_a_quiet_cycle_writes_nothing(
    make_backend: Callable[[Grid], Handle], config: BridgeConfig
) -> None:
    handle = make_backend(rows_for())
    cycle(config, handle)
    before = handle.grid()
    writes = handle.writes()
    report = cycle(config, handle, FIXED_NOW + timedelta(minutes=5))
    assert report.outcome == "quiet"
    assert handle.grid() == before
    assert handle.writes() == writes  # Google: not one write request


def test_a_sort_between_cycles_keeps_every_id_with_its_patient(
    make_backend: Callable[[Grid], Handle], config: BridgeConfig
) -> None:
    handle = make_backend(rows_for())
    cycle(config, handle)
    first = by_name(handle.grid())
    grid = handle.grid()
    handle.set_grid(sort_rows(grid, key=lambda r: r[1], reverse=True))
    report = cycle(config, handle, FIXED_NOW + timedelta(minutes=5))
    assert report.outcome in ("quiet", "ok")
    after = by_name(handle.grid())
    assert {n: r["Referral ID"] for n, r in after.items()} == {
        n: r["Referral ID"] for n, r in first.items()
    }
    assert all("by hand" not in r["Attention"] for r in after.values())
    assert [r[1] for r in handle.grid()[1:]] == sorted(NAMES, reverse=True)


def test_a_sort_during_the_cycle_puts_no_value_on_another_patient(
    make_backend: Callable[[Grid], Handle], config: BridgeConfig
) -> None:
    """Staff sort between the bridge's read and its write: the same end as without the sort."""
    reference = MemoryHandle(rows_for(), Path())
    ref_config = config.model_copy(update={"state_dir": config.state_dir.parent / "ref-state"})
    cycle(ref_config, reference)
    expected = by_name(reference.grid())

    handle = make_backend(rows_for())

    def staff_sort() -> None:
        grid = handle.grid()
        handle.set_grid(sort_rows(grid, key=lambda r: r[1], reverse=True))

    handle.during_write(staff_sort)
    report = cycle(config, handle)
    assert report.outcome == "ok"
    got = by_name(handle.grid())
    for name in NAMES:
        for column in ("Referral ID", "Stage", "Source Tag", "Follow-up Due"):
            assert got[name][column] == expected[name][column], (name, column)
    assert [r[1] for r in handle.grid()[1:]] == sorted(NAMES, reverse=True)
    again = cycle(config, handle, FIXED_NOW + timedelta(minutes=5))
    assert again.cells_written == 0  # nothing left to put right (the queue tab follows the sort)


def test_a_hand_edit_of_a_bridge_cell_is_put_back_and_said(
    make_backend: Callable[[Grid], Handle], config: BridgeConfig
) -> None:
    handle = make_backend(rows_for())
    cycle(config, handle)
    grid = [list(r) for r in handle.grid()]
    stage = grid[0].index("Stage")
    original = grid[3][stage]
    grid[3][stage] = "Closed"
    handle.set_grid(grid)
    cycle(config, handle, FIXED_NOW + timedelta(minutes=5))
    record = by_name(handle.grid())[grid[3][1]]
    assert record["Stage"] == original
    assert "by hand" in record["Attention"]


def test_a_copied_row_gets_its_own_id_and_the_original_keeps_its_own(
    make_backend: Callable[[Grid], Handle], config: BridgeConfig
) -> None:
    handle = make_backend(rows_for())
    cycle(config, handle)
    grid = [list(r) for r in handle.grid()]
    copy = list(grid[2])
    copy[1] = "Copycat"  # staff copy a row and type a new patient over it
    grid.append(copy)
    handle.set_grid(grid)
    cycle(config, handle, FIXED_NOW + timedelta(minutes=5))
    records = by_name(handle.grid())
    assert records[grid[2][1]]["Referral ID"] == grid[2][grid[0].index("Referral ID")]
    new_id = records["Copycat"]["Referral ID"]
    assert new_id and new_id != records[grid[2][1]]["Referral ID"]
    ids = [r["Referral ID"] for r in records.values()]
    assert len(ids) == len(set(ids))


def test_a_deleted_row_leaves_every_other_row_as_it_was(
    make_backend: Callable[[Grid], Handle], config: BridgeConfig
) -> None:
    handle = make_backend(rows_for())
    cycle(config, handle)
    before = by_name(handle.grid())
    grid = [list(r) for r in handle.grid()]
    del grid[4]
    handle.set_grid(grid)
    report = cycle(config, handle, FIXED_NOW + timedelta(minutes=5))
    assert report.outcome in ("ok", "quiet")
    after = by_name(handle.grid())
    assert len(after) == len(before) - 1
    for name, record in after.items():
        assert record["Referral ID"] == before[name]["Referral ID"]


def test_a_moved_header_is_followed(
    make_backend: Callable[[Grid], Handle], config: BridgeConfig
) -> None:
    handle = make_backend(rows_for())
    cycle(config, handle)
    grid = [list(r) + [""] * 30 for r in handle.grid()]
    stage = grid[0].index("Stage")
    width = max(len(r) for r in handle.grid())
    for row in grid:  # staff drag the Stage column to the far right
        row[width] = row[stage]
        row[stage] = ""
    # and type a wrong value into one Stage cell, which the bridge must fix in the new place
    grid[2][width] = "Lost"
    handle.set_grid(grid)
    cycle(config, handle, FIXED_NOW + timedelta(minutes=5))
    now = handle.grid()
    assert now[0].index("Stage") == width
    assert all(len(r) <= stage or r[stage] == "" for r in now)
    assert by_name(now)[grid[2][1]]["Stage"] != "Lost"


def test_the_circuit_breaker_writes_no_cell_when_most_ids_vanish(
    make_backend: Callable[[Grid], Handle], config: BridgeConfig
) -> None:
    handle = make_backend(rows_for())
    cycle(config, handle)
    grid = [list(r) for r in handle.grid()]
    rid = grid[0].index("Referral ID")
    for row in grid[1:10]:
        row[rid] = ""
    handle.set_grid(grid)
    before = handle.grid()
    report = cycle(config, handle, FIXED_NOW + timedelta(minutes=5))
    assert report.outcome == "stopped"
    assert handle.grid() == before
