"""``sheets-bridge check``: a doctor for the config, the workbook and its headers.

Each finding is (level, text) with level ``ok``, ``warn`` or ``fail``; a ``fail`` means a sync
would not run (or would stop), and the text says what to do.
"""

from __future__ import annotations

import os
import stat

from sheets_bridge.columns import column_letter, resolve_columns
from sheets_bridge.config import BridgeConfig
from sheets_bridge.errors import BridgeError
from sheets_bridge.model import BRIDGE_TABS
from sheets_bridge.settings import EmlMailConfig
from sheets_bridge.sheets import open_sheet

Finding = tuple[str, str]


def check(config: BridgeConfig) -> list[Finding]:
    findings: list[Finding] = [("ok", f"Config {config.config_path or ''} is valid")]
    findings.extend(_check_placeholders(config))
    findings.extend(_check_secrets(config))
    findings.extend(_check_sheet(config))
    findings.extend(_check_gmail(config))
    findings.extend(_check_folders(config))
    findings.extend(_check_drafting(config))
    return findings


#: The placeholders of config.example.yaml: a practice replaces them before emails go out.
PLACEHOLDER_EMAIL = "owner@example.com"
PLACEHOLDER_PREFIX = "Your "
_PRACTICE_TEXT_KEYS = ("name", "signature", "designated_contact", "phone", "address")


def _check_placeholders(config: BridgeConfig) -> list[Finding]:
    """The example config's placeholders still in place: each would show in drafts as is."""
    practice = config.practice
    left = [
        f"practice.{key}"
        for key in _PRACTICE_TEXT_KEYS
        if str(getattr(practice, key, "")).startswith(PLACEHOLDER_PREFIX)
    ]
    if practice.owner_email.strip().lower() == PLACEHOLDER_EMAIL:
        left.append("practice.owner_email")
    if not left:
        return []
    return [
        (
            "warn",
            "Still the example's placeholders: " + ", ".join(left) + ". Put in your practice's "
            "own in the config: drafts and the digest show these as they are.",
        )
    ]


def _check_drafting(config: BridgeConfig) -> list[Finding]:
    """Render and build one draft of each kind with the practice's own settings and made-up
    patient values: a setting that would make every draft fail (a name no mail header can
    carry, a template that breaks at render time) shows here, not as a warning per cycle."""
    from datetime import UTC, datetime

    from sheets_bridge.email_context import build_context, sample_referral
    from sheets_bridge.email_kinds import KIND_LABELS, KINDS, RECIPIENTS
    from sheets_bridge.email_templates import TemplateSet
    from sheets_bridge.messages import build_message
    from sheets_bridge.model import DraftRequest

    out: list[Finding] = []
    templates = TemplateSet.from_settings(config.drafts)
    practice = config.practice
    domain = practice.owner_email.rpartition("@")[2] or "sheets-bridge.invalid"
    sample = sample_referral()
    now = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)
    broken: list[str] = []
    for kind in KINDS:
        if not config.drafts.is_enabled(kind):
            continue
        try:
            context = build_context(kind, sample, practice, config.drafts)
            draft = DraftRequest(
                key=f"R-00001.{kind}",
                referral_id="R-00001",
                kind=kind,
                to="Sam Sample <sam@example.com>",
                subject=" ".join(templates.render(kind, "subject", context).split()),
                text=templates.render(kind, "text", context),
                html=templates.render(kind, "html", context),
            )
            build_message(
                draft, from_addr=practice.owner_email, from_name=practice.name, now=now,
                domain=domain,
            )
        except Exception as error:  # noqa: BLE001 - each failure becomes one line to act on
            broken.append(f"{KIND_LABELS[kind]} ({type(error).__name__}: {error})")
    if broken:
        out.append(("fail", "These emails cannot be drafted: " + "; ".join(broken)))
    else:
        out.append(("ok", "A sample of every email kind renders and builds"))
    for kind, names in sorted(config.drafts.allow_fields.items()):
        if "reason" in names and RECIPIENTS[kind] == "referrer":
            warning = (
                f"drafts.allow_fields lets the {KIND_LABELS[kind]} show the Reason: a referrer "
                "email then carries clinical detail (minimum necessary); remove it unless the "
                "practice decided so on purpose"
            )
            out.append(("warn", warning))
    return out


def _check_sheet(config: BridgeConfig) -> list[Finding]:
    out: list[Finding] = []
    try:
        sheet = open_sheet(config)
        snapshot = sheet.read()
    except BridgeError as error:
        return [("fail", str(error))]
    out.append(("ok", f"Sheet {sheet.describe()} can be read"))
    tab = snapshot.referrals
    if tab is None:
        out.append(
            (
                "fail",
                (
                    f"No tab named {config.sheet.tab}: rename the referrals tab to "
                    f"{config.sheet.tab}, set sheet.tab in the config, or run "
                    "`sheets-bridge init` to add it"
                ),
            )
        )
        return out
    cols = resolve_columns(tab.headers, config.columns.aliases)
    out.append(("ok", f"{tab.title} tab: {len(tab.rows)} rows, {cols.known()} known columns"))
    for name, positions in sorted(cols.duplicates.items()):
        letters = " and ".join(column_letter(p) for p in positions)
        out.append(("fail", f"{name} appears more than once (columns {letters}): keep one"))
    for name in cols.missing_staff:
        level = "fail" if name in ("Received", "Patient First Name") else "warn"
        out.append(
            (
                level,
                (
                    f"Column {name} is missing: add a column headed {name}, or name your "
                    "column in columns.aliases; the rules that need it are skipped until then"
                ),
            )
        )
    if cols.missing_bridge:
        out.append(
            (
                "ok",
                "The next sync adds the bridge columns "
                + ", ".join(cols.missing_bridge)
                + " at the right end",
            )
        )
    for col, text in cols.unknown:
        out.append(("ok", f"Column {column_letter(col)} ({text!r}) is not used by the bridge"))
    missing_tabs = [t for t in BRIDGE_TABS if t not in snapshot.tab_titles]
    if missing_tabs:
        out.append(("ok", "The next sync adds the tabs " + ", ".join(missing_tabs)))
    return out


def _check_secrets(config: BridgeConfig) -> list[Finding]:
    """Keys, tokens and the state folder must be private: a sync refuses to start otherwise."""
    from sheets_bridge.private import refuse_exposed

    try:
        refuse_exposed(config)
    except BridgeError as error:
        return [("fail", str(error))]
    return []


def _check_gmail(config: BridgeConfig) -> list[Finding]:
    """With mail.kind gmail: the token works and carries the scope to make drafts."""
    if getattr(config.mail, "kind", "") != "gmail":
        return []
    from sheets_bridge.mail.gmail import GmailDrafter

    try:
        drafter = GmailDrafter.from_config(config)
        drafter.probe()
    except BridgeError as error:
        return [("fail", str(error))]
    return [("ok", f"Gmail drafts can be listed and made ({drafter.describe()})")]


def _check_folders(config: BridgeConfig) -> list[Finding]:
    out: list[Finding] = []
    state_dir = config.state_dir
    if state_dir.exists():
        mode = stat.S_IMODE(state_dir.stat().st_mode)
        if mode & 0o077:
            pass  # reported by _check_secrets: a sync refuses to start until it is private
        elif not os.access(state_dir, os.W_OK):
            out.append(("fail", f"State folder {state_dir} is not writable by this user"))
        else:
            out.append(("ok", f"State folder {state_dir} is private and writable"))
    else:
        parent = state_dir.parent
        if parent.exists() and os.access(parent, os.W_OK):
            out.append(("ok", f"State folder {state_dir} will be created on the first sync"))
        else:
            out.append(("fail", f"Cannot create the state folder {state_dir}: check the path"))
    if isinstance(config.mail, EmlMailConfig):
        path = config.mail.path
        target = path if path.exists() else path.parent
        if os.access(target, os.W_OK):
            out.append(("ok", f"Drafts folder {path} is writable"))
        else:
            out.append(("fail", f"Drafts folder {path} cannot be written: check mail.path"))
    return out
