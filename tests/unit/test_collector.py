"""The daemon's collector settling: frozen between cycles, yet cyclic garbage freed in time."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from sheets_bridge import collector


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


@pytest.fixture(autouse=True)
def _fresh_count() -> Iterator[None]:
    collector._settled = 0
    yield
    collector._settled = 0
    gc.unfreeze()  # the rest of the suite runs with an ordinary collector


def test_a_cycle_left_by_a_cycle_is_freed_by_the_hourly_full_collection() -> None:
    node = _Node()
    gone = weakref.ref(node)
    del node
    collector.settle_after_cycle()
    gc.collect()
    assert gone() is not None, "frozen after a cycle: ordinary collections do not walk it"
    assert gc.get_freeze_count() > 0
    for _ in range(collector.FULL_COLLECT_EVERY - 1):
        collector.settle_after_cycle()
    assert gone() is None, "the full collection every FULL_COLLECT_EVERY cycles frees it"

