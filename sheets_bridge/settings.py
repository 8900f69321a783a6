"""Every section of the config file as a pydantic model: strict, frozen, with messages that say why.

This is the bottom of the package: it imports only the product's vocabulary (``model``,
``email_kinds``), so anything may read settings and nothing here reaches for drafting, metrics
or the digest. :mod:`sheets_bridge.config` assembles the sections into one ``BridgeConfig`` and
loads the YAML file; ``config.example.yaml`` documents every key (a test keeps them in step).
"""

from __future__ import annotations

import re
from datetime import date, time
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from sheets_bridge.email_kinds import EXTRA_FIELDS, KINDS, REFERRER_KINDS
from sheets_bridge.model import CHANNELS, REFERRALS_TAB, STAFF_COLUMNS

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class SettingsModel(BaseModel):
    """Strict (unknown keys fail, so a typo is reported) and frozen, like the whole config."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class BusinessHours(SettingsModel):
    """When the practice answers the phone; a Follow-up Due outside them moves to the next opening."""

    start: time = time(8, 0)
    end: time = time(17, 0)
    open_days: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri")

    @model_validator(mode="after")
    def _start_before_end(self) -> BusinessHours:
        if self.end <= self.start:
            raise ValueError("end must be later than start (for example start: '08:00', end: '17:00')")
        if not self.open_days:
            raise ValueError("open_days must list at least one day, like [mon, tue, wed, thu, fri]")
        return self


class PracticeConfig(SettingsModel):
    name: str
    timezone: str = "America/New_York"
    owner_email: str
    phone_region: str = "US"
    date_order: Literal["MDY", "DMY"] | None = "MDY"
    signature: str = ""
    designated_contact: str = ""
    phone: str = ""
    address: str = ""
    business_hours: BusinessHours = BusinessHours()
    holidays: tuple[date, ...] = ()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}: use an IANA name like 'America/New_York'"
            ) from None
        return value

    @field_validator("name", "designated_contact")
    @classmethod
    def _one_line(cls, value: str) -> str:
        """Header-bound text (the drafts' From name, the digest's subject): one line, spaces
        collapsed, so ``name: >`` in YAML (which ends in a newline) works; a control character
        left inside is refused here rather than making every draft fail later."""
        value = " ".join(value.split())
        if any(ord(ch) < 32 or 0x202A <= ord(ch) <= 0x202E or 0x2066 <= ord(ch) <= 0x2069
               for ch in value):
            raise ValueError("holds a control character: type it again as plain text")
        return value

    @field_validator("owner_email")
    @classmethod
    def _plain_address(cls, value: str) -> str:
        if not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+", value.strip()):
            raise ValueError("must be one email address, like owner@example.com")
        return value.strip()

    @field_validator("phone_region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z]{2}", value):
            raise ValueError("must be a two-letter country code like US or GB")
        return value.upper()

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class LocalSheetConfig(SettingsModel):
    kind: Literal["local"] = "local"
    path: Path
    tab: str = REFERRALS_TAB
    allow_lossy_save: bool = False


_SPREADSHEET_URL = re.compile(r"/spreadsheets/d/([A-Za-z0-9_-]+)")
_SPREADSHEET_ID = re.compile(r"[A-Za-z0-9_-]+")
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def spreadsheet_id_of(value: str) -> str:
    """The spreadsheet ID in ``value``: the ID itself, or the sheet's address as the browser
    shows it (``https://docs.google.com/spreadsheets/d/<ID>/edit#gid=0``)."""
    value = value.strip()
    match = _SPREADSHEET_URL.search(value)
    if match:
        return match.group(1)
    if _SPREADSHEET_ID.fullmatch(value):
        return value
    raise ValueError(
        "must be the spreadsheet's ID or its address, like "
        "https://docs.google.com/spreadsheets/d/1AbC.../edit"
    )


def check_endpoint(value: str | None) -> str | None:
    """An endpoint must be https://, or http:// on this machine only (an emulator or a test
    server): patient data never travels unencrypted over a network."""
    if value is None:
        return None
    from urllib.parse import urlsplit

    value = value.strip().rstrip("/")
    parts = urlsplit(value)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError("must be an address like https://sheets.example.com or http://127.0.0.1:8080")
    if parts.scheme == "http" and not (host in _LOOPBACK_HOSTS or host.startswith("127.")):
        raise ValueError(
            "http:// is accepted only on this machine (127.0.0.1, localhost): use https:// for "
            "any other server"
        )
    if parts.query or parts.fragment:
        raise ValueError("must be a plain address without ?query or #fragment")
    return value


class GoogleSheetConfig(SettingsModel):
    """A Google Sheet, read and written through the Sheets API (gspread)."""

    kind: Literal["google"]
    spreadsheet: str = Field(validation_alias=AliasChoices("spreadsheet", "spreadsheet_id"))
    """The spreadsheet's ID or its address; ``spreadsheet_id`` is accepted as the same key."""
    tab: str = REFERRALS_TAB
    credentials: Path | None = None
    """A service-account key file, or an authorized-user token file (``sheets-bridge auth``);
    None uses the machine's Application Default Credentials."""
    endpoint: str | None = None
    """A Sheets-compatible server instead of Google (an emulator, the tests' fake)."""

    @field_validator("spreadsheet")
    @classmethod
    def _spreadsheet(cls, value: str) -> str:
        return spreadsheet_id_of(value)

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        return check_endpoint(value)

    @property
    def spreadsheet_id(self) -> str:
        return self.spreadsheet


SheetConfig = Annotated[LocalSheetConfig | GoogleSheetConfig, Field(discriminator="kind")]


class EmlMailConfig(SettingsModel):
    kind: Literal["eml"] = "eml"
    path: Path


class GmailMailConfig(SettingsModel):
    """Drafts in the practice's Gmail, through the Gmail API (an authorized-user token)."""

    kind: Literal["gmail"]
    credentials: Path | None = None
    """The token file ``sheets-bridge auth`` writes (google-auth-oauthlib's authorized-user JSON)."""
    endpoint: str | None = None
    """A Gmail-compatible server instead of Google (an emulator, the tests' fake)."""

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        return check_endpoint(value)


MailConfig = Annotated[EmlMailConfig | GmailMailConfig, Field(discriminator="kind")]


class ColumnsConfig(SettingsModel):
    """Other names a practice uses for the staff columns (case, spacing, punctuation ignored)."""

    aliases: dict[str, tuple[str, ...]] = Field(default_factory=dict)

    @field_validator("aliases")
    @classmethod
    def _known_columns(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        unknown = [name for name in value if name not in STAFF_COLUMNS]
        if unknown:
            raise ValueError(
                f"{', '.join(unknown)} is not a staff column; aliases are keyed by one of: "
                + ", ".join(STAFF_COLUMNS)
            )
        return value


class SyncConfig(SettingsModel):
    contact_window_hours: float = Field(24, gt=0, le=48)
    duplicate_window_days: int = Field(14, ge=0)
    max_missing_ids_fraction: float = Field(0.5, gt=0, le=1)
    min_rows_for_breaker: int = Field(10, ge=1)
    notice_hours: float = Field(24, ge=0)


class SourcesConfig(SettingsModel):
    """How free text typed into How Heard maps to a channel, by whole-word keywords."""

    keywords: dict[str, tuple[str, ...]] = Field(default_factory=dict)

    @field_validator("keywords")
    @classmethod
    def _known_channels(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        unknown = [name for name in value if name not in CHANNELS]
        if unknown:
            raise ValueError(
                f"{', '.join(unknown)} is not a channel; use one of: " + ", ".join(CHANNELS)
            )
        return value


class ScheduleConfig(SettingsModel):
    """How often the daemon (``sheets-bridge run``) syncs; the digest has its own day and hour."""

    sync_minutes: float = Field(5, ge=0.05, le=1440)
    """Minutes between cycles; a fraction is allowed (0.5 is every 30 seconds)."""
    max_backoff_minutes: float = Field(30, ge=0.05, le=1440)
    """A failing cycle is retried after twice the wait of the one before, at most this long."""


class DraftsSettings(SettingsModel):
    """The ``drafts:`` section of the config: which kinds run, their timing and templates.

    Frozen and strict (unknown keys fail) like the rest of the config, so a typo such as
    ``reminder_hour`` is reported instead of silently ignored.
    """

    recent_window_days: int = Field(7, ge=0)
    templates_dir: Path | None = None
    allow_fields: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    referrer_updates_without_consent: bool = False
    reminder_hours: int = Field(48, gt=0)
    feedback_after_days: int = Field(28, ge=1)
    checkin_quiet_days: int = Field(90, ge=1)
    same_patient_days: int = Field(60, ge=0)
    """A patient recognised by email, phone, or name and day (whatever Referral ID their row has
    now) gets no second draft of a kind within this many days; 0 turns the check off."""
    kinds: dict[str, bool] = Field(default_factory=dict)

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, value: dict[str, bool]) -> dict[str, bool]:
        unknown = [name for name in value if name not in KINDS]
        if unknown:
            raise ValueError(
                f"{', '.join(unknown)} is not an email kind; use one of: " + ", ".join(KINDS)
            )
        return value

    @field_validator("allow_fields")
    @classmethod
    def _known_fields(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for kind, names in value.items():
            if kind not in KINDS:
                raise ValueError(f"{kind} is not an email kind; use one of: " + ", ".join(KINDS))
            if kind in REFERRER_KINDS and names:
                raise ValueError(
                    f"{kind} is about a referrer, not one patient, so it cannot use "
                    + ", ".join(names)
                )
            unknown = [name for name in names if name not in EXTRA_FIELDS]
            if unknown:
                raise ValueError(
                    f"{kind}: {', '.join(unknown)} cannot be allowed; the fields a template may "
                    "be allowed on purpose are: " + ", ".join(EXTRA_FIELDS)
                )
        return value

    def is_enabled(self, kind: str) -> bool:
        """Every kind runs unless ``drafts.kinds`` switches it off."""
        return self.kinds.get(kind, True)

    def allowed_extras(self, kind: str) -> tuple[str, ...]:
        return self.allow_fields.get(kind, ())


class SummarySettings(SettingsModel):
    """Thresholds for flags and alerts; mounted in the config as ``summaries:``.

    Every default is a judgement a practice may tune; ``docs/metrics.md`` explains each.
    """

    week_starts: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"] = "mon"
    min_sample: int = Field(5, ge=1)
    """Below this many referrals a referrer is not ranked or flagged High-quality, and it says so."""
    high_quality_min_referrals: int = Field(5, ge=1)
    """High-quality needs at least this many referrals received in the last 365 days."""
    lapsed_days: int = Field(90, ge=1)
    """Lapsed: no referral for this many days (and at least one before)."""
    new_days: int = Field(30, ge=1)
    """New: the referrer's first referral came within this many days."""
    stall_ratio: float = Field(0.5, gt=0, le=1)
    """Stall: last full week's volume below this fraction of the 4 full weeks before it."""
    stall_min_average: float = Field(3.0, ge=0)
    """No stall alert while the trailing weekly average is below this (too small to mean much)."""
    stuck_factor: float = Field(2.0, gt=1)
    """A row is stuck when it has waited longer than this many times the practice's usual time."""
    gift_patient_item_limit: float = Field(15.0, ge=0)
    gift_patient_year_limit: float = Field(75.0, ge=0)
    gift_provider_year_limit: float = Field(507.0, ge=0)
    """42 CFR 411.357(k) non-monetary compensation limit; CMS adjusts it every 1 January."""




class DigestSettings(SettingsModel):
    """When the digest goes out and how; mounted in the config as ``digest:``.

    Drafting is the default: the owner's inbox gets nothing a person did not choose to send
    until ``send: true`` says so, and even then only a mail backend that can send does.
    """

    weekday: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"] = "mon"
    """The day of the (ISO, Monday-first) week on which the digest is made."""
    hour: int = Field(7, ge=0, le=23)
    """The hour, in the practice's time zone, from which the digest is made that day."""
    send: bool = False
    """Send the digest directly instead of drafting it (needs a mail backend that can send)."""
    sheet_link: str = ""
    """Where "Open the sheet" points; empty means the Google Sheet's address, or, for a local
    workbook, a line saying where the file is (a file:// link opens nothing on a phone)."""

    @field_validator("sheet_link")
    @classmethod
    def _web_or_file(cls, value: str) -> str:
        value = value.strip()
        if value and not re.match(r"(?i)^(https?|file)://[^\s<>\"]+$", value):
            raise ValueError(
                "must be an http(s):// or file:// address, like "
                "https://docs.google.com/spreadsheets/d/..."
            )
        return value


class AddonSettings(SettingsModel):
    """The Google Workspace add-on's HTTP endpoints (``docs/addon.md``); off while ``listen`` is
    empty. Mounted in the config as ``addon:``."""

    listen: str = ""
    """``host:port`` the daemon (``run``) and ``serve`` listen on, like ``127.0.0.1:8787``; TLS
    is terminated in front (a reverse proxy or Cloud Run)."""
    endpoint_url: str = ""
    """The public HTTPS URL Google calls: the audience of the ID token Google signs."""
    service_account: str = ""
    """The email of the add-on's Google service account, which signs Google's requests."""
    oauth_client_id: str = ""
    """The add-on's OAuth client ID: the audience of the user's own ID token in the event."""
    allowed_users: tuple[str, ...] = ()
    """Who gets a card: addresses (``ann@practice.com``) or whole domains (``@practice.com``)."""
    spreadsheet_id: str = ""
    """The Google Sheet the panel counts as this bridge's sheet; for ``sheet.kind: google`` it
    defaults to ``sheet.spreadsheet_id``."""
    certs_url: str = "https://www.googleapis.com/oauth2/v1/certs"
    """Where Google's signing certificates are fetched (tests point it at a local server)."""
    max_body_bytes: int = Field(65536, ge=1024, le=1048576)
    """Requests with a larger body are refused (413) before they are read."""

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        value = value.strip()
        if value and not re.fullmatch(r"[^\s:]+:\d{1,5}", value):
            raise ValueError("must be host:port, like 127.0.0.1:8787")
        return value

    @field_validator("allowed_users")
    @classmethod
    def _addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        out = []
        for item in value:
            item = item.strip().lower()
            if not re.fullmatch(r"[^@\s]*@[^@\s]+\.[^@\s]+", item):
                raise ValueError(
                    f"{item!r} is not an address or @domain (like ann@practice.com or @practice.com)"
                )
            out.append(item)
        return tuple(out)

    @model_validator(mode="after")
    def _complete_when_on(self) -> AddonSettings:
        if not self.listen:
            return self
        missing = [
            name for name in ("endpoint_url", "service_account", "oauth_client_id")
            if not getattr(self, name)
        ]
        if missing:
            raise ValueError(
                "the add-on listens, so it also needs " + ", ".join(missing)
                + " (see docs/addon.md)"
            )
        if not self.allowed_users:
            raise ValueError("allowed_users must name who may see cards, like ['@practice.com']")
        if not self.endpoint_url.startswith("https://"):
            raise ValueError("endpoint_url must be the public https:// address Google calls")
        return self

