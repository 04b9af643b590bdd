"""Opening the SQLite file: sanity checks, the engine, per-connection settings, error mapping.

Settings and why (see docs/journal.md, "Durability"):
- WAL: readers (``status``, the planner's bulk read) never block the writer and vice versa.
- ``synchronous`` is chosen per write transaction through the ``ks3sync_sync`` execution option:
  NORMAL by default (in WAL mode a commit survives a killed process; only an OS crash or power cut can
  roll back the last transactions), FULL for write-ahead records whose loss the rest of the system
  could not recover from cheaply (the change queue, multipart upload ids).
- We issue ``BEGIN`` ourselves (pysqlite's implicit transactions are switched off) so that writers take
  the write lock up front with ``BEGIN IMMEDIATE`` and never fail half-way on a lock upgrade.
- ``busy_timeout``: another process (a second ks3sync on the same journal) waits instead of failing.

Imports: sqlalchemy, sqlite3, the standard library; nothing else from ks3sync.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.pool import QueuePool

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


def make_engine(path: Path) -> Engine:
    def connect() -> sqlite3.Connection:
        # A creator (not a URL) so that any file name works, including '?' and '%'.
        return sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False,
                               isolation_level=None)

    engine = create_engine("sqlite+pysqlite://", creator=connect, poolclass=QueuePool,
                           pool_size=8, max_overflow=32, pool_timeout=60)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # transactions are ours (see _on_begin)
        dbapi_conn.execute("PRAGMA foreign_keys = ON")
        dbapi_conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        opts = conn.get_execution_options()
        mode = opts.get("ks3sync_sync")
        if mode is not None:
            # A writer: choose this transaction's durability, then take the write lock up front.
            conn.exec_driver_sql(f"PRAGMA synchronous = {'FULL' if mode == 'FULL' else 'NORMAL'}")
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    return engine


def restrict_permissions(path: Path) -> None:
    """The journal holds file names and sizes, not secrets, but it is nobody else's business."""
    try:
        os.chmod(path, 0o600)
    except OSError:
        # Not ours to change (a shared, pre-existing file): SQLite already opened it, so go on.
        return


def as_journal_error(path: Path, exc: SQLAlchemyError | sqlite3.Error) -> JournalError:
    """One line naming the file, from whatever SQLite said."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    text = str(orig).splitlines()[0] if str(orig) else type(orig).__name__
    if "file is not a database" in text or "malformed" in text:
        return JournalError(f"{path}: the journal is corrupted ({text}); move it aside to rebuild it "
                            "from a scan and a listing")
    if "locked" in text or "busy" in text:
        return JournalError(f"{path}: the journal is locked by another process ({text})")
    if "readonly" in text or "unable to open" in text:
        return JournalError(f"{path}: cannot write the journal ({text})")
    return JournalError(f"{path}: journal error: {text}")
