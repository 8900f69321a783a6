"""Which drafts are due and what they say: triggers per kind, rate limits, minimum necessary.

Every test uses a fixed aware ``NOW`` and builds ``Referral`` objects directly, so the rules are
checked without a sheet. Fixture values are unique canaries: a Reason that shows up in any
referrer email is a minimum-necessary breach, and the scan finds it.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from sheets_bridge.draft_keys import draft_key, quarter_of, referrer_of_key
from sheets_bridge.drafting import plan_drafts
from sheets_bridge.email_context import build_context, first_name_of
from sheets_bridge.email_kinds import KINDS, RECIPIENTS, template_names
from sheets_bridge.email_templates import TemplateSet
from sheets_bridge.identity import referrer_key
from sheets_bridge.ledger import DraftHistory
from sheets_bridge.model import DraftRequest, Referral
from sheets_bridge.settings import DraftsSettings, PracticeConfig

TZ = ZoneInfo("America/New_York")
NOW = datetime(2026, 3, 10, 9, 0, tzinfo=TZ)
REASON_CANARY = "CANARY-REASON-lumbar-7f3a9"
PHONE_CANARY = "+15550199871"
LAST_CANARY = "Zzyqvarsson"

PRACTICE = PracticeConfig(
    name="Riverside Physical Therapy",
    owner_email="owner@riverside.example",
    timezone="America/New_York",
    signature="Dana Lee\nRiverside Physical Therapy",
    designated_contact="Dana",
    phone="(555) 010-0100",
    address="12 Main Street",
)

DEFAULTS = DraftsSettings()
TEMPLATES = TemplateSet()


def referral(**changes: object) -> Referral:
    """A clean new Provider Referral received yesterday; ``changes`` override fields."""
    base = Referral(
        referral_id="R-00001",
        row=2,
        received=NOW - timedelta(days=1),
        received_has_time=True,
        first_name="Quillon",
        last_name=LAST_CANARY,
        phone=PHONE_CANARY,
        email="quillon.patient@example.com",
        how_heard="Provider",
        channel="Provider",
        source_tag="Provider Referral",
        referred_by="Dr. Imelda Varga",
        referrer_email="imelda.varga@clinic.example",
        referrer_practice="Northside Family Clinic",
        reason=REASON_CANARY,
        fit=None,
        first_contact=None,
        appointment=None,
        visit=None,
        outcome=None,
        consent=False,
        stage="New",
        follow_up_due=None,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def plan(
    referrals: list[Referral],
    *,
    settings: DraftsSettings = DEFAULTS,
    history: DraftHistory | None = None,
    templates: TemplateSet = TEMPLATES,
    now: datetime = NOW,
) -> tuple[list[DraftRequest], list[tuple[str, str]]]:
    return plan_drafts(
        referrals,
        now=now,
        practice=PRACTICE,
        settings=settings,
        history=history or DraftHistory(),
        env=templates,
    )


def kinds_of(referrals: list[Referral], **kwargs: object) -> set[str]:
    drafts, _ = plan(referrals, **kwargs)  # type: ignore[arg-type]
    return {d.kind for d in drafts}


def only(kind: str) -> DraftsSettings:
    """Settings with every kind but ``kind`` switched off, to test one trigger alone."""
    return DraftsSettings(kinds={k: k == kind for k in KINDS})


# --------------------------------------------------------------------------------------------
# Referrer acknowledgement
# --------------------------------------------------------------------------------------------


class TestAcknowledgement:
    settings = only("referrer_acknowledgement")

    def test_new_provider_referral_is_acknowledged(self) -> None:
        drafts, problems = plan([referral()], settings=self.settings)
        assert [d.key for d in drafts] == ["R-00001.referrer_acknowledgement"]
        draft = drafts[0]
        assert draft.to == '"Dr. Imelda Varga" <imelda.varga@clinic.example>'
        assert draft.text.startswith("Dear Dr. Varga,") and "Quillon Z." in draft.text
        assert "Dana" in draft.text and "Riverside Physical Therapy" in draft.text
        assert "Quillon" in draft.subject
        assert problems == []

    def test_provider_referral_needs_no_consent(self) -> None:
        assert kinds_of([referral(consent=False)], settings=self.settings) == {
            "referrer_acknowledgement"
        }

    def test_patient_referral_only_with_consent(self) -> None:
        friend = referral(source_tag="Patient Referral", channel="Patient", referred_by="Ana")
        assert kinds_of([friend], settings=self.settings) == set()
        assert kinds_of([dataclasses.replace(friend, consent=True)], settings=self.settings) == {
            "referrer_acknowledgement"
        }

    def test_self_referral_has_no_referrer_to_thank(self) -> None:
        assert kinds_of([referral(source_tag="Self-Referral")], settings=self.settings) == set()

    def test_missing_address_means_no_draft_and_an_attention_line(self) -> None:
        drafts, problems = plan([referral(referrer_email=None)], settings=self.settings)
        assert drafts == []
        assert problems == [
            (
                "R-00001",
                "Referrer Email is empty: add it to draft the acknowledgement to the referrer",
            )
        ]

    def test_invalid_address_flagged_by_the_rules_is_named(self) -> None:
        bad = referral(
            referrer_email=None,
            attention=("Referrer Email is not a valid email address: check it",),
        )
        drafts, problems = plan([bad], settings=self.settings)
        assert drafts == []
        assert problems == [
            (
                "R-00001",
                (
                    "No acknowledgement to the referrer was drafted: Referrer Email cannot be used "
                    "until it is fixed"
                ),
            )
        ]

    def test_address_that_does_not_parse_strictly_is_not_used(self) -> None:
        drafts, problems = plan(
            [referral(referrer_email="a@x.com; b@y.com")], settings=self.settings
        )
        assert drafts == []
        assert len(problems) == 1 and "Referrer Email" in problems[0][1]

    def test_switched_off(self) -> None:
        settings = DraftsSettings(kinds={"referrer_acknowledgement": False})
        assert "referrer_acknowledgement" not in kinds_of([referral()], settings=settings)

    def test_outside_the_recent_window(self) -> None:
        old = referral(received=NOW - timedelta(days=7, minutes=1))
        assert kinds_of([old], settings=self.settings) == set()
        edge = referral(received=NOW - timedelta(days=7))
        assert kinds_of([edge], settings=self.settings) == {"referrer_acknowledgement"}

    def test_window_is_configurable(self) -> None:
        settings = DraftsSettings(recent_window_days=30, kinds=self.settings.kinds)
        assert kinds_of([referral(received=NOW - timedelta(days=20))], settings=settings) == {
            "referrer_acknowledgement"
        }

    def test_already_drafted(self) -> None:
        history = DraftHistory(keys=frozenset({"R-00001.referrer_acknowledgement"}))
        drafts, problems = plan([referral()], settings=self.settings, history=history)
        assert drafts == [] and problems == []

    @pytest.mark.parametrize(
        "changes",
        [{"source_tag": "Unknown"}, {"stage": ""}, {"received": None}, {"referral_id": ""}],
    )
    def test_unusable_rows_make_no_draft(self, changes: dict[str, object]) -> None:
        drafts, problems = plan([referral(**changes)])
        assert drafts == [] and problems == []


# --------------------------------------------------------------------------------------------
# Patient outreach
# --------------------------------------------------------------------------------------------


class TestOutreach:
    settings = only("patient_outreach")

    @pytest.mark.parametrize("tag", ["Provider Referral", "Patient Referral", "Self-Referral"])
    def test_every_new_referral_with_an_email(self, tag: str) -> None:
        drafts, _ = plan([referral(source_tag=tag)], settings=self.settings)
        assert [d.key for d in drafts] == ["R-00001.patient_outreach"]
        assert drafts[0].to == f"Quillon {LAST_CANARY} <quillon.patient@example.com>"
        assert "Hi Quillon," in drafts[0].text and "Dana" in drafts[0].text

    @pytest.mark.parametrize(
        "changes",
        [
            {"first_contact": NOW - timedelta(hours=2), "stage": "Contacted"},
            {"appointment": NOW + timedelta(days=3), "visit": "Scheduled", "stage": "Scheduled"},
            {"fit": "Not a fit", "stage": "Closed"},
        ],
    )
    def test_not_once_contacted(self, changes: dict[str, object]) -> None:
        assert kinds_of([referral(**changes)], settings=self.settings) == set()

    def test_overdue_still_gets_one(self) -> None:
        assert kinds_of([referral(stage="OVERDUE")], settings=self.settings) == {"patient_outreach"}

    def test_missing_patient_email(self) -> None:
        drafts, problems = plan([referral(email=None)], settings=self.settings)
        assert drafts == []
        assert problems == [
            ("R-00001", "Patient Email is empty: add it to draft the welcome email to the patient")
        ]

    def test_outside_window_and_history(self) -> None:
        assert (
            kinds_of([referral(received=NOW - timedelta(days=8))], settings=self.settings) == set()
        )
        history = DraftHistory(keys=frozenset({"R-00001.patient_outreach"}))
        assert kinds_of([referral()], settings=self.settings, history=history) == set()


# --------------------------------------------------------------------------------------------
# Appointment reminder
# --------------------------------------------------------------------------------------------


class TestReminder:
    settings = only("appointment_reminder")

    def scheduled(self, hours: float, **changes: object) -> Referral:
        values: dict[str, object] = {
            "received": NOW - timedelta(days=60),
            "appointment": NOW + timedelta(hours=hours),
            "visit": "Scheduled",
            "stage": "Scheduled",
        }
        values.update(changes)
        return referral(**values)

    def test_fires_within_the_reminder_window_even_for_an_old_referral(self) -> None:
        drafts, _ = plan([self.scheduled(20)], settings=self.settings)
        assert [d.key for d in drafts] == ["R-00001.appointment_reminder"]
        # 2026-03-10 09:00 + 20 h = Wednesday 2026-03-11 05:00 in New York
        assert "Wednesday, March 11" in drafts[0].text and "5:00 AM" in drafts[0].text
        assert "12 Main Street" in drafts[0].text

    def test_not_too_early_not_after(self) -> None:
        assert kinds_of([self.scheduled(49)], settings=self.settings) == set()
        assert kinds_of([self.scheduled(-1)], settings=self.settings) == set()
        assert kinds_of([self.scheduled(48)], settings=self.settings) == {"appointment_reminder"}

    def test_window_is_configurable(self) -> None:
        settings = DraftsSettings(reminder_hours=72, kinds=self.settings.kinds)
        assert kinds_of([self.scheduled(60)], settings=settings) == {"appointment_reminder"}

    @pytest.mark.parametrize("visit", [None, "Cancelled", "Attended", "No-show"])
    def test_only_when_visit_is_scheduled(self, visit: str | None) -> None:
        assert kinds_of([self.scheduled(20, visit=visit)], settings=self.settings) == set()

    def test_appointment_time_in_practice_zone_even_if_now_is_utc(self) -> None:
        drafts, _ = plan(
            [self.scheduled(20)], settings=self.settings, now=NOW.astimezone(ZoneInfo("UTC"))
        )
        assert "5:00 AM" in drafts[0].text


# --------------------------------------------------------------------------------------------
# Closing the loop
# --------------------------------------------------------------------------------------------


class TestClosingTheLoop:
    settings = only("closing_the_loop")

    def seen(self, **changes: object) -> Referral:
        values: dict[str, object] = {
            "received": NOW - timedelta(days=20),
            "appointment": NOW - timedelta(days=2),
            "visit": "Attended",
            "stage": "Seen",
            "consent": True,
        }
        values.update(changes)
        return referral(**values)

    def test_attended_with_consent(self) -> None:
        drafts, _ = plan([self.seen()], settings=self.settings)
        assert [d.key for d in drafts] == ["R-00001.closing_the_loop"]
        assert "Quillon Z. came in to see us" in drafts[0].text

    def test_no_consent_no_update(self) -> None:
        assert kinds_of([self.seen(consent=False)], settings=self.settings) == set()

    def test_providers_may_be_updated_without_consent_when_switched_on(self) -> None:
        settings = DraftsSettings(referrer_updates_without_consent=True, kinds=self.settings.kinds)
        assert kinds_of([self.seen(consent=False)], settings=settings) == {"closing_the_loop"}
        friend = self.seen(consent=False, source_tag="Patient Referral")
        assert kinds_of([friend], settings=settings) == set()

    @pytest.mark.parametrize("visit", ["Scheduled", "No-show", "Cancelled", None])
    def test_only_after_attended(self, visit: str | None) -> None:
        assert kinds_of([self.seen(visit=visit)], settings=self.settings) == set()

    def test_event_time_is_the_appointment(self) -> None:
        assert (
            kinds_of([self.seen(appointment=NOW - timedelta(days=9))], settings=self.settings)
            == set()
        )
        no_date = self.seen(appointment=None, received=NOW - timedelta(days=3))
        assert kinds_of([no_date], settings=self.settings) == {"closing_the_loop"}

    def test_self_referral_has_no_loop(self) -> None:
        assert kinds_of([self.seen(source_tag="Self-Referral")], settings=self.settings) == set()


# --------------------------------------------------------------------------------------------
# Patient thank-you
# --------------------------------------------------------------------------------------------


class TestThankYou:
    settings = only("patient_thank_you")

    @pytest.mark.parametrize("outcome", ["Ongoing care", "Completed"])
    def test_fires_for_good_outcomes(self, outcome: str) -> None:
        r = referral(appointment=NOW - timedelta(days=1), visit="Attended", outcome=outcome)
        drafts, _ = plan([r], settings=self.settings)
        assert [d.key for d in drafts] == ["R-00001.patient_thank_you"]
        assert "if you ever know someone" in drafts[0].text.lower()

    @pytest.mark.parametrize("outcome", ["Lost", "Not a fit", None])
    def test_not_otherwise(self, outcome: str | None) -> None:
        r = referral(appointment=NOW - timedelta(days=1), visit="Attended", outcome=outcome)
        assert kinds_of([r], settings=self.settings) == set()

    def test_not_for_history(self) -> None:
        r = referral(
            received=NOW - timedelta(days=90),
            appointment=NOW - timedelta(days=80),
            outcome="Completed",
        )
        assert kinds_of([r], settings=self.settings) == set()

    def test_missing_email(self) -> None:
        r = referral(appointment=NOW - timedelta(days=1), outcome="Completed", email=None)
        drafts, problems = plan([r], settings=self.settings)
        assert drafts == [] and problems[0][1].startswith("Patient Email is empty")


# --------------------------------------------------------------------------------------------
# Referrer feedback
# --------------------------------------------------------------------------------------------


class TestFeedback:
    settings = only("referrer_feedback")

    def old(self, days: float, rid: str = "R-00001", **changes: object) -> Referral:
        return referral(
            referral_id=rid, received=NOW - timedelta(days=days), stage="Seen", **changes
        )

    def test_fires_some_weeks_after_a_provider_referral(self) -> None:
        drafts, _ = plan([self.old(30)], settings=self.settings)
        rk = referrer_key(self.old(30))
        assert [d.key for d in drafts] == [f"{rk}.referrer_feedback.2026Q1"]
        assert drafts[0].referral_id == "R-00001"
        assert "was it simple to refer" in drafts[0].text
        assert "Quillon" not in drafts[0].text + drafts[0].subject  # about the referrer only

    def test_not_before_nor_long_after(self) -> None:
        assert kinds_of([self.old(20)], settings=self.settings) == set()
        assert kinds_of([self.old(40)], settings=self.settings) == set()

    def test_only_providers(self) -> None:
        assert (
            kinds_of([self.old(30, source_tag="Patient Referral")], settings=self.settings) == set()
        )

    def test_once_per_referrer_even_with_many_referrals(self) -> None:
        rows = [self.old(29, "R-00001"), self.old(31, "R-00002"), self.old(33, "R-00003")]
        drafts, _ = plan(rows, settings=self.settings)
        assert len(drafts) == 1
        assert drafts[0].referral_id == "R-00003"  # the earliest due

    def test_referrers_are_told_apart(self) -> None:
        other = self.old(30, "R-00002", referrer_email="other@clinic.example", referred_by="Dr. Bo")
        drafts, _ = plan([self.old(30), other], settings=self.settings)
        assert len(drafts) == 2

    def test_at_most_once_a_quarter(self) -> None:
        rk = referrer_key(self.old(30))
        history = DraftHistory(keys=frozenset({f"{rk}.referrer_feedback.2026Q1"}))
        assert kinds_of([self.old(30)], settings=self.settings, history=history) == set()

    def test_rate_limited_across_quarter_boundaries(self) -> None:
        rk = referrer_key(self.old(30))
        recent = DraftHistory(last_sent={(rk, "referrer_feedback"): NOW - timedelta(days=60)})
        assert kinds_of([self.old(30)], settings=self.settings, history=recent) == set()
        long_ago = DraftHistory(last_sent={(rk, "referrer_feedback"): NOW - timedelta(days=100)})
        assert kinds_of([self.old(30)], settings=self.settings, history=long_ago) == {
            "referrer_feedback"
        }

    def test_switched_off(self) -> None:
        settings = DraftsSettings(kinds={"referrer_feedback": False})
        assert "referrer_feedback" not in kinds_of([self.old(30)], settings=settings)

    def test_no_address_no_draft_silently(self) -> None:
        drafts, problems = plan([self.old(30, referrer_email=None)], settings=self.settings)
        assert drafts == [] and problems == []


# --------------------------------------------------------------------------------------------
# Referrer check-in
# --------------------------------------------------------------------------------------------


class TestCheckin:
    settings = only("referrer_checkin")

    def quiet(self, days: float, rid: str = "R-00001", **changes: object) -> Referral:
        values: dict[str, object] = {
            "referral_id": rid,
            "received": NOW - timedelta(days=days),
            "stage": "Closed",
        }
        values.update(changes)
        return referral(**values)

    def test_fires_when_the_quiet_period_just_elapsed(self) -> None:
        drafts, _ = plan(
            [self.quiet(200, "R-00001"), self.quiet(92, "R-00002")], settings=self.settings
        )
        rk = referrer_key(self.quiet(92))
        assert [d.key for d in drafts] == [f"{rk}.referrer_checkin.2026Q1"]
        assert drafts[0].referral_id == "R-00002"
        assert "Quillon" not in drafts[0].text + drafts[0].subject

    def test_not_while_active_nor_long_after(self) -> None:
        assert kinds_of([self.quiet(80)], settings=self.settings) == set()
        assert kinds_of([self.quiet(100)], settings=self.settings) == set()
        assert (
            kinds_of([self.quiet(92), self.quiet(10, "R-00002")], settings=self.settings) == set()
        )

    def test_once_per_quiet_period(self) -> None:
        rk = referrer_key(self.quiet(92))
        after = DraftHistory(last_sent={(rk, "referrer_checkin"): NOW - timedelta(days=1)})
        assert kinds_of([self.quiet(92)], settings=self.settings, history=after) == set()
        before = DraftHistory(last_sent={(rk, "referrer_checkin"): NOW - timedelta(days=200)})
        assert kinds_of([self.quiet(92)], settings=self.settings, history=before) == {
            "referrer_checkin"
        }
        keyed = DraftHistory(keys=frozenset({f"{rk}.referrer_checkin.2026Q1"}))
        assert kinds_of([self.quiet(92)], settings=self.settings, history=keyed) == set()

    def test_quiet_days_configurable(self) -> None:
        settings = DraftsSettings(checkin_quiet_days=60, kinds=self.settings.kinds)
        assert kinds_of([self.quiet(62)], settings=settings) == {"referrer_checkin"}

    def test_an_unreadable_row_of_the_referrer_blocks_it(self) -> None:
        unreadable = self.quiet(0, "R-00002", received=None, stage="")
        assert kinds_of([self.quiet(92), unreadable], settings=self.settings) == set()

    def test_only_providers(self) -> None:
        friend = self.quiet(92, source_tag="Patient Referral")
        assert kinds_of([friend], settings=self.settings) == set()


# --------------------------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------------------------


def test_draft_keys_are_deterministic_and_file_name_safe() -> None:
    assert draft_key("R-00012", "referrer_acknowledgement") == "R-00012.referrer_acknowledgement"
    assert draft_key("R-00012", "referrer_feedback", "2026Q4") == "R-00012.referrer_feedback.2026Q4"
    assert draft_key("../R 1/", "x") == "R-1.x"


def test_referrer_key_normalises_and_hides_identity() -> None:
    a = referrer_key(referral(referrer_email="Imelda.Varga@Clinic.example"))
    b = referrer_key(referral(referrer_email="imelda.varga@clinic.example "))
    assert a == b and a.startswith("referrer-") and len(a) == len("referrer-") + 8
    assert "imelda" not in a.lower()
    by_name = referrer_key(referral(referrer_email=None, referred_by="Dr. Imelda  VARGA"))
    assert by_name == referrer_key(referral(referrer_email=None, referred_by="dr imelda varga"))
    assert referrer_key(referral(referrer_email=None, referred_by="")) == ""
    assert referrer_of_key(f"{a}.referrer_checkin.2026Q1") == a
    assert referrer_of_key("R-00001.referrer_acknowledgement") is None


def test_quarters_in_the_practice_zone() -> None:
    # 2026-01-01 03:00 UTC is still 2025 in New York
    assert quarter_of(datetime(2026, 1, 1, 3, 0, tzinfo=ZoneInfo("UTC")), TZ) == "2025Q4"
    assert quarter_of(NOW, TZ) == "2026Q1"


@pytest.mark.parametrize(
    ("name", "first"),
    [
        ("Dr. Jane Smith", "Jane"),
        ("Smith, Jane", "Jane"),
        ("Dr. Smith", ""),
        ("Jane", "Jane"),
        ("María-José García", "María-José"),
        ("", ""),
    ],
)
def test_first_name_of(name: str, first: str) -> None:
    assert first_name_of(name) == first


# --------------------------------------------------------------------------------------------
# Minimum necessary, cell text as data, header safety
# --------------------------------------------------------------------------------------------


def everything_fires() -> list[Referral]:
    """Rows that, between them, trigger every kind at NOW."""
    return [
        referral(referral_id="R-00001", consent=True),
        referral(
            referral_id="R-00002",
            received=NOW - timedelta(days=30),
            appointment=NOW + timedelta(hours=5),
            visit="Scheduled",
            stage="Scheduled",
            referrer_email="second@clinic.example",
        ),
        referral(
            referral_id="R-00003",
            received=NOW - timedelta(days=10),
            appointment=NOW - timedelta(days=1),
            visit="Attended",
            outcome="Ongoing care",
            consent=True,
            stage="Long-term",
            referrer_email="third@clinic.example",
        ),
        referral(
            referral_id="R-00004",
            received=NOW - timedelta(days=92),
            stage="Closed",
            referrer_email="quiet@clinic.example",
        ),
    ]


def test_scenario_covers_every_kind() -> None:
    drafts, problems = plan(everything_fires())
    assert {d.kind for d in drafts} == set(KINDS)
    assert problems == []
    assert len({d.key for d in drafts}) == len(drafts)


def test_no_reason_phone_or_last_name_in_any_referrer_email() -> None:
    drafts, _ = plan(everything_fires())
    for draft in drafts:
        blob = f"{draft.to}\n{draft.subject}\n{draft.text}\n{draft.html}"
        assert REASON_CANARY not in blob, draft.key
        assert PHONE_CANARY not in blob, draft.key
        if RECIPIENTS[draft.kind] == "referrer":
            assert LAST_CANARY not in blob, draft.key


def test_plan_is_independent_of_row_order() -> None:
    rows = everything_fires()
    assert plan(rows) == plan(list(reversed(rows)))


def test_contexts_hold_only_allowlisted_fields() -> None:
    r = everything_fires()[2]
    for kind in KINDS:
        context = build_context(kind, r, PRACTICE, DEFAULTS)
        flat = repr(context)
        assert REASON_CANARY not in flat and PHONE_CANARY not in flat
        assert "referral" not in context and "reason" not in context
        if RECIPIENTS[kind] == "patient":
            assert set(context.get("patient", {})) == {"first_name", "greeting"}


def test_template_syntax_in_cells_is_shown_literally() -> None:
    r = referral(
        first_name="<b>{{ 7*7 }}</b>{% if true %}X{% endif %}", referred_by="<b>Dr. {{ evil }}</b>"
    )
    drafts, problems = plan([r], settings=only("referrer_acknowledgement"))
    assert problems == []
    (draft,) = drafts
    assert "<b>{{ 7*7 }}</b>{% if true %}X{% endif %}" in draft.text
    assert "49" not in draft.text and "evil" not in draft.text
    assert draft.text.startswith("Hello,")  # no name to be read there: a neutral greeting
    assert "&lt;b&gt;" not in draft.text  # plain text is not escaped
    assert "{{ 7*7 }}" in draft.html
    assert "<b>" not in draft.html and "&lt;b&gt;" in draft.html
    assert "{{ 7*7 }}" in draft.subject


def test_html_escapes_cell_text() -> None:
    r = referral(first_name="<script>alert(1)</script>")
    drafts, _ = plan([r], settings=only("referrer_acknowledgement"))
    assert "<script>" not in drafts[0].html
    assert "&lt;script&gt;" in drafts[0].html
    assert "<script>alert(1)</script>" in drafts[0].text


@pytest.mark.parametrize(
    ("field", "column"),
    [
        ("referred_by", "Referred By"),
        ("referrer_practice", "Referrer Practice"),
        ("first_name", "Patient First Name"),
        ("last_name", "Patient Last Name"),
    ],
)
@pytest.mark.parametrize(
    "hazard", ["Dr. X\r\nBcc: evil@example.com", "A\nB", "nul\x00", "\u202eevil", "=?UTF-8?Q?=0A?="]
)
def test_header_injection_refused_with_the_column_named(
    field: str, column: str, hazard: str
) -> None:
    drafts, problems = plan(
        [referral(**{field: hazard})], settings=only("referrer_acknowledgement")
    )
    assert drafts == []
    assert problems == [
        (
            "R-00001",
            (
                f"{column} contains a line break or hidden control character: "
                "no acknowledgement to the referrer was drafted; retype it"
            ),
        )
    ]
    assert all(hazard not in line for _, line in problems)


def test_patient_email_refuses_hazard_in_patient_name_only() -> None:
    drafts, problems = plan(
        [referral(referred_by="Dr. X\r\nBcc: evil@example.com")], settings=only("patient_outreach")
    )
    assert [d.kind for d in drafts] == ["patient_outreach"]  # the referrer's name is not used
    assert problems == []


def test_long_cells_are_clipped() -> None:
    r = referral(first_name="A" * 500, referred_by="Dr. " + "B" * 500)
    drafts, _ = plan([r], settings=only("referrer_acknowledgement"))
    assert "A" * 100 not in drafts[0].text
    assert "A" * 99 in drafts[0].text
    assert len(drafts[0].to) < 200


# --------------------------------------------------------------------------------------------
# Templates: overrides and check
# --------------------------------------------------------------------------------------------


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_default_templates_pass_check() -> None:
    assert TEMPLATES.check(DEFAULTS) == []
    for kind in KINDS:
        for name in template_names(kind).values():
            assert TEMPLATES.label(name) == f"templates/{name}"


def test_override_replaces_only_its_file(tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    write(folder, "referrer_acknowledgement.subject.txt", "Merci, {{ referrer.first_name }}!")
    templates = TemplateSet(folder)
    assert templates.check(DEFAULTS) == []
    drafts, _ = plan([referral()], settings=only("referrer_acknowledgement"), templates=templates)
    assert drafts[0].subject == "Merci, Imelda!"
    assert "Thank you for sending" in drafts[0].text  # default body kept


@pytest.mark.parametrize("expression", ["{{ reason }}", "{{ referral.reason }}"])
def test_reason_in_a_referrer_template_fails_check_unless_allowed(
    tmp_path: Path, expression: str
) -> None:
    folder = tmp_path / "templates"
    path = write(folder, "closing_the_loop.txt", f"Hi {{{{ referrer.name }}}}: {expression}\n")
    templates = TemplateSet(folder)
    assert templates.check(DEFAULTS) == [
        (
            f"{path} uses reason, which a referrer email may not contain (minimum necessary): "
            "remove it, or allow it on purpose with drafts.allow_fields.closing_the_loop: [reason]"
        )
    ]
    allowed = DraftsSettings(allow_fields={"closing_the_loop": ("reason",)})
    assert templates.check(allowed) == []
    seen = referral(
        appointment=NOW - timedelta(days=1), visit="Attended", consent=True, stage="Seen"
    )
    drafts, _ = plan(
        [seen],
        settings=allowed.model_copy(update={"kinds": only("closing_the_loop").kinds}),
        templates=templates,
    )
    assert REASON_CANARY in drafts[0].text


def test_allowing_reason_for_one_kind_does_not_allow_it_for_another(tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    write(folder, "referrer_acknowledgement.html", "{{ reason }}")
    allowed = DraftsSettings(allow_fields={"closing_the_loop": ("reason",)})
    problems = TemplateSet(folder).check(allowed)
    assert len(problems) == 1 and "referrer_acknowledgement" in problems[0]
    # and at render time the field simply does not exist
    drafts, problems_at_plan = plan(
        [referral()], settings=only("referrer_acknowledgement"), templates=TemplateSet(folder)
    )
    assert drafts == []
    assert "template has an error" in problems_at_plan[0][1]


def test_last_name_in_a_referrer_template_fails_check(tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    write(folder, "referrer_acknowledgement.txt", "{{ patient.last_name }}")
    (problem,) = TemplateSet(folder).check(DEFAULTS)
    assert "uses last_name, which a referrer email may not contain" in problem


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (
            "{{ patinet.first_name }}",
            "uses patinet, which a welcome email to the patient cannot show",
        ),
        ("{{ patient.phone }}", "uses phone, which a patient email may not contain"),
        ("{% set f = 'first_name' %}{{ patient[f] }}", "computed name"),
        ("{{ patient['rea' ~ 'son'] }}", "uses reason, which a patient email may not contain"),
        ("{% include 'patient_outreach.html' %}", "include, import or extends"),
        ("Hello\n{% if %}", "line 2"),
        ("{{ practice.nmae }}", "uses practice.nmae"),
        ("{{ patient.first_name|nosuchfilter }}", "nosuchfilter"),
    ],
)
def test_check_names_the_problem(tmp_path: Path, text: str, fragment: str) -> None:
    folder = tmp_path / "templates"
    path = write(folder, "patient_outreach.txt", text)
    problems = TemplateSet(folder).check(DEFAULTS)
    assert problems, text
    assert str(path) in problems[0]
    assert fragment in problems[0]


def test_unknown_file_and_missing_folder(tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    write(folder, "closing_the_loop.text", "x")
    (problem,) = TemplateSet(folder).check(DEFAULTS)
    assert "closing_the_loop.text is not a template the bridge knows" in problem
    (missing,) = TemplateSet(tmp_path / "nope").check(DEFAULTS)
    assert missing.startswith("drafts.templates_dir: there is no folder at")


def test_sandbox_blocks_unsafe_attribute_access(tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    write(folder, "patient_outreach.txt", "{{ practice.name.__class__.__mro__ }}")
    problems = TemplateSet(folder).check(DEFAULTS)
    assert problems and "patient_outreach.txt" in problems[0]


def test_settings_validation() -> None:
    with pytest.raises(ValidationError, match="not an email kind"):
        DraftsSettings(kinds={"referrer_thanks": True})
    with pytest.raises(ValidationError, match="cannot be allowed"):
        DraftsSettings(allow_fields={"closing_the_loop": ("notes",)})
    with pytest.raises(ValidationError, match="about a referrer"):
        DraftsSettings(allow_fields={"referrer_checkin": ("reason",)})
    with pytest.raises(ValidationError):
        DraftsSettings(reminder_hour=3)  # type: ignore[call-arg]
    assert DraftsSettings().recent_window_days == 7
    assert all(DraftsSettings().is_enabled(kind) for kind in KINDS)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        plan([referral()], now=NOW.replace(tzinfo=None))
