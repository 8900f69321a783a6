"""Requests the add-on refused (bad tokens, users not allowed), counted for ``status``.

Kept in a small JSON file in the state folder, not in the state database: the add-on must count
a refusal without taking the state lock a running cycle holds. Reasons are short tags; no token,
address or patient data is ever written.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FILE_NAME = "addon-refusals.json"
_lock = threading.Lock()


def record_refusal(state_dir: Path, status: int, reason: str) -> None:
    with _lock:
        data = read_refusals(state_dir)
        key = f"{status} {reason}"
        data["count"] = int(data.get("count", 0)) + 1
        data.setdefault("reasons", {})[key] = int(data["reasons"].get(key, 0)) + 1
        data["last"] = datetime.now(UTC).isoformat(timespec="seconds")
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = state_dir / (FILE_NAME + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out)
        os.replace(tmp, state_dir / FILE_NAME)


def read_refusals(state_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((state_dir / FILE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"count": 0, "reasons": {}}
    return data if isinstance(data, dict) else {"count": 0, "reasons": {}}


def refusal_lines(state_dir: Path) -> list[str]:
    """What ``sheets-bridge status`` prints about the add-on; nothing if it never refused."""
    data = read_refusals(state_dir)
    if not data.get("count"):
        return []
    parts = ", ".join(f"{reason}: {n}" for reason, n in sorted(data.get("reasons", {}).items()))
    return [f"Add-on requests refused: {data['count']} ({parts}); last at {data.get('last')}"]
