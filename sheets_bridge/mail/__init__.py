"""The drafter role: make an email draft exactly once per key. Implementations named for their medium.

A drafter never decides what to draft (the planner does) and never sends a message about a
patient. Exactly-once across crashes lives in one place, :mod:`sheets_bridge.outbox`: it journals
a key as pending before :meth:`Drafter.create`, looks the key up before a retried create and after
every create (:meth:`Drafter.find_all`), and deletes any extra copy carrying the same key
(:meth:`Drafter.delete`). A drafter makes a second copy impossible where its medium allows (an
``.eml`` file named by its key, created exclusively) and carries the key inside the message
(``X-Sheets-Bridge-Key``, a deterministic Message-ID) where it does not (Gmail, whose HTTP
transport may re-send a create whose response was lost).
"""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from typing import Any, ClassVar, Protocol

from sheets_bridge.errors import BackendError

__all__ = ["Drafter", "open_drafter"]


class Drafter(Protocol):
    """Where drafts are made: a folder of ``.eml`` files, Gmail, or memory.

    A *ref* is the medium's own name for one draft (a file name, a Gmail draft id); a *key* is
    the bridge's (``R-00012.referrer_acknowledgement``), carried inside the draft.
    """

    kind: ClassVar[str]
    can_send: ClassVar[bool]
    """Whether :meth:`send` works at all (only the owner's digest is ever sent)."""
    search_lags: ClassVar[bool]
    """Whether :meth:`find_all` may miss a draft made moments ago (Gmail's search index does):
    the outbox then looks again later before it gives a key up."""

    def describe(self) -> str:
        """Where the drafts go, for messages (a folder or an account, never message content)."""
        ...

    def prepare(self) -> None:
        """At the start of a run, under the state lock: remove what a crashed create left."""
        ...

    def find(self, key: str) -> str | None:
        """The ref of a draft carrying ``key``, or None (the oldest, when there are several)."""
        ...

    def find_all(self, key: str) -> list[str]:
        """The refs of every draft carrying ``key``, oldest first (more than one is a copy)."""
        ...

    def delete(self, ref: str) -> None:
        """Remove the draft ``ref`` (an extra copy of a key); a ref already gone is no error."""
        ...

    def create(self, key: str, message: EmailMessage) -> str:
        """Make the draft for ``key`` and return its ref.

        A medium that can refuse a second copy (the ``.eml`` folder) returns the existing ref;
        one that cannot (Gmail) may end up with two, which the outbox finds and deletes.
        """
        ...

    def list_keys(self) -> dict[str, str]:
        """Key -> ref of every draft this drafter can see (rebuilding a lost state file only)."""
        ...

    def count_waiting(self) -> int | None:
        """How many drafts the bridge made (not digests) are waiting in the medium now, for the
        digest's "drafts waiting" line; None when it cannot tell."""
        ...

    def created_at(self, key: str) -> datetime | None:
        """When the draft carrying ``key`` was made (its Date), or None when unknown."""
        ...

    def send(self, key: str, message: EmailMessage) -> str:
        """Send ``message`` (the owner's digest, and only when the config says so); its ref.

        Raises ``BackendError`` when :attr:`can_send` is False.
        """
        ...


def cannot_send(drafter: Drafter) -> BackendError:
    """The error a drafter that cannot send raises from :meth:`Drafter.send`."""
    return BackendError(f"{drafter.describe()} cannot send email", backend=drafter.kind)


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
        if not hasattr(config, "practice"):
            raise BackendError(
                "the Gmail drafter needs the whole config (the owner's address names the "
                "Message-ID domain)",
                backend="gmail",
            )
        from sheets_bridge.mail.gmail import open_gmail

        return open_gmail(config)
    raise BackendError(f"mail.kind {kind!r} is not a drafter the bridge knows", backend="mail")
