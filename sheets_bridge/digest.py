"""The owner's weekly digest: pure builders from parsed referrals to a subject, bodies and a chart.

The digest is the one email the bridge may send without a person in between, so everything in
it is an aggregate or a referrer name: no patient names, emails, phones or Reasons, anywhere (the
subject, both bodies, the chart labels). Bottlenecks name Referral IDs at most, as the Dashboard
does; referrers are named when they are providers, and patients who referred a friend are
counted (they are patients too; the Referrers tab names them, inside the practice). The numbers are the Dashboard's (``metrics.overview``), so the email and
the sheet agree.

The week it reports on is the last *full* week before ``now`` in the practice's time zone, with
weeks starting on ``summaries.week_starts``, like the Dashboard's "Last week". A digest is keyed
by the ISO week in which it is made (``digest.2026-W48``), which is what makes it once a week
whatever restarts happen (``digest_run`` keeps that promise with the draft ledger).

Nothing here reads a clock, a file or the network; ``digest_run`` does the I/O.

Why one module of this size: the digest's content (built from the metrics) and its rendering
(templates, chart, message) are one email; each part is short.
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from email.message import EmailMessage

from markupsafe import Markup, escape

from sheets_bridge.draft_keys import DIGEST_KIND, DraftKey, digest_week
from sheets_bridge.email_templates import package_sources, sandboxed
from sheets_bridge.gifts import Gift, build_gifts_summary
from sheets_bridge.identity import referrer_key
from sheets_bridge.messages import InlineImage, build_message, parse_address
from sheets_bridge.metrics import (
    REFERRED_TAGS,
    GroupStats,
    WeekCount,
    fmt_date,
    fmt_number,
    group_stats,
    overview,
    volume_line,
)
from sheets_bridge.model import SOURCE_TAGS, TAG_COLOURS, DraftRequest, Referral
from sheets_bridge.referrers import ReferrerRow, referrer_rows
from sheets_bridge.settings import SummarySettings
from sheets_bridge.summaries import fmt_share, fmt_span
from sheets_bridge.values import has_control_chars

__all__ = [
    "CountLine",
    "Digest",
    "DraftsWaiting",
    "ReferrerLine",
    "RenderedDigest",
    "SideBySide",
    "build_digest",
    "chart_png",
    "digest_key",
    "digest_message",
    "preview_html",
    "render_digest",
]

#: The ledger kind of the digest (the drafts ledger is shared with the per-referral drafts).
#: How many lapsed referrers the digest names; the rest are counted ("and 4 more").
MAX_RECONNECT = 5
#: The Content-ID of the chart inside the message (left of the @); the right side is the domain.
CHART_CID_LOCAL = "digest-chart"

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_TAG_LABEL = {
    "Provider Referral": "Provider referrals",
    "Patient Referral": "Patient referrals",
    "Self-Referral": "Self-referrals (cold leads)",
    "Unknown": "Source unknown",
}
#: The chart's legend: the Dashboard chart's short names, in its colours (model.TAG_COLOURS).
_CHART_LABEL = {"Provider Referral": "Provider", "Patient Referral": "Patient",
                "Self-Referral": "Self", "Unknown": "Unknown"}  # fmt: skip


def digest_key(now: datetime) -> str:
    """``digest.2026-W48``: the ISO week (of ``now``'s own zone) the digest is made in."""
    return str(DraftKey.digest(digest_week(now)))


# --------------------------------------------------------------------------------------------
# The content, as plain data


@dataclass(frozen=True)
class CountLine:
    """One source tag's referrals in the week and in the week before."""

    label: str
    week: int
    before: int


@dataclass(frozen=True)
class SideBySide:
    """Referred patients or cold leads over the comparison window, shares written out."""

    label: str
    volume: int
    week: int
    good_fit: str
    within_24h: str
    show: str
    long_term: str


@dataclass(frozen=True)
class ReferrerLine:
    """A provider to thank or to reconnect with: a name (never a patient's) and why."""

    name: str
    practice: str
    detail: str


@dataclass(frozen=True)
class DraftsWaiting:
    """What ``digest_run`` counted of the drafts: made recently (ledger) and in the folder."""

    made_last_7_days: int
    in_folder: int | None
    where: str


@dataclass(frozen=True)
class Digest:
    """Everything the digest says, ready for the templates; no patient data by construction."""

    key: str
    practice_name: str
    subject: str
    headline: str
    week_label: str
    week_span: str
    new: int
    before: int
    delta: str
    average: float | None
    overdue: int
    comparison: str
    by_tag: tuple[CountLine, ...]
    side_by_side: tuple[SideBySide, ...]
    side_span: str
    volume: str
    stall: bool
    bottlenecks: tuple[str, ...]
    thank: tuple[ReferrerLine, ...]
    """Provider referrers who sent patients in the week, by name."""
    thank_patients: int
    """Patients who referred someone in the week: counted, not named (they are patients)."""
    reconnect: tuple[ReferrerLine, ...]
    reconnect_more: int
    reconnect_patients: int
    drafts: tuple[str, ...]
    gifts: tuple[str, ...]
    gift_summary: str
    sheet_link: str
    notes: tuple[str, ...]
    weeks: tuple[WeekCount, ...]
    unreadable: int
    sheet_where: str = ""
    """Where the workbook is, said in words, when there is no link a phone could follow."""


def _short(day: date) -> str:
    return f"{day.day} {_MONTHS[day.month - 1]}"


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _delta(now_count: int, before: int) -> str:
    diff = now_count - before
    return f"+{diff}" if diff > 0 else ("±0" if diff == 0 else str(diff))


def _side(label: str, stats: GroupStats, week: int) -> SideBySide:
    return SideBySide(
        label=label,
        volume=stats.volume,
        week=week,
        good_fit=fmt_share(stats.good_fit),
        within_24h=fmt_share(stats.within_24h),
        show=fmt_share(stats.show),
        long_term=fmt_share(stats.long_term),
    )


def _is_referred(ref: Referral) -> bool:
    """The rule ``referrer_rows`` uses: a named referrer and not a self-referral."""
    return ref.source_tag != "Self-Referral" and bool(ref.referred_by.strip())


def _thank(
    referrals: Iterable[Referral], start: float, end: float, rows: Mapping[str, ReferrerRow]
) -> tuple[tuple[ReferrerLine, ...], int]:
    """Providers who sent referrals in ``[start, end)`` by name, and how many patients did.

    A patient who refers a friend is a patient: the digest counts them and leaves their names to
    the Referrers tab (a digest may be sent, and it carries no patient names).
    """
    counts: Counter[str] = Counter()
    for ref in referrals:
        received = ref.received
        if received is None or not _is_referred(ref):
            continue
        if start <= received.timestamp() < end:
            counts[referrer_key(ref)] += 1
    lines: list[tuple[int, str, ReferrerLine]] = []
    patients = 0
    for key, n in counts.items():
        row = rows.get(key)
        if row is None:  # cannot happen: the same rows build both; skip rather than guess
            continue
        if row.type != "Provider":
            patients += 1
            continue
        detail = _plural(n, "referral")
        if row.first_referral is not None and row.total == n:
            detail += ", their first"
        lines.append((-n, row.name.casefold(), ReferrerLine(row.name, row.practice, detail)))
    return tuple(line for *_, line in sorted(lines, key=lambda t: (t[0], t[1]))), patients


def _reconnect(rows: Sequence[ReferrerRow]) -> tuple[tuple[ReferrerLine, ...], int, int]:
    """Lapsed provider referrers, most referrals first (at most ``MAX_RECONNECT`` by name), how
    many more there are, and how many lapsed patient referrers (counted, never named)."""
    lapsed = sorted(
        (r for r in rows if r.lapsed and r.type == "Provider"),
        key=lambda r: (-r.total, -r.last_referral.toordinal(), r.name.casefold()),
    )
    patients = sum(1 for r in rows if r.lapsed and r.type != "Provider")
    lines = []
    for row in lapsed[:MAX_RECONNECT]:
        detail = (
            f"{_plural(row.total, 'referral')} in all, the last on {fmt_date(row.last_referral)}"
        )
        if row.last_checkin is not None:
            detail += f"; a check-in was drafted on {fmt_date(row.last_checkin)}"
        lines.append(ReferrerLine(row.name, row.practice, detail))
    return tuple(lines), max(0, len(lapsed) - MAX_RECONNECT), patients


def _sensitive(referrals: Iterable[Referral], gifts: Iterable[Gift]) -> list[str]:
    """Patient values that must never reach the digest, longest first (for ``_scrub``)."""
    found: set[str] = set()
    for ref in referrals:
        full = " ".join(f"{ref.first_name} {ref.last_name}".split())
        if " " in full:
            found.add(full)
        for value in (ref.email, ref.phone, ref.reason):
            if value and len(value.strip()) >= 4:
                found.add(value.strip())
    for gift in gifts:
        if gift.recipient_type == "Patient" and len(gift.recipient.strip()) >= 3:
            found.add(gift.recipient.strip())
    return sorted(found, key=len, reverse=True)


def _scrub(line: str, sensitive: Sequence[str]) -> str:
    """Belt and braces for free text typed by staff (a gift's Item): patient values are removed.

    ``gift_warnings`` already names patients by Gifts row only; an Item like "card for Grace
    Thompson" is the case this catches.
    """
    for value in sensitive:
        if value.casefold() in line.casefold():
            line = re.sub(re.escape(value), "[a patient]", line, flags=re.IGNORECASE)
    return line


def _drafts_lines(drafts: DraftsWaiting | None) -> tuple[str, ...]:
    if drafts is None:
        return ()
    made = drafts.made_last_7_days
    lines = [
        f"{_plural(made, 'email draft')} made in the last 7 days, waiting for a person to "
        "review and send them."
        if made
        else "No email drafts made in the last 7 days."
    ]
    if drafts.in_folder is not None:
        lines.append(f"{_plural(drafts.in_folder, 'draft')} in {drafts.where} in all.")
    return tuple(lines)


def build_digest(
    referrals: Sequence[Referral],
    now: datetime,
    *,
    practice_name: str,
    summaries: SummarySettings,
    gifts: Sequence[Gift] = (),
    drafts: DraftsWaiting | None = None,
    sheet_link: str = "",
    sheet_where: str = "",
    notes: Sequence[str] = (),
    drafted: Mapping[str, Mapping[str, date]] | None = None,
) -> Digest:
    """The digest made at ``now`` (aware, in the practice's zone) for the last full week.

    ``gifts`` are the Gifts tab's rows (``metrics.read_gifts``); ``drafted`` is the ledger's
    acknowledgement and check-in dates per referrer (``hooks.drafted_by_referrer``), so a lapsed
    referrer's line can say a check-in is already drafted. ``notes`` are shown first (for
    example "drafted, not sent: this mail backend cannot send").
    """
    ov = overview(referrals, now, summaries)
    last_week = ov.periods[1]
    weeks = ov.weeks
    new, before = weeks[-1].total, weeks[-2].total
    average = sum(w.total for w in weeks[-5:-1]) / 4 if len(weeks) >= 5 else None
    overdue = sum(1 for r in referrals if r.stage == "OVERDUE")
    label = _short(last_week.start.date())
    delta = _delta(new, before)
    # Named for the week it covers (the last full week), not the day it was made.
    subject = f"Referrals, week of {label}: {new} new ({delta}), {overdue} overdue"
    comparison = (
        f"{_plural(new, 'new referral')} in the week of {label}, against {before} the week "
        "before"
        + (
            f" and an average of {fmt_number(average)} a week over the 4 weeks before"
            if average is not None
            else ""
        )
        + "."
    )
    headline = (
        f"{_plural(new, 'new referral')} ({delta} on the week before); "
        f"{overdue} {'is' if overdue == 1 else 'are'} overdue for a first contact now."
    )

    by_tag = tuple(
        CountLine(
            _TAG_LABEL.get(tag, tag), weeks[-1].counts.get(tag, 0), weeks[-2].counts.get(tag, 0)
        )
        for tag in SOURCE_TAGS
        if tag != "Unknown" or weeks[-1].counts.get(tag, 0) or weeks[-2].counts.get(tag, 0)
    )

    window = ov.window
    w_start, w_end = window.start.timestamp(), window.end.timestamp()
    in_window = [
        r for r in referrals if r.received is not None and w_start <= r.received.timestamp() < w_end
    ]
    referred = [r for r in in_window if r.source_tag in REFERRED_TAGS]
    cold = [r for r in in_window if r.source_tag == "Self-Referral"]
    week_tags = weeks[-1].counts
    side = (
        _side(
            "Referred (Provider + Patient)",
            group_stats(referred, now),
            sum(week_tags.get(t, 0) for t in REFERRED_TAGS),
        ),
        _side(
            "Cold leads (Self-Referral)", group_stats(cold, now), week_tags.get("Self-Referral", 0)
        ),
    )

    rows = referrer_rows(referrals, now, summaries, drafted)
    by_key = {row.key: row for row in rows}
    thank, thank_patients = _thank(
        referrals, last_week.start.timestamp(), last_week.end.timestamp(), by_key
    )
    reconnect, more, reconnect_patients = _reconnect(rows)

    sensitive = _sensitive(referrals, gifts)
    gift_summary = build_gifts_summary(gifts, summaries, now.year)
    gift_line = (
        f"{_plural(gift_summary.count, 'gift')} logged in {gift_summary.year}, "
        f"${gift_summary.total_value:,.2f} in all."
        if gift_summary.count
        else f"No gifts logged in {gift_summary.year}."
    )

    return Digest(
        key=digest_key(now),
        practice_name=practice_name,
        subject=subject,
        headline=headline,
        week_label=label,
        week_span=fmt_span(last_week),
        new=new,
        before=before,
        delta=delta,
        average=average,
        overdue=overdue,
        comparison=comparison,
        by_tag=by_tag,
        side_by_side=side,
        side_span=fmt_span(window),
        volume=ov.stall or volume_line(weeks) or "Not enough weeks yet to judge volume.",
        stall=ov.stall is not None,
        bottlenecks=ov.bottlenecks,
        thank=thank,
        thank_patients=thank_patients,
        reconnect=reconnect,
        reconnect_more=more,
        reconnect_patients=reconnect_patients,
        drafts=_drafts_lines(drafts),
        gifts=tuple(_scrub(line, sensitive) for line in gift_summary.warnings),
        gift_summary=gift_line,
        sheet_link=sheet_link,
        sheet_where="" if sheet_link else sheet_where,
        notes=tuple(notes),
        weeks=weeks,
        unreadable=ov.unreadable_received,
    )


# --------------------------------------------------------------------------------------------
# The chart


def chart_png(weeks: Sequence[WeekCount]) -> bytes | None:
    """Referrals per week by source tag as a stacked bar chart: a 960x512 PNG shown 600 px wide.

    Labels are week dates and tag names only. ``None`` when matplotlib is not installed: the
    digest then goes out without its chart rather than not at all. The figure is drawn on the
    Agg canvas directly (no pyplot), so no global state or display is touched, and the PNG
    carries no software/date metadata, so the same weeks give the same bytes.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        return None
    # Drawn 960 px wide and shown at phone width (about 360 px), so every text is 13 pt or more
    # at 160 dpi: about 12 px on the phone's screen.
    figure = Figure(figsize=(6, 4.2), dpi=160)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    # Every other week is labelled, counting back from the last, so the labels never collide.
    labels = [_short(w.start) if (len(weeks) - 1 - i) % 2 == 0 else "" for i, w in enumerate(weeks)]
    positions = list(range(len(weeks)))
    bottom = [0] * len(weeks)
    for tag in SOURCE_TAGS:
        values = [w.counts.get(tag, 0) for w in weeks]
        if tag == "Unknown" and not any(values):
            continue
        axes.bar(
            positions,
            values,
            bottom=bottom,
            color="#" + TAG_COLOURS[tag],
            width=0.7,
            label=_CHART_LABEL[tag],
        )
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    axes.set_xticks(positions)
    axes.set_xticklabels(labels, fontsize=13)
    axes.tick_params(axis="y", labelsize=13)
    axes.tick_params(axis="x", length=0)
    axes.set_title(f"Referrals per week, last {len(weeks)} full weeks", fontsize=14)
    axes.spines[["top", "right"]].set_visible(False)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
    handles, names = axes.get_legend_handles_labels()
    figure.legend(handles, names, loc="lower center", ncols=len(names), frameon=False, fontsize=13)
    figure.tight_layout(rect=(0, 0.08, 1, 1))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------
# Rendering


#: The two digest templates, from the package (not overridable: the digest's privacy rules live
#: in its builder, and a practice template could reach for nothing more anyway).
_ENV = sandboxed(
    package_sources(("digest.html", "digest.txt")),
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
)


_REFERRAL_ID = re.compile(r"\bR-\d{5,}\b")


def _keep_ids_whole(text: str) -> Markup:
    """``text`` escaped for HTML, each Referral ID in a no-wrap span: a phone never breaks
    "R-00208" at its hyphen (the ID stays the plain characters staff search the sheet for)."""
    escaped = str(escape(text))
    return Markup(
        _REFERRAL_ID.sub(lambda m: f'<span style="white-space: nowrap;">{m.group(0)}</span>', escaped)
    )


_ENV.filters["ids"] = _keep_ids_whole


@dataclass(frozen=True)
class RenderedDigest:
    subject: str
    text: str
    html: str


def render_digest(digest: Digest, chart_src: str | None) -> RenderedDigest:
    """The plain-text and HTML bodies; ``chart_src`` is ``cid:...`` in a message, a ``data:``
    URI in a preview, or None for no chart."""
    context = {"d": digest, "chart_src": chart_src}
    text = _ENV.get_template("digest.txt").render(context)
    body = _ENV.get_template("digest.html").render(context)
    return RenderedDigest(digest.subject, text, body)


def preview_html(digest: Digest, png: bytes | None) -> str:
    """A standalone HTML page of the digest with the chart inlined as a ``data:`` URI."""
    src = f"data:image/png;base64,{base64.b64encode(png).decode('ascii')}" if png else None
    body = render_digest(digest, src).html
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(digest.subject)}</title>\n</head>\n"
        f'<body style="margin: 0; padding: 12px; background: #f4f4f4;">\n{body}</body>\n</html>\n'
    )


def digest_message(
    digest: Digest,
    *,
    png: bytes | None,
    to: str,
    from_addr: str,
    from_name: str,
    now: datetime,
    domain: str,
) -> EmailMessage:
    """The digest as a MIME message, built like every draft (``messages.build_message``):
    ``multipart/alternative`` of plain text, then the HTML with the chart inline by Content-ID.

    The key travels as a deterministic Message-ID (``<digest.2026-W48@domain>``) and in
    ``X-Sheets-Bridge-Key``, so a digest created just before a crash is found again.
    """
    if has_control_chars(digest.subject) or has_control_chars(from_name):
        raise ValueError("the digest subject or sender name holds a control character")
    cid = f"{CHART_CID_LOCAL}.{digest.key}@{domain}"
    rendered = render_digest(digest, f"cid:{cid}" if png else None)
    draft = DraftRequest(
        key=digest.key, referral_id="", kind=DIGEST_KIND, to=str(parse_address(to, field="To")),
        subject=rendered.subject, text=rendered.text, html=rendered.html,
    )
    image = InlineImage(png, cid, "referrals-per-week.png") if png else None
    return build_message(
        draft, from_addr=from_addr, from_name=from_name, now=now, domain=domain, image=image
    )
