"""Each clock-reading phase holds until its own horizon, and the horizon is sound
(ARCHITECTURE.md, "Incremental planning", per-phase horizons).

For the Referrers tab, the Dashboard and drafting: rows generated with Received, First Contact
and Appointment minutes to a year around ``t0`` (and a drafts ledger with entries around it);
the phase's output at ``t0`` with horizon ``H`` (its ``next_change``) equals the phase worked
out afresh at any ``t`` in ``[t0, H)``. The inputs are fixed (the rows as derived at ``t0``):
what is tested is the phase's own reading of the clock. Just past ``H`` the clock alone can
change the output, and the examples at the end show it does, and that the planner then works
it out again.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from conftest import BASE_CONFIG, FIXED_NOW, deep_merge
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sheets_bridge.config import BridgeConfig, parse_config
from sheets_bridge.derive import read_referrals
from sheets_bridge.drafting import drafts_next_change, plan_drafts
from sheets_bridge.email_templates import TemplateSet
from sheets_bridge.ledger import DraftHistory, PatientDraft
from sheets_bridge.metrics import overview_next_change
from sheets_bridge.model import STAFF_COLUMNS, CellValue, Referral
from sheets_bridge.phase_memo import PhaseMemo, earliest_crossing, next_elapsed
from sheets_bridge.referrers import referrers_next_change
from sheets_bridge.sheets.memory import MemorySheet
from sheets_bridge.summaries import build_dashboard, build_referrers

HEADERS: tuple[str, ...] = (*STAFF_COLUMNS, "Referral ID")
CONFIG: BridgeConfig = parse_config(
    deep_merge(BASE_CONFIG, {"sync": {"min_rows_for_breaker": 10_000}}), base=Path("/nonexistent")
)
TEMPLATES = TemplateSet.from_settings(CONFIG.drafts)
DAY = 60 * 24

#: Minutes from t0: within the hour and the day, the 24/48-hour windows, and every span the
#: phases use (7, 28, 30, 60, 90, 118, 365 days), either side of it.
OFFSETS = st.one_of(
    st.integers(-90, 90),
    st.integers(-60 * 50, 60 * 50),
    st.integers(-DAY * 100, DAY * 3),
    st.sampled_from([-DAY * d + m for d in (1, 2, 7, 28, 30, 35, 60, 90, 97, 118, 365)
                     for m in (-3, 0, 3)]),
    st.sampled_from([m for h in (24, 48) for m in (-60 * h - 2, -60 * h, -60 * h + 2,
                                                    60 * h - 2, 60 * h, 60 * h + 2)]),
)
VISITS = st.sampled_from([None, "Scheduled", "Attended", "No-show", "Cancelled"])
OUTCOMES = st.sampled_from([None, "Ongoing care", "Completed"])
ROW = st.tuples(OFFSETS, st.one_of(st.none(), OFFSETS), st.one_of(st.none(), OFFSETS), VISITS,
                OUTCOMES, st.integers(0, 2), st.sampled_from(["Provider", "Google", "Patient"]))
ROWS = st.lists(ROW, min_size=1, max_size=9)
PICKS = st.lists(st.floats(0, 1, exclude_max=True), min_size=1, max_size=4)
T0_MINUTES = st.integers(0, DAY - 1)


def _at(minutes: int, t0: datetime) -> str:
    return (t0 + timedelta(minutes=minutes)).strftime("%Y-%m-%d %H:%M")


def _referrals(rows: list[tuple[int, int | None, int | None, str | None, str | None, int, str]],
               t0: datetime) -> tuple[Referral, ...]:
    grid: list[list[CellValue]] = [list(HEADERS)]
    for i, (received, contact, appointment, visit, outcome, referrer, heard) in enumerate(rows):
        values: dict[str, CellValue] = {
            "Patient First Name": f"P{i}", "Patient Last Name": "Lee",
            "Patient Email": f"p{i}@example.com", "Patient Phone": f"212-555-01{i:02d}",
            "Received": _at(received, t0), "How Heard": heard,
            "Referred By": f"Dr R{referrer}", "Referrer Email": f"dr{referrer}@example.com",
            "Referrer Practice": "Harbor Clinic", "Consent to Update Referrer": "Yes",
            "Referral ID": f"R-{i + 1:05d}",
        }
        if contact is not None:
            values["First Contact"] = _at(contact, t0)
        if appointment is not None:
            values["Appointment"] = _at(appointment, t0)
        if visit is not None:
            values["Visit"] = visit
        if outcome is not None:
            values["Outcome"] = outcome
        grid.append([values.get(h) for h in HEADERS])
    found = read_referrals(MemorySheet(grid).read(), t0, CONFIG)
    assert not isinstance(found, str)
    return tuple(found[0])


def _t0(minute: int) -> datetime:
    return FIXED_NOW.replace(hour=0, minute=0) + timedelta(minutes=minute)


def _moments(t0: datetime, horizon: float, picks: list[float]) -> list[datetime]:
    """Instants in ``[t0, horizon)`` (a bounded stretch when the horizon is far or never)."""
    end = min(horizon, (t0 + timedelta(days=400)).timestamp())
    span = end - t0.timestamp()
    if span <= 0:
        return []
    found = []
    for pick in picks:
        t = t0 + timedelta(microseconds=int(pick * span * 1_000_000))
        if t.timestamp() < end:
            found.append(t)
    return found


@settings(max_examples=120, deadline=None)
@given(rows=ROWS, t0_minute=T0_MINUTES, picks=PICKS)
# The Referrers tab's "last 90 days" is inclusive: a Received exactly 90 days before t0 holds at
# t0 and leaves just after it, so the horizon is t0 itself (found by the first plan-wide try).
@example(rows=[(0, None, None, None, None, 0, "Provider"),
               (-DAY * 90, 32, 152, None, None, 0, "Provider")], t0_minute=1403, picks=[0.5])
def test_the_referrers_tab_holds_until_its_horizon(
    rows: list[tuple[int, int | None, int | None, str | None, str | None, int, str]],
    t0_minute: int, picks: list[float],
) -> None:
    t0 = _t0(t0_minute)
    refs = _referrals(rows, t0)
    horizon = referrers_next_change(refs, t0, CONFIG.summaries)
    made = build_referrers(refs, t0, CONFIG.summaries, {})
    for t in _moments(t0, horizon, picks):
        assert build_referrers(refs, t, CONFIG.summaries, {}) == made, (t0, t, horizon)


@settings(max_examples=120, deadline=None)
@given(rows=ROWS, t0_minute=T0_MINUTES, picks=PICKS)
@example(rows=[(-DAY - 3, None, None, None, None, 0, "Provider")], t0_minute=600, picks=[0.99])
# Each crossing the horizon names, two minutes after t0, with a pick well past it: a row not
# contacted leaving the 48-hour window; an appointment a day past with no Visit; a First
# Contact leaving the last 28 days (the booking medians).
@example(rows=[(-60 * 48 + 2, None, None, None, None, 0, "Provider")], t0_minute=600,
         picks=[0.5])
@example(rows=[(-DAY * 3, -DAY * 2, -DAY + 2, None, None, 0, "Provider")], t0_minute=600,
         picks=[0.5])
@example(rows=[(-DAY * 70, -DAY * 60, -DAY * 58, "Attended", None, 0, "Provider")] * 3
         + [(-DAY * 70, -DAY * 60, -DAY * 56, "Attended", None, 0, "Provider")] * 2
         + [(-DAY * 15, -DAY * 10, -DAY * 2, "Attended", None, 0, "Provider")] * 5
         + [(-DAY * 29, -DAY * 28 + 2, DAY * 2 + 2, "Scheduled", None, 0, "Provider")],
         t0_minute=600, picks=[0.5])
def test_the_dashboard_holds_until_its_horizon(
    rows: list[tuple[int, int | None, int | None, str | None, str | None, int, str]],
    t0_minute: int, picks: list[float],
) -> None:
    t0 = _t0(t0_minute)
    refs = _referrals(rows, t0)
    horizon = overview_next_change(refs, t0, CONFIG.summaries)
    name = CONFIG.practice.name
    made = build_dashboard(refs, t0, CONFIG.summaries, name, None)
    for t in _moments(t0, horizon, picks):
        assert build_dashboard(refs, t, CONFIG.summaries, name, None) == made, (t0, t, horizon)


LEDGER = st.lists(st.tuples(st.sampled_from(["referrer_feedback", "referrer_checkin",
                                             "patient_outreach", "referrer_acknowledgement"]),
                            st.integers(0, 2), OFFSETS), max_size=5)


def _history(entries: list[tuple[str, int, int]], refs: tuple[Referral, ...],
             t0: datetime) -> DraftHistory:
    """A ledger with drafts made ``minutes`` from t0 (before it, mostly), to referrers and for
    the generated rows' patients."""
    last: dict[tuple[str, str], datetime] = {}
    patients: dict[str, list[PatientDraft]] = {}
    by_referrer = {r.referred_by: r for r in refs}
    for kind, referrer, minutes in entries:
        created = t0 - timedelta(minutes=abs(minutes))
        row = by_referrer.get(f"Dr R{referrer}")
        if row is None:
            continue
        if kind.startswith("referrer_") and kind != "referrer_acknowledgement":
            from sheets_bridge.identity import referrer_key

            slot = (referrer_key(row), kind)
            last[slot] = max(last.get(slot, created), created)
        else:
            patients.setdefault(kind, []).append(
                PatientDraft(frozenset(row.facets), "", created, "R-09999")
            )
    return DraftHistory(frozenset(), last, {k: tuple(v) for k, v in patients.items()})


def _drafts(refs: tuple[Referral, ...], t: datetime, history: DraftHistory) -> object:
    drafts, problems = plan_drafts(refs, now=t, practice=CONFIG.practice, settings=CONFIG.drafts,
                                   history=history, env=TEMPLATES)
    return [(d.key, d.to, d.subject, d.text, d.html) for d in drafts], problems


@settings(max_examples=120, deadline=None)
@given(rows=ROWS, t0_minute=T0_MINUTES, picks=PICKS, ledger=LEDGER)
@example(rows=[(0, None, 60 * 48 + 2, "Scheduled", None, 0, "Provider")], t0_minute=600,
         picks=[0.99], ledger=[])
# The ledger's crossings, two minutes after t0: the same patient's outreach drafted 60 days
# ago leaves the same-patient span; the referrer's last feedback request leaves the 90-day gap.
@example(rows=[(-30, None, None, None, None, 0, "Provider")], t0_minute=600, picks=[0.5],
         ledger=[("patient_outreach", 0, DAY * 60 - 2)])
@example(rows=[(-DAY * 30, -DAY * 29, None, None, None, 0, "Provider")], t0_minute=600,
         picks=[0.5], ledger=[("referrer_feedback", 0, DAY * 90 - 2)])
def test_drafting_holds_until_its_horizon(
    rows: list[tuple[int, int | None, int | None, str | None, str | None, int, str]],
    t0_minute: int, picks: list[float], ledger: list[tuple[str, int, int]],
) -> None:
    t0 = _t0(t0_minute)
    refs = _referrals(rows, t0)
    history = _history(ledger, refs, t0)
    horizon = drafts_next_change(refs, t0, CONFIG.drafts, history)
    made = _drafts(refs, t0, history)
    for t in _moments(t0, horizon, picks):
        assert _drafts(refs, t, history) == made, (t0, t, horizon)


# -- just past a horizon: the clock alone changes the output ---------------------------------
def test_past_the_referrers_horizon_a_row_leaves_the_last_90_days() -> None:
    t0 = FIXED_NOW
    refs = _referrals([(-DAY * 90 + 10, None, None, None, None, 0, "Provider")], t0)
    horizon = referrers_next_change(refs, t0, CONFIG.summaries)
    assert t0.timestamp() < horizon <= (t0 + timedelta(minutes=10)).timestamp()
    made = build_referrers(refs, t0, CONFIG.summaries, {})
    after = datetime.fromtimestamp(horizon + 1, tz=t0.tzinfo)
    assert build_referrers(refs, after, CONFIG.summaries, {}) != made


def test_past_the_dashboard_horizon_a_contact_window_lapses() -> None:
    t0 = FIXED_NOW
    refs = _referrals([(-60 * 24 + 5, None, None, None, None, 0, "Provider")], t0)
    horizon = overview_next_change(refs, t0, CONFIG.summaries)
    assert t0.timestamp() < horizon <= (t0 + timedelta(minutes=5)).timestamp()
    name = CONFIG.practice.name
    made = build_dashboard(refs, t0, CONFIG.summaries, name, None)
    after = datetime.fromtimestamp(horizon + 1, tz=t0.tzinfo)
    assert build_dashboard(refs, after, CONFIG.summaries, name, None) != made


def test_past_the_drafting_horizon_a_reminder_falls_due() -> None:
    t0 = FIXED_NOW
    hours = CONFIG.drafts.reminder_hours
    refs = _referrals([(-60 * 24 * 20, -60 * 24 * 19, 60 * hours + 7, "Scheduled", None, 0,
                        "Provider")], t0)
    history = DraftHistory()
    horizon = drafts_next_change(refs, t0, CONFIG.drafts, history)
    assert t0.timestamp() < horizon <= (t0 + timedelta(minutes=7)).timestamp()
    made = _drafts(refs, t0, history)
    after = datetime.fromtimestamp(horizon + 1, tz=t0.tzinfo)
    assert _drafts(refs, after, history) != made


def test_a_phase_memo_gives_back_within_its_span_and_works_it_out_past_it() -> None:
    """The memo itself: the same objects within [since, horizon) or at since itself are given
    back; other objects, another value, a clock set back or past the horizon work it out."""
    memo = PhaseMemo()
    rows = (object(), object())
    calls: list[datetime] = []

    def run(now: datetime, items: tuple[object, ...] = rows, value: int = 1) -> object:
        def compute() -> tuple[datetime, int]:
            calls.append(now)
            return (now, value)
        return memo.reuse("p", items, (value,), now, compute,
                          lambda _r: (FIXED_NOW + timedelta(minutes=10)).timestamp(),
                          incremental=True)

    first = run(FIXED_NOW)
    assert run(FIXED_NOW + timedelta(minutes=9)) is first
    assert memo.hits["p"] == 1
    assert run(FIXED_NOW + timedelta(minutes=10)) is not first  # at the horizon: worked out
    again = run(FIXED_NOW + timedelta(minutes=10))
    assert run(FIXED_NOW + timedelta(minutes=10)) is again  # the same instant: a pure function
    assert run(FIXED_NOW + timedelta(minutes=10), (rows[0], object())) is not again
    assert run(FIXED_NOW + timedelta(minutes=10), value=2) is not again
    assert run(FIXED_NOW) is not again  # a clock set back
    assert len(calls) == 5


def test_crossings_are_found_on_either_reading_of_a_local_time() -> None:
    """``moment + offset`` across a daylight-saving change: the wall-clock and elapsed readings
    differ by the shift, and the earliest of them is the horizon."""
    before_change = datetime(2025, 3, 8, 12, 0, tzinfo=FIXED_NOW.tzinfo)  # DST starts 9 March
    now = datetime(2025, 3, 9, 11, 30, tzinfo=FIXED_NOW.tzinfo)
    found = earliest_crossing([before_change], [timedelta(days=1)], now)
    wall = datetime(2025, 3, 9, 12, 0, tzinfo=FIXED_NOW.tzinfo).timestamp()
    # The wall reading (12:00 EDT) comes an hour before the elapsed one (13:00 EDT).
    assert wall - 1 < found <= wall
    assert next_elapsed([100.0, 200.0], [50.0], 180.0) < 250.0
    assert next_elapsed([100.0, 200.0], [50.0], 150.0) < 150.0  # a crossing at now itself
