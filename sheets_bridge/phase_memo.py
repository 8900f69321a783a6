"""Per-phase memos across cycles: a phase's output reused while its inputs are the same and the
clock has not reached the phase's own horizon (ARCHITECTURE.md, "Incremental planning").

A phase that reads the clock (the Referrers and Dashboard tabs, drafting) is a pure function of
its inputs and ``now``. Each such phase says, beside the rules it mirrors, its *horizon*: the
first instant after which the clock alone could change its output (a ``next_change`` function
next to the time tests). Its output made at ``since`` from some inputs is then the output of
every ``now`` in ``[since, horizon)`` for those inputs, and of ``since`` itself whatever the
horizon (a pure function called again with equal arguments: the second plan of a drafting
cycle, at the same ``now``). Outside that span, or with any input not the same, the phase runs.

Inputs come in two kinds: the rows (Referrals, compared item by item by identity, at C speed:
the derive and decide memos hand back the very same objects for unchanged rows, and identity
leaves no ``__eq__`` to argue about), and small values compared with ``==`` (settings, the
ledger's records, a Gifts summary).

The arithmetic every horizon shares is here too: a time test compares ``now`` with a moment
taken from the data (a Received, an appointment, a ledger entry) moved by an offset (a window,
a gap); it can only change its answer when ``now`` reaches one of those ``moment + offset``
instants.
"""

from __future__ import annotations

import math
import operator
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo
from typing import TypeVar, cast

__all__ = [
    "NEVER",
    "PhaseMemo",
    "earliest_crossing",
    "next_elapsed",
    "next_midnight",
    "planning",
    "same_items",
]

#: No instant: the clock alone never changes the output.
NEVER = math.inf
#: Taken off every crossing: a test computed in floating point (``ts >= now_ts - 90 * DAY``)
#: may flip a rounding error before the exact instant; a millisecond is far more than that.
_MARGIN = 0.001

_T = TypeVar("_T")

#: Whether the plan under way may reuse (``plan_cycle(..., incremental=...)``). The phases that
#: use a :class:`PhaseMemo` are called through hooks whose signatures carry no such flag (tab
#: builders, the draft planner), so the plan says it here, for its own thread only.
_INCREMENTAL: ContextVar[bool] = ContextVar("sheets_bridge_incremental", default=True)


@contextmanager
def planning(*, incremental: bool) -> Iterator[None]:
    """While a plan is made: whether the phase memos may give back what they hold."""
    token = _INCREMENTAL.set(incremental)
    try:
        yield
    finally:
        _INCREMENTAL.reset(token)


def same_items(a: Sequence[object], b: Sequence[object]) -> bool:
    """Whether two sequences hold the very same objects, in order (identity, not ``==``)."""
    return len(a) == len(b) and all(map(operator.is_, a, b))


def next_midnight(now: datetime, tz: tzinfo) -> float:
    """The next local midnight after ``now`` (a timestamp): a date read against today, a
    period or a week holds until then."""
    local = now.astimezone(tz)
    return datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=tz).timestamp()


def next_elapsed(stamps: Sequence[float], offsets: Iterable[float], now_ts: float) -> float:
    """The first ``stamp + offset`` at or after ``now_ts`` (less a margin), over every offset:
    where a test on elapsed seconds (``now_ts - stamp > offset``, ``stamp >= now_ts - offset``)
    can flip. ``stamps`` must be sorted. A crossing at ``now_ts`` itself gives a horizon just
    before it: the output then holds at ``now_ts`` only."""
    best = NEVER
    count = len(stamps)
    for offset in offsets:
        # A second of slack either side of the bisection: rounding cannot hide a crossing.
        index = bisect_left(stamps, now_ts - offset - 1.0)
        while index < count:
            at = stamps[index] + offset
            if at >= now_ts - 1.0:
                best = min(best, at - _MARGIN)
                break
            index += 1
    return best


def earliest_crossing(
    moments: Iterable[datetime | None], offsets: Iterable[timedelta], now: datetime
) -> float:
    """The first instant at or after ``now`` (a timestamp, less a margin) at which a test
    between ``now`` and ``moment + offset`` on aware datetimes can flip.

    Aware arithmetic is wall-clock (``now - timedelta(days=7)`` keeps the zone) and two aware
    datetimes with one ``tzinfo`` compare their wall times, so ``moment + offset`` is read
    every way the comparison could mean it: as elapsed seconds, and as a wall time in the
    moment's zone and in ``now``'s, each with both readings of an ambiguous or missing local
    time. The earliest is taken, so a daylight-saving change cannot hide a crossing.
    """
    now_ts = now.timestamp()
    zone = now.tzinfo
    steps = [(offset, offset.total_seconds()) for offset in set(offsets)]
    given = [m for m in moments if m is not None]
    # Wall-clock readings differ from elapsed ones by at most a zone's daylight-saving shift.
    shift = 3 * 3600.0
    best = NEVER
    if zone is not None and all(m.tzinfo is zone for m in given):
        # One zone (the practice's, as the rules read every date): sorted and bisected as
        # datetimes (wall times, compared at C speed), and only the moments near a crossing
        # are turned into timestamps. Wall order and instant order differ by at most a
        # daylight-saving fold, well inside the shift.
        given.sort()
        near = timedelta(seconds=shift)
        for offset, seconds in steps:
            start = bisect_left(given, now - offset - near)
            for moment in given[start:]:
                ts = moment.timestamp()
                if ts + seconds - shift >= best:
                    break
                best = min(best, _first_reading(moment, ts, offset, seconds, zone, now_ts))
        return best
    dated = sorted(((m.timestamp(), i, m) for i, m in enumerate(given)), key=lambda d: d[:2])
    stamps = [d[0] for d in dated]
    for offset, seconds in steps:
        start = bisect_left(stamps, now_ts - seconds - shift)
        for ts, _, moment in dated[start:]:
            if ts + seconds - shift >= best:
                break
            best = min(best, _first_reading(moment, ts, offset, seconds, zone, now_ts))
    return best


def _first_reading(
    moment: datetime, ts: float, offset: timedelta, seconds: float, zone: tzinfo | None,
    now_ts: float,
) -> float:
    """The earliest reading of ``moment + offset`` at or after ``now_ts`` (less the margin),
    or :data:`NEVER`: as elapsed seconds, and as a wall time in the moment's zone and in
    ``now``'s, each with both folds."""
    walls = [moment + offset]
    if zone is not None and moment.tzinfo is not zone:
        walls.append(moment.astimezone(zone) + offset)
    readings = [ts + seconds]
    for wall in walls:
        readings += [wall.replace(fold=0).timestamp(), wall.replace(fold=1).timestamp()]
    return min((at - _MARGIN for at in readings if at >= now_ts - 1.0), default=NEVER)


@dataclass(frozen=True, slots=True)
class _Held:
    items: Sequence[object]
    values: tuple[object, ...]
    at: datetime
    """``now`` as it was given (its zone: the phase reads local dates in it)."""
    since: float
    until: float
    result: object


class PhaseMemo:
    """The latest output of each clock-reading phase, with its inputs and the span it holds.

    Each entry is replaced whole (a plan in another thread sees one or the other); ``hits``
    counts reuses per phase (tests and the bench read it).
    """

    def __init__(self) -> None:
        self.entries: dict[str, _Held] = {}
        self.hits: dict[str, int] = {}

    def reuse(
        self,
        phase: str,
        items: Sequence[object],
        values: tuple[object, ...],
        now: datetime,
        compute: Callable[[], _T],
        horizon: Callable[[_T], float],
        *,
        incremental: bool | None = None,
    ) -> _T:
        """``compute()``, or its output held from an earlier call whose ``items`` are these
        very objects, whose ``values`` are equal, and whose span holds ``now``: made at this
        same instant, or before it with ``now`` short of the ``horizon`` it had then.

        ``incremental`` defaults to what the plan under way says (:func:`planning`); without
        it, nothing is reused or kept (a full plan leaves the memo as it was).
        """
        if incremental is None:
            incremental = _INCREMENTAL.get()
        now_ts = now.timestamp()
        if incremental:
            held = self.entries.get(phase)
            if (
                held is not None
                and held.at.tzinfo is now.tzinfo
                and (held.since == now_ts or held.since <= now_ts < held.until)
                and same_items(held.items, items)
                and held.values == values
            ):
                self.hits[phase] = self.hits.get(phase, 0) + 1
                return cast(_T, held.result)
        result = compute()
        if incremental:
            self.entries[phase] = _Held(
                tuple(items), values, now, now_ts, horizon(result), result
            )
        return result

    def horizon_of(self, phase: str) -> tuple[float, float] | None:
        """(since, until) of the phase's held output, for tests and the bench."""
        held = self.entries.get(phase)
        return None if held is None else (held.since, held.until)
