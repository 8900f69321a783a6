"""Verifying Google's ID tokens: the caller (Google, for our add-on) and the user in the event.

Google signs every request it sends to an HTTP add-on with an ID token in ``Authorization:
Bearer``: issued by Google, for the audience of our endpoint URL, with the email of the add-on's
service account. The event's ``authorizationEventObject.userIdToken`` names the person asking
(audience: the add-on's OAuth client ID). Both are checked with google-auth (signature against
Google's certificates, expiry with no grace, audience), and the issuer and email here.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import google.auth.exceptions
import google.auth.transport
import google.auth.transport.requests
import requests
from google.oauth2 import id_token

GOOGLE_ISSUERS = frozenset({"accounts.google.com", "https://accounts.google.com"})
#: How long certificates are kept when the response says nothing (Google's say about 6 hours).
DEFAULT_CERTS_SECONDS = 300.0
#: The reason given when Google's certificates cannot be fetched: the bridge's problem (503).
UNAVAILABLE = "certificates unavailable"


class TokenError(Exception):
    """A token that does not prove who sent it; ``reason`` is a short tag (no token text)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CachingRequest(google.auth.transport.Request):
    """google-auth's requests transport, keeping the certificates for their ``max-age``.

    Without this every request to the add-on would fetch Google's certificates again.
    """

    def __init__(self, session: requests.Session | None = None, timeout: float = 10.0) -> None:
        self._inner = google.auth.transport.requests.Request(session or requests.Session())
        self._timeout = timeout
        self._cache: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        if method != "GET":
            return self._inner(url, method, body, headers, timeout or self._timeout, **kwargs)
        with self._lock:
            hit = self._cache.get(url)
            if hit is not None and hit[0] > time.monotonic():
                return hit[1]
        response = self._inner(url, method, body, headers, timeout or self._timeout, **kwargs)
        if response.status == 200:
            match = re.search(r"max-age=(\d+)", response.headers.get("cache-control", ""))
            keep = float(match.group(1)) if match else DEFAULT_CERTS_SECONDS
            with self._lock:
                self._cache[url] = (time.monotonic() + keep, response)
        return response


@dataclass(frozen=True)
class Verifier:
    """Checks both tokens against the add-on's settings (``addon.*`` in the config)."""

    endpoint_url: str
    service_account: str
    oauth_client_id: str
    certs_url: str
    request: google.auth.transport.Request

    def _verify(self, token: str, audience: str | list[str]) -> Mapping[str, Any]:
        if not token or token.count(".") != 2:
            raise TokenError("no token")
        try:
            claims = id_token.verify_token(
                token, self.request, audience=audience, certs_url=self.certs_url
            )
        except google.auth.exceptions.TransportError:
            raise TokenError(UNAVAILABLE) from None
        except (ValueError, google.auth.exceptions.GoogleAuthError) as error:
            text = str(error).lower()
            if "expired" in text:
                raise TokenError("expired") from None
            if "audience" in text:
                raise TokenError("wrong audience") from None
            raise TokenError("bad signature or format") from None
        if claims.get("iss") not in GOOGLE_ISSUERS:
            raise TokenError("wrong issuer")
        return claims

    def caller(self, authorization: str | None, called_url: str = "") -> None:
        """Google itself, for this add-on: the bearer token's audience and service account.

        The audience is the configured endpoint URL, or the URL of the very endpoint called
        (``endpoint_url`` + ``/home``): Google names the URL it posts to."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer":
            raise TokenError("no token")
        audiences = [self.endpoint_url] + ([called_url] if called_url else [])
        claims = self._verify(token.strip(), audiences)
        if claims.get("email") != self.service_account or claims.get("email_verified") is not True:
            raise TokenError("wrong service account")

    def user(self, user_token: str | None) -> str:
        """The verified email address of the person asking (lower case)."""
        claims = self._verify(user_token or "", self.oauth_client_id)
        email = claims.get("email")
        if not isinstance(email, str) or claims.get("email_verified") is not True:
            raise TokenError("no verified email")
        return email.lower()


def is_allowed(email: str, allowed: tuple[str, ...]) -> bool:
    """``ann@practice.com`` names one person, ``@practice.com`` everyone in that domain."""
    email = email.lower()
    domain = "@" + email.rpartition("@")[2]
    return any(item == email or (item.startswith("@") and item == domain) for item in allowed)
