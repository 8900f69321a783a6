"""The Google backend and the Gmail drafter over real HTTP against the fake Google.

What a practice would notice: a fixed number of requests per cycle whatever the sheet's size, no
write at all when nothing changed, rows sorted during a write put right, names that look like
formulas kept as text, and every failure of Google's (quota, outage, a silent server, a revoked
sign-in, an answer lost after a write) ending in one line and a clean next cycle, with exactly
one draft per key. RELIABILITY.md F2, F3, F4, F8-F13 and F19.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from conftest import CANARY_STRINGS, FIXED_NOW, patient, sheet_grid
from fakes.google_server import FakeGoogle
from google_support import (
    FAST,
    SA_EMAIL,
    SHEET_ID,
    google_config,
    open_fast_drafter,
    open_fast_sheet,
    sheets_calls,
    sheets_writes,
)

from sheets_bridge.cli import main
from sheets_bridge.config import BridgeConfig
from sheets_bridge.cycle import CycleReport, run_cycle
from sheets_bridge.drafting import draft_planner
from sheets_bridge.errors import BridgeError
from sheets_bridge.google.errors import GoogleAuthError, GoogleError, GoogleUnavailableError
from sheets_bridge.google.transport import RefusedCallError, RetryPolicy
from sheets_bridge.model import BRIDGE_COLUMNS, FOLLOWUPS_TAB, Plan, Snapshot
from sheets_bridge.outbox import Outbox
from sheets_bridge.sheets import ApplyReport
from sheets_bridge.sheets.google import GoogleSheet
from sheets_bridge.state import StateStore
from sheets_bridge.summaries import summary_tabs

NAMES = ["Ana", "Ben", "Cy", "Dee", "Eli", "Fay", "Gus", "Hal", "Ivy", "Jo", "Kit", "Lu"]


def rows(n: int | None = None, names: list[str] = NAMES, **extra: Any) -> list[list[object]]:
    names = names if n is None else [f"P{i:05d}" for i in range(n)]
    return sheet_grid([
        patient(name, f"{name}son", Received=f"2025-03-0{1 + i % 3} 0{8 + i % 2}:00",
                Patient_Email=f"{name.lower()}@example.org", Referrer_Email="dr@example.com",
                **extra)
        for i, name in enumerate(names)
    ])


def cycle(config: BridgeConfig, sheet: Any, *, now: Any = FIXED_NOW, drafter: Any = None
          ) -> CycleReport:
    with StateStore(config.state_dir) as state:
        outbox = Outbox(state, drafter) if drafter is not None else None
        return run_cycle(
            config, sheet, state, now=now, tab_builders=summary_tabs(),
            draft_planner=draft_planner(config) if drafter is not None else None, outbox=outbox,
        )


def shape(fake: FakeGoogle) -> Counter[str]:
    """The Sheets requests of a cycle, by method and API call (ids and ranges left out)."""
    out: Counter[str] = Counter()
    for line in sheets_calls(fake):
        method, path = line.split(" ", 1)
        call = re.sub(r"^/v4/spreadsheets/[^/:]+", "", path) or "(metadata)"
        out[f"{method} {call}"] += 1
    return out


def by_name(fake: FakeGoogle, spreadsheet: str = SHEET_ID) -> dict[str, dict[str, object]]:
    grid = fake.grid(spreadsheet, "Referrals")
    headers = grid[0]
    return {
        str(r[1]): {h: (r[i] if i < len(r) else "") for i, h in enumerate(headers)}
        for r in grid[1:]
    }


@pytest.fixture
def practice(fake_google: FakeGoogle, tmp_path: Path) -> BridgeConfig:
    fake_google.add_spreadsheet(SHEET_ID, {"Referrals": rows()})
    return google_config(fake_google, tmp_path)


# ------------------------------------------------------------------------------ the budget
@pytest.mark.slow
def test_a_cycle_costs_the_same_requests_at_100_and_5000_rows(
    fake_google: FakeGoogle, tmp_path: Path
) -> None:
    shapes = {}
    for n in (100, 5000):
        spreadsheet = f"Sheet{n}"
        fake_google.add_spreadsheet(spreadsheet, {"Referrals": rows(n)})
        config = google_config(fake_google, tmp_path / str(n), mail="eml", spreadsheet=spreadsheet)
        patient_policy = RetryPolicy(attempts=1, read_timeout=120.0)  # any retry would show
        sheet = GoogleSheet.from_config(config.sheet, policy=patient_policy)
        fake_google.reset_requests()
        assert cycle(config, sheet).outcome == "ok"  # IDs, stages, five new tabs
        first = shape(fake_google)
        fake_google.reset_requests()
        assert cycle(config, sheet, now=FIXED_NOW + timedelta(days=1)).outcome == "ok"
        later = shape(fake_google)
        fake_google.reset_requests()
        assert cycle(config, sheet, now=FIXED_NOW + timedelta(days=1, minutes=5)).outcome == "quiet"
        quiet = shape(fake_google)
        shapes[n] = (first, later, quiet)
    assert shapes[100] == shapes[5000]
    first, later, quiet = shapes[5000]
    assert first["POST /values:batchUpdate"] == 1  # Referrals
    # The five new tabs in one request, then their values and looks (updateCells) in one.
    assert first["POST :batchUpdate"] == 2
    assert later["GET (metadata)"] == 0
    assert later["POST /values:batchUpdate"] + later["POST :batchUpdate"] <= 2
    assert quiet == Counter({"GET /values:batchGet": 1})  # one read, no write at all


def test_a_quiet_cycle_sends_no_write(practice: BridgeConfig, fake_google: FakeGoogle) -> None:
    sheet = open_fast_sheet(practice)
    cycle(practice, sheet)
    fake_google.reset_requests()
    assert cycle(practice, sheet, now=FIXED_NOW + timedelta(minutes=3)).outcome == "quiet"
    assert sheets_writes(fake_google) == []


def test_the_first_cycle_reads_metadata_once_and_writes_bridge_cells_only(
    practice: BridgeConfig, fake_google: FakeGoogle
) -> None:
    before = fake_google.grid(SHEET_ID, "Referrals")
    cycle(practice, open_fast_sheet(practice))
    after = fake_google.grid(SHEET_ID, "Referrals")
    width = len(before[0])
    assert [r[:width] for r in after] == [r + [""] * (width - len(r)) for r in before] or all(
        [str(v) for v in a[:width]] == [str(v) for v in b] + [""] * (width - len(b))
        for a, b in zip(after, before, strict=True)
    )
    assert after[0][width:] == list(BRIDGE_COLUMNS)
    gets = [c for c in sheets_calls(fake_google) if c == f"GET /v4/spreadsheets/{SHEET_ID}"]
    assert len(gets) == 1


# ------------------------------------------------------------------------------ F4: sorts
class Recording(GoogleSheet):
    reports: list[ApplyReport]

    def apply(self, snapshot: Snapshot, plan: Plan, columns: dict[str, int]) -> ApplyReport:
        report = super().apply(snapshot, plan, columns)
        self.reports = [*getattr(self, "reports", []), report]
        return report


def recording_sheet(config: BridgeConfig) -> Recording:
    from sheets_bridge.google.credentials import SHEETS_SCOPE, load_credentials

    creds = load_credentials(config.sheet.credentials, scopes=[SHEETS_SCOPE],  # type: ignore[union-attr]
                             endpoint=config.sheet.endpoint)  # type: ignore[union-attr]
    return Recording(SHEET_ID, credentials=creds, endpoint=config.sheet.endpoint,  # type: ignore[union-attr]
                     policy=FAST)


def test_a_sort_during_the_write_is_found_by_the_read_back_and_put_right(
    practice: BridgeConfig, fake_google: FakeGoogle
) -> None:
    def staff_sort(fake: FakeGoogle) -> None:
        grid = fake.grid(SHEET_ID, "Referrals")
        fake.set_grid(SHEET_ID, "Referrals", [grid[0], *sorted(grid[1:], key=lambda r: str(r[1]),
                                                              reverse=True)])

    fake_google.on_before(staff_sort, match=f"POST /v4/spreadsheets/{SHEET_ID}/values:batchUpdate")
    sheet = recording_sheet(practice)
    cycle(practice, sheet)
    report = sheet.reports[0]
    assert report.repaired, "the read-back should have found the moved rows"
    assert all("moved from row" in why for _, why in report.repaired)
    assert not report.skipped
    records = by_name(fake_google)
    assert [records[n]["Referral ID"] for n in NAMES] == [f"R-{i:05d}" for i in range(1, 13)]
    # every row's bridge cells are its own: the Emails/Attention of Ana are not on Lu's row
    assert {r["Patient Last Name"] for r in records.values()} == {f"{n}son" for n in NAMES}


def test_a_row_deleted_during_the_write_changes_no_other_patient(
    practice: BridgeConfig, fake_google: FakeGoogle, tmp_path: Path
) -> None:
    reference_config = google_config(fake_google, tmp_path / "ref", mail="eml",
                                     spreadsheet="Reference")
    fake_google.add_spreadsheet("Reference", {"Referrals": rows()})
    cycle(reference_config, open_fast_sheet(reference_config))
    expected = by_name(fake_google, "Reference")

    def delete_row(fake: FakeGoogle) -> None:
        grid = fake.grid(SHEET_ID, "Referrals")
        del grid[3]  # Cy
        fake.set_grid(SHEET_ID, "Referrals", grid)

    fake_google.on_before(delete_row, match=f"POST /v4/spreadsheets/{SHEET_ID}/values:batchUpdate")
    cycle(practice, open_fast_sheet(practice))
    got = by_name(fake_google)
    assert "Cy" not in got
    for name, record in got.items():
        for column in ("Referral ID", "Stage", "Source Tag", "Follow-up Due"):
            assert record[column] == expected[name][column], (name, column)


# ------------------------------------------------------------------------------ RAW
def test_a_name_that_looks_like_a_formula_stays_text_everywhere(
    fake_google: FakeGoogle, tmp_path: Path
) -> None:
    fake_google.add_spreadsheet(SHEET_ID, {"Referrals": rows()})
    config = google_config(fake_google, tmp_path)
    sheet = open_fast_sheet(config)
    # staff typed '=1+1 (text) as a first name: as the UI stores it, a RAW text cell
    sheet.client.values_update(SHEET_ID, "'Referrals'!B2", params={"valueInputOption": "RAW"},
                               body={"values": [["=1+1"]]})
    assert fake_google.formula_at(SHEET_ID, "Referrals", "B2") is None
    cycle(config, sheet, now=FIXED_NOW + timedelta(days=1))  # everyone is in the Follow-ups queue
    queue = fake_google.grid(SHEET_ID, FOLLOWUPS_TAB)
    hits = [(r, c) for r, row in enumerate(queue) for c, v in enumerate(row)
            if isinstance(v, str) and v.startswith("=1+1")]
    assert hits, "the name should be in the Follow-ups queue"
    for r, c in hits:
        from sheets_bridge.columns import column_letter

        assert fake_google.formula_at(SHEET_ID, FOLLOWUPS_TAB, f"{column_letter(c)}{r + 1}") is None
    assert all(
        fake_google.formula_at(SHEET_ID, "Referrals", f"{column_letter(c)}{r}") is None
        for r in range(1, 14) for c in range(17, 24)
    )


# ------------------------------------------------------------------------------ F8-F10
def test_a_429_burst_is_waited_out_and_the_cycle_succeeds(
    practice: BridgeConfig, fake_google: FakeGoogle
) -> None:
    fake_google.fail_next(429, count=2, match="values:batchGet", retry_after=0.01)
    report = cycle(practice, open_fast_sheet(practice))
    assert report.outcome == "ok"
    assert sheets_calls(fake_google).count(
        next(c for c in sheets_calls(fake_google) if "values:batchGet" in c)
    ) >= 3


def test_a_429_storm_ends_the_cycle_cleanly_and_the_next_carries_on(
    practice: BridgeConfig, fake_google: FakeGoogle
) -> None:
    sheet = open_fast_sheet(practice)
    fake_google.fail_next(429, count=100, match="values:batchGet")
    with pytest.raises(GoogleUnavailableError) as caught:
        cycle(practice, sheet)
    assert caught.value.retryable
    assert "next one carries on" in str(caught.value)
    reads = [c for c in sheets_calls(fake_google) if "values:batchGet" in c]
    assert len(reads) == FAST.attempts  # bounded, never an endless loop
    assert sheets_writes(fake_google) == []
    fake_google.clear_faults()
    assert cycle(practice, sheet).outcome == "ok"


def test_an_outage_page_is_an_error_not_a_crash_and_its_body_is_never_shown(
    practice: BridgeConfig, fake_google: FakeGoogle, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_google.fail_next(502, count=100, html=True, match="/v4/spreadsheets")
    with pytest.raises(GoogleUnavailableError) as caught:
        cycle(practice, open_fast_sheet(practice))
    assert "error page" in str(caught.value)
    assert "<html" not in str(caught.value).lower()


def test_a_silent_server_times_out_and_the_next_try_succeeds(
    practice: BridgeConfig, fake_google: FakeGoogle
) -> None:
    quick = RetryPolicy(attempts=2, base=0.01, cap=0.02, budget=1.0, connect_timeout=1.0,
                        read_timeout=0.3)
    sheet = GoogleSheet.from_config(practice.sheet, policy=quick)
    fake_google.delay_next(1.0, match="values:batchGet")
    assert cycle(practice, sheet).outcome == "ok"
    fake_google.delay_next(1.0, match="values:batchGet")
    fake_google.delay_next(1.0, match="values:batchGet")
    with pytest.raises(GoogleUnavailableError, match="did not answer"):
        cycle(practice, sheet, now=FIXED_NOW + timedelta(days=1))


# ------------------------------------------------------------------------------ F3, F12
def test_a_write_whose_answer_was_lost_is_sent_again_harmlessly(
    practice: BridgeConfig, fake_google: FakeGoogle
) -> None:
    fake_google.lose_response_next(match="values:batchUpdate")
    sheet = open_fast_sheet(practice)
    assert cycle(practice, sheet).outcome == "ok"
    records = by_name(fake_google)
    assert [records[n]["Referral ID"] for n in NAMES] == [f"R-{i:05d}" for i in range(1, 13)]
    assert len(fake_google.grid(SHEET_ID, "Referrals")) == 13  # nothing appended twice
    assert cycle(practice, sheet, now=FIXED_NOW + timedelta(minutes=3)).outcome == "quiet"


def test_one_refused_range_is_isolated_and_the_rest_is_written(
    fake_google: FakeGoogle, tmp_path: Path
) -> None:
    fake_google.add_spreadsheet(SHEET_ID, {"Referrals": [["a", "b", "c", "d"]] * 1})
    config = google_config(fake_google, tmp_path, mail="eml")
    sheet = open_fast_sheet(config)
    data = [
        ({"range": f"'Referrals'!{col}2", "majorDimension": "ROWS", "values": [[col]]}, [(2, i)])
        for i, col in enumerate("ABCD")
    ]
    fake_google.fail_next(400, count=3, match="values:batchUpdate")  # all, A+B, A: A is bad
    refused = sheet.write_values(data)
    assert [cells for cells, _ in refused] == [[(2, 0)]]
    assert fake_google.grid(SHEET_ID, "Referrals")[1] == ["", "B", "C", "D"]


# ------------------------------------------------------------------------------ F11
def test_a_revoked_sign_in_stops_with_one_line_and_no_loop(
    practice: BridgeConfig, fake_google: FakeGoogle, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_google.revoke_tokens()
    code = main(["sync", "--config", str(write_config(practice)), "--now", FIXED_NOW.isoformat()])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == GoogleAuthError.exit_code
    assert len(err) == 1
    assert "key" in err[0] or "sheets-bridge auth" in err[0]
    assert len(fake_google.requests_for("token")) <= 3


def test_a_revoked_gmail_token_says_run_auth_again(
    practice: BridgeConfig, fake_google: FakeGoogle
) -> None:
    drafter = open_fast_drafter(practice)
    fake_google.revoke_tokens()
    with pytest.raises(GoogleAuthError, match="run `sheets-bridge auth --config PATH` again"):
        drafter.find_all("R-00001.referrer_acknowledgement")


def write_config(config: BridgeConfig) -> Path:
    import yaml

    sheet, mail = config.sheet, config.mail
    data = {
        "practice": {"name": config.practice.name, "owner_email": config.practice.owner_email},
        "sheet": {"kind": "google", "spreadsheet": sheet.spreadsheet,  # type: ignore[union-attr]
                  "credentials": str(sheet.credentials), "endpoint": sheet.endpoint},  # type: ignore[union-attr]
        "mail": {"kind": "gmail", "credentials": str(mail.credentials),  # type: ignore[union-attr]
                 "endpoint": mail.endpoint},  # type: ignore[union-attr]
        "state_dir": str(config.state_dir),
    }
    path = config.state_dir.parent / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


# ------------------------------------------------------------------------------ errors
def test_a_sheet_not_shared_names_the_address_to_share_with(
    fake_google: FakeGoogle, tmp_path: Path
) -> None:
    fake_google.add_spreadsheet(SHEET_ID, {"Referrals": rows()}, shared_with={"x@example.com"})
    config = google_config(fake_google, tmp_path, mail="eml")
    with pytest.raises(GoogleError) as caught:
        open_fast_sheet(config).read()
    assert SA_EMAIL in str(caught.value) and "Share" in str(caught.value)


def test_api_disabled_and_spreadsheet_missing_say_what_to_do(
    fake_google: FakeGoogle, tmp_path: Path
) -> None:
    fake_google.add_spreadsheet(SHEET_ID, {"Referrals": rows()})
    config = google_config(fake_google, tmp_path, mail="eml", spreadsheet="NoSuchSheet")
    with pytest.raises(GoogleError, match="No spreadsheet NoSuchSheet"):
        open_fast_sheet(config).read()
    fake_google.disable_api("sheets")
    config = google_config(fake_google, tmp_path / "b", mail="eml")
    with pytest.raises(GoogleError, match="API is not enabled"):
        open_fast_sheet(config).read()


def test_a_token_without_the_spreadsheets_scope_says_so(fake_google: FakeGoogle) -> None:
    from google.oauth2.credentials import Credentials

    from sheets_bridge.google.credentials import LoadedCredentials

    fake_google.add_spreadsheet(SHEET_ID, {"Referrals": rows()})
    fake_google.register_token("narrow", scopes=["https://www.googleapis.com/auth/gmail.compose"])
    creds = LoadedCredentials(Credentials(token="narrow"), False, None)
    sheet = GoogleSheet(SHEET_ID, credentials=creds, endpoint=fake_google.endpoint, policy=FAST)
    with pytest.raises(GoogleError, match="lack the spreadsheets scope"):
        sheet.read()


def test_check_on_google_reports_a_missing_tab_in_one_line(
    fake_google: FakeGoogle, tmp_path: Path
) -> None:
    from sheets_bridge.doctor import check

    fake_google.add_spreadsheet(SHEET_ID, {"Sheet1": [["x"]]})
    config = google_config(fake_google, tmp_path, mail="eml")
    findings = check(config)
    fails = [text for level, text in findings if level == "fail"]
    assert any("No tab named Referrals" in text for text in fails)


def test_credentials_readable_by_others_are_refused_with_the_chmod(
    practice: BridgeConfig, fake_google: FakeGoogle
) -> None:
    from sheets_bridge.runner import run_sync

    key = practice.sheet.credentials  # type: ignore[union-attr]
    key.chmod(0o644)
    with pytest.raises(BridgeError, match=f"chmod 600 {re.escape(str(key))}"):
        run_sync(practice, now=FIXED_NOW)


# ------------------------------------------------------------------------------ Gmail
def drafts_by_key(fake: FakeGoogle) -> Counter[str]:
    out: Counter[str] = Counter()
    for raw in fake.drafts.values():
        msg = message_from_bytes(raw, policy=policy.default)
        out[str(msg["X-Sheets-Bridge-Key"])] += 1
    return out


def test_drafts_are_made_once_and_found_again(
    practice: BridgeConfig, fake_google: FakeGoogle
) -> None:
    drafter = open_fast_drafter(practice)
    report = cycle(practice, open_fast_sheet(practice), drafter=drafter)
    assert report.drafts_made
    counts = drafts_by_key(fake_google)
    assert set(counts) == set(report.drafts_made) and set(counts.values()) == {1}
    again = cycle(practice, open_fast_sheet(practice), drafter=open_fast_drafter(practice),
                  now=FIXED_NOW + timedelta(minutes=5))
    assert again.drafts_made == []
    assert drafts_by_key(fake_google) == counts
    records = by_name(fake_google)
    assert "drafted" in str(records["Ana"]["Emails"])


def test_a_lost_create_answer_leaves_exactly_one_draft(
    practice: BridgeConfig, fake_google: FakeGoogle
) -> None:
    fake_google.search_lag(1)  # the search has not seen the new draft yet either
    fake_google.lose_response_next(match="POST /gmail/v1/users/me/drafts")
    report = cycle(practice, open_fast_sheet(practice), drafter=open_fast_drafter(practice))
    counts = drafts_by_key(fake_google)
    assert set(counts.values()) == {1}
    assert set(report.drafts_made) == set(counts)


def test_gmail_quota_mid_batch_leaves_the_rest_pending_and_none_twice(
    practice: BridgeConfig, fake_google: FakeGoogle
) -> None:
    fake_google.fail_next(429, count=1, match="POST /gmail/v1/users/me/drafts")
    first = cycle(practice, open_fast_sheet(practice), drafter=open_fast_drafter(practice))
    assert first.outcome == "ok"
    made = drafts_by_key(fake_google)
    second = cycle(practice, open_fast_sheet(practice), drafter=open_fast_drafter(practice),
                   now=FIXED_NOW + timedelta(minutes=15))
    counts = drafts_by_key(fake_google)
    assert set(counts.values()) == {1}
    assert len(counts) > len(made)
    # staff delete one draft in Gmail: it is never made again
    drafter = open_fast_drafter(practice)
    victim = min(counts)
    ref = drafter.find(victim)
    assert ref is not None
    drafter.delete(ref)
    cycle(practice, open_fast_sheet(practice), drafter=open_fast_drafter(practice),
          now=FIXED_NOW + timedelta(minutes=30))
    assert victim not in drafts_by_key(fake_google)
    assert second.outcome == "ok"


def test_only_draft_calls_leave_the_process(practice: BridgeConfig, fake_google: FakeGoogle
                                            ) -> None:
    drafter = open_fast_drafter(practice)
    fake_google.reset_requests()
    with pytest.raises(RefusedCallError):
        drafter.service.users().messages().list(userId="me").execute()
    with pytest.raises(RefusedCallError):
        drafter.service.users().messages().send(userId="me", body={"raw": ""}).execute()
    with pytest.raises(RefusedCallError):
        drafter.service.users().settings().getVacation(userId="me").execute()
    assert fake_google.requests_for("gmail") == []
    assert fake_google.sent == []


def test_logs_carry_no_patient_data(
    fake_google: FakeGoogle, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from conftest import CANARY_PATIENTS

    grid = sheet_grid([
        patient(p["Patient First Name"], p["Patient Last Name"], Patient_Email=p["Patient Email"],
                Reason=p["Reason"], Patient_Phone=p["Patient Phone"],
                Referrer_Email="dr@example.com")
        for p in CANARY_PATIENTS
    ])
    fake_google.add_spreadsheet(SHEET_ID, {"Referrals": grid})
    config = google_config(fake_google, tmp_path)
    caplog.set_level(logging.DEBUG)
    fake_google.fail_next(503, count=1)
    fake_google.lose_response_next(match="values:batchUpdate")
    cycle(config, open_fast_sheet(config), drafter=open_fast_drafter(config))
    for canary in CANARY_STRINGS:
        assert canary not in caplog.text, canary


# ------------------------------------------------------------------------------ look-alikes
def test_an_exact_copy_of_a_row_and_two_identical_new_rows_are_told_apart(
    practice: BridgeConfig, fake_google: FakeGoogle
) -> None:
    sheet = recording_sheet(practice)
    cycle(practice, sheet)
    grid = fake_google.grid(SHEET_ID, "Referrals")
    rid = grid[0].index("Referral ID")
    twin = [str(v) for v in grid[2][:17]]  # staff cells only: typed twice, no ID yet
    grid.append(list(grid[1]))  # Ana copied whole, with her Referral ID
    grid.append(twin)
    grid.append(list(twin))
    fake_google.set_grid(SHEET_ID, "Referrals", grid)
    cycle(practice, sheet, now=FIXED_NOW + timedelta(minutes=5))
    report = sheet.reports[-1]
    assert report.skipped == [] and report.repaired == []
    after = fake_google.grid(SHEET_ID, "Referrals")
    ids = [str(r[rid]) for r in after[1:]]
    assert len(ids) == len(set(ids)) and all(ids)
    assert after[1][rid] == grid[1][rid]  # the original keeps its ID
    again = cycle(practice, sheet, now=FIXED_NOW + timedelta(minutes=10))
    assert again.cells_written == 0 or all(
        w.column != "Referral ID" for w in (again.result.plan.cell_writes if again.result else ())
    )


def test_a_sort_during_a_write_that_gives_new_rows_their_ids(
    practice: BridgeConfig, fake_google: FakeGoogle
) -> None:
    sheet = recording_sheet(practice)
    cycle(practice, sheet)
    before = by_name(fake_google)
    grid = fake_google.grid(SHEET_ID, "Referrals")
    for name in ("Mo", "Ned", "Oz"):
        grid.append(["2025-03-04 08:00", name, f"{name}son", "", "", "Provider", "Dr Rivera"])
    fake_google.set_grid(SHEET_ID, "Referrals", grid)

    def staff_sort(fake: FakeGoogle) -> None:
        now = fake.grid(SHEET_ID, "Referrals")
        fake.set_grid(SHEET_ID, "Referrals", [now[0], *sorted(now[1:], key=lambda r: str(r[1]))])

    fake_google.on_before(staff_sort, match=f"POST /v4/spreadsheets/{SHEET_ID}/values:batchUpdate")
    cycle(practice, sheet, now=FIXED_NOW + timedelta(minutes=5))
    after = by_name(fake_google)
    for name, record in before.items():
        assert after[name]["Referral ID"] == record["Referral ID"], name
    new = [after[n]["Referral ID"] for n in ("Mo", "Ned", "Oz")]
    assert sorted(new) == ["R-00013", "R-00014", "R-00015"]
    assert sheet.reports[-1].skipped == []


# ------------------------------------------------------------------------------ digest
def test_the_digest_is_drafted_in_gmail_or_sent_to_the_owner_only_when_asked(
    fake_google: FakeGoogle, tmp_path: Path
) -> None:
    from datetime import datetime

    from conftest import NY

    from sheets_bridge.digest_run import make_digest

    fake_google.add_spreadsheet(SHEET_ID, {"Referrals": rows()})
    monday = datetime(2025, 3, 10, 9, 0, tzinfo=NY)
    config = google_config(fake_google, tmp_path / "draft")
    cycle(config, open_fast_sheet(config), now=monday - timedelta(days=1))
    drafted = make_digest(config, monday)
    assert drafted.status == "drafted"
    assert any(k.startswith("digest.") for k in drafts_by_key(fake_google))
    assert fake_google.sent == []
    sending = google_config(fake_google, tmp_path / "send", digest={"send": True})
    sent = make_digest(sending, monday + timedelta(days=7))
    assert sent.status == "sent"
    assert len(fake_google.sent) == 1
    msg = message_from_bytes(fake_google.sent[0], policy=policy.default)
    assert str(msg["To"]).endswith("owner@example.com>") or str(msg["To"]) == "owner@example.com"
