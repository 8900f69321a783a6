"""The ``.eml`` folder drafter on a real filesystem: exclusive creation, modes, crash leftovers.

Also runs the same once-per-key contract against the in-memory drafter, and drafts every kind
end to end (plan -> build -> create) into a folder a mail client could open.
"""

from __future__ import annotations

import dataclasses
import email
import os
import stat
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from sheets_bridge.drafting import plan_drafts
from sheets_bridge.email_kinds import KINDS
from sheets_bridge.email_templates import TemplateSet
from sheets_bridge.errors import BackendError
from sheets_bridge.ledger import DraftHistory
from sheets_bridge.mail import Drafter, open_drafter
from sheets_bridge.mail.eml import EmlFolderDrafter
from sheets_bridge.mail.memory import MemoryDrafter
from sheets_bridge.messages import KEY_HEADER, build_message
from sheets_bridge.model import DraftRequest, Referral
from sheets_bridge.settings import DraftsSettings, EmlMailConfig, GmailMailConfig, PracticeConfig

NOW = datetime(2026, 3, 10, 9, 0, tzinfo=ZoneInfo("America/New_York"))
POSIX = os.name == "posix"


def message(key: str = "R-00001.patient_outreach", text: str = "Hi Quillon,\n") -> EmailMessage:
    draft = DraftRequest(
        key=key,
        referral_id="R-00001",
        kind="patient_outreach",
        to="Quillon Zzyqvarsson <quillon@example.com>",
        subject="Welcome, Quillon",
        text=text,
        html="<p>Hi Quillon,</p>\n",
    )
    return build_message(
        draft,
        from_addr="desk@riverside.example",
        from_name="Riverside",
        now=NOW,
        domain="r.example",
    )


@pytest.fixture(params=["eml", "memory"])
def drafter(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Drafter]:
    if request.param == "eml":
        yield EmlFolderDrafter(tmp_path / "drafts")
    else:
        yield MemoryDrafter()


# --------------------------------------------------------------------------------------------
# The contract every drafter keeps
# --------------------------------------------------------------------------------------------


def test_kind_matches_config_strings() -> None:
    assert EmlFolderDrafter.kind == "eml"
    assert MemoryDrafter.kind == "memory"


def test_create_once_find_and_list(drafter: Drafter) -> None:
    key = "R-00001.patient_outreach"
    assert drafter.find(key) is None
    assert drafter.list_keys() == {}
    ref = drafter.create(key, message(key))
    assert drafter.find(key) == ref
    assert drafter.create(key, message(key, text="a second attempt\n")) == ref
    assert drafter.list_keys() == {key: ref}
    assert drafter.describe()


def test_keys_are_independent(drafter: Drafter) -> None:
    a = drafter.create("R-00001.patient_outreach", message("R-00001.patient_outreach"))
    b = drafter.create("R-00002.patient_outreach", message("R-00002.patient_outreach"))
    assert a != b
    assert set(drafter.list_keys()) == {"R-00001.patient_outreach", "R-00002.patient_outreach"}


# --------------------------------------------------------------------------------------------
# The .eml folder
# --------------------------------------------------------------------------------------------


def test_file_is_named_by_key_and_parses_back(tmp_path: Path) -> None:
    drafter = EmlFolderDrafter(tmp_path / "drafts")
    key = "R-00001.patient_outreach"
    ref = drafter.create(key, message(key))
    path = tmp_path / "drafts" / f"{key}.eml"
    assert ref == path.name
    raw = path.read_bytes()
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert parsed[KEY_HEADER] == key
    assert parsed["Message-ID"] == f"<{key}@r.example>"
    assert parsed["X-Unsent"] == "1"  # Outlook opens it as a draft to edit
    assert parsed.get_content_type() == "multipart/alternative"


def test_second_create_leaves_exactly_one_file_and_keeps_the_first(tmp_path: Path) -> None:
    folder = tmp_path / "drafts"
    drafter = EmlFolderDrafter(folder)
    key = "R-00001.patient_outreach"
    first = drafter.create(key, message(key, text="first\n"))
    second = drafter.create(key, message(key, text="second\n"))
    assert first == second
    assert sorted(p.name for p in folder.iterdir()) == [f"{key}.eml"]
    assert b"first" in (folder / first).read_bytes()


@pytest.mark.skipif(not POSIX, reason="POSIX permission bits")
def test_modes_are_private(tmp_path: Path) -> None:
    folder = tmp_path / "new" / "drafts"
    drafter = EmlFolderDrafter(folder)
    old_umask = os.umask(0o022)
    try:
        ref = drafter.create("R-00001.patient_outreach", message())
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / ref).stat().st_mode) == 0o600


def test_an_existing_draft_wins_even_if_the_check_raced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The final name appears between the existence check and the link: link refuses it."""
    folder = tmp_path / "drafts"
    folder.mkdir()
    drafter = EmlFolderDrafter(folder)
    key = "R-00001.patient_outreach"
    real_write = drafter._write_temp

    def write_then_race(k: str, data: bytes) -> Path:
        temp = real_write(k, data)
        (folder / f"{key}.eml").write_bytes(b"made by an earlier run")
        return temp

    monkeypatch.setattr(drafter, "_write_temp", write_then_race)
    assert drafter.create(key, message(key)) == f"{key}.eml"
    assert (folder / f"{key}.eml").read_bytes() == b"made by an earlier run"
    assert [p.name for p in folder.iterdir()] == [f"{key}.eml"]  # temp removed


def test_concurrent_creates_make_one_file(tmp_path: Path) -> None:
    folder = tmp_path / "drafts"
    key = "R-00001.patient_outreach"
    refs: list[str] = []
    barrier = threading.Barrier(8)

    def worker(n: int) -> None:
        barrier.wait()
        refs.append(EmlFolderDrafter(folder).create(key, message(key, text=f"copy {n}\n")))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(refs) == {f"{key}.eml"}
    assert [p.name for p in folder.iterdir()] == [f"{key}.eml"]


def test_leftover_temp_files_are_cleaned_and_never_listed(tmp_path: Path) -> None:
    folder = tmp_path / "drafts"
    drafter = EmlFolderDrafter(folder)
    ref = drafter.create("R-00001.patient_outreach", message())
    # what a crash between write and link (or link and unlink) leaves behind
    (folder / ".sheets-bridge-R-00002.patient_outreach.123.abcd.tmp").write_bytes(b"partial")
    os.link(folder / ref, folder / ".sheets-bridge-R-00001.patient_outreach.123.beef.tmp")
    (folder / "notes.txt").write_text("staff file")
    assert drafter.list_keys() == {"R-00001.patient_outreach": ref}
    assert drafter.find("R-00002.patient_outreach") is None
    assert drafter.clean_leftovers() == 2
    assert sorted(p.name for p in folder.iterdir()) == ["R-00001.patient_outreach.eml", "notes.txt"]
    assert email.message_from_bytes((folder / ref).read_bytes(), policy=policy.default)[KEY_HEADER]
    assert EmlFolderDrafter(tmp_path / "missing").clean_leftovers() == 0


@pytest.mark.parametrize("key", ["../escape", "a/b", "", ".hidden", "a b", "x\nBcc"])
def test_unsafe_keys_are_refused(tmp_path: Path, key: str) -> None:
    drafter = EmlFolderDrafter(tmp_path / "drafts")
    with pytest.raises(ValueError):
        drafter.create(key, message())
    with pytest.raises(ValueError):
        drafter.find(key)
    assert not (tmp_path / "escape.eml").exists()


@pytest.mark.skipif(not POSIX or os.geteuid() == 0, reason="needs POSIX permissions, not root")
def test_unwritable_folder_is_a_retryable_backend_error(tmp_path: Path) -> None:
    folder = tmp_path / "drafts"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(BackendError) as caught:
            EmlFolderDrafter(folder).create("R-00001.patient_outreach", message())
    finally:
        folder.chmod(0o700)
    assert caught.value.retryable and caught.value.backend == "eml"
    assert "Quillon" not in str(caught.value)


def test_open_drafter(tmp_path: Path) -> None:
    eml = open_drafter(SimpleNamespace(mail=EmlMailConfig(path=tmp_path / "d")))
    assert isinstance(eml, EmlFolderDrafter) and eml.folder == tmp_path / "d"
    assert isinstance(open_drafter(EmlMailConfig(path=tmp_path / "d")), EmlFolderDrafter)
    assert isinstance(open_drafter(SimpleNamespace(kind="memory")), MemoryDrafter)
    with pytest.raises(BackendError, match="needs the whole config") as caught:
        open_drafter(SimpleNamespace(mail=GmailMailConfig(kind="gmail")))
    assert caught.value.backend == "gmail"


# --------------------------------------------------------------------------------------------
# End to end: every kind into a folder
# --------------------------------------------------------------------------------------------


def test_every_kind_drafted_once_into_the_folder(tmp_path: Path) -> None:
    practice = PracticeConfig(
        name="Riverside PT",
        owner_email="owner@riverside.example",
        signature="Dana\nRiverside PT",
        designated_contact="Dana",
    )
    base = Referral(
        referral_id="R-00001",
        row=2,
        received=NOW - timedelta(days=1),
        received_has_time=True,
        first_name="Quillon",
        last_name="Zzyqvarsson",
        phone=None,
        email="quillon@example.com",
        how_heard="Provider",
        channel="Provider",
        source_tag="Provider Referral",
        referred_by="Dr. Imelda Varga",
        referrer_email="imelda@clinic.example",
        referrer_practice="Northside",
        reason="CANARY-REASON-eml",
        fit=None,
        first_contact=None,
        appointment=None,
        visit=None,
        outcome=None,
        consent=True,
        stage="New",
        follow_up_due=None,
    )
    rows = [
        base,
        dataclasses.replace(
            base,
            referral_id="R-00002",
            received=NOW - timedelta(days=30),
            appointment=NOW + timedelta(hours=5),
            visit="Scheduled",
            stage="Scheduled",
            referrer_email="b@clinic.example",
        ),
        dataclasses.replace(
            base,
            referral_id="R-00003",
            received=NOW - timedelta(days=10),
            appointment=NOW - timedelta(days=1),
            visit="Attended",
            outcome="Ongoing care",
            stage="Long-term",
            referrer_email="c@clinic.example",
        ),
        dataclasses.replace(
            base,
            referral_id="R-00004",
            received=NOW - timedelta(days=92),
            stage="Closed",
            referrer_email="d@clinic.example",
        ),
    ]
    drafter = EmlFolderDrafter(tmp_path / "drafts")

    def cycle() -> list[DraftRequest]:
        history = DraftHistory(keys=frozenset(drafter.list_keys()))
        drafts, problems = plan_drafts(
            rows,
            now=NOW,
            practice=practice,
            settings=DraftsSettings(),
            history=history,
            env=TemplateSet(),
        )
        assert problems == []
        for d in drafts:
            built = build_message(
                d,
                from_addr="desk@riverside.example",
                from_name="Riverside PT",
                now=NOW,
                domain="riverside.example",
            )
            drafter.create(d.key, built)
        return drafts

    made = cycle()
    assert {d.kind for d in made} == set(KINDS)
    assert cycle() == []  # a second run changes nothing
    files = sorted((tmp_path / "drafts").iterdir())
    assert [p.name for p in files] == sorted(f"{d.key}.eml" for d in made)
    for path in files:
        raw = path.read_bytes()
        assert b"CANARY-REASON" not in raw
        parsed = email.message_from_bytes(raw, policy=policy.default)
        assert parsed[KEY_HEADER] == path.name.removesuffix(".eml")
        parts = list(parsed.iter_parts())
        assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
        assert "Dana" in parts[0].get_content()
