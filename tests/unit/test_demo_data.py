"""The demo practice: reproducible, realistic, and carrying the mistakes the bridge must handle."""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import pytest

from sheets_bridge import model
from sheets_bridge.demo import Row, demo_rows, write_demo_workbook

NOW = datetime(2025, 6, 18, 14, 5, tzinfo=ZoneInfo("America/New_York"))
LOCAL_NOW = NOW.replace(tzinfo=None)


@pytest.fixture(scope="module")
def rows() -> list[Row]:
    return demo_rows(NOW)


def column(rows: list[Row], name: str) -> list[object]:
    return [row[name] for row in rows]


def is_blank(row: Row) -> bool:
    """Blank as B1 means it: nothing but whitespace, or only Notes."""
    return all(
        value is None or (isinstance(value, str) and not value.strip())
        for name, value in row.items()
        if name != "Notes"
    )


def test_deterministic_for_seed_and_now(rows: list[Row]) -> None:
    assert demo_rows(NOW) == rows
    assert demo_rows(NOW, seed=8) != rows
    assert demo_rows(NOW + timedelta(days=1)) != rows


def test_rows_are_keyed_by_staff_columns(rows: list[Row]) -> None:
    assert len(rows) == 400
    assert all(list(row) == list(model.STAFF_COLUMNS) for row in rows)
    assert len(demo_rows(NOW, count=120)) == 120


def test_needs_an_aware_now() -> None:
    with pytest.raises(ValueError, match="aware"):
        demo_rows(datetime(2025, 6, 18))


def test_received_spans_six_months_before_now(rows: list[Row]) -> None:
    received = [v for v in column(rows, "Received") if isinstance(v, datetime)]
    assert len(received) > 0.85 * len(rows)
    assert max(received) <= LOCAL_NOW
    assert min(received) >= LOCAL_NOW - timedelta(days=183)
    assert min(received) <= LOCAL_NOW - timedelta(days=150)
    recent = sum(LOCAL_NOW - r <= timedelta(days=60) for r in received)
    early = sum(timedelta(days=120) < LOCAL_NOW - r <= timedelta(days=180) for r in received)
    assert recent > early, "recent weeks are busier"


def test_every_channel_is_used(rows: list[Row]) -> None:
    counts = Counter(column(rows, "How Heard"))
    for channel in model.CHANNELS:
        assert counts[channel] >= 5, channel
    assert counts["Provider"] > counts["Patient"] > counts["Event"]


def test_referrers_are_realistic_and_unroutable(rows: list[Row]) -> None:
    providers = {r["Referred By"] for r in rows if r["How Heard"] == "Provider"}
    assert len(providers) == 12
    assert "Dr. Priya Raman" in providers
    patient_referrers = {r["Referred By"] for r in rows if r["How Heard"] == "Patient"}
    assert len(patient_referrers) > 10 and None not in patient_referrers
    for row in rows:
        for name in ("Patient Email", "Referrer Email"):
            value = row[name]
            if isinstance(value, str) and "@" in value and not value.endswith("@gmail"):
                domains = re.findall(r"@([\w.-]+)", value)
                assert all(d in ("example.com", "example.org", "example.net") for d in domains)
        phone = row["Patient Phone"]
        if phone is not None:
            for number in str(phone).removesuffix(".0").split("ext")[0].split("/"):
                digits = re.sub(r"\D", "", number)
                assert digits[-7:-2] == "55501", phone


def test_progress_depends_on_age(rows: list[Row]) -> None:
    def age(row: Row) -> float | None:
        value = row["Received"]
        return (LOCAL_NOW - value).days if isinstance(value, datetime) else None

    old = [r for r in rows if (a := age(r)) is not None and a > 60]
    new = [r for r in rows if (a := age(r)) is not None and a < 1]
    assert sum(r["Outcome"] is not None for r in old) > 0.6 * len(old)
    assert new and sum(r["First Contact"] is None for r in new) >= 1
    overdue = [
        r for r in rows if (a := age(r)) is not None and 1 <= a <= 14 and r["First Contact"] is None
    ]
    assert overdue, "a few rows are overdue"
    future = [
        r for r in rows if isinstance(r["Appointment"], datetime) and r["Appointment"] > LOCAL_NOW
    ]
    assert len(future) >= 5
    visits = Counter(column(rows, "Visit"))
    assert visits["Attended"] > 4 * visits["No-show"] > 0 and visits["Cancelled"] > 0
    fits = Counter(v for v in column(rows, "Fit") if v is not None)
    assert fits["Good fit"] > 0.7 * sum(fits.values())
    referred = [r for r in rows if r["How Heard"] in ("Provider", "Patient")]
    yes = sum(r["Consent to Update Referrer"] == "Yes" for r in referred)
    assert 0.4 < yes / len(referred) < 0.75


def test_names_are_diverse(rows: list[Row]) -> None:
    names = {f"{r['Patient First Name']} {r['Patient Last Name']}" for r in rows}
    text = " ".join(names)
    for needle in ("O'Brien", "María-José", "Nguyễn", "张", "WASHINGTON"):
        assert needle in text, needle


def test_value_types_are_mixed(rows: list[Row]) -> None:
    kinds = Counter(type(v).__name__ for v in column(rows, "Received"))
    assert kinds["datetime"] > 0.85 * len(rows)
    assert kinds["str"] >= 4
    assert kinds["int"] + kinds["float"] >= 3  # bare Excel serials


def test_the_usual_mistakes_are_present(rows: list[Row]) -> None:
    values = [v for row in rows for v in row.values()]
    texts = [v for v in values if isinstance(v, str)]
    received = column(rows, "Received")

    assert sum(is_blank(r) for r in rows) >= 2  # B1
    assert any(isinstance(v, str) and re.fullmatch(r"\d{1,2}/\d{1,2}/\d{2}", v) for v in received)
    assert any(isinstance(v, str) and re.fullmatch(r"[A-Z][a-z]+ \d{1,2}", v) for v in received)
    assert any(isinstance(v, str) and v.endswith("-02-30") for v in received)  # B11
    assert "yesterday" in column(rows, "First Contact")  # B10
    assert "tbd" in column(rows, "Appointment")
    phones = column(rows, "Patient Phone")
    assert any(isinstance(p, float) and p == int(p) and p > 1e9 for p in phones)  # B13
    assert any(isinstance(p, str) and "ext 3" in p for p in phones)
    assert any(isinstance(p, str) and len(re.findall(r"\d{3}-555-01\d\d", p)) == 2 for p in phones)
    emails = column(rows, "Patient Email")
    assert any(isinstance(e, str) and re.fullmatch(r"[a-z]+@gmail", e) for e in emails)  # B14
    assert "n/a" in emails
    assert any(isinstance(e, str) and ";" in e for e in emails)
    for free_text in ("dr referral", "saw on facebook", "friend told her", "Yelp"):  # B25
        assert free_text in column(rows, "How Heard")
    assert {"No show", "NS"} <= set(column(rows, "Visit"))
    assert {"yes (verbal)", "Y?"} <= set(column(rows, "Consent to Update Referrer"))  # B26
    assert any(t.startswith("=") for t in texts)  # B18
    assert any(  # B11: First Contact before Received
        isinstance(r["First Contact"], datetime)
        and isinstance(r["Received"], datetime)
        and r["First Contact"] < r["Received"]
        for r in rows
    )
    # B22: the same patient twice within days.
    seen: dict[tuple[object, object, object], datetime] = {}
    duplicate = False
    for r in rows:
        if is_blank(r) or not isinstance(r["Received"], datetime):
            continue
        key = (r["Patient First Name"], r["Patient Last Name"], r["Patient Phone"])
        if key in seen and abs(r["Received"] - seen[key]) <= timedelta(days=3):
            duplicate = True
        seen[key] = r["Received"]
    assert duplicate


def test_mistakes_stay_a_small_share(rows: list[Row]) -> None:
    allowed = {
        "How Heard": set(model.CHANNELS) | {None},
        "Visit": set(model.VISIT_VALUES) | {None},
        "Consent to Update Referrer": set(model.CONSENT_VALUES) | {None},
    }

    def odd(row: Row) -> bool:
        return (
            is_blank(row)
            or any(row[c] not in ok for c, ok in allowed.items())
            or isinstance(row["Patient Phone"], float)
            or row["Patient Email"] == "n/a"
        )

    assert 0.02 * len(rows) < sum(odd(r) for r in rows) < 0.1 * len(rows)


def test_written_workbook_keeps_text_as_text(tmp_path: Path, rows: list[Row]) -> None:
    path = tmp_path / "demo.xlsx"
    write_demo_workbook(path, rows)

    wb = openpyxl.load_workbook(path)
    ws = wb[model.REFERRALS_TAB]
    assert [c.value for c in ws[1]] == list(model.STAFF_COLUMNS)
    assert ws.freeze_panes == "A2"
    assert ws.max_row == len(rows) + 1
    formula_like = [
        cell
        for row in ws.iter_rows(min_row=2)
        for cell in row
        if isinstance(cell.value, str) and cell.value.startswith("=")
    ]
    assert formula_like, "the formula-looking name is in the workbook"
    assert all(cell.data_type == "s" for cell in formula_like)
    # Every value reads back as written (datetimes, text dates, float phones).
    for r, row in enumerate(rows, start=2):
        for c, name in enumerate(model.STAFF_COLUMNS, start=1):
            assert ws.cell(r, c).value == row[name], (r, name)
    dates = [c for c in ws["A"][1:] if isinstance(c.value, datetime)]
    assert dates and all(c.is_date and "yy" in c.number_format for c in dates)

    gifts = wb[model.GIFTS_TAB]
    assert [c.value for c in gifts[1]] == [
        "Date",
        "Recipient",
        "Recipient Type",
        "Item",
        "Retail Value",
    ]
    items = [(r[2], r[3], r[4]) for r in gifts.iter_rows(min_row=2, values_only=True)]
    assert len(items) >= 10
    assert ("Patient", "$10 coffee card", 10) in items
    assert {kind for kind, _, _ in items} == {"Patient", "Provider"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.xlsx"]
