"""The Dashboard's weekly chart in a real workbook: drawn by sync, redrawn in place on every save.

The bridge never re-saves through openpyxl; it writes the chart as DrawingML parts in the zip.
These tests sync the demo practice's workbook and look at the result three ways: through
openpyxl (what a Python user and ``lossy_content`` see), as a package (every relationship
resolves, nothing is orphaned, nothing grows across syncs) and, when LibreOffice is installed,
as a rendered PDF.
"""

from __future__ import annotations

import posixpath
import re
import shutil
import subprocess
import zipfile
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from conftest import need_soffice
from lxml import etree
from openpyxl import load_workbook
from openpyxl.chart import BarChart, LineChart, Reference

from sheets_bridge.config import BridgeConfig, parse_config
from sheets_bridge.demo import demo_rows, write_demo_workbook
from sheets_bridge.model import ChartSpec, Plan, TabContent
from sheets_bridge.runner import run_sync
from sheets_bridge.sheets import ooxml as ox
from sheets_bridge.sheets import ooxml_chart as oxc
from sheets_bridge.sheets.xlsx import LocalWorkbook
from sheets_bridge.sheets.xlsx_setup import lossy_content
from sheets_bridge.summaries import CHART_NAME, CHART_TITLE

NY = ZoneInfo("America/New_York")
#: Monday 30 Nov 2026, 08:00; a week later the Dashboard's weeks have moved on by one.
NOW = datetime(2026, 11, 30, 8, 0, tzinfo=NY)
LATER = NOW + timedelta(days=7, hours=3)

CONFIG: dict[str, Any] = {
    "practice": {
        "name": "Riverside Physical Therapy",
        "timezone": "America/New_York",
        "owner_email": "owner@example.com",
    },
    "sheet": {"kind": "local", "path": "referrals.xlsx"},
    "mail": {"kind": "eml", "path": "drafts"},
    "state_dir": "state",
}

Practice = Callable[..., BridgeConfig]


@pytest.fixture
def practice(tmp_path: Path) -> Iterator[Practice]:
    """``practice(before_sync=None)``: the demo workbook (150 rows as of NOW) and its config.

    ``before_sync(path)`` may change the workbook first, as staff would before the first sync.
    """

    def make(before_sync: Callable[[Path], None] | None = None) -> BridgeConfig:
        path = tmp_path / "referrals.xlsx"
        write_demo_workbook(path, demo_rows(NOW, count=150))
        if before_sync is not None:
            before_sync(path)
        return parse_config(CONFIG, base=tmp_path)

    yield make


def workbook_path(config: BridgeConfig) -> Path:
    return Path(config.sheet.path)  # type: ignore[union-attr]


# ------------------------------------------------------------------------------------ the package
def zip_parts(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None
        return {i.filename: z.read(i) for i in z.infolist()}


def package_problems(path: Path) -> list[str]:
    """Every way the package's relationships and content types disagree with its parts.

    Walks every ``.rels`` part: each internal target must exist; each part must be reachable
    from the package root through relationships (no orphans); each content-type Override must
    name an existing part; each drawing and chart part must have its Override; every
    ``r:id`` used in a worksheet or drawing must be one of that part's relationships.
    """
    parts = zip_parts(path)
    lower = {n.lower(): n for n in parts}
    problems: list[str] = []
    graph: dict[str, set[str]] = {}
    for name, data in parts.items():
        if not name.endswith(".rels"):
            continue
        folder, base = posixpath.split(name)
        source = posixpath.join(posixpath.dirname(folder), base[: -len(".rels")])
        if source and source.lower() not in lower:
            problems.append(f"{name} belongs to a part that does not exist")
        edges = graph.setdefault(source, set())
        ids = set()
        for rid, _, target, external in ox.iter_rels(data, source):
            ids.add(rid)
            if external:
                continue
            if target.lower() not in lower:
                problems.append(f"{name} {rid} points at missing {target}")
            else:
                edges.add(lower[target.lower()])
        if source in parts:
            used = set(re.findall(rb'\br:id="([^"]+)"', parts[source]))
            for rid_b in used:
                if rid_b.decode() not in ids:
                    problems.append(f"{source} uses {rid_b.decode()}, which {name} lacks")
    for name, data in parts.items():
        if name.endswith(".xml") and b'r:id="' in data and name not in graph:
            problems.append(f"{name} uses relationships but has no .rels part")
    seen: set[str] = set()
    todo = [""]
    while todo:
        node = todo.pop()
        for nxt in graph.get(node, ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    for name in parts:
        if name == "[Content_Types].xml" or name.endswith(".rels"):
            continue
        if name not in seen:
            problems.append(f"{name} is an orphan: no relationship points at it")
    types = etree.fromstring(parts["[Content_Types].xml"])
    overrides = {
        str(el.get("PartName", "")).lstrip("/").lower(): str(el.get("ContentType"))
        for el in types.iter("{*}Override")
    }
    for part in overrides:
        if part not in lower:
            problems.append(f"[Content_Types].xml names missing part /{part}")
    for name in parts:
        want = {"xl/charts/chart": oxc.CT_CHART, "xl/drawings/drawing": oxc.CT_DRAWING}
        for prefix, ctype in want.items():
            found = overrides.get(name.lower())
            if name.startswith(prefix) and name.endswith(".xml") and found != ctype:
                problems.append(f"{name} has content type {found}")
    return problems


def chart_and_drawing_parts(path: Path) -> list[str]:
    return sorted(
        n
        for n in zip_parts(path)
        if n.startswith(("xl/charts/", "xl/drawings/")) or "worksheets/_rels" in n
    )


def dashboard_part(path: Path) -> str:
    with zipfile.ZipFile(path) as z:
        wb = z.read("xl/workbook.xml")
        rels = z.read("xl/_rels/workbook.xml.rels")
    rid = re.search(rb'<sheet [^>]*name="Dashboard"[^>]*r:id="([^"]+)"', wb)
    assert rid is not None
    for i, _, target, _ in ox.iter_rels(rels, "xl/workbook.xml"):
        if i == rid.group(1).decode():
            return target
    raise AssertionError("no Dashboard part")


# ------------------------------------------------------------------------------------ the chart
def dashboard_charts(path: Path) -> list[Any]:
    wb = load_workbook(path)
    return list(wb["Dashboard"]._charts)


def title_text(chart: Any) -> str:
    return "".join(run.t for p in chart.title.tx.rich.p for run in (p.r or []) if run.t is not None)


def check_weekly_chart(path: Path) -> Any:
    """The one bridge chart on the Dashboard, checked against the Dashboard's own cells."""
    charts = dashboard_charts(path)
    assert len(charts) == 1
    chart = charts[0]
    assert isinstance(chart, BarChart)
    assert (chart.type, chart.grouping, chart.overlap) == ("col", "stacked", 100)
    assert title_text(chart) == CHART_NAME
    assert chart.legend is not None and chart.legend.position == "b"
    assert len(chart.series) == 4
    ws = load_workbook(path)["Dashboard"]
    # The weekly table is the tab's last section: its title, a header row, 12 weeks.
    title = next(r for r in range(1, ws.max_row + 1) if ws.cell(row=r, column=1).value == CHART_TITLE)
    head, first, last = title + 1, title + 2, title + 13
    weeks = [ws.cell(row=r, column=1).value for r in range(first, last + 1)]
    assert all(isinstance(w, str) and w for w in weeks)
    for i, ser in enumerate(chart.series):
        col = "BCDE"[i]
        assert ser.tx.strRef.f == f"'Dashboard'!${col}${head}"
        assert ser.tx.strRef.strCache.pt[0].v == ws[f"{col}{head}"].value
        assert ser.cat.strRef.f == f"'Dashboard'!$A${first}:$A${last}"
        assert ser.cat.strRef.strCache.ptCount == 12
        assert [p.v for p in ser.cat.strRef.strCache.pt] == weeks
        assert ser.val.numRef.f == f"'Dashboard'!${col}${first}:${col}${last}"
        cached = {p.idx: float(p.v) for p in ser.val.numRef.numCache.pt}
        assert cached == {k: float(ws[f"{col}{first + k}"].value) for k in range(12)}
    assert [s.tx.strRef.strCache.pt[0].v for s in chart.series] == [
        "Provider",
        "Patient",
        "Self",
        "Unknown",
    ]
    # It covers no cell with content: it sits below the weekly table, the last thing on the tab.
    start, end = chart.anchor._from, chart.anchor.to
    assert (start.row, start.col) == (last + 1, 0)
    assert end.row > start.row + 10 and end.col >= start.col + 4
    for row in ws.iter_rows(
        min_row=start.row + 1, max_row=end.row + 1, min_col=start.col + 1, max_col=end.col + 1
    ):
        assert all(c.value is None for c in row), [c.coordinate for c in row if c.value]
    return chart


def test_sync_draws_one_stacked_weekly_chart_on_the_dashboard(practice: Practice) -> None:
    config = practice()
    run_sync(config, now=NOW)
    path = workbook_path(config)
    check_weekly_chart(path)
    assert package_problems(path) == []
    assert lossy_content(path) == []
    sheet = zip_parts(path)[dashboard_part(path)]
    # CT_Worksheet order: the drawing comes after the page margins and setup, last here.
    assert re.search(
        rb"<pageMargins [^>]*/><pageSetup [^>]*/><drawing r:id=\"rId\d+\"/></worksheet>$", sheet
    )


def test_every_sync_redraws_the_chart_in_place(practice: Practice) -> None:
    config = practice()
    path = workbook_path(config)
    run_sync(config, now=NOW)
    first = zip_parts(path)
    first_chart = check_weekly_chart(path)
    names = chart_and_drawing_parts(path)

    report = run_sync(config, now=LATER)
    assert "Dashboard" in report.tabs_written
    second = zip_parts(path)
    chart = check_weekly_chart(path)
    assert package_problems(path) == []
    assert chart_and_drawing_parts(path) == names  # the same parts, redrawn
    assert sorted(second) == sorted(first)  # nothing added, nothing left behind
    labels = [p.v for p in chart.series[0].cat.strRef.strCache.pt]
    first_labels = [p.v for p in first_chart.series[0].cat.strRef.strCache.pt]
    assert labels[:-1] == first_labels[1:]  # the weeks moved on by one

    # A third sync with nothing new leaves the file alone, chart and all.
    data = path.read_bytes()
    run_sync(config, now=LATER + timedelta(minutes=5))
    assert path.read_bytes() == data
    assert lossy_content(path) == []


def add_staff_chart(path: Path, title: str = "Gifts") -> None:
    wb = load_workbook(path)
    ws = wb[title]
    chart = LineChart()
    chart.title = "Gift values"
    chart.add_data(Reference(ws, min_col=5, min_row=1, max_row=8), titles_from_data=True)
    ws.add_chart(chart, "H2")
    wb.save(path)


def staff_chart_parts(path: Path) -> dict[str, bytes]:
    """The Gifts tab's part, its relationships and everything they reach, as bytes."""
    parts = zip_parts(path)
    wb = load_workbook(path, read_only=True)
    index = wb.sheetnames.index("Gifts")
    wb.close()
    with zipfile.ZipFile(path) as z:
        rels = z.read("xl/_rels/workbook.xml.rels")
        book = z.read("xl/workbook.xml")
    rid = re.findall(rb'<sheet [^>]*?r:id="([^"]+)"', book)[index].decode()
    start = next(t for i, _, t, _ in ox.iter_rels(rels, "xl/workbook.xml") if i == rid)
    out: dict[str, bytes] = {}
    todo = [start]
    while todo:
        part = todo.pop()
        out[part] = parts[part]
        rels_part = ox.rels_part_of(part)
        if rels_part in parts:
            out[rels_part] = parts[rels_part]
            todo.extend(t for _, _, t, ext in ox.iter_rels(parts[rels_part], part) if not ext)
    return out


def test_a_staff_chart_on_a_staff_tab_stays_byte_identical(practice: Practice) -> None:
    config = practice(before_sync=add_staff_chart)
    path = workbook_path(config)
    before = staff_chart_parts(path)
    assert any(n.startswith("xl/charts/") for n in before)
    assert any("Gifts" in f and "chart" in f for f in lossy_content(path))
    run_sync(config, now=NOW)
    run_sync(config, now=LATER)
    assert staff_chart_parts(path) == before
    check_weekly_chart(path)
    assert package_problems(path) == []
    found = lossy_content(path)
    assert any("Gifts" in f for f in found)  # the staff's chart is still named...
    assert not any("Dashboard" in f for f in found)  # ...the bridge's own never is
    staff = load_workbook(path)["Gifts"]._charts
    assert len(staff) == 1 and isinstance(staff[0], LineChart)


def test_an_openpyxl_resave_and_a_staff_chart_on_the_dashboard(practice: Practice) -> None:
    """After ``init`` re-saves through openpyxl (which renames the frame), the bridge still knows
    its chart by its title and replaces it, and a chart staff put on the Dashboard stays."""
    config = practice()
    path = workbook_path(config)
    run_sync(config, now=NOW)
    wb = load_workbook(path)
    ws = wb["Dashboard"]
    staff = LineChart()
    staff.title = "My own view"
    staff.add_data(Reference(ws, min_col=2, min_row=5, max_row=17), titles_from_data=True)
    ws.add_chart(staff, "N4")
    wb.save(path)
    assert len(dashboard_charts(path)) == 2

    run_sync(config, now=LATER)
    charts = dashboard_charts(path)
    assert sorted(type(c).__name__ for c in charts) == ["BarChart", "LineChart"]
    assert package_problems(path) == []
    names = chart_and_drawing_parts(path)
    assert len([n for n in names if re.fullmatch(r"xl/charts/chart\d+\.xml", n)]) == 2
    run_sync(config, now=LATER + timedelta(days=7))
    assert chart_and_drawing_parts(path) == names
    assert len(dashboard_charts(path)) == 2
    assert package_problems(path) == []


# ------------------------------------------------------------------------------------ the backend
SPEC = ChartSpec("Per week", first_row=1, first_col=0, last_row=4, last_col=2, anchor_row=6)
ROWS: tuple[tuple[Any, ...], ...] = (
    ("Weekly", None, None),
    ("Week", "A", "B"),
    ("1 Nov", 1, 2),
    ("8 Nov", 3, None),
    ("15 Nov", 0, 4),
)


def fresh_book(tmp_path: Path) -> tuple[Path, LocalWorkbook]:
    path = tmp_path / "b.xlsx"
    write_demo_workbook(path, demo_rows(NOW, count=5))
    return path, LocalWorkbook(path)


def apply_tab(book: LocalWorkbook, content: TabContent) -> None:
    assert book.apply(book.read(), Plan(tab_contents=(content,)), {}).saved


def test_a_tab_without_a_chart_drops_the_bridge_drawing(tmp_path: Path) -> None:
    path, book = fresh_book(tmp_path)
    original = sorted(zip_parts(path))
    apply_tab(book, TabContent("Dashboard", ROWS, chart=SPEC))
    assert package_problems(path) == []
    parts = zip_parts(path)
    assert "xl/charts/chart1.xml" in parts and "xl/drawings/drawing1.xml" in parts
    chart = dashboard_charts(path)[0]
    assert [float(p.v) for p in chart.series[1].val.numRef.numCache.pt] == [2.0, 4.0]
    assert chart.series[0].cat.strRef.f == "'Dashboard'!$A$3:$A$5"

    apply_tab(book, TabContent("Dashboard", (*ROWS, ("more",))))
    assert package_problems(path) == []
    assert dashboard_charts(path) == []
    assert sorted(zip_parts(path)) == sorted([*original, dashboard_part(path)])
    types = zip_parts(path)["[Content_Types].xml"]
    assert b"chart" not in types and b"drawing" not in types
    assert b"<drawing" not in zip_parts(path)[dashboard_part(path)]


def test_a_line_chart_and_a_title_with_quotes(tmp_path: Path) -> None:
    path, book = fresh_book(tmp_path)
    spec = ChartSpec("Weekly", 1, 0, 4, 2, kind="line", stacked=False, anchor_row=6)
    apply_tab(book, TabContent("Sources", ROWS))
    apply_tab(book, TabContent("Sources", ROWS, chart=spec))
    wb = load_workbook(path)
    (chart,) = wb["Sources"]._charts
    assert isinstance(chart, LineChart) and chart.grouping == "standard"
    assert chart.series[0].val.numRef.f == "'Sources'!$B$3:$B$5"
    assert package_problems(path) == []
    assert oxc.quote_sheet("Bob's tab") == "'Bob''s tab'!"


def test_excel_style_parts_of_the_old_chart_are_removed_with_it(tmp_path: Path) -> None:
    """Excel adds a style and a colour part to each chart it saves; a redraw takes them away."""
    path, book = fresh_book(tmp_path)
    apply_tab(book, TabContent("Dashboard", ROWS, chart=SPEC))
    parts = zip_parts(path)
    style_rel = "http://schemas.microsoft.com/office/2011/relationships/chartStyle"
    color_rel = "http://schemas.microsoft.com/office/2011/relationships/chartColorStyle"
    extra = {
        "xl/charts/style1.xml": b"<cs:chartStyle xmlns:cs='urn:x'/>",
        "xl/charts/colors1.xml": b"<cs:colorStyle xmlns:cs='urn:x'/>",
        "xl/charts/_rels/chart1.xml.rels": oxc.rels_xml(
            (("rId1", style_rel, "style1.xml"), ("rId2", color_rel, "colors1.xml"))
        ),
    }
    types = parts["[Content_Types].xml"].replace(
        b"</Types>",
        b'<Override PartName="/xl/charts/style1.xml" ContentType="application/'
        b'vnd.ms-office.chartstyle+xml"/><Override PartName="/xl/charts/colors1.xml" '
        b'ContentType="application/vnd.ms-office.chartcolorstyle+xml"/></Types>',
    )
    with zipfile.ZipFile(path, "w") as z:
        for name, data in {**parts, **extra, "[Content_Types].xml": types}.items():
            z.writestr(name, data)
    assert package_problems(path) == []
    before = sorted(zip_parts(path))

    apply_tab(book, TabContent("Dashboard", (*ROWS, ("more",)), chart=SPEC))
    after = zip_parts(path)
    assert package_problems(path) == []
    assert sorted(after) == sorted(set(before) - set(extra))
    assert b"style1" not in after["[Content_Types].xml"]
    assert len(dashboard_charts(path)) == 1


def test_the_package_checker_sees_dangling_and_orphan_parts(tmp_path: Path) -> None:
    path, book = fresh_book(tmp_path)
    apply_tab(book, TabContent("Dashboard", ROWS, chart=SPEC))
    parts = zip_parts(path)
    broken = {k: v for k, v in parts.items() if k != "xl/charts/chart1.xml"}
    broken["xl/charts/chart9.xml"] = parts["xl/charts/chart1.xml"]
    with zipfile.ZipFile(path, "w") as z:
        for name, data in broken.items():
            z.writestr(name, data)
    problems = package_problems(path)
    assert any("points at missing xl/charts/chart1.xml" in p for p in problems)
    assert any("chart9.xml is an orphan" in p for p in problems)
    assert any("names missing part /xl/charts/chart1.xml" in p for p in problems)
    assert any("chart9.xml has content type None" in p for p in problems)


# ------------------------------------------------------------------------------------ LibreOffice
def test_libreoffice_renders_the_synced_dashboard(practice: Practice, tmp_path: Path) -> None:
    soffice = need_soffice()
    config = practice()
    run_sync(config, now=NOW)
    run_sync(config, now=LATER)
    path = workbook_path(config)
    out = tmp_path / "pdf"
    subprocess.run(
        [soffice, "--headless", "--convert-to", "pdf", "--outdir", str(out), str(path)],
        check=True,
        timeout=180,
        capture_output=True,
    )
    pdf = out / "referrals.pdf"
    assert pdf.stat().st_size > 10_000
    if shutil.which("pdftotext"):
        text = subprocess.run(
            ["pdftotext", str(pdf), "-"], check=True, capture_output=True, timeout=60
        ).stdout.decode()
        # The chart's title is drawn from the chart part (the table's own heading differs).
        assert CHART_NAME in text
