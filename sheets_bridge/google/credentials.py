"""Loading Google credentials: a service-account key or an authorized-user token file.

Which kind a file is, is read from its ``type``. With an endpoint (an emulator or the tests'
fake), token refreshes go to ``<endpoint>/token`` for both kinds: google-auth honours a service
account key's ``token_uri`` but always overrides an authorized-user file's with Google's own
(GOOGLE-NOTES.md section 9), so the bridge sets it itself with ``with_token_uri``. Without an
endpoint google-auth's defaults are left alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sheets_bridge.errors import BridgeError, ConfigError
from sheets_bridge.private import require_private_file

__all__ = [
    "GMAIL_COMPOSE",
    "GMAIL_SEND",
    "SHEETS_SCOPE",
    "LoadedCredentials",
    "load_credentials",
]

SHEETS_SCOPE = "https://www.googleapis.com/auth/spreadsheets"
GMAIL_COMPOSE = "https://www.googleapis.com/auth/gmail.compose"
GMAIL_SEND = "https://www.googleapis.com/auth/gmail.send"


@dataclass(frozen=True)
class LoadedCredentials:
    """google-auth credentials plus what messages may say about them."""

    credentials: Any
    service_account: bool
    account: str | None
    """The service account's address (the sheet must be shared with it); None for a user."""


def _read(path: Path, what: str) -> dict[str, Any]:
    require_private_file(path, what=what)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        raise ConfigError(
            f"The {what} {path} is not a Google credentials JSON file: download the key (or run "
            "`sheets-bridge auth --config PATH`) again"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"The {what} {path} is not a Google credentials JSON file")
    return data


def load_credentials(
    path: Path | None,
    *,
    scopes: list[str],
    endpoint: str | None,
    what: str = "Google credentials file",
    allow_service_account: bool = True,
) -> LoadedCredentials:
    """The credentials in ``path`` (or the machine's default ones when ``path`` is None)."""
    if path is None:
        if endpoint is not None:
            from google.auth.credentials import AnonymousCredentials

            return LoadedCredentials(AnonymousCredentials(), False, None)
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError

        try:
            creds, _ = google.auth.default(scopes=scopes)
        except DefaultCredentialsError:
            raise ConfigError(
                "No Google credentials: set sheet.credentials (a service-account key) or run "
                "`sheets-bridge auth --config PATH`"
            ) from None
        account = getattr(creds, "service_account_email", None)
        return LoadedCredentials(creds, account is not None, account)
    data = _read(path, what)
    kind = data.get("type")
    try:
        if kind == "service_account":
            if not allow_service_account:
                raise ConfigError(
                    f"{path} is a service-account key, but Gmail drafts are made as the "
                    "practice's user: run `sheets-bridge auth --config PATH` and point "
                    "mail.credentials at the token file it writes"
                )
            from google.oauth2 import service_account

            sa = service_account.Credentials.from_service_account_info(data, scopes=scopes)
            if endpoint is not None:
                sa = sa.with_token_uri(f"{endpoint}/token")
            return LoadedCredentials(sa, True, sa.service_account_email)
        if kind == "authorized_user" or (kind is None and "refresh_token" in data):
            from google.oauth2.credentials import Credentials

            user = Credentials.from_authorized_user_info(data)
            if endpoint is not None:
                user = user.with_token_uri(f"{endpoint}/token")
            return LoadedCredentials(user, False, None)
    except (ValueError, KeyError):
        raise ConfigError(
            f"The {what} {path} is incomplete (a field is missing or damaged): download the key "
            "or run `sheets-bridge auth --config PATH` again"
        ) from None
    raise ConfigError(
        f"The {what} {path} is neither a service-account key nor an authorized-user token "
        f"(its type is {kind!r})"
    )


def needs_auth_message() -> BridgeError:
    return BridgeError("Run `sheets-bridge auth --config PATH` first to sign in to Gmail")
