"""The fourth phase of a plan: each bridge cell decided three ways, as STYLE.md's conflict table.

For every bridge cell of every row: the value in the cell now, the value the rules derived, and
the digest of what the bridge last wrote there. Unchanged: nothing. Ours and out of date: write.
Different from anything the bridge wrote: a hand edit, put back and said so in Attention. Equal
to the value before last: an older copy of the workbook was saved over ours, re-applied quietly.
A row the state has no record of (new, or the state was rebuilt) is simply written. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING

from sheets_bridge.dates import format_moment, serial_text
from sheets_bridge.layout import Layout
from sheets_bridge.ledger import emails_column
from sheets_bridge.model import (
    MAX_CELL_CHARS,
    CellValue,
    CellWrite,
    DateSerial,
    Notice,
    Referral,
    RowRef,
)
from sheets_bridge.referral_ids import RowWork
from sheets_bridge.state_view import StateView, WrittenRecord, stored_time, value_hash
from sheets_bridge.values import cell_text as plain_text

if TYPE_CHECKING:
    from sheets_bridge.config import BridgeConfig

__all__ = ["Decisions", "attention_text", "bridge_text", "decide", "decide_cells"]


def bridge_text(value: CellValue, date1904: bool = False) -> str:
    """A bridge cell as compare-and-set text: a date cell (Follow-up Due, Bridge Updated, which
    the bridge writes as real date-times) reads as the ``format_moment`` text it was planned as.
    """
    if isinstance(value, DateSerial):
        text = serial_text(value, date1904)
        if text is not None:
            return text
    return plain_text(value)


@dataclass
class Decisions:
    """The cell writes of a plan and what goes with them."""

    writes: list[CellWrite] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    referrals: list[Referral] = field(default_factory=list)
    """Each row as it will read once the writes land (with its notices in Attention)."""
    adopted: list[tuple[str, str, str]] = field(default_factory=list)
    """(Referral ID, column, digest) of cells already right: recorded as ours, not written."""
    stale_restores: int = 0


def decide_cells(
    rows: Sequence[RowWork],
    referrals: Sequence[Referral],
    late: Mapping[str, list[str]],
    layout: Layout,
    state: StateView,
    config: BridgeConfig,
    now: datetime,
    assigned: Mapping[str, str],
    *,
    date1904: bool = False,
    incremental: bool = True,
) -> Decisions:
    """Every bridge cell write of the plan. ``late`` holds Attention lines that come after a
    row's own problems (possible duplicates, then what drafting says), by Referral ID.

    ``incremental`` takes a row as an earlier plan of this process decided it when everything
    its decision reads is unchanged (:class:`_DecidedRows`): a quiet decision (no write, no
    notice) at any ``now``, any other at the same ``now`` only (the second plan of a cycle that
    drafts); ``False`` decides every row afresh. Both give the same decisions.
    """

    def cell_text(value: CellValue) -> str:
        return bridge_text(value, date1904)

    columns = layout.columns
    id_col = columns.get("Referral ID")
    # Rows the state has no record of at all (new, or the state file was lost and rebuilt):
    # what their bridge cells hold cannot be told from a hand edit, so it is simply rewritten.
    known_rows = {rid for rid, _ in state.written}
    notices_by_id: dict[str, list[str]] = {}
    notice_stamps: dict[tuple[str, str], str] = {}
    for notice in state.notices:
        notices_by_id.setdefault(notice.referral_id, []).append(notice.message)
        notice_stamps[(notice.referral_id, notice.message)] = stored_time(notice.created)
    new_notices: list[Notice] = []
    writes: list[CellWrite] = []
    stale_restores = 0
    stamp = format_moment(now, config.tz)
    ledger_lines = emails_column(state, config.tz)
    final_referrals: list[Referral] = []
    adopted: list[tuple[str, str, str]] = []
    basis = (
        tuple(sorted(columns.items())), frozenset(layout.blocked_cells), date1904, str(config.tz)
    )
    held, earlier = _DECIDED_ROWS.current
    if held != basis or not incremental:
        earlier = {}
    kept: dict[str, _DecidedRow] = {}
    written = state.written
    for r, referral in zip(rows, referrals, strict=True):
        rid = r.final_id
        key: tuple[object, ...] | None = None
        before: _DecidedRow | None = None
        if not r.blocked:
            tail_lines = late.get(rid)
            stored_lines = notices_by_id.get(rid)
            key = (
                r.sheet.values, r.sheet.number, r.current_id, r.fingerprint, tuple(r.notices),
                tuple(tail_lines) if tail_lines else (),
                tuple(stored_lines) if stored_lines else (),
                tuple([written.get((rid, name)) for name in _DECIDED_COLUMNS]),
                rid in assigned or rid not in known_rows,
                ledger_lines.get(rid),
            )
            before = earlier.get(rid)
            if (
                before is not None
                and before.referral is referral
                and (before.at is None or before.at == now)
                and before.key == key
            ):
                kept[rid] = before
                final_referrals.append(before.final)
                adopted.extend(before.adopted)
                writes.extend(before.writes)
                new_notices.extend(before.notices)
                stale_restores += before.stale
                continue
        adopted_from, notices_from, stale_from = len(adopted), len(new_notices), stale_restores
        ref = RowRef(r.sheet.number, r.current_id, r.fingerprint, target_id=rid)
        row_writes: list[CellWrite] = []
        # The row as derived, which the memo's entry is matched by (identity): not the copy
        # with the late lines, a new object every plan (rows flagged as possible duplicates
        # were never reused before for that reason).
        derived = referral
        tail = late.get(rid)
        if tail:
            referral = replace(referral, attention=(*referral.attention, *tail))
        if r.blocked:
            attention = attention_text(referral.attention)
            attention_col = columns.get("Attention")
            if attention_col is not None and (r.sheet.number, attention_col) not in layout.blocked_cells:
                current = cell_text(r.sheet.get(attention_col))
                if current != attention:
                    writes.append(CellWrite(ref, "Attention", current, attention))
            final_referrals.append(referral)
            continue
        if id_col is not None and r.current_id != rid and (r.sheet.number, id_col) not in layout.blocked_cells:
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
            if target is None or (r.sheet.number, target) in layout.blocked_cells:
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
            verdict = decide(current, want, record, fresh_row=rid in assigned or rid not in known_rows)
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
        notes_now = _as_read_next(notes_now, rid, new_notices[notices_from:], notice_stamps, now)
        attention = attention_text((*notes_now, *referral.attention))
        target = columns.get("Attention")
        if target is not None and (r.sheet.number, target) not in layout.blocked_cells:
            current = cell_text(r.sheet.get(target))
            record = state.written.get((rid, "Attention"))
            verdict = decide(
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
                        notes_now = _as_read_next(
                            notes_now, rid, new_notices[notices_from:], notice_stamps, now
                        )
                        attention = attention_text((*notes_now, *referral.attention))
                row_writes.append(CellWrite(ref, "Attention", current, attention))
        target = columns.get("Bridge Updated")
        if target is not None and (r.sheet.number, target) not in layout.blocked_cells:
            current = cell_text(r.sheet.get(target))
            record = state.written.get((rid, "Bridge Updated"))
            edited = record is not None and not record.is_ours(value_hash(current))
            if row_writes or edited:
                row_writes.append(CellWrite(ref, "Bridge Updated", current, stamp))
            elif record is not None and _unconfirmed(current, record):
                adopted.append((rid, "Bridge Updated", value_hash(current)))
        writes.extend(row_writes)
        final = (
            replace(referral, attention=tuple(notes_now) + referral.attention)
            if notes_now
            else referral
        )
        if (
            before is not None
            and before.referral is derived
            and final is not before.final
            and final.attention == before.final.attention
        ):
            # Decided again (its ledger line or a record changed: the second plan of a drafting
            # cycle, say) from the very same derived row to the same Attention: every other
            # field is the derived row's, so the final row is the held one to the last
            # character, and that object is handed on (the phases that reuse by identity, the
            # summary tabs, then see the row unchanged).
            final = before.final
        final_referrals.append(final)
        if key is not None:
            row_notices = tuple(new_notices[notices_from:])
            # Quiet (no write, no notice): nothing of ``now`` in it, good at any time.
            at = now if row_writes or row_notices else None
            kept[rid] = _DecidedRow(
                key, derived, at, final, tuple(adopted[adopted_from:]), tuple(row_writes),
                row_notices, stale_restores - stale_from,
            )
    if incremental:
        _DECIDED_ROWS.current = (basis, kept)
    return Decisions(
        writes=writes,
        notices=new_notices,
        referrals=final_referrals,
        adopted=adopted,
        stale_restores=stale_restores,
    )


#: The bridge columns a row's decision reads the state's record of.
_DECIDED_COLUMNS = (
    "Source Tag", "Stage", "Follow-up Due", "Emails", "Attention", "Bridge Updated"
)


@dataclass(frozen=True, slots=True)
class _DecidedRow:
    """How an earlier plan decided a row, and everything that decision read.

    ``key`` holds the row's cells as read (the bridge cells among them), its number, the ID in
    it and its fingerprint, the notices its identity raised, the Attention lines added after
    its own (duplicates, drafting), the notices kept for it, the state's record of each of its
    bridge cells, whether it has history, and its Emails line from the ledger; ``referral`` is
    the derived row (compared by identity: the derive memo hands back the same object while
    its inputs are unchanged). Besides those the decision reads ``now`` only in a write's
    Bridge Updated stamp and a notice's time: a quiet decision (``at`` None) holds for any
    ``now`` while the key does, any other only for the ``now`` it was made at (``at``).
    """

    key: tuple[object, ...]
    referral: Referral
    at: datetime | None
    final: Referral
    adopted: tuple[tuple[str, str, str], ...]
    writes: tuple[CellWrite, ...]
    notices: tuple[Notice, ...]
    stale: int


class _DecidedRows:
    """The rows of the latest plan as decided, by Referral ID (incremental planning).

    (basis, entries) in one attribute, read once and replaced whole, as the derive memo: a plan
    in another thread sees one or the other, never a mix. ``basis`` is what every row's
    decision reads alike (the columns, blocked cells, date system and zone).
    """

    def __init__(self) -> None:
        self.current: tuple[tuple[object, ...], dict[str, _DecidedRow]] = ((), {})


_DECIDED_ROWS = _DecidedRows()


def decide(current: str, want: str, record: WrittenRecord | None, *, fresh_row: bool) -> str:
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


def _as_read_next(
    notes: Sequence[str], rid: str, said: Sequence[Notice],
    stamps: Mapping[tuple[str, str], str], now: datetime,
) -> list[str]:
    """A row's notices in the order the state's next view will return them.

    The view orders notices by their stored time, then by when they were first stored; a
    notice said this cycle is stored at ``now`` (a kept one only moves forward to it). In the
    usual case that is the kept notices, then this cycle's, which is the order ``notes``
    already has. After a clock set back (``--force``) ``now`` is earlier than the kept ones,
    so the new ones come first: written that way at once, or the next cycle would find the
    lines swapped and write Attention again. ``sorted`` is stable, which gives ties the
    order they were stored in.
    """
    if not said:
        return list(notes)
    now_stamp = stored_time(now)
    said_now = {n.message for n in said}

    def stored_at(message: str) -> str:
        kept = stamps.get((rid, message))
        if kept is None:
            return now_stamp
        return max(kept, now_stamp) if message in said_now else kept

    return sorted(notes, key=stored_at)


def attention_text(lines: Sequence[str]) -> str:
    """One problem per line, duplicates dropped, kept under Excel's cell limit."""
    seen: list[str] = []
    for line in lines:
        if line and line not in seen:
            seen.append(line)
    text = "\n".join(seen)
    return text[: MAX_CELL_CHARS - 1]
