"""The outbox: every draft exactly once, whatever the medium's search lag or re-sent requests do.

The ``.eml`` folder is exact (a file is there or not); Gmail's search may lag, and its transport
may re-send a create whose response was lost. ``GmailLike`` plays that medium's role in memory
(the Gmail drafter itself is tested against the fake Google server), with a real state file.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import ClassVar
from zoneinfo import ZoneInfo

import pytest

from sheets_bridge.errors import BackendError
from sheets_bridge.ledger import history_of
from sheets_bridge.mail.eml import EmlFolderDrafter
from sheets_bridge.mail.memory import MemoryDrafter
from sheets_bridge.outbox import Outbox, Outgoing
from sheets_bridge.state import StateStore

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=ZoneInfo("America/New_York"))


class GmailLike(MemoryDrafter):
    """Drafts by ref; a key may be carried by several drafts; the search sees a draft only
    ``lag`` lookups after it was made; ``twice`` makes the next create land twice (a re-send)."""

    search_lags: ClassVar[bool] = True

    def __init__(self) -> None:
        super().__init__()
        self.drafts: dict[str, str] = {}  # ref -> key
        self.unseen: dict[str, int] = {}  # ref -> lookups still blind to it
        self.lag = 0
        self.twice = False
        self.fail = False
        self.lookups = 0
        self.listings = 0

    def create(self, key: str, message: EmailMessage) -> str:
        if self.fail:
            raise BackendError("quota", backend="gmail", retryable=True)
        refs = []
        for _ in range(2 if self.twice else 1):
            ref = f"r{len(self.drafts) + 1}"
            self.drafts[ref] = key
            self.unseen[ref] = self.lag
            refs.append(ref)
            self.created += 1
        self.twice = False
        return refs[-1]

    def find_all(self, key: str) -> list[str]:
        self.lookups += 1
        found = []
        for ref, k in self.drafts.items():
            if k != key:
                continue
            if self.unseen[ref] > 0:
                self.unseen[ref] -= 1
                continue
            found.append(ref)
        return found

    def find(self, key: str) -> str | None:
        found = self.find_all(key)
        return found[0] if found else None

    def delete(self, ref: str) -> None:
        self.drafts.pop(ref, None)

    def list_keys(self) -> dict[str, str]:
        self.listings += 1
        return {k: ref for ref, k in self.drafts.items()}

    def copies(self, key: str) -> int:
        return sum(1 for k in self.drafts.values() if k == key)


def message(key: str) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = "hello"
    msg["X-Sheets-Bridge-Key"] = key
    msg.set_content("hello")
    return msg


def out(key: str) -> Outgoing:
    return Outgoing(key, key.split(".")[0], key.split(".")[1], message(key))


@pytest.fixture
def state(tmp_path: Path):  # type: ignore[no-untyped-def]
    with StateStore(tmp_path / "state") as store:
        yield store


def status(state: StateStore, key: str) -> str:
    record = state.draft(key)
    return record.status if record else "absent"


def test_a_create_that_landed_twice_leaves_one_draft(state: StateStore) -> None:
    gmail = GmailLike()
    gmail.twice = True
    made = Outbox(state, gmail).make([out("R-00001.patient_outreach")], NOW)
    assert made == ["R-00001.patient_outreach"]
    assert gmail.copies("R-00001.patient_outreach") == 1
    assert status(state, "R-00001.patient_outreach") == "confirmed"


def test_a_pending_key_found_at_start_is_confirmed_with_its_copies_deleted(
    state: StateStore,
) -> None:
    gmail = GmailLike()
    gmail.create("R-00001.patient_outreach", message("x"))
    gmail.create("R-00001.patient_outreach", message("x"))  # the crash came after a re-send
    state.draft_pending("R-00001.patient_outreach", "R-00001", "patient_outreach", "", NOW)
    Outbox(state, gmail).settle(NOW)
    assert status(state, "R-00001.patient_outreach") == "confirmed"
    assert gmail.copies("R-00001.patient_outreach") == 1


def test_a_lagging_search_is_asked_again_before_a_key_is_given_up(state: StateStore) -> None:
    gmail = GmailLike()
    key = "R-00001.patient_outreach"
    state.draft_pending(key, "R-00001", "patient_outreach", "", NOW)
    outbox = Outbox(state, gmail, recheck_after=timedelta(minutes=10), forget_after=3)
    outbox.settle(NOW)
    assert status(state, key) == "unknown"
    assert key in history_of(state.view(NOW)).keys  # not planned again meanwhile
    outbox.settle(NOW + timedelta(minutes=5))  # too early to look again
    assert state.draft(key).misses == 1  # type: ignore[union-attr]
    outbox.settle(NOW + timedelta(minutes=11))
    assert status(state, key) == "unknown" and state.draft(key).misses == 2  # type: ignore[union-attr]
    outbox.settle(NOW + timedelta(minutes=22))
    assert status(state, key) == "forgotten"
    assert key not in history_of(state.view(NOW)).keys  # may be planned again


def test_a_draft_the_search_finds_late_is_not_made_again(state: StateStore) -> None:
    gmail = GmailLike()
    key = "R-00001.patient_outreach"
    gmail.lag = 5  # made before the crash, invisible to the next five lookups
    gmail.create(key, message(key))
    state.draft_pending(key, "R-00001", "patient_outreach", "", NOW)
    outbox = Outbox(state, gmail, recheck_after=timedelta(minutes=1), forget_after=2)
    outbox.settle(NOW)
    outbox.settle(NOW + timedelta(minutes=2))
    assert status(state, key) == "forgotten"
    gmail.lag = 0
    # Planned again: a retried create looks first, and finds it now the search caught up.
    gmail.unseen = dict.fromkeys(gmail.unseen, 0)
    assert outbox.make([out(key)], NOW + timedelta(minutes=3)) == [key]
    assert gmail.copies(key) == 1 and status(state, key) == "confirmed"


def test_an_exact_folder_gives_up_a_missing_key_at_once(state: StateStore, tmp_path: Path) -> None:
    key = "R-00001.patient_outreach"
    state.draft_pending(key, "R-00001", "patient_outreach", "", NOW)
    Outbox(state, EmlFolderDrafter(tmp_path / "drafts")).settle(NOW)
    assert status(state, key) == "forgotten"


def test_a_failed_create_stays_pending_and_the_rest_are_given_back(state: StateStore) -> None:
    gmail = GmailLike()
    gmail.fail = True
    keys = ["R-00001.patient_outreach", "R-00002.patient_outreach"]
    assert Outbox(state, gmail).make([out(k) for k in keys], NOW) == []
    assert status(state, keys[0]) == "pending"  # its outcome is unknown: looked up next start
    assert status(state, keys[1]) == "forgotten"  # never tried: planned again
    assert gmail.created == 0


def test_the_drafts_are_listed_only_for_a_new_state(tmp_path: Path) -> None:
    gmail = GmailLike()
    gmail.create("R-00009.patient_outreach", message("x"))
    for _ in range(3):
        with StateStore(tmp_path / "state") as state:
            Outbox(state, gmail).settle(NOW)
    assert gmail.listings == 1
    with StateStore(tmp_path / "state") as state:
        assert status(state, "R-00009.patient_outreach") == "confirmed"
    (tmp_path / "state" / "state.sqlite").unlink()  # F20: the state is lost
    with StateStore(tmp_path / "state") as state:
        Outbox(state, gmail).settle(NOW)
        assert status(state, "R-00009.patient_outreach") == "confirmed"
    assert gmail.listings == 2


def test_a_send_whose_fate_is_unknown_is_never_repeated(state: StateStore) -> None:
    class Sender(GmailLike):
        can_send: ClassVar[bool] = True
        sent = 0

        def send(self, key: str, message: EmailMessage) -> str:
            Sender.sent += 1
            return "sent-1"

    sender = Sender()
    item = Outgoing("digest.2026-W49", "", "weekly_digest_send", message("d"))
    state.draft_pending(item.key, "", item.kind, "", NOW)  # journalled, then the process died
    outbox = Outbox(state, sender)
    outbox.settle(NOW)
    assert outbox.send(item, NOW).status == "exists"
    assert Sender.sent == 0


class FolderSyncFails(EmlFolderDrafter):
    """A drafts folder whose entries cannot be made durable at the end of a batch (a full or
    failing disk when the folder is fsynced)."""

    def batch(self):  # type: ignore[no-untyped-def,override]
        inner = super().batch()

        class Failing:
            def __enter__(self) -> None:
                inner.__enter__()

            def __exit__(self, *exc: object) -> None:
                inner.__exit__(None, None, None)
                raise BackendError("fsync failed (test)", backend="eml", retryable=True)

        return Failing()


def test_a_batch_of_eml_drafts_is_confirmed_once_the_folder_is_durable(
    state: StateStore, tmp_path: Path
) -> None:
    keys = [f"R-0000{n}.patient_outreach" for n in range(1, 4)]
    drafter = EmlFolderDrafter(tmp_path / "drafts")
    assert Outbox(state, drafter).make([out(k) for k in keys], NOW) == keys
    assert all(status(state, k) == "confirmed" for k in keys)
    assert sorted(p.name for p in (tmp_path / "drafts").iterdir()) == [f"{k}.eml" for k in keys]


def test_drafts_whose_folder_sync_failed_stay_pending_and_are_found_once(
    state: StateStore, tmp_path: Path
) -> None:
    keys = [f"R-0000{n}.patient_outreach" for n in range(1, 3)]
    failing = FolderSyncFails(tmp_path / "drafts")
    assert Outbox(state, failing).make([out(k) for k in keys], NOW) == []
    assert [status(state, k) for k in keys] == ["pending", "pending"]  # never confirmed early
    # The next start looks each key up before anything is made again: found, confirmed, once.
    drafter = EmlFolderDrafter(tmp_path / "drafts")
    Outbox(state, drafter).settle(NOW + timedelta(minutes=2))
    assert [status(state, k) for k in keys] == ["confirmed", "confirmed"]
    assert len(list((tmp_path / "drafts").iterdir())) == 2


def test_make_all_takes_batches_and_confirms_each_before_taking_the_next(
    state: StateStore,
) -> None:
    """A first sync's drafts go a batch at a time; each batch is confirmed before the next
    message is even built, and nothing after a failed batch is taken (issue 13)."""
    drafter = MemoryDrafter()
    keys = [f"R-{n:05d}.patient_outreach" for n in range(1, 8)]
    taken: list[str] = []

    def lazily():  # type: ignore[no-untyped-def]
        for key in keys:
            taken.append(key)
            # every key of an earlier batch is confirmed before this message is built
            done = (len(taken) - 1) // 3 * 3
            assert all(status(state, k) == "confirmed" for k in keys[:done])
            assert status(state, key) == "absent"
            yield out(key)

    assert Outbox(state, drafter).make_all(lazily(), NOW, batch_size=3) == keys
    assert sorted(drafter.list_keys()) == sorted(keys)

    class FailingSecond(MemoryDrafter):
        def create(self, key, message):  # type: ignore[no-untyped-def]
            if key.startswith("R-00012"):
                raise BackendError("down", backend="memory", retryable=True)
            return super().create(key, message)

    later = [f"R-{n:05d}.patient_outreach" for n in range(10, 17)]
    taken.clear()

    def counted():  # type: ignore[no-untyped-def]
        for key in later:
            taken.append(key)
            yield out(key)

    made = Outbox(state, FailingSecond()).make_all(counted(), NOW, batch_size=2)
    assert made == later[:2]  # the batch holding the failure confirms nothing it did not make
    assert taken == later[:4]  # no message after the failed batch was built
    assert status(state, later[3]) == "forgotten"  # untried in the failed batch: given back
    assert status(state, later[4]) == "absent"  # never journalled: planned again next cycle
