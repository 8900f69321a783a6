"""``sheets-bridge init`` on a Google Sheet: what it lacks in one spreadsheets.batchUpdate (then the
header text, as RAW values, in one values.batchUpdate).

Missing tabs (Referrals, the bridge tabs, Gifts) and missing headers are added; the header row is
frozen; the staff columns with fixed choices get dropdowns (data validation: strict ones warn,
How Heard also takes free text, as on the workbook); the bridge columns and the bridge tabs are
protected with a warning only (staff may still edit, but are told the bridge rewrites them); and
OVERDUE rows are highlighted by a conditional format on the Stage column. Nothing a practice
typed is changed, and a second ``init`` adds nothing twice.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sheets_bridge import model
from sheets_bridge.columns import canonical_name, column_letter
from sheets_bridge.sheets import SetupReport
from sheets_bridge.sheets.xlsx_setup import DROPDOWNS, GIFTS_HEADERS
from sheets_bridge.values import cell_text

if TYPE_CHECKING:
    from sheets_bridge.sheets.google import GoogleSheet

PROTECT_BRIDGE_COLUMNS = "sheets-bridge: bridge column"
OVERDUE_FILL = {"red": 0.98, "green": 0.80, "blue": 0.80}


def _grid(sheet_id: int, *, row0: int | None = None, row1: int | None = None,
          col0: int | None = None, col1: int | None = None) -> dict[str, int]:
    out = {"sheetId": sheet_id}
    for key, value in (("startRowIndex", row0), ("endRowIndex", row1),
                       ("startColumnIndex", col0), ("endColumnIndex", col1)):
        if value is not None:
            out[key] = value
    return out


def _bold(sheet_id: int, row: int, col: int, count: int) -> dict[str, Any]:
    return {
        "repeatCell": {
            "range": _grid(sheet_id, row0=row, row1=row + 1, col0=col, col1=col + count),
            "cell": {"userEnteredFormat": {"textFormat": {"bold": True}}},
            "fields": "userEnteredFormat.textFormat.bold",
        }
    }


def setup_google(sheet: GoogleSheet, aliases: Mapping[str, Sequence[str]]) -> SetupReport:
    from sheets_bridge.sheets.google import a1_tab, new_tab_requests

    meta = sheet._metadata(fresh=True)
    requests: list[dict[str, Any]] = []
    headers_to_write: list[tuple[str, int, Sequence[str]]] = []  # (tab, first col, names)
    lines: list[str] = []
    taken = {t.sheet_id for t in meta.tabs}

    def new_id() -> int:
        value = random.randint(1, 2**31 - 1)
        while value in taken:
            value = random.randint(1, 2**31 - 1)
        taken.add(value)
        return value

    tab = meta.find(sheet.referrals_tab)
    headers: list[str] = []
    if tab is None:
        sheet_id = new_id()
        title = sheet.referrals_tab
        requests.append({"addSheet": {"properties": {
            "sheetId": sheet_id, "title": title, "index": 0,
            "gridProperties": {"frozenRowCount": 1, "rowCount": 1000,
                               "columnCount": max(26, len(model.STAFF_COLUMNS)
                                                  + len(model.BRIDGE_COLUMNS))},
        }}})
        lines.append(f"Added the {title} tab")
        frozen, first_init, has_rule, width_now = True, True, False, 0
        grid_cols = 26
    else:
        sheet_id, title = tab.sheet_id, tab.title
        data = sheet.client.values_get(
            sheet.spreadsheet_id, f"{a1_tab(title)}!1:1",
            params={"valueRenderOption": "UNFORMATTED_VALUE"},
        )
        row = (data.get("values") or [[]])[0]
        headers = [cell_text(v) for v in row]
        frozen = tab.frozen_rows >= 1
        first_init = not any(d.startswith(PROTECT_BRIDGE_COLUMNS) for d in tab.protected)
        has_rule = not first_init
        width_now = len(headers)
        grid_cols = tab.cols

    present = {canonical_name(h, aliases): i for i, h in enumerate(headers) if h.strip()}
    missing = [n for n in (*model.STAFF_COLUMNS, *model.BRIDGE_COLUMNS) if n not in present]
    positions = dict(present)
    if missing:
        start = width_now
        if start + len(missing) > grid_cols:
            requests.append({"appendDimension": {
                "sheetId": sheet_id, "dimension": "COLUMNS",
                "length": start + len(missing) - grid_cols,
            }})
        requests.append(_bold(sheet_id, 0, start, len(missing)))
        headers_to_write.append((title, start, missing))
        for offset, name in enumerate(missing):
            positions[name] = start + offset
            kind = "bridge" if name in model.BRIDGE_COLUMNS else "staff"
            lines.append(f"Added the {name} column ({kind})")
    if not frozen:
        requests.append({"updateSheetProperties": {
            "properties": {"sheetId": sheet_id, "gridProperties": {"frozenRowCount": 1}},
            "fields": "gridProperties.frozenRowCount",
        }})
        lines.append("Froze the header row")
    dropdowns = [n for n in DROPDOWNS if n in positions and (first_init or n in missing)]
    for name in dropdowns:
        values, strict = DROPDOWNS[name]
        col = positions[name]
        requests.append({"setDataValidation": {
            "range": _grid(sheet_id, row0=1, col0=col, col1=col + 1),
            "rule": {
                "condition": {"type": "ONE_OF_LIST",
                              "values": [{"userEnteredValue": v} for v in values]},
                "strict": False,  # a flagged entry beats a blocked one at the front desk
                "showCustomUi": True,
                "inputMessage": (f"Pick one of the list{'' if strict else ', or type freely'}"),
            },
        }})
    if dropdowns:
        lines.append("Added dropdowns to " + ", ".join(dropdowns))
    protect = [n for n in model.BRIDGE_COLUMNS
               if n in positions and (first_init or n in missing)]
    for name in protect:
        col = positions[name]
        requests.append({"addProtectedRange": {"protectedRange": {
            "range": _grid(sheet_id, col0=col, col1=col + 1),
            "description": f"{PROTECT_BRIDGE_COLUMNS} {name}: the bridge fills it on every sync",
            "warningOnly": True,
        }}})
    if protect:
        lines.append("Protected the bridge columns with a warning (staff are told the bridge "
                     "fills them; they can still edit)")
    stage = positions.get("Stage")
    if stage is not None and not has_rule:
        letter = column_letter(stage)
        requests.append({"addConditionalFormatRule": {"index": 0, "rule": {
            "ranges": [_grid(sheet_id, row0=1)],
            "booleanRule": {
                "condition": {"type": "CUSTOM_FORMULA",
                              "values": [{"userEnteredValue": f'=${letter}2="OVERDUE"'}]},
                "format": {"backgroundColor": OVERDUE_FILL},
            },
        }}})
        lines.append("Highlighted OVERDUE rows")
    index = len(meta.tabs) + (1 if tab is None else 0)
    for name in model.BRIDGE_TABS:
        if meta.find(name) is None:
            requests.extend(new_tab_requests(name, new_id(), index, bold_rows=()))
            index += 1
            lines.append(f"Added the {name} tab")
    if meta.find(model.GIFTS_TAB) is None:
        gifts_id = new_id()
        requests.extend(new_tab_requests(model.GIFTS_TAB, gifts_id, index, bold_rows=(),
                                         protect=False))
        requests.append(_bold(gifts_id, 0, 0, len(GIFTS_HEADERS)))
        headers_to_write.append((model.GIFTS_TAB, 0, GIFTS_HEADERS))
        lines.append(f"Added the {model.GIFTS_TAB} tab for logging thank-you gifts")
    if not requests:
        return SetupReport(created=False, lines=["Nothing to repair"])
    sheet.client.batch_update(sheet.spreadsheet_id, {"requests": requests})
    if headers_to_write:
        # Header text is written as values, RAW, like every cell the bridge writes.
        sheet.client.values_batch_update(sheet.spreadsheet_id, {
            "valueInputOption": "RAW",
            "data": [
                {"range": f"{a1_tab(tab_title)}!{column_letter(col)}1:"
                          f"{column_letter(col + len(names) - 1)}1",
                 "majorDimension": "ROWS", "values": [list(names)]}
                for tab_title, col, names in headers_to_write
            ],
        })
    sheet.forget_metadata()
    return SetupReport(created=tab is None, lines=lines)
