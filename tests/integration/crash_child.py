"""Child process for the kill-at-every-step harness (RELIABILITY.md harness K, R8).

    python crash_child.py CONFIG NOW [KILL_AT] [sync|digest]

Runs one ``run_sync`` (or, with ``digest``, one ``make_digest``) at the fixed aware time ``NOW``
(ISO 8601). Every journalled step the
cycle reports through its test hook counts, and so does the point inside the workbook save just
before ``os.replace`` ("before-replace"). With ``KILL_AT`` = n > 0 the process dies by
``os._exit(100)`` at the n-th step: no cleanup, no ``finally``, no flush, as a power cut or a
``kill -9`` would leave it. Without it (or 0) the run completes and one JSON line goes to stdout:
the step names in order, the outcome and the drafts made.

The tests import the helpers below (a practice in a folder, its end state) from here, so the
harness and the end-to-end tests read the workbook, drafts and ledger the same way.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import sys
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes, policy
from pathlib import Path

KILLED = 100
HERE = Path(__file__).resolve()
EXAMPLE_CONFIG = HERE.parents[2] / "config.example.yaml"


def main(argv: list[str]) -> int:
    config_path, now_text = argv[0], argv[1]
    kill_at = int(argv[2]) if len(argv) > 2 else 0
    mode = argv[3] if len(argv) > 3 else "sync"

    from sheets_bridge.config import load_config
    from sheets_bridge.runner import run_sync

    now = datetime.fromisoformat(now_text)
    if now.tzinfo is None:
        raise SystemExit("NOW must carry a UTC offset")
    steps: list[str] = []

    def hook(name: str) -> None:
        steps.append(name)
        if len(steps) == kill_at:
            os._exit(KILLED)

    config = load_config(Path(config_path))
    if mode == "digest":
        from sheets_bridge.digest_run import make_digest

        outcome = make_digest(config, now, hook=hook)
        print(json.dumps({"steps": steps, "outcome": outcome.status, "drafts": [outcome.key]}))
        return 0
    report = run_sync(config, now=now, hook=hook)
    print(json.dumps({"steps": steps, "outcome": report.outcome, "drafts": report.drafts_made}))
    return 0


# -- helpers the tests share ----------------------------------------------------------------
def make_practice(folder: Path, rows: list[dict[str, object]]) -> Path:
    """config.example.yaml (relative paths: workbook, drafts, state in ``folder``) + a workbook."""
    from sheets_bridge.demo import write_demo_workbook

    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "config.yaml"
    shutil.copyfile(EXAMPLE_CONFIG, config)
    write_demo_workbook(folder / "referrals.xlsx", rows)
    return config


def copy_practice(template: Path, folder: Path) -> Path:
    shutil.copytree(template, folder)
    return folder / "config.yaml"


@dataclass(frozen=True)
class EndState:
    """What a run leaves behind that a user can see: sheet, drafts, and the drafts ledger."""

    bridge: dict[str, dict[str, object]]  # Referral ID -> bridge column -> value
    rows_without_id: int
    tabs: dict[str, list[tuple[object, ...]]]  # Dashboard, Referrers: every value
    drafts: dict[str, str]  # .eml file name -> its X-Sheets-Bridge-Key header
    ledger: dict[str, str]  # draft key -> status
    leftovers: list[str]  # temp files of an interrupted save, anywhere in the practice


def read_bridge_cells(workbook: Path) -> tuple[dict[str, dict[str, object]], int]:
    from openpyxl import load_workbook

    from sheets_bridge.model import BRIDGE_COLUMNS

    wb = load_workbook(workbook, read_only=True)
    try:
        ws = wb["Referrals"]
        rows = [tuple(c.value for c in row) for row in ws.iter_rows()]
    finally:
        wb.close()
    headers = [str(h) if h is not None else "" for h in rows[0]]
    where = {name: headers.index(name) for name in BRIDGE_COLUMNS if name in headers}
    by_id: dict[str, dict[str, object]] = {}
    without = 0
    for row in rows[1:]:
        padded = list(row) + [None] * (len(headers) - len(row))
        cells = {name: padded[i] for name, i in where.items()}
        rid = cells.get("Referral ID")
        if not rid:
            if any(v not in (None, "") for v in padded):
                without += 1
            continue
        assert rid not in by_id, f"Referral ID {rid} appears twice"
        by_id[str(rid)] = cells
    return by_id, without


def read_tabs(workbook: Path, titles: tuple[str, ...]) -> dict[str, list[tuple[object, ...]]]:
    from openpyxl import load_workbook

    wb = load_workbook(workbook, read_only=True)
    try:
        return {
            t: [tuple(c.value for c in row) for row in wb[t].iter_rows()]
            for t in titles
            if t in wb.sheetnames
        }
    finally:
        wb.close()


def read_drafts(folder: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob("*.eml")):
        msg = message_from_bytes(path.read_bytes(), policy=policy.default)
        out[path.name] = str(msg["X-Sheets-Bridge-Key"])
    return out


def read_ledger(state_dir: Path) -> dict[str, str]:
    path = state_dir / "state.sqlite"
    if not path.exists():
        return {}
    db = sqlite3.connect(path)
    try:
        return dict(db.execute("SELECT key, status FROM drafts ORDER BY key").fetchall())
    finally:
        db.close()


def end_state(folder: Path) -> EndState:
    workbook = folder / "referrals.xlsx"
    bridge, without = read_bridge_cells(workbook)
    leftovers = sorted(
        str(p.relative_to(folder)) for p in folder.rglob("*.tmp") if "sheets-bridge" in p.name
    )
    return EndState(
        bridge=bridge,
        rows_without_id=without,
        tabs=read_tabs(workbook, ("Dashboard", "Referrers")),
        drafts=read_drafts(folder / "drafts"),
        ledger=read_ledger(folder / "state"),
        leftovers=leftovers,
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
