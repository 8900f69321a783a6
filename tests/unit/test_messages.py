"""Building MIME messages: correct structure, encoded names, the key inside, injection refused.

Every message is checked the way a mail client reads it: serialised to bytes and parsed back
with ``email.message_from_bytes(..., policy=default)``.
"""

from __future__ import annotations

import dataclasses
import email
from datetime import datetime, timedelta
from email import policy
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import pytest

from sheets_bridge.drafting import plan_drafts
from sheets_bridge.email_kinds import KINDS
from sheets_bridge.email_templates import TemplateSet
from sheets_bridge.ledger import DraftHistory
from sheets_bridge.messages import (
    KEY_HEADER,
    HeaderInjectionError,
    InvalidAddressError,
    build_message,
    parse_address,
)
from sheets_bridge.model import DraftRequest, Referral
from sheets_bridge.settings import DraftsSettings, PracticeConfig

NOW = datetime(2026, 3, 10, 9, 0, tzinfo=ZoneInfo("America/New_York"))
FROM = "frontdesk@riverside.example"
PRACTICE = PracticeConfig(
    name="Clínica Señora Ruiz",
    owner_email="owner@riverside.example",
    signature="Dana\nClínica Señora Ruiz",
    designated_contact="Dana",
    phone="(555) 010-0100",
    address="12 Main Street",
)


def referral(rid: str, **changes: object) -> Referral:
    base = Referral(
        referral_id=rid,
        row=2,
        received=NOW - timedelta(days=1),
        received_has_time=True,
        first_name="María-José",
        last_name="张",
        phone=None,
        email="mj@example.com",
        how_heard="Provider",
        channel="Provider",
        source_tag="Provider Referral",
        referred_by="Dr. Nguyễn Văn An",
        referrer_email="an@clinic.example",
        referrer_practice="Clinic",
        reason="never in an email",
        fit=None,
        first_contact=None,
        appointment=None,
        visit=None,
        outcome=None,
        consent=True,
        stage="New",
        follow_up_due=None,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def everything_fires() -> list[Referral]:
    """Rows that, between them, trigger every kind at NOW."""
    return [
        referral("R-00001"),
        referral(
            "R-00002",
            received=NOW - timedelta(days=30),
            appointment=NOW + timedelta(hours=5),
            visit="Scheduled",
            stage="Scheduled",
            referrer_email="b@clinic.example",
        ),
        referral(
            "R-00003",
            received=NOW - timedelta(days=10),
            appointment=NOW - timedelta(days=1),
            visit="Attended",
            outcome="Completed",
            stage="Closed",
            referrer_email="c@clinic.example",
        ),
        referral(
            "R-00004",
            received=NOW - timedelta(days=92),
            stage="Closed",
            referrer_email="d@x.example",
        ),
    ]


def draft(**changes: str) -> DraftRequest:
    values = {
        "key": "R-00001.patient_outreach",
        "referral_id": "R-00001",
        "kind": "patient_outreach",
        "to": "Quillon Zzyqvarsson <quillon@example.com>",
        "subject": "Welcome, Quillon",
        "text": "Hi Quillon,\n\nWelcome.\n",
        "html": "<p>Hi Quillon,</p>\n",
    }
    values.update(changes)
    return DraftRequest(**values)


def build(d: DraftRequest, *, from_name: str = "Riverside PT") -> EmailMessage:
    return build_message(
        d, from_addr=FROM, from_name=from_name, now=NOW, domain="riverside.example"
    )


def round_trip(message: EmailMessage) -> EmailMessage:
    parsed = email.message_from_bytes(message.as_bytes(), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def assert_well_formed(parsed: EmailMessage, d: DraftRequest) -> None:
    """Headers and both parts as a mail client sees them."""
    assert parsed["Subject"] == d.subject
    assert parsed["Message-ID"] == f"<{d.key}@riverside.example>"
    assert parsed[KEY_HEADER] == d.key
    assert parsed["From"].addresses[0].addr_spec == FROM
    assert parsed["Date"].datetime == NOW
    assert parsed.get_content_type() == "multipart/alternative"
    parts = list(parsed.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)
    assert parts[0].get_content().replace("\r\n", "\n") == d.text
    assert parts[1].get_content().replace("\r\n", "\n") == d.html
    assert parsed.defects == []


def test_every_kind_builds_a_well_formed_message() -> None:
    drafts, _ = plan_drafts(
        everything_fires(),
        now=NOW,
        practice=PRACTICE,
        settings=DraftsSettings(),
        history=DraftHistory(),
        env=TemplateSet(),
    )
    assert {d.kind for d in drafts} == set(KINDS)
    for d in drafts:
        parsed = round_trip(build(d))
        assert_well_formed(parsed, d)
        (to,) = parsed["To"].addresses
        assert f"<{to.addr_spec}>" in d.to


def test_non_ascii_names_are_encoded_and_come_back_intact() -> None:
    d = draft(
        to='"张伟 Nguyễn, María-José" <zw@example.com>',
        subject="Bienvenue, María-José 张伟 🙂",
        text="Hola María-José,\n",
    )
    message = build(d, from_name="Clínica Señora Ruiz")
    raw = message.as_bytes()
    head = raw.split(b"\n\n", 1)[0]
    assert head.isascii()  # RFC 2047 words in the headers, no raw UTF-8
    parsed = round_trip(message)
    assert_well_formed(parsed, d)
    (to,) = parsed["To"].addresses
    assert to.display_name == "张伟 Nguyễn, María-José"
    assert parsed["From"].addresses[0].display_name == "Clínica Señora Ruiz"


def test_international_domain_becomes_ascii() -> None:
    parsed = round_trip(build(draft(to="Jörg <j@bücher.example>")))
    assert parsed["To"].addresses[0].addr_spec == "j@xn--bcher-kva.example"
    assert parsed["To"].addresses[0].display_name == "Jörg"


def test_message_id_is_deterministic() -> None:
    d = draft()
    first, second = build(d), build(d)
    assert (
        first["Message-ID"]
        == second["Message-ID"]
        == "<R-00001.patient_outreach@riverside.example>"
    )


@pytest.mark.parametrize(
    "hazard",
    ["\r\nBcc: evil@example.com", "\nX", "\r", "\x00", "\u202e", "\u2028", "=?UTF-8?Q?=0A?="],
)
@pytest.mark.parametrize("field", ["To", "Subject", "From name"])
def test_header_injection_is_refused_before_building(field: str, hazard: str) -> None:
    if field == "To":
        d, name = draft(to=f"Dr. X{hazard} <x@example.com>"), "Riverside"
    elif field == "Subject":
        d, name = draft(subject=f"Hello{hazard}"), "Riverside"
    else:
        d, name = draft(), f"Riverside{hazard}"
    with pytest.raises(HeaderInjectionError) as caught:
        build(d, from_name=name)
    assert caught.value.field == field
    assert isinstance(caught.value, ValueError)
    assert hazard not in str(caught.value)


@pytest.mark.parametrize(
    "to",
    [
        "john@gmail",
        "a@@b.com",
        "a@x.com; b@y.com",
        "a@x.com, b@y.com",
        "n/a",
        "",
        "Friends: a@x.com;",
        "Smith, Jane <j@x.com>",
        "jörg@x.com",
    ],
)
def test_addresses_are_parsed_strictly(to: str) -> None:
    with pytest.raises(InvalidAddressError) as caught:
        build(draft(to=to))
    assert caught.value.field == "To"


def test_parse_address_accepts_one_plain_or_named_address() -> None:
    assert parse_address("j@x.com", field="To").addr_spec == "j@x.com"
    named = parse_address('"Smith, Jane" <j@x.com>', field="To")
    assert (named.display_name, named.addr_spec) == ("Smith, Jane", "j@x.com")


def test_bad_key_domain_or_clock_refused() -> None:
    with pytest.raises(ValueError):
        build(draft(key="../etc/passwd"))
    with pytest.raises(ValueError):
        build_message(draft(), from_addr=FROM, from_name="x", now=NOW, domain="bad domain")
    with pytest.raises(ValueError):
        build_message(
            draft(), from_addr=FROM, from_name="x", now=NOW.replace(tzinfo=None), domain="a.example"
        )


def test_cell_braces_survive_into_the_message() -> None:
    drafts, _ = plan_drafts(
        [referral("R-00001", first_name="{{ 7*7 }}")],
        now=NOW,
        practice=PRACTICE,
        settings=DraftsSettings(kinds={k: k == "patient_outreach" for k in KINDS}),
        history=DraftHistory(),
        env=TemplateSet(),
    )
    parsed = round_trip(build(drafts[0]))
    assert "{{ 7*7 }}" in parsed["Subject"]
    text = next(parsed.iter_parts()).get_content()
    assert text.startswith("Hello,") and "49" not in text  # no name there: a neutral greeting


def test_long_lines_and_utf8_bodies_survive() -> None:
    body = ("Ünïcödé " * 200) + "\n"
    parsed = round_trip(build(draft(text=body)))
    assert next(parsed.iter_parts()).get_content() == body
