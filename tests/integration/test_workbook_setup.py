"""``sheets-bridge init`` for the local backend, on real .xlsx files.

What matters to the practice: a new workbook is laid out so staff can start typing, and repair
only ever adds (never changes a staff value, never rewrites a workbook that needs nothing, never
silently drops a chart by re-saving through openpyxl).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from openpyxl.chart import BarChart, Reference
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet

from sheets_bridge import model
from sheets_bridge.errors import BridgeError, LossySaveError, WorkbookBusyError
from sheets_bridge.sheets.xlsx_setup import (
    WorkbookExistsError,
    WorkbookMissingError,
    create_workbook,
    default_header_matches,
    lossy_content,
    repair_workbook,
)

ALL_HEADERS = (*model.STAFF_COLUMNS, *model.BRIDGE_COLUMNS)
LISTS = {
    "How Heard": model.CHANNELS,
    "Fit": model.FIT_VALUES,
    "Visit": model.VISIT_VALUES,
    "Outcome": model.OUTCOME_VALUES,
    "Consent to Update Referrer": model.CONSENT_VALUES,
}


def headers(ws: Worksheet) -> list[Any]:
    return [cell.value for cell in ws[1]]


def validations_by_column(ws: Worksheet) -> dict[int, DataValidation]:
    found: dict[int, DataValidation] = {}
    for dv in ws.data_validations.dataValidation:
        for rng in dv.sqref.ranges:
            for col in range(rng.min_col, rng.max_col + 1):
                found[col] = dv
    return found


def column_of(ws: Worksheet, name: str) -> int:
    return headers(ws).index(name) + 1


def all_cells(path: Path) -> dict[tuple[str, str], tuple[Any, str]]:
    """Every non-empty cell of every tab: (tab, coordinate) -> (value, data type)."""
    wb = openpyxl.load_workbook(path)
    out = {}
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                if cell.value is not None:
                    out[(ws.title, cell.coordinate)] = (cell.value, cell.data_type)
    return out


def staff_workbook(path: Path) -> None:
    """A workbook as a practice keeps it before the bridge: some columns, odd headers, data."""
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Referrals"
    ws.append(["received", "Patient first name", "How heard:", "Referred-By", "Visit", "Notes"])
    ws.append([datetime(2025, 3, 4, 9, 30), "O'Brien", "dr referral", "Dr. Priya Raman", "NS", ""])
    ws.append(["3/4/25", "张伟", "Google", None, "Attended", "called twice"])
    ws.append([45720, "María-José", None, None, None, None])
    ws.append([None, None, None, None, None, None])
    ws.append(["tbd", "=HYPERLINK(1)", "Yelp", "", "No show", 2125550100.0])
    ws["B6"].data_type = "s"
    ws["H3"] = "stray note in an unlabelled column"
    wb.create_sheet("My Notes")["A1"] = "keep me"
    wb.save(path)


# ------------------------------------------------------------------------------------ create


def test_create_lays_out_referrals_tab(tmp_path: Path) -> None:
    path = tmp_path / "referrals.xlsx"
    lines = create_workbook(path)

    assert lines and all(isinstance(line, str) and line for line in lines)
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == [
        model.REFERRALS_TAB,
        *model.BRIDGE_TABS,
        model.GIFTS_TAB,
    ]
    ws = wb[model.REFERRALS_TAB]
    assert headers(ws) == list(ALL_HEADERS)
    assert ws.freeze_panes == "A2"
    assert ws.max_row == 1
    assert all(cell.font.b for cell in ws[1])
    staff_fill = ws.cell(1, 1).fill.fgColor.rgb
    bridge_fill = ws.cell(1, column_of(ws, "Referral ID")).fill.fgColor.rgb
    assert staff_fill != bridge_fill
    assert str(bridge_fill).endswith("D9D9D9")
    for name in ("Received", "First Contact", "Appointment"):
        letter = openpyxl.utils.get_column_letter(column_of(ws, name))
        assert ws.column_dimensions[letter].number_format == "yyyy-mm-dd hh:mm"
    for name in ("Attention", "Emails", "Notes"):
        letter = openpyxl.utils.get_column_letter(column_of(ws, name))
        assert ws.column_dimensions[letter].alignment.wrap_text
        assert (ws.column_dimensions[letter].width or 0) >= 25


def test_create_adds_dropdowns_that_do_not_block_staff(tmp_path: Path) -> None:
    path = tmp_path / "referrals.xlsx"
    create_workbook(path)
    ws = openpyxl.load_workbook(path)[model.REFERRALS_TAB]
    by_col = validations_by_column(ws)

    for name, values in LISTS.items():
        col = column_of(ws, name)
        dv = by_col[col]
        assert dv.type == "list"
        assert dv.formula1 == '"' + ",".join(values) + '"'
        letter = openpyxl.utils.get_column_letter(col)
        (rng,) = dv.sqref.ranges
        assert rng.min_col == rng.max_col == col, f"{name} dropdown is on {letter} only"
        assert rng.min_row == 2 and rng.max_row >= 5000
        # Never an error that refuses the entry: free text stays possible everywhere.
        assert not dv.showErrorMessage or dv.errorStyle in ("warning", "information")
    assert not by_col[column_of(ws, "How Heard")].showErrorMessage
    # Nothing else carries a dropdown.
    assert set(by_col) == {column_of(ws, name) for name in LISTS}


def test_create_adds_bridge_and_gifts_tabs(tmp_path: Path) -> None:
    path = tmp_path / "referrals.xlsx"
    create_workbook(path)
    wb = openpyxl.load_workbook(path)
    for title in model.BRIDGE_TABS:
        note = wb[title]["A1"].value
        assert isinstance(note, str) and "bridge" in note.lower()
    gifts = wb[model.GIFTS_TAB]
    assert headers(gifts) == ["Date", "Recipient", "Recipient Type", "Item", "Retail Value"]
    (dv,) = gifts.data_validations.dataValidation
    assert dv.formula1 == '"Patient,Provider"'
    (rng,) = dv.sqref.ranges
    assert rng.min_col == rng.max_col == 3


def test_create_uses_custom_tab_name(tmp_path: Path) -> None:
    path = tmp_path / "r.xlsx"
    create_workbook(path, tab="Leads 2025")
    assert openpyxl.load_workbook(path).sheetnames[0] == "Leads 2025"


def test_create_refuses_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "referrals.xlsx"
    path.write_bytes(b"precious")
    with pytest.raises(WorkbookExistsError) as info:
        create_workbook(path)
    assert isinstance(info.value, BridgeError)
    assert "repair" in str(info.value)
    assert path.read_bytes() == b"precious"


def test_create_leaves_no_temporary_files(tmp_path: Path) -> None:
    create_workbook(tmp_path / "referrals.xlsx")
    assert [p.name for p in tmp_path.iterdir()] == ["referrals.xlsx"]


def test_created_workbook_needs_no_repair(tmp_path: Path) -> None:
    path = tmp_path / "referrals.xlsx"
    create_workbook(path)
    before = path.read_bytes()
    assert repair_workbook(path) == ["Nothing to repair"]
    assert path.read_bytes() == before


# ------------------------------------------------------------------------------------ repair


def test_repair_adds_missing_without_touching_staff_data(tmp_path: Path) -> None:
    path = tmp_path / "referrals.xlsx"
    staff_workbook(path)
    before = all_cells(path)

    lines = repair_workbook(path)

    after = all_cells(path)
    for key, value in before.items():
        assert after[key] == value, f"{key} changed"
    wb = openpyxl.load_workbook(path)
    ws = wb["Referrals"]
    assert ws["B6"].value == "=HYPERLINK(1)" and ws["B6"].data_type == "s"
    found = headers(ws)
    # The six original headers stay where they were, unrenamed.
    assert found[:6] == [
        "received",
        "Patient first name",
        "How heard:",
        "Referred-By",
        "Visit",
        "Notes",
    ]
    # Column H holds staff data without a header: new headers start to its right.
    assert found[6] is None and found[7] is None
    added = found[8:]
    expected = [
        name
        for name in ALL_HEADERS
        if name
        not in ("Received", "Patient First Name", "How Heard", "Referred By", "Visit", "Notes")
    ]
    assert added == expected
    assert "Added the Stage column (bridge)" in lines
    assert "Added the Patient Phone column (staff)" in lines
    assert "Added a dropdown to How Heard" in lines
    assert "Added a dropdown to Visit" in lines
    assert "Froze the header row" in lines
    for title in model.BRIDGE_TABS:
        assert f"Added the {title} tab" in lines
        assert title in wb.sheetnames
    assert wb["My Notes"]["A1"].value == "keep me"

    by_col = validations_by_column(ws)
    for name, values in LISTS.items():
        col = found.index(name) + 1 if name in found else None
        if col is None:  # the original, differently spelled headers
            col = next(i + 1 for i, h in enumerate(found) if h and default_header_matches(h, name))
        assert by_col[col].formula1 == '"' + ",".join(values) + '"', name
    assert ws.freeze_panes == "A2"


def test_repair_is_idempotent_and_does_not_rewrite(tmp_path: Path) -> None:
    path = tmp_path / "referrals.xlsx"
    staff_workbook(path)
    repair_workbook(path)
    before = path.read_bytes()
    mtime = path.stat().st_mtime_ns

    assert repair_workbook(path) == ["Nothing to repair"]

    assert path.read_bytes() == before
    assert path.stat().st_mtime_ns == mtime


def test_repair_respects_aliases_and_existing_validations(tmp_path: Path) -> None:
    path = tmp_path / "referrals.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Referrals"
    ws.append(["Referring Doctor", "Visit"])
    ws.append(["Dr. Lee", "Came in"])
    own = DataValidation(type="list", formula1='"Came in,Missed"')
    own.add("B2:B200")
    ws.add_data_validation(own)
    ws.freeze_panes = "A3"
    wb.save(path)

    def matches(existing: str, canonical: str) -> bool:
        if canonical == "Referred By" and existing == "Referring Doctor":
            return True
        return default_header_matches(existing, canonical)

    lines = repair_workbook(path, header_matches=matches)

    ws = openpyxl.load_workbook(path)["Referrals"]
    assert "Referred By" not in headers(ws)
    assert "Added a dropdown to Visit" not in lines
    visit_dvs = [dv for dv in ws.data_validations.dataValidation if "B2" in str(dv.sqref)]
    assert [dv.formula1 for dv in visit_dvs] == ['"Came in,Missed"']
    assert ws.freeze_panes == "A3"  # the practice's own choice stays
    assert "Froze the header row" not in lines


def test_repair_creates_missing_referrals_tab_first(tmp_path: Path) -> None:
    path = tmp_path / "referrals.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Leads"
    ws["A1"] = "Name"
    ws["A2"] = "Sam"
    wb.save(path)

    lines = repair_workbook(path)

    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames[0] == "Referrals"
    assert headers(wb["Referrals"]) == list(ALL_HEADERS)
    assert wb["Leads"]["A2"].value == "Sam"
    assert any("sheet.tab" in line for line in lines)


def test_repair_refuses_chart_unless_allowed(tmp_path: Path) -> None:
    path = tmp_path / "referrals.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Referrals"
    ws.append(["Received", "Count"])
    for day in range(1, 5):
        ws.append([datetime(2025, 3, day), day])
    chart = BarChart()
    chart.add_data(Reference(ws, min_col=2, min_row=1, max_row=5), titles_from_data=True)
    ws.add_chart(chart, "D2")
    wb.save(path)
    before = path.read_bytes()

    with pytest.raises(LossySaveError) as info:
        repair_workbook(path)
    message = str(info.value)
    assert "chart" in message and "sheet.allow_lossy_save: true" in message
    assert path.read_bytes() == before

    lines = repair_workbook(path, allow_lossy_save=True)
    assert "Added the Stage column (bridge)" in lines
    assert headers(openpyxl.load_workbook(path)["Referrals"])[:2] == ["Received", "Count"]


def test_lossy_content_names_extensions_by_tab(tmp_path: Path) -> None:
    path = tmp_path / "ext.xlsx"
    create_workbook(path)
    assert lossy_content(path) == []
    # Rewrite the zip with an <extLst> in the Referrals sheet, as newer Excel features do.
    import zipfile

    patched = tmp_path / "patched.xlsx"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(patched, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = data.replace(
                    b"</worksheet>",
                    b'<extLst><ext uri="{05C60535-1F16-4FD2-B633-F4F36F0B64E0}"/></extLst>'
                    b"</worksheet>",
                )
            dst.writestr(item, data)
    found = lossy_content(patched)
    assert len(found) == 1 and "'Referrals'" in found[0]


def test_repair_refuses_workbook_open_in_excel(tmp_path: Path) -> None:
    path = tmp_path / "referrals.xlsx"
    staff_workbook(path)
    (tmp_path / "~$referrals.xlsx").write_bytes(b"")
    before = path.read_bytes()
    with pytest.raises(WorkbookBusyError, match="close it"):
        repair_workbook(path)
    assert path.read_bytes() == before


def test_repair_missing_file_says_create(tmp_path: Path) -> None:
    with pytest.raises(WorkbookMissingError, match="init"):
        repair_workbook(tmp_path / "nope.xlsx")


def test_repair_keeps_file_permissions(tmp_path: Path) -> None:
    path = tmp_path / "referrals.xlsx"
    staff_workbook(path)
    path.chmod(0o640)
    repair_workbook(path)
    assert path.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["referrals.xlsx"]
