"""A fake Google for the tests: Sheets v4, Gmail v1 and the OAuth token endpoint over real HTTP.

gspread, google-api-python-client and google-auth talk to it unmodified on 127.0.0.1. It keeps
real state (cells with a formula flag, sheet properties, what `init` asked for, drafts), answers
in the shapes the recordings in `../shared/google-recordings/` show (a replay test keeps it
honest), counts every request, and injects the faults a bridge meets in the field: 429 and 5xx
bursts, HTML error pages, a write applied whose response is lost, a slow or silent server, a
staff edit between a read and a write, Gmail search lag, revoked tokens, a disabled API, a
token without the needed scope, a sheet not shared with the caller.

Why the stdlib server: it hands us the raw request target (ranges arrive percent-encoded and
routes contain `:`), and dropping a connection without an answer is one line.
"""

from __future__ import annotations

import ast
import base64
import contextlib
import copy
import datetime as dt
import email
import email.policy
import itertools
import json
import operator
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

from .a1 import (
    Bounds,
    RangeError,
    col_letters,
    format_bounds,
    parse_cells,
    quote_title,
    split_sheet,
)

OWNER = "owner@practice-test"
PROJECT_NUMBER = "123456789012"

SCOPE_PREFIX = "https://www.googleapis.com/auth/"
SHEETS_READ_SCOPES = frozenset(
    SCOPE_PREFIX + s
    for s in ("spreadsheets", "spreadsheets.readonly", "drive", "drive.readonly", "drive.file")
)
SHEETS_WRITE_SCOPES = frozenset(SCOPE_PREFIX + s for s in ("spreadsheets", "drive", "drive.file"))
GMAIL_ALL = "https://mail.google.com/"
GMAIL_DRAFT_SCOPES = frozenset({SCOPE_PREFIX + "gmail.compose", SCOPE_PREFIX + "gmail.modify", GMAIL_ALL})
GMAIL_READ_SCOPES = GMAIL_DRAFT_SCOPES | {SCOPE_PREFIX + "gmail.readonly"}
GMAIL_SEND_SCOPES = GMAIL_DRAFT_SCOPES | {SCOPE_PREFIX + "gmail.send"}
ALL_SCOPES = frozenset(SHEETS_READ_SCOPES | GMAIL_READ_SCOPES | GMAIL_SEND_SCOPES)

_DEFAULT_FORMAT = json.loads(
    '{"backgroundColor":{"red":1,"green":1,"blue":1},"padding":{"top":2,"right":3,"bottom":2,'
    '"left":3},"verticalAlignment":"BOTTOM","wrapStrategy":"OVERFLOW_CELL","textFormat":'
    '{"foregroundColor":{},"fontFamily":"arial,sans,sans-serif","fontSize":10,"bold":false,'
    '"italic":false,"strikethrough":false,"underline":false,"foregroundColorStyle":{"rgbColor":{}}},'
    '"backgroundColorStyle":{"rgbColor":{"red":1,"green":1,"blue":1}}}'
)
_THEME = json.loads(
    '{"primaryFontFamily":"Arial","themeColors":[{"colorType":"TEXT","color":{"rgbColor":{}}},'
    '{"colorType":"BACKGROUND","color":{"rgbColor":{"red":1,"green":1,"blue":1}}},'
    '{"colorType":"ACCENT1","color":{"rgbColor":{"red":0.25882354,"green":0.52156866,"blue":0.95686275}}},'
    '{"colorType":"ACCENT2","color":{"rgbColor":{"red":0.91764706,"green":0.2627451,"blue":0.20784314}}},'
    '{"colorType":"ACCENT3","color":{"rgbColor":{"red":0.9843137,"green":0.7372549,"blue":0.015686275}}},'
    '{"colorType":"ACCENT4","color":{"rgbColor":{"red":0.20392157,"green":0.65882355,"blue":0.3254902}}},'
    '{"colorType":"ACCENT5","color":{"rgbColor":{"red":1,"green":0.42745098,"blue":0.003921569}}},'
    '{"colorType":"ACCENT6","color":{"rgbColor":{"red":0.27450982,"green":0.7411765,"blue":0.7764706}}},'
    '{"colorType":"LINK","color":{"rgbColor":{"red":0.06666667,"green":0.33333334,"blue":0.8}}}]}'
)

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_DEFAULT_MESSAGES = {
    400: "Request contains an invalid argument.",
    401: (
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
        "cookie or other valid authentication credential. See "
        "https://developers.google.com/identity/sign-in/web/devconsole-project."
    ),
    403: "The caller does not have permission",
    404: "Requested entity was not found.",
    408: "Request timed out.",
    409: "The operation was aborted.",
    429: (
        "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute per "
        "user' of service 'sheets.googleapis.com' for consumer 'project_number:"
        + PROJECT_NUMBER
        + "'."
    ),
    500: "Internal error encountered.",
    502: "Bad Gateway",
    503: "The service is currently unavailable.",
    504: "Deadline exceeded.",
}
_GMAIL_REASONS = {
    400: ("global", "badRequest"),
    401: ("global", "authError"),
    403: ("global", "forbidden"),
    404: ("global", "notFound"),
    429: ("usageLimits", "rateLimitExceeded"),
    500: ("global", "backendError"),
    502: ("global", "backendError"),
    503: ("global", "backendError"),
    504: ("global", "backendError"),
}


def _html_page(status: int) -> str:
    """The HTML page Google's front end (or a proxy) serves for an outage: not JSON at all."""
    reason = {502: "Server Error", 503: "Service Unavailable", 404: "Not Found"}.get(status, "Error")
    return (
        "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n"
        "  <meta name=viewport content=\"initial-scale=1, minimum-scale=1, width=device-width\">\n"
        f"  <title>Error {status} ({reason})!!1</title>\n"
        "  <a href=//www.google.com/><span id=logo aria-label=Google></span></a>\n"
        f"  <p><b>{status}.</b> <ins>That\u2019s an error.</ins>\n"
        "  <p>The server encountered a temporary error and could not complete your request."
        "<p>Please try again in 30 seconds.  <ins>That\u2019s all we know.</ins>\n"
    )


class ApiError(Exception):
    """An error answer: raised anywhere in a handler, rendered in the API's own shape."""

    def __init__(
        self,
        status: int,
        message: str | None = None,
        *,
        grpc_status: str | None = None,
        details: list[dict[str, Any]] | None = None,
        reason: tuple[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message or _DEFAULT_MESSAGES.get(status, "Error")
        self.grpc_status = grpc_status or _STATUS_NAMES.get(status, "UNKNOWN")
        self.details = details
        self.reason = reason

    def body(self, api: str) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.status, "message": self.message}
        if api == "gmail":
            domain, reason = self.reason or _GMAIL_REASONS.get(self.status, ("global", "error"))
            err["errors"] = [{"message": self.message, "domain": domain, "reason": reason}]
        err["status"] = self.grpc_status
        if self.details:
            err["details"] = self.details
        return {"error": err}


def _invalid(message: str, field_name: str | None = None) -> ApiError:
    details = None
    if field_name is not None:
        details = [
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": field_name, "description": message}],
            }
        ]
    return ApiError(400, message, details=details)


# --------------------------------------------------------------------------------------------
# Cells
# --------------------------------------------------------------------------------------------

_EPOCH = dt.date(1899, 12, 30)
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_US_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
_ARITH = re.compile(r"^[\d\s.+\-*/()]+$")
_OPS: dict[type, Callable[..., Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


def _num(value: float) -> float | int:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _eval_arith(text: str) -> float | int | None:
    """Evaluate a trivial arithmetic formula (`1+1`, `= 1 / 1024`); None for anything else."""
    if not _ARITH.match(text):
        return None

    def ev(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return float(_OPS[type(node.op)](ev(node.left), ev(node.right)))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
            return float(_OPS[type(node.op)](ev(node.operand)))
        raise ValueError(text)

    try:
        return _num(ev(ast.parse(text.strip(), mode="eval")))
    except (ValueError, SyntaxError, ZeroDivisionError):
        return None


@dataclass
class Cell:
    """One cell: its effective value, the formula that made it (if any), and a date flag."""

    value: str | int | float | bool
    formula: str | None = None
    is_date: bool = False
    date_style: str = "us"  # how it was typed: "us" (1/5/2026) or "iso" (2026-01-05)


def _date_serial(d: dt.date | dt.datetime) -> float | int:
    if isinstance(d, dt.datetime):
        base = dt.datetime(1899, 12, 30, tzinfo=d.tzinfo)
        return _num((d - base).total_seconds() / 86400)
    return (d - _EPOCH).days


def _serial_date(serial: float) -> dt.date | dt.datetime:
    if float(serial).is_integer():
        return _EPOCH + dt.timedelta(days=int(serial))
    return dt.datetime(1899, 12, 30) + dt.timedelta(days=float(serial))


def cell_from_input(raw: object, input_option: str) -> Cell | None:
    """A value as written by values.update & co -> the cell it makes (None clears the cell)."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        return Cell(raw)
    if isinstance(raw, int | float):
        return Cell(_num(raw))
    if not isinstance(raw, str):
        raise _invalid(f'Invalid value at \'data.values\' (type.googleapis.com/google.protobuf.ListValue), {json.dumps(raw)}', "data.values")
    if input_option == "RAW":
        return Cell(raw)
    # USER_ENTERED: parsed as if typed into the UI.
    if raw.startswith("="):
        result = _eval_arith(raw[1:])
        return Cell(raw if result is None else result, formula=raw)
    if raw.startswith("'"):
        return Cell(raw[1:]) if raw[1:] else None
    text = raw.strip()
    if _NUMBER.match(text):
        return Cell(_num(float(text)) if any(c in text for c in ".eE") else int(text))
    if text.endswith("%") and _NUMBER.match(text[:-1]):
        return Cell(_num(float(text[:-1]) / 100))
    if text.upper() in ("TRUE", "FALSE"):
        return Cell(text.upper() == "TRUE")
    m = _ISO_DATE.match(text)
    if m:
        try:
            day = dt.date(int(m[1]), int(m[2]), int(m[3]))
            return Cell(_date_serial(day), is_date=True, date_style="iso")
        except ValueError:
            pass
    m = _US_DATE.match(text)
    if m:
        try:
            return Cell(_date_serial(dt.date(int(m[3]), int(m[1]), int(m[2]))), is_date=True)
        except ValueError:
            pass
    return Cell(raw)


def cell_from_staff(raw: object) -> Cell | None:
    """A value a test puts in the sheet as staff would: dates stay dates, `=` makes a formula."""
    if isinstance(raw, dt.date):
        return Cell(_date_serial(raw), is_date=True)
    if isinstance(raw, str) and raw.startswith("="):
        return cell_from_input(raw, "USER_ENTERED")
    return cell_from_input(raw, "RAW")


def _format_number(v: float) -> str:
    if isinstance(v, int):
        return str(v)
    text = f"{v:.15g}"
    if "e" in text:
        text = f"{v:.10f}".rstrip("0").rstrip(".")
    return text


def render(cell: Cell, value_option: str, date_option: str) -> object:
    """A cell as values.get shows it under the given render options."""
    if value_option == "FORMULA" and cell.formula is not None:
        return cell.formula
    v = cell.value
    if cell.is_date and isinstance(v, int | float) and not isinstance(v, bool):
        if value_option == "FORMATTED_VALUE" or date_option == "FORMATTED_STRING":
            d = _serial_date(v)
            if cell.date_style == "iso":
                text = f"{d.year:04d}-{d.month:02d}-{d.day:02d}"
            else:
                text = f"{d.month}/{d.day}/{d.year}"
            if isinstance(d, dt.datetime):
                text += f" {d.hour}:{d.minute:02d}:{d.second:02d}"
            return text
        return v
    if value_option == "FORMATTED_VALUE":
        if isinstance(v, bool):
            return "TRUE" if v else "FALSE"
        if isinstance(v, int | float):
            return _format_number(v)
    return v


def python_value(cell: Cell) -> object:
    """A cell's effective value for the test-side helpers (dates come back as dates)."""
    if cell.is_date and isinstance(cell.value, int | float) and not isinstance(cell.value, bool):
        return _serial_date(cell.value)
    return cell.value


# --------------------------------------------------------------------------------------------
# Spreadsheets
# --------------------------------------------------------------------------------------------


@dataclass
class Sheet:
    properties: dict[str, Any]
    cells: dict[tuple[int, int], Cell] = field(default_factory=dict)
    protected_ranges: list[dict[str, Any]] = field(default_factory=list)
    conditional_formats: list[dict[str, Any]] = field(default_factory=list)
    data_validations: list[dict[str, Any]] = field(default_factory=list)
    formats: list[dict[str, Any]] = field(default_factory=list)
    dimension_properties: list[dict[str, Any]] = field(default_factory=list)
    cell_formats: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    """Each cell's userEnteredFormat as updateCells left it (repeatCell goes to ``formats``)."""

    @property
    def title(self) -> str:
        return str(self.properties["title"])

    @property
    def sheet_id(self) -> int:
        return int(self.properties["sheetId"])

    @property
    def rows(self) -> int:
        return int(self.properties["gridProperties"]["rowCount"])

    @property
    def cols(self) -> int:
        return int(self.properties["gridProperties"]["columnCount"])

    def grow(self, rows: int | None = None, cols: int | None = None) -> None:
        grid = self.properties["gridProperties"]
        if rows is not None and rows > grid["rowCount"]:
            grid["rowCount"] = rows
        if cols is not None and cols > grid["columnCount"]:
            grid["columnCount"] = cols

    def extent(self) -> tuple[int, int]:
        """(rows, cols) of the data: the smallest rectangle from A1 holding every value."""
        if not self.cells:
            return 0, 0
        return max(r for r, _ in self.cells) + 1, max(c for _, c in self.cells) + 1

    def read(self, b: Bounds, value_option: str, date_option: str) -> list[list[object]]:
        """Rows of rendered values in b, trailing empty cells and rows trimmed (API shape)."""
        assert b.r1 is not None and b.c1 is not None
        out: list[list[object]] = []
        for r in range(b.r0, b.r1 + 1):
            row: list[object] = []
            last = -1
            for c in range(b.c0, b.c1 + 1):
                cell = self.cells.get((r, c))
                if cell is None:
                    row.append("")
                else:
                    row.append(render(cell, value_option, date_option))
                    last = c - b.c0
            out.append(row[: last + 1])
        while out and not out[-1]:
            out.pop()
        return out


class Spreadsheet:
    def __init__(self, spreadsheet_id: str, title: str, shared_with: set[str] | None) -> None:
        self.spreadsheet_id = spreadsheet_id
        self.title = title
        self.shared_with = shared_with
        self.sheets: list[Sheet] = []
        self.batch_updates: list[dict[str, Any]] = []
        self.named_ranges: list[dict[str, Any]] = []
        self.locale = "en_US"
        self.time_zone = "America/New_York"
        self._ids = itertools.count(1_000_000_007, 7_919)

    def next_sheet_id(self) -> int:
        used = {s.sheet_id for s in self.sheets}
        while True:
            candidate = next(self._ids)
            if candidate not in used:
                return candidate

    def sheet_by_title(self, title: str) -> Sheet | None:
        for s in self.sheets:
            if s.title == title:
                return s
        return None

    def sheet_by_id(self, sheet_id: int) -> Sheet | None:
        for s in self.sheets:
            if s.sheet_id == sheet_id:
                return s
        return None

    def reindex(self) -> None:
        for i, s in enumerate(self.sheets):
            s.properties["index"] = i

    def resolve(self, text: str) -> tuple[Sheet, Bounds, bool]:
        """An A1 range string -> (sheet, bounds, whole_sheet). 400 if it does not parse."""
        try:
            title, cells = split_sheet(text)
            if title is None:
                assert cells is not None
                sheet = self.sheet_by_title(cells)
                if sheet is not None:
                    return sheet, Bounds(0, 0, None, None), True
                if not self.sheets:
                    raise RangeError(text)
                return self.sheets[0], parse_cells(cells), False
            sheet = self.sheet_by_title(title)
            if sheet is None:
                raise RangeError(text)
            if cells is None:
                return sheet, Bounds(0, 0, None, None), True
            return sheet, parse_cells(cells), False
        except RangeError:
            raise _invalid(f"Unable to parse range: {text}") from None

    def metadata(self, endpoint: str, only: set[str] | None) -> dict[str, Any]:
        sheets = []
        for s in self.sheets:
            if only is not None and s.title not in only:
                continue
            entry: dict[str, Any] = {"properties": copy.deepcopy(s.properties)}
            if s.protected_ranges:
                entry["protectedRanges"] = copy.deepcopy(s.protected_ranges)
            if s.conditional_formats:
                entry["conditionalFormats"] = copy.deepcopy(s.conditional_formats)
            sheets.append(entry)
        body: dict[str, Any] = {
            "spreadsheetId": self.spreadsheet_id,
            "properties": {
                "title": self.title,
                "locale": self.locale,
                "autoRecalc": "ON_CHANGE",
                "timeZone": self.time_zone,
                "defaultFormat": copy.deepcopy(_DEFAULT_FORMAT),
                "spreadsheetTheme": copy.deepcopy(_THEME),
            },
            "sheets": sheets,
        }
        if self.named_ranges:
            body["namedRanges"] = copy.deepcopy(self.named_ranges)
        body["spreadsheetUrl"] = f"https://docs.google.com/spreadsheets/d/{self.spreadsheet_id}/edit"
        return body


def _grid_properties(rows: int, cols: int) -> dict[str, Any]:
    return {"rowCount": rows, "columnCount": cols}


def _apply_field_mask(obj: Any, mask: dict[str, Any]) -> Any:
    if not mask or "*" in mask:
        return obj
    if isinstance(obj, list):
        return [_apply_field_mask(x, mask) for x in obj]
    if isinstance(obj, dict):
        return {k: _apply_field_mask(obj[k], sub) for k, sub in mask.items() if k in obj}
    return obj


def parse_field_mask(text: str) -> dict[str, Any]:
    """`sheets(properties(sheetId,title)),spreadsheetId` or `sheets.properties` -> a tree."""
    pos = 0

    def parse_list() -> dict[str, Any]:
        nonlocal pos
        tree: dict[str, Any] = {}
        while pos < len(text):
            m = re.compile(r"\s*([A-Za-z0-9_*./]+)").match(text, pos)
            if not m:
                break
            pos = m.end()
            path = re.split(r"[./]", m.group(1))
            node = tree
            for name in path[:-1]:
                node = node.setdefault(name, {})
            leaf = node.setdefault(path[-1], {})
            if pos < len(text) and text[pos] == "(":
                pos += 1
                sub = parse_list()
                leaf.update(sub)
                if pos < len(text) and text[pos] == ")":
                    pos += 1
            if pos < len(text) and text[pos] == ",":
                pos += 1
                continue
            break
        return tree

    return parse_list()


def _merge_fields(target: dict[str, Any], source: dict[str, Any], fields_mask: str) -> None:
    """updateSheetProperties with a `fields` mask: copy only the named (dotted) fields."""
    if fields_mask.strip() == "*":
        for k, v in source.items():
            if k != "sheetId":
                target[k] = copy.deepcopy(v)
        return
    for path in fields_mask.split(","):
        parts = re.split(r"[./]", path.strip())
        src: Any = source
        dst = target
        for i, name in enumerate(parts):
            last = i == len(parts) - 1
            if last:
                if isinstance(src, dict) and name in src:
                    dst[name] = copy.deepcopy(src[name])
                else:
                    dst.pop(name, None)
            else:
                src = src.get(name, {}) if isinstance(src, dict) else {}
                dst = dst.setdefault(name, {})


# --------------------------------------------------------------------------------------------
# Faults and the request log
# --------------------------------------------------------------------------------------------


@dataclass
class Recorded:
    """One HTTP request as the fake saw it. `path` is percent-decoded, without the query."""

    method: str
    path: str
    query: dict[str, list[str]]
    json: object | None
    api: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    identity: str | None = None

    @property
    def line(self) -> str:
        return f"{self.method} {self.path}"


@dataclass
class _Fault:
    kind: str  # "fail", "lose", "delay", "before"
    match: str | None
    remaining: int = 1
    status: int = 500
    retry_after: float | None = None
    html: bool = False
    seconds: float = 0.0
    hook: Callable[[FakeGoogle], None] | None = None

    def matches(self, line: str) -> bool:
        return self.match is None or self.match in line


class _LoseResponse(Exception):
    """Apply the request, then drop the connection without answering."""


@dataclass
class _TokenInfo:
    identity: str
    scopes: frozenset[str]
    delegated: bool = True


@dataclass
class _Draft:
    draft_id: str
    message_id: str
    thread_id: str
    raw: bytes
    seq: int
    internal_date: int


# --------------------------------------------------------------------------------------------
# The fake
# --------------------------------------------------------------------------------------------


class FakeGoogle:
    """Sheets v4 + Gmail v1 + OAuth token endpoint on 127.0.0.1 (see tests/fakes/README.md)."""

    def __init__(self) -> None:
        self._port = 0
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.spreadsheets: dict[str, Spreadsheet] = {}
        self.requests: list[Recorded] = []
        self._faults: list[_Fault] = []
        self._tokens: dict[str, _TokenInfo] = {}
        self._token_seq = itertools.count(1)
        self.revoked = False
        self.accept_unknown_tokens = True
        self.disabled_apis: set[str] = set()
        self._drafts: dict[str, _Draft] = {}
        self.sent: list[bytes] = []
        self._draft_seq = itertools.count(1)
        self._message_seq = itertools.count(1)
        self._search_lag = 0
        self._creates = 0
        self._caller = OWNER
        self.token_grants: list[dict[str, Any]] = []

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Listen on 127.0.0.1: a free port the first time, the same port after a stop().

        Stopping and starting again keeps every piece of state, so a test can take Google away
        (connection refused) and bring it back at the same endpoint.
        """
        fake = self

        class Handler(_Handler):
            pass

        Handler.fake = fake
        server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        server.daemon_threads = True
        self._port = int(server.server_address[1])
        self._stopping.clear()
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-google", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        assert self._port, "call start() first"
        return f"http://127.0.0.1:{self._port}"

    # -- Sheets state --------------------------------------------------------------------------
    def add_spreadsheet(
        self,
        spreadsheet_id: str,
        tabs: dict[str, list[list[object]]],
        *,
        title: str = "Referrals sheet",
        shared_with: set[str] | None = None,
        rows: int = 1000,
        cols: int = 26,
    ) -> None:
        """A spreadsheet with these tabs (in order); grids are at least rows x cols like a new sheet."""
        with self._lock:
            book = Spreadsheet(spreadsheet_id, title, None if shared_with is None else set(shared_with))
            for i, (tab, data) in enumerate(tabs.items()):
                width = max((len(r) for r in data), default=0)
                props = {
                    "sheetId": 0 if i == 0 else book.next_sheet_id(),
                    "title": tab,
                    "index": i,
                    "sheetType": "GRID",
                    "gridProperties": _grid_properties(max(rows, len(data)), max(cols, width)),
                }
                sheet = Sheet(props)
                book.sheets.append(sheet)
                self._put_rows(sheet, data)
            self.spreadsheets[spreadsheet_id] = book

    def _book(self, spreadsheet_id: str) -> Spreadsheet:
        try:
            return self.spreadsheets[spreadsheet_id]
        except KeyError:
            raise KeyError(f"no spreadsheet {spreadsheet_id!r} in the fake") from None

    def _sheet(self, spreadsheet_id: str, tab: str) -> Sheet:
        sheet = self._book(spreadsheet_id).sheet_by_title(tab)
        if sheet is None:
            raise KeyError(f"no tab {tab!r} in spreadsheet {spreadsheet_id!r}")
        return sheet

    @staticmethod
    def _put_rows(sheet: Sheet, rows: list[list[object]]) -> None:
        sheet.cells.clear()
        sheet.grow(len(rows), max((len(r) for r in rows), default=0))
        for r, row in enumerate(rows):
            for c, raw in enumerate(row):
                cell = cell_from_staff(raw)
                if cell is not None:
                    sheet.cells[(r, c)] = cell

    def grid(self, spreadsheet_id: str, tab: str) -> list[list[object]]:
        """Effective values (dates as dates), "" for empty cells, trailing empties trimmed."""
        with self._lock:
            sheet = self._sheet(spreadsheet_id, tab)
            nrows, ncols = sheet.extent()
            out: list[list[object]] = []
            for r in range(nrows):
                row: list[object] = []
                for c in range(ncols):
                    cell = sheet.cells.get((r, c))
                    row.append("" if cell is None else python_value(cell))
                while row and row[-1] == "":
                    row.pop()
                out.append(row)
            while out and not out[-1]:
                out.pop()
            return out

    def formula_at(self, spreadsheet_id: str, tab: str, a1: str) -> str | None:
        with self._lock:
            b = parse_cells(a1)
            cell = self._sheet(spreadsheet_id, tab).cells.get((b.r0, b.c0))
            return None if cell is None else cell.formula

    def format_at(self, spreadsheet_id: str, tab: str, a1: str) -> dict[str, Any] | None:
        """The userEnteredFormat updateCells gave the cell (None: no format of its own)."""
        with self._lock:
            b = parse_cells(a1)
            found = self._sheet(spreadsheet_id, tab).cell_formats.get((b.r0, b.c0))
            return copy.deepcopy(found) if found else None

    def set_grid(self, spreadsheet_id: str, tab: str, rows: list[list[object]]) -> None:
        """Staff edit the tab directly (no request counted): the whole tab becomes `rows`.

        Values are taken as typed: text stays text, numbers stay numbers, a date or datetime
        becomes a date cell (read back as a serial number), and text starting with `=` becomes a
        formula, as it would if a person typed it into Google Sheets.
        """
        with self._lock:
            self._put_rows(self._sheet(spreadsheet_id, tab), rows)

    def add_tab(self, spreadsheet_id: str, tab: str, rows: list[list[object]] | None = None) -> None:
        """Staff add a tab (no request counted)."""
        with self._lock:
            book = self._book(spreadsheet_id)
            props = {
                "sheetId": book.next_sheet_id(),
                "title": tab,
                "index": len(book.sheets),
                "sheetType": "GRID",
                "gridProperties": _grid_properties(1000, 26),
            }
            sheet = Sheet(props)
            book.sheets.append(sheet)
            self._put_rows(sheet, rows or [])

    def delete_tab(self, spreadsheet_id: str, tab: str) -> None:
        """Staff delete a tab (no request counted)."""
        with self._lock:
            book = self._book(spreadsheet_id)
            book.sheets.remove(self._sheet(spreadsheet_id, tab))
            book.reindex()

    def sheet_properties(self, spreadsheet_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(s.properties) for s in self._book(spreadsheet_id).sheets]

    def batch_updates(self, spreadsheet_id: str) -> list[dict[str, Any]]:
        """Every spreadsheets.batchUpdate body received (applied or refused), in order."""
        with self._lock:
            return copy.deepcopy(self._book(spreadsheet_id).batch_updates)

    def tab_extras(self, spreadsheet_id: str, tab: str) -> dict[str, list[dict[str, Any]]]:
        """What batchUpdate left on a tab: protected ranges, conditional formats, validations..."""
        with self._lock:
            s = self._sheet(spreadsheet_id, tab)
            return copy.deepcopy(
                {
                    "protectedRanges": s.protected_ranges,
                    "conditionalFormats": s.conditional_formats,
                    "dataValidations": s.data_validations,
                    "formats": s.formats,
                    "dimensionProperties": s.dimension_properties,
                }
            )

    def share(self, spreadsheet_id: str, email_address: str) -> None:
        with self._lock:
            book = self._book(spreadsheet_id)
            if book.shared_with is not None:
                book.shared_with.add(email_address)

    # -- auth --------------------------------------------------------------------------------
    def register_token(
        self, token: str, *, identity: str = OWNER, scopes: Iterable[str] = ALL_SCOPES
    ) -> None:
        """Make a static bearer token known with this identity and these scopes."""
        with self._lock:
            self._tokens[token] = _TokenInfo(identity, frozenset(scopes))

    def revoke_tokens(self) -> None:
        """The owner revoked access: grants fail with invalid_grant, API calls with 401."""
        with self._lock:
            self.revoked = True

    def reinstate_tokens(self) -> None:
        with self._lock:
            self.revoked = False

    def disable_api(self, api: str) -> None:
        """`sheets` or `gmail`: answer 403 SERVICE_DISABLED like a project that never enabled it."""
        assert api in ("sheets", "gmail"), api
        with self._lock:
            self.disabled_apis.add(api)

    def enable_api(self, api: str) -> None:
        with self._lock:
            self.disabled_apis.discard(api)

    # -- faults ------------------------------------------------------------------------------
    def fail_next(
        self,
        status: int,
        *,
        count: int = 1,
        match: str | None = None,
        retry_after: float | None = None,
        html: bool = False,
    ) -> None:
        """The next `count` matching requests fail with `status` (and are not applied)."""
        with self._lock:
            self._faults.append(
                _Fault("fail", match, count, status=status, retry_after=retry_after, html=html)
            )

    def lose_response_next(self, *, match: str | None = None) -> None:
        """Apply the next matching request, then close the connection without an answer."""
        with self._lock:
            self._faults.append(_Fault("lose", match))

    def delay_next(self, seconds: float, *, match: str | None = None) -> None:
        """Hold the next matching request for `seconds` before handling it (slow or silent)."""
        with self._lock:
            self._faults.append(_Fault("delay", match, seconds=seconds))

    def on_before(self, hook: Callable[[FakeGoogle], None], *, match: str) -> None:
        """Run hook(fake) just before the next matching request is handled (a staff edit)."""
        with self._lock:
            self._faults.append(_Fault("before", match, hook=hook))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take(self, kind: str, line: str) -> _Fault | None:
        with self._lock:
            for f in self._faults:
                if f.kind == kind and f.matches(line):
                    f.remaining -= 1
                    if f.remaining <= 0:
                        self._faults.remove(f)
                    return f
            return None

    def reset_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    def requests_for(self, api: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.api == api]

    # -- Gmail state -------------------------------------------------------------------------
    @property
    def drafts(self) -> dict[str, bytes]:
        with self._lock:
            return {d.draft_id: d.raw for d in self._drafts.values()}

    def search_lag(self, n: int) -> None:
        """drafts.list with `q` misses the drafts made by the last n creates (search index lag)."""
        with self._lock:
            self._search_lag = n

    def add_draft(self, raw: bytes) -> str:
        """A draft made outside the bridge (by staff in Gmail); returns its id."""
        with self._lock:
            return self._create_draft(raw, None).draft_id

    def _create_draft(self, raw: bytes, thread_id: str | None) -> _Draft:
        seq = next(self._draft_seq)
        self._creates = seq
        message_id = f"{0x18c0000000000000 + next(self._message_seq):x}"
        draft = _Draft(
            draft_id=f"r{7000000000000000000 + seq}",
            message_id=message_id,
            thread_id=thread_id or message_id,
            raw=raw,
            seq=seq,
            internal_date=int(time.time() * 1000),
        )
        self._drafts[draft.draft_id] = draft
        return draft

    # -- request handling (called by the handler thread) ----------------------------------------
    def _handle(self, handler: _Handler) -> tuple[int, dict[str, str], bytes]:
        split = urlsplit(handler.path)
        raw_path = split.path
        query = parse_qs(split.query, keep_blank_values=True)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        parsed: object | None = None
        ctype = handler.headers.get("Content-Type", "")
        if body and "json" in ctype:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
        api = _api_of(raw_path)
        path = unquote(raw_path)
        auth = handler.headers.get("Authorization", "")
        record = Recorded(
            handler.command,
            path,
            query,
            parsed,
            api,
            body=body,
            headers={k.lower(): v for k, v in handler.headers.items()},
        )
        with self._lock:
            self.requests.append(record)
        line = record.line

        delay = self._take("delay", line)
        if delay is not None:
            self._stopping.wait(delay.seconds)
        fail = self._take("fail", line)
        if fail is not None:
            return self._fault_response(fail, api)
        before = self._take("before", line)
        if before is not None and before.hook is not None:
            before.hook(self)
        lose = self._take("lose", line)
        with self._lock:
            try:
                if api == "token":
                    status, payload = self._token(handler.command, raw_path, body)
                    out = json.dumps(payload).encode()
                    headers = {"Content-Type": "application/json; charset=utf-8"}
                elif api in ("sheets", "gmail"):
                    info = self._authenticate(auth, api)
                    record.identity = info.identity
                    if api == "sheets":
                        status, result = self._sheets(handler.command, raw_path, query, parsed, info)
                    else:
                        status, result = self._gmail(
                            handler.command, raw_path, query, parsed, body, ctype, info
                        )
                    out = b"" if result is None else json.dumps(result, ensure_ascii=False).encode()
                    headers = {"Content-Type": "application/json; charset=UTF-8"} if out else {}
                else:
                    return 404, {"Content-Type": "text/html; charset=UTF-8"}, _html_page(404).encode()
            except ApiError as err:
                status = err.status
                out = json.dumps(err.body(api), ensure_ascii=False).encode()
                headers = {"Content-Type": "application/json; charset=UTF-8"}
                if status == 401:
                    headers["WWW-Authenticate"] = 'Bearer realm="https://accounts.google.com/"'
        if lose is not None:
            raise _LoseResponse()
        return status, headers, out

    def _fault_response(self, fault: _Fault, api: str) -> tuple[int, dict[str, str], bytes]:
        headers: dict[str, str] = {}
        if fault.retry_after is not None:
            ra = fault.retry_after
            headers["Retry-After"] = str(int(ra)) if float(ra).is_integer() else str(ra)
        if fault.html:
            headers["Content-Type"] = "text/html; charset=UTF-8"
            return fault.status, headers, _html_page(fault.status).encode()
        headers["Content-Type"] = "application/json; charset=UTF-8"
        if api == "token":
            payload: dict[str, Any] = {"error": "temporarily_unavailable", "error_description": "Try again."}
            if fault.status == 400:
                payload = {"error": "invalid_grant", "error_description": "Bad Request"}
            return fault.status, headers, json.dumps(payload).encode()
        err = ApiError(fault.status)
        if fault.status == 429:
            if api == "gmail":
                err = ApiError(
                    429,
                    "User-rate limit exceeded.  Retry after 2026-12-03T17:00:00.000Z",
                    reason=("usageLimits", "rateLimitExceeded"),
                )
            else:
                err.details = [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "RATE_LIMIT_EXCEEDED",
                        "domain": "googleapis.com",
                        "metadata": {
                            "quota_metric": "sheets.googleapis.com/read_requests",
                            "quota_limit": "ReadRequestsPerMinutePerUser",
                            "service": "sheets.googleapis.com",
                            "consumer": f"projects/{PROJECT_NUMBER}",
                        },
                    },
                    {
                        "@type": "type.googleapis.com/google.rpc.Help",
                        "links": [
                            {
                                "description": "Request a higher quota limit.",
                                "url": "https://cloud.google.com/docs/quota#requesting_higher_quota",
                            }
                        ],
                    },
                ]
        return fault.status, headers, json.dumps(err.body(api)).encode()

    # -- token endpoint ------------------------------------------------------------------------
    def _token(self, method: str, raw_path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        if method != "POST" or raw_path.rstrip("/") != "/token":
            return 404, {"error": "not_found"}
        form = {k: v[-1] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
        grant = form.get("grant_type", "")
        self.token_grants.append({"grant_type": grant, "scope": form.get("scope")})
        if grant == "refresh_token":
            if not form.get("refresh_token"):
                return 400, {"error": "invalid_request", "error_description": "Missing required parameter: refresh_token"}
            if self.revoked:
                return 400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
            scopes = frozenset(form["scope"].split()) if form.get("scope") else ALL_SCOPES
            info = _TokenInfo(OWNER, scopes)
        elif grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            claims = _jwt_claims(form.get("assertion", ""))
            if claims is None or "iss" not in claims:
                return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
            if self.revoked:
                return 400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
            subject = claims.get("sub")
            identity = subject if subject and subject != claims["iss"] else str(claims["iss"])
            scopes = frozenset(str(claims.get("scope", "")).split())
            if not scopes:
                return 400, {"error": "invalid_scope", "error_description": "Invalid OAuth scope or ID token audience provided."}
            info = _TokenInfo(identity, scopes, delegated=bool(subject and subject != claims["iss"]))
        else:
            return 400, {"error": "unsupported_grant_type", "error_description": f"Invalid grant_type: {grant}"}
        token = f"ya29.fake-{next(self._token_seq)}"
        self._tokens[token] = info
        return 200, {
            "access_token": token,
            "expires_in": 3599,
            "scope": " ".join(sorted(info.scopes)),
            "token_type": "Bearer",
        }

    def _authenticate(self, auth: str, api: str) -> _TokenInfo:
        if not auth.startswith("Bearer "):
            raise ApiError(
                401,
                "Request is missing required authentication credential. Expected OAuth 2 access "
                "token, login cookie or other valid authentication credential. See "
                "https://developers.google.com/identity/sign-in/web/devconsole-project.",
                reason=("global", "required"),
            )
        token = auth[len("Bearer ") :].strip()
        info = self._tokens.get(token)
        if info is None:
            claims = _jwt_claims(token)  # a self-signed JWT sent as the access token
            if claims is not None and "iss" in claims:
                scopes = frozenset(str(claims.get("scope", "")).split()) or ALL_SCOPES
                info = _TokenInfo(str(claims["iss"]), scopes, delegated=False)
            elif self.accept_unknown_tokens and not token.startswith("ya29."):
                # A static test token (Credentials(token="x")): the owner, every scope. A
                # "ya29." token the fake never issued is an expired one, as from a token file.
                info = _TokenInfo(OWNER, ALL_SCOPES)
        if info is None or self.revoked:
            raise ApiError(
                401,
                details=[
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "ACCESS_TOKEN_EXPIRED",
                        "domain": "googleapis.com",
                        "metadata": {"service": f"{api}.googleapis.com"},
                    }
                ],
                reason=("global", "authError"),
            )
        if api in self.disabled_apis:
            name, service = (
                ("Google Sheets API", "sheets.googleapis.com")
                if api == "sheets"
                else ("Gmail API", "gmail.googleapis.com")
            )
            url = f"https://console.developers.google.com/apis/api/{service}/overview?project={PROJECT_NUMBER}"
            raise ApiError(
                403,
                f"{name} has not been used in project {PROJECT_NUMBER} before or it is disabled. "
                f"Enable it by visiting {url} then retry. If you enabled this API recently, wait a "
                "few minutes for the action to propagate to our systems and retry.",
                details=[
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "SERVICE_DISABLED",
                        "domain": "googleapis.com",
                        "metadata": {"consumer": f"projects/{PROJECT_NUMBER}", "service": service},
                    },
                    {
                        "@type": "type.googleapis.com/google.rpc.Help",
                        "links": [{"description": "Google developers console API activation", "url": url}],
                    },
                ],
                reason=("usageLimits", "accessNotConfigured"),
            )
        return info

    @staticmethod
    def _need_scope(info: _TokenInfo, allowed: frozenset[str], api: str) -> None:
        if info.scopes & allowed:
            return
        service = "sheets.googleapis.com" if api == "sheets" else "gmail.googleapis.com"
        raise ApiError(
            403,
            "Request had insufficient authentication scopes.",
            details=[
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                    "domain": "googleapis.com",
                    "metadata": {"service": service},
                }
            ],
            reason=("global", "insufficientPermissions"),
        )

    # -- Sheets ------------------------------------------------------------------------------
    def _sheets(
        self,
        method: str,
        raw_path: str,
        query: dict[str, list[str]],
        body: object | None,
        info: _TokenInfo,
    ) -> tuple[int, object | None]:
        m = re.match(r"^/v4/spreadsheets/([^/:]+)(.*)$", raw_path)
        if not m:
            raise ApiError(404, "Requested entity was not found.")
        spreadsheet_id = unquote(m.group(1))
        rest = m.group(2)
        read_only = method == "GET"
        self._need_scope(info, SHEETS_READ_SCOPES if read_only else SHEETS_WRITE_SCOPES, "sheets")
        book = self.spreadsheets.get(spreadsheet_id)
        if book is None:
            raise ApiError(404, "Requested entity was not found.")
        if book.shared_with is not None and info.identity not in book.shared_with:
            raise ApiError(403, "The caller does not have permission")
        data = body if isinstance(body, dict) else {}
        q1 = {k: v[-1] for k, v in query.items()}

        if rest == "" and method == "GET":
            only = None
            if "ranges" in query:
                only = {book.resolve(unquote(r))[0].title for r in query["ranges"]}
            result: Any = book.metadata(self.endpoint, only)
            if q1.get("fields"):
                result = _apply_field_mask(result, parse_field_mask(q1["fields"]))
            return 200, result
        if rest == ":batchUpdate" and method == "POST":
            self._caller = info.identity
            return 200, self._spreadsheet_batch_update(book, data)
        if rest == "/values:batchGet" and method == "GET":
            ranges = query.get("ranges", [])
            vr = [self._value_range(book, unquote(r), q1) for r in ranges]
            return 200, {"spreadsheetId": spreadsheet_id, "valueRanges": vr}
        if rest == "/values:batchUpdate" and method == "POST":
            return 200, self._values_batch_update(book, data)
        if rest == "/values:batchClear" and method == "POST":
            cleared = [self._clear(book, str(r)) for r in data.get("ranges") or []]
            return 200, {"spreadsheetId": spreadsheet_id, "clearedRanges": cleared}
        vm = re.match(r"^/values/([^/]+?)(:append|:clear)?$", rest)
        if vm:
            rng = unquote(vm.group(1))
            action = vm.group(2)
            if action is None and method == "GET":
                return 200, self._value_range(book, rng, q1)
            if action is None and method == "PUT":
                option = self._input_option(q1.get("valueInputOption"))
                resp = _public(self._write(book, rng, data, option))
                if _truthy(q1.get("includeValuesInResponse")):
                    resp["updatedData"] = self._value_range(book, resp["updatedRange"], q1, prefix="response")
                return 200, {"spreadsheetId": spreadsheet_id, **resp}
            if action == ":append" and method == "POST":
                option = self._input_option(q1.get("valueInputOption"))
                return 200, self._append(book, rng, data, option, q1)
            if action == ":clear" and method == "POST":
                return 200, {"spreadsheetId": spreadsheet_id, "clearedRange": self._clear(book, rng)}
        raise ApiError(404, "Requested entity was not found.")

    @staticmethod
    def _input_option(option: object) -> str:
        if option in (None, "", "INPUT_VALUE_OPTION_UNSPECIFIED"):
            raise _invalid("'valueInputOption' is required but not specified")
        if option not in ("RAW", "USER_ENTERED"):
            raise _invalid(
                f"Invalid value at 'value_input_option' (type.googleapis.com/google.apps.sheets.v4.ValueInputOption), \"{option}\"",
                "value_input_option",
            )
        return str(option)

    def _value_range(
        self, book: Spreadsheet, rng: str, q: dict[str, str], prefix: str = ""
    ) -> dict[str, Any]:
        sheet, b, _whole = book.resolve(rng)
        value_key = f"{prefix}ValueRenderOption" if prefix else "valueRenderOption"
        date_key = f"{prefix}DateTimeRenderOption" if prefix else "dateTimeRenderOption"
        value_option = q.get(value_key) or "FORMATTED_VALUE"
        date_option = q.get(date_key) or "SERIAL_NUMBER"
        major = q.get("majorDimension") or "ROWS"
        if value_option not in ("FORMATTED_VALUE", "UNFORMATTED_VALUE", "FORMULA"):
            raise _invalid(f"Invalid value at 'value_render_option', \"{value_option}\"", "value_render_option")
        if b.r0 >= sheet.rows or b.c0 >= sheet.cols:
            raise _invalid(
                # Google echoes the range as the client sent it (airbyte#1740: "Range
                # (Mass!151154:151354) exceeds grid limits. Max rows: 151000, max columns: 26").
                f"Range ({rng}) exceeds grid limits. "
                f"Max rows: {sheet.rows}, max columns: {sheet.cols}"
            )
        clipped = b.clip(sheet.rows, sheet.cols)
        out: dict[str, Any] = {
            "range": f"{quote_title(sheet.title)}!{format_bounds(clipped)}",
            "majorDimension": major,
        }
        values = sheet.read(clipped, value_option, date_option)
        if major == "COLUMNS" and values:
            width = max(len(r) for r in values)
            cols = [[row[c] if c < len(row) else "" for row in values] for c in range(width)]
            for col in cols:
                while col and col[-1] == "":
                    col.pop()
            values = cols
        if values:
            out["values"] = values
        return out

    def _write(
        self, book: Spreadsheet, rng: str, data: dict[str, Any], option: str
    ) -> dict[str, Any]:
        sheet, b, whole = book.resolve(rng)
        values = data.get("values")
        if values is None:
            values = []
        if not isinstance(values, list) or not all(isinstance(r, list) for r in values):
            raise _invalid(
                f"Invalid value at 'data.values' (type.googleapis.com/google.protobuf.ListValue), {json.dumps(values)}",
                "data.values",
            )
        if (data.get("majorDimension") or "ROWS") == "COLUMNS":
            height = max((len(c) for c in values), default=0)
            values = [[col[r] if r < len(col) else None for col in values] for r in range(height)]
        height = len(values)
        width = max((len(r) for r in values), default=0)
        title = quote_title(sheet.title)
        if height == 0 or width == 0:
            return {"updatedRange": f"{title}!{format_bounds(Bounds(b.r0, b.c0, b.r0, b.c0))}"}
        end_r, end_c = b.r0 + height - 1, b.c0 + width - 1
        anchor_only = whole or ":" not in rng.rpartition("!")[2]  # "A1" is where writing starts
        if not anchor_only:
            if b.r1 is not None and end_r > b.r1:
                raise _invalid(
                    f"Requested writing within range [{rng}], but tried writing to row [{end_r + 1}]"
                )
            if b.c1 is not None and end_c > b.c1:
                raise _invalid(
                    f"Requested writing within range [{rng}], but tried writing to column [{col_letters(end_c)}]"
                )
        written = Bounds(b.r0, b.c0, end_r, end_c)
        if end_r >= sheet.rows or end_c >= sheet.cols:
            # The first cell outside the grid, after the title as sent ("Range (Solar!Y1)
            # exceeds grid limits. Max rows: 981, max columns: 24", home-assistant/core#104198).
            outside = (min(end_r, sheet.rows), b.c0) if end_r >= sheet.rows else (b.r0, sheet.cols)
            sent_title = rng.rpartition("!")[0] if "!" in rng else quote_title(sheet.title)
            raise _invalid(
                f"Range ({sent_title}!{col_letters(outside[1])}{outside[0] + 1}) exceeds grid limits. "
                f"Max rows: {sheet.rows}, max columns: {sheet.cols}"
            )
        new_cells = {}
        for i, row in enumerate(values):
            for j, raw in enumerate(row):
                if raw is None:
                    continue  # null: leave the cell as it is (and it is not counted)
                new_cells[(b.r0 + i, b.c0 + j)] = cell_from_input(raw, option)
        cells_written = len(new_cells)
        rows_written = {r for r, _ in new_cells}
        cols_written = {c for _, c in new_cells}
        for key, cell in new_cells.items():
            if cell is None:
                sheet.cells.pop(key, None)
            else:
                sheet.cells[key] = cell
        return {
            "updatedRange": f"{title}!{format_bounds(written)}",
            "updatedRows": len(rows_written),
            "updatedColumns": len(cols_written),
            "updatedCells": cells_written,
            "_rows": sorted(rows_written),
            "_cols": sorted(cols_written),
        }

    def _values_batch_update(self, book: Spreadsheet, data: dict[str, Any]) -> dict[str, Any]:
        option = self._input_option(data.get("valueInputOption"))
        entries = data.get("data") or []
        # Validate everything first: a batchUpdate is applied all or nothing.
        snapshot = {id(s): dict(s.cells) for s in book.sheets}
        responses = []
        touched_rows: set[tuple[str, int]] = set()
        touched_cols: set[tuple[str, int]] = set()
        try:
            for entry in entries:
                if not isinstance(entry, dict) or not entry.get("range"):
                    raise _invalid("Invalid data[0]: Missing range", "data.range")
                written = self._write(book, str(entry["range"]), entry, option)
                sheet_title = written["updatedRange"].rpartition("!")[0]
                touched_rows.update((sheet_title, r) for r in written.get("_rows", ()))
                touched_cols.update((sheet_title, c) for c in written.get("_cols", ()))
                resp = {"spreadsheetId": book.spreadsheet_id, **_public(written)}
                if data.get("includeValuesInResponse"):
                    resp["updatedData"] = self._value_range(
                        book,
                        resp["updatedRange"],
                        {
                            "valueRenderOption": data.get("responseValueRenderOption") or "FORMATTED_VALUE",
                            "dateTimeRenderOption": data.get("responseDateTimeRenderOption") or "SERIAL_NUMBER",
                        },
                    )
                responses.append(resp)
        except ApiError:
            for s in book.sheets:
                s.cells = snapshot.get(id(s), s.cells)
            raise
        result: dict[str, Any] = {"spreadsheetId": book.spreadsheet_id}
        touched = [r for r in responses if "updatedCells" in r]
        if touched:
            result["totalUpdatedRows"] = len(touched_rows)
            result["totalUpdatedColumns"] = len(touched_cols)
            result["totalUpdatedCells"] = sum(r["updatedCells"] for r in touched)
            result["totalUpdatedSheets"] = len({r["updatedRange"].rpartition("!")[0] for r in touched})
        if responses:
            result["responses"] = responses
        return result

    def _append(
        self, book: Spreadsheet, rng: str, data: dict[str, Any], option: str, q: dict[str, str]
    ) -> dict[str, Any]:
        sheet, b, _whole = book.resolve(rng)
        values = data.get("values") or []
        clipped = b.clip(sheet.rows, sheet.cols)
        assert clipped.r1 is not None and clipped.c1 is not None
        occupied = sorted(
            r for (r, c) in sheet.cells if clipped.r0 <= r <= clipped.r1 and clipped.c0 <= c <= clipped.c1
        )
        title = quote_title(sheet.title)
        result: dict[str, Any] = {"spreadsheetId": book.spreadsheet_id}
        if occupied:
            first = occupied[0]
            last = first
            rows_with_data = set(occupied)
            while last + 1 in rows_with_data:
                last += 1
            cols_used = [
                c for (r, c) in sheet.cells if first <= r <= last and clipped.c0 <= c <= clipped.c1
            ]
            # Google's table detection: the run of filled columns that ends at the rightmost
            # filled column. A gap (["a", "", "c"]) makes the table start at "c", and the
            # append lands there (recorded in test_append_row_with_empty_value).
            filled = set(cols_used)
            left = right = max(cols_used)
            while left - 1 in filled:
                left -= 1
            table = Bounds(first, left, last, right)
            result["tableRange"] = f"{title}!{format_bounds(table)}"
            start_r, start_c = last + 1, left
        else:
            start_r, start_c = clipped.r0, clipped.c0
        height = len(values)
        width = max((len(r) for r in values), default=0)
        if (q.get("insertDataOption") or "OVERWRITE") == "INSERT_ROWS" and height:
            moved = {}
            for (r, c), cell in list(sheet.cells.items()):
                if r >= start_r:
                    del sheet.cells[(r, c)]
                    moved[(r + height, c)] = cell
            sheet.cells.update(moved)
            sheet.grow(sheet.rows + height)
        sheet.grow(start_r + height, start_c + width)
        target = f"{title}!{format_bounds(Bounds(start_r, start_c, start_r, start_c))}"
        body = {"values": values, "majorDimension": data.get("majorDimension")}
        resp = {"spreadsheetId": book.spreadsheet_id, **_public(self._write(book, target, body, option))}
        if _truthy(q.get("includeValuesInResponse")):
            resp["updatedData"] = self._value_range(book, resp["updatedRange"], q, prefix="response")
        result["updates"] = resp
        return result

    def _clear(self, book: Spreadsheet, rng: str) -> str:
        sheet, b, _whole = book.resolve(rng)
        clipped = b.clip(sheet.rows, sheet.cols)
        assert clipped.r1 is not None and clipped.c1 is not None
        for key in [k for k in sheet.cells if clipped.r0 <= k[0] <= clipped.r1 and clipped.c0 <= k[1] <= clipped.c1]:
            del sheet.cells[key]
        return f"{quote_title(sheet.title)}!{format_bounds(clipped)}"

    # -- spreadsheets.batchUpdate ---------------------------------------------------------------
    def _spreadsheet_batch_update(self, book: Spreadsheet, data: dict[str, Any]) -> dict[str, Any]:
        book.batch_updates.append(copy.deepcopy(data))
        requests = data.get("requests")
        if not isinstance(requests, list) or not requests:
            raise _invalid("Must specify at least one request.")
        saved_sheets = copy.deepcopy(book.sheets)
        saved_named = copy.deepcopy(book.named_ranges)
        replies: list[dict[str, Any]] = []
        try:
            for i, req in enumerate(requests):
                if not isinstance(req, dict) or len(req) != 1:
                    raise _invalid(f"Invalid requests[{i}]: No request set.", f"requests[{i}]")
                (kind, payload), = req.items()
                handler = getattr(self, f"_bu_{kind}", None)
                if handler is None:
                    raise _invalid(
                        f"Invalid JSON payload received. Unknown name \"{kind}\" at 'requests[{i}]': Cannot find field.",
                        f"requests[{i}]",
                    )
                try:
                    replies.append(handler(book, payload or {}))
                except _BadRequest as err:
                    raise _invalid(f"Invalid requests[{i}].{kind}: {err}") from None
        except ApiError:
            book.sheets = saved_sheets
            book.named_ranges = saved_named
            raise
        return {"spreadsheetId": book.spreadsheet_id, "replies": replies}

    @staticmethod
    def _grid_sheet(book: Spreadsheet, grid_range: dict[str, Any]) -> Sheet:
        sheet_id = int(grid_range.get("sheetId", 0) or 0)
        sheet = book.sheet_by_id(sheet_id)
        if sheet is None:
            raise _BadRequest(f"No grid with id: {sheet_id}")
        return sheet

    def _bu_addSheet(self, book: Spreadsheet, payload: dict[str, Any]) -> dict[str, Any]:
        props = dict(payload.get("properties") or {})
        title = props.get("title") or f"Sheet{len(book.sheets) + 1}"
        if book.sheet_by_title(title) is not None:
            raise _BadRequest(f'A sheet with the name "{title}" already exists. Please enter another name.')
        sheet_id = props.get("sheetId")
        if sheet_id is None:
            sheet_id = book.next_sheet_id()
        elif book.sheet_by_id(int(sheet_id)) is not None:
            raise _BadRequest(f"Sheet with id {sheet_id} already exists.")
        grid = dict(props.get("gridProperties") or {})
        grid.setdefault("rowCount", 1000)
        grid.setdefault("columnCount", 26)
        for key in ("frozenRowCount", "frozenColumnCount"):
            if not grid.get(key):
                grid.pop(key, None)
        new_props: dict[str, Any] = {
            "sheetId": int(sheet_id),
            "title": title,
            "index": 0,
            "sheetType": props.get("sheetType") or "GRID",
            "gridProperties": grid,
        }
        for key in ("hidden", "tabColor", "tabColorStyle", "rightToLeft"):
            if key in props:
                new_props[key] = props[key]
        index = props.get("index")
        sheet = Sheet(new_props)
        if index is None or index >= len(book.sheets):
            book.sheets.append(sheet)
        else:
            book.sheets.insert(int(index), sheet)
        book.reindex()
        return {"addSheet": {"properties": copy.deepcopy(sheet.properties)}}

    def _bu_deleteSheet(self, book: Spreadsheet, payload: dict[str, Any]) -> dict[str, Any]:
        sheet = self._grid_sheet(book, payload)
        if len(book.sheets) == 1:
            raise _BadRequest("You can't remove all the sheets in a document.")
        book.sheets.remove(sheet)
        book.reindex()
        return {}

    def _bu_updateSheetProperties(self, book: Spreadsheet, payload: dict[str, Any]) -> dict[str, Any]:
        props = payload.get("properties") or {}
        fields_mask = payload.get("fields")
        if not fields_mask:
            raise _BadRequest("At least one field must be updated.")
        sheet = self._grid_sheet(book, props)
        target = copy.deepcopy(sheet.properties)
        _merge_fields(target, props, str(fields_mask))
        new_title = target.get("title")
        if new_title != sheet.title and book.sheet_by_title(str(new_title)) is not None:
            raise _BadRequest(f'A sheet with the name "{new_title}" already exists. Please enter another name.')
        grid = target.setdefault("gridProperties", {})
        if "rowCount" not in grid or "columnCount" not in grid:
            raise _BadRequest("Invalid gridProperties.")
        frozen = grid.get("frozenRowCount") or 0
        if frozen >= grid["rowCount"]:
            raise _BadRequest("You can't freeze all visible rows on the sheet.")
        for key in ("frozenRowCount", "frozenColumnCount"):
            if not grid.get(key):
                grid.pop(key, None)
        index = target.get("index", sheet.properties["index"])
        keep = {"sheetId": target["sheetId"], "index": index}
        target = {**_clean(target), **keep}
        target.setdefault("gridProperties", grid)
        target = {k: target[k] for k in ("sheetId", "title", "index", "sheetType", "gridProperties") if k in target} | {
            k: v for k, v in target.items() if k not in ("sheetId", "title", "index", "sheetType", "gridProperties")
        }
        sheet.properties = target
        if index != book.sheets.index(sheet):
            book.sheets.remove(sheet)
            book.sheets.insert(min(int(index), len(book.sheets)), sheet)
        book.reindex()
        if all(s.properties.get("hidden") for s in book.sheets):
            raise _BadRequest("You can't hide all the sheets in a document.")
        return {}

    def _bu_updateSpreadsheetProperties(self, book: Spreadsheet, payload: dict[str, Any]) -> dict[str, Any]:
        props = payload.get("properties") or {}
        fields_mask = str(payload.get("fields") or "")
        if not fields_mask:
            raise _BadRequest("At least one field must be updated.")
        current = {"title": book.title, "locale": book.locale, "timeZone": book.time_zone}
        _merge_fields(current, props, fields_mask)
        book.title = str(current.get("title") or book.title)
        book.locale = str(current.get("locale") or book.locale)
        book.time_zone = str(current.get("timeZone") or book.time_zone)
        return {}

    def _bu_sortRange(self, book: Spreadsheet, payload: dict[str, Any]) -> dict[str, Any]:
        """Sort rows of a range (what a person does with Data > Sort range)."""
        rng = payload.get("range") or {}
        sheet = self._grid_sheet(book, rng)
        self._check_grid_range(sheet, rng)
        r0 = int(rng.get("startRowIndex") or 0)
        r1 = int(rng.get("endRowIndex") or sheet.rows)
        c0 = int(rng.get("startColumnIndex") or 0)
        c1 = int(rng.get("endColumnIndex") or sheet.cols)
        rows = [[sheet.cells.get((r, c)) for c in range(c0, c1)] for r in range(r0, r1)]
        for spec in reversed(payload.get("sortSpecs") or [{}]):
            col = int(spec.get("dimensionIndex") or 0) - c0
            descending = spec.get("sortOrder") == "DESCENDING"
            present = [r for r in rows if r[col] is not None]
            empty = [r for r in rows if r[col] is None]
            present.sort(key=lambda r: _sort_key(r[col]), reverse=descending)
            rows = present + empty  # empty cells go last either way, as in Sheets
        for i, row in enumerate(rows):
            for j, cell in enumerate(row):
                key = (r0 + i, c0 + j)
                if cell is None:
                    sheet.cells.pop(key, None)
                else:
                    sheet.cells[key] = cell
        return {}

    def _bu_setDataValidation(self, book: Spreadsheet, payload: dict[str, Any]) -> dict[str, Any]:
        rng = payload.get("range") or {}
        sheet = self._grid_sheet(book, rng)
        self._check_grid_range(sheet, rng)
        sheet.data_validations.append(copy.deepcopy(payload))
        return {}

    def _bu_addProtectedRange(self, book: Spreadsheet, payload: dict[str, Any]) -> dict[str, Any]:
        pr = copy.deepcopy(payload.get("protectedRange") or {})
        rng = pr.get("range") or {}
        sheet = self._grid_sheet(book, rng)
        self._check_grid_range(sheet, rng)
        pr = {
            "protectedRangeId": 1_000_000 + sum(len(s.protected_ranges) for s in book.sheets) + 1,
            **pr,
        }
        pr["requestingUserCanEdit"] = True  # the caller made it, so the caller can edit it
        pr["editors"] = pr.get("editors") or {}
        pr = _clean(_drop_zero_sheet_ids(pr))
        stored = copy.deepcopy(pr)
        # Google answers with the editors as sent, but stores the caller among them.
        users = list(stored["editors"].get("users") or [])
        if self._caller not in users:
            users.append(self._caller)
        stored["editors"]["users"] = users
        sheet.protected_ranges.append(stored)
        return {"addProtectedRange": {"protectedRange": pr}}

    def _bu_deleteProtectedRange(self, book: Spreadsheet, payload: dict[str, Any]) -> dict[str, Any]:
        wanted = payload.get("protectedRangeId")
        for s in book.sheets:
            for pr in s.protected_ranges:
                if pr.get("protectedRangeId") == wanted:
                    s.protected_ranges.remove(pr)
                    return {}
        raise _BadRequest(f"No protected range with id: {wanted}")

    def _bu_addConditionalFormatRule(self, book: Spreadsheet, payload: dict[str, Any]) -> dict[str, Any]:
        rule = copy.deepcopy(payload.get("rule") or {})
        ranges = rule.get("ranges") or []
        if not ranges:
            raise _BadRequest("Rule must have at least one range.")
        sheet = self._grid_sheet(book, ranges[0])
        for r in ranges:
            self._check_grid_range(sheet, r)
        index = int(payload.get("index", len(sheet.conditional_formats)) or 0)
        sheet.conditional_formats.insert(min(index, len(sheet.conditional_formats)), rule)
        return {}

    def _bu_repeatCell(self, book: Spreadsheet, payload: dict[str, Any]) -> dict[str, Any]:
        rng = payload.get("range") or {}
        sheet = self._grid_sheet(book, rng)
        self._check_grid_range(sheet, rng)
        if not payload.get("fields"):
            raise _BadRequest("At least one field must be updated.")
        sheet.formats.append(copy.deepcopy(payload))
        return {}

    def _bu_updateCells(self, book: Spreadsheet, payload: dict[str, Any]) -> dict[str, Any]:
        """Values and formats cell by cell, as Google does: from ``start`` (a GridCoordinate)
        over as many cells as ``rows`` holds, or over a ``range`` (GridRange) whose cells that
        ``rows`` does not cover get the masked fields cleared. ``stringValue`` is text, never
        a formula; a DATE/DATE_TIME number format makes a number a date cell."""
        fields = str(payload.get("fields") or "")
        if not fields:
            raise _BadRequest("At least one field must be updated.")
        mask = {f.strip().split(".")[0] for f in fields.split(",") if f.strip()}
        if "*" in mask:
            mask = {"userEnteredValue", "userEnteredFormat"}
        unknown = mask - {"userEnteredValue", "userEnteredFormat", "note"}
        if unknown:
            raise _BadRequest(f"Unsupported fields: {sorted(unknown)}")
        rows = payload.get("rows") or []
        if not isinstance(rows, list):
            raise _BadRequest("rows must be a list.")
        if ("start" in payload) == ("range" in payload):
            raise _BadRequest("Exactly one of start or range must be set.")
        if "start" in payload:
            start = payload["start"] or {}
            sheet = self._grid_sheet(book, start)
            r0, c0 = int(start.get("rowIndex") or 0), int(start.get("columnIndex") or 0)
            r1 = r0 + len(rows)
            c1 = c0 + max((len((row or {}).get("values") or []) for row in rows), default=0)
            cover = False
        else:
            rng = payload["range"] or {}
            sheet = self._grid_sheet(book, rng)
            self._check_grid_range(sheet, rng)
            r0, c0 = int(rng.get("startRowIndex") or 0), int(rng.get("startColumnIndex") or 0)
            r1 = int(rng.get("endRowIndex", sheet.rows))
            c1 = int(rng.get("endColumnIndex", sheet.cols))
            cover = True
        if r1 > sheet.rows or c1 > sheet.cols:
            raise _BadRequest(
                f"Range ({quote_title(sheet.title)}) exceeds grid limits. "
                f"Max rows: {sheet.rows}, max columns: {sheet.cols}"
            )
        for r in range(r0, r1):
            i = r - r0
            values = ((rows[i] or {}).get("values") or []) if i < len(rows) else []
            for c in range(c0, c1):
                j = c - c0
                if j >= len(values) and not cover:
                    continue
                data = (values[j] or {}) if j < len(values) else {}
                if "userEnteredFormat" in mask:
                    look = data.get("userEnteredFormat")
                    if look:
                        sheet.cell_formats[(r, c)] = copy.deepcopy(look)
                    else:
                        sheet.cell_formats.pop((r, c), None)
                if "userEnteredValue" in mask:
                    cell = self._cell_from_extended(data.get("userEnteredValue"))
                    if cell is None:
                        sheet.cells.pop((r, c), None)
                    else:
                        sheet.cells[(r, c)] = cell
                kind = ((sheet.cell_formats.get((r, c)) or {}).get("numberFormat") or {}).get("type")
                held = sheet.cells.get((r, c))
                if held is not None and isinstance(held.value, int | float) and not isinstance(held.value, bool):
                    held.is_date = kind in ("DATE", "DATE_TIME")
                    held.date_style = "iso"
        return {}

    @staticmethod
    def _cell_from_extended(value: object) -> Cell | None:
        """An ExtendedValue -> the cell it makes (None: no value, the cell is cleared)."""
        if not value:
            return None
        if not isinstance(value, dict) or len(value) != 1:
            raise _BadRequest("userEnteredValue must set exactly one kind of value.")
        (kind, raw), = value.items()
        if kind == "stringValue" and isinstance(raw, str):
            return Cell(raw) if raw else None
        if kind == "numberValue" and isinstance(raw, int | float) and not isinstance(raw, bool):
            return Cell(_num(raw))
        if kind == "boolValue" and isinstance(raw, bool):
            return Cell(raw)
        if kind == "formulaValue" and isinstance(raw, str):
            result = _eval_arith(raw[1:]) if raw.startswith("=") else None
            return Cell(raw if result is None else result, formula=raw)
        raise _BadRequest(f"Invalid value for {kind}: {json.dumps(raw)}")

    def _bu_updateDimensionProperties(self, book: Spreadsheet, payload: dict[str, Any]) -> dict[str, Any]:
        rng = payload.get("range") or {}
        sheet = self._grid_sheet(book, rng)
        if not payload.get("fields"):
            raise _BadRequest("At least one field must be updated.")
        sheet.dimension_properties.append(copy.deepcopy(payload))
        return {}

    def _bu_autoResizeDimensions(self, book: Spreadsheet, payload: dict[str, Any]) -> dict[str, Any]:
        self._grid_sheet(book, payload.get("dimensions") or {})
        return {}

    def _bu_appendDimension(self, book: Spreadsheet, payload: dict[str, Any]) -> dict[str, Any]:
        sheet = self._grid_sheet(book, payload)
        length = int(payload.get("length") or 0)
        if length <= 0:
            raise _BadRequest("length must be positive.")
        if payload.get("dimension") == "COLUMNS":
            sheet.grow(cols=sheet.cols + length)
        else:
            sheet.grow(rows=sheet.rows + length)
        return {}

    def _bu_insertDimension(self, book: Spreadsheet, payload: dict[str, Any]) -> dict[str, Any]:
        rng = payload.get("range") or {}
        sheet = self._grid_sheet(book, rng)
        start, end = int(rng.get("startIndex") or 0), int(rng.get("endIndex") or 0)
        n = end - start
        if n <= 0:
            raise _BadRequest("endIndex must be greater than startIndex.")
        columns = rng.get("dimension") == "COLUMNS"
        moved = {}
        for (r, c), cell in list(sheet.cells.items()):
            pos = c if columns else r
            if pos >= start:
                del sheet.cells[(r, c)]
                moved[(r, c + n) if columns else (r + n, c)] = cell
        sheet.cells.update(moved)
        if columns:
            sheet.grow(cols=sheet.cols + n)
        else:
            sheet.grow(rows=sheet.rows + n)
        return {}

    def _bu_deleteDimension(self, book: Spreadsheet, payload: dict[str, Any]) -> dict[str, Any]:
        rng = payload.get("range") or {}
        sheet = self._grid_sheet(book, rng)
        start, end = int(rng.get("startIndex") or 0), int(rng.get("endIndex") or 0)
        n = end - start
        columns = rng.get("dimension") == "COLUMNS"
        limit = sheet.cols if columns else sheet.rows
        if n <= 0 or end > limit:
            raise _BadRequest("Invalid range.")
        moved = {}
        for (r, c), cell in list(sheet.cells.items()):
            pos = c if columns else r
            del sheet.cells[(r, c)]
            if pos < start:
                moved[(r, c)] = cell
            elif pos >= end:
                moved[(r, c - n) if columns else (r - n, c)] = cell
        sheet.cells.update(moved)
        grid = sheet.properties["gridProperties"]
        grid["columnCount" if columns else "rowCount"] -= n
        return {}

    @staticmethod
    def _check_grid_range(sheet: Sheet, rng: dict[str, Any]) -> None:
        end_r = rng.get("endRowIndex")
        end_c = rng.get("endColumnIndex")
        if (end_r is not None and end_r > sheet.rows) or (end_c is not None and end_c > sheet.cols):
            raise _BadRequest(
                f"Range ({quote_title(sheet.title)}) exceeds grid limits. "
                f"Max rows: {sheet.rows}, max columns: {sheet.cols}"
            )

    # -- Gmail -------------------------------------------------------------------------------
    def _gmail(
        self,
        method: str,
        raw_path: str,
        query: dict[str, list[str]],
        body: object | None,
        raw_body: bytes,
        ctype: str,
        info: _TokenInfo,
    ) -> tuple[int, object | None]:
        m = re.match(r"^(/upload)?/gmail/v1/users/([^/]+)(/.*)?$", raw_path)
        if not m:
            raise ApiError(404, "Requested entity was not found.")
        upload = bool(m.group(1))
        user = unquote(m.group(2))
        rest = m.group(3) or ""
        if user not in ("me", info.identity):
            raise ApiError(403, f"Delegation denied for {info.identity}", reason=("global", "forbidden"))
        if info.identity.endswith(".gserviceaccount.com") and not info.delegated:
            raise ApiError(
                400, "Precondition check failed.", grpc_status="FAILED_PRECONDITION",
                reason=("global", "failedPrecondition"),
            )
        q1 = {k: v[-1] for k, v in query.items()}
        data = body if isinstance(body, dict) else {}
        if upload:
            data = self._upload_body(q1, raw_body, ctype)

        if rest == "/profile" and method == "GET":
            self._need_scope(info, GMAIL_READ_SCOPES | GMAIL_SEND_SCOPES, "gmail")
            return 200, {
                "emailAddress": info.identity,
                "messagesTotal": len(self.sent),
                "threadsTotal": len(self.sent),
                "historyId": str(1000 + len(self.requests)),
            }
        if rest == "/drafts" and method == "POST":
            self._need_scope(info, GMAIL_DRAFT_SCOPES, "gmail")
            message = data.get("message") if isinstance(data.get("message"), dict) else None
            if message is None or not message.get("raw"):
                raise ApiError(400, "Invalid draft", reason=("global", "invalidArgument"))
            raw = _b64decode(str(message["raw"]))
            draft = self._create_draft(raw, message.get("threadId"))
            return 200, self._draft_ref(draft, labels=True)
        if rest == "/drafts" and method == "GET":
            self._need_scope(info, GMAIL_READ_SCOPES, "gmail")
            return 200, self._list_drafts(q1)
        if rest == "/drafts/send" and method == "POST":
            self._need_scope(info, GMAIL_DRAFT_SCOPES, "gmail")
            draft_id = str(data.get("id") or "")
            if draft_id not in self._drafts:
                raise ApiError(404, "Requested entity was not found.", reason=("global", "notFound"))
            sent_draft = self._drafts.pop(draft_id)
            self.sent.append(sent_draft.raw)
            return 200, {
                "id": sent_draft.message_id,
                "threadId": sent_draft.thread_id,
                "labelIds": ["SENT"],
            }
        dm = re.match(r"^/drafts/([^/]+)$", rest)
        if dm:
            draft_id = unquote(dm.group(1))
            found = self._drafts.get(draft_id)
            if method == "GET":
                self._need_scope(info, GMAIL_READ_SCOPES, "gmail")
            else:
                self._need_scope(info, GMAIL_DRAFT_SCOPES, "gmail")
            if found is None:
                raise ApiError(404, "Requested entity was not found.", reason=("global", "notFound"))
            if method == "GET":
                return 200, self._draft_full(found, q1.get("format") or "full", query.get("metadataHeaders"))
            if method == "DELETE":
                del self._drafts[draft_id]
                return 204, None
            if method == "PUT":
                message = data.get("message") if isinstance(data.get("message"), dict) else None
                if message is None or not message.get("raw"):
                    raise ApiError(400, "Invalid draft", reason=("global", "invalidArgument"))
                found.raw = _b64decode(str(message["raw"]))
                found.message_id = f"{0x18c0000000000000 + next(self._message_seq):x}"
                return 200, self._draft_ref(found, labels=True)
        if rest == "/messages/send" and method == "POST":
            self._need_scope(info, GMAIL_SEND_SCOPES, "gmail")
            if not data.get("raw"):
                raise ApiError(400, "'raw' RFC822 payload message string or uploading message via /upload/* URL required", reason=("global", "invalidArgument"))
            raw = _b64decode(str(data["raw"]))
            self.sent.append(raw)
            mid = f"{0x18c0000000000000 + next(self._message_seq):x}"
            return 200, {"id": mid, "threadId": str(data.get("threadId") or mid), "labelIds": ["SENT"]}
        raise ApiError(404, "Requested entity was not found.", reason=("global", "notFound"))

    @staticmethod
    def _upload_body(q: dict[str, str], raw_body: bytes, ctype: str) -> dict[str, Any]:
        """The media upload path: uploadType=media (the message itself) or multipart/related."""
        kind = q.get("uploadType", "media")
        if kind == "media":
            return {"raw": base64.urlsafe_b64encode(raw_body).decode(), "message": {"raw": base64.urlsafe_b64encode(raw_body).decode()}}
        if kind == "multipart":
            m = re.search(r'boundary="?([^";]+)"?', ctype)
            if not m:
                raise ApiError(400, "Missing multipart boundary", reason=("global", "badRequest"))
            pieces = []
            for chunk in raw_body.split(b"--" + m.group(1).encode())[1:]:
                if chunk.startswith(b"--"):
                    break
                _head, _, content = chunk.partition(b"\r\n\r\n")
                pieces.append(content[:-2] if content.endswith(b"\r\n") else content)
            if len(pieces) != 2:
                raise ApiError(400, "A multipart upload needs metadata and media", reason=("global", "badRequest"))
            meta = json.loads(pieces[0] or b"{}")
            media = pieces[1]
            encoded = base64.urlsafe_b64encode(media).decode()
            if "message" in meta or not meta or "id" in meta:
                message = dict(meta.get("message") or {})
                message["raw"] = encoded
                meta["message"] = message
            meta["raw"] = encoded
            return dict(meta)
        raise ApiError(400, f"Unsupported upload type: {kind}", reason=("global", "badRequest"))

    @staticmethod
    def _draft_ref(draft: _Draft, *, labels: bool) -> dict[str, Any]:
        msg: dict[str, Any] = {"id": draft.message_id, "threadId": draft.thread_id}
        if labels:
            msg["labelIds"] = ["DRAFT"]
        return {"id": draft.draft_id, "message": msg}

    def _list_drafts(self, q: dict[str, str]) -> dict[str, Any]:
        ordered = sorted(self._drafts.values(), key=lambda d: d.seq, reverse=True)
        search = q.get("q", "").strip()
        if search:
            cutoff = self._creates - self._search_lag
            ordered = [d for d in ordered if d.seq <= cutoff and _matches(d.raw, search)]
        try:
            max_results = min(int(q.get("maxResults") or 100), 500)
            start = int(q.get("pageToken") or 0)
        except ValueError:
            raise ApiError(400, "Invalid pageToken", reason=("global", "invalidArgument")) from None
        page = ordered[start : start + max_results]
        out: dict[str, Any] = {}
        if page:
            out["drafts"] = [self._draft_ref(d, labels=False) for d in page]
        if start + max_results < len(ordered):
            out["nextPageToken"] = str(start + max_results)
        out["resultSizeEstimate"] = len(ordered)
        return out

    def _draft_full(self, draft: _Draft, fmt: str, metadata_headers: list[str] | None) -> dict[str, Any]:
        msg = email.message_from_bytes(draft.raw, policy=email.policy.compat32)
        base: dict[str, Any] = {
            "id": draft.message_id,
            "threadId": draft.thread_id,
            "labelIds": ["DRAFT"],
            "snippet": _snippet(msg),
            "sizeEstimate": len(draft.raw),
            "historyId": str(1000 + draft.seq),
            "internalDate": str(draft.internal_date),
        }
        if fmt == "raw":
            base["raw"] = base64.urlsafe_b64encode(draft.raw).decode()
        elif fmt == "metadata":
            wanted = {h.lower() for h in metadata_headers or []}
            headers = [
                {"name": k, "value": str(v)}
                for k, v in msg.items()
                if not wanted or k.lower() in wanted
            ]
            base["payload"] = {"mimeType": msg.get_content_type(), "headers": headers}
        elif fmt == "minimal":
            pass
        elif fmt == "full":
            base["payload"] = _payload(msg, "")
        else:
            raise ApiError(400, f"Invalid value at 'format' ({fmt})", reason=("global", "invalidArgument"))
        return {"id": draft.draft_id, "message": base}


def _sort_key(cell: Cell | None) -> tuple[int, Any]:
    """Numbers before text, as Sheets sorts ascending."""
    assert cell is not None
    v = cell.value
    if isinstance(v, bool):
        return (2, v)
    if isinstance(v, int | float):
        return (0, v)
    return (1, str(v).lower())


class _BadRequest(Exception):
    """A spreadsheets.batchUpdate request refused: becomes 400 "Invalid requests[i].kind: ..."."""


def _drop_zero_sheet_ids(obj: Any) -> Any:
    """In a GridRange, sheetId 0 is the protobuf default and Google leaves it out."""
    if isinstance(obj, dict):
        return {k: _drop_zero_sheet_ids(v) for k, v in obj.items() if not (k == "sheetId" and v == 0)}
    if isinstance(obj, list):
        return [_drop_zero_sheet_ids(x) for x in obj]
    return obj


def _public(resp: dict[str, Any]) -> dict[str, Any]:
    """Drop the fake's private bookkeeping keys from a write response."""
    return {k: v for k, v in resp.items() if not k.startswith("_")}


def _clean(obj: Any) -> Any:
    """Protobuf JSON drops unset fields: nulls, empty lists, false, and empty messages."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            v = _clean(v)
            if v is None or v is False or v == [] or (v == {} and k not in ("editors",)):
                continue
            if k in ("red", "green", "blue", "alpha") and isinstance(v, int | float):
                v = _color(v)
                if v == 0:
                    continue
            out[k] = v
        return out
    if isinstance(obj, list):
        return [_clean(x) for x in obj]
    return obj


def _color(c: float) -> float | int:
    """Google keeps colour channels as 8-bit values shown as float32: 0.5 -> 0.49803922."""
    level = int(max(0.0, min(1.0, float(c))) * 255)
    if level in (0, 255):
        return level // 255
    return float(f"{level / 255:.8g}")


def _truthy(value: object) -> bool:
    return str(value).lower() in ("true", "1")


def _api_of(raw_path: str) -> str:
    if raw_path.startswith("/v4/spreadsheets"):
        return "sheets"
    if raw_path.startswith(("/gmail/", "/upload/gmail/")):
        return "gmail"
    if raw_path.rstrip("/") == "/token":
        return "token"
    return "other"


def _b64decode(text: str) -> bytes:
    text = text.strip()
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _jwt_claims(token: str) -> dict[str, Any] | None:
    """The claims of a JWT (signature not checked: the fake trusts whoever holds a key file)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(_b64decode(parts[1]))
    except ValueError:
        return None
    return claims if isinstance(claims, dict) else None


def _matches(raw: bytes, search: str) -> bool:
    """Gmail search, the parts the bridge uses: rfc822msgid:, subject:, to:, from:, free words."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    # Free words match what Gmail indexes: the addresses, the subject and the text, not custom
    # headers (there is no operator for X-Sheets-Bridge-Key; a search for it finds nothing).
    text = " ".join(
        [*(str(msg.get(h, "")) for h in ("Subject", "From", "To", "Cc")), _body_text(msg)]
    ).lower()
    for term in re.findall(r'(?:[^\s"]+:)?"[^"]*"|\S+', search):
        key, sep, value = term.partition(":")
        value = value.strip('"')
        if sep and key.lower() == "rfc822msgid":
            have = str(msg.get("Message-ID", "")).strip().strip("<>")
            if have != value.strip("<>"):
                return False
        elif sep and key.lower() in ("subject", "to", "from", "cc"):
            if value.lower() not in str(msg.get(key, "")).lower():
                return False
        elif sep and key.lower() == "in" and value.lower() in ("drafts", "draft"):
            continue
        elif term.strip('"').lower() not in text:
            return False
    return True


def _body_text(msg: Message) -> str:
    parts = []
    for part in msg.walk():
        if part.get_content_maintype() == "text":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                parts.append(payload.decode(part.get_content_charset() or "utf-8", "replace"))
    return " ".join(parts)


def _snippet(msg: Message) -> str:
    for part in msg.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return " ".join(payload.decode("utf-8", "replace").split())[:200]
    return ""


def _payload(msg: Message, part_id: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "partId": part_id,
        "mimeType": msg.get_content_type(),
        "filename": msg.get_filename() or "",
        "headers": [{"name": k, "value": str(v)} for k, v in msg.items()],
    }
    if msg.is_multipart():
        parts = msg.get_payload()
        assert isinstance(parts, list)
        out["body"] = {"size": 0}
        out["parts"] = [_payload(p, str(i) if not part_id else f"{part_id}.{i}") for i, p in enumerate(parts)]
    else:
        data = msg.get_payload(decode=True)
        data = data if isinstance(data, bytes) else b""
        out["body"] = {"size": len(data), "data": base64.urlsafe_b64encode(data).decode()}
    return out


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive, as Google's front end speaks it; every method goes to the fake."""

    fake: FakeGoogle
    protocol_version = "HTTP/1.1"
    server_version = "ESF"
    sys_version = ""

    def log_message(self, format: str, *args: object) -> None:
        return  # quiet: the fake's request log is the record

    def _dispatch(self) -> None:
        try:
            status, headers, body = self.fake._handle(self)
        except _LoseResponse:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        except Exception as exc:  # noqa: BLE001 - a bug in the fake: answer 500 and say so
            status, headers = 500, {"Content-Type": "text/plain"}
            body = f"fake google crashed: {type(exc).__name__}: {exc}".encode()
        try:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch


# --------------------------------------------------------------------------------------------
# Credential files for the tests
# --------------------------------------------------------------------------------------------

_KEY_PEM: str | None = None
_KEY_LOCK = threading.Lock()


def _private_key_pem() -> str:
    global _KEY_PEM
    with _KEY_LOCK:
        if _KEY_PEM is None:
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric import rsa

            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            _KEY_PEM = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode()
        return _KEY_PEM


def write_service_account_key(
    path: str | Path,
    *,
    email: str = "bridge@practice-test.iam.gserviceaccount.com",
    token_uri: str = "https://oauth2.googleapis.com/token",
) -> str:
    """A service-account key file as the Cloud console downloads it (a real RSA key); returns the email."""
    project = email.split("@", 1)[1].split(".", 1)[0] if "@" in email else "practice-test"
    info = {
        "type": "service_account",
        "project_id": project,
        "private_key_id": "0123456789abcdef0123456789abcdef01234567",
        "private_key": _private_key_pem(),
        "client_email": email,
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": f"https://www.googleapis.com/robot/v1/metadata/x509/{email}",
        "universe_domain": "googleapis.com",
    }
    Path(path).write_text(json.dumps(info, indent=2))
    return email


def write_authorized_user_token(
    path: str | Path,
    *,
    scopes: Iterable[str] = (
        "https://www.googleapis.com/auth/spreadsheets",
        "https://www.googleapis.com/auth/gmail.compose",
    ),
    refresh_token: str = "1//fake-refresh-token",
) -> None:
    """The JSON google-auth-oauthlib writes (`creds.to_json()`), with an access token already expired."""
    info = {
        "token": "ya29.expired-access-token",
        "refresh_token": refresh_token,
        "token_uri": "https://oauth2.googleapis.com/token",
        "client_id": "100000000001-fake.apps.googleusercontent.com",
        "client_secret": "GOCSPX-fake-client-secret",
        "scopes": list(scopes),
        "universe_domain": "googleapis.com",
        "account": "",
        "expiry": "2020-01-01T00:00:00Z",
    }
    Path(path).write_text(json.dumps(info))
