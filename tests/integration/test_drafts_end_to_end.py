"""Drafts end to end on the demo practice: real workbook, real ``.eml`` folder, real state file.

F20 (state lost or corrupt: rebuilt, nothing drafted twice, IDs kept), F13 (a draft staff
deleted is never made again), every draft parses as a proper MIME message with its key, the
Emails column lists what was drafted, a kind switched off makes nothing, drafts are 0600, and a
draft always belongs to the row that carries its Referral ID, even when the sheet is re-sorted
while the drafts are being made.
"""

from __future__ import annotations

import email
import os
import sqlite3
import stat
from datetime import datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from crash_child import (
    copy_practice,
    make_practice,
    read_bridge_cells,
    read_drafts,
    read_ledger,
    read_tabs,
)
from openpyxl import load_workbook

from sheets_bridge.config import load_config
from sheets_bridge.cycle import CycleReport
from sheets_bridge.demo import demo_rows
from sheets_bridge.email_kinds import KIND_LABELS, RECIPIENTS
from sheets_bridge.runner import run_sync

NY = ZoneInfo("America/New_York")
NOW = datetime(2025, 3, 4, 10, 0, tzinfo=NY)
LATER = NOW + timedelta(days=1, hours=2)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("drafts-e2e") / "template"
    make_practice(folder, demo_rows(NOW, seed=3, count=60))
    return folder


@pytest.fixture
def practice(template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the demo practice; returns its folder."""
    return copy_practice(template, tmp_path / "practice").parent


def sync(folder: Path, now: datetime = NOW, **kwargs: object) -> CycleReport:
    return run_sync(load_config(folder / "config.yaml"), now=now, **kwargs)  # type: ignore[arg-type]


def ids_by_row(folder: Path) -> list[tuple[int, object, object, object]]:
    """(row, Referral ID, first name, last name) in sheet order."""
    wb = load_workbook(folder / "referrals.xlsx", read_only=True)
    try:
        rows = [tuple(c.value for c in row) for row in wb["Referrals"].iter_rows()]
    finally:
        wb.close()
    h = list(rows[0])
    i, f, la = h.index("Referral ID"), h.index("Patient First Name"), h.index("Patient Last Name")
    return [(n, r[i] if i < len(r) else None, r[f], r[la]) for n, r in enumerate(rows[1:], start=2)]


def parsed(folder: Path) -> dict[str, EmailMessage]:
    out = {}
    for path in sorted((folder / "drafts").glob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(msg, EmailMessage)
        out[path.name.removesuffix(".eml")] = msg
    return out


def lose_state(folder: Path, how: str) -> None:
    db = folder / "state" / "state.sqlite"
    if how == "deleted":
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
    else:
        for suffix in ("-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
        db.write_bytes(b"this is not a database \x00\xff" * 300)


# -- F20 ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["deleted", "garbage"])
def test_a_lost_state_file_is_rebuilt_and_nothing_is_drafted_twice(
    practice: Path, template: Path, tmp_path: Path, how: str
) -> None:
    # A control practice keeps its state; the other loses it between the two runs.
    control = copy_practice(template, tmp_path / "control").parent
    for folder in (control, practice):
        first = sync(folder)
        assert len(first.drafts_made) >= 5
    drafts_before = read_drafts(practice / "drafts")
    ids_before = ids_by_row(practice)
    lose_state(practice, how)

    # A day later, the practice that lost its state drafts exactly what the other one does.
    rebuilt = sync(practice, LATER)
    assert rebuilt.drafts_made == sync(control, LATER).drafts_made
    assert not set(rebuilt.drafts_made) & {k.removesuffix(".eml") for k in drafts_before}
    assert read_drafts(practice / "drafts") == read_drafts(control / "drafts")
    assert set(drafts_before) <= set(read_drafts(practice / "drafts"))
    assert read_ledger(practice / "state") == read_ledger(control / "state")
    if how == "garbage":
        assert list((practice / "state").glob("state.sqlite.corrupt-*")), "set aside, not deleted"
    assert ids_by_row(practice) == ids_by_row(control)
    assert [row[:2] for row in ids_by_row(practice)][: len(ids_before)] == [
        row[:2] for row in ids_before
    ]
    cells, _ = read_bridge_cells(practice / "referrals.xlsx")
    control_cells, _ = read_bridge_cells(control / "referrals.xlsx")
    for rid, want in control_cells.items():
        got = cells[rid]
        for column in ("Referral ID", "Source Tag", "Stage", "Follow-up Due", "Emails"):
            assert got[column] == want[column], (rid, column)
    assert read_tabs(practice / "referrals.xlsx", ("Referrers",)) == read_tabs(
        control / "referrals.xlsx", ("Referrers",)
    )
    assert sync(practice, LATER).outcome == "quiet"


def test_a_lost_state_file_does_not_make_the_bridges_own_cells_look_hand_edited(
    practice: Path,
) -> None:
    sync(practice)
    lose_state(practice, "deleted")
    sync(practice, LATER)
    cells, _ = read_bridge_cells(practice / "referrals.xlsx")
    flagged = {
        rid: row["Attention"]
        for rid, row in cells.items()
        if "by hand" in str(row["Attention"] or "")
    }
    assert not flagged


# -- F13 ---------------------------------------------------------------------------------------
def test_a_draft_deleted_by_staff_is_never_made_again(practice: Path) -> None:
    made = sync(practice).drafts_made
    victim = practice / "drafts" / f"{made[0]}.eml"
    victim.unlink()
    for moment in (NOW, NOW + timedelta(hours=1), LATER):
        report = sync(practice, moment)
        assert made[0] not in report.drafts_made
        assert not victim.exists()
    assert read_ledger(practice / "state")[made[0]] == "confirmed"


# -- the messages --------------------------------------------------------------------------------
def test_every_draft_parses_with_its_key_headers_and_both_parts(practice: Path) -> None:
    made = sync(practice).drafts_made
    messages = parsed(practice)
    assert set(messages) == set(made)
    for key, msg in messages.items():
        for header in ("From", "To", "Subject", "Date", "Message-ID", "X-Sheets-Bridge-Key"):
            assert msg[header], (key, header)
        assert msg["X-Sheets-Bridge-Key"] == key
        assert msg["Message-ID"].startswith(f"<{key}@")
        assert "@" in parseaddr(str(msg["To"]))[1]
        assert msg.get_content_type() == "multipart/alternative"
        plain = msg.get_body(preferencelist=("plain",))
        html = msg.get_body(preferencelist=("html",))
        assert plain is not None and html is not None, key
        assert plain.get_content().strip() and "<" in html.get_content()
        assert not msg.defects, (key, msg.defects)


def test_drafts_are_private_files(practice: Path) -> None:
    sync(practice)
    files = list((practice / "drafts").iterdir())
    assert files
    for path in files:
        assert path.suffix == ".eml", path.name  # no temp files left behind
        if os.name == "posix":
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    if os.name == "posix":
        assert stat.S_IMODE((practice / "drafts").stat().st_mode) & 0o077 == 0


def test_the_emails_column_lists_each_rows_drafts(practice: Path) -> None:
    made = sync(practice).drafts_made
    cells, _ = read_bridge_cells(practice / "referrals.xlsx")
    per_referral = [k for k in made if k.startswith("R-")]
    assert per_referral
    for key in per_referral:
        rid, kind = key.split(".")[:2]
        lines = str(cells[rid]["Emails"] or "").splitlines()
        assert f"2025-03-04 10:00 {KIND_LABELS[kind]} drafted" in lines, (key, lines)
    # Per-referrer kinds (feedback, check-in) are listed on the row that prompted them.
    db = sqlite3.connect(practice / "state" / "state.sqlite")
    try:
        ledger = db.execute("SELECT key, referral_id, kind FROM drafts").fetchall()
    finally:
        db.close()
    assert {key for key, _, _ in ledger} == set(made)
    expected: dict[str, list[str]] = {}
    for _, rid, kind in sorted(ledger):
        expected.setdefault(rid, []).append(f"2025-03-04 10:00 {KIND_LABELS[kind]} drafted")
    for rid, row in cells.items():
        assert sorted(str(row["Emails"] or "").splitlines()) == sorted(expected.get(rid, [])), rid


def test_a_kind_switched_off_makes_no_draft_of_that_kind(
    practice: Path, template: Path, tmp_path: Path
) -> None:
    control = copy_practice(template, tmp_path / "control").parent
    made_on = sync(control).drafts_made
    assert any(".patient_outreach" in k for k in made_on), "the demo must make outreach drafts"
    config_path = practice / "config.yaml"
    data = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    data["drafts"]["kinds"] = {"patient_outreach": False}
    config_path.write_text(yaml.safe_dump(data), encoding="utf-8")
    made_off = sync(practice).drafts_made
    assert not any(".patient_outreach" in k for k in made_off)
    assert made_off == [k for k in made_on if ".patient_outreach" not in k]
    for moment in (NOW + timedelta(hours=3), LATER):
        assert not any(".patient_outreach" in k for k in sync(practice, moment).drafts_made)
    assert not any(".patient_outreach" in name for name in read_drafts(practice / "drafts"))


# -- a draft belongs to the row that carries its ID -------------------------------------------
def _rows_by_id(folder: Path) -> dict[str, dict[str, object]]:
    wb = load_workbook(folder / "referrals.xlsx", read_only=True)
    try:
        rows = [tuple(c.value for c in row) for row in wb["Referrals"].iter_rows()]
    finally:
        wb.close()
    headers = [str(h) for h in rows[0]]
    out = {}
    for row in rows[1:]:
        record = dict(zip(headers, list(row) + [None] * (len(headers) - len(row)), strict=False))
        if record.get("Referral ID"):
            out[str(record["Referral ID"])] = record
    return out


def _assert_each_draft_is_addressed_to_its_rows_people(folder: Path) -> None:
    rows = _rows_by_id(folder)
    for key, msg in parsed(folder).items():
        rid, kind = key.split(".")[:2]
        if not rid.startswith("R-"):
            continue
        row = rows[rid]
        to = parseaddr(str(msg["To"]))[1].lower()
        column = "Patient Email" if RECIPIENTS[kind] == "patient" else "Referrer Email"
        assert to == str(row[column]).strip().lower(), (key, to, row[column])


def _insert_a_new_referral_at_the_top(folder: Path) -> None:
    """What staff do between the bridge's read and its write: a new row above the others."""
    path = folder / "referrals.xlsx"
    wb = load_workbook(path)
    ws = wb["Referrals"]
    headers = [c.value for c in ws[1]]
    ws.insert_rows(2)
    values = {
        "Received": (NOW - timedelta(hours=2)).replace(tzinfo=None),
        "Patient First Name": "Odalys",
        "Patient Last Name": "Brennick",
        "Patient Email": "odalys.brennick@example.net",
        "How Heard": "Provider",
        "Referred By": "Dr. Tamsin Oyelaran",
        "Referrer Email": "t.oyelaran@example.org",
        "Referrer Practice": "Oyelaran Sports Medicine",
    }
    for name, value in values.items():
        ws.cell(row=2, column=headers.index(name) + 1, value=value)
    wb.save(path)


def test_a_sheet_sorted_while_drafts_are_made_keeps_each_draft_with_its_row(
    practice: Path,
) -> None:
    moved: list[bool] = []

    def hook(step: str) -> None:
        if step == "drafts" and not moved:
            moved.append(True)
            _insert_a_new_referral_at_the_top(practice)

    sync(practice, hook=hook)
    assert moved
    _assert_each_draft_is_addressed_to_its_rows_people(practice)
    sync(practice, NOW + timedelta(minutes=5))
    _assert_each_draft_is_addressed_to_its_rows_people(practice)


def test_a_crash_after_the_drafts_then_a_sorted_sheet_keeps_each_draft_with_its_row(
    practice: Path,
) -> None:
    class Killed(BaseException):
        pass

    def hook(step: str) -> None:
        if step == "drafts":
            raise Killed  # the process dies here: nothing after the drafts happens

    with pytest.raises(Killed):
        sync(practice, hook=hook)
    _insert_a_new_referral_at_the_top(practice)
    sync(practice)
    _assert_each_draft_is_addressed_to_its_rows_people(practice)


def test_a_crash_in_the_first_cycle_after_a_lost_state_keeps_every_referral_id(
    practice: Path,
) -> None:
    sync(practice)
    before = {row[2:]: row[1] for row in ids_by_row(practice)}
    lose_state(practice, "deleted")
    _insert_a_new_referral_at_the_top(practice)

    class Killed(BaseException):
        pass

    def hook(step: str) -> None:
        if step == "journal":
            raise Killed

    with pytest.raises(Killed):
        sync(practice, LATER, hook=hook)
    sync(practice, LATER)
    after = {row[2:]: row[1] for row in ids_by_row(practice)}
    assert {who: after[who] for who in before} == before
    assert after[("Odalys", "Brennick")] == "R-00061"
    cells, _ = read_bridge_cells(practice / "referrals.xlsx")
    for rid, row in cells.items():
        assert "Referral ID" not in str(row["Attention"] or ""), (rid, row["Attention"])
