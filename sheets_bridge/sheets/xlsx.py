"""LocalWorkbook: the Referrals workbook as a local ``.xlsx`` file that staff open in Excel.

The file is the system of record and staff may have it open, so the bridge:

- reads the zip directly (no openpyxl: too slow for a sync loop, and it drops charts, shapes and
  extensions when saving) and versions every snapshot by size, mtime and SHA-256 of the bytes;
- makes a read cost what changed: an unchanged file gives back the last snapshot, and a changed
  one parses only the rows whose bytes changed (each row's values kept by the digest of its
  bytes while the shared strings, date styles and date1904 read the same; see ``_ReadMemo``),
  and a save hands the rows it rewrote to the next read already parsed, so the cycle after a
  first sync does not parse the whole sheet again;
- writes by patching only the ``<row>`` elements it changes and the bridge-owned summary sheets,
  copying every other zip member unchanged, so charts, images, pivot tables and extensions that
  staff made survive a sync;
- makes a write cost what it writes, and hold little: the sheet's rows are indexed once as
  offsets into the part (``oxr.RowSpan``, ``oxr.RowCells`` in arrays), each row's cells once,
  each new cell built once, each row rebuilt as soon as its last write is built, and the patched
  part written into the zip piece by piece (views of the old part between the rewritten rows,
  ``xlsx_package.Pieces``), never as a second whole copy. A first sync of 50,000 rows writes
  every row; the old patch held a copy of each row, a Python list per row of cell positions and
  a RawCell per cell asked for (160 MB at 50,000 rows, before the rewritten part and its copy);
- hands what a save wrote to the next read exactly, keyed by the digest of the bytes written:
  a rewritten Referrals row as its old memo entry with the written cells' values put in (what
  an inline string, a number or a removed cell reads as; a number's date style looked up in
  the written file's styles), and a bridge tab as the values ``generate_sheet`` wrote
  (``tests/integration/test_xlsx_apply_exact.py`` compares both with a parse of the bytes);
- draws a bridge tab's chart (the Dashboard's weekly chart) itself, as DrawingML drawing and
  chart parts with cached values, and redraws it in place whenever it rewrites that tab: the same
  part names each time, the old chart's parts and relationships removed, so the package never
  grows and a staff chart elsewhere stays byte-identical;
- honours Excel's and LibreOffice's lock files, checks the file is still the one it planned from
  just before replacing it, and replaces it atomically (temp file in the same folder, fsync,
  ``os.replace``, fsync the folder) - RELIABILITY.md R6, F14-F18.
"""

from __future__ import annotations

import bisect
import hashlib
import logging
import os
import re
import threading
import time
import zipfile
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from lxml import etree

from sheets_bridge import model
from sheets_bridge.collector import gc_paused
from sheets_bridge.dates import moment_text_serial
from sheets_bridge.errors import SnapshotStaleError, WorkbookUnreadableError
from sheets_bridge.identity import row_fingerprint
from sheets_bridge.model import Plan, ReferralsTab, SheetRow, Snapshot, TabContent, TabValues
from sheets_bridge.sheets import ApplyReport, SetupReport
from sheets_bridge.sheets import ooxml as ox
from sheets_bridge.sheets import ooxml_rows as oxr
from sheets_bridge.sheets.locate import place_writes
from sheets_bridge.sheets.xlsx_file import clean_leftovers, lock_files, refuse_if_open, replace_file
from sheets_bridge.sheets.xlsx_package import (
    Package,
    PackageEdit,
    Pieces,
    cell_text_of,
    formula_kind,
    title_key,
)
from sheets_bridge.values import cell_text

log = logging.getLogger(__name__)

StepHook = Callable[[str], None]


#: The last snapshot read, by (file, tab, version token): see :meth:`LocalWorkbook.read`.
_last_read: tuple[tuple[str, str, str], Snapshot] | None = None


@dataclass
class _ReadMemo:
    """What the last read of a workbook parsed, kept so the next read parses only what changed.

    A daemon's cycle after a staff edit (or after its own save) finds a file with new bytes
    but nearly every row unchanged. Each row's values are a function of the row's bytes and of
    the value context (the shared strings, which styles show dates, date1904) and of nothing
    else, so they are kept by the digest of the row's bytes (``ooxml.read_sheet``), per sheet
    part, for as long as the context is *equal* (compared value by value, never assumed): an
    Excel or openpyxl save that rewrites sharedStrings or styles to the same values keeps the
    memo; one that changes a string or turns a style into a date format drops it whole, and
    that read parses every row. Only the rows of the latest read are kept (one sheet's worth).
    """

    key: tuple[str, str]
    """(file, Referrals tab) the memo belongs to."""
    parts_digest: bytes
    """Digest of the sharedStrings and styles parts' bytes and date1904: equal means ``ctx``
    can be reused without parsing those parts again."""
    ctx: ox.ValueContext
    rows: dict[str, ox.RowMemo] = field(default_factory=dict)
    """Per sheet part: row digest -> (values, formula columns)."""
    referrals: ReferralsTab | None = None
    """The last snapshot's Referrals tab: its ``SheetRow`` objects are reused when a row's
    number, hidden flag and values are those of the last read (same objects, so the
    planner's memos compare them by identity)."""


_read_memo: _ReadMemo | None = None
#: Guards taking the memo: the digest job may read in another thread, and a memo is mutable,
#: so a read (or a save handing rows over) takes it whole, and the other finds none.
_memo_lock = threading.Lock()


def _take_memo() -> _ReadMemo | None:
    global _read_memo
    with _memo_lock:
        memo, _read_memo = _read_memo, None
    return memo


class LocalWorkbook:
    """The Referrals workbook as a local ``.xlsx`` file (the default, account-free backend)."""

    kind: ClassVar[str] = "local"

    def __init__(
        self,
        path: str | os.PathLike[str],
        referrals_tab: str = model.REFERRALS_TAB,
        *,
        allow_lossy_save: bool = False,
        step: StepHook | None = None,
    ) -> None:
        self.path = Path(path)
        self.referrals_tab = referrals_tab
        self.allow_lossy_save = allow_lossy_save
        self.step = step
        """The crash harness's hook, told "before-replace" inside a save (None in production)."""

    def describe(self) -> str:
        return str(self.path)

    def link(self) -> str | None:
        """None: a ``file://`` address is no link a phone (or another computer) can follow, so
        the digest says where the workbook is instead (``describe``)."""
        return None

    def prepare(self) -> None:
        """Remove temp files a crashed save left beside the workbook (F17)."""
        self.clean_leftovers()

    def clean_leftovers(self) -> list[Path]:
        return clean_leftovers(self.path.parent)

    def setup(self, aliases: Mapping[str, Sequence[str]]) -> SetupReport:
        """``init``: create the workbook, or add what an existing one lacks (openpyxl)."""
        from sheets_bridge.sheets.xlsx_setup import setup_workbook

        if self.path.exists():
            self.verify()  # a damaged file is named as damaged, never re-saved by openpyxl
        return setup_workbook(
            self.path, tab=self.referrals_tab, aliases=aliases,
            allow_lossy_save=self.allow_lossy_save,
        )

    # ------------------------------------------------------------------------------- reading
    def _load(self) -> tuple[bytes, str]:
        """The file's bytes and the version token that goes with exactly those bytes."""
        for _ in range(5):
            try:
                before = os.stat(self.path)
                data = self.path.read_bytes()
                after = os.stat(self.path)
            except FileNotFoundError as exc:
                raise WorkbookUnreadableError(
                    f"{self.path} does not exist. Run `sheets-bridge init --config PATH` to "
                    "create the workbook, or fix sheet.path in the config."
                ) from exc
            except IsADirectoryError as exc:
                raise WorkbookUnreadableError(
                    f"{self.path} is a folder, not a workbook: point sheet.path in the config at "
                    "the .xlsx file."
                ) from exc
            if (before.st_size, before.st_mtime_ns) == (after.st_size, after.st_mtime_ns) and len(
                data
            ) == after.st_size:
                digest = hashlib.sha256(data).hexdigest()
                return data, f"{after.st_size}:{after.st_mtime_ns}:{digest}"
            time.sleep(0.05)  # someone is saving right now: read again once they are done
        raise SnapshotStaleError(
            f"{self.path} kept changing while the bridge read it; it will try again next cycle",
            backend=self.kind,
        )

    def _open(self, data: bytes) -> Package:
        try:
            return Package(data, self.path)
        except WorkbookUnreadableError:
            raise
        except (etree.XMLSyntaxError, zipfile.BadZipFile, zlib.error, KeyError, ValueError) as exc:
            raise WorkbookUnreadableError(
                f"{self.path} is damaged ({type(exc).__name__}: {exc}). Open it in Excel or "
                "LibreOffice, let it repair the file and save it, or restore it from a backup."
            ) from exc

    def read(self) -> Snapshot:
        """Read the Referrals tab and the bridge and Gifts tabs, all from one read of the file.

        A file holding exactly the bytes of the last read (same size, mtime and SHA-256: the
        version token) gives back that read's snapshot without parsing it again: a daemon's
        quiet cycles then cost a read and a hash. The snapshot is immutable plain data.
        """
        global _last_read
        data, version = self._load()
        key = (str(self.path.resolve()), self.referrals_tab, version)
        last = _last_read
        if last is not None and last[0] == key:
            return last[1]
        _last_read = None  # the old snapshot can go before the new one is built
        del last
        pkg = self._open(data)
        try:
            with gc_paused():
                snapshot = self._snapshot(pkg, version, (key[0], key[1]))
            _last_read = (key, snapshot)
            return snapshot
        except WorkbookUnreadableError:
            raise
        except (
            etree.XMLSyntaxError, zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError,
            IndexError, KeyError, UnicodeDecodeError,
        ) as exc:
            raise WorkbookUnreadableError(
                f"{self.path} is damaged ({type(exc).__name__} while reading it). Open it in Excel "
                "or LibreOffice, let it repair the file and save it, or restore it from a backup. "
                "The bridge has not changed it."
            ) from exc

    def verify(self) -> None:
        """Refuse a file the bridge cannot fully read, whatever tabs it has (probe #6).

        ``init`` re-saves through openpyxl, which would turn a damaged part into a traceback
        or, worse, into a clean-looking file that lost what the part held.
        """
        data, _ = self._load()
        pkg = self._open(data)
        for sheet in pkg.sheets:
            self._sheet_xml(pkg, sheet.name, sheet.part)

    def _context(self, pkg: Package) -> ox.ValueContext:
        return ox.ValueContext(
            shared=ox.shared_strings(pkg.read(pkg.shared_part)),
            date_style=ox.date_styles(pkg.read(pkg.styles_part)),
            date1904=pkg.date1904,
        )

    def _sheet_xml(self, pkg: Package, name: str, part: str) -> bytes:
        """A worksheet part's XML, refused when it is not a whole worksheet (probe #6): a tab the
        bridge cannot fully read is never planned from, so the file is never written."""
        xml = pkg.read(part) or b""
        tail = xml.rstrip()[-40:]
        try:
            whole = bool(xml) and ox.find_sheet_data(xml) is not None
        except ValueError:  # an unterminated <sheetData>: the part was cut short
            whole = False
        if not xml or not whole or not tail.endswith(b"worksheet>"):
            raise WorkbookUnreadableError(
                f"{self.path} is damaged: the tab {name!r} ({part}) is not a complete worksheet. "
                "Open the workbook in Excel or LibreOffice, let it repair the file and save it, "
                "or restore it from a backup. The bridge has not changed it."
            )
        return xml

    def _memo_for(self, pkg: Package, key: tuple[str, str]) -> _ReadMemo:
        """The read memo to use for ``pkg``: the last one when its value context is equal to
        this file's (see :class:`_ReadMemo`), else a fresh one with this file's context."""
        shared_xml = pkg.read(pkg.shared_part)
        styles_xml = pkg.read(pkg.styles_part)
        h = hashlib.blake2b(digest_size=32)
        for part in (shared_xml, styles_xml):
            h.update(b"-" if part is None else b"+%d:" % len(part))
            h.update(part or b"")
        h.update(b"1904" if pkg.date1904 else b"1900")
        digest = h.digest()
        last = _take_memo()
        if last is not None and last.key == key and last.parts_digest == digest:
            return last
        ctx = ox.ValueContext(
            shared=ox.shared_strings(shared_xml),
            date_style=ox.date_styles(styles_xml),
            date1904=pkg.date1904,
        )
        del shared_xml, styles_xml
        if last is not None and last.key == key:
            fit = _context_fit(last.ctx, ctx)
            if fit == "equal":
                last.parts_digest = digest
                return last  # the same values, written differently: every kept row holds
            if fit == "extends":
                last.parts_digest = digest
                last.ctx = ctx
                last.rows = {
                    part: {k: e for k, e in rows.items() if e[2]} for part, rows in last.rows.items()
                }
                last.referrals = None
                return last  # strings or styles appended: the closed rows still hold
        return _ReadMemo(key=key, parts_digest=digest, ctx=ctx)

    def _read_values(
        self, pkg: Package, memo: _ReadMemo, name: str, part: str
    ) -> ox.SheetValues:
        keep: ox.RowMemo = {}
        values = ox.read_sheet(
            self._sheet_xml(pkg, name, part), memo.ctx, memo.rows.get(part), keep
        )
        memo.rows[part] = keep
        return values

    def _snapshot(self, pkg: Package, version: str, key: tuple[str, str]) -> Snapshot:
        global _read_memo
        memo = self._memo_for(pkg, key)
        last_rows = memo.rows
        memo.rows = {}
        previous = memo.referrals
        memo.referrals = None
        referrals: ReferralsTab | None = None
        sheet = pkg.find_sheet(self.referrals_tab)
        if sheet is not None:
            memo.rows[sheet.part] = last_rows.get(sheet.part, {})
            values = self._read_values(pkg, memo, sheet.name, sheet.part)
            header = values.rows.get(1, ())
            before = {r.number: r for r in previous.rows} if previous is not None else {}
            rows = tuple(
                _same_row(before.get(n), n, vals, n in values.hidden)
                for n, vals in sorted(values.rows.items())
                if n >= 2
            )
            del before, previous
            referrals = ReferralsTab(
                title=sheet.name,
                headers=header,
                rows=rows,
                merged=tuple(values.merged),
                formula_cells=frozenset(values.formulas),
            )
        wanted = {title_key(t): t for t in (*model.BRIDGE_TABS, model.GIFTS_TAB)}
        tabs: dict[str, TabValues] = {}
        for s in pkg.sheets:
            canonical = wanted.get(title_key(s.name))
            if canonical is None or canonical in tabs:
                continue
            memo.rows[s.part] = last_rows.get(s.part, {})
            values = self._read_values(pkg, memo, s.name, s.part)
            last = max(values.rows, default=0)
            tabs[canonical] = TabValues(
                title=s.name, rows=tuple(values.rows.get(n, ()) for n in range(1, last + 1))
            )
        memo.referrals = referrals
        _read_memo = memo
        return Snapshot(
            tab_titles=tuple(s.name for s in pkg.sheets),
            referrals=referrals,
            tabs=tabs,
            date1904=pkg.date1904,
            version=version,
        )

    # ------------------------------------------------------------------------------- writing
    def lock_files(self) -> list[Path]:
        """Excel's and LibreOffice's "this file is open" markers that exist now."""
        return lock_files(self.path)

    def snapshot_reusable(self, snapshot: Snapshot) -> bool:
        """True when the file still holds exactly the bytes ``snapshot`` was read from.

        Costs a read and a hash, not a parse: a cycle that planned twice reuses its snapshot.
        """
        try:
            return self._load()[1] == snapshot.version
        except (WorkbookUnreadableError, SnapshotStaleError):
            return False

    def apply(self, snapshot: Snapshot, plan: Plan, columns: dict[str, int]) -> ApplyReport:
        """Apply the plan's cell, header and tab writes, compare-and-set, in one atomic save.

        Writes land only where the file is byte-for-byte the one ``snapshot`` was read from,
        the row still carries its Referral ID and the cell still holds ``expected``. A plan
        that changes nothing leaves the file untouched (same bytes, same mtime).
        """
        report = ApplyReport()
        if not (plan.cell_writes or plan.header_writes or plan.tab_contents):
            return report
        refuse_if_open(self.path)
        data, version = self._load()
        if version != snapshot.version:
            raise SnapshotStaleError(
                f"{self.path} changed since it was read; the bridge will read it again and re-plan",
                backend=self.kind,
            )
        pkg = self._open(data)
        edit = PackageEdit(pkg)
        handed: _Handed | None = None
        if plan.cell_writes or plan.header_writes:
            handed = self._patch_referrals(pkg, edit, plan, columns, report)
        tabs: dict[str, list[oxr.GeneratedRow]] = {}
        for content in plan.tab_contents:
            written = self._write_tab(pkg, edit, content, report)
            if written is not None:
                tabs[written[0]] = written[1]
        if not edit.changed:
            return report
        self._save(edit, version)
        report.saved = True
        if handed is not None or tabs:
            part, ctx, rows = handed if handed is not None else (None, self._context(pkg), [])
            if pkg.styles_part is not None and pkg.actual(pkg.styles_part) in edit.changes:
                ctx = ox.ValueContext(
                    shared=ctx.shared,
                    date_style=ox.date_styles(edit.get(pkg.styles_part)),
                    date1904=ctx.date1904,
                )
            _hand_over((str(self.path.resolve()), self.referrals_tab), part, ctx, rows, tabs)
        return report

    def _patch_referrals(
        self,
        pkg: Package,
        edit: PackageEdit,
        plan: Plan,
        columns: Mapping[str, int],
        report: ApplyReport,
    ) -> _Handed | None:
        """Patch the Referrals rows the plan writes; return what :func:`_hand_over` needs to
        give the next read those rows parsed (None when nothing was patched)."""
        sheet = pkg.find_sheet(self.referrals_tab)
        if sheet is None:
            report.skipped.extend((w, "the Referrals tab is missing") for w in plan.cell_writes)
            return None
        xml = pkg.read(sheet.part) or b""
        ctx = self._context(pkg)
        rows, data_span = oxr.index_rows(xml)
        merged = ox.merged_ranges(xml)
        prefix = (
            next(iter(rows.values())).prefix if rows else (data_span.prefix if data_span else b"")
        )
        new_cells: dict[int, dict[int, bytes]] = {}
        row_lines: dict[int, int] = {}
        formula_hit = False

        def in_merge(r: int, c: int) -> bool:
            return bool(merged) and any(m.contains(r, c) for m in merged)

        # Header writes: a missing bridge column's header goes into row 1.
        row1 = rows.get(1)
        cells1 = row1.cells() if row1 else oxr.row_cells(None)
        for hw in plan.header_writes:
            cur = cells1.cell(hw.col)
            cur_text = cell_text(ox.cell_value(cur.attrs, cur.body, ctx)) if cur else ""
            if cur_text.strip() == hw.header.strip() and cur_text:
                report.headers_added.append(hw)  # already there (a retry): nothing to do
                continue
            if cur_text or in_merge(1, hw.col):
                log.warning("row 1 column %s is not free; header %r not added", hw.col, hw.header)
                continue
            left = [
                c
                for c in map(cells1.cell, reversed(cells1.cols))
                if c and c.col < hw.col and c.body
            ]
            style = cur.attrs.get(b"s") if cur else None
            if style is None and left:
                style = left[0].attrs.get(b"s")  # look like the others
            ref = f"{ox.col_letters(hw.col)}1"
            new_cells.setdefault(1, {})[hw.col] = oxr.inline_string_cell(
                prefix, ref, style, hw.header[: model.MAX_CELL_CHARS]
            )
            report.headers_added.append(hw)

        source = _XmlRows(rows, ctx, columns.get("Referral ID"), plan.staff_columns)

        def refuse(row_no: int, col: int) -> str | None:
            if in_merge(row_no, col):
                return "merged"
            cell = source.cell(row_no, col)
            kind = formula_kind(cell.body if cell is not None else None)
            if kind in ("shared", "array", "table"):
                return "the cell holds a formula that other cells share"
            return None

        placement = place_writes(plan.cell_writes, source, columns, source.text, refuse=refuse)
        report.skipped.extend(placement.skipped)
        report.applied.extend(w for w, _ in placement.writes)  # every placed write is built
        if not (placement.writes or new_cells):
            return None
        # Each row is rebuilt as soon as its last write is built (its cells, index and row
        # lines then go), so a first sync never holds every row's new cells at once. Cells are
        # built in the plan's order, as before, so styles are added in the same order.
        last_write = {row_no: i for i, (_, row_no) in enumerate(placement.writes)}
        max_col = max(
            (*(columns[w.column] for w, _ in placement.writes), *new_cells.get(1, {})),
            default=0,
        )
        max_row = max((*last_write, *new_cells), default=0)
        edits: list[tuple[int, int, bytes]] = []
        starts = sorted(r.start for r in rows.values())
        sheet_end = data_span.inner_end if data_span is not None else None
        handed: list[_HandedRow] = []
        view = memoryview(xml)

        # What each written cell reads as (the written file's styles decide whether a number
        # is a date: see _patched), by row; a row with a cell the rule cannot say is parsed.
        reads: dict[int, tuple[dict[int, model.CellValue], list[tuple[int, bytes]]] | None] = {}

        def rebuild(row_no: int, span: oxr.RowSpan, cols: dict[int, bytes]) -> None:
            cells = source.cells(row_no)
            rebuilt = oxr.rebuild_row(span, cells, cols, max_col, row_lines.pop(row_no, None))
            source.forget(row_no)  # its cells are written: hold one row's index at a time
            edits.append((span.start, span.end, rebuilt))
            k = bisect.bisect_right(starts, span.start)
            stop = starts[k] if k < len(starts) else sheet_end
            if stop is not None and stop >= span.end:
                tail = xml[span.end : stop]
                # The old row's memo key, when its cells can be patched instead of parsed
                # again (see _hand_over): every cell names its column, in order, and only
                # whitespace follows the row.
                read = reads.pop(row_no, None)
                old_key = (
                    ox.row_digest(view[span.inner_start : stop])
                    if read is not None and not tail.strip() and cells.in_order()
                    else None
                )
                values, numbers = read if read is not None else ({}, [])
                handed.append((rebuilt, tail, old_key, values, tuple(numbers)))
            else:
                reads.pop(row_no, None)

        for i, (w, row_no) in enumerate(placement.writes):
            col = columns[w.column]
            cell = source.cell(row_no, col)
            if cell is not None and formula_kind(cell.body) is not None:
                formula_hit = True
            style = cell.attrs.get(b"s") if cell is not None else None
            ref = f"{ox.col_letters(col)}{row_no}"
            new = w.new[: model.MAX_CELL_CHARS]
            serial = (
                moment_text_serial(new, pkg.date1904)
                if w.column in model.BRIDGE_MOMENT_COLUMNS
                else None
            )
            if serial is not None:
                # A real date-time, so staff can sort and filter by it; a cell already styled
                # as a date (init's column format, or staff's own) keeps its look.
                if not _is_date_style(style, ctx):
                    found = edit.style(oxr.CellLook(number_format=oxr.DATETIME_FORMAT))
                    style = str(found).encode() if found is not None else style
                built = oxr.number_cell(prefix, ref, style, serial)
                value: model.CellValue = oxr.number_read(cell_text(serial))
            elif new:
                if w.column == "Attention":
                    width = model.BRIDGE_COLUMN_WIDTHS["Attention"]
                    row_lines[row_no] = min(oxr.text_lines(new, width), 20)
                if style is None and w.column in model.BRIDGE_WRAP_COLUMNS:
                    found = edit.style(oxr.CellLook(wrap=True))
                    style = str(found).encode() if found is not None else None
                built = oxr.inline_string_cell(prefix, ref, style, new)
                value = new
            else:
                if w.column == "Attention":
                    row_lines[row_no] = 1
                built = oxr.empty_cell(prefix, ref, style)
                value = None
            new_cells.setdefault(row_no, {})[col] = built
            read = reads.setdefault(row_no, ({}, [])) if row_no not in reads else reads[row_no]
            if read is not None:
                if serial is not None and value is None:
                    reads[row_no] = None  # not read as a number: that row is parsed again
                else:
                    read[0][col] = value
                    if serial is not None and style is not None:
                        read[1].append((col, style))
            span = rows.get(row_no)
            if last_write[row_no] == i and span is not None and row_no != 1:
                rebuild(row_no, span, new_cells.pop(row_no))

        for row_no, cols in new_cells.items():
            span = rows.get(row_no)
            if span is not None:
                rebuild(row_no, span, cols)
                continue
            # Only row 1 (headers) can be missing here: insert it before the first row.
            row_xml = oxr.new_row(prefix, row_no, cols)
            first = min(rows.values(), key=lambda r: r.start, default=None)
            if first is not None:
                edits.append((first.start, first.start, row_xml))
            elif data_span is not None and data_span.inner_end is None:
                p = data_span.prefix
                whole = b"<" + p + b"sheetData>" + row_xml + b"</" + p + b"sheetData>"
                edits.append((data_span.start, data_span.end, whole))
            elif data_span is not None:
                at = data_span.inner_end if data_span.inner_end is not None else data_span.end
                edits.append((at, at, row_xml))
        dim = oxr.update_dimension(xml, max_row, max_col)
        if dim is not None:
            edits.append(dim)
        added = {
            hw.col: (model.BRIDGE_COLUMN_WIDTHS.get(hw.header, 16), self._column_style(edit, hw.header))
            for hw in plan.header_writes
            if hw in report.headers_added
        }
        widths = oxr.column_width_edit(xml, data_span, added) if added else None
        if widths is not None:
            edits.append(widths)
        edit.put_pieces(sheet.part, Pieces(oxr.splice_pieces(xml, edits)))
        if formula_hit:
            edit.drop_calc_chain()
        if any(start == end for start, end, _ in edits if start >= (data_span.start if data_span else 0)):
            handed = []  # a row was inserted: the rows after it are read afresh (rare: row 1)
        return sheet.part, ctx, handed

    @staticmethod
    def _column_style(edit: PackageEdit, header: str) -> bytes | None:
        """The column style of a bridge column the sync adds: wrapped text, or a date-time."""
        if header in model.BRIDGE_WRAP_COLUMNS:
            found = edit.style(oxr.CellLook(wrap=True))
        elif header in model.BRIDGE_MOMENT_COLUMNS:
            found = edit.style(oxr.CellLook(number_format=oxr.DATETIME_FORMAT))
        else:
            return None
        return str(found).encode() if found is not None else None

    def _write_tab(
        self, pkg: Package, edit: PackageEdit, content: TabContent, report: ApplyReport
    ) -> tuple[str, list[oxr.GeneratedRow]] | None:
        """Write a bridge tab whole; return its part and its rows as the next read parses
        them (for :func:`_hand_over`)."""
        if title_key(content.title) == title_key(self.referrals_tab):
            log.error("refusing to overwrite the Referrals tab with a summary tab")
            return None
        existing = pkg.find_sheet(content.title)
        part = existing.part if existing is not None else edit.new_sheet_part()
        keep: list[bytes] = []
        drawing_rid: str | None = None
        if existing is not None:
            old = edit.get(part) or b""
            rel_ids = {rid for rid, _, _, _ in ox.iter_rels(edit.get(ox.rels_part_of(part)), part)}
            for el in oxr.kept_elements(old):
                m = re.search(rb'r:id="([^"]+)"', el)
                if not m or m.group(1).decode() not in rel_ids:
                    continue
                if el.startswith(b"<drawing "):
                    drawing_rid = drawing_rid or m.group(1).decode()
                else:
                    keep.append(el)
        # The drawing comes first: CT_Worksheet orders drawing before legacyDrawing(HF).
        drawing_rid = edit.redraw_chart(part, drawing_rid, content, fresh_sheet=existing is None)
        if drawing_rid is not None:
            keep.insert(0, b'<drawing r:id="' + ox.escape_attr(drawing_rid).encode() + b'"/>')
        parsed: list[oxr.GeneratedRow] = []
        xml = oxr.generate_sheet(
            content.rows,
            style=edit.style,
            heading_rows=content.heading_rows,
            heading_cells=content.heading_cells,
            right_cells=content.right_cells,
            wrap_cols=content.wrap_cols,
            widths=content.widths,
            freeze_rows=content.freeze_rows,
            landscape=content.landscape,
            keep=keep,
            max_chars=model.MAX_CELL_CHARS,
            date1904=pkg.date1904,
            parsed=parsed,
        )
        if existing is not None:
            edit.put(part, xml)
        else:
            edit.add_sheet(content.title, xml, part)
        report.tabs_written.append(content.title)
        return edit.pkg.actual(part), parsed

    def _save(self, edit: PackageEdit, version: str) -> None:
        """Write the new zip beside the workbook and swap it in, if the file is still ours."""

        def still_ours() -> None:
            if self._load()[1] != version:
                raise SnapshotStaleError(
                    f"{self.path} was saved by someone else while the bridge was writing; it "
                    "will read it again and re-plan",
                    backend=self.kind,
                )
            refuse_if_open(self.path)

        replace_file(self.path, edit.write_zip, check=still_ours, step=self.step)


#: A rewritten row for the next read: (its XML as written, the bytes after it up to the next
#: row, the memo key of the row it replaced when that row's cells may be patched (else None),
#: what each written cell reads as by column, the written number cells' styles by column).
_HandedRow = tuple[
    bytes, bytes, bytes | None, Mapping[int, model.CellValue], tuple[tuple[int, bytes], ...]
]
_Handed = tuple[str, ox.ValueContext, list[_HandedRow]]


def _context_fit(old: ox.ValueContext, new: ox.ValueContext) -> str:
    """"equal" when ``new`` reads every cell as ``old`` does, "extends" when it only appends
    shared strings or styles (so a closed row reads the same), else "differs"."""
    if old.date1904 != new.date1904:
        return "differs"
    old_s, new_s = list(old.shared), list(new.shared)
    old_d, new_d = list(old.date_style), list(new.date_style)
    if old_s == new_s and old_d == new_d:
        return "equal"
    if new_s[: len(old_s)] == old_s and new_d[: len(old_d)] == old_d:
        return "extends"
    return "differs"


def _hand_over(
    path_key: tuple[str, str],
    part: str | None,
    ctx: ox.ValueContext,
    rows: Sequence[_HandedRow],
    tabs: Mapping[str, Sequence[oxr.GeneratedRow]] | None = None,
) -> None:
    """After a save, give the next read the rows this save rewrote, already parsed.

    Each row is keyed by the digest of exactly the bytes the next read will digest (the row
    as written and what follows it up to the next row) and holds what the read would parse
    from them with the written file's context, so the cycle after a first sync (every row
    rewritten) parses none of them again.

    Parsing every rewritten row again cost as much as reading the sheet. A row whose cells
    all name their column, in order, is patched instead (``_patched``): its old entry (the
    memo of the read this save was planned from, valid under ``ctx``) with the written cells'
    values, parsed from the written cells' bytes alone, put in their columns. That is exact
    because with explicit references a cell's value depends on its own bytes and ``ctx``
    only; any other row, or one whose old entry is missing, is parsed whole.

    ``tabs`` are the bridge tabs the save wrote whole, by part, each row as
    ``generate_sheet`` says the read parses it: their rows go in as they are, keyed the same
    way (so only a tab whose bytes on disk are the bytes written is read from them), with a
    number's date style looked up in ``ctx`` as the read does.
    """
    global _read_memo
    memo = _take_memo()
    if memo is None or memo.key != path_key:
        return
    fit = _context_fit(memo.ctx, ctx)
    if fit == "differs":
        return
    if fit == "extends":
        memo.rows = {p: {k: e for k, e in r.items() if e[2]} for p, r in memo.rows.items()}
        memo.referrals = None
    memo.ctx = ctx
    memo.parts_digest = b""  # the next read compares the context value by value
    scan = ox.RowScanner(ctx)
    for tab_part, generated in (tabs or {}).items():
        into = memo.rows.setdefault(tab_part, {})
        for key, values, numbers in generated:
            into[key] = _tab_entry(values, numbers, scan.date_by_s)
    if part is None:
        _read_memo = memo
        return
    kept = memo.rows.setdefault(part, {})
    for row_xml, tail, old_key, written, numbers in rows:
        m = ox.ROW_START_RE.match(row_xml)
        if m is None or m.group(3):
            continue
        segment = row_xml[m.end() :] + tail
        old = kept.get(old_key) if old_key is not None else None
        entry = _patched(old, written, numbers, scan) if old is not None else None
        if entry is None:
            entry = scan.cells(segment, 0, len(segment))
        kept[ox.row_digest(memoryview(segment))] = entry
    _read_memo = memo


def _tab_entry(
    values: tuple[model.CellValue, ...],
    numbers: Sequence[tuple[int, bytes]],
    date_by_s: Mapping[bytes, bool],
) -> ox.RowEntry:
    """A generated row's memo entry: a styled number is a date where its style shows one,
    and the row is closed unless a number's style is outside the styles (the scanner's
    rules, ``ooxml.RowScanner.cells``)."""
    if not numbers:
        return values, (), True
    out = list(values)
    closed = _date_numbers(out, numbers, date_by_s)
    return tuple(out), (), closed


def _date_numbers(
    out: list[model.CellValue], numbers: Sequence[tuple[int, bytes]],
    date_by_s: Mapping[bytes, bool],
) -> bool:
    """Turn each written number (its column and style) in a date style into a date in
    ``out``, as the reader does; False when a style is outside the styles (the row is then
    not closed: the reader would not know it either)."""
    closed = True
    for col, s in numbers:
        flag = date_by_s.get(s)
        if flag:
            out[col] = model.DateSerial(out[col])  # type: ignore[arg-type]
        elif flag is None:
            closed = False
    return closed


def _patched(
    old: ox.RowEntry,
    written: Mapping[int, model.CellValue],
    numbers: Sequence[tuple[int, bytes]],
    scan: ox.RowScanner,
) -> ox.RowEntry:
    """A row's memo entry after the cells ``written`` (column -> what the cell reads as: the
    text of an inline string, the number of a number cell, None for a removed cell) replaced
    its cells: the old values with those columns set, a written number in a date style a
    date (``numbers``: its column and style). That is the reader's rule for the bytes the
    bridge writes (``ooxml.RowScanner.cells``; the generated tabs use the same one, and
    ``tests/integration/test_xlsx_apply_exact.py`` compares both with a parse). Formulas in
    the written columns are gone (the bridge writes values); the row stays closed only if it
    was and every written style is in the styles."""
    values, formula_cols, closed = old
    out = list(values)
    width = max(len(out), max(written, default=-1) + 1)
    if len(out) < width:
        out.extend([None] * (width - len(out)))
    for col, value in written.items():
        out[col] = value if value != "" else None
    if not _date_numbers(out, numbers, scan.date_by_s):
        closed = False
    while out and out[-1] is None:
        out.pop()
    kept_formulas = tuple(c for c in formula_cols if c not in written)
    return tuple(out), kept_formulas, closed


def _same_row(
    before: SheetRow | None, number: int, values: tuple[model.CellValue, ...], hidden: bool
) -> SheetRow:
    """The last read's row object when this row reads exactly as it did, else a new one."""
    if (
        before is not None
        and before.hidden == hidden
        and before.values is values  # identity: equal-looking values may differ in type
    ):
        return before
    return SheetRow(number=number, values=values, hidden=hidden)


def _is_date_style(style: bytes | None, ctx: ox.ValueContext) -> bool:
    if style is None:
        return False
    try:
        return ctx.date_style[int(style)]
    except (ValueError, IndexError):
        return False


class _XmlRows:
    """The locator's view of the Referrals sheet XML: row cells parsed only when asked for.

    Each row's cells are indexed once, and each cell's compare-and-set text and each row's
    Referral ID computed once: the locator, the compare-and-set and the write itself all ask
    for the same cells (a first sync asks for every row's ID cell and 7 bridge cells), and the
    XML they read cannot change within one apply.
    """

    def __init__(
        self,
        rows: Mapping[int, oxr.RowSpan],
        ctx: ox.ValueContext,
        id_col: int | None,
        staff: Mapping[str, int],
    ) -> None:
        self.rows = rows
        self.ctx = ctx
        self.id_col = id_col
        self.staff = staff
        self._cells: dict[int, oxr.RowCells] = {}
        self._ids: dict[int, str | None] = {}
        self._last: tuple[int, int, oxr.RawCell | None] | None = None

    def cells(self, number: int) -> oxr.RowCells:
        found = self._cells.get(number)
        if found is None:
            span = self.rows.get(number)
            found = self._cells[number] = span.cells() if span else oxr.row_cells(None)
        return found

    def forget(self, number: int) -> None:
        """Drop a row's cell index once its writes are built (the texts and IDs stay)."""
        self._cells.pop(number, None)

    def cell(self, number: int, col: int | None) -> oxr.RawCell | None:
        # The last cell asked for is kept: the compare-and-set, the formula check and the
        # write ask for the same cell one after another (its attributes parsed once).
        last = self._last
        if last is not None and last[0] == number and last[1] == col:
            return last[2]
        found = self.cells(number).cell(col)
        if col is not None:
            self._last = (number, col, found)
        return found

    def text(self, number: int, col: int) -> str:
        return cell_text_of(self.cell(number, col), self.ctx)

    def id_at(self, number: int) -> str | None:
        if number in self._ids:
            return self._ids[number]
        if number < 2 or number not in self.rows:
            found = None
        else:
            found = self.text(number, self.id_col).strip() if self.id_col is not None else ""
        self._ids[number] = found
        return found

    def fingerprint_at(self, number: int) -> str:
        width = max(self.staff.values(), default=-1) + 1
        values = tuple(
            ox.cell_value(c.attrs, c.body, self.ctx) if (c := self.cell(number, col)) else None
            for col in range(width)
        )
        return row_fingerprint(values, self.staff)

    def numbers(self) -> Iterable[int]:
        return (n for n in sorted(self.rows) if n >= 2)

    #: ``apply`` patches only a file byte-identical to the one its plan was read from.
    unchanged_since_read = True



