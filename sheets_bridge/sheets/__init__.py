"""The sheet-backend role: read a Snapshot, apply a Plan. Implementations are named for their medium.

Backends never decide anything: the planner does. A backend reads everything a cycle needs in a
fixed number of calls, and applies a plan as compare-and-set through the shared locator
(:mod:`sheets_bridge.sheets.locate`): a write lands only where the row still carries the Referral
ID (or staff fingerprint) and the cell still holds ``expected``.

What differs between media is declared on the role, never probed with ``getattr``: whether a
snapshot may be planned from again (:meth:`SheetBackend.snapshot_reusable`), what a crash leaves
behind (:meth:`SheetBackend.prepare`), a link a person can open (:meth:`SheetBackend.link`), and
how ``sheets-bridge init`` creates or repairs the sheet (:meth:`SheetBackend.setup`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Protocol

from sheets_bridge.model import CellWrite, HeaderWrite, Plan, Snapshot

if TYPE_CHECKING:
    from sheets_bridge.config import BridgeConfig


@dataclass
class ApplyReport:
    """What a backend actually did with a plan; state records only this.

    ``skipped`` and ``repaired`` say why, in words that name columns and Referral IDs only.
    """

    applied: list[CellWrite] = field(default_factory=list)
    skipped: list[tuple[CellWrite, str]] = field(default_factory=list)
    repaired: list[tuple[CellWrite, str]] = field(default_factory=list)
    """Writes found misplaced when read back (staff sorted while the bridge wrote), put right."""
    headers_added: list[HeaderWrite] = field(default_factory=list)
    tabs_written: list[str] = field(default_factory=list)
    saved: bool = False


@dataclass
class SetupReport:
    """What ``sheets-bridge init`` did: whether it created the sheet, and one line per change."""

    created: bool = False
    lines: list[str] = field(default_factory=list)


class SheetBackend(Protocol):
    """Read a snapshot of the sheet and apply a plan to it."""

    kind: ClassVar[str]

    def describe(self) -> str:
        """Where the sheet is, for messages (a path or a spreadsheet id, never cell data)."""
        ...

    def link(self) -> str | None:
        """A link anyone the digest goes to can follow (a Google Sheet's URL); None when there
        is none: a local workbook (a ``file://`` address opens nothing on a phone) or memory."""
        ...

    def prepare(self) -> None:
        """At the start of a run, under the state lock: remove what a crashed save left behind."""
        ...

    def read(self) -> Snapshot:
        """Read the Referrals tab and the other tabs the bridge reads, at one moment."""
        ...

    def snapshot_reusable(self, snapshot: Snapshot) -> bool:
        """Whether a cycle may plan again from ``snapshot`` without reading the sheet again.

        The workbook: only while the file is byte-identical. Google: always, since ``apply``
        finds every row by its Referral ID and checks every cell itself.
        """
        ...

    def apply(self, snapshot: Snapshot, plan: Plan, columns: dict[str, int]) -> ApplyReport:
        """Apply ``plan`` made from ``snapshot``.

        ``columns`` maps each bridge column header to its 0-based column at plan time (after
        ``plan.header_writes``). Raises ``SnapshotStaleError`` when the sheet changed since
        ``snapshot`` in a way that needs a new plan, ``WorkbookBusyError`` when it cannot be
        written now.
        """
        ...

    def setup(self, aliases: Mapping[str, Sequence[str]]) -> SetupReport:
        """Create the sheet, or repair it: tabs, headers, dropdowns, protections (``init``)."""
        ...


def open_sheet(config: BridgeConfig, *, step: Callable[[str], None] | None = None) -> SheetBackend:
    """The backend named by ``sheet.kind`` in the config.

    ``step`` is the crash harness's hook for the steps inside a backend's save (None in
    production).
    """
    from sheets_bridge.settings import LocalSheetConfig

    if isinstance(config.sheet, LocalSheetConfig):
        from sheets_bridge.sheets.xlsx import LocalWorkbook

        return LocalWorkbook(
            config.sheet.path,
            config.sheet.tab,
            allow_lossy_save=config.sheet.allow_lossy_save,
            step=step,
        )
    from sheets_bridge.sheets.google import open_google_sheet

    return open_google_sheet(config)
