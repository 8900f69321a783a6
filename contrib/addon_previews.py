"""Render the add-on's cards (the very JSON the endpoints answer) to HTML and PNG for the docs.

    .venv/bin/python contrib/addon_previews.py docs/addon

Builds the demo practice in a temporary folder, syncs it once, builds each card from what the
bridge then knows, writes ``<card>.json`` and ``<card>.html`` and, when Chromium is installed,
``<card>.png`` (headless, 400 px wide like the side panel). The HTML renderer knows only the
widgets :mod:`sheets_bridge.addon.card_schema` allows, so a preview cannot show what Google
would not. The demo's people are made up.
"""

from __future__ import annotations

import contextlib
import html
import io
import json
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from sheets_bridge.addon import cards
from sheets_bridge.addon.card_schema import check_response
from sheets_bridge.addon.panel import gather
from sheets_bridge.config import load_config
from sheets_bridge.demo_run import run_demo
from sheets_bridge.doctor import check
from sheets_bridge.report import report_lines

NOW = "2025-03-04T10:00"
STYLE = """
body { margin: 0; background: #f1f3f4; font: 14px/1.4 Roboto, Arial, sans-serif; color: #202124; }
.panel { width: 300px; margin: 8px auto; background: #fff; border: 1px solid #dadce0; }
.bar { padding: 10px 14px; border-bottom: 1px solid #dadce0; font-weight: 500; color: #5f6368; }
.header { padding: 14px 16px 6px; }
.title { font-size: 16px; font-weight: 500; }
.subtitle { color: #5f6368; font-size: 12px; }
.section { padding: 6px 16px 10px; border-bottom: 1px solid #e8eaed; }
.sheader { color: #1a73e8; font-size: 12px; font-weight: 500; margin: 6px 0 4px; }
.dt { margin: 6px 0; display: flex; align-items: center; }
.dt .body { flex: 1; }
.top, .bottom { font-size: 12px; color: #5f6368; }
.p { margin: 6px 0; }
.buttons { margin: 6px 0; }
.btn { display: inline-block; margin: 2px 6px 2px 0; padding: 5px 10px; border-radius: 4px;
       color: #1a73e8; border: 1px solid #dadce0; font-weight: 500; font-size: 13px; }
.input { border: 1px solid #9aa0a6; border-radius: 4px; padding: 6px 8px; margin: 6px 0; }
.input .label { font-size: 11px; color: #5f6368; }
.input .hint { color: #9aa0a6; }
hr { border: 0; border-top: 1px solid #e8eaed; }
"""


def _button(b: dict[str, Any]) -> str:
    return f'<span class="btn">{b["text"]}</span>'


def _widget(w: dict[str, Any]) -> str:
    (kind, body), = w.items()
    # Card text is already escaped HTML (the bridge escapes cell text when it builds a card).
    if kind == "textParagraph":
        return f'<div class="p">{body["text"]}</div>'
    if kind == "decoratedText":
        top = f'<div class="top">{body["topLabel"]}</div>' if "topLabel" in body else ""
        bottom = f'<div class="bottom">{body["bottomLabel"]}</div>' if "bottomLabel" in body else ""
        button = _button(body["button"]) if "button" in body else ""
        return (f'<div class="dt"><div class="body">{top}<div>{body["text"]}</div>{bottom}</div>'
                f"{button}</div>")
    if kind == "buttonList":
        return '<div class="buttons">' + "".join(_button(b) for b in body["buttons"]) + "</div>"
    if kind == "textInput":
        return (f'<div class="input"><div class="label">{body.get("label", "")}</div>'
                f'<div class="hint">{body.get("hintText", "")}</div></div>')
    if kind == "divider":
        return "<hr>"
    raise ValueError(f"no preview for widget {kind}")


def card_html(card: dict[str, Any]) -> str:
    parts = ['<div class="panel"><div class="bar">Sheets Bridge</div>']
    header = card.get("header")
    if header:
        sub = f'<div class="subtitle">{header["subtitle"]}</div>' if "subtitle" in header else ""
        parts.append(f'<div class="header"><div class="title">{header["title"]}</div>{sub}</div>')
    for section in card["sections"]:
        parts.append('<div class="section">')
        if "header" in section:
            parts.append(f'<div class="sheader">{section["header"]}</div>')
        parts.extend(_widget(w) for w in section["widgets"])
        parts.append("</div>")
    parts.append("</div>")
    title = html.escape(header["title"]) if header else "card"
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>")


def build_cards(folder: Path) -> dict[str, dict[str, Any]]:
    with contextlib.redirect_stdout(io.StringIO()):
        run_demo(folder, now=NOW, fresh=True)
    path = folder / "config.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["addon"] = {
        "listen": "127.0.0.1:8787",
        "endpoint_url": "https://bridge.harborphysio.example/addon",
        "service_account": "service-1@gcp-sa-gsuiteaddons.iam.gserviceaccount.com",
        "oauth_client_id": "1-demo.apps.googleusercontent.com",
        "allowed_users": ["@harborphysio.example"],
        "spreadsheet_id": "demo",
    }
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    config = load_config(path)
    now = datetime.fromisoformat(NOW).replace(tzinfo=config.tz)
    known = gather(config, now)
    urls = cards.Urls(config.addon.endpoint_url)
    queue = known.queue(config)
    ref = known.referral(config, queue[0].referral_id) if queue else None
    from sheets_bridge.runner import run_sync

    synced = report_lines(run_sync(config, now=now), config, dry_run=False)
    out = {
        "home": cards.home_card(known, urls, next_sync="2025-03-04 10:05",
                                practice=config.practice.name),
        "queue": cards.queue_card(queue, urls),
        "sync": cards.sync_card(synced, urls),
        "setup": cards.setup_card(check(config), urls),
        "not-connected": cards.not_connected_card(urls, can_ask=False),
        "not-allowed": cards.message_card(
            "Not available",
            "This panel is for the practice's staff. Ask the practice manager to add your "
            "address to the bridge's allowed users.",
        ),
    }
    if ref is not None:
        out["referral"] = cards.referral_card(ref, urls)
    return out


def main(argv: list[str]) -> int:
    target = Path(argv[1] if len(argv) > 1 else "docs/addon")
    target.mkdir(parents=True, exist_ok=True)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    # A fixed folder, so the paths in the Check setup card stay the same from run to run.
    demo = Path(tempfile.gettempdir()) / "riverside-demo"
    shutil.rmtree(demo, ignore_errors=True)
    try:
        built = build_cards(demo)
    finally:
        shutil.rmtree(demo, ignore_errors=True)
    for name, card in built.items():
        assert check_response(cards.action_response(card)) == [], name
        (target / f"{name}.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
        page = target / f"{name}.html"
        page.write_text(card_html(card), encoding="utf-8")
        if chromium:
            with tempfile.TemporaryDirectory(prefix="sb-chromium-") as profile:
                subprocess.run(
                    [chromium, "--headless", "--no-sandbox", "--disable-gpu",
                     "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                     f"--screenshot={(target / f'{name}.png').resolve()}",
                     "--window-size=400,900", page.resolve().as_uri()],
                    check=True, capture_output=True, timeout=120,
                )
        sys.stdout.write(f"{name}: {page}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
