"""GmailDrafter: drafts in the practice's Gmail, through the Gmail API (google-api-python-client).

Gmail has no idempotency key, so the key travels inside every draft (R2): a deterministic
``Message-ID`` (``<R-00012.kind@practice-domain>``) and an ``X-Sheets-Bridge-Key`` header. A key
is looked up with ``drafts.list q=rfc822msgid:<id>``; Gmail's search index can lag behind a
create, so when the search finds nothing the most recent drafts are read for the key header
(``search_lags`` is True and the outbox looks again later before it gives a key up). The outbox
deletes any extra copy carrying the same key (:mod:`sheets_bridge.outbox`).

The HTTP layer (:class:`sheets_bridge.google.transport.GmailHttp`) lets only drafts
create/list/get/delete out of the process, and ``messages.send`` only for the owner's digest when
``digest.send`` is on. A create is never retried blindly: when its answer is lost, the key is
looked up, and found or not, nothing is created twice.
"""

from __future__ import annotations

import base64
import contextlib
import logging
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

from sheets_bridge.errors import BackendError
from sheets_bridge.google.credentials import GMAIL_COMPOSE, GMAIL_SEND, load_credentials
from sheets_bridge.google.transport import GmailHttp, RetryPolicy, UnknownOutcomeError
from sheets_bridge.messages import KEY_HEADER, message_id_for, smtp_bytes

log = logging.getLogger(__name__)

__all__ = ["GmailDrafter", "open_gmail"]

#: How many of the most recent drafts are read for the key header when search finds nothing.
RECENT_DRAFTS = 50
#: Beyond this many drafts, ``count_waiting`` says it cannot tell rather than read them all.
COUNT_LIMIT = 500


def _raw(message: EmailMessage) -> str:
    return base64.urlsafe_b64encode(smtp_bytes(message)).decode("ascii")


class GmailDrafter:
    """Drafts in one Gmail account (``me``: the account the token belongs to)."""

    kind: ClassVar[str] = "gmail"
    can_send: ClassVar[bool] = True
    search_lags: ClassVar[bool] = True

    def __init__(
        self,
        credentials: Any,
        *,
        domain: str,
        owner_email: str = "",
        endpoint: str | None = None,
        allow_send: bool = False,
        policy: RetryPolicy | None = None,
    ) -> None:
        from googleapiclient.discovery import build

        self.domain = domain
        self.owner_email = owner_email
        self.allow_send = allow_send
        self.http = GmailHttp(credentials, endpoint=endpoint, allow_send=allow_send, policy=policy)
        options = {"api_endpoint": endpoint + "/"} if endpoint else None
        self.service = build(
            "gmail", "v1", http=self.http, static_discovery=True, cache_discovery=False,
            client_options=options,
        )
        self._info: dict[str, tuple[str | None, datetime | None]] = {}
        """Draft id -> (key, when made), for drafts already read this run (ids are stable)."""

    @classmethod
    def from_config(cls, config: Any, *, policy: RetryPolicy | None = None) -> GmailDrafter:
        mail = config.mail
        send = bool(getattr(getattr(config, "digest", None), "send", False))
        scopes = [GMAIL_COMPOSE] + ([GMAIL_SEND] if send else [])
        creds = load_credentials(
            mail.credentials, scopes=scopes, endpoint=mail.endpoint, what="Gmail token file",
            allow_service_account=False,
        )
        owner = config.practice.owner_email
        return cls(
            creds.credentials,
            domain=owner.rpartition("@")[2] or "sheets-bridge.invalid",
            owner_email=owner,
            endpoint=mail.endpoint,
            allow_send=send,
            policy=policy,
        )

    # --------------------------------------------------------------------------- the role
    def describe(self) -> str:
        return "the practice's Gmail drafts"

    def prepare(self) -> None:
        """Nothing is left behind by a crashed create: a draft exists whole or not at all."""

    @property
    def _drafts(self) -> Any:
        return self.service.users().drafts()

    def _read(self, draft_id: str) -> tuple[str | None, datetime | None]:
        """The key and time of draft ``draft_id`` (read once, then remembered)."""
        known = self._info.get(draft_id)
        if known is not None:
            return known
        # Headers only (drafts.get has no header filter): the body (patient data) is not fetched.
        data = self._drafts.get(userId="me", id=draft_id, format="metadata").execute()
        message = data.get("message") or {}
        key: str | None = None
        when: datetime | None = None
        for header in (message.get("payload") or {}).get("headers") or ():
            name = str(header.get("name", "")).lower()
            value = str(header.get("value", "")).strip()
            if name == KEY_HEADER.lower():
                key = value or None
            elif name == "date":
                with contextlib.suppress(TypeError, ValueError, IndexError):
                    when = parsedate_to_datetime(value)
        internal = message.get("internalDate")
        if internal is not None:
            with contextlib.suppress(TypeError, ValueError, OverflowError):
                when = datetime.fromtimestamp(int(internal) / 1000, tz=UTC)
        self._info[draft_id] = (key, when)
        return key, when

    def _ordered(self, refs: list[str]) -> list[str]:
        """Oldest first (by when each was made; the draft id breaks ties)."""
        floor = datetime.min.replace(tzinfo=UTC)
        return sorted(dict.fromkeys(refs), key=lambda r: (self._read(r)[1] or floor, r))

    def _list(self, **params: Any) -> tuple[list[str], str | None]:
        data = self._drafts.list(userId="me", **params).execute()
        ids = [str(d["id"]) for d in data.get("drafts") or () if isinstance(d, dict) and "id" in d]
        return ids, data.get("nextPageToken")

    def probe(self) -> None:
        """One ``drafts.list`` (``sheets-bridge check``): the token works and may see drafts."""
        self._list(maxResults=1)

    def find(self, key: str) -> str | None:
        refs = self.find_all(key)
        return refs[0] if refs else None

    def find_all(self, key: str) -> list[str]:
        message_id = message_id_for(key, self.domain).strip("<>")
        ids, _ = self._list(q=f"rfc822msgid:{message_id}")
        found = [i for i in ids if self._read(i)[0] == key]
        if not found:
            # The search index may lag behind a create: read the most recent drafts instead.
            recent, _ = self._list(maxResults=RECENT_DRAFTS)
            found = [i for i in recent if self._read(i)[0] == key]
        return self._ordered(found)

    def delete(self, ref: str) -> None:
        self._drafts.delete(userId="me", id=ref).execute()
        self._info.pop(ref, None)

    def create(self, key: str, message: EmailMessage) -> str:
        if str(message.get(KEY_HEADER, "")).strip() != key:
            raise ValueError("the message does not carry its draft key")
        try:
            data = self._drafts.create(userId="me", body={"message": {"raw": _raw(message)}}
                                       ).execute()
        except UnknownOutcomeError:
            # The create may have happened: look before anything else is made.
            found = self.find_all(key)
            if found:
                log.info("draft %s: the answer was lost, but the draft exists", key)
                return found[0]
            raise
        ref = str(data["id"])
        date = message.get("Date")
        try:
            when = parsedate_to_datetime(str(date)) if date is not None else None
        except (TypeError, ValueError):
            when = None
        self._info[ref] = (key, when)
        return ref

    def list_keys(self) -> dict[str, str]:
        """Key -> oldest ref of every draft carrying a key (reads every draft: rebuilds only)."""
        found: dict[str, list[str]] = {}
        token: str | None = None
        while True:
            params: dict[str, Any] = {"maxResults": 100}
            if token:
                params["pageToken"] = token
            ids, token = self._list(**params)
            for ref in ids:
                key = self._read(ref)[0]
                if key:
                    found.setdefault(key, []).append(ref)
            if not token:
                break
        return {key: self._ordered(refs)[0] for key, refs in sorted(found.items())}

    def count_waiting(self) -> int | None:
        ids: list[str] = []
        token: str | None = None
        while True:
            params: dict[str, Any] = {"maxResults": 100}
            if token:
                params["pageToken"] = token
            page, token = self._list(**params)
            ids.extend(page)
            if len(ids) > COUNT_LIMIT:
                return None
            if not token:
                break
        keys = (self._read(ref)[0] for ref in ids)
        return sum(1 for key in keys if key and not key.startswith("digest."))

    def created_at(self, key: str) -> datetime | None:
        ref = self.find(key)
        return self._read(ref)[1] if ref else None

    def send(self, key: str, message: EmailMessage) -> str:
        """Send the owner's digest (only it, only to the owner, only when digest.send is on)."""
        to = str(message.get("To", ""))
        if not self.allow_send or not key.startswith("digest."):
            raise BackendError(
                "Gmail sends only the owner's weekly digest, and only with digest.send: true",
                backend=self.kind,
            )
        if self.owner_email and self.owner_email.lower() not in to.lower():
            raise BackendError("the digest goes only to practice.owner_email", backend=self.kind)
        data = self.service.users().messages().send(
            userId="me", body={"raw": _raw(message)}
        ).execute()
        return str(data.get("id", ""))


def open_gmail(config: Any, *, policy: RetryPolicy | None = None) -> GmailDrafter:
    return GmailDrafter.from_config(config, policy=policy)
