"""The third phase of a plan: each row read into a Referral, by the rules, and duplicates found.

The rules (:mod:`sheets_bridge.rules`) turn one row's cells into a
:class:`~sheets_bridge.model.Referral`: Source Tag, Stage, Follow-up Due and every Attention line.
This phase runs them over the rows with what they depend on besides the row (the Sources tab's
tag overrides, merged-cell notes, a blocked row's reason), memoised across the plans of one
cycle, then flags the same patient typed twice (B22). :func:`read_referrals` is the light path
for readers that write nothing (the digest): the rows as they stand, with the IDs they carry.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sheets_bridge.layout import Layout, read_layout
from sheets_bridge.model import SOURCES_TAB, Problem, Referral, ReferralsTab, Snapshot
from sheets_bridge.phase_memo import NEVER, PhaseMemo
from sheets_bridge.referral_ids import RowWork, collect_rows
from sheets_bridge.rules import RuleContext, read_referral
from sheets_bridge.values import cell_text, comparison_key
from sheets_bridge.worktabs import SourceOverrides, read_source_overrides

if TYPE_CHECKING:
    from sheets_bridge.config import BridgeConfig

__all__ = ["derive_rows", "duplicates", "flag_duplicates", "read_referrals"]

#: Parsed rows memoised for one cycle (same now and config), keyed by all a parse depends on.
ReferralMemo = dict[tuple[object, ...], Referral]

_UTC = ZoneInfo("UTC")
#: Columns whose reading depends on the clock (a date "in the future" until it is not).
_DATE_COLUMNS = ("Received", "First Contact", "Appointment")


@dataclass(frozen=True, slots=True)
class _Derived:
    """One row's derivation and the span of ``now`` over which it holds unchanged."""

    referral: Referral
    since: datetime
    """The ``now`` it was derived at (UTC): a clock set back re-derives."""
    until: datetime
    """The horizon (UTC): the first instant the clock alone could change it."""


class _Incremental:
    """Rows derived by earlier cycles, kept between cycles (incremental planning).

    A row's derivation is a function of its cells, what else it depends on (the memo key) and
    ``now``; :func:`clock_horizon` says until when ``now`` cannot change it. A row whose key is
    unchanged and whose horizon has not passed is taken as it was, so a quiet cycle parses
    nothing. Only the rows of the latest plan are kept; a change to the rules' settings (the
    config's zone, hours, window, date order, keywords) starts afresh.
    """

    def __init__(self) -> None:
        # (basis, entries) in one attribute, read and replaced whole (see _RowDigests).
        self.current: tuple[tuple[object, ...], dict[tuple[object, ...], _Derived]] = ((), {})


_INCREMENTAL = _Incremental()


def clock_horizon(referral: Referral, ctx: RuleContext) -> datetime:
    """The first instant after ``ctx.now`` at which the clock alone could change ``referral``.

    What the clock changes in :func:`sheets_bridge.rules.read_referral`: the Stage of a row
    still waiting for contact (Contact due at a quarter of the window before Follow-up Due,
    OVERDUE at it), "Appointment has passed" at the appointment, and the reading of dates, which
    depends on the local day (a year inferred, 25 years back) and on whether a date is in the
    future. So: the next local midnight, or the next of those instants before it.

    Within a local day the one reading that can change is "<date column> is in the future" (a
    date more than a day ahead, two years for an appointment, is refused until it is not): a
    row with that line is re-derived every cycle (horizon ``now``). They are rare, and the
    instant each would be accepted need not be worked out again here.
    """
    now = ctx.now.astimezone(_UTC)
    if any(f"{column} is in the future" in line
           for line in referral.attention for column in _DATE_COLUMNS):
        return now
    local = ctx.now.astimezone(ctx.tz)
    until = datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=ctx.tz)
    until = until.astimezone(_UTC)
    moments: list[datetime] = []
    due = referral.follow_up_due
    if due is not None and referral.stage in ("New", "Contact due"):
        # Stage turns at these instants (``now >= at``): at ``now`` itself it already has.
        moments += [due - ctx.window / 4, due]
    for moment in moments:
        at = moment.astimezone(_UTC)
        if now < at < until:
            until = at
    if referral.appointment is not None:
        # "Appointment has passed" is said once ``appointment < now``: an appointment at this
        # very instant has not passed yet but has the instant after, so the row holds at no
        # later ``now`` (a horizon equal to ``now`` is never reused).
        at = referral.appointment.astimezone(_UTC)
        if now <= at < until:
            until = at
    return until


def derive_rows(
    rows: Sequence[RowWork],
    tab: ReferralsTab,
    layout: Layout,
    snapshot: Snapshot,
    config: BridgeConfig,
    now: datetime,
    memo: ReferralMemo | None = None,
    *,
    incremental: bool = True,
) -> tuple[list[Referral], SourceOverrides]:
    """Every row as a Referral (under its final ID), and the Sources tab's overrides used.

    ``incremental`` takes rows unchanged since an earlier cycle, whose horizon has not passed,
    as they were derived then (see :class:`_Incremental`); ``False`` derives every row afresh
    (the law the property tests check: both give the same plan).
    """
    cols, columns = layout.cols, layout.columns
    overrides = read_source_overrides(snapshot.tabs.get(SOURCES_TAB))
    ctx = RuleContext.from_config(
        config, now, tag_overrides=overrides.tags, date1904=snapshot.date1904
    )
    # Everything besides the row itself that its parse depends on (now and config are fixed
    # for the memo's lifetime, one cycle).
    context_key = (
        tuple(sorted(cols.staff.items())),
        tuple(sorted(overrides.tags.items())),
        snapshot.date1904,
    )
    emails_col = columns.get("Emails") if "Emails" in cols.bridge else None
    referrals: list[Referral] = []
    basis = (ctx.settings_key(), context_key)
    held, earlier = _INCREMENTAL.current
    if held != basis:
        earlier = {}
    kept: dict[tuple[object, ...], _Derived] = {}
    now_utc = ctx.now.astimezone(_UTC)
    for r in rows:
        extra = list(layout.merged_notes.get(r.sheet.number, ()))
        if r.blocked:
            extra.insert(0, r.block_reason)
        emails = cell_text(r.sheet.get(emails_col)) if emails_col is not None else ""
        uncalculated = (
            frozenset(
                name
                for name, col in cols.staff.items()
                if (r.sheet.number, col) in tab.formula_cells and r.sheet.get(col) is None
            )
            if tab.formula_cells
            else frozenset()
        )
        # The staff cells, not the whole row: the bridge's own cells (but Emails) are no input.
        memo_key = (
            context_key, r.sheet.number, r.inputs, r.final_id, tuple(extra), emails,
            r.facets, uncalculated,
        )
        referral = memo.get(memo_key) if memo is not None else None
        before = None
        if referral is None and incremental:
            before = earlier.get(memo_key)
            if before is not None and before.since <= now_utc < before.until:
                referral = before.referral
                kept[memo_key] = before
        if referral is None:
            referral = read_referral(
                r.sheet,
                cols,
                ctx,
                referral_id=r.final_id,
                leading=extra,
                emails=emails,
                uncalculated=uncalculated,
                facets=r.facets,
            )
            if before is not None and repr(referral) == repr(before.referral):
                # Derived again (its horizon passed, or it is one of the rows derived every
                # cycle) and the same to the last character: the earlier object is handed on,
                # so the phases after this one, which reuse by identity, see the row unchanged.
                referral = before.referral
            if memo is not None:
                memo[memo_key] = referral
        if incremental and memo_key not in kept:
            kept[memo_key] = _Derived(referral, now_utc, clock_horizon(referral, ctx))
        referrals.append(referral)
    if incremental:
        _INCREMENTAL.current = (basis, kept)
    return referrals, overrides


def read_referrals(
    snapshot: Snapshot, now: datetime, config: BridgeConfig
) -> tuple[list[Referral], list[Problem]] | str:
    """The rows as they stand, each under the Referral ID it carries (none yet: ``""``).

    For readers that write nothing (the digest, the add-on): no IDs are issued, no cell is
    decided. Returns the reason instead when the tab cannot be read at all.
    """
    tab = snapshot.referrals
    if tab is None:
        return (
            f"The {config.sheet.tab} tab is missing: rename it back, or set sheet.tab in the "
            "config to the tab that holds the referrals"
        )
    layout = read_layout(tab, config.columns.aliases)
    if isinstance(layout, str):
        return layout
    rows = collect_rows(tab, layout, incremental=False)
    for r in rows:
        r.final_id = r.current_id
    referrals, overrides = derive_rows(
        rows, tab, layout, snapshot, config, now.astimezone(config.tz), incremental=False
    )
    problems = [*layout.problems, *(Problem(m) for m in overrides.problems)]
    return referrals, problems


_DUPLICATES_MEMO = PhaseMemo()


def duplicates(
    referrals: Sequence[Referral], window_days: int, now: datetime
) -> tuple[dict[int, str], set[int]]:
    """:func:`flag_duplicates`, reused while the rows are the very same Referral objects (the
    derive memo hands them back for unchanged rows): it reads no clock, so its horizon is
    never; ``now`` only dates the memo (a clock set back works it out again)."""
    lines, later = _DUPLICATES_MEMO.reuse(
        "duplicates", referrals, (window_days,), now,
        lambda: flag_duplicates(referrals, window_days), lambda _found: NEVER,
    )
    return dict(lines), set(later)


def flag_duplicates(
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
