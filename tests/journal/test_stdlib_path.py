"""The journal's steady state runs on the standard library's sqlite3: opening an up-to-date journal does
not load SQLAlchemy (start-up time of every `ks3sync mirror`), and the reader pool is bounded, reused,
thread-safe and closes cleanly."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ks3sync.journal import Journal, JournalError
from ks3sync.journal.connection import ReaderPool
from ks3sync.model import FileIdentity, SyncedEntry

OPEN_AND_USE = """
import sys
from ks3sync.journal import Journal
with Journal.open(sys.argv[1]) as j:
    sid = j.register_sync("s", "/src", "bucket", "", "h")
    j.checkpoint(sid).synced(j.synced_entries(sid).get("x") or __import__("ks3sync.model").model.SyncedEntry(
        "x", __import__("ks3sync.model").model.FileIdentity(1, 2, 3, 4), "0" * 32, "0" * 32, 1, False, 5))
    j.stats(sid)
    list(j.iter_synced_entries(sid))
print("sqlalchemy" in sys.modules)
"""


def run_child(path: Path) -> bool:
    done = subprocess.run([sys.executable, "-c", OPEN_AND_USE, str(path)], capture_output=True, text=True,
                          timeout=60, check=True)
    return done.stdout.strip() == "True"


def test_an_up_to_date_journal_opens_and_works_without_sqlalchemy(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    assert run_child(path) is True  # creating the schema is SQLAlchemy's job (migrations.py)
    assert run_child(path) is False  # the second run finds version == SCHEMA_VERSION
    with Journal.open(path) as j:
        (sync,) = j.syncs()
        assert list(j.synced_entries(sync.id)) == ["x"]


def entry(path: str) -> SyncedEntry:
    return SyncedEntry(path, FileIdentity(1, 1, 1, 1), "1" * 32, "1" * 32, 1, False, 9)


def test_the_pool_reuses_connections_and_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    Journal.open(path).close()
    pool = ReaderPool(path, keep=1, limit=2, wait_s=0.2)
    with pool.lease() as first:
        assert first.in_transaction  # one snapshot per lease
        with pool.lease() as second:
            assert second is not first
            with pytest.raises(JournalError, match=r"j\.db: all 2 journal read connections stayed busy"):
                with pool.lease():
                    pass
    with pool.lease() as again:
        assert again in (first, second) and again.in_transaction
    pool.close()
    with pytest.raises(JournalError, match="closed"):
        with pool.lease():
            pass


def test_a_waiting_reader_gets_the_connection_given_back(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    Journal.open(path).close()
    pool = ReaderPool(path, keep=1, limit=1, wait_s=10)
    got: list[int] = []
    with pool.lease() as held:
        waiter = threading.Thread(target=lambda: got.append(_one(pool)))
        waiter.start()
        waiter.join(0.2)
        assert waiter.is_alive()  # waiting for the only connection
        assert held.execute("SELECT 1").fetchone() == (1,)
    waiter.join(10)
    assert got == [1]
    pool.close()


def _one(pool: ReaderPool) -> int:
    with pool.lease() as db:
        return int(db.execute("SELECT 1").fetchone()[0])


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
    j.close()
    with pytest.raises(JournalError, match="closed"):
        j.synced_entries(sid)
    assert [e.path for e in stream] == ["b"]  # a reader leased before close finishes its snapshot
    assert j._readers._open == 0  # ...and its connection is closed, not pooled, when it comes back


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
