"""Real .xlsx files with the mistakes staff and other programs make, synced end to end."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
from openpyxl.chart import BarChart, Reference

from sheets_bridge.cli import main
from sheets_bridge.model import STAFF_COLUMNS

ROOT = Path(__file__).resolve().parents[2]
NOW = "2026-11-27T10:00"
NY = ZoneInfo("America/New_York")


def practice(tmp_path: Path, rows: list[list[object]], *, headers: list[str] | None = None) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Referrals"
    ws.append(headers or list(STAFF_COLUMNS))
    for row in rows:
        ws.append(row)
    wb.save(tmp_path / "referrals.xlsx")
    shutil.copyfile(ROOT / "config.example.yaml", tmp_path / "config.yaml")
    return tmp_path / "config.yaml"


def column(path: Path, name: str) -> list[object]:
    ws = openpyxl.load_workbook(path)["Referrals"]
    headers = [c.value for c in ws[1]]
    index = headers.index(name)
    return [row[index] for row in ws.iter_rows(min_row=2, values_only=True)]


def test_a_formula_never_calculated_is_named_as_such_not_as_empty(tmp_path: Path) -> None:
    # openpyxl (like many exporters) writes formulas without a saved result.
    config = practice(tmp_path, [["=TODAY()-1", "Ann", "Lee", None, None, "Provider", "Dr X"]])
    assert main(["sync", "--config", str(config), "--now", NOW]) == 0
    (attention,) = column(tmp_path / "referrals.xlsx", "Attention")
    assert "Received is a formula the workbook has not calculated yet" in str(attention)
    assert "Received is empty" not in str(attention)
    # The staff formula is still a formula.
    ws = openpyxl.load_workbook(tmp_path / "referrals.xlsx")["Referrals"]
    assert ws["A2"].value == "=TODAY()-1"


def test_headers_moved_down_a_row_stop_every_write(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Referrals"
    ws.append(["Referrals 2026 (do not edit this line)"])
    ws.append(list(STAFF_COLUMNS))
    ws.append(["2026-11-20", "Ann", "Lee"])
    wb.save(tmp_path / "referrals.xlsx")
    shutil.copyfile(ROOT / "config.example.yaml", tmp_path / "config.yaml")
    before = (tmp_path / "referrals.xlsx").read_bytes()
    code = main(["sync", "--config", str(tmp_path / "config.yaml"), "--now", NOW])
    assert code == 3
    ws = openpyxl.load_workbook(tmp_path / "referrals.xlsx")["Referrals"]
    assert [c.value for c in ws[2]][:3] == ["Received", "Patient First Name", "Patient Last Name"]
    assert ws.max_column == len(STAFF_COLUMNS)  # no bridge column was added to the data
    assert before != (tmp_path / "referrals.xlsx").read_bytes()  # only the Bridge Log tab
    log = openpyxl.load_workbook(tmp_path / "referrals.xlsx")["Bridge Log"]
    assert "row 2" in str(log["C2"].value)


def test_a_staff_chart_and_renamed_headers_survive_a_sync(tmp_path: Path) -> None:
    headers = ["date received", "FIRST NAME", "Last Name", "Referring Doctor", "how-heard:"]
    config = practice(
        tmp_path,
        [
            [datetime(2026, 11, 25, 9, 30), "Ann", "O'Brien", "Dr Rivera", "dr referral"],
            [datetime(2026, 11, 26, 14, 0), "=Santos", "Nguyễn", "", "saw on facebook"],
        ],
        headers=headers,
    )
    path = tmp_path / "referrals.xlsx"
    wb = openpyxl.load_workbook(path)
    chart_tab = wb.create_sheet("Staff charts")
    for i in range(1, 5):
        chart_tab.append([i, i * i])
    chart = BarChart()
    chart.add_data(Reference(chart_tab, min_col=2, min_row=1, max_row=4))
    chart_tab.add_chart(chart, "D2")
    ws = wb["Referrals"]
    ws["B3"].data_type = "s"  # a name typed with a leading "=" kept as text
    wb.save(path)
    assert main(["sync", "--config", str(config), "--now", NOW]) == 0
    assert column(path, "Source Tag") == ["Provider Referral", "Self-Referral"]
    assert column(path, "Referral ID") == ["R-00001", "R-00002"]
    reopened = openpyxl.load_workbook(path)
    assert len(reopened["Staff charts"]._charts) == 1
    assert reopened["Referrals"]["B3"].value == "=Santos"
    assert reopened["Referrals"]["B3"].data_type == "s"
    assert [c.value for c in reopened["Referrals"][1]][:5] == headers


def test_merged_referral_id_cells_get_a_plain_line_and_burn_no_ids(tmp_path: Path) -> None:
    headers = [*STAFF_COLUMNS, "Referral ID", "Attention"]
    blank = [None] * (len(STAFF_COLUMNS) - 3)
    rows = [
        ["2026-11-20 09:00", name, "Lee", *blank, None, None]
        for name in ("Ann", "Bo", "Cy", "Di")
    ]
    config = practice(tmp_path, rows, headers=headers)
    path = tmp_path / "referrals.xlsx"
    wb = openpyxl.load_workbook(path)
    wb["Referrals"].merge_cells(start_row=3, start_column=18, end_row=4, end_column=18)
    wb.save(path)
    for _ in range(2):
        assert main(["sync", "--config", str(config), "--now", NOW]) == 0
    assert column(path, "Referral ID") == ["R-00001", None, None, "R-00002"]
    attention = column(path, "Attention")
    for line in attention[1:3]:
        assert "Referral ID is in merged cells: unmerge them" in str(line)
    assert "Referral ID" not in str(attention[0]) and "Referral ID" not in str(attention[3])
