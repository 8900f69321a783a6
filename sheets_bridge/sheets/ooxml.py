"""Low-level reading and patching of SpreadsheetML (``.xlsx``) parts, without a DOM.

Why not openpyxl or a full tree: openpyxl needs ~5 s to load and ~5 s to save a 10,000-row
workbook and drops charts, shapes and extensions on save; an lxml tree of a big sheet costs
hundreds of megabytes. The bridge only needs cell values and must change a handful of cells, so
the Referrals sheet is scanned with precompiled byte regexes, and a write rewrites only the bytes
of the ``<row>`` elements it touches. Everything here is pure (bytes in, bytes or values out); the
file handling and the compare-and-set live in ``xlsx.py``.

Tolerated input, because staff files come from many generators: namespace prefixes
(``<x:row>``), rows and cells without ``r`` (numbered sequentially), single-quoted attributes,
XML entities, OOXML ``_xHHHH_`` escapes, rich-text runs with phonetic ``<rPh>`` runs, UTF-16 parts.
"""

from __future__ import annotations

import bisect
import math
import posixpath
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

from lxml import etree

from sheets_bridge.model import CellError, CellRange, CellValue, DateSerial, OutValue
from sheets_bridge.values import cell_text

NS_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
NS_DOC_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
NS_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
NS_CT = "http://schemas.openxmlformats.org/package/2006/content-types"
REL_WORKSHEET = NS_DOC_REL + "/worksheet"
CT_WORKSHEET = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"

# ------------------------------------------------------------------------------------ regexes
# A prefix like ``x:`` is allowed on every element: some generators bind the main namespace to one.
_P = rb"(?:[A-Za-z_][\w.-]*:)?"
ROW_RE = re.compile(rb"<(" + _P + rb")row\b([^>]*?)(?:/>|>(.*?)</" + _P + rb"row>)", re.DOTALL)
CELL_RE = re.compile(rb"<" + _P + rb"c\b([^>]*?)(?:/>|>(.*?)</" + _P + rb"c>)", re.DOTALL)
ATTR_RE = re.compile(rb"([\w:.-]+)\s*=\s*(?:\"([^\"]*)\"|'([^']*)')")
V_RE = re.compile(rb"<" + _P + rb"v(?:\s[^>]*)?(?:/>|>(.*?)</" + _P + rb"v>)", re.DOTALL)
F_RE = re.compile(rb"<" + _P + rb"f\b([^>]*?)(?:/>|>)", re.DOTALL)
IS_RE = re.compile(rb"<" + _P + rb"is\b[^>]*?(?:/>|>(.*?)</" + _P + rb"is>)", re.DOTALL)
RPH_RE = re.compile(rb"<" + _P + rb"rPh\b.*?</" + _P + rb"rPh>", re.DOTALL)
T_RE = re.compile(rb"<" + _P + rb"t\b[^>]*?(?:/>|>(.*?)</" + _P + rb"t>)", re.DOTALL)
SI_RE = re.compile(rb"<" + _P + rb"si\b[^>]*?(?:/>|>(.*?)</" + _P + rb"si>)", re.DOTALL)
MERGE_RE = re.compile(rb"<" + _P + rb"mergeCell\b[^>]*?\bref\s*=\s*[\"']([^\"']+)[\"']", re.DOTALL)
SHEETDATA_OPEN_RE = re.compile(rb"<(" + _P + rb")sheetData\b[^>]*?(/?)>")
# One pass over sheetData finds row start tags and whole cells. The first cell alternative is the
# shape Excel writes for nearly every cell (``<c ...><v>42</v></c>``) and costs no second look.
SCAN_RE = re.compile(
    rb"<" + _P + rb"(?:row\b([^>]*)>"  # 1: a row's attributes
    # 2-5: a cell's r letters, s and t in the order every common generator writes them, then the
    # rest of its attributes (which hold r, s or t themselves when the order differs)
    rb'|c\b(?:\s+r="([A-Za-z]{1,3})\d*")?(?:\s+s="(\d+)")?(?:\s+t="([A-Za-z]+)")?([^>]*?)'
    rb"(?:/>"
    rb"|><v>([^<]*)</v></" + _P + rb"c>"  # 6: a plain value, most cells
    rb'|><is><t(?: xml:space="preserve")?>([^<]*)</t></is></' + _P + rb"c>"  # 7: inline text
    rb"|>(.*?)</" + _P + rb"c>))",  # 8: anything else (formulas, rich text, prefixes)
    re.DOTALL,
)
ROW_START_RE = re.compile(rb"<(" + _P + rb")row\b([^>]*?)(/?)>")
FAST_CELL_ATTRS_RE = re.compile(
    rb'\s*r="([A-Za-z]{1,3})\d*"(?:\s+s="(\d+)")?(?:\s+t="([A-Za-z]+)")?\s*'
)
ROW_NUM_RE = re.compile(rb"(?:^|\s)r\s*=\s*[\"'](\d+)[\"']")
HIDDEN_RE = re.compile(rb"(?:^|\s)hidden\s*=\s*[\"'](?:1|true)[\"']")
DIMENSION_RE = re.compile(
    rb"<" + _P + rb"dimension\b[^>]*?\bref\s*=\s*[\"']([^\"']*)[\"']", re.DOTALL
)
REF_RE = re.compile(r"^\$?([A-Za-z]{1,3})\$?(\d+)$")
_DIGITS = b"0123456789"

_ENT_RE = re.compile(r"&(?:#(\d+)|#[xX]([0-9A-Fa-f]+)|(amp|lt|gt|quot|apos));")
_ENTITIES = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}
_XESC_RE = re.compile(r"_x([0-9A-Fa-f]{4})_")
_LITERAL_XESC_RE = re.compile(r"_(?=x[0-9A-Fa-f]{4}_)")
_CTRL_RE = re.compile("[\x00-\x08\x0b\x0c\x0d\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_NEEDS_XESC_RE = re.compile(
    "_x[0-9A-Fa-f]{4}_|[\x00-\x08\x0b\x0c\x0d\x0e-\x1f\ufffe\uffff\ud800-\udfff]"
)


# ------------------------------------------------------------------------------------ text
def _entity(m: re.Match[str]) -> str:
    if m.group(1):
        return chr(int(m.group(1)))
    if m.group(2):
        return chr(int(m.group(2), 16))
    return _ENTITIES[m.group(3)]


def xml_unescape(text: str) -> str:
    """Undo XML escaping the way a parser would (line ends normalised, entities resolved)."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "&" in text:
        text = _ENT_RE.sub(_entity, text)
    return text


def ooxml_unescape(text: str) -> str:
    """Undo the ``_xHHHH_`` escapes Excel uses for control characters (``_x005F_`` is ``_``)."""
    if "_x" not in text:
        return text
    return _XESC_RE.sub(lambda m: chr(int(m.group(1), 16)), text)


def decode_text(raw: bytes) -> str:
    """Text content bytes of a ``<t>`` or ``<v>`` element as the string Excel shows."""
    return ooxml_unescape(xml_unescape(raw.decode("utf-8", "replace")))


def escape_text(text: str) -> str:
    """Escape a string for a ``<t>`` element so Excel shows exactly ``text``.

    A literal ``_x0041_`` is protected as ``_x005F_x0041_``; characters XML cannot carry become
    ``_xHHHH_``; ``& < >`` become entities.
    """
    if _NEEDS_XESC_RE.search(text):
        text = _LITERAL_XESC_RE.sub("_x005F_", text)
        text = _CTRL_RE.sub(lambda m: f"_x{ord(m.group()):04X}_", text)
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    return text


def escape_attr(text: str) -> str:
    """Escape a string for a double-quoted XML attribute."""
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("\n", "&#10;")
        .replace("\r", "&#13;")
        .replace("\t", "&#9;")
    )


def rich_text(inner: bytes) -> str:
    """Concatenate the ``<t>`` runs of an ``<si>`` or ``<is>`` body, skipping phonetic runs."""
    if b"rPh" in inner:
        inner = RPH_RE.sub(b"", inner)
    return "".join(decode_text(t) for t in T_RE.findall(inner) if t)


def to_utf8(data: bytes) -> bytes:
    """A part as UTF-8 bytes; UTF-16 parts (rare, but legal) are transcoded and relabelled."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        text = data.decode("utf-16")
        text = re.sub(r"(<\?xml[^>]*encoding=[\"'])[Uu][Tt][Ff]-?16([\"'])", r"\1UTF-8\2", text)
        return text.encode("utf-8")
    return data


# ------------------------------------------------------------------------------------ refs
_COL_CACHE: dict[bytes, int] = {}


def col_index(letters: bytes | str) -> int:
    """0-based column of ``"A"``, ``"AB"``...; cached because every cell asks."""
    key = letters.encode() if isinstance(letters, str) else letters
    col = _COL_CACHE.get(key)
    if col is None:
        n = 0
        for ch in key.upper():
            n = n * 26 + (ch - 64)
        col = n - 1
        _COL_CACHE[key] = col
    return col


_LETTERS_CACHE: dict[int, str] = {}


def col_letters(col: int) -> str:
    """Letters of a 0-based column."""
    out = _LETTERS_CACHE.get(col)
    if out is None:
        n = col + 1
        out = ""
        while n:
            n, rem = divmod(n - 1, 26)
            out = chr(65 + rem) + out
        _LETTERS_CACHE[col] = out
    return out


def parse_ref(ref: str) -> tuple[int, int]:
    """``"C7"`` -> (row 7, col 2)."""
    m = REF_RE.match(ref.strip())
    if not m:
        raise ValueError(f"not a cell reference: {ref!r}")
    return int(m.group(2)), col_index(m.group(1))


def parse_range(ref: str) -> CellRange:
    """``"A1:B3"`` (or a single cell) -> CellRange with 1-based rows, 0-based columns."""
    first, _, last = ref.partition(":")
    r1, c1 = parse_ref(first)
    r2, c2 = parse_ref(last) if last else (r1, c1)
    return CellRange(min(r1, r2), min(c1, c2), max(r1, r2), max(c1, c2))


def attrs_of(raw: bytes) -> dict[bytes, bytes]:
    """Attributes of a start tag's attribute text (values still XML-escaped)."""
    if b"'" not in raw:
        return {k: v for k, v, _ in ATTR_RE.findall(raw)}
    return {k: (v if v or not q else q) for k, v, q in ATTR_RE.findall(raw)}


# ------------------------------------------------------------------------------------ styles
_BUILTIN_DATE_IDS = frozenset(
    list(range(14, 23)) + list(range(27, 37)) + list(range(45, 48)) + list(range(50, 59))
)
_FMT_NOISE_RE = re.compile(r'"[^"]*"|\[[^\]]*\]|\\.|_.|\*.')


def is_date_format(num_fmt_id: int, code: str | None) -> bool:
    """True when a number format shows a date or time (built-in id, or d/m/y/h/s in the code)."""
    if code is None:
        return num_fmt_id in _BUILTIN_DATE_IDS
    stripped = code.strip()
    if stripped.lower() in ("general", "@", ""):
        return False
    bare = _FMT_NOISE_RE.sub("", stripped).lower()
    return any(ch in bare for ch in "dmyhs")


def date_styles(styles_xml: bytes | None) -> list[bool]:
    """For each cellXfs index (a cell's ``s``): does that style show numbers as dates?"""
    if not styles_xml:
        return []
    root = etree.fromstring(to_utf8(styles_xml), parser=_parser())
    codes: dict[int, str] = {}
    for el in root.iter("{*}numFmt"):
        try:
            codes[int(el.get("numFmtId", ""))] = el.get("formatCode", "")
        except ValueError:
            continue
    out: list[bool] = []
    for xfs in root.iter("{*}cellXfs"):
        for xf in xfs.iterchildren("{*}xf"):
            try:
                fmt_id = int(xf.get("numFmtId", "0"))
            except ValueError:
                fmt_id = 0
            out.append(is_date_format(fmt_id, codes.get(fmt_id)))
        break
    return out


def _parser() -> etree.XMLParser:
    # resolve_entities/no_network: a workbook is untrusted input (no XXE, no fetching).
    return etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)


def parse_xml(data: bytes) -> etree._Element:
    """Parse a small part (workbook, rels, styles) safely."""
    return etree.fromstring(to_utf8(data), parser=_parser())


def shared_strings(xml: bytes | None) -> list[str]:
    """The shared-string table, rich-text runs concatenated, phonetic runs ignored."""
    if not xml:
        return []
    out: list[str] = []
    append = out.append
    for m in SI_RE.finditer(to_utf8(xml)):
        inner = m.group(1)
        if not inner:
            append("")
        elif inner[:3] == b"<t>" and inner.count(b"<") == 2:
            append(decode_text(inner[3:-4]))
        else:
            append(rich_text(inner))
    return out


# ------------------------------------------------------------------------------------ values
_EPOCH_1900 = datetime(1899, 12, 30)
_EPOCH_1904 = datetime(1904, 1, 1)


def iso_to_serial(text: str, date1904: bool) -> CellValue:
    """A ``t="d"`` cell's ISO 8601 text as a DateSerial in the workbook's epoch."""
    epoch = _EPOCH_1904 if date1904 else _EPOCH_1900
    text = text.strip()
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        try:
            t = time.fromisoformat(text.lstrip("T"))
        except ValueError:
            return text or None
        secs = t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6
        return DateSerial(secs / 86400)
    delta: timedelta = dt.replace(tzinfo=None) - epoch
    return DateSerial(delta.days + delta.seconds / 86400 + delta.microseconds / 86400e6)


@dataclass
class ValueContext:
    """What turning a cell's bytes into a value needs from the rest of the workbook."""

    shared: Sequence[str]
    date_style: Sequence[bool]
    date1904: bool = False


def number(raw: bytes) -> float | int:
    """``<v>`` of a numeric cell: an int when written without fraction or exponent."""
    raw = raw.strip()
    if b"." in raw or b"e" in raw or b"E" in raw:
        f = float(raw)
        return int(f) if f.is_integer() and abs(f) < 1e15 else f
    return int(raw)


def cell_value(attrs: dict[bytes, bytes], body: bytes | None, ctx: ValueContext) -> CellValue:
    """The value of one ``<c>`` given its attributes and body bytes."""
    if not body:
        return None
    t = attrs.get(b"t", b"n")
    if t == b"inlineStr":
        m = IS_RE.search(body)
        text = rich_text(m.group(1)) if m and m.group(1) else ""
        return text or None
    if body[:3] == b"<v>" and body[-4:] == b"</v>":
        v: bytes | None = body[3:-4]
    else:
        vm = V_RE.search(body)
        v = vm.group(1) if vm else None
    if v is None:
        return None
    if t == b"s":
        try:
            return ctx.shared[int(v)] or None
        except (ValueError, IndexError):
            return None
    if t == b"n":
        if not v.strip():
            return None
        try:
            n = number(v)
        except ValueError:
            return decode_text(v)
        s = attrs.get(b"s")
        if s is not None and ctx.date_style:
            try:
                if ctx.date_style[int(s)]:
                    return DateSerial(n)
            except (ValueError, IndexError):
                pass
        return n
    if t == b"str":
        return decode_text(v) or None
    if t == b"b":
        return v.strip() in (b"1", b"true")
    if t == b"e":
        return CellError(decode_text(v))
    if t == b"d":
        return iso_to_serial(decode_text(v), ctx.date1904)
    return decode_text(v) or None


# ------------------------------------------------------------------------------------ sheets
@dataclass
class SheetValues:
    """A worksheet's cells as values, keyed by 1-based row number."""

    rows: dict[int, tuple[CellValue, ...]] = field(default_factory=dict)
    hidden: set[int] = field(default_factory=set)
    merged: list[CellRange] = field(default_factory=list)
    formulas: set[tuple[int, int]] = field(default_factory=set)


@dataclass
class SheetDataSpan:
    """Where ``<sheetData>`` is: the whole element, its body (None when self-closing), prefix."""

    start: int
    end: int
    inner_start: int
    inner_end: int | None
    prefix: bytes


def find_sheet_data(xml: bytes) -> SheetDataSpan | None:
    """Locate ``<sheetData>`` without a lazy regex over megabytes (bytes.find is much faster)."""
    m = SHEETDATA_OPEN_RE.search(xml)
    if not m:
        return None
    if m.group(2):
        return SheetDataSpan(m.start(), m.end(), m.end(), None, m.group(1))
    close = b"</" + m.group(1) + b"sheetData>"
    end = xml.find(close, m.end())
    if end < 0:
        raise ValueError("worksheet has an unterminated <sheetData>")
    return SheetDataSpan(m.start(), end + len(close), m.end(), end, m.group(1))


def read_sheet(xml: bytes, ctx: ValueContext) -> SheetValues:
    """Scan a worksheet part into values: one pass of byte regexes, no tree.

    This is the hot loop of every cycle (240,000 cells for a 10,000-row sheet), hence the
    inlined fast paths for numbers and shared strings in the attribute order Excel writes.
    """
    out = SheetValues()
    span = find_sheet_data(xml)
    if span is not None and span.inner_end is not None:
        rows = out.rows
        hidden = out.hidden
        formulas = out.formulas
        shared = ctx.shared
        n_shared = len(shared)
        date_by_s = {str(i).encode(): flag for i, flag in enumerate(ctx.date_style)}
        cache = _COL_CACHE
        row_no = 0
        col = -1
        values: list[CellValue] = []
        for m in SCAN_RE.finditer(xml, span.inner_start, span.inner_end):
            rattrs, letters, s, t, rest, v, inline, body = m.groups()
            if rattrs is not None:  # a new row starts
                if values:
                    rows[row_no] = tuple(values)
                    values = []
                rm = ROW_NUM_RE.search(rattrs)
                row_no = int(rm.group(1)) if rm else row_no + 1
                if b"hidden" in rattrs and HIDDEN_RE.search(rattrs):
                    hidden.add(row_no)
                col = -1
                continue
            if rest and rest.strip() and rest.strip() != b"/":
                extra = attrs_of(rest)
                if letters is None and b"r" in extra:
                    letters = extra[b"r"].rstrip(_DIGITS)
                s = s if s is not None else extra.get(b"s")
                t = t if t is not None else extra.get(b"t")
            if letters is not None:
                c = cache.get(letters)
                col = c if c is not None else col_index(letters)
            else:
                col += 1
            val: CellValue
            if v is not None:
                if t is None or t == b"n":
                    if not v:
                        continue
                    try:
                        if b"." in v or b"E" in v or b"e" in v:
                            f = float(v)
                            val = int(f) if f.is_integer() and abs(f) < 1e15 else f
                        else:
                            val = int(v)
                    except ValueError:
                        val = decode_text(v) or None
                    else:
                        if s is not None and date_by_s.get(s):
                            val = DateSerial(val)
                elif t == b"s":
                    try:
                        i = int(v)
                    except ValueError:
                        continue
                    val = shared[i] or None if 0 <= i < n_shared else None
                else:
                    attrs = {b"t": t} if s is None else {b"t": t, b"s": s}
                    val = cell_value(attrs, b"<v>" + v + b"</v>", ctx)
            elif inline is not None:  # the inline string the bridge itself writes
                if b"&" in inline or b"_x" in inline or b"\r" in inline:
                    val = decode_text(inline) or None
                else:
                    val = inline.decode("utf-8", "replace") or None
            else:
                if not body:
                    continue
                if (b"<f" in body or b":f" in body) and F_RE.search(body):
                    formulas.add((row_no, col))
                attrs = {}
                if t is not None:
                    attrs[b"t"] = t
                if s is not None:
                    attrs[b"s"] = s
                val = cell_value(attrs, body, ctx)
            if val is None:
                continue
            n = len(values)
            if col == n:
                values.append(val)
            elif col > n:
                values.extend([None] * (col - n))
                values.append(val)
            elif col >= 0:
                values[col] = val
        if values:
            rows[row_no] = tuple(values)
    for ref in MERGE_RE.findall(xml):
        try:
            out.merged.append(parse_range(ref.decode("ascii")))
        except (ValueError, UnicodeDecodeError):
            continue
    return out


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


_CELL_TAG_RE = re.compile(rb"<" + _P + rb"c\b([^>]*?)(/?)>")
_ROW_CELL_RE = re.compile(
    rb"<" + _P + rb"c\b(?:\s+r=\"([A-Za-z]{1,3})\d*\")?([^>]*?)(?:/>|>.*?</" + _P + rb"c>)",
    re.DOTALL,
)


class RowCells:
    """The cells of one row body: columns and byte spans, with a RawCell built only on request.

    Patching touches every row that gets a write (all of them when a column is added), so the
    scan keeps three plain lists and looks into just the cells it compares or replaces.
    """

    __slots__ = ("_index", "cols", "ends", "has_ref", "inner", "starts")

    def __init__(self, inner: bytes) -> None:
        self.inner = inner
        self.cols: list[int] = []
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.has_ref: list[bool] = []
        self._index: dict[int, int] | None = None

    def __len__(self) -> int:
        return len(self.cols)

    def cell(self, col: int | None) -> RawCell | None:
        """The cell at 0-based ``col``, or None when the row has none there."""
        if col is None:
            return None
        if self._index is None:
            self._index = {c: i for i, c in enumerate(self.cols)}
        i = self._index.get(col)
        if i is None:
            return None
        start, end = self.starts[i], self.ends[i]
        return RawCell(col, start, end, self.inner[start:end], self.has_ref[i])


def row_cells(inner: bytes | None) -> RowCells:
    """The cells of one row body, with their byte spans, for patching.

    The common case (no prefixes, ``r`` first, nothing but cells in the row) is split on ``<c ``,
    several times faster than a regex scan; anything else takes the regex path.
    """
    out = RowCells(inner or b"")
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
    out = RowCells(inner)
    col = -1
    cache = _COL_CACHE
    for cm in _ROW_CELL_RE.finditer(inner):
        letters, a = cm.group(1), cm.group(2)
        if letters is not None:
            c = cache.get(letters)
            col = c if c is not None else col_index(letters)
            has_ref = True
        else:
            ref = attrs_of(a).get(b"r")
            col = col_index(ref.rstrip(_DIGITS)) if ref else col + 1
            has_ref = bool(ref)
        out.cols.append(col)
        out.starts.append(cm.start())
        out.ends.append(cm.end())
        out.has_ref.append(has_ref)
    return out


def _row_cells_split(inner: bytes, out: RowCells) -> bool:
    chunks = inner.split(b"<c ")
    if chunks[0].strip():
        return False
    cols, starts, ends = out.cols, out.starts, out.ends
    cache = _COL_CACHE
    pos = len(chunks[0])
    for ch in chunks[1:]:
        if ch[:3] != b'r="':
            return False
        q = ch.find(b'"', 3)
        letters = ch[3:q].rstrip(_DIGITS)
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
        cols.append(col)
        starts.append(pos)
        ends.append(end)
        pos += 3 + n
    out.has_ref = [True] * len(cols)
    return True


@dataclass
class RowSpan:
    """A ``<row>`` element's position in the sheet part."""

    number: int
    start: int
    end: int
    prefix: bytes
    attrs_raw: bytes
    inner: bytes | None
    inner_start: int


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
            out[row_no] = RowSpan(row_no, rm.start(), rm.end(), rm.group(1), attrs, None, rm.end())
            pos = rm.end()
            continue
        close = b"</" + rm.group(1) + b"row>"
        stop = xml.find(close, rm.end(), end)
        if stop < 0:
            raise ValueError(f"worksheet row {row_no} is not terminated")
        out[row_no] = RowSpan(
            row_no,
            rm.start(),
            stop + len(close),
            rm.group(1),
            attrs,
            xml[rm.end() : stop],
            rm.end(),
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


def empty_cell(prefix: bytes, ref: str, style: bytes | None) -> bytes:
    """A cell with no value that keeps its style (or nothing when it had none)."""
    if style is None:
        return b""
    return f'<{prefix.decode("ascii")}c r="{ref}" s="{style.decode("ascii")}"/>'.encode()


def add_ref_attr(cell_xml: bytes, ref: str) -> bytes:
    """Give a cell written without ``r`` an explicit one (its row is being rewritten)."""
    m = re.match(rb"<(" + _P + rb")c\b", cell_xml)
    if not m:
        return cell_xml
    return cell_xml[: m.end()] + f' r="{ref}"'.encode() + cell_xml[m.end() :]


def rebuild_row(row: RowSpan, cells: RowCells, new_cells: dict[int, bytes], max_col: int) -> bytes:
    """The row element with ``new_cells`` (col -> cell XML, b"" to delete) merged in by column.

    Untouched cells keep their bytes (plus an ``r`` when they had none, so that numbering stays
    right), and everything between cells (whitespace) is kept.
    """
    inner = cells.inner
    pending = sorted(new_cells.items())
    cols, starts, ends = cells.cols, cells.starts, cells.ends
    n = len(cols)
    pieces: list[bytes] = []
    if all(cells.has_ref) and all(cols[i] < cols[i + 1] for i in range(n - 1)):
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
    p = row.prefix
    if not re.search(rb"(?:^|\s)r\s*=", row.attrs_raw):
        attrs = f' r="{row.number}"'.encode() + attrs
    body = b"".join(pieces)
    attrs = attrs.rstrip()
    if attrs.endswith(b"/"):
        attrs = attrs[:-1].rstrip()
    return b"<" + p + b"row" + attrs + b">" + body + b"</" + p + b"row>"


def _update_spans(attrs: bytes, max_col: int) -> bytes:
    """Widen a row's optional ``spans`` hint so it covers a newly written column."""
    m = re.search(rb"\bspans\s*=\s*\"(\d+):(\d+)\"", attrs)
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
    out: list[bytes] = []
    pos = 0
    for start, end, new in sorted(edits, key=lambda e: (e[0], e[1])):
        out.append(data[pos:start])
        out.append(new)
        pos = end
    out.append(data[pos:])
    return b"".join(out)


# ------------------------------------------------------------------------------------ generation
def generate_sheet(
    rows: Sequence[Sequence[OutValue]],
    *,
    bold_style: int | None,
    wrap_style: int | None,
    heading_rows: Iterable[int],
    widths: Sequence[int],
    heading_cells: Iterable[tuple[int, int]] = (),
    freeze_rows: int,
    keep: Sequence[bytes] = (),
    max_chars: int = 32_767,
) -> bytes:
    """A whole worksheet part for a bridge-owned tab.

    Strings are inline strings (so a value starting with ``=`` stays text, B18); numbers are plain
    numbers; ``None`` is no cell. ``keep`` are relationship-bearing elements in schema order: the
    ``<drawing r:id=..>`` holding the bridge's chart (and any drawing staff put on the tab), then
    ``<legacyDrawing>`` elements carried over from the sheet being replaced.
    """
    headings = set(heading_rows)
    bold_cells = set(heading_cells)
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
    for r, row in enumerate(rows):
        if not any(v is not None for v in row):
            continue
        num = r + 1
        parts.append(f'<row r="{num}">')
        heading = r in headings
        for c, value in enumerate(row):
            if value is None:
                continue
            ref = f"{letters[c]}{num}"
            style = bold_style if heading or (r, c) in bold_cells else None
            if isinstance(value, bool):
                s = f' s="{style}"' if style is not None else ""
                parts.append(f'<c r="{ref}"{s} t="b"><v>{int(value)}</v></c>')
            elif isinstance(value, int | float) and math.isfinite(value):
                s = f' s="{style}"' if style is not None else ""
                parts.append(f'<c r="{ref}"{s}><v>{cell_text(value)}</v></c>')
            else:
                text = str(value)[:max_chars]
                if not heading and "\n" in text and wrap_style is not None:
                    style = wrap_style
                s = f' s="{style}"' if style is not None else ""
                parts.append(
                    f'<c r="{ref}"{s} t="inlineStr"><is><t xml:space="preserve">'
                    f"{escape_text(text)}</t></is></c>"
                )
        parts.append("</row>")
    parts.append("</sheetData>")
    parts.append(
        '<pageMargins left="0.5" right="0.5" top="0.6" bottom="0.6" header="0.3" footer="0.3"/>'
    )
    # Printed, a summary tab is landscape and one page wide (a manager prints the Dashboard).
    parts.append('<pageSetup orientation="landscape" fitToWidth="1" fitToHeight="0"/>')
    out = "".join(parts).encode("utf-8")
    return out + b"".join(keep) + b"</worksheet>"


# Elements of a replaced sheet that point at parts through its relationships and stay valid on a
# regenerated sheet (a chart drawn on the Dashboard; comment boxes), in schema order.
_KEEP_RE = re.compile(
    rb"<" + _P + rb"(?:drawing|legacyDrawing|legacyDrawingHF)\b[^>]*?/>", re.DOTALL
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


def rel_target(source_part: str, target: str) -> str:
    """Resolve a relationship target to a zip member name (relative to the source or absolute)."""
    if target.startswith("/"):
        return posixpath.normpath(target.lstrip("/"))
    return posixpath.normpath(posixpath.join(posixpath.dirname(source_part), target))


def rels_part_of(part: str) -> str:
    """The ``_rels/*.rels`` member holding ``part``'s relationships."""
    d, name = posixpath.split(part)
    return posixpath.join(d, "_rels", name + ".rels")


def iter_rels(xml: bytes | None, source_part: str) -> Iterator[tuple[str, str, str, bool]]:
    """(Id, Type, resolved target, external) for each relationship in a ``.rels`` part."""
    if not xml:
        return
    root = parse_xml(xml)
    for rel in root.iter("{*}Relationship"):
        external = rel.get("TargetMode", "") == "External"
        target = rel.get("Target", "")
        resolved = target if external else rel_target(source_part, target)
        yield rel.get("Id", ""), rel.get("Type", ""), resolved, external


# ------------------------------------------------------------------------------------ charts
NS_XDR = "http://schemas.openxmlformats.org/drawingml/2006/spreadsheetDrawing"
NS_A = "http://schemas.openxmlformats.org/drawingml/2006/main"
NS_C = "http://schemas.openxmlformats.org/drawingml/2006/chart"
REL_DRAWING = NS_DOC_REL + "/drawing"
REL_CHART = NS_DOC_REL + "/chart"
CT_DRAWING = "application/vnd.openxmlformats-officedocument.drawing+xml"
CT_CHART = "application/vnd.openxmlformats-officedocument.drawingml.chart+xml"

#: The name of the bridge's chart frame in a drawing (Excel shows it in the Selection Pane); the
#: backend knows its own chart by it when the tab is rewritten.
BRIDGE_CHART_NAME = "sheets-bridge chart"
_EMU_PER_PX = 9525
_DEFAULT_COL_PX = 64
_ROW_PX = 20
#: The chart's size in pixels at 100% zoom (about 15 x 9 cm).
CHART_PX = (560, 340)
_PALETTE = ("4472C4", "ED7D31", "A5A5A5", "FFC000", "5B9BD5", "70AD47", "264478", "9E480E")
_AX_CAT = 511_000_001
_AX_VAL = 511_000_002


def column_px(width_chars: float) -> int:
    """Pixels of a column ``width_chars`` wide as generate_sheet writes it (Calibri 11, 7 px)."""
    return int((width_chars + 0.7109375) * 7 + 0.5) if width_chars > 0 else _DEFAULT_COL_PX


def _anchor_to(
    start_row: int, start_col: int, widths: Sequence[int], size: tuple[int, int]
) -> tuple[int, int, int, int]:
    """(col, colOff, row, rowOff) in EMU where a ``size`` box from (start_row, start_col) ends."""
    left, col = size[0], start_col
    while True:
        px = column_px(widths[col]) if col < len(widths) else _DEFAULT_COL_PX
        if left < px:
            break
        left -= px
        col += 1
    rows, rest = divmod(size[1], _ROW_PX)
    return col, left * _EMU_PER_PX, start_row + rows, rest * _EMU_PER_PX


def quote_sheet(title: str) -> str:
    """A tab title as a formula reference prefix: ``'Dashboard'!``."""
    return "'" + title.replace("'", "''") + "'!"


def _abs(row: int, col: int) -> str:
    """``$H$5`` for 0-based ``row`` and ``col``."""
    return f"${col_letters(col)}${row + 1}"


def _v(text: str) -> str:
    return f"<c:v>{escape_text(text)}</c:v>"


def _str_ref(formula: str, values: Sequence[str]) -> str:
    pts = "".join(f'<c:pt idx="{i}">{_v(v)}</c:pt>' for i, v in enumerate(values))
    return (
        f"<c:strRef><c:f>{escape_text(formula)}</c:f><c:strCache>"
        f'<c:ptCount val="{len(values)}"/>{pts}</c:strCache></c:strRef>'
    )


def _num_ref(formula: str, values: Sequence[OutValue]) -> str:
    pts = "".join(
        f'<c:pt idx="{i}">{_v(cell_text(v))}</c:pt>'
        for i, v in enumerate(values)
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    )
    return (
        f"<c:numRef><c:f>{escape_text(formula)}</c:f><c:numCache>"
        f'<c:formatCode>General</c:formatCode><c:ptCount val="{len(values)}"/>{pts}'
        "</c:numCache></c:numRef>"
    )


def _label(value: OutValue) -> str:
    return "" if value is None else cell_text(value)


def _rich(text: str, size: int, bold: bool) -> str:
    b = ' b="1"' if bold else ' b="0"'
    return (
        "<c:tx><c:rich><a:bodyPr/><a:lstStyle/><a:p>"
        f'<a:pPr><a:defRPr sz="{size}"{b}/></a:pPr>'
        f'<a:r><a:rPr lang="en-US" sz="{size}"{b}/><a:t>{escape_text(text)}</a:t></a:r>'
        "</a:p></c:rich></c:tx>"
    )


def _major_unit(top: float) -> str:
    """Whole-number gridlines for small counts (Excel would otherwise tick 0.5, 1.5...)."""
    for limit, step in ((10, 1), (20, 2), (50, 5)):
        if top <= limit:
            return f'<c:majorUnit val="{step}"/>'
    return ""


def chart_xml(
    sheet_title: str,
    rows: Sequence[Sequence[OutValue]],
    *,
    title: str,
    first_row: int,
    first_col: int,
    last_row: int,
    last_col: int,
    kind: str = "column",
    stacked: bool = True,
) -> bytes:
    """A chart part (``c:chartSpace``) over a block of a tab's cells.

    The block's first row holds the series names and its first column the category labels. Each
    reference carries a cache of the values written, so a viewer that does not recalculate (a
    phone preview, a PDF export) still draws the chart.
    """

    def at(r: int, c: int) -> OutValue:
        row = rows[r] if r < len(rows) else ()
        return row[c] if c < len(row) else None

    sheet = quote_sheet(sheet_title)
    cat_rows = range(first_row + 1, last_row + 1)
    labels = [at(r, first_col) for r in cat_rows]
    cat_formula = f"{sheet}{_abs(first_row + 1, first_col)}:{_abs(last_row, first_col)}"
    if labels and all(isinstance(v, int | float) and not isinstance(v, bool) for v in labels):
        cat = _num_ref(cat_formula, labels)
    else:
        cat = _str_ref(cat_formula, [_label(v) for v in labels])
    series: list[str] = []
    totals = [0.0] * len(cat_rows)
    peak = 0.0
    for i, col in enumerate(range(first_col + 1, last_col + 1)):
        values = [at(r, col) for r in cat_rows]
        nums = [
            float(v) if isinstance(v, int | float) and not isinstance(v, bool) else 0.0
            for v in values
        ]
        totals = [t + n for t, n in zip(totals, nums, strict=True)]
        peak = max([peak, *nums])
        color = _PALETTE[i % len(_PALETTE)]
        name = _str_ref(f"{sheet}{_abs(first_row, col)}", [_label(at(first_row, col))])
        val = _num_ref(f"{sheet}{_abs(first_row + 1, col)}:{_abs(last_row, col)}", values)
        if kind == "line":
            look = (
                f'<c:spPr><a:ln w="28575" cap="rnd"><a:solidFill><a:srgbClr val="{color}"/>'
                '</a:solidFill><a:round/></a:ln></c:spPr><c:marker><c:symbol val="circle"/>'
                f'<c:size val="5"/><c:spPr><a:solidFill><a:srgbClr val="{color}"/></a:solidFill>'
                "</c:spPr></c:marker>"
            )
            tail = '<c:smooth val="0"/>'
        else:
            look = (
                f'<c:spPr><a:solidFill><a:srgbClr val="{color}"/></a:solidFill></c:spPr>'
                '<c:invertIfNegative val="0"/>'
            )
            tail = ""
        series.append(
            f'<c:ser><c:idx val="{i}"/><c:order val="{i}"/><c:tx>{name}</c:tx>{look}'
            f"<c:cat>{cat}</c:cat><c:val>{val}</c:val>{tail}</c:ser>"
        )
    axes_ids = f'<c:axId val="{_AX_CAT}"/><c:axId val="{_AX_VAL}"/>'
    top = max(totals, default=0.0) if stacked else peak
    if kind == "line":
        grouping = "stacked" if stacked else "standard"
        plot = (
            f'<c:lineChart><c:grouping val="{grouping}"/><c:varyColors val="0"/>'
            f'{"".join(series)}<c:marker val="1"/>{axes_ids}</c:lineChart>'
        )
    else:
        grouping = "stacked" if stacked else "clustered"
        overlap = '<c:overlap val="100"/>' if stacked else ""
        plot = (
            f'<c:barChart><c:barDir val="col"/><c:grouping val="{grouping}"/>'
            f'<c:varyColors val="0"/>{"".join(series)}<c:gapWidth val="60"/>{overlap}'
            f"{axes_ids}</c:barChart>"
        )
    cat_ax = (
        f'<c:catAx><c:axId val="{_AX_CAT}"/><c:scaling><c:orientation val="minMax"/>'
        '</c:scaling><c:delete val="0"/><c:axPos val="b"/>'
        '<c:numFmt formatCode="General" sourceLinked="1"/><c:majorTickMark val="out"/>'
        '<c:minorTickMark val="none"/><c:tickLblPos val="nextTo"/>'
        f'<c:crossAx val="{_AX_VAL}"/><c:crosses val="autoZero"/><c:auto val="1"/>'
        '<c:lblAlgn val="ctr"/><c:lblOffset val="100"/><c:noMultiLvlLbl val="0"/></c:catAx>'
    )
    val_ax = (
        f'<c:valAx><c:axId val="{_AX_VAL}"/><c:scaling><c:orientation val="minMax"/>'
        '</c:scaling><c:delete val="0"/><c:axPos val="l"/><c:majorGridlines/>'
        '<c:numFmt formatCode="General" sourceLinked="0"/><c:majorTickMark val="out"/>'
        '<c:minorTickMark val="none"/><c:tickLblPos val="nextTo"/>'
        f'<c:crossAx val="{_AX_CAT}"/><c:crosses val="autoZero"/>'
        f'<c:crossBetween val="between"/>{_major_unit(top)}</c:valAx>'
    )
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<c:chartSpace xmlns:c="{NS_C}" xmlns:a="{NS_A}" xmlns:r="{NS_DOC_REL}">'
        '<c:lang val="en-US"/><c:roundedCorners val="0"/><c:chart>'
        f'<c:title>{_rich(title, 1200, True)}<c:overlay val="0"/></c:title>'
        f'<c:autoTitleDeleted val="0"/><c:plotArea><c:layout/>{plot}{cat_ax}{val_ax}'
        '</c:plotArea><c:legend><c:legendPos val="b"/><c:overlay val="0"/></c:legend>'
        '<c:plotVisOnly val="1"/><c:dispBlanksAs val="gap"/></c:chart></c:chartSpace>'
    ).encode()


def chart_anchor_xml(
    *,
    rid: str,
    frame_id: int,
    title: str,
    anchor_row: int,
    anchor_col: int,
    widths: Sequence[int],
    size: tuple[int, int] = CHART_PX,
    declare: bool = True,
) -> bytes:
    """A ``twoCellAnchor`` holding the graphic frame of the bridge's chart.

    ``declare`` puts the ``xdr`` and ``a`` namespace declarations on the anchor itself, for
    adding it to a drawing parsed from elsewhere; ``drawing_xml`` declares them on the root.
    """
    col, col_off, row, row_off = _anchor_to(anchor_row, anchor_col, widths, size)
    ns = f' xmlns:xdr="{NS_XDR}" xmlns:a="{NS_A}"' if declare else ""
    return (
        f'<xdr:twoCellAnchor{ns} editAs="oneCell">'
        f"<xdr:from><xdr:col>{anchor_col}</xdr:col><xdr:colOff>0</xdr:colOff>"
        f"<xdr:row>{anchor_row}</xdr:row><xdr:rowOff>0</xdr:rowOff></xdr:from>"
        f"<xdr:to><xdr:col>{col}</xdr:col><xdr:colOff>{col_off}</xdr:colOff>"
        f"<xdr:row>{row}</xdr:row><xdr:rowOff>{row_off}</xdr:rowOff></xdr:to>"
        '<xdr:graphicFrame macro=""><xdr:nvGraphicFramePr>'
        f'<xdr:cNvPr id="{frame_id}" name="{BRIDGE_CHART_NAME}" descr="{escape_attr(title)}"/>'
        "<xdr:cNvGraphicFramePr/></xdr:nvGraphicFramePr>"
        '<xdr:xfrm><a:off x="0" y="0"/><a:ext cx="0" cy="0"/></xdr:xfrm>'
        f'<a:graphic><a:graphicData uri="{NS_C}">'
        f'<c:chart xmlns:c="{NS_C}" xmlns:r="{NS_DOC_REL}" r:id="{rid}"/>'
        "</a:graphicData></a:graphic></xdr:graphicFrame><xdr:clientData/></xdr:twoCellAnchor>"
    ).encode()


def drawing_xml(*anchors: bytes) -> bytes:
    """A drawing part holding ``anchors`` (made with ``declare=False``)."""
    return (
        (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            f'<xdr:wsDr xmlns:xdr="{NS_XDR}" xmlns:a="{NS_A}">'
        ).encode()
        + b"".join(anchors)
        + b"</xdr:wsDr>"
    )


def rels_xml(rels: Sequence[tuple[str, str, str]]) -> bytes:
    """A ``.rels`` part of (Id, Type, Target) internal relationships."""
    body = "".join(
        f'<Relationship Id="{escape_attr(i)}" Type="{escape_attr(t)}" Target="{escape_attr(g)}"/>'
        for i, t, g in rels
    )
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<Relationships xmlns="{NS_PKG_REL}">{body}</Relationships>'
    ).encode()


def chart_title_text(chart: bytes | None) -> str:
    """The plain text of a chart part's title ("" when it has none or cannot be read)."""
    if not chart:
        return ""
    try:
        root = parse_xml(chart)
    except etree.XMLSyntaxError:
        return ""
    title = next(root.iter(f"{{{NS_C}}}title"), None)
    if title is None:
        return ""
    return "".join(t.text or "" for t in title.iter(f"{{{NS_A}}}t"))
