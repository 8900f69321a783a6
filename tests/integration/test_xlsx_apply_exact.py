"""The workbook apply is exact on random write sets, and so is what its save hands over.

The apply indexes each row once and builds each cell once (``xlsx._XmlRows``); the save hands
the rows and summary tabs it wrote to the next read already parsed. Both are shortcuts, so
each example here draws a random set of writes (some with a stale ``expected``, some to cells
that do not exist yet, text that looks like a formula, line breaks, entities, date-times, a
header for a new column, a summary tab), applies it and checks, against reads made with every
memo dropped:

- a write lands exactly when its cell still holds ``expected`` (compare-and-set), and nothing
  else in the sheet changes;
- what lands reads back as written (a value starting with ``=`` stays text);
- the read after the save (memo warm: rows and tabs handed over) equals a fresh full read.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook

from sheets_bridge.model import (
    BRIDGE_MOMENT_COLUMNS as MOMENT_COLUMNS,
)
from sheets_bridge.model import (
    CellWrite,
    DateSerial,
    HeaderWrite,
    Plan,
    RowRef,
    Snapshot,
    TabContent,
)
from sheets_bridge.sheets import xlsx
from sheets_bridge.sheets.xlsx import LocalWorkbook
from sheets_bridge.values import cell_text

HEADERS = ["Referral ID", "Patient First Name", "Visit", "Stage", "Attention", "Bridge Updated",
           "Count"]
COLUMNS = {h: i for i, h in enumerate(HEADERS)}
ROWS = 12
TEXTS = ["", "Contacted", "=SUM(A1:A3)", "a & b <c> \"d\"", "line one\nline two", "x" * 40,
         "_x0041_ literal", "2026-11-20 09:30"]


def _workbook(path: Path) -> Path:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Referrals"
    ws.append(HEADERS)
    for i in range(ROWS):
        stage = None if i % 4 == 0 else "New"
        count: object = f"=G{i + 1}+1" if i % 5 == 3 else 40000 + i
        ws.append([f"R-{i:05d}", f"Name{i}", "Scheduled" if i % 3 else None, stage,
                   "old line" if i % 2 else None, None, count])
    ws["B3"] = datetime(2025, 3, 1)
    wb.create_sheet("Dashboard").append(["old", 1])
    wb.save(path)
    return path


def _fresh(path: Path) -> Snapshot:
    xlsx._last_read = None
    xlsx._read_memo = None
    return LocalWorkbook(path).read()


def _value(snap: Snapshot, row: int, col: int) -> object:
    assert snap.referrals is not None
    for r in snap.referrals.rows:
        if r.number == row:
            return r.values[col] if col < len(r.values) else None
    return None


write_sets = st.lists(
    st.tuples(
        st.integers(2, ROWS + 1),  # row number
        st.sampled_from(["Stage", "Attention", "Bridge Updated", "Visit", "Follow-up Due"]),
        st.booleans(),  # expected is what the cell holds (else stale)
        st.sampled_from(TEXTS),
    ),
    max_size=25,
    unique_by=lambda w: (w[0], w[1]),
)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(writes=write_sets, add_header=st.booleans(), with_tab=st.booleans())
def test_random_writes_land_exactly_and_read_back_as_a_fresh_read(
    tmp_path_factory: pytest.TempPathFactory,
    writes: list[tuple[int, str, bool, str]],
    add_header: bool,
    with_tab: bool,
) -> None:
    path = _workbook(tmp_path_factory.mktemp("apply") / "r.xlsx")
    sheet = LocalWorkbook(path)
    before = _fresh(path)
    columns = dict(COLUMNS)
    header_writes: tuple[HeaderWrite, ...] = ()
    if add_header:
        columns["Follow-up Due"] = len(HEADERS)
        header_writes = (HeaderWrite(len(HEADERS), "Follow-up Due"),)
    cell_writes = []
    for row, column, fresh, new in writes:
        col = columns.get(column)
        now = "" if col is None else cell_text(_value(before, row, col))
        expected = now if fresh else now + "(stale)"
        rid = f"R-{row - 2:05d}"
        cell_writes.append(CellWrite(RowRef(row, rid, ""), column, expected, new))
    tabs = ()
    if with_tab:
        tabs = (TabContent(title="Dashboard", rows=(("Open", 3), ("=not a formula", None))),)
    plan = Plan(header_writes=header_writes, cell_writes=tuple(cell_writes), tab_contents=tabs)

    report = sheet.apply(before, plan, columns)

    landed = set(report.applied)
    for w in cell_writes:
        col = columns.get(w.column)
        now = "" if col is None else cell_text(_value(before, w.row.number, col))
        should = col is not None and w.expected == now
        assert (w in landed) == should, (w, now)
    warm = sheet.read()  # the memo holds what the save handed over
    after = _fresh(path)
    assert repr(warm) == repr(after)
    written = {(w.row.number, columns[w.column]): w.new for w in landed}
    assert after.referrals is not None and before.referrals is not None
    width = len(columns)
    moments = {columns[m] for m in MOMENT_COLUMNS if m in columns}
    for r in after.referrals.rows:
        for c in range(width):
            got = _value(after, r.number, c)
            if (r.number, c) not in written:
                assert repr(got) == repr(_value(before, r.number, c)), (r.number, c)
                continue
            new = written[(r.number, c)]
            if not new:
                assert got is None
            elif c in moments and new == "2026-11-20 09:30":
                assert isinstance(got, DateSerial)
            else:
                assert got == new  # text, as written: "=SUM(...)" is not a formula
    assert after.referrals.formula_cells <= before.referrals.formula_cells
    if with_tab:
        assert after.tabs["Dashboard"].rows[1][0] == "=not a formula"
