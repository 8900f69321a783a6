"""The fake Google answers gspread over real HTTP (a quick check that the fixture is wired)."""

from __future__ import annotations

from fakes.google_server import FakeGoogle


def test_fixture_serves_spreadsheet_metadata(fake_google: FakeGoogle) -> None:
    import requests

    fake_google.add_spreadsheet("S1", {"Referrals": [["Referral ID"]]})
    r = requests.get(
        f"{fake_google.endpoint}/v4/spreadsheets/S1",
        headers={"Authorization": "Bearer t"},
        timeout=5,
    )
    assert r.status_code == 200
    assert r.json()["sheets"][0]["properties"]["title"] == "Referrals"
    assert [x.line for x in fake_google.requests] == ["GET /v4/spreadsheets/S1"]
