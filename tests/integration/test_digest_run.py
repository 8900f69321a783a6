"""The weekly digest end to end on the embedded default: a real demo workbook, the .eml drafts
folder and the SQLite ledger, with fixed aware clocks.

Exactly once per ISO week is the property under test: reruns, restarts, a crash on either side
of the draft's creation, a lost state file and a week with a DST change all leave one digest a
week. Most tests swap the matplotlib chart for a tiny fixed PNG (a real chart costs about a
second here); ``test_a_real_chart_goes_into_the_draft`` keeps the real one.
"""

from __future__ import annotations

import email
import re
import sqlite3
from collections.abc import Callable, Iterator
from datetime import datetime
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from sheets_bridge import digest_run
from sheets_bridge.cli import main
from sheets_bridge.config import BridgeConfig, parse_config
from sheets_bridge.demo import demo_rows, write_demo_workbook
from sheets_bridge.digest_run import SEND_KIND, make_digest, maybe_digest, write_preview
from sheets_bridge.mail.memory import MemoryDrafter
from sheets_bridge.settings import DigestSettings
from sheets_bridge.state import StateStore

NY = ZoneInfo("America/New_York")
#: Monday 30 Nov 2026, 08:00: ISO week 49; the digest reports 23 - 29 Nov.
MONDAY = datetime(2026, 11, 30, 8, 0, tzinfo=NY)
TINY_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)

CONFIG: dict[str, Any] = {
    "practice": {
        "name": "Riverside Physical Therapy",
        "timezone": "America/New_York",
        "owner_email": "owner@example.com",
    },
    "sheet": {"kind": "local", "path": "referrals.xlsx"},
    "mail": {"kind": "eml", "path": "drafts"},
    "state_dir": "state",
}


@pytest.fixture(autouse=True)
def tiny_chart(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if not request.node.name.startswith("test_a_real_chart"):
        monkeypatch.setattr(digest_run, "chart_png", lambda weeks: TINY_PNG)


Practice = Callable[..., BridgeConfig]


@pytest.fixture
def practice(tmp_path: Path) -> Iterator[Practice]:
    """``practice(now)``: a config in tmp_path and a demo workbook of 150 rows as of ``now``."""

    def make(now: datetime = MONDAY, *, count: int = 150) -> BridgeConfig:
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
        write_demo_workbook(tmp_path / "referrals.xlsx", demo_rows(now, count=count))
        return parse_config(CONFIG, base=tmp_path)

    yield make


def eml_files(config: BridgeConfig) -> list[str]:
    folder = config.mail.path  # type: ignore[union-attr]
    return sorted(p.name for p in folder.glob("*.eml")) if folder.exists() else []


def ledger(config: BridgeConfig) -> dict[str, tuple[str, str]]:
    db = sqlite3.connect(config.state_dir / "state.sqlite")
    try:
        return {k: (kind, status) for k, kind, status in db.execute(
            "SELECT key, kind, status FROM drafts"
        )}  # fmt: skip
    finally:
        db.close()


def read_eml(config: BridgeConfig, name: str) -> EmailMessage:
    raw = (config.mail.path / name).read_bytes()  # type: ignore[union-attr]
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


# --------------------------------------------------------------------------------------------
# Exactly once per ISO week


def test_twice_in_a_week_makes_one_digest_and_the_next_week_a_second(practice: Practice) -> None:
    config = practice()
    first = make_digest(config, MONDAY)
    assert first.status == "drafted" and first.key == "digest.2026-W49"
    assert "Referrals, week of 23 Nov:" in first.message
    again = make_digest(config, datetime(2026, 12, 3, 15, 0, tzinfo=NY))  # Thursday, same week
    assert again.status == "exists"
    assert eml_files(config) == ["digest.2026-W49.eml"]
    assert ledger(config) == {"digest.2026-W49": ("weekly_digest", "confirmed")}

    nxt = make_digest(config, datetime(2026, 12, 7, 8, 0, tzinfo=NY))
    assert nxt.status == "drafted"
    assert eml_files(config) == ["digest.2026-W49.eml", "digest.2026-W50.eml"]
    message = read_eml(config, "digest.2026-W50.eml")
    assert message["Subject"].startswith("Referrals, week of 30 Nov:")
    assert message["Message-ID"] == "<digest.2026-W50@example.com>"
    assert message["X-Sheets-Bridge-Key"] == "digest.2026-W50"
    assert message["To"] == "owner@example.com"


def test_a_crash_after_journalling_before_creating_makes_it_on_restart(practice: Practice) -> None:
    config = practice()
    with StateStore(config.state_dir) as state:
        state.draft_pending("digest.2026-W49", "", "weekly_digest", "", MONDAY)
    assert make_digest(config, MONDAY).status == "drafted"
    assert eml_files(config) == ["digest.2026-W49.eml"]
    assert ledger(config)["digest.2026-W49"] == ("weekly_digest", "confirmed")


def test_a_crash_after_creating_before_confirming_makes_no_second(practice: Practice) -> None:
    config = practice()
    make_digest(config, MONDAY)
    db = sqlite3.connect(config.state_dir / "state.sqlite")
    db.execute("UPDATE drafts SET status = 'pending', ref = '' WHERE key = 'digest.2026-W49'")
    db.commit()
    db.close()
    outcome = make_digest(config, MONDAY)
    assert outcome.status == "exists" and outcome.ref == "digest.2026-W49.eml"
    assert eml_files(config) == ["digest.2026-W49.eml"]
    assert ledger(config)["digest.2026-W49"] == ("weekly_digest", "confirmed")


def test_a_lost_state_file_still_makes_no_second(practice: Practice) -> None:
    config = practice()
    make_digest(config, MONDAY)
    for leftover in config.state_dir.glob("state.sqlite*"):
        leftover.unlink()
    outcome = make_digest(config, MONDAY)
    assert outcome.status == "exists"
    assert eml_files(config) == ["digest.2026-W49.eml"]
    assert ledger(config)["digest.2026-W49"] == ("weekly_digest", "confirmed")  # adopted


def test_a_week_with_a_dst_change(practice: Practice) -> None:
    # New York falls back on Sunday 1 Nov 2026, 02:00; the week of 26 Oct has 169 hours.
    monday = datetime(2026, 11, 2, 7, 0, tzinfo=NY)
    config = practice(monday)
    settings = DigestSettings(weekday="sun", hour=1)
    # ISO week 44 runs Mon 26 Oct - Sun 1 Nov; its digest falls due Sunday 01:00 EDT.
    before = datetime(2026, 11, 1, 0, 59, tzinfo=NY)
    first_one_thirty = datetime(2026, 11, 1, 1, 30, tzinfo=NY)  # EDT
    second_one_thirty = datetime(2026, 11, 1, 1, 30, fold=1, tzinfo=NY)  # EST, an hour later
    assert maybe_digest(config, before, settings=settings) is None
    assert maybe_digest(config, first_one_thirty, settings=settings) is not None
    assert maybe_digest(config, second_one_thirty, settings=settings) is None
    assert eml_files(config) == ["digest.2026-W44.eml"]
    # The next Monday's digest reports the DST week itself, midnight to midnight.
    made = maybe_digest(config, monday)
    assert made is not None and "Referrals, week of 26 Oct:" in made
    assert eml_files(config) == ["digest.2026-W44.eml", "digest.2026-W45.eml"]


def test_spring_forward_hour_that_does_not_exist(practice: Practice) -> None:
    # Sunday 8 Mar 2026: 02:00 EST jumps to 03:00 EDT; a digest due "at 2" is due at the jump.
    config = practice(datetime(2026, 3, 8, 12, 0, tzinfo=NY))
    settings = DigestSettings(weekday="sun", hour=2)
    assert maybe_digest(config, datetime(2026, 3, 8, 1, 59, tzinfo=NY), settings=settings) is None
    assert maybe_digest(config, datetime(2026, 3, 8, 3, 0, tzinfo=NY), settings=settings)
    assert eml_files(config) == ["digest.2026-W10.eml"]


# --------------------------------------------------------------------------------------------
# The scheduler's entry point


def test_maybe_digest_waits_for_the_configured_hour_then_drafts_once(practice: Practice) -> None:
    config = practice()
    early = datetime(2026, 11, 30, 6, 59, tzinfo=NY)
    assert maybe_digest(config, early) is None  # default: Monday 07:00
    assert eml_files(config) == []
    assert not (config.state_dir / "state.sqlite").exists()  # nothing read, nothing journalled
    made = maybe_digest(config, datetime(2026, 11, 30, 7, 0, tzinfo=NY))
    # Named for the week it covers (made in ISO week 49, about 23-29 Nov).
    assert made is not None and made.startswith("Drafted the digest for the week of 23 Nov – 29 Nov")
    assert maybe_digest(config, datetime(2026, 11, 30, 7, 5, tzinfo=NY)) is None
    assert maybe_digest(config, datetime(2026, 12, 6, 23, 59, tzinfo=NY)) is None
    assert eml_files(config) == ["digest.2026-W49.eml"]


def test_a_missed_digest_goes_out_once_at_the_next_start(practice: Practice) -> None:
    config = practice()
    settings = DigestSettings(weekday="mon", hour=7)
    wednesday = datetime(2026, 12, 2, 10, 0, tzinfo=NY)  # the bridge was down on Monday
    assert maybe_digest(config, wednesday, settings=settings) is not None
    assert maybe_digest(config, wednesday, settings=settings) is None
    assert eml_files(config) == ["digest.2026-W49.eml"]


def test_a_later_weekday_is_not_due_earlier_in_the_week(practice: Practice) -> None:
    config = practice()
    settings = DigestSettings(weekday="fri", hour=17)
    assert maybe_digest(config, datetime(2026, 12, 4, 16, 59, tzinfo=NY), settings=settings) is None
    assert maybe_digest(config, datetime(2026, 12, 4, 17, 0, tzinfo=NY), settings=settings)


# --------------------------------------------------------------------------------------------
# Sending


class SendingDrafter(MemoryDrafter):
    """A mail backend that can send (none of the real ones can yet)."""

    can_send = True

    def __init__(self) -> None:
        super().__init__()
        self.sent: dict[str, EmailMessage] = {}

    def send(self, key: str, message: EmailMessage) -> str:
        self.sent[key] = message
        return f"sent:{key}"


def test_send_is_used_only_when_configured_and_possible(practice: Practice) -> None:
    config = practice()
    drafter = SendingDrafter()
    outcome = make_digest(config, MONDAY, drafter=drafter, settings=DigestSettings(send=True))
    assert outcome.status == "sent" and list(drafter.sent) == ["digest.2026-W49"]
    assert drafter.created == 0
    assert ledger(config)["digest.2026-W49"] == (SEND_KIND, "confirmed")
    again = make_digest(config, MONDAY, drafter=drafter, settings=DigestSettings(send=True))
    assert again.status == "exists" and len(drafter.sent) == 1


def test_a_send_interrupted_midway_is_never_repeated(practice: Practice) -> None:
    config = practice()
    with StateStore(config.state_dir) as state:
        state.draft_pending("digest.2026-W49", "", SEND_KIND, "", MONDAY)
    drafter = SendingDrafter()
    outcome = make_digest(config, MONDAY, drafter=drafter, settings=DigestSettings(send=True))
    assert outcome.status == "exists" and drafter.sent == {}


def test_send_with_the_eml_folder_drafts_and_says_so(practice: Practice) -> None:
    config = practice()
    outcome = make_digest(config, MONDAY, settings=DigestSettings(send=True))
    assert outcome.status == "drafted"
    assert "cannot send" in outcome.message
    text = read_eml(config, "digest.2026-W49.eml").get_body(("plain",))
    assert text is not None
    assert "digest.send is on, but the drafts folder" in text.get_content()


def test_drafts_are_counted_without_the_digests(practice: Practice) -> None:
    config = practice()
    make_digest(config, MONDAY)
    (config.mail.path / "R-00001.referrer_acknowledgement.eml").write_bytes(b"x")  # type: ignore[union-attr]
    make_digest(config, datetime(2026, 12, 7, 8, 0, tzinfo=NY))
    body = read_eml(config, "digest.2026-W50.eml").get_body(("plain",))
    assert body is not None
    assert "1 draft in the drafts folder" in body.get_content()


# --------------------------------------------------------------------------------------------
# Privacy on a realistic sheet, the preview and the CLI


def patient_values(now: datetime, count: int = 150) -> list[str]:
    """Full names, emails, phones (as typed and as digits) and reasons of the demo patients.

    First or last names alone are not checked here: a patient who refers a friend is a referrer,
    and referrer names are what the digest is for (test_digest.py checks names alone on a
    dataset where no patient is also a referrer).
    """
    values: set[str] = set()
    for row in demo_rows(now, count=count):
        first, last = (
            str(row.get("Patient First Name") or ""),
            str(row.get("Patient Last Name") or ""),
        )
        if first.strip() and last.strip():
            values.add(f"{first.strip()} {last.strip()}")
        for key in ("Patient Email", "Reason"):
            value = row.get(key)
            if isinstance(value, str) and len(value.strip()) >= 5:
                values.add(value.strip())
        phone = row.get("Patient Phone")
        if phone is not None:
            digits = re.sub(r"\D", "", str(phone).split(".")[0])
            if len(digits) >= 7:
                values.add(digits[-7:])
    return sorted(values)


def test_no_patient_data_in_the_draft_or_the_preview(practice: Practice, tmp_path: Path) -> None:
    config = practice()
    make_digest(config, MONDAY)
    raw = (config.mail.path / "digest.2026-W49.eml").read_bytes()  # type: ignore[union-attr]
    parsed = email.message_from_bytes(raw, policy=policy.default)
    texts = [str(v) for _, v in parsed.items()]
    for part in parsed.walk():
        if part.get_content_maintype() == "text":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            texts.append(payload.decode("utf-8"))
    preview = write_preview(config, MONDAY, tmp_path / "preview.html").read_text("utf-8")
    texts.append(preview)
    for text in texts:
        folded = text.casefold()
        leaked = [v for v in patient_values(MONDAY) if v.casefold() in folded]
        assert not leaked, f"patient data in the digest: {leaked[:3]}"


def test_preview_writes_only_the_file(practice: Practice, tmp_path: Path) -> None:
    config = practice()
    out = write_preview(config, MONDAY, tmp_path / "out" / "digest.html")
    assert out == tmp_path / "out" / "digest.html"
    page = out.read_text("utf-8")
    assert page.startswith("<!DOCTYPE html>") and "data:image/png;base64," in page
    assert "Referrals, week of 23 Nov:" in page
    # No file:// link a phone could not follow: the digest says where the workbook is.
    assert "file://" not in page and "Open the sheet" not in page
    assert f"The numbers come from the workbook at {tmp_path / 'referrals.xlsx'}" in " ".join(
        re.sub(r"<[^>]+>", "", page).split()
    )
    assert not (tmp_path / "drafts").exists()
    assert not (tmp_path / "state").exists()


def test_cli_preview_then_draft_then_already_made(
    practice: Practice, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = practice()
    cfg = str(tmp_path / "config.yaml")
    now = ["--now", "2026-11-30T08:00"]
    assert main(["digest", "--config", cfg, "--preview", str(tmp_path / "p.html"), *now]) == 0
    assert f"Digest preview written to {tmp_path / 'p.html'}" in capsys.readouterr().out
    assert eml_files(config) == []
    assert main(["digest", "--config", cfg, *now]) == 0
    assert "Drafted the digest for the week of 23 Nov – 29 Nov" in capsys.readouterr().out
    assert main(["digest", "--config", cfg, *now]) == 0
    assert "already made" in capsys.readouterr().out
    assert eml_files(config) == ["digest.2026-W49.eml"]


def test_a_real_chart_goes_into_the_draft(practice: Practice) -> None:
    config = practice()
    make_digest(config, MONDAY)
    message = read_eml(config, "digest.2026-W49.eml")
    images = [p for p in message.walk() if p.get_content_type() == "image/png"]
    assert len(images) == 1
    data = images[0].get_payload(decode=True)
    assert isinstance(data, bytes) and data.startswith(b"\x89PNG") and len(data) > 5000
    html = message.get_body(("html",))
    assert html is not None
    assert f"cid:{images[0]['Content-ID'].strip('<>')}" in html.get_content()
