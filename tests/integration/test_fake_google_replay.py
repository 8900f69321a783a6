"""The fake Google answers recorded Sheets requests as Google did (status and JSON shape).

The recordings are gspread's own cassettes of real Sheets v4 exchanges (tests/fakes/recordings,
MIT). Each replay starts where the recording started (a new spreadsheet with one empty
`Sheet1`), sends the same requests in order to the fake, and compares every answer: keys, value
types, and the values the state decides (clipped and quoted ranges, values, counts, errors).
A mismatch here means the fake drifted from Google, and every Google-backend test built on it
would be testing a Google that does not exist.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes.google_server import FakeGoogle
from fakes.replay import replay, shape_diff

RECORDINGS = Path(__file__).resolve().parents[1] / "fakes" / "recordings"
CASSETTES = sorted(p.name for p in RECORDINGS.glob("*.json"))
PRIVATE = frozenset({"1jIKzPs8LsiZZdLdeMEP-5ZIHw6RkjiOmj1LrJN706Yc"})  # recorded as a 403


def test_the_subset_covers_what_the_bridge_uses() -> None:
    markers = {
        "values:batchGet", "values:batchUpdate", ":append", ":clear", "values:batchClear",
        "valueInputOption=USER_ENTERED", "valueRenderOption=UNFORMATTED_VALUE", "addSheet",
        "updateSheetProperties", "addProtectedRange", "setDataValidation", "insertDimension",
        "updateDimensionProperties", "sortRange", '"code":404', '"code":403',
    }
    texts = [(RECORDINGS / name).read_text() for name in CASSETTES]
    assert len(CASSETTES) >= 30
    assert {m for m in markers if not any(m in t for t in texts)} == set()


@pytest.mark.parametrize("name", CASSETTES)
def test_replayed_recording_matches_google(fake_google: FakeGoogle, name: str) -> None:
    count, problems = replay(fake_google, RECORDINGS / name, private_ids=PRIVATE)
    assert count > 0
    assert not problems, "\n".join(f"#{p.index} {p.request}: {p.problem}" for p in problems[:10])


def test_shape_diff_catches_what_it_must() -> None:
    """The comparison itself: a missing `values` key, a wrong clip, a type change all show."""
    want = {"range": "Sheet1!A1:Z1000", "majorDimension": "ROWS"}
    assert shape_diff(want, want) == []
    assert shape_diff(want, {**want, "values": [["x"]]}) == ["$.values: unexpected"]
    assert shape_diff(want, {**want, "range": "Sheet1!A1:B2"}) != []
    assert shape_diff({"n": 1}, {"n": "1"}) != []
    assert shape_diff({"sheetId": 5}, {"sheetId": 7}) == []  # Google picks these at random
    assert shape_diff({"sheetId": 5}, {"sheetId": "7"}) != []
