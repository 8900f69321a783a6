"""The Referrers tab's numbers: one row per referrer, with its flags (High-quality, Lapsed, New).

A referrer is who the rows name in Referred By (and Referrer Practice), grouped by the one
referrer key (:func:`sheets_bridge.identity.referrer_key_of`: the Referrer Email when typed,
else the name and practice, compared loosely). Self-referrals have no referrer. The shares are
the same :class:`~sheets_bridge.metrics.Ratio` the Dashboard uses, so the two tabs agree.
Definitions: ``docs/metrics.md``. Pure.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from operator import attrgetter
from typing import Literal

from sheets_bridge.identity import referrer_key_of
from sheets_bridge.metrics import DAY, REFERRED_TAGS, Fact, QualityShares, Ratio, facts_of, stats_of
from sheets_bridge.model import Referral
from sheets_bridge.phase_memo import next_elapsed
from sheets_bridge.settings import SummarySettings

__all__ = ["ReferrerRow", "practice_baseline", "referrer_rows", "referrers_next_change"]


def _collapse(text: str) -> str:
    return " ".join(text.split())


@dataclass(frozen=True)
class ReferrerRow(QualityShares):
    """One referrer as the Referrers tab and the digest show them."""

    name: str
    practice: str
    type: Literal["Provider", "Patient"]
    total: int
    last_90_days: int
    last_referral: date
    good_fit: Ratio
    show: Ratio
    long_term: Ratio
    high_quality: bool | None
    """None when the referrer has fewer than ``min_sample`` referrals: too few to judge."""
    lapsed: bool
    new: bool
    last_acknowledgement: date | None
    last_checkin: date | None
    key: str
    first_referral: date | None = None
    last_year: int = 0



def _most_common(counts: Counter[str]) -> str:
    """The most frequent spelling; ties go to the alphabetically first, so row order never matters."""
    if not counts:
        return ""
    return min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0]


def _kind_dates(kinds: Mapping[str, date]) -> tuple[date | None, date | None]:
    """Latest acknowledgement and check-in among the ledger's kinds, however the kinds are spelled."""
    ack: date | None = None
    checkin: date | None = None
    for kind, day in kinds.items():
        plain = re.sub(r"[^a-z]", "", kind.casefold())
        if "acknowledg" in plain:
            ack = day if ack is None or day > ack else ack
        elif "checkin" in plain:
            checkin = day if checkin is None or day > checkin else checkin
    return ack, checkin


def _is_above(share: float | None, baseline: float | None) -> bool:
    return share is not None and baseline is not None and share > baseline


def referrer_rows(
    referrals: Sequence[Referral],
    now: datetime,
    settings: SummarySettings,
    drafted: Mapping[str, Mapping[str, date]] | None = None,
) -> list[ReferrerRow]:
    """One row per referrer (Referred By + Referrer Practice), most referrals first.

    A row counts for a referrer when Referred By is filled and the Source Tag is not
    Self-Referral. Type is the majority of the rows' Provider/Patient tags (channel when the tag is
    Unknown); a tie is Provider. ``drafted`` maps a referrer key
    (:func:`sheets_bridge.identity.referrer_key`) to ledger kinds and their last dates; it may
    be empty.
    """
    drafted = drafted or {}
    fs = facts_of(referrals, now)
    now_ts = now.timestamp()
    year_from = now_ts - 365 * DAY
    # Group by the cells as typed first (cheap), then merge spellings that share a key.
    raw: dict[tuple[str, str, str], list[Fact]] = defaultdict(list)
    for f in fs.facts:
        ref = f.ref
        if ref.source_tag != "Self-Referral" and ref.referred_by and not ref.referred_by.isspace():
            raw[(ref.referred_by, ref.referrer_practice, ref.referrer_email or "")].append(f)
    groups: dict[str, list[Fact]] = defaultdict(list)
    names: dict[str, Counter[str]] = defaultdict(Counter)
    practices: dict[str, Counter[str]] = defaultdict(Counter)
    for (name, practice, email), found in raw.items():
        key = referrer_key_of(name, practice, email)
        if groups[key]:
            groups[key] = sorted(groups[key] + found, key=attrgetter("ts"))
        else:
            groups[key] = found
        names[key][_collapse(name)] += len(found)
        practices[key][_collapse(practice)] += len(found)
    last_year_all = stats_of(f for f in fs.facts if f.ts >= year_from)
    base_fit, base_show = last_year_all.good_fit_share, last_year_all.show_rate

    rows: list[ReferrerRow] = []
    for key, group in groups.items():
        stats = stats_of(group)
        year = [f for f in group if f.ts >= year_from]
        year_stats = stats_of(year)
        provider = sum(
            f.ref.source_tag == "Provider Referral"
            or (f.ref.source_tag not in REFERRED_TAGS and f.ref.channel == "Provider")
            for f in group
        )
        patient = sum(
            f.ref.source_tag == "Patient Referral"
            or (f.ref.source_tag not in REFERRED_TAGS and f.ref.channel == "Patient")
            for f in group
        )
        high_quality: bool | None
        if len(group) < settings.min_sample:
            high_quality = None
        else:
            high_quality = (
                len(year) >= settings.high_quality_min_referrals
                and _is_above(year_stats.good_fit_share, base_fit)
                and _is_above(year_stats.show_rate, base_show)
            )
        last_ts = group[-1].ts  # facts are sorted by Received
        ack, checkin = _kind_dates(drafted.get(key, {}))
        rows.append(
            ReferrerRow(
                name=_most_common(names[key]),
                practice=_most_common(practices[key]),
                type="Patient" if patient > provider else "Provider",
                total=len(group),
                last_90_days=sum(f.ts >= now_ts - 90 * DAY for f in group),
                last_referral=group[-1].day,
                good_fit=stats.good_fit,
                show=stats.show,
                long_term=stats.long_term,
                high_quality=high_quality,
                lapsed=last_ts < now_ts - settings.lapsed_days * DAY,
                new=group[0].ts >= now_ts - settings.new_days * DAY,
                last_acknowledgement=ack,
                last_checkin=checkin,
                key=key,
                first_referral=group[0].day,
                last_year=len(year),
            )
        )
    rows.sort(key=lambda r: (-r.total, r.name.casefold(), r.practice.casefold(), r.key))
    return rows


def referrers_next_change(
    referrals: Sequence[Referral], now: datetime, settings: SummarySettings
) -> float:
    """The first instant (a timestamp) after which the clock alone could change
    :func:`referrer_rows` for these rows, mirroring each of its time tests:

    - the year and the baseline (``f.ts >= year_from``), Last 90 Days, Lapsed
      (``last_ts < now_ts - lapsed_days``) and New (``first ts >= now_ts - new_days``): a
      Received plus 365 or 90 days, or plus either span;
    - the show rate (:class:`~sheets_bridge.metrics.Fact`, ``appt_ts < now_ts`` for a row whose
      Visit says Attended, No-show or Cancelled): such an Appointment.

    Every other input (tags, names, Fit, Visit, Outcome, the ledger's dates) is not the clock.
    """
    fs = facts_of(referrals, now)
    now_ts = now.timestamp()
    spans = {365 * DAY, 90 * DAY, settings.lapsed_days * DAY, settings.new_days * DAY}
    received = next_elapsed(fs.stamps, spans, now_ts)
    shown = sorted(
        f.appt_ts for f in fs.facts
        if f.appt_ts is not None and f.ref.visit in ("Attended", "No-show", "Cancelled")
    )
    return min(received, next_elapsed(shown, (0.0,), now_ts))


def practice_baseline(
    referrals: Sequence[Referral], now: datetime
) -> tuple[float | None, float | None]:
    """Good-fit share and show rate of every referral received in the last 365 days: the bar a
    High-quality referrer must clear."""
    year_from = now.timestamp() - 365 * DAY
    stats = stats_of(f for f in facts_of(referrals, now).facts if f.ts >= year_from)
    return stats.good_fit_share, stats.show_rate
