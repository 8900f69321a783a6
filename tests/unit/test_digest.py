"""Golden tests for the weekly digest's pure builder, over the hand-worked dataset of
``test_metrics.py`` (its docstring has the table every number below comes from).

Seen on Wednesday 12 Nov 2025, 10:00 in New York, the digest reports the last full week,
Mon 3 - Sun 9 Nov: R05 R06 (Provider, Dr Ann Lee), R07 (Self, social media), R08 (Patient, Maria
Gomez) = 4 new; the week before (27 Oct - 2 Nov, the DST week) holds R11 (Self) and R12
(Patient) = 2, so "+2"; the 4 weeks before (6 Oct - 2 Nov) hold R09 R10 R11 R12 = 1 a week.
R02 and R12 have Stage OVERDUE, so "2 overdue".
"""

from __future__ import annotations

import email
import re
from datetime import datetime
from email import policy
from email.message import EmailMessage
from typing import Any, cast

import pytest
from pydantic import ValidationError

# The golden dataset lives beside these tests (pytest puts this folder on sys.path).
from test_metrics import GOLDEN, NOW, NY, SETTINGS, at, gifts_tab, make_referral

from sheets_bridge.digest import (
    Digest,
    DraftsWaiting,
    build_digest,
    chart_png,
    digest_key,
    digest_message,
    preview_html,
    render_digest,
)
from sheets_bridge.gifts import read_gifts
from sheets_bridge.metrics import bottlenecks
from sheets_bridge.model import Referral, TabValues
from sheets_bridge.settings import DigestSettings

PRACTICE = "Harbor Physio"


def gifts_with_a_name_in_an_item() -> TabValues:
    """The golden Gifts tab plus a row whose Item names a patient (staff free text)."""
    tab = gifts_tab()
    extra = (
        "2025-08-01",
        "Quillon Vantablack0",
        "Patient",
        "Gift card for Quillon Vantablack0",
        10,
    )
    return TabValues(tab.title, (*tab.rows, extra))


def digest(referrals: tuple[Referral, ...] = GOLDEN, now: datetime = NOW, **kw: Any) -> Digest:
    kw.setdefault("gifts", read_gifts(gifts_with_a_name_in_an_item(), now=NOW))
    kw.setdefault("drafts", DraftsWaiting(3, 10, "the drafts folder"))
    kw.setdefault("sheet_link", "file:///practice/referrals.xlsx")
    return build_digest(referrals, now, practice_name=PRACTICE, summaries=SETTINGS, **kw)


@pytest.fixture(scope="module")
def png() -> bytes:
    """One real chart for the module: matplotlib takes about a second per figure."""
    data = chart_png(digest().weeks)
    assert data is not None, "matplotlib is needed for the digest chart"
    return data


def message(d: Digest, png: bytes | None) -> EmailMessage:
    return digest_message(
        d,
        png=png,
        to="owner@example.com",
        from_addr="owner@example.com",
        from_name=PRACTICE,
        now=NOW,
        domain="example.com",
    )


def parse(raw: bytes) -> EmailMessage:
    """``message_from_bytes`` under ``policy.default`` (which makes EmailMessage objects)."""
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def parts(message: EmailMessage) -> list[EmailMessage]:
    found = list(message.iter_parts())
    assert all(isinstance(p, EmailMessage) for p in found)
    return cast(list[EmailMessage], found)


def decoded_parts(raw: bytes) -> list[str]:
    """Every part of a message, decoded (text as str, the PNG as latin-1), plus the headers."""
    parsed = parse(raw)
    out = [str(value) for _, value in parsed.items()]
    for part in parsed.walk():
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        charset = part.get_content_charset()
        out.append(payload.decode(charset) if charset else payload.decode("latin-1"))
    return out


# --------------------------------------------------------------------------------------------
# Numbers


def test_subject_carries_the_headline() -> None:
    assert digest().subject == "Referrals, week of 3 Nov: 4 new (+2), 2 overdue"


def test_week_against_last_week_and_the_four_week_average() -> None:
    d = digest()
    assert (d.new, d.before, d.delta, d.average, d.overdue) == (4, 2, "+2", 1.0, 2)
    assert d.week_span == "3 Nov – 9 Nov 2025"
    assert d.comparison == (
        "4 new referrals in the week of 3 Nov, against 2 the week before and an average of 1 a "
        "week over the 4 weeks before."
    )
    by_tag = {line.label: (line.week, line.before) for line in d.by_tag}
    assert by_tag == {
        "Provider referrals": (2, 0),
        "Patient referrals": (1, 1),
        "Self-referrals (cold leads)": (1, 1),
    }  # no Unknown line: none either week


def test_referred_against_cold_leads_over_twelve_weeks() -> None:
    # 18 Aug - 9 Nov: referred R05 R06 R08 R09 R10 R12 R13; cold R07 R11.
    referred, cold = digest().side_by_side
    assert digest().side_span == "18 Aug – 9 Nov 2025"
    assert (referred.volume, referred.week) == (7, 3)
    assert referred.good_fit == "83% of 6"  # R05 R06 R09 R10 R13 good, R08 unsure; R12 unset
    assert referred.show == "60% of 5"  # attended R05 R09 R13; R06 no-show, R10 cancelled
    assert referred.long_term == "67% of 3"  # ongoing R05 R13 of seen R05 R09 R13
    assert (cold.volume, cold.week, cold.good_fit) == (2, 1, "50% of 2")
    assert cold.show == "no data"


def test_stall_bottlenecks_and_referrers() -> None:
    d = digest()
    assert not d.stall
    assert d.volume.startswith("Week of 3 Nov 2025: 4 referrals, against an average of 1")
    assert d.bottlenecks == tuple(bottlenecks(GOLDEN, NOW, SETTINGS))
    assert [(r.name, r.practice, r.detail) for r in d.thank] == [
        ("Dr Ann Lee", "Lee Clinic", "2 referrals"),
    ]
    # Maria Gomez referred R08: a patient, so counted and not named.
    assert d.thank_patients == 1
    text = render_digest(d, None).text
    assert "Maria Gomez" not in text
    assert "- 1 patient who referred someone (names on the Referrers tab)" in text
    # Dr Carl Ng's only referral was on 1 May: more than 90 days ago.
    assert [(r.name, r.detail) for r in d.reconnect] == [
        ("Dr Carl Ng", "1 referral in all, the last on 1 May 2025")
    ]
    assert d.reconnect_more == d.reconnect_patients == 0
    assert d.unreadable == 1  # R04


def test_a_stall_is_named_in_the_digest() -> None:
    # Four busy weeks (5 a week), then one referral in the last full week.
    refs = tuple(
        make_referral(i * 10 + j, at(10, 7 + 7 * i, 9 + j), "Provider Referral", by="Dr A")
        for i in range(4)
        for j in range(5)
    ) + (make_referral(99, at(11, 4, 9), "Provider Referral", by="Dr A"),)
    d = digest(refs)
    assert d.stall
    assert d.subject == "Referrals, week of 3 Nov: 1 new (-4), 0 overdue"
    assert d.volume.startswith("Stall: 1 referral in the week of 3 Nov 2025")
    assert "STALL ALERT" in render_digest(d, None).text


def test_lapsed_patient_referrers_are_counted_not_named() -> None:
    refs = (*GOLDEN, make_referral(42, at(3, 2, 9), "Patient Referral", by="Wilhelmina Oldfriend"))
    d = digest(refs)
    assert d.reconnect_patients == 1
    assert [r.name for r in d.reconnect] == ["Dr Carl Ng"]
    rendered = render_digest(d, None)
    assert "Oldfriend" not in rendered.text + rendered.html
    assert "1 patient referrer gone quiet (names on the Referrers tab)" in rendered.text


def test_thank_says_when_it_was_a_referrers_first() -> None:
    refs = (
        *GOLDEN,
        make_referral(40, at(11, 5, 9), "Provider Referral", by="Dr New", fit="Good fit"),
    )
    line = next(r for r in digest(refs).thank if r.name == "Dr New")
    assert line.detail == "1 referral, their first"


def test_no_data_at_all() -> None:
    d = digest((), gifts=(), drafts=None)
    assert d.subject == "Referrals, week of 3 Nov: 0 new (±0), 0 overdue"
    assert d.thank == d.reconnect == d.bottlenecks == ()
    text = render_digest(d, None).text
    assert "Nobody named a referrer last week." in text
    assert "No gifts logged in 2025." in text


def test_a_week_with_the_dst_change() -> None:
    # Monday 3 Nov 2025: the last full week is 27 Oct - 2 Nov, when New York fell back.
    now = datetime(2025, 11, 3, 7, 0, tzinfo=NY)
    d = digest(now=now)
    assert d.key == "digest.2025-W45"
    assert d.week_span == "27 Oct – 2 Nov 2025"
    # R12 (27 Oct) and R11 (1 Nov 23:00 EDT); the week before holds R10 only.
    assert d.subject == "Referrals, week of 27 Oct: 2 new (+1), 2 overdue"


def test_gift_warnings_never_name_a_patient() -> None:
    d = digest()
    assert d.gift_summary == "9 gifts logged in 2025, $630.50 in all."
    joined = "\n".join(d.gifts)
    assert "Quillon" not in joined and "Vantablack" not in joined
    assert "Gifts row 13: Gift card for [a patient] for a patient is cash" in joined
    assert "Visa gift card for Dr Ann Lee" in joined  # providers are named


def test_drafts_waiting_lines() -> None:
    assert digest().drafts == (
        "3 email drafts made in the last 7 days, waiting for a person to review and send them.",
        "10 drafts in the drafts folder in all.",
    )
    assert digest(drafts=DraftsWaiting(0, None, "")).drafts == (
        "No email drafts made in the last 7 days.",
    )


# --------------------------------------------------------------------------------------------
# Keys and settings


@pytest.mark.parametrize(
    ("now", "key"),
    [
        (datetime(2026, 11, 23, 7, tzinfo=NY), "digest.2026-W48"),
        (datetime(2026, 11, 29, 23, 59, tzinfo=NY), "digest.2026-W48"),
        (datetime(2026, 11, 30, 0, 0, tzinfo=NY), "digest.2026-W49"),
        (datetime(2027, 1, 1, 9, tzinfo=NY), "digest.2026-W53"),  # ISO year 2026 has 53 weeks
        (datetime(2027, 1, 4, 9, tzinfo=NY), "digest.2027-W01"),
    ],
)
def test_digest_key_is_the_iso_week(now: datetime, key: str) -> None:
    assert digest_key(now) == key


def test_settings_defaults_and_validation() -> None:
    s = DigestSettings()
    assert (s.weekday, s.hour, s.send, s.sheet_link) == ("mon", 7, False, "")
    assert DigestSettings(sheet_link="https://docs.google.com/x").sheet_link
    for bad in (
        {"hour": 24},
        {"hour": -1},
        {"weekday": "monday"},
        {"sent": True},
        {"sheet_link": "javascript:alert(1)"},
    ):
        with pytest.raises(ValidationError):
            DigestSettings.model_validate(bad)
    with pytest.raises(ValidationError):
        s.hour = 8  # type: ignore[misc]


# --------------------------------------------------------------------------------------------
# The message


def test_message_parses_back_with_text_html_and_an_inline_chart(png: bytes) -> None:
    parsed = parse(message(digest(), png).as_bytes())
    assert parsed["Message-ID"] == "<digest.2025-W46@example.com>"
    assert parsed["X-Sheets-Bridge-Key"] == "digest.2025-W46"
    assert parsed["To"] == "owner@example.com"
    assert parsed["Subject"] == "Referrals, week of 3 Nov: 4 new (+2), 2 overdue"
    assert parsed.get_content_type() == "multipart/alternative"
    text, related = parts(parsed)
    assert text.get_content_type() == "text/plain"
    assert related.get_content_type() == "multipart/related"
    html, image = parts(related)
    assert html.get_content_type() == "text/html"
    assert image.get_content_type() == "image/png"
    assert image.get_content_disposition() == "inline"
    cid = image["Content-ID"].strip("<>")
    assert f'src="cid:{cid}"' in html.get_content()
    assert image.get_payload(decode=True) == png
    assert "4 new referrals in the week of 3 Nov" in text.get_content()


def test_message_without_a_chart_has_no_image() -> None:
    parsed = parse(message(digest(), None).as_bytes())
    types = [p.get_content_type() for p in parsed.walk()]
    assert types == ["multipart/alternative", "text/plain", "text/html"]
    assert "cid:" not in parts(parsed)[1].get_content()


def test_no_patient_data_anywhere(png: bytes) -> None:
    """The canary: no patient name, email, phone or reason of the dataset, in any part."""
    d = digest()
    raw = message(d, png).as_bytes()
    haystacks = [raw.decode("latin-1"), *decoded_parts(raw), preview_html(d, png)]
    rendered = render_digest(d, None)
    haystacks += [rendered.subject, rendered.text, rendered.html]
    canaries: set[str] = set()
    for ref in GOLDEN:
        canaries |= {ref.first_name, ref.last_name, ref.reason, "Maria Gomez"}
        assert ref.email is not None and ref.phone is not None
        canaries |= {ref.email, ref.phone, re.sub(r"\D", "", ref.phone)}
    for hay in haystacks:
        folded = hay.casefold()
        leaked = sorted(c for c in canaries if c.casefold() in folded)
        assert not leaked, f"patient data in the digest: {leaked}"
    # ...and the chart's labels are dates and tag names (checked on the data it is drawn from).
    assert all(set(w.counts) <= {"Provider Referral", "Patient Referral", "Self-Referral",
                                 "Unknown"} for w in d.weeks)  # fmt: skip


def test_html_is_autoescaped() -> None:
    refs = (*GOLDEN, make_referral(41, at(11, 5, 9), "Provider Referral", by="Dr <b>Bold</b> & Co"))
    rendered = render_digest(digest(refs), None)
    assert "Dr &lt;b&gt;Bold&lt;/b&gt; &amp; Co" in rendered.html
    assert "<b>Bold</b>" not in rendered.html
    assert "Dr <b>Bold</b> & Co" in rendered.text  # plain text is not escaped


def test_preview_is_a_standalone_page_with_the_chart_inlined(png: bytes) -> None:
    page = preview_html(digest(), png)
    assert page.startswith("<!DOCTYPE html>")
    assert '<img src="data:image/png;base64,' in page
    assert "cid:" not in page
    assert "<title>Referrals, week of 3 Nov: 4 new (+2), 2 overdue</title>" in page


def test_chart_is_a_png_and_deterministic(png: bytes) -> None:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert b"Software" not in png[:200]  # no matplotlib version stamp to make bytes differ


def test_a_subject_with_a_line_break_is_refused() -> None:
    with pytest.raises(ValueError):
        digest_message(
            digest(),
            png=None,
            to="owner@example.com",
            from_addr="owner@example.com",
            from_name="Harbor\nBcc: x@example.com",
            now=NOW,
            domain="example.com",
        )


def test_referral_ids_are_never_broken_at_their_hyphen_on_a_phone() -> None:
    d = digest()
    assert any("R-000" in line for line in d.bottlenecks)
    body = render_digest(d, None).html
    ids = re.findall(r"R-\d{5}", " ".join(d.bottlenecks))
    for rid in ids:
        assert f'<span style="white-space: nowrap;">{rid}</span>' in body
    assert "R-000" in render_digest(d, None).text  # plain text is left as it is


def test_a_local_workbook_is_named_not_linked() -> None:
    d = digest(sheet_link="", sheet_where="/practice/referrals.xlsx")
    html_body, text = render_digest(d, None).html, render_digest(d, None).text
    assert "Open the sheet" not in html_body and "href=" not in html_body.split("Gifts")[-1]
    assert "The numbers come from the workbook at" in html_body and "/practice/referrals.xlsx" in html_body
    assert "The numbers come from the workbook at /practice/referrals.xlsx" in text
    linked = digest(sheet_link="https://docs.google.com/spreadsheets/d/x", sheet_where="/x.xlsx")
    assert 'href="https://docs.google.com/spreadsheets/d/x"' in render_digest(linked, None).html
    assert "/x.xlsx" not in render_digest(linked, None).html
