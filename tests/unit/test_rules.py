"""Row rules, table-driven: Stage, Follow-up Due in business time (B12), Attention lines.

``now`` is FIXED_NOW (Tuesday 2025-03-04 10:00 New York) unless a case says otherwise; the
contact window is the default 24 hours, business hours 08:00-17:00 Monday to Friday.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from conftest import BERLIN, FIXED_NOW, NY, ConfigFactory, make_sheet, records, run_one

from sheets_bridge.columns import resolve_columns
from sheets_bridge.config import BridgeConfig
from sheets_bridge.dates import format_moment
from sheets_bridge.identity import row_identity
from sheets_bridge.model import FOLLOWUPS_TAB, STAFF_COLUMNS, CellValue, Referral, SheetRow
from sheets_bridge.rules import RuleContext, follow_up_due, is_empty_row, read_referral
from sheets_bridge.worktabs import FOLLOWUPS_HEADERS

UTC = ZoneInfo("UTC")
COLS = resolve_columns(STAFF_COLUMNS, {})
EVERY_DAY = {"open_days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}
ROUND_THE_CLOCK = {**EVERY_DAY, "start": "00:00", "end": "23:59"}


def read(config: BridgeConfig, now: datetime = FIXED_NOW, /, **cells: CellValue) -> Referral:
    """Read one row whose cells are given by header name (underscores for spaces)."""
    named = {key.replace("_", " "): value for key, value in cells.items()}
    values = tuple(named.get(h) for h in STAFF_COLUMNS)
    return read_referral(SheetRow(2, values), COLS, RuleContext.from_config(config, now))


def base(**cells: CellValue) -> dict[str, CellValue]:
    row: dict[str, CellValue] = {
        "Received": "2025-03-03 09:00",
        "Patient_First_Name": "Ann",
        "Patient_Last_Name": "Lee",
        "How_Heard": "Provider",
        "Referred_By": "Dr Rivera",
    }
    row.update(cells)
    return row


# -- Stage: the first line of PRODUCT.md's list that holds ----------------------------------------
STAGE_CASES: list[tuple[str, dict[str, CellValue], str]] = [
    ("ongoing care is long-term", {"Outcome": "Ongoing care", "Visit": "Attended"}, "Long-term"),
    (
        "long-term beats a not-a-fit Fit",
        {"Outcome": "Ongoing care", "Fit": "Not a fit"},
        "Long-term",
    ),
    ("outcome completed closes", {"Outcome": "Completed", "Visit": "Attended"}, "Closed"),
    ("outcome not a fit closes", {"Outcome": "Not a fit"}, "Closed"),
    ("fit not a fit closes", {"Fit": "Not a fit", "Visit": "Attended"}, "Closed"),
    ("closed beats lost", {"Outcome": "Lost", "Fit": "Not a fit"}, "Closed"),
    ("outcome lost", {"Outcome": "Lost", "Visit": "Attended"}, "Lost"),
    ("attended is seen", {"Visit": "Attended", "Appointment": "2025-03-03 15:00"}, "Seen"),
    ("no-show", {"Visit": "No-show", "Appointment": "2025-03-03 15:00"}, "No-show"),
    ("NS is a no-show", {"Visit": "NS"}, "No-show"),
    ("an appointment schedules", {"Appointment": "2025-03-10 15:00"}, "Scheduled"),
    ("visit scheduled without a date", {"Visit": "Scheduled"}, "Scheduled"),
    (
        "scheduled beats contacted",
        {"Appointment": "2025-03-10 15:00", "First_Contact": "2025-03-03 10:00"},
        "Scheduled",
    ),
    ("first contact", {"First_Contact": "2025-03-03 10:00"}, "Contacted"),
    ("cancelled needs rebooking: contacted", {"Visit": "Cancelled"}, "Contacted"),
    (
        "cancelled beats the appointment it cancelled",
        {"Visit": "Cancelled", "Appointment": "2025-03-03 08:00"},
        "Contacted",
    ),
    (
        "cancelled ahead of a future appointment still needs rebooking",
        {"Visit": "Cancelled", "Appointment": "2025-03-10 15:00"},
        "Contacted",
    ),
    (
        "rebooked: visit set back to scheduled beside the new date",
        {"Visit": "Scheduled", "Appointment": "2025-03-10 15:00"},
        "Scheduled",
    ),
    ("past due, no contact", {"Received": "2025-03-03 09:00"}, "OVERDUE"),
    ("due exactly now is overdue", {"Received": "2025-03-03 10:00"}, "OVERDUE"),
    ("due in 4 h: last quarter of 24 h", {"Received": "2025-03-03 14:00"}, "Contact due"),
    ("due in exactly 6 h: contact due", {"Received": "2025-03-03 16:00"}, "Contact due"),
    ("due in 6 h 1 min: new", {"Received": "2025-03-03 16:01"}, "New"),
    ("received this morning", {"Received": "2025-03-04 09:00"}, "New"),
    ("unreadable received: no stage", {"Received": "asap", "Outcome": "Ongoing care"}, ""),
    ("empty received: no stage", {"Received": None, "Visit": "Attended"}, ""),
]


@pytest.mark.parametrize(
    ("cells", "stage"), [(c, s) for _, c, s in STAGE_CASES], ids=[n for n, _, _ in STAGE_CASES]
)
def test_stage_precedence(config: BridgeConfig, cells: dict[str, CellValue], stage: str) -> None:
    assert read(config, **base(**cells)).stage == stage


def test_every_stage_is_reachable() -> None:
    from sheets_bridge.model import STAGES

    assert {s for _, _, s in STAGE_CASES} - {""} == set(STAGES)


def test_contact_due_scales_with_the_window(make_config: ConfigFactory) -> None:
    config = make_config(sync={"contact_window_hours": 48})
    # Received Monday 09:00 + 48 h = Wednesday 09:00; last quarter starts Tuesday 21:00.
    assert read(config, **base()).stage == "New"
    late = datetime(2025, 3, 4, 21, 0, tzinfo=NY)
    assert read(config, late, **base()).stage == "Contact due"
    assert read(config, datetime(2025, 3, 5, 9, 0, tzinfo=NY), **base()).stage == "OVERDUE"


# -- Follow-up Due (B12) ------------------------------------------------------------------------
DUE_CASES: list[tuple[str, dict[str, Any], str, datetime]] = [
    ("monday morning + 24 h", {}, "2025-03-03 09:00", datetime(2025, 3, 4, 9, 0, tzinfo=NY)),
    ("date only: due at the next opening", {}, "2025-03-03", datetime(2025, 3, 4, 8, 0, tzinfo=NY)),
    (
        "late friday -> monday opening",
        {},
        "2025-03-07 16:30",
        datetime(2025, 3, 10, 8, 0, tzinfo=NY),
    ),
    (
        "friday after hours -> monday",
        {},
        "2025-03-07 19:00",
        datetime(2025, 3, 10, 8, 0, tzinfo=NY),
    ),
    ("thursday evening -> monday", {}, "2025-03-06 18:00", datetime(2025, 3, 10, 8, 0, tzinfo=NY)),
    ("before opening -> 08:00", {}, "2025-03-05 06:00", datetime(2025, 3, 6, 8, 0, tzinfo=NY)),
    (
        "due at closing -> next opening",
        {},
        "2025-03-04 17:00",
        datetime(2025, 3, 6, 8, 0, tzinfo=NY),
    ),
    (
        "before a holiday",
        {"practice": {"holidays": ["2025-07-04"]}},
        "2025-07-03 11:00",
        datetime(2025, 7, 7, 8, 0, tzinfo=NY),
    ),
    (
        "a closed weekday",
        {"practice": {"business_hours": {"open_days": ["mon", "tue", "thu", "fri"]}}},
        "2025-03-04 12:00",
        datetime(2025, 3, 6, 8, 0, tzinfo=NY),
    ),
    (
        "48 h window",
        {"sync": {"contact_window_hours": 48}},
        "2025-03-03 09:00",
        datetime(2025, 3, 5, 9, 0, tzinfo=NY),
    ),
    (
        "other business hours",
        {"practice": {"business_hours": {"start": "09:30", "end": "18:00"}}},
        "2025-03-04 18:30",
        datetime(2025, 3, 6, 9, 30, tzinfo=NY),
    ),
    # DST: the window is elapsed time, the opening is local wall time.
    (
        "NY spring forward, open every day",
        {"practice": {"business_hours": EVERY_DAY}},
        "2025-03-08 12:00",
        datetime(2025, 3, 9, 17, 0, tzinfo=UTC),  # 13:00 EDT, 24 real hours later
    ),
    (
        "NY spring forward, friday -> monday in EDT",
        {},
        "2025-03-07 16:00",
        datetime(2025, 3, 10, 12, 0, tzinfo=UTC),  # 08:00 EDT
    ),
    (
        "NY spring forward, due in the skipped hour",
        {"practice": {"business_hours": ROUND_THE_CLOCK}},
        "2025-03-08 02:30",
        datetime(2025, 3, 9, 7, 30, tzinfo=UTC),  # 03:30 EDT
    ),
    (
        "NY fall back, open every day",
        {"practice": {"business_hours": EVERY_DAY}},
        "2025-11-01 12:00",
        datetime(2025, 11, 2, 16, 0, tzinfo=UTC),  # 11:00 EST
    ),
    (
        "NY fall back, opening after the change",
        {"practice": {"business_hours": EVERY_DAY}},
        "2025-11-01 06:00",
        datetime(2025, 11, 2, 13, 0, tzinfo=UTC),  # 08:00 EST
    ),
    (
        "Berlin spring forward",
        {"practice": {"timezone": "Europe/Berlin", "business_hours": EVERY_DAY}},
        "2025-03-29 12:00",
        datetime(2025, 3, 30, 11, 0, tzinfo=UTC),  # 13:00 CEST
    ),
    (
        "Berlin spring forward, opening at 08:00 CEST",
        {"practice": {"timezone": "Europe/Berlin", "business_hours": EVERY_DAY}},
        "2025-03-29 05:00",
        datetime(2025, 3, 30, 6, 0, tzinfo=UTC),  # 08:00 CEST
    ),
]


@pytest.mark.parametrize(
    ("overrides", "received", "due"),
    [(o, r, d) for _, o, r, d in DUE_CASES],
    ids=[n for n, _, _, _ in DUE_CASES],
)
def test_follow_up_due_in_business_time(
    make_config: ConfigFactory, overrides: dict[str, Any], received: str, due: datetime
) -> None:
    config = make_config(**overrides)
    now = datetime(2025, 12, 1, 12, 0, tzinfo=NY)
    referral = read(config, now, **base(Received=received))
    assert referral.follow_up_due == due
    # It is written in the practice's zone, as wall time.
    assert format_moment(referral.follow_up_due, config.tz) == format_moment(due, config.tz)
    assert referral.follow_up_due is not None
    assert referral.follow_up_due.utcoffset() == due.astimezone(config.tz).utcoffset()


def test_follow_up_due_text_on_dst_days(make_config: ConfigFactory) -> None:
    config = make_config(practice={"business_hours": EVERY_DAY})
    ctx = RuleContext.from_config(config, FIXED_NOW)
    spring = follow_up_due(datetime(2025, 3, 8, 12, 0, tzinfo=NY), ctx)
    fall = follow_up_due(datetime(2025, 11, 1, 12, 0, tzinfo=NY), ctx)
    assert format_moment(spring, NY) == "2025-03-09 13:00"
    assert format_moment(fall, NY) == "2025-11-02 11:00"
    berlin = make_config(practice={"timezone": "Europe/Berlin", "business_hours": EVERY_DAY})
    bctx = RuleContext.from_config(berlin, FIXED_NOW)
    assert format_moment(
        follow_up_due(datetime(2025, 3, 29, 12, 0, tzinfo=BERLIN), bctx), BERLIN
    ) == ("2025-03-30 13:00")


@pytest.mark.parametrize(
    ("now_utc", "stage"),
    [
        # Received 2025-11-01 01:45 EDT; due 2025-11-02 01:45 EDT = 05:45 UTC (first 01:45).
        (datetime(2025, 11, 2, 5, 44, tzinfo=UTC), "Contact due"),
        (datetime(2025, 11, 2, 5, 45, tzinfo=UTC), "OVERDUE"),
        # 01:30 EST, the second time the clock shows 01:30: 45 minutes past due.
        (datetime(2025, 11, 2, 6, 30, tzinfo=UTC), "OVERDUE"),
    ],
)
def test_overdue_compares_real_time_in_the_repeated_hour(
    make_config: ConfigFactory, now_utc: datetime, stage: str
) -> None:
    """F23: "SLA zone-aware": the fall-back hour happens twice; overdue means real time passed."""
    config = make_config(practice={"business_hours": ROUND_THE_CLOCK})
    referral = read(config, now_utc, **base(Received="2025-11-01 01:45"))
    assert referral.stage == stage


def test_contact_due_starts_a_real_quarter_window_before_due_across_spring_forward(
    make_config: ConfigFactory,
) -> None:
    """Due 2025-03-09 04:00 EDT (08:00 UTC): the last 6 real hours start at 02:00 UTC."""
    config = make_config(practice={"business_hours": ROUND_THE_CLOCK})
    received = "2025-03-08 03:00"  # EST; + 24 h = 08:00 UTC = 04:00 EDT
    just_before = datetime(2025, 3, 9, 1, 59, tzinfo=UTC)
    at_start = datetime(2025, 3, 9, 2, 0, tzinfo=UTC)
    assert read(config, just_before, **base(Received=received)).stage == "New"
    assert read(config, at_start, **base(Received=received)).stage == "Contact due"


# -- Attention lines ---------------------------------------------------------------------------
def test_passed_appointment_without_visit_asks_for_the_visit(config: BridgeConfig) -> None:
    line = "Appointment has passed: record the Visit (Attended, No-show or Cancelled)"
    assert line in read(config, **base(Appointment="2025-03-03 15:00")).attention
    assert line not in read(config, **base(Appointment="2025-03-05 15:00")).attention
    assert (
        line not in read(config, **base(Appointment="2025-03-03 15:00", Visit="Attended")).attention
    )


@pytest.mark.parametrize(
    ("received", "first_contact", "flagged"),
    [
        ("2025-03-03 09:00", "2025-03-02 15:00", True),
        ("2025-03-03 09:00", "2025-03-03 08:59", True),
        ("2025-03-03", "2025-03-02", True),
        ("2025-03-03 09:00", "2025-03-03", False),  # same day, no time: not "before"
        ("2025-03-03", "2025-03-03 07:00", False),
        ("2025-03-03 09:00", "2025-03-03 09:30", False),
    ],
)
def test_first_contact_before_received(
    config: BridgeConfig, received: str, first_contact: str, flagged: bool
) -> None:
    referral = read(config, **base(Received=received, First_Contact=first_contact))
    line = "First Contact is before Received: check both dates"
    assert (line in referral.attention) is flagged
    assert referral.stage == "Contacted"


@pytest.mark.parametrize("blank", [None, "", "   ", "\u00a0", "\u200b"])
def test_received_empty_gets_the_plain_line_and_no_stage(
    config: BridgeConfig, blank: CellValue
) -> None:
    """B2."""
    referral = read(config, **base(Received=blank))
    assert "Received is empty: add the date the referral came in" in referral.attention
    assert referral.stage == ""
    assert referral.follow_up_due is None


def test_first_name_missing_is_said(config: BridgeConfig) -> None:
    referral = read(config, **base(Patient_First_Name=None))
    assert "Patient First Name is empty: add the patient's first name" in referral.attention
    assert referral.stage == "OVERDUE"


def test_unreadable_received_names_the_column(config: BridgeConfig) -> None:
    referral = read(config, **base(Received="yesterday"))
    assert referral.stage == ""
    assert referral.follow_up_due is None
    assert any(line.startswith("Received ") for line in referral.attention)


def test_a_clean_row_has_no_attention(config: BridgeConfig) -> None:
    assert read(config, **base()).attention == ()


# -- consent (B26) -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("typed", "consent", "asks"),
    [
        ("Yes", True, False),
        ("yes", True, False),
        (" Y ", True, False),
        ("No", False, False),
        (None, False, False),
        ("", False, False),
        ("yes (verbal)", False, True),
        ("Y?", False, True),
        ("maybe", False, True),
        (True, False, True),
    ],
)
def test_consent_only_an_explicit_yes(
    config: BridgeConfig, typed: CellValue, consent: bool, asks: bool
) -> None:
    referral = read(config, **base(Consent_to_Update_Referrer=typed))
    assert referral.consent is consent
    asked = any(line.startswith("Consent to Update Referrer") for line in referral.attention)
    assert asked is asks


# -- How Heard and Source Tag (B25) ------------------------------------------------------------
@pytest.mark.parametrize(
    ("typed", "tag", "channel"),
    [
        ("Provider", "Provider Referral", "Provider"),
        ("dr referral", "Provider Referral", "Provider"),
        ("Dr. Rivera sent her", "Provider Referral", "Provider"),
        ("my friend", "Patient Referral", "Patient"),
        ("word of mouth", "Patient Referral", "Patient"),
        ("Googled", "Self-Referral", "Google"),
        ("instagram", "Self-Referral", "Social media"),
        ("walked in", "Self-Referral", "Walk-in"),
        ("social media", "Self-Referral", "Social media"),
        ("Other", "Self-Referral", "Other"),
    ],
)
def test_how_heard_maps_free_text(config: BridgeConfig, typed: str, tag: str, channel: str) -> None:
    referral = read(config, **base(How_Heard=typed))
    assert referral.source_tag == tag
    assert referral.channel == channel
    assert not any(line.startswith("How Heard") for line in referral.attention)


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("asdfgh", "How Heard is not a known channel"),
        ("friend saw us on facebook", "How Heard matches more than one channel"),
        (None, "How Heard is empty"),
        ("   ", "How Heard is empty"),
    ],
)
def test_how_heard_unknown_says_why(config: BridgeConfig, typed: CellValue, reason: str) -> None:
    referral = read(config, **base(How_Heard=typed, Referred_By=None))
    assert referral.source_tag == "Unknown"
    assert any(line.startswith(reason) for line in referral.attention)


def test_config_keywords_map_practice_words(make_config: ConfigFactory) -> None:
    config = make_config(sources={"keywords": {"Directory": ["findadoc"]}})
    referral = read(config, **base(How_Heard="FindADoc listing"))
    assert (referral.channel, referral.source_tag) == ("Directory", "Self-Referral")


def test_referred_by_needed_for_a_referral(config: BridgeConfig) -> None:
    assert (
        "Referred By is empty: add the referring provider's name"
        in read(config, **base(Referred_By=None)).attention
    )
    assert (
        "Referred By is empty: add the referring patient's name"
        in read(config, **base(How_Heard="friend", Referred_By=None)).attention
    )
    assert not read(config, **base(How_Heard="Google", Referred_By=None)).attention


# -- names stay text (B18, B15) ----------------------------------------------------------------
@pytest.mark.parametrize(
    "name",
    ['=HYPERLINK("http://x.example","click")', "+1 bad", "-minus", "@handle", "\tTab", "O'Brien"],
)
def test_formula_looking_names_stay_text(config: BridgeConfig, name: str) -> None:
    referral = read(config, **base(Patient_Last_Name=name))
    assert referral.last_name == name.strip()
    assert isinstance(referral.last_name, str)


def test_formula_looking_name_reaches_the_follow_ups_tab_as_text(
    make_config: ConfigFactory, fixed_now: datetime
) -> None:
    name = '=HYPERLINK("http://evil.example","x")'
    row = {
        "Received": "2025-03-03 09:00",
        "Patient First Name": "=cmd|' /C calc'!A0",
        "Patient Last Name": name,
        "How Heard": "Provider",
        "Referred By": "@SUM(1+1)",
    }
    sheet = make_sheet([row])
    run_one(make_config(), sheet, fixed_now)
    queue = sheet.tabs[FOLLOWUPS_TAB]
    assert queue[1][1] == f"=cmd|' /C calc'!A0 {name}"
    assert queue[1][FOLLOWUPS_HEADERS.index("Referred By")] == "@SUM(1+1)"
    due = FOLLOWUPS_HEADERS.index("Follow-up Due")  # a date cell; everything typed is text
    assert all(isinstance(v, str) for i, v in enumerate(queue[1]) if v is not None and i != due)
    assert records(sheet)[0]["Patient Last Name"] == name


# -- empty rows (B1) and identity --------------------------------------------------------------
@pytest.mark.parametrize(
    ("values", "empty"),
    [
        ({}, True),
        ({"Received": "  ", "Patient First Name": "\u00a0"}, True),
        ({"Patient First Name": "\u200b\u200d", "Reason": "\ufeff"}, True),
        ({"Notes": "call back later"}, True),
        ({"Patient First Name": "Ann"}, False),
        ({"Received": 0}, False),
        ({"Fit": False}, False),
    ],
)
def test_is_empty_row(values: dict[str, CellValue], empty: bool) -> None:
    row = SheetRow(2, tuple(values.get(h) for h in STAFF_COLUMNS))
    assert is_empty_row(row, COLS) is empty


def test_identity_ignores_case_and_spacing_but_not_the_date() -> None:
    def ident(first: str, last: str, received: str) -> str:
        values = {"Patient First Name": first, "Patient Last Name": last, "Received": received}
        return row_identity(SheetRow(2, tuple(values.get(h) for h in STAFF_COLUMNS)), COLS.staff)

    assert ident("Ann", "Lee", "2025-03-03") == ident(" ANN ", "lee", "2025-03-03")
    assert ident("Ann", "Lee", "2025-03-03") != ident("Ann", "Lee", "2025-03-04")
    assert ident("Ann", "Lee", "2025-03-03") != ident("Anne", "Lee", "2025-03-03")


def test_passed_appointment_in_the_repeated_hour(make_config: ConfigFactory) -> None:
    """01:30 EDT (05:30 UTC) has passed at 01:00 EST (06:00 UTC), though the clock reads earlier."""
    config = make_config(practice={"business_hours": ROUND_THE_CLOCK})
    now = datetime(2025, 11, 2, 6, 0, tzinfo=UTC)
    referral = read(
        config, now, **base(Received="2025-10-30 09:00", Appointment="2025-11-02 01:30")
    )
    assert "Appointment has passed: record the Visit (Attended, No-show or Cancelled)" in (
        referral.attention
    )
