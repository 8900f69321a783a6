"""``plan_cycle``: from (snapshot, now, config, state) to a Plan. Pure: no clock, disk or network.

The order of work: find the columns, trip the circuit breakers, give every row its Referral ID
(keeping IDs with their rows, re-issuing copies, restoring cleared or edited IDs), derive each
row's bridge values, decide each bridge cell three ways (current, derived, last written), and
rebuild the summary tabs that changed.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sheets_bridge.columns import ColumnMap, column_letter, header_row_elsewhere, resolve_columns
from sheets_bridge.config import BridgeConfig
from sheets_bridge.drafting import KIND_LABELS
from sheets_bridge.identity import format_id, id_number, row_fingerprint, row_identity
from sheets_bridge.model import (
    BRIDGE_LOG_TAB,
    MAX_CELL_CHARS,
    SOURCES_TAB,
    CellValue,
    CellWrite,
    DraftRequest,
    HeaderWrite,
    Notice,
    Plan,
    Problem,
    Referral,
    RowRef,
    SafetyStop,
    SheetRow,
    Snapshot,
    TabContent,
)
from sheets_bridge.rules import RuleContext, format_moment, is_empty_row, read_referral
from sheets_bridge.state_view import StateView, WrittenRecord, value_hash
from sheets_bridge.values import cell_text, comparison_key
from sheets_bridge.worktabs import (
    build_bridge_log,
    build_followups,
    build_sources,
    read_source_overrides,
    tab_matches,
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


@dataclass
class PlanMemo:
    """What the plans of one cycle share (same ``now`` and config): parsed rows, fingerprints.

    A cycle that makes drafts plans twice; a row whose cells did not change in between is not
    parsed or digested again.
    """

    referrals: dict[tuple[object, ...], Referral] = field(default_factory=dict)
    fingerprints: dict[tuple[object, ...], str] = field(default_factory=dict)


def _stop(reason: str, now: datetime, config: BridgeConfig, state: StateView,
          snapshot: Snapshot, rows_read: int = 0) -> PlanResult:
    """A plan that writes nothing but (once per distinct reason) a Bridge Log line."""
    problems = (Problem(reason, severity="error"),)
    logged = reason not in state.last_problems
    tabs: tuple[TabContent, ...] = ()
    if logged and snapshot.referrals is not None or logged and BRIDGE_LOG_TAB in snapshot.tabs:
        entry = (format_moment(now, config.tz), "Stopped: nothing was written", reason)
        tabs = (build_bridge_log(entry, _log_rows(state, config)),)
    plan = Plan(problems=problems, stop=SafetyStop(reason), tab_contents=tabs, rows_read=rows_read)
    return PlanResult(plan, summary="Stopped: nothing was written", logged=logged)


@dataclass
class _Row:
    """Working data for one non-empty row while the plan is made."""

    sheet: SheetRow
    identity: str
    fingerprint: str
    current_id: str
    final_id: str = ""
    notices: list[str] = field(default_factory=list)
    blocked: bool = False  # Attention only, no other writes (an unmatched edited ID, a merged one)
    block_reason: str = (
        "Referral ID was changed by hand and the bridge cannot tell which referral this is: "
        "put back the original ID, or clear the cell to get a new one"
    )


def plan_cycle(
    snapshot: Snapshot,
    now: datetime,
    config: BridgeConfig,
    state: StateView,
    *,
    force: bool = False,
    tab_builders: Sequence[TabBuilder] = (),
    draft_planner: DraftPlanner | None = None,
    carried_ids: Mapping[tuple[int, str, str], str] | None = None,
    memo: PlanMemo | None = None,
) -> PlanResult:
    """Decide everything one cycle should change. Deterministic for the same inputs.

    ``carried_ids`` maps (row number, ID in the cell, staff fingerprint) of a row that needs a
    new ID to the ID an earlier plan of this same cycle gave it: drafts were already made
    under that ID, so the second plan must not number the rows afresh.

    ``memo`` carries parsed rows between the plans of one cycle (same ``now`` and config): a
    row whose cells did not change is not parsed twice.
    """
    now = now.astimezone(config.tz)
    tab = snapshot.referrals
    if tab is None:
        return _stop(
            f"The {config.sheet.tab} tab is missing: rename it back, or set sheet.tab in the "
            "config to the tab that holds the referrals",
            now, config, state, snapshot,
        )
    aliases = config.columns.aliases
    cols = resolve_columns(tab.headers, aliases)
    problems: list[Problem] = []

    if len(cols.staff) + len(cols.bridge) < 2:
        where = header_row_elsewhere([r.values for r in tab.rows], aliases)
        if where is not None:
            return _stop(
                f"The headers of the {tab.title} tab seem to be on row {tab.rows[where].number}: "
                "move them to row 1 (the bridge never reads data rows as headers)",
                now, config, state, snapshot,
            )
        if not tab.rows:
            return _stop(
                f"The {tab.title} tab has no header row: run `sheets-bridge init --config PATH` "
                "to add the headers",
                now, config, state, snapshot,
            )
        return _stop(
            f"Row 1 of the {tab.title} tab holds none of the expected headers (Received, Patient "
            "First Name, ...): put the headers back in row 1, or add aliases under columns.aliases",
            now, config, state, snapshot,
        )

    for name, positions in sorted(cols.duplicates.items()):
        letters = " and ".join(column_letter(p) for p in positions)
        problems.append(
            Problem(
                f"{name} appears more than once (columns {letters}): rename or delete all but one; "
                "the bridge reads and writes none of them until then",
                column=name,
            )
        )
    if "Referral ID" in cols.duplicates:
        problems_text = "; ".join(p.message for p in problems)
        return _stop(problems_text, now, config, state, snapshot, len(tab.rows))
    for name in cols.missing_staff:
        if name == "Notes":
            continue
        problems.append(
            Problem(
                f"The {name} column is missing: add a column headed {name} (or an alias in "
                "columns.aliases); the rules that need it are skipped",
                column=name,
                severity="info" if name not in ("Received", "Patient First Name") else "warning",
            )
        )

    # -- bridge columns and where they are -------------------------------------------------
    width = max([len(tab.headers), *(len(r.values) for r in tab.rows)], default=0)
    columns = dict(cols.bridge)
    header_writes = []
    for name in cols.missing_bridge:
        columns[name] = width
        header_writes.append(HeaderWrite(width, name))
        width += 1
    for name in cols.duplicates:
        columns.pop(name, None)

    # -- merged cells (B3) -----------------------------------------------------------------
    blocked_cells: set[tuple[int, int]] = set()
    merged_rows: dict[int, list[str]] = {}
    overrides: dict[int, dict[int, CellValue]] = {}
    by_number = {r.number: r for r in tab.rows}
    bridge_positions = {col: name for name, col in columns.items()}
    staff_positions = {col: name for name, col in cols.staff.items()}
    for rng in tab.merged:
        if rng.first_row == rng.last_row and rng.first_col == rng.last_col:
            continue
        top = by_number.get(rng.first_row)
        top_value = top.get(rng.first_col) if top else None
        for col in range(rng.first_col, rng.last_col + 1):
            if col in bridge_positions:
                for number in range(max(rng.first_row, 2), rng.last_row + 1):
                    blocked_cells.add((number, col))
                problems.append(
                    Problem(
                        f"Cells of {bridge_positions[col]} are merged across rows "
                        f"{rng.first_row}–{rng.last_row}: unmerge them so the bridge can write there",
                        column=bridge_positions[col],
                    )
                )
            elif col in staff_positions and rng.last_row > rng.first_row:
                for number in range(max(rng.first_row, 2), rng.last_row + 1):
                    merged_rows.setdefault(number, []).append(
                        f"{staff_positions[col]} is merged across rows "
                        f"{rng.first_row}–{rng.last_row}: unmerge the cells and fill in each row"
                    )
                    if number != rng.first_row:
                        overrides.setdefault(number, {})[col] = top_value

    rows: list[_Row] = []
    staff_cols = cols.staff
    staff_key = tuple(sorted(staff_cols.items()))

    def _fingerprint(sheet_row: SheetRow) -> str:
        if memo is None:
            return row_fingerprint(sheet_row.values, staff_cols)
        key = (staff_key, sheet_row.values)
        found = memo.fingerprints.get(key)
        if found is None:
            found = memo.fingerprints[key] = row_fingerprint(sheet_row.values, staff_cols)
        return found
    id_col = columns.get("Referral ID")
    for sheet_row in tab.rows:
        if sheet_row.number in overrides:
            values = list(sheet_row.values)
            for col, value in overrides[sheet_row.number].items():
                values.extend([None] * (col + 1 - len(values)))
                values[col] = value
            sheet_row = replace(sheet_row, values=tuple(values))
        if is_empty_row(sheet_row, cols):
            continue
        current = cell_text(sheet_row.get(cols.bridge.get("Referral ID"))).strip()
        rows.append(
            _Row(
                sheet=sheet_row,
                identity=row_identity(sheet_row, cols.staff),
                # Only a row without an ID is found by its fingerprint at write time.
                fingerprint="" if current else _fingerprint(sheet_row),
                current_id=current,
            )
        )

    # -- circuit breakers (R5) -------------------------------------------------------------
    previously = {rid for rid, rec in state.ids.items() if rec.present}
    found = {r.current_id for r in rows if r.current_id}
    if not force and len(previously) >= config.sync.min_rows_for_breaker:
        if not rows:
            return _stop(
                f"The {tab.title} tab is empty but held {len(previously)} referrals last time: "
                "nothing was written. Restore the rows (File > Version history, or a backup), "
                "or run `sheets-bridge sync --force` if emptying it was on purpose",
                now, config, state, snapshot,
            )
        missing = previously - found
        if len(missing) > config.sync.max_missing_ids_fraction * len(previously):
            return _stop(
                f"{len(missing)} of the {len(previously)} Referral IDs seen last time are gone "
                f"from the {tab.title} tab: nothing was written. Check that no rows were deleted "
                "or IDs cleared by mistake, or run `sheets-bridge sync --force` if it was on "
                "purpose",
                now, config, state, snapshot, len(tab.rows),
            )

    # -- Referral IDs (B23, B24) -----------------------------------------------------------
    next_number = state.next_id_number
    for rid in (*found, *state.ids):
        seen_number = id_number(rid)
        if seen_number is not None and (state.fresh or rid in state.ids):
            next_number = max(next_number, seen_number + 1)
    assigned: dict[str, str] = {}

    def issue(identity: str) -> str:
        nonlocal next_number
        rid = format_id(next_number)
        next_number += 1
        assigned[rid] = identity
        return rid

    groups: dict[str, list[_Row]] = {}
    for r in rows:
        if r.current_id:
            groups.setdefault(r.current_id, []).append(r)
    known_missing = {
        rid: rec.identity for rid, rec in state.ids.items() if rid not in found
    }
    identity_to_missing: dict[str, list[str]] = {}
    for rid, identity in known_missing.items():
        identity_to_missing.setdefault(identity, []).append(rid)

    def restore_by_identity(r: _Row) -> str | None:
        candidates = identity_to_missing.get(r.identity, [])
        if len(candidates) == 1:
            rid = candidates.pop()
            return rid
        return None

    pending_new: list[_Row] = []
    for rid, members in groups.items():
        known = rid in state.ids or state.fresh and id_number(rid) is not None
        if not known:
            for r in members:
                restored = restore_by_identity(r)
                if restored:
                    r.final_id = restored
                    r.notices.append(
                        f"Referral ID was changed by hand: the bridge put back {restored}"
                    )
                else:
                    r.blocked = True
                    r.final_id = ""
            continue
        keeper = members[0]
        if len(members) > 1:
            id_record = state.ids.get(rid)
            matching = [
                m for m in members if id_record is not None and m.identity == id_record.identity
            ]
            keeper = matching[0] if matching else members[0]
        keeper.final_id = rid
        for r in members:
            if r is not keeper:
                pending_new.append(r)
                r.notices.append(
                    f"This row carried the same Referral ID as another row ({rid}), as a copy "
                    "does: it got its own ID"
                )
    carried = carried_ids or {}
    for r in rows:
        key = (r.sheet.number, r.current_id, r.fingerprint)
        if not r.current_id and key in carried:
            r.final_id = carried[key]
            assigned[r.final_id] = r.identity
            next_number = max(next_number, (id_number(r.final_id) or 0) + 1)
            pool = identity_to_missing.get(r.identity)
            if pool and r.final_id in pool:
                pool.remove(r.final_id)
    for r in rows:
        if r.final_id:
            continue
        if not r.current_id and id_col is not None and (r.sheet.number, id_col) in blocked_cells:
            # B3: the ID cell is inside merged cells, so no ID can be written for this row;
            # issuing one every cycle would only burn numbers.
            r.blocked = True
            r.block_reason = (
                "Referral ID is in merged cells: unmerge them so the bridge can give this row "
                "its own ID"
            )
            continue
        if not r.current_id:
            restored = restore_by_identity(r)
            if restored:
                r.final_id = restored
                # A pending ID was journalled by a cycle that died before the sheet was written:
                # the row never showed it, so nobody cleared it.
                if not state.ids[restored].pending:
                    r.notices.append(
                        f"Referral ID was cleared by hand: the bridge put back {restored}"
                    )
            else:
                pending_new.append(r)
    for r in sorted(pending_new, key=lambda item: item.sheet.number):
        again = carried.get((r.sheet.number, r.current_id, r.fingerprint))
        if again and again not in assigned:
            r.final_id = again
            assigned[again] = r.identity
            next_number = max(next_number, (id_number(again) or 0) + 1)
        else:
            r.final_id = issue(r.identity)

    # -- derive each row -------------------------------------------------------------------
    source_overrides = read_source_overrides(snapshot.tabs.get(SOURCES_TAB))
    for message in source_overrides.problems:
        problems.append(Problem(message))
    ctx = RuleContext.from_config(
        config, now, tag_overrides=source_overrides.tags, date1904=snapshot.date1904
    )
    referrals: list[Referral] = []
    # Everything besides the row itself that its parse depends on (now and config are fixed
    # for the memo's lifetime, one cycle).
    context_key = (
        tuple(sorted(cols.staff.items())),
        tuple(sorted(source_overrides.tags.items())),
        snapshot.date1904,
    )
    for r in rows:
        extra = list(merged_rows.get(r.sheet.number, ()))
        if r.blocked:
            extra.insert(0, r.block_reason)
        emails = cell_text(r.sheet.get(columns.get("Emails"))) if "Emails" in cols.bridge else ""
        memo_key = (context_key, r.sheet.number, r.sheet.values, r.final_id, tuple(extra), emails)
        referral = memo.referrals.get(memo_key) if memo is not None else None
        if referral is None:
            uncalculated = (
                frozenset(
                    name
                    for name, col in cols.staff.items()
                    if (r.sheet.number, col) in tab.formula_cells and r.sheet.get(col) is None
                )
                if tab.formula_cells
                else frozenset()
            )
            referral = read_referral(
                r.sheet,
                cols,
                ctx,
                referral_id=r.final_id,
                leading=extra,
                emails=emails,
                uncalculated=uncalculated,
            )
            if memo is not None:
                memo.referrals[memo_key] = referral
        referrals.append(referral)
    duplicate_lines, duplicate_later = _flag_duplicates(
        referrals, config.sync.duplicate_window_days
    )
    # Lines that come after a row's own problems: possible duplicates, then what drafting says.
    late: dict[str, list[str]] = {
        referrals[index].referral_id: [line] for index, line in duplicate_lines.items()
    }

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

    # -- decide every bridge cell ----------------------------------------------------------
    # Rows the state has no record of at all (new, or the state file was lost and rebuilt):
    # what their bridge cells hold cannot be told from a hand edit, so it is simply rewritten.
    known_rows = {rid for rid, _ in state.written}
    notices_by_id: dict[str, list[str]] = {}
    for notice in state.notices:
        notices_by_id.setdefault(notice.referral_id, []).append(notice.message)
    new_notices: list[Notice] = []
    writes: list[CellWrite] = []
    stale_restores = 0
    stamp = format_moment(now, config.tz)
    ledger_lines = _emails_by_id(state, config)
    final_referrals: list[Referral] = []
    adopted: list[tuple[str, str, str]] = []
    for r, referral in zip(rows, referrals, strict=True):
        rid = r.final_id
        ref = RowRef(r.sheet.number, r.current_id, r.fingerprint, target_id=rid)
        row_writes: list[CellWrite] = []
        tail = late.get(rid)
        if tail:
            referral = replace(referral, attention=(*referral.attention, *tail))
        if r.blocked:
            attention = _attention_text(referral.attention)
            attention_col = columns.get("Attention")
            if attention_col is not None and (r.sheet.number, attention_col) not in blocked_cells:
                current = cell_text(r.sheet.get(attention_col))
                if current != attention:
                    writes.append(CellWrite(ref, "Attention", current, attention))
            final_referrals.append(referral)
            continue
        if id_col is not None and r.current_id != rid and (r.sheet.number, id_col) not in blocked_cells:
            row_writes.append(CellWrite(ref, "Referral ID", cell_text(r.sheet.get(id_col)), rid))
        # Notes kept from earlier cycles first (oldest first, as the state returns them), then
        # this cycle's, in the order they are stored: the next cycle rebuilds the same text.
        stored = notices_by_id.get(rid, [])
        notes_now = [*stored, *(m for m in r.notices if m not in stored)]
        for message in r.notices:
            new_notices.append(Notice(rid, message, now))
        desired = {
            "Source Tag": referral.source_tag,
            "Stage": referral.stage,
            "Follow-up Due": format_moment(referral.follow_up_due, config.tz),
        }
        hand_edits: list[str] = []
        for name in ("Source Tag", "Stage", "Follow-up Due", "Emails"):
            target = columns.get(name)
            if target is None or (r.sheet.number, target) in blocked_cells:
                continue
            current = cell_text(r.sheet.get(target))
            record = state.written.get((rid, name))
            if name == "Emails":
                if rid in ledger_lines:
                    want = ledger_lines[rid]
                elif record is None:
                    continue  # nothing drafted and no history: staff text here is adopted
                else:
                    want = ""
            else:
                want = desired[name]
            verdict = _decide(current, want, record, fresh_row=rid in assigned or rid not in known_rows)
            if verdict == "keep":
                if _unconfirmed(current, record):
                    adopted.append((rid, name, value_hash(current)))
                continue
            if verdict == "hand":
                hand_edits.append(name)
            elif verdict == "stale":
                stale_restores += 1
            row_writes.append(CellWrite(ref, name, current, want))
        for name in hand_edits:
            message = f"{name} was changed by hand: the bridge put its value back (it keeps that column)"
            if message not in notes_now:
                notes_now.append(message)
                new_notices.append(Notice(rid, message, now))
        attention = _attention_text((*notes_now, *referral.attention))
        target = columns.get("Attention")
        if target is not None and (r.sheet.number, target) not in blocked_cells:
            current = cell_text(r.sheet.get(target))
            record = state.written.get((rid, "Attention"))
            verdict = _decide(
                current, attention, record, fresh_row=rid in assigned or rid not in known_rows
            )
            if verdict == "keep" and _unconfirmed(current, record):
                adopted.append((rid, "Attention", value_hash(current)))
            if verdict != "keep":
                if verdict == "hand":
                    message = (
                        "Attention was changed by hand: the bridge put its value back "
                        "(write notes in Notes)"
                    )
                    if message not in notes_now:
                        notes_now.append(message)
                        new_notices.append(Notice(rid, message, now))
                        attention = _attention_text((*notes_now, *referral.attention))
                row_writes.append(CellWrite(ref, "Attention", current, attention))
        target = columns.get("Bridge Updated")
        if target is not None and (r.sheet.number, target) not in blocked_cells:
            current = cell_text(r.sheet.get(target))
            record = state.written.get((rid, "Bridge Updated"))
            edited = record is not None and not record.is_ours(value_hash(current))
            if row_writes or edited:
                row_writes.append(CellWrite(ref, "Bridge Updated", current, stamp))
            elif record is not None and _unconfirmed(current, record):
                adopted.append((rid, "Bridge Updated", value_hash(current)))
        writes.extend(row_writes)
        final_referrals.append(
            replace(referral, attention=tuple(notes_now) + referral.attention)
            if notes_now
            else referral
        )

    # -- tabs ------------------------------------------------------------------------------
    present = {r.final_id: r.identity for r in rows if r.final_id}
    final_tuple = tuple(final_referrals)
    candidates: list[TabContent] = [
        build_followups(final_tuple),
        build_sources(final_tuple, source_overrides),
    ]
    for builder in tab_builders:
        candidates.extend(builder(final_tuple, now, config, snapshot, state))
    tabs = [t for t in candidates if not tab_matches(t, snapshot.tabs.get(t.title))]

    # -- the Bridge Log --------------------------------------------------------------------
    run_problems = [p.message for p in problems]
    summary = _summarise(assigned, writes, header_writes, tabs, drafts, stale_restores, new_notices)
    logged = bool(writes or header_writes or tabs or drafts) or (
        frozenset(run_problems) != state.last_problems
    )
    if logged:
        entry = (stamp, summary or "No changes", "\n".join(run_problems))
        tabs.append(build_bridge_log(entry, _log_rows(state, config)))
    plan = Plan(
        header_writes=tuple(header_writes),
        cell_writes=tuple(writes),
        tab_contents=tuple(tabs),
        drafts=tuple(drafts),
        problems=tuple(problems),
        notices=tuple(new_notices),
        assigned_ids=assigned,
        next_id_number=next_number,
        rows_read=len(tab.rows),
        staff_columns=dict(cols.staff),
    )
    return PlanResult(
        plan,
        columns=columns,
        referrals=final_tuple,
        present=present,
        column_map=cols,
        summary=summary,
        logged=logged,
        adopted=tuple(adopted),
    )


def _decide(current: str, want: str, record: WrittenRecord | None, *, fresh_row: bool) -> str:
    """The three-way decision of STYLE.md's conflict table: keep, write, stale or hand.

    A row that just got its ID (new, or a copy) has no history: what its bridge cells hold came
    with the copy, not from a person editing this referral, so it is simply overwritten.
    """
    if current == want:
        return "keep"
    if fresh_row:
        return "write"
    digest = value_hash(current)
    if record is not None and record.is_ours(digest):
        return "write"
    if record is None or record.hash is None:
        # No write of ours ever landed here (at most one was journalled, then the process died
        # before the sheet was written): an empty cell is simply filled, anything else is a person's.
        return "write" if current == "" else "hand"
    if record.previous == digest:
        return "stale"
    return "hand"


def _unconfirmed(current: str, record: WrittenRecord | None) -> bool:
    """A value in the cell that the state does not hold as confirmed: record it as the bridge's.

    That is staff text already right (adopted), or a write that was journalled as pending and
    landed, but whose cycle died before it committed: once seen in the sheet it is confirmed, so
    a later change of the derived value is not taken for a hand edit.
    """
    return bool(current) and (record is None or record.hash != value_hash(current))


def _log_rows(state: StateView, config: BridgeConfig) -> list[tuple[str, str, str]]:
    """Earlier Bridge Log lines from the runs table, their times in the practice's zone."""
    rows = []
    for started, summary, problems in state.log_rows:
        try:
            when = format_moment(datetime.fromisoformat(started), config.tz)
        except ValueError:
            when = started
        rows.append((when, summary or "No changes", problems))
    return rows


def _attention_text(lines: Sequence[str]) -> str:
    """One problem per line, duplicates dropped, kept under Excel's cell limit."""
    seen: list[str] = []
    for line in lines:
        if line and line not in seen:
            seen.append(line)
    text = "\n".join(seen)
    return text[: MAX_CELL_CHARS - 1]


def _emails_by_id(state: StateView, config: BridgeConfig) -> dict[str, str]:
    """The Emails column from the draft ledger: what was drafted and when, newest last."""
    lines: dict[str, list[tuple[datetime, str]]] = {}
    for record in state.drafts.values():
        if record.status != "confirmed" or not record.referral_id.startswith("R-"):
            continue
        label = KIND_LABELS.get(record.kind, record.kind.replace("_", " "))
        lines.setdefault(record.referral_id, []).append((record.created, label))
    out = {}
    for rid, items in lines.items():
        items.sort()
        rendered = [f"{format_moment(at, config.tz)} {label} drafted" for at, label in items]
        text = "\n".join(rendered)
        while len(text) >= MAX_CELL_CHARS and len(rendered) > 1:
            rendered.pop(0)  # B17: drop the oldest lines first
            text = "\n".join(rendered)
        out[rid] = text
    return out


def _flag_duplicates(
    referrals: Sequence[Referral], window_days: int
) -> tuple[dict[int, str], set[int]]:
    """B22: the same patient within ``window_days``: "possible duplicate of R-…" on both rows.

    Returns the Attention line per row index, and the indexes of the later row of each pair:
    those make no drafts, so a row typed twice does not thank the referrer twice.
    """
    if window_days <= 0:
        return {}, set()
    window = timedelta(days=window_days)
    keyed: dict[str, list[int]] = {}
    for index, ref in enumerate(referrals):
        if ref.received is None or not ref.referral_id:
            continue
        keys = []
        if ref.first_name and ref.last_name:
            keys.append("n:" + comparison_key(ref.first_name) + "|" + comparison_key(ref.last_name))
        if ref.phone:
            keys.append("p:" + ref.phone)
        if ref.email:
            keys.append("e:" + ref.email.casefold())
        for key in keys:
            keyed.setdefault(key, []).append(index)
    partners: dict[int, set[int]] = {}
    later: set[int] = set()
    for members in keyed.values():
        if len(members) < 2:
            continue
        members.sort(key=lambda i: (referrals[i].received, i))
        for a, b in itertools.pairwise(members):
            ra, rb = referrals[a].received, referrals[b].received
            if ra is not None and rb is not None and rb - ra <= window:
                partners.setdefault(a, set()).add(b)
                partners.setdefault(b, set()).add(a)
                later.add(b)
    lines = {}
    for index, others in partners.items():
        ids = sorted(referrals[i].referral_id for i in others)
        lines[index] = (
            f"Possible duplicate of {', '.join(ids)} (same patient within {window_days} days): "
            "if it is, delete one row; if not, say why in Notes"
        )
    return lines, later


def _summarise(
    assigned: Mapping[str, str],
    writes: Sequence[CellWrite],
    headers: Sequence[HeaderWrite],
    tabs: Sequence[TabContent],
    drafts: Sequence[DraftRequest],
    stale: int,
    notices: Sequence[Notice],
) -> str:
    parts = []
    if headers:
        parts.append("added columns " + ", ".join(h.header for h in headers))
    if assigned:
        parts.append(f"assigned {len(assigned)} Referral IDs")
    if writes:
        rows = len({w.row.number for w in writes})
        parts.append(f"updated {len(writes)} bridge cells in {rows} rows")
    hand = sum(1 for n in notices if "by hand" in n.message)
    if hand:
        parts.append(f"put back {hand} hand-edited cells")
    if stale:
        parts.append(f"re-applied {stale} cells reverted by an older copy of the workbook")
    if drafts:
        parts.append(f"{len(drafts)} email drafts")
    titles = [t.title for t in tabs if t.title != BRIDGE_LOG_TAB]
    if titles:
        parts.append("rewrote " + ", ".join(titles))
    text = "; ".join(parts)
    return text[:1].upper() + text[1:]


__all__ = ["PlanMemo", "PlanResult", "plan_cycle"]
