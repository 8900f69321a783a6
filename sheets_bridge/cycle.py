"""One sync cycle: read -> plan -> (drafts) -> journal -> apply -> commit.

The order is the safety argument. Drafts are journalled as pending before they are created and
confirmed after; cell writes are journalled before the sheet is touched and confirmed after; so a
kill at any point leaves either the old state or a state the next cycle recognises as its own.
A sheet that changed between read and write is read and planned again, never overwritten.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from sheets_bridge.collector import gc_paused
from sheets_bridge.config import BridgeConfig
from sheets_bridge.dates import format_moment
from sheets_bridge.draft_keys import DraftKey
from sheets_bridge.errors import BackendError, BridgeError, ClockBehindError, SnapshotStaleError
from sheets_bridge.identity import referrer_key
from sheets_bridge.messages import HeaderInjectionError, InvalidAddressError, build_message
from sheets_bridge.model import Problem, Snapshot
from sheets_bridge.outbox import Outbox, Outgoing
from sheets_bridge.planner import DraftPlanner, PlanMemo, PlanResult, TabBuilder, plan_cycle
from sheets_bridge.sheets import ApplyReport, SheetBackend
from sheets_bridge.state import RunRecord, StateStore

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
#: Test hook for the kill-at-every-step harness (RELIABILITY.md harness K); None in production.
StepHook = Callable[[str], None]
#: Asked at the cycle's safe points (before drafting, before the journal): True stops it there,
#: with nothing of this cycle written (the daemon's SIGTERM, RELIABILITY.md F24).
StopCheck = Callable[[], bool]


class CycleInterruptedError(BridgeError):
    """The cycle was asked to stop at a safe point; nothing of it was written."""


@dataclass
class CycleReport:
    """What a cycle did, in counts and plain words (safe to print and log: no patient data)."""

    outcome: str = "ok"
    rows_read: int = 0
    referrals: int = 0
    rows_with_problems: int = 0
    problems: list[Problem] = field(default_factory=list)
    cells_written: int = 0
    cells_skipped: int = 0
    ids_assigned: int = 0
    headers_added: list[str] = field(default_factory=list)
    tabs_written: list[str] = field(default_factory=list)
    drafts_made: list[str] = field(default_factory=list)
    summary: str = ""
    stop_reason: str = ""
    result: PlanResult | None = None
    attempts: int = 0
    notes: list[str] = field(default_factory=list)
    """What a person should know about this run besides the plan (a state rebuilt, say)."""
    started_monotonic: float = field(default_factory=time.monotonic)

    @property
    def duration(self) -> float:
        """Seconds since the cycle began (a monotonic clock: a clock jump does not bend it)."""
        return time.monotonic() - self.started_monotonic


def _step(hook: StepHook | None, name: str) -> None:
    if hook is not None:
        hook(name)


def _state_note(state: StateStore, adopted: int, outbox: Outbox | None) -> str | None:
    """One line, once, when the state was lost or damaged: what the bridge did about it."""
    taken = (
        f"{adopted} drafts already in {outbox.drafter.describe()} were taken in and none is "
        "drafted again"
        if adopted and outbox is not None
        else ""
    )
    if state.recovered_from is not None:
        line = (
            f"The state file was unreadable: it was set aside as {state.recovered_from.name} and "
            "rebuilt from the sheet and the drafts"
        )
        return f"{line}; {taken}" if taken else line
    if taken:
        return f"The state was new: {taken}"
    return None


@gc_paused()
def run_cycle(
    config: BridgeConfig,
    sheet: SheetBackend,
    state: StateStore,
    *,
    now: datetime,
    dry_run: bool = False,
    force: bool = False,
    tab_builders: Sequence[TabBuilder] = (),
    draft_planner: DraftPlanner | None = None,
    outbox: Outbox | None = None,
    hook: StepHook | None = None,
    report: CycleReport | None = None,
    should_stop: StopCheck | None = None,
) -> CycleReport:
    """Run one cycle against an open state store and a sheet backend.

    The cyclic garbage collector is paused for the whole cycle (:mod:`sheets_bridge.collector`):
    the read and the plan pause it themselves, and the state view, the apply and the commit in
    between allocate tens of thousands of tuples too; with it on they paid for walks over
    everything the read and plan had just made.

    ``outbox`` makes the drafts the plan asks for; without one (a dry run, or drafting off)
    drafts are planned and reported but not made. ``report`` is filled as the cycle goes, so a
    caller still knows what a cycle that raised had done (drafts made before a failed write).

    A ``now`` earlier than the last cycle's (a clock set back) raises ``ClockBehindError``
    before anything is touched, unless ``force``.
    """
    report = report if report is not None else CycleReport()
    check_clock(state, now, config, force=force)
    adopted = 0
    if outbox is not None and not dry_run:
        outbox.settle(now)
        adopted = outbox.adopted
    note = _state_note(state, adopted, outbox)
    if note:
        report.notes.append(note)
    started = now
    drafts_done = False
    carried: dict[tuple[int, str, str], str] = {}
    memo = PlanMemo()
    snapshot: Snapshot | None = None
    for attempt in range(1, MAX_ATTEMPTS + 2):
        report.attempts = attempt
        # After drafting, the second plan reuses the snapshot if the sheet is byte-identical.
        if snapshot is None or not drafts_done or not sheet.snapshot_reusable(snapshot):
            snapshot = sheet.read()
        _step(hook, "read")
        view = state.view(now, notice_hours=config.sync.notice_hours)
        result = plan_cycle(
            snapshot,
            now,
            config,
            view,
            force=force,
            tab_builders=tab_builders,
            draft_planner=draft_planner,
            carried_ids=carried,
            memo=memo,
            # Only the plan after the drafts is applied: the one before them needs no tabs.
            drafts_first=outbox is not None and not dry_run and not drafts_done,
        )
        if drafts_done and result.plan.drafts:
            # This cycle already made its drafts; any left over (an address the message
            # builder refused) waits for the next cycle instead of looping here.
            result = replace(result, plan=replace(result.plan, drafts=()))
        plan = result.plan
        _fill_counts(report, result)
        if dry_run:
            return report

        if plan.stop is not None:
            report.outcome = "stopped"
            report.stop_reason = plan.stop.reason
            if plan.tab_contents:
                try:
                    applied = sheet.apply(snapshot, plan, result.columns)
                    report.tabs_written = applied.tabs_written
                except BackendError as error:
                    log.warning("could not write the Bridge Log: %s", error)
            state.record_run(_run(result, started, "stopped", report), now)
            # Said at WARNING once per reason (as the Bridge Log does), not at every cycle.
            (log.warning if result.logged else log.info)("safety stop: %s", plan.stop.reason)
            return report

        if should_stop is not None and should_stop():
            raise CycleInterruptedError("stopped at a safe point: nothing of this cycle written")
        if plan.drafts and outbox is not None and not drafts_done:
            # Drafts are keyed by Referral ID, so the IDs this plan issues are journalled first:
            # if the sheet is re-sorted, or the process dies, before they are written, the next
            # plan gives each row back its own ID (by row identity) instead of issuing the
            # numbers again in the new row order, which would hand a draft to another patient.
            state.record_intent((), plan.assigned_ids, plan.next_id_number, now,
                                present=result.present, facets=result.facets)
            _step(hook, "ids")
            carried = {
                (w.row.number, w.row.referral_id, w.row.fingerprint): w.new
                for w in plan.cell_writes
                if w.column == "Referral ID"
            }
            report.drafts_made = outbox.make_all(outgoing(result, config, now), now)
            _step(hook, "drafts")
            drafts_done = True
            continue  # plan again so the Emails column shows what was just drafted

        if plan.is_quiet:
            state.record_quiet(result.present, now, result.facets, duration=report.duration)
            report.outcome = "quiet"
            return report

        if attempt > MAX_ATTEMPTS:
            raise BackendError(
                "The sheet kept changing while the bridge tried to write: it will try again "
                "next cycle",
                backend=sheet.kind,
                retryable=True,
            )
        state.record_intent(
            plan.cell_writes, plan.assigned_ids, plan.next_id_number, now,
            present=result.present, facets=result.facets,
        )
        _step(hook, "journal")
        try:
            applied = sheet.apply(snapshot, plan, result.columns)
        except SnapshotStaleError:
            log.info("the sheet changed while planning; reading it again (attempt %d)", attempt)
            snapshot = None
            continue
        _step(hook, "apply")
        _fill_applied(report, applied)
        state.commit_cycle(
            applied=applied.applied,
            present=result.present,
            notices=plan.notices,
            adopted=result.adopted,
            facets=result.facets,
            run=_run(result, started, "ok", report),
            now=now,
        )
        _step(hook, "commit")
        return report
    raise AssertionError("unreachable")  # pragma: no cover


def check_clock(state: StateStore, now: datetime, config: BridgeConfig, *, force: bool) -> None:
    """Refuse a cycle whose ``now`` is earlier than the last cycle's (issue 12, item 3).

    Planned from an earlier time, events already handled look new again (thank-yous,
    acknowledgements, a quarter's feedback already asked) and cells written later look out of
    date. ``--force`` runs anyway (the clock is right and the last run was wrong) and makes
    this ``now`` the one later cycles are compared with.
    """
    last = state.last_now()
    if force or last is None or now.timestamp() >= last.timestamp():
        return
    raise ClockBehindError(
        f"The clock reads {format_moment(now, config.tz)}, earlier than the last run "
        f"({format_moment(last, config.tz)}): nothing was written and no email drafted. Fix the "
        "system clock (or the --now given); if the clock is right, `sheets-bridge sync --force` "
        "runs once anyway"
    )


def outgoing(result: PlanResult, config: BridgeConfig, now: datetime) -> Iterator[Outgoing]:
    """The plan's drafts as messages for the outbox, each built when the outbox takes it (a
    batch at a time: a first sync never holds all its messages); one refused by the message
    builder (an address it cannot use) is left out and logged by Referral ID and kind only."""
    practice = config.practice
    domain = practice.owner_email.rpartition("@")[2] or "sheets-bridge.invalid"
    by_id = {r.referral_id: r for r in result.referrals}
    for draft in result.plan.drafts:
        try:
            message = build_message(
                draft, from_addr=practice.owner_email, from_name=practice.name, now=now,
                domain=domain,
            )
        except (HeaderInjectionError, InvalidAddressError) as error:
            log.warning("no %s draft for %s: %s", draft.kind, draft.referral_id, error)
            continue
        parsed = DraftKey.parse(draft.key)
        referral = by_id.get(draft.referral_id)
        who = (parsed.referrer if parsed else "") or (referrer_key(referral) if referral else "")
        yield Outgoing(draft.key, draft.referral_id, draft.kind, message, who, draft.facets)


def _fill_counts(report: CycleReport, result: PlanResult) -> None:
    plan = result.plan
    report.result = result
    report.rows_read = plan.rows_read
    report.referrals = len(result.referrals)
    report.rows_with_problems = sum(1 for r in result.referrals if r.attention)
    report.problems = list(plan.problems)
    report.ids_assigned = len(plan.assigned_ids)
    report.headers_added = [h.header for h in plan.header_writes]
    report.tabs_written = [t.title for t in plan.tab_contents]
    report.cells_written = len(plan.cell_writes)
    report.summary = result.summary


def _fill_applied(report: CycleReport, applied: ApplyReport) -> None:
    report.cells_written = len(applied.applied)
    report.cells_skipped = len(applied.skipped)
    report.headers_added = [h.header for h in applied.headers_added]
    report.tabs_written = list(applied.tabs_written)
    for write, reason in applied.skipped:
        log.info("skipped %s of %s: %s", write.column, write.row.target_id or "a new row", reason)


def _run(result: PlanResult, started: datetime, outcome: str, report: CycleReport) -> RunRecord:
    return RunRecord(
        started=started,
        outcome=outcome,
        rows_read=result.plan.rows_read,
        cells_written=report.cells_written,
        tabs_written=tuple(report.tabs_written),
        drafts=len(report.drafts_made),
        problems=tuple(p.message for p in result.plan.problems),
        summary=result.summary,
        logged=result.logged,
        duration=report.duration,
    )
