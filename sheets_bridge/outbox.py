"""The outbox: every draft the bridge makes (the seven kinds and the digest) goes through here, once.

Gmail has no idempotency key, and its HTTP transport may re-send a create whose response was
lost; a process may die between a create and the record of it. So exactly-once is built here, on
the drafts ledger in the state file and the key every draft carries (RELIABILITY.md R1, R2):

1. **journal**: the keys about to be created are recorded as ``pending`` in one durable
   transaction, before anything is created;
2. **create**: each draft is created; a key that was attempted before (a *retried* create) is
   looked up first, and a draft found is adopted instead of made again;
3. **check**: after every create the key is looked up (:meth:`Drafter.find_all`) and any extra
   copy carrying the same key is deleted;
4. **confirm**: what was made is recorded ``confirmed`` in one more transaction.

At the start of a run, :meth:`Outbox.settle` decides every key whose fate is open. A pending key
whose draft is found is confirmed (extra copies deleted). One that is not found is ``unknown``:
where the drafter's search may lag (Gmail), it is looked for again after a delay and given up
(``forgotten``, so the planner may plan it again) only after repeated misses; where the lookup is
exact (the ``.eml`` folder), at once. Only when the state file is new or was rebuilt does the
outbox list every draft the drafter holds (:meth:`Drafter.list_keys`) and adopt those the ledger
lacks, so a lost state never drafts anything twice (F20).

The clock is always passed in.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage

from sheets_bridge.draft_keys import DraftKey
from sheets_bridge.errors import BackendError
from sheets_bridge.mail import Drafter
from sheets_bridge.state import StateStore

log = logging.getLogger(__name__)

__all__ = ["BATCH_SIZE", "FORGET_AFTER_MISSES", "RECHECK_AFTER", "Outbox", "Outgoing", "SendOutcome"]

#: How long to wait before looking again for a draft a lagging search did not find.
RECHECK_AFTER = timedelta(minutes=10)
#: How many looks that find nothing before a key is given up (and may be drafted again).
FORGET_AFTER_MISSES = 3

#: How many drafts one :meth:`Outbox.make_all` batch journals, creates, syncs and confirms:
#: few enough that a first sync holds a bounded number of messages, enough that the two
#: transactions and the folder sync per batch stay a small share of the work.
BATCH_SIZE = 100

StepHook = Callable[[str], None]


@dataclass(frozen=True)
class Outgoing:
    """One message ready to become a draft, with what the ledger records about it (no values)."""

    key: str
    referral_id: str
    kind: str
    message: EmailMessage
    referrer_key: str = ""
    facets: tuple[str, ...] = ()


@dataclass(frozen=True)
class SendOutcome:
    """What :meth:`Outbox.send` did: ``sent``, or ``exists`` (it was sent or may have been)."""

    status: str
    ref: str = ""


class Outbox:
    """The one way drafts are made: journal, create, check for copies, confirm."""

    def __init__(
        self,
        state: StateStore,
        drafter: Drafter,
        *,
        hook: StepHook | None = None,
        recheck_after: timedelta = RECHECK_AFTER,
        forget_after: int = FORGET_AFTER_MISSES,
    ) -> None:
        self.state = state
        self.drafter = drafter
        self.hook = hook
        self.recheck_after = recheck_after
        self.forget_after = forget_after
        self.adopted = 0
        """How many drafts a new or rebuilt state took in from the medium at :meth:`settle`."""

    def _step(self, name: str) -> None:
        if self.hook is not None:
            self.hook(name)

    # -- settling ---------------------------------------------------------------------------
    def settle(self, now: datetime) -> None:
        """Before anything is created: decide every open key, and adopt what a lost state forgot."""
        for record in self.state.open_drafts(now):
            if record.kind.endswith("_send"):
                continue  # a send whose fate is unknown is never repeated (see :meth:`send`)
            refs = self._look_up(record.key)
            if refs:
                self.state.draft_confirmed(record.key, refs[0], now)
                continue
            misses = record.misses + 1
            if self.drafter.search_lags and misses < self.forget_after:
                self.state.draft_missing(record.key, misses, now + self.recheck_after, now)
            else:
                self.state.draft_forget(record.key, now)
        if not self.state.drafts_adopted():
            self._adopt(now)
            self.state.mark_drafts_adopted(now)

    def _adopt(self, now: datetime) -> None:
        known = self.state.draft_keys()
        for key, ref in self.drafter.list_keys().items():
            parsed = DraftKey.parse(key)
            if key in known or parsed is None:
                continue
            # The draft's own time, not now: the Emails column and the referrer rate limits
            # must say when it was made, not when the state was lost.
            made = self.drafter.created_at(key)
            self.state.draft_adopt(
                key, parsed.referral_id, parsed.kind, ref, made if made and made <= now else now, now
            )
            self.adopted += 1

    def _look_up(self, key: str) -> list[str]:
        """Every ref carrying ``key``, after deleting all copies but the oldest."""
        refs = self.drafter.find_all(key)
        for extra in refs[1:]:
            log.warning("draft %s existed twice; the extra copy was deleted", key)
            self.drafter.delete(extra)
        return refs[:1]

    # -- making ---------------------------------------------------------------------------
    def make_all(
        self, items: Iterable[Outgoing], now: datetime, *, batch_size: int = BATCH_SIZE
    ) -> list[str]:
        """:meth:`make` for ``items`` taken ``batch_size`` at a time, so a first sync that drafts
        hundreds never holds all their messages at once (``items`` may be a generator that
        builds each message when it is taken).

        Each batch is a whole :meth:`make` (journal, create, one folder sync, confirm): a draft
        is still confirmed only after it is durable. After a batch in which a create failed, no
        more are taken: those messages were never journalled, so they are planned again next
        cycle, exactly as the untried keys of a failed batch are.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        made: list[str] = []
        iterator = iter(items)
        while batch := list(itertools.islice(iterator, batch_size)):
            done, failed = self._make(batch, now)
            made.extend(done)
            if failed:
                break
        return made

    def make(self, items: Sequence[Outgoing], now: datetime) -> list[str]:
        """Journal every key (one transaction), create each draft, confirm them (one more).

        Two durable transactions per batch rather than two per draft: a first sync can make
        hundreds. Returns the keys that exist as drafts now. A create that fails leaves its key
        pending (its outcome is unknown: settled at the next start); the keys not yet tried
        when a create fails are given back at once, to be planned again.
        """
        return self._make(items, now)[0]

    def _make(self, items: Sequence[Outgoing], now: datetime) -> tuple[list[str], bool]:
        """:meth:`make`, also saying whether the batch fell short (a create or the sync failed)."""
        if not items:
            return [], False
        before = {item.key: self.state.draft(item.key) for item in items}
        self.state.drafts_pending(
            ((i.key, i.referral_id, i.kind, i.referrer_key, i.facets) for i in items), now
        )
        self._step("draft-pending")
        made: list[tuple[str, str]] = []
        untried: list[str] = []
        failed = False
        # A drafter that can make a batch durable at once (the .eml folder: one folder fsync)
        # does so when the block ends; nothing is confirmed until it has, so a draft is never
        # recorded as made before it is durable. If that last sync fails, the batch's keys stay
        # pending and the next start looks each one up (exactly once either way).
        batch = getattr(self.drafter, "batch", None)
        durable = False
        try:
            with batch() if batch is not None else contextlib.nullcontext():
                for item in items:
                    if failed:
                        untried.append(item.key)
                        continue
                    earlier = before[item.key]
                    if earlier is not None and earlier.status == "confirmed":
                        continue
                    try:
                        ref = self._create(item, retried=earlier is not None)
                    except BackendError as error:
                        log.warning("draft %s not created (%s); it stays pending", item.key,
                                    error)
                        failed = True
                        continue
                    made.append((item.key, ref))
                    self._step("draft-created")
            durable = True
        except BackendError as error:
            log.warning("the drafts just made are not known to be saved (%s); they stay "
                        "pending and are looked up at the next start", error)
        finally:
            self.state.drafts_confirmed(made if durable else [], now)
            for key in untried:
                self.state.draft_forget(key, now)
        self._step("draft-confirmed")
        return ([key for key, _ in made] if durable else []), failed or not durable

    def _create(self, item: Outgoing, *, retried: bool) -> str:
        if retried:
            found = self._look_up(item.key)
            if found:
                return found[0]
        ref = self.drafter.create(item.key, item.message)
        refs = self.drafter.find_all(item.key)
        if len(refs) > 1:
            keep = ref if ref in refs else refs[0]
            for extra in refs:
                if extra != keep:
                    log.warning("draft %s was made twice by a re-sent request; one deleted",
                                item.key)
                    self.drafter.delete(extra)
            ref = keep
        return ref

    # -- sending (the owner's digest only) --------------------------------------------------
    def send(self, item: Outgoing, now: datetime) -> SendOutcome:
        """Send ``item`` at most once: a send journalled but never confirmed is not repeated.

        Two copies in the owner's inbox are worse than one missed week (the next digest carries
        the same numbers). A send that fails with an error is known not to have gone: its key
        is given back so the next run tries again.
        """
        record = self.state.draft(item.key)
        if record is not None and record.status != "forgotten":
            return SendOutcome("exists", record.ref)
        self.state.draft_pending(item.key, item.referral_id, item.kind, item.referrer_key, now)
        self._step("send-pending")
        try:
            ref = self.drafter.send(item.key, item.message)
        except BackendError:
            self.state.draft_forget(item.key, now)
            raise
        self.state.draft_confirmed(item.key, ref, now)
        self._step("send-confirmed")
        return SendOutcome("sent", ref)
