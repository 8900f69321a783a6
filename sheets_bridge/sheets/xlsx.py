"""LocalWorkbook: the Referrals workbook as a local ``.xlsx`` file that staff open in Excel.

The file is the system of record and staff may have it open, so the bridge:

- reads the zip directly (no openpyxl: too slow for a sync loop, and it drops charts, shapes and
  extensions when saving) and versions every snapshot by size, mtime and SHA-256 of the bytes;
- writes by patching only the ``<row>`` elements it changes and the bridge-owned summary sheets,
  copying every other zip member unchanged, so charts, images, pivot tables and extensions that
  staff made survive a sync;
- draws a bridge tab's chart (the Dashboard's weekly chart) itself, as DrawingML drawing and
  chart parts with cached values, and redraws it in place whenever it rewrites that tab: the same
  part names each time, the old chart's parts and relationships removed, so the package never
  grows and a staff chart elsewhere stays byte-identical;
- honours Excel's and LibreOffice's lock files, checks the file is still the one it planned from
  just before replacing it, and replaces it atomically (temp file in the same folder, fsync,
  ``os.replace``, fsync the folder) - RELIABILITY.md R6, F14-F18.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import posixpath
import re
import stat
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from lxml import etree

from sheets_bridge import model
from sheets_bridge.errors import (
    SnapshotStaleError,
    WorkbookBusyError,
    WorkbookUnreadableError,
)
from sheets_bridge.files import fsync_dir
from sheets_bridge.model import (
    CellWrite,
    Plan,
    ReferralsTab,
    SheetRow,
    Snapshot,
    TabContent,
    TabValues,
)
from sheets_bridge.sheets import ApplyReport
from sheets_bridge.sheets import ooxml as ox

log = logging.getLogger(__name__)

#: Test hook for the kill-at-every-step harness (RELIABILITY.md harness K): called after the new
#: workbook is written and fsynced beside the old one and before ``os.replace``. None in production.
before_replace_hook: Callable[[], None] | None = None

TEMP_PREFIX = ".~sheets-bridge-"
TEMP_SUFFIX = ".tmp"
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGIC = b"PK"
_REL_CALC_CHAIN = "/calcChain"
_REL_SHARED_STRINGS = "/sharedStrings"
_REL_STYLES = "/styles"
_REL_OFFICE_DOCUMENT = "/officeDocument"


def _title_key(title: str) -> str:
    """Sheet titles compare as Excel does: case-insensitively (and we ignore stray spaces)."""
    return title.strip().casefold()


@dataclass
class _Sheet:
    name: str
    sheet_id: int
    rid: str
    part: str


class _Package:
    """An opened workbook zip: member lookup plus the workbook's sheet list and parts."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.path = path
        if data[:8] == _OLE2_MAGIC:
            raise WorkbookUnreadableError(
                f"{path} is an old-style .xls file or a password-protected workbook, which the "
                "bridge cannot read. Open it in Excel or LibreOffice, remove the password if it "
                "has one, and save it as an Excel Workbook (.xlsx) under the same name."
            )
        if data[:2] != _ZIP_MAGIC:
            raise WorkbookUnreadableError(
                f"{path} is not an .xlsx workbook (it is not a zip file; it may be a CSV, an "
                ".ods or a damaged file). Restore it from a backup, or save it from Excel or "
                "LibreOffice as an Excel Workbook (.xlsx). The bridge has not changed it."
            )
        try:
            self.zf = zipfile.ZipFile(io.BytesIO(data))
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError) as exc:
            raise WorkbookUnreadableError(
                f"{path} is damaged: it is not a complete .xlsx zip ({exc}). It may have been "
                "copied or synced only partly. Restore it from a backup or from the cloud "
                "folder's version history; the bridge has not changed it."
            ) from exc
        self.infos = self.zf.infolist()
        if any(info.flag_bits & 0x1 for info in self.infos):
            raise WorkbookUnreadableError(
                f"{path} is encrypted. Remove the password in Excel (File > Info > Protect "
                "Workbook) so the bridge can read it."
            )
        self.names = {info.filename.lower(): info.filename for info in self.infos}
        self.workbook_part = self._office_document()
        wb_xml = self.read(self.workbook_part)
        if wb_xml is None:
            raise WorkbookUnreadableError(
                f"{path} is a zip file but not an Excel workbook (it has no xl/workbook.xml). "
                "Point the config's sheet.path at the referral workbook (.xlsx), or run "
                "`sheets-bridge init --config PATH` to create one."
            )
        self.workbook_rels_part = ox.rels_part_of(self.workbook_part)
        self.rels: dict[str, tuple[str, str]] = {}
        for rid, rtype, target, external in ox.iter_rels(
            self.read(self.workbook_rels_part), self.workbook_part
        ):
            if not external:
                self.rels[rid] = (rtype, self.actual(target))
        root = ox.parse_xml(wb_xml)
        self.date1904 = False
        for pr in root.iter("{*}workbookPr"):
            self.date1904 = pr.get("date1904", "0").lower() in ("1", "true")
        self.sheets: list[_Sheet] = []
        for el in root.iter("{*}sheet"):
            rid = next(
                (
                    str(v)
                    for k, v in el.attrib.items()
                    if str(k).endswith("}id") and "relationships" in str(k)
                ),
                "",
            )
            rel = self.rels.get(rid)
            if rel is None:
                continue
            try:
                sheet_id = int(el.get("sheetId", "0"))
            except ValueError:
                sheet_id = 0
            self.sheets.append(_Sheet(el.get("name", ""), sheet_id, rid, rel[1]))
        self.shared_part = self._rel_part(_REL_SHARED_STRINGS)
        self.styles_part = self._rel_part(_REL_STYLES)

    def _office_document(self) -> str:
        for _, rtype, target, external in ox.iter_rels(self.read("_rels/.rels"), ""):
            if rtype.endswith(_REL_OFFICE_DOCUMENT) and not external:
                return self.actual(target)
        return "xl/workbook.xml"

    def _rel_part(self, suffix: str) -> str | None:
        return next((t for rt, t in self.rels.values() if rt.endswith(suffix)), None)

    def actual(self, name: str) -> str:
        """The member's real name (OPC part names are case-insensitive)."""
        return self.names.get(name.lower(), name)

    def read(self, name: str | None) -> bytes | None:
        if name is None:
            return None
        real = self.names.get(name.lower())
        if real is None:
            return None
        return ox.to_utf8(self.zf.read(real))

    def find_sheet(self, title: str) -> _Sheet | None:
        key = _title_key(title)
        return next((s for s in self.sheets if _title_key(s.name) == key), None)


class LocalWorkbook:
    """The Referrals workbook as a local ``.xlsx`` file (the default, account-free backend)."""

    kind: ClassVar[str] = "local"

    def __init__(self, path: str | os.PathLike[str], referrals_tab: str = model.REFERRALS_TAB):
        self.path = Path(path)
        self.referrals_tab = referrals_tab

    def describe(self) -> str:
        return str(self.path)

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

    def _open(self, data: bytes) -> _Package:
        try:
            return _Package(data, self.path)
        except WorkbookUnreadableError:
            raise
        except (etree.XMLSyntaxError, zipfile.BadZipFile, zlib.error, KeyError, ValueError) as exc:
            raise WorkbookUnreadableError(
                f"{self.path} is damaged ({type(exc).__name__}: {exc}). Open it in Excel or "
                "LibreOffice, let it repair the file and save it, or restore it from a backup."
            ) from exc

    def read(self) -> Snapshot:
        """Read the Referrals tab and the bridge and Gifts tabs, all from one read of the file."""
        data, version = self._load()
        pkg = self._open(data)
        try:
            return self._snapshot(pkg, version)
        except (etree.XMLSyntaxError, zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            raise WorkbookUnreadableError(
                f"{self.path} is damaged ({type(exc).__name__}). Open it in Excel or LibreOffice, "
                "let it repair the file and save it, or restore it from a backup."
            ) from exc

    def _context(self, pkg: _Package) -> ox.ValueContext:
        return ox.ValueContext(
            shared=ox.shared_strings(pkg.read(pkg.shared_part)),
            date_style=ox.date_styles(pkg.read(pkg.styles_part)),
            date1904=pkg.date1904,
        )

    def _snapshot(self, pkg: _Package, version: str) -> Snapshot:
        ctx = self._context(pkg)
        referrals: ReferralsTab | None = None
        sheet = pkg.find_sheet(self.referrals_tab)
        if sheet is not None:
            values = ox.read_sheet(pkg.read(sheet.part) or b"", ctx)
            header = values.rows.get(1, ())
            rows = tuple(
                SheetRow(number=n, values=vals, hidden=n in values.hidden)
                for n, vals in sorted(values.rows.items())
                if n >= 2
            )
            referrals = ReferralsTab(
                title=sheet.name,
                headers=header,
                rows=rows,
                merged=tuple(values.merged),
                formula_cells=frozenset(values.formulas),
            )
        wanted = {_title_key(t): t for t in (*model.BRIDGE_TABS, model.GIFTS_TAB)}
        tabs: dict[str, TabValues] = {}
        for s in pkg.sheets:
            canonical = wanted.get(_title_key(s.name))
            if canonical is None or canonical in tabs:
                continue
            values = ox.read_sheet(pkg.read(s.part) or b"", ctx)
            last = max(values.rows, default=0)
            tabs[canonical] = TabValues(
                title=s.name, rows=tuple(values.rows.get(n, ()) for n in range(1, last + 1))
            )
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
        name = self.path.name
        folder = self.path.parent
        candidates = {f"~${name}", f".~lock.{name}#"}
        if len(name) > 2:
            candidates.add(f"~${name[2:]}")
        return [folder / c for c in sorted(candidates) if (folder / c).exists()]

    def _refuse_if_open(self) -> None:
        if self.lock_files():
            raise WorkbookBusyError(
                f"{self.path} is open in Excel or LibreOffice; the bridge will write when it is "
                "closed"
            )

    def is_current(self, snapshot: Snapshot) -> bool:
        """True when the file still holds exactly the bytes ``snapshot`` was read from.

        Costs a read and a hash, not a parse: a cycle that planned twice reuses its snapshot.
        """
        try:
            return self._load()[1] == snapshot.version
        except (WorkbookUnreadableError, SnapshotStaleError):
            return False

    def clean_leftovers(self) -> list[Path]:
        """Delete temp files a crashed save left next to the workbook (called at start, F17)."""
        removed: list[Path] = []
        folder = self.path.parent
        try:
            entries = list(folder.iterdir())
        except OSError:
            return removed
        for entry in entries:
            if entry.name.startswith(TEMP_PREFIX) and entry.name.endswith(TEMP_SUFFIX):
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
                    removed.append(entry)
                    log.info("removed a leftover temp file from an interrupted save: %s", entry)
        return removed

    def apply(self, snapshot: Snapshot, plan: Plan, columns: dict[str, int]) -> ApplyReport:
        """Apply the plan's cell, header and tab writes, compare-and-set, in one atomic save.

        Writes land only where the file is byte-for-byte the one ``snapshot`` was read from,
        the row still carries its Referral ID and the cell still holds ``expected``. A plan
        that changes nothing leaves the file untouched (same bytes, same mtime).
        """
        report = ApplyReport()
        if not (plan.cell_writes or plan.header_writes or plan.tab_contents):
            return report
        self._refuse_if_open()
        data, version = self._load()
        if version != snapshot.version:
            raise SnapshotStaleError(
                f"{self.path} changed since it was read; the bridge will read it again and re-plan",
                backend=self.kind,
            )
        pkg = self._open(data)
        edit = _Edit(pkg)
        if plan.cell_writes or plan.header_writes:
            self._patch_referrals(pkg, edit, plan, columns, report)
        for content in plan.tab_contents:
            self._write_tab(pkg, edit, content, report)
        if not edit.changed:
            return report
        self._save(pkg, edit, version)
        report.saved = True
        return report

    def _patch_referrals(
        self,
        pkg: _Package,
        edit: _Edit,
        plan: Plan,
        columns: Mapping[str, int],
        report: ApplyReport,
    ) -> None:
        sheet = pkg.find_sheet(self.referrals_tab)
        if sheet is None:
            report.skipped.extend((w, "the Referrals tab is missing") for w in plan.cell_writes)
            return
        xml = pkg.read(sheet.part) or b""
        ctx = self._context(pkg)
        rows, data_span = ox.index_rows(xml)
        merged = [ox.parse_range(r.decode("ascii")) for r in ox.MERGE_RE.findall(xml)]
        prefix = (
            next(iter(rows.values())).prefix if rows else (data_span.prefix if data_span else b"")
        )
        id_col = columns.get("Referral ID")
        new_cells: dict[int, dict[int, bytes]] = {}
        formula_hit = False

        def in_merge(r: int, c: int) -> bool:
            return bool(merged) and any(m.contains(r, c) for m in merged)

        # Header writes: a missing bridge column's header goes into row 1.
        row1 = rows.get(1)
        cells1 = ox.row_cells(row1.inner if row1 else None)
        for hw in plan.header_writes:
            cur = cells1.cell(hw.col)
            cur_text = ox.cell_text(ox.cell_value(cur.attrs, cur.body, ctx)) if cur else ""
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
            new_cells.setdefault(1, {})[hw.col] = ox.inline_string_cell(
                prefix, ref, style, hw.header[: model.MAX_CELL_CHARS]
            )
            report.headers_added.append(hw)

        parsed: dict[int, ox.RowCells] = {}
        by_row: dict[int, list[CellWrite]] = {}
        for w in plan.cell_writes:
            by_row.setdefault(w.row.number, []).append(w)
        for row_no, writes in sorted(by_row.items()):
            span = rows.get(row_no)
            cells = parsed[row_no] = ox.row_cells(span.inner if span else None)

            id_text = _text(cells.cell(id_col), ctx)
            # A new row gets its Referral ID in this same plan: its other writes may name it.
            ids_ok = {id_text.strip()}
            ids_ok.update(
                w.new.strip()
                for w in writes
                if columns.get(w.column) == id_col and w.expected == id_text
            )
            for w in writes:
                col = columns.get(w.column)
                reason = None
                cell = cells.cell(col)
                kind = _formula_kind(cell.body) if cell is not None else None
                if col is None:
                    reason = f"column {w.column} is not in the sheet"
                elif span is None:
                    reason = f"row {row_no} no longer exists"
                elif id_col is None:
                    reason = "the Referral ID column is missing"
                elif w.row.referral_id.strip() not in ids_ok:
                    reason = f"row {row_no} no longer holds {w.row.referral_id or 'that row'}"
                elif in_merge(row_no, col):
                    reason = "merged"
                elif kind in ("shared", "array", "table"):
                    reason = f"{w.column} holds a formula that other cells share"
                elif _text(cell, ctx) != w.expected:
                    reason = f"{w.column} changed since it was read"
                if reason is not None or col is None:
                    report.skipped.append((w, reason or "skipped"))
                    continue
                if kind is not None:
                    formula_hit = True
                style = cell.attrs.get(b"s") if cell is not None else None
                ref = f"{ox.col_letters(col)}{row_no}"
                new = w.new[: model.MAX_CELL_CHARS]
                xml_cell = (
                    ox.inline_string_cell(prefix, ref, style, new)
                    if new
                    else ox.empty_cell(prefix, ref, style)
                )
                new_cells.setdefault(row_no, {})[col] = xml_cell
                report.applied.append(w)

        if not new_cells:
            return
        edits: list[tuple[int, int, bytes]] = []
        max_col = max(c for cols in new_cells.values() for c in cols)
        for row_no, cols in new_cells.items():
            span = rows.get(row_no)
            if span is not None:
                cells_list = parsed.get(row_no) or ox.row_cells(span.inner)
                edits.append(
                    (span.start, span.end, ox.rebuild_row(span, cells_list, cols, max_col))
                )
                continue
            # Only row 1 (headers) can be missing here: insert it before the first row.
            row_xml = ox.new_row(prefix, row_no, cols)
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
        dim = ox.update_dimension(xml, max(new_cells), max_col)
        if dim is not None:
            edits.append(dim)
        edit.put(sheet.part, ox.splice(xml, edits))
        if formula_hit:
            edit.drop_calc_chain()

    def _write_tab(
        self, pkg: _Package, edit: _Edit, content: TabContent, report: ApplyReport
    ) -> None:
        if _title_key(content.title) == _title_key(self.referrals_tab):
            log.error("refusing to overwrite the Referrals tab with a summary tab")
            return
        bold, wrap = edit.styles()
        existing = pkg.find_sheet(content.title)
        part = existing.part if existing is not None else edit.new_sheet_part()
        keep: list[bytes] = []
        drawing_rid: str | None = None
        if existing is not None:
            old = edit.get(part) or b""
            rel_ids = {rid for rid, _, _, _ in ox.iter_rels(edit.get(ox.rels_part_of(part)), part)}
            for el in ox.kept_elements(old):
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
        xml = ox.generate_sheet(
            content.rows,
            bold_style=bold,
            wrap_style=wrap,
            heading_rows=content.heading_rows,
            heading_cells=content.heading_cells,
            widths=content.widths,
            freeze_rows=content.freeze_rows,
            keep=keep,
            max_chars=model.MAX_CELL_CHARS,
        )
        if existing is not None:
            edit.put(part, xml)
        else:
            edit.add_sheet(content.title, xml, part)
        report.tabs_written.append(content.title)

    def _save(self, pkg: _Package, edit: _Edit, version: str) -> None:
        """Write the new zip beside the workbook and swap it in, if the file is still ours."""
        folder = self.path.parent
        mode = stat.S_IMODE(os.stat(self.path).st_mode)
        fd, tmp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX, dir=folder)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as fh:
                edit.write_zip(fh)
                fh.flush()
                if hasattr(os, "fchmod"):
                    os.fchmod(fh.fileno(), mode)
                os.fsync(fh.fileno())
            if not hasattr(os, "fchmod"):
                os.chmod(tmp, mode)
            _, now = self._load()
            if now != version:
                raise SnapshotStaleError(
                    f"{self.path} was saved by someone else while the bridge was writing; it "
                    "will read it again and re-plan",
                    backend=self.kind,
                )
            self._refuse_if_open()
            if before_replace_hook is not None:
                before_replace_hook()
            try:
                os.replace(tmp, self.path)
            except PermissionError as exc:  # Windows: the file is open in Excel
                raise WorkbookBusyError(
                    f"{self.path} is open in Excel or LibreOffice; the bridge will write when it "
                    "is closed"
                ) from exc
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        fsync_dir(folder)


def _text(cell: ox.RawCell | None, ctx: ox.ValueContext) -> str:
    """A cell's value as compare-and-set text ("" for no cell)."""
    if cell is None:
        return ""
    return ox.cell_text(ox.cell_value(cell.attrs, cell.body, ctx))


def _formula_kind(body: bytes | None) -> str | None:
    """None (no formula), "normal", or "shared"/"array"/"table" for masters others depend on."""
    if not body:
        return None
    m = ox.F_RE.search(body)
    if not m:
        return None
    attrs = ox.attrs_of(m.group(1))
    t = attrs.get(b"t", b"normal")
    if t == b"shared" and b"ref" in attrs:
        return "shared"
    if t == b"array":
        return "array"
    if t == b"dataTable":
        return "table"
    return "normal"


class _Edit:
    """The members a save changes, adds or removes; everything else is copied unchanged."""

    def __init__(self, pkg: _Package) -> None:
        self.pkg = pkg
        self.changes: dict[str, bytes | None] = {}
        self.added: list[str] = []
        self._styles: tuple[int | None, int | None] | None = None

    @property
    def changed(self) -> bool:
        return any(
            new is None or new != self.pkg.read(name) for name, new in self.changes.items()
        ) or bool(self.added)

    def get(self, name: str) -> bytes | None:
        real = self.pkg.actual(name)
        if real in self.changes:
            return self.changes[real]
        return self.pkg.read(real)

    def put(self, name: str, data: bytes) -> None:
        real = self.pkg.actual(name)
        if real not in self.pkg.names.values() and real not in self.added:
            self.added.append(real)
        self.changes[real] = data

    def delete(self, name: str) -> None:
        real = self.pkg.actual(name)
        if real in self.pkg.names.values():
            self.changes[real] = None
        elif real in self.added:
            self.added.remove(real)
            self.changes.pop(real, None)

    def members(self) -> list[str]:
        """The member names the saved package will hold."""
        kept = [n for n in self.pkg.names.values() if self.changes.get(n, b"") is not None]
        return kept + [a for a in self.added if self.changes.get(a) is not None]

    # -- relationships and content types
    def _remove(self, name: str, tag: bytes, attr: bytes, value: bytes) -> None:
        data = self.get(name)
        if data is not None:
            self.put(name, _remove_elements(data, tag, attr, value))

    def drop_calc_chain(self) -> None:
        """Remove the calculation chain: Excel rebuilds it, and a stale one makes it "repair"."""
        pkg = self.pkg
        for rid, (rtype, target) in pkg.rels.items():
            if not rtype.endswith(_REL_CALC_CHAIN):
                continue
            self.delete(target)
            self._remove(pkg.workbook_rels_part, b"Relationship", b"Id", rid.encode())
            self._remove("[Content_Types].xml", b"Override", b"PartName", b"/" + target.encode())

    def new_part_name(self, pattern: str) -> str:
        """The first free member name ``pattern.format(n)`` for n = 1, 2... (case-insensitive)."""
        taken = {n.lower() for n in self.pkg.names} | {a.lower() for a in self.added}
        n = 1
        while pattern.format(n).lower() in taken:
            n += 1
        return pattern.format(n)

    def new_sheet_part(self) -> str:
        """A free worksheet part name for a tab about to be added."""
        return self.new_part_name("xl/worksheets/sheet{}.xml")

    def add_sheet(self, title: str, xml: bytes, part: str | None = None) -> None:
        """Add a worksheet part after the existing tabs, wired into workbook, rels and types."""
        pkg = self.pkg
        part = part or self.new_sheet_part()
        self.put(part, xml)
        rels_xml = (
            self.get(pkg.workbook_rels_part)
            or (
                f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                f'<Relationships xmlns="{ox.NS_PKG_REL}"></Relationships>'
            ).encode()
        )
        rid = _free_rid(rels_xml, start=len(_rel_ids(rels_xml)) + 1)
        target = posixpath.relpath(part, posixpath.dirname(pkg.workbook_part) or ".")
        rel = (f'<Relationship Id="{rid}" Type="{ox.REL_WORKSHEET}" Target="{target}"/>').encode()
        self.put(pkg.workbook_rels_part, _insert_before_close(rels_xml, b"Relationships", rel))

        wb = self.get(pkg.workbook_part) or b""
        ids = [int(x) for x in re.findall(rb'\bsheetId\s*=\s*"(\d+)"', wb)]
        sheet_id = max(ids, default=0) + 1
        pm = re.search(rb"<([\w.-]+:)?sheet\b", wb) or re.search(rb"<([\w.-]+:)?sheets\b", wb)
        prefix = (pm.group(1) or b"") if pm else b""
        # Declared on the element itself: openpyxl declares the prefix per <sheet>, not on the root.
        rattr = f'xmlns:r="{ox.NS_DOC_REL}" r:id="{rid}"'.encode()
        el = (
            b"<"
            + prefix
            + b'sheet name="'
            + ox.escape_attr(title).encode()
            + b'" sheetId="'
            + str(sheet_id).encode()
            + b'" '
            + rattr
            + b"/>"
        )
        self.put(pkg.workbook_part, _insert_before_close(wb, prefix + b"sheets", el))

        ct = self.get("[Content_Types].xml") or b""
        override = f'<Override PartName="/{part}" ContentType="{ox.CT_WORKSHEET}"/>'.encode()
        self.put("[Content_Types].xml", _insert_before_close(ct, b"Types", override))

    # -- the bridge's chart on a tab it owns
    def redraw_chart(
        self, sheet_part: str, drawing_rid: str | None, content: TabContent, *, fresh_sheet: bool
    ) -> str | None:
        """Draw ``content.chart`` on ``sheet_part`` (or take the bridge's old chart away).

        Returns the sheet's drawing relationship Id for its ``<drawing r:id>``, or None. The
        bridge's chart is found in the sheet's drawing by its frame name (or, after a re-save by a
        tool that renamed it, by its title); its chart part is rewritten in place, so repeated
        syncs neither add parts nor leave old ones behind. Anything else in the drawing (a chart
        staff put on the tab) is kept.
        """
        spec = content.chart
        sheet_rels_part = ox.rels_part_of(sheet_part)
        drawing_part: str | None = None
        if fresh_sheet:
            # A member left behind under the new sheet's rels name would be read as its rels.
            self.delete(sheet_rels_part)
        elif drawing_rid is not None:
            rels = ox.iter_rels(self.get(sheet_rels_part), sheet_part)
            target = next((t for i, _, t, ext in rels if i == drawing_rid and not ext), None)
            if target is not None and self.get(target) is not None:
                drawing_part = self.pkg.actual(target)
            else:  # a dangling relationship: drop it
                self._remove(sheet_rels_part, b"Relationship", b"Id", drawing_rid.encode())
                self._drop_empty_rels(sheet_rels_part)
                drawing_rid = None
        if drawing_part is None and spec is None:
            return drawing_rid

        root: etree._Element | None = None
        others = 0
        old_charts: list[str] = []
        drels_part = ox.rels_part_of(drawing_part) if drawing_part else ""
        drels_xml = self.get(drels_part) if drawing_part else None
        if drawing_part is not None:
            try:
                root = ox.parse_xml(self.get(drawing_part) or b"")
            except etree.XMLSyntaxError:
                log.warning("the drawing on tab %r cannot be read; left alone", content.title)
                return drawing_rid
            targets = {i: t for i, _, t, ext in ox.iter_rels(drels_xml, drawing_part) if not ext}
            ours: list[tuple[etree._Element, str]] = []
            for anchor in root:
                if not isinstance(anchor.tag, str):
                    continue
                rid = _anchor_chart_rid(anchor)
                name = next((el.get("name", "") for el in anchor.iter(f"{{{ox.NS_XDR}}}cNvPr")), "")
                title = ox.chart_title_text(self.get(targets[rid])) if rid in targets else ""
                if name == ox.BRIDGE_CHART_NAME or (spec is not None and title == spec.title):
                    ours.append((anchor, rid or ""))
                else:
                    others += 1
            if not ours and spec is None:
                return drawing_rid
            for anchor, rid in ours:
                root.remove(anchor)
                if rid in targets:
                    old_charts.append(self.pkg.actual(targets[rid]))
                    assert drels_xml is not None
                    drels_xml = _remove_elements(drels_xml, b"Relationship", b"Id", rid.encode())

        # Old chart parts go, with what only they used (Excel adds style and colour parts).
        chart_part = old_charts[0] if spec is not None and old_charts else None
        for old in old_charts:
            self.delete_part(old, keep=old == chart_part)

        alone = others == 0 and not _rel_ids(drels_xml or b"")
        if spec is None:
            assert drawing_part is not None and root is not None
            if alone:
                self.delete_part(drawing_part)
                if drawing_rid is not None:
                    self._remove(sheet_rels_part, b"Relationship", b"Id", drawing_rid.encode())
                    self._drop_empty_rels(sheet_rels_part)
                return None
            self.put(drawing_part, _tree_bytes(root))
            self._put_rels(drels_part, drels_xml)
            return drawing_rid

        chart_part = chart_part or self.new_part_name("xl/charts/chart{}.xml")
        self.put(chart_part, _chart_bytes(content))
        self.set_override(chart_part, ox.CT_CHART)
        if drawing_part is None:
            drawing_part = self.new_part_name("xl/drawings/drawing{}.xml")
            drels_part = ox.rels_part_of(drawing_part)
            drels_xml = None
            alone = True
            sheet_rels = self.get(sheet_rels_part) if not fresh_sheet else None
            sheet_rels = sheet_rels or ox.rels_xml(())
            drawing_rid = _free_rid(sheet_rels)
            target = posixpath.relpath(drawing_part, posixpath.dirname(sheet_part))
            rel = (
                f'<Relationship Id="{drawing_rid}" Type="{ox.REL_DRAWING}" '
                f'Target="{ox.escape_attr(target)}"/>'
            ).encode()
            self.put(sheet_rels_part, _insert_before_close(sheet_rels, b"Relationships", rel))
        chart_target = posixpath.relpath(chart_part, posixpath.dirname(drawing_part))
        merge_into = None if alone else root
        if merge_into is None:
            # The drawing holds only the bridge's chart: written whole, the same bytes each time.
            chart_rid, frame_id = "rId1", 2
            drels_xml = ox.rels_xml(((chart_rid, ox.REL_CHART, chart_target),))
        else:
            drels_xml = drels_xml or ox.rels_xml(())
            chart_rid = _free_rid(drels_xml)
            frame_id = 1 + max(
                (
                    int(el.get("id", "0"))
                    for el in merge_into.iter(f"{{{ox.NS_XDR}}}cNvPr")
                    if el.get("id", "").isdigit()
                ),
                default=1,
            )
            rel = (
                f'<Relationship Id="{chart_rid}" Type="{ox.REL_CHART}" '
                f'Target="{ox.escape_attr(chart_target)}"/>'
            ).encode()
            drels_xml = _insert_before_close(drels_xml, b"Relationships", rel)
        anchor_xml = ox.chart_anchor_xml(
            rid=chart_rid,
            frame_id=frame_id,
            title=spec.title,
            anchor_row=spec.anchor_row,
            anchor_col=spec.anchor_col,
            widths=content.widths,
            declare=merge_into is not None,
        )
        if merge_into is None:
            drawing = ox.drawing_xml(anchor_xml)
        else:
            merge_into.append(etree.fromstring(anchor_xml))
            drawing = _tree_bytes(merge_into)
        self.put(drawing_part, drawing)
        self._put_rels(drels_part, drels_xml)
        self.set_override(drawing_part, ox.CT_DRAWING)
        return drawing_rid

    def delete_part(self, part: str, *, keep: bool = False) -> None:
        """Remove ``part`` (unless ``keep``: it is about to be rewritten), its rels and content
        type, and every part it pointed at that nothing else in the package points at."""
        rels_part = ox.rels_part_of(part)
        rels = self.get(rels_part)
        self.delete(rels_part)
        if not keep:
            self.delete(part)
            self.drop_override(part)
        for _, _, target, external in ox.iter_rels(rels, part):
            if external or self.get(target) is None or self.referenced(target):
                continue
            self.delete_part(self.pkg.actual(target))

    def referenced(self, part: str) -> bool:
        """Does any relationship left in the package point at ``part``?"""
        key = part.lower()
        for name in self.members():
            if not name.endswith(".rels"):
                continue
            folder, base = posixpath.split(name)
            source = posixpath.join(posixpath.dirname(folder), base[: -len(".rels")])
            try:
                rels = list(ox.iter_rels(self.get(name), source))
            except etree.XMLSyntaxError:
                return True  # unsure: keep the part
            if any(not ext and t.lower() == key for _, _, t, ext in rels):
                return True
        return False

    def set_override(self, part: str, content_type: str) -> None:
        """Make ``[Content_Types].xml`` say ``part`` is a ``content_type``."""
        ct = self.get("[Content_Types].xml") or b""
        name = "/" + part
        for m in re.finditer(rb"<(?:[\w.-]+:)?Override\b([^>]*?)/>", ct):
            attrs = ox.attrs_of(m.group(1))
            part_name = attrs.get(b"PartName", b"").decode("utf-8", "replace")
            kind = attrs.get(b"ContentType", b"").decode("utf-8", "replace")
            if part_name.lower() == name.lower() and kind == content_type:
                return
        ct = _remove_elements(ct, b"Override", b"PartName", name.encode())
        override = (
            f'<Override PartName="{ox.escape_attr(name)}" ContentType="{content_type}"/>'
        ).encode()
        self.put("[Content_Types].xml", _insert_before_close(ct, b"Types", override))

    def drop_override(self, part: str) -> None:
        self._remove("[Content_Types].xml", b"Override", b"PartName", ("/" + part).encode())

    def _put_rels(self, rels_part: str, xml: bytes | None) -> None:
        if xml is not None and _rel_ids(xml):
            self.put(rels_part, xml)
        else:
            self.delete(rels_part)

    def _drop_empty_rels(self, rels_part: str) -> None:
        data = self.get(rels_part)
        if data is not None and not _rel_ids(data):
            self.delete(rels_part)

    # -- styles
    def styles(self) -> tuple[int | None, int | None]:
        """cellXfs indexes for bold headings and wrapped text, added to styles.xml once."""
        if self._styles is None:
            self._styles = self._ensure_styles()
        return self._styles

    def _ensure_styles(self) -> tuple[int | None, int | None]:
        part = self.pkg.styles_part
        data = self.get(part) if part else None
        if not part or not data:
            return None, None
        root = ox.parse_xml(data)
        fonts = next(root.iter("{*}fonts"), None)
        xfs = next(root.iter("{*}cellXfs"), None)
        if fonts is None or xfs is None or len(fonts) == 0:
            return None, None
        changed = False
        font0 = fonts[0]
        base = _font_signature(font0)
        bold_font = next(
            (i for i, f in enumerate(fonts) if _font_signature(f) == base | {("b", ())}), None
        )
        if bold_font is None:
            new_font = etree.fromstring(etree.tostring(font0))
            b = (
                etree.Element(f"{{{etree.QName(font0).namespace}}}b")
                if etree.QName(font0).namespace
                else etree.Element("b")
            )
            new_font.insert(0, b)
            fonts.append(new_font)
            bold_font = len(fonts) - 1
            fonts.set("count", str(len(fonts)))
            changed = True
        bold_xf = _find_xf(xfs, bold_font, wrap=False)
        if bold_xf is None:
            xfs.append(_make_xf(xfs, bold_font, wrap=False))
            bold_xf = len(xfs) - 1
            changed = True
        wrap_xf = _find_xf(xfs, 0, wrap=True)
        if wrap_xf is None:
            xfs.append(_make_xf(xfs, 0, wrap=True))
            wrap_xf = len(xfs) - 1
            changed = True
        if changed:
            xfs.set("count", str(len(xfs)))
            self.put(
                part,
                etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True),
            )
        return bold_xf, wrap_xf

    # -- output
    def write_zip(self, fh: io.BufferedWriter | io.BytesIO) -> None:
        """Write the package: unchanged members copied in their order, then added ones."""
        zf = self.pkg.zf
        now = time.localtime()[:6]
        with zipfile.ZipFile(fh, "w", allowZip64=True) as out:
            for info in self.pkg.infos:
                name = info.filename
                if name in self.changes:
                    data = self.changes[name]
                    if data is None:
                        continue
                    zi = _copy_info(info, now)
                    out.writestr(zi, data)
                else:
                    out.writestr(_copy_info(info, info.date_time), zf.read(info))
            for name in self.added:
                data = self.changes[name]
                if data is None:
                    continue
                zi = zipfile.ZipInfo(name, now)
                zi.compress_type = zipfile.ZIP_DEFLATED
                out.writestr(zi, data)


def _rel_ids(rels_xml: bytes) -> set[bytes]:
    return set(re.findall(rb'\bId\s*=\s*"([^"]+)"', rels_xml))


def _free_rid(rels_xml: bytes, start: int = 1) -> str:
    """The first ``rIdN`` from ``start`` on that ``rels_xml`` does not use yet."""
    used = {u.lower() for u in _rel_ids(rels_xml)}
    k = start
    while f"rid{k}".encode() in used:
        k += 1
    return f"rId{k}"


def _anchor_chart_rid(anchor: etree._Element) -> str | None:
    """The relationship Id of the chart a drawing anchor shows, if it shows one."""
    for el in anchor.iter(f"{{{ox.NS_C}}}chart"):
        rid = el.get(f"{{{ox.NS_DOC_REL}}}id")
        if rid:
            return rid
    return None


def _tree_bytes(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)


def _chart_bytes(content: TabContent) -> bytes:
    spec = content.chart
    assert spec is not None
    return ox.chart_xml(
        content.title,
        content.rows,
        title=spec.title,
        first_row=spec.first_row,
        first_col=spec.first_col,
        last_row=spec.last_row,
        last_col=spec.last_col,
        kind=spec.kind,
        stacked=spec.stacked,
    )


def _copy_info(info: zipfile.ZipInfo, date_time: tuple[int, ...]) -> zipfile.ZipInfo:
    zi = zipfile.ZipInfo(info.filename, date_time=date_time)  # type: ignore[arg-type]
    zi.compress_type = info.compress_type
    zi.external_attr = info.external_attr
    zi.create_system = info.create_system
    return zi


def _font_signature(font: etree._Element) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    return {
        (
            etree.QName(child).localname,
            tuple(sorted((str(k), str(v)) for k, v in child.attrib.items())),
        )
        for child in font
        if isinstance(child.tag, str)
    }


def _find_xf(xfs: etree._Element, font_id: int, *, wrap: bool) -> int | None:
    """An existing xf that is exactly "this font (+ wrap), default everything else"."""
    for i, xf in enumerate(xfs):
        if not isinstance(xf.tag, str):
            continue
        if (
            xf.get("numFmtId", "0") != "0"
            or xf.get("fontId", "0") != str(font_id)
            or xf.get("fillId", "0") != "0"
            or xf.get("borderId", "0") != "0"
            or xf.get("xfId", "0") != "0"
        ):
            continue
        children = [c for c in xf if isinstance(c.tag, str)]
        if not wrap and not children and i > 0:
            return i
        if wrap and len(children) == 1 and etree.QName(children[0]).localname == "alignment":
            a = {str(k): str(v) for k, v in children[0].attrib.items()}
            if a.get("wrapText") in ("1", "true") and a.get("vertical") == "top" and len(a) == 2:
                return i
    return None


def _make_xf(xfs: etree._Element, font_id: int, *, wrap: bool) -> etree._Element:
    ns = etree.QName(xfs).namespace
    tag = f"{{{ns}}}xf" if ns else "xf"
    xf = etree.Element(tag)
    for k, v in (
        ("numFmtId", "0"),
        ("fontId", str(font_id)),
        ("fillId", "0"),
        ("borderId", "0"),
        ("xfId", "0"),
    ):
        xf.set(k, v)
    if wrap:
        xf.set("applyAlignment", "1")
        al = etree.SubElement(xf, f"{{{ns}}}alignment" if ns else "alignment")
        al.set("wrapText", "1")
        al.set("vertical", "top")
    else:
        xf.set("applyFont", "1")
    return xf


def _insert_before_close(xml: bytes, tag: bytes, element: bytes) -> bytes:
    """Insert ``element`` as the last child of the (single) ``tag`` element."""
    close = re.search(rb"</" + re.escape(tag) + rb"\s*>", xml)
    if close:
        return xml[: close.start()] + element + xml[close.start() :]
    empty = re.search(rb"<" + re.escape(tag) + rb"\b([^>]*?)/>", xml)
    if empty:
        opened = b"<" + tag + empty.group(1) + b">" + element + b"</" + tag + b">"
        return xml[: empty.start()] + opened + xml[empty.end() :]
    raise WorkbookUnreadableError(f"the workbook has no <{tag.decode()}> element to add to")


def _remove_elements(xml: bytes, tag: bytes, attr: bytes, value: bytes) -> bytes:
    """Drop every empty ``<tag .../>`` whose ``attr`` equals ``value`` (rels, content types)."""
    pattern = re.compile(rb"<(?:[\w.-]+:)?" + tag + rb"\b([^>]*?)/>", re.DOTALL)

    def repl(m: re.Match[bytes]) -> bytes:
        attrs = ox.attrs_of(m.group(1))
        return b"" if attrs.get(attr, b"").lower() == value.lower() else m.group(0)

    return pattern.sub(repl, xml)


# ---------------------------------------------------------------------------------- lossy content
_EXT_FEATURES = {
    "{CCE6A557-97BC-4B89-ADB6-D9C93CAAB3DF}": "data validation lists from another sheet (newer "
    "Excel format)",
    "{78C0D931-6437-407D-A8EE-F0AAD7539E65}": "conditional formatting (newer Excel format)",
    "{05C60535-1F16-4FD2-B633-F4F36F0B64E0}": "sparklines",
    "{A8765BA9-456A-4DAB-B4F3-ACF838C121DE}": "slicers",
    "{3A4CF648-6AED-40F4-86FF-DC5316D8AED3}": "slicers",
    "{7E03D99C-DC04-49D9-9315-930204A7B6E9}": "timelines",
}


def lossy_content(path: str | os.PathLike[str]) -> list[str]:
    """What a re-save through openpyxl would drop or damage, in plain words, one line per kind.

    ``init`` asks before it re-saves a staff workbook through openpyxl; an empty list means the
    re-save is safe. Drawings on bridge-owned tabs are ignored: the bridge redraws them.
    """
    p = Path(path)
    data = p.read_bytes()
    pkg = _Package(data, p)
    found: list[str] = []

    def note(text: str) -> None:
        if text not in found:
            found.append(text)

    bridge = {_title_key(t) for t in model.BRIDGE_TABS}
    for sheet in pkg.sheets:
        if _title_key(sheet.name) in bridge:
            continue
        tab = f"tab '{sheet.name}'"
        xml = pkg.read(sheet.part) or b""
        rels = list(ox.iter_rels(pkg.read(ox.rels_part_of(sheet.part)), sheet.part))
        for _, rtype, target, external in rels:
            kind = rtype.rsplit("/", 1)[-1]
            if external:
                continue
            if kind == "drawing":
                _describe_drawing(pkg, target, tab, note)
            elif kind == "vmlDrawing":
                note(f"comment boxes or form buttons on {tab} (their size and formatting)")
            elif kind == "threadedComment":
                note(f"threaded comments (replies) on {tab}")
            elif kind == "pivotTable":
                note(f"a pivot table on {tab}")
            elif kind in ("slicer", "slicerList"):
                note(f"slicers on {tab}")
            elif kind == "table":
                pass  # openpyxl keeps tables
        if b"extLst" in xml:
            for uri in re.findall(rb'<(?:[\w.-]+:)?ext\b[^>]*\buri\s*=\s*"([^"]+)"', xml):
                feature = _EXT_FEATURES.get(uri.decode("ascii", "replace").upper())
                note(
                    f"{feature} on {tab}"
                    if feature
                    else f"newer Excel features on {tab} that openpyxl does not support"
                )
    names = [n.lower() for n in pkg.names]
    if any(n.endswith("vbaproject.bin") for n in names):
        note("macros (VBA)")
    if any(n.startswith("xl/externallinks/") for n in names):
        note("links to other workbooks")
    if any(n.startswith("xl/pivotcache") for n in names) and not any(
        "pivot table" in f for f in found
    ):
        note("pivot table data")
    if any(n.startswith(("xl/slicers/", "xl/slicercaches/")) for n in names):
        note("slicers")
    return found


def _describe_drawing(
    pkg: _Package, drawing_part: str, tab: str, note: Callable[[str], None]
) -> None:
    xml = pkg.read(drawing_part) or b""
    kinds = {
        t.rsplit("/", 1)[-1]
        for _, t, _, ext in ox.iter_rels(pkg.read(ox.rels_part_of(drawing_part)), drawing_part)
        if not ext
    }
    if "chart" in kinds or b"chart" in xml:
        note(f"a chart on {tab} (its formatting)")
    if "image" in kinds:
        note(f"a picture on {tab}")
    if re.search(rb"<(?:[\w.-]+:)?(?:sp|cxnSp|grpSp)\b", xml):
        note(f"shapes or text boxes on {tab}")
