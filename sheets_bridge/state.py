"""The bridge's memory on a SQLite file under ``state_dir``: IDs, hashes, journal, runs, audit.

It holds IDs, hashes, keys, draft references and timestamps, never cell values, so a copy of it
reveals no patient. One bridge per state folder: an OS lock (``flock``) that the kernel frees if
the process dies. Writes follow isync's order: what a cycle is about to do is journalled
(*pending*) before the sheet or the mail is touched, and confirmed after; a pending entry found
at the next start is reconciled, so a crash at any moment neither loses a change nor repeats one.

Why one module of this size: the state file is one SQLite schema with its journal, ledger and
runs; every method is a transaction over those tables, and they must stay in step.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import sqlite3
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Self

from sheets_bridge.errors import BridgeError, StateFolderError, StateLockedError
from sheets_bridge.files import LockHeldError, lock_is_held, take_lock
from sheets_bridge.model import CellWrite, Notice
from sheets_bridge.state_view import (
    DraftRecord,
    IdRecord,
    StateView,
    WrittenRecord,
    stored_time,
    value_hash,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ids(
    referral_id TEXT PRIMARY KEY, identity TEXT NOT NULL, present INTEGER NOT NULL,
    pending INTEGER NOT NULL DEFAULT 0, first_seen TEXT NOT NULL, last_seen TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS written(
    referral_id TEXT NOT NULL, col TEXT NOT NULL, hash TEXT, previous TEXT, pending TEXT,
    PRIMARY KEY(referral_id, col));
CREATE TABLE IF NOT EXISTS notices(
    referral_id TEXT NOT NULL, message TEXT NOT NULL, created TEXT NOT NULL,
    PRIMARY KEY(referral_id, message));
CREATE TABLE IF NOT EXISTS runs(
    id INTEGER PRIMARY KEY AUTOINCREMENT, started TEXT NOT NULL, finished TEXT,
    outcome TEXT NOT NULL, rows_read INTEGER NOT NULL DEFAULT 0,
    cells_written INTEGER NOT NULL DEFAULT 0, tabs_written TEXT NOT NULL DEFAULT '',
    drafts INTEGER NOT NULL DEFAULT 0, problems INTEGER NOT NULL DEFAULT 0,
    summary TEXT NOT NULL DEFAULT '', problem_text TEXT NOT NULL DEFAULT '',
    logged INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS audit(
    id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, run_id INTEGER,
    action TEXT NOT NULL, referral_id TEXT NOT NULL DEFAULT '', columns TEXT NOT NULL DEFAULT '',
    draft_ref TEXT NOT NULL DEFAULT '', result TEXT NOT NULL DEFAULT '');
CREATE TRIGGER IF NOT EXISTS audit_append_only_u BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit table is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_append_only_d BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit table is append-only'); END;
CREATE TABLE IF NOT EXISTS drafts(
    key TEXT PRIMARY KEY, referral_id TEXT NOT NULL, kind TEXT NOT NULL,
    referrer_key TEXT NOT NULL DEFAULT '', status TEXT NOT NULL, ref TEXT NOT NULL DEFAULT '',
    created TEXT NOT NULL, confirmed TEXT, misses INTEGER NOT NULL DEFAULT 0, next_check TEXT,
    facets TEXT NOT NULL DEFAULT '');
"""

#: The tables a view holds between cycles, each with a version token in ``meta``
#: (``<table>_version``, see :class:`_ViewTables`) that any change to the table clears.
_VERSIONED = ("ids", "written")
SCHEMA += "".join(
    f"CREATE TRIGGER IF NOT EXISTS {table}_changed_{event[0].lower()} AFTER {event} ON {table}\n"
    f"    BEGIN UPDATE meta SET value = '' WHERE key = '{table}_version' AND value <> ''; END;\n"
    for table in _VERSIONED
    for event in ("INSERT", "UPDATE", "DELETE")
)

#: Columns added to tables of an older state file, in order (state files are upgraded in place).
_ADDED_COLUMNS = (
    ("ids", "facets", "TEXT NOT NULL DEFAULT ''"),
    ("drafts", "misses", "INTEGER NOT NULL DEFAULT 0"),
    ("drafts", "next_check", "TEXT"),
    ("drafts", "facets", "TEXT NOT NULL DEFAULT ''"),
    ("runs", "duration_ms", "INTEGER"),
)


@dataclass
class RunRecord:
    """One cycle as the Bridge Log and ``status`` tell it: counts and plain words, no values."""

    started: datetime
    outcome: str = "ok"
    rows_read: int = 0
    cells_written: int = 0
    tabs_written: tuple[str, ...] = ()
    drafts: int = 0
    problems: tuple[str, ...] = ()
    summary: str = ""
    logged: bool = False
    duration: float | None = None
    """Seconds the cycle took (a monotonic clock), for ``status``."""


@dataclass(frozen=True)
class Episode:
    """A run of consecutive failed cycles, as the state remembers it (no values: plain words)."""

    failures: int
    since: datetime
    last_error: str
    last_error_at: datetime

    @property
    def started_now(self) -> bool:
        """True for the episode's first failure: the one that is reported."""
        return self.failures == 1


class _BadMeta(Exception):
    """The state file opened, but its bookkeeping is unreadable."""


@dataclass(frozen=True)
class _ViewTables:
    """The ``ids`` and ``written`` tables as last read, as the view's records, with the token
    each table had then.

    Turning 60,000 rows into records was most of :meth:`StateStore.view`, and reading them
    most of the rest. A token per table says whether it changed at all: triggers clear it on
    any insert, update or delete (whoever writes: this process, another, an older bridge, a
    person with the sqlite3 shell), and each of the bridge's own transactions ends by setting a
    new random one where it was cleared. A view that finds the token it holds reuses the
    records without reading a row; one that finds it cleared, or another, reads the table (and
    writes nothing: a dry run leaves the file as it was). A state file replaced by another (a
    backup, a rebuild) carries another token. The records are frozen and the mappings are never
    mutated by their readers, so a daemon's quiet cycle hands out the very objects the decide
    step's memo holds (compared by identity first).
    """

    ids: dict[str, IdRecord]
    written: dict[tuple[str, str], WrittenRecord]
    ids_version: str = ""
    written_version: str = ""


def _read_ids(db: sqlite3.Connection) -> dict[str, IdRecord]:
    return {
        rid: IdRecord(identity, bool(present), bool(pending), facets)
        for rid, identity, present, pending, facets in db.execute(
            "SELECT referral_id, identity, present, pending, facets FROM ids"
        )
    }


def _read_written(
    db: sqlite3.Connection, ids: Mapping[str, IdRecord]
) -> dict[tuple[str, str], WrittenRecord]:
    """The ``written`` table by (Referral ID, column), its repeated texts held once.

    Six rows per referral, each naming its ID and column and a digest that most cells of a
    column share ("New", an empty Attention): held as SQLite hands them out, every row has its
    own copies, 550 bytes a row (140 MB at 50,000 referrals). The IDs are the ``ids`` keys'
    strings; the columns and digests are interned.
    """
    known = {rid: rid for rid in ids}
    intern = sys.intern
    return {
        (known.get(rid) or intern(rid), intern(col)): WrittenRecord(
            h and intern(h), prev and intern(prev), pend and intern(pend)
        )
        for rid, col, h, prev, pend in db.execute(
            "SELECT referral_id, col, hash, previous, pending FROM written"
        )
    }


#: The latest :class:`_ViewTables` per state file, replaced whole (a read in another thread
#: sees one or the other).
_VIEW_TABLES: dict[Path, _ViewTables] = {}


class StateStore:
    """The SQLite state file plus the folder lock. Use as a context manager."""

    def __init__(
        self,
        state_dir: Path,
        *,
        wait: float = 0.0,
        on_wait: Callable[[str], None] | None = None,
    ) -> None:
        """``wait``: seconds to wait for another bridge process (the daemon mid-cycle, say)
        to let go of the folder before giving up; ``on_wait(holder)`` is told when it starts."""
        self.state_dir = state_dir
        self.wait = wait
        self.on_wait = on_wait
        self.path = state_dir / "state.sqlite"
        self._lock_fd: int | None = None
        self._db: sqlite3.Connection | None = None
        self.recovered_from: Path | None = None

    # -- opening ---------------------------------------------------------------------------
    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        if self.state_dir.exists() and not self.state_dir.is_dir():
            raise StateFolderError(
                f"state_dir {self.state_dir} is a file, not a folder: point state_dir in the "
                "config at a folder (the bridge creates it)"
            )
        try:
            self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as error:
            raise StateFolderError(
                f"Cannot create the state folder {self.state_dir} ({error.strerror}): check "
                "state_dir in the config and the permissions of its parent folder"
            ) from None
        with contextlib.suppress(OSError):
            os.chmod(self.state_dir, 0o700)
        self._acquire_lock()
        self.secret = self._read_secret()
        try:
            self._db = self._connect()
            self._check_meta(self._db)
        except (sqlite3.DatabaseError, _BadMeta):
            # F20: a corrupt state file is set aside, never deleted, and rebuilt from the sheet.
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
            aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
            os.replace(self.path, aside)
            for suffix in ("-wal", "-shm", "-journal"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(str(self.path) + suffix)
            self.recovered_from = aside
            log.warning("state file was unreadable; set aside as %s and rebuilt", aside.name)
            self._db = self._connect()

    def _read_secret(self) -> bytes:
        """The key of the state's digests of patient facets, kept beside the state file (not in
        it): a state file deleted or corrupted keeps its key, so drafts made before are still
        recognised (F20). Created once, mode 0600."""
        path = self.state_dir / "secret.key"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            data = b""
        if len(data) >= 32:
            return data[:32]
        data = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        return data

    @staticmethod
    def _check_meta(db: sqlite3.Connection) -> None:
        """A state file whose counter is not a number was tampered with or damaged: rebuilt."""
        row = db.execute("SELECT value FROM meta WHERE key='next_id'").fetchone()
        if row is None or not str(row[0]).isdigit():
            db.close()
            raise _BadMeta()

    def _acquire_lock(self) -> None:
        if not os.access(self.state_dir, os.W_OK):
            raise StateFolderError(
                f"The state folder {self.state_dir} cannot be written by this user: make the "
                f"bridge's user its owner (chown), or run `chmod u+w {self.state_dir}`"
            )
        try:
            self._lock_fd = take_lock(
                self.state_dir / "bridge.lock", wait=self.wait, on_wait=self.on_wait
            )
        except LockHeldError as held:
            waited = f" after {self.wait:.0f} s" if self.wait >= 1 else ""
            if held.holder == lock_is_held(self.state_dir / "daemon.lock"):
                raise StateLockedError(
                    f"The sheets-bridge daemon (pid {held.holder}) is mid-cycle on the state "
                    f"folder {self.state_dir} and still was{waited}: nothing was run. Try again "
                    "in a minute; `sheets-bridge status` shows what the daemon is doing",
                    holder=held.holder,
                ) from None
            raise StateLockedError(
                f"Another sheets-bridge (pid {held.holder}) is using the state folder "
                f"{self.state_dir}{waited}: stop it first, or give this one its own state_dir",
                holder=held.holder,
            ) from None

    def _connect(self) -> sqlite3.Connection:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        db = sqlite3.connect(self.path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        db.executescript(SCHEMA)
        for table, column, decl in _ADDED_COLUMNS:
            have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
            if column not in have:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
        db.execute("INSERT OR IGNORE INTO meta VALUES('schema', ?)", (str(SCHEMA_VERSION),))
        db.execute("INSERT OR IGNORE INTO meta VALUES('next_id', '1')")
        for table in _VERSIONED:
            db.execute("INSERT OR IGNORE INTO meta VALUES(?, '')", (f"{table}_version",))
        db.execute("SELECT count(*) FROM ids").fetchone()
        return db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise BridgeError("the state store is not open")
        return self._db

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: all of it lands, or none of it."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            # A table this transaction changed had its token cleared by the triggers: a new
            # one, in the same transaction, names the rows as they now stand (_ViewTables).
            db.executemany(
                "UPDATE meta SET value = lower(hex(randomblob(16))) WHERE key = ? AND value = ''",
                [(f"{table}_version",) for table in _VERSIONED],
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # -- reading ---------------------------------------------------------------------------
    def view(self, now: datetime, *, notice_hours: float = 24, log_rows: int = 200) -> StateView:
        db = self.db
        next_id = int(db.execute("SELECT value FROM meta WHERE key='next_id'").fetchone()[0])
        held = _VIEW_TABLES.get(self.path)
        ids_version = self._version(db, "ids_version")
        written_version = self._version(db, "written_version")
        if held is not None and ids_version and held.ids_version == ids_version:
            ids = held.ids
        else:
            ids = _read_ids(db)
        if held is not None and written_version and held.written_version == written_version:
            written = held.written
        else:
            written = _read_written(db, ids)
        _VIEW_TABLES[self.path] = _ViewTables(ids, written, ids_version, written_version)
        since = stored_time(now - timedelta(hours=notice_hours))
        notices = tuple(
            Notice(rid, message, datetime.fromisoformat(created))
            for rid, message, created in db.execute(
                "SELECT referral_id, message, created FROM notices WHERE created >= ? "
                "ORDER BY created, rowid",
                (since,),
            )
        )
        rows = tuple(
            (started, summary, problems)
            for started, summary, problems in db.execute(
                "SELECT started, summary, problem_text FROM runs WHERE logged = 1 "
                "ORDER BY id DESC LIMIT ?",
                (log_rows,),
            )
        )
        last = db.execute("SELECT value FROM meta WHERE key='last_problems'").fetchone()
        last_problems = frozenset(last[0].split("\n")) - {""} if last else frozenset()
        drafts = {record.key: record for record in self._draft_records("")}
        episode = self.episode()
        return StateView(
            next_id_number=next_id,
            ids=ids,
            written=written,
            notices=notices,
            log_rows=tuple((a, b, c or "") for a, b, c in rows),
            last_problems=last_problems,
            drafts=drafts,
            fresh=not ids and not written,
            secret=self.secret,
            highest_id=self._highest_id(db),
            failures=episode.failures if episode is not None else 0,
        )

    @staticmethod
    def _version(db: sqlite3.Connection, key: str) -> str:
        """The table's version token (see :class:`_ViewTables`); "" when a change cleared it
        and no transaction of the bridge's has stamped a new one since (then it is read)."""
        row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row is not None and row[0] else ""

    @staticmethod
    def _highest_id(db: sqlite3.Connection) -> int:
        """The highest Referral ID number the ledger or the audit ever named: IDs are never
        reused, even for a row deleted before the state was rebuilt from the sheet (whose drafts
        the ledger adopted) or one whose only trace is the audit."""
        found = 0
        for table in ("drafts", "audit"):
            row = db.execute(
                f"SELECT max(CAST(substr(referral_id, 3) AS INTEGER)) FROM {table} "
                "WHERE referral_id GLOB 'R-[0-9]*'"
            ).fetchone()
            found = max(found, int(row[0] or 0))
        return found

    # -- the journal -----------------------------------------------------------------------
    def record_intent(
        self,
        writes: Iterable[CellWrite],
        assigned: Mapping[str, str],
        next_id_number: int,
        now: datetime,
        *,
        present: Mapping[str, str] | None = None,
        facets: Mapping[str, tuple[str, ...]] | None = None,
    ) -> None:
        """Before touching the sheet: burn the ID numbers and mark what is about to be written.

        If the process dies after the sheet is saved but before ``commit``, the next cycle sees
        these values as the bridge's own (not hand edits) and the IDs as issued.

        ``present`` (every Referral ID the sheet carries, with its row identity) is recorded as
        known too: in a state file that is new or was rebuilt (F20) the new IDs would otherwise
        be the only known ones, and after a crash here every ID already in the sheet would look
        typed by hand.
        """
        stamp = stored_time(now)
        with self.transaction() as db:
            db.execute(
                "UPDATE meta SET value = max(CAST(value AS INTEGER), ?) WHERE key='next_id'",
                (next_id_number,),
            )
            facets = facets or {}
            db.executemany(
                "INSERT INTO ids(referral_id, identity, present, pending, first_seen, last_seen,"
                " facets) VALUES(?, ?, 0, 1, ?, ?, ?) ON CONFLICT(referral_id) DO NOTHING",
                [
                    (rid, identity, stamp, stamp, " ".join(facets.get(rid, ())))
                    for rid, identity in assigned.items()
                ],
            )
            db.executemany(
                "INSERT INTO ids(referral_id, identity, present, pending, first_seen, last_seen) "
                "VALUES(?, ?, 1, 0, ?, ?) ON CONFLICT(referral_id) DO NOTHING",
                [
                    (rid, identity, stamp, stamp)
                    for rid, identity in (present or {}).items()
                    if rid not in assigned
                ],
            )
            db.executemany(
                "INSERT INTO written(referral_id, col, pending) VALUES(?, ?, ?) "
                "ON CONFLICT(referral_id, col) DO UPDATE SET pending = excluded.pending",
                [(_write_id(w), w.column, value_hash(w.new)) for w in writes],
            )

    def commit_cycle(
        self,
        *,
        applied: Iterable[CellWrite],
        present: Mapping[str, str],
        notices: Iterable[Notice],
        run: RunRecord,
        now: datetime,
        adopted: Iterable[tuple[str, str, str]] = (),
        facets: Mapping[str, tuple[str, ...]] | None = None,
    ) -> int:
        """After the sheet write: confirm what landed, forget what did not, record the run.

        ``present`` maps every Referral ID now in the sheet to its row identity.
        """
        stamp = stored_time(now)
        applied = list(applied)
        with self.transaction() as db:
            db.executemany(
                "UPDATE written SET previous = hash, hash = ?, pending = NULL "
                "WHERE referral_id = ? AND col = ?",
                [(value_hash(w.new), _write_id(w), w.column) for w in applied],
            )
            db.execute("UPDATE written SET pending = NULL WHERE pending IS NOT NULL")
            db.executemany(
                "INSERT INTO written(referral_id, col, hash) VALUES(?, ?, ?) "
                "ON CONFLICT(referral_id, col) DO UPDATE SET hash = excluded.hash",
                list(adopted),
            )
            self._mark_present(db, present, stamp, facets)
            # A notice said again after its first saying expired (the same hand edit a second
            # time, days later) is a new event: it restarts its clock, or the next cycle would
            # drop it from Attention again at once.
            db.executemany(
                "INSERT INTO notices VALUES(?, ?, ?) ON CONFLICT(referral_id, message) "
                "DO UPDATE SET created = excluded.created WHERE excluded.created > created",
                [(n.referral_id, n.message, stored_time(n.created)) for n in notices],
            )
            run_id = self._insert_run(db, run, now)
            by_row: dict[str, list[str]] = {}
            for write in applied:
                by_row.setdefault(_write_id(write), []).append(write.column)
            db.executemany(
                "INSERT INTO audit(at, run_id, action, referral_id, columns, result) "
                "VALUES(?, ?, 'write', ?, ?, 'applied')",
                [(stamp, run_id, rid, ", ".join(cols)) for rid, cols in by_row.items()],
            )
            if run.logged:
                db.execute(
                    "INSERT OR REPLACE INTO meta VALUES('last_problems', ?)",
                    ("\n".join(sorted(run.problems)),),
                )
            self._ran(db, now, succeeded=True)
        return run_id

    @staticmethod
    def _mark_present(
        db: sqlite3.Connection,
        present: Mapping[str, str],
        stamp: str,
        facets: Mapping[str, tuple[str, ...]] | None = None,
    ) -> None:
        """Every ID in the sheet now, with its row's identity and facets (digests, no values).

        Written as a difference from what the table holds (read in the same transaction, so
        another process's writes are seen): an ID no longer in the sheet is marked absent, an ID
        new or whose identity, facets or flags changed is written, and the rest are left alone.
        The table ends as a rewrite of every row would leave it, but for ``last_seen``, which is
        then when the ID's record last changed (nothing reads it; ``meta.last_quiet`` and
        ``last_now`` say when the sheet was last seen whole). A daemon's quiet cycle so writes
        a few meta rows instead of every row of ``ids``.
        """
        facets = facets or {}
        held = {
            rid: (identity, present_, pending, held_facets)
            for rid, identity, present_, pending, held_facets in db.execute(
                "SELECT referral_id, identity, present, pending, facets FROM ids"
            )
        }
        db.executemany(
            "UPDATE ids SET present = 0, pending = 0 WHERE referral_id = ?",
            [
                (rid,)
                for rid, (_, present_, pending, _) in held.items()
                if (present_ or pending) and rid not in present
            ],
        )
        changed = []
        for rid, identity in present.items():
            new_facets = " ".join(facets.get(rid, ()))
            row = held.get(rid)
            if row is not None and row == (
                identity, 1, 0, new_facets if new_facets else row[3]
            ):
                continue
            changed.append((rid, identity, stamp, stamp, new_facets))
        db.executemany(
            "INSERT INTO ids(referral_id, identity, present, pending, first_seen, last_seen, facets)"
            " VALUES(?, ?, 1, 0, ?, ?, ?) ON CONFLICT(referral_id) DO UPDATE SET "
            "identity = excluded.identity, present = 1, pending = 0, "
            "last_seen = excluded.last_seen, "
            "facets = CASE WHEN excluded.facets != '' THEN excluded.facets ELSE ids.facets END",
            changed,
        )

    def record_quiet(
        self,
        present: Mapping[str, str],
        now: datetime,
        facets: Mapping[str, tuple[str, ...]] | None = None,
        duration: float | None = None,
    ) -> None:
        """A quiet cycle: remember when it ran and who is where; nothing else changes.

        Quiet runs are not added to the runs table (a daemon would add one every few minutes);
        ``status`` reads the time from here.
        """
        stamp = stored_time(now)
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES('last_quiet', ?)", (stamp,))
            if duration is not None:
                db.execute(
                    "INSERT OR REPLACE INTO meta VALUES('last_quiet_ms', ?)",
                    (str(round(duration * 1000)),),
                )
            self._mark_present(db, present, stamp, facets)
            self._ran(db, now, succeeded=True)

    def last_quiet(self) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key='last_quiet'").fetchone()
        return row[0] if row else None

    # -- the clock and failures ------------------------------------------------------------
    @staticmethod
    def _ran(db: sqlite3.Connection, now: datetime, *, succeeded: bool) -> None:
        """Remember the latest cycle's ``now`` (the clock-back guard compares with it); a
        cycle that completed ends a failure episode."""
        db.execute("INSERT OR REPLACE INTO meta VALUES('last_now', ?)", (stored_time(now),))
        if succeeded:
            db.execute(
                "DELETE FROM meta WHERE key IN ('failures', 'failing_since', 'last_error', "
                "'last_error_at')"
            )

    def last_now(self) -> datetime | None:
        """The ``now`` of the latest cycle that ran (completed, stopped or failed)."""
        row = self.db.execute("SELECT value FROM meta WHERE key='last_now'").fetchone()
        try:
            return datetime.fromisoformat(row[0]) if row else None
        except ValueError:
            return None

    def episode(self) -> Episode | None:
        """The failure episode under way, or None while the last cycle completed."""
        return read_episode(self.db)

    def failure_spells(self, since: datetime) -> int:
        """How many failure episodes began at or after ``since`` (each one's first run)."""
        row = self.db.execute(
            "SELECT count(*) FROM runs WHERE outcome = 'failed' AND logged = 1 AND started >= ?",
            (stored_time(since),),
        ).fetchone()
        return int(row[0])

    def record_failure(self, run: RunRecord, error: str, now: datetime) -> Episode:
        """A cycle that failed: counted in the episode, kept in the runs table for ``status``;
        the episode's first failure is logged (a Bridge Log row at the next write), the rest
        are not, so a failure that lasts a day is one row, not one every few minutes."""
        stamp = stored_time(now)
        with self.transaction() as db:
            before = read_episode(db)
            failures = (before.failures if before else 0) + 1
            since = before.since if before else now
            logged = before is None
            self._insert_run(
                db,
                RunRecord(
                    started=run.started, outcome="failed", rows_read=run.rows_read,
                    drafts=run.drafts, problems=(error,), summary=run.summary,
                    logged=logged, duration=run.duration,
                ),
                now,
            )
            db.executemany(
                "INSERT OR REPLACE INTO meta VALUES(?, ?)",
                [("failures", str(failures)), ("failing_since", stored_time(since)),
                 ("last_error", error), ("last_error_at", stamp)],
            )
            self._ran(db, now, succeeded=False)
        return Episode(failures, since, error, now)

    def record_run(self, run: RunRecord, now: datetime) -> int:
        """A run that wrote no cells (a safety stop): the runs table, and the time it ran."""
        with self.transaction() as db:
            run_id = self._insert_run(db, run, now)
            if run.logged:
                db.execute(
                    "INSERT OR REPLACE INTO meta VALUES('last_problems', ?)",
                    ("\n".join(sorted(run.problems)),),
                )
            self._ran(db, now, succeeded=False)
        return run_id

    def _insert_run(self, db: sqlite3.Connection, run: RunRecord, now: datetime) -> int:
        cursor = db.execute(
            "INSERT INTO runs(started, finished, outcome, rows_read, cells_written, tabs_written,"
            " drafts, problems, summary, problem_text, logged, duration_ms)"
            " VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                stored_time(run.started),
                stored_time(now),
                run.outcome,
                run.rows_read,
                run.cells_written,
                ", ".join(run.tabs_written),
                run.drafts,
                len(run.problems),
                run.summary,
                "\n".join(run.problems),
                int(run.logged),
                None if run.duration is None else round(run.duration * 1000),
            ),
        )
        return int(cursor.lastrowid or 0)

    # -- drafts ledger (exactly once; written by the outbox alone) --------------------------
    _DRAFT_COLUMNS = "key, referral_id, kind, referrer_key, status, ref, created, misses, facets"

    def _draft_records(self, where: str, params: tuple[object, ...] = ()) -> list[DraftRecord]:
        return [
            DraftRecord(key, rid, kind, rkey, status, ref, datetime.fromisoformat(created),
                        misses, tuple(facets.split()))
            for key, rid, kind, rkey, status, ref, created, misses, facets in self.db.execute(
                f"SELECT {self._DRAFT_COLUMNS} FROM drafts {where} ORDER BY created, key", params
            )
        ]

    def draft(self, key: str) -> DraftRecord | None:
        found = self._draft_records("WHERE key = ?", (key,))
        return found[0] if found else None

    def draft_pending(self, key: str, referral_id: str, kind: str, referrer_key: str,
                      now: datetime, facets: tuple[str, ...] = ()) -> None:
        """Journal a draft key before the draft is created (R1)."""
        self.drafts_pending([(key, referral_id, kind, referrer_key, facets)], now)

    def drafts_pending(
        self, items: Iterable[tuple[str, str, str, str, tuple[str, ...]]], now: datetime
    ) -> None:
        """Journal many (key, referral_id, kind, referrer_key, facets) in one durable transaction.

        A key the outbox had given up on (``forgotten``) and that was planned again becomes
        pending again; a key in any other state is left as it is.
        """
        stamp = stored_time(now)
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO drafts(key, referral_id, kind, referrer_key, status, created, facets) "
                "VALUES(?, ?, ?, ?, 'pending', ?, ?) ON CONFLICT(key) DO UPDATE SET "
                "status = 'pending', created = excluded.created, next_check = NULL "
                "WHERE drafts.status = 'forgotten'",
                [(k, rid, kind, rk, stamp, " ".join(facets)) for k, rid, kind, rk, facets in items],
            )

    def draft_confirmed(self, key: str, ref: str, now: datetime) -> None:
        self.drafts_confirmed([(key, ref)], now)

    def drafts_confirmed(self, items: Iterable[tuple[str, str]], now: datetime) -> None:
        """Confirm many (key, draft ref) in one transaction, each with its audit line."""
        stamp = stored_time(now)
        with self.transaction() as db:
            for key, ref in items:
                db.execute(
                    "UPDATE drafts SET status = 'confirmed', ref = ?, confirmed = ?, "
                    "next_check = NULL WHERE key = ?",
                    (ref, stamp, key),
                )
                db.execute(
                    "INSERT INTO audit(at, action, referral_id, columns, draft_ref, result) "
                    "SELECT ?, 'draft', referral_id, kind, ?, 'created' FROM drafts WHERE key = ?",
                    (stamp, ref, key),
                )

    def draft_adopt(self, key: str, referral_id: str, kind: str, ref: str, created: datetime,
                    now: datetime) -> None:
        """A draft found in the mail backend that the ledger lacks (rebuilt state): never redo it."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO drafts(key, referral_id, kind, status, ref, created, confirmed) "
                "VALUES(?, ?, ?, 'confirmed', ?, ?, ?) ON CONFLICT(key) DO NOTHING",
                (key, referral_id, kind, ref, stored_time(created), stored_time(now)),
            )

    def draft_missing(self, key: str, misses: int, next_check: datetime, now: datetime) -> None:
        """A journalled key whose draft was not found: ``unknown``, looked for again later."""
        with self.transaction() as db:
            db.execute(
                "UPDATE drafts SET status = 'unknown', misses = ?, next_check = ? WHERE key = ?",
                (misses, stored_time(next_check), key),
            )
            self._audit_draft(db, key, now, f"draft not found (look {misses}); checked again later")

    def draft_forget(self, key: str, now: datetime) -> None:
        """A journalled key whose draft never came to exist: it may be planned (and made) again.

        The record stays, marked ``forgotten``, so the create that follows knows it is a retry
        and looks the key up first.
        """
        with self.transaction() as db:
            db.execute(
                "UPDATE drafts SET status = 'forgotten', next_check = NULL "
                "WHERE key = ? AND status != 'confirmed'",
                (key,),
            )
            self._audit_draft(db, key, now, "draft never made; planned again")

    @staticmethod
    def _audit_draft(db: sqlite3.Connection, key: str, now: datetime, result: str) -> None:
        db.execute(
            "INSERT INTO audit(at, action, referral_id, columns, result) "
            "SELECT ?, 'draft', referral_id, kind, ? FROM drafts WHERE key = ?",
            (stored_time(now), result, key),
        )

    def open_drafts(self, now: datetime) -> list[DraftRecord]:
        """Keys whose fate the outbox must settle now: pending, or unknown and due a look."""
        return self._draft_records(
            "WHERE status = 'pending' OR (status = 'unknown' AND next_check <= ?)", (stored_time(now),)
        )

    def draft_keys(self) -> frozenset[str]:
        return frozenset(k for (k,) in self.db.execute("SELECT key FROM drafts"))

    def drafts_adopted(self) -> bool:
        """Whether this state file has taken in the drafts the mail backend held when it began."""
        return self.db.execute("SELECT 1 FROM meta WHERE key='drafts_adopted'").fetchone() is not None

    def mark_drafts_adopted(self, now: datetime) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES('drafts_adopted', ?)", (stored_time(now),))

    # -- status ----------------------------------------------------------------------------
    def recent_runs(self, limit: int = 10) -> list[dict[str, object]]:
        cursor = self.db.execute(
            "SELECT started, outcome, rows_read, cells_written, tabs_written, drafts, problems, "
            "summary FROM runs ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]


def read_episode(db: sqlite3.Connection) -> Episode | None:
    """The failure episode recorded in a state file (also read by ``status``, lock-free)."""
    meta = dict(
        db.execute(
            "SELECT key, value FROM meta WHERE key IN ('failures', 'failing_since', "
            "'last_error', 'last_error_at')"
        ).fetchall()
    )
    try:
        failures = int(meta.get("failures", "0"))
        if failures <= 0:
            return None
        return Episode(
            failures,
            datetime.fromisoformat(meta["failing_since"]),
            meta.get("last_error", ""),
            datetime.fromisoformat(str(meta.get("last_error_at") or meta["failing_since"])),
        )
    except (KeyError, ValueError):
        return None


def _write_id(write: CellWrite) -> str:
    """The Referral ID a write belongs to once the plan has landed (new rows get theirs now)."""
    return write.row.target_id or write.row.referral_id
