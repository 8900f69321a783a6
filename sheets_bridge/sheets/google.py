"""GoogleSheet: the Referrals sheet as a Google Sheet, through the Sheets API (gspread).

Requests per cycle are fixed whatever the number of rows (GOOGLE-NOTES.md, the issue's budget):

- **read**: one ``values.batchGet`` of every tab the bridge reads (unformatted values, dates as
  serial numbers), plus ``spreadsheets.get`` only when the tab list is not cached (or a tab the
  bridge needs is missing from it, or the cache is an hour old);
- **apply**: at most one ``values.batchUpdate`` (RAW) for the Referrals tab's bridge cells and
  headers, one ``values.batchGet`` of the Referral ID (and identity) columns to check where the
  writes landed, and at most one ``spreadsheets.batchUpdate`` for the summary tabs: its
  ``updateCells`` carry each tab's values and looks (percent, "of N", dates, bold headings,
  alignment, wrapping: the workbook's formats), with any ``appendDimension`` a tab needs to grow
  (a new tab: one ``spreadsheets.batchUpdate`` first). A cycle with nothing to change sends no
  write at all.

Google has no conditional write, so compare-and-set is done this way (R3): rows are located with
the shared locator (:func:`sheets_bridge.sheets.locate.place_writes`) by Referral ID or staff
fingerprint, a write covers only bridge cells and carries absolute values (a resend after a lost
answer is harmless, R4), and after writing the ID column is read back: a row that staff moved in
between (a sort while the bridge wrote) is found by its ID (or, for a row given its ID just now,
by who it is) and put right, and the row its writes landed on gets its own values back. Values
are written RAW (summary tabs: ``stringValue``), so a name that starts with ``=`` stays text.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, ClassVar

from sheets_bridge import model
from sheets_bridge.columns import column_letter
from sheets_bridge.dates import to_serial
from sheets_bridge.errors import BackendError
from sheets_bridge.google.credentials import SHEETS_SCOPE, LoadedCredentials, load_credentials
from sheets_bridge.google.errors import GoogleError
from sheets_bridge.google.transport import RetryPolicy, SheetsHTTPClient
from sheets_bridge.identity import identity_from_cells, row_fingerprint
from sheets_bridge.model import (
    CellError,
    CellRange,
    CellValue,
    CellWrite,
    Plan,
    ReferralsTab,
    SheetRow,
    Snapshot,
    TabContent,
    TabValues,
)
from sheets_bridge.sheets import ApplyReport, SetupReport
from sheets_bridge.sheets.locate import place_writes
from sheets_bridge.values import cell_text

log = logging.getLogger(__name__)

__all__ = ["GoogleSheet", "a1_tab"]

#: How long a spreadsheet's tab list (and merged ranges) is trusted before it is fetched again.
METADATA_TTL = 3600.0
_READ_PARAMS = {
    "valueRenderOption": "UNFORMATTED_VALUE",
    "dateTimeRenderOption": "SERIAL_NUMBER",
    "majorDimension": "ROWS",
}
#: Error values as the API returns them in place of a cell's value.
_ERRORS = frozenset(
    {"#REF!", "#N/A", "#VALUE!", "#DIV/0!", "#NAME?", "#NUM!", "#NULL!", "#ERROR!", "#SPILL!"}
)
#: Rounds of read back and repair after a write before the rest waits for the next cycle.
REPAIR_ROUNDS = 2
_IDENTITY = ("Patient First Name", "Patient Last Name", "Received")
#: Google's own cap on one cell is 50,000 characters; the bridge keeps Excel's smaller one.
MAX_CELL_CHARS = model.MAX_CELL_CHARS


def a1_tab(title: str) -> str:
    """A tab title as an A1 range prefix, always quoted (``'Bridge Log'``, ``'It''s'``)."""
    return "'" + title.replace("'", "''") + "'"


def _title_key(title: str) -> str:
    return title.strip().casefold()


def _cell(value: Any) -> CellValue:
    """A value from an UNFORMATTED_VALUE read as the planner's plain value."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return CellError(value) if value in _ERRORS else value
    if isinstance(value, bool | int | float):
        return value
    return str(value)


def _out(value: model.OutValue) -> str | int | float:
    """A value to write RAW: text stays text (a leading ``=`` too), empty clears the cell.

    A date or date-time goes as its serial day count (Google's epoch is the 1900 system's),
    which is what an UNFORMATTED read gives back, so a quiet cycle compares equal.
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value[:MAX_CELL_CHARS]
    if isinstance(value, datetime | date):
        return to_serial(value)
    return value


@dataclass
class _TabMeta:
    title: str
    sheet_id: int
    index: int
    rows: int = 1000
    cols: int = 26
    merges: tuple[CellRange, ...] = ()
    frozen_rows: int = 0
    protected: tuple[str, ...] = ()
    """Descriptions of its protected ranges (``init`` marks its own)."""
    conditional: int = 0
    validations: frozenset[int] = frozenset()


@dataclass
class _Metadata:
    title: str
    tabs: list[_TabMeta]
    fetched: float = field(default_factory=time.monotonic)

    def find(self, title: str) -> _TabMeta | None:
        key = _title_key(title)
        exact = next((t for t in self.tabs if t.title == title), None)
        return exact or next((t for t in self.tabs if _title_key(t.title) == key), None)


def _parse_metadata(data: Mapping[str, Any]) -> _Metadata:
    tabs: list[_TabMeta] = []
    for sheet in data.get("sheets") or ():
        props = sheet.get("properties") or {}
        grid = props.get("gridProperties") or {}
        merges = []
        for m in sheet.get("merges") or ():
            start, end = int(m.get("startRowIndex", 0)), int(m.get("endRowIndex", 0))
            c0, c1 = int(m.get("startColumnIndex", 0)), int(m.get("endColumnIndex", 0))
            if end > start and c1 > c0:
                merges.append(CellRange(start + 1, c0, end, c1 - 1))
        tabs.append(
            _TabMeta(
                title=str(props.get("title", "")),
                sheet_id=int(props.get("sheetId", 0)),
                index=int(props.get("index", len(tabs))),
                rows=int(grid.get("rowCount", 1000)),
                cols=int(grid.get("columnCount", 26)),
                merges=tuple(merges),
                frozen_rows=int(grid.get("frozenRowCount", 0)),
                protected=tuple(
                    str(p.get("description", "")) for p in sheet.get("protectedRanges") or ()
                ),
                conditional=len(sheet.get("conditionalFormats") or ()),
            )
        )
    title = str((data.get("properties") or {}).get("title", ""))
    return _Metadata(title=title, tabs=tabs)


#: Tab lists by (endpoint, spreadsheet): the daemon's cycles share them within one process.
_CACHE: dict[tuple[str | None, str], _Metadata] = {}
_CACHE_LOCK = threading.Lock()


class _SnapshotRows:
    """The locator's view of the Referrals tab as read (rows by their number)."""

    def __init__(self, tab: ReferralsTab, id_col: int | None, staff: Mapping[str, int]) -> None:
        self.by_number = {r.number: r for r in tab.rows}
        self.last = max(self.by_number, default=1)
        self.id_col = id_col
        self.staff = staff

    def id_at(self, number: int) -> str | None:
        if not 2 <= number <= self.last:
            return None
        row = self.by_number.get(number)
        if row is None or self.id_col is None:
            return ""
        return cell_text(row.get(self.id_col)).strip()

    def fingerprint_at(self, number: int) -> str:
        row = self.by_number.get(number)
        return row_fingerprint(row.values if row else (), self.staff)

    def numbers(self) -> Iterable[int]:
        return sorted(self.by_number)

    #: Positions are the read's own: apply places writes on the snapshot, then verifies.
    unchanged_since_read = True

    def text(self, number: int, col: int) -> str:
        row = self.by_number.get(number)
        return cell_text(row.get(col)) if row is not None else ""


def _runs(numbers: list[int]) -> list[tuple[int, int]]:
    """Consecutive runs of sorted ``numbers`` as (first, last)."""
    out: list[tuple[int, int]] = []
    for n in numbers:
        if out and n == out[-1][1] + 1:
            out[-1] = (out[-1][0], n)
        else:
            out.append((n, n))
    return out


def _blocks(cells: Mapping[tuple[int, int], str | int | float]) -> list[tuple[int, int, int, int]]:
    """Rectangles (first row, first col, last row, last col) covering exactly ``cells``:
    adjacent columns of a row join, then consecutive rows with the same span join."""
    by_row: dict[int, list[int]] = {}
    for row, col in cells:
        by_row.setdefault(row, []).append(col)
    spans: dict[tuple[int, int], list[int]] = {}
    for row, cols in by_row.items():
        for c0, c1 in _runs(sorted(cols)):
            spans.setdefault((c0, c1), []).append(row)
    out = [
        (r0, c0, r1, c1)
        for (c0, c1), rows in spans.items()
        for r0, r1 in _runs(sorted(rows))
    ]
    out.sort()
    return out


def _value_ranges(
    title: str, cells: Mapping[tuple[int, int], str | int | float]
) -> list[tuple[dict[str, Any], list[tuple[int, int]]]]:
    """``values.batchUpdate`` data for ``cells`` ((row, 0-based col) -> value), each range with
    the cells it covers."""
    out = []
    prefix = a1_tab(title)
    for r0, c0, r1, c1 in _blocks(cells):
        rng = f"{prefix}!{column_letter(c0)}{r0}:{column_letter(c1)}{r1}"
        values = [[cells[(r, c)] for c in range(c0, c1 + 1)] for r in range(r0, r1 + 1)]
        covered = [(r, c) for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)]
        out.append(({"range": rng, "majorDimension": "ROWS", "values": values}, covered))
    return out


class GoogleSheet:
    """A Google Sheet as the bridge's system of record."""

    kind: ClassVar[str] = "google"

    def __init__(
        self,
        spreadsheet_id: str,
        referrals_tab: str = model.REFERRALS_TAB,
        *,
        credentials: LoadedCredentials,
        endpoint: str | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.spreadsheet_id = spreadsheet_id
        self.referrals_tab = referrals_tab
        self.endpoint = endpoint
        self.account = credentials.account
        self.client = SheetsHTTPClient(
            credentials.credentials,
            spreadsheet=spreadsheet_id,
            endpoint=endpoint,
            policy=policy,
            account=credentials.account,
            service_account=credentials.service_account,
        )
        self._reads = 0

    @classmethod
    def from_config(cls, sheet: Any, *, policy: RetryPolicy | None = None) -> GoogleSheet:
        creds = load_credentials(
            sheet.credentials, scopes=[SHEETS_SCOPE], endpoint=sheet.endpoint,
            what="Google credentials file",
        )
        return cls(sheet.spreadsheet_id, sheet.tab, credentials=creds, endpoint=sheet.endpoint,
                   policy=policy)

    # ------------------------------------------------------------------------- the role
    def describe(self) -> str:
        return f"Google Sheet {self.spreadsheet_id}"

    def link(self) -> str | None:
        return f"https://docs.google.com/spreadsheets/d/{self.spreadsheet_id}/edit"

    def prepare(self) -> None:
        """A crash leaves nothing behind on Google: every write is one atomic request."""

    def snapshot_reusable(self, snapshot: Snapshot) -> bool:
        """Always: ``apply`` places every write by Referral ID and verifies it after writing."""
        return True

    # ------------------------------------------------------------------------- metadata
    @property
    def _cache_key(self) -> tuple[str | None, str]:
        return (self.endpoint, self.spreadsheet_id)

    def _metadata(self, *, fresh: bool = False) -> _Metadata:
        with _CACHE_LOCK:
            cached = _CACHE.get(self._cache_key)
        if cached is not None and not fresh and time.monotonic() - cached.fetched < METADATA_TTL:
            return cached
        data = self.client.fetch_sheet_metadata(
            self.spreadsheet_id,
            params={
                "includeGridData": "false",
                "fields": "properties.title,sheets(properties,merges,protectedRanges,"
                "conditionalFormats)",
            },
        )
        meta = _parse_metadata(data)
        with _CACHE_LOCK:
            _CACHE[self._cache_key] = meta
        return meta

    def forget_metadata(self) -> None:
        with _CACHE_LOCK:
            _CACHE.pop(self._cache_key, None)

    def _wanted(self, meta: _Metadata) -> list[tuple[str, _TabMeta | None]]:
        """(canonical title, tab) for Referrals and every other tab the bridge reads."""
        out: list[tuple[str, _TabMeta | None]] = [(self.referrals_tab, meta.find(self.referrals_tab))]
        for title in (*model.BRIDGE_TABS, model.GIFTS_TAB):
            if _title_key(title) != _title_key(self.referrals_tab):
                out.append((title, meta.find(title)))
        return out

    # ------------------------------------------------------------------------- reading
    def read(self) -> Snapshot:
        """One ``values.batchGet`` of every tab the bridge reads (metadata only when needed)."""
        meta = self._metadata()
        fresh_needed = any(
            tab is None for title, tab in self._wanted(meta) if title != model.GIFTS_TAB
        )
        if fresh_needed and time.monotonic() - meta.fetched > 0.5:
            meta = self._metadata(fresh=True)
        for attempt in range(2):
            present = [(title, tab) for title, tab in self._wanted(meta) if tab is not None]
            try:
                data = self.client.values_batch_get(
                    self.spreadsheet_id,
                    [a1_tab(tab.title) for _, tab in present],
                    params=dict(_READ_PARAMS),
                ) if present else {"valueRanges": []}
                break
            except GoogleError as error:
                # A tab renamed or deleted since the tab list was cached: fetch it again, once.
                if attempt or getattr(error, "status", 0) != 400:
                    raise
                meta = self._metadata(fresh=True)
        self._reads += 1
        ranges = data.get("valueRanges") or []
        referrals: ReferralsTab | None = None
        tabs: dict[str, TabValues] = {}
        for (title, tab), value_range in zip(present, ranges, strict=False):
            assert tab is not None
            rows = [[_cell(v) for v in row] for row in value_range.get("values") or ()]
            if title == self.referrals_tab:
                headers = tuple(rows[0]) if rows else ()
                body = tuple(
                    SheetRow(number, tuple(values))
                    for number, values in enumerate(rows[1:], start=2)
                    if any(v is not None for v in values)
                )
                referrals = ReferralsTab(tab.title, headers, body, merged=tab.merges)
            else:
                tabs[title] = TabValues(tab.title, tuple(tuple(r) for r in rows))
        return Snapshot(
            tab_titles=tuple(t.title for t in meta.tabs),
            referrals=referrals,
            tabs=tabs,
            version=f"google:{self._reads}",
        )

    # ------------------------------------------------------------------------- writing
    def apply(self, snapshot: Snapshot, plan: Plan, columns: dict[str, int]) -> ApplyReport:
        """Write the plan's bridge cells, headers and summary tabs; verify and repair rows."""
        report = ApplyReport()
        if not (plan.cell_writes or plan.header_writes or plan.tab_contents):
            return report
        if plan.cell_writes or plan.header_writes:
            _ReferralsWrite(self, snapshot, plan, columns, report).run()
        if plan.tab_contents:
            self._write_tabs(snapshot, plan.tab_contents, report)
        report.saved = bool(report.applied or report.headers_added or report.tabs_written)
        return report

    def write_values(
        self, data: list[tuple[dict[str, Any], list[tuple[int, int]]]]
    ) -> list[tuple[list[tuple[int, int]], str]]:
        """One RAW ``values.batchUpdate`` of ``data``; the cells of ranges Google refused.

        One bad range makes Google reject the whole batch (F12): on a 400 the batch is split in
        halves until the bad range is alone, and the rest is written.
        """
        if not data:
            return []
        try:
            self.client.values_batch_update(
                self.spreadsheet_id,
                {"valueInputOption": "RAW", "data": [d for d, _ in data]},
            )
            return []
        except GoogleError as error:
            if getattr(error, "status", 0) != 400:
                raise
            if len(data) == 1:
                return [(data[0][1], "Google Sheets refused the range (HTTP 400)")]
        mid = len(data) // 2
        return self.write_values(data[:mid]) + self.write_values(data[mid:])

    def _write_tabs(
        self, snapshot: Snapshot, contents: Sequence[TabContent], report: ApplyReport
    ) -> None:
        meta = self._metadata()
        missing = [
            c for c in contents
            if meta.find(c.title) is None and _title_key(c.title) != _title_key(self.referrals_tab)
        ]
        if missing:
            meta = self._add_tabs(meta, missing, snapshot)
        titles: list[str] = []
        needs: dict[str, tuple[int, int]] = {}
        updates: list[dict[str, Any]] = []
        for content in contents:
            if _title_key(content.title) == _title_key(self.referrals_tab):
                log.error("refusing to overwrite the Referrals tab with a summary tab")
                continue
            tab = meta.find(content.title)
            if tab is None:
                continue
            old = snapshot.tabs.get(content.title)
            old_rows = len(old.rows) if old is not None else 0
            old_cols = max((len(r) for r in old.rows), default=0) if old is not None else 0
            height = max(len(content.rows), old_rows, 1)
            width = max(max((len(r) for r in content.rows), default=0), old_cols, 1)
            needs[tab.title] = (height, width)
            updates.append(tab_update_cells(content, tab.sheet_id, height, width))
            titles.append(content.title)
        if not updates:
            return
        grow = self._grow_requests(needs)
        try:
            self.client.batch_update(
                self.spreadsheet_id, {"requests": [r for r, _ in grow] + updates}
            )
        except GoogleError as error:
            if getattr(error, "status", 0) != 400:
                raise
            log.warning("Google Sheets refused the summary tab writes (HTTP 400)")
            self.forget_metadata()
            return
        self._grown(grow)
        report.tabs_written.extend(titles)

    def _grow_requests(
        self, needs: Mapping[str, tuple[int, int]]
    ) -> list[tuple[dict[str, Any], tuple[_TabMeta, int, int]]]:
        """``appendDimension`` requests that make each tab at least (rows, cols) big (Google
        refuses a write past a tab's grid), each with the tab and the size it grows to."""
        meta = self._metadata()
        out: list[tuple[dict[str, Any], tuple[_TabMeta, int, int]]] = []
        for title, (rows, cols) in needs.items():
            tab = meta.find(title)
            if tab is None or (rows <= tab.rows and cols <= tab.cols):
                continue
            size = (tab, max(rows, tab.rows), max(cols, tab.cols))
            for dimension, have, need in (("ROWS", tab.rows, rows), ("COLUMNS", tab.cols, cols)):
                if need > have:
                    out.append(({"appendDimension": {
                        "sheetId": tab.sheet_id, "dimension": dimension, "length": need - have,
                    }}, size))
        return out

    @staticmethod
    def _grown(grow: Sequence[tuple[dict[str, Any], tuple[_TabMeta, int, int]]]) -> None:
        with _CACHE_LOCK:
            for _, (tab, rows, cols) in grow:
                tab.rows, tab.cols = rows, cols

    def grow(self, needs: Mapping[str, tuple[int, int]]) -> None:
        """Make each tab at least (rows, cols) big before writing (Google refuses a write past
        a tab's grid): one ``spreadsheets.batchUpdate``, only when a tab must grow."""
        grow = self._grow_requests(needs)
        if not grow:
            return
        self.client.batch_update(self.spreadsheet_id, {"requests": [r for r, _ in grow]})
        self._grown(grow)

    def _add_tabs(self, meta: _Metadata, contents: Sequence[TabContent], snapshot: Snapshot
                  ) -> _Metadata:
        """One ``spreadsheets.batchUpdate``: each missing tab, its frozen rows, bold headings
        and a warning-only protection (edits there are overwritten)."""
        requests: list[dict[str, Any]] = []
        taken = {t.sheet_id for t in meta.tabs}
        for offset, content in enumerate(contents):
            sheet_id = random.randint(1, 2**31 - 1)
            while sheet_id in taken:
                sheet_id = random.randint(1, 2**31 - 1)
            taken.add(sheet_id)
            requests.extend(new_tab_requests(
                content.title, sheet_id, len(meta.tabs) + offset,
                freeze_rows=content.freeze_rows, bold_rows=sorted(content.heading_rows)[:1],
                widths=content.widths,
                rows=max(1000, len(content.rows) + 1),
                cols=max(26, max((len(r) for r in content.rows), default=0)),
            ))
        try:
            answer = self.client.batch_update(self.spreadsheet_id, {"requests": requests})
        except GoogleError as error:
            if getattr(error, "status", 0) != 400:
                raise
            # A tab added meanwhile (or by a request whose answer was lost): look again.
            log.info("adding tabs was refused; reading the tab list again")
            return self._metadata(fresh=True)
        added = [
            reply["addSheet"]["properties"]
            for reply in answer.get("replies") or ()
            if isinstance(reply, dict) and "addSheet" in reply
        ]
        if len(added) != len(contents):
            return self._metadata(fresh=True)
        tabs = list(meta.tabs)
        for props in added:
            grid = props.get("gridProperties") or {}
            tabs.append(_TabMeta(
                title=str(props.get("title", "")), sheet_id=int(props.get("sheetId", 0)),
                index=int(props.get("index", len(tabs))), rows=int(grid.get("rowCount", 1000)),
                cols=int(grid.get("columnCount", 26)),
                frozen_rows=int(grid.get("frozenRowCount", 0)),
            ))
        updated = _Metadata(title=meta.title, tabs=tabs, fetched=meta.fetched)
        with _CACHE_LOCK:
            _CACHE[self._cache_key] = updated
        return updated

    # ------------------------------------------------------------------------- init
    def setup(self, aliases: Mapping[str, Sequence[str]]) -> SetupReport:
        """``init``: missing tabs and headers, frozen header row, dropdowns, warning-only
        protection of the bridge columns and tabs, OVERDUE highlighting: one batchUpdate."""
        from sheets_bridge.sheets.google_setup import setup_google

        return setup_google(self, aliases)


def new_tab_requests(
    title: str,
    sheet_id: int,
    index: int,
    *,
    freeze_rows: int = 1,
    bold_rows: Sequence[int] = (0,),
    widths: Sequence[int] = (),
    protect: bool = True,
    rows: int = 1000,
    cols: int = 26,
) -> list[dict[str, Any]]:
    """The ``spreadsheets.batchUpdate`` requests that make a bridge tab in one go."""
    out: list[dict[str, Any]] = [
        {
            "addSheet": {
                "properties": {
                    "sheetId": sheet_id,
                    "title": title,
                    "index": index,
                    "gridProperties": {"frozenRowCount": freeze_rows, "rowCount": rows,
                                       "columnCount": cols},
                }
            }
        }
    ]
    for row in bold_rows:
        out.append(
            {
                "repeatCell": {
                    "range": {"sheetId": sheet_id, "startRowIndex": row, "endRowIndex": row + 1},
                    "cell": {"userEnteredFormat": {"textFormat": {"bold": True}}},
                    "fields": "userEnteredFormat.textFormat.bold",
                }
            }
        )
    for col, width in enumerate(widths):
        out.append(
            {
                "updateDimensionProperties": {
                    "range": {"sheetId": sheet_id, "dimension": "COLUMNS", "startIndex": col,
                              "endIndex": col + 1},
                    "properties": {"pixelSize": max(40, int(width * 7))},
                    "fields": "pixelSize",
                }
            }
        )
    if protect:
        out.append(
            {
                "addProtectedRange": {
                    "protectedRange": {
                        "range": {"sheetId": sheet_id},
                        "description": f"sheets-bridge: {title} is rewritten on every sync",
                        "warningOnly": True,
                    }
                }
            }
        )
    return out


#: Google number formats of the bridge's typed values, the same codes the workbook uses.
_NUMBER_FORMATS: tuple[tuple[type, dict[str, str]], ...] = (
    (model.Share, {"type": "PERCENT", "pattern": "0%"}),
    (model.OutOf, {"type": "NUMBER", "pattern": '"of "0'}),
    (model.Hours, {"type": "NUMBER", "pattern": "0.0"}),
    (datetime, {"type": "DATE_TIME", "pattern": "yyyy-mm-dd hh:mm"}),
    (date, {"type": "DATE", "pattern": "yyyy-mm-dd"}),
)


def cell_data(value: model.OutValue, *, bold: bool = False, right: bool = False,
              wrap: bool = False) -> dict[str, Any]:
    """One ``CellData`` of a summary tab: its value (text as ``stringValue``, so a leading ``=``
    stays text) and its look (number format, bold, alignment, wrapping), as the workbook draws
    it. An empty value is ``{}``: with the fields mask it clears the cell's value and format
    (an empty cell keeps no look, so the next rewrite, which clears only as far as the values
    it read reach, leaves no stray format behind)."""
    out: dict[str, Any] = {}
    if value is None or value == "":
        return out
    if isinstance(value, str):
        out["userEnteredValue"] = {"stringValue": value[:MAX_CELL_CHARS]}
    elif isinstance(value, bool):
        out["userEnteredValue"] = {"boolValue": value}
    else:
        out["userEnteredValue"] = {"numberValue": _out(value)}
    look: dict[str, Any] = {}
    if value is not None and not isinstance(value, str):
        for kind, number_format in _NUMBER_FORMATS:
            if isinstance(value, kind):
                look["numberFormat"] = dict(number_format)
                break
    if bold:
        look["textFormat"] = {"bold": True}
    if right:
        look["horizontalAlignment"] = "RIGHT"
    if wrap:
        look["wrapStrategy"] = "WRAP"
    if look:
        out["userEnteredFormat"] = look
    return out


def tab_update_cells(content: TabContent, sheet_id: int, height: int, width: int
                     ) -> dict[str, Any]:
    """One ``updateCells`` request that rewrites a summary tab's first ``height`` x ``width``
    cells (values and looks); cells past the new content are cleared, value and format."""
    bold_rows = content.heading_rows
    rows = []
    for r in range(height):
        row = content.rows[r] if r < len(content.rows) else ()
        heading = r in bold_rows
        rows.append({"values": [
            cell_data(
                row[c] if c < len(row) else None,
                bold=heading or (r, c) in content.heading_cells,
                right=(r, c) in content.right_cells,
                wrap=c in content.wrap_cols,
            )
            for c in range(width)
        ]})
    return {"updateCells": {
        "range": {"sheetId": sheet_id, "startRowIndex": 0, "endRowIndex": height,
                  "startColumnIndex": 0, "endColumnIndex": width},
        "rows": rows,
        "fields": "userEnteredValue,userEnteredFormat",
    }}


class _ReferralsWrite:
    """One apply's Referrals writes: place, write, read back, repair (R3)."""

    def __init__(self, sheet: GoogleSheet, snapshot: Snapshot, plan: Plan,
                 columns: Mapping[str, int], report: ApplyReport) -> None:
        self.sheet = sheet
        self.snapshot = snapshot
        self.plan = plan
        self.columns = columns
        self.report = report

    def run(self) -> None:
        tab = self.snapshot.referrals
        plan, report, columns = self.plan, self.report, self.columns
        if tab is None:
            report.skipped.extend((w, "the Referrals tab is missing") for w in plan.cell_writes)
            return
        self.tab = tab
        cells: dict[tuple[int, int], str | int | float] = {}
        headers_planned = []
        for hw in plan.header_writes:
            current = cell_text(tab.headers[hw.col]) if hw.col < len(tab.headers) else ""
            if current.strip() == hw.header.strip() and current:
                report.headers_added.append(hw)  # already there (a retry)
                continue
            if current or any(m.contains(1, hw.col) for m in tab.merged):
                log.warning("row 1 column %s is not free; header %r not added", hw.col, hw.header)
                continue
            cells[(1, hw.col)] = hw.header
            headers_planned.append(hw)

        bridge = frozenset(model.BRIDGE_COLUMNS)
        rows = _SnapshotRows(tab, columns.get("Referral ID"), plan.staff_columns)

        def refuse(number: int, col: int) -> str | None:
            if any(m.contains(number, col) for m in tab.merged):
                return "merged"
            return None

        writes = [w for w in plan.cell_writes if w.column in bridge]
        report.skipped.extend(
            (w, f"{w.column} is not a bridge column") for w in plan.cell_writes
            if w.column not in bridge
        )
        placement = place_writes(writes, rows, columns, rows.text, refuse=refuse)
        report.skipped.extend(placement.skipped)
        self.placed: dict[int, list[CellWrite]] = placement.rows()
        for write, number in placement.writes:
            cells[(number, columns[write.column])] = _out(write.new)
        if not cells:
            return
        self.sheet.grow({tab.title: (
            max(r for r, _ in cells), max(c for _, c in cells) + 1
        )})
        refused = self.sheet.write_values(_value_ranges(tab.title, cells))
        refused_cells = {cell for covered, _ in refused for cell in covered}
        if (1, 0) in refused_cells or any((1, hw.col) in refused_cells for hw in headers_planned):
            headers_planned = [hw for hw in headers_planned if (1, hw.col) not in refused_cells]
        report.headers_added.extend(headers_planned)
        failed: dict[int, str] = {}
        for covered, reason in refused:
            for number, _ in covered:
                failed.setdefault(number, reason)
        for number in list(self.placed):
            if number in failed:
                report.skipped.extend((w, failed[number]) for w in self.placed.pop(number))
        if self.placed:
            self._verify_and_repair()

    # ---------------------------------------------------------------- read back and repair
    def _read_back(self) -> tuple[dict[int, str], dict[int, str]]:
        """The Referral ID and the identity (names and Received) of every row, now."""
        cols = {"Referral ID": self.columns.get("Referral ID")}
        for name in _IDENTITY:
            cols[name] = self.plan.staff_columns.get(name)
        present = [(name, col) for name, col in cols.items() if col is not None]
        prefix = a1_tab(self.tab.title)
        data = self.sheet.client.values_batch_get(
            self.sheet.spreadsheet_id,
            [f"{prefix}!{column_letter(col)}2:{column_letter(col)}" for _, col in present],
            params=dict(_READ_PARAMS),
        )
        columns: dict[str, list[Any]] = {}
        for (name, _), value_range in zip(present, data.get("valueRanges") or (), strict=False):
            columns[name] = [row[0] if row else None for row in value_range.get("values") or ()]
        height = max((len(v) for v in columns.values()), default=0)

        def at(name: str, i: int) -> CellValue:
            values = columns.get(name)
            return _cell(values[i]) if values is not None and i < len(values) else None

        ids = {i + 2: cell_text(at("Referral ID", i)).strip() for i in range(height)}
        idents = {
            i + 2: identity_from_cells(*(at(name, i) for name in _IDENTITY)) for i in range(height)
        }
        return ids, idents

    def _verify_and_repair(self) -> None:
        tab, plan, columns, report = self.tab, self.plan, self.columns, self.report
        by_number = {r.number: r for r in tab.rows}
        staff = plan.staff_columns
        id_col = columns.get("Referral ID")
        new_ids = {w.new.strip() for w in plan.cell_writes if w.column == "Referral ID"}
        snap_ids: dict[str, list[int]] = {}
        snap_new: dict[str, list[int]] = {}
        gets_id = {w.row.number for w in plan.cell_writes if w.column == "Referral ID"}

        def identity(row: SheetRow) -> str:
            return identity_from_cells(*(row.get(staff.get(name)) for name in _IDENTITY))

        snap_all: dict[str, list[int]] = {}
        new_id_of = {
            w.row.number: w.new.strip() for w in plan.cell_writes if w.column == "Referral ID"
        }
        for row in tab.rows:
            rid = cell_text(row.get(id_col)).strip() if id_col is not None else ""
            if rid:
                snap_ids.setdefault(rid, []).append(row.number)
            snap_all.setdefault(identity(row), []).append(row.number)
            if not rid or row.number in gets_id:
                snap_new.setdefault(identity(row), []).append(row.number)
        # Values each read row should hold in the columns written: planned, else as read.
        planned: dict[int, dict[int, str | int | float]] = {}
        for number, writes in self.placed.items():
            for w in writes:
                planned.setdefault(number, {})[columns[w.column]] = _out(w.new)

        def desired(row: int | None, col: int) -> str | int | float:
            if row is None:
                return ""  # a row the read never saw (added since): its bridge cells were empty
            if col in planned.get(row, {}):
                return planned[row][col]
            read = by_number.get(row)
            return cell_text(read.get(col)) if read is not None else ""

        # position now -> the read's row number that should be there
        intended: dict[int, int | None] = {n: n for n in self.placed}
        written_cols: dict[int, set[int]] = {n: set(planned[n]) for n in self.placed}
        lost: set[int] = set()
        moved_to: dict[int, int] = {}
        for round_no in range(REPAIR_ROUNDS + 1):
            ids, idents = self._read_back()

            def identify(n: int, hint: int | None = None, ids: dict[int, str] = ids,
                         idents: dict[int, str] = idents) -> int | None:
                """The read's row number of the row at ``n`` now (None: unknown or unsure).

                An ID the plan did not give is the row's; a copy's shared ID belongs to the
                original (the copy gets a new one). A row given its ID just now is known by who
                it is (names and Received), two such alike by the new ID each got. ``hint`` (the
                row meant to be at ``n``) settles a tie between rows that look the same.
                """
                if n not in ids:
                    return None
                rid = ids[n]
                if rid and rid not in new_ids:
                    found = snap_ids.get(rid, [])
                    found = [m for m in found if m not in gets_id] or found
                    if len(found) > 1:
                        found = [m for m in found if identity(by_number[m]) == idents.get(n)]
                else:
                    found = snap_new.get(idents.get(n, ""), [])
                    if len(found) > 1 and rid:
                        found = [m for m in found if new_id_of.get(m) == rid] or found
                    if not found:
                        found = snap_all.get(idents.get(n, ""), [])
                if len(found) == 1:
                    return found[0]
                return hint if hint in found else None

            wrong = {n: r for n, r in intended.items() if identify(n, r) != r}
            if not wrong:
                break
            if round_no == REPAIR_ROUNDS:
                # Still moving after every round: what cannot be vouched for waits a cycle.
                lost.update(r for r in wrong.values() if r is not None)
                break
            where: dict[int, list[int]] = {}
            for n in ids:
                r = identify(n)
                if r is not None:
                    where.setdefault(r, []).append(n)
            fixes: dict[tuple[int, int], str | int | float] = {}
            for n, r in wrong.items():
                now = identify(n)
                for col in written_cols.get(n, ()):
                    fixes[(n, col)] = desired(now, col)
                intended[n] = now
                if r is None or r in lost:
                    continue
                found = where.get(r, [])
                if len(found) != 1:
                    lost.add(r)
                    continue
                m = found[0]
                for col in planned.get(r, {}):
                    fixes[(m, col)] = desired(r, col)
                written_cols.setdefault(m, set()).update(planned.get(r, {}))
                intended[m] = r
                moved_to[r] = m
            log.info("%d rows moved while the bridge wrote; putting %d cells right",
                     len(wrong), len(fixes))
            self.sheet.write_values(_value_ranges(tab.title, fixes))
        for number, writes in self.placed.items():
            if number in lost:
                report.skipped.extend(
                    (w, "the row moved while the bridge wrote and was not found again")
                    for w in writes
                )
                continue
            report.applied.extend(writes)
            if number in moved_to:
                who = writes[0].row.target_id or writes[0].row.referral_id or "a new row"
                report.repaired.extend(
                    (w, (f"{who} moved from row {number} to row {moved_to[number]} while "
                        f"the bridge wrote; put right"))
                    for w in writes
                )


def open_google_sheet(config: Any, *, policy: RetryPolicy | None = None) -> GoogleSheet:
    """The GoogleSheet the config's ``sheet`` section names."""
    try:
        return GoogleSheet.from_config(config.sheet, policy=policy)
    except ImportError as error:  # pragma: no cover - the Google extras are dependencies
        raise BackendError(
            "The Google libraries are not installed: pip install sheets-bridge", backend="google"
        ) from error
