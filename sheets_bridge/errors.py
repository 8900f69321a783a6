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
    """Another bridge process holds the state folder's lock (``holder``: its PID)."""

    def __init__(self, message: str, *, holder: str = "unknown") -> None:
        super().__init__(message)
        self.holder = holder


class ClockBehindError(SafetyStopError):
    """The clock reads earlier than the last cycle's: nothing was written (issue 12, item 3).

    A clock set back (a reset system clock, a wrong ``--now``) would otherwise draft again for
    events already handled and rewrite cells the bridge wrote later.
    """


class StateFolderError(BridgeError):
    """The state folder (or the state file in it) cannot be used: one line says why and the fix."""


def describe_failure(error: BaseException) -> str:
    """A failed cycle in one plain line with what to do next, for logs, ``status`` and the
    Bridge Log. Only the bridge's own messages are quoted: the text of an unexpected error may
    carry cell values (an error body), so only its type is named."""
    if isinstance(error, BridgeError):
        return str(error)
    explained = explain_environment(error)
    if explained is not None:
        return explained
    return (
        f"unexpected {type(error).__name__}: run `sheets-bridge sync --config PATH --debug` "
        "to see where"
    )


def explain_environment(error: BaseException) -> str | None:
    """One line for an error of the machine rather than of the bridge (a full disk, a folder
    that cannot be written), naming the path and the fix; None for anything else.

    The path comes from the config (a workbook, the state folder), never from a cell.
    """
    import errno
    import sqlite3

    if isinstance(error, sqlite3.OperationalError):
        text = str(error)
        if "readonly" in text or "read-only" in text:
            return (
                "The state file cannot be written (it or its folder is read-only): give the "
                "bridge's user write access to state_dir"
            )
        if "disk is full" in text or "disk I/O" in text:
            return "The disk holding state_dir is full or failing: free some space and run again"
        if "locked" in text:
            return "The state file is locked by another program: stop it, then run again"
        return None
    if not isinstance(error, OSError):
        return None
    where = f" ({error.filename})" if error.filename else ""
    if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return f"The disk is full{where}: free some space; nothing was lost, run again"
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (
            f"Permission denied{where}: the bridge's user must be able to write there (check "
            "the owner and mode, or whether the disk is mounted read-only)"
        )
    if error.errno in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
        return f"A file is where a folder should be, or the reverse{where}: check the paths in the config"
    return None
