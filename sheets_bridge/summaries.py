"""Pure builders of the bridge-owned summary tabs: Dashboard and Referrers (and gift lines).

Each builder turns ``metrics`` results into a ``TabContent`` laid out for a practice manager: a
title row, a note, then sections that each start with a bold heading row; plain names and units;
shares written as text like "62% of 8" so the sample size is always in sight.

Two rules shape every cell:

* **Deterministic.** A quiet cycle compares the new tab with the sheet and writes nothing when
  they are equal, so there is no "generated at" stamp, floats are rounded to fixed decimals,
  dates are written as fixed English text, and every list has a stable order.
* **No patient data.** Patient names, emails, phones and Reasons never appear here; rows are
  named by source, channel or referrer, and bottlenecks by Referral ID at most.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from sheets_bridge.gifts import GiftSummary, build_gifts_summary, read_gifts
from sheets_bridge.ledger import drafted_by_referrer
from sheets_bridge.metrics import (
    CHART_WEEKS,
    WEEKDAY_NAMES,
    GroupStats,
    Overview,
    Period,
    Ratio,
    empty_stats,
    fmt_date,
    overview,
    overview_next_change,
    volume_line,
)
from sheets_bridge.model import (
    CHANNELS,
    DASHBOARD_TAB,
    GIFTS_TAB,
    REFERRERS_TAB,
    SOURCE_TAGS,
    TAG_COLOURS,
    ChartSpec,
    Hours,
    OutOf,
    OutValue,
    Referral,
    Share,
    Snapshot,
    TabContent,
)
from sheets_bridge.phase_memo import PhaseMemo
from sheets_bridge.referrers import ReferrerRow, referrer_rows, referrers_next_change
from sheets_bridge.settings import SummarySettings
from sheets_bridge.state_view import StateView

if TYPE_CHECKING:
    from sheets_bridge.config import BridgeConfig
    from sheets_bridge.planner import TabBuilder

NO_DATA = "no data"
TOO_FEW = "not judged"

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_WEEKDAY_LONG = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def fmt_share(ratio: Ratio) -> str:
    """ "62% of 8", rounded half up; "no data" when there is nothing to divide by."""
    if not ratio.of:
        return NO_DATA
    return f"{int(ratio.count * 100 / ratio.of + 0.5)}% of {ratio.of}"


def fmt_hours(hours: float | None) -> OutValue:
    """Hours as a number rounded to 0.1 (a number, so a manager can sort or chart it)."""
    return NO_DATA if hours is None else round(hours, 1)


def _short(day: date) -> str:
    return f"{day.day} {_MONTHS[day.month - 1]}"


def fmt_span(period: Period) -> str:
    """ "3 Nov – 9 Nov 2025": the period's days, the end shown inclusive."""
    first = period.start.date()
    last = period.end.date() - timedelta(days=1)
    if first.year == last.year:
        return f"{_short(first)} – {fmt_date(last)}"
    return f"{fmt_date(first)} – {fmt_date(last)}"


class _Sheet:
    """Rows being laid out, with the cells drawn bold or right-aligned; pads every row."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.rows: list[list[OutValue]] = []
        self.headings: set[tuple[int, int]] = set()
        self.right: set[tuple[int, int]] = set()

    def add(self, *cells: OutValue, heading: bool = False, right_from: int | None = None) -> int:
        """Append a row; a heading makes bold only the cells given here, not the whole row.

        ``right_from``: cells from that column on are aligned right, so a header or a "no data"
        sits over or among the numbers of its column, never beside them.
        """
        self.rows.append(list(cells) + [None] * (self.width - len(cells)))
        row = len(self.rows) - 1
        if heading:
            self.headings.update((row, col) for col in range(len(cells)))
        if right_from is not None:
            self.right.update(
                (row, col)
                for col in range(right_from, len(cells))
                if cells[col] is not None and not isinstance(cells[col], OutOf)
            )
        return row

    def blank(self) -> None:
        self.add()

    def content(self, title: str, widths: Sequence[int], freeze_rows: int) -> TabContent:
        return TabContent(
            title=title,
            rows=tuple(tuple(row) for row in self.rows),
            heading_rows=frozenset(),
            heading_cells=frozenset(self.headings),
            right_cells=frozenset(self.right),
            widths=tuple(widths),
            freeze_rows=freeze_rows,
        )


# --------------------------------------------------------------------------------------------
# Dashboard
#
# The layout is a grid: a label column, then pairs of columns, a value (a count, a percent) and
# its "of N" beside it. Every table puts its values in the pairs' first columns, right-aligned
# under right-aligned headers, so each number sits under its own header. The tab is narrow
# enough to print one page wide in landscape at a readable size.

CHART_TITLE = f"Referrals per week by source tag, last {CHART_WEEKS} full weeks"
#: The title of the chart drawn under that table (the backend also knows its own chart by it).
CHART_NAME = f"Referrals per week by source tag (last {CHART_WEEKS} weeks)"
_PAIRS = 5
_DASH_WIDTH = 1 + 2 * _PAIRS
_LABEL_WIDTH = 34
_VALUE_WIDTH = 12
_OF_WIDTH = 8
DASHBOARD_WIDTHS: tuple[int, ...] = (_LABEL_WIDTH,) + (_VALUE_WIDTH, _OF_WIDTH) * _PAIRS
#: Short names of the source tags where a column is narrow (the chart's legend too).
TAG_LABEL = {
    "Provider Referral": "Provider",
    "Patient Referral": "Patient",
    "Self-Referral": "Self",
    "Unknown": "Unknown",
}


def _value_col(pair: int) -> int:
    return 1 + 2 * pair


def _pairs(values: Sequence[OutValue | Ratio]) -> list[OutValue]:
    """Cells for a row of the grid: a Ratio becomes a percent and its "of N" beside it."""
    cells: list[OutValue] = []
    for value in values:
        if isinstance(value, Ratio):
            if value.of:
                cells += [Share(round(value.count / value.of, 4)), OutOf(value.of)]
            else:
                cells += [NO_DATA, None]
        else:
            cells += [value, None]
    return cells


def _table_head(sheet: _Sheet, label: str, names: Sequence[str]) -> None:
    """A table's header row: its label, then one name over each pair's value column."""
    sheet.add(label, *_pairs(list(names)), heading=True, right_from=1)


def _metric_rows(stats: Sequence[GroupStats]) -> list[tuple[str, list[OutValue | Ratio]]]:
    """The speed-and-quality lines for a set of groups shown as columns."""
    return [
        ("Referrals", [s.volume for s in stats]),
        ("Good fit (of those with Fit set)", [s.good_fit for s in stats]),
        ("Median hours to first contact", [_hours(s.contact_median_hours) for s in stats]),
        ("Contacted within 24 hours", [s.within_24h for s in stats]),
        ("Contacted within 48 hours", [s.within_48h for s in stats]),
        ("Show rate (appointments passed)", [s.show for s in stats]),
        ("Long-term care (of those seen)", [s.long_term for s in stats]),
    ]


def _hours(hours: float | None) -> OutValue:
    return NO_DATA if hours is None else Hours(round(hours, 1))


def fmt_span_short(period: Period) -> str:
    """ "3–9 Nov" or "27 Oct–2 Nov": the period's days without the year, for a narrow column."""
    first = period.start.date()
    last = period.end.date() - timedelta(days=1)
    if (first.year, first.month) == (last.year, last.month):
        return f"{first.day}–{last.day} {_MONTHS[last.month - 1]}"
    return f"{_short(first)}–{_short(last)}"


def render_dashboard(
    ov: Overview,
    settings: SummarySettings,
    practice_name: str,
    gifts: GiftSummary | None = None,
) -> TabContent:
    """Lay out an ``Overview`` as the Dashboard tab (separate from the maths, for the digest).

    ``gifts`` (from the staff's Gifts tab, when there is one) adds the year's gift count, total
    and every warning: cash equivalents and totals over the configured limits.
    """
    sheet = _Sheet(_DASH_WIDTH)
    names = [p.name for p in ov.periods]
    this_week = ov.periods[0]
    weekday = _WEEKDAY_LONG[WEEKDAY_NAMES.index(settings.week_starts)]

    sheet.add(f"{practice_name}: referrals dashboard", heading=True)
    sheet.add(
        f"Weeks start on {weekday}; this week is {fmt_span(this_week)}. Counts are referrals "
        "received in each period; a percent has what it is out of beside it."
    )
    sheet.blank()

    sheet.add("Referrals by source tag", heading=True)
    _table_head(sheet, "", names)
    sheet.add("Dates", *_pairs([fmt_span_short(p) for p in ov.periods]), right_from=1)
    for tag in SOURCE_TAGS:
        sheet.add(tag, *_pairs([ov.by_tag[n][tag].volume for n in names]), right_from=1)
    sheet.add(
        "Total", *_pairs([ov.totals[n].volume for n in names]), heading=True, right_from=1
    )
    sheet.blank()

    sheet.add("Funnel: how far the period's referrals got", heading=True)
    _table_head(sheet, "", names)
    funnels = [ov.totals[n].funnel for n in names]
    stats = [ov.totals[n] for n in names]
    for label, counts in (
        ("Received", [f.received for f in funnels]),
        ("Contacted", [f.contacted for f in funnels]),
        ("Contacted within 24 hours", [s.within_24h.count for s in stats]),
        ("Contacted within 48 hours", [s.within_48h.count for s in stats]),
        ("Scheduled", [f.scheduled for f in funnels]),
        ("Seen", [f.seen for f in funnels]),
        ("Long-term care", [f.long_term for f in funnels]),
    ):
        sheet.add(label, *_pairs(counts), right_from=1)
    sheet.blank()

    sheet.add("Speed and quality", heading=True)
    _table_head(sheet, "", names)
    for label, values in _metric_rows(stats)[1:]:
        sheet.add(label, *_pairs(values), right_from=1)
    sheet.blank()

    referred = [tag for tag in SOURCE_TAGS if tag != "Unknown"]
    empty = empty_stats()
    sheet.add(
        f"Provider, Patient and Self referrals side by side, {fmt_span(ov.window)}", heading=True
    )
    _table_head(sheet, "", [TAG_LABEL[t] for t in referred])
    for label, values in _metric_rows([ov.window_by_tag.get(t, empty) for t in referred]):
        sheet.add(label, *_pairs(values), right_from=1)
    sheet.blank()

    channels = list(CHANNELS) + [c for c in ov.window_by_channel if c not in CHANNELS]
    sheet.add(f"By channel (How Heard), {fmt_span(ov.window)}", heading=True)
    _table_head(
        sheet, "Channel", ["Referrals", "Good fit", "In 24 hours", "Show rate", "Long-term"]
    )
    for channel in channels:
        s = ov.window_by_channel.get(channel, empty)
        sheet.add(
            channel,
            *_pairs([s.volume, s.good_fit, s.within_24h, s.show, s.long_term]),
            right_from=1,
        )
    sheet.blank()

    sheet.add("Alerts", heading=True)
    alerts = list(ov.bottlenecks)
    if ov.stall:
        alerts.insert(0, ov.stall)
    if ov.unreadable_received:
        n = ov.unreadable_received
        alerts.append(
            f"{n} {'row has' if n == 1 else 'rows have'} a Received that cannot be read; "
            f"{'it is' if n == 1 else 'they are'} left out of every number here until fixed "
            "(see Attention on the Referrals tab)."
        )
    for line in alerts or ["Nothing to act on."]:
        sheet.add(line)
    sheet.blank()
    sheet.add("Volume", heading=True)
    sheet.add(volume_line(ov.weeks) or "Not enough weeks yet to compare volume.")
    if gifts is not None:
        sheet.blank()
        sheet.add(f"Gifts {gifts.year} (from the Gifts tab)", heading=True)
        sheet.add(
            f"{gifts.count} {'gift' if gifts.count == 1 else 'gifts'} logged, "
            f"${gifts.total_value:,.2f} in all."
        )
        for line in gifts.warnings or ("No gift is over a limit or a cash equivalent.",):
            sheet.add(line)

    sheet.blank()
    sheet.add(CHART_TITLE, heading=True)
    sheet.add("Week starting", *[TAG_LABEL[t] for t in SOURCE_TAGS], heading=True, right_from=1)
    for week in ov.weeks:
        # A label, not a date cell: a chart over date cells draws a date axis with gaps.
        sheet.add(_short(week.start), *[week.counts.get(tag, 0) for tag in SOURCE_TAGS])

    tab = sheet.content(DASHBOARD_TAB, DASHBOARD_WIDTHS, freeze_rows=1)
    return replace(tab, chart=dashboard_chart(tab))


def dashboard_chart(tab: TabContent) -> ChartSpec:
    """The stacked weekly column chart over the Dashboard's weekly table, drawn just below it.

    The table is the tab's last section, so the chart covers no content; each source tag has
    its colour from ``TAG_COLOURS``, the same as in the digest.
    """
    first_row, first_col, last_row, last_col = dashboard_chart_range(tab)
    return ChartSpec(
        title=CHART_NAME,
        first_row=first_row,
        first_col=first_col,
        last_row=last_row,
        last_col=last_col,
        kind="column",
        stacked=True,
        anchor_row=last_row + 2,
        anchor_col=first_col,
        colours=tuple(TAG_COLOURS[tag] for tag in SOURCE_TAGS),
    )


def build_dashboard(
    referrals: Sequence[Referral],
    now: datetime,
    settings: SummarySettings,
    practice_name: str,
    gifts: GiftSummary | None = None,
) -> TabContent:
    """The Dashboard tab for ``referrals`` as of ``now``."""
    return render_dashboard(overview(referrals, now, settings), settings, practice_name, gifts)


def dashboard_chart_range(tab: TabContent) -> tuple[int, int, int, int]:
    """(first_row, first_col, last_row, last_col), 0-based and inclusive, of the weekly table.

    The first row holds the series names (the source tags) and the first column the week
    starts, the shape a line or column chart takes directly.
    """
    for index, row in enumerate(tab.rows):
        if row and row[0] == CHART_TITLE:
            first = index + 1
            last = first
            while last + 1 < len(tab.rows) and tab.rows[last + 1] and tab.rows[last + 1][0]:
                last += 1
            return first, 0, last, len(SOURCE_TAGS)
    raise ValueError("this tab has no weekly chart table: was it built by build_dashboard?")


# --------------------------------------------------------------------------------------------
# Referrers

REFERRER_HEADERS: tuple[str, ...] = (
    "Referrer",
    "Practice",
    "Type",
    "Total referrals",
    "Last 90 days",
    "Last referral",
    "Good fit",
    "",
    "Show rate",
    "",
    "Long-term care",
    "",
    "High-quality",
    "Lapsed",
    "New",
    "Last acknowledgement drafted",
    "Last check-in drafted",
)
"""The Referrers tab's header row; each share's "of N" is in the unnamed column beside it."""

#: Columns whose values are numbers or dates: their headers sit right, over them.
_REFERRER_NUMERIC = frozenset({3, 4, 5, 6, 8, 10, 15, 16})
#: High-quality, Lapsed and New: words, drawn right like the numbers (header and value). Left,
#: "Yes" or "not judged" ran straight on from the long-term share's "of 22" beside it.
_REFERRER_FLAGS = (12, 13, 14)
REFERRER_WIDTHS: tuple[int, ...] = (24, 22, 8, 9, 8, 11, 8, 8, 9, 8, 9, 8, 12, 7, 5, 16, 13)


def _yes(flag: bool) -> str:
    return "Yes" if flag else ""


def referrer_cells(row: ReferrerRow) -> tuple[OutValue, ...]:
    """One ReferrerRow as the Referrers tab writes it: counts and percents as numbers, dates as
    date cells, each share's size beside it."""
    return (
        row.name,
        row.practice,
        row.type,
        row.total,
        row.last_90_days,
        row.last_referral,
        *_pairs([row.good_fit]),
        *_pairs([row.show]),
        *_pairs([row.long_term]),
        TOO_FEW if row.high_quality is None else _yes(row.high_quality),
        _yes(row.lapsed),
        _yes(row.new),
        row.last_acknowledgement,
        row.last_checkin,
    )


def build_referrers(
    referrals: Sequence[Referral],
    now: datetime,
    settings: SummarySettings,
    drafted: Mapping[str, Mapping[str, date]] | None = None,
) -> TabContent:
    """The Referrers tab: one row per referrer, most referrals first, with what the flags mean."""
    rows = referrer_rows(referrals, now, settings, drafted)
    sheet = _Sheet(len(REFERRER_HEADERS))
    sheet.add("Referrers", heading=True)
    sheet.add(
        f"High-quality: at least {settings.high_quality_min_referrals} referrals in the last "
        "365 days, with a good-fit share and show rate over that year above the practice's own. "
        f"Referrers with fewer than {settings.min_sample} referrals are not judged."
    )
    sheet.add(
        f"Lapsed: no referral in the last {settings.lapsed_days} days. New: first referral in "
        f"the last {settings.new_days} days. Shares are over all of the referrer's referrals."
    )
    sheet.blank()
    header = sheet.add(*REFERRER_HEADERS, heading=True)
    sheet.right.update((header, c) for c in (*_REFERRER_NUMERIC, *_REFERRER_FLAGS))
    if not rows:
        sheet.add("No referral names a referrer yet.")
    for row in rows:
        line = sheet.add(*referrer_cells(row))
        sheet.right.update(
            (line, c) for c in (6, 8, 10, *_REFERRER_FLAGS) if row_text(sheet, line, c)
        )
    return sheet.content(REFERRERS_TAB, REFERRER_WIDTHS, freeze_rows=header + 1)


def row_text(sheet: _Sheet, row: int, col: int) -> bool:
    """Whether a cell holds text (a "no data" among percents, aligned with them)."""
    return isinstance(sheet.rows[row][col], str)


# --------------------------------------------------------------------------------------------
# Gifts (the tab is staff-owned: this only summarises it for the digest)


#: The Dashboard and Referrers tabs of the latest plan, reused across cycles while their rows
#: are the same objects and the clock is short of each tab's own horizon (see PhaseMemo).
_TABS_MEMO = PhaseMemo()


def summary_tabs() -> Sequence[TabBuilder]:
    """The Dashboard and Referrers tabs as the planner builds them, from the parsed rows, the
    staff's Gifts tab and the drafts ledger.

    Each tab is reused (when the plan is incremental) while its rows are the very same Referral objects, its
    other inputs are equal (settings, the practice's name, the Gifts summary, the ledger's last
    acknowledgements and check-ins) and ``now`` is short of the tab's own horizon
    (:func:`~sheets_bridge.metrics.overview_next_change`,
    :func:`~sheets_bridge.referrers.referrers_next_change`), or is the very instant it was built
    at. The Gifts summary and the ledger's dates are worked out every time (they are small and
    read dates against today), so they are inputs, not something the horizon must foresee.
    """

    def build(
        referrals: Sequence[Referral],
        now: datetime,
        config: BridgeConfig,
        snapshot: Snapshot,
        view: StateView,
    ) -> Sequence[TabContent]:
        gifts_tab = snapshot.tabs.get(GIFTS_TAB)
        gifts = (
            build_gifts_summary(
                read_gifts(
                    gifts_tab,
                    now=now,
                    date_order=config.practice.date_order or "MDY",
                    date1904=snapshot.date1904,
                ),
                config.summaries,
                now.year,
            )
            if gifts_tab is not None
            else None
        )
        drafted = drafted_by_referrer(view, config.tz, referrals)
        settings = config.summaries
        dashboard = _TABS_MEMO.reuse(
            "dashboard", referrals, (settings, config.practice.name, gifts), now,
            lambda: build_dashboard(referrals, now, settings, config.practice.name, gifts),
            lambda _tab: overview_next_change(referrals, now, settings),
        )
        referrers = _TABS_MEMO.reuse(
            "referrers", referrals, (settings, drafted), now,
            lambda: build_referrers(referrals, now, settings, drafted),
            lambda _tab: referrers_next_change(referrals, now, settings),
        )
        return [dashboard, referrers]

    return [build]


__all__ = [
    "CHART_NAME",
    "CHART_TITLE",
    "build_dashboard",
    "build_referrers",
    "dashboard_chart",
    "dashboard_chart_range",
    "fmt_hours",
    "fmt_share",
    "referrer_cells",
    "render_dashboard",
    "summary_tabs",
]
