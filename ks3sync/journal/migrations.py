"""Creating the journal's schema, and bringing an older journal to it one Alembic step at a time.

- A new file (version 0, empty) gets ``schema.metadata.create_all``: the tables as ``schema.py``
  defines them, at ``SCHEMA_VERSION``.
- An older file runs each :class:`Step` after its version, in order. A step is Alembic's
  ``upgrade(op)`` (``alembic.operations.Operations`` on the journal's own connection, with neither an
  ``alembic.ini`` nor a version table: the version is SQLite's ``PRAGMA user_version``). A step is
  frozen: it names its tables and columns itself, never through ``schema.py``, because it must keep
  meaning what it meant when it shipped. Adding a version: append a step, bump
  ``version.SCHEMA_VERSION``, change ``schema.py`` to match; ``tests/journal/test_migrations.py``
  migrates a file of every older version (built from that test's own frozen copies of each version's
  DDL), checks its data, and requires the result to equal what ``create_all`` makes. A table that
  SQLite cannot ``ALTER`` in place is rebuilt with Alembic's ``op.batch_alter_table``.
- Everything (steps and version bump) runs in the caller's one write transaction (``BEGIN
  IMMEDIATE``, FULL sync): ``user_version`` is transactional, so a failed migration leaves the file
  exactly as it was. Downgrades do not exist: a journal from a newer ks3sync is refused
  (``version.refuse_unknown``).

Alembic is imported only when an older file is migrated, never to open or create one. Imports:
SQLAlchemy (Alembic in ``upgrade``), the journal's schema, statements and version.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import (
    CheckConstraint,
    Column,
    Connection,
    ForeignKey,
    Integer,
    Text,
    bindparam,
    column,
    func,
    not_,
    select,
    table,
    text,
)

from ks3sync.journal.schema import metadata
from ks3sync.journal.sql import Prepared, dbapi
from ks3sync.journal.version import SCHEMA_VERSION

if TYPE_CHECKING:
    from alembic.operations import Operations


@dataclass(frozen=True)
class Step:
    """Turns a journal at ``down_revision`` into one at ``revision``."""

    revision: int
    down_revision: int
    upgrade: Callable[[Operations], None]


def _sync_fk() -> ForeignKey:
    return ForeignKey("syncs.id", ondelete="CASCADE")


def _v2(op: Operations) -> None:
    """What ``status`` needs, and in-flight claims for the queue.

    - ``changes.claimed``: a row handed out by ``due()`` and not yet done/failed. The per-path unique
      index becomes partial (one *pending* row per path), so a change that arrives while the path's
      operation is in flight queues behind it instead of being merged into work already running.
    - ``passes``: one row per mirror pass / service batch; ``errors``: recent per-path failures.
    - running totals and the last success time on ``syncs``."""
    op.add_column("changes", Column("claimed", Integer, nullable=False, server_default=text("0")))
    op.drop_index("ix_changes_sync_path", table_name="changes")
    op.create_index(
        "ix_changes_pending_path",
        "changes",
        ["sync_id", "path"],
        unique=True,
        sqlite_where=text("claimed = 0"),
    )
    op.create_index("ix_changes_path", "changes", ["sync_id", "path"])
    op.create_index(
        "ix_changes_src_path", "changes", ["sync_id", "src_path"], sqlite_where=text("src_path IS NOT NULL")
    )
    op.create_index("ix_changes_claimed", "changes", ["sync_id"], sqlite_where=text("claimed = 1"))
    op.add_column("syncs", Column("files_done", Integer, nullable=False, server_default=text("0")))
    op.add_column("syncs", Column("bytes_done", Integer, nullable=False, server_default=text("0")))
    op.add_column("syncs", Column("last_success_ns", Integer))
    counters = (
        "uploaded",
        "copied",
        "deleted",
        "downloaded",
        "adopted",
        "skipped",
        "failed",
        "bytes_sent",
        "bytes_received",
        "refused_deletes",
    )
    op.create_table(
        "passes",
        Column("id", Integer, primary_key=True),
        Column("sync_id", Integer, _sync_fk(), nullable=False),
        Column("direction", Text, nullable=False),
        Column("started_ns", Integer, nullable=False),
        Column("finished_ns", Integer, nullable=False),
        *(Column(name, Integer, nullable=False) for name in counters),
        Column("error", Text),
    )
    op.create_index("ix_passes_sync_finished", "passes", ["sync_id", "finished_ns"])
    op.create_table(
        "errors",
        Column("id", Integer, primary_key=True),
        Column("sync_id", Integer, _sync_fk(), nullable=False),
        Column("path", Text),
        Column("message", Text, nullable=False),
        Column("at_ns", Integer, nullable=False),
    )
    op.create_index("ix_errors_sync_at", "errors", ["sync_id", "at_ns"])


def _v3(op: Operations) -> None:
    """What ``status`` needs to tell ok, failing and stopped apart (before v3 this lived in a status
    file beside the journal, which is not the journal, and had no failure in it).

    - ``service``: the one service of this state directory (a single row, id 1): its pid, start,
      heartbeat (written every few seconds) and clean stop.
    - ``health``: per sync, what the service is doing (``activity``: watching, reconciling, ...) and
      whether it is failing: since when, with which error (one line, no secret)."""
    op.create_table(
        "service",
        Column("id", Integer, primary_key=True),
        Column("pid", Integer, nullable=False),
        Column("started_ns", Integer, nullable=False),
        Column("heartbeat_ns", Integer, nullable=False),
        Column("stopped_ns", Integer),
        CheckConstraint("id = 1"),
    )
    op.create_table(
        "health",
        Column("sync_id", Integer, _sync_fk(), primary_key=True),
        Column("activity", Text, nullable=False),
        Column("reason", Text),
        Column("failing_since_ns", Integer),
        Column("last_error", Text),
        Column("last_error_ns", Integer),
        Column("updated_ns", Integer, nullable=False),
    )


def _v4(op: Operations) -> None:
    """Continuous verification (the service re-checks what it uploaded, ``daemon/verify.py``): per sync,
    the cursor of the round under way, when the last full round ended, and the mismatches found."""
    op.create_table(
        "verification",
        Column("sync_id", Integer, _sync_fk(), primary_key=True),
        Column("cursor", Text),
        Column("round_started_ns", Integer),
        Column("last_full_ns", Integer),
        Column("rounds", Integer, nullable=False, server_default=text("0")),
        Column("checked", Integer, nullable=False, server_default=text("0")),
        Column("mismatches", Integer, nullable=False, server_default=text("0")),
        Column("last_mismatch_ns", Integer),
        Column("updated_ns", Integer, nullable=False),
    )


# Version 1 (the DESIGN-NOTES sketch: syncs, entries, changes, uploads, parts) is only ever a starting
# point now: a new file is created at the current version.
STEPS: tuple[Step, ...] = (
    Step(2, 1, _v2),
    Step(3, 2, _v3),
    Step(4, 3, _v4),
)
assert [(s.down_revision, s.revision) for s in STEPS] == [(v - 1, v) for v in range(2, SCHEMA_VERSION + 1)], (
    "steps must be contiguous up to SCHEMA_VERSION"
)

_sqlite_master = table("sqlite_master", column("name"))
_FOREIGN_OBJECTS = Prepared(
    select(func.count())
    .select_from(_sqlite_master)
    .where(not_(_sqlite_master.c.name.like(bindparam("internal"), escape="/"))),
    "internal",
)


def foreign_objects(raw: sqlite3.Connection) -> int:
    """Tables, indexes, views and triggers in the file that are not SQLite's own."""
    return int(_FOREIGN_OBJECTS.one(raw, ("sqlite/_%",))[0])


def upgrade(db: Connection, path: Path, refuse: Callable[[Path, int, int], None]) -> list[int]:
    """Bring the file to ``SCHEMA_VERSION`` inside the caller's write transaction. ``refuse(path,
    version, objects)`` runs first: another process may have created or migrated the file (or a newer
    ks3sync written it) since the caller looked. Returns the versions reached (empty if none)."""
    raw = dbapi(db)
    version = int(raw.execute("PRAGMA user_version").fetchone()[0])
    refuse(path, version, foreign_objects(raw) if version == 0 else 0)
    if version == 0:
        metadata.create_all(db, checkfirst=False)
        applied = [SCHEMA_VERSION]
    else:
        applied = migrate(db, version)
    if applied:
        raw.execute(f"PRAGMA user_version = {int(applied[-1])}")
    return applied


def migrate(db: Connection, current: int, target: int = SCHEMA_VERSION) -> list[int]:
    """Run the steps from ``current`` up to ``target`` on ``db`` (the caller owns the transaction and
    sets ``user_version``). Returns the revisions applied."""
    pending = [step for step in STEPS if current <= step.down_revision and step.revision <= target]
    if not pending:
        return []
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    op = Operations(MigrationContext.configure(db))
    for step in pending:
        step.upgrade(op)
    return [step.revision for step in pending]
