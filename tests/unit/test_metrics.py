"""Golden tests for ``sheets_bridge.metrics``: every expected number was worked out by hand below.

The dataset (``golden_referrals``) is a small practice seen on Wednesday 12 Nov 2025, 10:00 in
New York, weeks starting on Monday:

    This week     Mon 10 Nov - Sun 16 Nov   R01 R02 R03           (R04: Received unreadable)
    Last week     Mon  3 Nov - Sun  9 Nov   R05 R06 R07 R08
    Last 4 weeks  Mon 13 Oct - Sun  9 Nov   R05..R12  (R11 sits in the DST week of 2 Nov)
    This quarter  1 Oct - 31 Dec            R01..R03 + R05..R12
    earlier                                 R13 (15 Sep), R14 (4 Aug), R15 (1 May), R16 (1 Jul)

    id   tag       referrer      recv          first contact (h)   appt        visit     outcome   fit
    R01  Provider  Dr Ann Lee    10 Nov 09:00  10 Nov 15:00 (6)    14 Nov fut  Scheduled           Good
    R02  Self/Ggl  -             11 Nov 08:00  -  (26h waited)     -                              -
    R03  Patient   Maria Gomez   12 Nov 08:00  -  (2h waited)      -                              -
    R04  Provider  Dr Ann Lee    unreadable
    R05  Provider  Dr Ann Lee     3 Nov 09:00   3 Nov 13:00 (4)     7 Nov      Attended  Ongoing   Good
    R06  Provider  Dr Ann Lee     4 Nov 10:00   5 Nov 14:00 (28)   10 Nov      No-show             Good
    R07  Self/Soc  -              5 Nov 11:00   7 Nov 12:00 (49)    -                    Not a fit Not
    R08  Patient   Maria Gomez    6 Nov 09:00   6 Nov 10:30 (1.5)  20 Nov fut  Scheduled           Unsure
    R09  Provider  Dr Ben Ortiz  14 Oct 09:00  14 Oct 11:00 (2)    20 Oct      Attended  Completed Good
    R10  Provider  Dr Ben Ortiz  21 Oct 09:00  22 Oct 09:00 (24)   28 Oct      Cancelled           Good
    R11  Self/Ggl  -              1 Nov 23:00 EDT  2 Nov 23:00 EST (25 real hours, 24 on the clock) Good
    R12  Patient   Maria Gomez   27 Oct 09:00  -                   -                              -
    R13  Provider  Dr Ann Lee    15 Sep 09:00  15 Sep 12:00 (3)    22 Sep      Attended  Ongoing   Good
    R14  Provider  Dr Ann Lee     4 Aug 09:00   4 Aug 10:00 (1)    11 Aug      Attended  Ongoing   Good
    R15  Provider  Dr Carl Ng     1 May 09:00   1 May 12:00 (3)     8 May      Attended  Completed Good
    R16  Self/Dir  -              1 Jul 09:00   2 Jul 09:00 (24)   10 Jul      No-show             Unsure
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from typing import TypedDict
from zoneinfo import ZoneInfo

import pytest

from sheets_bridge.gifts import Gift, gift_warnings, is_cash_equivalent, read_gifts
from sheets_bridge.identity import referrer_key_of
from sheets_bridge.metrics import (
    GroupStats,
    Period,
    Ratio,
    bottlenecks,
    by_channel,
    by_source_tag,
    group_stats,
    overview,
    periods,
    stall_alert,
    stats_by,
    weekly_counts,
)
from sheets_bridge.model import DateSerial, Referral, TabValues
from sheets_bridge.referrers import referrer_rows
from sheets_bridge.settings import SummarySettings

NY = ZoneInfo("America/New_York")
NOW = datetime(2025, 11, 12, 10, 0, tzinfo=NY)
SETTINGS = SummarySettings()

FIRST_NAMES = (
    "Quillon", "Yarrowe", "Brisbeth", "Corvina", "Delphyne", "Eglantine", "Fenwickia", "Galadra",
    "Hesperine", "Isoldina", "Jessamyn", "Kestrelle", "Lorimel", "Marigoldia", "Nerissande",
    "Oriabel",
)  # fmt: skip
LAST_NAMES = tuple(f"Vantablack{i}" for i in range(16))


def at(month: int, day: int, hour: int, minute: int = 0, year: int = 2025) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=NY)


def make_referral(
    n: int,
    received: datetime | None,
    tag: str = "Provider Referral",
    *,
    channel: str | None = None,
    by: str = "",
    practice: str = "",
    fit: str | None = None,
    fc: datetime | None = None,
    appt: datetime | None = None,
    visit: str | None = None,
    outcome: str | None = None,
    stage: str = "Contacted",
    due: datetime | None = None,
) -> Referral:
    if channel is None:
        channel = {"Provider Referral": "Provider", "Patient Referral": "Patient"}.get(tag)
    return Referral(
        referral_id=f"R-{n:05d}",
        row=n + 1,
        received=received,
        received_has_time=True,
        first_name=FIRST_NAMES[(n - 1) % 16],
        last_name=LAST_NAMES[(n - 1) % 16],
        phone=f"+1 555 01{n:02d} 777",
        email=f"{FIRST_NAMES[(n - 1) % 16].lower()}@patients.example",
        how_heard=channel or "",
        channel=channel,
        source_tag=tag,
        referred_by=by,
        referrer_email=None,
        referrer_practice=practice,
        reason=f"recurring vertigo case {n}",
        fit=fit,
        first_contact=fc,
        appointment=appt,
        visit=visit,
        outcome=outcome,
        consent=False,
        stage=stage,
        follow_up_due=due,
    )


class Who(TypedDict, total=False):
    by: str
    practice: str


LEE: Who = {"by": "Dr Ann Lee", "practice": "Lee Clinic"}
ORTIZ: Who = {"by": "Dr Ben Ortiz", "practice": "Ortiz Family Medicine"}
GOMEZ: Who = {"by": "Maria Gomez"}
NG: Who = {"by": "Dr Carl Ng", "practice": "Ng Pediatrics"}
P, PT, S = "Provider Referral", "Patient Referral", "Self-Referral"


def golden_referrals() -> tuple[Referral, ...]:
    r = make_referral
    return (
        r(1, at(11, 10, 9), P, **LEE, fit="Good fit", fc=at(11, 10, 15), appt=at(11, 14, 15),
          visit="Scheduled", stage="Scheduled"),
        r(2, at(11, 11, 8), S, channel="Google", stage="OVERDUE", due=at(11, 12, 8)),
        r(3, at(11, 12, 8), PT, **GOMEZ, stage="New", due=at(11, 13, 8)),
        r(4, None, P, **LEE, stage=""),
        r(5, at(11, 3, 9), P, **LEE, fit="Good fit", fc=at(11, 3, 13), appt=at(11, 7, 13),
          visit="Attended", outcome="Ongoing care", stage="Long-term"),
        r(6, at(11, 4, 10), P, **LEE, fit="Good fit", fc=at(11, 5, 14), appt=at(11, 10, 14),
          visit="No-show", stage="No-show"),
        r(7, at(11, 5, 11), S, channel="Social media", fit="Not a fit", fc=at(11, 7, 12),
          outcome="Not a fit", stage="Closed"),
        r(8, at(11, 6, 9), PT, **GOMEZ, fit="Unsure", fc=at(11, 6, 10, 30), appt=at(11, 20, 10, 30),
          visit="Scheduled", stage="Scheduled"),
        r(9, at(10, 14, 9), P, **ORTIZ, fit="Good fit", fc=at(10, 14, 11), appt=at(10, 20, 11),
          visit="Attended", outcome="Completed", stage="Closed"),
        r(10, at(10, 21, 9), P, **ORTIZ, fit="Good fit", fc=at(10, 22, 9), appt=at(10, 28, 9),
          visit="Cancelled", stage="Contacted"),
        r(11, at(11, 1, 23), S, channel="Google", fit="Good fit", fc=at(11, 2, 23)),
        r(12, at(10, 27, 9), PT, **GOMEZ, stage="OVERDUE", due=at(10, 28, 9)),
        r(13, at(9, 15, 9), P, **LEE, fit="Good fit", fc=at(9, 15, 12), appt=at(9, 22, 12),
          visit="Attended", outcome="Ongoing care", stage="Long-term"),
        r(14, at(8, 4, 9), P, **LEE, fit="Good fit", fc=at(8, 4, 10), appt=at(8, 11, 10),
          visit="Attended", outcome="Ongoing care", stage="Long-term"),
        r(15, at(5, 1, 9), P, **NG, fit="Good fit", fc=at(5, 1, 12), appt=at(5, 8, 12),
          visit="Attended", outcome="Completed", stage="Closed"),
        r(16, at(7, 1, 9), S, channel="Directory", fit="Unsure", fc=at(7, 2, 9), appt=at(7, 10, 9),
          visit="No-show", stage="No-show"),
    )  # fmt: skip


GOLDEN = golden_referrals()


def period(name: str) -> Period:
    return next(p for p in periods(NOW, "mon") if p.name == name)


# --------------------------------------------------------------------------------------------
# Periods


def test_periods_around_a_wednesday() -> None:
    spans = {p.name: p for p in periods(NOW, "mon")}
    assert list(spans) == ["This week", "Last week", "Last 4 weeks", "This quarter"]
    assert (spans["This week"].start, spans["This week"].end) == (at(11, 10, 0), at(11, 17, 0))
    assert (spans["Last week"].start, spans["Last week"].end) == (at(11, 3, 0), at(11, 10, 0))
    assert (spans["Last 4 weeks"].start, spans["Last 4 weeks"].end) == (
        at(10, 13, 0),
        at(11, 10, 0),
    )
    assert spans["This quarter"].start == at(10, 1, 0)
    assert spans["This quarter"].end == datetime(2026, 1, 1, tzinfo=NY)


def test_a_week_with_the_dst_change_runs_midnight_to_midnight() -> None:
    # Sunday 2 Nov 2025: clocks go back at 02:00 in New York; the week has 169 hours.
    spans = periods(at(11, 2, 12), "mon")
    week = spans[0]
    assert week.start == at(10, 27, 0) and week.end == at(11, 3, 0)
    assert week.start.utcoffset() == timedelta(hours=-4)
    assert week.end.utcoffset() == timedelta(hours=-5)
    assert week.end.timestamp() - week.start.timestamp() == 169 * 3600
    # A referral late on the Sunday (EST) still falls in that week and in its chart bucket.
    late = make_referral(1, at(11, 2, 23, 30), S, channel="Google")
    assert late.received is not None and week.contains(late.received)
    counts = weekly_counts([late], at(11, 4, 9), "mon", weeks=1)
    assert counts[0].start == date(2025, 10, 27) and counts[0].counts[S] == 1


def test_weeks_may_start_on_sunday_and_quarters_roll_over() -> None:
    spans = periods(at(12, 31, 23), "sun")
    assert spans[0].start == at(12, 28, 0)  # Sunday 28 Dec
    assert spans[0].end == datetime(2026, 1, 4, tzinfo=NY)
    assert spans[3].start == at(10, 1, 0) and spans[3].end == datetime(2026, 1, 1, tzinfo=NY)
    assert periods(at(1, 1, 0, year=2026), "mon")[3].start == datetime(2026, 1, 1, tzinfo=NY)


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="aware"):
        periods(datetime(2025, 11, 12, 10), "mon")


# --------------------------------------------------------------------------------------------
# Group statistics: golden, per period and per source


def stats_for(name: str) -> GroupStats:
    return overview(GOLDEN, NOW, SETTINGS).totals[name]


def test_this_week() -> None:
    s = stats_for("This week")
    assert s.volume == 3  # R01 R02 R03; R04 has no readable Received
    assert (s.funnel.received, s.funnel.contacted, s.funnel.scheduled) == (3, 1, 1)
    assert (s.funnel.seen, s.funnel.long_term) == (0, 0)
    assert s.good_fit == Ratio(1, 1)  # only R01 has Fit set
    assert s.contact_median_hours == 6.0
    assert s.within_24h == Ratio(1, 2) and s.pending_24h == 1  # R02 waited 26h: a miss
    assert s.within_48h == Ratio(1, 1) and s.pending_48h == 2  # R02 and R03 still inside 48h
    assert s.show == Ratio(0, 0) and s.show_rate is None  # R01's appointment is in the future
    assert s.long_term == Ratio(0, 0) and s.long_term_share is None


def test_last_week() -> None:
    s = stats_for("Last week")
    assert s.volume == 4
    assert s.funnel == type(s.funnel)(received=4, contacted=4, scheduled=3, seen=1, long_term=1)
    assert s.good_fit == Ratio(2, 4) and s.good_fit_share == 0.5
    assert s.contact_median_hours == 16.0  # 1.5, 4, 28, 49 -> (4 + 28) / 2
    assert s.within_24h == Ratio(2, 4)  # R05 (4h), R08 (1.5h)
    assert s.within_48h == Ratio(3, 4)  # + R06 (28h); R07 took 49h
    assert s.show == Ratio(1, 2)  # R05 Attended, R06 No-show; R08 is in the future
    assert s.long_term == Ratio(1, 1)


def test_last_four_weeks() -> None:
    s = stats_for("Last 4 weeks")
    assert s.volume == 8  # R05..R12
    assert s.funnel == type(s.funnel)(received=8, contacted=7, scheduled=5, seen=2, long_term=1)
    assert s.good_fit == Ratio(5, 7)
    assert s.contact_median_hours == 24.0  # 1.5, 2, 4, 24, 25, 28, 49
    # R10 took exactly 24h: a hit. R11 took 25 real hours across the DST night (24 on the clock):
    # a miss. R12 was never contacted: a miss for both windows.
    assert s.within_24h == Ratio(4, 8)
    assert s.within_48h == Ratio(6, 8)
    assert s.show == Ratio(2, 4)  # R05 A, R06 N, R09 A, R10 Cancelled
    assert s.long_term == Ratio(1, 2)  # seen R05 (Ongoing care), R09 (Completed)


def test_this_quarter() -> None:
    s = stats_for("This quarter")
    assert s.volume == 11
    assert s.funnel == type(s.funnel)(received=11, contacted=8, scheduled=6, seen=2, long_term=1)
    assert s.good_fit == Ratio(6, 8)
    assert s.contact_median_hours == 15.0  # 1.5, 2, 4, 6, 24, 25, 28, 49 -> (6 + 24) / 2
    assert s.within_24h == Ratio(5, 10) and s.pending_24h == 1
    assert s.within_48h == Ratio(7, 9) and s.pending_48h == 2
    assert s.show == Ratio(2, 4)
    assert s.long_term == Ratio(1, 2)


def test_by_source_tag_per_period() -> None:
    ov = overview(GOLDEN, NOW, SETTINGS)
    volumes = {
        name: {tag: stats.volume for tag, stats in ov.by_tag[name].items()}
        for name in ("This week", "Last week", "Last 4 weeks", "This quarter")
    }
    assert volumes == {
        "This week": {P: 1, PT: 1, S: 1, "Unknown": 0},
        "Last week": {P: 2, PT: 1, S: 1, "Unknown": 0},
        "Last 4 weeks": {P: 4, PT: 2, S: 2, "Unknown": 0},
        "This quarter": {P: 5, PT: 3, S: 3, "Unknown": 0},
    }
    last4 = ov.by_tag["Last 4 weeks"]
    assert last4[P].show == Ratio(2, 4) and last4[P].long_term == Ratio(1, 2)
    assert last4[P].contact_median_hours == 14.0  # 2, 4, 24, 28
    assert last4[PT].within_24h == Ratio(1, 2)  # R08 hit, R12 miss
    assert last4[S].good_fit == Ratio(1, 2) and last4[S].within_48h == Ratio(1, 2)


def test_side_by_side_over_the_last_twelve_full_weeks() -> None:
    ov = overview(GOLDEN, NOW, SETTINGS)
    assert ov.window.start == at(8, 18, 0) and ov.window.end == at(11, 10, 0)
    provider = ov.window_by_tag[P]  # R05 R06 R09 R10 R13
    assert provider.volume == 5
    assert provider.show == Ratio(3, 5)
    assert provider.long_term == Ratio(2, 3)
    assert provider.contact_median_hours == 4.0  # 2, 3, 4, 24, 28
    patient = ov.window_by_tag[PT]  # R08 R12
    assert (patient.volume, patient.good_fit, patient.show) == (2, Ratio(0, 1), Ratio(0, 0))
    self_ = ov.window_by_tag[S]  # R07 R11
    assert self_.contact_median_hours == 37.0 and self_.within_24h == Ratio(0, 2)


def test_stats_by_channel_and_source() -> None:
    by = stats_by(GOLDEN, period("Last 4 weeks"), by_channel, NOW)
    assert {k: v.volume for k, v in by.items()} == {
        "Google": 1,
        "Patient": 2,
        "Provider": 4,
        "Social media": 1,
    }
    assert list(by) == sorted(by)
    tags = stats_by(GOLDEN, period("This week"), by_source_tag, NOW)
    assert set(tags) == {P, PT, S}


def test_weekly_counts_for_the_chart() -> None:
    weeks = weekly_counts(GOLDEN, NOW, "mon")
    assert len(weeks) == 12
    assert weeks[0].start == date(2025, 8, 18) and weeks[-1].start == date(2025, 11, 3)
    nonzero = {w.start: dict(w.counts) for w in weeks if w.total}
    assert nonzero == {
        date(2025, 9, 15): {P: 1, PT: 0, S: 0, "Unknown": 0},
        date(2025, 10, 13): {P: 1, PT: 0, S: 0, "Unknown": 0},
        date(2025, 10, 20): {P: 1, PT: 0, S: 0, "Unknown": 0},
        date(2025, 10, 27): {P: 0, PT: 1, S: 1, "Unknown": 0},  # R12, and R11 (1 Nov)
        date(2025, 11, 3): {P: 2, PT: 1, S: 1, "Unknown": 0},
    }


def test_unreadable_received_is_left_out_and_counted() -> None:
    s = group_stats(GOLDEN, NOW)
    assert s.volume == 15 and s.unreadable_received == 1
    assert overview(GOLDEN, NOW, SETTINGS).unreadable_received == 1


def test_no_data() -> None:
    s = group_stats([], NOW)
    assert s.volume == 0 and s.contact_median_hours is None
    for share in (s.good_fit_share, s.within_24h_share, s.within_48h_share, s.show_rate,
                  s.long_term_share):  # fmt: skip
        assert share is None
    ov = overview([], NOW, SETTINGS)
    assert ov.stall is None and ov.bottlenecks == () and all(w.total == 0 for w in ov.weeks)
    assert referrer_rows([], NOW, SETTINGS) == []


def test_one_referral() -> None:
    one = [make_referral(1, at(11, 12, 9), P, **LEE, fc=at(11, 12, 9, 30))]
    s = group_stats(one, NOW)
    assert s.volume == 1 and s.contact_median_hours == 0.5 and s.within_24h == Ratio(1, 1)
    (row,) = referrer_rows(one, NOW, SETTINGS)
    assert row.total == 1 and row.high_quality is None and row.new and not row.lapsed


def test_future_appointments_and_unrecorded_visits_stay_out_of_show_rate() -> None:
    refs = [
        make_referral(1, at(11, 1, 9), appt=at(11, 13, 9), visit="Attended"),  # future: out
        make_referral(2, at(11, 1, 9), appt=at(11, 11, 9), visit=None),  # no Visit: out
        make_referral(3, at(11, 1, 9), appt=at(11, 11, 9), visit="Scheduled"),  # out
        make_referral(4, at(11, 1, 9), appt=at(11, 11, 9), visit="No-show"),
        make_referral(5, at(11, 1, 9), appt=at(11, 11, 9), visit="Attended"),
        make_referral(6, at(11, 1, 9), visit="Attended"),  # no Appointment date: out
    ]
    assert group_stats(refs, NOW).show == Ratio(1, 2)


def test_contact_before_received_is_not_timed() -> None:
    odd = [make_referral(1, at(11, 5, 9), fc=at(11, 4, 9))]
    s = group_stats(odd, NOW)
    assert s.contacts_timed == 0 and s.within_24h == Ratio(0, 0) and s.funnel.contacted == 1


# --------------------------------------------------------------------------------------------
# Referrers


def test_referrer_rows_golden() -> None:
    drafted = {
        referrer_key_of("dr  ann LEE", "Lee clinic"): {
            "referrer_acknowledgement": date(2025, 11, 10),
            "referrer acknowledgement": date(2025, 11, 3),
            "referrer_checkin": date(2025, 6, 1),
        }
    }
    rows = referrer_rows(GOLDEN, NOW, SETTINGS, drafted)
    assert [r.name for r in rows] == ["Dr Ann Lee", "Maria Gomez", "Dr Ben Ortiz", "Dr Carl Ng"]
    lee, gomez, ortiz, ng = rows
    # Practice over the last year: Fit set on 12 rows, 9 Good fit (75%); 8 passed appointments
    # with a Visit, 5 Attended (62.5%). Lee: 5/5 Good fit and 3/4 shows, 5 referrals this year.
    assert (lee.type, lee.total, lee.last_90_days, lee.last_referral) == (
        "Provider",
        5,
        4,
        date(2025, 11, 10),
    )
    assert lee.good_fit == Ratio(5, 5) and lee.show == Ratio(3, 4) and lee.long_term == Ratio(3, 3)
    assert lee.high_quality is True and not lee.lapsed and not lee.new
    assert lee.last_acknowledgement == date(2025, 11, 10) and lee.last_checkin == date(2025, 6, 1)
    assert (gomez.type, gomez.total, gomez.high_quality, gomez.new) == ("Patient", 3, None, True)
    assert gomez.good_fit == Ratio(0, 1) and gomez.show_rate is None
    assert (
        ortiz.high_quality is None and ortiz.show == Ratio(1, 2) and ortiz.long_term == Ratio(0, 1)
    )
    assert ortiz.new  # first referral 14 Oct, within 30 days
    assert ng.lapsed and ng.last_90_days == 0 and not ng.new and ng.last_acknowledgement is None


def test_high_quality_needs_the_recent_sample_and_beats_the_practice() -> None:
    lee_only = [r for r in GOLDEN if r.referred_by == "Dr Ann Lee"]
    # Only Lee's own referrals: the practice's rates are Lee's, so Lee is not *above* them.
    (row,) = referrer_rows(lee_only, NOW, SETTINGS)
    assert row.high_quality is False
    strict = SummarySettings(high_quality_min_referrals=6)
    assert referrer_rows(GOLDEN, NOW, strict)[0].high_quality is False


def test_referrer_spellings_merge_and_names_are_order_independent() -> None:
    refs = [
        make_referral(1, at(11, 3, 9), P, by="Dr Ann Lee", practice="Lee Clinic"),
        make_referral(2, at(11, 4, 9), P, by="dr  ann lee", practice="Lee Clinic "),
        make_referral(3, at(11, 5, 9), P, by="Dr Ann Lee", practice="Lee Clinic"),
    ]
    rows = referrer_rows(refs, NOW, SETTINGS)
    assert len(rows) == 1 and rows[0].name == "Dr Ann Lee" and rows[0].total == 3
    assert referrer_rows(list(reversed(refs)), NOW, SETTINGS) == rows


def test_self_referrals_have_no_referrer() -> None:
    refs = [make_referral(1, at(11, 3, 9), S, channel="Google", by="Google search")]
    assert referrer_rows(refs, NOW, SETTINGS) == []


# --------------------------------------------------------------------------------------------
# Stall alert and bottlenecks


def steady_weeks(last_week: int, before: int = 10) -> list[Referral]:
    refs = []
    n = 0
    for week_back, count in ((1, last_week), (2, before), (3, before), (4, before), (5, before)):
        monday = at(11, 10, 9) - timedelta(days=7 * week_back)
        for i in range(count):
            n += 1
            refs.append(make_referral(n, monday + timedelta(hours=i), S, channel="Google"))
    return refs


def test_stall_alert_with_the_numbers() -> None:
    assert stall_alert(steady_weeks(3), NOW, SETTINGS) == (
        "Stall: 3 referrals in the week of 3 Nov 2025, against an average of 10 a week over the "
        "4 weeks before."
    )
    assert stall_alert(steady_weeks(5), NOW, SETTINGS) is None  # 5 is not below 50% of 10
    assert stall_alert(steady_weeks(0, before=2), NOW, SETTINGS) is None  # average 2 < 3
    assert stall_alert(GOLDEN, NOW, SETTINGS) is None  # 4 against an average of 1


def test_golden_bottlenecks() -> None:
    # Overdue: R12 (due 28 Oct) and R02 (due 12 Nov). Booking: days from contact to appointment
    # 4 4 5 6 6 7 7 7 8 14, median 6.5, so R11 (waiting 9.5 days) is not yet stuck at 13.
    assert bottlenecks(GOLDEN, NOW, SETTINGS) == [
        "2 referrals past Follow-up Due with no First Contact: R-00012, R-00002."
    ]


def test_stuck_rows_passed_appointments_and_slow_booking() -> None:
    refs = []
    # Five old bookings, 2 days from contact to appointment.
    for n in range(1, 6):
        fc = at(8, n, 9)
        refs.append(make_referral(n, fc, fc=fc, appt=fc + timedelta(days=2), visit="Attended"))
    # Five recent bookings, 10 days on the calendar (10 days 1 hour of real time: they span the
    # DST change of 2 Nov, and elapsed time is measured in real seconds).
    for n in range(6, 11):
        fc = at(10, 20 + n, 9)
        refs.append(make_referral(n, fc, fc=fc, appt=fc + timedelta(days=10), visit="Attended"))
    # Waiting in Contacted 13 days: stuck (usual is the median of 2,2,2,2,2,10,10,10,10,10: 6).
    refs.append(make_referral(11, at(10, 30, 9), fc=at(10, 30, 9)))
    # Waiting 3 days: fine. And an appointment two days past with no Visit.
    refs.append(make_referral(12, at(11, 9, 9), fc=at(11, 9, 9)))
    refs.append(make_referral(13, at(11, 1, 9), appt=at(11, 10, 9)))
    lines = bottlenecks(refs, NOW, SETTINGS)
    assert lines == [
        (
            "1 appointment passed more than a day ago with no Visit recorded (show rates need it): "
            "R-00013."
        ),
        (
            "1 referral in Contacted for more than 12 days with no appointment (usually 6 days from "
            "first contact to appointment): R-00011."
        ),
        (
            "Booking is slow: first appointments are 10 days after first contact for contacts in the "
            "last 4 weeks, against 2 days before that."
        ),
    ]


def test_bottlenecks_never_name_patients() -> None:
    text = " ".join(bottlenecks(GOLDEN, NOW, SETTINGS))
    for r in GOLDEN:
        assert r.first_name not in text and r.last_name not in text


def test_results_do_not_depend_on_row_order() -> None:
    shuffled = list(GOLDEN)
    random.Random(7).shuffle(shuffled)
    assert overview(shuffled, NOW, SETTINGS) == overview(list(GOLDEN), NOW, SETTINGS)
    assert referrer_rows(shuffled, NOW, SETTINGS) == referrer_rows(GOLDEN, NOW, SETTINGS)


# --------------------------------------------------------------------------------------------
# Gifts


def gifts_tab() -> TabValues:
    return TabValues(
        "Gifts",
        (
            ("date", "RECIPIENT", "Recipient type", "Item", "Retail value ($)"),
            (DateSerial(45672), "Dr Ann Lee", "Provider", "Fruit basket", "$45.00"),  # 2025-01-15
            ("3/2/2025", "Quillon Vantablack0", "Patient", "Coffee mug", 12),
            ("March 9, 2025", "Quillon Vantablack0", "patient", "Tote bag", "$14.50"),
            ("2025-04-01", "Quillon Vantablack0", "Patient", "Book", "$20"),
            ("2025-05-01", "Quillon Vantablack0", "Patient", "Scarf", "$14"),
            ("2025-06-01", "Quillon Vantablack0", "Patient", "Candle", "$15.00"),
            ("2025-06-02", "Dr Ann Lee", "Physician", "Visa gift card", "$50"),
            ("2025-07-01", "Dr Ann Lee", "Provider", "Dinner for the office", "$450.00"),
            (None, None, None, None, None),
            ("someday", "Dr Ben Ortiz", "Provider", "Pens", "about 5"),
            ("2024-12-20", "Dr Ben Ortiz", "Colleague", "Chocolates", 30.0),
        ),
    )


def test_read_gifts() -> None:
    gifts = read_gifts(gifts_tab(), now=NOW)
    assert len(gifts) == 10
    first = gifts[0]
    assert first == Gift(2, date(2025, 1, 15), "Dr Ann Lee", "Provider", "Fruit basket", 45.0)
    assert gifts[1].date == date(2025, 3, 2) and gifts[1].value == 12.0
    assert gifts[2].date == date(2025, 3, 9) and gifts[2].recipient_type == "Patient"
    assert gifts[6].recipient_type == "Provider" and gifts[6].value == 50.0
    odd = gifts[8]
    assert odd.row == 11 and odd.date is None and odd.value is None
    assert odd.problems == ("the Date cannot be read", "the Retail Value is not an amount")
    assert gifts[9].problems == ("the Recipient Type is neither Patient nor Provider",)
    assert read_gifts(None, now=NOW) == []
    assert read_gifts(TabValues("Gifts", (("Something", "else"),)), now=NOW) == []


def test_gift_warnings() -> None:
    lines = gift_warnings(read_gifts(gifts_tab(), now=NOW), SETTINGS, 2025)
    assert lines == [
        "Gifts row 5: $20.00 for a patient is over the $15.00 limit for one item.",
        (
            "Gifts row 8: Visa gift card for Dr Ann Lee is cash or a cash equivalent, which is not "
            "allowed as a thank-you whatever the amount."
        ),
        (
            "Gifts row 11: the Date cannot be read, the Retail Value is not an amount, so it is not "
            "counted in any year."
        ),
        (
            "Gifts to the patient on Gifts rows 3, 4, 5, 6, 7 total $75.50 in 2025, over the $75.00 "
            "a year limit for patients."
        ),
        (
            "Gifts to Dr Ann Lee (Gifts rows 2, 8, 9) total $545.00 in 2025, over the $507.00 a year "
            "limit for physicians."
        ),
    ]
    assert all("Quillon" not in line and "Vantablack" not in line for line in lines)
    earlier = gift_warnings(read_gifts(gifts_tab(), now=NOW), SETTINGS, 2024)
    assert "Gifts row 12: the Recipient Type is neither Patient nor Provider." in earlier


@pytest.mark.parametrize(
    ("item", "cash"),
    [
        ("Cash", True),
        ("$25 Amazon gift card", True),
        ("Restaurant gift certificate", True),
        ("Venmo transfer", True),
        ("Prepaid Visa", True),
        ("Fruit basket", False),
        ("Thank-you card", False),
        ("Coffee mug", False),
    ],
)
def test_cash_equivalents(item: str, cash: bool) -> None:
    assert is_cash_equivalent(item) is cash


def test_drafted_dates_found_under_the_drafting_ledger_key() -> None:
    from sheets_bridge.identity import referrer_key as drafting_key

    drafted = {drafting_key(GOLDEN[0]): {"referrer_checkin": date(2025, 9, 1)}}
    lee = referrer_rows(GOLDEN, NOW, SETTINGS, drafted)[0]
    assert lee.name == "Dr Ann Lee" and lee.last_checkin == date(2025, 9, 1)
    assert lee.last_acknowledgement is None
