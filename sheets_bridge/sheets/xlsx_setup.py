"""What ``sheets-bridge init`` does for the local backend: create or repair the ``.xlsx`` workbook.

Two entry points, both returning plain-language lines for the CLI to print:

``create_workbook``
    A fresh workbook laid out the way PRODUCT.md describes: the Referrals tab first with every
    staff and bridge header, dropdowns that *help* staff without blocking them (How Heard accepts
    free text silently because the bridge maps it by keywords; the other lists only warn), date
    formats, a frozen header row, the bridge's summary tabs and a Gifts tab.

``repair_workbook``
    Brings an existing workbook up to that layout by *adding* what is missing and never changing
    a staff value. Saving goes through openpyxl, which silently drops charts, images, pivot tables
    and similar content, so repair first asks ``lossy_content`` and refuses (``LossySaveError``)
    unless the config allows a lossy save. A workbook that needs nothing is not rewritten at all.

Both save atomically (temporary file in the same folder, fsync, ``os.replace``) so a crash or a
full disk never leaves staff with half a workbook.

Why one module of this size: creating and repairing a workbook share the layout tables (headers,
dropdowns, formats, tabs), and the lossy-content survey is what repair asks before re-saving.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from openpyxl import Workbook, load_workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.utils.exceptions import InvalidFileException
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet

from sheets_bridge import model
from sheets_bridge.errors import (
    BridgeError,
    ConfigError,
    LossySaveError,
    WorkbookUnreadableError,
)
from sheets_bridge.sheets import SetupReport
from sheets_bridge.sheets import ooxml as ox
from sheets_bridge.sheets.xlsx_file import refuse_if_open, replace_file
from sheets_bridge.sheets.xlsx_package import Package, title_key

HeaderMatcher = Callable[[str, str], bool]
"""``header_matches(existing_header_text, canonical_name)``: True when the header is that column."""

#: Dropdowns cover the whole column below the header, so rows staff add later get them too.
LAST_ROW = 1_048_576

DATE_FORMAT = "yyyy-mm-dd hh:mm"
GIFT_DATE_FORMAT = "yyyy-mm-dd"
MONEY_FORMAT = '"$"#,##0.00'

#: Staff header fill (light blue) and bridge header fill (grey): staff see at a glance which
#: columns are theirs and which the bridge owns and rewrites.
STAFF_HEADER_FILL = "DDEBF7"
BRIDGE_HEADER_FILL = "D9D9D9"

DATE_COLUMNS: tuple[str, ...] = ("Received", "First Contact", "Appointment")
BRIDGE_DATE_COLUMNS: tuple[str, ...] = model.BRIDGE_MOMENT_COLUMNS
WRAP_COLUMNS: tuple[str, ...] = ("Attention", "Emails", "Notes")

#: Column -> (accepted values, strict). Not strict means any text is accepted without a message
#: (How Heard: the bridge maps free text by keywords); strict ones still accept other text but
#: show a warning, because a blocked entry at the front desk is worse than a flagged one.
DROPDOWNS: dict[str, tuple[tuple[str, ...], bool]] = {
    "How Heard": (model.CHANNELS, False),
    "Fit": (model.FIT_VALUES, True),
    "Visit": (model.VISIT_VALUES, True),
    "Outcome": (model.OUTCOME_VALUES, True),
    "Consent to Update Referrer": (model.CONSENT_VALUES, True),
}

COLUMN_WIDTHS: dict[str, int] = {
    "Received": 18,
    "Patient First Name": 16,
    "Patient Last Name": 16,
    "Patient Phone": 16,
    "Patient Email": 26,
    "How Heard": 14,
    "Referred By": 20,
    "Referrer Email": 26,
    "Referrer Practice": 24,
    "Reason": 30,
    "Fit": 11,
    "First Contact": 18,
    "Appointment": 18,
    "Visit": 12,
    "Outcome": 14,
    "Consent to Update Referrer": 14,
    "Notes": 30,
    **model.BRIDGE_COLUMN_WIDTHS,
}

GIFTS_HEADERS: tuple[str, ...] = ("Date", "Recipient", "Recipient Type", "Item", "Retail Value")
GIFT_RECIPIENT_TYPES: tuple[str, ...] = ("Patient", "Provider")
GIFTS_WIDTHS: tuple[int, ...] = (12, 24, 15, 28, 13)

BRIDGE_TAB_NOTE = (
    "The bridge fills this tab on every sync and rewrites it whole: edits here are overwritten."
)


class WorkbookSetupError(BridgeError):
    """``init`` cannot create or repair the workbook as asked; the message says what to do."""


class WorkbookExistsError(WorkbookSetupError):
    """``create_workbook`` was pointed at a file that already exists: repair it instead."""


class WorkbookMissingError(WorkbookSetupError):
    """``repair_workbook`` was pointed at a file that does not exist: create it instead."""


# --------------------------------------------------------------------------------------- create


def create_workbook(path: Path, *, tab: str = model.REFERRALS_TAB) -> list[str]:
    """Create a new referral workbook at ``path``; return what was done, one line each.

    Refuses an existing file (``WorkbookExistsError``): overwriting a practice's workbook would
    lose its referrals, so the caller uses ``repair_workbook`` for existing files.
    """
    path = Path(path)
    _check_tab_title(tab)
    if path.exists():
        raise WorkbookExistsError(
            f"{path} already exists, so it was left untouched. To add what the bridge needs to "
            "an existing workbook, run `sheets-bridge init` again with repair (it only adds "
            "missing columns, dropdowns and tabs); to start fresh, choose another file name."
        )
    if not path.parent.is_dir():
        raise WorkbookSetupError(
            f"The folder {path.parent} does not exist: create it first, or set sheet.path in "
            "the config to a file in an existing folder."
        )

    wb = Workbook()
    ws = wb.active
    assert ws is not None  # a new Workbook always has one sheet
    ws.title = tab
    headers = (*model.STAFF_COLUMNS, *model.BRIDGE_COLUMNS)
    for col, name in enumerate(headers, start=1):
        _write_header(ws, col, name)
    for name, (values, strict) in DROPDOWNS.items():
        _add_list_validation(ws, headers.index(name) + 1, name, values, strict=strict)
    ws.freeze_panes = "A2"
    ws.row_dimensions[1].height = 30  # two lines: long headers wrap (spreadsheets do not grow it)
    for title in model.BRIDGE_TABS:
        _add_bridge_tab(wb, title)
    _add_gifts_tab(wb)

    if path.exists():  # someone created it while we were building ours
        raise WorkbookExistsError(
            f"{path} appeared while the workbook was being built, so it was left untouched: "
            "run `sheets-bridge init` again to repair it instead."
        )
    save_workbook_atomically(wb, path)
    return [
        f"Created {path}",
        (
            f"Added the {tab} tab with {len(model.STAFF_COLUMNS)} staff columns and "
            f"{len(model.BRIDGE_COLUMNS)} bridge columns (grey headers: the bridge fills those)"
        ),
        (
            "Added dropdowns to " + _join(DROPDOWNS) + " (How Heard also accepts free text; "
            "the others warn about values not on the list)"
        ),
        "Formatted " + _join(DATE_COLUMNS) + " as dates and froze the header row",
        "Added the " + _join(model.BRIDGE_TABS) + " tabs (the bridge fills them on each sync)",
        f"Added the {model.GIFTS_TAB} tab for logging thank-you gifts",
    ]


# --------------------------------------------------------------------------------------- repair


def repair_workbook(
    path: Path,
    *,
    tab: str = model.REFERRALS_TAB,
    allow_lossy_save: bool = False,
    header_matches: HeaderMatcher | None = None,
) -> list[str]:
    """Add whatever the bridge needs that ``path`` lacks; never change a staff value.

    Returns one line per addition, or ``["Nothing to repair"]`` (and then the file is not
    rewritten, so its bytes and modification time stay as they were). Raises ``LossySaveError``
    before touching anything when a re-save through openpyxl would drop content, unless
    ``allow_lossy_save``.
    """
    path = Path(path)
    _check_tab_title(tab)
    matches = header_matches or default_header_matches
    if not path.exists():
        raise WorkbookMissingError(
            f"There is no workbook at {path}: run `sheets-bridge init` without repair to create "
            "one, or correct sheet.path in the config."
        )
    _refuse_if_open(path)

    lossy = lossy_content(path)
    if lossy and not allow_lossy_save:
        raise LossySaveError(
            f"{path} contains content that saving through openpyxl would drop: "
            + "; ".join(lossy)
            + ". Nothing was changed. Make a copy of the workbook first, then set "
            "`sheet.allow_lossy_save: true` in the config to let init re-save it, or add the "
            "missing columns and tabs by hand."
        )

    try:
        wb = load_workbook(path)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise WorkbookUnreadableError(
            f"{path} could not be opened as an .xlsx workbook ({type(exc).__name__}). If it is "
            "an .xls or .ods file, save it as .xlsx in Excel or LibreOffice and point "
            "sheet.path at the copy."
        ) from exc

    lines: list[str] = []
    if tab in wb.sheetnames:
        ws = wb[tab]
    else:
        ws = wb.create_sheet(tab, 0)
        lines.append(
            f"Added the {tab} tab (no tab of that name was found; if staff renamed it, set "
            "sheet.tab in the config to its name instead and delete the new tab)"
        )

    lines.extend(_add_missing_headers(ws, matches))
    lines.extend(_add_missing_dropdowns(ws, matches))
    if ws.freeze_panes is None:
        ws.freeze_panes = "A2"
        lines.append("Froze the header row")
    for title in model.BRIDGE_TABS:
        if title not in wb.sheetnames:
            _add_bridge_tab(wb, title)
            lines.append(f"Added the {title} tab")
    if model.GIFTS_TAB not in wb.sheetnames:
        _add_gifts_tab(wb)
        lines.append(f"Added the {model.GIFTS_TAB} tab")

    if not lines:
        return ["Nothing to repair"]
    _refuse_if_open(path)
    save_workbook_atomically(wb, path)
    return lines


def default_header_matches(existing: str, canonical: str) -> bool:
    """Headers match ignoring case, spacing and punctuation ("referred-by:" is "Referred By")."""
    return _normalise_header(existing) == _normalise_header(canonical)


def _normalise_header(text: str) -> str:
    return "".join(ch for ch in text.casefold() if ch.isalnum())


def _add_missing_headers(ws: Worksheet, matches: HeaderMatcher) -> list[str]:
    """Append every missing staff and bridge header to the right of all used columns."""
    existing = [
        str(cell.value) for cell in ws[1] if cell.value is not None and str(cell.value).strip()
    ]
    missing = [
        name
        for name in (*model.STAFF_COLUMNS, *model.BRIDGE_COLUMNS)
        if not any(matches(text, name) for text in existing)
    ]
    if not missing:
        return []
    # Right of every column holding anything at all, so an unlabelled column of staff data is
    # never given a header that would misdescribe it.
    next_col = _last_used_column(ws) + 1
    lines = []
    for name in missing:
        _write_header(ws, next_col, name)
        if name in DROPDOWNS:
            values, strict = DROPDOWNS[name]
            _add_list_validation(ws, next_col, name, values, strict=strict)
        kind = "bridge" if name in model.BRIDGE_COLUMNS else "staff"
        lines.append(f"Added the {name} column ({kind})")
        next_col += 1
    return lines


def _add_missing_dropdowns(ws: Worksheet, matches: HeaderMatcher) -> list[str]:
    """Add a dropdown to each list column that has no data validation at all yet."""
    lines = []
    for name, (values, strict) in DROPDOWNS.items():
        col = _find_column(ws, name, matches)
        if col is None or _has_validation(ws, col):
            continue
        _add_list_validation(ws, col, name, values, strict=strict)
        lines.append(f"Added a dropdown to {name}")
    return lines


def _find_column(ws: Worksheet, name: str, matches: HeaderMatcher) -> int | None:
    for cell in ws[1]:
        if cell.value is not None and matches(str(cell.value), name):
            return int(cell.column)
    return None


def _has_validation(ws: Worksheet, col: int) -> bool:
    """True when any data validation (ours or the practice's) touches column ``col``."""
    for dv in ws.data_validations.dataValidation:
        for rng in dv.sqref.ranges:
            if rng.min_col <= col <= rng.max_col:
                return True
    return False


def _last_used_column(ws: Worksheet) -> int:
    last = 0
    for row in ws.iter_rows():
        for cell in reversed(row):
            if cell.value is not None and cell.value != "":
                last = max(last, int(cell.column))
                break
    return last


# --------------------------------------------------------------------------------------- layout


def _write_header(ws: Worksheet, col: int, name: str) -> None:
    """Write one header cell, styled, and give its column a width and number format."""
    bridge = name in model.BRIDGE_COLUMNS
    cell = ws.cell(row=1, column=col)
    cell.value = name
    cell.data_type = "s"
    cell.font = Font(bold=True)
    fill = BRIDGE_HEADER_FILL if bridge else STAFF_HEADER_FILL
    cell.fill = PatternFill(fill_type="solid", start_color=fill, end_color=fill)
    cell.alignment = Alignment(vertical="center", wrap_text=True)
    letter = get_column_letter(col)
    dim = ws.column_dimensions[letter]
    dim.width = COLUMN_WIDTHS.get(name, 16)
    # Column styles apply to the cells staff type later, in Excel and LibreOffice alike.
    if name in DATE_COLUMNS or name in BRIDGE_DATE_COLUMNS:
        dim.number_format = DATE_FORMAT
    if name in WRAP_COLUMNS:
        dim.alignment = Alignment(wrap_text=True, vertical="top")


def _add_list_validation(
    ws: Worksheet, col: int, name: str, values: Iterable[str], *, strict: bool
) -> None:
    """A dropdown on ``col`` below the header that never blocks what staff type."""
    values = tuple(values)
    letter = get_column_letter(col)
    dv = DataValidation(
        type="list",
        formula1='"' + ",".join(values) + '"',
        allow_blank=True,
        showDropDown=False,  # OOXML's inverted flag: False means the arrow *is* shown
        showErrorMessage=strict,
        errorStyle="warning" if strict else None,
        errorTitle=f"{name}: not on the list" if strict else None,
        error=(
            f"The usual values are {', '.join(values)}. Keep this text anyway? The bridge "
            "will point it out in Attention if it cannot read it."
        )
        if strict
        else None,
    )
    dv.add(f"{letter}2:{letter}{LAST_ROW}")
    ws.add_data_validation(dv)


def _add_bridge_tab(wb: Workbook, title: str) -> None:
    ws = wb.create_sheet(title)
    ws["A1"] = BRIDGE_TAB_NOTE
    ws["A1"].font = Font(italic=True, color="666666")
    ws.column_dimensions["A"].width = 40


def _add_gifts_tab(wb: Workbook) -> None:
    ws = wb.create_sheet(model.GIFTS_TAB)
    for col, (name, width) in enumerate(zip(GIFTS_HEADERS, GIFTS_WIDTHS, strict=True), start=1):
        cell = ws.cell(row=1, column=col, value=name)
        cell.font = Font(bold=True)
        cell.fill = PatternFill(
            fill_type="solid", start_color=STAFF_HEADER_FILL, end_color=STAFF_HEADER_FILL
        )
        ws.column_dimensions[get_column_letter(col)].width = width
    ws.column_dimensions["A"].number_format = GIFT_DATE_FORMAT
    ws.column_dimensions["E"].number_format = MONEY_FORMAT
    _add_list_validation(ws, 3, "Recipient Type", GIFT_RECIPIENT_TYPES, strict=True)
    ws.freeze_panes = "A2"


def _check_tab_title(tab: str) -> None:
    if not tab or len(tab) > 31 or re.search(r"[\[\]:*?/\\]", tab):
        raise ConfigError(
            f"sheet.tab {tab!r} cannot be a tab name: use 1 to 31 characters without "
            "[ ] : * ? / \\",
            [f"sheet.tab: {tab!r} is not a valid tab name"],
        )


def _join(names: Iterable[str]) -> str:
    items = list(names)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


# ------------------------------------------------------------------------------ file handling


def _refuse_if_open(path: Path) -> None:
    refuse_if_open(path, then="close it everywhere and run `sheets-bridge init` again")


def save_workbook_atomically(wb: Workbook, path: Path) -> None:
    """Save ``wb`` over ``path`` the way every writer of the workbook does (``replace_file``)."""
    replace_file(path, wb.save)


def setup_workbook(
    path: Path,
    *,
    tab: str,
    aliases: Mapping[str, Sequence[str]],
    allow_lossy_save: bool = False,
) -> SetupReport:
    """``init`` on the local backend: create the workbook if it is missing, else repair it."""
    from sheets_bridge.columns import canonical_name

    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        return SetupReport(created=True, lines=create_workbook(path, tab=tab))

    def matches(existing: str, canonical: str) -> bool:
        return canonical_name(existing, aliases) == canonical

    lines = repair_workbook(
        path, tab=tab, allow_lossy_save=allow_lossy_save, header_matches=matches
    )
    return SetupReport(created=False, lines=lines)


# ---------------------------------------------------------------------------------- lossy content
_EXT_FEATURES = {
    "{CCE6A557-97BC-4B89-ADB6-D9C93CAAB3DF}": "data validation lists from another sheet (newer "
    "Excel format)",
    "{78C0D931-6437-407D-A8EE-F0AAD7539E65}": "conditional formatting (newer Excel format)",
    "{05C60535-1F16-4FD2-B633-F4F36F0B64E0}": "sparklines",
    "{A8765BA9-456A-4DAB-B4F3-ACF838C121DE}": "slicers",
    "{3A4CF648-6AED-40F4-86FF-DC5316D8AED3}": "slicers",
    "{7E03D99C-DC04-49D9-9315-930204A7B6E9}": "timelines",
}


def lossy_content(path: str | os.PathLike[str]) -> list[str]:
    """What a re-save through openpyxl would drop or damage, in plain words, one line per kind.

    ``init`` asks before it re-saves a staff workbook through openpyxl; an empty list means the
    re-save is safe. Drawings on bridge-owned tabs are ignored: the bridge redraws them.
    """
    p = Path(path)
    data = p.read_bytes()
    pkg = Package(data, p)
    found: list[str] = []

    def note(text: str) -> None:
        if text not in found:
            found.append(text)

    bridge = {title_key(t) for t in model.BRIDGE_TABS}
    for sheet in pkg.sheets:
        if title_key(sheet.name) in bridge:
            continue
        tab = f"tab '{sheet.name}'"
        xml = pkg.read(sheet.part) or b""
        rels = list(ox.iter_rels(pkg.read(ox.rels_part_of(sheet.part)), sheet.part))
        for _, rtype, target, external in rels:
            kind = rtype.rsplit("/", 1)[-1]
            if external:
                continue
            if kind == "drawing":
                _describe_drawing(pkg, target, tab, note)
            elif kind == "vmlDrawing":
                note(f"comment boxes or form buttons on {tab} (their size and formatting)")
            elif kind == "threadedComment":
                note(f"threaded comments (replies) on {tab}")
            elif kind == "pivotTable":
                note(f"a pivot table on {tab}")
            elif kind in ("slicer", "slicerList"):
                note(f"slicers on {tab}")
            elif kind == "table":
                pass  # openpyxl keeps tables
        if b"extLst" in xml:
            for uri in re.findall(rb'<(?:[\w.-]+:)?ext\b[^>]*\buri\s*=\s*"([^"]+)"', xml):
                feature = _EXT_FEATURES.get(uri.decode("ascii", "replace").upper())
                note(
                    f"{feature} on {tab}"
                    if feature
                    else f"newer Excel features on {tab} that openpyxl does not support"
                )
    names = [n.lower() for n in pkg.names]
    if any(n.endswith("vbaproject.bin") for n in names):
        note("macros (VBA)")
    if any(n.startswith("xl/externallinks/") for n in names):
        note("links to other workbooks")
    if any(n.startswith("xl/pivotcache") for n in names) and not any(
        "pivot table" in f for f in found
    ):
        note("pivot table data")
    if any(n.startswith(("xl/slicers/", "xl/slicercaches/")) for n in names):
        note("slicers")
    return found


def _describe_drawing(
    pkg: Package, drawing_part: str, tab: str, note: Callable[[str], None]
) -> None:
    xml = pkg.read(drawing_part) or b""
    kinds = {
        t.rsplit("/", 1)[-1]
        for _, t, _, ext in ox.iter_rels(pkg.read(ox.rels_part_of(drawing_part)), drawing_part)
        if not ext
    }
    if "chart" in kinds or b"chart" in xml:
        note(f"a chart on {tab} (its formatting)")
    if "image" in kinds:
        note(f"a picture on {tab}")
    if re.search(rb"<(?:[\w.-]+:)?(?:sp|cxnSp|grpSp)\b", xml):
        note(f"shapes or text boxes on {tab}")
