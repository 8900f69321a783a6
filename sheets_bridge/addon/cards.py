"""The side panel's cards as card JSON (Google Workspace add-ons, card v1): pure functions.

Every card is built from plain data (:mod:`.panel`'s dataclasses and report lines), with only
the widgets :mod:`.card_schema` knows (header, sections, textParagraph, decoratedText,
buttonList, textInput, divider), so a test can walk every card and check it. Text from the
sheet is escaped: card text understands a little HTML, and a staff cell is data, not markup.
Buttons call back to our own endpoint URL with parameters (the Referral ID), never patient data.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sheets_bridge.addon.panel import Knowledge, QueueItem, ReferralCard
from sheets_bridge.dates import format_moment

Card = dict[str, Any]
Widget = dict[str, Any]

TITLE = "Sheets Bridge"


def _text(value: str) -> str:
    return html.escape(value, quote=False)


def paragraph(text: str) -> Widget:
    return {"textParagraph": {"text": _text(text)}}


def labelled(label: str, text: str, *, bottom: str = "", button: Widget | None = None) -> Widget:
    item: dict[str, Any] = {"topLabel": _text(label), "text": _text(text or "-"), "wrapText": True}
    if bottom:
        item["bottomLabel"] = _text(bottom)
    if button is not None:
        item["button"] = button
    return {"decoratedText": item}


def button(text: str, function: str, **parameters: str) -> Widget:
    action: dict[str, Any] = {"function": function}
    if parameters:
        action["parameters"] = [{"key": k, "value": v} for k, v in parameters.items()]
    return {"text": _text(text), "onClick": {"action": action}}


def buttons(*items: Widget) -> Widget:
    return {"buttonList": {"buttons": list(items)}}


def section(widgets: Sequence[Widget], header: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"widgets": list(widgets)}
    if header:
        out["header"] = _text(header)
    return out


def card(title: str, sections: Sequence[dict[str, Any]], subtitle: str = "") -> Card:
    header = {"title": _text(title)}
    if subtitle:
        header["subtitle"] = _text(subtitle)
    return {"header": header, "sections": list(sections)}


class Urls:
    """The callback URLs: every button posts back to the endpoint URL Google knows."""

    def __init__(self, endpoint_url: str) -> None:
        self.base = endpoint_url.rstrip("/")

    def __getattr__(self, name: str) -> str:
        return f"{self.base}/{name.replace('_', '-')}"


def _nav(urls: Urls) -> Widget:
    return buttons(
        button("Sync now", urls.sync),
        button("Work queue", urls.queue),
        button("Check setup", urls.setup),
    )


def _lookup_section(urls: Urls) -> dict[str, Any]:
    return section(
        [
            {"textInput": {"name": "referral_id", "label": "Referral ID",
                           "hintText": "Like R-00012"}},
            buttons(button("Look up", urls.lookup)),
        ],
        header="Look up a referral",
    )


def _moment(k: Knowledge, iso: str) -> str:
    try:
        return format_moment(datetime.fromisoformat(iso), k.now.tzinfo)
    except ValueError:
        return iso


def _last_sync(k: Knowledge) -> tuple[str, str]:
    run = k.last_run
    quiet = k.last_quiet
    if run is None and quiet is None:
        return "No sync has run yet", ""
    started = str(run["started"]) if run else ""
    if quiet and (not started or quiet > started):
        return _moment(k, quiet), "Nothing needed changing"
    assert run is not None
    started = _moment(k, started)
    outcome = str(run.get("outcome", ""))
    summary = str(run.get("summary") or "")
    if outcome == "stopped":
        return started, f"Stopped: {summary or 'see the Bridge Log tab'}"
    if outcome == "failed":
        return started, f"Failed: {summary or 'see the Bridge Log tab'}"
    return started, summary or f"{run.get('cells_written', 0)} cells written"


def home_card(k: Knowledge, urls: Urls, *, next_sync: str, practice: str) -> Card:
    when, what = _last_sync(k)
    facts = [
        labelled("Last sync", when, bottom=what),
        labelled("Next sync", next_sync),
        labelled("Rows needing attention", str(k.needing_attention)),
        labelled("Overdue follow-ups", str(k.count("OVERDUE")),
                 bottom=f"{k.count('Contact due')} more due soon"),
        labelled("Drafts waiting", "unknown" if k.drafts_waiting is None
                 else str(k.drafts_waiting)),
    ]
    if k.stop_reason:
        facts.insert(1, labelled("The next sync would stop", k.stop_reason))
    return card(
        TITLE, [section(facts, header="This sheet"), section([_nav(urls)]), _lookup_section(urls)],
        subtitle=practice,
    )


def queue_card(items: Sequence[QueueItem], urls: Urls) -> Card:
    if not items:
        widgets: list[Widget] = [paragraph("No follow-up is due or overdue.")]
    else:
        widgets = [
            labelled(f"{item.referral_id} · {item.stage}", item.name,
                     bottom=f"Follow-up Due {item.due}" if item.due else "",
                     button=button("Open", urls.referral, id=item.referral_id))
            for item in items
        ]
    return card("Work queue", [section(widgets, header="Overdue and due, most urgent first"),
                               section([buttons(button("Back", urls.home))])])


def referral_card(ref: ReferralCard, urls: Urls) -> Card:
    facts = [
        labelled("Stage", ref.stage, bottom=ref.stage_reason),
        labelled("Follow-up Due", ref.follow_up_due or "none"),
    ]
    attention = [paragraph(line) for line in ref.attention] or [paragraph("Nothing: the row is clean.")]
    made = [labelled(what, when) for what, when in ref.drafts_made] or [paragraph("None yet.")]
    upcoming = [labelled(what, when) for what, when in ref.next_drafts] or [
        paragraph("No other email is planned for this referral.")
    ]
    if ref.next_drafts:
        upcoming.append(paragraph(
            f"Only events of the last {ref.recent_days} days are drafted for."))
    return card(
        ref.referral_id,
        [
            section(facts),
            section(attention, header="Attention (fix these in the row)"),
            section(made, header="Drafts made"),
            section(upcoming, header="Next drafts"),
            section([buttons(button("Refresh", urls.referral, id=ref.referral_id),
                             button("Back", urls.home))]),
        ],
        subtitle=ref.name,
    )


def lines_card(title: str, lines: Sequence[str], urls: Urls, *, header: str = "") -> Card:
    widgets = [paragraph(line) for line in lines] or [paragraph("(nothing to report)")]
    return card(title, [section(widgets, header=header),
                        section([buttons(button("Back", urls.home))])])


def sync_card(lines: Sequence[str], urls: Urls) -> Card:
    """What "Sync now" did: the lines ``sync`` prints, less the one naming the workbook's path
    on the server (no business of the panel's)."""
    shown = [line for line in lines if not line.startswith("Sheet: ")]
    return lines_card("Sync now", shown, urls, header="What the sync did")


def setup_card(findings: Sequence[tuple[str, str]], urls: Urls) -> Card:
    mark = {"ok": "OK", "warn": "Check", "fail": "Fix"}
    widgets = [labelled(mark.get(level, level), text) for level, text in findings]
    failed = any(level == "fail" for level, _ in findings)
    widgets.append(paragraph(
        "Fix the items marked Fix, then check again." if failed else "All good."
    ))
    return card("Check setup", [section(widgets, header="sheets-bridge check"),
                                section([buttons(button("Check again", urls.setup),
                                                 button("Back", urls.home))])])


def not_connected_card(urls: Urls, *, can_ask: bool) -> Card:
    widgets: list[Widget] = [paragraph(
        "This spreadsheet is not the one this bridge serves, so there is nothing to show here. "
        "Open the practice's referral sheet to see the panel."
    )]
    if can_ask:
        widgets = [
            paragraph("To tell whether this is the practice's referral sheet, the add-on needs "
                      "to know which spreadsheet is open (it reads nothing else through you)."),
            buttons(button("Allow for this spreadsheet", urls.file_access)),
        ]
    return card("Not connected", [section(widgets)])


def message_card(title: str, text: str) -> Card:
    return card(title, [section([paragraph(text)])])


# -- response envelopes ---------------------------------------------------------------------
def homepage_response(c: Card) -> dict[str, Any]:
    """What a homepage trigger answers: a navigation that pushes the card."""
    return {"action": {"navigations": [{"pushCard": c}]}}


def action_response(c: Card, *, push: bool = False) -> dict[str, Any]:
    """What a button answers: render actions that update the card in place (or push one)."""
    return {"renderActions": {"action": {"navigations": [{"pushCard" if push else "updateCard": c}]}}}


def request_file_access_response() -> dict[str, Any]:
    """Ask Sheets to grant ``drive.file`` for the open spreadsheet (so the event names it)."""
    return {"renderActions": {"hostAppAction": {"editorAction": {
        "requestFileScopeForActiveDocument": {}
    }}}}
