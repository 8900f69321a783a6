"""Google clients pointed at the fake, for tests of the fake itself.

The library's Google backend has its own endpoint support; these helpers exist so the fake's
tests drive it with gspread and googleapiclient exactly as they ship (GOOGLE-NOTES.md section 1,
approach A: an HTTPClient subclass that rewrites the fixed https://sheets.googleapis.com prefix).
"""

from __future__ import annotations

from typing import Any

import gspread
import httplib2
from google.auth.credentials import Credentials as BaseCredentials
from google.oauth2.credentials import Credentials
from google_auth_httplib2 import AuthorizedHttp
from googleapiclient.discovery import build
from gspread.http_client import HTTPClient

from .google_server import FakeGoogle

SHEETS_BASE = "https://sheets.googleapis.com"


def local_http_client(endpoint: str, parent: type[HTTPClient] = HTTPClient) -> type[HTTPClient]:
    """An HTTPClient class that sends gspread's Sheets calls to `endpoint` instead of Google."""

    class LocalHTTPClient(parent):  # type: ignore[misc, valid-type]
        def request(self, method: str, endpoint_url: str, *args: Any, **kwargs: Any) -> Any:
            if endpoint_url.startswith(SHEETS_BASE):
                endpoint_url = endpoint + endpoint_url[len(SHEETS_BASE) :]
            return super().request(method, endpoint_url, *args, **kwargs)

    return LocalHTTPClient


def gspread_client(
    fake: FakeGoogle, credentials: BaseCredentials | None = None, *, timeout: float = 10
) -> gspread.Client:
    """gspread, unmodified, talking to the fake (a static token unless credentials are given)."""
    creds = credentials if credentials is not None else Credentials(token="static-test-token")
    client = gspread.Client(auth=creds, http_client=local_http_client(fake.endpoint))
    client.set_timeout(timeout)
    return client


def gmail_service(
    fake: FakeGoogle, credentials: BaseCredentials | None = None, *, timeout: float = 10
) -> Any:
    """googleapiclient's Gmail v1 from the bundled discovery document, aimed at the fake."""
    creds = credentials if credentials is not None else Credentials(token="static-test-token")
    http = AuthorizedHttp(creds, http=httplib2.Http(timeout=timeout, proxy_info=None))
    return build(
        "gmail",
        "v1",
        http=http,
        static_discovery=True,
        client_options={"api_endpoint": fake.endpoint + "/"},
        cache_discovery=False,
    )
