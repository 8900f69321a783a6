"""The demo workbook as a manager sees it: opened in LibreOffice (headless), printed to PDF and
saved "as shown" to CSV, then read the way a person reads the page.

These tests need ``soffice`` (LibreOffice Calc) and ``pdftotext`` (poppler). Without them they
skip on a developer's machine with the command that installs them; CI sets
``SHEETS_BRIDGE_REQUIRE_SOFFICE`` and installs both (``.ci/run``), so there they never skip.
"""

from __future__ import annotations

import csv
import re
import shutil
import statistics
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import need_soffice
from openpyxl import load_workbook

from sheets_bridge.cli import main
from sheets_bridge.worktabs import FOLLOWUPS_HEADERS

pytestmark = pytest.mark.slow

DEMO_NOW = "2026-12-03T12:00:00-05:00"


@dataclass(frozen=True)
class Word:
    text: str
    x0: float
    y0: float
    x1: float
    y1: float


@dataclass(frozen=True)
class Rendered:
    workbook: Path
    pdf: Path
    csv: dict[str, list[list[str]]]
    pages: list[tuple[float, float, list[Word]]]
    """Each PDF page: width, height and its words with their boxes (points)."""

    def pages_of(self, first_words: str) -> list[list[Word]]:
        """The pages of the tab whose first page starts with ``first_words``, up to the next
        tab (each tab starts a new page)."""
        out: list[list[Word]] = []
        starts = [" ".join(w.text for w in words[: len(first_words.split())]) for *_, words in self.pages]
        for i, start in enumerate(starts):
            if start == first_words:
                out.append(self.pages[i][2])
                j = i + 1
                while j < len(self.pages) and not _tab_start(starts[j]):
                    out.append(self.pages[j][2])
                    j += 1
                return out
        raise AssertionError(f"no page starts with {first_words!r}")


_TAB_STARTS = ("Received", "Referral ID", "How Heard", "Riverside", "Referrers", "When", "Date")


def _tab_start(start: str) -> bool:
    return start.startswith(_TAB_STARTS)


_WORD_RE = re.compile(
    r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>'
)
_PAGE_RE = re.compile(r'<page width="([\d.]+)" height="([\d.]+)">(.*?)</page>', re.DOTALL)


def _unescape(text: str) -> str:
    return text.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"')


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rendered]:
    soffice = need_soffice()
    folder = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--dir", str(folder / "practice"), "--now", DEMO_NOW]) == 0
    workbook = folder / "practice" / "referrals.xlsx"
    out = folder / "out"
    for target in (
        "pdf",
        # Every tab, each cell as it is shown (formats applied), UTF-8.
        "csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,true,false,false,-1",
    ):
        subprocess.run(
            [soffice, "--headless", f"-env:UserInstallation=file://{folder / 'lo-profile'}",
             "--convert-to", target, "--outdir", str(out), str(workbook)],
            check=True, timeout=240, capture_output=True,
        )  # fmt: skip
    pdf = out / "referrals.pdf"
    bbox = subprocess.run(
        ["pdftotext", "-bbox", str(pdf), "-"], check=True, capture_output=True, timeout=120
    ).stdout.decode()
    pages = [
        (
            float(m.group(1)),
            float(m.group(2)),
            [
                Word(_unescape(w[4]), float(w[0]), float(w[1]), float(w[2]), float(w[3]))
                for w in _WORD_RE.findall(m.group(3))
            ],
        )
        for m in _PAGE_RE.finditer(bbox)
    ]
    tabs = {}
    for file in out.glob("referrals-*.csv"):
        with file.open(newline="", encoding="utf-8") as fh:
            tabs[file.stem.removeprefix("referrals-")] = list(csv.reader(fh))
    yield Rendered(workbook, pdf, tabs, pages)


def _line(words: list[Word], y: float) -> list[Word]:
    return sorted((w for w in words if abs(w.y0 - y) < 2), key=lambda w: w.x0)


def _row_of(words: list[Word], first: str) -> list[Word]:
    start = next(w for w in words if w.text == first)
    return _line(words, start.y0)


def test_the_dashboard_prints_landscape_at_a_readable_size(rendered: Rendered) -> None:
    pages = [p for p in rendered.pages if p[2] and p[2][0].text == "Riverside"]
    assert pages, "the Dashboard has a page"
    width, height, words = pages[0]
    assert width > height  # landscape
    # Words are about as tall as 9-point text (a page of 4-point text would be about 4.5).
    assert statistics.median(w.y1 - w.y0 for w in words) >= 8.5
    # One page wide: every table's rightmost column is on the Dashboard's first page.
    texts = [w.text for w in words]
    assert "This quarter" in " ".join(texts) and "Long-term" in texts


def test_every_dashboard_number_sits_under_its_own_header(rendered: Rendered) -> None:
    words = rendered.pages_of("Riverside Physical Therapy:")[0]
    header = _row_of(words, "This")  # "This week", "Last week", "Last 4 weeks", "This quarter"
    ends = [w.x1 for w in header if w.text in ("week", "weeks", "quarter")]
    assert len(ends) == 4
    tags = rendered.csv["Dashboard"]
    provider = next(r for r in tags if r and r[0] == "Provider Referral")
    row = _row_of(words, "Provider")  # the first "Provider" line is that table's
    numbers = [w for w in row if w.text.isdigit()]
    assert [w.text for w in numbers] == [v for v in provider[1:] if v]
    for header_end, number in zip(ends, numbers, strict=True):
        assert abs(header_end - number.x1) < 2.5, (header_end, number)
    # The channel table: a percent under its header and its "of N" right beside it, never
    # run together into one number ("7275% of 69").
    channel = _row_of(words, "Channel")
    cells = [w for w in _row_of(words, "Google") if w.text.endswith("%")]
    good_fit = next(w for w in channel if w.text == "fit")
    assert abs(good_fit.x1 - cells[0].x1) < 2.5
    assert all(re.fullmatch(r"\d{1,3}%", w.text) for w in cells)


def test_shares_are_percent_cells_with_their_size_beside_them(rendered: Rendered) -> None:
    rows = rendered.csv["Dashboard"]
    good = next(r for r in rows if r and r[0] == "Good fit (of those with Fit set)")
    assert re.fullmatch(r"\d{1,3}%", good[1]) and re.fullmatch(r"of \d+", good[2])
    wb = load_workbook(rendered.workbook)
    ws = wb["Dashboard"]
    shares = [
        c for row in ws.iter_rows() for c in row if isinstance(c.value, float) and c.column == 2
    ]
    assert shares and all(c.number_format == "0%" and 0 <= c.value <= 1 for c in shares if c.number_format != "0.0")


def test_nothing_is_cut_off_or_shown_as_hashes(rendered: Rendered) -> None:
    for _, _, words in rendered.pages:
        assert not any("###" in w.text for w in words), "a column too narrow for its value"
    referrers = rendered.pages_of("Referrers High-quality:")[0]
    assert "referrals" in [w.text for w in referrers]  # "Total referrals", whole, wrapped


def test_bridge_moments_are_real_date_times(rendered: Rendered) -> None:
    rows = rendered.csv["Referrals"]
    header = rows[0]
    for name in ("Follow-up Due", "Bridge Updated"):
        shown = [r[header.index(name)] for r in rows[1:] if r[header.index(name)]]
        assert shown and all(re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", v) for v in shown)
    wb = load_workbook(rendered.workbook)
    ws = wb["Referrals"]
    cols = {c.value: c.column for c in ws[1]}
    for name in ("Follow-up Due", "Bridge Updated"):
        cell = ws.cell(row=2, column=cols[name])
        assert cell.is_date, (name, cell.value, cell.number_format)
    queue = rendered.csv["Follow-ups"]
    due = queue[0].index("Follow-up Due")
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", r[due]) for r in queue[1:] if r[due])
    assert ws.cell(row=2, column=cols["Attention"]).alignment.wrap_text in (True, None)
    fu = wb["Follow-ups"]
    assert fu.cell(row=2, column=FOLLOWUPS_HEADERS.index("Follow-up Due") + 1).is_date


def test_follow_ups_show_national_phones_and_rebooking(rendered: Rendered) -> None:
    queue = rendered.csv["Follow-ups"]
    header = queue[0]
    phones = [r[header.index("Phone")] for r in queue[1:] if r[header.index("Phone")]]
    assert phones and all(re.fullmatch(r"\(\d{3}\) \d{3}-\d{4}", p) for p in phones)
    assert "rebook" in {r[header.index("To do")] for r in queue[1:]}


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="pdftoppm (poppler-utils) missing")
def test_the_dashboard_renders_as_a_picture(rendered: Rendered, tmp_path: Path) -> None:
    page = next(i for i, p in enumerate(rendered.pages, start=1) if p[2] and p[2][0].text == "Riverside")
    subprocess.run(
        ["pdftoppm", "-png", "-r", "40", "-f", str(page), "-l", str(page), str(rendered.pdf),
         str(tmp_path / "dash")],
        check=True, timeout=60, capture_output=True,
    )  # fmt: skip
    (png,) = tmp_path.glob("dash*.png")
    assert png.stat().st_size > 5_000
