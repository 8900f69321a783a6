"""A cycle end to end on a MemorySheet and a real SQLite state: the tabs people read, and logs."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import pytest
from conftest import (
    CANARY_PATIENTS,
    CANARY_STRINGS,
    FIXED_NOW,
    NY,
    ConfigFactory,
    make_sheet,
    patient,
    record_of,
    run_one,
)

from sheets_bridge.config import BridgeConfig
from sheets_bridge.dates import serial_text
from sheets_bridge.model import BRIDGE_LOG_TAB, FOLLOWUPS_TAB, SOURCES_TAB, CellValue, DateSerial
from sheets_bridge.runner import run_sync
from sheets_bridge.worktabs import FOLLOWUPS_HEADERS, LOG_HEADERS, SOURCES_HEADERS


def _queue_rows() -> list[dict[str, CellValue]]:
    return [
        patient("Seen", Received="2025-03-01 09:00", Visit="Attended"),  # not in the queue
        patient("Fresh", Received="2025-03-04 09:30"),  # New: not in the queue
        patient("Late2", Received="2025-03-03 09:30"),  # due Tue 09:30: OVERDUE
        patient("Soon", Received="2025-03-03 14:00"),  # due Tue 14:00: Contact due
        patient("Late1", Received="2025-02-28 09:00"),  # due Mon 08:00: OVERDUE, older
        patient("Needs", Received="2025-03-01 09:00", First_Contact="2025-03-02", Fit="kinda"),
        patient(
            "Missed", Received="2025-02-20 09:00", First_Contact="2025-02-20 11:00",
            Appointment="2025-02-27 10:00", Visit="No-show", Patient_Phone="646 555 0147",
        ),
        patient(
            "Called", Received="2025-02-20 09:00", First_Contact="2025-02-20 11:00",
            Appointment="2025-03-06 10:00", Visit="Cancelled",
        ),
        patient(
            "Rebooked", Received="2025-02-20 09:00", First_Contact="2025-02-20 11:00",
            Appointment="2025-03-10 10:00", Visit="Scheduled",
        ),
    ]


def test_a_cycle_writes_the_work_tabs(config: BridgeConfig) -> None:
    sheet = make_sheet(_queue_rows())
    report = run_one(config, sheet, FIXED_NOW)
    assert report.outcome == "ok"
    assert set(report.tabs_written) >= {FOLLOWUPS_TAB, SOURCES_TAB, BRIDGE_LOG_TAB}

    queue = sheet.tabs[FOLLOWUPS_TAB]
    assert tuple(queue[0]) == FOLLOWUPS_HEADERS
    col = {h: i for i, h in enumerate(FOLLOWUPS_HEADERS)}
    assert [row[1] for row in queue[1:]] == [
        "Late1 Example",
        "Late2 Example",
        "Soon Example",
        "Missed Example",
        "Called Example",
        "Needs Example",
    ]
    assert [row[col["Stage"]] for row in queue[1:]] == [
        "OVERDUE", "OVERDUE", "Contact due", "No-show", "Contacted", "Contacted",
    ]
    assert [row[col["To do"]] for row in queue[1:]] == [
        "contact (overdue)", "contact (overdue)", "contact", "rebook", "rebook", "check the row",
    ]
    assert queue[1][0] == record_of(sheet, "Late1")["Referral ID"]
    assert "Fit is not one of" in str(queue[6][col["Attention"]])
    # The front desk dials the national form; the due time is a date cell (a serial).
    assert queue[4][col["Phone"]] == "(646) 555-0147"
    assert isinstance(queue[1][col["Follow-up Due"]], DateSerial)
    assert serial_text(queue[1][col["Follow-up Due"]]) == "2025-03-03 08:00"

    sources = sheet.tabs[SOURCES_TAB]
    assert tuple(sources[0]) == SOURCES_HEADERS
    assert sources[1] == ["Provider", 9, "Provider", "Provider Referral", ""]

    log = sheet.tabs[BRIDGE_LOG_TAB]
    assert tuple(log[0]) == LOG_HEADERS
    assert serial_text(log[1][0]) == "2025-03-04 10:00"
    assert "assigned 9 Referral IDs" in str(log[1][1])


def test_a_quiet_cycle_touches_nothing(config: BridgeConfig) -> None:
    sheet = make_sheet(_queue_rows())
    run_one(config, sheet, FIXED_NOW)
    applies, version = sheet.applies, sheet.version
    tabs = {k: [list(r) for r in v] for k, v in sheet.tabs.items()}
    report = run_one(config, sheet, FIXED_NOW + timedelta(minutes=2))
    assert report.outcome == "quiet"
    assert (sheet.applies, sheet.version) == (applies, version)
    assert sheet.tabs == tabs


def test_time_passing_moves_stages_and_the_queue(config: BridgeConfig) -> None:
    sheet = make_sheet([patient("Fresh", Received="2025-03-04 09:30")])
    run_one(config, sheet, FIXED_NOW)
    assert record_of(sheet, "Fresh")["Stage"] == "New"
    assert len(sheet.tabs[FOLLOWUPS_TAB]) == 1
    report = run_one(config, sheet, datetime(2025, 3, 5, 9, 31, tzinfo=NY))
    assert record_of(sheet, "Fresh")["Stage"] == "OVERDUE"
    assert [row[3] for row in sheet.tabs[FOLLOWUPS_TAB][1:]] == ["OVERDUE"]
    assert "by hand" not in str(record_of(sheet, "Fresh")["Attention"] or "")
    assert report.cells_written == 2  # Stage and Bridge Updated


def test_run_sync_with_summaries_and_drafts_on_a_memory_sheet(
    make_config: ConfigFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """The wiring the CLI uses, on a MemorySheet: settles, and logs no patient data."""
    config = make_config()
    rows = [
        patient(
            p["Patient First Name"],
            p["Patient Last Name"],
            Patient_Phone=p["Patient Phone"],
            Patient_Email=p["Patient Email"],
            Reason=p["Reason"],
            Received="2025-03-04 08:00",
            Referrer_Email="dr.rivera@example.com",
            Consent_to_Update_Referrer="yes (verbal)",
        )
        for p in CANARY_PATIENTS
    ]
    rows.append(patient("Broken", Received="asap", Patient_Email="john@gmail"))
    sheet = make_sheet(rows)
    caplog.set_level(logging.DEBUG, logger="sheets_bridge")
    first = run_sync(config, now=FIXED_NOW, sheet=sheet)
    assert first.outcome == "ok"
    assert first.ids_assigned == 3
    second = run_sync(config, now=FIXED_NOW + timedelta(minutes=1), sheet=sheet)
    assert second.outcome == "quiet"
    text = caplog.text + repr(sheet.tabs.get(BRIDGE_LOG_TAB))
    for canary in CANARY_STRINGS:
        assert canary not in text, canary
    for report in (first, second):
        for problem in report.problems:
            assert not any(c in problem.message for c in CANARY_STRINGS)


def test_the_same_hand_edit_a_second_time_days_later_is_said_and_then_left_alone(
    config: BridgeConfig,
) -> None:
    """Found by the planner's state machine: the notice of a repeated hand edit kept its first
    date, so it had already expired when said again and the next cycle rewrote Attention."""
    from conftest import header_index

    sheet = make_sheet([patient("Ann")])
    run_one(config, sheet, FIXED_NOW)
    assert sheet.grid is not None
    tag = header_index(sheet, "Source Tag")

    def type_over() -> None:
        assert sheet.grid is not None
        sheet.grid[1][tag] = "typed"

    type_over()
    run_one(config, sheet, FIXED_NOW + timedelta(minutes=2))
    later = FIXED_NOW + timedelta(hours=30)
    type_over()
    report = run_one(config, sheet, later)
    assert "Source Tag was changed by hand" in str(record_of(sheet, "Ann")["Attention"])
    assert report.outcome == "ok"
    applies = sheet.applies
    quiet = run_one(config, sheet, later + timedelta(minutes=2))
    assert quiet.outcome == "quiet", "Attention was rewritten straight after being said"
    assert sheet.applies == applies
