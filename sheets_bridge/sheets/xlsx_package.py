"""The ``.xlsx`` zip package as the bridge edits it: members, sheets, styles and its own chart.

:class:`Package` opens the bytes of a workbook (refusing ``.xls``, encrypted, truncated and
foreign files with words that say what to do) and finds its sheets and parts; :class:`PackageEdit`
collects the members a save changes, adds or removes, and writes the new zip with every other
member copied unchanged, so staff charts, images and extensions survive. The file around it
(locks, versions, the atomic replace) is :mod:`sheets_bridge.sheets.xlsx`'s business.

Why one module of this size: a save edits the package's parts together (the workbook, its
relationships, the content types, the styles, a drawing and its chart) and they must agree; one
:class:`PackageEdit` keeping all of them in step is the point.
"""

from __future__ import annotations

import io
import logging
import posixpath
import re
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from lxml import etree

from sheets_bridge.dates import serial_text
from sheets_bridge.errors import WorkbookUnreadableError
from sheets_bridge.model import DateSerial, TabContent
from sheets_bridge.sheets import ooxml as ox
from sheets_bridge.sheets import ooxml_chart as oxc
from sheets_bridge.sheets import ooxml_rows as oxr
from sheets_bridge.sheets.ooxml_rows import CellLook
from sheets_bridge.values import cell_text

log = logging.getLogger(__name__)

_REL_CALC_CHAIN = "/calcChain"
_REL_SHARED_STRINGS = "/sharedStrings"
_REL_STYLES = "/styles"
_REL_OFFICE_DOCUMENT = "/officeDocument"


def title_key(title: str) -> str:
    """Sheet titles compare as Excel does: case-insensitively (and we ignore stray spaces)."""
    return title.strip().casefold()


_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGIC = b"PK"
_ODS_MIMETYPE = b"application/vnd.oasis.opendocument.spreadsheet"
_NOT_CHANGED = "The bridge has not changed it."


def _looks_like_text(data: bytes) -> bool:
    """Whether a file that is not a zip is plain text (a CSV saved under the workbook's name)."""
    head = data[:4096]
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return True
    try:
        head[: max(len(head) - 4, 1)].decode("utf-8")
    except UnicodeDecodeError:
        return False
    return b"\x00" not in head


@dataclass
class SheetEntry:
    name: str
    sheet_id: int
    rid: str
    part: str


class Package:
    """An opened workbook zip: member lookup plus the workbook's sheet list and parts."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.path = path
        if data[:8] == _OLE2_MAGIC:
            raise WorkbookUnreadableError(
                f"{path} is an old-style .xls file or a password-protected workbook, which the "
                "bridge cannot read. Open it in Excel or LibreOffice, remove the password if it "
                "has one, and save it as an Excel Workbook (.xlsx) under the same name."
            )
        if not data:
            raise WorkbookUnreadableError(
                f"{path} is empty (0 bytes): a copy or a save was cut short. Restore it from a "
                f"backup or from the cloud folder's version history. {_NOT_CHANGED}"
            )
        if data[:2] != _ZIP_MAGIC:
            what = (
                "a text file (a CSV, perhaps) named .xlsx"
                if _looks_like_text(data)
                else "not an .xlsx workbook (not a zip file: damaged, or another format)"
            )
            raise WorkbookUnreadableError(
                f"{path} is {what}. Open it in Excel or LibreOffice and save it as an Excel "
                f"Workbook (.xlsx), or restore it from a backup. {_NOT_CHANGED}"
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
        if wb_xml is None and self._raw("mimetype", 100).startswith(_ODS_MIMETYPE):
            raise WorkbookUnreadableError(
                f"{path} is an OpenDocument spreadsheet (.ods) named .xlsx. Open it in LibreOffice "
                "and save it as Excel 2007-365 (.xlsx) under the same name. " + _NOT_CHANGED
            )
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
        self.sheets: list[SheetEntry] = []
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
            self.sheets.append(SheetEntry(el.get("name", ""), sheet_id, rid, rel[1]))
        self.shared_part = self._rel_part(_REL_SHARED_STRINGS)
        self.styles_part = self._rel_part(_REL_STYLES)

    def _raw(self, name: str, limit: int) -> bytes:
        real = self.names.get(name.lower())
        if real is None:
            return b""
        with self.zf.open(real) as fh:
            return fh.read(limit)

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

    def find_sheet(self, title: str) -> SheetEntry | None:
        key = title_key(title)
        return next((s for s in self.sheets if title_key(s.name) == key), None)




def cell_text_of(cell: oxr.RawCell | None, ctx: ox.ValueContext) -> str:
    """A cell's value as compare-and-set text ("" for no cell); a date cell reads as the
    ``format_moment`` text the bridge planned it as (the planner's ``bridge_text``)."""
    if cell is None:
        return ""
    value = ox.cell_value(cell.attrs, cell.body, ctx)
    if isinstance(value, DateSerial):
        text = serial_text(value, ctx.date1904)
        if text is not None:
            return text
    return cell_text(value)


def formula_kind(body: bytes | None) -> str | None:
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


class Pieces(tuple[bytes | memoryview, ...]):
    """A member's new bytes as the pieces that make it, in order, written one after another.

    The patched Referrals part is the old part's untouched stretches (zero-copy views of it)
    with the rewritten rows between them: written piece by piece into the zip, a save never
    holds a second whole copy of a sheet of 100,000 rows.
    """

    __slots__ = ()

    def joined(self) -> bytes:
        return b"".join(self)


class PackageEdit:
    """The members a save changes, adds or removes; everything else is copied unchanged."""

    def __init__(self, pkg: Package) -> None:
        self.pkg = pkg
        self.changes: dict[str, bytes | Pieces | None] = {}
        self.added: list[str] = []
        self._looks: dict[CellLook, int | None] = {}
        self._style_root: etree._Element | None = None

    @property
    def changed(self) -> bool:
        return any(
            new is None or isinstance(new, Pieces) or new != self.pkg.read(name)
            for name, new in self.changes.items()
        ) or bool(self.added)

    def get(self, name: str) -> bytes | None:
        real = self.pkg.actual(name)
        if real in self.changes:
            found = self.changes[real]
            return found.joined() if isinstance(found, Pieces) else found
        return self.pkg.read(real)

    def put_pieces(self, name: str, pieces: Pieces) -> None:
        """Replace an existing member by ``pieces`` (a patch that changes it: see Pieces)."""
        real = self.pkg.actual(name)
        assert real in self.pkg.names.values(), real
        self.changes[real] = pieces

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
                name = next((el.get("name", "") for el in anchor.iter(f"{{{oxc.NS_XDR}}}cNvPr")), "")
                title = oxc.chart_title_text(self.get(targets[rid])) if rid in targets else ""
                if name == oxc.BRIDGE_CHART_NAME or (spec is not None and title == spec.title):
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
        self.set_override(chart_part, oxc.CT_CHART)
        if drawing_part is None:
            drawing_part = self.new_part_name("xl/drawings/drawing{}.xml")
            drels_part = ox.rels_part_of(drawing_part)
            drels_xml = None
            alone = True
            sheet_rels = self.get(sheet_rels_part) if not fresh_sheet else None
            sheet_rels = sheet_rels or oxc.rels_xml(())
            drawing_rid = _free_rid(sheet_rels)
            target = posixpath.relpath(drawing_part, posixpath.dirname(sheet_part))
            rel = (
                f'<Relationship Id="{drawing_rid}" Type="{oxc.REL_DRAWING}" '
                f'Target="{ox.escape_attr(target)}"/>'
            ).encode()
            self.put(sheet_rels_part, _insert_before_close(sheet_rels, b"Relationships", rel))
        chart_target = posixpath.relpath(chart_part, posixpath.dirname(drawing_part))
        merge_into = None if alone else root
        if merge_into is None:
            # The drawing holds only the bridge's chart: written whole, the same bytes each time.
            chart_rid, frame_id = "rId1", 2
            drels_xml = oxc.rels_xml(((chart_rid, oxc.REL_CHART, chart_target),))
        else:
            drels_xml = drels_xml or oxc.rels_xml(())
            chart_rid = _free_rid(drels_xml)
            frame_id = 1 + max(
                (
                    int(el.get("id", "0"))
                    for el in merge_into.iter(f"{{{oxc.NS_XDR}}}cNvPr")
                    if el.get("id", "").isdigit()
                ),
                default=1,
            )
            rel = (
                f'<Relationship Id="{chart_rid}" Type="{oxc.REL_CHART}" '
                f'Target="{ox.escape_attr(chart_target)}"/>'
            ).encode()
            drels_xml = _insert_before_close(drels_xml, b"Relationships", rel)
        anchor_xml = oxc.chart_anchor_xml(
            rid=chart_rid,
            frame_id=frame_id,
            title=spec.title,
            anchor_row=spec.anchor_row,
            anchor_col=spec.anchor_col,
            widths=content.widths,
            declare=merge_into is not None,
        )
        if merge_into is None:
            drawing = oxc.drawing_xml(anchor_xml)
        else:
            merge_into.append(etree.fromstring(anchor_xml))
            drawing = _tree_bytes(merge_into)
        self.put(drawing_part, drawing)
        self._put_rels(drels_part, drels_xml)
        self.set_override(drawing_part, oxc.CT_DRAWING)
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
        return self.style(CellLook(bold=True)), self.style(CellLook(wrap=True))

    def style(self, look: CellLook) -> int | None:
        """The cellXfs index that draws ``look``, added to styles.xml the first time it is asked
        for (and found again, not added twice, in a workbook that already has it). None when the
        workbook has no usable styles part: the cell is then written unstyled."""
        if look == CellLook():
            return None
        if look in self._looks:
            return self._looks[look]
        index = self._add_look(look)
        self._looks[look] = index
        return index

    def _style_tree(self) -> etree._Element | None:
        if self._style_root is None:
            part = self.pkg.styles_part
            data = self.get(part) if part else None
            if not data:
                return None
            self._style_root = ox.parse_xml(data)
        return self._style_root

    def _add_look(self, look: CellLook) -> int | None:
        part = self.pkg.styles_part
        root = self._style_tree()
        if part is None or root is None:
            return None
        fonts = next(root.iter("{*}fonts"), None)
        xfs = next(root.iter("{*}cellXfs"), None)
        if fonts is None or xfs is None or len(fonts) == 0:
            return None
        ns = etree.QName(root).namespace
        font_id = 0
        if look.bold:
            font0 = fonts[0]
            base = _font_signature(font0)
            found = next(
                (i for i, f in enumerate(fonts) if _font_signature(f) == base | {("b", ())}), None
            )
            if found is None:
                new_font = etree.fromstring(etree.tostring(font0))
                new_font.insert(0, etree.Element(_q(ns, "b")))
                fonts.append(new_font)
                found = len(fonts) - 1
                fonts.set("count", str(len(fonts)))
            font_id = found
        fmt_id = 0
        if look.number_format is not None:
            fmt_id = _BUILTIN_FORMATS.get(look.number_format, -1)
            if fmt_id < 0:
                fmt_id = _ensure_num_fmt(root, ns, look.number_format)
        index = _find_look(xfs, font_id, fmt_id, look)
        if index is None:
            xfs.append(_make_look(ns, font_id, fmt_id, look))
            index = len(xfs) - 1
            xfs.set("count", str(len(xfs)))
        self.put(
            part, etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)
        )
        return index

    # -- output
    def write_zip(self, fh: BinaryIO) -> None:
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
                    if isinstance(data, Pieces):
                        with out.open(zi, "w") as dest:
                            for piece in data:
                                dest.write(piece)
                    else:
                        out.writestr(zi, data)
                else:
                    out.writestr(_copy_info(info, info.date_time), zf.read(info))
            for name in self.added:
                data = self.changes[name]
                if data is None:
                    continue
                if isinstance(data, Pieces):
                    data = data.joined()
                zi = zipfile.ZipInfo(name, now)
                zi.compress_type = zipfile.ZIP_DEFLATED
                _fast(zi)
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
    for el in anchor.iter(f"{{{oxc.NS_C}}}chart"):
        rid = el.get(f"{{{ox.NS_DOC_REL}}}id")
        if rid:
            return rid
    return None


def _tree_bytes(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)


def _chart_bytes(content: TabContent) -> bytes:
    spec = content.chart
    assert spec is not None
    return oxc.chart_xml(
        content.title,
        content.rows,
        title=spec.title,
        first_row=spec.first_row,
        first_col=spec.first_col,
        last_row=spec.last_row,
        last_col=spec.last_col,
        kind=spec.kind,
        stacked=spec.stacked,
        colours=spec.colours,
    )


def _copy_info(info: zipfile.ZipInfo, date_time: tuple[int, ...]) -> zipfile.ZipInfo:
    zi = zipfile.ZipInfo(info.filename, date_time=date_time)  # type: ignore[arg-type]
    zi.compress_type = info.compress_type
    zi.external_attr = info.external_attr
    zi.create_system = info.create_system
    return _fast(zi)


#: The deflate level of every member the bridge writes. zlib's default (6) spends 0.1 s on a
#: 10,000-row Referrals part, level 1 a third of that, for a file about a quarter larger
#: (1.2 MB -> 1.6 MB): a daemon saves after every edit, and nobody waits on the file's size.
SAVE_LEVEL = 1


def _fast(zi: zipfile.ZipInfo) -> zipfile.ZipInfo:
    """``zi`` deflated at :data:`SAVE_LEVEL` (by ``writestr`` and ``open(zi, "w")`` alike:
    both take a member's level from its ZipInfo, not from the ZipFile)."""
    # Python 3.13 named it compress_level and kept _compresslevel as an alias.
    setattr(zi, "compress_level" if hasattr(zi, "compress_level") else "_compresslevel",
            SAVE_LEVEL)
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


_BUILTIN_FORMATS = {"0%": 9, "0": 1, "0.00": 2}


def _q(ns: str | None, name: str) -> str:
    return f"{{{ns}}}{name}" if ns else name


def _ensure_num_fmt(root: etree._Element, ns: str | None, code: str) -> int:
    """The numFmtId of a custom format ``code``, added to ``<numFmts>`` when missing."""
    num_fmts = next(root.iter("{*}numFmts"), None)
    if num_fmts is None:
        num_fmts = etree.Element(_q(ns, "numFmts"))
        root.insert(0, num_fmts)
    used = []
    for el in num_fmts:
        if not isinstance(el.tag, str):
            continue
        try:
            used.append(int(el.get("numFmtId", "0")))
        except ValueError:
            continue
        if el.get("formatCode") == code:
            return used[-1]
    fmt_id = max([163, *used]) + 1  # custom formats start at 164
    el = etree.SubElement(num_fmts, _q(ns, "numFmt"))
    el.set("numFmtId", str(fmt_id))
    el.set("formatCode", code)
    num_fmts.set("count", str(sum(1 for c in num_fmts if isinstance(c.tag, str))))
    return fmt_id


def _alignment_of(look: CellLook) -> dict[str, str]:
    out: dict[str, str] = {}
    if look.align is not None:
        out["horizontal"] = look.align
    if look.wrap:
        out["wrapText"] = "1"
        out["vertical"] = "top"
    return out


def _find_look(xfs: etree._Element, font_id: int, fmt_id: int, look: CellLook) -> int | None:
    """An existing xf that draws exactly ``look`` and is default in everything else."""
    want = _alignment_of(look)
    for i, xf in enumerate(xfs):
        if not isinstance(xf.tag, str) or i == 0:
            continue
        if (
            xf.get("numFmtId", "0") != str(fmt_id)
            or xf.get("fontId", "0") != str(font_id)
            or xf.get("fillId", "0") != "0"
            or xf.get("borderId", "0") != "0"
            or xf.get("xfId", "0") != "0"
        ):
            continue
        children = [c for c in xf if isinstance(c.tag, str)]
        if not want and not children:
            return i
        if (
            want
            and len(children) == 1
            and etree.QName(children[0]).localname == "alignment"
            and {str(k): str(v) for k, v in children[0].attrib.items()} == want
        ):
            return i
    return None


def _make_look(ns: str | None, font_id: int, fmt_id: int, look: CellLook) -> etree._Element:
    xf = etree.Element(_q(ns, "xf"))
    for k, v in (
        ("numFmtId", str(fmt_id)),
        ("fontId", str(font_id)),
        ("fillId", "0"),
        ("borderId", "0"),
        ("xfId", "0"),
    ):
        xf.set(k, v)
    if font_id:
        xf.set("applyFont", "1")
    if fmt_id:
        xf.set("applyNumberFormat", "1")
    alignment = _alignment_of(look)
    if alignment:
        xf.set("applyAlignment", "1")
        al = etree.SubElement(xf, _q(ns, "alignment"))
        for k, v in alignment.items():
            al.set(k, v)
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
