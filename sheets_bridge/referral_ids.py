"""Referral IDs: every row keeps its own, whatever staff do to the rows (B22-B24, R5).

The second phase of a plan. Rows are taken as they are now (empty ones left out, merged values
filled in), the circuit breakers look for a sheet that lost most of its referrals, and each row
gets its Referral ID:

- a row carrying an ID the bridge issued keeps it; of several rows carrying the same ID (a copy),
  the one that is still the same patient keeps it and the others get new IDs (B23);
- a row whose ID was cleared gets it back by its identity (names and Received), and one whose ID
  was typed over gets the original back when its identity tells which it was, else it is blocked
  (Attention only) until a person puts it right (B24);
- a row that is new gets the next number, never one used before.

The state keeps each ID's row identity as a digest, never the names. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from sheets_bridge.identity import (
    forget_facet_texts,
    format_id,
    id_number,
    row_facets,
    row_fingerprint,
    row_identity,
)
from sheets_bridge.layout import Layout
from sheets_bridge.model import ReferralsTab, SheetRow
from sheets_bridge.rules import is_empty_row
from sheets_bridge.settings import SyncConfig
from sheets_bridge.state_view import StateView
from sheets_bridge.values import cell_text

__all__ = ["IdAssignment", "RowWork", "assign_ids", "breaker", "collect_rows"]

_EDITED_ID = (
    "Referral ID was changed by hand and the bridge cannot tell which referral this is: "
    "put back the original ID, or clear the cell to get a new one"
)

#: (row number, ID in the cell, staff fingerprint) -> the ID an earlier plan of this same cycle
#: gave that row: drafts were already made under it, so a second plan must not renumber.
CarriedIds = Mapping[tuple[int, str, str], str]


@dataclass(slots=True)
class RowWork:
    """Working data for one non-empty row while the plan is made."""

    sheet: SheetRow
    identity: str
    fingerprint: str
    current_id: str
    facets: tuple[str, ...] = ()
    inputs: tuple[object, ...] = ()
    """The row's staff cells in column order: all its identity, digests and parse read; then,
    if any holds a number, which types they hold (:func:`_number_kinds`: ``True == 1.0``)."""
    final_id: str = ""
    notices: list[str] = field(default_factory=list)
    blocked: bool = False
    """Attention only, no other writes (an unmatched edited ID, an ID in merged cells)."""
    block_reason: str = _EDITED_ID

    @property
    def key(self) -> tuple[int, str, str]:
        return (self.sheet.number, self.current_id, self.fingerprint)


@dataclass(frozen=True, slots=True)
class _Digests:
    """A row's identity, staff fingerprint and facets: pure functions of its cells."""

    identity: str
    fingerprint: str
    facets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Collected:
    """What :func:`collect_rows` works out from a row's cells alone (``None``: an empty row)."""

    current_id: str
    inputs: tuple[object, ...]
    digests: _Digests
    cells: tuple[object, ...]
    """The cells it was worked out from (the memo's key as held)."""


#: Cell types that compare equal across types (``True == 1 == 1.0``) yet read differently:
#: "TRUE", "1" and, in a row's identity (``str``), "1.0".
_NUMBERS = (bool, int, float)


def _number_kinds(inputs: tuple[object, ...]) -> tuple[object, ...]:
    """``inputs`` and, when any holds a number, which type each number cell holds.

    A memo keyed by equal cells would otherwise hand a row the digests or derivation of its
    earlier self when TRUE was typed over 1: equal in Python, not on the sheet.
    """
    kinds = tuple((i, v.__class__) for i, v in enumerate(inputs) if v.__class__ in _NUMBERS)
    return (*inputs, ("number kinds", kinds)) if kinds else inputs


def _same_kinds(held: tuple[object, ...], cells: tuple[object, ...]) -> bool:
    """Whether two equal rows hold values of the same types, cell by cell (:func:`_number_kinds`)."""
    return held is cells or list(map(type, held)) == list(map(type, cells))


#: The memo's two tables: by the whole row's cells (a row read again unchanged: nothing to
#: work out), and by its staff cells alone (a row whose bridge cells changed: not digested).
_Tables = tuple[dict[tuple[object, ...], "_Collected | None"], dict[tuple[object, ...], _Digests]]


class _RowDigests:
    """The last plan's rows, by the rows' cells, kept between cycles and between the plans of one.

    Everything :func:`collect_rows` derives from a row (empty or not, the ID in its cell, its
    staff cells, identity, fingerprint, facets) is a pure function of the row's cells, the
    columns and the state secret, so a row whose cells are unchanged (most rows, most cycles;
    the workbook's read memo even hands back the same tuple) costs one dictionary look-up keyed
    by its cells; a row whose bridge cells alone changed (the second plan of a drafting cycle,
    an applied write) is found by its staff cells and not digested again. Only the rows of the
    latest plan are held (an edited or deleted row's entry is dropped); a change to the columns
    or the secret starts afresh.
    """

    def __init__(self) -> None:
        # (basis, tables) in one attribute, read and replaced whole: a digest job planning in
        # another thread can never pair one secret's digests with another's basis.
        self.current: tuple[tuple[object, ...], _Tables] = ((), ({}, {}))

    def table(self, basis: tuple[object, ...]) -> _Tables:
        """The tables held for ``basis`` (the staff columns, the bridge columns, the secret):
        the rows' only while all three are the same, the digests while the staff columns and
        the secret are (they read nothing else: a first sync adds the bridge columns, and the
        cycle after it must not digest every row again)."""
        held, (rows, digests) = self.current
        if held == basis:
            return rows, digests
        if held[:1] == basis[:1] and held[2:] == basis[2:]:
            return {}, digests
        return {}, {}

    def keep(self, basis: tuple[object, ...], tables: _Tables) -> None:
        self.current = (basis, tables)


_ROW_DIGESTS = _RowDigests()
#: "Not in the memo" (``None`` there means an empty row).
_MISSING = _Collected("", (), _Digests("", "", ()), ())


def collect_rows(
    tab: ReferralsTab,
    layout: Layout,
    fingerprints: dict[tuple[object, ...], str] | None = None,
    secret: bytes = b"",
    *,
    incremental: bool = True,
) -> list[RowWork]:
    """The tab's non-empty rows, merged values filled in (B1, B3).

    ``secret`` keys the rows' facets (:func:`sheets_bridge.identity.row_facets`). What each row
    gives is memoised between plans by the row's cells (see :class:`_RowDigests`);
    ``fingerprints`` is kept for callers that pass one and is no longer needed.
    ``incremental=False`` works out every row afresh and leaves the memo as it was.
    """
    cols = layout.cols
    staff = cols.staff
    id_col = cols.bridge.get("Referral ID")
    basis = (tuple(sorted(staff.items())), tuple(sorted(cols.bridge.items())), secret)
    old_rows, old_digests = _ROW_DIGESTS.table(basis) if incremental else ({}, {})
    new_rows: dict[tuple[object, ...], _Collected | None] = {}
    # Digests by staff cells are pure too: the held table is carried on (copied, so a plan in
    # another thread never sees it change) and rebuilt from this plan's rows once it holds
    # many more than the sheet has (rows edited many times), so it stays one sheet's size.
    new_digests = dict(old_digests)
    staff_cols = sorted(staff.values())

    def collected(sheet_row: SheetRow) -> _Collected | None:
        """The row's own facts, worked out (digests reused by its staff cells when held)."""
        if is_empty_row(sheet_row, cols):
            return None
        cells = sheet_row.values
        width = len(cells)
        inputs: tuple[object, ...] = tuple(cells[c] if c < width else None for c in staff_cols)
        inputs = _number_kinds(inputs)
        found = new_digests.get(inputs)
        if found is None:
            found = _Digests(
                row_identity(sheet_row, staff),
                row_fingerprint(cells, staff),
                row_facets(sheet_row, staff, secret),
            )
        new_digests[inputs] = found
        return _Collected(cell_text(sheet_row.get(id_col)).strip(), inputs, found, cells)

    rows: list[RowWork] = []
    overrides = layout.overrides
    for sheet_row in tab.rows:
        override = overrides.get(sheet_row.number) if overrides else None
        if override:
            values = list(sheet_row.values)
            for col, value in override.items():
                values.extend([None] * (col + 1 - len(values)))
                values[col] = value
            sheet_row = replace(sheet_row, values=tuple(values))
        cells = sheet_row.values
        entry = new_rows.get(cells, _MISSING)
        if entry is _MISSING:
            entry = old_rows.get(cells, _MISSING)
            if entry is _MISSING or entry is not None and not _same_kinds(entry.cells, cells):
                entry = collected(sheet_row)
            new_rows[cells] = entry
        if entry is None:
            continue
        current = entry.current_id
        found = entry.digests
        rows.append(
            RowWork(
                sheet=sheet_row,
                identity=found.identity,
                # Only a row without an ID is found by its fingerprint at write time.
                fingerprint="" if current else found.fingerprint,
                current_id=current,
                facets=found.facets,
                inputs=entry.inputs,
            )
        )
    forget_facet_texts()
    if incremental:
        if len(new_digests) > 2 * len(new_rows) + 1000:
            new_digests = {e.inputs: e.digests for e in new_rows.values() if e is not None}
        _ROW_DIGESTS.keep(basis, (new_rows, new_digests))
    return rows


def breaker(
    rows: list[RowWork], title: str, state: StateView, sync: SyncConfig
) -> str | None:
    """R5: the reason to write nothing when the tab looks emptied or lost most of its IDs."""
    previously = {rid for rid, rec in state.ids.items() if rec.present}
    if len(previously) < sync.min_rows_for_breaker:
        return None
    if not rows:
        return (
            f"The {title} tab is empty but held {len(previously)} referrals last time: "
            "nothing was written. Restore the rows (File > Version history, or a backup), "
            "or run `sheets-bridge sync --force` if emptying it was on purpose"
        )
    found = {r.current_id for r in rows if r.current_id}
    missing = previously - found
    if len(missing) > sync.max_missing_ids_fraction * len(previously):
        return (
            f"{len(missing)} of the {len(previously)} Referral IDs seen last time are gone "
            f"from the {title} tab: nothing was written. Check that no rows were deleted "
            "or IDs cleared by mistake, or run `sheets-bridge sync --force` if it was on "
            "purpose"
        )
    return None


@dataclass
class IdAssignment:
    """The IDs this plan issues (ID -> row identity) and the next number after them, or why the
    IDs cannot be trusted as they stand (``stop``)."""

    assigned: dict[str, str]
    next_number: int
    stop: str | None = None


#: Rows carrying another patient's Referral ID before the bridge calls it a mix-up, not a retype.
MOVED_IDS_STOP = 2


def _moved_ids(rows: list[RowWork], state: StateView) -> list[tuple[str, str]]:
    """(the ID a row carries, the ID its patient had) for every row that carries another
    patient's Referral ID: staff columns sorted apart from the bridge columns, IDs pasted over."""
    by_identity: dict[str, list[str]] = {}
    for rid, known in state.ids.items():
        by_identity.setdefault(known.identity, []).append(rid)
    moved = []
    for r in rows:
        rec = state.ids.get(r.current_id) if r.current_id else None
        if rec is None or rec.identity == r.identity:
            continue
        theirs = [rid for rid in by_identity.get(r.identity, []) if rid != r.current_id]
        if len(theirs) == 1:
            moved.append((r.current_id, theirs[0]))
    return moved


def _cleared(rid: str) -> str:
    return (
        f"Referral ID was cleared (by hand, or by saving an older copy of the workbook over the "
        f"bridge's changes): the bridge put back {rid}"
    )


def _tie_stop(moved: list[tuple[str, str]]) -> str:
    shown = ", ".join(f"{now} is on the row of {was}" for now, was in sorted(moved)[:3])
    more = f" and {len(moved) - 3} more" if len(moved) > 3 else ""
    return (
        f"{len(moved)} rows carry another patient's Referral ID ({shown}{more}): the rows were "
        "probably sorted without their bridge columns, or IDs were pasted over. Nothing was "
        "written and no email drafted. Undo the sort (Ctrl+Z, or File > Version history) or sort "
        "whole rows; if the IDs are right as they stand now, run `sheets-bridge sync --force`"
    )


def assign_ids(
    rows: list[RowWork],
    layout: Layout,
    state: StateView,
    carried: CarriedIds | None = None,
    *,
    force: bool = False,
) -> IdAssignment:
    """Give every row its final Referral ID (``RowWork.final_id``), blocking what cannot be told.

    Rows that carry other patients' IDs (a partial sort, a paste) stop the plan unless
    ``force`` ties the IDs to the rows as they stand; a single row whose names or Received were
    retyped keeps its ID and says so once.
    """
    moved = _moved_ids(rows, state)
    if len(moved) >= MOVED_IDS_STOP and not force:
        return IdAssignment({}, state.next_id_number, stop=_tie_stop(moved))
    id_col = layout.columns.get("Referral ID")
    found = {r.current_id for r in rows if r.current_id}
    next_number = max(state.next_id_number, state.highest_id + 1)
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

    groups: dict[str, list[RowWork]] = {}
    for r in rows:
        if r.current_id:
            groups.setdefault(r.current_id, []).append(r)
    identity_to_missing: dict[str, list[str]] = {}
    for rid, rec in state.ids.items():
        if rid not in found:
            identity_to_missing.setdefault(rec.identity, []).append(rid)

    def restore_by_identity(r: RowWork) -> str | None:
        """The missing ID with this row's identity; for a row with no ID at all, one found by its
        facets. An ID typed over by hand is only ever matched exactly (B24)."""
        candidates = identity_to_missing.get(r.identity, [])
        if len(candidates) == 1:
            rid = candidates.pop()
            claimed.add(rid)
            return rid
        return restore_by_facets(r) if not candidates and not r.current_id else None

    # Every missing ID given back to a row this cycle, whichever way: the facet match must never
    # hand the same one to a second row (two identical rows typed while a cycle died mid-draft).
    claimed: set[str] = set()

    def restore_by_facets(r: RowWork) -> str | None:
        """#1 of the probe: a row whose name or Received was corrected before its new ID landed
        in the sheet finds that ID by two of its facets (email, phone, first name, last name,
        Received), when exactly one missing ID matches best."""
        mine = {f for f in r.facets if f[:1] != "n"}  # the names with the day: f, l and d
        if len(mine) < 2:
            return None
        scores = {
            rid: len(mine & set(rec.facets))
            for rid, rec in state.ids.items()
            if rid not in found and rid not in claimed
        }
        best = max(scores.values(), default=0)
        matches = [rid for rid, score in scores.items() if score == best]
        if best < 2 or len(matches) != 1:
            return None
        claimed.add(matches[0])
        for pool in identity_to_missing.values():
            if matches[0] in pool:
                pool.remove(matches[0])
        return matches[0]

    pending_new: list[RowWork] = []
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
        kept = state.ids.get(rid)
        if kept is not None and keeper.identity != kept.identity and not kept.pending:
            keeper.notices.append(
                f"The name or Received of {rid} changed since the bridge gave it this ID: if this "
                "row is now another patient, give that patient a row of their own"
            )
        for r in members:
            if r is not keeper:
                pending_new.append(r)
                r.notices.append(
                    f"This row carried the same Referral ID as another row ({rid}), as a copy "
                    "does: it got its own ID"
                )
    carried = carried or {}
    for r in rows:
        if not r.current_id and r.key in carried:
            r.final_id = carried[r.key]
            assigned[r.final_id] = r.identity
            claimed.add(r.final_id)
            next_number = max(next_number, (id_number(r.final_id) or 0) + 1)
            pool = identity_to_missing.get(r.identity)
            if pool and r.final_id in pool:
                pool.remove(r.final_id)
    # Rows typed twice (same names and Received) whose IDs were all cleared: as many missing IDs
    # of that identity as rows, given back in row order.
    waiting: dict[str, list[RowWork]] = {}
    for r in rows:
        if not r.final_id and not r.current_id:
            waiting.setdefault(r.identity, []).append(r)
    for identity, twins in waiting.items():
        pool = identity_to_missing.get(identity, [])
        if len(twins) >= 2 and len(pool) == len(twins):
            ordered = sorted(pool, key=lambda rid: id_number(rid) or 0)
            for r, rid in zip(sorted(twins, key=lambda t: t.sheet.number), ordered, strict=True):
                r.final_id = rid
                claimed.add(rid)
                if not state.ids[rid].pending:
                    r.notices.append(_cleared(rid))
            pool.clear()
    for r in rows:
        if r.final_id:
            continue
        if not r.current_id and id_col is not None and (r.sheet.number, id_col) in layout.blocked_cells:
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
                    r.notices.append(_cleared(restored))
            else:
                pending_new.append(r)
    for r in sorted(pending_new, key=lambda item: item.sheet.number):
        again = carried.get(r.key)
        if again and again not in assigned:
            r.final_id = again
            assigned[again] = r.identity
            next_number = max(next_number, (id_number(again) or 0) + 1)
        else:
            r.final_id = issue(r.identity)
    return IdAssignment(assigned, next_number)
