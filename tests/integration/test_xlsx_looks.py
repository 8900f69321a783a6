"""What a sync writes into a staff workbook looks right in a spreadsheet: the bridge columns it
adds get widths (Attention wide and wrapped, tags and date-times whole), its moments are real
date-times, rows grow for a wrapped Attention, and the Dashboard's numbers are typed cells."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from openpyxl import load_workbook

from sheets_bridge.config import load_config
from sheets_bridge.demo import demo_rows, write_demo_workbook
from sheets_bridge.demo_run import EXAMPLE, demo_config_text
from sheets_bridge.runner import run_sync

NOW = "2026-11-27T10:00:00-05:00"


def synced(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(demo_config_text(EXAMPLE.read_text(encoding="utf-8")), encoding="utf-8")
    config = load_config(path)
    now = datetime.fromisoformat(NOW).astimezone(config.tz)
    workbook = tmp_path / "referrals.xlsx"
    write_demo_workbook(workbook, demo_rows(now, count=60))
    run_sync(config, now=now)
    return workbook


def test_bridge_columns_added_by_a_sync_are_readable(tmp_path: Path) -> None:
    ws = load_workbook(synced(tmp_path))["Referrals"]
    cols = {c.value: c.column_letter for c in ws[1] if c.value}
    width = {name: ws.column_dimensions[cols[name]].width for name in cols}
    assert width["Attention"] >= 45 and width["Emails"] >= 40
    assert width["Source Tag"] >= len("Provider Referral")
    assert width["Follow-up Due"] >= len("2026-11-27 10:00") + 1
    attention = [c for c in ws[cols["Attention"]][1:] if c.value]
    assert attention and all(c.alignment.wrap_text for c in attention)
    tall = [c for c in attention if "\n" in c.value or len(c.value) > 45]
    assert tall and all((ws.row_dimensions[c.row].height or 15) >= 30 for c in tall)
    for name in ("Follow-up Due", "Bridge Updated"):
        cells = [c for c in ws[cols[name]][1:] if c.value is not None]
        assert cells and all(c.is_date and isinstance(c.value, datetime) for c in cells), name
        assert cells[0].number_format == "yyyy-mm-dd hh:mm"


def test_a_second_sync_is_quiet_with_date_cells(tmp_path: Path) -> None:
    workbook = synced(tmp_path)
    before = workbook.read_bytes()
    config = load_config(tmp_path / "config.yaml")
    report = run_sync(config, now=datetime.fromisoformat("2026-11-27T10:02:00-05:00"))
    assert report.outcome == "quiet", report.outcome
    assert workbook.read_bytes() == before


def test_dashboard_numbers_are_typed_cells(tmp_path: Path) -> None:
    ws = load_workbook(synced(tmp_path))["Dashboard"]
    formats = {c.number_format for row in ws.iter_rows() for c in row if isinstance(c.value, float)}
    assert "0%" in formats and "0.0" in formats
    of = [c for row in ws.iter_rows() for c in row if c.number_format == '"of "0']
    assert of and all(isinstance(c.value, int) for c in of)
    header = next(c for row in ws.iter_rows() for c in row if c.value == "This week")
    assert header.alignment.horizontal == "right" and header.font.b
    assert ws.page_setup.orientation == "landscape" and ws.page_setup.fitToWidth == 1
