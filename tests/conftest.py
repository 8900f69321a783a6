"""Shared fixtures: a fixed clock, a config factory, a MemorySheet factory and a cycle runner.

Time is an argument: every test passes aware datetimes (America/New_York unless a test says
otherwise) and nothing reads the real clock. Canary values (names, phones, emails, reasons nobody
else would type) let tests scan output, state and logs for patient data.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fakes.fixtures import fake_google  # noqa: F401 - the fake Google, for any test that asks
from hypothesis import HealthCheck, settings

from sheets_bridge.config import BridgeConfig, parse_config
from sheets_bridge.cycle import CycleReport, run_cycle
from sheets_bridge.model import BRIDGE_COLUMNS, STAFF_COLUMNS, CellValue
from sheets_bridge.sheets.memory import MemorySheet
from sheets_bridge.state import StateStore

# -- hypothesis profiles: "dev" locally, a derandomized "ci" when CI=true --------------------
settings.register_profile(
    "dev",
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "ci",
    max_examples=40,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("ci" if os.environ.get("CI", "").lower() == "true" else "dev")

NY = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
#: Tuesday 4 March 2025, 10:00 in New York: mid-morning on a business day.
FIXED_NOW = datetime(2025, 3, 4, 10, 0, tzinfo=NY)

#: Patient data nobody else would type: scanned for in output, state and logs.
CANARY_PATIENTS: tuple[dict[str, str], ...] = (
    {
        "Patient First Name": "Zebediah",
        "Patient Last Name": "Quuxworthington",
        "Patient Phone": "(212) 555-0147",
        "Patient Email": "zeb.quux.canary@example.org",
        "Reason": "canary-lumbago-xq7",
    },
    {
        "Patient First Name": "Philomena",
        "Patient Last Name": "Vrzalkova",
        "Patient Phone": "(646) 555-0193",
        "Patient Email": "philo.vrz.canary@example.net",
        "Reason": "canary-sciatica-kp2",
    },
)
CANARY_STRINGS: tuple[str, ...] = tuple(
    value for patient in CANARY_PATIENTS for key, value in patient.items() if key != "Patient Phone"
) + ("2125550147", "6465550193", "555-0147", "555-0193")

BASE_CONFIG: dict[str, Any] = {
    "practice": {"name": "Harbor Physio", "owner_email": "owner@example.com"},
    "sheet": {"kind": "local", "path": "referrals.xlsx"},
    "mail": {"kind": "eml", "path": "drafts"},
    "state_dir": "state",
}


def deep_merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(base))
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


ConfigFactory = Callable[..., BridgeConfig]


@pytest.fixture
def fixed_now() -> datetime:
    return FIXED_NOW


@pytest.fixture
def make_config(tmp_path: Path) -> ConfigFactory:
    """``make_config(sync={"contact_window_hours": 48})``: the base config plus overrides."""

    def make(**sections: Any) -> BridgeConfig:
        return parse_config(deep_merge(BASE_CONFIG, sections), base=tmp_path)

    return make


@pytest.fixture
def config(make_config: ConfigFactory) -> BridgeConfig:
    return make_config()


def sheet_grid(
    rows: Sequence[Mapping[str, CellValue]], headers: Sequence[str] | None = None
) -> list[list[CellValue]]:
    """A grid (row 1 = headers) from rows keyed by header name; unknown keys are an error."""
    headers = list(headers if headers is not None else STAFF_COLUMNS)
    grid: list[list[CellValue]] = [list(headers)]
    for row in rows:
        unknown = set(row) - set(headers)
        assert not unknown, f"row keys not in headers: {unknown}"
        grid.append([row.get(h) for h in headers])
    return grid


def make_sheet(
    rows: Sequence[Mapping[str, CellValue]],
    headers: Sequence[str] | None = None,
    **kwargs: Any,
) -> MemorySheet:
    return MemorySheet(sheet_grid(rows, headers), **kwargs)


@pytest.fixture(name="make_sheet")
def make_sheet_fixture() -> Callable[..., MemorySheet]:
    return make_sheet


def run_cycles(
    config: BridgeConfig,
    sheet: MemorySheet,
    now: datetime,
    n: int = 1,
    **kwargs: Any,
) -> list[CycleReport]:
    """Run ``n`` cycles at ``now``, each with its own StateStore open (as the CLI does)."""
    reports = []
    for _ in range(n):
        with StateStore(config.state_dir) as state:
            reports.append(run_cycle(config, sheet, state, now=now, **kwargs))
    return reports


def run_one(config: BridgeConfig, sheet: MemorySheet, now: datetime, **kwargs: Any) -> CycleReport:
    return run_cycles(config, sheet, now, 1, **kwargs)[0]


# -- reading a MemorySheet back --------------------------------------------------------------
def header_index(sheet: MemorySheet, name: str) -> int:
    assert sheet.grid is not None
    return list(sheet.grid[0]).index(name)


def cell(sheet: MemorySheet, row: list[CellValue], name: str) -> CellValue:
    col = header_index(sheet, name)
    return row[col] if col < len(row) else None


def records(sheet: MemorySheet) -> list[dict[str, CellValue]]:
    """Every data row as a dict keyed by header (missing trailing cells are None)."""
    assert sheet.grid is not None
    headers = [str(h) if h is not None else "" for h in sheet.grid[0]]
    out = []
    for row in sheet.grid[1:]:
        padded = list(row) + [None] * (len(headers) - len(row))
        out.append(dict(zip(headers, padded, strict=False)))
    return out


def record_of(sheet: MemorySheet, first_name: str) -> dict[str, CellValue]:
    found = [r for r in records(sheet) if r.get("Patient First Name") == first_name]
    assert len(found) == 1, f"{len(found)} rows for {first_name!r}"
    return found[0]


def staff_cells(sheet: MemorySheet) -> list[dict[str, CellValue]]:
    """The staff part of every row: what the bridge must never change."""
    return [{k: v for k, v in r.items() if k not in BRIDGE_COLUMNS} for r in records(sheet)]


def attention_of(sheet: MemorySheet, first_name: str) -> list[str]:
    text = record_of(sheet, first_name).get("Attention") or ""
    assert isinstance(text, str)
    return text.splitlines()


@pytest.fixture
def state_store(config: BridgeConfig) -> Iterator[StateStore]:
    with StateStore(config.state_dir) as store:
        yield store


def patient(first: str, last: str = "Example", **cells: CellValue) -> dict[str, CellValue]:
    """A clean row: received yesterday morning, a provider referral, nothing missing.

    Other cells are keyword arguments named by header, underscores for spaces (``Visit``,
    ``First_Contact``, ``Consent_to_Update_Referrer``).
    """
    row: dict[str, CellValue] = {
        "Received": "2025-03-03 09:00",
        "Patient First Name": first,
        "Patient Last Name": last,
        "How Heard": "Provider",
        "Referred By": "Dr Rivera",
    }
    row.update({key.replace("_", " "): value for key, value in cells.items()})
    return row
