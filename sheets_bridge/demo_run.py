"""``sheets-bridge demo``: build a demo practice (config, workbook) and run it end to end.

The demo practice lives in one folder: ``config.yaml`` (a copy of ``config.example.yaml``),
``referrals.xlsx`` with six months of fictitious referrals, ``drafts/`` and ``state/``. Running
the demo again syncs the same workbook again (a second run is usually quiet); ``--fresh`` starts
over.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

from sheets_bridge.config import load_config

EXAMPLE = Path(__file__).resolve().parents[1] / "config.example.yaml"


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
        shutil.copyfile(EXAMPLE, config_path)
    config = load_config(config_path)
    moment = parse_now(now, config.tz)
    workbook = config.sheet.path  # type: ignore[union-attr]
    created = False
    if not workbook.exists():
        write_demo_workbook(workbook, demo_rows(moment.replace(tzinfo=None).replace(tzinfo=config.tz)))
        created = True
    print(f"Demo practice: {config.practice.name}")
    print(f"Workbook {'created' if created else 'reused'}: {workbook}")
    report = run_sync(config, now=moment)
    for line in report_lines(report, config, dry_run=False):
        print(line)
    drafts_dir = getattr(config.mail, "path", None)
    if drafts_dir is not None and report.drafts_made:
        parsed = (DraftKey.parse(key) for key in report.drafts_made)
        kinds = Counter(key.kind for key in parsed if key is not None)
        for kind, count in sorted(kinds.items()):
            print(f"  {count} x {KIND_LABELS.get(kind, kind)}")
        print(f"  e.g. {drafts_dir / (report.drafts_made[0] + '.eml')}")
    preview = write_preview(config, moment, folder / "digest-preview.html")
    print(f"Weekly digest preview (open in a browser): {preview}")
    print()
    print("Where things are:")
    print(f"  workbook (open it in Excel or LibreOffice): {workbook}")
    print(f"  email drafts: {getattr(config.mail, 'path', '')}")
    print(f"  state (IDs, journal, audit): {config.state_dir}")
    print(f"  config: {config_path}")
    print(f"Run it again: sheets-bridge sync --config {config_path}")
    return 0
