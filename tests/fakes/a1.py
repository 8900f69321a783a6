"""A1 notation as the Sheets API reads and writes it: parsing, clipping, and quoting titles.

Kept apart from the server so the rules the recordings taught us (a response range is clipped
to the grid, a single cell is `A1` not `A1:A1`, a title is quoted only when it must be) sit in
one small place that the replay test keeps honest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_CELL = re.compile(r"^([A-Za-z]*)(\d*)$")
_BARE_TITLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CELL_LIKE = re.compile(r"^([A-Za-z]{1,3}\d+|[Rr]\d*[Cc]\d*|[A-Za-z]{1,3}|\d+)$")


class RangeError(ValueError):
    """A range the API would refuse with 400 "Unable to parse range: ..."."""


def col_letters(index: int) -> str:
    """0-based column index -> letters (0 -> A, 25 -> Z, 26 -> AA)."""
    out = ""
    n = index + 1
    while n:
        n, rem = divmod(n - 1, 26)
        out = chr(ord("A") + rem) + out
    return out


def col_index(letters: str) -> int:
    """Letters -> 0-based column index."""
    n = 0
    for ch in letters.upper():
        n = n * 26 + (ord(ch) - ord("A") + 1)
    return n - 1


def quote_title(title: str) -> str:
    """Quote a sheet title the way Google echoes it: bare when it is a plain word, else quoted."""
    if _BARE_TITLE.match(title) and not _CELL_LIKE.match(title):
        return title
    return "'" + title.replace("'", "''") + "'"


@dataclass(frozen=True)
class Bounds:
    """A rectangle, 0-based; an end of None is unbounded (to the grid's edge); ends inclusive."""

    r0: int
    c0: int
    r1: int | None
    c1: int | None

    def clip(self, rows: int, cols: int) -> Bounds:
        r1 = rows - 1 if self.r1 is None else min(self.r1, rows - 1)
        c1 = cols - 1 if self.c1 is None else min(self.c1, cols - 1)
        return Bounds(self.r0, self.c0, r1, c1)


def split_sheet(text: str) -> tuple[str | None, str | None]:
    """`'My tab'!A1:B2` -> ("My tab", "A1:B2"); `Sheet1` -> (None, "Sheet1") for the caller to decide."""
    if text.startswith("'"):
        i = 1
        chars: list[str] = []
        while i < len(text):
            ch = text[i]
            if ch == "'":
                if i + 1 < len(text) and text[i + 1] == "'":
                    chars.append("'")
                    i += 2
                    continue
                break
            chars.append(ch)
            i += 1
        else:
            raise RangeError(text)
        rest = text[i + 1 :]
        if rest == "":
            return "".join(chars), None
        if not rest.startswith("!"):
            raise RangeError(text)
        return "".join(chars), rest[1:]
    if "!" in text:
        title, _, cells = text.rpartition("!")
        return title, cells
    return None, text


def parse_cells(cells: str) -> Bounds:
    """`A1:B2`, `A:A`, `1:1`, `A1`, `A2:2`, `B3:C` -> Bounds. Raises RangeError if not A1."""
    parts = cells.split(":")
    if len(parts) > 2 or not cells:
        raise RangeError(cells)
    parsed: list[tuple[int | None, int | None]] = []
    for part in parts:
        m = _CELL.match(part.strip())
        if not m or not (m.group(1) or m.group(2)):
            raise RangeError(cells)
        col = col_index(m.group(1)) if m.group(1) else None
        row = int(m.group(2)) - 1 if m.group(2) else None
        if row is not None and row < 0:
            raise RangeError(cells)
        parsed.append((row, col))
    (ra, ca) = parsed[0]
    if len(parsed) == 1:
        if ra is None or ca is None:
            raise RangeError(cells)
        return Bounds(ra, ca, ra, ca)
    (rb, cb) = parsed[1]
    r0 = ra if ra is not None else 0
    c0 = ca if ca is not None else 0
    r1 = rb if (rb is not None and ra is not None) or (rb is not None and ca is None) else None
    c1 = cb if (cb is not None and ca is not None) or (cb is not None and ra is None) else None
    if ra is None and rb is not None and ca is not None:
        r1 = rb  # "A:B5" is not valid A1; be lenient
    if r1 is not None and r1 < r0:
        r0, r1 = r1, r0
    if c1 is not None and c1 < c0:
        c0, c1 = c1, c0
    return Bounds(r0, c0, r1, c1)


def format_bounds(b: Bounds) -> str:
    """Bounds (all ends known) -> `A1` or `A1:C4`."""
    assert b.r1 is not None and b.c1 is not None
    start = f"{col_letters(b.c0)}{b.r0 + 1}"
    if b.r0 == b.r1 and b.c0 == b.c1:
        return start
    return f"{start}:{col_letters(b.c1)}{b.r1 + 1}"
