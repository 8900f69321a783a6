"""Small durable-file primitives every writer of the bridge shares: folder fsync, lock files.

A rename or a new file name is durable only once its folder is synced; one bridge (or one
daemon) per state folder is enforced by ``flock``, which the kernel frees if the holder dies.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path


def fsync_dir(folder: Path) -> None:
    """Make a new, renamed or removed name in ``folder`` durable.

    A no-op where folders cannot be opened or synced (Windows, some network filesystems): the
    file's own data was synced before the rename, which is what matters most.
    """
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class LockHeldError(Exception):
    """Another live process holds the lock; ``holder`` is the PID it wrote, or "unknown"."""

    def __init__(self, holder: str) -> None:
        super().__init__(holder)
        self.holder = holder


def take_lock(
    path: Path,
    *,
    wait: float = 0.0,
    on_wait: Callable[[str], None] | None = None,
) -> int:
    """Hold an exclusive ``flock`` on ``path`` (created 0600) and write our PID into it.

    Returns the open descriptor: the lock lasts until it is closed or the process dies.
    Raises ``LockHeldError`` when another process holds it: at once, or after up to ``wait``
    seconds of trying (``on_wait(holder)`` is told once, when the waiting begins).
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + wait
    told = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            holder = lock_holder(fd)
            if time.monotonic() >= deadline:
                os.close(fd)
                raise LockHeldError(holder) from None
            if on_wait is not None and not told:
                on_wait(holder)
                told = True
            time.sleep(0.1)
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode("ascii"))
    return fd


def lock_holder(fd: int) -> str:
    """The PID written in a lock file, or "unknown"."""
    try:
        return os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
    except OSError:
        return "unknown"


def lock_is_held(path: Path) -> str | None:
    """The PID of the live process holding ``path``'s lock, or None when nobody holds it.

    Probes with a shared lock, released at once, so it never keeps a holder out for long.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return lock_holder(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
