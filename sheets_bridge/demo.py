"""The demo practice behind ``make demo``: six months of fictitious referrals in a workbook.

The rows look like what a front desk really produces, so the demo shows the bridge doing its job
on something messy rather than on a tidy fixture: a dozen referring providers (one new, two gone
quiet), patients referring friends, cold leads from every channel, rows progressed realistically
by age (old ones seen and closed, recent ones new, a few overdue), and the usual mistakes of
RELIABILITY.md (c) in about 5-8% of the rows (odd dates, phones as floats, two emails in a cell,
free-text channels, a formula-looking name, a blank row, a duplicate...).

Everything is fictitious and unroutable: emails use only example.com/.org/.net, phones only
555-01xx. Output is deterministic for a given ``seed`` and ``now`` (one ``random.Random``, no
dependence on hashing or the clock), so a demo and its screenshots can be reproduced.

Cell values are what a spreadsheet holds: datetimes are naive wall-clock times in ``now``'s
time zone (Excel has no time zones), some dates are text or bare serial numbers, as staff type them.

Why one module of this size: the generator of a fictitious practice (providers, patients,
cold leads and the mistakes staff make) and its workbook writer belong together, and none of it
runs during a sync; tests and the benchmark take their data from here.
"""

from __future__ import annotations

import math
import random
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from sheets_bridge import model
from sheets_bridge.sheets.xlsx_setup import COLUMN_WIDTHS, save_workbook_atomically

Row = dict[str, object]

DAYS_OF_HISTORY = 182
EXCEL_EPOCH = datetime(1899, 12, 30)  # serial 0 in the 1900 date system, leap-day quirk included

DATETIME_FORMAT = "yyyy-mm-dd hh:mm"
DATE_FORMAT = "yyyy-mm-dd"
MONEY_FORMAT = '"$"#,##0.00'


@dataclass(frozen=True)
class Provider:
    """A referring provider. ``active_days`` is the (newest, oldest) age in days they refer in."""

    name: str
    practice: str
    email: str
    weight: float
    active_days: tuple[int, int] = (0, DAYS_OF_HISTORY)


PROVIDERS: tuple[Provider, ...] = (
    Provider("Dr. Priya Raman", "Riverside Family Medicine", "priya.raman@example.org", 10),
    Provider("Dr. Marcus Bell", "Bell Orthopedics", "mbell@example.com", 8),
    Provider("Dr. Elena Petrova", "Northside Internal Medicine", "e.petrova@example.net", 6),
    Provider("Dr. Samuel Okonkwo", "Okonkwo Sports Medicine", "referrals@example.com", 5),
    Provider("Dr. Hannah Goldberg", "Lakeview OB/GYN", "", 3),
    Provider("Dr. Kenji Watanabe", "Harbor Pediatrics", "kwatanabe@example.org", 2),
    Provider("Dr. Fatima Al-Rashid", "Midtown Neurology", "fatima.alrashid@example.com", 4),
    # Lapsed: sent patients early in the period, then nothing (the Referrers tab flags them).
    Provider("Dr. Robert Kline", "Kline Chiropractic", "rkline@example.net", 7, (100, 182)),
    Provider("Dr. Ana Sofía Torres", "Torres Pain Clinic", "atorres@example.org", 3),
    Provider("Jordan Lee, PA-C", "Urgent Care on 5th", "jlee.pa@example.com", 3),
    Provider("Dr. Olivia Brandt", "Brandt Podiatry", "obrandt@example.net", 2, (75, 182)),
    # New: started referring recently.
    Provider("Dr. David Chen", "Eastside Primary Care", "dchen@example.org", 8, (0, 45)),
)

#: How Heard -> share of leads. Provider and Patient are referrals, the rest cold leads.
CHANNEL_WEIGHTS: dict[str, float] = {
    "Provider": 40,
    "Patient": 19,
    "Google": 13,
    "Social media": 8,
    "Directory": 6,
    "Event": 4,
    "Walk-in": 5,
    "Other": 5,
}

FIRST_NAMES: tuple[str, ...] = (
    "Aisha", "Liam", "María-José", "Lan", "Olivia", "Noah", "Sofía", "Mateo", "Priyanka",
    "Darnell", "Keiko", "Fatima", "Chloé", "Jamal", "Ingrid", "Tomás", "Mei", "Omar", "Grace",
    "Ethan", "Zoë", "Raj", "Hannah", "Kwame", "Yael", "Luca", "Ava", "Dmitri", "Nia", "Siobhán",
    "Sean", "Bea 🌻", "ليلى", "Noa", "JAMES", "Maria", "John", "Emily", "Carlos", "Aaliyah",
)  # fmt: skip
LAST_NAMES: tuple[str, ...] = (
    "O'Brien", "Nguyễn", "Garcia", "Okafor", "Smith", "Johnson", "Kowalski", "Patel", "Haddad",
    "Müller", "Levi", "Rossi", "Tanaka", "Williams", "Brown", "Davis", "Martínez", "Kim", "Lee",
    "Chen", "Al-Sayed", "van der Berg", "St. John", "WASHINGTON", "McAllister", "Dubois",
    "Ivanova", "Mensah", "Cohen", "Hernández", "Thompson", "D'Angelo",
)  # fmt: skip
#: Full names kept together where splitting them at random would be unrealistic.
WHOLE_NAMES: tuple[tuple[str, str], ...] = (
    ("伟", "张"),
    ("张伟", ""),
    ("Thi Lan", "Nguyễn"),
    ("MARY", "O'CONNOR"),
    ("José Luis", "Rodríguez-Peña"),
    ("יעל", "כהן"),
)

REASONS: tuple[str, ...] = (
    "Low back pain after lifting",
    "Neck pain, desk work",
    "Knee pain after ACL reconstruction",
    "Rotator cuff strain",
    "Sciatica, left leg",
    "Post-op rehab, total hip replacement",
    "Plantar fasciitis",
    "Tension headaches",
    "Ankle sprain, recurring",
    "Tennis elbow",
    "Postpartum pelvic floor weakness",
    "Balance problems, two falls this year",
    "Whiplash after car accident",
    "Frozen shoulder",
    "Running injury, shin splints",
    "Chronic low back pain, 3 years",
    "Carpal tunnel symptoms",
    "TMJ pain",
    "Hamstring strain (soccer)",
    "Osteoarthritis both knees",
    "Concussion follow-up, dizziness",
    "Scoliosis, wants exercise plan",
)
NOTES: tuple[str, ...] = (
    "Left voicemail",
    "Prefers text messages",
    "Asked about insurance coverage",
    "Wants early morning appointments",
    "Spanish speaker: call with interpreter",
    "Will call back after checking schedule",
    "Came with daughter",
    "Rescheduled once",
    "Met at the health fair",
)
AREA_CODES: tuple[int, ...] = (212, 646, 718, 917, 347, 516)
DOMAINS: tuple[str, ...] = ("example.com", "example.org", "example.net")

GIFTS: tuple[tuple[int, str, str, str, float], ...] = (
    # (days before the newest referral, recipient, type, item, retail value)
    (170, "Dr. Robert Kline", "Provider", "Fruit basket for the office", 40.0),
    (150, "Grace Thompson", "Patient", "$10 coffee card", 10.0),
    (131, "Dr. Priya Raman", "Provider", "Box of pastries for staff", 35.0),
    (118, "Omar Haddad", "Patient", "Pen set", 5.0),
    (96, "Dr. Marcus Bell", "Provider", "Lunch for the front desk", 85.0),
    (80, "Grace Thompson", "Patient", "Water bottle with clinic logo", 8.0),
    (64, "Aisha Okafor", "Patient", "Thank-you card and chocolates", 12.0),
    (51, "Dr. Elena Petrova", "Provider", "Fruit basket for the office", 40.0),
    (37, "Liam Kowalski", "Patient", "$25 Visa gift card", 25.0),
    (22, "Grace Thompson", "Patient", "Movie tickets (2)", 28.0),
    (12, "Dr. David Chen", "Provider", "Welcome coffee and bagels", 30.0),
    (3, "Nia Mensah", "Patient", "Pen set", 5.0),
)


# ------------------------------------------------------------------------------------- rows


def demo_rows(now: datetime, *, seed: int = 7, count: int = 400) -> list[Row]:
    """``count`` rows of the demo practice's Referrals tab, oldest first, as staff left them.

    Each row is keyed by every name of ``model.STAFF_COLUMNS``. ``now`` must be aware: the rows
    are generated in its wall-clock time. The same ``now`` and ``seed`` give the same rows.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("demo_rows needs an aware datetime, e.g. datetime.now(ZoneInfo(...))")
    if count < 0:
        raise ValueError("count must be zero or more")
    rng = random.Random(seed)
    local_now = now.replace(tzinfo=None, second=0, microsecond=0)
    blanks = min(3, count // 100) if count >= 40 else 0
    copies = max(1, round(count / 400)) if count >= 40 else 0
    gen = _Generator(rng, local_now)
    # Staff append as referrals arrive, so the sheet is (roughly) in Received order.
    rows = sorted(
        (gen.row() for _ in range(count - blanks - copies)),
        key=lambda r: _sort_key(r["Received"]),
    )
    _ensure_overdue(rng, rows, local_now, at_least=min(3, count // 40))
    for row in rows:
        if isinstance(received := row["Received"], datetime):
            row["Received"] = gen.as_staff_types(received)
    if count >= 40:
        _inject_mistakes(rng, rows, local_now, blanks=blanks, copies=copies)
    return rows


def _ensure_overdue(rng: random.Random, rows: list[Row], now: datetime, *, at_least: int) -> None:
    """A few recent rows nobody has called yet: the work queue must have something in it."""

    def age(row: Row) -> timedelta | None:
        value = row["Received"]
        return now - value if isinstance(value, datetime) else None

    def recent(row: Row) -> bool:
        a = age(row)
        return a is not None and timedelta(days=1, hours=6) <= a <= timedelta(days=10)

    overdue = [r for r in rows if recent(r) and r["First Contact"] is None]
    candidates = [r for r in rows if recent(r) and r["First Contact"] is not None]
    for row in rng.sample(candidates, min(len(candidates), max(0, at_least - len(overdue)))):
        for name in ("First Contact", "Fit", "Appointment", "Visit", "Outcome"):
            row[name] = None
        row["Consent to Update Referrer"] = None


def _sort_key(value: object) -> datetime:
    return value if isinstance(value, datetime) else datetime.min


class _Generator:
    """Builds clean rows; the value-type mix (text dates, serials) is part of clean rows too."""

    def __init__(self, rng: random.Random, now: datetime) -> None:
        self.rng = rng
        self.now = now
        self.day_weights = [self._day_weight(age) for age in range(DAYS_OF_HISTORY)]
        self.past_patients: list[tuple[str, str]] = []
        # Drawn without replacement: two rows share a name or phone only where a mistake says so
        # (B22), otherwise the demo would be full of false "possible duplicate" lines.
        self.names = [(f, last) for f in FIRST_NAMES for last in LAST_NAMES]
        rng.shuffle(self.names)
        self.whole_names = list(WHOLE_NAMES)
        self.phones = [(area, f"01{n:02d}") for area in AREA_CODES for n in range(100)]
        rng.shuffle(self.phones)
        self.emails: set[str] = set()
        self.rounds = 0
        self.area_round = 0

    def _day_weight(self, age: int) -> float:
        """Busier lately, quieter on weekends, and a visible dip four weeks ago."""
        weekday = (self.now - timedelta(days=age)).weekday()
        weight = 1.0 + 0.6 * (1 - age / DAYS_OF_HISTORY)
        if weekday >= 5:
            weight *= 0.25
        if 25 <= age <= 31:
            weight *= 0.35
        return weight

    def row(self) -> Row:
        rng = self.rng
        received = self._received()
        channel = rng.choices(list(CHANNEL_WEIGHTS), weights=list(CHANNEL_WEIGHTS.values()))[0]
        first, last = self._name()
        row: Row = dict.fromkeys(model.STAFF_COLUMNS)
        row["Patient First Name"] = first
        row["Patient Last Name"] = last or None  # a cell holds nothing, never ""
        row["Patient Phone"] = self._phone() if rng.random() < 0.9 else None
        row["Patient Email"] = self._email(first, last) if rng.random() < 0.72 else None
        row["How Heard"] = channel
        row["Reason"] = rng.choice(REASONS)
        if channel == "Provider":
            provider = self._provider(self.now - received)
            row["Referred By"] = provider.name
            row["Referrer Email"] = provider.email or None
            row["Referrer Practice"] = provider.practice
        elif channel == "Patient" and self.past_patients:
            friend_first, friend_last = rng.choice(self.past_patients[-60:])
            row["Referred By"] = f"{friend_first} {friend_last}".strip()
            if rng.random() < 0.6:
                slug = _ascii_slug(friend_first) or "friend"
                row["Referrer Email"] = f"{slug}.{rng.randint(10, 99)}@{rng.choice(DOMAINS)}"
        elif channel == "Patient":
            row["Referred By"] = "Grace Thompson"
            row["Referrer Email"] = "grace.t@example.com"
        elif channel == "Event":
            row["Notes"] = "Met at the health fair"
        self._progress(row, received, channel)
        if row["Notes"] is None and rng.random() < 0.2:
            row["Notes"] = rng.choice(NOTES)
        # A datetime for now, so rows sort by it; ``as_staff_types`` runs after sorting.
        row["Received"] = received.replace(hour=0, minute=0) if rng.random() < 0.35 else received
        self.past_patients.append((first, last))
        return row

    def _received(self) -> datetime:
        rng = self.rng
        age = rng.choices(range(DAYS_OF_HISTORY), weights=self.day_weights)[0]
        day = self.now - timedelta(days=age)
        when = day.replace(hour=rng.randint(7, 18), minute=rng.choice((0, 10, 15, 20, 30, 45, 50)))
        if when > self.now:
            when -= timedelta(days=1)
        return when

    def _name(self) -> tuple[str, str]:
        rng = self.rng
        if self.whole_names and rng.random() < 0.04:
            return self.whole_names.pop(rng.randrange(len(self.whole_names)))
        if not self.names:
            # More rows than names (a benchmark's tens of thousands): double-barrelled surnames,
            # so patients stay distinct and "possible duplicate" stays the rare line it is.
            # Each round pairs every surname with a new second one; once those run out, a middle
            # initial starts another series, so no two rounds ever repeat a name.
            self.rounds += 1
            second = LAST_NAMES[(self.rounds - 1) % len(LAST_NAMES)]
            series = (self.rounds - 1) // len(LAST_NAMES)
            initial = f" {chr(ord('A') + (series - 1) % 26)}." if series else ""
            self.names = [
                (f + initial, f"{last}-{second}")
                for f in FIRST_NAMES
                for last in LAST_NAMES
                if last != second
            ]
            rng.shuffle(self.names)
        first, last = self.names.pop()
        return first, last if rng.random() < 0.96 else ""

    def _phone(self) -> str | None:
        rng = self.rng
        if not self.phones:
            # More rows than fictional numbers in the usual area codes: the same 555-01xx
            # numbers in further valid area codes (never a real subscriber's line), twelve
            # codes at a time, each code used once.
            self.area_round += 1
            extra = _more_area_codes()[(self.area_round - 1) * 12 : self.area_round * 12]
            self.phones = [(area, f"01{n:02d}") for area in extra for n in range(100)]
            rng.shuffle(self.phones)
        if not self.phones:
            # Every fictional number is taken (tens of thousands of rows): no phone, rather than
            # one patient's number on another's row.
            return None
        area, line = self.phones.pop()
        forms = (
            f"({area}) 555-{line}",
            f"{area}-555-{line}",
            f"{area}.555.{line}",
            f"+1 {area} 555 {line}",
            f"{area}555{line}",
        )
        return rng.choices(forms, weights=(5, 4, 1, 1, 1))[0]

    def _email(self, first: str, last: str) -> str:
        rng = self.rng
        a, b = _ascii_slug(first), _ascii_slug(last)
        local = ".".join(part for part in (a, b) if part) or f"patient{rng.randint(100, 999)}"
        if rng.random() < 0.3:
            local = f"{(a or b or 'pt')[:1]}{b or a}{rng.randint(1, 99)}"
        address = f"{local}@{rng.choice(DOMAINS)}"
        while address in self.emails:
            address = f"{local}{rng.randint(1, 999)}@{rng.choice(DOMAINS)}"
        self.emails.add(address)
        return address

    def _provider(self, age: timedelta) -> Provider:
        days = age.days
        active = [p for p in PROVIDERS if p.active_days[0] <= days <= p.active_days[1]]
        return self.rng.choices(active, weights=[p.weight for p in active])[0]

    def _progress(self, row: Row, received: datetime, channel: str) -> None:
        """Fill First Contact .. Consent as far as a row of this age would have got."""
        rng = self.rng
        age_days = (self.now - received).total_seconds() / 86400
        referral = channel in ("Provider", "Patient")
        contact_chance = 0.0 if age_days < 0.05 else min(0.94, 0.25 + 0.3 * age_days)
        if rng.random() >= contact_chance:
            if age_days > 14 and rng.random() < 0.85:
                row["Outcome"] = "Lost"
                row["Notes"] = "Could not reach: three calls, no answer"
            return
        delay = timedelta(hours=min(rng.lognormvariate(math.log(5 if referral else 9), 0.9), 150))
        latest = self.now - received
        if delay >= latest:
            delay = latest * rng.uniform(0.3, 0.9)
        first_contact = self._business_hours((received + delay).replace(second=0, microsecond=0))
        row["First Contact"] = first_contact

        fit = rng.choices(("Good fit", "Unsure", "Not a fit", None), weights=(80, 9, 8, 3))[0]
        row["Fit"] = fit
        if referral:
            row["Consent to Update Referrer"] = rng.choices(("Yes", "No", None), (60, 25, 15))[0]
        if fit == "Not a fit":
            if rng.random() < 0.7:
                row["Outcome"] = "Not a fit"
            return
        if rng.random() >= (0.82 if referral else 0.65):
            if age_days > 21 and rng.random() < 0.5:
                row["Outcome"] = "Lost"
            return
        appt_day = first_contact + timedelta(days=round(rng.triangular(1, 21, 4)))
        appointment = appt_day.replace(hour=rng.randint(8, 17), minute=rng.choice((0, 30)))
        row["Appointment"] = self.as_staff_types(appointment)
        if appointment > self.now:
            row["Visit"] = "Scheduled" if rng.random() < 0.85 else None
            return
        visit = rng.choices(("Attended", "No-show", "Cancelled", None), (78, 12, 8, 2))[0]
        row["Visit"] = visit
        since = (self.now - appointment).days
        if visit == "Attended":
            outcomes = ("Ongoing care", "Completed", None)
            weights = (55, 25, 20) if since > 10 else (30, 0, 70)
            row["Outcome"] = rng.choices(outcomes, weights)[0]
        elif visit is not None and since > 21 and rng.random() < 0.6:
            row["Outcome"] = "Lost"

    def _business_hours(self, when: datetime) -> datetime:
        """Staff call during opening hours: an evening contact moves to the next morning."""
        if 8 <= when.hour < 18:
            return when
        hour = 8 + int(self.rng.triangular(0, 4, 0.5))
        morning = when.replace(hour=hour, minute=self.rng.randrange(0, 60))
        if when.hour >= 18:
            morning += timedelta(days=1)
        return morning if morning <= self.now else when

    def as_staff_types(self, when: datetime) -> object:
        """Mostly a real datetime; now and then valid text or a bare Excel serial number.

        A datetime at midnight stands for a date typed without a time.
        """
        pick = self.rng.random()
        if pick < 0.03:
            return _excel_serial(when)
        if pick < 0.06:
            return when.strftime("%Y-%m-%d" if when.hour == when.minute == 0 else "%Y-%m-%d %H:%M")
        return when


def _ascii_slug(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed.lower() if ch.isascii() and ch.isalnum())


def _excel_serial(when: datetime) -> float | int:
    """Days since Excel's 1900 epoch (dates after March 1900, so the leap-day quirk is moot)."""
    serial = (when - EXCEL_EPOCH).total_seconds() / 86400
    return int(serial) if serial == int(serial) else round(serial, 6)


# ---------------------------------------------------------------------------------- mistakes


def _inject_mistakes(
    rng: random.Random, rows: list[Row], now: datetime, *, blanks: int, copies: int
) -> None:
    """Apply the RELIABILITY.md (c) mistakes, each to its own row, then add blanks and copies."""
    used: set[int] = {0}
    repeat = max(1, round(len(rows) / 400))

    def pick(predicate: Callable[[Row], bool] | None = None) -> Row | None:
        candidates = [
            i
            for i in range(1, len(rows))
            if i not in used and (predicate is None or predicate(rows[i]))
        ]
        if not candidates:
            return None
        index = rng.choice(candidates)
        used.add(index)
        return rows[index]

    def received(row: Row) -> datetime | None:
        value = row["Received"]
        return value if isinstance(value, datetime) else None

    def value_is(column: str, value: str) -> Callable[[Row], bool]:
        return lambda row: row[column] == value

    def phone_digits(row: Row) -> str:
        digits = "".join(ch for ch in str(row["Patient Phone"]) if ch.isdigit())
        return digits[-10:] if len(digits) >= 10 else ""

    def has_phone(row: Row) -> bool:
        return bool(phone_digits(row))

    def has_datetime_received(row: Row) -> bool:
        return received(row) is not None

    for _ in range(repeat):
        if row := pick(has_datetime_received):  # B7: "3/4/25"
            when = received(row)
            assert when is not None
            row["Received"] = f"{when.month}/{when.day}/{when.year % 100:02d}"
        if row := pick(has_datetime_received):  # B8: no year
            when = received(row)
            assert when is not None
            row["Received"] = f"{when:%B} {when.day}"
        if row := pick(has_datetime_received):  # B8: written date and time
            when = received(row)
            assert when is not None
            hour = when.hour % 12 or 12
            row["Received"] = f"{when.day} {when:%b %Y} {hour}{'pm' if when.hour >= 12 else 'am'}"
        if row := pick(has_datetime_received):  # B11: impossible date
            when = received(row)
            assert when is not None
            row["Received"] = f"{when.year}-02-30"
        if row := pick(lambda r: isinstance(r["First Contact"], datetime)):  # B10
            row["First Contact"] = "yesterday"
        if row := pick(lambda r: r["Appointment"] is None and r["Outcome"] is None):  # B10
            row["Appointment"] = "tbd"
        if row := pick(lambda r: r["First Contact"] is None and r["Outcome"] is None):  # B10
            row["First Contact"] = "asap"
        if row := pick(  # B11: First Contact before Received
            lambda r: isinstance(r["First Contact"], datetime) and has_datetime_received(r)
        ):
            when = received(row)
            assert when is not None
            row["First Contact"] = when - timedelta(days=1, hours=2)

        # B13: the row's own number, as a float pasted from a number column, with an
        # extension, and next to a second number.
        if (row := pick(has_phone)) and (digits := phone_digits(row)):
            row["Patient Phone"] = float(digits)
        if (row := pick(has_phone)) and (digits := phone_digits(row)):
            row["Patient Phone"] = f"{digits[:3]}-{digits[3:6]}-{digits[6:]} ext 3"
        if (row := pick(has_phone)) and (digits := phone_digits(row)):
            other = f"917-555-01{(int(digits[-2:]) + 37) % 100:02d}"
            row["Patient Phone"] = f"{digits[:3]}-{digits[3:6]}-{digits[6:]} / {other}"

        if row := pick():  # B14: no top-level domain
            first = _ascii_slug(str(row["Patient First Name"] or "")) or "john"
            row["Patient Email"] = f"{first}@gmail"
        if row := pick():  # B14
            row["Patient Email"] = "n/a"
        if row := pick():  # B14: two addresses in one cell
            row["Patient Email"] = "lee.kim@example.com; kim.family@example.org"

        for channel, text in (  # B25: free text instead of the dropdown
            ("Provider", "dr referral"),
            ("Social media", "saw on facebook"),
            ("Patient", "friend told her"),
            ("Other", "Yelp"),
        ):
            if row := pick(value_is("How Heard", channel)):
                row["How Heard"] = text
        for typo in ("No show", "NS"):  # B25: Visit typos
            if row := pick(value_is("Visit", "No-show")):
                row["Visit"] = typo
        for consent in ("yes (verbal)", "Y?"):  # B26
            if row := pick(value_is("Consent to Update Referrer", "Yes")):
                row["Consent to Update Referrer"] = consent
        if row := pick():  # B18: a name that looks like a formula
            row["Patient Last Name"] = "=Santos"

    # B22: the same patient entered again a day or two later (staff forgot the first row).
    for _ in range(copies):
        source_index = rng.randrange(len(rows) // 2, len(rows))
        source = rows[source_index]
        copy: Row = dict.fromkeys(model.STAFF_COLUMNS)
        for name in (
            "Patient First Name",
            "Patient Last Name",
            "Patient Phone",
            "Patient Email",
            "How Heard",
            "Referred By",
            "Referrer Email",
            "Referrer Practice",
            "Reason",
        ):
            copy[name] = source[name]
        when = received(source) or now - timedelta(days=3)
        copy["Received"] = min(now, when + timedelta(days=rng.randint(1, 2), hours=1))
        rows.insert(min(len(rows), source_index + rng.randint(2, 6)), copy)

    # B1: blank rows mid-sheet: truly empty, whitespace only, and only a note.
    fillers: list[Row] = [
        dict.fromkeys(model.STAFF_COLUMNS),
        {**dict.fromkeys(model.STAFF_COLUMNS), "Patient First Name": "  ", "Reason": "\u00a0"},
        {**dict.fromkeys(model.STAFF_COLUMNS), "Notes": "see row above"},
    ]
    for filler in fillers[:blanks]:
        rows.insert(rng.randrange(len(rows) // 4, len(rows) * 3 // 4), filler)


# ---------------------------------------------------------------------------------- workbook


@lru_cache(maxsize=1)
def _more_area_codes() -> tuple[int, ...]:
    """North American area codes whose 555-01xx numbers phonenumbers accepts as valid."""
    import phonenumbers

    codes = []
    for area in range(201, 990):
        if area in AREA_CODES:
            continue
        number = phonenumbers.parse(f"+1{area}5550100")
        if phonenumbers.is_valid_number_for_region(number, "US"):
            codes.append(area)
    return tuple(codes)


def write_demo_workbook(path: Path, rows: list[Row], *, tab: str = model.REFERRALS_TAB) -> None:
    """Write ``rows`` as the demo practice's workbook, as it looks before the bridge's first sync.

    Only staff columns: the bridge adds its own on its first sync, which is part of the demo.
    Strings are always written as text (a name starting with ``=`` must never become a formula,
    B18). A Gifts tab holds a dozen gifts, some of which the bridge should flag.
    """
    path = Path(path)
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = tab
    _header(ws, model.STAFF_COLUMNS)
    for r, row in enumerate(rows, start=2):
        for c, name in enumerate(model.STAFF_COLUMNS, start=1):
            value = row.get(name)
            if value is None:
                continue
            cell = ws.cell(row=r, column=c)
            if isinstance(value, datetime):
                cell.value = value.replace(tzinfo=None)
                midnight = value.hour == value.minute == 0
                cell.number_format = DATE_FORMAT if midnight else DATETIME_FORMAT
            elif isinstance(value, str):
                cell.value = value
                cell.data_type = "s"  # never a formula, whatever it starts with
            else:
                cell.value = value  # numbers: float phones and bare serials, as staff left them
    widths = {"Reason": 32, "Notes": 30, "Patient Email": 28, "Referrer Email": 28}
    for c, name in enumerate(model.STAFF_COLUMNS, start=1):
        # As `init` lays out a new sheet, so dates and times show whole (no "###").
        ws.column_dimensions[get_column_letter(c)].width = widths.get(
            name, COLUMN_WIDTHS.get(name, max(12, len(name) + 2))
        )
    ws.freeze_panes = "A2"
    ws.row_dimensions[1].height = 30  # two lines: long headers wrap, as `init` lays them out

    gifts = wb.create_sheet(model.GIFTS_TAB)
    _header(gifts, ("Date", "Recipient", "Recipient Type", "Item", "Retail Value"))
    newest = max((v for r in rows if isinstance(v := r.get("Received"), datetime)), default=None)
    anchor = (newest or datetime(2025, 1, 1)).replace(hour=0, minute=0, tzinfo=None)
    for r, (days, recipient, kind, item, value) in enumerate(GIFTS, start=2):
        gifts.cell(row=r, column=1, value=anchor - timedelta(days=days)).number_format = DATE_FORMAT
        for c, text in enumerate((recipient, kind, item), start=2):
            gifts.cell(row=r, column=c, value=text).data_type = "s"
        gifts.cell(row=r, column=5, value=value).number_format = MONEY_FORMAT
    for c, width in enumerate((12, 24, 15, 30, 13), start=1):
        gifts.column_dimensions[get_column_letter(c)].width = width
    gifts.freeze_panes = "A2"

    save_workbook_atomically(wb, path)


def _header(ws: Worksheet, names: tuple[str, ...]) -> None:
    for c, name in enumerate(names, start=1):
        cell = ws.cell(row=1, column=c, value=name)
        cell.font = Font(bold=True)
        cell.fill = PatternFill(fill_type="solid", start_color="DDEBF7", end_color="DDEBF7")
        cell.alignment = Alignment(vertical="center", wrap_text=True)
