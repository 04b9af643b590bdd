"""Opening the SQLite file: sanity checks, per-connection settings, the reader pool, error mapping.

Settings and why (see docs/journal.md, "Durability"):
- WAL: readers (``status``, the planner's bulk read) never block the writer and vice versa.
- ``synchronous`` is chosen per write transaction by the journal's writer: NORMAL by default (in WAL
  mode a commit survives a killed process; only an OS crash or power cut can roll back the last
  transactions), FULL for write-ahead records whose loss the rest of the system could not recover from
  cheaply (the change queue, multipart upload ids).
- We issue ``BEGIN`` ourselves (pysqlite's implicit transactions are switched off) so that writers take
  the write lock up front with ``BEGIN IMMEDIATE`` and never fail half-way on a lock upgrade.
- ``busy_timeout``: another process (a second ks3sync on the same journal) waits instead of failing.

Only the standard library: opening an up-to-date journal must not pay for SQLAlchemy (~0.15 s of
imports, a large part of a no-change mirror's run time); only creating or migrating the schema
(``migrations.py``) loads it. Imports nothing else from ks3sync but the journal's errors.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ks3sync.journal.errors import JournalError

SQLITE_HEADER = b"SQLite format 3\x00"
BUSY_TIMEOUT_MS = 30_000


def check_file(path: Path) -> None:
    """Fail early, with the path in the message, for things SQLite would report obscurely."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise JournalError(f"{path}: cannot create the journal's folder: {exc.strerror}") from exc
    if path.is_dir():
        raise JournalError(f"{path}: is a directory, not a journal file")
    if not path.exists():
        return
    try:
        with path.open("rb") as fh:
            header = fh.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise JournalError(f"{path}: cannot read the journal: {exc.strerror}") from exc
    if header and header != SQLITE_HEADER:
        raise JournalError(f"{path}: not a ks3sync journal (the file is not an SQLite database)")


def connect(path: Path) -> sqlite3.Connection:
    """A connection with the journal's settings; transactions are the caller's (``BEGIN`` ...)."""
    # str(path), not a URI: any file name works, including '?' and '%'.
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False,
                           isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    except sqlite3.Error:
        conn.close()
        raise
    return conn


class ReaderPool:
    """Read connections for any thread: at most ``limit`` open at once, ``keep`` of them kept idle.

    Each lease runs in one read transaction (``BEGIN`` ... ``ROLLBACK``), so a method that issues several
    statements sees one snapshot, and WAL lets it run beside the writer. A caller that finds every
    connection leased waits up to ``wait_s`` (a leak or a stuck reader), then gets a ``JournalError``."""

    def __init__(self, path: Path, *, keep: int = 8, limit: int = 40, wait_s: float = 60.0) -> None:
        self._path = path
        self._keep = keep
        self._limit = limit
        self._wait_s = wait_s
        self._idle: list[sqlite3.Connection] = []
        self._open = 0  # idle + leased
        self._closed = False
        self._cond = threading.Condition(threading.Lock())

    @contextmanager
    def lease(self) -> Iterator[sqlite3.Connection]:
        """A connection inside a read transaction; returned to the pool however the block ends."""
        conn = self._take()
        try:
            conn.execute("BEGIN")
            yield conn
        finally:
            self._give_back(conn)

    def _take(self) -> sqlite3.Connection:
        deadline = time.monotonic() + self._wait_s
        with self._cond:
            while True:
                if self._closed:
                    raise JournalError(f"{self._path}: the journal is closed")
                if self._idle:
                    return self._idle.pop()
                if self._open < self._limit:
                    self._open += 1
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise JournalError(f"{self._path}: all {self._limit} journal read connections stayed "
                                       f"busy for {self._wait_s:.0f} s")
                self._cond.wait(left)
        try:
            return connect(self._path)  # outside the pool's lock: opening a file may block
        except BaseException:
            with self._cond:
                self._open -= 1
                self._cond.notify()
            raise

    def _give_back(self, conn: sqlite3.Connection) -> None:
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")  # readers change nothing; this only ends the snapshot
            keep = True
        except sqlite3.Error:
            keep = False  # a connection that cannot even roll back is not worth reusing
        with self._cond:
            pooled = keep and not self._closed and len(self._idle) < self._keep
            if pooled:
                self._idle.append(conn)
            else:
                self._open -= 1
            self._cond.notify()
        if not pooled:
            conn.close()

    def close(self) -> None:
        """Close the idle connections now; leased ones close when they come back."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._open -= len(idle)
            self._cond.notify_all()
        for conn in idle:
            conn.close()


def restrict_permissions(path: Path) -> None:
    """The journal holds file names and sizes, not secrets, but it is nobody else's business."""
    try:
        os.chmod(path, 0o600)
    except OSError:
        # Not ours to change (a shared, pre-existing file): SQLite already opened it, so go on.
        return


def as_journal_error(path: Path, exc: Exception) -> JournalError:
    """One line naming the file, from whatever SQLite said (directly, or wrapped by SQLAlchemy's
    DBAPIError during a migration: its ``orig`` is the sqlite3 error)."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).splitlines()[0] if str(orig) else type(orig).__name__
    if "file is not a database" in text or "malformed" in text:
        return JournalError(f"{path}: the journal is corrupted ({text}); move it aside to rebuild it "
                            "from a scan and a listing")
    if "locked" in text or "busy" in text:
        return JournalError(f"{path}: the journal is locked by another process ({text})")
    if "readonly" in text or "unable to open" in text:
        return JournalError(f"{path}: cannot write the journal ({text})")
    return JournalError(f"{path}: journal error: {text}")
