"""The shared row locator: writes find their row by Referral ID or fingerprint, wherever it moved."""

from __future__ import annotations

from sheets_bridge.identity import row_fingerprint
from sheets_bridge.model import CellValue, CellWrite, Plan, RowRef
from sheets_bridge.sheets.memory import MemorySheet

HEADERS: list[CellValue] = ["Received", "Patient First Name", "Referral ID", "Stage"]
STAFF = {"Received": 0, "Patient First Name": 1}
COLUMNS = {"Referral ID": 2, "Stage": 3}


def sheet(*rows: list[CellValue]) -> MemorySheet:
    return MemorySheet([HEADERS, *rows])


def fp(*values: CellValue) -> str:
    return row_fingerprint(tuple(values), STAFF)


def stage(number: int, rid: str, new: str, expected: str = "", fingerprint: str = "") -> CellWrite:
    return CellWrite(RowRef(number, rid, fingerprint), "Stage", expected, new)


def apply(book: MemorySheet, *writes: CellWrite):  # type: ignore[no-untyped-def]
    return book.apply(book.read(), Plan(cell_writes=writes, staff_columns=STAFF), COLUMNS)


def test_a_row_sorted_elsewhere_gets_its_own_write() -> None:
    book = sheet(["2026-01-02", "Ann", "R-00001", ""], ["2026-01-03", "Bo", "R-00002", ""])
    book.grid[1:] = [book.grid[2], book.grid[1]]  # staff sorted between read and write
    report = apply(book, stage(2, "R-00001", "New"), stage(3, "R-00002", "Seen"))
    assert not report.skipped
    assert book.grid[1][2:] == ["R-00002", "Seen"] and book.grid[2][2:] == ["R-00001", "New"]


def test_a_row_without_an_id_is_found_by_its_staff_cells() -> None:
    book = sheet(["2026-01-02", "Ann", None, None], ["2026-01-03", "Bo", None, None])
    book.grid.insert(1, ["2026-01-04", "Cy", None, None])  # a row inserted above
    write = CellWrite(RowRef(2, "", fp("2026-01-02", "Ann")), "Referral ID", "", "R-00001")
    other = CellWrite(RowRef(2, "", fp("2026-01-02", "Ann")), "Stage", "", "New")
    report = apply(book, write, other)
    assert not report.skipped
    assert book.grid[2] == ["2026-01-02", "Ann", "R-00001", "New"]
    assert book.grid[1] == ["2026-01-04", "Cy", None, None]


def test_a_deleted_row_is_skipped_and_no_other_row_is_touched() -> None:
    book = sheet(["2026-01-02", "Ann", "R-00001", ""], ["2026-01-03", "Bo", "R-00002", ""])
    del book.grid[1]
    report = apply(book, stage(2, "R-00001", "Lost"))
    assert [reason for _, reason in report.skipped] == [
        "the row of R-00001 is no longer in the sheet (deleted, or changed)"
    ]
    assert book.grid[1] == ["2026-01-03", "Bo", "R-00002", ""]


def test_an_id_on_two_rows_is_never_guessed() -> None:
    book = sheet(["2026-01-02", "Ann", "R-00001", ""], ["2026-01-03", "Bo", "R-00002", ""])
    book.grid[2][2] = "R-00001"  # pasted over
    book.grid.insert(1, ["2026-01-04", "Cy", "R-00003", ""])
    report = apply(book, stage(2, "R-00001", "Lost"))
    assert report.skipped and "more than one row" in report.skipped[0][1]
    assert all(row[3] in ("", None, "Stage") for row in book.grid)


def test_two_identical_rows_without_ids_get_nothing() -> None:
    book = sheet(["2026-01-02", "Ann", None, None], ["2026-01-02", "Ann", None, None])
    book.grid.insert(1, ["x", "y", None, None])
    write = CellWrite(RowRef(2, "", fp("2026-01-02", "Ann")), "Referral ID", "", "R-00001")
    report = apply(book, write)
    assert report.skipped and not report.applied


def test_a_cell_changed_since_the_read_is_left_alone() -> None:
    book = sheet(["2026-01-02", "Ann", "R-00001", "New"])
    book.grid[1][3] = "Seen by hand"
    report = apply(book, stage(2, "R-00001", "Contacted", expected="New"))
    assert report.skipped[0][1] == "Stage changed since it was read"
    assert book.grid[1][3] == "Seen by hand"
