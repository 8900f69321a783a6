"""The numbers a manager and an owner read: pure functions over the parsed Referral rows.

Everything here is a function of its arguments: no clock (``now`` is passed in, an aware datetime
in the practice's time zone), no I/O. The Dashboard and Referrers tabs (``summaries.py``) and the
weekly digest read the same results, so a number in the email is the number in the sheet.

Definitions live in ``docs/metrics.md`` and say exactly what this module computes; keep the two in
step. The main choices, and why:

* Elapsed times (hours to first contact, the 24/48-hour windows) are measured in real seconds
  (UTC timestamps), never as wall-clock differences, so a night with a DST change is not an hour
  short or long. Period and week boundaries are *local* midnights, found by date arithmetic in the
  practice's zone, so a week with a DST change is still Monday 00:00 to Monday 00:00.
* A row whose Received cannot be read has no place in time: it is left out of every period and
  rate, and counted (``unreadable_received``) so a tab can say how many were left out.
* Shares keep their denominator (``Ratio``): 100% of 1 and 100% of 40 read differently.
* One pass builds a small fact record per referral; periods are slices of the facts sorted by
  Received (binary search), so a 10,000-row sheet costs a few tens of milliseconds.

Why one module of this size: every figure comes from one pass that builds a small fact record
per row (:class:`Fact`) and slices it by period; the stats, weekly counts, alerts and the
:func:`overview` all read those records, and splitting them apart would spread that record's
internals over several modules. The Referrers tab's numbers and the Gifts tab live apart.
"""

from __future__ import annotations

import statistics
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from operator import attrgetter

from sheets_bridge.model import SOURCE_TAGS, Referral
from sheets_bridge.phase_memo import next_elapsed, next_midnight
from sheets_bridge.settings import SummarySettings

WEEKDAY_NAMES: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

PERIOD_NAMES: tuple[str, ...] = ("This week", "Last week", "Last 4 weeks", "This quarter")
#: How many full weeks the chart table and the side-by-side comparison cover.
CHART_WEEKS = 12
#: Referral tags that have a referrer (the others are cold leads or unknown).
REFERRED_TAGS: tuple[str, ...] = ("Provider Referral", "Patient Referral")

_HOUR = 3600.0
DAY = 86400.0


# --------------------------------------------------------------------------------------------
# Periods


@dataclass(frozen=True, slots=True)
class Period:
    """A named stretch of time, ``[start, end)``, bounded by local midnights."""

    name: str
    start: datetime
    end: datetime

    def contains(self, moment: datetime) -> bool:
        return self.start.timestamp() <= moment.timestamp() < self.end.timestamp()


def _zone(now: datetime) -> tzinfo:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime in the practice's time zone")
    return now.tzinfo


def _midnight(day: date, tz: tzinfo) -> datetime:
    """Local midnight of ``day``: built from the date, so DST never shifts it by an hour."""
    return datetime(day.year, day.month, day.day, tzinfo=tz)


def week_start(day: date, week_starts: str) -> date:
    """The first day of the week holding ``day``, weeks starting on ``week_starts``."""
    first = WEEKDAY_NAMES.index(week_starts)
    return day - timedelta(days=(day.weekday() - first) % 7)


def periods(now: datetime, week_starts: str) -> list[Period]:
    """This week, Last week, Last 4 weeks and This quarter around ``now``, in now's time zone.

    "Last 4 weeks" is the four *full* weeks before this one, so it never mixes a half-finished
    week into an average and "Last week" is its most recent quarter.
    """
    tz = _zone(now)
    today = now.date()
    this_week = week_start(today, week_starts)
    q_month = 3 * ((today.month - 1) // 3) + 1
    q_start = date(today.year, q_month, 1)
    q_end = date(today.year + 1, 1, 1) if q_month == 10 else date(today.year, q_month + 3, 1)
    week = timedelta(days=7)
    return [
        Period("This week", _midnight(this_week, tz), _midnight(this_week + week, tz)),
        Period("Last week", _midnight(this_week - week, tz), _midnight(this_week, tz)),
        Period("Last 4 weeks", _midnight(this_week - 4 * week, tz), _midnight(this_week, tz)),
        Period("This quarter", _midnight(q_start, tz), _midnight(q_end, tz)),
    ]


def chart_window(now: datetime, week_starts: str) -> Period:
    """The last ``CHART_WEEKS`` full weeks before this week: the chart and side-by-side span."""
    tz = _zone(now)
    this_week = week_start(now.date(), week_starts)
    first = this_week - timedelta(days=7 * CHART_WEEKS)
    return Period(f"Last {CHART_WEEKS} weeks", _midnight(first, tz), _midnight(this_week, tz))


# --------------------------------------------------------------------------------------------
# Per-referral facts (one pass) and group statistics


_HIT, _MISS, _PENDING, _UNKNOWN = 1, 0, -1, -2


class Fact:
    """What the metrics need to know about one referral with a readable Received, as of now."""

    __slots__ = (
        "appt_ts",
        "contact_hours",
        "contacted",
        "day",
        "fc_ts",
        "fit_known",
        "good_fit",
        "long_term",
        "ref",
        "scheduled",
        "seen",
        "show",
        "ts",
        "w24",
        "w48",
    )

    def __init__(self, ref: Referral, received: datetime, tz: tzinfo, now_ts: float) -> None:
        self.ref = ref
        self.ts = ts = received.timestamp()
        self.day = (received if received.tzinfo is tz else received.astimezone(tz)).date()
        fit = ref.fit
        self.fit_known = bool(fit)
        self.good_fit = fit == "Good fit"
        visit, outcome = ref.visit, ref.outcome
        self.long_term = outcome == "Ongoing care"
        self.seen = visit == "Attended" or outcome in ("Ongoing care", "Completed")
        self.scheduled = (
            self.seen
            or ref.appointment is not None
            or visit in ("Scheduled", "No-show", "Cancelled")
        )
        fc = ref.first_contact
        self.contacted = self.scheduled or fc is not None
        self.fc_ts = fc_ts = fc.timestamp() if fc is not None else None
        appointment = ref.appointment
        self.appt_ts = appt_ts = appointment.timestamp() if appointment is not None else None
        hours: float | None = None
        if fc_ts is not None:
            delta = (fc_ts - ts) / _HOUR
            hours = delta if delta >= 0 else None
        self.contact_hours = hours
        if hours is not None:
            self.w24 = _HIT if hours <= 24 else _MISS
            self.w48 = _HIT if hours <= 48 else _MISS
        elif self.contacted:  # contacted, but when is not readable: neither a hit nor a miss
            self.w24 = self.w48 = _UNKNOWN
        else:
            waited = now_ts - ts
            self.w24 = _MISS if waited > 24 * _HOUR else _PENDING
            self.w48 = _MISS if waited > 48 * _HOUR else _PENDING
        self.show = (
            (1 if visit == "Attended" else 0)
            if appt_ts is not None
            and appt_ts < now_ts
            and visit in ("Attended", "No-show", "Cancelled")
            else -1
        )


@dataclass(frozen=True)
class FactSet:
    """The facts of one list of referrals as of one moment, sorted by Received."""

    facts: list[Fact]
    stamps: list[float]
    unreadable: tuple[Referral, ...]


_last_facts: tuple[tuple[Referral, ...], datetime, FactSet] | None = None


def facts_of(referrals: Iterable[Referral], now: datetime) -> FactSet:
    """Facts for every referral with a readable Received, sorted by Received, plus the rows left
    out because Received could not be read.

    The Dashboard, the Referrers tab and the digest all start here; when they are given the same
    *tuple* (immutable, of frozen Referrals) and the same ``now``, the pass is done once and
    shared. Lists are never cached: they could change between calls.
    """
    global _last_facts
    cached = _last_facts
    if cached is not None and cached[0] is referrals and cached[1] == now:
        return cached[2]
    tz = _zone(now)
    now_ts = now.timestamp()
    facts: list[Fact] = []
    unreadable: list[Referral] = []
    for ref in referrals:
        received = ref.received
        if received is None:
            unreadable.append(ref)
            continue
        facts.append(Fact(ref, received, tz, now_ts))
    facts.sort(key=attrgetter("ts"))  # stable; nothing shown depends on the order of ties
    result = FactSet(facts, [f.ts for f in facts], tuple(unreadable))
    if isinstance(referrals, tuple):
        _last_facts = (referrals, now, result)
    return result


@dataclass(frozen=True, slots=True)
class Ratio:
    """``count`` out of ``of``; ``share`` is None when there is nothing to divide by."""

    count: int
    of: int

    @property
    def share(self) -> float | None:
        return self.count / self.of if self.of else None


@dataclass(frozen=True, slots=True)
class Funnel:
    """How far the referrals got; each stage includes the later ones, so it never grows."""

    received: int = 0
    contacted: int = 0
    scheduled: int = 0
    seen: int = 0
    long_term: int = 0


class QualityShares:
    """Good-fit share, show rate and long-term share, read off ``Ratio`` fields of that name.

    GroupStats and ReferrerRow both keep these three ratios; the shares are read the same way.
    """

    good_fit: Ratio
    show: Ratio
    long_term: Ratio

    @property
    def good_fit_share(self) -> float | None:
        return self.good_fit.share

    @property
    def show_rate(self) -> float | None:
        return self.show.share

    @property
    def long_term_share(self) -> float | None:
        return self.long_term.share


@dataclass(frozen=True)
class GroupStats(QualityShares):
    """The metrics of one group of referrals (a period, a source tag, a referrer...).

    ``volume`` counts referrals with a readable Received; ``unreadable_received`` the rows left
    out because Received could not be read. Shares are properties over ``Ratio`` fields that
    keep their denominators, so a reader can judge the sample.
    """

    volume: int
    funnel: Funnel
    good_fit: Ratio
    contact_median_hours: float | None
    contacts_timed: int
    within_24h: Ratio
    within_48h: Ratio
    pending_24h: int
    pending_48h: int
    show: Ratio
    long_term: Ratio
    unreadable_received: int = 0

    @property
    def within_24h_share(self) -> float | None:
        return self.within_24h.share

    @property
    def within_48h_share(self) -> float | None:
        return self.within_48h.share


def stats_of(facts: Iterable[Fact], unreadable: int = 0) -> GroupStats:
    """One pass over the facts of a group."""
    volume = contacted = scheduled = seen = long_term = 0
    fit_known = good_fit = 0
    hit24 = miss24 = pend24 = hit48 = miss48 = pend48 = 0
    shows = attended = 0
    hours: list[float] = []
    for f in facts:
        volume += 1
        contacted += f.contacted
        scheduled += f.scheduled
        seen += f.seen
        long_term += f.long_term
        fit_known += f.fit_known
        good_fit += f.good_fit
        if f.contact_hours is not None:
            hours.append(f.contact_hours)
        w = f.w24
        if w == _HIT:
            hit24 += 1
        elif w == _MISS:
            miss24 += 1
        elif w == _PENDING:
            pend24 += 1
        w = f.w48
        if w == _HIT:
            hit48 += 1
        elif w == _MISS:
            miss48 += 1
        elif w == _PENDING:
            pend48 += 1
        if f.show >= 0:
            shows += 1
            attended += f.show
    return GroupStats(
        volume=volume,
        funnel=Funnel(volume, contacted, scheduled, seen, long_term),
        good_fit=Ratio(good_fit, fit_known),
        contact_median_hours=statistics.median(hours) if hours else None,
        contacts_timed=len(hours),
        within_24h=Ratio(hit24, hit24 + miss24),
        within_48h=Ratio(hit48, hit48 + miss48),
        pending_24h=pend24,
        pending_48h=pend48,
        show=Ratio(attended, shows),
        long_term=Ratio(long_term, seen),
        unreadable_received=unreadable,
    )


def empty_stats() -> GroupStats:
    """The metrics of no referrals: every count 0 and every share None."""
    return stats_of(())


def group_stats(referrals: Sequence[Referral], now: datetime) -> GroupStats:
    """The metrics of ``referrals`` as a whole, as of ``now`` (no period filter)."""
    fs = facts_of(referrals, now)
    return stats_of(fs.facts, len(fs.unreadable))


def _slice(fs: FactSet, period: Period) -> list[Fact]:
    lo = bisect_left(fs.stamps, period.start.timestamp())
    hi = bisect_left(fs.stamps, period.end.timestamp())
    return fs.facts[lo:hi]


def _grouped(facts: Iterable[Fact], key: Callable[[Referral], str]) -> dict[str, GroupStats]:
    groups: dict[str, list[Fact]] = defaultdict(list)
    for f in facts:
        groups[key(f.ref)].append(f)
    return {name: stats_of(groups[name]) for name in sorted(groups)}


def stats_by(
    referrals: Sequence[Referral],
    period: Period,
    key: Callable[[Referral], str],
    now: datetime,
) -> dict[str, GroupStats]:
    """Metrics per ``key`` (source tag, channel, referrer) for referrals received in ``period``.

    ``now`` decides what has happened yet (a passed appointment, a lapsed 24-hour window).
    Keys come out sorted, so the result is the same whatever order the rows were in.
    """
    return _grouped(_slice(facts_of(referrals, now), period), key)


def by_source_tag(referral: Referral) -> str:
    return referral.source_tag or "Unknown"


def by_channel(referral: Referral) -> str:
    return referral.channel or "Not recorded"


# --------------------------------------------------------------------------------------------
# Weekly volume, stall alert, bottlenecks


@dataclass(frozen=True)
class WeekCount:
    """Referrals received in the week starting ``start`` (a local date), per source tag."""

    start: date
    counts: Mapping[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _weeks(fs: FactSet, now: datetime, week_starts: str, weeks: int) -> list[WeekCount]:
    tz = _zone(now)
    this_week = week_start(now.date(), week_starts)
    first = this_week - timedelta(days=7 * weeks)
    window = Period("weeks", _midnight(first, tz), _midnight(this_week, tz))
    buckets = [dict.fromkeys(SOURCE_TAGS, 0) for _ in range(weeks)]
    for f in _slice(fs, window):
        tag = f.ref.source_tag if f.ref.source_tag in SOURCE_TAGS else "Unknown"
        buckets[(f.day - first).days // 7][tag] += 1
    return [WeekCount(first + timedelta(days=7 * i), buckets[i]) for i in range(weeks)]


def weekly_counts(
    referrals: Sequence[Referral], now: datetime, week_starts: str, weeks: int = CHART_WEEKS
) -> list[WeekCount]:
    """Referrals per full week by source tag, oldest first, ending with last week.

    The week in progress is left out: a half-finished week would always look like a drop.
    """
    return _weeks(facts_of(referrals, now), now, week_starts, weeks)


def fmt_number(value: float) -> str:
    """``9.5`` -> "9.5", ``9.0`` -> "9": one decimal at most, deterministic."""
    text = f"{value:.1f}"
    return text.removesuffix(".0")


def fmt_date(day: date) -> str:
    """ "3 Nov 2025": English month names whatever the machine's locale."""
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _stall_from_weeks(weeks: Sequence[WeekCount], settings: SummarySettings) -> str | None:
    if len(weeks) < 5:
        return None
    last = weeks[-1].total
    average = sum(w.total for w in weeks[-5:-1]) / 4
    if average < settings.stall_min_average or last >= settings.stall_ratio * average:
        return None
    return (
        f"Stall: {_plural(last, 'referral')} in the week of {fmt_date(weeks[-1].start)}, "
        f"against an average of {fmt_number(average)} a week over the 4 weeks before."
    )


def volume_line(weeks: Sequence[WeekCount]) -> str:
    """Last full week against the 4 before it, in words: the line shown when nothing stalled."""
    if len(weeks) < 5:
        return ""
    average = sum(w.total for w in weeks[-5:-1]) / 4
    return (
        f"Week of {fmt_date(weeks[-1].start)}: {_plural(weeks[-1].total, 'referral')}, "
        f"against an average of {fmt_number(average)} a week over the 4 weeks before."
    )


def stall_alert(
    referrals: Sequence[Referral], now: datetime, settings: SummarySettings
) -> str | None:
    """A plain sentence with the numbers when last full week's volume fell well below the trailing
    4-week average; None otherwise (or when the average is too small to mean anything).

    The last *full* week is judged, not the one in progress, so the alert does not fire every
    Monday morning merely because the week has just begun.
    """
    return _stall_from_weeks(weekly_counts(referrals, now, settings.week_starts, 5), settings)


_MAX_IDS = 5


def _ids(refs: Sequence[Referral]) -> str:
    shown = [r.referral_id or f"row {r.row}" for r in refs[:_MAX_IDS]]
    more = len(refs) - len(shown)
    text = ", ".join(shown)
    return f"{text} and {more} more" if more else text


def bottlenecks(
    referrals: Sequence[Referral], now: datetime, settings: SummarySettings
) -> list[str]:
    """Where referrals are waiting too long, one sentence each, naming Referral IDs at most.

    * overdue contacts (Stage OVERDUE, as the rules derived it);
    * appointments more than a day past with no Visit recorded;
    * rows stuck in Contacted (no appointment, no outcome) for longer than ``stuck_factor`` times
      the practice's usual days from First Contact to Appointment;
    * booking getting slow: the median days from First Contact to Appointment for contacts in the
      last 28 days above ``stuck_factor`` times the median before that.

    The bridge never sees when an appointment was *booked*, only its date, so "usual time in
    Contacted" is measured as First Contact -> Appointment; a generous yardstick on purpose.
    """
    return _bottlenecks(facts_of(referrals, now), now, settings)


def _timeline(fs: FactSet) -> Iterable[tuple[Referral, float | None, float | None]]:
    """(referral, First Contact, Appointment) as timestamps, for every row, readable Received or not."""
    for f in fs.facts:
        yield f.ref, f.fc_ts, f.appt_ts
    for r in fs.unreadable:
        fc, appt = r.first_contact, r.appointment
        yield r, fc.timestamp() if fc else None, appt.timestamp() if appt else None


def _bottlenecks(fs: FactSet, now: datetime, settings: SummarySettings) -> list[str]:
    now_ts = now.timestamp()
    lines: list[str] = []
    overdue: list[tuple[float, str, Referral]] = []
    no_visit: list[tuple[float, str, Referral]] = []
    booked_recent: list[float] = []
    booked_before: list[float] = []
    waiting: list[tuple[float, str, Referral]] = []
    recent_from = now_ts - 28 * DAY
    for r, fc_ts, appt_ts in _timeline(fs):
        if r.stage == "OVERDUE":
            due = r.follow_up_due.timestamp() if r.follow_up_due else 0.0
            overdue.append((due, r.referral_id, r))
        if appt_ts is not None:
            if r.visit in (None, "Scheduled") and r.outcome is None and now_ts - appt_ts > DAY:
                no_visit.append((appt_ts, r.referral_id, r))
            if fc_ts is not None and appt_ts >= fc_ts:
                days = (appt_ts - fc_ts) / DAY
                (booked_recent if fc_ts >= recent_from else booked_before).append(days)
        elif fc_ts is not None and r.visit is None and r.outcome is None and r.fit != "Not a fit":
            waiting.append((fc_ts, r.referral_id, r))
    if overdue:
        overdue.sort(key=lambda t: t[:2])
        lines.append(
            f"{_plural(len(overdue), 'referral')} past Follow-up Due with no First Contact: "
            f"{_ids([t[2] for t in overdue])}."
        )
    if no_visit:
        no_visit.sort(key=lambda t: t[:2])
        lines.append(
            f"{_plural(len(no_visit), 'appointment')} passed more than a day ago with no Visit "
            f"recorded (show rates need it): {_ids([t[2] for t in no_visit])}."
        )
    usual = booked_recent + booked_before
    if len(usual) >= settings.min_sample:
        usual_days = statistics.median(usual)
        limit = now_ts - settings.stuck_factor * usual_days * DAY
        stuck = sorted((t for t in waiting if t[0] < limit), key=lambda t: t[:2])
        if stuck:
            lines.append(
                f"{_plural(len(stuck), 'referral')} in Contacted for more than "
                f"{fmt_number(settings.stuck_factor * usual_days)} days with no appointment "
                f"(usually {fmt_number(usual_days)} days from first contact to appointment): "
                f"{_ids([t[2] for t in stuck])}."
            )
    if len(booked_recent) >= settings.min_sample and len(booked_before) >= settings.min_sample:
        recent = statistics.median(booked_recent)
        before = statistics.median(booked_before)
        if recent > settings.stuck_factor * before:
            lines.append(
                f"Booking is slow: first appointments are {fmt_number(recent)} days after first "
                f"contact for contacts in the last 4 weeks, against {fmt_number(before)} days "
                f"before that."
            )
    return lines


def overview_next_change(
    referrals: Sequence[Referral], now: datetime, settings: SummarySettings
) -> float:
    """The first instant (a timestamp) after which the clock alone could change
    :func:`overview` for these rows, mirroring each of its time tests:

    - :class:`Fact`: a row not contacted leaves the 24- and 48-hour windows (``waited > 24 h``)
      24 or 48 hours after Received; an appointment passes (``appt_ts < now_ts``);
    - :func:`_bottlenecks`: an appointment more than a day past with no Visit; a First Contact
      leaving the last 28 days; a row in Contacted growing stuck (``fc_ts < now_ts -
      stuck_factor * usual days``, the usual days being a median the clock does not move);
    - periods, weeks, the chart window and the stall alert (:func:`periods`,
      :func:`chart_window`, :func:`_weeks`): today's date, so the next local midnight.
    """
    fs = facts_of(referrals, now)
    now_ts = now.timestamp()
    pending = [f.ts for f in fs.facts if not f.contacted]  # sorted: facts are, by Received
    appointments: list[float] = []
    contacts: list[float] = []
    usual: list[float] = []
    for _, fc, appt in _timeline(fs):
        if appt is not None:
            appointments.append(appt)
            if fc is not None and appt >= fc:
                usual.append((appt - fc) / DAY)
        if fc is not None:
            contacts.append(fc)
    appointments.sort()
    contacts.sort()
    contact_spans = [28 * DAY]
    if len(usual) >= settings.min_sample:
        contact_spans.append(settings.stuck_factor * statistics.median(usual) * DAY)
    return min(
        next_elapsed(pending, (24 * _HOUR, 48 * _HOUR), now_ts),
        next_elapsed(appointments, (0.0, DAY), now_ts),
        next_elapsed(contacts, contact_spans, now_ts),
        next_midnight(now, _zone(now)),
    )


# --------------------------------------------------------------------------------------------
# Overview: everything the Dashboard and the digest show, from one pass


@dataclass(frozen=True)
class Overview:
    """The Dashboard's numbers, computed once so the digest can reuse them as they are."""

    now: datetime
    periods: tuple[Period, ...]
    totals: Mapping[str, GroupStats]
    """Period name -> metrics of every referral received in it."""
    by_tag: Mapping[str, Mapping[str, GroupStats]]
    """Period name -> source tag -> metrics (every tag in SOURCE_TAGS present)."""
    window: Period
    """The last CHART_WEEKS full weeks."""
    window_by_tag: Mapping[str, GroupStats]
    window_by_channel: Mapping[str, GroupStats]
    weeks: tuple[WeekCount, ...]
    stall: str | None
    bottlenecks: tuple[str, ...]
    unreadable_received: int


def overview(referrals: Sequence[Referral], now: datetime, settings: SummarySettings) -> Overview:
    """All Dashboard metrics in one pass over the rows, plus cheap slices."""
    fs = facts_of(referrals, now)
    spans = periods(now, settings.week_starts)
    totals: dict[str, GroupStats] = {}
    by_tag: dict[str, dict[str, GroupStats]] = {}
    empty = stats_of(())
    for span in spans:
        chunk = _slice(fs, span)
        totals[span.name] = stats_of(chunk)
        tags = _grouped(chunk, by_source_tag)
        by_tag[span.name] = {tag: tags.get(tag, empty) for tag in SOURCE_TAGS} | {
            tag: stats for tag, stats in tags.items() if tag not in SOURCE_TAGS
        }
    window = chart_window(now, settings.week_starts)
    window_facts = _slice(fs, window)
    weeks = _weeks(fs, now, settings.week_starts, CHART_WEEKS)
    return Overview(
        now=now,
        periods=tuple(spans),
        totals=totals,
        by_tag=by_tag,
        window=window,
        window_by_tag=_grouped(window_facts, by_source_tag),
        window_by_channel=_grouped(window_facts, by_channel),
        weeks=tuple(weeks),
        stall=_stall_from_weeks(weeks, settings),
        bottlenecks=tuple(_bottlenecks(fs, now, settings)),
        unreadable_received=len(fs.unreadable),
    )


__all__ = [
    "CHART_WEEKS",
    "PERIOD_NAMES",
    "Funnel",
    "GroupStats",
    "Overview",
    "Period",
    "Ratio",
    "WeekCount",
    "bottlenecks",
    "by_channel",
    "by_source_tag",
    "chart_window",
    "empty_stats",
    "group_stats",
    "overview",
    "overview_next_change",
    "periods",
    "stall_alert",
    "stats_by",
    "week_start",
    "weekly_counts",
]
