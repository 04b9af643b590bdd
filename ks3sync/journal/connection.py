"""Opening the SQLite file through one SQLAlchemy ``Engine``: sanity checks, the pool, the
connection and transaction rules as engine events, error mapping.

Rules and why (see docs/journal.md, "Durability" and "Concurrency"):
- WAL (persistent in the file, switched on once at open): readers (``status``, the planner's bulk
  read) never block the writer and vice versa.
- ``connect`` event: ``foreign_keys`` on, ``busy_timeout`` (another process on the same journal waits
  instead of failing), and pysqlite's implicit transactions off: the ``begin`` event issues them.
- ``begin`` event: a connection whose execution options carry ``SYNCHRONOUS`` is the writer; it
  takes the write lock up front with ``BEGIN IMMEDIATE`` (never a failed lock upgrade half-way) after
  setting ``PRAGMA synchronous`` to the transaction's level when it differs from the connection's:
  NORMAL by default (in WAL mode a commit survives a killed process; only an OS crash or power cut can
  roll back the last transactions), FULL for write-ahead records whose loss the rest of the system
  could not recover from cheaply (the change queue, multipart upload ids, migrations). Any other
  connection is a reader: plain ``BEGIN``, one snapshot for the whole lease.
- Read-only (``read_only``, ``Journal.open(..., read_only=True)``, for ``status``): no writer, and
  every connection opened by SQLite with ``mode=ro``, so nothing this engine does can change the file.
- The pool (``QueuePool``): the writer holds one connection for the journal's life; readers lease the
  others (``Readers``: 8 kept idle, at most 40 open; a caller that finds all leased waits 60 s and
  then gets a ``JournalError``, a leak or a stuck reader).

Imports: SQLAlchemy, the standard library, the journal's errors.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import QueuePool

from ks3sync.journal.errors import JournalError

SQLITE_HEADER = b"SQLite format 3\x00"
BUSY_TIMEOUT_MS = 30_000


@dataclass(frozen=True)
class Readers:
    """Bounds of the reader pool: ``keep`` idle, at most ``limit`` open, ``wait_s`` for a free one."""

    keep: int = 8
    limit: int = 40
    wait_s: float = 60.0


DEFAULT_READERS = Readers()

# The execution option that makes a connection the writer; its value is the transaction's
# ``PRAGMA synchronous`` ("FULL" or "NORMAL"). Also the key, in the pooled connection's ``info``,
# of the level last set on it (a per-connection setting: issued only when it changes).
SYNCHRONOUS = "ks3sync_synchronous"


def check_file(path: Path, *, read_only: bool = False) -> None:
    """Fail early, with the path in the message, for things SQLite would report obscurely. Creates the
    journal's folder unless ``read_only``, which instead requires the file to exist."""
    if not read_only:
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise JournalError(f"{path}: cannot create the journal's folder: {exc.strerror}") from exc
    if path.is_dir():
        raise JournalError(f"{path}: is a directory, not a journal file")
    if not path.exists():
        if read_only:
            raise JournalError(f"{path}: no journal (the file does not exist)")
        return
    try:
        with path.open("rb") as fh:
            header = fh.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise JournalError(f"{path}: cannot read the journal: {exc.strerror}") from exc
    if header and header != SQLITE_HEADER:
        raise JournalError(f"{path}: not a ks3sync journal (the file is not an SQLite database)")


def journal_engine(path: Path, readers: Readers = DEFAULT_READERS, *, read_only: bool = False) -> Engine:
    """The engine of one journal file: the writer's connection plus the readers'; with ``read_only``,
    readers only, each opened by SQLite read-only (``mode=ro``: it cannot write the file, nor create it)."""
    # Read-write: str(path), not a URI, so any file name works, including '?' and '%'. Read-only needs the
    # URI; as_uri() percent-encodes every such byte. SQLite still opens the -wal and -shm beside a WAL
    # file (creating them, empty and owned like the file, when no writer has them open): readers mark
    # their snapshot in the -shm, which is shared memory, not the journal's content.
    name = path.absolute().as_uri() + "?mode=ro" if read_only else str(path)

    def creator() -> sqlite3.Connection:
        return sqlite3.connect(
            name,
            timeout=BUSY_TIMEOUT_MS / 1000,
            check_same_thread=False,
            isolation_level=None,
            uri=read_only,
        )

    engine = create_engine(
        "sqlite+pysqlite://",
        creator=creator,
        poolclass=QueuePool,
        pool_size=readers.keep + 1,
        max_overflow=readers.limit - readers.keep,
        pool_timeout=readers.wait_s,
    )
    event.listen(engine, "connect", _on_connect)
    event.listen(engine, "begin", _on_begin)
    return engine


def _on_connect(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # transactions are begun by _on_begin, not by pysqlite
    dbapi_conn.execute("PRAGMA foreign_keys = ON")
    dbapi_conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")


def _on_begin(conn: Connection) -> None:
    raw = conn.connection.driver_connection
    assert raw is not None
    level = conn.get_execution_options().get(SYNCHRONOUS)
    if level is None:
        raw.execute("BEGIN")
        return
    info = conn.connection.info
    if info.get(SYNCHRONOUS) != level:
        raw.execute(f"PRAGMA synchronous = {level}")
        info[SYNCHRONOUS] = level
    raw.execute("BEGIN IMMEDIATE")


@contextmanager
def read_lease(
    engine: Engine, path: Path, readers: Readers, closed: Callable[[], bool]
) -> Iterator[Connection]:
    """A pooled reader inside one read transaction, given back (the snapshot ended) however the block
    ends; closed instead of pooled when ``closed()`` says the journal closed meanwhile."""
    try:
        conn = engine.connect()
    except sa_exc.TimeoutError as exc:
        raise JournalError(
            f"{path}: all {readers.limit} journal read connections stayed busy for {readers.wait_s:.0f} s"
        ) from exc
    try:
        conn.begin()
        yield conn
    finally:
        if closed():
            conn.invalidate()  # the journal closed while this reader was out: close it, do not pool it
        conn.close()  # rolls the read transaction back and returns the connection


def restrict_permissions(path: Path) -> None:
    """The journal holds file names and sizes, not secrets, but it is nobody else's business."""
    try:
        os.chmod(path, 0o600)
    except OSError:
        # Not ours to change (a shared, pre-existing file): SQLite already opened it, so go on.
        return


def is_database_error(exc: BaseException) -> bool:
    """SQLite's own errors, raw or wrapped by SQLAlchemy. A UnicodeDecodeError is one too: the journal
    writes only valid text, so undecodable bytes (in a row, or in an error message quoting a damaged
    schema) mean a damaged file."""
    return isinstance(exc, (sqlite3.Error, sa_exc.DBAPIError, UnicodeDecodeError))


def as_journal_error(path: Path, exc: BaseException) -> JournalError:
    """One line naming the file, from whatever SQLite said (directly, or wrapped by SQLAlchemy's
    DBAPIError: its ``orig`` is the sqlite3 error)."""
    orig = getattr(exc, "orig", None) or exc
    if isinstance(orig, UnicodeDecodeError):
        return JournalError(
            f"{path}: the journal is corrupted (SQLite returned bytes that are not UTF-8 text);"
            " move it aside to rebuild it from a scan and a listing"
        )
    text = str(orig).splitlines()[0] if str(orig) else type(orig).__name__
    if "file is not a database" in text or "malformed" in text:
        return JournalError(
            f"{path}: the journal is corrupted ({text}); move it aside to rebuild it "
            "from a scan and a listing"
        )
    if "locked" in text or "busy" in text:
        return JournalError(f"{path}: the journal is locked by another process ({text})")
    if "unable to open" in text:
        # Said by a read-only open too (status): the file or the -wal/-shm beside it could not be opened.
        return JournalError(f"{path}: cannot open the journal ({text})")
    if "readonly" in text:
        return JournalError(f"{path}: cannot write the journal ({text})")
    return JournalError(f"{path}: journal error: {text}")
