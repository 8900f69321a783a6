"""Drafts kept in memory: for tests and ``sync --dry-run``, with the same once-per-key semantics."""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from typing import ClassVar

from sheets_bridge.mail import cannot_send

__all__ = ["MemoryDrafter"]


class MemoryDrafter:
    """A dict of drafts by key. ``created`` counts real creations, so tests can assert "once"."""

    kind: ClassVar[str] = "memory"
    can_send: ClassVar[bool] = False
    search_lags: ClassVar[bool] = False

    def __init__(self) -> None:
        self.messages: dict[str, EmailMessage] = {}
        self.created = 0

    def describe(self) -> str:
        return "drafts in memory (nothing is saved)"

    @staticmethod
    def _ref(key: str) -> str:
        return f"memory:{key}"

    def prepare(self) -> None:
        """Nothing is left behind in memory."""

    def find(self, key: str) -> str | None:
        return self._ref(key) if key in self.messages else None

    def create(self, key: str, message: EmailMessage) -> str:
        if key not in self.messages:
            self.messages[key] = message
            self.created += 1
        return self._ref(key)

    def find_all(self, key: str) -> list[str]:
        found = self.find(key)
        return [found] if found else []

    def delete(self, ref: str) -> None:
        self.messages.pop(ref.removeprefix("memory:"), None)

    def list_keys(self) -> dict[str, str]:
        return {key: self._ref(key) for key in sorted(self.messages)}

    def count_waiting(self) -> int | None:
        return sum(1 for key in self.messages if not key.startswith("digest."))

    def created_at(self, key: str) -> datetime | None:
        message = self.messages.get(key)
        date = message["Date"] if message is not None else None
        moment = getattr(date, "datetime", None)
        return moment if isinstance(moment, datetime) and moment.tzinfo else None

    def send(self, key: str, message: EmailMessage) -> str:
        raise cannot_send(self)
