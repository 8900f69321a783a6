"""The canary (RELIABILITY.md (d), issue 3): patient data never leaks where it must not go.

Rows carry names, phones, emails and reasons nobody else would type, recent enough to fire
every kind of draft. The whole command line runs on them (``sync --dry-run``, ``sync --json``,
``sync``, a second quiet ``sync``, ``status``, ``check``, with and without ``--debug``), with every
log record captured at DEBUG. Then:

- no draft carries a Reason (every part of every ``.eml`` decoded), nor a phone; a patient's
  address appears only as the recipient of that patient's own emails; a referrer email names
  the patient by first name and last initial at most (PRODUCT.md: minimum necessary);
- no log record and no terminal output holds any patient value;
- the state file (and its WAL) holds none, nor do the summary tabs and the Bridge Log (the
  Follow-ups work queue names patients on purpose).
"""

from __future__ import annotations

import email
import logging
from datetime import datetime, timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from crash_child import make_practice
from openpyxl import load_workbook

from sheets_bridge.cli import main
from sheets_bridge.config import load_config
from sheets_bridge.demo import demo_rows
from sheets_bridge.email_kinds import RECIPIENTS
from sheets_bridge.runner import run_sync

NY = ZoneInfo("America/New_York")
NOW = datetime(2025, 3, 4, 10, 0, tzinfo=NY)


def _at(delta: timedelta) -> datetime:
    return (NOW + delta).replace(tzinfo=None, second=0, microsecond=0)


CANARIES: list[dict[str, object]] = [
    {  # new provider referral, nobody has called: acknowledgement + outreach
        "Received": _at(-timedelta(hours=3)),
        "Patient First Name": "Zyxqa",
        "Patient Last Name": "Vomblewick",
        "Patient Phone": "212-555-0147",
        "Patient Email": "zyxqa.vomblewick@example.net",
        "How Heard": "Provider",
        "Referred By": "Dr. Qweltrop Ansbury",
        "Referrer Email": "q.ansbury@example.org",
        "Referrer Practice": "Ansbury Spine Clinic",
        "Reason": "Canary-reason-8812 lumbar strain",
        "Consent to Update Referrer": "Yes",
    },
    {  # booked for tomorrow: appointment reminder
        "Received": _at(-timedelta(days=2)),
        "Patient First Name": "Quorbette",
        "Patient Last Name": "Flindlemoss",
        "Patient Phone": "(646) 555-0193",
        "Patient Email": "quorbette.flindlemoss@example.org",
        "How Heard": "Provider",
        "Referred By": "Dr. Qweltrop Ansbury",
        "Referrer Email": "q.ansbury@example.org",
        "Referrer Practice": "Ansbury Spine Clinic",
        "Reason": "Canary-reason-4471 rotator cuff",
        "Fit": "Good fit",
        "First Contact": _at(-timedelta(days=1, hours=20)),
        "Appointment": _at(timedelta(hours=24)),
        "Visit": "Scheduled",
        "Consent to Update Referrer": "Yes",
    },
    {  # seen, staying on: closing the loop + thank-you
        "Received": _at(-timedelta(days=6)),
        "Patient First Name": "Wexandra",
        "Patient Last Name": "Plumtreeozzick",
        "Patient Phone": "917-555-0162",
        "Patient Email": "wexandra.plumtree@example.com",
        "How Heard": "Provider",
        "Referred By": "Dr. Qweltrop Ansbury",
        "Referrer Email": "q.ansbury@example.org",
        "Referrer Practice": "Ansbury Spine Clinic",
        "Reason": "Canary-reason-5530 ankle sprain",
        "Fit": "Good fit",
        "First Contact": _at(-timedelta(days=5, hours=22)),
        "Appointment": _at(-timedelta(days=2)),
        "Visit": "Attended",
        "Outcome": "Ongoing care",
        "Consent to Update Referrer": "Yes",
    },
    {  # a month ago from another provider: the referrer feedback request
        "Received": _at(-timedelta(days=30)),
        "Patient First Name": "Brondolph",
        "Patient Last Name": "Yexterhall",
        "Patient Phone": "718-555-0128",
        "Patient Email": "brondolph.yexterhall@example.net",
        "How Heard": "Provider",
        "Referred By": "Dr. Imelza Corvantine",
        "Referrer Email": "imelza.corvantine@example.org",
        "Referrer Practice": "Corvantine Family Practice",
        "Reason": "Canary-reason-6619 knee replacement rehab",
        "Fit": "Good fit",
        "First Contact": _at(-timedelta(days=29)),
        "Appointment": _at(-timedelta(days=25)),
        "Visit": "Attended",
        "Outcome": "Discharged",
        "Consent to Update Referrer": "Yes",
    },
    {  # a provider quiet for three months: the check-in
        "Received": _at(-timedelta(days=92)),
        "Patient First Name": "Ulvarine",
        "Patient Last Name": "Snodgraff",
        "Patient Phone": "347-555-0175",
        "Patient Email": "ulvarine.snodgraff@example.com",
        "How Heard": "Provider",
        "Referred By": "Dr. Pellegrin Awkwright",
        "Referrer Email": "p.awkwright@example.net",
        "Referrer Practice": "Awkwright Orthopedics",
        "Reason": "Canary-reason-7720 plantar fasciitis",
        "Fit": "Good fit",
        "First Contact": _at(-timedelta(days=91)),
        "Appointment": _at(-timedelta(days=88)),
        "Visit": "Attended",
        "Outcome": "Discharged",
        "Consent to Update Referrer": "Yes",
    },
]


def _phone_forms(phone: str) -> list[str]:
    digits = "".join(ch for ch in phone if ch.isdigit())
    return [
        phone,
        digits,
        f"{digits[:3]}-{digits[3:6]}-{digits[6:]}",
        f"555-{digits[-4:]}",
        f"+1{digits}",
        f"({digits[:3]}) {digits[3:6]}-{digits[6:]}",
    ]


FIRST_NAMES = [str(c["Patient First Name"]) for c in CANARIES]
LAST_NAMES = [str(c["Patient Last Name"]) for c in CANARIES]
EMAILS = [str(c["Patient Email"]) for c in CANARIES]
REASONS = [str(c["Reason"]) for c in CANARIES]
REASON_MARKERS = [r.split()[0] for r in REASONS]  # "Canary-reason-8812": unmistakable alone
PHONES = [form for c in CANARIES for form in _phone_forms(str(c["Patient Phone"]))]
#: Everything that identifies a patient: never in logs, terminal output, state or summaries.
PATIENT_DATA = [*FIRST_NAMES, *LAST_NAMES, *EMAILS, *REASONS, *REASON_MARKERS, *PHONES]


def _found(text: str, needles: list[str]) -> list[str]:
    low = text.casefold()
    return sorted({n for n in needles if n.casefold() in low})


@pytest.fixture
def practice(tmp_path: Path) -> Path:
    normal = demo_rows(NOW, seed=11, count=6)
    for row in normal:  # keep the demo's own patients out of the canary's way
        for column in ("Reason",):
            row[column] = "Back pain"
    return make_practice(tmp_path / "practice", [*normal, *CANARIES])


def _texts(msg: EmailMessage) -> str:
    """Every header (decoded) and every part's decoded content of one message."""
    chunks = [f"{name}: {value}" for name, value in msg.items()]
    for part in msg.walk():
        if part.is_multipart():
            continue
        chunks.extend(f"{name}: {value}" for name, value in part.items())
        content = part.get_content()
        chunks.append(content if isinstance(content, str) else content.decode("utf-8", "replace"))
    return "\n".join(chunks)


def test_no_patient_data_leaks_into_drafts_logs_output_or_state(
    practice: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    config = str(practice)
    now = NOW.isoformat()
    runs = [
        ["sync", "--config", config, "--now", now, "--dry-run"],
        ["sync", "--config", config, "--now", now, "--json", "--dry-run"],
        ["--debug", "sync", "--config", config, "--now", now],
        ["sync", "--config", config, "--now", now],
        ["--debug", "sync", "--config", config, "--now", now, "--json"],
        ["status", "--config", config],
        ["--debug", "status", "--config", config],
        ["check", "--config", config],
        ["--debug", "check", "--config", config],
    ]
    terminal = []
    for argv in runs:
        code = main(argv)
        out = capsys.readouterr()
        terminal.append(f"$ {' '.join(argv)}\n{out.out}\n{out.err}")
        assert code == 0, (argv, out.out, out.err)
    output = "\n".join(terminal)
    folder = practice.parent

    # The drafts: every kind fired, and none carries what it must not.
    drafts = {
        path.name.removesuffix(".eml"): email.message_from_bytes(
            path.read_bytes(), policy=policy.default
        )
        for path in sorted((folder / "drafts").glob("*.eml"))
    }
    kinds = {key.split(".")[1] for key in drafts}
    assert kinds == set(RECIPIENTS), f"kinds drafted: {sorted(kinds)}"
    for key, msg in drafts.items():
        assert isinstance(msg, EmailMessage)
        text = _texts(msg)
        kind = key.split(".")[1]
        assert not _found(text, [*REASONS, *REASON_MARKERS]), key
        assert not _found(text, PHONES), key
        recipients = str(msg["To"]).casefold()
        # A referrer reads first name and last initial at most; a patient's own email may carry
        # their full name as the recipient, and nobody else's.
        beyond_to = text.replace(f"To: {msg['To']}", "")
        assert not _found(beyond_to, LAST_NAMES), key
        assert len(_found(recipients, LAST_NAMES)) <= (RECIPIENTS[kind] == "patient"), key
        for address in _found(text, EMAILS):
            assert address.casefold() in recipients, (key, address)
        if RECIPIENTS[kind] == "referrer":
            assert not _found(text, EMAILS), key
        else:
            assert len(_found(recipients, EMAILS)) == 1, key

    # Logs and the terminal: nothing about any patient.
    records = "\n".join(
        f"{r.name} {r.levelname} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records
    )
    # A clean run logs little, so make the bridge talk: a crashed save's leftover, a corrupt
    # state file, and a staff edit between the bridge's read and its write.
    (folder / ".~sheets-bridge-leftover.tmp").write_bytes(b"half a workbook")
    (folder / "state" / "state.sqlite").write_bytes(b"garbage, not a database" * 50)
    for suffix in ("-wal", "-shm"):
        (folder / "state" / f"state.sqlite{suffix}").unlink(missing_ok=True)
    edited: list[str] = []

    def staff_edit(step: str) -> None:
        if step == "journal" and not edited:
            edited.append(step)
            wb = load_workbook(folder / "referrals.xlsx")
            ws = wb["Referrals"]
            headers = [c.value for c in ws[1]]
            ws.cell(row=2, column=headers.index("Notes") + 1, value="called back")
            wb.save(folder / "referrals.xlsx")

    later = NOW + timedelta(hours=26)
    assert run_sync(load_config(practice), now=later, hook=staff_edit).outcome in ("ok", "quiet")
    assert edited
    assert main(["--debug", "sync", "--config", config, "--now", later.isoformat()]) == 0
    out = capsys.readouterr()
    output += f"{out.out}\n{out.err}"
    assert caplog.records, "DEBUG logging captured nothing: the scan would prove nothing"
    assert any("reading it again" in r.getMessage() for r in caplog.records)
    assert not _found(records, PATIENT_DATA), _found(records, PATIENT_DATA)
    assert not _found(output, PATIENT_DATA), _found(output, PATIENT_DATA)
    assert "R-0" in output or "referrals" in output.casefold()

    # The state file, WAL included, and every tab the bridge writes besides Referrals.
    for path in sorted((folder / "state").iterdir()):
        if path.is_file():
            raw = path.read_bytes().decode("utf-8", "replace")
            assert not _found(raw, PATIENT_DATA), (path.name, _found(raw, PATIENT_DATA))
    wb = load_workbook(folder / "referrals.xlsx", read_only=True)
    try:
        for title in wb.sheetnames:
            if title in ("Referrals", "Gifts", "Follow-ups"):
                continue  # staff tabs: the work queue names patients on purpose (PRODUCT.md)
            cells = "\n".join(
                str(c.value) for row in wb[title].iter_rows() for c in row if c.value is not None
            )
            assert not _found(cells, PATIENT_DATA), (title, _found(cells, PATIENT_DATA))
    finally:
        wb.close()


def test_the_canary_rows_are_really_in_the_sheet_and_the_drafts(practice: Path) -> None:
    """The scan above is only worth something if the values were there to leak."""
    assert main(["sync", "--config", str(practice), "--now", NOW.isoformat()]) == 0
    folder = practice.parent
    wb = load_workbook(folder / "referrals.xlsx", read_only=True)
    try:
        sheet = "\n".join(
            str(c.value) for row in wb["Referrals"].iter_rows() for c in row if c.value is not None
        )
    finally:
        wb.close()
    for value in [*FIRST_NAMES, *LAST_NAMES, *EMAILS, *REASONS]:
        assert value in sheet
    bodies = "\n".join(
        _texts(email.message_from_bytes(p.read_bytes(), policy=policy.default))
        for p in (folder / "drafts").glob("*.eml")
    )
    assert _found(bodies, FIRST_NAMES)  # patients are greeted by name
    assert _found(bodies, EMAILS)  # and addressed
