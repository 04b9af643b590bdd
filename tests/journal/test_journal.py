"""Journal on real SQLite files: opening, persistence, checkpoints, threads, errors, status."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from ks3sync.journal import SCHEMA_VERSION, Journal, JournalError, UnknownUploadError
from ks3sync.model import Direction, FileIdentity, PartRecord, PassSummary, SyncedEntry, UploadRecord
from tests.threadkit import run_together

IDENT = FileIdentity(size=30 << 20, mtime_ns=1_700_000_000_123_456_789, inode=424242, ctime_ns=17)


def entry(path: str, n: int = 1) -> SyncedEntry:
    return SyncedEntry(path, FileIdentity(n, n, n, n), f"{n:032x}", f"{n:032x}", n, False, 99)


@pytest.fixture
def journal(tmp_path: Path):  # type: ignore[no-untyped-def]
    j = Journal.open(tmp_path / "state" / "journal.db")
    yield j
    j.close()


def test_open_creates_parents_sets_wal_and_version(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "journal.db"
    with Journal.open(path):
        pass
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert path.stat().st_mode & 0o077 == 0


def test_entries_persist_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with Journal.open(path) as j:
        sid = j.register_sync("docs", "/srv/docs", "bucket", "pre/", "opts1")
        j.record_synced(sid, [entry(f"d/{i}", i + 1) for i in range(500)])
        j.remove_entries(sid, ["d/0", "d/1"])
    with Journal.open(path) as j:
        assert j.register_sync("docs", "/srv/docs", "bucket", "pre/", "opts2") == sid
        got = j.synced_entries(sid)
        assert len(got) == 498 and got["d/7"] == entry("d/7", 8)
        assert [s.options_hash for s in j.syncs()] == ["opts2"]


def test_changing_the_target_drops_entries_but_keeps_uploads(journal: Journal) -> None:
    sid = journal.register_sync("s", "/src", "bucket", "p/", "h")
    journal.record_synced(sid, [entry("a")])
    journal.checkpoint(sid).upload_started(UploadRecord("big", "p/big", "U1", 8 << 20, IDENT, 5))
    assert journal.register_sync("s", "/src", "bucket", "other/", "h") == sid
    assert journal.synced_entries(sid) == {}
    assert [u.upload_id for u in journal.uploads(sid)] == ["U1"]  # still there to be aborted


def test_a_sync_registered_under_a_former_name_is_found_and_renamed(journal: Journal) -> None:
    """An older ks3sync named a mirror pair after its endpoint too: '<name> @ <endpoint>'. The first
    registration under the new name takes over the most recently active of those rows (same trees),
    with its records and its uploads in flight; the other rows, and rows of other trees, are left alone."""
    old_quiet = journal.register_sync("mirror /src ks3://b/p/ @ http://a", "/src", "b", "p/", "h")
    old_recent = journal.register_sync("mirror /src ks3://b/p/ @ http://b", "/src", "b", "p/", "h")
    other_tree = journal.register_sync("mirror /src ks3://b/p/ @ http://c", "/elsewhere", "b", "p/", "h")
    journal.record_pass(old_quiet, PassSummary(direction=Direction.UPLOAD, started_ns=1, finished_ns=2))
    journal.record_pass(old_recent, PassSummary(direction=Direction.UPLOAD, started_ns=3, finished_ns=4))
    journal.record_pass(other_tree, PassSummary(direction=Direction.UPLOAD, started_ns=5, finished_ns=6))
    journal.record_synced(old_recent, [entry("a")])
    journal.checkpoint(old_recent).upload_started(UploadRecord("big", "p/big", "U1", 8 << 20, IDENT, 5))

    sid = journal.register_sync(
        "mirror /src ks3://b/p/", "/src", "b", "p/", "h2", formerly="mirror /src ks3://b/p/ @ "
    )
    assert sid == old_recent
    assert list(journal.synced_entries(sid)) == ["a"]
    assert journal.checkpoint(sid).upload_for("big") is not None  # resumable through the new endpoint
    assert {s.id: s.name for s in journal.syncs()} == {
        old_quiet: "mirror /src ks3://b/p/ @ http://a",
        old_recent: "mirror /src ks3://b/p/",
        other_tree: "mirror /src ks3://b/p/ @ http://c",
    }
    # From now on the new name is found first; a former name no longer matters.
    assert (
        journal.register_sync(
            "mirror /src ks3://b/p/", "/src", "b", "p/", "h2", formerly="mirror /src ks3://b/p/ @ "
        )
        == sid
    )
    # A name prefix is matched as text, not as a LIKE pattern.
    assert journal.register_sync(
        "mirror /s_c ks3://b/p/", "/s_c", "b", "p/", "h", formerly="mirror /s%"
    ) not in (old_quiet, old_recent, other_tree)


def test_checkpoint_resume_data_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    crc_high = (1 << 64) - 12345  # uses the top bit: must survive SQLite's signed integers
    with Journal.open(path) as j:
        sid = j.register_sync("s", "/src", "b", "", "h")
        cp = j.checkpoint(sid)
        cp.upload_started(
            UploadRecord(
                "big.bin",
                "big.bin",
                "UPLOAD-1",
                8 << 20,
                IDENT,
                123,
                iv=bytes(range(16)),
                parts=(PartRecord(1, 8 << 20, "a" * 32, "e1", 5, b"\x01" * 16),),
            )
        )
        cp.part_done("UPLOAD-1", PartRecord(3, 8 << 20, "c" * 32, "e3", crc_high, b"\xff" * 16))
        cp.part_done("UPLOAD-1", PartRecord(2, 8 << 20, "b" * 32, "e2", None, None))
        cp.part_done("UPLOAD-1", PartRecord(2, 8 << 20, "b" * 32, "e2-again", 7, None))  # a re-sent part
    with Journal.open(path) as j:  # as after a kill -9: only committed state is read back
        record = j.checkpoint(sid).upload_for("big.bin")
        assert record is not None
        assert (
            record.key,
            record.upload_id,
            record.part_size,
            record.identity,
            record.started_at_ns,
            record.iv,
        ) == ("big.bin", "UPLOAD-1", 8 << 20, IDENT, 123, bytes(range(16)))
        assert record.parts == (
            PartRecord(1, 8 << 20, "a" * 32, "e1", 5, b"\x01" * 16),
            PartRecord(2, 8 << 20, "b" * 32, "e2-again", 7, None),
            PartRecord(3, 8 << 20, "c" * 32, "e3", crc_high, b"\xff" * 16),
        )
        assert j.uploads() == [record]
        j.checkpoint(sid).upload_finished("UPLOAD-1")
        assert j.checkpoint(sid).upload_for("big.bin") is None
        assert j.integrity_check() == []
        raw = sqlite3.connect(path)
        assert raw.execute("SELECT count(*) FROM parts").fetchone()[0] == 0  # cascaded


def test_upload_started_replaces_an_older_upload_of_the_same_path(journal: Journal) -> None:
    sid = journal.register_sync("s", "/src", "b", "", "h")
    cp = journal.checkpoint(sid)
    cp.upload_started(UploadRecord("f", "f", "OLD", 5 << 20, IDENT, 1))
    cp.part_done("OLD", PartRecord(1, 5 << 20, "a" * 32, "e"))
    cp.upload_started(UploadRecord("f", "f", "NEW", 5 << 20, IDENT, 2))
    record = cp.upload_for("f")
    assert record is not None and record.upload_id == "NEW" and record.parts == ()
    with pytest.raises(UnknownUploadError, match="OLD"):
        cp.part_done("OLD", PartRecord(2, 1, "a" * 32, "e"))
    with pytest.raises(KeyError):  # the in-memory checkpoint raises KeyError: callers may catch either
        cp.part_done("never-started", PartRecord(1, 1, "a" * 32, "e"))


def test_checkpoint_from_many_threads_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    j = Journal.open(path)
    sid = j.register_sync("s", "/src", "b", "", "h")
    cp = j.checkpoint(sid)
    for t in range(8):
        cp.upload_started(UploadRecord(f"big{t}", f"big{t}", f"U{t}", 1, IDENT, 0))
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        try:
            for i in range(150):
                cp.synced(entry(f"t{t}/f{i}", i + 1))
                cp.part_done(f"U{t}", PartRecord(i + 1, 1, "a" * 32, f"e{i}"))
                assert cp.upload_for(f"big{t}") is not None
                if i % 10 == 9:
                    cp.removed([f"t{t}/f{i}"])
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread and re-raised there
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not errors, errors
    j.close()
    with Journal.open(path) as again:
        assert len(again.synced_entries(sid)) == 8 * 135
        assert all(len(u.parts) == 150 for u in again.uploads(sid))
        assert again.integrity_check() == []


def test_garbage_file_is_a_clear_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"this is not a database at all\n" * 100)
    with pytest.raises(JournalError) as err:
        Journal.open(path)
    message = str(err.value)
    assert str(path) in message and "not an SQLite database" in message and "\n" not in message


def test_corrupted_sqlite_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with Journal.open(path) as j:
        sid = j.register_sync("s", "/src", "b", "", "h")
        j.record_synced(sid, [entry(f"dir/file-{i:05d}", i + 1) for i in range(3000)])
    # Keep the header, trash the pages behind it (a torn disk write or a bad copy).
    data = bytearray(path.read_bytes())
    for offset in range(4096, len(data), 997):
        data[offset : offset + 64] = b"\xa5" * 64
    path.write_bytes(bytes(data))
    try:
        j = Journal.open(path)
    except JournalError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)
        return
    with j:  # the damage may only show when the pages are read
        try:
            problems = j.integrity_check()
        except JournalError as exc:
            assert str(path) in str(exc)
            return
        assert problems, "a trashed database must not pass the integrity check"


def test_foreign_database_and_newer_schema_are_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE photos (id INTEGER)")
    db.commit()
    db.close()
    before = other.read_bytes()
    with pytest.raises(JournalError, match="not a ks3sync journal"):
        Journal.open(other)
    assert other.read_bytes() == before  # refused without touching it (not even switched to WAL)
    future = tmp_path / "future.db"
    with Journal.open(future):
        pass
    db = sqlite3.connect(future)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(JournalError, match="newer than this ks3sync"):
        Journal.open(future)


def test_directory_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="is a directory"):
        Journal.open(tmp_path)


def test_closed_journal_refuses_work(tmp_path: Path) -> None:
    j = Journal.open(tmp_path / "j.db")
    j.close()
    with pytest.raises(JournalError, match="closed"):
        j.register_sync("s", "/", "b", "", "h")


def test_pass_history_errors_and_stats(tmp_path: Path) -> None:
    clock = iter(range(1000, 10**9, 10))
    j = Journal.open(tmp_path / "j.db", clock=lambda: next(clock))
    sid = j.register_sync("s", "/src", "b", "", "h")
    j.record_pass(sid, PassSummary(100, 200, Direction.UPLOAD, uploaded=3, copied=1, bytes_sent=300))
    j.record_pass(sid, PassSummary(300, 400, Direction.UPLOAD, uploaded=1, failed=1, bytes_sent=50))
    j.record_error(sid, "bad/file", "AccessDenied\nsecond line")
    j.record_synced(sid, [entry("x")])
    st = j.stats(sid)
    assert (st.files_done, st.bytes_done, st.last_success_ns, st.entries) == (5, 350, 200, 1)
    assert st.last_pass is not None and st.last_pass.failed == 1 and st.last_pass.started_ns == 300
    assert st.last_errors[0].path == "bad/file" and st.last_errors[0].message == "AccessDenied second line"
    for i in range(150):
        j.record_error(sid, f"p{i}", "boom")
    assert len(j.stats(sid, recent_errors=1000).last_errors) == 100  # bounded history
    with pytest.raises(JournalError, match="no sync with id"):
        j.stats(sid + 1)
    j.close()


def test_integrity_check_finds_orphans(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with Journal.open(path) as j:
        j.register_sync("s", "/src", "b", "", "h")
        assert j.integrity_check() == []
    raw = sqlite3.connect(path)  # foreign keys are off on this connection: plant damage behind our back
    raw.execute("INSERT INTO parts (upload_row, part_number, size, md5, etag) VALUES (999, 1, 1, 'm', 'e')")
    raw.execute(
        "INSERT INTO changes (sync_id, path, kind, observed_ns, due_ns) VALUES (1, 'x', 'move', 0, 0)"
    )
    raw.commit()
    raw.close()
    with Journal.open(path) as j:
        problems = j.integrity_check()
    assert any("parts whose upload is gone: 1" in p for p in problems)
    assert any("moves without a source path" in p for p in problems)
    assert any(p.startswith("foreign key") for p in problems)


def test_repr_names_only_the_path(journal: Journal) -> None:
    assert repr(journal) == f"Journal({str(journal.path)!r})"


def test_point_lookups_and_folder_listing(journal: Journal) -> None:
    sid = journal.register_sync("s", "/src", "b", "", "h")
    other = journal.register_sync("t", "/other", "b", "", "h")
    paths = ["dir/a", "dir/b/c", "dir-x", "dir.y", "dir0", "dirt/z", "\u00e9/x", "dir/\u00e9"]
    journal.record_synced(sid, [entry(p, i + 1) for i, p in enumerate(paths)])
    journal.record_synced(other, [entry("dir/a", 99)])
    many = [f"missing/{i}" for i in range(1200)] + ["dir/a", "dir0"]
    got = journal.synced_for(sid, many)
    assert got == {"dir/a": entry("dir/a", 1), "dir0": entry("dir0", 5)}
    assert journal.synced_paths_under(sid, "dir/") == ["dir/a", "dir/b/c", "dir/\u00e9"]
    assert journal.synced_paths_under(sid, "\u00e9/") == ["\u00e9/x"]
    assert journal.synced_paths_under(sid, "") == sorted(paths, key=lambda p: p.encode())
    assert journal.synced_paths_under(other, "dir/") == ["dir/a"]


def test_remove_sync_takes_everything_of_it_and_nothing_else(journal: Journal) -> None:
    from ks3sync.journal import Change, ChangeKind

    a = journal.register_sync("a", "/a", "b", "", "h")
    b = journal.register_sync("b", "/b", "b", "", "h")
    for sid in (a, b):
        journal.record_synced(sid, [entry("x")])
        journal.enqueue(sid, [Change("x", ChangeKind.UPSERT)])
        journal.checkpoint(sid).upload_started(
            UploadRecord("big", "big", f"U{sid}", 1, IDENT, 0, parts=(PartRecord(1, 1, "m" * 32, "e"),))
        )
        journal.record_pass(sid, PassSummary(1, 2, uploaded=1))
        journal.record_error(sid, "x", "boom")
    journal.remove_sync(a)
    assert [s.name for s in journal.syncs()] == ["b"]
    assert journal.synced_entries(a) == {} and journal.pending(a) == [] and journal.uploads(a) == []
    assert len(journal.synced_entries(b)) == 1 and len(journal.pending(b)) == 1
    assert [u.upload_id for u in journal.uploads()] == [f"U{b}"]
    assert journal.integrity_check() == []


def test_a_failed_raw_write_rolls_back_and_the_journal_keeps_working(journal: Journal) -> None:
    """synced_many runs on the raw writer connection: a failure half-way leaves nothing of the batch,
    the error names the file, and the next write and read work."""
    sync_id = journal.register_sync("s", "/src", "b", "", "h")
    cp = journal.checkpoint(sync_id)

    def batch_that_breaks():  # type: ignore[no-untyped-def]
        yield entry("a", 1)
        yield entry("b", 2)
        raise sqlite3.OperationalError("disk I/O error (simulated)")

    with pytest.raises(JournalError, match="journal.db"):
        cp.synced_many(batch_that_breaks())
    assert journal.synced_entries(sync_id) == {}

    with pytest.raises(ZeroDivisionError):
        cp.synced_many(entry(p, 1 // (i - 1)) for i, p in enumerate(["x", "y"]))
    assert journal.synced_entries(sync_id) == {}

    cp.synced(entry("c", 3))
    got = journal.synced_entries(sync_id)
    assert list(got) == ["c"] and got["c"] == entry("c", 3)


def test_synced_entries_share_equal_values_but_compare_equal(journal: Journal) -> None:
    sync_id = journal.register_sync("s", "/src", "b", "", "h")
    plain = entry("plain", 7)
    other = SyncedEntry("multi", FileIdentity(9, 1, 2, 3), "a" * 32, "b" * 32 + "-2", 9, True, 5)
    journal.checkpoint(sync_id).synced_many([plain, other])
    got = journal.synced_entries(sync_id)
    assert got == {"plain": plain, "multi": other}
    assert got["plain"].remote_etag is got["plain"].md5  # one string object for a plain ETag


def test_iter_synced_entries_streams_in_utf8_byte_order_per_sync(journal: Journal) -> None:
    sid = journal.register_sync("a", "/a", "bucket", "", "h")
    other = journal.register_sync("b", "/b", "bucket", "b/", "h")
    # Code points on both sides of the surrogate range and of U+FFFF: UTF-16 order would differ.
    paths = ["z", "a/b", "a+b", "\u00e9", "\ufb01", "\U0001f600", "A", "a", "a/"] + [
        f"n/{i}" for i in range(50)
    ]
    journal.record_synced(sid, [entry(p, i + 1) for i, p in enumerate(paths)])
    journal.record_synced(other, [entry("zz"), entry("0")])
    got = list(journal.iter_synced_entries(sid, batch=7))  # several fetchmany batches
    assert [e.path for e in got] == sorted(paths, key=lambda p: p.encode())
    assert {e.path: e for e in got} == journal.synced_entries(sid)
    assert [e.path for e in journal.iter_synced_entries(other)] == ["0", "zz"]


def test_an_abandoned_iteration_returns_its_connection(journal: Journal) -> None:
    sid = journal.register_sync("a", "/a", "bucket", "", "h")
    journal.record_synced(sid, [entry(f"p{i:03}", i + 1) for i in range(100)])
    for _ in range(60):  # more than the pool holds: a leaked connection would exhaust it
        stream = journal.iter_synced_entries(sid, batch=10)
        assert next(stream).path == "p000"
        stream.close()
    assert len(journal.synced_entries(sid)) == 100


def test_synced_count_counts_one_sync_up_to_a_bound(journal: Journal) -> None:
    sid = journal.register_sync("a", "/a", "bucket", "", "h")
    other = journal.register_sync("b", "/b", "bucket", "b/", "h")
    journal.record_synced(sid, [entry(f"p{i:03}", i + 1) for i in range(30)])
    journal.record_synced(other, [entry("x")])
    assert journal.synced_count(sid, at_most=1000) == 30
    assert journal.synced_count(sid, at_most=20) == 20
    assert journal.synced_count(other, at_most=1000) == 1
    assert journal.synced_count(journal.register_sync("c", "/c", "bucket", "c/", "h"), at_most=5) == 0


def _held_writes(
    journal: Journal, monkeypatch: pytest.MonkeyPatch, cp: object, *, others: int, fail: int | None = None
) -> list[int]:
    """Make the first write transaction of ``journal`` hold the writer until ``others`` entries are
    waiting in ``cp``'s group commit (polled, bounded: no sleep decides the outcome), optionally failing
    transaction number ``fail``; returns the numbers of the transactions begun. So the batching the test
    sees does not depend on how the threads happen to be scheduled (it did: 8 of 10 runs on one core
    had each entry committed alone)."""
    real_write = journal._write
    begun: list[int] = []
    coalescer = cp._confirmed  # type: ignore[attr-defined]  # the checkpoint's group commit

    def waiting() -> int:
        with coalescer._lock:
            return len(coalescer._pending)

    @contextlib.contextmanager
    def held_write(*, durable: bool = False):  # type: ignore[no-untyped-def]
        begun.append(len(begun) + 1)
        number = len(begun)
        with real_write(durable=durable) as db:
            deadline = time.monotonic() + 30
            while number == 1 and waiting() < others and time.monotonic() < deadline:
                time.sleep(0.001)
            if number == fail:
                raise sqlite3.OperationalError("disk I/O error (simulated)")
            yield db

    monkeypatch.setattr(journal, "_write", held_write)
    return begun


def test_synced_commits_as_a_group_and_returns_only_once_recorded(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While one thread commits, the entries of the 7 others wait; the next commit takes them all."""
    sid = journal.register_sync("s", "/src", "b", "", "h")
    cp = journal.checkpoint(sid)
    begun = _held_writes(journal, monkeypatch, cp, others=7)
    unseen: list[str] = []

    def work(t: int) -> None:
        path = f"t{t}"
        cp.synced(entry(path, t + 1))
        if path not in journal.synced_for(sid, [path]):  # a separate reader connection
            unseen.append(path)

    assert run_together(8, work) == []
    assert unseen == []
    assert len(journal.synced_entries(sid)) == 8
    assert begun == [1, 2]  # one transaction per entry would be 8


def test_a_failed_group_commit_fails_only_its_committer(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The committer whose transaction failed raises and its entry is not recorded; the entries of the
    others that were in the same batch are handed back and recorded by their own owners. The second
    transaction fails: it carries every entry that arrived while the first one was committing."""
    sid = journal.register_sync("s", "/src", "b", "", "h")
    cp = journal.checkpoint(sid)
    begun = _held_writes(journal, monkeypatch, cp, others=5, fail=2)
    recorded: list[str] = []

    def work(t: int) -> None:
        cp.synced(entry(f"t{t}", t + 1))
        recorded.append(f"t{t}")

    errors = run_together(6, work)
    assert len(errors) == 1 and isinstance(errors[0], JournalError)
    assert sorted(journal.synced_entries(sid)) == sorted(recorded) and len(recorded) == 5
    assert begun == [1, 2, 3]  # the first alone, the failed batch of five, its four others again
