"""The key of one draft: what makes it exactly once, printed into file names and Message-IDs.

Three shapes, one type:

- per referral: ``R-00012.referrer_acknowledgement``;
- per referrer and period (the recurring referrer kinds): ``referrer-1a2b3c4d.referrer_feedback.2026Q4``;
- the owner's digest, per ISO week: ``digest.2026-W48``.

Only letters, digits, ``-``, ``_`` and ``.`` occur, so a key is a safe file name, Message-ID left
part and SQLite key as it is. :meth:`DraftKey.parse` reads every key the bridge ever printed
back (a drafts folder or a Gmail account found after a lost state), so nothing parses keys by
splitting strings anywhere else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, tzinfo

__all__ = ["DIGEST_KIND", "DraftKey", "digest_week", "draft_key", "quarter_of", "referrer_of_key"]

#: The ledger kind of the owner's weekly digest.
DIGEST_KIND = "weekly_digest"
_DIGEST_OWNER = "digest"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_PART = re.compile(r"[A-Za-z0-9_-]+")


def _part(text: str) -> str:
    return _UNSAFE.sub("-", text).strip("-") or "x"


@dataclass(frozen=True, order=True, slots=True)
class DraftKey:
    """Who a draft belongs to (a Referral ID, a referrer key, the digest), its kind and period."""

    owner: str
    kind: str
    period: str = ""

    @classmethod
    def of(cls, owner: str, kind: str, period: str = "") -> DraftKey:
        """A key from free text: anything unsafe in a part becomes ``-``."""
        return cls(_part(owner), _part(kind), _part(period) if period else "")

    @classmethod
    def digest(cls, week: str) -> DraftKey:
        """The digest's key for an ISO week like ``2026-W48``."""
        return cls(_DIGEST_OWNER, DIGEST_KIND, _part(week))

    @classmethod
    def parse(cls, text: str) -> DraftKey | None:
        """The key ``text`` prints, or None when it is not a key the bridge makes."""
        parts = text.split(".")
        if not all(_PART.fullmatch(p) for p in parts):
            return None
        if len(parts) == 2 and parts[0] == _DIGEST_OWNER:
            return cls.digest(parts[1])
        if len(parts) in (2, 3):
            return cls(*parts)
        return None

    def __str__(self) -> str:
        if self.is_digest:
            return f"{_DIGEST_OWNER}.{self.period}"
        return ".".join(p for p in (self.owner, self.kind, self.period) if p)

    @property
    def is_digest(self) -> bool:
        return self.owner == _DIGEST_OWNER and self.kind == DIGEST_KIND

    @property
    def referral_id(self) -> str:
        """The Referral ID a per-referral draft belongs to; ``""`` for the others."""
        return self.owner if self.owner.startswith("R-") else ""

    @property
    def referrer(self) -> str:
        """The referrer key of a per-referrer draft; ``""`` for the others."""
        return self.owner if self.owner.startswith("referrer-") else ""


def draft_key(owner: str, kind: str, period: str = "") -> str:
    """The printed key of a draft (:meth:`DraftKey.of`), as the drafts ledger stores it."""
    return str(DraftKey.of(owner, kind, period))


def referrer_of_key(key: str) -> str | None:
    """The referrer key inside a per-referrer draft key, or None for any other key."""
    parsed = DraftKey.parse(key)
    return parsed.referrer or None if parsed is not None else None


def quarter_of(moment: datetime, tz: tzinfo) -> str:
    """The calendar quarter of ``moment`` in the practice's zone: ``2026Q4``."""
    local = moment.astimezone(tz)
    return f"{local.year}Q{(local.month - 1) // 3 + 1}"


def digest_week(now: datetime) -> str:
    """The ISO week (of ``now``'s own zone) a digest made now belongs to: ``2026-W48``."""
    iso = now.isocalendar()
    return f"{iso.year}-W{iso.week:02d}"
