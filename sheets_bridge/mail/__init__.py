"""The drafter role: make an email draft exactly once per key. Implementations named for their medium.

A drafter never decides what to draft (the planner does) and never sends. Exactly-once across
crashes is shared: the apply step journals a key as pending before :meth:`Drafter.create`, and on
start reconciles each pending key with :meth:`Drafter.find`; the drafter makes a second copy
impossible where its medium allows (an ``.eml`` file named by its key, created exclusively) and
carries the key inside the message (``X-Sheets-Bridge-Key``, a deterministic Message-ID) where it
does not (Gmail).
"""

from __future__ import annotations

from email.message import EmailMessage
from typing import Any, ClassVar, Protocol

from sheets_bridge.errors import BackendError

__all__ = ["Drafter", "open_drafter"]


class Drafter(Protocol):
    """Where drafts are made: a folder of ``.eml`` files, Gmail, or memory."""

    kind: ClassVar[str]

    def describe(self) -> str:
        """Where the drafts go, for messages (a folder or an account, never message content)."""
        ...

    def find(self, key: str) -> str | None:
        """The ref of the draft with ``key`` if one exists (reconciling after a crash)."""
        ...

    def create(self, key: str, message: EmailMessage) -> str:
        """Make the draft for ``key`` once and return its ref.

        If a draft with ``key`` already exists, return its ref and create nothing.
        """
        ...

    def list_keys(self) -> dict[str, str]:
        """Key -> ref of every draft this drafter can see (rebuilding a lost state file)."""
        ...


def open_drafter(config: Any) -> Drafter:
    """The drafter the config names: ``mail.kind`` is ``eml`` (a local folder) or ``gmail``.

    Accepts the whole ``BridgeConfig`` or just its ``mail`` section. ``memory`` (tests and
    ``--dry-run``) is accepted too, though the config file cannot name it.
    """
    mail = getattr(config, "mail", config)
    kind = getattr(mail, "kind", None)
    if kind == "eml":
        from sheets_bridge.mail.eml import EmlFolderDrafter

        return EmlFolderDrafter(mail.path)
    if kind == "memory":
        from sheets_bridge.mail.memory import MemoryDrafter

        return MemoryDrafter()
    if kind == "gmail":
        raise BackendError("the Gmail drafter is not built yet", backend="gmail")
    raise BackendError(f"mail.kind {kind!r} is not a drafter the bridge knows", backend="mail")
