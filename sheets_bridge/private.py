"""Secrets stay private: the bridge refuses to start when others can read its keys or state.

A service-account key or an OAuth token file opens the practice's sheet and mailbox; the state
folder holds the journal and the key that makes patient digests unguessable. Either readable by
another user of the machine is refused with the exact ``chmod`` to run (RELIABILITY.md (d)).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from sheets_bridge.errors import BridgeError

__all__ = ["ExposedSecretError", "refuse_exposed", "require_private_file"]


class ExposedSecretError(BridgeError):
    """A credentials file or the state folder can be read by other users of this machine."""

    exit_code = 2


def _exposed(path: Path) -> bool:
    if os.name == "nt":  # pragma: no cover - Windows keeps ACLs, not mode bits
        return False
    return bool(stat.S_IMODE(path.stat().st_mode) & 0o077)


def require_private_file(path: Path, *, what: str) -> None:
    """Refuse ``path`` when it is missing or group/world accessible; the message names the fix."""
    try:
        exposed = _exposed(path)
    except FileNotFoundError:
        raise BridgeError(
            f"The {what} {path} does not exist: check the credentials key in the config"
            + (" or run `sheets-bridge auth --config PATH`" if "token" in what else "")
        ) from None
    if exposed:
        raise ExposedSecretError(
            f"The {what} {path} can be read by other users of this machine: run "
            f"`chmod 600 {path}`, then start the bridge again"
        )


def refuse_exposed(config: Any) -> None:
    """Before a run: the configured credentials files and the state folder must be private."""
    for section, what in ((config.sheet, "Google credentials file"),
                          (config.mail, "Gmail token file")):
        path = getattr(section, "credentials", None)
        if getattr(section, "kind", "") in ("google", "gmail") and path is not None:
            require_private_file(Path(path), what=what)
    state_dir = Path(config.state_dir)
    if state_dir.is_dir() and _exposed(state_dir):
        raise ExposedSecretError(
            f"The state folder {state_dir} can be read by other users of this machine: run "
            f"`chmod 700 {state_dir}`, then start the bridge again"
        )
