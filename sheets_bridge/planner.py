"""``plan_cycle``: from (snapshot, now, config, state) to a Plan. Pure: no clock, disk or network.

A plan is made in named phases, each in its own module, so every rule has one home:

1. **layout** (:mod:`sheets_bridge.layout`): the columns by header name, the bridge columns to
   add, merged cells; a tab that cannot be planned at all stops here;
2. **identity** (:mod:`sheets_bridge.referral_ids`): the rows as they are now, the circuit
   breakers, and every row's Referral ID;
3. **derive** (:mod:`sheets_bridge.derive`, over :mod:`sheets_bridge.rules`): each row read into
   a Referral with its Source Tag, Stage, Follow-up Due and Attention lines; duplicates flagged;
4. **drafts** (:mod:`sheets_bridge.drafting`, passed in): which emails are due;
5. **decide** (:mod:`sheets_bridge.decide`): each bridge cell three ways (current, derived, last
   written);
6. **tabs** (:mod:`sheets_bridge.worktabs`, :mod:`sheets_bridge.summaries`): the work tabs and
   summaries that changed, and a Bridge Log line when anything did.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sheets_bridge.collector import gc_paused
from sheets_bridge.columns import ColumnMap
from sheets_bridge.config import BridgeConfig
from sheets_bridge.decide import decide_cells
from sheets_bridge.derive import ReferralMemo, derive_rows, duplicates
from sheets_bridge.layout import read_layout
from sheets_bridge.model import (
    BRIDGE_LOG_TAB,
    DraftRequest,
    Plan,
    Problem,
    Referral,
    SafetyStop,
    Snapshot,
    TabContent,
)
from sheets_bridge.phase_memo import planning
from sheets_bridge.referral_ids import CarriedIds, assign_ids, breaker, collect_rows
from sheets_bridge.state_view import StateView
from sheets_bridge.worktabs import (
    build_bridge_log,
    followups_tab,
    log_moment,
    log_rows,
    sources_tab,
    summarise,
    tab_unchanged,
)

#: Hook for the tabs and drafts built from the parsed rows (summaries, drafting).
TabBuilder = Callable[
    [Sequence[Referral], datetime, BridgeConfig, Snapshot, StateView], Sequence[TabContent]
]
DraftPlanner = Callable[
    [Sequence[Referral], datetime, BridgeConfig, StateView],
    tuple[Sequence[DraftRequest], Sequence[tuple[str, str]]],
]


@dataclass(frozen=True)
class PlanResult:
    """The plan plus what apply and commit need to know about it."""

    plan: Plan
    columns: dict[str, int] = field(default_factory=dict)
    referrals: tuple[Referral, ...] = ()
    present: dict[str, str] = field(default_factory=dict)
    column_map: ColumnMap | None = None
    summary: str = ""
    logged: bool = False
    adopted: tuple[tuple[str, str, str], ...] = ()
    """(Referral ID, column, digest) of bridge cells already right: recorded, not written."""
    facets: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Referral ID -> keyed digests of its patient's email, phone, name and day received."""


@dataclass
class PlanMemo:
    """What the plans of one cycle share (same ``now`` and config): parsed rows, fingerprints.

    A cycle that makes drafts plans twice; a row whose cells did not change in between is not
    parsed or digested again.
    """

    referrals: ReferralMemo = field(default_factory=dict)
    fingerprints: dict[tuple[object, ...], str] = field(default_factory=dict)


def _stop(reason: str, now: datetime, config: BridgeConfig, state: StateView,
          snapshot: Snapshot, rows_read: int = 0) -> PlanResult:
    """A plan that writes nothing but (once per distinct reason) a Bridge Log line."""
    problems = (Problem(reason, severity="error"),)
    logged = reason not in state.last_problems
    tabs: tuple[TabContent, ...] = ()
    if logged and snapshot.referrals is not None or logged and BRIDGE_LOG_TAB in snapshot.tabs:
        entry = (log_moment(now, config.tz), "Stopped: nothing was written", reason)
        tabs = (build_bridge_log(entry, log_rows(state, config.tz)),)
    plan = Plan(problems=problems, stop=SafetyStop(reason), tab_contents=tabs, rows_read=rows_read)
    return PlanResult(plan, summary="Stopped: nothing was written", logged=logged)


def plan_cycle(
    snapshot: Snapshot,
    now: datetime,
    config: BridgeConfig,
    state: StateView,
    *,
    force: bool = False,
    tab_builders: Sequence[TabBuilder] = (),
    draft_planner: DraftPlanner | None = None,
    carried_ids: CarriedIds | None = None,
    memo: PlanMemo | None = None,
    incremental: bool = True,
    drafts_first: bool = False,
) -> PlanResult:
    """Decide everything one cycle should change: :func:`_plan_cycle`, with the collector paused."""
    with gc_paused(), planning(incremental=incremental):
        return _plan_cycle(
            snapshot, now, config, state, force=force, tab_builders=tab_builders,
            draft_planner=draft_planner, carried_ids=carried_ids, memo=memo,
            incremental=incremental, drafts_first=drafts_first,
        )


def _plan_cycle(
    snapshot: Snapshot,
    now: datetime,
    config: BridgeConfig,
    state: StateView,
    *,
    force: bool = False,
    tab_builders: Sequence[TabBuilder] = (),
    draft_planner: DraftPlanner | None = None,
    carried_ids: CarriedIds | None = None,
    memo: PlanMemo | None = None,
    incremental: bool = True,
    drafts_first: bool = False,
) -> PlanResult:
    """Decide everything one cycle should change. Deterministic for the same inputs.

    ``carried_ids`` maps (row number, ID in the cell, staff fingerprint) of a row that needs a
    new ID to the ID an earlier plan of this same cycle gave it: drafts were already made
    under that ID, so the second plan must not number the rows afresh.

    ``memo`` carries parsed rows between the plans of one cycle (same ``now`` and config): a
    row whose cells did not change is not parsed twice.

    ``incremental`` (the default) reuses what earlier cycles of this process derived for rows
    whose staff cells are unchanged and whose clock horizon has not passed (ARCHITECTURE.md,
    "Incremental planning"); ``False`` derives and digests every row afresh. Both give the same
    plan: the property tests hold them to it.

    ``drafts_first`` says the caller makes this plan's drafts and then plans again (a cycle
    with an outbox): such a plan, when it has drafts, leaves out the work tabs, the summaries
    and the Bridge Log, which the second plan builds from the sheet as drafted and which
    nothing reads from this one (ARCHITECTURE.md, "A plan whose drafts come first builds no
    tabs"). Its IDs, cell writes and drafts are the full plan's.
    """
    now = now.astimezone(config.tz)
    tab = snapshot.referrals
    if tab is None:
        return _stop(
            f"The {config.sheet.tab} tab is missing: rename it back, or set sheet.tab in the "
            "config to the tab that holds the referrals",
            now, config, state, snapshot,
        )
    layout = read_layout(tab, config.columns.aliases)
    if isinstance(layout, str):
        rows_read = len(tab.rows) if "appears more than once" in layout else 0
        return _stop(layout, now, config, state, snapshot, rows_read)
    problems = list(layout.problems)

    # -- identity --------------------------------------------------------------------------
    rows = collect_rows(tab, layout, secret=state.secret, incremental=incremental)
    if not force:
        stopped = breaker(rows, tab.title, state, config.sync)
        if stopped is not None:
            return _stop(stopped, now, config, state, snapshot, len(tab.rows) if rows else 0)
    ids = assign_ids(rows, layout, state, carried_ids, force=force)
    if ids.stop is not None:
        return _stop(ids.stop, now, config, state, snapshot, len(tab.rows))

    # -- derive ----------------------------------------------------------------------------
    referrals, source_overrides = derive_rows(
        rows, tab, layout, snapshot, config, now, memo.referrals if memo is not None else None,
        incremental=incremental,
    )
    problems.extend(Problem(message) for message in source_overrides.problems)
    duplicate_lines, duplicate_later = duplicates(
        referrals, config.sync.duplicate_window_days, now
    )
    # Lines that come after a row's own problems: possible duplicates, then what drafting says.
    late: dict[str, list[str]] = {
        referrals[index].referral_id: [line] for index, line in duplicate_lines.items()
    }

    # -- drafts ----------------------------------------------------------------------------
    drafts: Sequence[DraftRequest] = ()
    if draft_planner is not None:
        drafts, draft_problems = draft_planner(
            [
                ref
                for index, (ref, r) in enumerate(zip(referrals, rows, strict=True))
                if not r.blocked and index not in duplicate_later
            ],
            now, config, state,
        )
        for rid, line in draft_problems:
            late.setdefault(rid, []).append(line)

    # -- decide ----------------------------------------------------------------------------
    decided = decide_cells(
        rows, referrals, late, layout, state, config, now, ids.assigned,
        date1904=snapshot.date1904, incremental=incremental,
    )

    # -- tabs ------------------------------------------------------------------------------
    present = {r.final_id: r.identity for r in rows if r.final_id}
    facets = {r.final_id: r.facets for r in rows if r.final_id and r.facets}
    final = tuple(decided.referrals)
    # A plan drafted before it is planned again is never applied: its tabs would be thrown away.
    builds_tabs = not (drafts_first and drafts)
    candidates: list[TabContent] = []
    if builds_tabs:
        candidates.append(followups_tab(final, config.practice.phone_region,
                                        incremental=incremental))
        candidates.append(sources_tab(final, source_overrides, incremental=incremental))
        for builder in tab_builders:
            candidates.extend(builder(final, now, config, snapshot, state))
    tabs = [
        t
        for t in candidates
        if not tab_unchanged(
            t, snapshot.tabs.get(t.title), date1904=snapshot.date1904, incremental=incremental
        )
    ]

    # -- the Bridge Log --------------------------------------------------------------------
    run_problems = [p.message for p in problems]
    summary = summarise(
        ids.assigned, decided.writes, layout.header_writes, tabs, drafts, decided.stale_restores,
        decided.notices,
    )
    logged = bool(decided.writes or layout.header_writes or tabs or drafts) or (
        frozenset(run_problems) != state.last_problems
    )
    if state.failures:
        # The cycles before this one failed: if this plan lands, that episode is over. Said once,
        # here, so the Bridge Log shows the failure's start (a row kept in the state) and its end.
        summary = recovery_line(state.failures) + (f"; {summary[:1].lower()}{summary[1:]}"
                                                   if summary else "")
        logged = True
    if logged and builds_tabs:
        entry = (log_moment(now, config.tz), summary or "No changes", "\n".join(run_problems))
        tabs.append(build_bridge_log(entry, log_rows(state, config.tz)))
    plan = Plan(
        header_writes=layout.header_writes,
        cell_writes=tuple(decided.writes),
        tab_contents=tuple(tabs),
        drafts=tuple(drafts),
        problems=tuple(problems),
        notices=tuple(decided.notices),
        assigned_ids=ids.assigned,
        next_id_number=ids.next_number,
        rows_read=len(tab.rows),
        staff_columns=dict(layout.staff),
    )
    return PlanResult(
        plan,
        columns=layout.columns,
        referrals=final,
        present=present,
        column_map=layout.cols,
        summary=summary,
        logged=logged,
        adopted=tuple(decided.adopted),
        facets=facets,
    )


def recovery_line(failures: int) -> str:
    """The Bridge Log's (and the log's) words for the end of a failure episode."""
    return f"Recovered after {failures} failed {'cycle' if failures == 1 else 'cycles'}"


__all__ = [
    "DraftPlanner", "PlanMemo", "PlanResult", "TabBuilder", "gc_paused", "plan_cycle",
    "recovery_line",
]
