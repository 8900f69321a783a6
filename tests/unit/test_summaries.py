"""Golden tests for the Dashboard and Referrers tabs, over the hand-worked dataset of
``test_metrics.py`` (see its docstring for the table every number below comes from)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import date, timedelta

# The golden dataset lives beside these tests (pytest puts this folder on sys.path).
from test_metrics import GOLDEN, NOW, PT, SETTINGS, P, S, at, gifts_tab, make_referral

from sheets_bridge.gifts import build_gifts_summary, read_gifts
from sheets_bridge.identity import referrer_key_of
from sheets_bridge.model import Hours, OutOf, OutValue, Referral, Share, TabContent
from sheets_bridge.summaries import (
    CHART_TITLE,
    REFERRER_HEADERS,
    TOO_FEW,
    build_dashboard,
    build_referrers,
    dashboard_chart_range,
)

PRACTICE = "Harbor Physio"


def seen(value: OutValue, beside: OutValue) -> OutValue:
    """What a manager reads in one pair of the Dashboard's grid: "62% of 8" for a percent cell
    and the "of N" cell beside it (rounded half up, as the percent format shows it)."""
    if isinstance(value, Share):
        assert isinstance(beside, OutOf), "a percent always has its size beside it"
        return f"{int(value * 100 + 0.5)}% of {beside}"
    assert beside is None, f"{beside!r} beside {value!r}"
    return value


def section(tab: TabContent, heading: str) -> dict[str, list[OutValue]]:
    """The rows under a section heading, by their first cell, up to the next blank row; each
    row as its first four pairs read."""
    start = next(i for i, row in enumerate(tab.rows) if row[0] == heading)
    out: dict[str, list[OutValue]] = {}
    for row in tab.rows[start + 1 :]:
        if row[0] is None:
            break
        out[str(row[0])] = [seen(row[c], row[c + 1]) for c in (1, 3, 5, 7)]
    return out


def dashboard() -> TabContent:
    return build_dashboard(GOLDEN, NOW, SETTINGS, PRACTICE)


def test_dashboard_referrals_by_source_tag() -> None:
    rows = section(dashboard(), "Referrals by source tag")
    assert rows[""] == ["This week", "Last week", "Last 4 weeks", "This quarter"]
    assert rows["Dates"] == ["10–16 Nov", "3–9 Nov", "13 Oct–9 Nov", "1 Oct–31 Dec"]
    assert rows[P] == [1, 2, 4, 5]
    assert rows[PT] == [1, 1, 2, 3]
    assert rows[S] == [1, 1, 2, 3]
    assert rows["Unknown"] == [0, 0, 0, 0]
    assert rows["Total"] == [3, 4, 8, 11]


def test_dashboard_funnel() -> None:
    rows = section(dashboard(), "Funnel: how far the period's referrals got")
    assert rows["Received"] == [3, 4, 8, 11]
    assert rows["Contacted"] == [1, 4, 7, 8]
    assert rows["Contacted within 24 hours"] == [1, 2, 4, 5]
    assert rows["Contacted within 48 hours"] == [1, 3, 6, 7]
    assert rows["Scheduled"] == [1, 3, 5, 6]
    assert rows["Seen"] == [0, 1, 2, 2]
    assert rows["Long-term care"] == [0, 1, 1, 1]


def test_dashboard_speed_and_quality() -> None:
    rows = section(dashboard(), "Speed and quality")
    assert rows["Good fit (of those with Fit set)"] == [
        "100% of 1",
        "50% of 4",
        "71% of 7",
        "75% of 8",
    ]
    assert rows["Median hours to first contact"] == [6.0, 16.0, 24.0, 15.0]
    assert rows["Contacted within 24 hours"] == ["50% of 2", "50% of 4", "50% of 8", "50% of 10"]
    assert rows["Contacted within 48 hours"] == ["100% of 1", "75% of 4", "75% of 8", "78% of 9"]
    assert rows["Show rate (appointments passed)"] == [
        "no data",
        "50% of 2",
        "50% of 4",
        "50% of 4",
    ]
    assert rows["Long-term care (of those seen)"] == [
        "no data",
        "100% of 1",
        "50% of 2",
        "50% of 2",
    ]


def test_dashboard_side_by_side_and_channels() -> None:
    tab = dashboard()
    rows = section(tab, "Provider, Patient and Self referrals side by side, 18 Aug – 9 Nov 2025")
    assert rows[""][:3] == ["Provider", "Patient", "Self"]
    assert rows["Referrals"][:3] == [5, 2, 2]
    assert rows["Good fit (of those with Fit set)"][:3] == ["100% of 5", "0% of 1", "50% of 2"]
    assert rows["Median hours to first contact"][:3] == [4.0, 1.5, 37.0]
    assert rows["Contacted within 24 hours"][:3] == ["80% of 5", "50% of 2", "0% of 2"]
    assert rows["Contacted within 48 hours"][:3] == ["100% of 5", "50% of 2", "50% of 2"]
    assert rows["Show rate (appointments passed)"][:3] == ["60% of 5", "no data", "no data"]
    assert rows["Long-term care (of those seen)"][:3] == [
        "67% of 3",
        "no data",
        "no data",
    ]
    channels = section(tab, "By channel (How Heard), 18 Aug – 9 Nov 2025")
    assert channels["Channel"] == ["Referrals", "Good fit", "In 24 hours", "Show rate"]
    assert channels["Provider"] == [5, "100% of 5", "80% of 5", "60% of 5"]
    assert channels["Google"] == [1, "100% of 1", "0% of 1", "no data"]
    assert channels["Directory"] == [0, "no data", "no data", "no data"]  # R16 is older
    # Every header and value of a table sits right, in its column, so no number reads as its
    # neighbour's; the "of N" beside a percent stays left, next to it.
    start = next(i for i, row in enumerate(tab.rows) if row[0] and "By channel" in str(row[0]))
    for r in range(start + 1, start + 4):
        for c in (1, 3, 5, 7, 9):
            assert (r, c) in tab.right_cells, (r, c)
        assert all((r, c) not in tab.right_cells for c in (0, 2, 4, 6, 8, 10))


def test_dashboard_alerts() -> None:
    tab = dashboard()
    first = [row[0] for row in tab.rows]
    start = first.index("Alerts")
    # Things to act on; how this week's volume compares is news, not an alert.
    assert first[start + 1 : start + 4] == [
        "2 referrals past Follow-up Due with no First Contact: R-00012, R-00002.",
        (
            "1 row has a Received that cannot be read; it is left out of every number here until "
            "fixed (see Attention on the Referrals tab)."
        ),
        None,
    ]
    volume = first.index("Volume")
    assert first[volume + 1] == (
        "Week of 3 Nov 2025: 4 referrals, against an average of 1 a week over the 4 weeks before."
    )


def test_dashboard_chart_table_is_the_last_section() -> None:
    tab = dashboard()
    title = [row[0] for row in tab.rows].index(CHART_TITLE)
    assert dashboard_chart_range(tab) == (title + 1, 0, title + 13, 4)
    assert tab.rows[title + 1][:5] == ("Week starting", "Provider", "Patient", "Self", "Unknown")
    assert tab.rows[title + 2][:5] == ("18 Aug", 0, 0, 0, 0)
    assert tab.rows[title + 12][:5] == ("27 Oct", 0, 1, 1, 0)
    assert tab.rows[title + 13][:5] == ("3 Nov", 2, 1, 1, 0)
    assert tab.rows[title + 13 :][1:] == ()
    assert tab.chart is not None and tab.chart.anchor_row == title + 15
    assert tab.chart.colours == ("0072B2", "009E73", "E69F00", "999999")


def test_dashboard_layout() -> None:
    tab = dashboard()
    assert tab.title == "Dashboard"
    assert tab.rows[0][0] == "Harbor Physio: referrals dashboard"
    assert tab.rows[1][0] == (
        "Weeks start on Monday; this week is 10 Nov – 16 Nov 2025. Counts are referrals received "
        "in each period; a percent has what it is out of beside it."
    )
    assert {(0, 0), (3, 0), (4, 1)} <= tab.heading_cells
    assert len({len(row) for row in tab.rows}) == 1
    assert len(tab.widths) == len(tab.rows[0])
    # Narrow enough to print one page wide, landscape, at a readable size (about 140
    # characters of Calibri 11 fit across a landscape Letter or A4 page).
    assert sum(tab.widths) <= 140 and tab.landscape
    for row in tab.rows:
        for cell in row:
            assert cell is None or type(cell) in (str, int, Share, OutOf, Hours)


def test_dashboard_with_no_data_and_one_referral() -> None:
    empty = build_dashboard([], NOW, SETTINGS, PRACTICE)
    rows = section(empty, "Speed and quality")
    assert rows["Show rate (appointments passed)"] == ["no data"] * 4
    assert section(empty, "Referrals by source tag")["Total"] == [0, 0, 0, 0]
    one = build_dashboard(
        [make_referral(1, at(11, 11, 9), P, fc=at(11, 11, 11))], NOW, SETTINGS, PRACTICE
    )
    assert section(one, "Referrals by source tag")["Total"] == [1, 0, 0, 1]
    assert section(one, "Speed and quality")["Median hours to first contact"][0] == 2.0


def test_tabs_are_deterministic_whatever_the_row_order() -> None:
    shuffled = list(GOLDEN)
    random.Random(3).shuffle(shuffled)
    assert build_dashboard(shuffled, NOW, SETTINGS, PRACTICE) == dashboard()
    assert build_referrers(shuffled, NOW, SETTINGS) == build_referrers(GOLDEN, NOW, SETTINGS)
    # Half an hour later nothing has crossed a threshold: the same tab, so a quiet cycle.
    assert build_dashboard(GOLDEN, NOW + timedelta(minutes=30), SETTINGS, PRACTICE) == dashboard()


def test_referrers_tab() -> None:
    drafted = {
        referrer_key_of("Dr Ann Lee", "Lee Clinic"): {"referrer_acknowledgement": date(2025, 11, 10)}
    }
    tab = build_referrers(GOLDEN, NOW, SETTINGS, drafted)
    assert tab.title == "Referrers"
    header = tab.rows.index(REFERRER_HEADERS)
    assert REFERRER_HEADERS == (
        "Referrer", "Practice", "Type", "Total referrals", "Last 90 days", "Last referral",
        "Good fit", "", "Show rate", "", "Long-term care", "", "High-quality", "Lapsed", "New",
        "Last acknowledgement drafted", "Last check-in drafted",
    )  # fmt: skip
    assert (header, 0) in tab.heading_cells and tab.freeze_rows == header + 1
    assert {(header, c) for c in (3, 4, 5, 6, 8, 10, 15, 16)} <= tab.right_cells
    # The flags sit right under their headers, apart from the "of N" beside them.
    assert {(header, c) for c in (12, 13, 14)} <= tab.right_cells
    flagged = [(r, c) for r in range(header + 1, len(tab.rows)) for c in (12, 13, 14)
               if tab.rows[r][c]]
    assert flagged and all(cell in tab.right_cells for cell in flagged)

    def read(row: tuple[OutValue, ...]) -> tuple[OutValue, ...]:
        return (*row[:6], *(seen(row[c], row[c + 1]) for c in (6, 8, 10)), *row[12:])

    assert tuple(read(row) for row in tab.rows[header + 1 :]) == (
        ("Dr Ann Lee", "Lee Clinic", "Provider", 5, 4, date(2025, 11, 10), "100% of 5",
         "75% of 4", "100% of 3", "Yes", "", "", date(2025, 11, 10), None),
        ("Maria Gomez", "", "Patient", 3, 3, date(2025, 11, 12), "0% of 1", "no data",
         "no data", TOO_FEW, "", "Yes", None, None),
        ("Dr Ben Ortiz", "Ortiz Family Medicine", "Provider", 2, 2, date(2025, 10, 21),
         "100% of 2", "50% of 2", "0% of 1", TOO_FEW, "", "Yes", None, None),
        ("Dr Carl Ng", "Ng Pediatrics", "Provider", 1, 0, date(2025, 5, 1), "100% of 1",
         "100% of 1", "0% of 1", TOO_FEW, "Yes", "", None, None),
    )  # fmt: skip


def test_referrers_tab_with_no_referrers() -> None:
    tab = build_referrers([], NOW, SETTINGS)
    assert tab.rows[-1][0] == "No referral names a referrer yet."


def test_gifts_summary() -> None:
    summary = build_gifts_summary(read_gifts(gifts_tab(), now=NOW), SETTINGS, 2025)
    assert (summary.year, summary.count, summary.total_value) == (2025, 8, 620.5)
    assert len(summary.warnings) == 5


def test_the_dashboard_shows_the_years_gifts_and_every_warning() -> None:
    summary = build_gifts_summary(read_gifts(gifts_tab(), now=NOW), SETTINGS, 2025)
    tab = build_dashboard(GOLDEN, NOW, SETTINGS, "Harbor Physio", summary)
    first = [row[0] for row in tab.rows]
    start = first.index("Gifts 2025 (from the Gifts tab)")
    assert (start, 0) in tab.heading_cells
    assert first[start + 1] == "8 gifts logged, $620.50 in all."
    assert first[start + 2 : start + 7] == list(summary.warnings)
    without = build_dashboard(GOLDEN, NOW, SETTINGS, "Harbor Physio")
    assert not any(str(cell).startswith("Gifts ") for row in without.rows for cell in row)


# --------------------------------------------------------------------------------------------
# The canary: no patient data in any summary tab


def synthetic(n: int, seed: int) -> list[Referral]:
    rnd = random.Random(seed)
    refs = []
    tags = (P, PT, S, "Unknown")
    for i in range(1, n + 1):
        received = NOW - timedelta(days=rnd.uniform(0, 200))
        tag = rnd.choice(tags)
        fc = received + timedelta(hours=rnd.uniform(0, 90)) if rnd.random() < 0.8 else None
        appt = fc + timedelta(days=rnd.uniform(1, 20)) if fc and rnd.random() < 0.7 else None
        refs.append(
            make_referral(
                i,
                received if rnd.random() > 0.03 else None,
                tag,
                channel=rnd.choice(("Google", "Event", None)) if tag in (S, "Unknown") else None,
                by=rnd.choice(("Dr Ann Lee", "Maria Gomez", "Dr Ben Ortiz")) if tag != S else "",
                fit=rnd.choice(("Good fit", "Not a fit", "Unsure", None)),
                fc=fc,
                appt=appt,
                visit=rnd.choice(("Attended", "No-show", "Cancelled", "Scheduled", None))
                if appt
                else None,
                stage=rnd.choice(("OVERDUE", "Contacted", "New")),
                due=received + timedelta(days=1),
            )
        )
    return refs


def cell_texts(tabs: Sequence[TabContent]) -> str:
    return "\n".join(str(cell) for tab in tabs for row in tab.rows for cell in row if cell)


def test_canary_no_patient_data_in_summary_tabs() -> None:
    for refs in (list(GOLDEN), synthetic(300, seed=11)):
        text = cell_texts(
            [
                build_dashboard(refs, NOW, SETTINGS, PRACTICE),
                build_referrers(refs, NOW, SETTINGS),
            ]
        )
        assert "Maria Gomez" in text  # referrer names are allowed
        for r in refs:
            for secret in (r.first_name, r.last_name, r.email, r.phone, r.reason):
                assert secret and secret not in text, secret
    warnings = "\n".join(build_gifts_summary(read_gifts(gifts_tab(), now=NOW), SETTINGS, 2025).warnings)
    assert GOLDEN[0].first_name not in warnings and GOLDEN[0].last_name not in warnings
