"""Plain data that flows through a sync cycle.

Glossary (the words of PRODUCT.md, used verbatim in code):

Referrals tab
    The staff's tab: row 1 holds headers, each later row one referral or lead.
Staff column
    A column staff type into (Received, Patient First Name, ...). The bridge reads it and never
    writes it.
Bridge column
    A column the bridge owns (Referral ID, Source Tag, Stage, Follow-up Due, Attention, Emails,
    Bridge Updated). A hand edit is put back and said so in Attention.
Referral ID
    ``R-00001``...: assigned once, never reused; the row's identity when rows move.
Attention
    Every problem with a row in plain words, one per line; empty when the row is clean.
Snapshot
    What a backend read: the Referrals tab's cells plus the other tabs the bridge reads.
Plan
    What one cycle wants to change: cell writes addressed by Referral ID, whole summary tabs,
    drafts, problems. Pure data, comparable with ``==``.

Cell values travel as plain Python values so a 50,000-row snapshot stays small:
``None`` (empty), ``str`` (text), ``float``/``int`` (number), ``bool``, ``DateSerial`` (a number
the spreadsheet formats as a date or time) and ``CellError`` (``#REF!``, ``#N/A``...).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

STAFF_COLUMNS: tuple[str, ...] = (
    "Received",
    "Patient First Name",
    "Patient Last Name",
    "Patient Phone",
    "Patient Email",
    "How Heard",
    "Referred By",
    "Referrer Email",
    "Referrer Practice",
    "Reason",
    "Fit",
    "First Contact",
    "Appointment",
    "Visit",
    "Outcome",
    "Consent to Update Referrer",
    "Notes",
)

BRIDGE_COLUMNS: tuple[str, ...] = (
    "Referral ID",
    "Source Tag",
    "Stage",
    "Follow-up Due",
    "Attention",
    "Emails",
    "Bridge Updated",
)

#: Bridge columns that hold a moment: written as a real date-time (a serial with a date-time
#: number format) where the medium has one, so staff can sort and filter them as dates. The plan
#: carries them as ``format_moment`` text ("2025-03-04 09:00", the practice's wall time).
BRIDGE_MOMENT_COLUMNS: tuple[str, ...] = ("Follow-up Due", "Bridge Updated")

#: Widths (in characters) and wrapping of the bridge columns, for ``init`` and for a sync that
#: adds a missing column to an existing sheet alike: Attention wide and wrapped, a tag or a
#: date-time fully visible.
BRIDGE_COLUMN_WIDTHS: Mapping[str, int] = {
    "Referral ID": 11,
    "Source Tag": 17,
    "Stage": 12,
    "Follow-up Due": 18,
    "Attention": 45,
    "Emails": 40,
    "Bridge Updated": 18,
}
BRIDGE_WRAP_COLUMNS: tuple[str, ...] = ("Attention", "Emails")

REFERRALS_TAB = "Referrals"
DASHBOARD_TAB = "Dashboard"
REFERRERS_TAB = "Referrers"
FOLLOWUPS_TAB = "Follow-ups"
SOURCES_TAB = "Sources"
GIFTS_TAB = "Gifts"
BRIDGE_LOG_TAB = "Bridge Log"

#: Tabs the bridge owns and rewrites whole. Gifts is staff-entered and only read.
BRIDGE_TABS: tuple[str, ...] = (
    DASHBOARD_TAB,
    REFERRERS_TAB,
    FOLLOWUPS_TAB,
    SOURCES_TAB,
    BRIDGE_LOG_TAB,
)

CHANNELS: tuple[str, ...] = (
    "Provider",
    "Patient",
    "Google",
    "Social media",
    "Directory",
    "Event",
    "Walk-in",
    "Other",
)
SOURCE_TAGS: tuple[str, ...] = ("Provider Referral", "Patient Referral", "Self-Referral", "Unknown")
#: One colour per source tag, wherever a chart shows them (the Dashboard's and the digest's):
#: the Okabe-Ito palette, told apart by people with colour-blindness too. RGB hex, no "#".
TAG_COLOURS: Mapping[str, str] = {
    "Provider Referral": "0072B2",
    "Patient Referral": "009E73",
    "Self-Referral": "E69F00",
    "Unknown": "999999",
}
STAGES: tuple[str, ...] = (
    "New",
    "Contact due",
    "OVERDUE",
    "Contacted",
    "Scheduled",
    "Seen",
    "No-show",
    "Long-term",
    "Closed",
    "Lost",
)
FIT_VALUES: tuple[str, ...] = ("Good fit", "Not a fit", "Unsure")
VISIT_VALUES: tuple[str, ...] = ("Scheduled", "Attended", "No-show", "Cancelled")
OUTCOME_VALUES: tuple[str, ...] = ("Ongoing care", "Completed", "Not a fit", "Lost")
CONSENT_VALUES: tuple[str, ...] = ("Yes", "No")

#: Excel refuses cells longer than this; bridge cells are kept under it.
MAX_CELL_CHARS = 32_767


class CellError(str):
    """An error value the spreadsheet shows in a cell (``#REF!``, ``#N/A``, ``#VALUE!``)."""

    __slots__ = ()


class DateSerial(float):
    """A number the spreadsheet formats as a date or time: a serial day count, not a quantity."""

    __slots__ = ()


CellValue = str | float | int | bool | None
"""A value read from a cell; ``CellError`` and ``DateSerial`` are the subclasses above."""

class Share(float):
    """A fraction (0.62) that a tab shows as a percent ("62%"): a number a manager can sort."""

    __slots__ = ()


class OutOf(int):
    """The size a :class:`Share` is out of, shown as "of 8" beside it, and still a number."""

    __slots__ = ()


class Hours(float):
    """A duration in hours, shown with one decimal ("20.9")."""

    __slots__ = ()


OutValue = str | float | int | datetime | date | None
"""A value the bridge writes on its own tabs: ``str`` is always written as text, never parsed
as a formula; a ``datetime`` (its wall time) or ``date`` is a real date cell with a date format;
``Share``, ``OutOf`` and ``Hours`` are numbers with their own number formats. The formats are
named here, not in a medium's terms: each backend renders them its own way."""

CellAlign = Literal["right"]


@dataclass(frozen=True, slots=True)
class SheetRow:
    """One data row of the Referrals tab as read; ``values[i]`` is column ``i`` (0-based)."""

    number: int
    values: tuple[CellValue, ...]
    hidden: bool = False

    def get(self, col: int | None) -> CellValue:
        if col is None or col >= len(self.values):
            return None
        return self.values[col]


@dataclass(frozen=True, slots=True)
class CellRange:
    """A rectangle of cells, 1-based rows and 0-based columns, inclusive bounds."""

    first_row: int
    first_col: int
    last_row: int
    last_col: int

    def contains(self, row: int, col: int) -> bool:
        return self.first_row <= row <= self.last_row and self.first_col <= col <= self.last_col


@dataclass(frozen=True, slots=True)
class TabValues:
    """The values of a tab other than Referrals (Sources, Gifts, a bridge-owned summary)."""

    title: str
    rows: tuple[tuple[CellValue, ...], ...]


@dataclass(frozen=True)
class Snapshot:
    """Everything one cycle reads, taken at one moment.

    ``referrals`` is ``None`` when the Referrals tab does not exist (a circuit breaker trips).
    ``version`` is the backend's token for compare-and-set (file size, mtime and hash for a
    workbook); the planner never looks inside it.
    """

    tab_titles: tuple[str, ...]
    referrals: ReferralsTab | None
    tabs: Mapping[str, TabValues] = field(default_factory=dict)
    date1904: bool = False
    version: str = ""


@dataclass(frozen=True)
class ReferralsTab:
    """The Referrals tab: header row, data rows, merged ranges and formula cells."""

    title: str
    headers: tuple[CellValue, ...]
    rows: tuple[SheetRow, ...]
    merged: tuple[CellRange, ...] = ()
    formula_cells: frozenset[tuple[int, int]] = frozenset()


@dataclass(frozen=True, slots=True)
class RowRef:
    """How a write finds its row at apply time: by Referral ID, else by staff fingerprint.

    ``number`` is where the row was when read; a backend may use it only after checking that
    the row there still carries ``referral_id`` (or, for a row with no ID yet, ``fingerprint``).
    """

    number: int
    referral_id: str
    fingerprint: str
    target_id: str = ""
    """The Referral ID the row carries once the plan lands (differs for new and copied rows)."""


@dataclass(frozen=True, slots=True)
class CellWrite:
    """Set one bridge cell: only if it still holds ``expected`` (compare-and-set)."""

    row: RowRef
    column: str
    expected: str
    new: str


@dataclass(frozen=True, slots=True)
class HeaderWrite:
    """Add a missing bridge column's header at ``col`` (0-based), to the right of the others."""

    col: int
    header: str


@dataclass(frozen=True, slots=True)
class ChartSpec:
    """A chart the bridge draws on its own tab over a block of that tab's cells.

    ``first_row``..``last_row`` and ``first_col``..``last_col`` are 0-based and inclusive: the
    first row holds the series names, the first column the category labels (week starts), each
    further column one series. The backend redraws it whenever it rewrites the tab.
    """

    title: str
    first_row: int
    first_col: int
    last_row: int
    last_col: int
    kind: Literal["column", "line"] = "column"
    stacked: bool = True
    anchor_row: int = 0
    anchor_col: int = 0
    colours: tuple[str, ...] = ()
    """One RGB hex colour per series, in column order; empty: the medium's own palette."""


@dataclass(frozen=True, slots=True)
class TabContent:
    """A whole bridge-owned tab, rewritten as one piece.

    ``heading_rows`` are rows drawn bold (section titles, column headings); ``widths`` are column
    widths in characters; ``freeze_rows`` rows stay in view when scrolling.
    """

    title: str
    rows: tuple[tuple[OutValue, ...], ...]
    heading_rows: frozenset[int] = frozenset({0})
    widths: tuple[int, ...] = ()
    freeze_rows: int = 1
    chart: ChartSpec | None = None
    heading_cells: frozenset[tuple[int, int]] = frozenset()
    """Single (row, column) cells drawn bold, for a heading that shares its row with other data."""
    right_cells: frozenset[tuple[int, int]] = frozenset()
    """(row, column) cells aligned right: headings and text above or among right-aligned
    numbers, so every number sits under its own header."""
    wrap_cols: frozenset[int] = frozenset()
    """Columns whose text wraps (long Attention lines), whatever the value holds."""
    landscape: bool = True
    """Printed landscape, one page wide when it fits at a readable size."""


@dataclass(frozen=True, slots=True)
class DraftRequest:
    """One email draft the plan wants to exist, identified by its key for exactly-once."""

    key: str
    referral_id: str
    kind: str
    to: str
    subject: str
    text: str
    html: str
    facets: tuple[str, ...] = ()
    """Who the draft is about, as keyed digests (the ledger keeps them, the message carries them)."""


@dataclass(frozen=True, slots=True)
class Problem:
    """Something a person should know. ``referral_id`` is set for row problems.

    Messages name columns and Referral IDs, never patient data, so they are safe to log.
    """

    message: str
    referral_id: str = ""
    column: str = ""
    severity: Literal["info", "warning", "error"] = "warning"


@dataclass(frozen=True, slots=True)
class Notice:
    """A one-off Attention line (a hand edit put back, a copied row) kept for a while."""

    referral_id: str
    message: str
    created: datetime


@dataclass(frozen=True, slots=True)
class SafetyStop:
    """Why the planner refuses to write anything but the Bridge Log, and how to override."""

    reason: str
    override: str = "--force"


@dataclass(frozen=True)
class Plan:
    """What one cycle wants to change. Pure data: the apply step does all the I/O."""

    header_writes: tuple[HeaderWrite, ...] = ()
    cell_writes: tuple[CellWrite, ...] = ()
    tab_contents: tuple[TabContent, ...] = ()
    drafts: tuple[DraftRequest, ...] = ()
    problems: tuple[Problem, ...] = ()
    notices: tuple[Notice, ...] = ()
    assigned_ids: Mapping[str, str] = field(default_factory=dict)
    """New Referral ID -> identity hash of its row, recorded once the write lands."""
    next_id_number: int = 1
    stop: SafetyStop | None = None
    rows_read: int = 0
    staff_columns: Mapping[str, int] = field(default_factory=dict)
    """Staff header -> 0-based column at plan time: a backend fingerprints rows with it."""

    @property
    def is_quiet(self) -> bool:
        """True when the cycle has nothing to write anywhere."""
        return not (self.header_writes or self.cell_writes or self.tab_contents or self.drafts)


@dataclass(frozen=True, slots=True)
class Referral:
    """One Referrals row as the rules understood it: what drafting and summaries consume.

    Datetimes are aware, in the practice's time zone. A field the bridge could not read is
    ``None`` (its problem is in ``attention``). ``reason`` is PHI: it never leaves the sheet
    unless a template is explicitly allowed to use it.
    """

    referral_id: str
    row: int
    received: datetime | None
    received_has_time: bool
    first_name: str
    last_name: str
    phone: str | None
    email: str | None
    how_heard: str
    channel: str | None
    source_tag: str
    referred_by: str
    referrer_email: str | None
    referrer_practice: str
    reason: str
    fit: str | None
    first_contact: datetime | None
    appointment: datetime | None
    visit: str | None
    outcome: str | None
    consent: bool
    stage: str
    follow_up_due: datetime | None
    attention: tuple[str, ...] = ()
    emails: str = ""
    facets: tuple[str, ...] = ()
    """Keyed digests of who the patient is (:func:`sheets_bridge.identity.row_facets`): drafts
    are never made twice for one patient and kind, whatever their Referral IDs did."""
