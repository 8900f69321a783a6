"""How a draft greets its reader, from a name as staff typed it: "Dear Dr. Kim", "Hi Sam".

Names arrive in every shape ("Jordan Lee, PA-C", "Smith, Jane", "DR. PRIYA RAMAN", "Sean van
der Berg", "Cher"), so they are parsed by ``nameparser`` (a library made for this: titles,
suffixes and credentials, "Last, First", particles) rather than split on spaces. Providers are
greeted formally ("Dear Dr. Kim" when the name carries a title, else "Dear Jordan Lee"), patients
by their first name ("Hi Sam"). A name that cannot be read as a person's name (an empty cell, an
email address, a practice's name, a credential alone) gets a neutral greeting, never a fragment:
a provider would wince at "Hi PA-C" and a patient at "Hi 555-0147".

Pure and deterministic; the library's module-wide settings are never changed.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from nameparser import HumanName
from nameparser.config import CONSTANTS

__all__ = [
    "NEUTRAL_FORMAL",
    "NEUTRAL_INFORMAL",
    "first_name",
    "formal_greeting",
    "informal_greeting",
]

NEUTRAL_FORMAL = "Hello"
NEUTRAL_INFORMAL = "Hello"

#: Titles that a formal greeting keeps, spelled as a letter writes them.
_FORMAL_TITLES = {
    "dr": "Dr.",
    "doctor": "Dr.",
    "prof": "Prof.",
    "professor": "Prof.",
    "mr": "Mr.",
    "mrs": "Mrs.",
    "ms": "Ms.",
    "mx": "Mx.",
    "miss": "Miss",
}
#: Words that say the cell names an organisation, not a person.
_ORGANISATION_WORDS = frozenset(
    {
        "clinic", "medicine", "medical", "health", "hospital", "center", "centre", "practice",
        "group", "associates", "pediatrics", "orthopedics", "neurology", "chiropractic",
        "therapy", "care", "office", "inc", "llc", "ltd", "family", "urgent", "team",
    }
)  # fmt: skip
_NOT_A_NAME = re.compile(r"[@\d/\\#|<>{}\[\]=+*_]")
_LETTER = re.compile(r"[^\W\d_]")


def _is_credential(word: str) -> bool:
    key = word.casefold().replace(".", "")
    return key in CONSTANTS.suffix_acronyms or key in CONSTANTS.suffix_not_acronyms


def _is_cjk(text: str) -> bool:
    return any(
        unicodedata.name(ch, "").startswith(("CJK", "HIRAGANA", "KATAKANA", "HANGUL"))
        for ch in text
    )


def _tidy(part: str) -> str:
    """A name part as written, except ALL CAPS or all lower case, which get proper capitals
    ("O'BRIEN" -> "O'Brien"); mixed case ("McAllister", "DeShawn") is kept as typed."""
    part = " ".join(part.split())
    if part.isupper() or part.islower():
        name = HumanName(part)
        name.capitalize(force=True)
        fixed = str(name).strip()
        return fixed or part
    return part


@lru_cache(maxsize=4096)
def _parse(raw: str) -> tuple[str, str, str] | None:
    """(title, first, last) of a person's name, or None when ``raw`` is not one."""
    text = " ".join(raw.replace("\u00a0", " ").split()).strip(" ,;")
    if not text or len(text) > 80 or _NOT_A_NAME.search(text) or not _LETTER.search(text):
        return None
    if _is_cjk(text):
        return ("", text, "")  # written as the writer wants it read; no reordering
    words = {w.strip(".,").casefold() for w in text.split()}
    if words & _ORGANISATION_WORDS:
        return None
    name = HumanName(text)
    titles = [t.strip(".").casefold() for t in name.title.split()]
    title = next((_FORMAL_TITLES[t] for t in titles if t in _FORMAL_TITLES), "")
    first, last = name.first.strip(), name.last.strip()
    if name.middle and not last:
        last = name.middle
    if not first and not last:
        return None
    # A lone "first" that is really a credential ("PA-C", "MD") is not a name.
    if first and not last and not title and _is_credential(first):
        return None
    return (title, _tidy(first) if first else "", _tidy(last) if last else "")


def formal_greeting(raw: str) -> str:
    """ "Dear Dr. Kim", "Dear Jordan Lee", or "Hello" when the name cannot be read."""
    parsed = _parse(raw)
    if parsed is None:
        return NEUTRAL_FORMAL
    title, first, last = parsed
    if title and last:
        return f"Dear {title} {last}"
    if title and first:  # "Dr. Priya" with no surname: the title alone would be odd
        return f"Dear {first}"
    return "Dear " + " ".join(p for p in (first, last) if p)


def first_name(raw: str) -> str:
    """The given name to greet someone by informally, or "" when there is none to be sure of
    ("Dr. Kim" has no given name; "Jordan Lee, PA-C" gives "Jordan")."""
    parsed = _parse(raw)
    if parsed is None:
        return ""
    title, first, last = parsed
    if not first or (title and not last):
        return ""  # "Dr. Kim", "Ms. Olivia": nameparser cannot tell which part is given
    return first


def informal_greeting(raw: str) -> str:
    """ "Hi Sam", or "Hello" when there is no first name to be sure of."""
    given = first_name(raw)
    return f"Hi {given}" if given else NEUTRAL_INFORMAL
