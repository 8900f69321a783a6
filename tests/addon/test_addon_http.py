"""The add-on over real HTTP: uvicorn on 127.0.0.1, events in Google's shapes, ID tokens signed
by a test key whose certificate a local endpoint serves, the real workbook and state behind."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from addon_harness import (
    CLIENT_ID,
    ENDPOINT,
    SHEET_ID,
    FakeGoogle,
    post,
    running,
    sheets_event,
    texts,
    write_practice,
)
from conftest import CANARY_PATIENTS

from sheets_bridge.addon.app import create_app
from sheets_bridge.addon.card_schema import check_response
from sheets_bridge.addon.server import DirectSync
from sheets_bridge.cli import main
from sheets_bridge.config import BridgeConfig, load_config
from sheets_bridge.model import STAFF_COLUMNS
from sheets_bridge.runner import run_sync
from sheets_bridge.sheets import SheetBackend, open_sheet

#: Every answer any test got, checked against the card schema at the end of each test.
ANSWERS: list[Any] = []


def staff_row(**cells: Any) -> list[Any]:
    return [cells.get(h.replace(" ", "_"), cells.get(h)) for h in STAFF_COLUMNS]


def fmt(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")


@pytest.fixture(scope="module")
def google() -> Iterator[FakeGoogle]:
    fake = FakeGoogle()
    yield fake
    fake.close()


class Practice:
    def __init__(self, folder: Path, google: FakeGoogle, **addon: Any) -> None:
        now = datetime.now().astimezone()
        zeb, philo = CANARY_PATIENTS
        rows = [
            # R-00001: received days ago, never contacted: OVERDUE.
            staff_row(Received=fmt(now - timedelta(days=5)),
                      Patient_First_Name=zeb["Patient First Name"],
                      Patient_Last_Name=zeb["Patient Last Name"],
                      Patient_Email=zeb["Patient Email"], How_Heard="Provider",
                      Referred_By="Dr Rivera", Reason=zeb["Reason"]),
            # R-00002: contacted, with an appointment that passed and no Visit: Attention.
            staff_row(Received=fmt(now - timedelta(days=9)),
                      Patient_First_Name=philo["Patient First Name"],
                      Patient_Last_Name=philo["Patient Last Name"], How_Heard="Google",
                      Reason=philo["Reason"], First_Contact=fmt(now - timedelta(days=8)),
                      Appointment=fmt(now - timedelta(days=2))),
        ]
        self.path = write_practice(folder, rows, google.certs_url, **addon)
        self.config = load_config(self.path)
        self.google = google
        self.reads = 0
        run_sync(self.config, now=datetime.now(self.config.tz))

    def sheet(self) -> SheetBackend:
        self.reads += 1
        return open_sheet(self.config)

    def app(self, config: BridgeConfig | None = None) -> Any:
        config = config or self.config
        return create_app(config, DirectSync(config), sheet_factory=self.sheet)

    def add_row(self, **cells: Any) -> None:
        wb = openpyxl.load_workbook(self.config.sheet.path)  # type: ignore[union-attr]
        ws = wb["Referrals"]
        headers = [c.value for c in ws[1]]
        ws.append([cells.get(str(h).replace(" ", "_")) if h else None for h in headers])
        wb.save(self.config.sheet.path)  # type: ignore[union-attr]


@pytest.fixture
def practice(tmp_path: Path, google: FakeGoogle) -> Practice:
    return Practice(tmp_path, google)


def ok(base: str, path: str, google: FakeGoogle, **event: Any) -> dict[str, Any]:
    response = post(base, path, sheets_event(google, **event), google.token())
    assert response.status_code == 200, response.text
    body = response.json()
    assert check_response(body) == [], body
    ANSWERS.append(body)
    return body


def card_of(body: dict[str, Any]) -> dict[str, Any]:
    action = body.get("renderActions", body)["action"]
    nav = action["navigations"][0]
    return nav.get("pushCard") or nav["updateCard"]


def no_patient_data(body: Any) -> None:
    text = texts(body)
    for patient in CANARY_PATIENTS:
        for key in ("Patient Last Name", "Patient Email", "Reason"):
            assert patient[key] not in text, key


def test_home_card_shows_the_practice_at_a_glance(practice: Practice) -> None:
    with running(practice.app()) as base:
        body = ok(base, "home", practice.google)
        granted = ok(base, "file-scope-granted", practice.google)
    assert "pushCard" in body["action"]["navigations"][0]
    assert card_of(granted)["sections"][0] == card_of(body)["sections"][0]
    text = texts(body)
    assert "Rows needing attention" in text and "Overdue follow-ups" in text
    card = card_of(body)
    facts = {w["decoratedText"]["topLabel"]: w["decoratedText"]
             for w in card["sections"][0]["widgets"]}
    assert facts["Overdue follow-ups"]["text"] == "1"
    assert facts["Rows needing attention"]["text"] == "2"
    assert facts["Drafts waiting"]["text"] == "1"  # R-00001's welcome email
    assert "not scheduled here" in facts["Next sync"]["text"]
    assert facts["Last sync"]["text"] != "No sync has run yet"
    # Every button calls back to the endpoint Google knows.
    assert f"{ENDPOINT}/sync" in text and f"{ENDPOINT}/lookup" in text
    no_patient_data(body)


def test_looking_up_a_referral_explains_its_stage_attention_and_drafts(
    practice: Practice, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    with running(practice.app()) as base:
        one = ok(base, "lookup", practice.google, form={"referral_id": "r-00001"})
        two = ok(base, "referral", practice.google, parameters={"id": "R-00002"})
        missing = ok(base, "lookup", practice.google, form={"referral_id": "R-00099"})
        bad = ok(base, "lookup", practice.google, form={"referral_id": "Zebediah"})
    card = card_of(one)
    assert card["header"] == {"title": "R-00001", "subtitle": "Zebediah Q."}
    text = texts(one)
    assert "OVERDUE" in text and "Follow-up Due has passed and there is no First Contact" in text
    assert "welcome email to the patient" in text  # drafted at the first sync
    assert "acknowledgement to the referrer" in text  # not yet: no Referrer Email
    text2 = texts(two)
    assert "Contacted" in text2 or "Scheduled" in text2
    assert "Visit" in text2  # the Attention line asking for the Visit
    assert "No row in the sheet carries this Referral ID" in texts(missing)
    assert "like R-00012" in texts(bad)
    for body in (one, two):
        no_patient_data(body)
    # Nothing about a patient in the logs, whatever was looked up.
    logged = caplog.text
    assert "add-on /lookup answered" in logged
    for patient in CANARY_PATIENTS:
        for value in patient.values():
            assert value not in logged
    assert "ann@harborphysio.example" not in logged


def test_the_work_queue_lists_due_rows_with_a_button_each(practice: Practice) -> None:
    with running(practice.app()) as base:
        body = ok(base, "queue", practice.google)
    widgets = card_of(body)["sections"][0]["widgets"]
    assert len(widgets) == 1
    item = widgets[0]["decoratedText"]
    assert item["topLabel"] == "R-00001 · OVERDUE" and item["text"] == "Zebediah Q."
    action = item["button"]["onClick"]["action"]
    assert action == {"function": f"{ENDPOINT}/referral",
                      "parameters": [{"key": "id", "value": "R-00001"}]}
    no_patient_data(body)


def test_check_setup_shows_the_lines_check_prints(practice: Practice) -> None:
    with running(practice.app()) as base:
        body = ok(base, "setup", practice.google)
    text = texts(body)
    assert "sheets-bridge check" in text and "is valid" in text


def test_sync_now_runs_a_cycle_and_the_new_row_appears(practice: Practice) -> None:
    now = datetime.now().astimezone()
    practice.add_row(Received=fmt(now - timedelta(hours=1)), Patient_First_Name="Cosmo",
                     Patient_Last_Name="Xylander", How_Heard="Walk-in")
    with running(practice.app()) as base:
        before = ok(base, "lookup", practice.google, form={"referral_id": "R-00003"})
        synced = ok(base, "sync", practice.google)
        after = ok(base, "lookup", practice.google, form={"referral_id": "R-00003"})
    assert "No row in the sheet carries" in texts(before)
    assert "Rows read: 3" in texts(synced)
    assert "Referral IDs assigned: 1" in texts(synced)
    assert card_of(after)["header"] == {"title": "R-00003", "subtitle": "Cosmo X."}


def test_another_spreadsheet_gets_a_plain_not_connected_card(practice: Practice) -> None:
    with running(practice.app()) as base:
        other = ok(base, "home", practice.google, sheet_id="1SomeoneElsesSheet")
        unknown = ok(base, "home", practice.google, sheet_id=None)
        ask = ok(base, "file-access", practice.google, sheet_id=None)
    assert card_of(other)["header"]["title"] == "Not connected"
    assert practice.reads == 0
    assert f"{ENDPOINT}/file-access" in texts(unknown)
    assert ask == {"renderActions": {"hostAppAction": {"editorAction": {
        "requestFileScopeForActiveDocument": {}}}}}


def test_a_user_outside_the_practice_gets_403_and_a_plain_card(practice: Practice) -> None:
    with running(practice.app()) as base:
        response = post(base, "home", sheets_event(practice.google, user="eve@gmail.example"),
                        practice.google.token())
    assert response.status_code == 403
    assert check_response(response.json()) == []
    assert "for the practice's staff" in texts(response.json())
    assert practice.reads == 0


BAD_CALLERS = {
    "no header": lambda g: None,
    "not a JWT": lambda g: "hello",
    "unsigned": lambda g: g.token().rsplit(".", 1)[0] + ".",
    "signed by another key": lambda g: g.token(signer=g.stranger),
    "expired": lambda g: g.token(expires_in=-60),
    "wrong audience": lambda g: g.token(audience="https://evil.example/addon"),
    "wrong issuer": lambda g: g.token(issuer="https://evil.example"),
    "another service account": lambda g: g.token(email="someone@evil.iam.gserviceaccount.com"),
    "email not verified": lambda g: g.token(verified=False),
    "the user's token as the caller's": lambda g: g.user_token(),
}


@pytest.mark.parametrize("case", sorted(BAD_CALLERS))
def test_a_caller_google_did_not_sign_for_us_gets_401_and_nothing_is_read(
    practice: Practice, case: str
) -> None:
    google = practice.google
    token = BAD_CALLERS[case](google)
    # A body far over the limit: a 401 (not a 413) shows the body was never read.
    huge = b"{" + b" " * 200_000 + b"}"
    with running(practice.app()) as base:
        response = post(base, "home", huge, token)
        response2 = post(base, "lookup", sheets_event(google, form={"referral_id": "R-00001"}),
                         token)
    assert response.status_code == 401 and response2.status_code == 401
    assert "R-00001" not in response2.text
    assert practice.reads == 0


BAD_USERS = {
    "no user token": "",
    "expired": "expired",
    "wrong audience": "aud",
    "another key": "key",
}


@pytest.mark.parametrize("case", sorted(BAD_USERS))
def test_an_unverified_user_token_gets_401(practice: Practice, case: str) -> None:
    google = practice.google
    token = {
        "": "",
        "expired": google.user_token(expires_in=-60),
        "aud": google.user_token(audience=ENDPOINT),
        "key": google.user_token(signer=google.stranger),
    }[BAD_USERS[case]]
    with running(practice.app()) as base:
        response = post(base, "home", sheets_event(google, user_token=token), google.token())
    assert response.status_code == 401
    assert practice.reads == 0


def test_refusals_are_counted_in_status(practice: Practice, capsys: pytest.CaptureFixture[str]
                                        ) -> None:
    google = practice.google
    with running(practice.app()) as base:
        post(base, "home", sheets_event(google), google.token(expires_in=-60))
        post(base, "home", sheets_event(google), None)
        post(base, "home", sheets_event(google, user="eve@gmail.example"), google.token())
    assert main(["status", "--config", str(practice.path)]) == 0
    out = capsys.readouterr().out
    assert "Add-on requests refused: 3" in out
    assert "401 expired" in out and "401 no token" in out and "403 user not allowed" in out
    assert "eve@" not in out


def test_a_body_over_the_limit_is_refused_with_a_valid_token(practice: Practice) -> None:
    google = practice.google
    event = sheets_event(google)
    event["padding"] = "x" * 70_000
    with running(practice.app()) as base:
        response = post(base, "home", event, google.token())
    assert response.status_code == 413
    assert practice.reads == 0


def test_certificates_are_fetched_once_not_per_request(practice: Practice) -> None:
    google = practice.google
    with running(practice.app()) as base:
        before = google.cert_fetches
        for _ in range(3):
            ok(base, "setup", google)
    assert google.cert_fetches - before <= 1


def test_every_card_answered_uses_only_documented_widgets() -> None:
    # Runs after the tests above in this module (pytest keeps file order): every answer they got.
    assert len(ANSWERS) >= 10
    for body in ANSWERS:
        assert check_response(body) == []


def test_the_audience_is_the_configured_endpoint(google: FakeGoogle, tmp_path: Path) -> None:
    practice = Practice(tmp_path, google, endpoint_url="https://other.example/addon")
    with running(practice.app()) as base:
        response = post(base, "home", sheets_event(google), google.token(audience=ENDPOINT))
        good = post(base, "home", sheets_event(google),
                    google.token(audience="https://other.example/addon"))
    assert response.status_code == 401
    assert good.status_code == 200
    assert CLIENT_ID and SHEET_ID


def test_a_token_for_the_url_called_is_accepted_there_only(practice: Practice) -> None:
    google = practice.google
    with running(practice.app()) as base:
        here = post(base, "home", sheets_event(google), google.token(audience=f"{ENDPOINT}/home"))
        there = post(base, "sync", sheets_event(google), google.token(audience=f"{ENDPOINT}/home"))
    assert here.status_code == 200
    assert there.status_code == 401


def test_the_same_cards_answer_from_a_memory_sheet_with_the_same_cells(
    practice: Practice,
) -> None:
    """The add-on reads through the SheetBackend role: any backend with the same cells and the
    same state answers the same cards."""
    from sheets_bridge.sheets.memory import MemorySheet

    snapshot = open_sheet(practice.config).read()
    tab = snapshot.referrals
    assert tab is not None
    grid = [list(tab.headers)] + [list(row.values) for row in tab.rows]
    memory = MemorySheet(grid)
    config = practice.config
    answers = {}
    for name, factory in (("xlsx", lambda: open_sheet(config)), ("memory", lambda: memory)):
        app = create_app(config, DirectSync(config), sheet_factory=factory)
        with running(app) as base:
            answers[name] = [
                ok(base, "lookup", practice.google, form={"referral_id": rid})
                for rid in ("R-00001", "R-00002")
            ] + [ok(base, "queue", practice.google)]
    assert answers["memory"] == answers["xlsx"]


def test_serve_refuses_to_start_with_the_add_on_off(tmp_path: Path, google: FakeGoogle,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = write_practice(tmp_path, [], google.certs_url, listen="")
    assert main(["serve", "--config", str(path)]) == 2
    assert "addon.listen" in capsys.readouterr().err


def test_the_add_on_config_is_refused_half_filled(tmp_path: Path, google: FakeGoogle,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = write_practice(tmp_path, [], google.certs_url, service_account="",
                          endpoint_url="http://plain.example/addon")
    assert main(["check", "--config", str(path)]) == 2
    assert "service_account" in capsys.readouterr().err


def test_certificates_that_cannot_be_fetched_are_the_bridge_s_problem_not_a_pass(
    tmp_path: Path, google: FakeGoogle
) -> None:
    practice = Practice(tmp_path, google)
    config = practice.config.model_copy(update={"addon": practice.config.addon.model_copy(
        update={"certs_url": "http://127.0.0.1:9/nothing-listens-here"})})
    with running(practice.app(config)) as base:
        response = post(base, "home", sheets_event(google), google.token())
    assert response.status_code == 503
    assert practice.reads == 0


def test_the_endpoints_answer_under_the_endpoint_url_s_path_too(practice: Practice) -> None:
    google = practice.google
    with running(practice.app()) as base:
        proxied = post(base, "addon/home", sheets_event(google), google.token())
        other = post(base, "elsewhere/home", sheets_event(google), google.token())
    assert proxied.status_code == 200 and check_response(proxied.json()) == []
    assert other.status_code == 404
