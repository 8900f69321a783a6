"""The Google config keys, the private-files rule, and the pure parts of the Google backend."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml
from conftest import BASE_CONFIG, deep_merge

from sheets_bridge.config import parse_config
from sheets_bridge.errors import ConfigError
from sheets_bridge.google.errors import facts_of, is_retryable, sheets_error
from sheets_bridge.google.transport import gmail_call
from sheets_bridge.private import ExposedSecretError, refuse_exposed
from sheets_bridge.settings import GoogleSheetConfig
from sheets_bridge.sheets.google import _blocks, a1_tab

ROOT = Path(__file__).resolve().parents[2]


def google(tmp_path: Path, **sheet: object) -> object:
    base = {k: v for k, v in BASE_CONFIG.items() if k != "sheet"}
    return parse_config(deep_merge(base, {"sheet": {"kind": "google", **sheet}}), base=tmp_path)


def test_the_spreadsheet_is_an_id_or_its_address_and_spreadsheet_id_still_works(
    tmp_path: Path,
) -> None:
    url = "https://docs.google.com/spreadsheets/d/1AbC_d-9xYz/edit#gid=0"
    assert google(tmp_path, spreadsheet=url).sheet.spreadsheet_id == "1AbC_d-9xYz"  # type: ignore[attr-defined]
    assert google(tmp_path, spreadsheet_id="1AbC").sheet.spreadsheet_id == "1AbC"  # type: ignore[attr-defined]
    with pytest.raises(ConfigError):
        google(tmp_path, spreadsheet="not an id!")


@pytest.mark.parametrize(("endpoint", "ok"), [
    ("http://127.0.0.1:8085", True), ("http://localhost:9", True), ("https://sheets.example.com", True),
    ("http://10.0.0.5:8085", False), ("http://sheets.example.com", False), ("ftp://127.0.0.1", False),
])
def test_http_endpoints_only_on_this_machine(tmp_path: Path, endpoint: str, ok: bool) -> None:
    if ok:
        assert google(tmp_path, spreadsheet="x", endpoint=endpoint + "/").sheet.endpoint == endpoint  # type: ignore[attr-defined]
    else:
        with pytest.raises(ConfigError):
            google(tmp_path, spreadsheet="x", endpoint=endpoint)


def test_the_example_configs_google_block_validates_when_uncommented(tmp_path: Path) -> None:
    text = (ROOT / "config.example.yaml").read_text(encoding="utf-8")
    for section, kind in (("sheet", "google"), ("mail", "gmail")):
        lines_all = text.splitlines()
        start = next(i for i, line in enumerate(lines_all)
                     if line.startswith(f"  # With kind: {kind}, these keys"))
        block = []
        for line in lines_all[start + 1:]:
            if not line.startswith("  #   "):
                break
            block.append(line.replace("  #   ", "", 1))
        lines = block
        keys = dict(yaml.safe_load("\n".join(lines)).items())
        data = deep_merge({k: v for k, v in BASE_CONFIG.items() if k != section}, {section: keys})
        if section == "mail":
            data["sheet"] = BASE_CONFIG["sheet"]
        assert getattr(parse_config(data, base=tmp_path), section).kind == kind
    assert set(GoogleSheetConfig.model_fields) <= set(re.findall(r"#   (\w+):", text)) | {"kind"}


def test_a_state_folder_or_key_others_can_read_is_refused_with_the_chmod(tmp_path: Path) -> None:
    key = tmp_path / "key.json"
    key.write_text("{}")
    key.chmod(0o600)
    config = google(tmp_path, spreadsheet="x", credentials=str(key))
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    os.chmod(state, 0o755)
    with pytest.raises(ExposedSecretError, match=f"chmod 700 {re.escape(str(state))}"):
        refuse_exposed(config)
    os.chmod(state, 0o700)
    refuse_exposed(config)
    key.chmod(0o640)
    with pytest.raises(ExposedSecretError, match=f"chmod 600 {re.escape(str(key))}"):
        refuse_exposed(config)


def test_errors_are_classified_by_status_and_never_quote_the_body() -> None:
    html = b"<html><body>502 Bad Gateway Zebediah</body></html>"
    facts = facts_of(502, html)
    assert is_retryable(facts) and not facts.json_body
    body = b'{"error":{"code":403,"message":"The caller does not have permission","status":"PERMISSION_DENIED"}}'
    error = sheets_error(facts_of(403, body), spreadsheet="S1", account="a@b.iam.gserviceaccount.com",
                         service_account=True)
    assert "a@b.iam.gserviceaccount.com" in str(error) and "permission" not in str(error)
    echo = b'{"error":{"code":400,"message":"Invalid value \\"Zebediah Quuxworthington\\"","status":"INVALID_ARGUMENT"}}'
    assert "Zebediah" not in str(sheets_error(facts_of(400, echo), spreadsheet="S1", account=None,
                                              service_account=False))


def test_the_gmail_allowlist() -> None:
    assert gmail_call("POST", "/gmail/v1/users/me/drafts") == "create"
    assert gmail_call("GET", "/gmail/v1/users/me/drafts") == "list"
    assert gmail_call("GET", "/gmail/v1/users/me/drafts/r123") == "get"
    assert gmail_call("DELETE", "/gmail/v1/users/me/drafts/r123") == "delete"
    assert gmail_call("POST", "/gmail/v1/users/me/messages/send") == "send"
    for method, path in (("GET", "/gmail/v1/users/me/messages"), ("POST", "/gmail/v1/users/me/drafts/send"),
                         ("PUT", "/gmail/v1/users/me/drafts/r1"), ("GET", "/gmail/v1/users/me/settings/vacation")):
        assert gmail_call(method, path) is None


def test_writes_join_into_few_ranges() -> None:
    cells = {(r, c): "x" for r in range(2, 6) for c in range(17, 24)}
    cells[(9, 19)] = "y"
    cells[(9, 21)] = "z"
    assert _blocks(cells) == [(2, 17, 5, 23), (9, 19, 9, 19), (9, 21, 9, 21)]
    assert a1_tab("It's") == "'It''s'"


def test_the_auth_token_is_written_private_and_whole(tmp_path: Path) -> None:
    import stat

    from google.oauth2.credentials import Credentials

    from sheets_bridge.google.auth_flow import auth_scopes, save_token, token_path

    creds = Credentials(token="t", refresh_token="r", client_id="c", client_secret="s",
                        token_uri="https://oauth2.googleapis.com/token")
    path = save_token(creds, tmp_path / "secrets" / "gmail-token.json")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert yaml.safe_load(path.read_text())["refresh_token"] == "r"
    assert [p.name for p in path.parent.iterdir()] == ["gmail-token.json"]
    base = {k: v for k, v in BASE_CONFIG.items() if k != "mail"}
    config = parse_config(deep_merge(base, {"mail": {"kind": "gmail", "credentials": "tok.json"},
                                            "digest": {"send": True}}), base=tmp_path)
    assert token_path(config) == tmp_path / "tok.json"
    assert [s.rsplit("/", 1)[-1] for s in auth_scopes(config)] == [
        "spreadsheets", "gmail.compose", "gmail.send"
    ]
