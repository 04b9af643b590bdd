"""The executor against MemoryStore: real files in tmp_path, the in-memory store and checkpoint."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from ks3sync.errors import AuthError, TransientError
from ks3sync.model import (
    Adopt,
    Copy,
    DeleteRemote,
    FileIdentity,
    LocalEntry,
    RemoteEntry,
    Upload,
)
from ks3sync.store.base import META_MTIME, WriteOptions, format_mtime
from ks3sync.store.memory import MemoryStore
from ks3sync.transfer import Executor, MemoryCheckpoint, TransferOptions
from ks3sync.transfer.bodies import MemoryBody
from ks3sync.transfer.files import identity_of

KIB = 1024


def local(root: Path, path: str) -> LocalEntry:
    return LocalEntry(path, identity_of(os.stat(root / path)))


def write(root: Path, path: str, data: bytes) -> None:
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def options(**kw: object) -> TransferOptions:
    base: dict[str, object] = {"jobs": 4, "part_size": 100 * KIB, "multipart_threshold": 256 * KIB}
    base.update(kw)
    return TransferOptions(**base)  # type: ignore[arg-type]


def run(
    store: MemoryStore, cp: MemoryCheckpoint, root: Path, ops: list, deletes: list | None = None, **kw: object
):
    with Executor(store, cp, root, options(**kw)) as ex:
        return ex.run(ops, deletes or [])


def test_single_put_records_confirmed_md5_and_mtime(tmp_path: Path) -> None:
    write(tmp_path, "a b/c.txt", b"hello")
    store, cp = MemoryStore(prefix="p/"), MemoryCheckpoint()
    report = run(store, cp, tmp_path, [Upload("a b/c.txt", local(tmp_path, "a b/c.txt"), "new")])
    assert report.ok and report.counts["uploaded"] == 1
    assert store.data("a b/c.txt") == b"hello"
    entry = cp.synced_entries["a b/c.txt"]
    assert entry.md5 == md5(b"hello") == entry.remote_etag
    assert store.head("a b/c.txt").metadata[META_MTIME] == format_mtime(
        os.stat(tmp_path / "a b/c.txt").st_mtime_ns
    )


def test_multipart_upload_parts_and_etag(tmp_path: Path) -> None:
    data = os.urandom(350 * KIB)
    write(tmp_path, "big.bin", data)
    store, cp = MemoryStore(), MemoryCheckpoint()
    report = run(store, cp, tmp_path, [Upload("big.bin", local(tmp_path, "big.bin"), "new")])
    assert report.ok, report.failed
    assert store.data("big.bin") == data
    parts = [c for c in store.calls if c[0] == "upload_part"]
    assert len(parts) == 4
    entry = cp.synced_entries["big.bin"]
    assert entry.md5 == md5(data) and entry.remote_etag.endswith("-4") and entry.remote_size == len(data)
    assert not cp.uploads and not store.uploads


def test_failed_part_is_retried_and_only_missing_parts_resent(tmp_path: Path) -> None:
    data = os.urandom(450 * KIB)
    write(tmp_path, "big.bin", data)
    store, cp = MemoryStore(), MemoryCheckpoint()
    store.inject("upload_part", TransientError("boom"), times=2)  # first round fails, upload stays resumable
    op = Upload("big.bin", local(tmp_path, "big.bin"), "new")
    report = run(store, cp, tmp_path, [op])
    assert report.ok, report.failed
    assert store.data("big.bin") == data
    sent = [c for c in store.calls if c[0] == "upload_part"]
    # 5 parts; two calls failed in round one, the retry round re-sent only those two parts.
    assert len(sent) == 5 + 2
    assert sum(1 for c in store.calls if c[0] == "create_upload") == 1


def test_resume_from_checkpoint_sends_only_missing_parts(tmp_path: Path) -> None:
    data = os.urandom(500 * KIB)
    write(tmp_path, "big.bin", data)
    store, cp = MemoryStore(), MemoryCheckpoint()
    calls = {"n": 0}

    def hook(op: str, path: str) -> None:
        if op == "upload_part":
            calls["n"] += 1

    store.inject("complete_upload", TransientError("down"), times=2)
    store.hook = hook
    report = run(store, cp, tmp_path, [Upload("big.bin", local(tmp_path, "big.bin"), "new")])
    assert not report.ok  # complete failed twice: the upload is kept for the next run
    assert len(cp.uploads["big.bin"].parts) == 5 and len(store.uploads) == 1
    before = calls["n"]
    report = run(store, cp, tmp_path, [Upload("big.bin", local(tmp_path, "big.bin"), "new")])
    assert report.ok, report.failed
    assert calls["n"] == before  # nothing re-sent: ListParts + the record proved every part
    assert store.data("big.bin") == data


def test_file_changed_mid_upload_is_not_recorded(tmp_path: Path) -> None:
    write(tmp_path, "f.txt", b"one")
    store, cp = MemoryStore(), MemoryCheckpoint()
    changes = {"left": 2}

    def hook(op: str, path: str) -> None:
        if op == "put" and changes["left"]:
            changes["left"] -= 1
            write(tmp_path, "f.txt", b"two" * changes["left"] + b"!")
            os.utime(tmp_path / "f.txt", ns=(changes["left"] * 10**9, changes["left"] * 10**9))

    store.hook = hook
    report = run(store, cp, tmp_path, [Upload("f.txt", local(tmp_path, "f.txt"), "new")])
    assert [p for p, _ in report.failed] == ["f.txt"]
    assert "changed" in report.failed[0][1]
    assert "f.txt" not in cp.synced_entries


def test_multipart_of_changed_file_is_aborted_not_completed(tmp_path: Path) -> None:
    write(tmp_path, "big.bin", os.urandom(300 * KIB))
    store, cp = MemoryStore(), MemoryCheckpoint()

    def hook(op: str, path: str) -> None:
        if op == "upload_part":
            with open(tmp_path / "big.bin", "ab") as fh:
                fh.write(b"x")

    store.hook = hook
    report = run(store, cp, tmp_path, [Upload("big.bin", local(tmp_path, "big.bin"), "new")])
    assert [p for p, _ in report.failed] == ["big.bin"]
    assert not any(c[0] == "complete_upload" for c in store.calls)
    assert not store.uploads and not cp.uploads and "big.bin" not in cp.synced_entries


def test_copy_instead_of_upload_and_fallback(tmp_path: Path) -> None:
    write(tmp_path, "new.txt", b"same content")
    write(tmp_path, "other.txt", b"different")
    store, cp = MemoryStore(), MemoryCheckpoint()
    store.put("old.txt", MemoryBody(b"same content"), WriteOptions())
    ops = [
        Copy("new.txt", "old.txt", local(tmp_path, "new.txt"), md5(b"same content")),
        Copy("other.txt", "old.txt", local(tmp_path, "other.txt"), md5(b"same content")),
    ]
    report = run(store, cp, tmp_path, ops)
    assert report.ok, report.failed
    assert report.counts["copied"] == 1 and report.counts["uploaded"] == 1
    assert store.data("new.txt") == b"same content" and store.data("other.txt") == b"different"
    assert [c for c in store.writes() if c[0] == "put"] == [("put", "old.txt"), ("put", "other.txt")]


def test_adopt_records_matching_object_and_uploads_otherwise(tmp_path: Path) -> None:
    write(tmp_path, "same.txt", b"abc")
    write(tmp_path, "diff.txt", b"xyz")
    store, cp = MemoryStore(), MemoryCheckpoint()
    store.put("same.txt", MemoryBody(b"abc"), WriteOptions())
    store.put("diff.txt", MemoryBody(b"XYZ"), WriteOptions())
    remote = {e.path: e for e in store.list()}
    ops = [Adopt(p, local(tmp_path, p), remote[p]) for p in ("same.txt", "diff.txt")]
    store.calls.clear()
    report = run(store, cp, tmp_path, ops)
    assert report.ok and report.counts == {"adopted": 1, "uploaded": 1}
    assert store.writes() == [("put", "diff.txt")]
    assert cp.synced_entries["same.txt"].md5 == md5(b"abc")


def test_adopt_multipart_object_by_crc(tmp_path: Path) -> None:
    data = os.urandom(300 * KIB)
    write(tmp_path, "big.bin", data)
    store, cp = MemoryStore(), MemoryCheckpoint()
    assert run(store, cp, tmp_path, [Upload("big.bin", local(tmp_path, "big.bin"), "new")]).ok
    remote = next(iter(store.list()))
    assert remote.is_multipart_etag
    store.calls.clear()
    report = run(store, MemoryCheckpoint(), tmp_path, [Adopt("big.bin", local(tmp_path, "big.bin"), remote)])
    assert report.counts == {"adopted": 1} and store.writes() == []


def test_deletes_skipped_when_a_transfer_failed(tmp_path: Path) -> None:
    write(tmp_path, "a.txt", b"a")
    store, cp = MemoryStore(), MemoryCheckpoint()
    store.put("gone.txt", MemoryBody(b"g"), WriteOptions())
    store.inject("put", TransientError("x"), times=2, path="a.txt")
    gone = RemoteEntry("gone.txt", 1, md5(b"g"))
    report = run(
        store,
        cp,
        tmp_path,
        [Upload("a.txt", local(tmp_path, "a.txt"), "new")],
        [DeleteRemote("gone.txt", gone)],
    )
    assert not report.ok and report.deletes_skipped == 1
    assert store.head("gone.txt") is not None
    report = run(
        store,
        cp,
        tmp_path,
        [Upload("a.txt", local(tmp_path, "a.txt"), "new")],
        [DeleteRemote("gone.txt", gone)],
    )
    assert report.ok and report.counts["deleted"] == 1 and store.head("gone.txt") is None


def test_backup_prefix_keeps_overwritten_and_deleted_objects(tmp_path: Path) -> None:
    write(tmp_path, "a.txt", b"new a")
    store, cp = MemoryStore(prefix="data/"), MemoryCheckpoint()
    store.put("a.txt", MemoryBody(b"old a"), WriteOptions())
    store.put("b.txt", MemoryBody(b"old b"), WriteOptions())
    remote = {e.path: e for e in store.list()}
    with Executor(store, cp, tmp_path, options(backup_prefix="bak/"), remote=remote) as ex:
        report = ex.run(
            [Upload("a.txt", local(tmp_path, "a.txt"), "changed")], [DeleteRemote("b.txt", remote["b.txt"])]
        )
    assert report.ok
    assert store.objects["bak/a.txt"].data == b"old a" and store.objects["bak/b.txt"].data == b"old b"
    assert store.data("a.txt") == b"new a" and "data/b.txt" not in store.objects


def test_fatal_error_stops_the_run(tmp_path: Path) -> None:
    for i in range(20):
        write(tmp_path, f"f{i:02}", b"x")
    store, cp = MemoryStore(), MemoryCheckpoint()
    store.inject("put", AuthError("access denied"), times=1000)
    report = run(
        store,
        cp,
        tmp_path,
        [Upload(f"f{i:02}", local(tmp_path, f"f{i:02}"), "new") for i in range(20)],
        jobs=2,
    )
    assert report.stopped == "access denied"
    assert len(report.failed) == 20 and not cp.synced_entries


def test_identity_is_what_was_read(tmp_path: Path) -> None:
    write(tmp_path, "a", b"1")
    store, cp = MemoryStore(), MemoryCheckpoint()
    entry = local(tmp_path, "a")
    write(tmp_path, "a", b"22")  # changed after the scan, before the upload: the upload reads the new file
    assert run(store, cp, tmp_path, [Upload("a", entry, "new")]).ok
    rec = cp.synced_entries["a"]
    assert rec.identity.size == 2 and rec.md5 == md5(b"22") and isinstance(rec.identity, FileIdentity)


@pytest.mark.parametrize("size", [0, 1, 100 * KIB - 1, 256 * KIB, 256 * KIB + 1])
def test_sizes_round_trip(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    write(tmp_path, "f", data)
    store, cp = MemoryStore(), MemoryCheckpoint()
    assert run(store, cp, tmp_path, [Upload("f", local(tmp_path, "f"), "new")]).ok
    assert store.data("f") == data


def test_file_shrinking_during_multipart_read_aborts_at_once(tmp_path: Path) -> None:
    write(tmp_path, "big.bin", os.urandom(600 * KIB))
    store, cp = MemoryStore(), MemoryCheckpoint()

    def hook(op: str, path: str) -> None:
        if op == "upload_part":
            size = os.path.getsize(tmp_path / "big.bin")
            os.truncate(tmp_path / "big.bin", max(size - 100 * KIB, 300 * KIB))

    store.hook = hook
    report = run(store, cp, tmp_path, [Upload("big.bin", local(tmp_path, "big.bin"), "new")], jobs=1)
    assert [p for p, _ in report.failed] == ["big.bin"] and "changed" in report.failed[0][1]
    assert not store.uploads and not cp.uploads and "big.bin" not in cp.synced_entries
    assert sum(1 for c in store.calls if c[0] == "abort_upload") == 2


def test_a_lying_complete_etag_is_not_recorded(tmp_path: Path) -> None:
    from ks3sync.store.base import WriteResult

    data = os.urandom(300 * KIB)
    write(tmp_path, "big.bin", data)
    store, cp = MemoryStore(), MemoryCheckpoint()
    real_complete = store.complete_upload
    answer = {"etag": "0123456789abcdef0123456789abcdef-3"}

    def lying_complete(*args: object, **kwargs: object) -> WriteResult:
        result = real_complete(*args, **kwargs)  # type: ignore[arg-type]
        return WriteResult(answer["etag"], result.crc64)

    store.complete_upload = lying_complete  # type: ignore[method-assign]
    report = run(store, cp, tmp_path, [Upload("big.bin", local(tmp_path, "big.bin"), "new")])
    assert [p for p, _ in report.failed] == ["big.bin"] and "big.bin" not in cp.synced_entries
    # An ETag in a form the S3 convention does not cover is opaque: HEAD + CRC-64 decide.
    answer["etag"] = "opaque-etag-form"
    report = run(store, cp, tmp_path, [Upload("big.bin", local(tmp_path, "big.bin"), "new")])
    assert report.ok, report.failed
    listed = next(iter(store.list()))
    assert cp.synced_entries["big.bin"].remote_etag == listed.etag


def test_a_path_swapped_for_a_fifo_fails_instead_of_hanging(tmp_path: Path) -> None:
    write(tmp_path, "f", b"data")
    entry = local(tmp_path, "f")
    (tmp_path / "f").unlink()
    os.mkfifo(tmp_path / "f")
    report = run(MemoryStore(), MemoryCheckpoint(), tmp_path, [Upload("f", entry, "new")])
    assert [p for p, _ in report.failed] == ["f"] and "regular" in report.failed[0][1]


def test_vanished_file_aborts_its_recorded_upload(tmp_path: Path) -> None:
    write(tmp_path, "big.bin", os.urandom(300 * KIB))
    store, cp = MemoryStore(), MemoryCheckpoint()
    op = Upload("big.bin", local(tmp_path, "big.bin"), "new")
    store.inject("complete_upload", TransientError("down"), times=2)
    assert not run(store, cp, tmp_path, [op]).ok
    assert cp.uploads and store.uploads
    (tmp_path / "big.bin").unlink()
    report = run(store, cp, tmp_path, [op])
    assert "vanished" in report.failed[0][1]
    assert not cp.uploads and not store.uploads


@pytest.mark.parametrize("size", [3, 300 * KIB])  # single PUT (ETag) and multipart (CRC-64) objects
def test_download_direction_adopt_that_does_not_match_downloads_never_uploads(
    tmp_path: Path, size: int
) -> None:
    from ks3sync.model import Direction

    remote_data, local_data = os.urandom(size), os.urandom(size)
    src = tmp_path / "src"
    write(src, "f.bin", remote_data)
    store = MemoryStore()
    assert run(store, MemoryCheckpoint(), src, [Upload("f.bin", local(src, "f.bin"), "new")]).ok
    remote = next(iter(store.list()))
    dst = tmp_path / "dst"
    write(dst, "f.bin", local_data)  # same size, other bytes
    store.calls.clear()
    cp = MemoryCheckpoint()
    report = run(store, cp, dst, [Adopt("f.bin", local(dst, "f.bin"), remote)], direction=Direction.DOWNLOAD)
    assert report.ok and report.counts == {"downloaded": 1}
    assert store.writes() == []  # the object is the source: never overwritten from the folder
    assert (dst / "f.bin").read_bytes() == remote_data
    assert cp.synced_entries["f.bin"].md5 == md5(remote_data)


def test_a_checkpoint_that_cannot_record_stops_the_run_with_one_line(tmp_path: Path, caplog) -> None:
    import sqlite3

    class FullDiskCheckpoint(MemoryCheckpoint):
        def synced(self, entry: object) -> None:
            raise sqlite3.OperationalError("database or disk is full")

    for name in ("a.txt", "b.txt", "c.txt"):
        write(tmp_path, name, name.encode())
    ops = [Upload(n, local(tmp_path, n), "new") for n in ("a.txt", "b.txt", "c.txt")]
    report = run(MemoryStore(), FullDiskCheckpoint(), tmp_path, ops, jobs=1)
    assert report.stopped is not None and "journal could not record progress (synced)" in report.stopped
    assert "database or disk is full" in report.stopped
    assert report.counts["uploaded"] == 0 and len(report.failed) == 3
    assert not [r for r in caplog.records if r.exc_info]  # a known failure: no traceback in the log
