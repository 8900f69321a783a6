"""The bridge's own chart on a tab it owns, as DrawingML: the chart part, its anchor, the drawing.

The Dashboard's weekly chart is drawn by the bridge itself with cached values, so Excel and
LibreOffice show it without recalculating and a re-save by either keeps it. Pure: strings and
bytes out; :mod:`sheets_bridge.sheets.xlsx_package` wires the parts into the package.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, datetime

from lxml import etree

from sheets_bridge.model import OutValue
from sheets_bridge.sheets.ooxml import (
    NS_DOC_REL,
    NS_PKG_REL,
    col_letters,
    escape_attr,
    escape_text,
    parse_xml,
)
from sheets_bridge.values import cell_text

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
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return f"{value.day} {value:%b}"
    return cell_text(value)


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
    colours: Sequence[str] = (),
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
        color = colours[i] if i < len(colours) else _PALETTE[i % len(_PALETTE)]
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
