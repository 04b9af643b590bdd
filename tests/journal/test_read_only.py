"""``Journal.open(path, read_only=True)`` (D26) on real SQLite files: it reads what a writer committed,
also while that writer holds the file; it never creates the file or its folder, never switches the mode,
never migrates; it refuses an older schema (and, like the normal open, a newer one, a foreign SQLite
file and a non-SQLite file) with one line naming the file; every write method raises."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ks3sync.journal import (
    SCHEMA_VERSION,
    Change,
    ChangeKind,
    EmptyJournalError,
    HealthRecord,
    Journal,
    JournalError,
)
from ks3sync.model import Direction, PassSummary, UploadRecord
from tests.journal.test_journal import entry
from tests.journal.test_migrations import OLD_VERSIONS, old_journal


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def written(path: Path) -> Path:
    with Journal.open(path) as j:
        sid = j.register_sync("s", "/src", "b", "p/", "h")
        j.record_synced(sid, [entry("a.txt", 1), entry("b.txt", 2)])
    return path


def test_reads_what_the_writer_committed_also_while_it_holds_the_file(tmp_path: Path) -> None:
    path = written(tmp_path / "j.db")
    with Journal.open(path) as writer, Journal.open(path, read_only=True) as reader:
        assert reader.read_only and not writer.read_only
        (sync,) = reader.syncs()
        assert sorted(reader.synced_entries(sync.id)) == ["a.txt", "b.txt"]
        # committed by the live writer, so far only in its WAL
        writer.record_synced(sync.id, [entry("c.txt", 3)])
        assert sorted(reader.synced_entries(sync.id)) == ["a.txt", "b.txt", "c.txt"]
        assert reader.stats(sync.id).entries == 3
        assert reader.integrity_check() == []


WRITES: dict[str, Callable[[Journal], Any]] = {
    "register_sync": lambda j: j.register_sync("t", "/x", "b", "", "h"),
    "remove_sync": lambda j: j.remove_sync(1),
    "record_synced": lambda j: j.record_synced(1, [entry("z.txt")]),
    "remove_entries": lambda j: j.remove_entries(1, ["a.txt"]),
    "enqueue": lambda j: j.enqueue(1, [Change("q.txt", ChangeKind.UPSERT, observed_ns=1, due_ns=1)]),
    "due": lambda j: j.due(1, 10**20, 10),
    "record_pass": lambda j: j.record_pass(
        1, PassSummary(started_ns=1, finished_ns=2, direction=Direction.UPLOAD)
    ),
    "record_error": lambda j: j.record_error(1, "a.txt", "boom"),
    "service_started": lambda j: j.service_started(1, 1),
    "write_health": lambda j: j.write_health(
        1, 1, [HealthRecord(1, "watching", None, None, None, None, 1)], heartbeat=True
    ),
    "release_claims": lambda j: j.release_claims(1),
    "unpark": lambda j: j.unpark(1),
    "done": lambda j: j.done([1]),
    "failed": lambda j: j.failed(1, "boom", 1, park=True),
    "verify_progress": lambda j: j.verify_progress(1, cursor="a.txt", checked=1, round_started_ns=1),
    "verify_mismatch": lambda j: j.verify_mismatch(1, entry("a.txt", 1), "differs", requeue=None),
    "checkpoint.upload_started": lambda j: j.checkpoint(1).upload_started(
        UploadRecord("big", "p/big", "U-1", 8 << 20, entry("big").identity, 1)
    ),
    "checkpoint.removed": lambda j: j.checkpoint(1).removed(["a.txt"]),
}


@pytest.mark.parametrize("write", sorted(WRITES))
def test_every_write_method_raises_naming_the_file(tmp_path: Path, write: str) -> None:
    path = written(tmp_path / "j.db")
    before = digest(path)
    with Journal.open(path, read_only=True) as reader:
        with pytest.raises(JournalError, match="open read-only") as raised:
            WRITES[write](reader)
        assert str(path) in str(raised.value)
        assert len(reader.syncs()) == 1  # still usable for reading
    assert digest(path) == before


def test_a_missing_file_is_refused_and_nothing_is_created(tmp_path: Path) -> None:
    path = tmp_path / "state" / "journal.db"
    with pytest.raises(JournalError, match="does not exist") as raised:
        Journal.open(path, read_only=True)
    assert str(path) in str(raised.value)
    assert not (tmp_path / "state").exists()


def test_a_journal_that_cannot_be_opened_is_not_called_unwritable(tmp_path: Path) -> None:
    # A reader of a WAL journal opens the -wal beside it; what SQLite cannot open there (here a folder
    # in its place: as root, permissions cannot make it fail) is an open failure, not a write failure.
    path = written(tmp_path / "journal.db")
    (tmp_path / "journal.db-wal").mkdir()
    with pytest.raises(JournalError) as raised:
        Journal.open(path, read_only=True)
    assert str(raised.value) == f"{path}: cannot open the journal (unable to open database file)"


@pytest.mark.parametrize("version", [v for v in sorted(OLD_VERSIONS) if v < SCHEMA_VERSION])
@pytest.mark.parametrize("wal", [False, True], ids=["rollback", "wal"])
def test_an_older_schema_is_refused_and_left_as_it_is(tmp_path: Path, version: int, wal: bool) -> None:
    path = old_journal(tmp_path / "old.db", OLD_VERSIONS[version])
    if wal:  # as an older ks3sync left it: it switched every journal to WAL
        sqlite3.connect(path).execute("PRAGMA journal_mode = WAL").connection.close()
    before = digest(path)
    with pytest.raises(JournalError) as raised:
        Journal.open(path, read_only=True)
    assert str(raised.value) == (
        f"{path}: journal schema {version} is older than this ks3sync's {SCHEMA_VERSION}; "
        "start the service (or run a mirror) once to upgrade it"
    )
    assert digest(path) == before
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    assert db.execute("PRAGMA user_version").fetchone()[0] == version
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == ("wal" if wal else "delete")


def refusal(path: Path, *, read_only: bool) -> str:
    with pytest.raises(JournalError) as raised:
        Journal.open(path, read_only=read_only)
    return str(raised.value)


def test_newer_foreign_and_non_sqlite_files_get_the_normal_refusal(tmp_path: Path) -> None:
    future = written(tmp_path / "future.db")
    sqlite3.connect(future).execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}").connection.close()
    foreign = tmp_path / "foreign.db"
    sqlite3.connect(foreign).execute("CREATE TABLE photos (id INTEGER)").connection.close()
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n")
    for path, says in ((future, "is newer than"), (foreign, "other tables"), (text, "not an SQLite")):
        before = digest(path)
        message = refusal(path, read_only=True)
        assert says in message and message == refusal(path, read_only=False)
        assert digest(path) == before
    assert "is a directory" in refusal(tmp_path, read_only=True)


@pytest.mark.parametrize("how", ["zero bytes", "WAL, no tables"])
def test_a_journal_not_created_yet_is_empty_not_foreign(tmp_path: Path, how: str) -> None:
    """What a `status` finds while a starting service creates the journal: the file, no schema yet."""
    path = tmp_path / "j.db"
    path.touch()
    if how != "zero bytes":
        sqlite3.connect(path).execute("PRAGMA journal_mode = WAL").connection.close()
    before = digest(path)
    with pytest.raises(EmptyJournalError, match="holds nothing yet") as raised:
        Journal.open(path, read_only=True)
    assert str(path) in str(raised.value)
    assert digest(path) == before
