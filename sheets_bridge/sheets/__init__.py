"""The sheet-backend role: read a Snapshot, apply a Plan. Implementations are named for their medium.

Backends never decide anything: the planner does. A backend reads everything a cycle needs in a
fixed number of calls, and applies a plan as compare-and-set: a write lands only where the row
still carries the Referral ID (or staff fingerprint) and the cell still holds ``expected``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Protocol

from sheets_bridge.model import CellWrite, HeaderWrite, Plan, Snapshot

if TYPE_CHECKING:
    from sheets_bridge.config import BridgeConfig


@dataclass
class ApplyReport:
    """What a backend actually did with a plan; state records only this."""

    applied: list[CellWrite] = field(default_factory=list)
    skipped: list[tuple[CellWrite, str]] = field(default_factory=list)
    headers_added: list[HeaderWrite] = field(default_factory=list)
    tabs_written: list[str] = field(default_factory=list)
    saved: bool = False


class SheetBackend(Protocol):
    """Read a snapshot of the sheet and apply a plan to it."""

    kind: ClassVar[str]

    def describe(self) -> str:
        """Where the sheet is, for messages (a path or a spreadsheet id, never cell data)."""
        ...

    def read(self) -> Snapshot:
        """Read the Referrals tab and the other tabs the bridge reads, at one moment."""
        ...

    def apply(self, snapshot: Snapshot, plan: Plan, columns: dict[str, int]) -> ApplyReport:
        """Apply ``plan`` made from ``snapshot``.

        ``columns`` maps each bridge column header to its 0-based column at plan time (after
        ``plan.header_writes``). Raises ``SnapshotStaleError`` when the sheet changed since
        ``snapshot`` in a way that needs a new plan, ``WorkbookBusyError`` when it cannot be
        written now.
        """
        ...


def open_sheet(config: BridgeConfig) -> SheetBackend:
    """The backend named by ``sheet.kind`` in the config."""
    from sheets_bridge.config import LocalSheetConfig

    if isinstance(config.sheet, LocalSheetConfig):
        from sheets_bridge.sheets.xlsx import LocalWorkbook

        return LocalWorkbook(config.sheet.path, config.sheet.tab)
    from sheets_bridge.errors import BackendError

    raise BackendError(
        "sheet.kind: google is not available in this version yet: use sheet.kind: local",
        backend="google",
    )
