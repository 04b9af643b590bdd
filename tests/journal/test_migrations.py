"""Schema versions: a journal of every older version (v1, v2, v3, built from this test's own frozen copies
of their DDL, as those ks3sync versions wrote them) migrates to the current one, keeps its data, and ends
equal to a freshly created journal, which is what SQLAlchemy's ``metadata.create_all`` makes of
``schema.py``; a failed migration changes nothing; Alembic is loaded only to migrate."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from ks3sync.journal import SCHEMA_VERSION, HealthRecord, Journal, ServiceRecord
from ks3sync.journal.migrations import STEPS
from ks3sync.journal.schema import metadata
from ks3sync.model import FileIdentity

# The v1 schema as this test remembers it: deliberately not imported from the migrations module.
V1_DDL = """
CREATE TABLE syncs (id INTEGER PRIMARY KEY, name TEXT NOT NULL, source TEXT NOT NULL, bucket TEXT NOT NULL,
  prefix TEXT NOT NULL, options_hash TEXT NOT NULL, created_at_ns INTEGER NOT NULL);
CREATE UNIQUE INDEX ix_syncs_name ON syncs (name);
CREATE TABLE entries (sync_id INTEGER NOT NULL REFERENCES syncs (id) ON DELETE CASCADE, path TEXT NOT NULL,
  size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, inode INTEGER NOT NULL, ctime_ns INTEGER NOT NULL,
  md5 TEXT NOT NULL, remote_etag TEXT NOT NULL, remote_size INTEGER NOT NULL,
  encrypted INTEGER NOT NULL DEFAULT 0, synced_at_ns INTEGER NOT NULL, PRIMARY KEY (sync_id, path)) WITHOUT ROWID;
CREATE TABLE changes (id INTEGER PRIMARY KEY AUTOINCREMENT,
  sync_id INTEGER NOT NULL REFERENCES syncs (id) ON DELETE CASCADE, path TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('upsert', 'delete', 'move')), src_path TEXT, observed_ns INTEGER NOT NULL,
  due_ns INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, parked INTEGER NOT NULL DEFAULT 0);
CREATE UNIQUE INDEX ix_changes_sync_path ON changes (sync_id, path);
CREATE INDEX ix_changes_due ON changes (sync_id, parked, due_ns);
CREATE TABLE uploads (id INTEGER PRIMARY KEY, sync_id INTEGER NOT NULL REFERENCES syncs (id) ON DELETE CASCADE,
  path TEXT NOT NULL, key TEXT NOT NULL, upload_id TEXT NOT NULL, part_size INTEGER NOT NULL,
  size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, inode INTEGER NOT NULL, ctime_ns INTEGER NOT NULL, iv BLOB,
  started_at_ns INTEGER NOT NULL);
CREATE UNIQUE INDEX ix_uploads_upload_id ON uploads (upload_id);
CREATE UNIQUE INDEX ix_uploads_sync_path ON uploads (sync_id, path);
CREATE TABLE parts (upload_row INTEGER NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
  part_number INTEGER NOT NULL, size INTEGER NOT NULL, md5 TEXT NOT NULL, etag TEXT NOT NULL, crc64 INTEGER,
  chain_block BLOB, PRIMARY KEY (upload_row, part_number)) WITHOUT ROWID;
INSERT INTO syncs VALUES (1, 'docs', '/srv/docs', 'bucket', 'pre/', 'h1', 5);
INSERT INTO entries VALUES (1, 'a/b.txt', 3, 10, 20, 30, '900150983cd24fb0d6963f7d28e17f72', 'etag', 3, 0, 40);
INSERT INTO changes (sync_id, path, kind, src_path, observed_ns, due_ns, attempts, last_error, parked)
  VALUES (1, 'new.txt', 'move', 'old.txt', 1, 2, 3, 'timeout', 1);
INSERT INTO uploads VALUES (7, 1, 'big', 'pre/big', 'U-1', 8388608, 100, 1, 2, 3, NULL, 4);
INSERT INTO parts VALUES (7, 1, 8388608, 'm', 'e', -5, NULL);
PRAGMA user_version = 1;
"""


# What v2 added, as this test remembers it; applied on top of V1_DDL (and its data) it is a v2 journal.
V2_DDL = (
    V1_DDL.replace("PRAGMA user_version = 1;", "")
    + """
ALTER TABLE changes ADD COLUMN claimed INTEGER NOT NULL DEFAULT 0;
DROP INDEX ix_changes_sync_path;
CREATE UNIQUE INDEX ix_changes_pending_path ON changes (sync_id, path) WHERE claimed = 0;
CREATE INDEX ix_changes_path ON changes (sync_id, path);
CREATE INDEX ix_changes_src_path ON changes (sync_id, src_path) WHERE src_path IS NOT NULL;
CREATE INDEX ix_changes_claimed ON changes (sync_id) WHERE claimed = 1;
ALTER TABLE syncs ADD COLUMN files_done INTEGER NOT NULL DEFAULT 0;
ALTER TABLE syncs ADD COLUMN bytes_done INTEGER NOT NULL DEFAULT 0;
ALTER TABLE syncs ADD COLUMN last_success_ns INTEGER;
CREATE TABLE passes (id INTEGER PRIMARY KEY, sync_id INTEGER NOT NULL REFERENCES syncs (id) ON DELETE CASCADE,
  direction TEXT NOT NULL, started_ns INTEGER NOT NULL, finished_ns INTEGER NOT NULL, uploaded INTEGER NOT NULL,
  copied INTEGER NOT NULL, deleted INTEGER NOT NULL, downloaded INTEGER NOT NULL, adopted INTEGER NOT NULL,
  skipped INTEGER NOT NULL, failed INTEGER NOT NULL, bytes_sent INTEGER NOT NULL, bytes_received INTEGER NOT NULL,
  refused_deletes INTEGER NOT NULL, error TEXT);
CREATE INDEX ix_passes_sync_finished ON passes (sync_id, finished_ns);
CREATE TABLE errors (id INTEGER PRIMARY KEY, sync_id INTEGER NOT NULL REFERENCES syncs (id) ON DELETE CASCADE,
  path TEXT, message TEXT NOT NULL, at_ns INTEGER NOT NULL);
CREATE INDEX ix_errors_sync_at ON errors (sync_id, at_ns);
UPDATE syncs SET files_done = 7, bytes_done = 700, last_success_ns = 50 WHERE id = 1;
INSERT INTO passes VALUES (1, 1, 'upload', 45, 50, 7, 0, 0, 0, 0, 3, 0, 700, 0, 0, NULL);
INSERT INTO errors VALUES (1, 1, 'locked.db', 'Permission denied', 48);
PRAGMA user_version = 2;
"""
)


# What v3 added, as this test remembers it (the DDL v3's ks3sync ran for a new journal, on top of v2's).
V3_DDL = (
    V2_DDL.replace("PRAGMA user_version = 2;", "")
    + """
CREATE TABLE service (id INTEGER PRIMARY KEY CHECK (id = 1), pid INTEGER NOT NULL, started_ns INTEGER NOT NULL,
  heartbeat_ns INTEGER NOT NULL, stopped_ns INTEGER);
CREATE TABLE health (sync_id INTEGER PRIMARY KEY REFERENCES syncs (id) ON DELETE CASCADE,
  activity TEXT NOT NULL, reason TEXT, failing_since_ns INTEGER, last_error TEXT, last_error_ns INTEGER,
  updated_ns INTEGER NOT NULL);
INSERT INTO service VALUES (1, 4242, 90, 95, NULL);
INSERT INTO health VALUES (1, 'watching', NULL, 90, 'bucket gone', 91, 92);
PRAGMA user_version = 3;
"""
)

# What v4 added, as this test remembers it: the continuous verifier's state per sync.
V4_DDL = (
    V3_DDL.replace("PRAGMA user_version = 3;", "")
    + """
CREATE TABLE verification (sync_id INTEGER PRIMARY KEY REFERENCES syncs (id) ON DELETE CASCADE, cursor TEXT,
  round_started_ns INTEGER, last_full_ns INTEGER, rounds INTEGER NOT NULL DEFAULT 0,
  checked INTEGER NOT NULL DEFAULT 0, mismatches INTEGER NOT NULL DEFAULT 0, last_mismatch_ns INTEGER,
  updated_ns INTEGER NOT NULL);
INSERT INTO verification VALUES (1, 'a/b.txt', 80, 70, 2, 9, 1, 75, 81);
PRAGMA user_version = 4;
"""
)

OLD_VERSIONS = {1: V1_DDL, 2: V2_DDL, 3: V3_DDL, 4: V4_DDL}


def _checks(sql: str) -> list[str]:
    """The CHECK constraints of a CREATE TABLE statement, whitespace-normalised (balanced parentheses)."""
    found = []
    for match in re.finditer(r"CHECK\s*\(", sql, re.IGNORECASE):
        depth, start = 1, match.end()
        end = start
        while depth:
            depth += {"(": 1, ")": -1}.get(sql[end], 0)
            end += 1
        found.append(" ".join(sql[start : end - 1].split()))
    return sorted(found)


def schema_of(path: Path) -> dict[str, object]:
    """Everything about the tables that decides what the journal can store and how it behaves: columns
    (name, type, NOT NULL, default, primary key), CHECKs, indexes (unique, partial, columns, and their
    SQL, WHERE included), foreign keys, WITHOUT ROWID, AUTOINCREMENT. NOT NULL on an INTEGER PRIMARY
    KEY (the rowid, which cannot be NULL anyway) is not compared: SQLAlchemy writes it, the DDL of v1
    did not."""
    db = sqlite3.connect(path)
    out: dict[str, object] = {}
    tables = db.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
    ).fetchall()
    for table, sql in tables:
        columns = db.execute(f"PRAGMA table_info({table})").fetchall()
        single_pk = sum(1 for c in columns if c[5]) == 1
        out[table] = {
            "columns": sorted(
                (name, kind, 0 if (single_pk and pk and kind == "INTEGER") else notnull, default, pk)
                for _, name, kind, notnull, default, pk in columns
            ),
            "checks": _checks(sql),
            "without_rowid": " ".join(sql.split()).upper().endswith("WITHOUT ROWID"),
            "autoincrement": "AUTOINCREMENT" in sql.upper(),
            "indexes": sorted(
                (
                    name,
                    unique,
                    partial,
                    tuple(c[2] for c in db.execute(f"PRAGMA index_info({name})")),
                    " ".join(
                        db.execute("SELECT sql FROM sqlite_master WHERE name = ?", (name,))
                        .fetchone()[0]
                        .split()
                    ),
                )
                for _, name, unique, origin, partial in db.execute(f"PRAGMA index_list({table})")
                if origin == "c"
            ),
            "fks": sorted(row[2:] for row in db.execute(f"PRAGMA foreign_key_list({table})").fetchall()),
        }
    db.close()
    return out


def old_journal(path: Path, ddl: str) -> Path:
    """A journal file as an older ks3sync left it: ``ddl`` run by plain sqlite3."""
    db = sqlite3.connect(path)
    db.executescript(ddl)
    db.close()
    return path


def assert_same_schema_as_fresh(old: Path, tmp_path: Path) -> None:
    fresh = tmp_path / "fresh.db"
    Journal.open(fresh).close()
    assert schema_of(old) == schema_of(fresh)


def test_steps_are_contiguous_up_to_the_current_version() -> None:
    assert [(step.down_revision, step.revision) for step in STEPS] == [
        (v - 1, v) for v in range(2, SCHEMA_VERSION + 1)
    ]
    assert sorted(OLD_VERSIONS) == list(range(1, SCHEMA_VERSION + 1)), (
        "freeze every shipped version's DDL here"
    )


@pytest.mark.parametrize("version", sorted(OLD_VERSIONS))
def test_every_old_version_migrates_to_what_create_all_makes(tmp_path: Path, version: int) -> None:
    old = old_journal(tmp_path / f"v{version}.db", OLD_VERSIONS[version])
    Journal.open(old).close()
    assert sqlite3.connect(old).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert_same_schema_as_fresh(old, tmp_path)


def test_a_new_journal_is_what_create_all_makes(tmp_path: Path) -> None:
    """A new file is created from schema.py: the same schema as SQLAlchemy's own create_all on an engine
    of its own, and every table and index schema.py names is there."""
    from sqlalchemy import create_engine

    emitted = tmp_path / "emitted.db"
    engine = create_engine(f"sqlite:///{emitted}")
    metadata.create_all(engine)
    engine.dispose()
    fresh = tmp_path / "fresh.db"
    Journal.open(fresh).close()
    assert schema_of(fresh) == schema_of(emitted)
    schema = schema_of(fresh)
    assert sorted(schema) == sorted(metadata.tables)
    for name, table in metadata.tables.items():
        info = schema[name]
        assert isinstance(info, dict)
        assert [i[0] for i in info["indexes"]] == sorted(str(i.name) for i in table.indexes), name
    changes = schema["changes"]
    assert isinstance(changes, dict) and changes["autoincrement"]  # queue ids are never reused
    assert changes["checks"] == ["kind IN ('upsert', 'delete', 'move')"]


def test_v1_database_migrates_keeping_its_data(tmp_path: Path) -> None:
    old = old_journal(tmp_path / "v1.db", V1_DDL)

    with Journal.open(old) as j:
        assert [s.name for s in j.syncs()] == ["docs"]
        entry = j.synced_entries(1)["a/b.txt"]
        assert entry.identity == FileIdentity(3, 10, 20, 30) and entry.synced_at_ns == 40
        (change,) = j.pending(1)
        assert (change.path, change.src_path, change.attempts, change.parked, change.claimed) == (
            "new.txt",
            "old.txt",
            3,
            True,
            False,
        )
        (upload,) = j.uploads(1)
        assert upload.upload_id == "U-1" and upload.parts[0].crc64 == (1 << 64) - 5
        stats = j.stats(1)
        assert stats.files_done == 0 and stats.last_pass is None and stats.parked == 1
        assert j.integrity_check() == []


def test_v2_database_migrates_keeping_its_data(tmp_path: Path) -> None:
    old = old_journal(tmp_path / "v2.db", V2_DDL)

    with Journal.open(old) as j:
        stats = j.stats(1)
        assert (stats.files_done, stats.bytes_done, stats.last_success_ns) == (7, 700, 50)
        assert stats.last_pass is not None and stats.last_pass.uploaded == 7
        assert [(e.path, e.message) for e in stats.last_errors] == [("locked.db", "Permission denied")]
        assert j.synced_entries(1)["a/b.txt"].identity == FileIdentity(3, 10, 20, 30)
        # v3: no service has written yet; the new tables work
        assert j.service() is None and j.health() == {}
        record = HealthRecord(1, "watching", None, 90, "bucket gone", 91, 92)
        j.service_started(4242, 90, [record])
        assert j.service() == ServiceRecord(4242, 90, 90, None)
        assert j.health() == {1: record}
        j.write_health(4242, 100, [], stopped=True)
        assert j.service() == ServiceRecord(4242, 90, 100, 100)
        assert j.integrity_check() == []


def test_v3_database_opens_keeping_its_data(tmp_path: Path) -> None:
    old = old_journal(tmp_path / "v3.db", V3_DDL)

    with Journal.open(old) as j:
        assert j.service() == ServiceRecord(4242, 90, 95, None)
        assert j.health() == {1: HealthRecord(1, "watching", None, 90, "bucket gone", 91, 92)}
        assert j.stats(1).files_done == 7
        j.enqueue(1, [])  # the queue's statements run on the frozen v3 tables
        assert [c.path for c in j.pending(1)] == ["new.txt"]
        assert j.integrity_check() == []


@pytest.mark.parametrize("version", [1, 2, 3])
def test_a_journal_older_than_v4_gains_an_empty_verification_state_that_works(
    tmp_path: Path, version: int
) -> None:
    old = old_journal(tmp_path / f"v{version}.db", OLD_VERSIONS[version])

    with Journal.open(old) as j:
        assert j.verify_state(1) is None
        j.verify_progress(1, cursor="a/b.txt", checked=1, round_started_ns=5)
        state = j.verify_state(1)
        assert state is not None and (state.cursor, state.checked, state.last_full_ns) == ("a/b.txt", 1, None)
        j.verify_progress(1, cursor=None, checked=0, round_started_ns=5, finished_ns=6)
        state = j.verify_state(1)
        assert state is not None and (state.cursor, state.rounds, state.last_full_ns) == (None, 1, 6)
        assert j.integrity_check() == []


def test_v4_database_opens_keeping_its_verification_state(tmp_path: Path) -> None:
    old = old_journal(tmp_path / "v4.db", V4_DDL)

    with Journal.open(old) as j:
        state = j.verify_state(1)
        assert state is not None
        assert (
            state.cursor,
            state.round_started_ns,
            state.last_full_ns,
            state.rounds,
            state.checked,
            state.mismatches,
            state.last_mismatch_ns,
        ) == ("a/b.txt", 80, 70, 2, 9, 1, 75)
        assert [e.path for e in j.records_after(1, None, 10)] == ["a/b.txt"]
        assert j.records_after(1, "a/b.txt", 10) == []
        j.remove_sync(1)
        assert j.verify_state(1) is None


def test_a_removed_sync_takes_its_health_along(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "j.db") as j:
        sid = j.register_sync("docs", "/srv/docs", "bucket", "p/", "h")
        j.write_health(1, 5, [HealthRecord(sid, "paused", None, 3, "credentials refused", 4, 5)])
        j.remove_sync(sid)
        assert j.health() == {}


def test_failed_migration_leaves_the_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    db = sqlite3.connect(path)
    db.executescript(V1_DDL)
    db.execute("CREATE TABLE passes (x INTEGER)")  # v2 creates this table: the migration must fail
    db.commit()
    db.close()
    try:
        Journal.open(path).close()
    except Exception as exc:  # noqa: BLE001 - any error will do; what matters is the state after it
        assert str(path) in str(exc)
    else:
        raise AssertionError("the migration should have failed")
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 1
    assert [r[1] for r in db.execute("PRAGMA table_info(changes)")][-1] == "parked"  # no half-applied ALTER


IMPORTS = """
import sys
from ks3sync.journal import Journal
Journal.open(sys.argv[1]).close()
print(sorted({m.split(".")[0] for m in sys.modules} & {"sqlalchemy", "alembic"}))
"""


def loaded_by_open(path: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", IMPORTS, str(path)], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.strip()


def test_alembic_is_loaded_only_to_migrate_an_older_journal(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh.db"
    assert loaded_by_open(fresh) == "['sqlalchemy']"  # created by create_all
    assert loaded_by_open(fresh) == "['sqlalchemy']"  # already current
    old = old_journal(tmp_path / "v1.db", V1_DDL)
    assert loaded_by_open(old) == "['alembic', 'sqlalchemy']"
