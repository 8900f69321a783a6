"""What one draft's templates see: plain dicts built field by field from the kind's allowlist.

Built from :data:`sheets_bridge.email_kinds.CONTEXT_FIELDS` rather than filtered from the row, so
a new :class:`~sheets_bridge.model.Referral` field can never leak into an email by default; cell
values are clipped (B17) and passed as strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, Protocol

from sheets_bridge.email_kinds import CONTEXT_FIELDS, NAME_LIMIT, TEXT_LIMIT
from sheets_bridge.greetings import first_name, formal_greeting, informal_greeting
from sheets_bridge.model import Referral
from sheets_bridge.settings import DraftsSettings

__all__ = ["PracticeInfo", "build_context", "clip", "first_name_of", "sample_context", "sample_referral"]


class PracticeInfo(Protocol):
    """What drafting reads of ``config.PracticeConfig`` (a Protocol, so a sample can stand in for it)."""

    @property
    def name(self) -> str: ...
    @property
    def signature(self) -> str: ...
    @property
    def designated_contact(self) -> str: ...
    @property
    def phone(self) -> str: ...
    @property
    def address(self) -> str: ...
    @property
    def tz(self) -> tzinfo: ...


def clip(text: str, limit: int = NAME_LIMIT) -> str:
    """At most ``limit`` characters of a cell value, as typed (B17)."""
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def first_name_of(full_name: str) -> str:
    """The given name to greet a referrer by: "Dr. Jane Smith" and "Smith, Jane" give "Jane".

    A title with one name after it ("Dr. Smith") or a name that cannot be read gives ``""``, so
    templates fall back to the whole name, never "Hi Smith" or "Hi PA-C".
    """
    return clip(first_name(full_name))


def _referrer_greeting(referral: Referral) -> str:
    """Providers formally ("Dear Dr. Kim"); a patient who referred a friend by first name."""
    if referral.source_tag == "Patient Referral":
        return informal_greeting(referral.referred_by)
    return formal_greeting(referral.referred_by)


def _last_initial(last_name: str) -> str:
    last = last_name.strip()
    return f"{last[0]}." if last else ""


_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def _appointment_fields(moment: datetime, tz: tzinfo) -> dict[str, str]:
    """ "Tuesday, March 4" and "2:30 PM" in the practice's zone, whatever the host's locale."""
    local = moment.astimezone(tz)
    hour = local.hour % 12 or 12
    return {
        "date": f"{_DAY_NAMES[local.weekday()]}, {_MONTH_NAMES[local.month - 1]} {local.day}",
        "time": f"{hour}:{local.minute:02d} {'AM' if local.hour < 12 else 'PM'}",
    }


def _practice_fields(practice: PracticeInfo) -> dict[str, str]:
    return {
        "name": practice.name,
        "signature": practice.signature,
        "designated_contact": practice.designated_contact,
        "phone": practice.phone,
        "address": practice.address,
    }


def build_context(
    kind: str, referral: Referral, practice: PracticeInfo, settings: DraftsSettings
) -> dict[str, Any]:
    """The plain-data context one draft's templates see: only what ``kind`` may use.

    Built field by field from the allowlist rather than filtered from the row, so a new
    Referral field can never leak into an email by default.
    """
    allowed = CONTEXT_FIELDS[kind]
    context: dict[str, Any] = {
        "practice": _practice_fields(practice),
        "designated_contact": practice.designated_contact,
    }
    if "referrer" in allowed:
        context["referrer"] = {
            "name": clip(referral.referred_by),
            "first_name": first_name_of(referral.referred_by),
            "greeting": clip(_referrer_greeting(referral)),
            "practice": clip(referral.referrer_practice),
        }
    patient_fields = allowed.get("patient")
    if patient_fields is not None:
        patient = {
            "first_name": clip(first_name(referral.first_name) or referral.first_name),
            "greeting": clip(informal_greeting(referral.first_name)),
        }
        if "last_initial" in patient_fields:
            patient["last_initial"] = _last_initial(referral.last_name)
        context["patient"] = patient
    if "appointment" in allowed and referral.appointment is not None:
        context["appointment"] = _appointment_fields(referral.appointment, practice.tz)
    extras = settings.allowed_extras(kind)
    if extras:
        values: dict[str, Any] = {}
        for extra in extras:
            if extra == "reason":
                values["reason"] = clip(referral.reason, TEXT_LIMIT)
            elif extra == "last_name":
                values["last_name"] = clip(referral.last_name)
                if "patient" in context:
                    context["patient"]["last_name"] = values["last_name"]
            elif extra == "appointment":
                values["appointment"] = (
                    _appointment_fields(referral.appointment, practice.tz)
                    if referral.appointment is not None
                    else {"date": "", "time": ""}
                )
        context.update(values)
        context["referral"] = values
    return context


@dataclass(frozen=True)
class _SamplePractice:
    name: str = "Riverside Physical Therapy"
    signature: str = "Dana and the Riverside team"
    designated_contact: str = "Dana"
    phone: str = "(555) 010-0100"
    address: str = "12 Main Street"
    tz: tzinfo = UTC


def sample_context(kind: str, settings: DraftsSettings) -> dict[str, Any]:
    """A context with made-up values, to render each template once in :meth:`TemplateSet.check`."""
    return build_context(kind, sample_referral(), _SamplePractice(), settings)


def sample_referral() -> Referral:
    """A made-up referral that every kind can be drafted for (checks, never a real draft)."""
    moment = datetime(2030, 1, 7, 14, 30, tzinfo=UTC)
    return Referral(
        referral_id="R-00001",
        row=2,
        received=moment,
        received_has_time=True,
        first_name="Sam",
        last_name="Sample",
        phone=None,
        email="sam@example.com",
        how_heard="Provider",
        channel="Provider",
        source_tag="Provider Referral",
        referred_by="Dr. Alex Example",
        referrer_email="alex@example.com",
        referrer_practice="Example Clinic",
        reason="sample reason",
        fit=None,
        first_contact=None,
        appointment=moment,
        visit="Scheduled",
        outcome=None,
        consent=True,
        stage="Scheduled",
        follow_up_due=None,
    )
