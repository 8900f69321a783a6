"""The working tabs: Follow-ups (the queue), Sources (How Heard as typed) and the Bridge Log.

Pure builders returning ``TabContent``. The Follow-ups tab is the only summary that names
patients: it is the front desk's work queue. Every value that came from a cell is a ``str`` and
is written as text, so a name typed as ``=cmd()`` stays text here too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from functools import lru_cache
from typing import TypeVar, cast

import phonenumbers

from sheets_bridge.choices import source_tag_for
from sheets_bridge.columns import normalize_header
from sheets_bridge.dates import format_moment, to_serial
from sheets_bridge.model import (
    BRIDGE_LOG_TAB,
    FOLLOWUPS_TAB,
    SOURCES_TAB,
    CellValue,
    CellWrite,
    DraftRequest,
    HeaderWrite,
    Notice,
    OutValue,
    Referral,
    TabContent,
    TabValues,
)
from sheets_bridge.state_view import StateView
from sheets_bridge.values import cell_text, comparison_key, is_blank

SOURCES_HEADERS = ("How Heard (as typed)", "Rows", "Channel", "Source Tag", "Use Tag Instead")
FOLLOWUPS_HEADERS = (
    "Referral ID",
    "Patient",
    "Phone",
    "Stage",
    "To do",
    "Follow-up Due",
    "Source Tag",
    "Referred By",
    "Attention",
)
LOG_HEADERS = ("When", "What happened", "Problems")
_URGENCY = {"OVERDUE": 0, "Contact due": 1}
_OVERRIDE_TAGS = {
    "providerreferral": "Provider Referral",
    "provider": "Provider Referral",
    "patientreferral": "Patient Referral",
    "patient": "Patient Referral",
    "selfreferral": "Self-Referral",
    "self": "Self-Referral",
}


@dataclass(frozen=True)
class SourceOverrides:
    """Tags a manager typed on the Sources tab, keyed by the How Heard comparison key."""

    tags: Mapping[str, str]
    raw: Mapping[str, str]
    problems: tuple[str, ...] = ()


def read_source_overrides(tab: TabValues | None) -> SourceOverrides:
    """Read the manager's "Use Tag Instead" column; an unknown tag is reported, not used."""
    if tab is None or not tab.rows:
        return SourceOverrides({}, {})
    header_index = None
    for index, row in enumerate(tab.rows[:5]):
        keys = [normalize_header(cell_text(v)) for v in row]
        if normalize_header(SOURCES_HEADERS[0]) in keys:
            header_index = index
            break
    if header_index is None:
        return SourceOverrides({}, {})
    keys = [normalize_header(cell_text(v)) for v in tab.rows[header_index]]
    try:
        heard_col = keys.index(normalize_header(SOURCES_HEADERS[0]))
        tag_col = keys.index(normalize_header(SOURCES_HEADERS[4]))
    except ValueError:
        return SourceOverrides({}, {})
    tags: dict[str, str] = {}
    raw: dict[str, str] = {}
    problems = []
    for number, row in enumerate(tab.rows[header_index + 1 :], start=header_index + 2):
        heard = cell_text(row[heard_col]).strip() if heard_col < len(row) else ""
        typed = row[tag_col] if tag_col < len(row) else None
        if not heard or is_blank(typed):
            continue
        key = comparison_key(heard)
        raw[key] = cell_text(typed)
        tag = _OVERRIDE_TAGS.get(normalize_header(cell_text(typed)))
        if tag is None:
            problems.append(
                f"Sources tab row {number}: Use Tag Instead must be Provider Referral, "
                "Patient Referral or Self-Referral"
            )
        else:
            tags[key] = tag
    return SourceOverrides(tags, raw, tuple(problems))


def build_sources(referrals: Sequence[Referral], overrides: SourceOverrides) -> TabContent:
    """Every How Heard value seen, how often, what it maps to, and the manager's own tag."""
    counts: Counter[str] = Counter()
    shown: dict[str, Counter[str]] = {}
    channel: dict[str, str] = {}
    tag: dict[str, str] = {}
    for referral in referrals:
        if not referral.how_heard:
            continue
        key = comparison_key(referral.how_heard)
        counts[key] += 1
        shown.setdefault(key, Counter())[referral.how_heard] += 1
        channel.setdefault(key, referral.channel or "")
        tag.setdefault(key, referral.source_tag)
    rows: list[tuple[OutValue, ...]] = [SOURCES_HEADERS]
    for key, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        typed = overrides.raw.get(key, "")
        bridge_channel = channel[key]
        mapped = source_tag_for(bridge_channel or None)
        rows.append(
            (shown[key].most_common(1)[0][0], count, bridge_channel or "(not recognised)",
             tag[key] if typed else mapped, typed)
        )
    # Overrides for values no longer in use are kept, so a manager's work is never lost.
    for key, typed in sorted(overrides.raw.items()):
        if key not in counts:
            rows.append((key, 0, "", overrides.tags.get(key, ""), typed))
    return TabContent(SOURCES_TAB, tuple(rows), widths=(32, 8, 16, 18, 20))


def needs_rebooking(referral: Referral) -> bool:
    """Visit No-show or Cancelled and nothing booked since: the appointment has to be rebooked.

    A rebooking is recorded by setting Visit back to Scheduled (or clearing it) beside the new
    Appointment, so a row still marked No-show or Cancelled has no new appointment yet.
    """
    return referral.visit in ("No-show", "Cancelled") and referral.stage in ("No-show", "Contacted")


def display_phone(e164: str | None, region: str) -> str:
    """A phone as the front desk dials it: national format for the practice's own country
    ("(646) 555-0147" in the US), international for any other; "" when there is none.

    A pure function of its two arguments, cached: the Follow-ups queue is rebuilt whenever one
    row in it changes, and parsing every queued phone again with ``phonenumbers`` was most of
    that rebuild (issue 13).
    """
    if not e164:
        return ""
    return _display_phone(e164, region)


@lru_cache(maxsize=1 << 16)
def _display_phone(e164: str, region: str) -> str:
    """:func:`display_phone` of a non-empty number: bounded, so a sheet's phones fit in it."""
    try:
        number = phonenumbers.parse(e164, region)
    except phonenumbers.NumberParseException:
        return e164
    same_country = phonenumbers.region_code_for_number(number) == region.upper()
    fmt = (
        phonenumbers.PhoneNumberFormat.NATIONAL
        if same_country
        else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )
    return phonenumbers.format_number(number, fmt)


def _to_do(referral: Referral) -> tuple[int, str]:
    if referral.stage == "OVERDUE":
        return 0, "contact (overdue)"
    if referral.stage == "Contact due":
        return 1, "contact"
    if needs_rebooking(referral):
        return 2, "rebook"
    return 3, "check the row"


def build_followups(referrals: Iterable[Referral], phone_region: str = "US") -> TabContent:
    """The work queue: overdue first, then contact due (earliest due first), then rows to
    rebook, then rows that need attention (in sheet order)."""
    queue = []
    for r in referrals:
        if r.stage in _URGENCY or r.attention or needs_rebooking(r):
            rank, to_do = _to_do(r)
            due = format_moment(r.follow_up_due)
            order = (rank, due if rank < 2 else "", r.row)
            queue.append((order, to_do, r))
    queue.sort(key=lambda item: item[0])
    rows: list[tuple[OutValue, ...]] = [FOLLOWUPS_HEADERS]
    for _, to_do, r in queue:
        name = " ".join(part for part in (r.first_name, r.last_name) if part)
        due_at: OutValue = r.follow_up_due.replace(tzinfo=None) if r.follow_up_due else None
        rows.append(
            (
                r.referral_id,
                name,
                display_phone(r.phone, phone_region),
                r.stage,
                to_do,
                due_at,
                r.source_tag,
                r.referred_by,
                "\n".join(r.attention),
            )
        )
    return TabContent(
        FOLLOWUPS_TAB,
        tuple(rows),
        widths=(11, 24, 17, 12, 17, 18, 18, 22, 60),
        wrap_cols=frozenset({8}),
    )


LogEntry = tuple[OutValue, str, str]
"""One Bridge Log line: when (a date-time cell), what happened, what failed."""


def log_moment(moment: datetime, tz: tzinfo) -> datetime:
    """A run's time as the Bridge Log's When cell shows it: the practice's wall time, to the
    minute (a date-time cell, so the log sorts and filters by date)."""
    return moment.astimezone(tz).replace(tzinfo=None, second=0, microsecond=0)


def build_bridge_log(
    entry: LogEntry | None, previous: Sequence[LogEntry], keep: int = 200
) -> TabContent:
    """Recent runs that changed something or failed, newest first."""
    rows: list[tuple[OutValue, ...]] = [LOG_HEADERS]
    if entry is not None:
        rows.append(entry)
    rows.extend(previous[: keep - 1])
    return TabContent(
        BRIDGE_LOG_TAB, tuple(rows), widths=(18, 70, 70), wrap_cols=frozenset({1, 2})
    )


def tab_matches(content: TabContent, current: TabValues | None, *, date1904: bool = False) -> bool:
    """True when the tab already shows exactly this content (a quiet cycle writes nothing).

    A date the bridge writes comes back as the serial it was written as, so both sides are
    compared as serials.
    """
    if current is None:
        return False
    # Row by row, stopping at the first difference: a tab that changed (the Follow-ups queue
    # after an edit) is told apart without turning both whole grids into text first. Equal to
    # comparing the two grids trimmed of trailing blank cells and rows: past the shorter grid,
    # the longer one's rows must all be blank.
    ours, theirs = content.rows, current.rows
    shared = min(len(ours), len(theirs))
    for index in range(shared):
        mine, read = ours[index], theirs[index]
        if mine is not read and _row_text(mine, date1904) != _row_text(read, date1904):
            return False
    longer = ours if len(ours) > shared else theirs
    return not any(_row_text(row, date1904) for row in longer[shared:])


_T = TypeVar("_T")


class _TabMemo:
    """The latest result of each pure tab step, by step name, with the inputs it was made of.

    For incremental planning (ARCHITECTURE.md): the Follow-ups and Sources tabs are functions
    of the rows' final Referrals alone (no clock), and whether a tab already shows a content is
    a function of the two grids; a daemon's cycles mostly hand these steps the very same
    objects (the derive and decide memos return the same Referrals, an unchanged workbook the
    same snapshot), and tuples compare by identity first, at C speed. Each entry is one
    ``(inputs, result)`` tuple, read once and replaced whole (a plan in another thread sees one
    or the other). An input that differs, even in one row, means the step runs again: exact.
    """

    def __init__(self) -> None:
        self.entries: dict[str, tuple[tuple[object, ...], object]] = {}

    def reuse(
        self, step: str, inputs: tuple[object, ...], compute: Callable[[], _T], *,
        incremental: bool,
    ) -> _T:
        """``compute()``, or what it gave last time for equal ``inputs`` when ``incremental``."""
        if incremental:
            held = self.entries.get(step)
            if held is not None and held[0] == inputs:
                return cast(_T, held[1])
        result = compute()
        if incremental:
            self.entries[step] = (inputs, result)
        return result


_TAB_MEMO = _TabMemo()


def followups_tab(
    referrals: tuple[Referral, ...], phone_region: str, *, incremental: bool = True
) -> TabContent:
    """:func:`build_followups`, reused while ``referrals`` are the same (see :class:`_TabMemo`)."""
    return _TAB_MEMO.reuse(
        "followups", (referrals, phone_region),
        lambda: build_followups(referrals, phone_region), incremental=incremental,
    )


def sources_tab(
    referrals: tuple[Referral, ...], overrides: SourceOverrides, *, incremental: bool = True
) -> TabContent:
    """:func:`build_sources`, reused while its inputs are the same (see :class:`_TabMemo`)."""
    return _TAB_MEMO.reuse(
        "sources", (referrals, overrides), lambda: build_sources(referrals, overrides),
        incremental=incremental,
    )


def tab_unchanged(
    content: TabContent, current: TabValues | None, *, date1904: bool = False,
    incremental: bool = True,
) -> bool:
    """:func:`tab_matches`, reused per tab while both grids are the same (see :class:`_TabMemo`)."""
    if current is None:
        return False
    return _TAB_MEMO.reuse(
        f"matches:{content.title}", (content.rows, current.rows, date1904),
        lambda: tab_matches(content, current, date1904=date1904), incremental=incremental,
    )


def _out_text(value: CellValue | OutValue, date1904: bool) -> str:
    if isinstance(value, datetime | date):
        return cell_text(to_serial(value, date1904))
    return cell_text(value)


def _row_text(row: Sequence[CellValue | OutValue], date1904: bool) -> tuple[str, ...]:
    """A row as the sheet shows it, trailing blank cells dropped (they are not written)."""
    return _rstrip(tuple(_out_text(v, date1904) for v in row))


def _rstrip(row: tuple[str, ...]) -> tuple[str, ...]:
    end = len(row)
    while end and row[end - 1] == "":
        end -= 1
    return row[:end]


def log_rows(state: StateView, tz: tzinfo) -> list[LogEntry]:
    """Earlier Bridge Log lines from the runs table, their times in the practice's zone."""
    rows: list[LogEntry] = []
    for started, summary, problems in state.log_rows:
        when: OutValue
        try:
            when = log_moment(datetime.fromisoformat(started), tz)
        except ValueError:
            when = started
        rows.append((when, summary or "No changes", problems))
    return rows


def summarise(
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
