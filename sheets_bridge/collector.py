"""Pausing Python's cyclic garbage collector around the bulk work of a cycle.

Reading a sheet and planning allocate hundreds of thousands of small objects (row tuples,
parsed values), nearly none in reference cycles; the collector's passes over them cost 12-17%
of a cycle (issue 13's profile). Reference counting still frees everything as usual, and the
collector runs again after. One helper here, so the planner and a backend share it without a
backend importing the planner.

A daemon lives for months in one process, and what its cycles keep (the read memo, the state
tables, the derived rows) is hundreds of thousands of objects: each full collection walks them
all again, and pausing only defers the walk to the first collection after the pause. So after
each cycle the daemon freezes what survived (:func:`settle_after_cycle`), and collects
everything once every :data:`FULL_COLLECT_EVERY` cycles, so garbage caught in reference cycles
is still freed within the hour.
"""

from __future__ import annotations

import functools
import gc
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from threading import Lock


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block; restored to what it was after."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


#: Cycles between two full collections of a daemon's heap: an hour at the default 2-minute sync.
FULL_COLLECT_EVERY = 30

_settled = 0
_settle_lock = Lock()


def settle_after_cycle() -> None:
    """After a daemon's cycle: move what survived it out of the collector's sight (``gc.freeze``,
    constant time), and every :data:`FULL_COLLECT_EVERY` calls unfreeze and collect it all first.

    A quiet 10,000-row cycle in a long-lived process spent about 0.15 s in the collector walking
    the previous cycles' objects; frozen, they are never walked between the hourly collections.
    Only for a long-lived process: a frozen object in a reference cycle is not freed until the
    next full collection.
    """
    global _settled
    with _settle_lock:
        _settled += 1
        if _settled >= FULL_COLLECT_EVERY:
            _settled = 0
            gc.unfreeze()
            gc.collect()
        gc.freeze()
        _release_free_memory()


def _release_free_memory() -> None:
    """Give the C heap's free pages back to the system (glibc's ``malloc_trim``; elsewhere
    nothing): a first sync's peak otherwise stays resident for the daemon's whole life
    (171 -> 141 MB after a 10,000-row first sync, in 3 ms)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, looked up once; None on any other C library."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        found: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl): nothing to call
        return None
    return found
