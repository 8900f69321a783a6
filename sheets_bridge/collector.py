"""Pausing Python's cyclic garbage collector around the bulk work of a cycle.

Reading a sheet and planning allocate hundreds of thousands of small objects (row tuples,
parsed values), nearly none in reference cycles; the collector's passes over them cost 12-17%
of a cycle (issue 13's profile). Reference counting still frees everything as usual, and the
collector runs again after. One helper here, so the planner and a backend share it without a
backend importing the planner.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


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
