"""Replay recorded Google Sheets exchanges (vcrpy cassettes from gspread's own suite) against the fake.

Each cassette starts from a spreadsheet that Drive just created (one empty `Sheet1`, 1000 x 26),
so the fake starts from the same state and the recorded Sheets requests, replayed in order,
must get the same status and the same JSON shape: the same keys, the same value types, and the
same values wherever Google's answer is determined by the state (ranges as clipped and quoted,
values, counts, error status). Only values Google picks at random (new sheet and protected range
ids) or that depend on the account (time zone) are compared by type alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from .google_server import FakeGoogle

SHEETS = "https://sheets.googleapis.com"
DRIVE_FILES = "https://www.googleapis.com/drive/v3/files"
VOLATILE = {"sheetId", "protectedRangeId", "timeZone"}
ID_KEYS = {"sheetId", "protectedRangeId"}


@dataclass
class Mismatch:
    cassette: str
    index: int
    request: str
    problem: str


def shape_diff(want: Any, got: Any, path: str = "$") -> list[str]:
    """Differences between a recorded JSON body and the fake's, as readable paths."""
    key = path.rsplit(".", 1)[-1]
    if key in VOLATILE:
        return [] if type(want) is type(got) else [f"{path}: type {type(want).__name__} != {type(got).__name__}"]
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [f"{path}: expected an object, got {type(got).__name__}"]
        out = []
        for k in sorted(set(want) | set(got)):
            if k not in got:
                out.append(f"{path}.{k}: missing")
            elif k not in want:
                out.append(f"{path}.{k}: unexpected")
            else:
                out.extend(shape_diff(want[k], got[k], f"{path}.{k}"))
        return out
    if isinstance(want, list):
        if not isinstance(got, list):
            return [f"{path}: expected a list, got {type(got).__name__}"]
        if len(want) != len(got):
            return [f"{path}: {len(want)} items != {len(got)}: {json.dumps(want)[:200]} vs {json.dumps(got)[:200]}"]
        out = []
        for i, (w, g) in enumerate(zip(want, got, strict=True)):
            out.extend(shape_diff(w, g, f"{path}[{i}]"))
        return out
    if want != got or type(want) is not type(got):
        return [f"{path}: {want!r} != {got!r}"]
    return []


def _remap(obj: Any, ids: dict[int, int]) -> Any:
    if isinstance(obj, dict):
        return {
            k: (ids.get(v, v) if k in ID_KEYS and isinstance(v, int) else _remap(v, ids))
            for k, v in obj.items()
        }
    if isinstance(obj, list):
        return [_remap(x, ids) for x in obj]
    return obj


def _collect_ids(want: Any, got: Any, ids: dict[int, int]) -> None:
    """Learn recorded sheetId -> fake sheetId from two answers of the same request."""
    if isinstance(want, dict) and isinstance(got, dict):
        for k in want:
            if k in got:
                if k in ID_KEYS and isinstance(want[k], int) and isinstance(got[k], int):
                    ids[want[k]] = got[k]
                else:
                    _collect_ids(want[k], got[k], ids)
    elif isinstance(want, list) and isinstance(got, list):
        for w, g in zip(want, got, strict=False):
            _collect_ids(w, g, ids)


RECORDED_CALLER = "telegram-budgeter@telegram-budgeter.iam.gserviceaccount.com"


def replay(
    fake: FakeGoogle, cassette: Path, *, private_ids: frozenset[str] = frozenset()
) -> tuple[int, list[Mismatch]]:
    """Replay one cassette's Sheets requests; returns (requests replayed, mismatches).

    `private_ids` are spreadsheets the recording's caller could not open (a 403 in the
    recording): the fake holds them shared with someone else.
    """
    data = json.loads(cassette.read_text())
    fake.register_token("replay", identity=RECORDED_CALLER)
    ids: dict[int, int] = {}
    replayed = 0
    problems: list[Mismatch] = []
    session = requests.Session()
    session.trust_env = False
    for i, it in enumerate(data["interactions"]):
        req, resp = it["request"], it["response"]
        uri: str = req["uri"]
        if uri.startswith(DRIVE_FILES) and req["method"] == "POST" and resp["status"]["code"] == 200:
            created = json.loads(resp["body"]["string"])
            body = json.loads(req["body"] or "{}")
            if body.get("mimeType") == "application/vnd.google-apps.spreadsheet":
                fake.add_spreadsheet(created["id"], {"Sheet1": []}, title=created["name"])
            continue
        if uri.startswith(DRIVE_FILES + "/") and req["method"] == "DELETE":
            fake.spreadsheets.pop(uri[len(DRIVE_FILES) + 1 :].split("?")[0], None)
            continue
        if not uri.startswith(SHEETS):
            continue
        sid = uri[len(SHEETS + "/v4/spreadsheets/") :].split("/")[0].split(":")[0].split("?")[0]
        if sid in private_ids and sid not in fake.spreadsheets:
            fake.add_spreadsheet(sid, {"Sheet1": []}, shared_with={"someone-else@example.com"})
        payload = json.loads(req["body"]) if req["body"] else None
        if payload is not None:
            payload = _remap(payload, ids)
        r = session.request(
            req["method"],
            fake.endpoint + uri[len(SHEETS) :],
            json=payload,
            headers={"Authorization": "Bearer replay"},
            timeout=10,
        )
        replayed += 1
        line = f"{req['method']} {uri[len(SHEETS):][:120]}"
        want_status = resp["status"]["code"]
        if r.status_code != want_status:
            problems.append(Mismatch(cassette.name, i, line, f"status {want_status} != {r.status_code}: {r.text[:300]}"))
            continue
        text = resp["body"]["string"]
        if not text:
            continue
        want = json.loads(text)
        got = r.json()
        _collect_ids(want, got, ids)
        for d in shape_diff(want, got):
            problems.append(Mismatch(cassette.name, i, line, d))
    return replayed, problems
