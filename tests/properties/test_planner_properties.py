"""Hypothesis properties of the planner and a stateful ``CycleMachine`` (vdirsyncer's SyncMachine).

Random small sheets with the junk staff really type, and random staff operations between cycles:
sort, insert, delete, copy a row with its ID, edit a staff cell, hand-edit a bridge cell, let
time pass. After every cycle:

(a) planning is deterministic: the same snapshot, time and state give equal Plans;
(b) apply, then plan again: nothing left to write (no cells, no headers, no tabs);
(c) no write targets a staff column, and the staff cells of the grid are unchanged by apply;
(d) Referral IDs are unique, and a row keeps its ID through sorts, inserts and deletes;
(f) incremental equals full: the plan made reusing what earlier cycles derived (rows whose staff
    cells are unchanged and whose clock horizon has not passed) equals, byte for byte, the plan
    made by deriving and digesting every row afresh, for any sequence of edits and clock steps.

Rows are tracked by a unique token in Notes (never read by the bridge; a Notes-only row counts
as empty, so every row also carries a first name). Profiles "dev" and a derandomized "ci" are
registered in conftest.py and chosen by the CI environment variable.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import BASE_CONFIG, FIXED_NOW, deep_merge
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from sheets_bridge.config import BridgeConfig, parse_config
from sheets_bridge.cycle import run_cycle
from sheets_bridge.drafting import draft_planner
from sheets_bridge.model import BRIDGE_COLUMNS, STAFF_COLUMNS, CellError, CellValue, DateSerial
from sheets_bridge.planner import PlanResult, plan_cycle
from sheets_bridge.sheets.memory import MemorySheet
from sheets_bridge.state import StateStore
from sheets_bridge.summaries import summary_tabs
from sheets_bridge.values import cell_text

#: Hypothesis stops shrinking a failure after 5 minutes and then prints a seed to reproduce it;
#: pytest-timeout must not cut that short (the default 300 s would report a confusing flaky error).
pytestmark = pytest.mark.timeout(900)

HEADERS: tuple[str, ...] = STAFF_COLUMNS
FIRST = HEADERS.index("Patient First Name")
NOTES = HEADERS.index("Notes")

JUNK: list[CellValue] = [
    None,
    "",
    "  ",
    "\u00a0",
    "\u200b",
    "=1+1",
    "@SUM(A1)",
    "#REF!",
    CellError("#N/A"),
    True,
    0,
    45720.0,
    "asap",
    "tbd",
]
CHOICES: dict[str, list[CellValue]] = {
    "Received": [
        "2025-03-03 09:00",
        "2025-03-01",
        "2025-03-04 09:59",
        "2025-03-07 16:30",
        "3/4/25",
        "March 3",
        "2025-02-30",
        DateSerial(45719.5),
        45719,
    ],
    "Patient First Name": ["Ann", "Bob", "Zoë", "O'Brien", "张伟", "=cmd()", "MARÍA-JOSÉ", "Ann "],
    "Patient Last Name": ["Lee", "Nguyễn", '=HYPERLINK("x")', None],
    "Patient Phone": ["212-555-0100", "555-0100", "2125550100.0", 2125550100.0, "call me"],
    "Patient Email": ["a@example.com", "john@gmail", "a@@b.com", "n/a", "A <a@example.com>"],
    "How Heard": ["Provider", "dr referral", "friend", "google", "asdf", "friend on facebook"],
    "Referred By": ["Dr Rivera", "Pat", "@SUM(1)"],
    "Referrer Email": ["dr@example.com", "nope"],
    "Referrer Practice": ["Harbor Clinic"],
    "Reason": ["back pain", "{{ 7*7 }}"],
    "Fit": ["Good fit", "Not a fit", "Unsure", "maybe?"],
    "First Contact": ["2025-03-03 10:00", "2025-03-02", "2025-03-04 09:00"],
    "Appointment": ["2025-03-10 15:00", "2025-03-03 15:00", "next week"],
    "Visit": ["Scheduled", "Attended", "No-show", "NS", "Cancelled", "cx"],
    "Outcome": ["Ongoing care", "Completed", "Not a fit", "Lost", "done"],
    "Consent to Update Referrer": ["Yes", "No", "yes (verbal)", "Y?"],
}
EDITABLE = tuple(h for h in HEADERS if h not in ("Patient First Name", "Notes"))
HAND_EDITABLE = ("Source Tag", "Stage", "Follow-up Due", "Attention", "Bridge Updated", "Emails")


def cell_values(column: str) -> st.SearchStrategy[CellValue]:
    return st.one_of(
        st.sampled_from(CHOICES.get(column, [None])),
        st.sampled_from(JUNK),
        st.text(max_size=5),
    )


def staff_row(token: str) -> st.SearchStrategy[list[CellValue]]:
    """One row of staff cells; the first name is always real and Notes holds the token."""

    def build(values: dict[str, CellValue]) -> list[CellValue]:
        row = [values.get(h) for h in HEADERS]
        row[NOTES] = token
        return row

    cells = {h: cell_values(h) for h in EDITABLE}
    cells["Patient First Name"] = st.sampled_from(CHOICES["Patient First Name"])
    return st.fixed_dictionaries(cells).map(build)


#: SQLite fsyncs every commit; in memory-backed /dev/shm a cycle takes 2 ms instead of 25 ms,
#: which is what lets Hypothesis shrink a failure in seconds rather than minutes.
SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def make_config(folder: Path) -> BridgeConfig:
    # No breaker: random deletes may remove most rows on purpose.
    data = deep_merge(BASE_CONFIG, {"sync": {"min_rows_for_breaker": 10_000}})
    return parse_config(data, base=folder)


def staff_part(grid: list[list[CellValue]]) -> list[dict[str, str]]:
    headers = [cell_text(h) for h in grid[0]]
    return [
        {
            h: cell_text(row[i]) if i < len(row) else ""
            for i, h in enumerate(headers)
            if h in HEADERS
        }
        for row in grid[1:]
    ]


def _records(grid: list[list[CellValue]]) -> list[dict[str, str]]:
    headers = [cell_text(h) for h in grid[0]]
    return [
        {h: cell_text(row[i]) if i < len(row) else "" for i, h in enumerate(headers)}
        for row in grid[1:]
    ]


def ids_by_token(sheet: MemorySheet) -> dict[str, str]:
    assert sheet.grid is not None
    headers = [cell_text(h) for h in sheet.grid[0]]
    if "Referral ID" not in headers:
        return {}
    id_col = headers.index("Referral ID")
    notes = headers.index("Notes")
    return {
        cell_text(row[notes]): cell_text(row[id_col])
        for row in sheet.grid[1:]
        if id_col < len(row) and cell_text(row[id_col])
    }


def assert_incremental_equals_full(incremental: PlanResult, full: PlanResult) -> None:
    """(f): the same plan, byte for byte (as ``sync --dry-run`` prints it), and the same rows."""
    assert incremental.plan == full.plan
    assert repr(incremental.plan) == repr(full.plan)
    assert incremental.referrals == full.referrals
    assert (incremental.present, incremental.facets) == (full.present, full.facets)


def cycle_and_check(
    config: BridgeConfig, sheet: MemorySheet, now: datetime, before_ids: dict[str, str]
) -> dict[str, str]:
    """One checked cycle: properties (a) to (d). Returns token -> ID after it."""
    assert sheet.grid is not None
    staff_before = staff_part(sheet.grid)
    with StateStore(config.state_dir) as state:
        snapshot = sheet.read()
        view = state.view(now, notice_hours=config.sync.notice_hours)
        first = plan_cycle(snapshot, now, config, view)
        again = plan_cycle(snapshot, now, config, view)
        assert first.plan == again.plan  # (a)
        assert_incremental_equals_full(first, plan_cycle(snapshot, now, config, view,
                                                         incremental=False))  # (f)
        assert first.plan.stop is None
        report = run_cycle(config, sheet, state, now=now, force=_clock_back(state, now))
        assert report.outcome in ("ok", "quiet")
        assert report.cells_skipped == 0
        assert report.result is not None
        written = {w.column for w in report.result.plan.cell_writes}
        assert written <= set(BRIDGE_COLUMNS)  # (c)
        assert staff_part(sheet.grid) == staff_before  # (c)
        settled = plan_cycle(sheet.read(), now, config, state.view(now))
        assert not settled.plan.cell_writes, settled.plan.cell_writes  # (b)
        assert not settled.plan.header_writes  # (b)
        assert settled.plan.is_quiet, [t.title for t in settled.plan.tab_contents]  # (b)
        # The sheet shows what the bridge derived (hand edits were put back).
        shown = {r["Referral ID"]: r for r in _records(sheet.grid)}
        for referral in settled.referrals:
            if referral.referral_id in shown:
                row = shown[referral.referral_id]
                assert row["Stage"] == referral.stage
                assert row["Source Tag"] == referral.source_tag
                assert row["Attention"] == "\n".join(referral.attention)
    after = ids_by_token(sheet)
    ids = [rid for rid in after.values() if rid]
    assert len(ids) == len(set(ids)), ids  # (d) unique
    for token, rid in before_ids.items():  # (d) kept through sort/insert/delete
        if token in after:
            assert after[token] == rid, (token, rid, after[token])
    return after


# -- (a)-(c) on one random sheet, twice --------------------------------------------------------
@settings(max_examples=30)
@given(
    rows=st.lists(st.integers(0, 10**6), min_size=0, max_size=6, unique=True).flatmap(
        lambda toks: st.tuples(*(staff_row(f"tok-{t}") for t in toks))
    ),
    hours=st.integers(0, 72),
)
def test_a_random_sheet_settles_after_one_cycle(
    rows: tuple[list[CellValue], ...], hours: int
) -> None:
    folder = Path(tempfile.mkdtemp(prefix="sb-prop-", dir=SCRATCH))
    try:
        config = make_config(folder)
        sheet = MemorySheet([list(HEADERS), *rows])
        ids = cycle_and_check(config, sheet, FIXED_NOW, {})
        cycle_and_check(config, sheet, FIXED_NOW + timedelta(hours=hours), ids)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# -- (e) the stateful machine ------------------------------------------------------------------
class CycleMachine(RuleBasedStateMachine):
    """Staff work on the sheet between cycles; every cycle must keep (a)-(d)."""

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="sb-machine-", dir=SCRATCH))
        self.config = make_config(self.folder)
        self.sheet = MemorySheet([list(HEADERS)])
        self.now = FIXED_NOW
        self.ids: dict[str, str] = {}
        self.tokens = 0

    def teardown(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    @property
    def grid(self) -> list[list[CellValue]]:
        assert self.sheet.grid is not None
        return self.sheet.grid

    def col(self, name: str) -> int | None:
        headers = [cell_text(h) for h in self.grid[0]]
        return headers.index(name) if name in headers else None

    def token(self) -> str:
        self.tokens += 1
        return f"tok-{self.tokens}"

    def cycle(self) -> None:
        self.ids = cycle_and_check(self.config, self.sheet, self.now, self.ids)

    @initialize(data=st.data(), n=st.integers(1, 5))
    def start(self, data: st.DataObject, n: int) -> None:
        for _ in range(n):
            self.grid.append(data.draw(staff_row(self.token())))
        self.cycle()

    @rule()
    def run_a_cycle(self) -> None:
        self.cycle()

    @rule(hours=st.sampled_from([1, 5, 23, 30]))
    def time_passes(self, hours: int) -> None:
        self.now += timedelta(hours=hours)

    @rule(minutes=st.sampled_from([10, 130, -20, -60 * 25]))
    def clock_steps(self, minutes: int) -> None:
        """A few minutes (no horizon passed, rows reused), or back (a clock corrected)."""
        self.now += timedelta(minutes=minutes)

    @precondition(lambda self: len(self.grid) > 2)
    @rule(data=st.data())
    def sort_rows(self, data: st.DataObject) -> None:
        order = data.draw(st.permutations(range(len(self.grid) - 1)))
        body = self.grid[1:]
        self.grid[1:] = [body[i] for i in order]

    @rule(data=st.data())
    def insert_row(self, data: st.DataObject) -> None:
        at = data.draw(st.integers(1, len(self.grid)))
        row = data.draw(staff_row(self.token()))
        self.grid.insert(at, row)

    @precondition(lambda self: len(self.grid) > 1)
    @rule(data=st.data())
    def delete_row(self, data: st.DataObject) -> None:
        at = data.draw(st.integers(1, len(self.grid) - 1))
        del self.grid[at]

    @precondition(lambda self: len(self.grid) > 1)
    @rule(data=st.data())
    def copy_row_with_its_id(self, data: st.DataObject) -> None:
        """B23: the copy lands just below its original and the next cycle runs at once."""
        at = data.draw(st.integers(1, len(self.grid) - 1))
        copy = list(self.grid[at])
        original_token = cell_text(copy[NOTES])
        copy[NOTES] = self.token()
        self.grid.insert(at + 1, copy)
        self.cycle()
        if original_token in self.ids:
            assert self.ids[copy[NOTES]] != self.ids[original_token]  # type: ignore[index]

    @precondition(lambda self: len(self.grid) > 1)
    @rule(data=st.data())
    def edit_a_staff_cell(self, data: st.DataObject) -> None:
        at = data.draw(st.integers(1, len(self.grid) - 1))
        column = data.draw(st.sampled_from(EDITABLE))
        self.grid[at][HEADERS.index(column)] = data.draw(cell_values(column))

    @precondition(lambda self: len(self.grid) > 1)
    @rule(data=st.data())
    def hand_edit_a_bridge_cell(self, data: st.DataObject) -> None:
        at = data.draw(st.integers(1, len(self.grid) - 1))
        col = self.col(data.draw(st.sampled_from(HAND_EDITABLE)))
        if col is None:
            return
        row = self.grid[at]
        row.extend([None] * (col + 1 - len(row)))
        row[col] = data.draw(st.sampled_from(["typed", "", "Seen", "R-00001", "=1+1"]))


CycleMachine.TestCase.settings = settings(max_examples=25, stateful_step_count=12)
TestCycleMachine = CycleMachine.TestCase


# -- (f) with drafts and summary tabs, and the clock across a horizon ---------------------------
def _plans(config: BridgeConfig, sheet: MemorySheet, now: datetime) -> tuple[PlanResult, PlanResult]:
    """The plan made incrementally (as a daemon's next cycle would) and the one made afresh."""
    snapshot = sheet.read()
    with StateStore(config.state_dir) as state:
        view = state.view(now, notice_hours=config.sync.notice_hours)
        kwargs: dict[str, Any] = {
            "tab_builders": summary_tabs(), "draft_planner": draft_planner(config)
        }
        incremental = plan_cycle(snapshot, now, config, view, **kwargs)
        full = plan_cycle(snapshot, now, config, view, incremental=False, **kwargs)
    return incremental, full


def _clock_back(state: StateStore, now: datetime) -> bool:
    """A clock stepped back is run the way the guard tells staff to: once, with ``--force``."""
    last = state.last_now()
    return last is not None and now < last


def _sync(config: BridgeConfig, sheet: MemorySheet, now: datetime) -> None:
    with StateStore(config.state_dir) as state:
        run_cycle(config, sheet, state, now=now, tab_builders=summary_tabs(),
                  draft_planner=draft_planner(config), force=_clock_back(state, now))


def _cell(sheet: MemorySheet, first: str, column: str) -> str:
    assert sheet.grid is not None
    headers = [cell_text(h) for h in sheet.grid[0]]
    row = next(r for r in sheet.grid[1:] if cell_text(r[FIRST]) == first)
    col = headers.index(column)
    return cell_text(row[col]) if col < len(row) else ""


def _row(first: str, received: CellValue, **cells: CellValue) -> list[CellValue]:
    values = {"Patient First Name": first, "Patient Last Name": "Lee", "Received": received,
              "How Heard": "Provider", "Referred By": "Dr Rivera",
              "Referrer Email": "dr@example.com", "Notes": f"tok-{first}",
              **{k.replace("_", " "): v for k, v in cells.items()}}
    return [values.get(h) for h in HEADERS]


#: What staff type that moves Stage, Attention and Follow-up Due: dates near now (some in the
#: future, some unreadable or without a year), visits, appointments, first contacts.
NEAR: dict[str, list[CellValue]] = {
    "Received": ["2025-03-03 09:00", "2025-03-04 08:00", "2025-03-02", "3/1", "2025-03-06 09:00",
                 "2025-03-03 18:30", "soon", None],
    "Visit": [None, "Scheduled", "Attended", "No-show", "Cancelled", "maybe"],
    "Appointment": [None, "2025-03-04 11:00", "2025-03-05 14:00", "2025-03-01 10:00"],
    "First Contact": [None, "2025-03-03 10:00", "2025-03-05 10:00"],
}
STEPS = st.one_of(
    st.tuples(st.just("edit"), st.integers(0, 3), st.sampled_from(sorted(NEAR)), st.integers(0, 7)),
    st.tuples(st.just("clock"), st.sampled_from([5, 45, 60 * 7, 60 * 14, 60 * 24, -30, -60 * 24]),
              st.just(""), st.just(0)),
    st.tuples(st.just("sync"), st.just(0), st.just(""), st.just(0)),
)


@settings(max_examples=40, deadline=None)
@given(steps=st.lists(STEPS, min_size=1, max_size=10))
# An appointment derived at its very minute has not passed; five minutes on, with no edit, it
# has ("Appointment has passed" in Attention), so the row must not be held past that minute.
@example(steps=[("clock", 840, "", 0), ("edit", 0, "Appointment", 2), ("clock", 840, "", 0),
                ("clock", 5, "", 0)])
def test_incremental_equals_full_with_drafts_and_summaries(
    steps: list[tuple[str, int, str, int]],
) -> None:
    folder = Path(tempfile.mkdtemp(prefix="sb-inc-", dir=SCRATCH))
    try:
        config = make_config(folder)
        names = ("Ann", "Bob", "Cy", "Dee")
        sheet = MemorySheet([list(HEADERS), *(
            _row(n, f"2025-03-0{3 + i % 2} 0{8 + i}:00", Patient_Email=f"p{i}@example.com")
            for i, n in enumerate(names)
        )])
        now = FIXED_NOW
        _sync(config, sheet, now)
        for kind, who, column, pick in steps:
            if kind == "edit":
                assert sheet.grid is not None
                row = sheet.grid[1 + who]
                choices = NEAR[column]
                row[HEADERS.index(column)] = choices[pick % len(choices)]
            elif kind == "clock":
                now += timedelta(minutes=who)
            else:
                _sync(config, sheet, now)
            assert_incremental_equals_full(*_plans(config, sheet, now))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_row_past_its_horizon_is_derived_again_with_no_edit() -> None:
    """The clock alone makes a row OVERDUE: the incremental cycle sees it, as a full one does."""
    folder = Path(tempfile.mkdtemp(prefix="sb-horizon-", dir=SCRATCH))
    try:
        config = make_config(folder)
        # Received 08:00 today with the 24 h window: Contact due from 02:00 tomorrow, OVERDUE
        # from 08:00 tomorrow.
        sheet = MemorySheet([list(HEADERS), _row("Ann", "2025-03-04 08:00")])
        _sync(config, sheet, FIXED_NOW)
        _sync(config, sheet, FIXED_NOW + timedelta(minutes=5))
        assert _cell(sheet, "Ann", "Stage") == "New"
        quiet, _ = _plans(config, sheet, FIXED_NOW + timedelta(minutes=10))
        assert not quiet.plan.cell_writes  # no edit, no horizon passed: the row is reused

        later = FIXED_NOW + timedelta(hours=22, minutes=5)  # 08:05 tomorrow: past Follow-up Due
        incremental, full = _plans(config, sheet, later)
        assert_incremental_equals_full(incremental, full)
        assert [w.new for w in incremental.plan.cell_writes if w.column == "Stage"] == ["OVERDUE"]
        _sync(config, sheet, later)
        assert _cell(sheet, "Ann", "Stage") == "OVERDUE"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_clock_set_back_derives_again() -> None:
    """A derivation holds from the instant it was made on: a clock set back does not reuse it."""
    folder = Path(tempfile.mkdtemp(prefix="sb-back-", dir=SCRATCH))
    try:
        config = make_config(folder)
        sheet = MemorySheet([list(HEADERS), _row("Ann", "2025-03-04 08:00")])
        _sync(config, sheet, FIXED_NOW + timedelta(hours=23))
        assert _cell(sheet, "Ann", "Stage") == "OVERDUE"
        incremental, full = _plans(config, sheet, FIXED_NOW)
        assert_incremental_equals_full(incremental, full)
        assert [w.new for w in incremental.plan.cell_writes if w.column == "Stage"] == ["New"]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_date_refused_as_in_the_future_is_read_once_it_is_not() -> None:
    """Within one day: a Received more than a day ahead is refused, then read at its threshold."""
    folder = Path(tempfile.mkdtemp(prefix="sb-future-", dir=SCRATCH))
    try:
        config = make_config(folder)
        sheet = MemorySheet([list(HEADERS), _row("Ann", "2025-03-06 09:00")])
        morning = datetime(2025, 3, 5, 7, 0, tzinfo=FIXED_NOW.tzinfo)
        _sync(config, sheet, morning)
        _sync(config, sheet, morning + timedelta(minutes=5))
        assert "Received is in the future" in _cell(sheet, "Ann", "Attention")
        later = morning + timedelta(hours=2, minutes=30)  # 09:30: less than a day ahead now
        incremental, full = _plans(config, sheet, later)
        assert_incremental_equals_full(incremental, full)
        _sync(config, sheet, later)
        assert "Received is in the future" not in _cell(sheet, "Ann", "Attention")
        assert _cell(sheet, "Ann", "Stage") == "New"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_notices_said_after_a_clock_set_back_are_written_as_the_next_cycle_reads_them() -> None:
    """(b) after a clock corrected backwards (a forced cycle): a hand edit's notice, said at a
    time earlier than the copied row's notice already kept, is written in the order the state
    gives the notices back, so the next cycle finds Attention as it left it (found by the
    CycleMachine: the lines came back swapped and Attention was written again)."""
    folder = Path(tempfile.mkdtemp(prefix="sb-setback-", dir=SCRATCH))
    try:
        config = make_config(folder)
        sheet = MemorySheet([list(HEADERS), _row("Ann", "2025-03-03 09:00",
                                                 Patient_Email="a@example.com")])
        now = FIXED_NOW
        _sync(config, sheet, now)
        assert sheet.grid is not None
        copy = list(sheet.grid[1])
        copy[NOTES] = "tok-copy"
        sheet.grid.insert(2, copy)
        _sync(config, sheet, now)  # the copy gets its own ID and a notice saying so
        tag = [cell_text(h) for h in sheet.grid[0]].index("Source Tag")
        sheet.grid[2][tag] = "typed"  # a hand edit of a bridge column: put back, with a notice
        now -= timedelta(minutes=20)
        _sync(config, sheet, now)
        with StateStore(config.state_dir) as state:
            view = state.view(now, notice_hours=config.sync.notice_hours)
            settled = plan_cycle(sheet.read(), now, config, view)
        assert not settled.plan.cell_writes, settled.plan.cell_writes
        assert settled.plan.is_quiet
    finally:
        shutil.rmtree(folder, ignore_errors=True)
