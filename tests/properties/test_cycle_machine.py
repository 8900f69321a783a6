"""A Hypothesis state machine over the whole cycle, with drafts, on the memory and workbook backends.

Staff add rows that make drafts (a provider's referral with both emails), edit staff cells, and
sort the rows, sometimes between the bridge's read and its write; a write may fail (the
workbook is open); the process may be killed between a draft's create and its confirm. After
every step:

- no draft key exists twice in the mail medium, and no patient got two drafts of one kind;
- no staff cell differs from what staff typed (the bridge never loses or changes a staff edit);
- Referral IDs are unique, and a row keeps its ID.

The drafter keeps every create, even a second one of the same key, as Gmail would: only the
outbox's journal and look-ups can keep a key single. A "kill" makes the state file refuse every
later write, as a dead process would, and the next cycle starts from a fresh ``StateStore``.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import ClassVar

import pytest
from conftest import BASE_CONFIG, FIXED_NOW, deep_merge
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from openpyxl import Workbook, load_workbook

from sheets_bridge.config import BridgeConfig, parse_config
from sheets_bridge.cycle import run_cycle
from sheets_bridge.drafting import draft_planner
from sheets_bridge.errors import BackendError, WorkbookBusyError
from sheets_bridge.mail.memory import MemoryDrafter
from sheets_bridge.model import CellValue, Plan, Snapshot
from sheets_bridge.outbox import Outbox
from sheets_bridge.planner import plan_cycle
from sheets_bridge.sheets import ApplyReport
from sheets_bridge.sheets.memory import MemorySheet
from sheets_bridge.sheets.xlsx import LocalWorkbook
from sheets_bridge.state import StateStore
from sheets_bridge.values import cell_text

pytestmark = pytest.mark.timeout(900)

STAFF = (
    "Received", "Patient First Name", "Patient Last Name", "Patient Email", "How Heard",
    "Referred By", "Referrer Email", "Visit", "Notes",
)
NOTES = STAFF.index("Notes")
FIRSTS = ("Ann", "Bo", "Cy", "Dee", "Eli", "Fay", "Gus", "Hal", "Ivy", "Jo")


class Killed(BaseException):
    """The process died here: nothing after it runs, not even a ``finally`` that writes."""


class DyingState(StateStore):
    """A state store whose writes all fail once its process is dead."""

    dead = False

    def transaction(self):  # type: ignore[no-untyped-def,override]
        if self.dead:
            raise Killed()
        return super().transaction()


class AnyCopies(MemoryDrafter):
    """A mail medium that keeps every create, copies included (Gmail makes no idempotency)."""

    search_lags: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        self.made: list[tuple[str, str, EmailMessage]] = []  # (ref, key, message)

    def create(self, key: str, message: EmailMessage) -> str:
        ref = f"d{len(self.made) + 1}"
        self.made.append((ref, key, message))
        self.messages[key] = message
        self.created += 1
        return ref

    def find_all(self, key: str) -> list[str]:
        return [ref for ref, k, _ in self.made if k == key]

    def delete(self, ref: str) -> None:
        self.made = [m for m in self.made if m[0] != ref]

    def list_keys(self) -> dict[str, str]:
        return {k: ref for ref, k, _ in self.made}


class Grid:
    """The Referrals tab as staff see it, on either backend (row 1: headers)."""

    def __init__(self, kind: str, folder: Path) -> None:
        self.kind = kind
        self.path = folder / "referrals.xlsx"
        if kind == "memory":
            self.sheet: MemorySheet | LocalWorkbook = MemorySheet([list(STAFF)])
        else:
            wb = Workbook()
            ws = wb.active
            assert ws is not None
            ws.title = "Referrals"
            ws.append(list(STAFF))
            wb.save(self.path)
            self.sheet = LocalWorkbook(self.path)

    def rows(self) -> list[list[CellValue]]:
        if isinstance(self.sheet, MemorySheet):
            assert self.sheet.grid is not None
            return [list(r) for r in self.sheet.grid]
        wb = load_workbook(self.path)
        try:
            ws = wb["Referrals"]
            return [[c.value for c in row] for row in ws.iter_rows()]
        finally:
            wb.close()

    def save(self, rows: list[list[CellValue]]) -> None:
        """Staff save the tab (an office program writes the whole sheet back)."""
        if isinstance(self.sheet, MemorySheet):
            self.sheet.grid = [list(r) for r in rows]
            self.sheet.version += 1
            return
        wb = load_workbook(self.path)
        ws = wb["Referrals"]
        ws.delete_rows(1, ws.max_row)
        for row in rows:
            ws.append([v if v != "" else None for v in row])
        wb.save(self.path)


class StaffBackend:
    """The sheet role with staff working in it meanwhile: a sort between read and write, or a
    write that fails because the workbook is open."""

    def __init__(self, grid: Grid) -> None:
        self.grid = grid
        self.kind = grid.sheet.kind
        self.sort_before_write = False
        self.busy = False

    def __getattr__(self, name: str) -> object:
        return getattr(self.grid.sheet, name)

    def read(self) -> Snapshot:
        return self.grid.sheet.read()

    def snapshot_reusable(self, snapshot: Snapshot) -> bool:
        return self.grid.sheet.snapshot_reusable(snapshot)

    def apply(self, snapshot: Snapshot, plan: Plan, columns: dict[str, int]) -> ApplyReport:
        if self.busy:
            raise WorkbookBusyError("the workbook is open (test)")
        if self.sort_before_write:
            self.sort_before_write = False
            rows = self.grid.rows()
            self.grid.save([rows[0], *reversed(rows[1:])])
        return self.grid.sheet.apply(snapshot, plan, columns)


def staff_cells(rows: list[list[CellValue]]) -> dict[str, tuple[str, ...]]:
    """Token -> the row's staff cells as text, whatever order the rows and columns are in."""
    headers = [cell_text(h) for h in rows[0]]
    where = [headers.index(h) for h in STAFF]
    notes = headers.index("Notes")
    return {
        cell_text(r[notes]): tuple(cell_text(r[i]) if i < len(r) else "" for i in where)
        for r in rows[1:]
        if notes < len(r) and cell_text(r[notes])
    }


def ids(rows: list[list[CellValue]]) -> dict[str, str]:
    headers = [cell_text(h) for h in rows[0]]
    if "Referral ID" not in headers:
        return {}
    col, notes = headers.index("Referral ID"), headers.index("Notes")
    return {
        cell_text(r[notes]): cell_text(r[col])
        for r in rows[1:]
        if col < len(r) and cell_text(r[col])
    }


class DraftingCycleMachine(RuleBasedStateMachine):
    kind: ClassVar[str] = "memory"

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="sb-drafts-"))
        data = deep_merge(BASE_CONFIG, {"sync": {"min_rows_for_breaker": 10_000}})
        self.config: BridgeConfig = parse_config(data, base=self.folder)
        self.grid = Grid(self.kind, self.folder)
        self.backend = StaffBackend(self.grid)
        self.drafter = AnyCopies()
        self.now = FIXED_NOW
        self.typed: dict[str, tuple[str, ...]] = {}
        self.known_ids: dict[str, str] = {}
        self.tokens = 0
        self.kill_at: int | None = None

    def teardown(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    # -- one cycle, as the runner runs it --------------------------------------------------
    def cycle(self) -> None:
        state = DyingState(self.config.state_dir)
        state.open()
        creates = 0

        def hook(step: str) -> None:
            nonlocal creates
            if step == "draft-created":
                creates += 1
                if self.kill_at is not None and creates == self.kill_at:
                    self.kill_at = None
                    state.dead = True
                    raise Killed()

        try:
            run_cycle(
                self.config, self.backend, state, now=self.now,  # type: ignore[arg-type]
                draft_planner=draft_planner(self.config),
                outbox=Outbox(state, self.drafter, hook=hook),
                hook=hook,
            )
        except (Killed, BackendError):
            pass  # the next cycle is the retry
        finally:
            state.close()

    # -- staff ---------------------------------------------------------------------------
    @initialize(n=st.integers(1, 4))
    def start(self, n: int) -> None:
        for _ in range(n):
            self.add_a_referral_now(0)

    @rule(first=st.integers(0, len(FIRSTS) - 1))
    def add_a_referral_now(self, first: int) -> None:
        self.tokens += 1
        token = f"tok-{self.tokens}"
        received = (self.now - timedelta(hours=2)).strftime("%Y-%m-%d %H:%M")
        row: list[CellValue] = [
            received, FIRSTS[first], f"Last{self.tokens}", f"p{self.tokens}@example.com",
            "Provider", "Dr Rivera", "rivera@clinic.example", None, token,
        ]
        rows = self.grid.rows()
        headers = [cell_text(h) for h in rows[0]]
        full = [None] * len(headers)
        for name, value in zip(STAFF, row, strict=True):
            full[headers.index(name)] = value
        rows.append(full)
        self.grid.save(rows)
        self.typed[token] = tuple(cell_text(v) for v in row)

    @precondition(lambda self: len(self.typed) > 1)
    @rule(data=st.data())
    def sort_the_rows(self, data: st.DataObject) -> None:
        rows = self.grid.rows()
        body = rows[1:]
        order = data.draw(st.permutations(range(len(body))))
        self.grid.save([rows[0], *(body[i] for i in order)])

    @precondition(lambda self: bool(self.typed))
    @rule(data=st.data(), visit=st.sampled_from(["Scheduled", "Attended", "No-show", ""]))
    def staff_type_a_visit(self, data: st.DataObject, visit: str) -> None:
        rows = self.grid.rows()
        headers = [cell_text(h) for h in rows[0]]
        at = data.draw(st.integers(1, len(rows) - 1))
        col = headers.index("Visit")
        rows[at][col] = visit or None
        self.grid.save(rows)
        token = cell_text(rows[at][headers.index("Notes")])
        cells = list(self.typed[token])
        cells[STAFF.index("Visit")] = visit
        self.typed[token] = tuple(cells)

    # -- the bridge ------------------------------------------------------------------------
    @rule()
    def sync(self) -> None:
        self.cycle()

    @rule()
    def sync_while_staff_sort_between_read_and_write(self) -> None:
        self.backend.sort_before_write = True
        self.cycle()
        self.backend.sort_before_write = False

    @rule()
    def sync_while_the_workbook_is_open(self) -> None:
        self.backend.busy = True
        self.cycle()
        self.backend.busy = False

    @rule(at=st.integers(1, 3))
    def sync_killed_between_a_create_and_its_confirm(self, at: int) -> None:
        self.kill_at = at
        self.cycle()
        self.kill_at = None

    @rule(minutes=st.sampled_from([5, 90]))
    def time_passes(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)

    # -- what must always hold ---------------------------------------------------------------
    @invariant()
    def no_draft_twice(self) -> None:
        keys = Counter(key for _, key, _ in self.drafter.made)
        assert all(n == 1 for n in keys.values()), keys
        # Which patient a draft is for: the row that carries (or carried) its Referral ID.
        token_of = {rid: token for token, rid in {**self.known_ids, **ids(self.grid.rows())}.items()}
        per_patient = Counter(
            (token_of.get(key.split(".")[0], key), key.split(".")[1])
            for _, key, _ in self.drafter.made
        )
        assert all(n == 1 for n in per_patient.values()), per_patient

    @invariant()
    def incremental_plan_equals_full_plan(self) -> None:
        """What the next cycle would plan, reusing rows derived earlier, equals, byte for byte,
        the plan made by deriving every row afresh (drafts included)."""
        snapshot = self.grid.sheet.read()
        with StateStore(self.config.state_dir) as state:
            view = state.view(self.now, notice_hours=self.config.sync.notice_hours)
            plans = [
                plan_cycle(snapshot, self.now, self.config, view, incremental=incremental,
                           draft_planner=draft_planner(self.config))
                for incremental in (True, False)
            ]
        assert plans[0].plan == plans[1].plan
        assert repr(plans[0].plan) == repr(plans[1].plan)
        assert plans[0].referrals == plans[1].referrals

    @invariant()
    def no_staff_edit_lost(self) -> None:
        assert staff_cells(self.grid.rows()) == self.typed

    @invariant()
    def ids_unique_and_kept(self) -> None:
        now = ids(self.grid.rows())
        assert len(set(now.values())) == len(now), now
        for token, rid in self.known_ids.items():
            if token in now:
                assert now[token] == rid, (token, rid, now[token])
        self.known_ids.update(now)


class XlsxDraftingCycleMachine(DraftingCycleMachine):
    kind: ClassVar[str] = "xlsx"


DraftingCycleMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=12)
XlsxDraftingCycleMachine.TestCase.settings = settings(max_examples=15, stateful_step_count=10)
TestDraftingOnMemory = DraftingCycleMachine.TestCase
TestDraftingOnWorkbook = XlsxDraftingCycleMachine.TestCase


def test_the_machine_drafts_at_all() -> None:
    """Guard against a machine that passes because nothing is ever drafted."""
    machine = DraftingCycleMachine()
    try:
        machine.start(2)
        machine.sync()
        assert len(machine.drafter.made) >= 2
        assert set(ids(machine.grid.rows()).values()) == {"R-00001", "R-00002"}
    finally:
        machine.teardown()


@pytest.mark.parametrize("machine_class", [DraftingCycleMachine, XlsxDraftingCycleMachine])
def test_a_kill_after_the_first_create_still_drafts_each_email_once(
    machine_class: type[DraftingCycleMachine],
) -> None:
    machine = machine_class()
    try:
        machine.start(2)
        machine.sync_killed_between_a_create_and_its_confirm(1)
        assert len(machine.drafter.made) == 1  # the process died after one create
        machine.sync()
        machine.no_draft_twice()
        assert len(machine.drafter.made) == 4  # two acknowledgements, two welcomes
        machine.no_staff_edit_lost()
        machine.ids_unique_and_kept()
    finally:
        machine.teardown()

