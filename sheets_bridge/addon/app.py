"""The add-on's HTTP endpoints as a Starlette app: authenticate first, then read, then answer.

Order per request, and why:

1. Google's ID token in ``Authorization`` is verified before the body is even read: an
   unverified caller learns nothing and costs nothing (401, counted for ``status``);
2. the body is read up to ``addon.max_body_bytes`` (413 beyond), then the user's own ID token in
   the event is verified (401) and matched against ``addon.allowed_users`` (403, a plain card);
3. only then is the sheet or the state read, and only for the spreadsheet this bridge serves
   (another spreadsheet gets a "not connected" card).

Logs name the endpoint and the status, never the user, a token, or anything about a patient.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sheets_bridge.addon import cards
from sheets_bridge.addon.auth import (
    UNAVAILABLE,
    CachingRequest,
    TokenError,
    Verifier,
    is_allowed,
)
from sheets_bridge.addon.panel import Knowledge, gather, served_spreadsheet
from sheets_bridge.addon.refusals import record_refusal
from sheets_bridge.config import BridgeConfig
from sheets_bridge.errors import BridgeError
from sheets_bridge.identity import format_id, id_number
from sheets_bridge.sheets import SheetBackend

log = logging.getLogger(__name__)


class SyncControl(Protocol):
    """How "Sync now" reaches the one writer: the daemon's scheduler, or (``serve``) a cycle
    run here under the same locks the daemon takes."""

    def sync_now(self) -> list[str]:
        """Start a cycle at once, wait for it a while, and say what it did (report lines)."""
        ...

    def next_sync(self) -> str:
        """When the next scheduled sync runs, in words."""
        ...


class _Refused(Exception):
    def __init__(self, status: int, reason: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.body = body


def _form_value(event: dict[str, Any], name: str) -> str:
    common = event.get("commonEventObject") or {}
    try:
        values = common["formInputs"][name]["stringInputs"]["value"]
        return str(values[0]).strip() if values else ""
    except (KeyError, TypeError, IndexError):
        return ""


def _parameter(event: dict[str, Any], name: str) -> str:
    params = (event.get("commonEventObject") or {}).get("parameters") or {}
    value = params.get(name, "") if isinstance(params, dict) else ""
    return str(value).strip()


def create_app(
    config: BridgeConfig,
    sync: SyncControl,
    *,
    verifier: Verifier | None = None,
    clock: Callable[[], datetime] | None = None,
    sheet_factory: Callable[[], SheetBackend] | None = None,
) -> Starlette:
    """The ASGI app. ``sheet_factory`` and ``clock`` are for tests (real ones otherwise)."""
    settings = config.addon
    verifier = verifier or Verifier(
        endpoint_url=settings.endpoint_url,
        service_account=settings.service_account,
        oauth_client_id=settings.oauth_client_id,
        certs_url=settings.certs_url,
        request=CachingRequest(),
    )
    urls = cards.Urls(settings.endpoint_url)
    served = served_spreadsheet(config)
    now = clock or (lambda: datetime.now(config.tz))

    def knowledge(*, count_drafts: bool = False) -> Knowledge:
        # Counting drafts waiting may cost a Gmail call: only the home card shows it.
        return gather(config, now(), sheet=sheet_factory() if sheet_factory else None,
                      count_drafts=count_drafts)

    def home() -> dict[str, Any]:
        return cards.home_card(knowledge(count_drafts=True), urls, next_sync=sync.next_sync(),
                               practice=config.practice.name)

    def lookup(event: dict[str, Any]) -> dict[str, Any]:
        typed = _form_value(event, "referral_id") or _parameter(event, "id")
        number = id_number(typed.upper())
        if number is None:
            return cards.message_card(
                "Look up a referral",
                "Type a Referral ID as the sheet shows it, like R-00012.",
            )
        referral_id = format_id(number)
        found = knowledge().referral(config, referral_id)
        if found is None:
            return cards.message_card(
                referral_id, "No row in the sheet carries this Referral ID right now."
            )
        return cards.referral_card(found, urls)

    def queue() -> dict[str, Any]:
        return cards.queue_card(knowledge().queue(config), urls)

    def setup() -> dict[str, Any]:
        from sheets_bridge.doctor import check

        return cards.setup_card(check(config), urls)

    def sync_now() -> dict[str, Any]:
        return cards.sync_card(sync.sync_now(), urls)

    handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
        "home": lambda e: home(),
        "file-scope-granted": lambda e: home(),
        "lookup": lookup,
        "referral": lookup,
        "queue": lambda e: queue(),
        "setup": lambda e: setup(),
        "sync": lambda e: sync_now(),
    }

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit()
                                     or int(declared) > settings.max_body_bytes):
            raise _Refused(413, "body too large")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > settings.max_body_bytes:
                raise _Refused(413, "body too large")
        return body

    async def endpoint(request: Request) -> JSONResponse:
        name = request.path_params["name"]
        try:
            # 1. Google, for this add-on: before anything else is read.
            try:
                await run_in_threadpool(verifier.caller, request.headers.get("authorization"),
                                        f"{urls.base}/{name}")
            except TokenError as error:
                if error.reason == UNAVAILABLE:
                    raise _Refused(503, error.reason) from None  # ours to fix, not the caller's
                raise _Refused(401, error.reason) from None
            # 2. The event, and the person asking.
            body = await read_body(request)
            try:
                event = json.loads(body)
            except ValueError:
                raise _Refused(400, "not JSON") from None
            if not isinstance(event, dict):
                raise _Refused(400, "not an event")
            auth = event.get("authorizationEventObject") or {}
            try:
                email = await run_in_threadpool(
                    verifier.user, auth.get("userIdToken") if isinstance(auth, dict) else None
                )
            except TokenError as error:
                if error.reason == UNAVAILABLE:
                    raise _Refused(503, error.reason) from None
                raise _Refused(401, "user " + error.reason) from None
            if not is_allowed(email, settings.allowed_users):
                raise _Refused(403, "user not allowed", cards.homepage_response(cards.message_card(
                    "Not available",
                    "This panel is for the practice's staff. Ask the practice manager to add "
                    "your address to the bridge's allowed users.",
                )))
            if name not in handlers and name != "file-access":
                raise _Refused(404, "unknown endpoint")
        except _Refused as refused:
            if refused.status in (401, 403):
                await run_in_threadpool(record_refusal, config.state_dir, refused.status,
                                        refused.reason)
            log.warning("add-on /%s refused: %d %s", name, refused.status, refused.reason)
            return JSONResponse(refused.body or {"error": refused.reason},
                                status_code=refused.status)
        # 3. The spreadsheet: only the one this bridge serves gets its cards.
        wrap = cards.homepage_response if name in ("home", "file-scope-granted") else (
            cards.action_response)
        if name == "file-access":
            return JSONResponse(cards.request_file_access_response())
        found = event.get("sheets")
        sheets: dict[str, Any] = found if isinstance(found, dict) else {}
        opened = str(sheets.get("id") or "")
        if not served or opened != served:
            can_ask = not opened and not sheets.get("addonHasFileScopePermission")
            return JSONResponse(wrap(cards.not_connected_card(urls, can_ask=can_ask)))
        try:
            card = await run_in_threadpool(handlers[name], event)
        except BridgeError as error:
            # Our own errors say what to fix and name no patient.
            card = cards.message_card("The bridge could not answer", str(error))
        except Exception as error:  # noqa: BLE001 - the text may quote cells: type only
            log.error("add-on /%s failed: %s", name, type(error).__name__)
            card = cards.message_card(
                "The bridge could not answer",
                "Something unexpected went wrong; the bridge's log names the error type.",
            )
        log.info("add-on /%s answered", name)
        return JSONResponse(wrap(card))

    # The endpoints answer at the endpoint URL's own path (a proxy that passes /addon/home
    # through) and at the root (one that strips it, or Cloud Run with no path).
    prefix = urlsplit(settings.endpoint_url).path.rstrip("/")
    routes = [Route("/{name}", endpoint, methods=["POST"])]
    if prefix:
        routes.insert(0, Route(prefix + "/{name}", endpoint, methods=["POST"]))
    return Starlette(routes=routes)


__all__ = ["SyncControl", "create_app"]
