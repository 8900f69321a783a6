"""Making the weekly digest for real: read the sheet, build, then draft (or send) exactly once.

The pure content lives in ``digest``; this module does the I/O around it, through the same
outbox as every other draft (:mod:`sheets_bridge.outbox`), so the digest is made once per ISO
week whatever restarts or crashes happen:

1. under the state folder's lock, the outbox settles open keys (a digest journalled by a run that
   died is looked up, and confirmed if it exists) and, in a new or rebuilt state file, adopts the
   drafts the mail backend holds;
2. a week whose key is in the ledger is done; otherwise the digest is built and handed to the
   outbox, which journals the key, creates the draft (the key travels in its Message-ID and in
   ``X-Sheets-Bridge-Key``), deletes any extra copy, and confirms it.

A digest that would be *sent* is at most once instead: a pending send whose fate is unknown is
never repeated (two copies in the owner's inbox are worse than one missed week, and the next
week's digest carries the same numbers).

The sheet is only read here; nothing is written to it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sheets_bridge.config import BridgeConfig
from sheets_bridge.derive import read_referrals
from sheets_bridge.digest import (
    Digest,
    DraftsWaiting,
    build_digest,
    chart_png,
    digest_key,
    digest_message,
    preview_html,
)
from sheets_bridge.draft_keys import DIGEST_KIND
from sheets_bridge.errors import BackendError, BridgeError
from sheets_bridge.gifts import read_gifts
from sheets_bridge.ledger import drafted_by_referrer
from sheets_bridge.mail import Drafter, open_drafter
from sheets_bridge.metrics import WEEKDAY_NAMES
from sheets_bridge.model import GIFTS_TAB
from sheets_bridge.outbox import Outbox, Outgoing, StepHook
from sheets_bridge.settings import DigestSettings
from sheets_bridge.sheets import SheetBackend, open_sheet
from sheets_bridge.state import StateStore
from sheets_bridge.state_view import StateView

log = logging.getLogger(__name__)

#: The ledger kind of a digest being *sent*: a pending one is never retried (at most once).
SEND_KIND = "weekly_digest_send"

__all__ = [
    "DigestOutcome",
    "digest_due",
    "digest_settings",
    "make_digest",
    "maybe_digest",
    "write_preview",
]


@dataclass(frozen=True)
class DigestOutcome:
    """What ``make_digest`` did: ``drafted``, ``sent`` or ``exists``, with a line to print."""

    key: str
    status: str
    ref: str
    message: str


def digest_settings(config: BridgeConfig) -> DigestSettings:
    """The ``digest:`` section, or the defaults while the config does not mount one."""
    found = getattr(config, "digest", None)
    return found if isinstance(found, DigestSettings) else DigestSettings()


def digest_due(now: datetime, settings: DigestSettings) -> datetime:
    """When this ISO week's digest falls due: its weekday and hour in ``now``'s (the practice's)
    zone. Built from the date, so a DST change that week moves nothing; an hour that does not
    exist that day (spring forward) compares as the moment the clocks jumped."""
    today = now.date()
    monday = today - timedelta(days=today.weekday())
    day = monday + timedelta(days=WEEKDAY_NAMES.index(settings.weekday))
    return datetime(day.year, day.month, day.day, settings.hour, tzinfo=now.tzinfo)


def _sheet_link(config: BridgeConfig, settings: DigestSettings, sheet: SheetBackend) -> str:
    if settings.sheet_link:
        return settings.sheet_link
    return sheet.link() or ""


def _domain(config: BridgeConfig) -> str:
    return config.practice.owner_email.rpartition("@")[2] or "sheets-bridge.invalid"


def _drafts_waiting(view: StateView, drafter: Drafter | None, now: datetime) -> DraftsWaiting:
    """Drafts made in the last 7 days (ledger) and, where the drafter can count them, all of its
    drafts; the digests themselves are not counted."""
    since = now.timestamp() - 7 * 86400
    recent = sum(
        1
        for record in view.drafts.values()
        if record.kind != DIGEST_KIND
        and not record.key.startswith("digest.")  # a sync may adopt one under another kind
        and record.status == "confirmed"
        and record.created.timestamp() >= since
    )
    in_folder: int | None = None
    where = "the drafts folder"
    if drafter is not None:
        where = drafter.describe()
        try:
            in_folder = drafter.count_waiting()
        except BackendError as error:
            log.warning("could not count the drafts: %s", error)
    return DraftsWaiting(made_last_7_days=recent, in_folder=in_folder, where=where)


def _build(
    config: BridgeConfig,
    sheet: SheetBackend,
    view: StateView,
    now: datetime,
    drafter: Drafter | None,
    settings: DigestSettings,
    notes: Sequence[str] = (),
) -> Digest:
    """Read the rows as they stand (nothing is written) and build the digest."""
    snapshot = sheet.read()
    read = read_referrals(snapshot, now, config)
    if isinstance(read, str):
        raise BridgeError(f"no digest this time: {read}")
    referrals, _ = read
    gifts = read_gifts(
        snapshot.tabs.get(GIFTS_TAB),
        now=now,
        date_order=config.practice.date_order or "MDY",
        date1904=snapshot.date1904,
    )
    return build_digest(
        referrals,
        now,
        practice_name=config.practice.name,
        summaries=config.summaries,
        gifts=gifts,
        drafts=_drafts_waiting(view, drafter, now),
        sheet_link=_sheet_link(config, settings, sheet),
        sheet_where=sheet.describe(),
        notes=notes,
        drafted=drafted_by_referrer(view, config.tz, referrals),
    )


def make_digest(
    config: BridgeConfig,
    now: datetime,
    *,
    sheet: SheetBackend | None = None,
    drafter: Drafter | None = None,
    settings: DigestSettings | None = None,
    hook: StepHook | None = None,
    wait: float = 0.0,
) -> DigestOutcome:
    """This ISO week's digest, drafted (or sent) now unless it already exists.

    Takes the state folder's lock for the whole settle-journal-create-confirm sequence, so a
    sync or a second scheduler cannot race it (it raises ``StateLockedError`` instead, after
    waiting up to ``wait`` seconds for the cycle under way).
    """
    now = now.astimezone(config.tz)
    settings = settings if settings is not None else digest_settings(config)
    key = digest_key(now)
    drafter = drafter if drafter is not None else open_drafter(config)
    with StateStore(config.state_dir, wait=wait) as state:
        drafter.prepare()
        outbox = Outbox(state, drafter, hook=hook)
        outbox.settle(now)
        record = state.draft(key)
        if record is not None and record.status == "confirmed":
            return DigestOutcome(key, "exists", record.ref, _exists(key, record.ref))
        if record is not None and record.kind == SEND_KIND and record.status != "forgotten":
            # A send that was journalled but never confirmed: it may have gone. Never twice.
            return DigestOutcome(
                key,
                "exists",
                "",
                f"The digest for {key[7:]} was being sent when the bridge "
                "stopped; it is not sent again.",
            )
        if record is not None and record.status in ("pending", "unknown"):
            return DigestOutcome(
                key, "exists", "",
                f"The digest for {key[7:]} may already be in {drafter.describe()}; the bridge "
                "looks for it again before making another.",
            )

        last = state.last_now()
        if last is not None and now.timestamp() < last.timestamp():
            # A clock set back would make a digest for a week already past (issue 12, item 3).
            return DigestOutcome(
                key, "clock", "",
                f"No digest: the clock reads {now:%Y-%m-%d %H:%M}, earlier than the last run "
                f"({last.astimezone(config.tz):%Y-%m-%d %H:%M}); fix the system clock",
            )
        sender = drafter if settings.send and drafter.can_send else None
        notes: list[str] = failure_notes(state, now)
        if settings.send and sender is None:
            notes.append(
                f"digest.send is on, but {drafter.describe()} cannot send email: this digest "
                "was drafted instead."
            )
        view = state.view(now)
        digest = _build(
            config, sheet if sheet is not None else open_sheet(config), view, now, drafter,
            settings, notes,
        )
        message = digest_message(
            digest,
            png=chart_png(digest.weeks),
            to=config.practice.owner_email,
            from_addr=config.practice.owner_email,
            from_name=config.practice.name,
            now=now,
            domain=_domain(config),
        )
        if sender is not None:
            sent = outbox.send(Outgoing(key, "", SEND_KIND, message), now)
            return DigestOutcome(
                key,
                "sent",
                sent.ref,
                f"Sent the digest for the week of {digest.week_span} to "
                f"{config.practice.owner_email}: {digest.subject}",
            )
        made = outbox.make([Outgoing(key, "", DIGEST_KIND, message)], now)
        if not made:
            raise BackendError(
                f"the digest for {key[7:]} could not be saved in {drafter.describe()}; the bridge "
                "tries again at its next run",
                backend=drafter.kind,
                retryable=True,
            )
        done = state.draft(key)
        ref = done.ref if done is not None else ""
    return DigestOutcome(
        key,
        "drafted",
        ref,
        f"Drafted the digest for the week of {digest.week_span} in {drafter.describe()} "
        f"({ref}): {digest.subject}" + (f" ({notes[0]})" if notes else ""),
    )


def failure_notes(state: StateStore, now: datetime) -> list[str]:
    """What the owner should know about the bridge itself this week: a failure under way, or
    the spells of failed cycles it recovered from (each reported once, never per cycle)."""
    episode = state.episode()
    if episode is not None:
        return [
            (f"The bridge has been failing since {episode.since:%a %d %b %H:%M} "
            f"({episode.failures} failed cycles): {episode.last_error}")
        ]
    spells = state.failure_spells(now - timedelta(days=7))
    if spells:
        times = "once" if spells == 1 else f"{spells} times"
        return [f"The bridge's cycles failed {times} this week; each time it recovered by itself."]
    return []


def _exists(key: str, ref: str) -> str:
    where = f" ({ref})" if ref else ""
    return f"The digest for {key[7:]} was already made{where}: one a week, so nothing new."


def maybe_digest(
    config: BridgeConfig,
    now: datetime,
    *,
    settings: DigestSettings | None = None,
    sheet: SheetBackend | None = None,
    drafter: Drafter | None = None,
) -> str | None:
    """For the scheduler: make this ISO week's digest once ``now`` is at or after its weekday and
    hour (so a digest missed while the bridge was down still goes out, once, at the next start).

    Returns the line saying what was made, or None when nothing was due or it already existed.
    ``settings``, ``sheet`` and ``drafter`` default to the config's (tests pass their own).
    """
    now = now.astimezone(config.tz)
    settings = settings if settings is not None else digest_settings(config)
    # Timestamps, not datetimes: two datetimes with the same tzinfo compare as wall times,
    # which is wrong for the repeated hour of a fall-back night.
    if now.timestamp() < digest_due(now, settings).timestamp():
        return None
    outcome = make_digest(config, now, sheet=sheet, drafter=drafter, settings=settings)
    return outcome.message if outcome.status in ("drafted", "sent") else None


def write_preview(
    config: BridgeConfig,
    now: datetime,
    path: Path,
    *,
    sheet: SheetBackend | None = None,
    settings: DigestSettings | None = None,
) -> Path:
    """Write the digest as one standalone HTML file (the chart inlined) and return its path.

    Nothing else is written: no draft, no ledger entry. The state file is read when it exists
    (for Referral IDs and the drafts counts) and never created.
    """
    now = now.astimezone(config.tz)
    drafter: Drafter | None
    try:
        drafter = open_drafter(config)
    except BackendError:
        drafter = None
    if (config.state_dir / "state.sqlite").exists():
        with StateStore(config.state_dir) as state:
            view = state.view(now)
    else:
        view = StateView()
    settings = settings if settings is not None else digest_settings(config)
    digest = _build(
        config, sheet if sheet is not None else open_sheet(config), view, now, drafter, settings
    )
    page = preview_html(digest, chart_png(digest.weeks))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(page, encoding="utf-8")
    temp.replace(path)
    return path
