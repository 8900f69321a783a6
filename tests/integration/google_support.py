"""Helpers for tests against the fake Google: credential files, configs, a fast retry policy."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from conftest import BASE_CONFIG, deep_merge
from fakes.google_server import FakeGoogle, write_authorized_user_token, write_service_account_key

from sheets_bridge.config import BridgeConfig, parse_config
from sheets_bridge.google.transport import RetryPolicy

SHEET_ID = "1SheetForTestsAbC"
SA_EMAIL = "bridge@practice-test.iam.gserviceaccount.com"

#: Retries in tests wait milliseconds, never seconds; reads time out after 2 s.
FAST = RetryPolicy(attempts=4, base=0.01, cap=0.05, budget=1.0, connect_timeout=2.0,
                   read_timeout=2.0)


def credential_files(folder: Path) -> tuple[Path, Path]:
    """A service-account key (for the sheet) and a user token (for Gmail), both mode 0600."""
    folder.mkdir(parents=True, exist_ok=True)
    key, token = folder / "service-account.json", folder / "gmail-token.json"
    write_service_account_key(key, email=SA_EMAIL)
    write_authorized_user_token(token)
    os.chmod(key, 0o600)
    os.chmod(token, 0o600)
    return key, token


def google_config(
    fake: FakeGoogle, folder: Path, *, mail: str = "gmail", spreadsheet: str = SHEET_ID,
    **sections: Any,
) -> BridgeConfig:
    """A config for ``sheet.kind: google`` (and Gmail, or an .eml folder) on the fake."""
    key, token = credential_files(folder / "secrets")
    base = {k: v for k, v in BASE_CONFIG.items() if k not in ("sheet", "mail")}
    data = deep_merge(base, {
        "sheet": {"kind": "google", "spreadsheet": spreadsheet, "credentials": str(key),
                  "endpoint": fake.endpoint},
        "mail": (
            {"kind": "gmail", "credentials": str(token), "endpoint": fake.endpoint}
            if mail == "gmail" else {"kind": "eml", "path": "drafts"}
        ),
    })
    return parse_config(deep_merge(data, sections), base=folder)


def open_fast_sheet(config: BridgeConfig) -> Any:
    from sheets_bridge.sheets.google import GoogleSheet

    return GoogleSheet.from_config(config.sheet, policy=FAST)


def open_fast_drafter(config: BridgeConfig) -> Any:
    from sheets_bridge.mail.gmail import GmailDrafter

    return GmailDrafter.from_config(config, policy=FAST)


def sheets_writes(fake: FakeGoogle) -> list[str]:
    """Every Sheets request that changes something, as "METHOD path"."""
    return [
        f"{r.method} {r.path}" for r in fake.requests
        if r.api == "sheets" and r.method != "GET"
    ]


def sheets_calls(fake: FakeGoogle) -> list[str]:
    return [f"{r.method} {r.path}" for r in fake.requests if r.api == "sheets"]
