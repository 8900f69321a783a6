"""A Google stand-in for the add-on tests: a test RSA key, its certificate served on 127.0.0.1,
ID tokens signed with it, the real app on uvicorn on 127.0.0.1, and Sheets events in the shapes
Google documents (homepage trigger, button click with form inputs and parameters)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt
from starlette.applications import Starlette

from sheets_bridge.addon.server import build_server
from sheets_bridge.model import STAFF_COLUMNS

ENDPOINT = "https://bridge.harborphysio.example/addon"
SERVICE_ACCOUNT = "service-123456@gcp-sa-gsuiteaddons.iam.gserviceaccount.com"
CLIENT_ID = "123456-test.apps.googleusercontent.com"
SHEET_ID = "1HarborPhysioReferralsSheetId"
STAFF = "ann@harborphysio.example"


def _key_and_cert(common_name: str) -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem_key, cert.public_bytes(serialization.Encoding.PEM)


class FakeGoogle:
    """Signs tokens like Google and serves the certificates (``{kid: PEM}``, as Google's v1
    certs endpoint does); ``stranger`` is a key Google never published."""

    def __init__(self) -> None:
        key, cert = _key_and_cert("google-test")
        self.signer = crypt.RSASigner.from_string(key, key_id="test-kid")
        other, _ = _key_and_cert("stranger")
        self.stranger = crypt.RSASigner.from_string(other, key_id="test-kid")
        self.certs = {"test-kid": cert.decode()}
        self.cert_fetches = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.cert_fetches += 1
                body = json.dumps(outer.certs).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Cache-Control", "public, max-age=60")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.certs_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/oauth2/v1/certs"

    def close(self) -> None:
        self.httpd.shutdown()

    def token(self, *, audience: str = ENDPOINT, email: str = SERVICE_ACCOUNT,
              issuer: str = "https://accounts.google.com", expires_in: int = 300,
              signer: crypt.Signer | None = None, verified: bool = True) -> str:
        now = int(time.time())
        claims = {
            "iss": issuer, "aud": audience, "azp": "1234", "sub": "1111",
            "email": email, "email_verified": verified,
            "iat": now - 10 if expires_in > 0 else now - 3600 - 10, "exp": now + expires_in,
        }
        return jwt.encode(signer or self.signer, claims).decode()

    def user_token(self, email: str = STAFF, **kw: Any) -> str:
        kw.setdefault("audience", CLIENT_ID)
        return self.token(email=email, **kw)


def sheets_event(google: FakeGoogle, *, user: str = STAFF, sheet_id: str | None = SHEET_ID,
                 form: dict[str, str] | None = None, parameters: dict[str, str] | None = None,
                 user_token: str | None = None) -> dict[str, Any]:
    """An event as Google posts it for a Sheets homepage trigger or a button click."""
    common: dict[str, Any] = {
        "hostApp": "SHEETS", "platform": "WEB", "userLocale": "en",
        "timeZone": {"id": "America/New_York", "offset": -18000000},
    }
    if form:
        common["formInputs"] = {k: {"stringInputs": {"value": [v]}} for k, v in form.items()}
    if parameters:
        common["parameters"] = parameters
    sheets: dict[str, Any] = {"addonHasFileScopePermission": sheet_id is not None}
    if sheet_id is not None:
        sheets.update(id=sheet_id, title="Referrals 2025")
    return {
        "commonEventObject": common,
        "authorizationEventObject": {
            "userOAuthToken": "ya29.not-used-by-the-bridge",
            "userIdToken": user_token if user_token is not None else google.user_token(user),
            "systemIdToken": google.token(),
        },
        "sheets": sheets,
    }


def write_practice(folder: Path, rows: list[list[Any]], certs_url: str,
                   **addon: Any) -> Path:
    """A workbook with ``rows`` (staff columns in order) and a config with the add-on on."""
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Referrals"
    ws.append(list(STAFF_COLUMNS))
    for row in rows:
        ws.append(row)
    wb.save(folder / "referrals.xlsx")
    config = {
        "practice": {"name": "Harbor Physio", "owner_email": "owner@harborphysio.example"},
        "sheet": {"kind": "local", "path": "referrals.xlsx"},
        "mail": {"kind": "eml", "path": "drafts"},
        "state_dir": "state",
        "addon": {
            "listen": "127.0.0.1:0", "endpoint_url": ENDPOINT,
            "service_account": SERVICE_ACCOUNT, "oauth_client_id": CLIENT_ID,
            "allowed_users": ["@harborphysio.example"], "spreadsheet_id": SHEET_ID,
            "certs_url": certs_url, **addon,
        },
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@contextmanager
def running(app: Starlette) -> Iterator[str]:
    """The app on uvicorn on 127.0.0.1 (a free port); yields its base URL."""
    server = build_server(app, "127.0.0.1:0")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(5)


def post(base: str, path: str, event: Any, token: str | None, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    content = event if isinstance(event, bytes) else json.dumps(event).encode()
    return httpx.post(f"{base}/{path}", content=content,
                      headers={"Content-Type": "application/json", **headers}, timeout=30, **kw)


def texts(response: Any) -> str:
    """Every string in a JSON answer, joined: what a person could read on the card."""
    out: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(response)
    return "\n".join(out)
