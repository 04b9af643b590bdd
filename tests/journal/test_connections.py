"""The journal's engine: the reader pool is bounded, reused, thread-safe and closes cleanly; readers see
one snapshot beside the writer; write transactions take the write lock up front at their own
``synchronous`` level (the engine's events)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from ks3sync.journal import Change, ChangeKind, Journal, JournalError
from ks3sync.journal.connection import Readers
from ks3sync.journal.sql import dbapi
from ks3sync.model import FileIdentity, SyncedEntry


def entry(path: str) -> SyncedEntry:
    return SyncedEntry(path, FileIdentity(1, 1, 1, 1), "1" * 32, "1" * 32, 1, False, 9)


def test_the_pool_reuses_connections_and_is_bounded(tmp_path: Path) -> None:
    j = Journal.open(tmp_path / "j.db", readers=Readers(keep=1, limit=2, wait_s=0.2))
    with j._read() as first:
        assert dbapi(first).in_transaction  # one snapshot per lease
        with j._read() as second:
            seen = (dbapi(first), dbapi(second))
            assert seen[0] is not seen[1]
            with pytest.raises(
                JournalError, match=r"j\.db: all 2 journal read connections stayed busy for 0 s"
            ):
                with j._read():
                    pass
    with j._read() as again:
        assert dbapi(again) in seen and dbapi(again).in_transaction
    j.close()
    with pytest.raises(JournalError, match="closed"):
        with j._read():
            pass


def test_a_waiting_reader_gets_the_connection_given_back(tmp_path: Path) -> None:
    j = Journal.open(tmp_path / "j.db", readers=Readers(keep=1, limit=1, wait_s=10))
    got: list[int] = []
    with j._read() as held:
        waiter = threading.Thread(target=lambda: got.append(_one(j)))
        waiter.start()
        waiter.join(0.2)
        assert waiter.is_alive()  # waiting for the only connection
        assert dbapi(held).execute("SELECT 1").fetchone() == (1,)
    waiter.join(10)
    assert got == [1]
    j.close()


def _one(j: Journal) -> int:
    with j._read() as db:
        return int(dbapi(db).execute("SELECT 1").fetchone()[0])


def test_write_transactions_take_the_lock_up_front_at_their_own_sync_level(tmp_path: Path) -> None:
    """BEGIN IMMEDIATE: while the journal's write transaction is open, nobody else can even begin one
    (a deferred BEGIN would let both start and fail one at its first write). FULL for the queue's
    write-ahead records, NORMAL otherwise; a reader's BEGIN is deferred and blocks no writer."""
    path = tmp_path / "j.db"
    with Journal.open(path) as j:
        sid = j.register_sync("s", "/src", "bucket", "", "h")
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        with j._write() as db:
            assert dbapi(db).execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        j.enqueue(sid, [Change("a", ChangeKind.UPSERT)])
        with j._write(durable=True) as db:
            assert dbapi(db).execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
        with j._read():
            other.execute("BEGIN IMMEDIATE")  # a reader holds no write lock
            other.execute("ROLLBACK")
        other.close()


def test_a_reader_sees_one_snapshot_while_the_writer_commits(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "j.db") as j:
        sid = j.register_sync("s", "/src", "bucket", "", "h")
        j.record_synced(sid, [entry(f"p{i:03}") for i in range(10)])
        stream = j.iter_synced_entries(sid, batch=2)
        assert next(stream).path == "p000"
        j.record_synced(sid, [entry("p005a"), entry("zzz")])  # WAL: the writer is not blocked
        assert [e.path for e in stream] == [f"p{i:03}" for i in range(1, 10)]
        assert len(j.synced_entries(sid)) == 12


def test_many_threads_read_and_write_at_once(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "j.db") as j:
        sid = j.register_sync("s", "/src", "bucket", "", "h")
        problems: list[BaseException] = []

        def work(n: int) -> None:
            try:
                for i in range(30):
                    j.checkpoint(sid).synced(entry(f"t{n}/{i}"))
                    assert f"t{n}/{i}" in j.synced_for(sid, [f"t{n}/{i}"])
                    j.stats(sid)
            except (AssertionError, JournalError) as exc:
                problems.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert problems == [] and not any(t.is_alive() for t in threads)
        assert j.stats(sid).entries == 240


def test_closing_the_journal_closes_its_readers(tmp_path: Path) -> None:
    j = Journal.open(tmp_path / "j.db")
    sid = j.register_sync("s", "/src", "bucket", "", "h")
    j.record_synced(sid, [entry("a"), entry("b")])
    stream = j.iter_synced_entries(sid, batch=1)
    assert next(stream).path == "a"
    lease = j._read()
    raw = dbapi(lease.__enter__())
    j.close()
    with pytest.raises(JournalError, match="closed"):
        j.synced_entries(sid)
    assert [e.path for e in stream] == ["b"]  # a reader leased before close finishes its snapshot
    assert raw.execute("SELECT count(*) FROM entries").fetchone() == (2,)
    lease.__exit__(None, None, None)
    with pytest.raises(
        sqlite3.ProgrammingError, match="closed"
    ):  # ...and is closed, not pooled, when it comes back
        raw.execute("SELECT 1")


def test_a_journal_error_from_a_reader_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with Journal.open(path) as j:
        sid = j.register_sync("s", "/src", "bucket", "", "h")
        raw = sqlite3.connect(path)
        raw.execute("DROP TABLE errors")  # damage behind the journal's back
        raw.commit()
        raw.close()
        with pytest.raises(JournalError, match=r"j\.db: journal error: no such table: errors"):
            j.stats(sid)


def test_a_journal_created_by_another_process_while_opening_is_not_called_foreign(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `status` run while the service starts: both open the same new journal. The opener read version
    # 0, the other process then created the journal, and the opener counted its tables as a foreign
    # database's ("not a ks3sync journal", the service exited 2). The two reads are one snapshot now.
    from ks3sync.journal import migrations

    path = tmp_path / "journal.db"
    real_count = migrations.foreign_objects
    other: list[JournalError | None] = []

    def create_elsewhere() -> None:
        try:
            Journal.open(path).close()
            other.append(None)
        except JournalError as exc:  # reported by the assertion below
            other.append(exc)

    def count_after_another_creator(raw: sqlite3.Connection) -> int:
        # The other creator runs between our version read and our table count; it can finish only if
        # nothing holds the file (the old code, two separate reads), so wait for it a bounded time.
        if threads:  # the creator's own open counts for real
            return real_count(raw)
        creator = threading.Thread(target=create_elsewhere)
        creator.start()
        threads.append(creator)
        creator.join(timeout=3)
        return real_count(raw)

    threads: list[threading.Thread] = []
    monkeypatch.setattr(migrations, "foreign_objects", count_after_another_creator)
    with Journal.open(path) as journal:
        monkeypatch.setattr(migrations, "foreign_objects", real_count)
        for creator in threads:
            creator.join(timeout=60)
            assert not creator.is_alive()
        assert other and all(result is None for result in other), other
        assert journal.integrity_check() == []


def test_opening_waits_for_another_writer_before_switching_to_wal(tmp_path: Path) -> None:
    # Another process writing the new file (creating the same journal) holds its write lock; SQLite
    # answers the switch to WAL with "database is locked" at once, without its busy wait (it will not
    # wait for a lock upgrade that could deadlock). Opening must wait for the writer, not fail.
    path = tmp_path / "journal.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        other.execute("BEGIN IMMEDIATE")
        release = threading.Timer(0.5, other.execute, ("COMMIT",))
        release.start()
        try:
            with Journal.open(path) as journal:
                assert journal.integrity_check() == []
        finally:
            release.join(10)
    finally:
        other.close()
