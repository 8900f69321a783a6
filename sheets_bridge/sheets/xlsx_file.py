"""The workbook as a file that staff share: office lock files, leftovers, the atomic replace.

Every writer of the ``.xlsx`` (a sync's save, ``init``, the demo) goes through here, so they all
honour Excel's ``~$name`` and LibreOffice's ``.~lock.name#`` markers, and all replace the file the
same way (RELIABILITY.md R6, F14-F17): a temp file in the same folder, fsynced, given the
workbook's owner, group and mode (the bridge may run as its own user; staff who owned the file
must keep write access), checked once more, then ``os.replace`` and a folder fsync. A crash or a
full disk leaves the old workbook or the new one, never a torn file, and at most a temp file that
:func:`clean_leftovers` removes at the next start.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from sheets_bridge.errors import WorkbookBusyError
from sheets_bridge.files import fsync_dir

log = logging.getLogger(__name__)

TEMP_PREFIX = ".~sheets-bridge-"
TEMP_SUFFIX = ".tmp"

__all__ = ["TEMP_PREFIX", "TEMP_SUFFIX", "clean_leftovers", "lock_files", "refuse_if_open",
           "replace_file"]


def lock_files(path: Path) -> list[Path]:
    """Excel's and LibreOffice's "this file is open" markers for ``path`` that exist now.

    Excel's owner file may lose the first two characters of a long name (``~$ferrals.xlsx``).
    """
    name = path.name
    folder = path.parent
    candidates = {f"~${name}", f".~lock.{name}#"}
    if len(name) > 2:
        candidates.add(f"~${name[2:]}")
    return [folder / c for c in sorted(candidates) if (folder / c).exists()]


def refuse_if_open(path: Path, *, then: str = "the bridge will write when it is closed") -> None:
    """Raise ``WorkbookBusyError`` while Excel or LibreOffice has ``path`` open."""
    found = lock_files(path)
    if found:
        raise WorkbookBusyError(
            f"{path} is open in Excel or LibreOffice (found {found[0].name}); {then}. If nobody "
            f"has it open, the lock file is left over from a crash and {found[0].name} may be "
            "deleted."
        )


def clean_leftovers(folder: Path) -> list[Path]:
    """Delete temp files an interrupted save left in ``folder`` (call at start, under the lock)."""
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if entry.name.startswith(TEMP_PREFIX) and entry.name.endswith(TEMP_SUFFIX):
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
                removed.append(entry)
                log.info("removed a leftover temp file from an interrupted save: %s", entry.name)
    if removed:
        fsync_dir(folder)
    return removed


def _keep_ownership(fd: int, target: os.stat_result | None) -> None:
    """Give the temp file the mode, owner and group of the file it replaces (where allowed)."""
    if target is None:
        return
    os.fchmod(fd, stat.S_IMODE(target.st_mode))
    if (target.st_uid, target.st_gid) != (os.getuid(), os.getgid()):
        try:
            os.fchown(fd, target.st_uid, target.st_gid)
        except PermissionError:
            # Not root: keep at least the group (a user may give a file to any group they are in).
            with contextlib.suppress(PermissionError):
                os.fchown(fd, -1, target.st_gid)
            log.warning(
                "the workbook is owned by another user; after this save it belongs to the bridge's "
                "user (give the bridge's user the same group, or run it as the workbook's owner)"
            )


def replace_file(
    path: Path,
    write: Callable[[BinaryIO], None],
    *,
    check: Callable[[], None] | None = None,
    step: Callable[[str], None] | None = None,
) -> None:
    """Write a new ``path`` with ``write(fh)`` and swap it in atomically.

    ``check`` runs after the new file is durable and just before the replace: it raises to
    abort (the file changed meanwhile, an office program opened it), and the temp file goes.
    ``step("before-replace")`` is the crash harness's hook (None in production).
    """
    folder = path.parent
    try:
        target: os.stat_result | None = os.stat(path)
    except FileNotFoundError:
        target = None
    fd, tmp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX, dir=folder)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            if target is None:
                umask = os.umask(0)
                os.umask(umask)
                os.fchmod(fh.fileno(), 0o666 & ~umask)
            else:
                _keep_ownership(fh.fileno(), target)
            os.fsync(fh.fileno())
        if check is not None:
            check()
        if step is not None:
            step("before-replace")
        try:
            os.replace(tmp, path)
        except PermissionError as exc:  # Windows: the file is open in Excel
            raise WorkbookBusyError(
                f"{path} is open in Excel or LibreOffice; the bridge will write when it is closed"
            ) from exc
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_dir(folder)
