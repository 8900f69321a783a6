"""Low-level reading of SpreadsheetML (``.xlsx``) parts, without a DOM: cells, values, rows.

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

import hashlib
import posixpath
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from sys import intern

from lxml import etree

from sheets_bridge.model import CellError, CellRange, CellValue, DateSerial

NS_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
NS_DOC_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
NS_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
NS_CT = "http://schemas.openxmlformats.org/package/2006/content-types"
REL_WORKSHEET = NS_DOC_REL + "/worksheet"
CT_WORKSHEET = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"

# ------------------------------------------------------------------------------------ regexes
# A prefix like ``x:`` is allowed on every element: some generators bind the main namespace to one.
TAG_PREFIX = rb"(?:[A-Za-z_][\w.-]*:)?"
ROW_RE = re.compile(rb"<(" + TAG_PREFIX + rb")row\b([^>]*?)(?:/>|>(.*?)</" + TAG_PREFIX + rb"row>)", re.DOTALL)
CELL_RE = re.compile(rb"<" + TAG_PREFIX + rb"c\b([^>]*?)(?:/>|>(.*?)</" + TAG_PREFIX + rb"c>)", re.DOTALL)
ATTR_RE = re.compile(rb"([\w:.-]+)\s*=\s*(?:\"([^\"]*)\"|'([^']*)')")
V_RE = re.compile(rb"<" + TAG_PREFIX + rb"v(?:\s[^>]*)?(?:/>|>(.*?)</" + TAG_PREFIX + rb"v>)", re.DOTALL)
F_RE = re.compile(rb"<" + TAG_PREFIX + rb"f\b([^>]*?)(?:/>|>)", re.DOTALL)
IS_RE = re.compile(rb"<" + TAG_PREFIX + rb"is\b[^>]*?(?:/>|>(.*?)</" + TAG_PREFIX + rb"is>)", re.DOTALL)
RPH_RE = re.compile(rb"<" + TAG_PREFIX + rb"rPh\b.*?</" + TAG_PREFIX + rb"rPh>", re.DOTALL)
T_RE = re.compile(rb"<" + TAG_PREFIX + rb"t\b[^>]*?(?:/>|>(.*?)</" + TAG_PREFIX + rb"t>)", re.DOTALL)
SI_RE = re.compile(rb"<" + TAG_PREFIX + rb"si\b[^>]*?(?:/>|>(.*?)</" + TAG_PREFIX + rb"si>)", re.DOTALL)
MERGE_RE = re.compile(rb"<" + TAG_PREFIX + rb"mergeCell\b[^>]*?\bref\s*=\s*[\"']([^\"']+)[\"']", re.DOTALL)
SHEETDATA_OPEN_RE = re.compile(rb"<(" + TAG_PREFIX + rb")sheetData\b[^>]*?(/?)>")
# One pass over sheetData finds row start tags and whole cells. The first cell alternative is the
# shape Excel writes for nearly every cell (``<c ...><v>42</v></c>``) and costs no second look.
SCAN_RE = re.compile(
    rb"<" + TAG_PREFIX + rb"(?:row\b([^>]*)>"  # 1: a row's attributes
    # 2-5: a cell's r letters, s and t in the order every common generator writes them, then the
    # rest of its attributes (which hold r, s or t themselves when the order differs)
    rb'|c\b(?:\s+r="([A-Za-z]{1,3})\d*")?(?:\s+s="(\d+)")?(?:\s+t="([A-Za-z]+)")?([^>]*?)'
    rb"(?:/>"
    rb"|><v>([^<]*)</v></" + TAG_PREFIX + rb"c>"  # 6: a plain value, most cells
    rb'|><is><t(?: xml:space="preserve")?>([^<]*)</t></is></' + TAG_PREFIX + rb"c>"  # 7: inline text
    rb"|>(.*?)</" + TAG_PREFIX + rb"c>))",  # 8: anything else (formulas, rich text, prefixes)
    re.DOTALL,
)
ROW_START_RE = re.compile(rb"<(" + TAG_PREFIX + rb")row\b([^>]*?)(/?)>")
FAST_CELL_ATTRS_RE = re.compile(
    rb'\s*r="([A-Za-z]{1,3})\d*"(?:\s+s="(\d+)")?(?:\s+t="([A-Za-z]+)")?\s*'
)
ROW_NUM_RE = re.compile(rb"(?:^|\s)r\s*=\s*[\"'](\d+)[\"']")
HIDDEN_RE = re.compile(rb"(?:^|\s)hidden\s*=\s*[\"'](?:1|true)[\"']")
DIMENSION_RE = re.compile(
    rb"<" + TAG_PREFIX + rb"dimension\b[^>]*?\bref\s*=\s*[\"']([^\"']*)[\"']", re.DOTALL
)
REF_RE = re.compile(r"^\$?([A-Za-z]{1,3})\$?(\d+)$")
DIGITS = b"0123456789"

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
COL_CACHE: dict[bytes, int] = {}


def col_index(letters: bytes | str) -> int:
    """0-based column of ``"A"``, ``"AB"``...; cached because every cell asks."""
    key = letters.encode() if isinstance(letters, str) else letters
    col = COL_CACHE.get(key)
    if col is None:
        n = 0
        for ch in key.upper():
            n = n * 26 + (ch - 64)
        col = n - 1
        COL_CACHE[key] = col
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


#: What a row's cells parsed to, by the digest of the row's bytes after its start tag:
#: (the values, the 0-based columns holding formulas, closed). A row is *closed* when it read
#: no shared string and no number style outside the context's tables (nor a shared string by
#: the slow path): its values then hold under any context that extends this one (more strings
#: or styles appended, the same date1904). See :func:`read_sheet`.
RowEntry = tuple[tuple[CellValue, ...], tuple[int, ...], bool]
RowMemo = dict[bytes, RowEntry]

_ROW_SPLIT_RE = re.compile(rb"<" + TAG_PREFIX + rb"row\b([^>]*)>")


def row_digest(view: memoryview) -> bytes:
    """The memo key of a row's bytes: 128 bits of BLAKE2b, so two different rows never share
    one in practice (hashing a row costs a microsecond; parsing it, tens)."""
    return hashlib.blake2b(view, digest_size=16).digest()


def read_sheet(
    xml: bytes,
    ctx: ValueContext,
    memo: RowMemo | None = None,
    keep: RowMemo | None = None,
) -> SheetValues:
    """Scan a worksheet part into values: one pass of byte regexes, no tree, row by row.

    This is the hot loop of every cycle (240,000 cells for a 10,000-row sheet), hence the
    inlined fast paths for numbers and shared strings in the attribute order Excel writes.

    Rows are scanned one at a time, each from the end of its start tag to the next row's start
    tag: a row's values depend only on those bytes and on ``ctx``. So a caller that kept the
    ``keep`` of an earlier read made with an *equal* ``ctx`` may pass it as ``memo``: a row
    whose bytes have the same digest is taken from it unparsed (its number and ``hidden`` are
    still read from its start tag, which the digest does not cover). ``keep`` receives every
    row of this read, so the memo never outgrows one sheet.
    """
    out = SheetValues()
    span = find_sheet_data(xml)
    if span is not None and span.inner_end is not None:
        rows = out.rows
        hidden = out.hidden
        formulas = out.formulas
        scan = RowScanner(ctx)
        view = memoryview(xml)
        starts = _row_starts(xml, span.inner_start, span.inner_end)
        if not starts or starts[0][0] > span.inner_start:
            # Cells before the first row (malformed, but read as before: as row 0).
            stop = starts[0][0] if starts else span.inner_end
            values, cols, _ = scan.cells(xml, span.inner_start, stop)
            if values:
                rows[0] = values
            formulas.update((0, c) for c in cols)
        row_no = 0
        for i, (_, a, rattrs) in enumerate(starts):
            nm = ROW_NUM_RE.search(rattrs)
            row_no = int(nm.group(1)) if nm else row_no + 1
            if b"hidden" in rattrs and HIDDEN_RE.search(rattrs):
                hidden.add(row_no)
            b = starts[i + 1][0] if i + 1 < len(starts) else span.inner_end
            found = None
            if memo is not None or keep is not None:
                key = row_digest(view[a:b])
                found = memo.get(key) if memo is not None else None
                if found is None:
                    found = scan.cells(xml, a, b)
                if keep is not None:
                    keep[key] = found
            else:
                found = scan.cells(xml, a, b)
            values, cols, _ = found
            if values:
                rows[row_no] = values
            if cols:
                formulas.update((row_no, c) for c in cols)
        view.release()
    out.merged.extend(merged_ranges(xml))
    return out


def merged_ranges(xml: bytes) -> list[CellRange]:
    """The sheet's merged ranges, a ``ref`` the bridge cannot read left out.

    The read and the save share it, so both see the same merges. A plain ``in`` looks for the
    element first: the pattern's search over a 10,000-row part costs 40 ms, and most sheets
    have no merges.
    """
    found: list[CellRange] = []
    for ref in MERGE_RE.findall(xml) if b"mergeCell" in xml else ():
        try:
            found.append(parse_range(ref.decode("ascii")))
        except (ValueError, UnicodeDecodeError):
            continue
    return found


_WORD = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def _row_starts(xml: bytes, start: int, end: int) -> list[tuple[int, int, bytes]]:
    """Each row start tag in ``xml[start:end]``: (where it starts, where it ends, its
    attributes), as ``_ROW_SPLIT_RE`` finds them. Without namespace prefixes (nearly every
    file) plain ``bytes.find`` does it several times faster than the regex, which has to try
    a prefix at every ``<`` of the sheet."""
    if xml.find(b":row", start, end) >= 0:
        return [(m.start(), m.end(), m.group(1)) for m in _ROW_SPLIT_RE.finditer(xml, start, end)]
    out: list[tuple[int, int, bytes]] = []
    find = xml.find
    word = _WORD
    pos = start
    while True:
        i = find(b"<row", pos, end)
        if i < 0:
            return out
        after = i + 4
        if after < end and xml[after] in word:  # <rowBreaks ...>: not a row
            pos = after
            continue
        j = find(b">", after, end)
        if j < 0:
            return out
        out.append((i, j + 1, xml[after:j]))
        pos = j + 1


class RowScanner:
    """The cell loop of :func:`read_sheet` over one row's bytes, with ``ctx`` looked up once
    (also used by a save to hand the rows it wrote to the next read, parsed)."""

    def __init__(self, ctx: ValueContext) -> None:
        self.ctx = ctx
        self.shared = ctx.shared
        self.n_shared = len(ctx.shared)
        self.date_by_s = {str(i).encode(): flag for i, flag in enumerate(ctx.date_style)}

    def cells(self, xml: bytes, start: int, end: int) -> RowEntry:
        """The values of the cells in ``xml[start:end]`` by 0-based column, the columns
        holding a formula, and whether the row is closed (see :data:`RowEntry`)."""
        ctx = self.ctx
        shared = self.shared
        n_shared = self.n_shared
        date_by_s = self.date_by_s
        cache = COL_CACHE
        col = -1
        values: list[CellValue] = []
        formula_cols: list[int] = []
        closed = True
        for m in SCAN_RE.finditer(xml, start, end):
            rattrs, letters, s, t, rest, v, inline, body = m.groups()
            if rattrs is not None:  # cannot happen: the row ends where the next one starts
                continue
            if rest and rest.strip() and rest.strip() != b"/":
                extra = attrs_of(rest)
                if letters is None and b"r" in extra:
                    letters = extra[b"r"].rstrip(DIGITS)
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
                        if s is not None:
                            flag = date_by_s.get(s)
                            if flag:
                                val = DateSerial(val)
                            elif flag is None:
                                closed = False
                elif t == b"s":
                    try:
                        i = int(v)
                    except ValueError:
                        continue
                    if 0 <= i < n_shared:
                        val = shared[i] or None
                    else:
                        val, closed = None, False
                else:
                    attrs = {b"t": t} if s is None else {b"t": t, b"s": s}
                    val = cell_value(attrs, b"<v>" + v + b"</v>", ctx)
            elif inline is not None:  # the inline string the bridge itself writes
                # Interned: a bridge column holds a handful of texts ("New", the cycle's
                # Bridge Updated, an Attention line) on every row, and the read memo keeps
                # them all; one string each instead of one per cell (20 MB at 50,000 rows).
                if b"&" in inline or b"_x" in inline or b"\r" in inline:
                    val = intern(decode_text(inline)) or None
                else:
                    val = intern(inline.decode("utf-8", "replace")) or None
            else:
                if not body:
                    continue
                if (b"<f" in body or b":f" in body) and F_RE.search(body):
                    formula_cols.append(col)
                attrs = {}
                if t is not None:
                    attrs[b"t"] = t
                if s is not None:
                    attrs[b"s"] = s
                    if t in (None, b"n") and s not in date_by_s:
                        closed = False
                if t == b"s":
                    closed = False
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
        return tuple(values), tuple(formula_cols), closed


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
