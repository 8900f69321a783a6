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
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sheets_bridge.layout import Layout, read_layout
from sheets_bridge.model import SOURCES_TAB, Problem, Referral, ReferralsTab, Snapshot
from sheets_bridge.referral_ids import RowWork, collect_rows
from sheets_bridge.rules import RuleContext, read_referral
from sheets_bridge.values import cell_text, comparison_key
from sheets_bridge.worktabs import SourceOverrides, read_source_overrides

if TYPE_CHECKING:
    from sheets_bridge.config import BridgeConfig

__all__ = ["derive_rows", "flag_duplicates", "read_referrals"]

#: Parsed rows memoised for one cycle (same now and config), keyed by all a parse depends on.
ReferralMemo = dict[tuple[object, ...], Referral]


def derive_rows(
    rows: Sequence[RowWork],
    tab: ReferralsTab,
    layout: Layout,
    snapshot: Snapshot,
    config: BridgeConfig,
    now: datetime,
    memo: ReferralMemo | None = None,
) -> tuple[list[Referral], SourceOverrides]:
    """Every row as a Referral (under its final ID), and the Sources tab's overrides used."""
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
    for r in rows:
        extra = list(layout.merged_notes.get(r.sheet.number, ()))
        if r.blocked:
            extra.insert(0, r.block_reason)
        emails = cell_text(r.sheet.get(emails_col)) if emails_col is not None else ""
        memo_key = (
            context_key, r.sheet.number, r.sheet.values, r.final_id, tuple(extra), emails, r.facets
        )
        referral = memo.get(memo_key) if memo is not None else None
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
                facets=r.facets,
            )
            if memo is not None:
                memo[memo_key] = referral
        referrals.append(referral)
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
    rows = collect_rows(tab, layout)
    for r in rows:
        r.final_id = r.current_id
    referrals, overrides = derive_rows(rows, tab, layout, snapshot, config, now.astimezone(config.tz))
    problems = [*layout.problems, *(Problem(m) for m in overrides.problems)]
    return referrals, problems


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
