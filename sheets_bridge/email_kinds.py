"""The email kinds the bridge drafts, and what each may show: the product's table as data.

PRODUCT.md's "Emails the bridge drafts" names seven kinds, who each goes to and what each may
contain. This module is that table, below everything that drafts, renders, checks or configures
them (settings validate ``drafts.kinds`` against :data:`KINDS`; templates are checked against
:data:`CONTEXT_FIELDS`; the planner labels Emails lines with :data:`KIND_LABELS`).

Minimum necessary: a template sees only the fields its kind lists here. Referrer emails get the
referrer and at most the patient's first name and last initial; patient emails get the patient's
first name (and the appointment, for a reminder). Nothing clinical, ever, by default.
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "APPOINTMENT_FIELDS",
    "CONTEXT_FIELDS",
    "EXTRA_FIELDS",
    "KINDS",
    "KIND_LABELS",
    "NAME_LIMIT",
    "PER_REFERRAL_KINDS",
    "RECIPIENTS",
    "REFERRER_KINDS",
    "ROW_FIELDS",
    "SCALAR",
    "TEXT_LIMIT",
    "Recipient",
    "template_names",
]

KINDS: tuple[str, ...] = (
    "referrer_acknowledgement",
    "patient_outreach",
    "appointment_reminder",
    "closing_the_loop",
    "patient_thank_you",
    "referrer_feedback",
    "referrer_checkin",
)

#: How each kind reads in an Attention or Emails line ("no welcome email was drafted").
KIND_LABELS: dict[str, str] = {
    "referrer_acknowledgement": "acknowledgement to the referrer",
    "patient_outreach": "welcome email to the patient",
    "appointment_reminder": "appointment reminder",
    "closing_the_loop": "update to the referrer",
    "patient_thank_you": "thank-you to the patient",
    "referrer_feedback": "feedback request to the referrer",
    "referrer_checkin": "check-in with the referrer",
}

Recipient = Literal["referrer", "patient"]
RECIPIENTS: dict[str, Recipient] = {
    "referrer_acknowledgement": "referrer",
    "patient_outreach": "patient",
    "appointment_reminder": "patient",
    "closing_the_loop": "referrer",
    "patient_thank_you": "patient",
    "referrer_feedback": "referrer",
    "referrer_checkin": "referrer",
}

#: Kinds drafted per referrer (a period in the key), not once per referral.
REFERRER_KINDS: tuple[str, ...] = ("referrer_feedback", "referrer_checkin")
PER_REFERRAL_KINDS: tuple[str, ...] = tuple(k for k in KINDS if k not in REFERRER_KINDS)

#: Longest a cell value may run inside an email (B17): a pasted paragraph in a name column must
#: not become a paragraph in a referrer's inbox.
NAME_LIMIT = 100
TEXT_LIMIT = 300

_PRACTICE_FIELDS = frozenset({"name", "signature", "designated_contact", "phone", "address"})
_REFERRER_FIELDS = frozenset({"name", "first_name", "greeting", "practice"})
APPOINTMENT_FIELDS = frozenset({"date", "time"})
SCALAR: frozenset[str] | None = None  # a plain string: no fields below it

_COMMON: dict[str, frozenset[str] | None] = {
    "practice": _PRACTICE_FIELDS,
    "designated_contact": SCALAR,
}

#: What each kind's templates may use: top-level name -> its fields (``None``: a plain string).
#: Referrer emails get the referrer and at most the patient's first name and last initial;
#: patient emails get the patient's first name (and the appointment, for a reminder). Nothing
#: clinical, ever, by default.
CONTEXT_FIELDS: dict[str, dict[str, frozenset[str] | None]] = {
    "referrer_acknowledgement": {
        **_COMMON,
        "referrer": _REFERRER_FIELDS,
        "patient": frozenset({"first_name", "greeting", "last_initial"}),
    },
    "patient_outreach": {**_COMMON, "patient": frozenset({"first_name", "greeting"})},
    "appointment_reminder": {
        **_COMMON,
        "patient": frozenset({"first_name", "greeting"}),
        "appointment": APPOINTMENT_FIELDS,
    },
    "closing_the_loop": {
        **_COMMON,
        "referrer": _REFERRER_FIELDS,
        "patient": frozenset({"first_name", "greeting", "last_initial"}),
    },
    "patient_thank_you": {**_COMMON, "patient": frozenset({"first_name", "greeting"})},
    "referrer_feedback": {**_COMMON, "referrer": _REFERRER_FIELDS},
    "referrer_checkin": {**_COMMON, "referrer": _REFERRER_FIELDS},
}

#: Row fields a practice may let a kind use on purpose (``drafts.allow_fields``), and the column
#: each comes from. Allowed extras appear as a top-level name, in ``referral``, and (for the
#: patient's last name) as ``patient.last_name``.
EXTRA_FIELDS: dict[str, str] = {
    "reason": "Reason",
    "last_name": "Patient Last Name",
    "appointment": "Appointment",
}

#: Row fields that are never in any context: named in messages as minimum-necessary breaches.
ROW_FIELDS = frozenset(
    {
        *EXTRA_FIELDS,
        "phone",
        "email",
        "notes",
        "fit",
        "visit",
        "outcome",
        "consent",
        "referrer_email",
        "how_heard",
        "received",
        "first_contact",
    }
)

_SUFFIXES = {"subject": ".subject.txt", "text": ".txt", "html": ".html"}


def template_names(kind: str) -> dict[str, str]:
    """The file names of a kind's templates: subject, plain text and HTML."""
    return {part: kind + suffix for part, suffix in _SUFFIXES.items()}
