"""The errors a user can meet, each with what to do next.

Single-row problems never raise: they become Attention lines. These are for whole runs.
"""

from __future__ import annotations


class BridgeError(Exception):
    """Base of every error the CLI knows how to explain."""

    exit_code = 1


class ConfigError(BridgeError):
    """The config file is missing or wrong; ``problems`` are one line each, naming the key."""

    exit_code = 2

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class UsageError(BridgeError):
    """A command line the bridge cannot act on (a ``--now`` that is not a time, say)."""

    exit_code = 2


class SheetSchemaError(ConfigError):
    """The sheet lacks something the bridge cannot work without (a tab, a header row)."""


class SafetyStopError(BridgeError):
    """A circuit breaker tripped; nothing was written. ``override`` names the flag to proceed."""

    exit_code = 3

    def __init__(self, message: str, override: str = "--force") -> None:
        super().__init__(message)
        self.override = override


class BackendError(BridgeError):
    """A sheet or mail backend failed. ``retryable`` means the next cycle may well succeed."""

    def __init__(self, message: str, *, backend: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.backend = backend
        self.retryable = retryable


class WorkbookBusyError(BackendError):
    """The workbook is open in Excel or LibreOffice (a lock file exists): try next cycle."""

    def __init__(self, message: str) -> None:
        super().__init__(message, backend="local", retryable=True)


class SnapshotStaleError(BackendError):
    """The sheet changed between read and write: re-read and plan again."""

    def __init__(self, message: str, *, backend: str) -> None:
        super().__init__(message, backend=backend, retryable=True)


class WorkbookUnreadableError(BackendError):
    """The file is not a workbook the bridge can read (corrupt, truncated, ``.xls``...)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, backend="local", retryable=False)


class LossySaveError(BackendError):
    """Saving through openpyxl would drop staff content (charts, images...): refused."""

    def __init__(self, message: str) -> None:
        super().__init__(message, backend="local", retryable=False)


class StateLockedError(BridgeError):
    """Another bridge process holds the state folder's lock."""
