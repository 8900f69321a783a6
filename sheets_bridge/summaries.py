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
    volume_line,
)
from sheets_bridge.model import (
    CHANNELS,
    DASHBOARD_TAB,
    GIFTS_TAB,
    REFERRERS_TAB,
    SOURCE_TAGS,
    ChartSpec,
    OutValue,
    Referral,
    Snapshot,
    TabContent,
)
from sheets_bridge.referrers import ReferrerRow, referrer_rows
from sheets_bridge.settings import SummarySettings
from sheets_bridge.state_view import StateView

if TYPE_CHECKING:
    from sheets_bridge.config import BridgeConfig
    from sheets_bridge.planner import TabBuilder

NO_DATA = "no data"
TOO_FEW = "too few referrals to judge"

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
    """Rows being laid out, with the indexes of bold rows; pads every row to one width."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.rows: list[list[OutValue]] = []
        self.headings: set[tuple[int, int]] = set()

    def add(self, *cells: OutValue, heading: bool = False) -> int:
        """Append a row; a heading makes bold only the cells given here, not the whole row,
        so a table laid beside it (the weekly chart data) keeps its own look."""
        self.rows.append(list(cells) + [None] * (self.width - len(cells)))
        row = len(self.rows) - 1
        if heading:
            self.headings.update((row, col) for col in range(len(cells)))
        return row

    def blank(self) -> None:
        self.add()

    def put(
        self, row: int, col: int, values: Sequence[OutValue], *, heading: bool = False
    ) -> None:
        """Write ``values`` into ``row`` from ``col`` on, growing the sheet downwards if needed."""
        while len(self.rows) <= row:
            self.add()
        self.rows[row][col : col + len(values)] = list(values)
        if heading:
            self.headings.update((row, c) for c in range(col, col + len(values)))

    def content(self, title: str, widths: Sequence[int], freeze_rows: int) -> TabContent:
        return TabContent(
            title=title,
            rows=tuple(tuple(row) for row in self.rows),
            heading_rows=frozenset(),
            heading_cells=frozenset(self.headings),
            widths=tuple(widths),
            freeze_rows=freeze_rows,
        )


# --------------------------------------------------------------------------------------------
# Dashboard

#: Where the weekly chart table sits: to the right of the sections, at a fixed place, so the
#: chart range never moves when the number of alert lines changes.
CHART_TITLE = f"Referrals per week by source tag, last {CHART_WEEKS} full weeks"
CHART_TITLE_ROW = 3
CHART_COL = 7
#: The title of the chart drawn over that table (the backend also knows its own chart by it).
CHART_NAME = f"Referrals per week by source tag (last {CHART_WEEKS} weeks)"
_DASH_WIDTH = CHART_COL + 1 + len(SOURCE_TAGS)
_TAG_LABEL = {
    "Provider Referral": "Provider",
    "Patient Referral": "Patient",
    "Self-Referral": "Self",
}


def _metric_rows(stats: Sequence[GroupStats]) -> list[tuple[str, list[OutValue]]]:
    """The speed-and-quality lines for a set of groups shown as columns."""
    return [
        ("Referrals", [s.volume for s in stats]),
        ("Good fit (of those with Fit set)", [fmt_share(s.good_fit) for s in stats]),
        ("Median hours to first contact", [fmt_hours(s.contact_median_hours) for s in stats]),
        ("Contacted within 24 hours", [fmt_share(s.within_24h) for s in stats]),
        ("Contacted within 48 hours", [fmt_share(s.within_48h) for s in stats]),
        ("Show rate (appointments passed)", [fmt_share(s.show) for s in stats]),
        ("Conversion to long-term care (of those seen)", [fmt_share(s.long_term) for s in stats]),
    ]


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
        "received in each period; a share shows how many it is out of."
    )
    sheet.blank()

    sheet.add("Referrals by source tag", heading=True)
    sheet.add("", *names, heading=True)
    sheet.add("Dates", *[fmt_span(p) for p in ov.periods])
    for tag in SOURCE_TAGS:
        sheet.add(tag, *[ov.by_tag[n][tag].volume for n in names])
    sheet.add("Total", *[ov.totals[n].volume for n in names], heading=True)
    sheet.blank()

    sheet.add("Funnel: how far the period's referrals got", heading=True)
    sheet.add("", *names, heading=True)
    funnels = [ov.totals[n].funnel for n in names]
    stats = [ov.totals[n] for n in names]
    sheet.add("Received", *[f.received for f in funnels])
    sheet.add("Contacted", *[f.contacted for f in funnels])
    sheet.add("Contacted within 24 hours", *[s.within_24h.count for s in stats])
    sheet.add("Contacted within 48 hours", *[s.within_48h.count for s in stats])
    sheet.add("Scheduled", *[f.scheduled for f in funnels])
    sheet.add("Seen", *[f.seen for f in funnels])
    sheet.add("Long-term care", *[f.long_term for f in funnels])
    sheet.blank()

    sheet.add("Speed and quality", heading=True)
    sheet.add("", *names, heading=True)
    for label, values in _metric_rows(stats)[1:]:
        sheet.add(label, *values)
    sheet.blank()

    referred = [tag for tag in SOURCE_TAGS if tag != "Unknown"]
    empty = empty_stats()
    sheet.add(
        f"Provider, Patient and Self referrals side by side, {fmt_span(ov.window)}", heading=True
    )
    sheet.add("", *[_TAG_LABEL[t] for t in referred], heading=True)
    for label, values in _metric_rows([ov.window_by_tag.get(t, empty) for t in referred]):
        sheet.add(label, *values)
    sheet.blank()

    channels = list(CHANNELS) + [c for c in ov.window_by_channel if c not in CHANNELS]
    sheet.add(f"By channel (How Heard), {fmt_span(ov.window)}", heading=True)
    sheet.add(
        "Channel",
        "Referrals",
        "Good fit",
        "Within 24 hours",
        "Show rate",
        "Long-term care",
        heading=True,
    )
    for channel in channels:
        s = ov.window_by_channel.get(channel, empty)
        sheet.add(
            channel,
            s.volume,
            fmt_share(s.good_fit),
            fmt_share(s.within_24h),
            fmt_share(s.show),
            fmt_share(s.long_term),
        )
    sheet.blank()

    sheet.add("Alerts", heading=True)
    sheet.add(ov.stall or volume_line(ov.weeks) or "Not enough weeks yet to judge volume.")
    for line in ov.bottlenecks or ("No bottlenecks found.",):
        sheet.add(line)
    if ov.unreadable_received:
        n = ov.unreadable_received
        sheet.add(
            f"{n} {'row has' if n == 1 else 'rows have'} a Received that cannot be read; "
            f"{'it is' if n == 1 else 'they are'} left out of every number here until fixed "
            "(see Attention on the Referrals tab)."
        )
    if gifts is not None:
        sheet.blank()
        sheet.add(f"Gifts {gifts.year} (from the Gifts tab)", heading=True)
        sheet.add(
            f"{gifts.count} {'gift' if gifts.count == 1 else 'gifts'} logged, "
            f"${gifts.total_value:,.2f} in all."
        )
        for line in gifts.warnings or ("No gift is over a limit or a cash equivalent.",):
            sheet.add(line)

    sheet.put(CHART_TITLE_ROW, CHART_COL, [CHART_TITLE], heading=True)
    sheet.put(CHART_TITLE_ROW + 1, CHART_COL, ["Week starting", *SOURCE_TAGS], heading=True)
    for i, week in enumerate(ov.weeks):
        sheet.put(
            CHART_TITLE_ROW + 2 + i,
            CHART_COL,
            [_short(week.start), *[week.counts.get(tag, 0) for tag in SOURCE_TAGS]],
        )

    widths = [46, 21, 21, 21, 21, 16, 3, 14, 18, 18, 14, 10]
    tab = sheet.content(DASHBOARD_TAB, widths[:_DASH_WIDTH], freeze_rows=1)
    return replace(tab, chart=dashboard_chart(tab))


def dashboard_chart(tab: TabContent) -> ChartSpec:
    """The stacked weekly column chart over the Dashboard's weekly table, drawn just below it.

    The table sits right of the sections at a fixed place and the cells below it are empty (the
    sections to its left are narrower), so the chart covers no content and never moves.
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

    The first row holds the series names (the source tags) and the first column the week labels,
    the shape a line or column chart takes directly.
    """
    for index, row in enumerate(tab.rows):
        if len(row) > CHART_COL and row[CHART_COL] == CHART_TITLE:
            first = index + 1
            last = first
            while last + 1 < len(tab.rows) and len(tab.rows[last + 1]) > CHART_COL:
                if tab.rows[last + 1][CHART_COL] in (None, ""):
                    break
                last += 1
            return first, CHART_COL, last, CHART_COL + len(SOURCE_TAGS)
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
    "Show rate",
    "Long-term care",
    "High-quality",
    "Lapsed",
    "New",
    "Last acknowledgement drafted",
    "Last check-in drafted",
)


def _iso(day: date | None) -> str:
    return day.isoformat() if day is not None else ""


def _yes(flag: bool) -> str:
    return "Yes" if flag else ""


def referrer_cells(row: ReferrerRow) -> tuple[OutValue, ...]:
    """One ReferrerRow as the Referrers tab writes it."""
    return (
        row.name,
        row.practice,
        row.type,
        row.total,
        row.last_90_days,
        _iso(row.last_referral),
        fmt_share(row.good_fit),
        fmt_share(row.show),
        fmt_share(row.long_term),
        TOO_FEW if row.high_quality is None else _yes(row.high_quality),
        _yes(row.lapsed),
        _yes(row.new),
        _iso(row.last_acknowledgement),
        _iso(row.last_checkin),
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
    if not rows:
        sheet.add("No referral names a referrer yet.")
    for row in rows:
        sheet.add(*referrer_cells(row))
    widths = (28, 28, 10, 10, 10, 13, 12, 12, 14, 24, 8, 6, 16, 16)
    return sheet.content(REFERRERS_TAB, widths, freeze_rows=header + 1)


# --------------------------------------------------------------------------------------------
# Gifts (the tab is staff-owned: this only summarises it for the digest)


def summary_tabs() -> Sequence[TabBuilder]:
    """The Dashboard and Referrers tabs as the planner builds them, from the parsed rows, the
    staff's Gifts tab and the drafts ledger."""

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
        return [
            build_dashboard(referrals, now, config.summaries, config.practice.name, gifts),
            build_referrers(referrals, now, config.summaries, drafted),
        ]

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
