"""``sheets-bridge`` on a real workbook made by ``init``'s builder, real SQLite, fixed ``--now``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openpyxl
import pytest
import yaml
from conftest import CANARY_PATIENTS, CANARY_STRINGS

from sheets_bridge.cli import main
from sheets_bridge.model import BRIDGE_LOG_TAB, FOLLOWUPS_TAB, SOURCES_TAB, STAFF_COLUMNS
from sheets_bridge.sheets.xlsx_setup import create_workbook

NOW = "2025-03-04T10:00:00"
CONFIG: dict[str, Any] = {
    "practice": {"name": "Harbor Physio", "owner_email": "owner@example.com"},
    "sheet": {"kind": "local", "path": "referrals.xlsx"},
    "mail": {"kind": "eml", "path": "drafts"},
    "state_dir": "state",
}


def write_config(folder: Path, data: dict[str, Any] | None = None) -> Path:
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(data if data is not None else CONFIG), encoding="utf-8")
    return path


def canary_rows() -> list[dict[str, Any]]:
    rows = []
    for p in CANARY_PATIENTS:
        rows.append(
            {
                **p,
                "Received": "2025-03-03 09:00",
                "How Heard": "Provider",
                "Referred By": "Dr Rivera",
                "Referrer Email": "dr.rivera@example.com",
            }
        )
    rows.append({"Received": "asap", "Patient First Name": '=HYPERLINK("x")', "How Heard": "?"})
    return rows


def make_workbook(folder: Path, rows: list[dict[str, Any]]) -> Path:
    path = folder / "referrals.xlsx"
    create_workbook(path)
    wb = openpyxl.load_workbook(path)
    ws = wb["Referrals"]
    headers = [c.value for c in ws[1]]
    for number, row in enumerate(rows, start=2):
        for key, value in row.items():
            target = ws.cell(row=number, column=headers.index(key) + 1)
            target.value = value
            if isinstance(value, str):
                target.data_type = "s"  # a name typed as =... is text, as a person typed it
    wb.save(path)
    return path


def sheet_records(path: Path) -> list[dict[str, Any]]:
    wb = openpyxl.load_workbook(path)
    ws = wb["Referrals"]
    headers = [c.value for c in ws[1]]
    return [
        dict(zip(headers, (c.value for c in row), strict=False))
        for row in ws.iter_rows(min_row=2)
        if any(c.value is not None for c in row)
    ]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def assert_no_canary(text: str) -> None:
    for canary in CANARY_STRINGS:
        assert canary not in text, canary


def test_sync_writes_the_workbook_and_prints_counts_without_patient_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    workbook = make_workbook(tmp_path, canary_rows())
    code, out, err = run(["sync", "--config", str(config), "--now", NOW], capsys)
    assert code == 0, err
    assert "Rows read: 3 (3 referrals)" in out
    assert "Referral IDs assigned: 3" in out
    assert "Cells written:" in out
    assert_no_canary(out + err)

    rows = sheet_records(workbook)
    assert [r["Referral ID"] for r in rows] == ["R-00001", "R-00002", "R-00003"]
    assert [r["Stage"] for r in rows] == ["OVERDUE", "OVERDUE", None]
    # Staff values stay exactly as typed; the formula-looking name is still text.
    assert rows[0]["Patient First Name"] == "Zebediah"
    assert rows[2]["Patient First Name"] == '=HYPERLINK("x")'
    wb = openpyxl.load_workbook(workbook)
    assert {FOLLOWUPS_TAB, SOURCES_TAB, BRIDGE_LOG_TAB} <= set(wb.sheetnames)
    queue = wb[FOLLOWUPS_TAB]
    names = [c.value for c in queue["B"]]
    assert "Zebediah Quuxworthington" in names
    formula_like = [c for c in queue["B"] if c.value and str(c.value).startswith("=")]
    assert formula_like and all(c.data_type == "s" for c in formula_like)
    log_text = " ".join(str(c.value) for row in wb[BRIDGE_LOG_TAB].iter_rows() for c in row)
    assert_no_canary(log_text)


def test_a_second_sync_with_nothing_new_leaves_the_file_bytes_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    workbook = make_workbook(tmp_path, canary_rows())
    assert run(["sync", "--config", str(config), "--now", NOW], capsys)[0] == 0
    before = workbook.read_bytes()
    code, out, _ = run(["sync", "--config", str(config), "--now", "2025-03-04T10:05:00"], capsys)
    assert code == 0
    assert "Nothing to change" in out
    assert workbook.read_bytes() == before


def test_dry_run_leaves_the_file_bytes_unchanged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    workbook = make_workbook(tmp_path, canary_rows())
    before = workbook.read_bytes()
    code, out, err = run(["sync", "--config", str(config), "--now", NOW, "--dry-run"], capsys)
    assert code == 0, err
    assert "Cells to write:" in out
    assert workbook.read_bytes() == before
    assert_no_canary(out + err)


def test_check_names_a_missing_column_and_a_duplicate_header_with_fixes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    workbook = make_workbook(tmp_path, [])
    wb = openpyxl.load_workbook(workbook)
    ws = wb["Referrals"]
    headers = [c.value for c in ws[1]]
    ws.cell(row=1, column=headers.index("Referred By") + 1).value = "Favourite Colour"
    ws.cell(row=1, column=headers.index("Notes") + 1).value = "stage"
    wb.save(workbook)
    code, out, _ = run(["check", "--config", str(config)], capsys)
    assert code == 1
    assert "Column Referred By is missing: add a column headed Referred By" in out
    assert "Stage appears more than once (columns " in out
    assert "keep one" in out
    assert "Fix the items marked XX" in out


def test_check_passes_on_a_fresh_workbook(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    make_workbook(tmp_path, [])
    code, out, _ = run(["check", "--config", str(config)], capsys)
    assert code == 0
    assert "All good." in out


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"practice": {**CONFIG["practice"], "colour": "red"}}, "practice.colour"),
        ({"practice": {**CONFIG["practice"], "timezone": "Mars/Base"}}, "practice.timezone"),
        ({"practice": {"name": "Harbor Physio"}}, "practice.owner_email"),
        ({"sync": {"contact_window_hours": 72}}, "sync.contact_window_hours"),
        ({"sheet": {"kind": "carrier-pigeon", "path": "x"}}, "sheet"),
    ],
)
@pytest.mark.parametrize("command", ["sync", "check"])
def test_a_broken_config_exits_2_and_names_the_key(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    change: dict[str, Any],
    named: str,
    command: str,
) -> None:
    config = write_config(tmp_path, {**CONFIG, **change})
    code, out, err = run([command, "--config", str(config)], capsys)
    assert code == 2
    assert named in err
    assert "Traceback" not in out + err


def test_a_missing_config_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["sync", "--config", str(tmp_path / "nope.yaml")], capsys)
    assert code == 2
    assert "No config file" in err


def test_a_missing_workbook_exits_1_and_points_to_init(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    code, _, err = run(["sync", "--config", str(config), "--now", NOW], capsys)
    assert code == 1
    assert "init" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "referrals.xlsx").exists()


def test_init_creates_then_repairs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    workbook = tmp_path / "referrals.xlsx"
    code, out, _ = run(["init", "--config", str(config)], capsys)
    assert code == 0
    assert out.startswith(f"Created {workbook}")
    wb = openpyxl.load_workbook(workbook)
    assert [c.value for c in wb["Referrals"][1]][: len(STAFF_COLUMNS)] == list(STAFF_COLUMNS)
    # Someone deletes the Sources tab and a column header; init puts them back, adding only.
    del wb[SOURCES_TAB]
    ws = wb["Referrals"]
    ws.cell(row=2, column=2).value = "Ann"
    ws.cell(row=1, column=ws.max_column).value = None  # Bridge Updated
    wb.save(workbook)
    code, out, _ = run(["init", "--config", str(config)], capsys)
    assert code == 0
    assert out.startswith(f"Checked {workbook}")
    wb = openpyxl.load_workbook(workbook)
    assert SOURCES_TAB in wb.sheetnames
    headers = [c.value for c in wb["Referrals"][1]]
    assert "Bridge Updated" in headers
    assert wb["Referrals"].cell(row=2, column=2).value == "Ann"
    # A third run has nothing to repair and leaves the file alone.
    before = workbook.read_bytes()
    assert run(["init", "--config", str(config)], capsys)[0] == 0
    assert workbook.read_bytes() == before


def test_sync_then_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    make_workbook(tmp_path, canary_rows())
    assert run(["sync", "--config", str(config), "--now", NOW], capsys)[0] == 0
    code, out, err = run(["status", "--config", str(config)], capsys)
    assert code == 0
    assert "Assigned 3 Referral IDs" in out
    assert_no_canary(out + err)
