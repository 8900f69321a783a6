"""The staff's Gifts tab: thank-you gifts read leniently, and the limits they must stay within.

Incentives shape the product (PRODUCT.md, "Compliance"): no cash to referrers, small non-cash
thank-yous for patients within nominal value. The bridge only reads this tab, flags cash and cash
equivalents (gift cards included) and totals per recipient per year over the configured limits,
and says so on the Dashboard and in the digest. Patients are never named in a warning: only
their Gifts row is.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal
from zoneinfo import ZoneInfo

from sheets_bridge.dates import Order, parse_when
from sheets_bridge.model import CellValue, DateSerial, TabValues
from sheets_bridge.settings import SummarySettings

__all__ = [
    "Gift",
    "GiftSummary",
    "build_gifts_summary",
    "gift_warnings",
    "is_cash_equivalent",
    "parse_money",
    "read_gifts",
]


def _collapse(text: str) -> str:
    return " ".join(text.split())


@dataclass(frozen=True, slots=True)
class Gift:
    """One row of the staff-entered Gifts tab, read leniently; ``problems`` say what was unclear."""

    row: int
    """1-based row number in the Gifts tab, so a warning can point at it."""
    date: date | None
    recipient: str
    recipient_type: Literal["Patient", "Provider", ""]
    item: str
    value: float | None
    problems: tuple[str, ...] = ()


_GIFT_HEADERS: dict[str, tuple[str, ...]] = {
    "date": ("date", "dategiven", "giftdate", "given"),
    "recipient": ("recipient", "recipientname", "givento", "name"),
    "recipient_type": ("recipienttype", "type", "recipientkind"),
    "item": ("item", "gift", "description", "giftitem"),
    "value": ("retailvalue", "value", "amount", "cost", "price"),
}


def _plain(value: CellValue) -> str:
    return re.sub(r"[^a-z0-9]", "", str(value).casefold()) if value is not None else ""


def _text(value: CellValue) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return _collapse(str(value))


def parse_money(value: CellValue) -> float | None:
    """A non-negative amount from ``15``, ``"$15.00"``, ``"USD 1,200"``; None when unreadable."""
    if value is None or isinstance(value, bool | DateSerial):
        return None
    if isinstance(value, int | float):
        return float(value) if value >= 0 else None
    text = re.sub(r"(?i)usd|us\$|\$|,|\s", "", str(value))
    if re.fullmatch(r"\d+(\.\d+)?|\.\d+", text):
        return float(text)
    return None


def _recipient_type(value: CellValue) -> Literal["Patient", "Provider", ""]:
    plain = _text(value).casefold()
    if "patient" in plain:
        return "Patient"
    if re.search(r"provider|physician|doctor|\bdr\b|\bmd\b|\bdo\b|\bnp\b|\bpa\b|clinician", plain):
        return "Provider"
    return ""


def read_gifts(
    tab: TabValues | None,
    *,
    now: datetime,
    date_order: Order = "MDY",
    date1904: bool = False,
) -> list[Gift]:
    """The Gifts tab's rows as ``Gift`` records; an absent tab or one without a Recipient header
    gives none. Headers are found by name in the first ten rows, ignoring case and punctuation.

    Dates are read by the same reader as the Referrals tab's (``values.parse_when``) in
    ``now``'s zone (the practice's), so "3/4/25" means the same day on both tabs.
    """
    if tab is None:
        return []
    header_index: int | None = None
    columns: dict[str, int] = {}
    for index, row in enumerate(tab.rows[:10]):
        names = [_plain(cell) for cell in row]
        found = {
            field: names.index(alias)
            for field, aliases in _GIFT_HEADERS.items()
            for alias in reversed(aliases)
            if alias in names
        }
        if "recipient" in found:
            header_index, columns = index, found
            break
    if header_index is None:
        return []

    def cell(row: tuple[CellValue, ...], field: str) -> CellValue:
        col = columns.get(field)
        return row[col] if col is not None and col < len(row) else None

    zone = now.tzinfo if isinstance(now.tzinfo, ZoneInfo) else ZoneInfo("UTC")
    gifts: list[Gift] = []
    for index in range(header_index + 1, len(tab.rows)):
        row = tab.rows[index]
        if all(v is None or (isinstance(v, str) and not v.strip()) for v in row):
            continue
        problems: list[str] = []
        raw_date, raw_value, raw_type = (
            cell(row, "date"),
            cell(row, "value"),
            cell(row, "recipient_type"),
        )
        when = parse_when(
            raw_date, column="Date", tz=zone, date_order=date_order, now=now, date1904=date1904
        ).value
        day = when.at.date() if when is not None else None
        if day is None:
            problems.append(
                "no Date" if raw_date is None or not _text(raw_date) else "the Date cannot be read"
            )
        value = parse_money(raw_value)
        if value is None:
            problems.append(
                "no Retail Value"
                if raw_value is None or not _text(raw_value)
                else "the Retail Value is not an amount"
            )
        kind = _recipient_type(raw_type)
        if not kind:
            problems.append(
                "no Recipient Type"
                if raw_type is None or not _text(raw_type)
                else "the Recipient Type is neither Patient nor Provider"
            )
        gifts.append(
            Gift(
                row=index + 1,
                date=day,
                recipient=_text(cell(row, "recipient")),
                recipient_type=kind,
                item=_text(cell(row, "item")),
                value=value,
                problems=tuple(problems),
            )
        )
    return gifts


_CASH = re.compile(
    r"\b(cash|gift\s*-?\s*cards?|e-?gift|gift\s*cert(ificate)?s?|vouchers?|"
    r"visa|mastercard|amex|american\s+express|prepaid|debit\s+cards?|cheques?|checks?|"
    r"money\s+orders?|venmo|paypal|zelle|cash\s*app|store\s+credit|bitcoin|crypto\w*)\b",
    re.IGNORECASE,
)


def is_cash_equivalent(item: str) -> bool:
    """Cash or something spent like cash (gift cards and certificates included)."""
    return bool(_CASH.search(item))


def _money(value: float) -> str:
    return f"${value:,.2f}"


def _who(gift: Gift) -> str:
    """How a warning names the recipient: providers by name, patients only by their Gifts row."""
    if gift.recipient_type == "Provider" and gift.recipient:
        return gift.recipient
    if gift.recipient_type == "Patient":
        return "a patient"
    return "the recipient"


def gift_warnings(gifts: Sequence[Gift], settings: SummarySettings, year: int) -> list[str]:
    """Gifts that break the practice's limits in ``year``, one sentence each.

    Cash and cash equivalents are flagged whatever the amount; a patient item over the per-item
    limit; per recipient, a year's total over the patient or provider limit. Patients are named
    only by Gifts row ("the patient on Gifts rows 3, 7"), never by name: the digest carries no
    patient names. Rows whose date or type cannot be read are said so, since they cannot be
    counted.
    """
    lines: list[str] = []
    totals: dict[tuple[str, str], list[Gift]] = defaultdict(list)
    for gift in sorted(gifts, key=lambda g: g.row):
        if gift.date is None:
            lines.append(
                f"Gifts row {gift.row}: {', '.join(gift.problems) or 'the Date cannot be read'}, "
                "so it is not counted in any year."
            )
            continue
        if gift.date.year != year:
            continue
        if gift.problems:
            lines.append(f"Gifts row {gift.row}: {'; '.join(gift.problems)}.")
        if is_cash_equivalent(gift.item):
            lines.append(
                f"Gifts row {gift.row}: {gift.item or 'the item'} for {_who(gift)} is cash or a "
                "cash equivalent, which is not allowed as a thank-you whatever the amount."
            )
        if (
            gift.recipient_type == "Patient"
            and gift.value is not None
            and gift.value > settings.gift_patient_item_limit
        ):
            lines.append(
                f"Gifts row {gift.row}: {_money(gift.value)} for a patient is over the "
                f"{_money(settings.gift_patient_item_limit)} limit for one item."
            )
        if gift.recipient_type and gift.recipient:
            totals[(gift.recipient_type, _collapse(gift.recipient).casefold())].append(gift)
    for (kind, _name), group in sorted(totals.items()):
        total = sum(g.value or 0.0 for g in group)
        limit = (
            settings.gift_patient_year_limit
            if kind == "Patient"
            else settings.gift_provider_year_limit
        )
        if total <= limit:
            continue
        rows = ", ".join(str(g.row) for g in group)
        who = (
            f"the patient on Gifts rows {rows}"
            if kind == "Patient"
            else f"{group[0].recipient} (Gifts rows {rows})"
        )
        what = "patients" if kind == "Patient" else "physicians"
        lines.append(
            f"Gifts to {who} total {_money(total)} in {year}, over the {_money(limit)} a year "
            f"limit for {what}."
        )
    return lines




@dataclass(frozen=True)
class GiftSummary:
    """A year of gifts in a few numbers, and the warnings the digest shows."""

    year: int
    count: int
    total_value: float
    warnings: tuple[str, ...]


def build_gifts_summary(gifts: Sequence[Gift], settings: SummarySettings, year: int) -> GiftSummary:
    """Count and total of ``year``'s gifts plus every warning; the Gifts tab itself is not touched."""
    this_year = [g for g in gifts if g.date is not None and g.date.year == year]
    return GiftSummary(
        year=year,
        count=len(this_year),
        total_value=round(sum(g.value or 0.0 for g in this_year), 2),
        warnings=tuple(gift_warnings(gifts, settings, year)),
    )
