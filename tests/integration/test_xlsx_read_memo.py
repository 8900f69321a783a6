"""The workbook reader's row memo is exact: a read that reuses rows parsed by an earlier read
(or handed over by the bridge's own save) gives what a read from scratch gives.

Each test reads a workbook, changes it the way another program would, and compares the next
read (memo warm) with a read of the same bytes with every memo dropped. The changes are the
ones a memo keyed too loosely would miss: a cell edited to text of the same length, a
sharedStrings rewrite by openpyxl, a style turned into a date format (a number becomes a
date with no byte of its row changing), and date1904 flipped.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

import pytest
from openpyxl import Workbook, load_workbook
from xlsx_support import assert_same_reading, fresh_read

from sheets_bridge.model import (
    CellWrite,
    DateSerial,
    OutOf,
    Plan,
    RowRef,
    Share,
    TabContent,
)
from sheets_bridge.sheets import ooxml as ox
from sheets_bridge.sheets import xlsx
from sheets_bridge.sheets.xlsx import LocalWorkbook

HEADERS = ["Received", "Patient First Name", "Visit", "Referral ID", "Stage", "Count"]


def _workbook(path: Path, rows: int = 30) -> Path:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Referrals"
    ws.append(HEADERS)
    for i in range(rows):
        ws.append([datetime(2025, 3, 1 + i % 28), f"Name{i}", "Scheduled", f"R-{i:05d}", "New",
                   40000 + i])
    wb.save(path)
    return path


def _rewrite(path: Path, member: str, change: Callable[[bytes], bytes]) -> None:
    """Rewrite one zip member in place (as another program's save would)."""
    with zipfile.ZipFile(path) as src:
        items = [(info, src.read(info)) for info in src.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info, data in items:
            out.writestr(info, change(data) if info.filename == member else data)


def _warm(path: Path) -> LocalWorkbook:
    sheet = LocalWorkbook(path)
    fresh_read(path)
    assert xlsx._read_memo is not None
    return sheet


def test_a_cell_edited_to_text_of_the_same_length_is_read_anew(tmp_path: Path) -> None:
    path = _workbook(tmp_path / "r.xlsx")
    sheet = _warm(path)

    def edit(xml: bytes) -> bytes:  # row 5's Visit cell: an inline string of the same length
        return re.sub(rb'<c r="C5"[^>]*?(/>|>.*?</c>)',
                      b'<c r="C5" t="inlineStr"><is><t>Attended!</t></is></c>', xml, count=1)

    _rewrite(path, "xl/worksheets/sheet1.xml", edit)
    once = sheet.read()
    assert once.referrals is not None and once.referrals.rows[3].values[2] == "Attended!"
    _rewrite(path, "xl/worksheets/sheet1.xml", lambda x: x.replace(b"Attended!", b"Attended?"))
    warm = sheet.read()
    assert warm.referrals is not None and warm.referrals.rows[3].values[2] == "Attended?"
    assert_same_reading(warm, fresh_read(path))


def _with_shared_strings(path: Path) -> None:
    """Move the sheet's inline strings into a sharedStrings part (as Excel stores text)."""
    with zipfile.ZipFile(path) as src:
        items = {info.filename: src.read(info) for info in src.infolist()}
    table: list[bytes] = []

    def to_shared(m: re.Match[bytes]) -> bytes:
        table.append(m.group(2))
        return b'<c r="' + m.group(1) + b'" t="s"><v>' + str(len(table) - 1).encode() + b"</v></c>"

    items["xl/worksheets/sheet1.xml"] = re.sub(
        rb'<c r="([A-Z]+\d+)" t="inlineStr"><is><t>([^<]*)</t></is></c>', to_shared,
        items["xl/worksheets/sheet1.xml"])
    items["xl/sharedStrings.xml"] = (
        b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        + b"".join(b"<si><t>" + t + b"</t></si>" for t in table) + b"</sst>")
    items["xl/_rels/workbook.xml.rels"] = items["xl/_rels/workbook.xml.rels"].replace(
        b"</Relationships>",
        b'<Relationship Type="http://schemas.openxmlformats.org/officeDocument/2006/'
        b'relationships/sharedStrings" Target="sharedStrings.xml" Id="rId99"/></Relationships>')
    items["[Content_Types].xml"] = items["[Content_Types].xml"].replace(
        b"</Types>",
        b'<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.'
        b'openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>')
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for name, data in items.items():
            out.writestr(name, data)


def test_shared_strings_rewritten_read_as_a_fresh_read(tmp_path: Path) -> None:
    path = _workbook(tmp_path / "r.xlsx")
    _with_shared_strings(path)
    sheet = _warm(path)
    before = sheet.read()
    assert before.referrals is not None and before.referrals.rows[0].values[2] == "Scheduled"

    def swap(xml: bytes) -> bytes:  # the first two strings trade places; no row byte changes
        items = re.findall(rb"<si>.*?</si>", xml, re.DOTALL)
        assert len(items) >= 2 and items[0] != items[1]
        return xml.replace(items[0], b"\0TMP", 1).replace(items[1], items[0], 1).replace(
            b"\0TMP", items[1], 1)

    _rewrite(path, "xl/sharedStrings.xml", swap)
    warm = sheet.read()
    assert repr(warm.referrals) != repr(before.referrals)
    assert_same_reading(warm, fresh_read(path))
    # an openpyxl load + save rewrites sharedStrings (and every row) its own way
    sheet.read()
    wb = load_workbook(path)
    wb["Referrals"]["B3"] = "Zed"
    wb["Referrals"].insert_rows(2)
    wb.save(path)
    warm = sheet.read()
    assert_same_reading(warm, fresh_read(path))


def test_a_style_turned_into_a_date_format_turns_numbers_into_dates(tmp_path: Path) -> None:
    path = _workbook(tmp_path / "r.xlsx")
    sheet = _warm(path)
    first = sheet.read()
    assert first.referrals is not None
    count = first.referrals.rows[0].values[5]
    assert count == 40000 and not isinstance(count, DateSerial)

    # The Count column has the default style (s absent): give it style 0 and make style 0 a
    # date; first append a style without changing any (the memo's closed rows survive).
    def dated(xml: bytes) -> bytes:
        return re.sub(rb'(<cellXfs[^>]*>\s*<xf\b[^>]*?)numFmtId="0"', rb'\1numFmtId="14"', xml,
                      count=1)

    _rewrite(path, "xl/worksheets/sheet1.xml",
             lambda x: re.sub(rb'<c r="(F\d+)" t="n">', rb'<c r="\1" s="0" t="n">', x))
    warm = sheet.read()
    assert_same_reading(warm, fresh_read(path))
    sheet.read()
    _rewrite(path, "xl/styles.xml", dated)
    warm = sheet.read()
    assert warm.referrals is not None
    assert isinstance(warm.referrals.rows[0].values[5], DateSerial)
    assert_same_reading(warm, fresh_read(path))


def test_date1904_flipped_is_read_as_a_fresh_read(tmp_path: Path) -> None:
    path = _workbook(tmp_path / "r.xlsx")
    # an ISO date cell (t="d") reads differently in the two epochs
    _rewrite(path, "xl/worksheets/sheet1.xml",
             lambda x: re.sub(rb'<c r="F2"[^>]*?(/>|>.*?</c>)',
                              b'<c r="F2" t="d"><v>2025-03-04T00:00:00</v></c>', x, count=1))
    sheet = _warm(path)
    before = sheet.read()

    def flip(xml: bytes) -> bytes:
        if b"<workbookPr" in xml:
            return re.sub(rb"<workbookPr\b", b'<workbookPr date1904="1"', xml, count=1)
        return xml.replace(b"<sheets>", b'<workbookPr date1904="1"/><sheets>', 1)

    _rewrite(path, "xl/workbook.xml", flip)
    warm = sheet.read()
    assert warm.date1904 and warm.referrals is not None and before.referrals is not None
    assert warm.referrals.rows[0].values[5] != before.referrals.rows[0].values[5]
    assert_same_reading(warm, fresh_read(path))


def test_the_rows_a_save_hands_over_read_as_a_fresh_read(tmp_path: Path) -> None:
    path = _workbook(tmp_path / "r.xlsx")
    sheet = _warm(path)
    snap = sheet.read()
    assert snap.referrals is not None
    row = snap.referrals.rows[1]
    columns = {h: i for i, h in enumerate(HEADERS)}
    plan = Plan(cell_writes=(
        CellWrite(RowRef(row.number, "R-00001", ""), "Stage", "New", "Contacted"),
    ))
    report = sheet.apply(snap, plan, columns)
    assert report.saved and len(report.applied) == 1
    warm = sheet.read()
    assert warm.referrals is not None and warm.referrals.rows[1].values[4] == "Contacted"
    assert_same_reading(warm, fresh_read(path))


def test_the_summary_tabs_a_save_wrote_are_read_from_what_it_handed_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _workbook(tmp_path / "r.xlsx")
    sheet = _warm(path)
    snap = sheet.read()
    rows = (
        ("Week", "Open", "Share", "Seen", "When"),
        ("=not a formula", 3, Share(0.25), True, datetime(2026, 11, 20, 9, 30)),
        (None, None, None, None, None),
        ("a & b <c>\nline", 2.5, OutOf(8), False, date(2026, 11, 21)),
    )
    plan = Plan(tab_contents=(
        TabContent(title="Dashboard", rows=rows), TabContent(title="Bridge Log", rows=rows[:2]),
    ))
    report = sheet.apply(snap, plan, {h: i for i, h in enumerate(HEADERS)})
    assert report.saved and report.tabs_written == ["Dashboard", "Bridge Log"]
    parsed: list[int] = []
    cells = ox.RowScanner.cells

    def counted(self: ox.RowScanner, xml: bytes, start: int, end: int) -> ox.RowEntry:
        parsed.append(end - start)
        return cells(self, xml, start, end)

    monkeypatch.setattr(ox.RowScanner, "cells", counted)
    warm = sheet.read()
    assert parsed == []  # no row parsed: the Referrals rows unchanged, the tabs handed over
    monkeypatch.undo()
    assert isinstance(warm.tabs["Dashboard"].rows[1][4], DateSerial)
    assert_same_reading(warm, fresh_read(path))


@pytest.fixture(autouse=True)
def _no_memo_between_tests() -> None:
    xlsx._last_read = None
    xlsx._read_memo = None
