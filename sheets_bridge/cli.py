"""The ``sheets-bridge`` command: a thin layer of subcommands over the library.

Exit codes: 0 it ran (even if rows have problems), 1 it failed, 2 the config is wrong,
3 a safety stop. Everything printed names Referral IDs and columns, never patient data.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from sheets_bridge.clock import parse_now
from sheets_bridge.config import BridgeConfig, load_config
from sheets_bridge.errors import (
    BridgeError,
    ConfigError,
    SafetyStopError,
    StateLockedError,
    WorkbookBusyError,
    explain_environment,
)

log = logging.getLogger("sheets_bridge")

#: A manual ``sync`` waits this long for the daemon's cycle under way to finish.
SYNC_LOCK_WAIT = 60.0


def _config(args: argparse.Namespace) -> BridgeConfig:
    return load_config(Path(args.config))


# -- sync ------------------------------------------------------------------------------------
def cmd_sync(args: argparse.Namespace) -> int:
    from sheets_bridge.report import report_lines
    from sheets_bridge.runner import run_sync

    config = _config(args)
    now = parse_now(args.now, config.tz)

    def waiting(holder: str) -> None:
        print(f"Another sheets-bridge (pid {holder}; the daemon, if one runs) is mid-cycle: "
              f"waiting up to {SYNC_LOCK_WAIT:.0f} s for it to finish...", file=sys.stderr)

    report = run_sync(config, now=now, dry_run=args.dry_run, force=args.force,
                      wait=SYNC_LOCK_WAIT, on_wait=waiting)
    if args.json:
        result = report.result
        plan = result.plan if result else None
        print(
            json.dumps(
                {
                    "outcome": report.outcome,
                    "rows_read": report.rows_read,
                    "problems": [p.message for p in report.problems],
                    "header_writes": [asdict(h) for h in plan.header_writes] if plan else [],
                    "cell_writes": [
                        {"referral_id": w.row.target_id, "column": w.column, "row": w.row.number}
                        for w in plan.cell_writes
                    ]
                    if plan
                    else [],
                    "tabs": [t.title for t in plan.tab_contents] if plan else [],
                    "drafts": [d.key for d in plan.drafts] if plan else [],
                },
                indent=2,
            )
        )
    else:
        for line in report_lines(report, config, dry_run=args.dry_run):
            print(line)
    if report.outcome == "stopped":
        return SafetyStopError.exit_code
    return 0


# -- check -----------------------------------------------------------------------------------
def cmd_check(args: argparse.Namespace) -> int:
    from sheets_bridge.doctor import check

    try:
        config = _config(args)
    except ConfigError as error:
        _print_config_error(error)
        return ConfigError.exit_code
    findings = check(config)
    worst = 0
    for level, text in findings:
        mark = {"ok": "ok", "warn": "!!", "fail": "XX"}[level]
        print(f"[{mark}] {text}")
        worst = max(worst, {"ok": 0, "warn": 0, "fail": 1}[level])
    print("All good." if worst == 0 else "Fix the items marked XX, then run check again.")
    return worst


# -- init ------------------------------------------------------------------------------------
def cmd_init(args: argparse.Namespace) -> int:
    from sheets_bridge.sheets import open_sheet

    config = _config(args)
    sheet = open_sheet(config)
    done = sheet.setup(config.columns.aliases)
    print(f"{'Created' if done.created else 'Checked'} {sheet.describe()}:")
    for line in done.lines:
        print(f"  - {line}")
    return 0


# -- status ----------------------------------------------------------------------------------
def cmd_status(args: argparse.Namespace) -> int:
    from sheets_bridge.status import read_status, status_lines

    config = _config(args)
    data = read_status(config, parse_now(None, config.tz), limit=args.limit)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        if not (config.state_dir / "state.sqlite").exists():
            print(f"No runs yet (state folder {config.state_dir}). Run `sheets-bridge sync` "
                  "first.")
        for line in status_lines(data):
            print(line)
        from sheets_bridge.addon.refusals import refusal_lines

        for line in refusal_lines(config.state_dir):
            print(line)
    return 0 if data["healthy"] else 1


# -- demo ------------------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> int:
    from sheets_bridge.demo_run import run_demo

    return run_demo(Path(args.dir), now=args.now, fresh=args.fresh)


# -- digest ----------------------------------------------------------------------------------
def cmd_digest(args: argparse.Namespace) -> int:
    from sheets_bridge.digest_run import make_digest, write_preview

    config = _config(args)
    now = parse_now(args.now, config.tz)
    if args.preview:
        path = write_preview(config, now, Path(args.preview))
        print(f"Digest preview written to {path.resolve()} (nothing was drafted or sent)")
        return 0
    print(make_digest(config, now, wait=SYNC_LOCK_WAIT).message)
    return 0


# -- auth (Google sign-in) ---------------------------------------------------------------------
def cmd_auth(args: argparse.Namespace) -> int:
    from sheets_bridge.google.auth_flow import auth_scopes, run_auth

    config = _config(args)
    secrets = Path(args.client_secrets) if args.client_secrets else (
        Path(args.config).resolve().parent / "client_secret.json"
    )
    scopes = ", ".join(s.rsplit("/", 1)[-1] for s in auth_scopes(config))
    print(f"Opening Google's sign-in page (scopes: {scopes})...")
    path = run_auth(config, client_secrets=secrets, open_browser=not args.no_browser)
    print(f"Signed in. The token is in {path} (mode 0600); keep it private.")
    return 0


# -- run (the daemon) -------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    from sheets_bridge.daemon import run_daemon
    from sheets_bridge.logs import setup_daemon_logging

    config = _config(args)
    log_file = setup_daemon_logging(config.state_dir, "DEBUG" if args.debug else args.log_level)
    print(
        f"sheets-bridge running for {config.practice.name}: a sync every "
        f"{config.schedule.sync_minutes:g} minutes, the digest on {config.digest.weekday} at "
        f"{config.digest.hour}:00 ({config.practice.timezone}). Log: {log_file}. "
        "Stop with Ctrl-C or SIGTERM."
    )
    if config.addon.listen:
        print(f"The Sheets add-on's endpoints listen on {config.addon.listen} "
              f"(Google calls {config.addon.endpoint_url}).")
    return run_daemon(config, Path(args.config).resolve(), log_file=log_file)


# -- serve (the add-on alone) ----------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    from sheets_bridge.addon.server import serve

    config = _config(args)
    if not config.addon.listen:
        raise ConfigError(
            "The add-on is off",
            ["addon.listen: set it to host:port, like 127.0.0.1:8787 (see docs/addon.md)"],
        )
    logging.getLogger().setLevel(logging.DEBUG if args.debug else logging.INFO)
    print(f"sheets-bridge add-on for {config.practice.name} on {config.addon.listen} "
          f"(Google calls {config.addon.endpoint_url}). Stop with Ctrl-C.")
    return serve(config)


# -- plumbing --------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sheets-bridge",
        description="Keep a practice's referral sheet in order: IDs, stages, follow-ups, "
        "summaries and email drafts.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", required=True, help="path to the YAML config file")

    p = sub.add_parser("sync", help="run one sync cycle and exit")
    with_config(p)
    p.add_argument("--dry-run", action="store_true", help="print the plan; write nothing")
    p.add_argument("--json", action="store_true", help="print the plan as JSON (no patient data)")
    p.add_argument("--force", action="store_true", help="write even if a circuit breaker trips")
    p.add_argument("--now", help="pretend it is this ISO time (practice zone if none given)")
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser("check", help="say what is wrong with the config, the sheet and headers")
    with_config(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("init", help="create the workbook, or repair one that lacks tabs/headers")
    with_config(p)
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("status", help="is the bridge healthy: the daemon, recent runs, errors")
    with_config(p)
    p.add_argument("--limit", type=int, default=10, help="how many recent runs to show")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (keys in the README); exit 1 while failing")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("digest", help="make this week's digest for the owner (once a week)")
    with_config(p)
    p.add_argument("--preview", metavar="FILE", help="write the digest as HTML here; draft nothing")
    p.add_argument("--now", help="pretend it is this ISO time (practice zone if none given)")
    p.set_defaults(func=cmd_digest)

    p = sub.add_parser("auth", help="sign the practice's Google account in (Gmail drafts, Sheets)")
    with_config(p)
    p.add_argument("--client-secrets", metavar="FILE",
                   help="the OAuth client JSON (default: client_secret.json beside the config)")
    p.add_argument("--no-browser", action="store_true", help="print the sign-in link instead")
    p.set_defaults(func=cmd_auth)

    p = sub.add_parser("run", help="run as a daemon: sync on a schedule, the weekly digest")
    with_config(p)
    p.add_argument("--log-level", default="INFO", type=str.upper,
                   choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                   help="the least severe lines logged (default INFO: one line per cycle)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("serve", help="serve the Google Sheets add-on's endpoints alone (no schedule)")
    with_config(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("demo", help="build a demo practice and run it end to end")
    p.add_argument("--dir", default="demo-practice", help="folder for the demo practice")
    p.add_argument("--now", help="pretend it is this ISO time")
    p.add_argument("--fresh", action="store_true", help="start the demo over from scratch")
    p.set_defaults(func=cmd_demo)
    return parser


def _print_config_error(error: ConfigError) -> None:
    print(f"Config error: {error}", file=sys.stderr)
    for problem in error.problems:
        print(f"  - {problem}", file=sys.stderr)


def render_error(error: BaseException, *, debug: bool) -> int:
    """One branch per error type: what happened and what to do next, then the exit code."""
    if debug:
        log.exception("failed")
    if isinstance(error, ConfigError):
        _print_config_error(error)
        return error.exit_code
    if isinstance(error, WorkbookBusyError):
        print(f"Not written: {error}", file=sys.stderr)
        return 1
    if isinstance(error, StateLockedError):
        print(str(error), file=sys.stderr)
        return 1
    if isinstance(error, BridgeError):
        print(f"Could not run: {error}", file=sys.stderr)
        return error.exit_code
    if isinstance(error, KeyboardInterrupt):
        print("Interrupted.", file=sys.stderr)
        return 130
    explained = explain_environment(error)
    if explained is not None:
        print(f"Could not run: {explained}", file=sys.stderr)
        return 1
    # An unexpected error: its text may quote cell values, so only its type is printed.
    print(
        f"Could not run: unexpected {type(error).__name__}. Run again with --debug for details.",
        file=sys.stderr,
    )
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        result: int = args.func(args)
        return result
    except BaseException as error:
        if isinstance(error, SystemExit):
            raise
        return render_error(error, debug=args.debug)


__all__ = ["main"]
