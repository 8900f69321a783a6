"""Harness K (RELIABILITY.md R8, F1, F2, F17): kill a sync at every journalled step, restart, compare.

The isync way: a reference run goes through uninterrupted and records every step it passes
(the cycle's and the drafts journal's hook calls, plus the point inside the workbook save after
the new file is fsynced and before ``os.replace``). Then, for every step n, a fresh copy of the
same practice runs in a child process that dies by ``os._exit(100)`` at step n, is restarted, and
must end exactly where the reference ended: the same bridge cells per Referral ID, the same
summary tabs, exactly one ``.eml`` per key, every ledger key confirmed, no temp files left; and one
more run after that must change nothing.

``now`` is fixed, so even the Bridge Updated and Emails timestamps must match the reference.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from crash_child import KILLED, EndState, copy_practice, end_state, make_practice, read_drafts

from sheets_bridge.config import load_config
from sheets_bridge.demo import demo_rows
from sheets_bridge.runner import run_sync

NY = ZoneInfo("America/New_York")
#: Tuesday 4 March 2025, 10:00: the demo rows around it make drafts of four kinds.
NOW = datetime(2025, 3, 4, 10, 0, tzinfo=NY)
CHILD = Path(__file__).with_name("crash_child.py")
CHILD_TIMEOUT = 60


def run_child(
    config: Path, kill_at: int = 0, mode: str = "sync", now: datetime = NOW
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHILD), str(config), now.isoformat(), str(kill_at), mode],
        cwd=config.parent,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        check=False,
    )


@dataclass(frozen=True)
class Reference:
    folder: Path
    steps: list[str]
    drafts_made: list[str]
    state: EndState


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("harness") / "template"
    make_practice(folder, demo_rows(NOW, seed=3, count=60))
    return folder


@pytest.fixture(scope="module")
def reference(template: Path) -> Reference:
    config = copy_practice(template, template.parent / "reference")
    done = run_child(config)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return Reference(config.parent, out["steps"], out["drafts"], end_state(config.parent))


def test_the_reference_run_drafts_several_kinds_and_passes_every_kind_of_step(
    reference: Reference,
) -> None:
    kinds = {key.split(".")[1] for key in reference.drafts_made}
    assert len(reference.drafts_made) >= 5
    assert len(kinds) >= 3, kinds
    for step in (
        "read",
        "ids",
        "draft-pending",
        "draft-created",
        "draft-confirmed",
        "drafts",
        "journal",
        "before-replace",
        "apply",
        "commit",
    ):
        assert step in reference.steps
    state = reference.state
    assert sorted(state.drafts.values()) == sorted(reference.drafts_made)
    assert {name.removesuffix(".eml") for name in state.drafts} == set(reference.drafts_made)
    assert state.ledger == dict.fromkeys(sorted(reference.drafts_made), "confirmed")
    assert state.leftovers == []
    assert state.bridge and state.rows_without_id == 0


def test_the_reference_run_is_followed_by_a_quiet_one(reference: Reference) -> None:
    _assert_next_run_changes_nothing(reference.folder)


@pytest.mark.slow
def test_a_kill_at_every_step_then_a_restart_ends_where_the_uninterrupted_run_ended(
    template: Path, reference: Reference
) -> None:
    steps = reference.steps
    original = (template / "referrals.xlsx").read_bytes()

    def crash(n: int) -> tuple[int, list[str]]:
        config = copy_practice(template, template.parent / f"kill-{n:02d}")
        killed = run_child(config, kill_at=n)
        if killed.returncode != KILLED:
            return n, [f"the child was not killed (exit {killed.returncode}): {killed.stderr}"]
        workbook = config.parent / "referrals.xlsx"
        if "apply" not in steps[:n] and workbook.read_bytes() != original:
            return n, ["the workbook changed before its save was complete (F17)"]
        return n, []

    # The kills run in child processes, a few at a time; each restart and the run after it run
    # here, one practice at a time (a fresh process buys nothing once the killed one is gone).
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(pool.map(crash, range(1, len(steps) + 1)))

    failures: list[str] = []
    for n in range(1, len(steps) + 1):
        folder = template.parent / f"kill-{n:02d}"
        problems = list(results[n])
        if not problems:
            try:
                run_sync(load_config(folder / "config.yaml"), now=NOW)
            except Exception as error:  # noqa: BLE001 - reported with the step it follows
                problems.append(f"the restart failed: {type(error).__name__}: {error}")
        if not problems:
            problems = _differences(end_state(folder), reference.state)
        if not problems:
            problems = _next_run_problems(folder)
        failures.extend(f"killed at step {n} ({steps[n - 1]}): {p}" for p in problems)
    assert not failures, "\n".join(failures)


#: Monday 3 March 2025, 09:00: the digest of the week before is due.
DIGEST_NOW = datetime(2025, 3, 3, 9, 0, tzinfo=NY)


def test_a_kill_at_every_step_of_the_digest_leaves_exactly_one_digest(template: Path) -> None:
    """The digest goes through the same outbox: killed at any step, restarted, it exists once."""
    from sheets_bridge.digest_run import make_digest

    reference = copy_practice(template, template.parent / "digest-reference")
    done = run_child(reference, mode="digest", now=DIGEST_NOW)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["outcome"] == "drafted"
    steps, key = out["steps"], out["drafts"][0]
    assert {"draft-pending", "draft-created", "draft-confirmed"} <= set(steps)

    failures: list[str] = []
    for n in range(1, len(steps) + 1):
        config = copy_practice(template, template.parent / f"digest-kill-{n:02d}")
        killed = run_child(config, kill_at=n, mode="digest", now=DIGEST_NOW)
        if killed.returncode != KILLED:
            failures.append(f"step {n}: the child was not killed: {killed.stderr}")
            continue
        settings = load_config(config)
        first = make_digest(settings, DIGEST_NOW)
        again = make_digest(settings, DIGEST_NOW)
        drafts = read_drafts(config.parent / "drafts")
        copies = [name for name, k in drafts.items() if k == key]
        state = end_state(config.parent)
        if copies != [f"{key}.eml"]:
            failures.append(f"killed at {steps[n - 1]}: digest drafts {copies}")
        if state.ledger.get(key) != "confirmed":
            failures.append(f"killed at {steps[n - 1]}: ledger says {state.ledger.get(key)}")
        if first.status not in ("drafted", "exists") or again.status != "exists":
            failures.append(f"killed at {steps[n - 1]}: then {first.status}, {again.status}")
    assert not failures, "\n".join(failures)


# -- comparing ---------------------------------------------------------------------------------
def _differences(got: EndState, want: EndState) -> list[str]:
    problems: list[str] = []
    if got.bridge != want.bridge:
        ids = sorted(set(got.bridge) | set(want.bridge))
        for rid in ids:
            a, b = got.bridge.get(rid), want.bridge.get(rid)
            if a != b:
                cols = sorted(
                    c for c in set(a or {}) | set(b or {}) if (a or {}).get(c) != (b or {}).get(c)
                )
                problems.append(
                    f"{rid}: bridge cells differ in {cols}: "
                    + "; ".join(f"{c}: {(a or {}).get(c)!r} != {(b or {}).get(c)!r}" for c in cols)
                )
    if got.rows_without_id != want.rows_without_id:
        problems.append(f"{got.rows_without_id} rows without a Referral ID")
    for title in want.tabs:
        if got.tabs.get(title) != want.tabs[title]:
            problems.append(f"the {title} tab differs")
    if got.drafts != want.drafts:
        problems.append(
            f"drafts differ: extra {sorted(set(got.drafts) - set(want.drafts))}, "
            f"missing {sorted(set(want.drafts) - set(got.drafts))}"
        )
    per_key = Counter(got.drafts.values())
    twice = sorted(k for k, n in per_key.items() if n > 1)
    if twice:
        problems.append(f"more than one draft for {twice}")
    if any(name != f"{key}.eml" for name, key in got.drafts.items()):
        problems.append("a draft's file name is not its key")
    if got.ledger != want.ledger:
        pending = sorted(k for k, s in got.ledger.items() if s != "confirmed")
        problems.append(
            f"ledger differs: pending {pending}, extra {sorted(set(got.ledger) - set(want.ledger))}"
            f", missing {sorted(set(want.ledger) - set(got.ledger))}"
        )
    if got.leftovers:
        problems.append(f"temp files left: {got.leftovers}")
    return problems


def _next_run_problems(folder: Path) -> list[str]:
    workbook = folder / "referrals.xlsx"
    before = workbook.read_bytes()
    drafts_before = read_drafts(folder / "drafts")
    report = run_sync(load_config(folder / "config.yaml"), now=NOW)
    problems = []
    if report.outcome != "quiet":
        problems.append(f"the next run was {report.outcome}, not quiet: {report.summary}")
    if workbook.read_bytes() != before:
        problems.append("the next run rewrote the workbook")
    if report.drafts_made or read_drafts(folder / "drafts") != drafts_before:
        problems.append(f"the next run drafted {report.drafts_made}")
    return problems


def _assert_next_run_changes_nothing(folder: Path) -> None:
    problems = _next_run_problems(folder)
    assert not problems, problems
