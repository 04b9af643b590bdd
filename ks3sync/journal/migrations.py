"""Schema history of the journal: one function per version, applied in order inside one transaction.

The schema version lives in SQLite's ``PRAGMA user_version`` (0 = empty file), which is transactional,
so a migration and its version bump commit together or not at all. Migrations are written as frozen DDL
(never derived from ``schema.py``'s current tables), because a migration must keep meaning what it
meant when it shipped. Add a version by appending a function and bumping ``version.SCHEMA_VERSION``;
never edit an old one. ``tests/journal/test_migrations.py`` checks that a fresh database and a migrated
v1 database end up with identical tables, columns and indexes, and that they equal what SQLAlchemy
would create from ``schema.py``.

This is the only place the journal runs through SQLAlchemy: :func:`upgrade` is imported (and
SQLAlchemy with it) only when a file must be created or migrated; an up-to-date journal opens on the
standard library's sqlite3 alone. Imports: SQLAlchemy, the standard library, the journal's connection
settings, errors and version.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from ks3sync.journal.connection import as_journal_error, connect
from ks3sync.journal.version import SCHEMA_VERSION


def _v1(conn: Connection) -> None:
    """The DESIGN-NOTES sketch: syncs, entries, changes (the queue), uploads, parts."""
    for ddl in (
        """CREATE TABLE syncs (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            source TEXT NOT NULL,
            bucket TEXT NOT NULL,
            prefix TEXT NOT NULL,
            options_hash TEXT NOT NULL,
            created_at_ns INTEGER NOT NULL
        )""",
        "CREATE UNIQUE INDEX ix_syncs_name ON syncs (name)",
        """CREATE TABLE entries (
            sync_id INTEGER NOT NULL REFERENCES syncs (id) ON DELETE CASCADE,
            path TEXT NOT NULL,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            inode INTEGER NOT NULL,
            ctime_ns INTEGER NOT NULL,
            md5 TEXT NOT NULL,
            remote_etag TEXT NOT NULL,
            remote_size INTEGER NOT NULL,
            encrypted INTEGER NOT NULL DEFAULT 0,
            synced_at_ns INTEGER NOT NULL,
            PRIMARY KEY (sync_id, path)
        ) WITHOUT ROWID""",
        """CREATE TABLE changes (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            sync_id INTEGER NOT NULL REFERENCES syncs (id) ON DELETE CASCADE,
            path TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('upsert', 'delete', 'move')),
            src_path TEXT,
            observed_ns INTEGER NOT NULL,
            due_ns INTEGER NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            parked INTEGER NOT NULL DEFAULT 0
        )""",
        "CREATE UNIQUE INDEX ix_changes_sync_path ON changes (sync_id, path)",
        "CREATE INDEX ix_changes_due ON changes (sync_id, parked, due_ns)",
        """CREATE TABLE uploads (
            id INTEGER PRIMARY KEY,
            sync_id INTEGER NOT NULL REFERENCES syncs (id) ON DELETE CASCADE,
            path TEXT NOT NULL,
            key TEXT NOT NULL,
            upload_id TEXT NOT NULL,
            part_size INTEGER NOT NULL,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            inode INTEGER NOT NULL,
            ctime_ns INTEGER NOT NULL,
            iv BLOB,
            started_at_ns INTEGER NOT NULL
        )""",
        "CREATE UNIQUE INDEX ix_uploads_upload_id ON uploads (upload_id)",
        "CREATE UNIQUE INDEX ix_uploads_sync_path ON uploads (sync_id, path)",
        """CREATE TABLE parts (
            upload_row INTEGER NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
            part_number INTEGER NOT NULL,
            size INTEGER NOT NULL,
            md5 TEXT NOT NULL,
            etag TEXT NOT NULL,
            crc64 INTEGER,
            chain_block BLOB,
            PRIMARY KEY (upload_row, part_number)
        ) WITHOUT ROWID""",
    ):
        conn.exec_driver_sql(ddl)


def _v2(conn: Connection) -> None:
    """What ``status`` needs, and in-flight claims for the queue.

    - ``changes.claimed``: a row handed out by ``due()`` and not yet done/failed. The per-path unique
      index becomes partial (one *pending* row per path), so a change that arrives while the path's
      operation is in flight queues behind it instead of being merged into work already running.
    - ``passes``: one row per mirror pass / service batch; ``errors``: recent per-path failures.
    - running totals and the last success time on ``syncs``."""
    for ddl in (
        "ALTER TABLE changes ADD COLUMN claimed INTEGER NOT NULL DEFAULT 0",
        "DROP INDEX ix_changes_sync_path",
        "CREATE UNIQUE INDEX ix_changes_pending_path ON changes (sync_id, path) WHERE claimed = 0",
        "CREATE INDEX ix_changes_path ON changes (sync_id, path)",
        "CREATE INDEX ix_changes_src_path ON changes (sync_id, src_path) WHERE src_path IS NOT NULL",
        "CREATE INDEX ix_changes_claimed ON changes (sync_id) WHERE claimed = 1",
        "ALTER TABLE syncs ADD COLUMN files_done INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE syncs ADD COLUMN bytes_done INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE syncs ADD COLUMN last_success_ns INTEGER",
        """CREATE TABLE passes (
            id INTEGER PRIMARY KEY,
            sync_id INTEGER NOT NULL REFERENCES syncs (id) ON DELETE CASCADE,
            direction TEXT NOT NULL,
            started_ns INTEGER NOT NULL,
            finished_ns INTEGER NOT NULL,
            uploaded INTEGER NOT NULL,
            copied INTEGER NOT NULL,
            deleted INTEGER NOT NULL,
            downloaded INTEGER NOT NULL,
            adopted INTEGER NOT NULL,
            skipped INTEGER NOT NULL,
            failed INTEGER NOT NULL,
            bytes_sent INTEGER NOT NULL,
            bytes_received INTEGER NOT NULL,
            refused_deletes INTEGER NOT NULL,
            error TEXT
        )""",
        "CREATE INDEX ix_passes_sync_finished ON passes (sync_id, finished_ns)",
        """CREATE TABLE errors (
            id INTEGER PRIMARY KEY,
            sync_id INTEGER NOT NULL REFERENCES syncs (id) ON DELETE CASCADE,
            path TEXT,
            message TEXT NOT NULL,
            at_ns INTEGER NOT NULL
        )""",
        "CREATE INDEX ix_errors_sync_at ON errors (sync_id, at_ns)",
    ):
        conn.exec_driver_sql(ddl)


def _v3(conn: Connection) -> None:
    """What ``status`` needs to tell ok, failing and stopped apart (before v3 this lived in a status
    file beside the journal, which is not the journal, and had no failure in it).

    - ``service``: the one service of this state directory (a single row, id 1): its pid, start,
      heartbeat (written every few seconds) and clean stop.
    - ``health``: per sync, what the service is doing (``activity``: watching, reconciling, ...) and
      whether it is failing: since when, with which error (one line, no secret)."""
    for ddl in (
        """CREATE TABLE service (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            pid INTEGER NOT NULL,
            started_ns INTEGER NOT NULL,
            heartbeat_ns INTEGER NOT NULL,
            stopped_ns INTEGER
        )""",
        """CREATE TABLE health (
            sync_id INTEGER PRIMARY KEY REFERENCES syncs (id) ON DELETE CASCADE,
            activity TEXT NOT NULL,
            reason TEXT,
            failing_since_ns INTEGER,
            last_error TEXT,
            last_error_ns INTEGER,
            updated_ns INTEGER NOT NULL
        )""",
    ):
        conn.exec_driver_sql(ddl)


# MIGRATIONS[n] turns a version n-1 database into version n.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {1: _v1, 2: _v2, 3: _v3}
assert sorted(MIGRATIONS) == list(range(1, SCHEMA_VERSION + 1)), "migrations must be contiguous"


def migrate(conn: Connection, current: int, target: int = SCHEMA_VERSION) -> list[int]:
    """Apply migrations ``current+1 .. target`` on ``conn`` (the caller owns the transaction) and set
    ``user_version``. Returns the versions applied."""
    applied = []
    for version in range(current + 1, target + 1):
        MIGRATIONS[version](conn)
        applied.append(version)
    if applied:
        conn.exec_driver_sql(f"PRAGMA user_version = {int(target)}")
    return applied


def upgrade(path: Path, refuse: Callable[[Path, int, int], None]) -> list[int]:
    """Bring the file at ``path`` to ``SCHEMA_VERSION`` in one write transaction taken up front
    (``BEGIN IMMEDIATE``) with FULL sync, on a connection of its own. ``refuse(path, version, objects)``
    runs again inside the write lock: another process may have migrated (or a newer ks3sync written)
    since the caller looked. Returns the versions applied; SQLite errors become one-line JournalErrors."""
    engine = create_engine("sqlite+pysqlite://", creator=lambda: connect(path), poolclass=NullPool)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # the transaction is ours (see _on_begin)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("PRAGMA synchronous = FULL")
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    try:
        with engine.begin() as conn:
            version = int(conn.exec_driver_sql("PRAGMA user_version").scalar_one())
            refuse(path, version, conn.exec_driver_sql(
                "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").scalar_one())
            return migrate(conn, version)
    except SQLAlchemyError as exc:
        raise as_journal_error(path, exc) from exc
    finally:
        engine.dispose()
