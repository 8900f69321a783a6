"""The HTTP layer under gspread and googleapiclient: timeouts, bounded retries, an allowlist.

- **Timeouts**: every request has explicit connect and read timeouts (gspread has none by
  default; a silent server would hang a cycle forever, F10).
- **Retries**: our own, bounded: 429, 408 and 5xx (by the HTTP status of the answer, not the
  JSON code gspread reads, which is -1 for an HTML error page) and dropped connections are
  retried with exponential backoff and full jitter, honouring ``Retry-After``, at most
  ``attempts`` times and ``budget`` seconds of waiting; then the cycle ends cleanly (F8, F9).
  Never gspread's ``BackOffHTTPClient`` (it never gives up) nor googleapiclient's
  ``num_retries`` (it would retry a ``drafts.create``).
- **Sheets** calls are retried whatever the method: reads are safe, and the bridge's writes carry
  absolute values (R4), so a resend after a lost answer is harmless.
- **Gmail** goes through :class:`GmailHttp`, an httplib2-shaped object over ``requests`` (so no
  silent re-send of a POST whose answer was lost, as httplib2 does), which refuses every call
  but drafts create/list/get/delete and, when the config sends the digest, messages.send,
  before anything leaves the process. A create is never retried: an unknown outcome is raised
  as such, and the drafter looks the key up.
- **Endpoint**: with ``sheet.endpoint`` / ``mail.endpoint`` the fixed Google base is rewritten to
  it (gspread's URLs are bound at import: GOOGLE-NOTES.md section 1, approach A).

Error bodies are read only by :func:`sheets_bridge.google.errors.facts_of`; nothing here logs a
body, a URL's query or a range (ranges hold tab titles only, but a body can echo cell values).
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
from gspread.http_client import HTTPClient

from sheets_bridge.errors import BridgeError
from sheets_bridge.google.errors import (
    GoogleError,
    GoogleUnavailableError,
    ResponseFacts,
    auth_error,
    facts_of,
    gmail_error,
    is_retryable,
    sheets_error,
)

log = logging.getLogger(__name__)

__all__ = ["GmailHttp", "RefusedCallError", "RetryPolicy", "SheetsHTTPClient", "UnknownOutcomeError"]

SHEETS_BASE = "https://sheets.googleapis.com"
GMAIL_BASE = "https://gmail.googleapis.com"


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a failed call within one cycle."""

    attempts: int = 4
    base: float = 1.0
    cap: float = 32.0
    budget: float = 60.0
    """Total seconds of waiting before the cycle gives up and the next one carries on."""
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)
    jitter: Callable[[], float] = field(default=random.random, compare=False)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Full jitter over ``base * 2**attempt`` (capped), or the server's ``Retry-After``."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.cap)
        return min(self.cap, self.base * 2**attempt) * self.jitter()

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.connect_timeout, self.read_timeout)

    def wait_before_retry(
        self, attempt: int, retry_after: float | None, waited: float, service: str, status: int
    ) -> float | None:
        """Sleep before the next attempt and return the seconds waited so far, or None when
        the attempts or the budget are spent (the caller gives up and raises)."""
        if attempt == self.attempts - 1:
            return None
        delay = self.delay(attempt, retry_after)
        if waited + delay > self.budget:
            return None
        log.info("%s answered %s; retrying in %.1fs", service, status or "nothing", delay)
        self.sleep(delay)
        return waited + delay


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After") or headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


class UnknownOutcomeError(GoogleUnavailableError):
    """A call that changes something got no answer: it may or may not have happened."""


class RefusedCallError(BridgeError):
    """The bridge tried a Google call outside its allowlist: refused before it was sent."""


def _unknown(api: str, backend: str) -> UnknownOutcomeError:
    return UnknownOutcomeError(
        f"{api} did not answer in time or the connection dropped: this cycle stopped cleanly and "
        "the next one carries on",
        backend=backend,
        status=0,
    )


_REFUSED_GRANT = ("invalid_grant", "invalid_client", "unauthorized_client", "revoked",
                  "disabled", "deleted")


def _refresh_error(exc: Exception, backend: str, *, service_account: bool) -> GoogleError:
    """A failed token refresh: a refused grant needs a person; anything else (an outage of the
    token service, an error page) is the next cycle's to retry. The exception's text is only
    searched for OAuth's error words, never shown."""
    text = " ".join(str(a) for a in getattr(exc, "args", ())).lower()
    if getattr(exc, "retryable", False) or not any(word in text for word in _REFUSED_GRANT):
        return GoogleUnavailableError(
            "Google's sign-in service is unavailable: this cycle stopped cleanly and the next "
            "one carries on",
            backend=backend,
        )
    key = "sheet.credentials" if backend == "google" else "mail.credentials"
    return auth_error(backend, service_account=service_account, config_key=key)


class SheetsHTTPClient(HTTPClient):
    """gspread's HTTP client with timeouts, bounded retries and an optional endpoint."""

    def __init__(
        self,
        auth: Any,
        *,
        spreadsheet: str,
        endpoint: str | None = None,
        policy: RetryPolicy | None = None,
        account: str | None = None,
        service_account: bool = False,
    ) -> None:
        super().__init__(auth)
        self.session.trust_env = endpoint is None  # never send loopback traffic via a proxy
        self.policy = policy or RetryPolicy()
        self.set_timeout(self.policy.timeout)
        self.endpoint = endpoint
        self.spreadsheet = spreadsheet
        self.account = account
        self.service_account = service_account
        self.calls = 0
        """HTTP requests sent (retries included), for the cycle's log line and the bench."""

    def _url(self, endpoint: str) -> str:
        if not endpoint.startswith(SHEETS_BASE + "/"):
            # Drive and anything else: the bridge never needs them (open by key, not by title).
            raise RefusedCallError("the bridge calls only the Sheets API for the sheet")
        return (self.endpoint + endpoint[len(SHEETS_BASE):]) if self.endpoint else endpoint

    def fail(self, facts: ResponseFacts) -> GoogleError:
        error = sheets_error(
            facts, spreadsheet=self.spreadsheet, account=self.account,
            service_account=self.service_account,
        )
        error.facts = facts  # type: ignore[attr-defined]
        return error

    def request(
        self,
        method: str,
        endpoint: str,
        params: Any = None,
        data: bytes | None = None,
        json: Mapping[str, Any] | None = None,
        files: Any = None,
        headers: Any = None,
    ) -> requests.Response:
        from google.auth.exceptions import RefreshError, TransportError

        url = self._url(endpoint)
        policy = self.policy
        waited = 0.0
        facts = ResponseFacts(status=0)
        for attempt in range(policy.attempts):
            retry_after: float | None = None
            self.calls += 1
            try:
                response = self.session.request(
                    method=method, url=url, json=json, params=params, data=data, files=files,
                    headers=headers, timeout=self.timeout,
                )
            except RefreshError as exc:
                raise _refresh_error(exc, "google", service_account=self.service_account) from None
            except (requests.Timeout, requests.ConnectionError, TransportError):
                facts = ResponseFacts(status=0)
            else:
                if response.ok:
                    return response
                facts = facts_of(response.status_code, response.content)
                if not is_retryable(facts):
                    raise self.fail(facts)
                retry_after = _retry_after(response.headers)
            so_far = policy.wait_before_retry(attempt, retry_after, waited, "Google Sheets",
                                              facts.status)
            if so_far is None:
                break
            waited = so_far
        raise self.fail(facts)


# ------------------------------------------------------------------------------------- Gmail
_USER = r"users/[^/]+"
_ALLOWED: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("POST", re.compile(rf"^/gmail/v1/{_USER}/drafts$"), "create"),
    ("GET", re.compile(rf"^/gmail/v1/{_USER}/drafts$"), "list"),
    ("GET", re.compile(rf"^/gmail/v1/{_USER}/drafts/[A-Za-z0-9_-]+$"), "get"),
    ("DELETE", re.compile(rf"^/gmail/v1/{_USER}/drafts/[A-Za-z0-9_-]+$"), "delete"),
    ("POST", re.compile(rf"^/gmail/v1/{_USER}/messages/send$"), "send"),
)


def gmail_call(method: str, path: str) -> str | None:
    """Which allowed Gmail call ``method path`` is (``create``, ``list``...), or None."""
    for allowed_method, pattern, name in _ALLOWED:
        if method.upper() == allowed_method and pattern.match(path):
            return name
    return None


class GmailHttp:
    """What googleapiclient needs of an ``httplib2.Http``, over an authorized requests session.

    Only the calls in the allowlist leave the process; ``messages.send`` only when ``allow_send``
    (the owner's digest, when ``digest.send`` is on).
    """

    def __init__(
        self,
        credentials: Any,
        *,
        endpoint: str | None = None,
        allow_send: bool = False,
        policy: RetryPolicy | None = None,
    ) -> None:
        from google.auth.transport.requests import AuthorizedSession

        self.session = AuthorizedSession(credentials)
        self.session.trust_env = endpoint is None  # never send loopback traffic via a proxy
        self.endpoint = endpoint
        self.allow_send = allow_send
        self.policy = policy or RetryPolicy()
        self.calls: list[str] = []
        """The allowed calls made, by name (``create``, ``list``...), for tests and logs."""
        self.timeout = self.policy.timeout

    def _check(self, method: str, uri: str) -> tuple[str, str]:
        parts = urlsplit(uri)
        base = urlsplit(self.endpoint) if self.endpoint else urlsplit(GMAIL_BASE)
        path = parts.path
        prefix = base.path.rstrip("/")
        if prefix and path.startswith(prefix):
            path = path[len(prefix):]
        if (parts.scheme, parts.netloc) != (base.scheme, base.netloc):
            raise RefusedCallError(f"refused a call to {parts.netloc}: not the Gmail API")
        name = gmail_call(method, path)
        if name is None or (name == "send" and not self.allow_send):
            raise RefusedCallError(
                f"refused Gmail {method.upper()} {path.rsplit('/', 1)[-1]}: the bridge may only "
                "make, find and delete drafts (and send the digest when digest.send is on)"
            )
        return name, uri

    def request(
        self,
        uri: str,
        method: str = "GET",
        body: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        redirections: int = 5,
        connection_type: Any = None,
    ) -> tuple[Any, bytes]:
        import httplib2
        from google.auth.exceptions import RefreshError, TransportError

        name, url = self._check(method, uri)
        changes = name in ("create", "send")
        policy = self.policy
        waited = 0.0
        facts = ResponseFacts(status=0)
        for attempt in range(policy.attempts):
            retry_after: float | None = None
            self.calls.append(name)
            try:
                response = self.session.request(
                    method, url, data=body, headers=dict(headers or {}), timeout=self.timeout,
                    allow_redirects=False,
                )
            except RefreshError as exc:
                raise _refresh_error(exc, "gmail", service_account=False) from None
            except (requests.Timeout, requests.ConnectionError, TransportError):
                if changes:
                    raise _unknown("Gmail", "gmail") from None
                facts = ResponseFacts(status=0)
            else:
                if response.status_code < 300 or response.status_code == 304:
                    info = {k.lower(): v for k, v in response.headers.items()}
                    info["status"] = str(response.status_code)
                    return httplib2.Response(info), response.content
                facts = facts_of(response.status_code, response.content)
                if name == "delete" and facts.status == 404:
                    info = {"status": "204"}
                    return httplib2.Response(info), b""  # already gone: what delete wanted
                if changes and facts.status >= 500:
                    raise _unknown("Gmail", "gmail") from None  # a 5xx may have made it
                if changes or not is_retryable(facts):
                    error = gmail_error(facts, what=_WHAT[name])
                    error.facts = facts  # type: ignore[attr-defined]
                    raise error
                retry_after = _retry_after(response.headers)
            so_far = policy.wait_before_retry(attempt, retry_after, waited, "Gmail", facts.status)
            if so_far is None:
                break
            waited = so_far
        error = gmail_error(facts, what=_WHAT[name])
        error.facts = facts  # type: ignore[attr-defined]
        raise error


_WHAT = {
    "create": "creating a draft",
    "list": "listing drafts",
    "get": "reading a draft",
    "delete": "deleting a draft",
    "send": "sending the digest",
}
