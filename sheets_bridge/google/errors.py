"""Google's error answers as bridge errors: one line each, saying what to do; bodies stay here.

A Sheets or Gmail error body can quote the request (cell values, a patient's name in a range it
could not parse), so no message built here contains anything from a body: only the HTTP status,
Google's status word (``PERMISSION_DENIED``) and its machine-readable reasons are looked at, and
only to choose which of our own sentences to say. Exceptions are raised ``from None`` so the
library's exception, whose text holds the body, is not chained into a traceback either.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sheets_bridge.errors import BackendError

__all__ = [
    "GoogleAuthError",
    "GoogleError",
    "GoogleUnavailableError",
    "ResponseFacts",
    "facts_of",
    "gmail_error",
    "sheets_error",
]

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_RATE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "RATE_LIMIT_EXCEEDED"})


class GoogleError(BackendError):
    """A Google API call failed; ``status`` is the HTTP status (0 when no answer came)."""

    def __init__(self, message: str, *, backend: str, retryable: bool = False,
                 status: int = 0) -> None:
        super().__init__(message, backend=backend, retryable=retryable)
        self.status = status


class GoogleUnavailableError(GoogleError):
    """Quota exhausted or Google unavailable, after our retries: this cycle ends cleanly and the
    next one carries on."""

    def __init__(self, message: str, *, backend: str, status: int = 0) -> None:
        super().__init__(message, backend=backend, retryable=True, status=status)


class GoogleAuthError(GoogleError):
    """The token was revoked or expired, or the key was disabled: no cycle can run until a
    person signs in again, so the cycle stops instead of retrying."""

    exit_code = 4

    def __init__(self, message: str, *, backend: str, status: int = 401) -> None:
        super().__init__(message, backend=backend, retryable=False, status=status)


@dataclass(frozen=True)
class ResponseFacts:
    """What may be read out of an error answer: numbers and Google's own code words only."""

    status: int
    google_status: str = ""
    reasons: frozenset[str] = field(default_factory=frozenset)
    json_body: bool = False
    flags: frozenset[str] = field(default_factory=frozenset)
    """Fixed phrases found in the message (``disabled``, ``scope``, ``range``), never the text."""


_PHRASES = {
    "disabled": ("has not been used in project", "it is disabled", "is disabled"),
    "scope": ("insufficient authentication scopes", "insufficientpermissions", "scope"),
    "range": ("unable to parse range",),
    "exists": ("already exists",),
}


def facts_of(status: int, body: bytes | str | None) -> ResponseFacts:
    """Read the status word and reasons of a Google error body (JSON or an HTML page)."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    try:
        data = json.loads(body or "")
        error = data.get("error") if isinstance(data, dict) else None
    except ValueError:
        error = None
    if not isinstance(error, dict):
        return ResponseFacts(status=status)
    reasons: set[str] = set()
    for item in error.get("errors") or ():
        if isinstance(item, dict) and isinstance(item.get("reason"), str):
            reasons.add(item["reason"])
    for detail in error.get("details") or ():
        if isinstance(detail, dict) and isinstance(detail.get("reason"), str):
            reasons.add(detail["reason"])
    message = str(error.get("message") or "").lower()
    flags = frozenset(
        name for name, phrases in _PHRASES.items() if any(p in message for p in phrases)
    )
    google_status = error.get("status")
    return ResponseFacts(
        status=status,
        google_status=google_status if isinstance(google_status, str) else "",
        reasons=frozenset(reasons),
        json_body=True,
        flags=flags,
    )


def is_retryable(facts: ResponseFacts) -> bool:
    """429 and 5xx (by HTTP status, not by a JSON code: an HTML 502 has none), and Gmail's
    403 rate-limit reasons."""
    return facts.status in RETRYABLE_STATUSES or (
        facts.status == 403 and bool(facts.reasons & _RATE_REASONS)
    )


def _unavailable(api: str, facts: ResponseFacts, backend: str) -> GoogleUnavailableError:
    if facts.status == 429 or facts.reasons & _RATE_REASONS:
        what = f"{api} is rate-limiting the bridge (HTTP {facts.status}, quota)"
    elif facts.status == 0:
        what = f"{api} did not answer in time or could not be reached"
    elif not facts.json_body:
        what = f"{api} answered with an error page instead of data (HTTP {facts.status})"
    else:
        what = f"{api} is unavailable (HTTP {facts.status})"
    return GoogleUnavailableError(
        f"{what}: this cycle stopped cleanly and the next one carries on", backend=backend,
        status=facts.status,
    )


def auth_error(backend: str, *, service_account: bool, config_key: str) -> GoogleAuthError:
    """The one line for a revoked or expired sign-in."""
    if service_account:
        return GoogleAuthError(
            f"Google refused the service-account key in {config_key} (deleted or disabled): "
            "create a new key for the service account and point the config at it",
            backend=backend,
        )
    return GoogleAuthError(
        "Google no longer accepts the bridge's sign-in (the token was revoked or expired): "
        "run `sheets-bridge auth --config PATH` again",
        backend=backend,
    )


def _api_disabled(facts: ResponseFacts) -> bool:
    """Google's answer for an API not enabled in the credentials' Cloud project (both shapes)."""
    return (
        "SERVICE_DISABLED" in facts.reasons
        or "accessNotConfigured" in facts.reasons
        or "disabled" in facts.flags
    )


def sheets_error(
    facts: ResponseFacts, *, spreadsheet: str, account: str | None, service_account: bool
) -> GoogleError:
    """The bridge error for a failed Sheets call, after retries."""
    backend = "google"
    if is_retryable(facts) or facts.status == 0:
        return _unavailable("Google Sheets", facts, backend)
    if facts.status == 401:
        return auth_error(backend, service_account=service_account, config_key="sheet.credentials")
    if facts.status == 403:
        if _api_disabled(facts):
            return GoogleError(
                "The Google Sheets API is not enabled for the Cloud project of these "
                "credentials: enable it in the Cloud console (APIs & Services > Library > Google "
                "Sheets API), then run `sheets-bridge check` again",
                backend=backend, status=403,
            )
        if "ACCESS_TOKEN_SCOPE_INSUFFICIENT" in facts.reasons or "scope" in facts.flags:
            return GoogleError(
                "The credentials lack the spreadsheets scope: run `sheets-bridge auth --config "
                "PATH` again (it asks for the scopes the bridge needs)",
                backend=backend, status=403,
            )
        who = account or "the Google account the bridge signs in with"
        return GoogleError(
            f"The sheet {spreadsheet} is not shared with {who}: open the sheet, click Share and "
            f"add {who} as an Editor",
            backend=backend, status=403,
        )
    if facts.status == 404:
        return GoogleError(
            f"No spreadsheet {spreadsheet} exists (or it was deleted): check sheet.spreadsheet "
            "in the config against the sheet's address",
            backend=backend, status=404,
        )
    return GoogleError(
        f"Google Sheets refused a request (HTTP {facts.status} {facts.google_status}): the "
        "bridge wrote nothing more this cycle; run with --debug and report it if it repeats",
        backend=backend, status=facts.status,
    )


def gmail_error(facts: ResponseFacts, *, what: str) -> GoogleError:
    """The bridge error for a failed Gmail call (``what``: "creating a draft"), after retries."""
    backend = "gmail"
    if is_retryable(facts) or facts.status == 0:
        return _unavailable("Gmail", facts, backend)
    if facts.status == 401:
        return auth_error(backend, service_account=False, config_key="mail.credentials")
    if facts.status == 403:
        if _api_disabled(facts):
            return GoogleError(
                "The Gmail API is not enabled for the Cloud project of the OAuth client: enable "
                "it in the Cloud console (APIs & Services > Library > Gmail API)",
                backend=backend, status=403,
            )
        return GoogleError(
            "The Gmail sign-in lacks the gmail.compose scope: run `sheets-bridge auth --config "
            "PATH` again",
            backend=backend, status=403,
        )
    return GoogleError(
        f"Gmail refused {what} (HTTP {facts.status} {facts.google_status}); nothing else was "
        "tried this cycle",
        backend=backend, status=facts.status,
    )
