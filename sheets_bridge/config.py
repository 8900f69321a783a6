"""The one YAML config file, validated by pydantic with messages that name the key and the fix.

``config.example.yaml`` documents every key and runs the local demo; a test keeps the two in step.
Relative paths resolve against the config file's folder, so a practice can move the folder whole.
"""

from __future__ import annotations

import re
from datetime import date, time
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sheets_bridge.digest import DigestSettings
from sheets_bridge.drafting import DraftsSettings, TemplateSet
from sheets_bridge.errors import ConfigError
from sheets_bridge.metrics import SummarySettings
from sheets_bridge.model import CHANNELS, REFERRALS_TAB, STAFF_COLUMNS

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BusinessHours(_Model):
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


class PracticeConfig(_Model):
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


class LocalSheetConfig(_Model):
    kind: Literal["local"] = "local"
    path: Path
    tab: str = REFERRALS_TAB
    allow_lossy_save: bool = False


class GoogleSheetConfig(_Model):
    kind: Literal["google"]
    spreadsheet_id: str
    tab: str = REFERRALS_TAB
    credentials: Path | None = None
    endpoint: str | None = None


SheetConfig = Annotated[LocalSheetConfig | GoogleSheetConfig, Field(discriminator="kind")]


class EmlMailConfig(_Model):
    kind: Literal["eml"] = "eml"
    path: Path


class GmailMailConfig(_Model):
    kind: Literal["gmail"]
    credentials: Path | None = None
    endpoint: str | None = None


MailConfig = Annotated[EmlMailConfig | GmailMailConfig, Field(discriminator="kind")]


class ColumnsConfig(_Model):
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


class SyncConfig(_Model):
    contact_window_hours: float = Field(24, gt=0, le=48)
    duplicate_window_days: int = Field(14, ge=0)
    max_missing_ids_fraction: float = Field(0.5, gt=0, le=1)
    min_rows_for_breaker: int = Field(10, ge=1)
    notice_hours: float = Field(24, ge=0)


class SourcesConfig(_Model):
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


class ScheduleConfig(_Model):
    """How often the daemon (``sheets-bridge run``) syncs; the digest has its own day and hour."""

    sync_minutes: int = Field(5, ge=1, le=1440)


class BridgeConfig(_Model):
    practice: PracticeConfig
    sheet: SheetConfig
    mail: MailConfig
    state_dir: Path
    columns: ColumnsConfig = ColumnsConfig()
    sync: SyncConfig = SyncConfig()
    sources: SourcesConfig = SourcesConfig()
    drafts: DraftsSettings = DraftsSettings()
    summaries: SummarySettings = SummarySettings()
    digest: DigestSettings = DigestSettings()
    schedule: ScheduleConfig = ScheduleConfig()
    config_path: Path | None = Field(default=None, exclude=True)

    @property
    def tz(self) -> ZoneInfo:
        return self.practice.tz


def _resolve(base: Path, value: Path) -> Path:
    path = value.expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def _format_errors(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors():
        loc = ".".join(str(part) for part in item["loc"] if not str(part).startswith("function-"))
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "is not a key the bridge knows: check its spelling in config.example.yaml"
        elif item["type"] == "missing":
            message = "is required: see config.example.yaml"
        elif item["type"] == "union_tag_invalid":
            message = f"kind must be one of {item.get('ctx', {}).get('expected_tags', '')}"
        problems.append(f"{loc}: {message}" if loc else message)
    return problems


def parse_config(data: Any, *, base: Path, source: str = "config") -> BridgeConfig:
    """Validate a parsed YAML mapping; relative paths resolve against ``base``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source} must be a YAML mapping of keys (see config.example.yaml)")
    try:
        config = BridgeConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(f"{source} has problems", _format_errors(error)) from None
    updates: dict[str, Any] = {"state_dir": _resolve(base, config.state_dir)}
    if isinstance(config.sheet, LocalSheetConfig):
        updates["sheet"] = config.sheet.model_copy(
            update={"path": _resolve(base, config.sheet.path)}
        )
    if isinstance(config.mail, EmlMailConfig):
        updates["mail"] = config.mail.model_copy(update={"path": _resolve(base, config.mail.path)})
    if config.drafts.templates_dir is not None:
        updates["drafts"] = config.drafts.model_copy(
            update={"templates_dir": _resolve(base, config.drafts.templates_dir)}
        )
    config = config.model_copy(update=updates)
    # B21: a template that reaches for more than its kind may use fails here, not at send time.
    template_problems = TemplateSet.from_settings(config.drafts).check(config.drafts)
    if template_problems:
        raise ConfigError(f"{source}: the email templates have problems", template_problems)
    return config


def load_config(path: Path) -> BridgeConfig:
    """Read and validate the YAML file at ``path``; every problem becomes one line in a ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"No config file at {path}: copy config.example.yaml there and edit it"
        ) from None
    except OSError as error:
        raise ConfigError(f"Cannot read {path}: {error.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path} is not valid YAML{where}: check indentation and quotes") from None
    config = parse_config(data, base=path.parent.resolve(), source=str(path))
    return config.model_copy(update={"config_path": path.resolve()})


__all__ = ["WEEKDAYS", "BridgeConfig", "load_config", "parse_config"]
