"""run_mirror end to end on real files with MemoryStore + MemoryJournal: fast checks of the pass logic
(what gets written, what is skipped, guards, dry run, stale uploads). The same pass over HTTP against
local-server with the SQLite journal is run by the `ks3sync mirror` subprocess tests in tests/cli
(round trips, options, errors, kill -9 and resume) and tests/reliability (faults, crashes, bad input);
MemoryStore itself is held to KS3Store's behaviour by tests/store/test_conformance.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ks3sync.engine.mirror import MirrorOptions, run_mirror
from ks3sync.model import Direction, FileIdentity, UploadRecord
from ks3sync.store.base import WriteOptions, format_mtime
from ks3sync.store.memory import MemoryStore
from ks3sync.transfer import TransferOptions
from ks3sync.transfer.bodies import MemoryBody
from ks3sync.transfer.checkpoint import MemoryJournal

KIB = 1024
HOUR_NS = 3600 * 10**9


def options(**kw: object) -> MirrorOptions:
    transfer = TransferOptions(jobs=4, part_size=100 * KIB, multipart_threshold=200 * KIB)
    base: dict[str, object] = {"transfer": transfer}
    base.update(kw)
    return MirrorOptions(**base)  # type: ignore[arg-type]


def tree(root: Path, files: dict[str, bytes]) -> None:
    for path, data in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, MemoryStore, MemoryJournal]:
    src = tmp_path / "src"
    src.mkdir()
    tree(
        src, {"a.txt": b"alpha", "dir/b.txt": b"bravo", "dir/sub/c.bin": os.urandom(300 * KIB), "empty": b""}
    )
    return src, MemoryStore(prefix="m/"), MemoryJournal()


def up(src: Path, store: MemoryStore, journal: MemoryJournal, **kw: object):
    return run_mirror(store, journal, 1, src, Direction.UPLOAD, options(**kw))


def test_first_pass_uploads_second_pass_writes_nothing(setup) -> None:
    src, store, journal = setup
    result = up(src, store, journal)
    assert result.ok and (result.uploaded, result.skipped) == (4, 0)
    assert {e.path: store.data(e.path) for e in store.list()} == read_tree(src)
    store.calls.clear()
    again = up(src, store, journal)
    assert again.ok and again.skipped == 4 and again.uploaded == 0
    assert store.writes() == []
    assert journal.passes and len(journal.passes) == 2


def test_modify_delete_rename_sends_exactly_put_copy_delete(setup) -> None:
    src, store, journal = setup
    assert up(src, store, journal).ok
    (src / "a.txt").write_bytes(b"alpha, changed")
    (src / "empty").unlink()
    os.rename(src / "dir" / "b.txt", src / "moved.txt")
    store.calls.clear()
    result = up(src, store, journal, delete=True)
    assert result.ok, result.failed
    assert sorted(store.writes()) == [
        ("copy", "moved.txt"),
        ("delete", "dir/b.txt"),
        ("delete", "empty"),
        ("put", "a.txt"),
    ]
    assert (result.uploaded, result.copied, result.deleted) == (1, 1, 2)
    assert {e.path: store.data(e.path) for e in store.list()} == read_tree(src)


def test_duplicate_content_becomes_a_copy(setup) -> None:
    src, store, journal = setup
    assert up(src, store, journal).ok
    (src / "dup.txt").write_bytes(b"bravo")
    store.calls.clear()
    result = up(src, store, journal)
    assert result.copied == 1 and store.writes() == [("copy", "dup.txt")]


def test_emptied_source_deletes_nothing_without_force(setup) -> None:
    src, store, journal = setup
    assert up(src, store, journal).ok
    for path in list(read_tree(src)):
        (src / path).unlink()
    store.calls.clear()
    result = up(src, store, journal, delete=True)
    assert result.refused_deletes == 4 and result.deleted == 0 and store.writes() == []
    assert result.warnings and "empty" in result.warnings[0]
    forced = up(src, store, journal, delete=True, force=True)
    assert forced.deleted == 4 and list(store.list()) == []


def test_max_delete_count(setup) -> None:
    src, store, journal = setup
    assert up(src, store, journal).ok
    (src / "a.txt").unlink()
    (src / "empty").unlink()
    result = up(src, store, journal, delete=True, max_delete=1, max_delete_percent=None)
    assert result.refused_deletes == 2 and result.deleted == 0


def test_dry_run_changes_nothing(setup) -> None:
    src, store, journal = setup
    result = up(src, store, journal, dry_run=True, delete=True)
    assert result.dry_run and result.plan is not None and len(result.plan.transfers) == 4
    assert store.writes() == [] and journal.cp.synced_entries == {} and journal.passes == []


def test_restore_into_empty_folder_and_no_op_second_time(setup, tmp_path: Path) -> None:
    src, store, journal = setup
    assert up(src, store, journal).ok
    dst = tmp_path / "restore"
    dst.mkdir()
    down_journal = MemoryJournal()
    result = run_mirror(store, down_journal, 1, dst, Direction.DOWNLOAD, options())
    assert result.ok and result.downloaded == 4
    assert read_tree(dst) == read_tree(src)
    for path in read_tree(src):
        assert os.stat(dst / path).st_mtime_ns == os.stat(src / path).st_mtime_ns
    again = run_mirror(store, down_journal, 1, dst, Direction.DOWNLOAD, options())
    assert again.downloaded == 0 and again.skipped == 4
    # Lost journal: files are hashed and adopted, not downloaded again.
    fresh = run_mirror(store, MemoryJournal(), 1, dst, Direction.DOWNLOAD, options())
    assert fresh.adopted == 4 and fresh.downloaded == 0


def test_lost_journal_adopts_instead_of_uploading(setup) -> None:
    src, store, journal = setup
    assert up(src, store, journal).ok
    store.calls.clear()
    result = up(src, store, MemoryJournal())
    assert result.adopted == 4 and store.writes() == []


def test_restore_refuses_escaping_keys_and_skips_deletes(setup, tmp_path: Path) -> None:
    _, store, _ = setup
    store.put("../evil", MemoryBody(b"x"), WriteOptions())
    store.put("ok.txt", MemoryBody(b"fine"), WriteOptions())
    dst = tmp_path / "restore"
    dst.mkdir()
    (dst / "local-only").write_bytes(b"keep me")
    result = run_mirror(store, MemoryJournal(), 1, dst, Direction.DOWNLOAD, options(delete=True, force=True))
    assert [p for p, _ in result.failed] == ["../evil"] and "refusing" in result.failed[0][1]
    assert (dst / "ok.txt").read_bytes() == b"fine"
    assert (dst / "local-only").exists() and result.deletes_skipped == 1
    assert not (tmp_path / "evil").exists()


def test_stale_uploads_are_aborted_at_start(setup) -> None:
    src, store, journal = setup
    now = [10 * 24 * HOUR_NS]
    store._clock = lambda: now[0]  # type: ignore[method-assign]
    old = store.create_upload("orphan", WriteOptions())
    now[0] += 25 * HOUR_NS
    young = store.create_upload("young", WriteOptions())
    vanished = store.create_upload("vanished.bin", WriteOptions())
    journal.cp.upload_started(
        UploadRecord("vanished.bin", "m/vanished.bin", vanished, 100 * KIB, FileIdentity(1, 1, 1, 1), 0)
    )
    result = run_mirror(store, journal, 1, src, Direction.UPLOAD, options(), clock=lambda: now[0])
    assert result.ok and result.aborted_uploads == 2
    assert [u.upload_id for u in store.list_uploads()] == [young]
    assert old not in store.uploads and not journal.cp.uploads


def test_changed_file_after_failed_pass_is_retried_next_pass(setup) -> None:
    from ks3sync.errors import TransientError

    src, store, journal = setup
    store.inject("put", TransientError("flaky"), times=2, path="a.txt")
    first = up(src, store, journal, delete=True)
    assert [p for p, _ in first.failed] == ["a.txt"]
    assert "a.txt" not in journal.cp.synced_entries
    second = up(src, store, journal, delete=True)
    assert second.ok and second.uploaded == 1 and second.skipped == 3


def test_checksum_pass_rehashes_but_sends_nothing_for_unchanged_files(setup) -> None:
    src, store, journal = setup
    assert up(src, store, journal).ok
    store.calls.clear()
    result = up(src, store, journal, checksum=True)
    assert result.ok and result.adopted == 4 and store.writes() == []


def test_bandwidth_limit_and_jobs_reach_the_executor(setup) -> None:
    src, store, journal = setup
    transfer = TransferOptions(jobs=1, part_size=100 * KIB, multipart_threshold=200 * KIB, bwlimit=50e6)
    result = run_mirror(store, journal, 1, src, Direction.UPLOAD, MirrorOptions(transfer=transfer))
    assert (
        result.ok
        and result.uploaded == 4
        and result.bytes_sent == sum(len(b) for b in read_tree(src).values())
    )


def test_execute_runs_queued_operations_deletes_last(setup) -> None:
    from ks3sync.engine.mirror import execute
    from ks3sync.errors import TransientError
    from ks3sync.model import DeleteRemote, LocalEntry, Upload
    from ks3sync.transfer.checkpoint import MemoryCheckpoint
    from ks3sync.transfer.files import identity_of

    src, store, _ = setup
    store.put("old.txt", MemoryBody(b"old"), WriteOptions())
    old = next(e for e in store.list() if e.path == "old.txt")
    upload = Upload("a.txt", LocalEntry("a.txt", identity_of(os.stat(src / "a.txt"))), "new")
    options = TransferOptions(jobs=2)
    store.inject("put", TransientError("down"), times=2, path="a.txt")
    failed = execute(store, MemoryCheckpoint(), src, [DeleteRemote("old.txt", old), upload], options)
    assert not failed.ok and failed.deletes_skipped == 1 and store.head("old.txt") is not None
    done = execute(store, MemoryCheckpoint(), src, [DeleteRemote("old.txt", old), upload], options)
    assert done.ok and done.counts == {"uploaded": 1, "deleted": 1} and store.head("old.txt") is None


def test_duplicate_copy_carries_its_own_mtime_and_restores_it(setup, tmp_path: Path) -> None:
    src, store, journal = setup
    assert up(src, store, journal).ok
    (src / "dup.txt").write_bytes(b"bravo")
    os.utime(src / "dup.txt", ns=(1_234_567_890_123_456_789, 1_234_567_890_123_456_789))
    result = up(src, store, journal)
    assert result.copied == 1
    assert store.head("dup.txt").metadata["mtime"] == "1234567890.123456789"
    assert store.head("dir/b.txt").metadata["mtime"] == format_mtime(
        os.stat(src / "dir" / "b.txt").st_mtime_ns
    )
    dst = tmp_path / "restore"
    assert run_mirror(store, MemoryJournal(), 1, dst, Direction.DOWNLOAD, options()).ok
    assert os.stat(dst / "dup.txt").st_mtime_ns == 1_234_567_890_123_456_789


def test_encrypted_duplicate_is_copied_with_its_envelope(setup, tmp_path: Path) -> None:
    from ks3sync.crypto.key import EncryptionKey

    src, store, journal = setup
    key = EncryptionKey(b"0123456789abcdef")
    transfer = TransferOptions(jobs=2, part_size=100 * KIB, multipart_threshold=200 * KIB, encryption_key=key)
    encrypted = MirrorOptions(transfer=transfer)
    assert run_mirror(store, journal, 1, src, Direction.UPLOAD, encrypted).ok
    (src / "dup.txt").write_bytes(b"alpha")
    store.calls.clear()
    result = run_mirror(store, journal, 1, src, Direction.UPLOAD, encrypted)
    assert result.copied == 1 and [w for w in store.writes() if w[0] != "copy"] == []
    dst = tmp_path / "restore"
    assert run_mirror(store, MemoryJournal(), 1, dst, Direction.DOWNLOAD, encrypted).ok
    assert read_tree(dst) == read_tree(src)


def test_another_syncs_upload_in_the_same_journal_is_not_stale(setup, tmp_path: Path) -> None:
    from ks3sync.journal import Journal

    src, store, _ = setup
    with Journal.open(tmp_path / "j.db") as journal:
        mine = journal.register_sync("mine", str(src), "memory", "m/", "h")
        theirs = journal.register_sync("theirs", str(tmp_path / "other"), "memory", "m/sub/", "h")
        upload_id = store.create_upload("sub/theirs.bin", WriteOptions())
        journal.checkpoint(theirs).upload_started(
            UploadRecord("theirs.bin", "m/sub/theirs.bin", upload_id, 100 * KIB, FileIdentity(1, 1, 1, 1), 0)
        )
        orphan = store.create_upload("orphan.bin", WriteOptions())
        result = run_mirror(store, journal, mine, src, Direction.UPLOAD, options(stale_grace_ns=0))
    assert result.ok and result.aborted_uploads == 1
    assert upload_id in store.uploads and orphan not in store.uploads


def test_restore_removes_temp_files_a_killed_restore_left(setup, tmp_path: Path) -> None:
    src, store, journal = setup
    assert up(src, store, journal).ok
    dst = tmp_path / "restore"
    (dst / "dir").mkdir(parents=True)
    (dst / "dir" / ".ks3sync-tmp-deadbeef").write_bytes(b"half a file")
    (dst / ".ks3sync-tmp-0123").write_bytes(b"")
    (dst / "keep.ks3sync-tmp-not-ours").write_bytes(b"a user's file")  # only the exact prefix is ours
    dry = run_mirror(store, MemoryJournal(), 1, dst, Direction.DOWNLOAD, options(dry_run=True))
    assert dry.dry_run and (dst / ".ks3sync-tmp-0123").exists()  # a dry run changes nothing
    result = run_mirror(store, MemoryJournal(), 1, dst, Direction.DOWNLOAD, options())
    assert result.ok
    assert read_tree(dst) == {**read_tree(src), "keep.ks3sync-tmp-not-ours": b"a user's file"}
