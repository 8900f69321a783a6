"""Drafts as ``.eml`` files in a local folder: the embedded default, opened by any mail client.

The file name is the draft key, and a file is created exclusively, so a second copy of a draft
is impossible whatever crashes or retries happen (RELIABILITY.md R2; vdirsyncer's
``atomic_write(overwrite=False)``, with the fsyncs it skips):

1. write the bytes to a temp file in the same folder (``O_CREAT|O_EXCL``, mode 0600), fsync;
2. ``os.link`` it to ``<key>.eml``: this fails if that name exists, and then the existing draft
   wins (a previous run made it before crashing);
3. unlink the temp name and fsync the folder: once per draft, or once for a whole batch
   (:meth:`EmlFolderDrafter.batch`, used by the outbox before it confirms any of them).

A crash leaves at most a temp file (removed by :meth:`EmlFolderDrafter.clean_leftovers`) or a
complete draft, never a half-written ``<key>.eml``. Drafts hold patient names, so files are 0600
and a folder the drafter creates is 0700.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
from collections.abc import Iterator
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import ClassVar

from sheets_bridge.errors import BackendError
from sheets_bridge.files import fsync_dir
from sheets_bridge.mail import cannot_send
from sheets_bridge.messages import smtp_bytes

__all__ = ["EmlFolderDrafter"]

_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
_TEMP_PREFIX = ".sheets-bridge-"
_TEMP_SUFFIX = ".tmp"
#: errnos meaning "this filesystem has no hard links" (FAT, some network shares).
_NO_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EMLINK, errno.EXDEV}


class EmlFolderDrafter:
    """A folder of ``<key>.eml`` drafts. The ref of a draft is its file name."""

    kind: ClassVar[str] = "eml"
    can_send: ClassVar[bool] = False
    search_lags: ClassVar[bool] = False

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)
        self._batching = False
        self._unsynced = False

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Create several drafts with one folder fsync at the end instead of one per draft.

        Each file's own bytes are still fsynced before its name is linked; only the folder
        entry waits. The outbox confirms a batch's drafts only after this block has exited
        without error, so no draft is recorded as made before its name is durable.
        """
        self._batching = True
        try:
            yield
        finally:
            self._batching = False
            if self._unsynced:
                self._unsynced = False
                try:
                    fsync_dir(self.folder)
                except OSError as error:
                    raise BackendError(
                        f"could not save the drafts in {self.folder}: "
                        f"{error.strerror or error}",
                        backend=self.kind,
                        retryable=True,
                    ) from error

    def describe(self) -> str:
        return f"the drafts folder {self.folder}"

    def path_for(self, key: str) -> Path:
        """Where the draft with ``key`` lives; refuses a key that is not a plain file name."""
        if not _KEY.fullmatch(key) or ".." in key:
            raise ValueError("a draft key may hold only letters, digits, '.', '-' and '_'")
        return self.folder / f"{key}.eml"

    def find(self, key: str) -> str | None:
        path = self.path_for(key)
        return path.name if path.is_file() else None

    def find_all(self, key: str) -> list[str]:
        """A folder holds at most one file per key: its name is the key."""
        found = self.find(key)
        return [found] if found else []

    def delete(self, ref: str) -> None:
        """Remove ``<key>.eml`` (``ref`` is the file name) and make the removal durable."""
        key = ref.removesuffix(".eml")
        try:
            self.path_for(key).unlink()
        except FileNotFoundError:
            return
        except OSError as error:
            raise BackendError(
                f"could not remove draft {key} from {self.folder}: {error.strerror or error}",
                backend=self.kind,
                retryable=True,
            ) from error
        fsync_dir(self.folder)

    def send(self, key: str, message: EmailMessage) -> str:
        raise cannot_send(self)

    def created_at(self, key: str) -> datetime | None:
        """When the draft with ``key`` was made: its Date header (None if absent or unreadable).

        A rebuilt state (F20) adopts drafts with this time, so the Emails column keeps saying
        when each draft was really made rather than when the state was lost.
        """
        try:
            with self.path_for(key).open("rb") as fh:
                headers = BytesHeaderParser(policy=policy.default).parse(fh)
            date = headers["Date"]
        except (OSError, ValueError, TypeError, LookupError):
            return None
        moment = getattr(date, "datetime", None)
        if not isinstance(moment, datetime) or moment.tzinfo is None:
            return None
        return moment

    def list_keys(self) -> dict[str, str]:
        try:
            entries = list(self.folder.iterdir())
        except FileNotFoundError:
            return {}
        except OSError as error:
            raise BackendError(
                f"cannot read {self.describe()}: {error.strerror}",
                backend=self.kind,
                retryable=True,
            ) from error
        found: dict[str, str] = {}
        for entry in entries:
            key = entry.name.removesuffix(".eml")
            if entry.name.endswith(".eml") and _KEY.fullmatch(key) and ".." not in key:
                found[key] = entry.name
        return dict(sorted(found.items()))

    def prepare(self) -> None:
        self.clean_leftovers()

    def count_waiting(self) -> int | None:
        return sum(1 for key in self.list_keys() if not key.startswith("digest."))

    def clean_leftovers(self) -> int:
        """Remove temp files a crash left behind; returns how many. Call at start, under the lock.

        A temp file that was already linked to its ``.eml`` name is just a second name of the
        finished draft, so removing it loses nothing.
        """
        removed = 0
        try:
            entries = list(self.folder.iterdir())
        except FileNotFoundError:
            return 0
        for entry in entries:
            if entry.name.startswith(_TEMP_PREFIX) and entry.name.endswith(_TEMP_SUFFIX):
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
                    removed += 1
        if removed:
            fsync_dir(self.folder)
        return removed

    def create(self, key: str, message: EmailMessage) -> str:
        final = self.path_for(key)
        if final.is_file():
            return final.name
        data = self._bytes(message)
        try:
            self._ensure_folder()
            temp = self._write_temp(key, data)
            try:
                self._link(temp, final)
            finally:
                temp.unlink(missing_ok=True)
            if self._batching:
                self._unsynced = True
            else:
                fsync_dir(self.folder)
        except OSError as error:
            raise BackendError(
                f"could not save draft {key} in {self.folder}: {error.strerror or error}",
                backend=self.kind,
                retryable=True,
            ) from error
        return final.name

    @staticmethod
    def _bytes(message: EmailMessage) -> bytes:
        """The file's bytes: CRLF line ends, plus ``X-Unsent: 1`` so Outlook opens it to edit.

        The header is added to the bytes rather than to ``message``, which the caller owns.
        """
        data = smtp_bytes(message)
        if message.get("X-Unsent") is None:
            data = b"X-Unsent: 1\r\n" + data
        return data

    def _ensure_folder(self) -> None:
        if self.folder.is_dir():
            return
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.folder, 0o700)

    def _write_temp(self, key: str, data: bytes) -> Path:
        temp = (
            self.folder / f"{_TEMP_PREFIX}{key}.{os.getpid()}.{secrets.token_hex(4)}{_TEMP_SUFFIX}"
        )
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        fd = os.open(temp, flags, 0o600)
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, 0o600)  # exact, whatever the umask
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            temp.unlink(missing_ok=True)
            raise
        os.close(fd)
        return temp

    @staticmethod
    def _link(temp: Path, final: Path) -> None:
        """Give ``temp`` the name ``final`` unless ``final`` exists; an existing draft wins."""
        try:
            os.link(temp, final)
        except FileExistsError:
            return
        except OSError as error:
            if error.errno not in _NO_LINKS:
                raise
            # No hard links here. The single-writer lock (R7) means nobody else creates
            # ``final`` between the check and the rename; on Windows rename refuses to replace.
            if final.exists():
                return
            try:
                os.rename(temp, final)
            except FileExistsError:
                return
