"""What the workbook's memo tests share: a read that keeps nothing, and the exact comparison.

The workbook keeps rows between reads (sheets/xlsx.py); a test that proves a warm read exact
compares it with a read made with nothing kept, by repr and by the type of every value
(``DateSerial(40001) == 40001`` and reprs as 40001, and the type is what a stale memo gets
wrong).
"""

from __future__ import annotations

from pathlib import Path

from sheets_bridge.model import Snapshot
from sheets_bridge.sheets import xlsx
from sheets_bridge.sheets.xlsx import LocalWorkbook


def fresh_read(path: Path) -> Snapshot:
    """A read with nothing kept from earlier reads."""
    xlsx._last_read = None
    xlsx._read_memo = None
    return LocalWorkbook(path).read()


def cell_types(snap: Snapshot) -> list[tuple[str, ...]]:
    """The type of every cell value read, row by row (Referrals rows, then each tab's)."""
    rows = [r.values for r in snap.referrals.rows] if snap.referrals is not None else []
    rows += [row for title in sorted(snap.tabs) for row in snap.tabs[title].rows]
    return [tuple(type(v).__name__ for v in row) for row in rows]


def assert_same_reading(a: Snapshot, b: Snapshot) -> None:
    """``a`` reads exactly as ``b``: the same values, of the same types."""
    assert repr(a) == repr(b)
    assert cell_types(a) == cell_types(b)
