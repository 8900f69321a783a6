"""contrib/addon-deployment.json agrees with the app: every URL it names is an endpoint the
bridge answers, under the one placeholder the docs tell the manager to replace."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENT = ROOT / "contrib" / "addon-deployment.json"
ANSWERED = {"home", "file-scope-granted", "lookup", "referral", "queue", "setup", "sync",
            "file-access"}


def _urls(value: object) -> list[str]:
    if isinstance(value, dict):
        return [u for v in value.values() for u in _urls(v)]
    if isinstance(value, list):
        return [u for v in value for u in _urls(v)]
    return [value] if isinstance(value, str) and value.startswith("ENDPOINT_URL") else []


def test_the_deployment_names_only_endpoints_the_bridge_answers() -> None:
    data = json.loads(DEPLOYMENT.read_text(encoding="utf-8"))
    urls = _urls(data)
    assert urls, "no ENDPOINT_URL placeholder"
    for url in urls:
        assert url.removeprefix("ENDPOINT_URL/") in ANSWERED, url
    assert data["addOns"]["sheets"]["homepageTrigger"]["runFunction"] == "ENDPOINT_URL/home"
    assert data["addOns"]["httpOptions"]["authorizationHeader"] == "SYSTEM_ID_TOKEN"


def test_the_scopes_are_the_narrow_ones_the_docs_explain() -> None:
    data = json.loads(DEPLOYMENT.read_text(encoding="utf-8"))
    assert sorted(data["oauthScopes"]) == [
        "https://www.googleapis.com/auth/drive.file",
        "https://www.googleapis.com/auth/userinfo.email",
    ]
    docs = (ROOT / "docs" / "addon.md").read_text(encoding="utf-8")
    for scope in data["oauthScopes"]:
        assert scope in docs

