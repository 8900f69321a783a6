"""The add-on's pure parts: the Stage explanation agrees with the rule, the card checker can
fail, text from the sheet is escaped, and who counts as allowed."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from sheets_bridge.addon import cards
from sheets_bridge.addon.auth import is_allowed
from sheets_bridge.addon.card_schema import check_response
from sheets_bridge.addon.panel import explain_stage
from sheets_bridge.model import Referral
from sheets_bridge.rules import derive_stage

NY = ZoneInfo("America/New_York")
NOW = datetime(2025, 3, 4, 10, 0, tzinfo=NY)


def referral(**fields: object) -> Referral:
    base: dict[str, object] = {
        "referral_id": "R-00001", "row": 2, "received": NOW - timedelta(hours=1), "received_has_time": True,
        "first_name": "Ann", "last_name": "Lee", "phone": None, "email": None, "how_heard": "Provider",
        "channel": "Provider", "source_tag": "Provider Referral", "referred_by": "Dr R",
        "referrer_email": None, "referrer_practice": "", "reason": "", "fit": None, "first_contact": None,
        "appointment": None, "visit": None, "outcome": None, "consent": False, "stage": "",
        "follow_up_due": NOW + timedelta(hours=23),
    }
    base.update(fields)
    return Referral(**base)  # type: ignore[arg-type]


CASES = [
    ({"outcome": "Ongoing care"}, "Outcome is Ongoing care"),
    ({"outcome": "Completed"}, "Outcome is Completed"),
    ({"outcome": "Not a fit"}, "Outcome is Not a fit"),
    ({"fit": "Not a fit"}, "Fit is Not a fit"),
    ({"outcome": "Lost"}, "Outcome is Lost"),
    ({"visit": "Attended"}, "Visit is Attended"),
    ({"visit": "No-show"}, "Visit is No-show"),
    ({"visit": "Cancelled"}, "Visit is Cancelled"),
    ({"appointment": NOW}, "An Appointment is set"),
    ({"visit": "Scheduled"}, "Visit is Scheduled"),
    ({"first_contact": NOW}, "First Contact is filled in"),
    ({"follow_up_due": NOW - timedelta(minutes=1)}, "Follow-up Due has passed"),
    ({"follow_up_due": NOW + timedelta(hours=2)}, "Follow-up Due is near"),
    ({}, "Received, not yet due"),
    ({"received": None}, "No Stage until Received"),
]


@pytest.mark.parametrize(("fields", "reason"), CASES)
def test_the_stage_explanation_names_the_rule_that_set_it(
    fields: dict[str, object], reason: str
) -> None:
    from sheets_bridge.rules import RuleContext

    ctx = RuleContext(now=NOW, tz=NY, date_order="MDY", phone_region="US",
                      window=timedelta(hours=24), open_days=frozenset(range(5)),
                      opens=time(8), closes=time(17), holidays=frozenset(), keywords={})
    ref = referral(**fields)
    stage = derive_stage(
        received=ref.received, due=ref.follow_up_due, fit=ref.fit,
        first_contact=ref.first_contact, appointment=ref.appointment, visit=ref.visit,
        outcome=ref.outcome, ctx=ctx,
    )
    ref = referral(**fields, stage=stage)
    assert explain_stage(ref).startswith(reason)


def test_the_card_checker_refuses_what_google_does_not_document() -> None:
    urls = cards.Urls("https://bridge.example/addon")
    good = cards.action_response(cards.lines_card("T", ["a"], urls))
    assert check_response(good) == []
    bad_widget = cards.action_response(cards.card("T", [{"widgets": [{"marquee": {"text": "x"}}]}]))
    assert check_response(bad_widget) == [("navigations[0].updateCard.sections[0].widgets[0].marquee:"
                                          " not a widget the bridge may use")]
    two_kinds = cards.homepage_response(cards.card("T", [{"widgets": [
        {"textParagraph": {"text": "x"}, "divider": {}}]}]))
    assert check_response(two_kinds)
    http_action = cards.action_response(cards.card("T", [cards.section([cards.buttons(
        cards.button("Go", "http://plain.example/x"))])]))
    assert any("https://" in p for p in check_response(http_action))
    extra_key = cards.homepage_response({"sections": [{"widgets": [
        {"textParagraph": {"text": "x", "colour": "red"}}]}]})
    assert check_response(extra_key) == [
        ("navigations[0].pushCard.sections[0].widgets[0].textParagraph.colour: "
        "not a documented field here")]
    assert check_response({"action": {"navigations": [{"popCard": True}]}})
    assert check_response({"cards": []})


def test_cell_text_is_escaped_not_rendered_as_markup() -> None:
    widget = cards.paragraph('<a href="https://evil.example">click</a> & <b>')
    assert widget == {"textParagraph": {
        "text": '&lt;a href="https://evil.example"&gt;click&lt;/a&gt; &amp; &lt;b&gt;'}}


@pytest.mark.parametrize(("email", "allowed", "expected"), [
    ("ann@practice.com", ("@practice.com",), True),
    ("Ann@Practice.com", ("@practice.com",), True),
    ("ann@evilpractice.com", ("@practice.com",), False),
    ("ann@practice.com.evil", ("@practice.com",), False),
    ("bob@gmail.com", ("bob@gmail.com",), True),
    ("rob@gmail.com", ("bob@gmail.com",), False),
    ("ann@practice.com", (), False),
])
def test_who_is_allowed(email: str, allowed: tuple[str, ...], expected: bool) -> None:
    assert is_allowed(email, allowed) is expected


def test_every_card_the_bridge_can_answer_is_in_the_documented_subset() -> None:
    """Each builder, with empty and with full data, wrapped as each endpoint wraps it."""
    from sheets_bridge.addon.panel import Knowledge, QueueItem, ReferralCard
    from sheets_bridge.state_view import StateView

    urls = cards.Urls("https://bridge.example/addon")
    empty = Knowledge(now=NOW, referrals=(), view=StateView(), due_drafts=frozenset(),
                      last_run=None, last_quiet=None)
    full = Knowledge(
        now=NOW, referrals=(referral(stage="OVERDUE", attention=("Received is missing",)),),
        view=StateView(), due_drafts=frozenset(),
        last_run={"started": "2025-03-04T09:55:00-05:00", "outcome": "stopped",
                  "summary": "The Referrals tab is missing"},
        last_quiet="2025-03-04T09:50:00-05:00", stop_reason="The Referrals tab is missing",
        drafts_waiting=None,
    )
    ref = ReferralCard("R-00001", "Ann L.", "OVERDUE", "Follow-up Due has passed", "",
                       ("Received <b>is</b> missing",), (("welcome", "2025-03-03 09:00"),),
                       (("reminder", "when ..."),))
    bare = ReferralCard("R-00002", "Bo", "New", "Received", "2025-03-05 09:00", (), (), ())
    built = [
        cards.home_card(empty, urls, next_sync="not scheduled", practice="P"),
        cards.home_card(full, urls, next_sync="2025-03-04 10:05", practice="P & Co"),
        cards.queue_card([], urls),
        cards.queue_card([QueueItem("R-00001", "Ann L.", "OVERDUE", "2025-03-03 09:00")], urls),
        cards.referral_card(ref, urls),
        cards.referral_card(bare, urls),
        cards.lines_card("Sync now", [], urls),
        cards.lines_card("Sync now", ["Rows read: 3"], urls, header="What the sync did"),
        cards.setup_card([("ok", "fine"), ("warn", "hm"), ("fail", "broken")], urls),
        cards.setup_card([], urls),
        cards.not_connected_card(urls, can_ask=True),
        cards.not_connected_card(urls, can_ask=False),
        cards.message_card("Not available", "Ask the manager."),
    ]
    for card in built:
        assert check_response(cards.homepage_response(card)) == []
        assert check_response(cards.action_response(card)) == []
        assert check_response(cards.action_response(card, push=True)) == []
    assert check_response(cards.request_file_access_response()) == []
    assert "&lt;b&gt;is&lt;/b&gt;" in str(built[4])
