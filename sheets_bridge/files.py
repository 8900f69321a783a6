"""Small durable-file primitives every writer of the bridge shares: folder fsync, lock files.

A rename or a new file name is durable only once its folder is synced; one bridge (or one
daemon) per state folder is enforced by ``flock``, which the kernel frees if the holder dies.
"""

from __future__ import annotations

import fcntl
import os
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


def take_lock(path: Path) -> int:
    """Hold an exclusive ``flock`` on ``path`` (created 0600) and write our PID into it.

    Returns the open descriptor: the lock lasts until it is closed or the process dies.
    Raises ``LockHeldError`` at once, without waiting, when another process holds it.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise LockHeldError(holder) from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode("ascii"))
    return fd
