"""The one YAML config file, validated by pydantic with messages that name the key and the fix.

``config.example.yaml`` documents every key and runs the local demo; a test keeps the two in step.
Relative paths resolve against the config file's folder, so a practice can move the folder whole.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from pydantic import Field, ValidationError

from sheets_bridge.errors import ConfigError
from sheets_bridge.settings import (
    AddonSettings,
    ColumnsConfig,
    DigestSettings,
    DraftsSettings,
    EmlMailConfig,
    LocalSheetConfig,
    MailConfig,
    PracticeConfig,
    ScheduleConfig,
    SettingsModel,
    SheetConfig,
    SourcesConfig,
    SummarySettings,
    SyncConfig,
)


class BridgeConfig(SettingsModel):
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
    addon: AddonSettings = AddonSettings()
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
    elif config.sheet.credentials is not None:
        updates["sheet"] = config.sheet.model_copy(
            update={"credentials": _resolve(base, config.sheet.credentials)}
        )
    if isinstance(config.mail, EmlMailConfig):
        updates["mail"] = config.mail.model_copy(update={"path": _resolve(base, config.mail.path)})
    elif config.mail.credentials is not None:
        updates["mail"] = config.mail.model_copy(
            update={"credentials": _resolve(base, config.mail.credentials)}
        )
    if config.drafts.templates_dir is not None:
        updates["drafts"] = config.drafts.model_copy(
            update={"templates_dir": _resolve(base, config.drafts.templates_dir)}
        )
    config = config.model_copy(update=updates)
    # B21: a template that reaches for more than its kind may use fails here, not at send time.
    from sheets_bridge.email_templates import TemplateSet  # Jinja2 only once a config is loaded

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
    except UnicodeDecodeError:
        raise ConfigError(
            f"{path} is not UTF-8 text: save it as UTF-8 (any editor's 'Save with encoding')"
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


__all__ = ["BridgeConfig", "LocalSheetConfig", "load_config", "parse_config"]
