"""LocalWorkbook on real .xlsx files: what it reads, what it writes, and what it refuses.

Workbooks are made with openpyxl (or by hand, for shapes openpyxl never writes) and results are
reopened with openpyxl, so the tests check the file as another program sees it.
"""

from __future__ import annotations

import io
import os
import stat
import subprocess
import zipfile
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import need_soffice
from openpyxl import Workbook, load_workbook
from openpyxl.chart import BarChart, Reference
from openpyxl.styles import Font
from xlsx_support import fresh_read

from sheets_bridge import model
from sheets_bridge.errors import SnapshotStaleError, WorkbookBusyError, WorkbookUnreadableError
from sheets_bridge.model import (
    CellError,
    CellRange,
    CellWrite,
    DateSerial,
    HeaderWrite,
    Plan,
    RowRef,
    TabContent,
)
from sheets_bridge.sheets.xlsx import LocalWorkbook
from sheets_bridge.sheets.xlsx_setup import lossy_content

HEADERS = ["Received", "Patient First Name", "Visit", "Referral ID", "Stage", "Attention"]
COLUMNS = {h: i for i, h in enumerate(HEADERS)}

NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
NS_R = 'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'


# ------------------------------------------------------------------------------------ helpers
def staff_workbook(path: Path, rows: Sequence[Sequence[Any]] | None = None) -> Path:
    """A small Referrals workbook with styles, a staff formula and an extra staff tab."""
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Referrals"
    ws.append(HEADERS)
    for row in rows or [
        [datetime(2025, 3, 4, 9, 30), "Ana", "Scheduled", "R-00001", "New", None],
        [datetime(2025, 3, 5), "Ben", None, "R-00002", "Contacted", "old note"],
        [datetime(2025, 3, 6), "Cy", '=B4&"!"', None, None, None],
    ]:
        ws.append(list(row))
    ws["A1"].font = Font(bold=True)
    ws["F3"].number_format = "@"
    notes = wb.create_sheet("Notes")
    notes["A1"] = "staff notes"
    notes["B2"] = 42
    wb.save(path)
    return path


def cell_facts(path: Path) -> dict[tuple[str, str], tuple[Any, ...]]:
    """Every cell of every tab as openpyxl sees it: value, type, number format, style ids."""
    wb = load_workbook(path)
    out: dict[tuple[str, str], tuple[Any, ...]] = {}
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for c in row:
                if c.value is None and not c.has_style:
                    continue
                out[(ws.title, c.coordinate)] = (
                    c.value,
                    c.data_type,
                    c.number_format,
                    bool(c.font.b),
                    tuple(c._style),
                )
    return out


def write(row: int, rid: str, column: str, expected: str, new: str) -> CellWrite:
    return CellWrite(RowRef(row, rid, ""), column, expected, new)


def raw_xlsx(
    path: Path,
    sheets: Sequence[tuple[str, str]],
    *,
    shared: str | None = None,
    styles: str | None = None,
    workbook_pr: str = "",
    extra: Mapping[str, bytes] | None = None,
) -> Path:
    """A workbook zip written by hand, for XML shapes openpyxl never produces."""
    ct = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">',
        (
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
            'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
        ),
        (
            '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-'
            'officedocument.spreadsheetml.sheet.main+xml"/>'
        ),
    ]
    rels = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">',
    ]
    wb_sheets = []
    files: dict[str, bytes] = {}
    for i, (name, xml) in enumerate(sheets, start=1):
        files[f"xl/worksheets/sheet{i}.xml"] = xml.encode()
        ct.append(
            f'<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        )
        rels.append(
            f'<Relationship Id="rId{i}" Type="http://schemas.openxmlformats.org/officeDocument/'
            f'2006/relationships/worksheet" Target="worksheets/sheet{i}.xml"/>'
        )
        wb_sheets.append(f'<sheet name="{name}" sheetId="{i}" r:id="rId{i}"/>')
    if shared is not None:
        files["xl/sharedStrings.xml"] = shared.encode()
        rels.append(
            '<Relationship Id="rIdS" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
            'relationships/sharedStrings" Target="/xl/sharedStrings.xml"/>'
        )
        ct.append(
            '<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.'
            'openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
        )
    if styles is not None:
        files["xl/styles.xml"] = styles.encode()
        rels.append(
            '<Relationship Id="rIdT" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
            'relationships/styles" Target="styles.xml"/>'
        )
        ct.append(
            '<Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-'
            'officedocument.spreadsheetml.styles+xml"/>'
        )
    ct.append("</Types>")
    rels.append("</Relationships>")
    root_rels = (
        '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats'
        '.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.'
        'openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
        'Target="xl/workbook.xml"/></Relationships>'
    )
    workbook = (
        f'<?xml version="1.0" encoding="UTF-8"?><workbook {NS} {NS_R}>{workbook_pr}'
        f"<sheets>{''.join(wb_sheets)}</sheets></workbook>"
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "".join(ct))
        z.writestr("_rels/.rels", root_rels)
        z.writestr("xl/workbook.xml", workbook)
        z.writestr("xl/_rels/workbook.xml.rels", "".join(rels))
        for name, data in {**files, **(extra or {})}.items():
            z.writestr(name, data)
    return path


def sheet_xml(rows: str, tail: str = "") -> str:
    return f'<?xml version="1.0" encoding="UTF-8"?><worksheet {NS}><sheetData>{rows}</sheetData>{tail}</worksheet>'


STYLES_WITH_DATE = f"""<?xml version="1.0" encoding="UTF-8"?><styleSheet {NS}>
<numFmts count="2"><numFmt numFmtId="164" formatCode="dd/mm/yyyy\\ hh:mm"/>
<numFmt numFmtId="165" formatCode="&quot;Day&quot; 0.00"/></numFmts>
<fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>
<fills count="1"><fill><patternFill patternType="none"/></fill></fills>
<borders count="1"><border/></borders>
<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>
<cellXfs count="4"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>
<xf numFmtId="14" fontId="0" fillId="0" borderId="0" xfId="0"/>
<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0"/>
<xf numFmtId="165" fontId="0" fillId="0" borderId="0" xfId="0"/></cellXfs>
</styleSheet>"""


# ------------------------------------------------------------------------------------ reading
def test_kind_matches_config_string() -> None:
    assert LocalWorkbook.kind == "local"


def test_read_values_types_formulas_merges_hidden_rows(tmp_path: Path) -> None:
    path = tmp_path / "w.xlsx"
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Referrals"
    ws.append(["Received", "Name", "Count", "Flag", "Err", "Calc"])
    ws.append([datetime(2025, 3, 4), "O'Brien & <Sons>", 3, True, "#N/A", "=C2*2"])
    ws.append([45720, "Nguyễn 张伟", 2.5, False, None, None])
    ws.append([None, None, None, None, None, None])
    ws.append([None, "after a gap", None, None, None, None])
    ws.merge_cells("B6:C7")
    ws["B6"] = "merged"
    ws.row_dimensions[3].hidden = True
    wb.save(path)

    snap = LocalWorkbook(path).read()
    tab = snap.referrals
    assert tab is not None
    assert tab.title == "Referrals"
    assert tab.headers == ("Received", "Name", "Count", "Flag", "Err", "Calc")
    by_number = {r.number: r for r in tab.rows}
    assert set(by_number) == {2, 3, 5, 6}  # the empty row 4 is skipped
    r2 = by_number[2]
    assert isinstance(r2.values[0], DateSerial) and r2.values[0] == 45720.0
    assert r2.values[1] == "O'Brien & <Sons>"
    assert r2.values[2] == 3 and not isinstance(r2.values[2], bool)
    assert r2.values[3] is True
    assert isinstance(r2.values[4], CellError) and r2.values[4] == "#N/A"
    r3 = by_number[3]
    assert r3.hidden and not r2.hidden
    assert r3.values[0] == 45720 and not isinstance(r3.values[0], DateSerial)
    assert r3.values[1] == "Nguyễn 张伟"
    assert r3.values[2] == 2.5 and r3.values[3] is False
    assert by_number[5].values == (None, "after a gap")
    assert (2, 5) in tab.formula_cells
    assert CellRange(6, 1, 7, 2) in tab.merged
    assert snap.date1904 is False
    assert snap.tab_titles == ("Referrals",)
    size, mtime, digest = snap.version.split(":")
    assert int(size) == path.stat().st_size and int(mtime) == path.stat().st_mtime_ns
    assert len(digest) == 64


def test_read_rich_text_phonetic_runs_entities_and_escapes(tmp_path: Path) -> None:
    shared = f"""<?xml version="1.0" encoding="UTF-8"?><sst {NS} count="5" uniqueCount="5">
<si><t>Referral ID</t></si>
<si><r><rPr><b/></rPr><t>Bold</t></r><r><t xml:space="preserve"> and plain</t></r></si>
<si><t>東京</t><rPh sb="0" eb="2"><t>トウキョウ</t></rPh></si>
<si><t>line1_x000D_
line2 &amp; &lt;x&gt; &#233;&#x4E2D; literal _x005F_x0041_</t></si>
<si><t/></si>
</sst>"""
    rows = (
        '<row r="1"><c r="A1" t="s"><v>0</v></c></row>'
        '<row r="2"><c r="A2" t="s"><v>1</v></c><c r="B2" t="s"><v>2</v></c>'
        '<c r="C2" t="s"><v>3</v></c><c r="D2" t="s"><v>4</v></c>'
        '<c r="E2" t="inlineStr"><is><r><t>in</t></r><r><t>line</t></r></is></c>'
        '<c r="F2" t="str"><f>A1</f><v>Referral ID</v></c></row>'
    )
    path = raw_xlsx(tmp_path / "r.xlsx", [("Referrals", sheet_xml(rows))], shared=shared)
    tab = LocalWorkbook(path).read().referrals
    assert tab is not None
    values = tab.rows[0].values
    assert values[0] == "Bold and plain"
    assert values[1] == "東京"
    assert values[2] == "line1\r\nline2 & <x> é中 literal _x0041_"
    assert values[3] is None
    assert values[4] == "inline"
    assert values[5] == "Referral ID" and (2, 5) in tab.formula_cells


def test_read_cells_without_r_prefixes_dates_and_1904(tmp_path: Path) -> None:
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<x:worksheet xmlns:x="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        "<x:sheetData>"
        '<x:row><x:c t="inlineStr"><x:is><x:t>Received</x:t></x:is></x:c>'
        '<x:c t="inlineStr"><x:is><x:t>When</x:t></x:is></x:c>'
        '<x:c t="inlineStr"><x:is><x:t>Label</x:t></x:is></x:c></x:row>'
        '<x:row><x:c s="1"><x:v>1</x:v></x:c><x:c s="2"><x:v>0.5</x:v></x:c>'
        '<x:c s="3"><x:v>7</x:v></x:c></x:row>'
        '<x:row hidden="1"><x:c t="d"><x:v>1904-01-03T12:00:00</x:v></x:c>'
        "<x:c t='b'><x:v>1</x:v></x:c></x:row>"
        "</x:sheetData></x:worksheet>"
    )
    path = raw_xlsx(
        tmp_path / "p.xlsx",
        [(" referrals ", xml)],
        styles=STYLES_WITH_DATE,
        workbook_pr='<workbookPr date1904="1"/>',
    )
    snap = LocalWorkbook(path).read()
    assert snap.date1904 is True
    tab = snap.referrals
    assert tab is not None and tab.title == " referrals "
    assert tab.headers == ("Received", "When", "Label")
    r2, r3 = tab.rows
    assert (r2.number, r3.number) == (2, 3)
    assert isinstance(r2.values[0], DateSerial)  # built-in 14
    assert isinstance(r2.values[1], DateSerial)  # custom dd/mm/yyyy hh:mm
    assert r2.values[2] == 7 and not isinstance(r2.values[2], DateSerial)  # "Day" is quoted
    assert isinstance(r3.values[0], DateSerial) and r3.values[0] == pytest.approx(2.5)
    assert r3.values[1] is True and r3.hidden


def test_missing_referrals_tab_reads_as_none_and_tabs_are_read(tmp_path: Path) -> None:
    path = tmp_path / "t.xlsx"
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Sheet1"
    gifts = wb.create_sheet("gifts")
    gifts["A1"] = "Date"
    gifts["B3"] = 15
    sources = wb.create_sheet("Sources")
    sources.append(["How Heard", "Tag"])
    sources.append(["dr referral", "Provider Referral"])
    wb.save(path)
    snap = LocalWorkbook(path).read()
    assert snap.referrals is None
    assert snap.tab_titles == ("Sheet1", "gifts", "Sources")
    assert snap.tabs[model.GIFTS_TAB].title == "gifts"
    assert snap.tabs[model.GIFTS_TAB].rows == (("Date",), (), (None, 15))
    assert snap.tabs[model.SOURCES_TAB].rows[1] == ("dr referral", "Provider Referral")


# ------------------------------------------------------------------------------------ writing
def test_apply_writes_only_the_planned_cells(tmp_path: Path) -> None:
    path = staff_workbook(tmp_path / "w.xlsx")
    before = cell_facts(path)
    book = LocalWorkbook(path)
    snap = book.read()
    plan = Plan(
        cell_writes=(
            write(2, "R-00001", "Stage", "New", "=1+1"),
            write(3, "R-00002", "Attention", "old note", ""),
            write(4, "", "Referral ID", "", "R-00003"),
            write(4, "R-00003", "Attention", "", "Visit is empty\nsecond _x0041_ line\x01"),
        )
    )
    report = book.apply(snap, plan, COLUMNS)
    assert report.saved and not report.skipped and len(report.applied) == 4
    after = cell_facts(path)
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert changed == {
        ("Referrals", "E2"),
        ("Referrals", "F3"),
        ("Referrals", "D4"),
        ("Referrals", "F4"),
    }
    assert after[("Referrals", "E2")][:2] == ("=1+1", "s")  # text, never a formula (B18)
    assert after[("Referrals", "F3")][0] is None
    assert after[("Referrals", "F3")][2:] == before[("Referrals", "F3")][2:]  # style kept
    assert after[("Referrals", "C4")][:2] == ('=B4&"!"', "f")  # staff formula untouched
    # The bridge reads back exactly what it wrote.
    again = book.read().referrals
    assert again is not None
    row4 = {r.number: r for r in again.rows}[4]
    assert row4.values[3] == "R-00003"
    assert row4.values[5] == "Visit is empty\nsecond _x0041_ line\x01"
    # openpyxl does not undo _xHHHH_ escapes in inline strings (Excel and LibreOffice do).
    assert load_workbook(path)["Referrals"]["F4"].value.startswith("Visit is empty\nsecond ")


def test_header_write_adds_a_column(tmp_path: Path) -> None:
    path = staff_workbook(tmp_path / "h.xlsx")
    book = LocalWorkbook(path)
    snap = book.read()
    cols = {**COLUMNS, "Emails": 6}
    plan = Plan(
        header_writes=(HeaderWrite(6, "Emails"),),
        cell_writes=(write(2, "R-00001", "Emails", "", "2025-03-04 ack drafted"),),
    )
    report = book.apply(snap, plan, cols)
    assert report.headers_added == [HeaderWrite(6, "Emails")] and len(report.applied) == 1
    ws = load_workbook(path)["Referrals"]
    assert ws["G1"].value == "Emails" and ws["G2"].value == "2025-03-04 ack drafted"
    assert ws.max_column == 7
    with zipfile.ZipFile(path) as z:
        assert b'<dimension ref="A1:G4"/>' in z.read("xl/worksheets/sheet1.xml")
    tab = book.read().referrals
    assert tab is not None and tab.headers[6] == "Emails"


def test_skips_moved_rows_changed_cells_and_merges(tmp_path: Path) -> None:
    path = staff_workbook(tmp_path / "s.xlsx")
    wb = load_workbook(path)
    wb["Referrals"].merge_cells("E3:F3")
    wb.save(path)
    book = LocalWorkbook(path)
    snap = book.read()
    original = path.read_bytes()
    wrong_id = write(2, "R-00009", "Stage", "New", "Lost")
    stale_value = write(2, "R-00001", "Stage", "Contacted", "Lost")
    merged = write(3, "R-00002", "Attention", "", "x")
    no_column = write(2, "R-00001", "Emails", "", "x")
    report = book.apply(snap, Plan(cell_writes=(wrong_id, stale_value, merged, no_column)), COLUMNS)
    reasons = dict(report.skipped)
    assert set(reasons) == {wrong_id, stale_value, merged, no_column}
    assert reasons[merged] == "merged"
    assert "R-00009" in reasons[wrong_id]
    assert not report.applied and not report.saved
    assert path.read_bytes() == original



def test_a_merge_the_bridge_cannot_read_does_not_stop_the_save(tmp_path: Path) -> None:
    """Read and save see the same merges: one with an unreadable ref is left out by both."""
    path = staff_workbook(tmp_path / "m.xlsx")
    wb = load_workbook(path)
    wb["Referrals"].merge_cells("E3:F3")
    wb.save(path)
    with zipfile.ZipFile(path) as z:
        parts = {i.filename: z.read(i) for i in z.infolist()}
    sheet = "xl/worksheets/sheet1.xml"
    parts[sheet] = parts[sheet].replace(b'<mergeCell ref="E3:F3"/>',
                                        b'<mergeCell ref="E3:F3"/><mergeCell ref="A:A"/>')
    assert b'ref="A:A"' in parts[sheet]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in parts.items():
            z.writestr(name, data)
    book = LocalWorkbook(path)
    snap = book.read()
    assert snap.referrals is not None and CellRange(3, 4, 3, 5) in snap.referrals.merged
    merged = write(3, "R-00002", "Attention", "", "x")
    fine = write(2, "R-00001", "Attention", "", "Check the phone number")
    report = book.apply(snap, Plan(cell_writes=(merged, fine)), COLUMNS)
    assert dict(report.skipped) == {merged: "merged"} and report.applied == [fine]
    again = fresh_read(path).referrals
    assert again is not None and again.rows[0].get(COLUMNS["Attention"]) == "Check the phone number"

def test_tab_contents_replace_and_add_with_bold_headings(tmp_path: Path) -> None:
    path = staff_workbook(tmp_path / "t.xlsx")
    wb = load_workbook(path)
    wb.create_sheet("dashboard")["A1"] = "old content"
    wb.save(path)
    book = LocalWorkbook(path)
    dash = TabContent(
        "Dashboard",
        rows=(
            ("Referrals by source", None),
            ("Provider Referral", 12),
            ("Self", 2.5),
            ("=x", None),
        ),
        heading_rows=frozenset({0}),
        widths=(30, 10),
    )
    log_tab = TabContent("Bridge Log", rows=(("When", "What"), ("2025-03-04", "3 cells\nwritten")))
    report = book.apply(book.read(), Plan(tab_contents=(dash, log_tab)), COLUMNS)
    assert report.saved and report.tabs_written == ["Dashboard", "Bridge Log"]
    wb = load_workbook(path)
    assert wb.sheetnames == ["Referrals", "Notes", "dashboard", "Bridge Log"]
    ws = wb["dashboard"]
    assert ws["A1"].value == "Referrals by source" and ws["A1"].font.b
    assert ws["B2"].value == 12 and ws["B3"].value == 2.5 and not ws["A2"].font.b
    assert ws["A4"].value == "=x" and ws["A4"].data_type == "s"
    assert ws["A2"].value == "Provider Referral" and ws.freeze_panes == "A2"
    assert ws.column_dimensions["A"].width == pytest.approx(30.7109375)
    assert wb["Bridge Log"]["B2"].value == "3 cells\nwritten"
    assert wb["Bridge Log"]["B2"].alignment.wrap_text
    snap = book.read()
    assert snap.tabs[model.DASHBOARD_TAB].rows[1] == ("Provider Referral", 12)
    # Writing again reuses the styles instead of growing styles.xml.
    with zipfile.ZipFile(path) as z:
        styles = z.read("xl/styles.xml")
    book.apply(snap, Plan(tab_contents=(dash, log_tab)), COLUMNS)
    with zipfile.ZipFile(path) as z:
        assert z.read("xl/styles.xml") == styles
        assert len([n for n in z.namelist() if n.startswith("xl/worksheets/sheet")]) == 4


@pytest.mark.parametrize("lock", ["~$w.xlsx", "~$xlsx", ".~lock.w.xlsx#"])
def test_lock_files_refuse_and_leave_the_file_alone(tmp_path: Path, lock: str) -> None:
    path = staff_workbook(tmp_path / "w.xlsx")
    if lock == "~$xlsx":
        lock = "~$" + path.name[2:]  # Excel overwrote the first two characters
    book = LocalWorkbook(path)
    snap = book.read()
    (tmp_path / lock).write_bytes(b"owner")
    original, mtime = path.read_bytes(), path.stat().st_mtime_ns
    with pytest.raises(WorkbookBusyError, match="open in Excel or LibreOffice"):
        book.apply(snap, Plan(cell_writes=(write(2, "R-00001", "Stage", "New", "Lost"),)), COLUMNS)
    assert path.read_bytes() == original and path.stat().st_mtime_ns == mtime
    assert not list(tmp_path.glob(".~sheets-bridge-*"))


def test_file_changed_after_read_is_stale(tmp_path: Path) -> None:
    path = staff_workbook(tmp_path / "w.xlsx")
    book = LocalWorkbook(path)
    snap = book.read()
    wb = load_workbook(path)
    wb["Referrals"]["B2"] = "Edited"
    wb.save(path)
    edited = path.read_bytes()
    with pytest.raises(SnapshotStaleError):
        book.apply(snap, Plan(cell_writes=(write(2, "R-00001", "Stage", "New", "Lost"),)), COLUMNS)
    assert path.read_bytes() == edited
    assert not list(tmp_path.glob(".~sheets-bridge-*"))


def test_file_changed_while_saving_is_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = staff_workbook(tmp_path / "w.xlsx")
    book = LocalWorkbook(path)
    snap = book.read()
    real_load = book._load
    calls = {"n": 0}

    def load_then_edit() -> tuple[bytes, str]:
        calls["n"] += 1
        if calls["n"] == 2:  # the check just before os.replace: someone saved meanwhile
            path.write_bytes(path.read_bytes() + b"")
            os.utime(path, ns=(1, 1))
        return real_load()

    monkeypatch.setattr(book, "_load", load_then_edit)
    with pytest.raises(SnapshotStaleError):
        book.apply(snap, Plan(cell_writes=(write(2, "R-00001", "Stage", "New", "Lost"),)), COLUMNS)
    assert load_workbook(path)["Referrals"]["E2"].value == "New"
    assert not list(tmp_path.glob(".~sheets-bridge-*"))


def test_quiet_plan_touches_nothing(tmp_path: Path) -> None:
    path = staff_workbook(tmp_path / "w.xlsx")
    book = LocalWorkbook(path)
    snap = book.read()
    (tmp_path / "~$w.xlsx").write_bytes(b"")  # even while open in Excel
    original, mtime = path.read_bytes(), path.stat().st_mtime_ns
    report = book.apply(snap, Plan(), COLUMNS)
    assert not report.saved
    # A plan whose only write is already in place is quiet too.
    (tmp_path / "~$w.xlsx").unlink()
    same = TabContent("Dashboard", rows=(("x",),))
    book.apply(snap, Plan(tab_contents=(same,)), COLUMNS)
    snap2 = book.read()
    data2, mtime2 = path.read_bytes(), path.stat().st_mtime_ns
    assert not book.apply(snap2, Plan(tab_contents=(same,)), COLUMNS).saved
    assert path.read_bytes() == data2 and path.stat().st_mtime_ns == mtime2
    assert original != data2 and mtime  # the first tab write did save


def test_chart_and_unknown_parts_survive_a_sync_write(tmp_path: Path) -> None:
    path = staff_workbook(tmp_path / "c.xlsx")
    wb = load_workbook(path)
    notes = wb["Notes"]
    for i in range(1, 5):
        notes.append([f"m{i}", i])
    chart = BarChart()
    chart.add_data(Reference(notes, min_col=2, min_row=3, max_row=6))
    notes.add_chart(chart, "D2")
    wb.save(path)
    # Parts openpyxl would drop on save: a picture and a custom XML part.
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("xl/media/image1.png", b"\x89PNG\r\n\x1a\nnot really")
        z.writestr("customXml/item1.xml", "<x>staff add-in data</x>")
    with zipfile.ZipFile(path) as z:
        before = {i.filename: z.read(i) for i in z.infolist()}
        order = z.namelist()
    book = LocalWorkbook(path)
    report = book.apply(
        book.read(), Plan(cell_writes=(write(2, "R-00001", "Stage", "New", "Lost"),)), COLUMNS
    )
    assert report.saved
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None
        assert z.namelist() == order
        after = {i.filename: z.read(i) for i in z.infolist()}
    changed = {n for n in before if before[n] != after[n]}
    assert changed == {"xl/worksheets/sheet1.xml"}
    assert any(n.startswith("xl/charts/") for n in after)
    assert load_workbook(path)["Referrals"]["E2"].value == "Lost"


def test_untouched_sheet_bytes_stay_identical(tmp_path: Path) -> None:
    path = staff_workbook(tmp_path / "b.xlsx")
    with zipfile.ZipFile(path) as z:
        old = z.read("xl/worksheets/sheet1.xml")
    book = LocalWorkbook(path)
    book.apply(
        book.read(), Plan(cell_writes=(write(3, "R-00002", "Stage", "Contacted", "Seen"),)), COLUMNS
    )
    with zipfile.ZipFile(path) as z:
        new = z.read("xl/worksheets/sheet1.xml")
    start = old.index(b'<row r="3"')
    end_old = old.index(b"</row>", start) + 6
    end_new = new.index(b"</row>", start) + 6
    assert new[:start] == old[:start]
    assert new[end_new:] == old[end_old:]
    assert b"Seen" in new[start:end_new]


def test_formula_overwrite_drops_calc_chain_and_shared_masters_are_skipped(tmp_path: Path) -> None:
    rows = (
        '<row r="1"><c r="A1" t="inlineStr"><is><t>Referral ID</t></is></c>'
        '<c r="B1" t="inlineStr"><is><t>Stage</t></is></c><c r="C1" t="inlineStr"><is><t>Attention'
        "</t></is></c></row>"
        '<row r="2"><c r="A2" t="inlineStr"><is><t>R-00001</t></is></c><c r="B2"><f>1+1</f><v>2</v>'
        '</c><c r="C2"><f t="shared" ref="C2:C3" si="0">1+2</f><v>3</v></c></row>'
        '<row r="3"><c r="A3" t="inlineStr"><is><t>R-00002</t></is></c>'
        '<c r="C3"><f t="shared" si="0"/><v>3</v></c></row>'
    )
    calc = f'<?xml version="1.0" encoding="UTF-8"?><calcChain {NS}><c r="B2" i="1"/></calcChain>'
    path = raw_xlsx(
        tmp_path / "f.xlsx",
        [("Referrals", sheet_xml(rows))],
        extra={"xl/calcChain.xml": calc.encode()},
    )
    with zipfile.ZipFile(path) as z:  # wire calcChain in as Excel does
        parts = {n: z.read(n) for n in z.namelist()}
    parts["xl/_rels/workbook.xml.rels"] = parts["xl/_rels/workbook.xml.rels"].replace(
        b"</Relationships>",
        b'<Relationship Id="rIdC" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
        b'relationships/calcChain" Target="calcChain.xml"/></Relationships>',
    )
    parts["[Content_Types].xml"] = parts["[Content_Types].xml"].replace(
        b"</Types>",
        b'<Override PartName="/xl/calcChain.xml" ContentType="application/vnd.openxmlformats-'
        b'officedocument.spreadsheetml.calcChain+xml"/></Types>',
    )
    with zipfile.ZipFile(path, "w") as z:
        for n, d in parts.items():
            z.writestr(n, d)
    book = LocalWorkbook(path)
    snap = book.read()
    assert snap.referrals is not None and (2, 1) in snap.referrals.formula_cells
    cols = {"Referral ID": 0, "Stage": 1, "Attention": 2}
    master = write(2, "R-00001", "Attention", "3", "x")
    report = book.apply(
        snap, Plan(cell_writes=(write(2, "R-00001", "Stage", "2", "Seen"), master)), cols
    )
    assert len(report.applied) == 1 and report.skipped[0][0] == master
    with zipfile.ZipFile(path) as z:
        assert "xl/calcChain.xml" not in z.namelist()
        assert b"calcChain" not in z.read("xl/_rels/workbook.xml.rels")
        assert b"calcChain" not in z.read("[Content_Types].xml")
    ws = load_workbook(path)["Referrals"]
    assert ws["B2"].value == "Seen" and ws["C2"].value == "=1+2"


# ------------------------------------------------------------------------------------ refusals
def test_corrupt_and_foreign_files_are_refused(tmp_path: Path) -> None:
    missing = LocalWorkbook(tmp_path / "missing.xlsx")
    with pytest.raises(WorkbookUnreadableError, match="sheets-bridge init --config PATH"):
        missing.read()
    good = staff_workbook(tmp_path / "good.xlsx").read_bytes()
    cases = {
        "text.xlsx": b"Received,Name\n2025-03-04,Ana\n",
        "trunc.xlsx": good[: len(good) // 2],
        "old.xlsx": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600,
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("word/document.xml", "<w/>")
    cases["docx.xlsx"] = buf.getvalue()
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        book = LocalWorkbook(path)
        with pytest.raises(WorkbookUnreadableError) as info:
            book.read()
        assert str(path) in str(info.value)
        fake = model.Snapshot(tab_titles=(), referrals=None, version="x")
        with pytest.raises((WorkbookUnreadableError, SnapshotStaleError)):
            book.apply(fake, Plan(tab_contents=(TabContent("Dashboard", (("x",),)),)), {})
        assert path.read_bytes() == data
    with pytest.raises(WorkbookUnreadableError, match=r"\.xls"):
        LocalWorkbook(tmp_path / "old.xlsx").read()


def test_leftover_temp_files_are_cleaned(tmp_path: Path) -> None:
    path = staff_workbook(tmp_path / "w.xlsx")
    leftover = tmp_path / ".~sheets-bridge-abc123.tmp"
    leftover.write_bytes(b"half a zip")
    other = tmp_path / "keep.tmp"
    other.write_bytes(b"")
    removed = LocalWorkbook(path).clean_leftovers()
    assert removed == [leftover] and not leftover.exists() and other.exists()


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_file_mode_is_kept(tmp_path: Path) -> None:
    path = staff_workbook(tmp_path / "w.xlsx")
    path.chmod(0o640)
    book = LocalWorkbook(path)
    book.apply(
        book.read(), Plan(cell_writes=(write(2, "R-00001", "Stage", "New", "Lost"),)), COLUMNS
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


# ------------------------------------------------------------------------------------ lossy content
def test_lossy_content_names_staff_charts_and_ignores_bridge_tabs(tmp_path: Path) -> None:
    path = staff_workbook(tmp_path / "l.xlsx")
    assert lossy_content(path) == []
    wb = load_workbook(path)
    for title in ("Notes", "Dashboard"):
        ws = wb[title] if title in wb.sheetnames else wb.create_sheet(title)
        ws.append([1, 2])
        chart = BarChart()
        chart.add_data(Reference(ws, min_col=1, min_row=1, max_col=2))
        ws.add_chart(chart, "D2")
    wb.save(path)
    found = lossy_content(path)
    assert any("chart" in f and "Notes" in f for f in found)
    assert not any("Dashboard" in f for f in found)


# ------------------------------------------------------------------------------------ LibreOffice
def test_written_workbook_opens_in_libreoffice(tmp_path: Path) -> None:
    exe = need_soffice()
    path = staff_workbook(tmp_path / "lo.xlsx")
    book = LocalWorkbook(path)
    plan = Plan(
        header_writes=(HeaderWrite(6, "Emails"),),
        cell_writes=(write(2, "R-00001", "Stage", "New", "Lost"),),
        tab_contents=(TabContent("Dashboard", (("Title",), ("a", 1))),),
    )
    book.apply(book.read(), plan, {**COLUMNS, "Emails": 6})
    out = tmp_path / "out"
    subprocess.run(
        [exe, "--headless", "--convert-to", "csv", "--outdir", str(out), str(path)],
        check=True,
        timeout=120,
        capture_output=True,
    )
    text = (out / "lo.csv").read_text()
    assert "Lost" in text and "Emails" in text
