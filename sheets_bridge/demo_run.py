"""``sheets-bridge demo``: build a demo practice (config, workbook) and run it end to end.

The demo practice lives in one folder: ``config.yaml`` (``config.example.yaml`` with the demo
practice's details in place of its placeholders, see :func:`demo_config_text`),
``referrals.xlsx`` with six months of fictitious referrals, ``drafts/`` and ``state/``. Running
the demo again syncs the same workbook again (a second run is usually quiet); ``--fresh`` starts
over.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections import Counter
from pathlib import Path

from sheets_bridge.config import load_config

EXAMPLE = Path(__file__).resolve().parents[1] / "config.example.yaml"

#: The made-up practice's details, in place of the example config's placeholders.
DEMO_PRACTICE: dict[str, str] = {
    "name": "Riverside Physical Therapy",
    "owner_email": "owner@riverside-pt.example.com",
    "signature": '"The Riverside PT front desk"',
    "designated_contact": '"Maria at the front desk"',
    "phone": '"(212) 555-0100"',
    "address": '"12 River Street, Springfield"',
}


def demo_config_text(example: str) -> str:
    """``config.example.yaml`` as the demo practice's own config: every key and comment kept,
    the practice's placeholders replaced (so ``check`` has nothing to flag on the demo)."""
    lines = example.splitlines(keepends=True)
    in_practice = False
    out = []
    for line in lines:
        if line.strip() and not line.startswith((" ", "#")):
            in_practice = line.startswith("practice:")
        key = line.strip().split(":", 1)[0]
        if in_practice and line.startswith("  ") and not line.startswith("   ") and key in DEMO_PRACTICE:
            line = f"  {key}: {DEMO_PRACTICE[key]}\n"
        out.append(line)
    text = "".join(out)
    header_end = text.index("practice:")
    return (
        "# The demo practice's config, written by `sheets-bridge demo` (a made-up practice).\n"
        "# Relative paths resolve against this file's folder.\n\n" + text[header_end:]
    )


def run_demo(folder: Path, *, now: str | None = None, fresh: bool = False) -> int:
    """Create the demo practice if needed, run one sync, print what happened and where."""
    from sheets_bridge.clock import parse_now
    from sheets_bridge.demo import demo_rows, write_demo_workbook
    from sheets_bridge.digest_run import write_preview
    from sheets_bridge.draft_keys import DraftKey
    from sheets_bridge.email_kinds import KIND_LABELS
    from sheets_bridge.report import report_lines
    from sheets_bridge.runner import run_sync

    folder = folder.resolve()
    if fresh and folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / "config.yaml"
    if not config_path.exists():
        config_path.write_text(demo_config_text(EXAMPLE.read_text(encoding="utf-8")), encoding="utf-8")
    config = load_config(config_path)
    moment = parse_now(now, config.tz)
    workbook = config.sheet.path  # type: ignore[union-attr]
    created = False
    if not workbook.exists():
        write_demo_workbook(workbook, demo_rows(moment.replace(tzinfo=None).replace(tzinfo=config.tz)))
        created = True
    out: list[str] = []
    say = out.append
    say(f"Demo practice: {config.practice.name}")
    say(f"Workbook {'created' if created else 'reused'}: {workbook}")
    report = run_sync(config, now=moment)
    out.extend(report_lines(report, config, dry_run=False))
    drafts_dir = getattr(config.mail, "path", None)
    if drafts_dir is not None and report.drafts_made:
        parsed = (DraftKey.parse(key) for key in report.drafts_made)
        kinds = Counter(key.kind for key in parsed if key is not None)
        for kind, count in sorted(kinds.items()):
            say(f"  {count} x {KIND_LABELS.get(kind, kind)}")
        say(f"  e.g. {drafts_dir / (report.drafts_made[0] + '.eml')}")
    preview = write_preview(config, moment, folder / "digest-preview.html")
    say(f"Weekly digest preview (open in a browser): {preview}")
    say("")
    say("Where things are:")
    say(f"  workbook (open it in Excel or LibreOffice): {workbook}")
    say(f"  email drafts: {getattr(config.mail, 'path', '')}")
    say(f"  state (IDs, journal, audit): {config.state_dir}")
    say(f"  config: {config_path}")
    say(f"Run it again: {_command()} sync --config {config_path}")
    here = _relative_prefix(folder)
    for line in out:
        print(line.replace(str(folder) + os.sep, here) if here else line)
    return 0


def _relative_prefix(folder: Path) -> str:
    """``demo-practice/`` when the demo folder is under the current one: paths print as a
    person typed them (and as the README shows them), not as absolute paths."""
    try:
        rel = folder.relative_to(Path.cwd().resolve())
    except ValueError:
        return ""
    return str(rel) + os.sep if str(rel) != "." else ""


def _command() -> str:
    """How to run the bridge again from here: ``sheets-bridge`` when it is on the PATH, else
    the virtualenv's own script (``.venv/bin/sheets-bridge`` after ``make demo``)."""
    script = Path(sys.executable).with_name("sheets-bridge")
    found = shutil.which("sheets-bridge")
    if found is not None and Path(found).resolve() == script.resolve():
        return "sheets-bridge"
    if not script.exists():
        return "sheets-bridge"
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)
