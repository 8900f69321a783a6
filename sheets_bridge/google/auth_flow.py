"""``sheets-bridge auth``: sign the practice's Google account in (OAuth installed-app flow).

google-auth-oauthlib's ``InstalledAppFlow`` opens the browser at Google's consent screen and
receives the answer on a local port; the token it returns is written, mode 0600 and atomically,
to ``mail.credentials`` (or ``sheet.credentials`` when mail is not Gmail). The bridge asks for
``spreadsheets`` (read and write the referral sheet) and ``gmail.compose`` (make drafts; Google
has no drafts-only scope), plus ``gmail.send`` only when ``digest.send`` is on. With an endpoint
(an emulator) the flow's auth and token addresses are ``<endpoint>/auth`` and ``<endpoint>/token``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

from sheets_bridge.errors import BridgeError, ConfigError
from sheets_bridge.files import fsync_dir
from sheets_bridge.google.credentials import GMAIL_COMPOSE, GMAIL_SEND, SHEETS_SCOPE

__all__ = ["auth_scopes", "run_auth", "save_token", "token_path"]


def auth_scopes(config: Any) -> list[str]:
    scopes = [SHEETS_SCOPE, GMAIL_COMPOSE]
    if getattr(config.digest, "send", False):
        scopes.append(GMAIL_SEND)
    return scopes


def token_path(config: Any) -> Path:
    """Where the token goes: mail.credentials for Gmail, else the sheet's credentials."""
    for section in (config.mail, config.sheet):
        if getattr(section, "kind", "") in ("gmail", "google") and section.credentials:
            return Path(section.credentials)
    raise ConfigError(
        "Set mail.credentials (kind: gmail) or sheet.credentials (kind: google) to the file the "
        "token should be written to, then run `sheets-bridge auth --config PATH` again"
    )


def save_token(credentials: Any, path: Path) -> Path:
    """Write ``credentials`` as authorized-user JSON, mode 0600 from the first byte, atomically."""
    data = credentials.to_json()
    json.loads(data)  # refuse to write anything but JSON
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), 0o600)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
    fsync_dir(path.parent)
    return path


def run_auth(
    config: Any, *, client_secrets: Path, open_browser: bool = True, port: int = 0
) -> Path:
    """Run the consent flow and write the token; returns where it was written."""
    from google_auth_oauthlib.flow import InstalledAppFlow

    target = token_path(config)
    try:
        client = json.loads(client_secrets.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BridgeError(
            f"No OAuth client file at {client_secrets}: in the Cloud console create an OAuth "
            "client ID of type Desktop app, download its JSON there (or pass --client-secrets)"
        ) from None
    except (OSError, ValueError):
        raise BridgeError(f"{client_secrets} is not the OAuth client JSON file") from None
    endpoint = getattr(config.mail, "endpoint", None) or getattr(config.sheet, "endpoint", None)
    if endpoint:
        for section in client.values():
            if isinstance(section, dict):
                section["auth_uri"] = f"{endpoint}/auth"
                section["token_uri"] = f"{endpoint}/token"
    flow = InstalledAppFlow.from_client_config(client, scopes=auth_scopes(config))
    credentials = flow.run_local_server(
        port=port, open_browser=open_browser, access_type="offline", prompt="consent",
        authorization_prompt_message="Sign in with the practice's Google account: {url}",
        success_message="sheets-bridge is signed in. You can close this window.",
    )
    return save_token(credentials, target)
