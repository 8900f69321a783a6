"""Making the weekly digest for real: read the sheet, build, then draft (or send) exactly once.

The pure content lives in ``digest``; this module does the I/O around it, in the order that makes
the digest once per ISO week whatever restarts or crashes happen (RELIABILITY.md R1/R2, the same
protocol as the per-referral drafts in ``hooks``):

1. under the state folder's lock, look the week's key (``digest.2026-W48``) up in the drafts
   ledger, then in the mail backend (a state file rebuilt after a loss still knows a digest the
   drafts folder holds); either one means "already made";
2. journal the key as *pending*, create the draft (the key travels in its Message-ID and in
   ``X-Sheets-Bridge-Key``), then confirm it;
3. a pending key found at the next start is settled with ``drafter.find``: confirmed if the draft
   exists, made now if it does not.

A digest that would be *sent* is at most once instead: a pending send whose fate is unknown is
never repeated (two copies in the owner's inbox are worse than one missed week, and the next
week's digest carries the same numbers). No mail backend the bridge has today can send, so
``digest.send: true`` drafts and says so in the digest.

The sheet is only read here; nothing is written to it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sheets_bridge.config import BridgeConfig, LocalSheetConfig
from sheets_bridge.digest import (
    DIGEST_KIND,
    Digest,
    DigestSettings,
    DraftsWaiting,
    build_digest,
    chart_png,
    digest_key,
    digest_message,
    preview_html,
)
from sheets_bridge.errors import BackendError, BridgeError
from sheets_bridge.hooks import drafted_by_referrer
from sheets_bridge.mail import Drafter, open_drafter
from sheets_bridge.metrics import WEEKDAY_NAMES, read_gifts
from sheets_bridge.model import GIFTS_TAB, Snapshot
from sheets_bridge.planner import plan_cycle
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


def _sheet_link(config: BridgeConfig, settings: DigestSettings) -> str:
    if settings.sheet_link:
        return settings.sheet_link
    if isinstance(config.sheet, LocalSheetConfig):
        return config.sheet.path.resolve().as_uri()
    return f"https://docs.google.com/spreadsheets/d/{config.sheet.spreadsheet_id}"


def _domain(config: BridgeConfig) -> str:
    return config.practice.owner_email.rpartition("@")[2] or "sheets-bridge.invalid"


def _drafts_waiting(view: StateView, drafter: Drafter | None, now: datetime) -> DraftsWaiting:
    """Drafts made in the last 7 days (ledger) and, where the drafter can list them, all of its
    drafts; the digests themselves are not counted."""
    since = now.timestamp() - 7 * 86400
    recent = sum(
        1
        for record in view.drafts.values()
        if not record.key.startswith("digest.")  # a sync may adopt one under another kind
        and record.status == "confirmed"
        and record.created.timestamp() >= since
    )
    in_folder: int | None = None
    where = "the drafts folder"
    if drafter is not None:
        where = drafter.describe()
        try:
            in_folder = sum(1 for key in drafter.list_keys() if not key.startswith("digest."))
        except BackendError as error:
            log.warning("could not count the drafts: %s", error)
    return DraftsWaiting(made_last_7_days=recent, in_folder=in_folder, where=where)


def _build(
    config: BridgeConfig,
    snapshot: Snapshot,
    view: StateView,
    now: datetime,
    drafter: Drafter | None,
    settings: DigestSettings,
    notes: Sequence[str] = (),
) -> Digest:
    """Parse the rows as a dry-run sync would (nothing is written) and build the digest."""
    result = plan_cycle(snapshot, now, config, view)
    if result.plan.stop is not None:
        raise BridgeError(f"no digest this time: {result.plan.stop.reason}")
    gifts = read_gifts(
        snapshot.tabs.get(GIFTS_TAB), config.practice.date_order or "MDY", snapshot.date1904
    )
    return build_digest(
        result.referrals,
        now,
        practice_name=config.practice.name,
        summaries=config.summaries,
        gifts=gifts,
        drafts=_drafts_waiting(view, drafter, now),
        sheet_link=_sheet_link(config, settings),
        notes=notes,
        drafted=drafted_by_referrer(view, config),
    )


def make_digest(
    config: BridgeConfig,
    now: datetime,
    *,
    sheet: SheetBackend | None = None,
    drafter: Drafter | None = None,
    settings: DigestSettings | None = None,
) -> DigestOutcome:
    """This ISO week's digest, drafted (or sent) now unless it already exists.

    Takes the state folder's lock for the whole check-journal-create-confirm sequence, so a
    sync or a second scheduler cannot race it (it raises ``StateLockedError`` instead).
    """
    now = now.astimezone(config.tz)
    settings = settings if settings is not None else digest_settings(config)
    key = digest_key(now)
    drafter = drafter if drafter is not None else open_drafter(config)
    with StateStore(config.state_dir) as state:
        view = state.view(now)
        record = view.drafts.get(key)
        if record is not None and record.status == "confirmed":
            return DigestOutcome(key, "exists", record.ref, _exists(key, record.ref))
        if record is not None and record.kind == SEND_KIND:
            # A send that was journalled but never confirmed: it may have gone. Never twice.
            return DigestOutcome(
                key,
                "exists",
                "",
                f"The digest for {key[7:]} was being sent when the bridge "
                "stopped; it is not sent again.",
            )
        found = drafter.find(key)
        if found is not None:
            if record is None:
                state.draft_adopt(key, "", DIGEST_KIND, found, now)
            else:
                state.draft_confirmed(key, found, now)
            return DigestOutcome(key, "exists", found, _exists(key, found))

        sender = drafter if settings.send and drafter.can_send else None
        notes: list[str] = []
        if settings.send and sender is None:
            notes.append(
                f"digest.send is on, but {drafter.describe()} cannot send email: this digest "
                "was drafted instead."
            )
        snapshot = (sheet if sheet is not None else open_sheet(config)).read()
        digest = _build(config, snapshot, view, now, drafter, settings, notes)
        message = digest_message(
            digest,
            png=chart_png(digest.weeks),
            to=config.practice.owner_email,
            from_addr=config.practice.owner_email,
            from_name=config.practice.name,
            now=now,
            domain=_domain(config),
        )
        kind = SEND_KIND if sender is not None else DIGEST_KIND
        state.draft_pending(key, referral_id="", kind=kind, referrer_key="", now=now)
        if sender is not None:
            try:
                ref = sender.send(key, message)
            except BackendError:
                state.draft_forget(key)  # known not sent: the next start tries again
                raise
            state.draft_confirmed(key, ref, now)
            return DigestOutcome(
                key,
                "sent",
                ref,
                f"Sent the digest for {key[7:]} to {config.practice.owner_email}: {digest.subject}",
            )
        ref = drafter.create(key, message)  # a BackendError leaves it pending: settled next start
        state.draft_confirmed(key, ref, now)
    return DigestOutcome(
        key,
        "drafted",
        ref,
        f"Drafted the digest for {key[7:]} in {drafter.describe()} "
        f"({ref}): {digest.subject}" + (f" ({notes[0]})" if notes else ""),
    )


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
    snapshot = (sheet if sheet is not None else open_sheet(config)).read()
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
    digest = _build(config, snapshot, view, now, drafter, settings)
    page = preview_html(digest, chart_png(digest.weeks))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(page, encoding="utf-8")
    temp.replace(path)
    return path
