"""The journal's schema as SQLAlchemy Core tables: its one definition.

A new journal is created from these tables (``metadata.create_all``); every statement the journal runs
is built from them (``journal.py``, ``checkpoint.py``, ``queue.py``, ``health.py``); an older journal is
brought here by the steps of ``migrations.py``, and a test requires each old version, migrated, to equal
what ``create_all`` makes (columns, defaults, constraints, indexes, foreign keys). Changing a table here
therefore needs a migration step and a ``SCHEMA_VERSION`` bump. See ``docs/journal.md`` for what every
table and column means. Imports: SQLAlchemy only.
"""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    text,
)

metadata = MetaData()

syncs = Table(
    "syncs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("bucket", Text, nullable=False),
    Column("prefix", Text, nullable=False),
    Column("options_hash", Text, nullable=False),
    Column("created_at_ns", Integer, nullable=False),
    Column("files_done", Integer, nullable=False, server_default=text("0")),
    Column("bytes_done", Integer, nullable=False, server_default=text("0")),
    Column("last_success_ns", Integer),
    Index("ix_syncs_name", "name", unique=True),
)

entries = Table(
    "entries",
    metadata,
    Column("sync_id", Integer, ForeignKey("syncs.id", ondelete="CASCADE"), nullable=False),
    Column("path", Text, nullable=False),
    Column("size", Integer, nullable=False),
    Column("mtime_ns", Integer, nullable=False),
    Column("inode", Integer, nullable=False),
    Column("ctime_ns", Integer, nullable=False),
    Column("md5", Text, nullable=False),
    Column("remote_etag", Text, nullable=False),
    Column("remote_size", Integer, nullable=False),
    Column("encrypted", Integer, nullable=False, server_default=text("0")),
    Column("synced_at_ns", Integer, nullable=False),
    PrimaryKeyConstraint("sync_id", "path"),
    sqlite_with_rowid=False,
)

changes = Table(
    "changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sync_id", Integer, ForeignKey("syncs.id", ondelete="CASCADE"), nullable=False),
    Column("path", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("src_path", Text),
    Column("observed_ns", Integer, nullable=False),
    Column("due_ns", Integer, nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("last_error", Text),
    Column("parked", Integer, nullable=False, server_default=text("0")),
    Column("claimed", Integer, nullable=False, server_default=text("0")),
    Index("ix_changes_due", "sync_id", "parked", "due_ns"),
    Index("ix_changes_pending_path", "sync_id", "path", unique=True, sqlite_where=text("claimed = 0")),
    Index("ix_changes_path", "sync_id", "path"),
    Index("ix_changes_src_path", "sync_id", "src_path", sqlite_where=text("src_path IS NOT NULL")),
    Index("ix_changes_claimed", "sync_id", sqlite_where=text("claimed = 1")),
    CheckConstraint("kind IN ('upsert', 'delete', 'move')"),
    # Ids are never reused: a worker still holding the id of a row that was dropped (superseded while
    # in flight) must not finish a newer row that got the same id.
    sqlite_autoincrement=True,
)

uploads = Table(
    "uploads",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("sync_id", Integer, ForeignKey("syncs.id", ondelete="CASCADE"), nullable=False),
    Column("path", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("upload_id", Text, nullable=False),
    Column("part_size", Integer, nullable=False),
    Column("size", Integer, nullable=False),
    Column("mtime_ns", Integer, nullable=False),
    Column("inode", Integer, nullable=False),
    Column("ctime_ns", Integer, nullable=False),
    Column("iv", LargeBinary),
    Column("started_at_ns", Integer, nullable=False),
    Index("ix_uploads_upload_id", "upload_id", unique=True),
    Index("ix_uploads_sync_path", "sync_id", "path", unique=True),
)

parts = Table(
    "parts",
    metadata,
    Column("upload_row", Integer, ForeignKey("uploads.id", ondelete="CASCADE"), nullable=False),
    Column("part_number", Integer, nullable=False),
    Column("size", Integer, nullable=False),
    Column("md5", Text, nullable=False),
    Column("etag", Text, nullable=False),
    Column("crc64", Integer),  # stored signed (two's complement): SQLite integers are 64-bit signed
    Column("chain_block", LargeBinary),
    PrimaryKeyConstraint("upload_row", "part_number"),
    sqlite_with_rowid=False,
)

passes = Table(
    "passes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("sync_id", Integer, ForeignKey("syncs.id", ondelete="CASCADE"), nullable=False),
    Column("direction", Text, nullable=False),
    Column("started_ns", Integer, nullable=False),
    Column("finished_ns", Integer, nullable=False),
    Column("uploaded", Integer, nullable=False),
    Column("copied", Integer, nullable=False),
    Column("deleted", Integer, nullable=False),
    Column("downloaded", Integer, nullable=False),
    Column("adopted", Integer, nullable=False),
    Column("skipped", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    Column("bytes_sent", Integer, nullable=False),
    Column("bytes_received", Integer, nullable=False),
    Column("refused_deletes", Integer, nullable=False),
    Column("error", Text),
    Index("ix_passes_sync_finished", "sync_id", "finished_ns"),
)

errors = Table(
    "errors",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("sync_id", Integer, ForeignKey("syncs.id", ondelete="CASCADE"), nullable=False),
    Column("path", Text),
    Column("message", Text, nullable=False),
    Column("at_ns", Integer, nullable=False),
    Index("ix_errors_sync_at", "sync_id", "at_ns"),
)

service = Table(
    "service",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("pid", Integer, nullable=False),
    Column("started_ns", Integer, nullable=False),
    Column("heartbeat_ns", Integer, nullable=False),
    Column("stopped_ns", Integer),
    CheckConstraint("id = 1"),
)

health = Table(
    "health",
    metadata,
    Column("sync_id", Integer, ForeignKey("syncs.id", ondelete="CASCADE"), primary_key=True),
    Column("activity", Text, nullable=False),
    Column("reason", Text),
    Column("failing_since_ns", Integer),
    Column("last_error", Text),
    Column("last_error_ns", Integer),
    Column("updated_ns", Integer, nullable=False),
)

verification = Table(
    "verification",
    metadata,
    Column("sync_id", Integer, ForeignKey("syncs.id", ondelete="CASCADE"), primary_key=True),
    Column("cursor", Text),
    Column("round_started_ns", Integer),
    Column("last_full_ns", Integer),
    Column("rounds", Integer, nullable=False, server_default=text("0")),
    Column("checked", Integer, nullable=False, server_default=text("0")),
    Column("mismatches", Integer, nullable=False, server_default=text("0")),
    Column("last_mismatch_ns", Integer),
    Column("updated_ns", Integer, nullable=False),
)
