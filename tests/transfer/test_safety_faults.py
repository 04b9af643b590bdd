"""The transfer layer's safety rules under the faults a real KS3 can produce but the happy path never
shows: a PUT or a part answered with an ETag that is not the MD5 sent, a Complete whose CRC-64 differs,
a multipart upload that vanishes (at ListParts, mid-send, at Complete), a file changed since its upload
was recorded, a backup copy that fails, a stop in the middle of the deletes and a DeleteObjects call
that raises. Against MemoryStore's fault hooks (``tamper``, ``lose_uploads``, ``inject``) and
MemoryCheckpoint, because the protocol client checks ETags and CRCs itself, so over HTTP the upload
layer's own checks could never be reached; tests/reliability/test_safety_server.py produces the faults
the server can produce through the real wire path.

Each test was checked against the one-line bug it guards (named in its docstring): with the line
mutated, the test fails.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path

from ks3sync.errors import AuthError, RemoteRejected, TransientError
from ks3sync.model import DeleteRemote, LocalEntry, RemoteEntry, SyncedEntry, Upload
from ks3sync.store.base import WriteOptions
from ks3sync.store.memory import MemoryStore
from ks3sync.transfer import Executor, MemoryCheckpoint, TransferOptions
from ks3sync.transfer.bodies import MemoryBody
from ks3sync.transfer.executor import ExecutionReport
from ks3sync.transfer.files import identity_of

KIB = 1024
LIE = "0123456789abcdef0123456789abcdef"


def write(root: Path, path: str, data: bytes) -> LocalEntry:
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return LocalEntry(path, identity_of(os.stat(target)))


def run(
    store: MemoryStore, cp: MemoryCheckpoint, root: Path, ops: list, deletes: list | None = None, **kw: object
) -> ExecutionReport:
    settings: dict[str, object] = {"jobs": 2, "part_size": 100 * KIB, "multipart_threshold": 256 * KIB}
    settings.update(kw)
    remote = {e.path: e for e in store.list()}
    with Executor(store, cp, root, TransferOptions(**settings), remote=remote) as ex:  # type: ignore[arg-type]
        return ex.run(ops, deletes or [])


def calls(store: MemoryStore, op: str) -> int:
    return sum(1 for call in store.calls if call[0] == op)


def failed_paths(report: ExecutionReport) -> list[str]:
    return sorted(path for path, _ in report.failed)


# ------------------------------------------------------------------------------------------ uploads


def test_a_put_answered_with_another_etag_is_never_recorded(tmp_path: Path) -> None:
    """Guards upload.py's ``if result.etag != sent_md5: raise`` after a single PUT."""
    entry = write(tmp_path, "a.txt", b"hello")
    store, cp = MemoryStore(), MemoryCheckpoint()
    store.tamper("put", lambda result: replace(result, etag=LIE), times=2)  # the attempt and its retry
    report = run(store, cp, tmp_path, [Upload("a.txt", entry, "new")])
    assert failed_paths(report) == ["a.txt"] and LIE in report.failed[0][1]
    assert calls(store, "put") == 2  # retried once: a wrong ETag may be a transient server fault
    assert cp.synced_entries == {}


def test_a_part_answered_with_another_etag_is_never_recorded(tmp_path: Path) -> None:
    """Guards upload.py's ``if result.etag != md5_hex: raise`` after each UploadPart: no part record,
    no Complete and no synced entry may rest on a part KS3 did not confirm."""
    data = os.urandom(350 * KIB)
    entry = write(tmp_path, "big.bin", data)
    store, cp = MemoryStore(), MemoryCheckpoint()
    # A server that stored other bytes says so consistently: in UploadPart's answer and in ListParts.
    store.tamper("upload_part", lambda r: replace(r, etag=LIE) if r.part_number == 2 else r, times=100)
    store.tamper(
        "list_parts",
        lambda parts: [replace(p, etag=LIE) if p.part_number == 2 else p for p in parts],
        times=100,
    )
    report = run(store, cp, tmp_path, [Upload("big.bin", entry, "new")])
    assert failed_paths(report) == ["big.bin"] and "part 2" in report.failed[0][1]
    assert calls(store, "complete_upload") == 0
    assert cp.synced_entries == {}
    recorded = cp.uploads["big.bin"].parts  # the upload stays resumable with the honest parts
    assert sorted(p.part_number for p in recorded) == [1, 3, 4]
    assert all(p.etag == p.md5 for p in recorded)
    # The server answers truthfully again: ListParts now vouches for part 2, nothing is sent again.
    sent_before = calls(store, "upload_part")
    store._tampers.clear()
    report = run(store, cp, tmp_path, [Upload("big.bin", entry, "new")])
    assert report.ok, report.failed
    assert calls(store, "upload_part") == sent_before
    assert store.data("big.bin") == data and cp.synced_entries["big.bin"].md5 == hashlib.md5(data).hexdigest()


def test_a_complete_whose_crc64_differs_is_never_recorded(tmp_path: Path) -> None:
    """Guards upload.py's CRC-64 comparison of Complete's answer with the parts' combined CRC."""
    entry = write(tmp_path, "big.bin", os.urandom(300 * KIB))
    store, cp = MemoryStore(), MemoryCheckpoint()
    store.tamper("complete_upload", lambda r: replace(r, crc64=(r.crc64 or 0) ^ 1), times=2)
    report = run(store, cp, tmp_path, [Upload("big.bin", entry, "new")])
    assert failed_paths(report) == ["big.bin"] and "CRC-64" in report.failed[0][1]
    assert cp.synced_entries == {}


def test_an_upload_gone_at_listparts_starts_over(tmp_path: Path) -> None:
    """A recorded upload KS3 no longer knows (aborted by someone else, expired): ListParts says so, the
    record is dropped and a new upload sends the file whole."""
    data = os.urandom(300 * KIB)
    entry = write(tmp_path, "big.bin", data)
    store, cp = MemoryStore(), MemoryCheckpoint()
    store.inject("complete_upload", TransientError("down"), times=2)
    assert failed_paths(run(store, cp, tmp_path, [Upload("big.bin", entry, "new")])) == ["big.bin"]
    old = cp.uploads["big.bin"].upload_id
    store.lose_uploads(before="list_parts")
    store.calls.clear()
    report = run(store, cp, tmp_path, [Upload("big.bin", entry, "new")])
    assert report.ok, report.failed
    assert calls(store, "list_parts") == 1 and calls(store, "create_upload") == 1
    assert cp.uploads == {} and store.uploads == {} and old not in store.uploads
    assert store.data("big.bin") == data and cp.synced_entries["big.bin"].remote_size == len(data)


def test_an_upload_vanishing_mid_send_is_forgotten_and_sent_again(tmp_path: Path) -> None:
    """UploadPart answers NoSuchUpload: the record is dropped at once (not asked about again with
    ListParts) and the retry round starts a new upload that completes."""
    data = os.urandom(450 * KIB)
    entry = write(tmp_path, "big.bin", data)
    store, cp = MemoryStore(), MemoryCheckpoint()
    store.lose_uploads(before="upload_part")
    report = run(store, cp, tmp_path, [Upload("big.bin", entry, "new")], jobs=1)
    assert report.ok, report.failed
    assert calls(store, "create_upload") == 2 and calls(store, "list_parts") == 0
    assert cp.uploads == {} and store.uploads == {}
    assert store.data("big.bin") == data


def test_an_upload_vanishing_at_complete_is_forgotten_and_sent_again(tmp_path: Path) -> None:
    data = os.urandom(300 * KIB)
    entry = write(tmp_path, "big.bin", data)
    store, cp = MemoryStore(), MemoryCheckpoint()
    store.lose_uploads(before="complete_upload")
    report = run(store, cp, tmp_path, [Upload("big.bin", entry, "new")])
    assert report.ok, report.failed
    assert calls(store, "create_upload") == 2 and calls(store, "complete_upload") == 2
    assert calls(store, "list_parts") == 0
    assert cp.uploads == {} and store.uploads == {}
    assert store.data("big.bin") == data


def test_a_file_changed_since_its_upload_was_recorded_aborts_that_upload(tmp_path: Path) -> None:
    """The parts of the recorded upload belong to the old file: it is aborted, never completed, and the
    new content goes up in a new upload."""
    entry = write(tmp_path, "big.bin", os.urandom(300 * KIB))
    store, cp = MemoryStore(), MemoryCheckpoint()
    store.inject("complete_upload", TransientError("down"), times=2)
    assert failed_paths(run(store, cp, tmp_path, [Upload("big.bin", entry, "new")])) == ["big.bin"]
    old = cp.uploads["big.bin"].upload_id
    new_data = os.urandom(300 * KIB)  # same size: only mtime/ctime (and the bytes) tell
    changed = write(tmp_path, "big.bin", new_data)
    os.utime(tmp_path / "big.bin", ns=(entry.identity.mtime_ns + 10**9,) * 2)
    store.calls.clear()
    report = run(store, cp, tmp_path, [Upload("big.bin", changed, "changed")])
    assert report.ok, report.failed
    assert calls(store, "abort_upload") == 1 and old not in store.uploads
    assert calls(store, "list_parts") == 0  # the old parts are worthless: not even asked for
    assert calls(store, "create_upload") == 1 and store.uploads == {} and cp.uploads == {}
    assert store.data("big.bin") == new_data
    assert cp.synced_entries["big.bin"].md5 == hashlib.md5(new_data).hexdigest()


# ------------------------------------------------------------------------------------------ deletes


def _bucket_with(store: MemoryStore, cp: MemoryCheckpoint, names: list[str]) -> list[DeleteRemote]:
    ops = []
    for name in names:
        data = name.encode()
        result = store.put(name, MemoryBody(data), WriteOptions())
        entry = RemoteEntry(name, len(data), result.etag)
        ident = identity_of(os.stat(__file__))
        cp.synced(SyncedEntry(name, ident, result.etag, result.etag, len(data), False, 1))
        ops.append(DeleteRemote(name, entry))
    cp.events.clear()
    return ops


def test_a_failed_backup_copy_keeps_the_object(tmp_path: Path) -> None:
    """Guards executor.py's ``continue`` after a failed backup copy: without its backup an object is
    not deleted (invariant 4). The other deletes of the batch still run."""
    store, cp = MemoryStore(prefix="data/"), MemoryCheckpoint()
    deletes = _bucket_with(store, cp, ["a.txt", "b.txt", "c.txt"])
    store.inject("copy", RemoteRejected("InvalidStorageClass"), path="b.txt")
    report = run(store, cp, tmp_path, [], deletes, backup_prefix="bak/")
    assert failed_paths(report) == ["b.txt"] and "backup copy failed" in report.failed[0][1]
    assert report.counts["deleted"] == 2
    assert "data/b.txt" in store.objects and "bak/b.txt" not in store.objects
    assert "b.txt" in cp.synced_entries  # still recorded: it is still there
    for kept in ("a.txt", "c.txt"):
        assert store.objects["bak/" + kept].data == kept.encode() and "data/" + kept not in store.objects
        assert kept not in cp.synced_entries


def test_a_stop_during_the_deletes_deletes_nothing_more(tmp_path: Path) -> None:
    """A fatal error on the first backup copy ends the run: no later object is copied or deleted, each
    is reported as not deleted, and nothing is forgotten by the checkpoint."""
    store, cp = MemoryStore(prefix="data/"), MemoryCheckpoint()
    deletes = _bucket_with(store, cp, ["a.txt", "b.txt", "c.txt"])
    store.inject("copy", AuthError("access denied"), path="a.txt")
    report = run(store, cp, tmp_path, [], deletes, backup_prefix="bak/")
    assert report.stopped == "access denied"
    assert failed_paths(report) == ["a.txt", "b.txt", "c.txt"]
    assert all("not deleted" in message for _, message in report.failed)
    assert calls(store, "copy") == 1 and calls(store, "delete") == 0
    assert sorted(k for k in store.objects if k.startswith("data/")) == [
        "data/a.txt",
        "data/b.txt",
        "data/c.txt",
    ]
    assert sorted(cp.synced_entries) == ["a.txt", "b.txt", "c.txt"] and cp.events == []


def test_a_delete_call_that_raises_forgets_nothing(tmp_path: Path) -> None:
    """DeleteObjects itself fails (after the client's retries): every path of the batch is reported and
    stays recorded, so the next pass tries again; a fatal answer also stops the run."""
    store, cp = MemoryStore(prefix="data/"), MemoryCheckpoint()
    deletes = _bucket_with(store, cp, ["a.txt", "b.txt"])
    store.inject("delete_many", TransientError("503 SlowDown"))
    report = run(store, cp, tmp_path, [], deletes)
    assert failed_paths(report) == ["a.txt", "b.txt"]
    assert all(message.startswith("delete failed: 503") for _, message in report.failed)
    assert report.stopped is None and report.counts["deleted"] == 0
    assert sorted(cp.synced_entries) == ["a.txt", "b.txt"] and cp.events == []
    store.inject("delete_many", AuthError("access denied"))
    report = run(store, cp, tmp_path, [], deletes)
    assert report.stopped == "access denied" and failed_paths(report) == ["a.txt", "b.txt"]
    assert sorted(cp.synced_entries) == ["a.txt", "b.txt"]
    report = run(store, cp, tmp_path, [], deletes)
    assert report.ok and report.counts["deleted"] == 2 and cp.synced_entries == {}
    assert not [k for k in store.objects if k.startswith("data/")]


def test_a_stop_requested_during_the_transfers_runs_no_delete(tmp_path: Path) -> None:
    """The caller asks the run to stop (a service shutting down) while a transfer is running: the pass
    ends as stopped and its deletes are skipped, not run after the fact."""
    import threading

    store, cp = MemoryStore(prefix="data/"), MemoryCheckpoint()
    deletes = _bucket_with(store, cp, ["old.txt"])
    entry = write(tmp_path, "new.txt", b"new")
    stop = threading.Event()
    store.hook = lambda op, path: stop.set() if op == "put" else None
    remote = {e.path: e for e in store.list()}
    with Executor(store, cp, tmp_path, TransferOptions(jobs=1), remote=remote, stop=stop) as ex:
        report = ex.run([Upload("new.txt", entry, "new")], deletes)
    assert report.stopped is not None and "stopped on request" in report.stopped
    assert report.deletes_skipped == 1 and calls(store, "delete") == 0
    assert "data/old.txt" in store.objects and "old.txt" in cp.synced_entries


def test_restore_deletes_remove_the_file_its_empty_folders_and_its_record(tmp_path: Path) -> None:
    """A restore with --delete removes local files the bucket lacks (after the transfers), prunes the
    folders that became empty, forgets their records, and never touches anything outside the target
    folder (invariant 6), even for a path that tries."""
    from ks3sync.model import DeleteLocal, Direction

    root = tmp_path / "target"
    write(root, "a.txt", b"a")
    write(root, "d/e/b.txt", b"b")
    write(root, "keep/c.txt", b"c")
    write(root, "keep/x.txt", b"x")  # deleted; its folder still holds c.txt, so the pruning stops there
    outside = write(tmp_path, "outside.txt", b"not ours")
    cp = MemoryCheckpoint()
    for path in ("a.txt", "d/e/b.txt", "keep/x.txt"):
        ident = identity_of(os.stat(root / path))
        cp.synced(SyncedEntry(path, ident, "0" * 32, "0" * 32, ident.size, False, 1))
    cp.events.clear()
    deletes = [
        DeleteLocal("a.txt"),
        DeleteLocal("d/e/b.txt"),
        DeleteLocal("keep/x.txt"),
        DeleteLocal("../outside.txt"),
    ]
    with Executor(MemoryStore(), cp, root, TransferOptions(jobs=2, direction=Direction.DOWNLOAD)) as ex:
        report = ex.run([], deletes)
    assert report.counts["deleted"] == 3
    assert failed_paths(report) == ["../outside.txt"]
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) == ["keep", "keep/c.txt"]
    assert (tmp_path / outside.path).read_bytes() == b"not ours"
    assert cp.synced_entries == {}
    assert sorted(cp.events) == [("removed", "a.txt"), ("removed", "d/e/b.txt"), ("removed", "keep/x.txt")]


def test_an_opaque_complete_etag_is_recorded_only_when_head_proves_the_bytes(tmp_path: Path) -> None:
    """KS3 does not document its multipart ETag form: an answer not in the S3 form is accepted only if
    a HEAD shows the size and CRC-64 of the bytes sent. A HEAD that shows anything else (another size,
    another CRC-64, no object) means: not recorded."""
    data = os.urandom(300 * KIB)
    entry = write(tmp_path, "big.bin", data)
    lies = {
        "size": lambda m: replace(m, size=m.size + 1),
        "crc": lambda m: replace(m, crc64=(m.crc64 or 0) ^ 1),
        "gone": lambda m: None,
    }
    for what, lie in lies.items():
        store, cp = MemoryStore(), MemoryCheckpoint()
        store.tamper("complete_upload", lambda r: replace(r, etag="opaque-form"), times=2)
        store.tamper("head", lie, times=2)
        report = run(store, cp, tmp_path, [Upload("big.bin", entry, "new")])
        assert failed_paths(report) == ["big.bin"], what
        assert "cannot be shown to hold the bytes sent" in report.failed[0][1], (what, report.failed)
        assert cp.synced_entries == {}, what
    store, cp = MemoryStore(), MemoryCheckpoint()
    store.tamper("complete_upload", lambda r: replace(r, etag="opaque-form"))
    assert run(store, cp, tmp_path, [Upload("big.bin", entry, "new")]).ok
    assert cp.synced_entries["big.bin"].remote_etag == store.head("big.bin").etag  # what HEAD showed


def test_a_file_above_the_in_memory_size_is_hashed_then_streamed_and_recorded(tmp_path: Path) -> None:
    """A single PUT of a file larger than SMALL_FILE hashes the open file first, then streams it."""
    from ks3sync.transfer.context import SMALL_FILE

    data = os.urandom(SMALL_FILE + 4097)
    entry = write(tmp_path, "large.bin", data)
    store, cp = MemoryStore(), MemoryCheckpoint()
    report = run(store, cp, tmp_path, [Upload("large.bin", entry, "new")], multipart_threshold=2 * SMALL_FILE)
    assert report.ok, report.failed
    assert calls(store, "put") == 1 and calls(store, "create_upload") == 0
    assert store.data("large.bin") == data
    assert cp.synced_entries["large.bin"].md5 == hashlib.md5(data).hexdigest() == store.head("large.bin").etag


def test_an_upload_recorded_without_encryption_is_not_resumed_with_it(tmp_path: Path) -> None:
    """Encryption switched on while a plain upload is recorded: its parts are plaintext, so it is
    aborted and the file goes up encrypted from the start (never a mix of plain and encrypted parts)."""
    from ks3sync.crypto.key import EncryptionKey

    data = os.urandom(300 * KIB)
    entry = write(tmp_path, "big.bin", data)
    store, cp = MemoryStore(), MemoryCheckpoint()
    store.inject("complete_upload", TransientError("down"), times=2)
    assert failed_paths(run(store, cp, tmp_path, [Upload("big.bin", entry, "new")])) == ["big.bin"]
    plain = cp.uploads["big.bin"].upload_id
    store.calls.clear()
    report = run(
        store, cp, tmp_path, [Upload("big.bin", entry, "new")], encryption_key=EncryptionKey.generate()
    )
    assert report.ok, report.failed
    assert (
        calls(store, "abort_upload") == 1 and plain not in store.uploads and calls(store, "list_parts") == 0
    )
    assert store.data("big.bin") != data and store.head("big.bin").is_encrypted
    assert cp.synced_entries["big.bin"].encrypted


def test_a_recorded_encrypted_part_the_server_lost_is_sent_again(tmp_path: Path) -> None:
    """Resuming an encrypted upload skips re-encrypting a part only when KS3 still holds it as
    recorded; a recorded part missing from ListParts is encrypted and sent again, and Complete works."""
    from ks3sync.crypto.key import EncryptionKey

    key = EncryptionKey.generate()
    data = os.urandom(450 * KIB)
    entry = write(tmp_path, "big.bin", data)
    store, cp = MemoryStore(), MemoryCheckpoint()
    store.inject("complete_upload", TransientError("down"), times=2)
    assert failed_paths(run(store, cp, tmp_path, [Upload("big.bin", entry, "new")], encryption_key=key)) == [
        "big.bin"
    ]
    upload_id = cp.uploads["big.bin"].upload_id
    assert len(cp.uploads["big.bin"].parts) == 5
    # The server lost part 1 (the record still has it): re-encrypting it must start from the upload's
    # recorded IV (the later parts chain from the recorded blocks).
    del store.uploads[upload_id].parts[1]
    store.calls.clear()
    report = run(store, cp, tmp_path, [Upload("big.bin", entry, "new")], encryption_key=key)
    assert report.ok, report.failed
    assert [call for call in store.calls if call[0] == "upload_part"] == [("upload_part", "big.bin")]
    assert calls(store, "create_upload") == 0 and store.uploads == {}
    assert cp.synced_entries["big.bin"].md5 == hashlib.md5(data).hexdigest()
    # The object recorded as synced decrypts to the file: the resumed chain used the recorded IV.
    from ks3sync.crypto.decrypt import decrypt_object

    meta = store.head("big.bin")
    assert (
        decrypt_object(key, meta.metadata, store.data("big.bin"), object_key=store.key_for("big.bin")) == data
    )


def test_forget_drops_only_the_record_of_a_path_gone_from_both_sides(tmp_path: Path) -> None:
    from ks3sync.model import Forget

    store, cp = MemoryStore(), MemoryCheckpoint()
    _bucket_with(store, cp, ["kept.txt"])
    ident = identity_of(os.stat(__file__))
    cp.synced(SyncedEntry("gone.txt", ident, "0" * 32, "0" * 32, 1, False, 1))
    report = run(store, cp, tmp_path, [Forget("gone.txt")])
    assert report.ok and report.counts["forgotten"] == 1
    assert sorted(cp.synced_entries) == ["kept.txt"] and calls(store, "delete") == 0


def test_encrypted_single_puts_of_one_byte_and_above_the_in_memory_size_decrypt_to_the_file(
    tmp_path: Path,
) -> None:
    """With a key every non-empty file is stored encrypted (one byte too), including a single PUT
    streamed from the open file (above SMALL_FILE), and the object recorded decrypts to the file."""
    from ks3sync.crypto.decrypt import decrypt_object
    from ks3sync.crypto.key import EncryptionKey
    from ks3sync.transfer.context import SMALL_FILE

    key = EncryptionKey.generate()
    files = {"one.bin": b"x", "large.bin": os.urandom(SMALL_FILE + 4097)}
    entries = [Upload(name, write(tmp_path, name, data), "new") for name, data in files.items()]
    store, cp = MemoryStore(), MemoryCheckpoint()
    report = run(store, cp, tmp_path, entries, encryption_key=key, multipart_threshold=2 * SMALL_FILE)
    assert report.ok, report.failed
    for name, data in files.items():
        meta = store.head(name)
        assert meta.is_encrypted and store.data(name) != data, name
        assert decrypt_object(key, meta.metadata, store.data(name), object_key=store.key_for(name)) == data
        assert (
            cp.synced_entries[name].encrypted and cp.synced_entries[name].md5 == hashlib.md5(data).hexdigest()
        )
