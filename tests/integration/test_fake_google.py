"""The fake Google, driven by the real clients: gspread, googleapiclient and google-auth.

Every test here goes over real HTTP on 127.0.0.1 with the libraries as they ship. What the
fake promises (state, shapes, faults, auth) is what the Google backend's tests will lean on, so
each promise is checked from the client's side, the way the bridge will meet it.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from email.message import EmailMessage
from pathlib import Path

import google.auth._exponential_backoff
import google.auth.transport.requests
import gspread
import pytest
import requests
from fakes.clients import gmail_service, gspread_client
from fakes.google_server import (
    OWNER,
    FakeGoogle,
    write_authorized_user_token,
    write_service_account_key,
)
from google.auth.exceptions import RefreshError
from google.oauth2 import credentials as user_credentials
from google.oauth2 import service_account
from googleapiclient.errors import HttpError

SHEET = "1Ref3rra1sSheetIdForTheTests0000000000000000"
HEADER = ["Referral ID", "Patient Name", "Stage"]
SA_EMAIL = "bridge@practice-test.iam.gserviceaccount.com"
SHEETS_SCOPE = "https://www.googleapis.com/auth/spreadsheets"
COMPOSE_SCOPE = "https://www.googleapis.com/auth/gmail.compose"


@pytest.fixture
def book(fake_google: FakeGoogle) -> FakeGoogle:
    fake_google.add_spreadsheet(
        SHEET,
        {
            "Referrals": [HEADER, ["R-1", "Ann Canary", "New"], ["R-2", "Bob Canary", "Sent"]],
            "Bridge Log": [],
        },
    )
    return fake_google


def _http(fake: FakeGoogle, method: str, path: str, **kw: object) -> requests.Response:
    headers = {"Authorization": "Bearer static-test-token"}
    headers.update(kw.pop("headers", {}) or {})  # type: ignore[arg-type]
    return requests.request(method, fake.endpoint + path, headers=headers, timeout=5, **kw)  # type: ignore[arg-type]


def _message(message_id: str, subject: str = "Referral update", to: str = "dr@example.com") -> str:
    msg = EmailMessage()
    msg["To"] = to
    msg["From"] = OWNER
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{message_id}>"
    msg["X-Sheets-Bridge-Key"] = message_id.split("@")[0]
    msg.set_content("Dear colleague,\nthe referral was received.\n")
    return base64.urlsafe_b64encode(msg.as_bytes()).decode()


# -- (2) gspread, unmodified ----------------------------------------------------------------------


def test_gspread_opens_the_sheet_and_reads_every_value(book: FakeGoogle) -> None:
    sh = gspread_client(book).open_by_key(SHEET)
    assert [ws.title for ws in sh.worksheets()] == ["Referrals", "Bridge Log"]
    ws = sh.worksheet("Referrals")
    assert ws.get_all_values() == [HEADER, ["R-1", "Ann Canary", "New"], ["R-2", "Bob Canary", "Sent"]]
    assert sh.worksheet("Bridge Log").get_all_values() == [[]]  # gspread's way of saying empty
    lines = [r.line for r in book.requests]
    # open_by_key, worksheets() and each worksheet(t): gspread re-fetches metadata every time
    assert lines.count(f"GET /v4/spreadsheets/{SHEET}") == 4
    assert f"GET /v4/spreadsheets/{SHEET}/values/'Referrals'" in lines


def test_gspread_batch_get_clips_ranges_and_leaves_empty_ones_empty(book: FakeGoogle) -> None:
    ws = gspread_client(book).open_by_key(SHEET).worksheet("Referrals")
    got = ws.batch_get(["A1:B2", "A:A", "F10:G12"])
    assert got[0] == [["Referral ID", "Patient Name"], ["R-1", "Ann Canary"]]
    assert got[1] == [["Referral ID"], ["R-1"], ["R-2"]]
    assert got[2] == []
    assert [vr.range for vr in got] == ["Referrals!A1:B2", "Referrals!A1:A1000", "Referrals!F10:G12"]


def test_raw_keeps_formula_text_and_user_entered_makes_a_formula(book: FakeGoogle) -> None:
    ws = gspread_client(book).open_by_key(SHEET).worksheet("Referrals")
    ws.batch_update([{"range": "D1", "values": [["=1+1"]]}])  # gspread's default: RAW
    ws.batch_update([{"range": "E1", "values": [["=1+1"]]}], value_input_option="USER_ENTERED")
    assert book.formula_at(SHEET, "Referrals", "D1") is None
    assert book.grid(SHEET, "Referrals")[0][3] == "=1+1"
    assert book.formula_at(SHEET, "Referrals", "E1") == "=1+1"
    assert book.grid(SHEET, "Referrals")[0][4] == 2
    assert ws.acell("E1").value == "2"
    assert ws.get("D1:E1", value_render_option="FORMULA") == [["=1+1", "=1+1"]]


def test_user_entered_parses_numbers_and_raw_keeps_text(book: FakeGoogle) -> None:
    ws = gspread_client(book).open_by_key(SHEET).worksheet("Referrals")
    ws.update([["0123", "TRUE"]], "D2", value_input_option="USER_ENTERED")
    ws.update([["0123", "TRUE"]], "D3", value_input_option="RAW")
    got = ws.get("D2:E3", value_render_option="UNFORMATTED_VALUE")
    assert got == [[123, True], ["0123", "TRUE"]]


def test_dates_come_back_as_serial_numbers_unformatted(book: FakeGoogle) -> None:
    book.set_grid(SHEET, "Referrals", [HEADER + ["Referred"], ["R-1", "Ann", "New", dt.date(2026, 1, 5)]])
    sh = gspread_client(book).open_by_key(SHEET)
    res = sh.values_batch_get(
        ["'Referrals'!A1:D2"],
        params={"valueRenderOption": "UNFORMATTED_VALUE", "dateTimeRenderOption": "SERIAL_NUMBER"},
    )
    assert res["valueRanges"][0]["values"][1][3] == 46027
    assert sh.worksheet("Referrals").acell("D2").value == "1/5/2026"
    assert book.grid(SHEET, "Referrals")[1][3] == dt.date(2026, 1, 5)


def test_append_rows_grows_the_grid_and_update_beyond_it_is_refused(fake_google: FakeGoogle) -> None:
    fake_google.add_spreadsheet(SHEET, {"Bridge Log": [["When", "What"]]}, rows=2, cols=2)
    ws = gspread_client(fake_google).open_by_key(SHEET).worksheet("Bridge Log")
    ws.append_rows([["t1", "cycle"], ["t2", "cycle"]])
    assert fake_google.grid(SHEET, "Bridge Log") == [["When", "What"], ["t1", "cycle"], ["t2", "cycle"]]
    assert fake_google.sheet_properties(SHEET)[0]["gridProperties"]["rowCount"] == 3
    with pytest.raises(gspread.exceptions.APIError) as err:
        ws.update([["x", "y", "z"]], "A1")
    assert err.value.code == 400
    assert err.value.error["message"] == "Range ('Bridge Log'!C1) exceeds grid limits. Max rows: 3, max columns: 2"
    with pytest.raises(gspread.exceptions.APIError) as err:
        ws.get("A10:B12")  # a read that starts outside the grid is refused too
    assert err.value.error["message"] == "Range ('Bridge Log'!A10:B12) exceeds grid limits. Max rows: 3, max columns: 2"
    assert ws.get("A1:Z100") == [["When", "What"], ["t1", "cycle"], ["t2", "cycle"]]  # the end is clipped
    assert fake_google.grid(SHEET, "Bridge Log")[0] == ["When", "What"]


def test_add_worksheet_and_init_batch_update_are_kept(book: FakeGoogle) -> None:
    sh = gspread_client(book).open_by_key(SHEET)
    ws = sh.add_worksheet("Summary", rows=50, cols=8)
    referrals = sh.worksheet("Referrals")
    body = {
        "requests": [
            {
                "updateSheetProperties": {
                    "properties": {"sheetId": referrals.id, "gridProperties": {"frozenRowCount": 1}},
                    "fields": "gridProperties.frozenRowCount",
                }
            },
            {
                "setDataValidation": {
                    "range": {"sheetId": referrals.id, "startRowIndex": 1, "startColumnIndex": 2, "endColumnIndex": 3},
                    "rule": {
                        "condition": {"type": "ONE_OF_LIST", "values": [{"userEnteredValue": "New"}]},
                        "strict": True,
                        "showCustomUi": True,
                    },
                }
            },
            {
                "addProtectedRange": {
                    "protectedRange": {
                        "range": {"sheetId": ws.id},
                        "description": "Written by sheets-bridge",
                        "warningOnly": True,
                    }
                }
            },
            {
                "addConditionalFormatRule": {
                    "rule": {
                        "ranges": [{"sheetId": referrals.id, "startRowIndex": 1}],
                        "booleanRule": {
                            "condition": {"type": "CUSTOM_FORMULA", "values": [{"userEnteredValue": '=$C2="OVERDUE"'}]},
                            "format": {"backgroundColor": {"red": 1, "green": 0.8, "blue": 0.8}},
                        },
                    },
                    "index": 0,
                }
            },
            {
                "repeatCell": {
                    "range": {"sheetId": referrals.id, "endRowIndex": 1},
                    "cell": {"userEnteredFormat": {"textFormat": {"bold": True}}},
                    "fields": "userEnteredFormat.textFormat.bold",
                }
            },
            {
                "updateDimensionProperties": {
                    "range": {"sheetId": referrals.id, "dimension": "COLUMNS", "startIndex": 0, "endIndex": 1},
                    "properties": {"pixelSize": 120},
                    "fields": "pixelSize",
                }
            },
            {"appendDimension": {"sheetId": referrals.id, "dimension": "ROWS", "length": 500}},
        ]
    }
    reply = sh.batch_update(body)
    assert len(reply["replies"]) == 7
    assert reply["replies"][2]["addProtectedRange"]["protectedRange"]["warningOnly"] is True
    props = {p["title"]: p for p in book.sheet_properties(SHEET)}
    assert props["Summary"]["gridProperties"] == {"rowCount": 50, "columnCount": 8}
    assert props["Referrals"]["gridProperties"] == {"rowCount": 1500, "columnCount": 26, "frozenRowCount": 1}
    extras = book.tab_extras(SHEET, "Referrals")
    assert len(extras["dataValidations"]) == len(extras["conditionalFormats"]) == len(extras["formats"]) == 1
    assert book.tab_extras(SHEET, "Summary")["protectedRanges"][0]["description"] == "Written by sheets-bridge"
    assert [list(r) for b in book.batch_updates(SHEET) for r in b["requests"]][-1] == ["appendDimension"]
    meta = sh.fetch_sheet_metadata(params={"fields": "sheets(properties(title,gridProperties.frozenRowCount))"})
    assert meta == {
        "sheets": [
            {"properties": {"title": "Referrals", "gridProperties": {"frozenRowCount": 1}}},
            {"properties": {"title": "Bridge Log", "gridProperties": {}}},
            {"properties": {"title": "Summary", "gridProperties": {}}},
        ]
    }


def test_an_unknown_batch_update_request_is_refused_and_nothing_applies(book: FakeGoogle) -> None:
    sh = gspread_client(book).open_by_key(SHEET)
    body = {
        "requests": [
            {"addSheet": {"properties": {"title": "Summary"}}},
            {"makeCoffee": {"strength": 11}},
        ]
    }
    with pytest.raises(gspread.exceptions.APIError) as err:
        sh.batch_update(body)
    assert err.value.code == 400
    assert err.value.error["status"] == "INVALID_ARGUMENT"
    assert 'Unknown name "makeCoffee"' in err.value.error["message"]
    assert [p["title"] for p in book.sheet_properties(SHEET)] == ["Referrals", "Bridge Log"]
    assert len(book.batch_updates(SHEET)) == 1  # received and recorded, though refused


def test_open_by_key_unknown_or_unshared(fake_google: FakeGoogle) -> None:
    fake_google.add_spreadsheet(SHEET, {"Referrals": [HEADER]}, shared_with={SA_EMAIL})
    gc = gspread_client(fake_google)  # a static token: the owner's identity, not the service account
    with pytest.raises(gspread.exceptions.SpreadsheetNotFound):
        gc.open_by_key("no-such-sheet")
    with pytest.raises(PermissionError):
        gc.open_by_key(SHEET)
    r = _http(fake_google, "GET", f"/v4/spreadsheets/{SHEET}")
    assert r.json() == {"error": {"code": 403, "message": "The caller does not have permission", "status": "PERMISSION_DENIED"}}
    fake_google.share(SHEET, OWNER)
    assert gc.open_by_key(SHEET).sheet1.title == "Referrals"


# -- (3) googleapiclient Gmail ----------------------------------------------------------------------


def test_gmail_drafts_create_list_get_delete_and_send(fake_google: FakeGoogle) -> None:
    gmail = gmail_service(fake_google)
    drafts = gmail.users().drafts()
    made = drafts.create(userId="me", body={"message": {"raw": _message("k1@bridge")}}).execute()
    assert made["message"]["labelIds"] == ["DRAFT"]
    assert set(fake_google.drafts) == {made["id"]}
    hit = drafts.list(userId="me", q="rfc822msgid:k1@bridge").execute()
    assert [d["id"] for d in hit["drafts"]] == [made["id"]]
    assert drafts.list(userId="me", q="rfc822msgid:<k1@bridge>").execute()["resultSizeEstimate"] == 1
    assert drafts.list(userId="me", q="rfc822msgid:other@bridge").execute() == {"resultSizeEstimate": 0}
    assert drafts.list(userId="me", q="subject:referral received").execute()["resultSizeEstimate"] == 1
    # Gmail does not index custom headers: the bridge key is found by reading drafts, not by q.
    assert drafts.list(userId="me", q="k1").execute() == {"resultSizeEstimate": 0}

    raw = drafts.get(userId="me", id=made["id"], format="raw").execute()
    assert base64.urlsafe_b64decode(raw["message"]["raw"]) == fake_google.drafts[made["id"]]
    full = drafts.get(userId="me", id=made["id"], format="full").execute()
    headers = {h["name"]: h["value"] for h in full["message"]["payload"]["headers"]}
    assert headers["X-Sheets-Bridge-Key"] == "k1"
    meta = drafts.get(userId="me", id=made["id"], format="metadata").execute()
    assert {"name": "Subject", "value": "Referral update"} in meta["message"]["payload"]["headers"]
    assert "body" not in meta["message"]["payload"]

    drafts.delete(userId="me", id=made["id"]).execute()
    assert fake_google.drafts == {}
    with pytest.raises(HttpError) as err:
        drafts.get(userId="me", id=made["id"]).execute()
    assert err.value.resp.status == 404
    assert json.loads(err.value.content)["error"]["errors"][0]["reason"] == "notFound"

    sent = gmail.users().messages().send(userId="me", body={"raw": _message("digest@bridge", "Digest")}).execute()
    assert sent["labelIds"] == ["SENT"]
    assert b"Subject: Digest" in fake_google.sent[0]

    other = drafts.create(userId="me", body={"message": {"raw": _message("k2@bridge")}}).execute()
    drafts.send(userId="me", body={"id": other["id"]}).execute()  # a person clicking Send
    assert fake_google.drafts == {}
    assert b"Message-ID: <k2@bridge>" in fake_google.sent[1]


def test_gmail_drafts_list_pages_newest_first(fake_google: FakeGoogle) -> None:
    drafts = gmail_service(fake_google).users().drafts()
    ids = [drafts.create(userId="me", body={"message": {"raw": _message(f"k{i}@bridge")}}).execute()["id"] for i in range(5)]
    page1 = drafts.list(userId="me", maxResults=2).execute()
    page2 = drafts.list(userId="me", maxResults=2, pageToken=page1["nextPageToken"]).execute()
    page3 = drafts.list(userId="me", maxResults=2, pageToken=page2["nextPageToken"]).execute()
    seen = [d["id"] for p in (page1, page2, page3) for d in p["drafts"]]
    assert seen == list(reversed(ids))
    assert "nextPageToken" not in page3


def test_a_lost_drafts_create_response_makes_two_drafts_through_httplib2(fake_google: FakeGoogle) -> None:
    """The hazard the backend must repair: httplib2 re-sends a POST whose answer was lost."""
    drafts = gmail_service(fake_google).users().drafts()
    fake_google.lose_response_next(match="POST /gmail/v1/users/me/drafts")
    made = drafts.create(userId="me", body={"message": {"raw": _message("once@bridge")}}).execute()
    assert made["id"] in fake_google.drafts  # the caller saw one clean success...
    assert len(fake_google.drafts) == 2  # ...but Gmail holds two drafts of the same message
    found = drafts.list(userId="me", q="rfc822msgid:once@bridge").execute()
    assert found["resultSizeEstimate"] == 2
    assert [r.line for r in fake_google.requests].count("POST /gmail/v1/users/me/drafts") == 2


def test_gmail_search_lag_hides_the_newest_drafts_from_q_only(fake_google: FakeGoogle) -> None:
    drafts = gmail_service(fake_google).users().drafts()
    drafts.create(userId="me", body={"message": {"raw": _message("old@bridge")}}).execute()
    fake_google.search_lag(1)
    drafts.create(userId="me", body={"message": {"raw": _message("new@bridge")}}).execute()
    assert drafts.list(userId="me", q="rfc822msgid:new@bridge").execute() == {"resultSizeEstimate": 0}
    assert drafts.list(userId="me", q="rfc822msgid:old@bridge").execute()["resultSizeEstimate"] == 1
    assert drafts.list(userId="me").execute()["resultSizeEstimate"] == 2  # listing is not search
    fake_google.search_lag(0)
    assert drafts.list(userId="me", q="rfc822msgid:new@bridge").execute()["resultSizeEstimate"] == 1


def test_gmail_media_upload_paths(fake_google: FakeGoogle) -> None:
    """googleapiclient's media path (uploadType=media / multipart) lands in the same drafts."""
    msg = base64.urlsafe_b64decode(_message("up@bridge"))
    r = _http(
        fake_google, "POST", "/upload/gmail/v1/users/me/drafts?uploadType=media",
        data=msg, headers={"Content-Type": "message/rfc822"},
    )
    assert r.status_code == 200
    boundary = "===b0undary=="
    body = (
        f"--{boundary}\r\nContent-Type: application/json\r\n\r\n{{}}\r\n"
        f"--{boundary}\r\nContent-Type: message/rfc822\r\n\r\n"
    ).encode() + msg + f"\r\n--{boundary}--\r\n".encode()
    r2 = _http(
        fake_google, "POST", "/upload/gmail/v1/users/me/drafts?uploadType=multipart",
        data=body, headers={"Content-Type": f'multipart/related; boundary="{boundary}"'},
    )
    assert r2.status_code == 200
    assert len(fake_google.drafts) == 2
    assert all(b"Message-ID: <up@bridge>" in raw for raw in fake_google.drafts.values())


# -- (4) faults ------------------------------------------------------------------------------------


def test_a_429_burst_with_retry_after_then_success(book: FakeGoogle) -> None:
    book.fail_next(429, count=2, retry_after=7, match="values:batchGet")
    path = f"/v4/spreadsheets/{SHEET}/values:batchGet?ranges=Referrals"
    assert _http(book, "GET", f"/v4/spreadsheets/{SHEET}").status_code == 200  # not matched
    first, second, third = (_http(book, "GET", path) for _ in range(3))
    assert (first.status_code, second.status_code, third.status_code) == (429, 429, 200)
    assert first.headers["Retry-After"] == "7"
    err = first.json()["error"]
    assert (err["code"], err["status"]) == (429, "RESOURCE_EXHAUSTED")
    assert err["details"][0]["reason"] == "RATE_LIMIT_EXCEEDED"
    assert len(book.requests) == 4


def test_5xx_json_and_html_pages(book: FakeGoogle) -> None:
    book.fail_next(503, match="drafts")
    book.fail_next(502, html=True, match="values")
    gmail = _http(book, "POST", "/gmail/v1/users/me/drafts", json={"message": {"raw": _message("a@b")}})
    assert gmail.status_code == 503
    assert gmail.json()["error"]["errors"][0]["reason"] == "backendError"
    assert book.drafts == {}  # a failed request is not applied
    ws = gspread_client(book).open_by_key(SHEET).worksheet("Referrals")
    with pytest.raises(gspread.exceptions.APIError) as err:
        ws.get_all_values()
    assert err.value.response.status_code == 502
    assert err.value.code == -1  # gspread reads the code from JSON; an HTML page has none
    assert err.value.response.headers["Content-Type"].startswith("text/html")
    assert ws.get_all_values()[0] == HEADER  # the burst is over


def test_a_lost_write_response_was_applied(book: FakeGoogle) -> None:
    book.lose_response_next(match="values:batchUpdate")
    session = requests.Session()
    with pytest.raises(requests.exceptions.ConnectionError):
        session.post(
            f"{book.endpoint}/v4/spreadsheets/{SHEET}/values:batchUpdate",
            json={"valueInputOption": "RAW", "data": [{"range": "'Referrals'!C2", "values": [["Drafted"]]}]},
            headers={"Authorization": "Bearer t"},
            timeout=5,
        )
    assert book.grid(SHEET, "Referrals")[1] == ["R-1", "Ann Canary", "Drafted"]


def test_gspread_does_not_resend_a_write_whose_response_was_lost(book: FakeGoogle) -> None:
    """requests (under gspread) reports the lost answer instead of re-sending, unlike httplib2."""
    ws = gspread_client(book).open_by_key(SHEET).worksheet("Referrals")  # pooled connection now
    book.lose_response_next(match="values:batchUpdate")
    with pytest.raises(requests.exceptions.ConnectionError):
        ws.batch_update([{"range": "C3", "values": [["Drafted"]]}])
    assert [r.line for r in book.requests].count(f"POST /v4/spreadsheets/{SHEET}/values:batchUpdate") == 1
    assert book.grid(SHEET, "Referrals")[2][2] == "Drafted"


def test_a_slow_server_trips_the_client_timeout(book: FakeGoogle) -> None:
    book.delay_next(2.0, match="values")
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(
            f"{book.endpoint}/v4/spreadsheets/{SHEET}/values/Referrals",
            headers={"Authorization": "Bearer t"},
            timeout=0.3,
        )
    assert time.monotonic() - started < 1.5
    book.delay_next(0.2)
    started = time.monotonic()
    assert _http(book, "GET", f"/v4/spreadsheets/{SHEET}").status_code == 200
    assert time.monotonic() - started >= 0.2


def test_a_staff_sort_between_read_and_write_moves_a_row_number_write(book: FakeGoogle) -> None:
    """on_before runs a staff edit just before the write: writing by row number hits Bob."""
    ws = gspread_client(book).open_by_key(SHEET).worksheet("Referrals")
    rows = ws.get_all_values()
    ann_row = next(i for i, r in enumerate(rows, start=1) if r[0] == "R-1")

    def staff_sort(fake: FakeGoogle) -> None:
        grid = fake.grid(SHEET, "Referrals")
        fake.set_grid(SHEET, "Referrals", [grid[0], *sorted(grid[1:], key=lambda r: r[0], reverse=True)])

    book.on_before(staff_sort, match="values:batchUpdate")
    ws.batch_update([{"range": f"C{ann_row}", "values": [["Drafted"]]}])
    assert book.grid(SHEET, "Referrals")[1:] == [["R-2", "Bob Canary", "Drafted"], ["R-1", "Ann Canary", "New"]]


def test_google_can_go_away_and_come_back_at_the_same_endpoint(book: FakeGoogle) -> None:
    endpoint = book.endpoint
    book.stop()
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{endpoint}/v4/spreadsheets/{SHEET}", timeout=2)
    book.start()
    assert book.endpoint == endpoint
    assert _http(book, "GET", f"/v4/spreadsheets/{SHEET}/values/Referrals").json()["values"][1][0] == "R-1"


def test_the_token_endpoint_can_fail_too(
    fake_google: FakeGoogle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(google.auth._exponential_backoff.time, "sleep", lambda _s: None)
    write_authorized_user_token(tmp_path / "token.json")
    creds = user_credentials.Credentials.from_authorized_user_file(str(tmp_path / "token.json"))
    creds = creds.with_token_uri(fake_google.endpoint + "/token")
    fake_google.fail_next(503, match="POST /token")
    creds.refresh(google.auth.transport.requests.Request())  # google-auth retries a 5xx itself
    assert len(fake_google.requests_for("token")) == 2
    fake_google.reset_requests()
    fake_google.fail_next(503, count=10, match="POST /token")
    with pytest.raises(RefreshError) as err:
        creds.refresh(google.auth.transport.requests.Request())
    assert err.value.retryable
    assert len(fake_google.requests_for("token")) == 3  # then gives up: three tries in all


def test_the_request_log_counts_everything(book: FakeGoogle) -> None:
    ws = gspread_client(book).open_by_key(SHEET).worksheet("Referrals")
    book.reset_requests()
    ws.batch_update([{"range": "C2", "values": [["Sent"]]}])
    assert len(book.requests) == 1
    rec = book.requests[0]
    assert (rec.method, rec.api, rec.identity) == ("POST", "sheets", OWNER)
    assert rec.path == f"/v4/spreadsheets/{SHEET}/values:batchUpdate"
    assert isinstance(rec.json, dict)
    assert rec.json["valueInputOption"] == "RAW"
    assert rec.json["includeValuesInResponse"] is None  # gspread sends null for unset options


# -- auth, scopes and switches -------------------------------------------------------------------------


def test_a_token_without_the_sheets_scope_is_refused(book: FakeGoogle) -> None:
    book.register_token("compose-only", scopes=[COMPOSE_SCOPE])
    r = _http(book, "GET", f"/v4/spreadsheets/{SHEET}", headers={"Authorization": "Bearer compose-only"})
    assert r.status_code == 403
    err = r.json()["error"]
    assert err["message"] == "Request had insufficient authentication scopes."
    assert err["details"][0]["reason"] == "ACCESS_TOKEN_SCOPE_INSUFFICIENT"
    book.register_token("readonly", scopes=[SHEETS_SCOPE + ".readonly"])
    ro = {"Authorization": "Bearer readonly"}
    assert _http(book, "GET", f"/v4/spreadsheets/{SHEET}", headers=ro).status_code == 200
    write = _http(book, "POST", f"/v4/spreadsheets/{SHEET}/values:batchUpdate", headers=ro, json={"valueInputOption": "RAW", "data": []})
    assert write.status_code == 403
    gm = _http(book, "GET", "/gmail/v1/users/me/drafts", headers=ro)
    assert gm.status_code == 403
    assert gm.json()["error"]["errors"][0]["reason"] == "insufficientPermissions"


def test_a_disabled_api_answers_service_disabled(book: FakeGoogle) -> None:
    book.disable_api("sheets")
    r = _http(book, "GET", f"/v4/spreadsheets/{SHEET}")
    assert r.status_code == 403
    err = r.json()["error"]
    assert err["message"].startswith("Google Sheets API has not been used in project ")
    assert "Enable it by visiting https://console.developers.google.com/apis/api/sheets.googleapis.com" in err["message"]
    assert err["details"][0]["reason"] == "SERVICE_DISABLED"
    assert _http(book, "GET", "/gmail/v1/users/me/drafts").status_code == 200
    book.disable_api("gmail")
    assert _http(book, "GET", "/gmail/v1/users/me/drafts").json()["error"]["message"].startswith("Gmail API has not been used")
    book.enable_api("sheets")
    assert _http(book, "GET", f"/v4/spreadsheets/{SHEET}").status_code == 200


def test_no_credentials_is_401(book: FakeGoogle) -> None:
    r = requests.get(f"{book.endpoint}/v4/spreadsheets/{SHEET}", timeout=5)
    assert r.status_code == 401
    assert r.json()["error"]["status"] == "UNAUTHENTICATED"


# -- (5) google-auth against {endpoint}/token ------------------------------------------------------------


def test_service_account_refreshes_at_the_fake_and_sees_only_shared_sheets(
    fake_google: FakeGoogle, tmp_path: Path
) -> None:
    key = tmp_path / "sa.json"
    email = write_service_account_key(key)
    fake_google.add_spreadsheet(SHEET, {"Referrals": [HEADER]}, shared_with={email})
    fake_google.add_spreadsheet("not-shared", {"Referrals": [HEADER]}, shared_with={"someone@practice-test"})
    creds = service_account.Credentials.from_service_account_file(str(key), scopes=[SHEETS_SCOPE])
    creds = creds.with_token_uri(fake_google.endpoint + "/token")
    gc = gspread_client(fake_google, creds)
    assert gc.open_by_key(SHEET).sheet1.get_all_values() == [HEADER]
    with pytest.raises(PermissionError):
        gc.open_by_key("not-shared")
    assert fake_google.requests[0].line == "POST /token"
    assert fake_google.token_grants[0]["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert {r.identity for r in fake_google.requests_for("sheets")} == {email}
    # A service account has no mailbox of its own (no domain-wide delegation).
    with pytest.raises(HttpError) as err:
        gmail_service(fake_google, creds.with_scopes([COMPOSE_SCOPE])).users().drafts().list(userId="me").execute()
    assert err.value.resp.status == 400
    fake_google.revoke_tokens()
    with pytest.raises(RefreshError):
        creds.with_scopes([SHEETS_SCOPE]).refresh(google.auth.transport.requests.Request())


def test_authorized_user_refreshes_at_the_fake_then_revoke_stops_it(
    fake_google: FakeGoogle, tmp_path: Path
) -> None:
    token_file = tmp_path / "token.json"
    write_authorized_user_token(token_file)
    info = json.loads(token_file.read_text())
    assert set(info) >= {"token", "refresh_token", "token_uri", "client_id", "client_secret", "scopes"}
    creds = user_credentials.Credentials.from_authorized_user_file(str(token_file))
    assert creds.token_uri == "https://oauth2.googleapis.com/token"  # the file's, until redirected
    creds = creds.with_token_uri(fake_google.endpoint + "/token")
    drafts = gmail_service(fake_google, creds).users().drafts()
    drafts.create(userId="me", body={"message": {"raw": _message("u@bridge")}}).execute()
    # with_token_uri drops the file's expiry, so the stale token is tried first: 401, refresh, retry.
    assert [r.api for r in fake_google.requests] == ["gmail", "token", "gmail"]
    assert fake_google.requests_for("gmail")[-1].identity == OWNER
    assert len(fake_google.drafts) == 1
    grant = fake_google.token_grants[0]
    assert grant["grant_type"] == "refresh_token"
    assert set(grant["scope"].split()) == {SHEETS_SCOPE, COMPOSE_SCOPE}

    fake_google.revoke_tokens()
    fake_google.reset_requests()
    with pytest.raises(RefreshError, match="Token has been expired or revoked"):
        drafts.list(userId="me").execute()  # 401 for the old token, then the refresh is refused
    assert [r.api for r in fake_google.requests] == ["gmail", "token"]
    r = requests.get(
        f"{fake_google.endpoint}/gmail/v1/users/me/drafts",
        headers={"Authorization": f"Bearer {creds.token}"},
        timeout=5,
    )
    assert r.status_code == 401


def test_update_cells_writes_values_and_formats_and_a_range_clears_the_rest(book: FakeGoogle) -> None:
    log_id = next(p["sheetId"] for p in book.sheet_properties(SHEET) if p["title"] == "Bridge Log")
    url = f"/v4/spreadsheets/{SHEET}:batchUpdate"
    pct = {"numberFormat": {"type": "PERCENT", "pattern": "0%"}}
    first = {"updateCells": {
        "start": {"sheetId": log_id, "rowIndex": 0, "columnIndex": 0},
        "rows": [{"values": [{"userEnteredValue": {"stringValue": "=1+1"}},
                             {"userEnteredValue": {"numberValue": 0.62}, "userEnteredFormat": pct}]},
                 {"values": [{"userEnteredValue": {"boolValue": True}}]}],
        "fields": "userEnteredValue,userEnteredFormat",
    }}
    reply = _http(book, "POST", url, json={"requests": [first]})
    assert reply.status_code == 200 and reply.json()["replies"] == [{}]
    assert book.grid(SHEET, "Bridge Log") == [["=1+1", 0.62], [True]]
    assert book.formula_at(SHEET, "Bridge Log", "A1") is None  # stringValue is text
    assert book.format_at(SHEET, "Bridge Log", "B1") == pct
    assert book.format_at(SHEET, "Bridge Log", "A1") is None
    got = _http(book, "GET", f"/v4/spreadsheets/{SHEET}/values/'Bridge Log'!A1:B2",
                params={"valueRenderOption": "UNFORMATTED_VALUE"}).json()
    assert got["values"] == [["=1+1", 0.62], [True]]
    # A range wider than `rows`: the masked fields of every cell not covered are cleared.
    second = {"updateCells": {
        "range": {"sheetId": log_id, "startRowIndex": 0, "endRowIndex": 2,
                  "startColumnIndex": 0, "endColumnIndex": 2},
        "rows": [{"values": [{"userEnteredValue": {"stringValue": "only"}}]}],
        "fields": "userEnteredValue,userEnteredFormat",
    }}
    assert _http(book, "POST", url, json={"requests": [second]}).status_code == 200
    assert book.grid(SHEET, "Bridge Log") == [["only"]]
    assert book.format_at(SHEET, "Bridge Log", "B1") is None
    # Past the grid, or with no fields: Google's 400, nothing applied.
    past = {"updateCells": {**second["updateCells"], "range": {"sheetId": log_id, "endRowIndex": 5000}}}
    assert _http(book, "POST", url, json={"requests": [past]}).status_code == 400
    nofields = {"updateCells": {**second["updateCells"], "fields": ""}}
    assert _http(book, "POST", url, json={"requests": [nofields]}).status_code == 400
    assert book.grid(SHEET, "Bridge Log") == [["only"]]
