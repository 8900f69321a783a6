"""Bad files, a full disk, a lost state, a hostile environment: one clear line, nothing lost.

Every case runs the real CLI over a real workbook and a real state folder. A file the bridge
cannot read gets one line that names what is wrong and is never written; an environment fault
(disk full, a state folder that is a file) names its cause and fix with the right exit code; a
state deleted or damaged between cycles is rebuilt from the sheet and the drafts without drafting
anything twice, and the run says so once.
"""

from __future__ import annotations

import io
import os
import resource
import sqlite3
import subprocess
import sys
import zipfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from crash_child import make_practice, read_drafts
from openpyxl import Workbook, load_workbook

from sheets_bridge.cli import main
from sheets_bridge.demo import demo_rows

NY = ZoneInfo("America/New_York")
NOW = datetime(2025, 3, 4, 10, 0, tzinfo=NY)
NOW_TEXT = "2025-03-04T10:00:00"
LATER_TEXT = "2025-03-04T10:10:00"


@pytest.fixture(scope="module")
def synced_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A practice of 40 rows synced once; copied per test (a first sync costs a second)."""
    folder = tmp_path_factory.mktemp("template") / "p"
    config = make_practice(folder, demo_rows(NOW, seed=5, count=40))
    assert main(["sync", "--config", str(config), "--now", NOW_TEXT]) == 0
    return folder


@pytest.fixture
def practice(synced_template: Path, tmp_path: Path) -> Path:
    import shutil

    folder = tmp_path / "p"
    shutil.copytree(synced_template, folder)
    return folder / "config.yaml"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out + err


def assert_one_clear_line(text: str) -> None:
    """The user gets a sentence, never a traceback or an 'unexpected' error type."""
    assert "Traceback" not in text
    assert "unexpected" not in text.lower(), text
    assert text.strip(), "the user was told nothing"


def workbook_of(config: Path) -> Path:
    return config.parent / "referrals.xlsx"


# -- files that are not a readable workbook ----------------------------------------------------


def _valid_bytes(config: Path) -> bytes:
    return workbook_of(config).read_bytes()


def _replace_member(data: bytes, member: str, payload: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            body = payload if info.filename == member else src.read(info.filename)
            dst.writestr(info, body)
    return out.getvalue()


def _ods_bytes() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        z.writestr("content.xml", "<office:document-content/>")
    return out.getvalue()


BAD_FILES: dict[str, Callable[[bytes], bytes]] = {
    "zero bytes": lambda good: b"",
    "a CSV renamed .xlsx": lambda good: b"Received,Patient First Name\n2025-03-01,Ana\n",
    "an .ods renamed .xlsx": lambda good: _ods_bytes(),
    "a truncated zip": lambda good: good[: len(good) // 2],
    "an encrypted workbook": lambda good: bytes.fromhex("d0cf11e0a1b11ae1") + b"\0" * 4096,
    "garbage sheet XML": lambda good: _replace_member(
        good, "xl/worksheets/sheet1.xml", b"this is not xml at all \x00\x01"
    ),
    "sheet XML cut short": lambda good: _replace_member(
        good,
        "xl/worksheets/sheet1.xml",
        zipfile.ZipFile(io.BytesIO(good)).read("xl/worksheets/sheet1.xml")[:700],
    ),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_a_file_the_bridge_cannot_read_gets_one_line_and_is_never_written(
    practice: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = workbook_of(practice)
    bad = BAD_FILES[kind](_valid_bytes(practice))
    path.write_bytes(bad)
    drafts_before = read_drafts(practice.parent / "drafts")
    for command in (["sync"], ["check"], ["status"], ["init"]):
        now = ["--now", LATER_TEXT] if command[0] == "sync" else []
        code, text = run([*command, "--config", str(practice), *now], capsys)
        if command[0] == "status":
            # status reads the state, not the workbook, and says the last cycle failed (exit 1)
            assert code == 1 and "Health: FAILING" in text, text
            assert "Traceback" not in text
            continue
        assert code != 0, f"{command[0]} on {kind} claimed success: {text}"
        assert_one_clear_line(text)
        assert "run init" not in text.lower() or command[0] == "init", text
        assert path.read_bytes() == bad, f"{command[0]} changed {kind}"
    assert read_drafts(practice.parent / "drafts") == drafts_before, "drafted from a bad file"


def test_zero_bytes_and_ods_are_told_apart_from_a_csv(
    practice: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = workbook_of(practice)
    path.write_bytes(b"")
    _, text = run(["sync", "--config", str(practice), "--now", LATER_TEXT], capsys)
    assert "empty" in text.lower() and "csv" not in text.lower(), text
    path.write_bytes(_ods_bytes())
    _, text = run(["sync", "--config", str(practice), "--now", LATER_TEXT], capsys)
    assert "ods" in text.lower() or "opendocument" in text.lower(), text


# -- files that are readable but full of what staff type ---------------------------------------


def _staff_grid(path: Path) -> list[list[object]]:
    wb = load_workbook(path)
    try:
        ws = wb["Referrals"]
        headers = [c.value for c in ws[1]]
        from sheets_bridge.model import STAFF_COLUMNS

        keep = [i for i, h in enumerate(headers) if h in STAFF_COLUMNS]
        return [[row[i] for i in keep] for row in ws.iter_rows(values_only=True)]
    finally:
        wb.close()


def _edit(path: Path, change: Callable[[object], None]) -> None:
    wb = load_workbook(path)
    change(wb)
    wb.save(path)


def _header_index(ws: object, name: str) -> int:
    headers = [c.value for c in ws[1]]  # type: ignore[index]
    return headers.index(name) + 1


def _long_cell(wb: object) -> None:
    ws = wb["Referrals"]  # type: ignore[index]
    ws.cell(3, _header_index(ws, "Patient Last Name")).value = "x" * 32767


def _wide(wb: object) -> None:
    ws = wb["Referrals"]  # type: ignore[index]
    ws.cell(4, 2000).value = "stray note far to the right"


def _merged(wb: object) -> None:
    ws = wb["Referrals"]  # type: ignore[index]
    ws.merge_cells(start_row=5, start_column=1, end_row=8, end_column=4)


def _dates(wb: object) -> None:
    ws = wb["Referrals"]  # type: ignore[index]
    col = _header_index(ws, "Received")
    ws.cell(6, col).value = -5
    ws.cell(7, col).value = 10**12
    ws.cell(8, col).value = 2958466  # one day past Excel's last date


def _names(wb: object) -> None:
    ws = wb["Referrals"]  # type: ignore[index]
    first = _header_index(ws, "Patient First Name")
    by = _header_index(ws, "Referred By")
    # Control characters reach a workbook as OOXML escapes (XML cannot hold them raw).
    ws.cell(9, first).value = "Ana_x0007__x001B_"
    ws.cell(10, first).value = "\u05e9\u05e8\u05d4 \u202eevil"
    ws.cell(11, first).value = "Zoë 🌷"
    ws.cell(12, by).value = "Dr_x000B_Rivera"


READABLE: dict[str, Callable[[object], None]] = {
    "a 32,767-character cell": _long_cell,
    "2,000 columns": _wide,
    "a block of merged cells": _merged,
    "negative and huge date serials": _dates,
    "control characters, right-to-left text and emoji in names": _names,
}


@pytest.mark.parametrize("kind", sorted(READABLE))
def test_a_readable_but_messy_sheet_runs_a_clean_cycle_and_keeps_every_staff_cell(
    practice: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = workbook_of(practice)
    _edit(path, READABLE[kind])
    staff_before = _staff_grid(path)
    drafts_before = read_drafts(practice.parent / "drafts")
    code, text = run(["sync", "--config", str(practice), "--now", LATER_TEXT], capsys)
    assert_one_clear_line(text)
    assert code in (0, 3), text  # a clean cycle, or a safety stop that explains itself
    assert _staff_grid(path) == staff_before
    again, text = run(["sync", "--config", str(practice), "--now", LATER_TEXT], capsys)
    assert again == code, text
    after = read_drafts(practice.parent / "drafts")
    assert set(drafts_before) <= set(after)
    # Nothing old was drafted again under a new name.
    assert len(set(after.values())) == len(after)


def test_attention_says_an_email_was_not_drafted_only_when_it_was_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A control character in Referred By: that row's acknowledgement is held, and said so."""
    from sheets_bridge.email_kinds import KIND_LABELS

    rows = demo_rows(NOW, seed=5, count=30)
    with_email = [r for r in rows if r.get("Referrer Email") and r.get("Referred By")]
    assert len(with_email) >= 2
    # Control characters reach a workbook as OOXML escapes (XML cannot hold them raw).
    fresh = with_email[0]
    for column in ("First Contact", "Appointment", "Visit", "Outcome"):
        fresh[column] = None
    fresh["Received"] = datetime(2025, 3, 4, 8, 0)
    fresh["Referred By"] = "Dr_x000B_Rivera"
    config = make_practice(tmp_path / "p", rows)
    code, text = run(["sync", "--config", str(config), "--now", NOW_TEXT], capsys)
    assert code == 0, text
    wb = load_workbook(workbook_of(config))
    ws = wb["Referrals"]
    attention_col = _header_index(ws, "Attention")
    emails_col = _header_index(ws, "Emails")
    said_not = 0
    for r in range(2, ws.max_row + 1):
        attention = str(ws.cell(r, attention_col).value or "").lower()
        emails = str(ws.cell(r, emails_col).value or "")
        for label in KIND_LABELS.values():
            if f"no {label} was drafted" in attention:
                said_not += 1
                assert f"{label} drafted" not in emails, (r, attention, emails)
    wb.close()
    assert said_not >= 1, "the control character was meant to hold one draft back"


# -- a full disk during the save ---------------------------------------------------------------

CHILD = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
from sheets_bridge.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_a_full_disk_during_the_save_leaves_the_workbook_intact_and_the_next_cycle_completes(
    practice: Path,
) -> None:
    path = workbook_of(practice)
    # A staff edit that makes the next cycle write: a new referral at the bottom.
    def add_row(wb: object) -> None:
        ws = wb["Referrals"]  # type: ignore[index]
        row = ws.max_row + 1
        ws.cell(row, _header_index(ws, "Received")).value = datetime(2025, 3, 4, 9, 0)
        ws.cell(row, _header_index(ws, "Patient First Name")).value = "Nadia"
        ws.cell(row, _header_index(ws, "Patient Last Name")).value = "Okafor"
        ws.cell(row, _header_index(ws, "How Heard")).value = "Google"

    _edit(path, add_row)
    before = path.read_bytes()
    drafts_before = read_drafts(practice.parent / "drafts")
    # Files may grow to half the workbook: the temp copy of the save cannot be written.
    limit = len(before) // 2
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(limit), "sync", "--config", str(practice),
         "--now", LATER_TEXT],
        capture_output=True, text=True, timeout=120, check=False,
    )
    text = done.stdout + done.stderr
    assert done.returncode == 1, text
    assert_one_clear_line(text)
    assert "disk" in text.lower() or "space" in text.lower() or "large" in text.lower(), text
    assert path.read_bytes() == before, "a failed save changed the workbook"
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".") and "tmp" in p.name]
    # The state is consistent: the next cycle, with room, completes and drafts nothing twice.
    assert main(["sync", "--config", str(practice), "--now", LATER_TEXT]) == 0
    after = read_drafts(practice.parent / "drafts")
    assert set(drafts_before) <= set(after)
    assert len(set(after.values())) == len(after)
    grid = _staff_grid(path)
    assert any("Nadia" in row for row in grid)
    assert resource.getrlimit(resource.RLIMIT_FSIZE)[0] == resource.RLIM_INFINITY


# -- a state lost or damaged between cycles ----------------------------------------------------


def _delete(state: Path) -> None:
    for path in state.iterdir():
        if path.name.startswith("state.sqlite"):
            path.unlink()


def _truncate(state: Path) -> None:
    db = state / "state.sqlite"
    db.write_bytes(db.read_bytes()[:1500])


def _garbage(state: Path) -> None:
    (state / "state.sqlite").write_bytes(os.urandom(8192))


def _bad_counter(state: Path) -> None:
    con = sqlite3.connect(state / "state.sqlite")
    with con:
        con.execute("UPDATE meta SET value = 'lots' WHERE key = 'next_id'")
    con.close()


STATE_DAMAGE: dict[str, Callable[[Path], None]] = {
    "deleted": _delete,
    "truncated": _truncate,
    "overwritten with garbage": _garbage,
    "holding a counter that is not a number": _bad_counter,
}


@pytest.mark.parametrize("kind", sorted(STATE_DAMAGE))
def test_a_lost_state_is_rebuilt_drafts_nothing_again_and_says_so_once(
    practice: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    state = practice.parent / "state"
    drafts = practice.parent / "drafts"
    path = workbook_of(practice)
    before = read_drafts(drafts)
    assert before
    ids_before = _ids(path)
    STATE_DAMAGE[kind](state)
    code, text = run(["sync", "--config", str(practice), "--now", LATER_TEXT], capsys)
    assert code == 0, text
    assert_one_clear_line(text)
    said = [line for line in text.splitlines() if line.startswith("The state")]
    assert len(said) == 1, text
    assert read_drafts(drafts) == before, f"a state {kind} re-drafted emails"
    assert _ids(path) == ids_before
    code, text = run(["sync", "--config", str(practice), "--now", LATER_TEXT], capsys)
    assert code == 0
    assert not [line for line in text.splitlines() if line.startswith("The state")], text
    assert read_drafts(drafts) == before


def _ids(path: Path) -> list[object]:
    wb = load_workbook(path)
    try:
        ws = wb["Referrals"]
        col = _header_index(ws, "Referral ID")
        return [ws.cell(r, col).value for r in range(2, ws.max_row + 1)]
    finally:
        wb.close()


# -- the environment -------------------------------------------------------------------------


def _set_config(config: Path, change: Callable[[dict[str, object]], None]) -> None:
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    change(data)
    config.write_text(yaml.safe_dump(data), encoding="utf-8")


def test_a_state_folder_that_is_a_file_names_it_and_the_fix(
    practice: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = practice.parent / "not-a-folder"
    blocker.write_text("x")
    _set_config(practice, lambda d: d.__setitem__("state_dir", str(blocker)))
    code, text = run(["sync", "--config", str(practice), "--now", LATER_TEXT], capsys)
    assert code == 1
    assert_one_clear_line(text)
    assert str(blocker) in text and "state_dir" in text, text


def test_a_config_that_is_not_utf8_is_a_config_error(
    practice: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    practice.write_bytes(practice.read_bytes() + "# caf\xe9\n".encode("latin-1"))
    code, text = run(["sync", "--config", str(practice), "--now", LATER_TEXT], capsys)
    assert code == 2, text
    assert_one_clear_line(text)
    assert "utf-8" in text.lower(), text


def test_a_now_that_is_not_a_time_is_a_usage_error(
    practice: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, text = run(["sync", "--config", str(practice), "--now", "next tuesday"], capsys)
    assert code == 2, text
    assert_one_clear_line(text)
    assert "--now" in text


def test_a_practice_name_with_a_trailing_newline_drafts_normally(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = make_practice(tmp_path / "p", demo_rows(NOW, seed=5, count=12))
    text = config.read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    name = data["practice"]["name"]
    # What `name: >` gives in YAML: the name and a newline.
    data["practice"]["name"] = name + "\n"
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    code, out = run(["check", "--config", str(config)], capsys)
    assert code == 0, out
    code, out = run(["sync", "--config", str(config), "--now", NOW_TEXT], capsys)
    assert code == 0, out
    drafts = read_drafts(tmp_path / "p" / "drafts")
    assert drafts
    assert all(name in body for body in drafts.values() if "From:" in body)


def test_a_name_with_a_control_character_is_refused_at_load_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = make_practice(tmp_path / "p", demo_rows(NOW, seed=5, count=3))
    _set_config(config, lambda d: d["practice"].__setitem__("name", "Harbor\x1b[31m Physio"))  # type: ignore[index]
    code, out = run(["check", "--config", str(config)], capsys)
    assert code == 2, out
    assert "practice.name" in out, out


def test_a_template_that_runs_away_fails_check_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = make_practice(tmp_path / "p", demo_rows(NOW, seed=5, count=3))
    templates = tmp_path / "p" / "templates"
    templates.mkdir()
    (templates / "patient_outreach.txt").write_text(
        "{% for i in range(100000000) %}{{ i }}{% endfor %}", encoding="utf-8"
    )
    _set_config(
        config,
        lambda d: d.setdefault("drafts", {}).__setitem__("templates_dir", str(templates)),  # type: ignore[union-attr]
    )
    code, out = run(["check", "--config", str(config)], capsys)
    assert code != 0, out
    assert_one_clear_line(out)
    assert "patient_outreach" in out, out


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_saving_keeps_the_workbooks_owner_group_and_mode(
    practice: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = workbook_of(practice)

    def edit(wb: object) -> None:
        ws = wb["Referrals"]  # type: ignore[index]
        ws.cell(2, _header_index(ws, "Patient Last Name")).value = "Retyped"

    _edit(path, edit)
    os.chown(path, 4321, 4322)
    os.chmod(path, 0o664)
    before = path.read_bytes()
    code, text = run(["sync", "--config", str(practice), "--now", LATER_TEXT], capsys)
    assert code == 0, text
    assert path.read_bytes() != before, "the cycle was meant to write"
    st = path.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (4321, 4322, 0o664)


def test_a_workbook_the_bridge_made_itself_is_still_readable_after_all_this(tmp_path: Path) -> None:
    """A sanity anchor for the fuzz above: a plain openpyxl workbook with only headers runs."""
    from sheets_bridge.model import STAFF_COLUMNS

    config = make_practice(tmp_path / "p", [])
    wb = Workbook()
    ws = wb.active
    ws.title = "Referrals"
    ws.append(list(STAFF_COLUMNS))
    wb.save(workbook_of(config))
    assert main(["sync", "--config", str(config), "--now", NOW_TEXT]) == 0
