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

from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook
from xlsx_support import assert_same_reading, fresh_read

from sheets_bridge.model import (
    BRIDGE_MOMENT_COLUMNS as MOMENT_COLUMNS,
)
from sheets_bridge.model import (
    CellWrite,
    DateSerial,
    HeaderWrite,
    Hours,
    OutOf,
    Plan,
    RowRef,
    Share,
    Snapshot,
    TabContent,
)
from sheets_bridge.sheets.ooxml import RowMemo, RowScanner, ValueContext, read_sheet
from sheets_bridge.sheets.ooxml_rows import (
    DATE_FORMAT,
    DATETIME_FORMAT,
    CellLook,
    GeneratedRow,
    generate_sheet,
)
from sheets_bridge.sheets.xlsx import LocalWorkbook, _tab_entry
from sheets_bridge.values import cell_text

HEADERS = ["Referral ID", "Patient First Name", "Visit", "Stage", "Attention", "Bridge Updated",
           "Count"]
COLUMNS = {h: i for i, h in enumerate(HEADERS)}
ROWS = 12
TEXTS = ["", "Contacted", "=SUM(A1:A3)", "a & b <c> \"d\"", "line one\nline two", "x" * 40,
         "_x0041_ literal", "2026-11-20 09:30"]
MOMENT = "2026-11-20 09:30"


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
        st.sampled_from(TEXTS + [MOMENT] * 4),  # a date-time often: the moment columns
    ),
    max_size=25,
    unique_by=lambda w: (w[0], w[1]),
)


@settings(max_examples=40, deadline=None,
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
    before = fresh_read(path)
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
    after = fresh_read(path)
    assert_same_reading(warm, after)
    written = {(w.row.number, columns[w.column]): w.new for w in landed}
    assert after.referrals is not None and before.referrals is not None
    width = len(columns)
    moments = {columns[m] for m in MOMENT_COLUMNS if m in columns}
    for r in after.referrals.rows:
        for c in range(width):
            got = _value(after, r.number, c)
            if (r.number, c) not in written:
                was = _value(before, r.number, c)
                assert (repr(got), type(got)) == (repr(was), type(was)), (r.number, c)
                continue
            new = written[(r.number, c)]
            if not new:
                assert got is None
            elif c in moments and new == MOMENT:
                assert isinstance(got, DateSerial)
            else:
                assert got == new  # text, as written: "=SUM(...)" is not a formula
    assert after.referrals.formula_cells <= before.referrals.formula_cells
    if with_tab:
        assert after.tabs["Dashboard"].rows[1][0] == "=not a formula"


# -- a generated tab, as the save hands it over, is what the reader parses from its bytes ------
out_values = st.one_of(
    st.none(),
    st.sampled_from(TEXTS + ["", "\r\n", "\ud800", "\x01", "_x005F_"]),
    st.text(max_size=12),
    st.integers(-10**16, 10**16),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.datetimes(min_value=datetime(1901, 1, 1), max_value=datetime(2100, 1, 1)),
    st.dates(min_value=date(1901, 1, 1), max_value=date(2100, 1, 1)),
    st.floats(0, 1).map(Share),
    st.integers(0, 1000).map(OutOf),
    st.floats(0, 500).map(Hours),
)


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(st.lists(out_values, max_size=6).map(tuple), max_size=8),
    heading=st.sets(st.integers(0, 7)),
    unknown_bold=st.booleans(),
    date1904=st.booleans(),
)
def test_a_generated_tab_handed_over_reads_as_its_bytes_parse(
    rows: list[tuple[object, ...]], heading: set[int], unknown_bold: bool, date1904: bool
) -> None:
    looks: list[CellLook] = [CellLook()]

    def style(look: CellLook) -> int | None:
        if look == CellLook():
            return None
        if look not in looks:
            looks.append(look)
        return looks.index(look)

    parsed: list[GeneratedRow] = []
    xml = generate_sheet(rows, style=style, heading_rows=heading, widths=(10, 0, 5),  # type: ignore[arg-type]
                         freeze_rows=1, parsed=parsed, date1904=date1904)
    # The written file's styles: which looks show dates; a bold look may be missing from the
    # table (a row using it is then not closed), as in a workbook whose styles went wrong.
    date_style = [look.number_format in (DATETIME_FORMAT, DATE_FORMAT) for look in looks]
    if unknown_bold:
        date_style = [d for d, look in zip(date_style, looks, strict=True) if not look.bold]
    ctx = ValueContext(shared=(), date_style=date_style, date1904=date1904)
    keep: RowMemo = {}
    read_sheet(xml, ctx, None, keep)
    scan = RowScanner(ctx)
    assert {key for key, _, _ in parsed} == set(keep)  # every row handed over
    for key, values, numbers in parsed:
        handed = _tab_entry(values, numbers, scan.date_by_s)
        assert key in keep
        assert repr(handed[:2]) == repr(keep[key][:2])
        assert [type(v) for v in handed[0]] == [type(v) for v in keep[key][0]]
        assert handed[2] == keep[key][2]


@settings(max_examples=200, deadline=None)
@given(
    before=st.lists(st.lists(out_values, max_size=5).map(tuple), max_size=8),
    after=st.lists(st.lists(out_values, max_size=5).map(tuple), max_size=8),
    keep=st.lists(st.integers(0, 7), max_size=8),
    heading=st.sets(st.integers(0, 9)),
    restyle=st.booleans(),
)
def test_a_tab_drawn_from_the_last_drawing_s_rows_is_the_tab_drawn_afresh(
    before: list[tuple[object, ...]], after: list[tuple[object, ...]], keep: list[int],
    heading: set[int], restyle: bool,
) -> None:
    """Rows kept from the last drawing, moved up or down, with a workbook whose styles may
    have been numbered otherwise since: the bytes and the handed-over rows are a fresh draw's."""
    from sheets_bridge.sheets import ooxml_rows

    def styler(offset: int) -> Callable[[CellLook], int | None]:
        looks: list[CellLook] = [CellLook()]

        def style(look: CellLook) -> int | None:
            if look not in looks:
                looks.append(look)
            return looks.index(look) + offset

        return style

    def retyped(row: tuple[object, ...]) -> tuple[object, ...]:
        """Equal in Python, drawn otherwise: 0.5 as Hours(0.5), 3 as 3.0, True as 1."""
        return tuple(
            Hours(v) if type(v) is float else float(v) if type(v) is int
            else int(v) if type(v) is bool else v
            for v in row
        )

    rows = [*after[:2], *(before[i] for i in keep if i < len(before)), *after[2:],
            *map(retyped, before)]

    def draw(style: Callable[[CellLook], int | None]) -> tuple[bytes, list[GeneratedRow]]:
        parsed: list[GeneratedRow] = []
        xml = generate_sheet(rows, style=style, heading_rows=heading, widths=(10, 0, 5),  # type: ignore[arg-type]
                             freeze_rows=1, parsed=parsed, right_cells=[(1, 1)])
        return xml, parsed

    ooxml_rows._ROW_TEMPLATES.clear()
    generate_sheet(before, style=styler(0), heading_rows=heading, widths=(10, 0, 5),  # type: ignore[arg-type]
                   freeze_rows=1, right_cells=[(1, 1)])
    assert ooxml_rows._ROW_TEMPLATES, "the last drawing's rows are held"
    held = draw(styler(3 if restyle else 0))
    ooxml_rows._ROW_TEMPLATES.clear()
    assert held == draw(styler(3 if restyle else 0))
