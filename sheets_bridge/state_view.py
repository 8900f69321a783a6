"""What the planner may know of the past: plain data, read from the state file once per cycle.

Kept apart from :mod:`sheets_bridge.state` (the SQLite file, its lock and its journal) so the
planner depends on data, not on a database: tests build a :class:`StateView` by hand, and a
backend or the planner never imports SQLite.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

from sheets_bridge.model import Notice


@lru_cache(maxsize=1 << 17)
def stored_time(moment: datetime) -> str:
    """A moment as the state file stores it, to the second; SQLite compares and orders these
    texts (a notice's age, the order notices are read back in), so code that predicts that
    order compares the same texts."""
    return moment.isoformat(timespec="seconds")


def value_hash(value: str) -> str:
    """A short digest of a value the bridge wrote: enough to tell it apart, useless to read.

    Memoised: a cycle digests every bridge cell of every row, and from one cycle to the next
    nearly all of them hold the same text."""
    return hashlib.blake2b(value.encode("utf-8"), digest_size=8).hexdigest()


@dataclass(frozen=True, slots=True)
class IdRecord:
    identity: str
    present: bool
    pending: bool = False
    """Journalled by a cycle that never committed: the ID may never have reached the sheet."""
    facet_text: str = ""
    """The facets as the state stores them, space-separated (see :attr:`facets`)."""

    @property
    def facets(self) -> tuple[str, ...]:
        """Keyed digests of the patient's email, phone and name with the day received: ways to
        recognise the row's patient when its identity (names and Received) was corrected.

        Kept as the one stored string and split when asked: only a row that lost its ID asks,
        and five digest strings per referral were 19 MB of a 50,000-row daemon's memory."""
        return tuple(self.facet_text.split())


@dataclass(frozen=True, slots=True)
class WrittenRecord:
    """Digests of the value the bridge last wrote to a cell, the one before, and one in flight."""

    hash: str | None
    previous: str | None
    pending: str | None

    def is_ours(self, digest: str) -> bool:
        return digest in (self.hash, self.pending)


@dataclass(frozen=True, slots=True)
class DraftRecord:
    key: str
    referral_id: str
    kind: str
    referrer_key: str
    status: str
    """``pending`` (journalled, create under way), ``unknown`` (looked for, not found yet),
    ``confirmed`` (it exists), or ``forgotten`` (never made: it may be planned again)."""
    ref: str
    created: datetime
    misses: int = 0
    facets: tuple[str, ...] = ()
    """Keyed digests of who the draft is for (issue: never twice for the same patient)."""


@dataclass(frozen=True)
class StateView:
    """What the planner may know of the past: plain data, read once per cycle."""

    next_id_number: int = 1
    ids: Mapping[str, IdRecord] = field(default_factory=dict)
    written: Mapping[tuple[str, str], WrittenRecord] = field(default_factory=dict)
    notices: tuple[Notice, ...] = ()
    log_rows: tuple[tuple[str, str, str], ...] = ()
    last_problems: frozenset[str] = frozenset()
    drafts: Mapping[str, DraftRecord] = field(default_factory=dict)
    fresh: bool = True
    secret: bytes = b""
    """The key of this state's digests of patient facets (:mod:`sheets_bridge.identity`)."""
    highest_id: int = 0
    """The highest Referral ID number the drafts ledger or the audit ever named."""
    failures: int = 0
    """Cycles failed in a row before this one: a plan that lands now is a recovery, and says so
    in the Bridge Log."""
