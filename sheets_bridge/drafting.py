"""Which email drafts are due, rendered from templates: pure, no clock, no disk, no network.

The bridge drafts; a person sends (PRODUCT.md, "Emails the bridge drafts"). This module decides,
for one cycle, which drafts should exist and what they say. It never creates one: the apply step
journals each :class:`~sheets_bridge.model.DraftRequest` by its key before handing it to a
drafter, so a crash or retry can never draft twice (RELIABILITY.md R1, R2).

Rules that shape everything here:

* **Minimum necessary.** A template sees plain dicts holding only the fields its kind may use
  (:data:`CONTEXT_FIELDS`), never the :class:`~sheets_bridge.model.Referral`. The Reason is never
  in any context unless ``drafts.allow_fields`` names it for that kind on purpose, and
  :meth:`TemplateSet.check` fails a template that reaches for a field it may not have, so the
  practice learns at config time, not from a draft in a referrer's inbox.
* **Cell text is data.** Values are passed to templates as strings; nothing typed in a cell is
  ever compiled as a template, so ``{{ 7*7 }}`` in a name shows literally (B20).
* **Header safety before anything.** A name or address with a line break, NUL or bidi control
  makes no draft for the row, and the row's Attention names the column (B16).
* **No flood.** Only events in the recent window make drafts, so adopting the bridge on a sheet
  with years of history drafts nothing for the history.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from email.headerregistry import Address
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Protocol

from jinja2 import BaseLoader, StrictUndefined, TemplateError, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup, escape
from pydantic import BaseModel, ConfigDict, Field, field_validator

from sheets_bridge.model import DraftRequest, Referral
from sheets_bridge.values import comparison_key, has_control_chars, parse_email

__all__ = [
    "CONTEXT_FIELDS",
    "EXTRA_FIELDS",
    "KINDS",
    "KIND_LABELS",
    "RECIPIENTS",
    "DraftHistory",
    "DraftsSettings",
    "PracticeInfo",
    "TemplateSet",
    "draft_key",
    "plan_drafts",
    "quarter_of",
    "referrer_key",
    "referrer_of_key",
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

#: At most one feedback request per referrer in this many days, across quarter boundaries too.
FEEDBACK_MIN_GAP = timedelta(days=90)

#: Longest a cell value may run inside an email (B17): a pasted paragraph in a name column must
#: not become a paragraph in a referrer's inbox.
NAME_LIMIT = 100
TEXT_LIMIT = 300

_PRACTICE_FIELDS = frozenset({"name", "signature", "designated_contact", "phone", "address"})
_REFERRER_FIELDS = frozenset({"name", "first_name", "practice"})
_APPOINTMENT_FIELDS = frozenset({"date", "time"})
_SCALAR: frozenset[str] | None = None  # a plain string: no fields below it

_COMMON: dict[str, frozenset[str] | None] = {
    "practice": _PRACTICE_FIELDS,
    "designated_contact": _SCALAR,
}

#: What each kind's templates may use: top-level name -> its fields (``None``: a plain string).
#: Referrer emails get the referrer and at most the patient's first name and last initial;
#: patient emails get the patient's first name (and the appointment, for a reminder). Nothing
#: clinical, ever, by default.
CONTEXT_FIELDS: dict[str, dict[str, frozenset[str] | None]] = {
    "referrer_acknowledgement": {
        **_COMMON,
        "referrer": _REFERRER_FIELDS,
        "patient": frozenset({"first_name", "last_initial"}),
    },
    "patient_outreach": {**_COMMON, "patient": frozenset({"first_name"})},
    "appointment_reminder": {
        **_COMMON,
        "patient": frozenset({"first_name"}),
        "appointment": _APPOINTMENT_FIELDS,
    },
    "closing_the_loop": {
        **_COMMON,
        "referrer": _REFERRER_FIELDS,
        "patient": frozenset({"first_name", "last_initial"}),
    },
    "patient_thank_you": {**_COMMON, "patient": frozenset({"first_name"})},
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
_ROW_FIELDS = frozenset(
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


class DraftsSettings(BaseModel):
    """The ``drafts:`` section of the config: which kinds run, their timing and templates.

    Frozen and strict (unknown keys fail) like the rest of the config, so a typo such as
    ``reminder_hour`` is reported instead of silently ignored.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    recent_window_days: int = Field(7, ge=0)
    templates_dir: Path | None = None
    allow_fields: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    referrer_updates_without_consent: bool = False
    reminder_hours: int = Field(48, gt=0)
    feedback_after_days: int = Field(28, ge=1)
    checkin_quiet_days: int = Field(90, ge=1)
    kinds: dict[str, bool] = Field(default_factory=dict)

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, value: dict[str, bool]) -> dict[str, bool]:
        unknown = [name for name in value if name not in KINDS]
        if unknown:
            raise ValueError(
                f"{', '.join(unknown)} is not an email kind; use one of: " + ", ".join(KINDS)
            )
        return value

    @field_validator("allow_fields")
    @classmethod
    def _known_fields(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for kind, names in value.items():
            if kind not in KINDS:
                raise ValueError(f"{kind} is not an email kind; use one of: " + ", ".join(KINDS))
            if kind in REFERRER_KINDS and names:
                raise ValueError(
                    f"{kind} is about a referrer, not one patient, so it cannot use "
                    + ", ".join(names)
                )
            unknown = [name for name in names if name not in EXTRA_FIELDS]
            if unknown:
                raise ValueError(
                    f"{kind}: {', '.join(unknown)} cannot be allowed; the fields a template may "
                    "be allowed on purpose are: " + ", ".join(EXTRA_FIELDS)
                )
        return value

    def is_enabled(self, kind: str) -> bool:
        """Every kind runs unless ``drafts.kinds`` switches it off."""
        return self.kinds.get(kind, True)

    def allowed_extras(self, kind: str) -> tuple[str, ...]:
        return self.allow_fields.get(kind, ())


@dataclass(frozen=True)
class DraftHistory:
    """What was drafted before, from the journal: drafting never repeats itself.

    ``keys`` holds every key ever journalled, pending or confirmed: a pending key may already be
    a draft (crash before confirm), so it must never be planned again. ``last_sent`` maps
    ``(referrer_key, kind)`` to when the last draft of that kind went to that referrer, for the
    rate limits of the recurring referrer kinds.
    """

    keys: frozenset[str] = frozenset()
    last_sent: Mapping[tuple[str, str], datetime] = field(default_factory=dict)


class PracticeInfo(Protocol):
    """What drafting reads of ``config.PracticeConfig`` (a Protocol, so config may import us)."""

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


# --------------------------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------------------------

_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_NOT_WORD = re.compile(r"[\W_]+")


def _key_part(text: str) -> str:
    return _KEY_UNSAFE.sub("-", text).strip("-") or "x"


def draft_key(referral_id: str, kind: str, period: str = "") -> str:
    """The deterministic key of one draft: ``R-00012.referrer_acknowledgement``.

    Recurring kinds add a period and are keyed by referrer, not by referral:
    ``referrer-1a2b3c4d.referrer_feedback.2026Q4``. Only letters, digits, ``-``, ``_`` and ``.``
    occur, so the key is a safe file name, Message-ID left part and SQLite key as is.
    """
    parts = [_key_part(referral_id), _key_part(kind)]
    if period:
        parts.append(_key_part(period))
    return ".".join(parts)


def referrer_key(referral: Referral) -> str:
    """A stable, opaque key of the referrer of ``referral``, or ``""`` when there is none.

    The normalised Referrer Email identifies a referrer best; without one, the normalised
    Referred By plus Referrer Practice. Only a hash is returned, so the key can sit in the
    state file and in draft keys without carrying names or addresses.
    """
    if referral.referrer_email:
        basis = "email:" + comparison_key(referral.referrer_email.strip())
    else:
        name = " ".join(_NOT_WORD.sub(" ", comparison_key(referral.referred_by)).split())
        if not name:
            return ""
        org = " ".join(_NOT_WORD.sub(" ", comparison_key(referral.referrer_practice)).split())
        basis = f"name:{name}|{org}"
    return "referrer-" + hashlib.sha256(basis.encode("utf-8")).hexdigest()[:8]


def referrer_of_key(key: str) -> str | None:
    """The referrer key inside a per-referrer draft key (for ``DraftHistory.last_sent``)."""
    head = key.split(".", 1)[0]
    return head if head.startswith("referrer-") else None


def quarter_of(moment: datetime, tz: tzinfo) -> str:
    """The calendar quarter of ``moment`` in the practice's zone: ``2026Q4``."""
    local = moment.astimezone(tz)
    return f"{local.year}Q{(local.month - 1) // 3 + 1}"


# --------------------------------------------------------------------------------------------
# Templates
# --------------------------------------------------------------------------------------------


def _nl2br(value: Any) -> Markup:
    """Escape, then keep line breaks: for multi-line signatures and addresses in HTML."""
    return Markup("<br>\n").join(escape(str(value)).split("\n"))


class _SourceLoader(BaseLoader):
    """Serves the already-read template sources; ``label`` is what messages call the file."""

    def __init__(self, sources: Mapping[str, tuple[str, str]]) -> None:
        self._sources = sources

    def get_source(
        self, environment: Any, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        from jinja2 import TemplateNotFound

        if template not in self._sources:
            raise TemplateNotFound(template)
        source, label = self._sources[template]
        return source, label, lambda: True


class TemplateSet:
    """The default templates, with any practice overrides from ``drafts.templates_dir`` on top.

    Each kind has ``<kind>.subject.txt``, ``<kind>.txt`` and ``<kind>.html``; an override folder
    holds files with the same names, and only the ones it holds replace the defaults. Rendering
    is sandboxed with undefined names failing, and HTML alone is autoescaped. Problems reading
    the folder do not raise: :meth:`check` reports them with everything else.
    """

    def __init__(self, templates_dir: Path | None = None) -> None:
        self.templates_dir = templates_dir
        self._problems: list[str] = []
        sources: dict[str, tuple[str, str]] = {}
        package = resources.files("sheets_bridge") / "templates"
        known = {name for kind in KINDS for name in template_names(kind).values()}
        for name in sorted(known):
            sources[name] = ((package / name).read_text(encoding="utf-8"), f"templates/{name}")
        self.overridden: set[str] = set()
        if templates_dir is not None:
            self._read_overrides(templates_dir, known, sources)
        self._sources = sources
        self.env = SandboxedEnvironment(
            loader=_SourceLoader(sources),
            undefined=StrictUndefined,
            autoescape=lambda name: bool(name and name.endswith(".html")),
            auto_reload=False,
        )
        self.env.filters["nl2br"] = _nl2br

    @classmethod
    def from_settings(cls, settings: DraftsSettings) -> TemplateSet:
        return cls(settings.templates_dir)

    def _read_overrides(
        self, folder: Path, known: set[str], sources: dict[str, tuple[str, str]]
    ) -> None:
        try:
            entries = sorted(folder.iterdir())
        except FileNotFoundError:
            self._problems.append(f"drafts.templates_dir: there is no folder at {folder}")
            return
        except OSError as error:
            self._problems.append(f"drafts.templates_dir: cannot read {folder} ({error.strerror})")
            return
        for entry in entries:
            if entry.name.startswith(".") or entry.is_dir():
                continue
            if entry.name not in known:
                self._problems.append(
                    f"{entry} is not a template the bridge knows: name it <kind>.subject.txt, "
                    f"<kind>.txt or <kind>.html, with kind one of {', '.join(KINDS)}"
                )
                continue
            try:
                text = entry.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                self._problems.append(f"{entry} is not UTF-8 text: save it as UTF-8")
                continue
            except OSError as error:
                self._problems.append(f"cannot read {entry} ({error.strerror})")
                continue
            sources[entry.name] = (text, str(entry))
            self.overridden.add(entry.name)

    def label(self, name: str) -> str:
        """How messages name a template file: its override path, or ``templates/<name>``."""
        return self._sources[name][1]

    def render(self, kind: str, part: str, context: Mapping[str, Any]) -> str:
        """Render one part (``subject``, ``text``, ``html``) of ``kind`` with ``context``.

        Raises ``jinja2.TemplateError`` (syntax, undefined name, sandbox violation); the
        caller turns that into a problem, never a crash of the cycle.
        """
        return self.env.get_template(template_names(kind)[part]).render(context)

    # -- check ----------------------------------------------------------------------------

    def check(self, settings: DraftsSettings) -> list[str]:
        """Every problem with the templates, one plain line each; empty when all is well.

        Static first: syntax, ``include``/``extends`` (which would hide what a template uses),
        and every name and field a template reaches for, against what its kind may use. Then
        each template is rendered once with sample values, to catch what only shows at render
        time (an unknown filter, a typo in a field of ``practice``).
        """
        problems = list(self._problems)
        for kind in KINDS:
            allowed = allowed_context(kind, settings)
            for part, name in template_names(kind).items():
                label = self.label(name)
                source = self._sources[name][0]
                try:
                    ast = self.env.parse(source, name, label)
                except TemplateSyntaxError as error:
                    problems.append(f"{label} line {error.lineno}: {error.message}")
                    continue
                try:
                    found = _check_ast(self.env, ast, kind, label, allowed)
                except TemplateError as error:  # an unknown filter or test, found on compile
                    lineno = getattr(error, "lineno", None)
                    where = f" line {lineno}" if lineno else ""
                    problems.append(f"{label}{where}: {error.message or error}")
                    continue
                if found:
                    problems.extend(found)
                    continue
                try:
                    self.render(kind, part, _sample_context(kind, settings))
                except TemplateError as error:
                    lineno = getattr(error, "lineno", None)
                    where = f" line {lineno}" if lineno else ""
                    problems.append(f"{label}{where}: {error.message or error}")
        return problems


def allowed_context(kind: str, settings: DraftsSettings) -> dict[str, frozenset[str] | None]:
    """What ``kind``'s templates may use under ``settings``: the base allowlist plus extras."""
    allowed = dict(CONTEXT_FIELDS[kind])
    extras = settings.allowed_extras(kind)
    if extras:
        for extra in extras:
            allowed[extra] = _APPOINTMENT_FIELDS if extra == "appointment" else _SCALAR
        allowed["referral"] = frozenset(extras)
        patient = allowed.get("patient")
        if "last_name" in extras and patient is not None:
            allowed["patient"] = patient | {"last_name"}
    return allowed


_DYNAMIC = "[...]"


def _check_ast(
    env: SandboxedEnvironment,
    ast: nodes.Template,
    kind: str,
    label: str,
    allowed: Mapping[str, frozenset[str] | None],
) -> list[str]:
    """Problems with the names and fields one parsed template uses (B21)."""
    problems: list[str] = []
    if any(True for _ in meta.find_referenced_templates(ast)):
        problems.append(
            f"{label} uses include, import or extends: a template must stand alone so the "
            "bridge can check what it shows"
        )
    free = meta.find_undeclared_variables(ast) - set(env.globals)
    used: dict[str, set[str]] = defaultdict(set)
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        target = getattr(node, "node", None)
        if not isinstance(target, nodes.Name) or target.name not in free:
            continue
        if isinstance(node, nodes.Getattr):
            used[target.name].add(node.attr)
        elif (
            isinstance(node, nodes.Getitem)
            and isinstance(node.arg, nodes.Const)
            and isinstance(node.arg.value, str)
        ):
            used[target.name].add(node.arg.value)
        else:
            used[target.name].add(_DYNAMIC)
    recipient = RECIPIENTS[kind]
    usable = ", ".join(sorted(allowed))

    def breach(name: str, path: str) -> str:
        if name in _ROW_FIELDS:
            text = (
                f"{label} uses {name}, which a {recipient} email may not contain "
                "(minimum necessary): remove it"
            )
            if name in EXTRA_FIELDS and kind not in REFERRER_KINDS:
                text += f", or allow it on purpose with drafts.allow_fields.{kind}: [{name}]"
            return text
        return f"{label} uses {path}, which a {KIND_LABELS[kind]} cannot show: it may use {usable}"

    for name in sorted(free):
        fields = sorted(used.get(name, ()))
        if name in allowed:
            spec = allowed[name]
            if spec is None:
                continue  # a plain string: .upper() and the like are fine
            for attr in fields:
                if attr == _DYNAMIC:
                    problems.append(
                        f"{label} looks up {name}[...] with a computed name: write "
                        f"{name}.<field> so the bridge can check it"
                    )
                elif attr not in spec:
                    problems.append(breach(attr, f"{name}.{attr}"))
        elif name == "referral" and fields:
            problems.extend(breach(attr, f"referral.{attr}") for attr in fields)
        else:
            problems.append(breach(name, name))
    return problems


# --------------------------------------------------------------------------------------------
# Contexts
# --------------------------------------------------------------------------------------------

_TITLES = frozenset(
    {"dr", "doctor", "mr", "mrs", "ms", "mx", "miss", "prof", "professor", "sir", "dame"}
)


def _clip(text: str, limit: int = NAME_LIMIT) -> str:
    """At most ``limit`` characters of a cell value, as typed (B17)."""
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def first_name_of(full_name: str) -> str:
    """The given name to greet a referrer by: "Dr. Jane Smith" and "Smith, Jane" give "Jane".

    A title with one name after it ("Dr. Smith") gives ``""`` so templates fall back to the
    whole name, never "Hi Smith".
    """
    name = full_name.strip()
    if "," in name:
        surname, _, given = name.partition(",")
        name = given.strip() if given.strip() else surname
    tokens = name.split()
    titled = False
    while tokens and tokens[0].rstrip(".").casefold() in _TITLES:
        tokens.pop(0)
        titled = True
    if not tokens or (titled and len(tokens) == 1 and "," not in full_name):
        return ""
    return _clip(tokens[0])


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
            "name": _clip(referral.referred_by),
            "first_name": first_name_of(referral.referred_by),
            "practice": _clip(referral.referrer_practice),
        }
    patient_fields = allowed.get("patient")
    if patient_fields is not None:
        patient = {"first_name": _clip(referral.first_name)}
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
                values["reason"] = _clip(referral.reason, TEXT_LIMIT)
            elif extra == "last_name":
                values["last_name"] = _clip(referral.last_name)
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


def _sample_context(kind: str, settings: DraftsSettings) -> dict[str, Any]:
    """A context with made-up values, to render each template once in :meth:`TemplateSet.check`."""
    moment = datetime(2030, 1, 7, 14, 30, tzinfo=UTC)
    sample = Referral(
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
    return build_context(kind, sample, _SamplePractice(), settings)


# --------------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------------

_REFERRED = ("Provider Referral", "Patient Referral")
_TAGGED = (*_REFERRED, "Self-Referral")
_NOT_CONTACTED_STAGES = frozenset({"New", "Contact due", "OVERDUE"})


def _in_window(moment: datetime | None, now: datetime, settings: DraftsSettings) -> bool:
    """True when ``moment`` happened within the recent window ending now."""
    if moment is None:
        return False
    return now - timedelta(days=settings.recent_window_days) <= moment <= now


def _event_time(kind: str, referral: Referral) -> datetime | None:
    """When the event a per-referral kind answers happened, for the recent window.

    Acknowledgement and outreach answer the referral coming in (Received). Closing the loop and
    the thank-you answer the visit, and the sheet has no date for when Visit or Outcome was
    typed, so the Appointment stands in (Received when there is none). A thank-you whose
    Outcome is typed weeks after the Appointment is therefore not drafted: staff can still
    write one; flooding a sheet's history is the worse failure.
    """
    if kind in ("referrer_acknowledgement", "patient_outreach"):
        return referral.received
    if kind in ("closing_the_loop", "patient_thank_you"):
        return referral.appointment or referral.received
    return None


def _fires(kind: str, r: Referral, now: datetime, settings: DraftsSettings) -> bool:
    """Whether a per-referral kind's trigger (PRODUCT.md's table) holds for ``r`` now."""
    if kind == "referrer_acknowledgement":
        wanted = r.source_tag == "Provider Referral" or (
            r.source_tag == "Patient Referral" and r.consent
        )
        return wanted and _in_window(r.received, now, settings)
    if kind == "patient_outreach":
        return (
            r.first_contact is None
            and r.stage in _NOT_CONTACTED_STAGES
            and _in_window(r.received, now, settings)
        )
    if kind == "appointment_reminder":
        return (
            r.visit == "Scheduled"
            and r.appointment is not None
            and now < r.appointment <= now + timedelta(hours=settings.reminder_hours)
        )
    if kind == "closing_the_loop":
        permitted = r.consent or (
            settings.referrer_updates_without_consent and r.source_tag == "Provider Referral"
        )
        return (
            r.visit == "Attended"
            and r.source_tag in _REFERRED
            and permitted
            and _in_window(_event_time(kind, r), now, settings)
        )
    if kind == "patient_thank_you":
        return r.outcome in ("Ongoing care", "Completed") and _in_window(
            _event_time(kind, r), now, settings
        )
    raise ValueError(f"not a per-referral kind: {kind}")


def _column_flagged(referral: Referral, column: str) -> bool:
    """True when the rules already put a line about ``column`` in the row's Attention."""
    return any(line.startswith(column) for line in referral.attention)


def _header_fields(kind: str, r: Referral) -> dict[str, str]:
    """The cell values a kind's draft puts in its headers or context, by column (B16)."""
    if kind in REFERRER_KINDS:
        return {"Referred By": r.referred_by, "Referrer Practice": r.referrer_practice}
    patient = {"Patient First Name": r.first_name, "Patient Last Name": r.last_name}
    if RECIPIENTS[kind] == "referrer":
        return {"Referred By": r.referred_by, "Referrer Practice": r.referrer_practice, **patient}
    return patient


@dataclass
class _Planner:
    """One cycle's drafting: the inputs, and the drafts and problems found so far."""

    now: datetime
    practice: PracticeInfo
    settings: DraftsSettings
    history: DraftHistory
    templates: TemplateSet
    drafts: dict[str, DraftRequest] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)
    gaps: dict[tuple[str, str, bool], list[str]] = field(default_factory=dict)

    def taken(self, key: str) -> bool:
        return key in self.history.keys or key in self.drafts

    def problem(self, referral_id: str, line: str) -> None:
        if (referral_id, line) not in self.problems:
            self.problems.append((referral_id, line))

    def attempt(self, kind: str, r: Referral, key: str, *, report_gaps: bool = True) -> bool:
        """Render and record one draft; False (with problems noted) when it cannot be made."""
        hazards = [
            col for col, value in _header_fields(kind, r).items() if has_control_chars(value)
        ]
        for column in hazards:
            self.problem(
                r.referral_id,
                f"{column} contains a line break or hidden control character: "
                "no email was drafted for this row; retype it",
            )
        recipient = RECIPIENTS[kind]
        column = "Referrer Email" if recipient == "referrer" else "Patient Email"
        address = r.referrer_email if recipient == "referrer" else r.email
        if address is not None and parse_email(address, column=column).value != address.strip():
            address = None
        if address is None:
            if report_gaps:
                flagged = _column_flagged(r, column)
                self.gaps.setdefault((r.referral_id, column, flagged), []).append(KIND_LABELS[kind])
            return False
        if hazards:
            return False
        name = r.referred_by if recipient == "referrer" else f"{r.first_name} {r.last_name}"
        try:
            to = str(Address(display_name=_clip(" ".join(name.split())), addr_spec=address.strip()))
        except (ValueError, IndexError):
            self.problem(r.referral_id, f"{column} cannot be used in an email: check it")
            return False
        context = build_context(kind, r, self.practice, self.settings)
        try:
            subject = " ".join(self.templates.render(kind, "subject", context).split())
            text = self.templates.render(kind, "text", context).strip() + "\n"
            html = self.templates.render(kind, "html", context).strip() + "\n"
        except TemplateError:
            self.problem(
                r.referral_id,
                f"The {KIND_LABELS[kind]} template has an error, so none was drafted: "
                "run sheets-bridge check",
            )
            return False
        self.drafts[key] = DraftRequest(
            key=key,
            referral_id=r.referral_id,
            kind=kind,
            to=to,
            subject=subject,
            text=text,
            html=html,
        )
        return True

    def report_gaps(self) -> None:
        for (referral_id, column, flagged), labels in self.gaps.items():
            what = " or ".join(labels)
            if flagged:
                line = f"No {what} was drafted: {column} cannot be used until it is fixed"
            else:
                line = f"{column} is empty: add it to draft the {what}"
            self.problem(referral_id, line)


def _usable(r: Referral) -> bool:
    """A row drafting may act on: it has an ID, a readable Received (so a Stage) and a tag."""
    return (
        bool(r.referral_id) and bool(r.stage) and r.received is not None and r.source_tag in _TAGGED
    )


def plan_drafts(
    referrals: Sequence[Referral],
    *,
    now: datetime,
    practice: PracticeInfo,
    settings: DraftsSettings,
    history: DraftHistory,
    env: TemplateSet,
) -> tuple[list[DraftRequest], list[tuple[str, str]]]:
    """The drafts due now, and ``(Referral ID, Attention line)`` problems that stopped some.

    Deterministic and independent of row order (staff sort the sheet at will): drafts come out
    sorted by key. Nothing in ``history.keys`` is planned again, and no key appears twice.
    """
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    planner = _Planner(now, practice, settings, history, env)
    usable = sorted((r for r in referrals if _usable(r)), key=lambda r: r.referral_id)
    for r in usable:
        for kind in PER_REFERRAL_KINDS:
            if not settings.is_enabled(kind) or not _fires(kind, r, now, settings):
                continue
            key = draft_key(r.referral_id, kind)
            if not planner.taken(key):
                planner.attempt(kind, r, key)
    _plan_referrer_kinds(planner, referrals)
    planner.report_gaps()
    drafts = [planner.drafts[key] for key in sorted(planner.drafts)]
    problems = sorted(planner.problems)
    return drafts, problems


def _plan_referrer_kinds(planner: _Planner, referrals: Sequence[Referral]) -> None:
    """Feedback requests and check-ins: per provider referrer, rate-limited by period.

    Only Provider Referrals count: a patient who told a friend is not asked how referring went,
    nor checked in on. A referrer with any row whose Received cannot be read gets no check-in,
    since that row might be a recent referral.
    """
    settings, tz = planner.settings, planner.practice.tz
    by_referrer: dict[str, list[Referral]] = defaultdict(list)
    for r in referrals:
        if r.source_tag == "Provider Referral" and r.referral_id:
            rk = referrer_key(r)
            if rk:
                by_referrer[rk].append(r)
    for rk in sorted(by_referrer):
        rows = by_referrer[rk]
        dated = sorted((r for r in rows if _usable(r)), key=lambda r: (r.received, r.referral_id))
        if settings.is_enabled("referrer_feedback"):
            _plan_feedback(planner, rk, dated)
        if settings.is_enabled("referrer_checkin") and dated and len(dated) == len(rows):
            _plan_checkin(planner, rk, dated, tz)


def _plan_feedback(planner: _Planner, rk: str, rows: list[Referral]) -> None:
    settings, now, history = planner.settings, planner.now, planner.history
    kind = "referrer_feedback"
    last = history.last_sent.get((rk, kind))
    if last is not None and now - last < FEEDBACK_MIN_GAP:
        return
    after = timedelta(days=settings.feedback_after_days)
    due = [
        r for r in rows if r.received is not None and _in_window(r.received + after, now, settings)
    ]
    keys = [
        draft_key(rk, kind, quarter_of(r.received + after, planner.practice.tz))
        for r in due
        if r.received
    ]
    if any(planner.taken(key) for key in keys):
        return  # one this quarter already (or in this plan): at most once a quarter
    for r, key in zip(due, keys, strict=True):
        if r.referrer_email is not None:
            planner.attempt(kind, r, key, report_gaps=False)
            return


def _plan_checkin(planner: _Planner, rk: str, rows: list[Referral], tz: tzinfo) -> None:
    settings, now, history = planner.settings, planner.now, planner.history
    kind = "referrer_checkin"
    latest = rows[-1]
    assert latest.received is not None  # rows are usable, so dated
    elapsed = latest.received + timedelta(days=settings.checkin_quiet_days)
    if not _in_window(elapsed, now, settings):
        return
    last = history.last_sent.get((rk, kind))
    if last is not None and last >= latest.received:
        return  # already checked in during this quiet period
    key = draft_key(rk, kind, quarter_of(elapsed, tz))
    if planner.taken(key):
        return
    with_address = [r for r in rows if r.referrer_email is not None]
    if with_address:
        planner.attempt(kind, with_address[-1], key, report_gaps=False)
