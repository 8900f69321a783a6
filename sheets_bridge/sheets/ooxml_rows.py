"""Patching and writing SpreadsheetML rows: the bytes of a ``<row>`` rebuilt, a whole sheet made.

A sync changes a handful of cells in a sheet of thousands of rows, so a write rewrites only the
bytes of the ``<row>`` elements it touches (:func:`index_rows`, :func:`rebuild_row`,
:func:`splice`) and leaves every other byte alone; a bridge-owned tab is generated whole
(:func:`generate_sheet`). Values are always written as inline strings or numbers, never as
formulas (B18). Pure: bytes in, bytes out. Reading lives in :mod:`sheets_bridge.sheets.ooxml`.
"""

from __future__ import annotations

import bisect
import math
import re
import threading
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sheets_bridge.dates import to_serial
from sheets_bridge.model import CellValue, Hours, OutOf, OutValue, Share
from sheets_bridge.sheets.ooxml import (
    COL_CACHE,
    DIGITS,
    DIMENSION_RE,
    NS_DOC_REL,
    NS_MAIN,
    ROW_NUM_RE,
    ROW_START_RE,
    TAG_PREFIX,
    SheetDataSpan,
    attrs_of,
    col_index,
    col_letters,
    escape_text,
    find_sheet_data,
    parse_range,
    row_digest,
)
from sheets_bridge.values import cell_text


@dataclass(frozen=True)
class CellLook:
    """How one cell is drawn, in the workbook's terms: bold, a number format, alignment, wrap.

    The bridge's own tabs use a handful of these; each becomes one ``cellXfs`` entry.
    """

    bold: bool = False
    number_format: str | None = None
    align: str | None = None
    wrap: bool = False


class RawCell:
    """One ``<c>`` inside a row body: its column, byte span and XML; attributes and body on demand.

    Patching touches every row that gets a write, so cells are found cheaply and only the few
    that are compared or replaced are looked into.
    """

    __slots__ = ("_attrs", "_body", "col", "end", "has_ref", "start", "xml")

    def __init__(self, col: int, start: int, end: int, xml: bytes, has_ref: bool) -> None:
        self.col = col
        self.start = start
        self.end = end
        self.xml = xml
        self.has_ref = has_ref
        self._attrs: dict[bytes, bytes] | None = None
        self._body: bytes | None = None

    def _parse(self) -> None:
        m = _CELL_TAG_RE.match(self.xml)
        if m is None:
            self._attrs, self._body = {}, None
            return
        self._attrs = attrs_of(m.group(1))
        if m.group(2):
            self._body = None
        else:
            close = self.xml.rfind(b"</")
            self._body = self.xml[m.end() : close] if close >= m.end() else None

    @property
    def attrs(self) -> dict[bytes, bytes]:
        if self._attrs is None:
            self._parse()
        assert self._attrs is not None
        return self._attrs

    @property
    def body(self) -> bytes | None:
        if self._attrs is None:
            self._parse()
        return self._body


_CELL_TAG_RE = re.compile(rb"<" + TAG_PREFIX + rb"c\b([^>]*?)(/?)>")
_ROW_CELL_RE = re.compile(
    rb"<"
    + TAG_PREFIX
    + rb"c\b(?:\s+r=\"([A-Za-z]{1,3})\d*\")?([^>]*?)(?:/>|>.*?</"
    + TAG_PREFIX
    + rb"c>)",
    re.DOTALL,
)


class RowCells:
    """The cells of one row body: columns and byte spans, with a RawCell built only on request.

    Patching touches every row that gets a write (all of them when a column is added, 100,000
    on a first sync), so the index is compact: the columns and spans in ``array`` form (no
    Python int per cell), positions relative to ``lo`` in ``inner``, which is the row body
    itself or the whole sheet part the row is in (no copy of the row), and nothing else kept.
    """

    __slots__ = ("_index", "cols", "ends", "has_ref", "hi", "inner", "lo", "ordered", "starts")

    def __init__(self, inner: bytes, lo: int = 0, hi: int | None = None) -> None:
        self.inner = inner
        self.lo = lo
        self.hi = len(inner) if hi is None else hi
        self.cols: Sequence[int] = _EMPTY
        self.starts: Sequence[int] = _EMPTY
        self.ends: Sequence[int] = _EMPTY
        self.has_ref: Sequence[int] = _EMPTY
        self.ordered = True
        """Each cell's column is right of the one before (no column twice)."""
        self._index: dict[int, int] | None = None

    def __len__(self) -> int:
        return len(self.cols)

    def body(self) -> bytes:
        """The row body's bytes (a copy)."""
        return self.inner[self.lo : self.hi]

    def in_order(self) -> bool:
        """Does every cell name its column (``r``), each to the right of the one before?"""
        return self.ordered and all(self.has_ref)

    def _find(self, col: int) -> int | None:
        cols = self.cols
        if self.ordered:
            i = bisect.bisect_left(cols, col)
            return i if i < len(cols) and cols[i] == col else None
        if self._index is None:
            # Out of order, or a column twice: the last cell for a column wins, as before.
            self._index = {c: i for i, c in enumerate(cols)}
        return self._index.get(col)

    def cell(self, col: int | None) -> RawCell | None:
        """The cell at 0-based ``col``, or None when the row has none there."""
        if col is None:
            return None
        i = self._find(col)
        if i is None:
            return None
        start, end = self.starts[i], self.ends[i]
        lo = self.lo
        return RawCell(col, start, end, self.inner[lo + start : lo + end], bool(self.has_ref[i]))


_EMPTY: Sequence[int] = array("i")


def row_cells(inner: bytes | None) -> RowCells:
    """The cells of one row body, with their byte spans, for patching."""
    return _row_cells(inner or b"", inner or b"", 0)


def row_cells_in(xml: bytes, lo: int, hi: int) -> RowCells:
    """:func:`row_cells` of the row body ``xml[lo:hi]``, kept as spans into ``xml``."""
    return _row_cells(xml, xml[lo:hi], lo)


def _row_cells(base: bytes, inner: bytes, lo: int) -> RowCells:
    """The common case (no prefixes, ``r`` first, nothing but cells in the row) is split on
    ``<c ``, several times faster than a regex scan; anything else takes the regex path."""
    out = RowCells(base, lo, lo + len(inner))
    if not inner:
        return out
    if (
        b"<c " in inner
        and b":c " not in inner
        and b"<c>" not in inner
        and b"extLst" not in inner
        and _row_cells_split(inner, out)
    ):
        return out
    col = -1
    cache = COL_CACHE
    cols: list[int] = []
    starts: list[int] = []
    ends: list[int] = []
    refs: list[int] = []
    for cm in _ROW_CELL_RE.finditer(inner):
        letters, a = cm.group(1), cm.group(2)
        if letters is not None:
            c = cache.get(letters)
            col = c if c is not None else col_index(letters)
            has_ref = True
        else:
            ref = attrs_of(a).get(b"r")
            col = col_index(ref.rstrip(DIGITS)) if ref else col + 1
            has_ref = bool(ref)
        cols.append(col)
        starts.append(cm.start())
        ends.append(cm.end())
        refs.append(has_ref)
    out.cols, out.starts, out.ends = array("i", cols), array("i", starts), array("i", ends)
    out.has_ref = array("b", refs)
    out.ordered = all(cols[i] < cols[i + 1] for i in range(len(cols) - 1))
    return out


def _row_cells_split(inner: bytes, out: RowCells) -> bool:
    chunks = inner.split(b"<c ")
    if chunks[0].strip():
        return False
    cols: list[int] = []
    starts: list[int] = []
    ends: list[int] = []
    cache = COL_CACHE
    pos = len(chunks[0])
    prev = -1
    ordered = True
    for ch in chunks[1:]:
        if ch[:3] != b'r="':
            return False
        q = ch.find(b'"', 3)
        letters = ch[3:q].rstrip(DIGITS)
        col = cache.get(letters)
        if col is None:
            if not letters.isalpha():
                return False
            col = col_index(letters)
        n = len(ch)
        if ch[-4:] == b"</c>" or ch[-2:] == b"/>":
            end = pos + 3 + n
        else:
            body = ch.rstrip()
            if not body.endswith((b"</c>", b"/>")):
                return False
            end = pos + 3 + len(body)
        if col <= prev:
            ordered = False
        prev = col
        cols.append(col)
        starts.append(pos)
        ends.append(end)
        pos += 3 + n
    out.cols, out.starts, out.ends = array("i", cols), array("i", starts), array("i", ends)
    out.has_ref = array("b", [1]) * len(cols)
    out.ordered = ordered
    return True


class RowSpan:
    """A ``<row>`` element's position in the sheet part (offsets only: the row's bytes stay
    in the part, and ``inner`` slices them when asked)."""

    __slots__ = ("attrs_raw", "end", "inner_end", "inner_start", "number", "prefix", "start",
                 "xml")

    def __init__(
        self, number: int, start: int, end: int, prefix: bytes, attrs_raw: bytes,
        inner_start: int, inner_end: int | None, xml: bytes,
    ) -> None:
        self.number = number
        self.start = start
        self.end = end
        self.prefix = prefix
        self.attrs_raw = attrs_raw
        self.inner_start = inner_start
        self.inner_end = inner_end
        """None for a self-closing ``<row/>``."""
        self.xml = xml

    @property
    def inner(self) -> bytes | None:
        """The row body (a copy), None for ``<row/>``."""
        if self.inner_end is None:
            return None
        return self.xml[self.inner_start : self.inner_end]

    def cells(self) -> RowCells:
        """The row's cell index, as spans into the sheet part."""
        if self.inner_end is None:
            return RowCells(b"")
        return row_cells_in(self.xml, self.inner_start, self.inner_end)


def index_rows(xml: bytes) -> tuple[dict[int, RowSpan], SheetDataSpan | None]:
    """Every row of a sheet by number, with spans into ``xml`` (cells are not parsed)."""
    out: dict[int, RowSpan] = {}
    span = find_sheet_data(xml)
    if span is None or span.inner_end is None:
        return out, span
    row_no = 0
    pos = span.inner_start
    end = span.inner_end
    while True:
        rm = ROW_START_RE.search(xml, pos, end)
        if rm is None:
            break
        attrs = rm.group(2)
        r_m = ROW_NUM_RE.search(attrs)
        row_no = int(r_m.group(1)) if r_m else row_no + 1
        if rm.group(3):  # <row .../>
            out[row_no] = RowSpan(
                row_no, rm.start(), rm.end(), rm.group(1), attrs, rm.end(), None, xml
            )
            pos = rm.end()
            continue
        close = b"</" + rm.group(1) + b"row>"
        stop = xml.find(close, rm.end(), end)
        if stop < 0:
            raise ValueError(f"worksheet row {row_no} is not terminated")
        out[row_no] = RowSpan(
            row_no, rm.start(), stop + len(close), rm.group(1), attrs, rm.end(), stop, xml
        )
        pos = stop + len(close)
    return out, span


def inline_string_cell(prefix: bytes, ref: str, style: bytes | None, text: str) -> bytes:
    """A cell holding ``text`` as an inline string: always text, never a formula (B18)."""
    s = b' s="' + style + b'"' if style is not None else b""
    p = prefix
    return b"".join(
        (
            b"<", p, b'c r="', ref.encode("ascii"), b'"', s, b' t="inlineStr"><', p, b"is><", p,
            b't xml:space="preserve">', escape_text(text).encode("utf-8", "surrogatepass"),
            b"</", p, b"t></", p, b"is></", p, b"c>",
        )
    )  # fmt: skip


def number_cell(prefix: bytes, ref: str, style: bytes | None, value: float) -> bytes:
    """A cell holding a number (a date serial, with a date style): never a formula."""
    s = b' s="' + style + b'"' if style is not None else b""
    p = prefix
    return b"".join(
        (b"<", p, b'c r="', ref.encode("ascii"), b'"', s, b"><", p, b"v>",
         cell_text(value).encode("ascii"), b"</", p, b"v></", p, b"c>")
    )  # fmt: skip


def empty_cell(prefix: bytes, ref: str, style: bytes | None) -> bytes:
    """A cell with no value that keeps its style (or nothing when it had none)."""
    if style is None:
        return b""
    return f'<{prefix.decode("ascii")}c r="{ref}" s="{style.decode("ascii")}"/>'.encode()


def add_ref_attr(cell_xml: bytes, ref: str) -> bytes:
    """Give a cell written without ``r`` an explicit one (its row is being rewritten)."""
    m = re.match(rb"<(" + TAG_PREFIX + rb")c\b", cell_xml)
    if not m:
        return cell_xml
    return cell_xml[: m.end()] + f' r="{ref}"'.encode() + cell_xml[m.end() :]


_HT_RE = re.compile(rb'\s+ht\s*=\s*["\']([\d.]+)["\']')
_CUSTOM_HT_RE = re.compile(rb'\s+customHeight\s*=\s*["\'][^"\']*["\']')


def row_height_attrs(attrs: bytes, lines: int) -> bytes:
    """``attrs`` of a row made tall enough for ``lines`` of wrapped bridge text (spreadsheets
    do not grow a row on opening). A height staff chose (not a multiple of the 15-point line
    the bridge uses) is kept; a row of one line goes back to the default height."""
    m = _HT_RE.search(attrs)
    if m is not None:
        try:
            current = float(m.group(1))
        except ValueError:
            return attrs
        if current % 15:
            return attrs  # a height staff chose
    bare = _CUSTOM_HT_RE.sub(b"", _HT_RE.sub(b"", attrs))
    if lines <= 1:
        return bare
    return bare.rstrip() + f' ht="{15 * lines}" customHeight="1"'.encode()


def rebuild_row(
    row: RowSpan,
    cells: RowCells,
    new_cells: dict[int, bytes],
    max_col: int,
    lines: int | None = None,
) -> bytes:
    """The row element with ``new_cells`` (col -> cell XML, b"" to delete) merged in by column.

    Untouched cells keep their bytes (plus an ``r`` when they had none, so that numbering stays
    right), and everything between cells (whitespace) is kept.
    """
    inner = cells.body()
    pending = sorted(new_cells.items())
    cols, starts, ends = cells.cols, cells.starts, cells.ends
    n = len(cols)
    pieces: list[bytes] = []
    if cells.in_order():
        # Copy the untouched stretches of the row in one slice each.
        pos = 0
        for col, xml in pending:
            idx = bisect.bisect_left(cols, col)
            if idx < n and cols[idx] == col:
                pieces.append(inner[pos : starts[idx]])
                pieces.append(xml)
                pos = ends[idx]
            else:
                at = starts[idx] if idx < n else (ends[-1] if n else pos)
                at = max(at, pos)
                pieces.append(inner[pos:at])
                pieces.append(xml)
                pos = at
        pieces.append(inner[pos:])
    else:
        pos = 0
        i = 0
        for k in range(n):
            col = cols[k]
            while i < len(pending) and pending[i][0] < col:
                pieces.append(pending[i][1])
                i += 1
            pieces.append(inner[pos : starts[k]])
            if i < len(pending) and pending[i][0] == col:
                pieces.append(pending[i][1])
                i += 1
            else:
                raw = inner[starts[k] : ends[k]]
                if not cells.has_ref[k]:
                    raw = add_ref_attr(raw, f"{col_letters(col)}{row.number}")
                pieces.append(raw)
            pos = ends[k]
        pieces.extend(xml for _, xml in pending[i:])
        pieces.append(inner[pos:])
    attrs = _update_spans(row.attrs_raw, max_col)
    if lines is not None:
        attrs = row_height_attrs(attrs.rstrip().rstrip(b"/"), lines)
    p = row.prefix
    if not _HAS_R_RE.search(row.attrs_raw):
        attrs = f' r="{row.number}"'.encode() + attrs
    body = b"".join(pieces)
    attrs = attrs.rstrip()
    if attrs.endswith(b"/"):
        attrs = attrs[:-1].rstrip()
    return b"<" + p + b"row" + attrs + b">" + body + b"</" + p + b"row>"


_HAS_R_RE = re.compile(rb"(?:^|\s)r\s*=")
_SPANS_RE = re.compile(rb"\bspans\s*=\s*\"(\d+):(\d+)\"")


def _update_spans(attrs: bytes, max_col: int) -> bytes:
    """Widen a row's optional ``spans`` hint so it covers a newly written column."""
    m = _SPANS_RE.search(attrs) if b"spans" in attrs else None
    if not m or int(m.group(2)) >= max_col + 1:
        return attrs
    new = f'spans="{m.group(1).decode()}:{max_col + 1}"'.encode()
    return attrs[: m.start()] + new + attrs[m.end() :]


def new_row(prefix: bytes, number: int, cells: dict[int, bytes]) -> bytes:
    """A row element that did not exist (row 1 in a sheet with no headers yet)."""
    body = b"".join(xml for _, xml in sorted(cells.items()))
    return (
        b"<" + prefix + b'row r="' + str(number).encode() + b'">' + body + b"</" + prefix + b"row>"
    )


def update_dimension(xml: bytes, max_row: int, max_col: int) -> tuple[int, int, bytes] | None:
    """A replacement for ``<dimension ref>`` covering ``max_row``/``max_col``, or None."""
    m = DIMENSION_RE.search(xml)
    if not m:
        return None
    try:
        cur = parse_range(m.group(1).decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        return None
    last_row = max(cur.last_row, max_row)
    last_col = max(cur.last_col, max_col)
    if (last_row, last_col) == (cur.last_row, cur.last_col):
        return None
    ref = (
        f"{col_letters(cur.first_col)}{cur.first_row}:{col_letters(last_col)}{last_row}"
    ).encode()
    return m.start(1), m.end(1), ref


def splice(data: bytes, edits: Iterable[tuple[int, int, bytes]]) -> bytes:
    """Apply non-overlapping (start, end, replacement) edits to ``data``."""
    return b"".join(splice_pieces(data, edits))


def splice_pieces(
    data: bytes, edits: Iterable[tuple[int, int, bytes]]
) -> list[bytes | memoryview]:
    """:func:`splice` as the pieces to write in order, the untouched stretches of ``data`` as
    zero-copy views: a patched sheet is written without a second whole copy of it."""
    view = memoryview(data)
    out: list[bytes | memoryview] = []
    pos = 0
    for start, end, new in sorted(edits, key=lambda e: (e[0], e[1])):
        if start > pos:
            out.append(view[pos:start])
        out.append(new)
        pos = end
    if pos < len(data):
        out.append(view[pos:])
    return out


_COLS_RE = re.compile(
    rb"<(" + TAG_PREFIX + rb")cols\b[^>]*?(?:/>|>(.*?)</" + TAG_PREFIX + rb"cols>)", re.DOTALL
)
_COL_RE = re.compile(rb"<" + TAG_PREFIX + rb"col\b([^>]*?)/?>", re.DOTALL)


def column_width_edit(
    xml: bytes, span: SheetDataSpan | None, widths: dict[int, tuple[int, bytes | None]]
) -> tuple[int, int, bytes] | None:
    """An edit giving newly added columns (0-based col -> (width in characters, style)) a
    ``<col>`` entry, as ``init`` does; columns a ``<col>`` range already covers are left as staff
    set them. None when there is nothing to add."""
    m = _COLS_RE.search(xml, 0, span.start if span is not None else len(xml))
    existing: list[tuple[int, int, bytes]] = []
    if m is not None and m.group(2):
        for cm in _COL_RE.finditer(m.group(2)):
            a = attrs_of(cm.group(1))
            try:
                lo, hi = int(a.get(b"min", b"0")), int(a.get(b"max", b"0"))
            except ValueError:
                lo = hi = 0
            existing.append((lo, hi, cm.group(0)))
    p = m.group(1) if m is not None else (span.prefix if span is not None else b"")
    added: list[tuple[int, int, bytes]] = []
    for col, (width, style) in sorted(widths.items()):
        n = col + 1
        if any(lo <= n <= hi for lo, hi, _ in existing):
            continue
        s = f' style="{style.decode("ascii")}"' if style is not None else ""
        attrs = f'min="{n}" max="{n}" width="{width + 0.7109375}" customWidth="1"{s}'
        added.append((n, n, b"<" + p + b"col " + attrs.encode("ascii") + b"/>"))
    if not added:
        return None
    cols = sorted(existing + added, key=lambda item: item[0])
    whole = b"<" + p + b"cols>" + b"".join(x for _, _, x in cols) + b"</" + p + b"cols>"
    if m is not None:
        return m.start(), m.end(), whole
    if span is None:
        return None
    return span.start, span.start, whole


# ------------------------------------------------------------------------------------ generation
#: Number formats of the bridge's typed values (model.OutValue), in spreadsheet codes.
DATETIME_FORMAT = "yyyy-mm-dd hh:mm"
DATE_FORMAT = "yyyy-mm-dd"
VALUE_FORMATS: tuple[tuple[type, str], ...] = (
    (Share, "0%"),
    (OutOf, '"of "0'),
    (Hours, "0.0"),
    (datetime, DATETIME_FORMAT),
    (date, DATE_FORMAT),
)


def value_format(value: OutValue) -> str | None:
    """The number format a typed value is drawn with (None: the workbook's General)."""
    for kind, code in VALUE_FORMATS:
        if isinstance(value, kind):
            return code
    return None


def generate_sheet(
    rows: Sequence[Sequence[OutValue]],
    *,
    style: Callable[[CellLook], int | None],
    heading_rows: Iterable[int],
    widths: Sequence[int],
    heading_cells: Iterable[tuple[int, int]] = (),
    right_cells: Iterable[tuple[int, int]] = (),
    wrap_cols: Iterable[int] = (),
    freeze_rows: int,
    landscape: bool = True,
    keep: Sequence[bytes] = (),
    max_chars: int = 32_767,
    date1904: bool = False,
    parsed: list[GeneratedRow] | None = None,
) -> bytes:
    """A whole worksheet part for a bridge-owned tab.

    ``parsed``, when given, receives each row as the next read will parse it (see
    :data:`GeneratedRow`), so a save can hand the tab to that read without it parsing the
    tab again.

    Strings are inline strings (so a value starting with ``=`` stays text, B18); numbers are plain
    numbers; a ``datetime`` or ``date`` is its serial with a date format, so it sorts and filters
    as a date; ``Share``/``OutOf``/``Hours`` get their number formats; ``None`` is no cell.
    ``style`` gives the cellXfs index of a :class:`CellLook`. ``keep`` are relationship-bearing
    elements in schema order: the ``<drawing r:id=..>`` holding the bridge's chart (and any
    drawing staff put on the tab), then ``<legacyDrawing>`` elements carried over from the sheet
    being replaced.
    """
    headings = set(heading_rows)
    bold_cells = set(heading_cells)
    right = set(right_cells)
    wrapped = set(wrap_cols)
    n_cols = max((len(r) for r in rows), default=0)
    parts: list[str] = [
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n',
        f'<worksheet xmlns="{NS_MAIN}" xmlns:r="{NS_DOC_REL}">',
        '<sheetPr><pageSetUpPr fitToPage="1"/></sheetPr>',
    ]
    last = f"{col_letters(max(n_cols - 1, 0))}{max(len(rows), 1)}"
    parts.append(f'<dimension ref="A1:{last}"/>' if rows else '<dimension ref="A1"/>')
    parts.append('<sheetViews><sheetView workbookViewId="0">')
    if freeze_rows > 0:
        top = f"A{freeze_rows + 1}"
        parts.append(
            f'<pane ySplit="{freeze_rows}" topLeftCell="{top}" activePane="bottomLeft" '
            f'state="frozen"/><selection pane="bottomLeft" activeCell="{top}" sqref="{top}"/>'
        )
    parts.append("</sheetView></sheetViews>")
    parts.append('<sheetFormatPr defaultRowHeight="15"/>')
    if any(w > 0 for w in widths):
        parts.append("<cols>")
        for i, w in enumerate(widths):
            if w > 0:
                parts.append(
                    f'<col min="{i + 1}" max="{i + 1}" width="{w + 0.7109375}" customWidth="1"/>'
                )
        parts.append("</cols>")
    parts.append("<sheetData>")
    letters = [col_letters(c) for c in range(n_cols)]
    # By plain tuples, not CellLook: a frozen dataclass costs a microsecond to build and to
    # hash, and a Follow-ups tab has tens of thousands of cells drawn with a handful of looks.
    looks: dict[tuple[bool, str | None, str | None, bool], str] = {}

    def s_attr(bold: bool, number_format: str | None, align: str | None, wrap: bool) -> str:
        key = (bold, number_format, align, wrap)
        found = looks.get(key)
        if found is None:
            index = style(
                CellLook(bold=bold, number_format=number_format, align=align, wrap=wrap)
            )
            found = looks[key] = f' s="{index}"' if index is not None else ""
        return found

    bold_by_row: dict[int, set[int]] = {}
    for br, bc in bold_cells:
        bold_by_row.setdefault(br, set()).add(bc)
    right_by_row: dict[int, set[int]] = {}
    for rr, rc in right:
        right_by_row.setdefault(rr, set()).add(rc)
    no_cols: frozenset[int] = frozenset()
    tab_key = (tuple(widths), tuple(sorted(wrapped)), max_chars, date1904)
    held = _ROW_TEMPLATES.get(tab_key, {})
    made: dict[tuple[object, ...], _RowTemplate] = {}
    kinds_pool: dict[tuple[type, ...], tuple[type, ...]] = {}
    looks_pool: dict[_Looks, _Looks] = {}

    for r, row in enumerate(rows):
        if not any(v is not None for v in row):
            continue
        num = str(r + 1)
        heading = r in headings
        bold_here = frozenset(c for c in bold_by_row.get(r, no_cols) if c < len(row))
        right_here = frozenset(right_by_row.get(r, no_cols))
        cells = tuple(row)
        kinds = tuple(map(type, cells))
        kinds = kinds_pool.setdefault(kinds, kinds)  # a handful per tab: held once
        key = (cells, kinds, heading, bold_here, right_here)
        template = made.get(key) or held.get(key)
        if template is None or any(s_attr(*look) != s for look, s in template.looks):
            template = _row_template(
                cells, widths, wrapped, letters, s_attr, looks_pool, heading=heading,
                bold_here=bold_here, right_here=right_here, max_chars=max_chars,
                date1904=date1904,
            )
        made[key] = template
        parts.append(template.open_tag.replace(_NUM, num))
        segment = template.cells.replace(_NUM, num)
        parts.append(segment)
        if parsed is not None and template.readable:
            digest = row_digest(memoryview(segment.encode("utf-8")))
            parsed.append((digest, template.values, template.numbers))
    with _TEMPLATES_LOCK:  # a digest job may draw a tab in another thread
        _ROW_TEMPLATES.pop(tab_key, None)
        _ROW_TEMPLATES[tab_key] = made  # this tab's rows only, as its latest generation drew
        while len(_ROW_TEMPLATES) > _TABS_HELD:
            _ROW_TEMPLATES.pop(next(iter(_ROW_TEMPLATES)))
    parts.append("</sheetData>")
    parts.append(
        '<pageMargins left="0.4" right="0.4" top="0.5" bottom="0.5" header="0.3" footer="0.3"/>'
    )
    # Printed, a summary tab is one page wide and as many pages long as it needs; the layouts
    # are narrow enough that this is a readable size, not a shrunken page.
    orientation = "landscape" if landscape else "portrait"
    parts.append(f'<pageSetup orientation="{orientation}" fitToWidth="1" fitToHeight="0"/>')
    out = "".join(parts).encode("utf-8")
    return out + b"".join(keep) + b"</worksheet>"



#: The looks a row's cells were drawn with, each with the ``s`` attribute it was drawn as.
_Looks = tuple[tuple[tuple[bool, str | None, str | None, bool], str], ...]


@dataclass(frozen=True, slots=True)
class _RowTemplate:
    """One generated row with its number left out: the row's XML is ``open_tag`` then
    ``cells`` with :data:`_NUM` replaced by the number, the only thing that changes when rows
    above it come and go (a Follow-ups tab after an edit: most rows the same, many moved).
    One string each, not the pieces between the numbers: a 50,000-row tab's templates are
    then a quarter of the memory."""

    open_tag: str
    cells: str
    values: tuple[CellValue, ...]
    numbers: tuple[tuple[int, bytes], ...]
    readable: bool
    looks: _Looks
    """The looks the row's cells were drawn with and their ``s`` attribute then: a template
    is reused only while the workbook still gives each look the same style."""


#: By a tab's drawing settings (widths, wrap columns, cut-off, date system): its latest
#: generation's row templates, by row (values, their types, heading, bold and right cells).
#: A cell's XML is a function of exactly these and of the looks' styles, which each template
#: checks; only the latest generation of each is kept, for a few tabs.
_ROW_TEMPLATES: dict[tuple[object, ...], dict[tuple[object, ...], _RowTemplate]] = {}
_TABS_HELD = 8
_TEMPLATES_LOCK = threading.Lock()
#: Stands for the row number while a template is drawn: ``escape_text`` turns a NUL in a
#: cell's text into ``_x0000_``, and nothing else drawn holds one.
_NUM = "\x00"


def _row_template(
    row: tuple[OutValue, ...],
    widths: Sequence[int],
    wrapped: set[int],
    letters: list[str],
    s_attr: Callable[[bool, str | None, str | None, bool], str],
    looks_pool: dict[_Looks, _Looks],
    *,
    heading: bool,
    bold_here: frozenset[int],
    right_here: frozenset[int],
    max_chars: int,
    date1904: bool,
) -> _RowTemplate:
    """Draw one row of :func:`generate_sheet` with :data:`_NUM` for its number. Rows drawn
    alike share one tuple of looks from ``looks_pool`` (a tab has a handful of them)."""
    lines = _row_lines(row, widths, heading=heading, bold=set(bold_here), wrapped=wrapped)
    if lines > 1:
        # Spreadsheets do not grow a row for wrapped text on opening: say how tall it is.
        open_tag = f'<row r="{_NUM}" ht="{15 * lines}" customHeight="1">'
    else:
        open_tag = f'<row r="{_NUM}">'
    parts: list[str] = []
    values: list[CellValue] = []
    numbers: list[tuple[int, bytes]] = []
    looks: dict[tuple[bool, str | None, str | None, bool], str] = {}
    readable = True

    def look(bold: bool, number_format: str | None, align: str | None, wrap: bool) -> str:
        key = (bold, number_format, align, wrap)
        found = looks[key] = s_attr(*key)
        return found

    for c, value in enumerate(row):
        if value is None:
            continue
        ref = f"{letters[c]}{_NUM}"
        bold = heading or c in bold_here
        align = "right" if c in right_here else None
        read: CellValue
        text: str | None = None  # a cell drawn as text, below
        if type(value) is str:  # most cells: without the type tests
            text = value[:max_chars]
        elif isinstance(value, bool):
            s = look(bold, None, align, False)
            parts.append(f'<c r="{ref}"{s} t="b"><v>{int(value)}</v></c>')
            read = bool(value)
        elif isinstance(value, datetime | date) or (
            isinstance(value, int | float) and math.isfinite(value)
        ):
            s = look(bold, value_format(value), align, False)
            shown = cell_text(
                to_serial(value, date1904) if isinstance(value, datetime | date) else value
            )
            parts.append(f'<c r="{ref}"{s}><v>{shown}</v></c>')
            read = number_read(shown)
            if read is None:
                readable = False
            elif s:
                numbers.append((c, s[4:-1].encode("ascii")))  # ' s="N"': a date style?
        else:
            text = str(value)[:max_chars]
        if text is not None:
            wrap = _wraps(row, c, widths) if bold else ("\n" in text or c in wrapped)
            s = look(bold, None, align, wrap)
            parts.append(
                f'<c r="{ref}"{s} t="inlineStr"><is><t xml:space="preserve">'
                f"{escape_text(text)}</t></is></c>"
            )
            read = text or None
        if read is not None:
            if c > len(values):
                values.extend([None] * (c - len(values)))
            values.append(read)
    parts.append("</row>")
    drawn = tuple(looks.items())
    return _RowTemplate(
        open_tag, "".join(parts), tuple(values), tuple(numbers), readable,
        looks_pool.setdefault(drawn, drawn),
    )

#: A generated row as the next read parses it: (the memo key of its bytes, its values with a
#: number cell's value as a plain number, the (column, style index) of each number cell that
#: has a style: whether that style shows a date is the written file's to say, see
#: ``xlsx._tab_entry``). A row whose cells the read might parse otherwise is left out.
GeneratedRow = tuple[bytes, tuple[CellValue, ...], tuple[tuple[int, bytes], ...]]


def number_read(shown: str) -> int | float | None:
    """What the reader makes of a number cell's ``<v>`` text (``ooxml.RowScanner``'s rule),
    None when it would not read it as a number."""
    v = shown.encode("ascii", "replace")
    try:
        if b"." in v or b"E" in v or b"e" in v:
            f = float(v)
            return int(f) if f.is_integer() and abs(f) < 1e15 else f
        return int(v) if v else None
    except ValueError:
        return None


def _wraps(row: Sequence[OutValue], c: int, widths: Sequence[int]) -> bool:
    """A header too long for its column wraps when it cannot run on into the next cell (a
    table's header row); a section title with nothing beside it runs on as it is."""
    value = row[c]
    if not isinstance(value, str):
        return False
    nxt = row[c + 1] if c + 1 < len(row) else None
    return len(value) > _room(widths, c) and (nxt is not None or c > 0)


def _room(widths: Sequence[int], c: int) -> int:
    return widths[c] if c < len(widths) and widths[c] > 0 else 8


def text_lines(text: str, room: int) -> int:
    """Lines ``text`` takes word-wrapped in a column ``room`` characters wide."""
    lines = 0
    for paragraph in text.split("\n"):
        lines += 1
        used = 0
        for word in paragraph.split():
            need = len(word) if used == 0 else used + 1 + len(word)
            if need > room and used:
                lines += 1
                used = len(word)
            else:
                used = need
    return lines


def _row_lines(
    row: Sequence[OutValue],
    widths: Sequence[int],
    *,
    heading: bool,
    bold: set[int],
    wrapped: set[int],
) -> int:
    """How many lines the tallest wrapped cell of ``row`` takes (1 when nothing wraps)."""
    most = 1
    for c, value in enumerate(row):
        if not isinstance(value, str):
            continue
        if heading or c in bold:
            if not _wraps(row, c, widths):
                continue
        elif "\n" not in value and c not in wrapped:
            continue
        most = max(most, text_lines(value, _room(widths, c)))
    return min(most, 20)


# Elements of a replaced sheet that point at parts through its relationships and stay valid on a
# regenerated sheet (a chart drawn on the Dashboard; comment boxes), in schema order.
_KEEP_RE = re.compile(
    rb"<" + TAG_PREFIX + rb"(?:drawing|legacyDrawing|legacyDrawingHF)\b[^>]*?/>", re.DOTALL
)


def kept_elements(old_sheet: bytes) -> list[bytes]:
    """The relationship-bearing elements of an old sheet that a regenerated one keeps."""
    out: list[bytes] = []
    for m in _KEEP_RE.finditer(old_sheet):
        el = m.group(0)
        # Re-home the element in the default namespace with an explicit r namespace declaration,
        # whatever prefixes the old part used.
        name_m = re.match(rb"<(?:[\w.-]+:)?(\w+)", el)
        assert name_m is not None
        rid_m = re.search(rb"(?:[\w.-]+:)?id\s*=\s*[\"']([^\"']+)[\"']", el)
        if rid_m:
            out.append(b"<" + name_m.group(1) + b' r:id="' + rid_m.group(1) + b'"/>')
    return out
