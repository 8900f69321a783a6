"""Reading the dropdown columns: Fit, Visit, Outcome, Consent, and How Heard's free text.

Staff type what they mean, not what the dropdown says ("No show", "NS", "yes (verbal)", "dr
referral"), so each column accepts known synonyms and keywords (B25); what is still unclear
becomes an Attention line, never a guess. Consent fails closed: only a plain yes counts (B26).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Literal, TypeAlias

from sheets_bridge.model import CHANNELS, CellError, CellValue
from sheets_bridge.values import EMPTY_TEXT, Parsed, cell_text, error_text, is_blank, trim

__all__ = ["DEFAULT_HOW_HEARD_KEYWORDS", "ChoiceKind", "classify_how_heard", "parse_choice",
           "source_tag_for"]

_NOT_WORD = re.compile(r"[\W_]+")


# --------------------------------------------------------------------------------------------
# Dropdown columns (B25, B26)
# --------------------------------------------------------------------------------------------

ChoiceKind: TypeAlias = Literal["fit", "visit", "outcome", "consent"]

_CANONICAL: dict[str, tuple[str, ...]] = {
    "fit": ("Good fit", "Not a fit", "Unsure"),
    "visit": ("Scheduled", "Attended", "No-show", "Cancelled"),
    "outcome": ("Ongoing care", "Completed", "Not a fit", "Lost"),
    "consent": ("Yes", "No"),
}

_SYNONYMS_RAW: dict[str, dict[str, tuple[str, ...]]] = {
    "fit": {
        "Good fit": ("good", "yes", "fit", "good fit", "great fit"),
        "Not a fit": ("no", "not fit", "not a fit", "poor fit", "bad fit"),
        "Unsure": ("unsure", "maybe", "?", "unknown", "tbd"),
    },
    "visit": {
        "Scheduled": ("scheduled", "booked", "sched"),
        "Attended": ("attended", "seen", "came", "showed", "showed up", "arrived"),
        "No-show": ("no show", "no-show", "ns", "dna", "did not attend", "missed"),
        "Cancelled": ("cancelled", "canceled", "cancel", "cx", "cxl"),
    },
    "outcome": {
        "Ongoing care": (
            "ongoing",
            "ongoing care",
            "long term",
            "long-term care",
            "long term care",
            "active",
        ),
        "Completed": ("completed", "complete", "done", "discharged", "finished"),
        "Not a fit": ("not a fit", "not fit", "no fit"),
        "Lost": ("lost", "no response", "lost to follow up", "ltfu"),
    },
}


@lru_cache(maxsize=4096)
def _choice_key(text: str) -> str:
    """Case, spaces, hyphens and punctuation do not matter in a dropdown value ("No-show" ==
    "no show" == "NOSHOW"); a value of punctuation alone ("?") is kept as it is."""
    key = _NOT_WORD.sub("", text.casefold())
    return key or text.strip()


_SYNONYMS: dict[str, dict[str, str]] = {
    kind: {
        _choice_key(word): canonical
        for canonical, words in table.items()
        for word in (canonical, *words)
    }
    for kind, table in _SYNONYMS_RAW.items()
}

_PLAIN_YES = frozenset({"yes", "y"})
_PLAIN_NO = frozenset({"no", "n"})


def parse_choice(value: CellValue, *, column: str, kind: ChoiceKind) -> Parsed[str]:
    """Read a dropdown column (Fit, Visit, Outcome, Consent) into its canonical value (B25, B26).

    Free text staff commonly type instead of the dropdown value is mapped ("NS", "No show",
    "booked"). Consent is the exception: only a plain yes counts; blank or anything else means
    No (fail closed), and anything that is neither blank nor a plain answer also asks for one,
    because "yes (verbal)" or "Y?" is not a consent the bridge can act on.
    """
    canonical = _CANONICAL[kind]
    if kind == "consent":
        ask = (
            f"{column} is not a plain Yes or No: choose Yes or No "
            "(until then the bridge treats it as No)"
        )
        if isinstance(value, CellError | bool) or not isinstance(value, str | None):
            return Parsed("No", ask)
        text = trim(value) if value is not None else ""
        if not text:
            return Parsed("No", None)
        answer = text.casefold()
        if answer in _PLAIN_YES:
            return Parsed("Yes", None)
        if answer in _PLAIN_NO:
            return Parsed("No", None)
        return Parsed("No", ask)
    if value is None:
        return EMPTY_TEXT
    if isinstance(value, CellError):
        return Parsed(
            None, f"{column} shows {error_text(value)}: fix the formula or pick one from the list"
        )
    if isinstance(value, bool):
        return Parsed(None, f"{column} holds TRUE/FALSE: pick one from the list")
    text = trim(cell_text(value))
    if not text:
        return EMPTY_TEXT
    found = _SYNONYMS[kind].get(_choice_key(text))
    if found is None:
        return Parsed(
            None, f"{column} is not one of {', '.join(canonical)}: pick one from the list"
        )
    return Parsed(found, None)


# --------------------------------------------------------------------------------------------
# How Heard and source tags (B25)
# --------------------------------------------------------------------------------------------

#: Keywords that map free text in How Heard to a channel. The config may replace these; the
#: Sources tab lets a manager tag whatever neither the dropdown nor the keywords cover.
DEFAULT_HOW_HEARD_KEYWORDS: dict[str, tuple[str, ...]] = {
    "Provider": (
        "dr",
        "doctor",
        "physician",
        "md",
        "clinic",
        "provider",
        "referral from",
        "referred by dr",
        "pcp",
        "chiropractor",
        "therapist",
        "specialist",
        "dentist",
        "hospital",
        "np",
    ),
    "Patient": (
        "friend",
        "friends",
        "family",
        "patient",
        "word of mouth",
        "neighbor",
        "neighbour",
        "coworker",
        "co worker",
        "colleague",
        "spouse",
        "relative",
    ),
    "Google": (
        "google",
        "googled",
        "search",
        "online search",
        "web search",
        "web",
        "website",
        "online",
        "internet",
        "bing",
    ),
    "Social media": (
        "facebook",
        "instagram",
        "fb",
        "ig",
        "insta",
        "tiktok",
        "social",
        "twitter",
        "linkedin",
        "youtube",
        "nextdoor",
    ),
    "Directory": (
        "yelp",
        "zocdoc",
        "psychology today",
        "directory",
        "healthgrades",
        "insurance list",
        "insurance",
        "vitals",
    ),
    "Event": ("event", "health fair", "fair", "talk", "workshop", "seminar", "expo", "booth"),
    "Walk-in": ("walk", "walk in", "walked in", "walkin", "drive by", "drove by", "sign"),
    "Other": ("self", "self referred", "self referral", "selfreferral"),
}

_SOURCE_TAGS: dict[str, str] = {
    "Provider": "Provider Referral",
    "Patient": "Patient Referral",
    **{channel: "Self-Referral" for channel in CHANNELS if channel not in ("Provider", "Patient")},
}


def source_tag_for(channel: str | None) -> str:
    """The Source Tag a channel gives: referred by a provider, by a patient, or self-referred."""
    if channel is None:
        return "Unknown"
    return _SOURCE_TAGS.get(channel, "Unknown")


@lru_cache(maxsize=4096)
def _words(text: str) -> str:
    """Lowercase words separated by single spaces: "Dr. Smith" -> "dr smith". The same few How
    Heard values repeat across thousands of rows, hence the cache."""
    return " ".join(_NOT_WORD.sub(" ", unicodedata.normalize("NFC", text).casefold()).split())


_CHANNEL_BY_NAME: dict[str, str] = {}
for _channel in CHANNELS:
    _CHANNEL_BY_NAME[_words(_channel)] = _channel
    _CHANNEL_BY_NAME[_words(_channel).replace(" ", "")] = _channel


@lru_cache(maxsize=4096)
def _classify(words: str, table: tuple[tuple[str, tuple[str, ...]], ...]) -> tuple[str, ...]:
    """The channels whose keywords occur in ``words`` as whole words or phrases."""
    padded = f" {words} "
    return tuple(
        channel for channel, keywords in table if any(f" {kw} " in padded for kw in keywords if kw)
    )


def classify_how_heard(value: CellValue, keywords: Mapping[str, Sequence[str]]) -> Parsed[str]:
    """Map How Heard to a channel: a channel's own name, else its keywords, else ask (B25).

    Keywords match whole words, so "md" does not fire inside "cmd". When keywords of two channels
    match ("friend saw us on facebook") the bridge asks rather than picks. Keys of ``keywords``
    that are not channels are ignored (config validation reports them).
    """
    if is_blank(value):
        return Parsed(None, "How Heard is empty: pick how the patient heard of the practice")
    if isinstance(value, CellError):
        return Parsed(
            None, f"How Heard shows {error_text(value)}: fix the formula or pick one from the list"
        )
    if isinstance(value, bool):
        return Parsed(None, "How Heard holds TRUE/FALSE: pick one from the list")
    words = _words(cell_text(value))
    exact = _CHANNEL_BY_NAME.get(words) or _CHANNEL_BY_NAME.get(words.replace(" ", ""))
    if exact is not None:
        return Parsed(exact, None)
    table = tuple(
        (channel, tuple(_words(kw) for kw in kws))
        for channel, kws in keywords.items()
        if channel in _SOURCE_TAGS
    )
    matched = _classify(words, table)
    if len(matched) == 1:
        return Parsed(matched[0], None)
    if matched:
        return Parsed(
            None,
            "How Heard matches more than one channel: pick one from the list, "
            "or set its tag on the Sources tab",
        )
    return Parsed(
        None,
        "How Heard is not a known channel: pick one from the list, "
        "or set its tag on the Sources tab",
    )
