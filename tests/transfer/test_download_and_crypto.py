"""Downloads (verified temp file + rename, mtime, refusal of escaping keys) and client-side encryption
(single PUT, multipart with concurrent parts, resume from chain blocks) through the executor on
MemoryStore. The same paths run against local-server in tests/mirror."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from ks3sync.crypto.decrypt import decrypt_object
from ks3sync.crypto.encrypt import EncryptedFileBody
from ks3sync.crypto.integrity import tag_value
from ks3sync.crypto.key import EncryptionKey
from ks3sync.errors import TransientError
from ks3sync.model import Adopt, DeleteLocal, Direction, Download, LocalEntry, RemoteEntry, Upload
from ks3sync.store.base import WriteOptions
from ks3sync.store.memory import MemoryStore
from ks3sync.transfer import Executor, MemoryCheckpoint, TransferOptions
from ks3sync.transfer.bodies import MemoryBody
from ks3sync.transfer.download import key_segments
from ks3sync.transfer.files import identity_of

KIB = 1024
KEY = EncryptionKey(b"0123456789abcdef")


def opts(**kw: object) -> TransferOptions:
    base: dict[str, object] = {"jobs": 4, "part_size": 100 * KIB, "multipart_threshold": 256 * KIB}
    base.update(kw)
    return TransferOptions(**base)  # type: ignore[arg-type]


def remote(store: MemoryStore, path: str) -> RemoteEntry:
    return next(e for e in store.list() if e.path == path)


def upload(store: MemoryStore, cp: MemoryCheckpoint, root: Path, path: str, **kw: object):
    entry = LocalEntry(path, identity_of(os.stat(root / path)))
    with Executor(store, cp, root, opts(**kw)) as ex:
        return ex.run([Upload(path, entry, "new")])


def download(store: MemoryStore, cp: MemoryCheckpoint, root: Path, paths: list[str], **kw: object):
    kw.setdefault("direction", Direction.DOWNLOAD)
    with Executor(store, cp, root, opts(**kw)) as ex:
        return ex.run([Download(p, remote(store, p)) for p in paths])


def test_download_verifies_renames_and_restores_mtime(tmp_path: Path) -> None:
    store = MemoryStore(prefix="p/")
    store.put("d/x y.txt", MemoryBody(b"hello"), WriteOptions(metadata={"mtime": "1700000000123456789"}))
    cp = MemoryCheckpoint()
    report = download(store, cp, tmp_path, ["d/x y.txt"])
    assert report.ok, report.failed
    target = tmp_path / "d" / "x y.txt"
    assert target.read_bytes() == b"hello"
    assert os.stat(target).st_mtime_ns == 1700000000123456789
    assert cp.synced_entries["d/x y.txt"].md5 == hashlib.md5(b"hello").hexdigest()
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["x y.txt"]  # no temp file left


def test_corrupted_object_is_never_renamed_into_place(tmp_path: Path) -> None:
    store = MemoryStore()
    store.put("f", MemoryBody(b"good"), WriteOptions())
    store.objects["f"].data = b"evil"  # the stored bytes no longer match the ETag
    cp = MemoryCheckpoint()
    report = download(store, cp, tmp_path, ["f"])
    assert [p for p, _ in report.failed] == ["f"] and "ETag" in report.failed[0][1]
    assert list(tmp_path.iterdir()) == [] and not cp.synced_entries


@pytest.mark.parametrize("corrupt", [False, True])
def test_a_large_restore_hashes_on_a_pool_thread_and_still_verifies(tmp_path: Path, corrupt: bool) -> None:
    """Objects from PIPELINE_MD5_FROM up are hashed by _PipelinedHash: same digest, same ETag check.
    (One GET: the part size is larger than the object; ranged restores are test_ranged.py's.)"""
    from ks3sync.transfer.download import PIPELINE_MD5_FROM

    data = os.urandom(PIPELINE_MD5_FROM + 12345)
    store = MemoryStore()
    store.put("big", MemoryBody(data), WriteOptions())
    if corrupt:
        store.objects["big"].data = data[:-1] + bytes([data[-1] ^ 1])
    cp = MemoryCheckpoint()
    report = download(
        store, cp, tmp_path, ["big"], part_size=16 * 1024 * KIB, multipart_threshold=32 * 1024 * KIB
    )
    if corrupt:
        assert [p for p, _ in report.failed] == ["big"] and "ETag" in report.failed[0][1]
        assert list(tmp_path.iterdir()) == [] and not cp.synced_entries
    else:
        assert report.ok, report.failed
        assert store.calls.count(("get", "big")) == 1  # one GET of the whole object, no ranges
        assert (tmp_path / "big").read_bytes() == data
        assert cp.synced_entries["big"].md5 == hashlib.md5(data).hexdigest()


def test_pipelined_md5_matches_hashlib_in_stream_order() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from ks3sync.transfer.download import _PipelinedHash

    chunks = [os.urandom(n) for n in (1, 4096, 1 << 20, 0, 777, 3 << 20)]
    with ThreadPoolExecutor(4) as pool:
        piped = _PipelinedHash(pool, hashlib.md5())
        for chunk in chunks:
            piped.update(chunk)
        assert piped.hexdigest() == hashlib.md5(b"".join(chunks)).hexdigest()
        assert piped.digest() == hashlib.md5(b"".join(chunks)).digest()


@pytest.mark.parametrize(
    "key", ["../evil", "/etc/passwd", "a//b", "a/./b", "a/..", "", "x\x00y", "d/.ks3sync-tmp-1"]
)
def test_escaping_keys_are_refused(tmp_path: Path, key: str) -> None:
    from ks3sync.errors import UnsafeKeyError

    with pytest.raises(UnsafeKeyError):
        key_segments(key)
    op = Download(key, RemoteEntry(key, 1, "etag", 0))
    with Executor(MemoryStore(), MemoryCheckpoint(), tmp_path, opts(direction=Direction.DOWNLOAD)) as ex:
        report = ex.run([op], [DeleteLocal(key)])
    assert [path for path, _ in report.failed] == [key] and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("inside", [False, True], ids=["to-outside", "to-a-folder-inside"])
def test_restore_through_a_symlinked_folder_is_refused(tmp_path: Path, inside: bool) -> None:
    """rsync's default (no --keep-dirlinks): a symlink inside the target folder is never written
    through, whether it leads outside or to another folder inside (D9). The link and where it leads
    are untouched; the other entries restore."""
    root = tmp_path / "root"
    (root / "real" / "deep").mkdir(parents=True)
    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    (root / "link").symlink_to(root / "real" if inside else outside)
    store = MemoryStore()
    for key in ("link/deep/file", "link/new/file", "ok"):
        store.put(key, MemoryBody(b"x"), WriteOptions())
    report = download(store, MemoryCheckpoint(), root, ["link/deep/file", "link/new/file", "ok"])
    failed = dict(report.failed)
    assert sorted(failed) == ["link/deep/file", "link/new/file"]
    assert all("'link' is a symbolic link inside the target folder" in m for m in failed.values())
    assert sorted(p.name for p in outside.rglob("*")) == ["deep"]
    assert sorted(p.name for p in (root / "real").rglob("*")) == ["deep"]
    assert (root / "link").is_symlink() and (root / "ok").read_bytes() == b"x"


def test_a_folder_or_a_file_in_the_way_fails_that_entry_only(tmp_path: Path) -> None:
    """A key whose local name is a folder, or whose parent is a file, fails alone with a message naming
    it; the folder and the file are untouched, no temp file is left, the other entries restore."""
    (tmp_path / "dir" / "inner").mkdir(parents=True)
    (tmp_path / "plain").write_bytes(b"local")
    store = MemoryStore()
    for key in ("dir", "plain/child", "ok"):
        store.put(key, MemoryBody(key.encode()), WriteOptions())
    cp = MemoryCheckpoint()
    report = download(store, cp, tmp_path, ["dir", "plain/child", "ok"])
    failed = dict(report.failed)
    assert sorted(failed) == ["dir", "plain/child"]
    assert "exists locally as a folder" in failed["dir"]
    assert "a parent of it exists locally as a file" in failed["plain/child"]
    assert (tmp_path / "dir" / "inner").is_dir() and (tmp_path / "plain").read_bytes() == b"local"
    assert (tmp_path / "ok").read_bytes() == b"ok" and sorted(cp.synced_entries) == ["ok"]
    leftovers = [p for p in tmp_path.rglob("*") if p.name.startswith(".ks3sync-tmp-")]
    assert leftovers == []


def test_delete_local_prunes_empty_folders(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f").write_bytes(b"x")
    (tmp_path / "keep").write_bytes(b"y")
    cp = MemoryCheckpoint()
    with Executor(MemoryStore(), cp, tmp_path, opts(direction=Direction.DOWNLOAD)) as ex:
        report = ex.run([], [DeleteLocal("a/b/f")])
    assert report.ok and report.counts["deleted"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep"]


@pytest.mark.parametrize("size", [0, 1, 16, 5000, 300 * KIB + 5])
def test_encrypted_upload_decrypts_and_restores(tmp_path: Path, size: int) -> None:
    src = tmp_path / "src"
    src.mkdir()
    data = os.urandom(size)
    (src / "f.bin").write_bytes(data)
    store, cp = MemoryStore(), MemoryCheckpoint()
    report = upload(store, cp, src, "f.bin", encryption_key=KEY)
    assert report.ok, report.failed
    meta = store.head("f.bin")
    assert meta is not None
    if size:
        assert meta.is_encrypted and store.data("f.bin") != data
        assert (
            decrypt_object(KEY, meta.metadata, store.data("f.bin"), object_key=store.key_for("f.bin")) == data
        )
        with pytest.raises(ValueError, match="pass object_key"):  # a tagged object is never read unchecked
            decrypt_object(KEY, meta.metadata, store.data("f.bin"))
    else:
        assert not meta.is_encrypted and store.data("f.bin") == b""  # the SDK stores empty files plain
    entry = cp.synced_entries["f.bin"]
    assert entry.md5 == hashlib.md5(data).hexdigest() and entry.encrypted
    assert entry.remote_size == meta.size and entry.remote_etag == meta.etag
    dst = tmp_path / "dst"
    dst.mkdir()
    report = download(store, MemoryCheckpoint(), dst, ["f.bin"], encryption_key=KEY)
    assert report.ok, report.failed
    assert (dst / "f.bin").read_bytes() == data


def test_encrypted_object_without_or_with_wrong_key(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"secret data")
    store = MemoryStore()
    assert upload(store, MemoryCheckpoint(), tmp_path, "f", encryption_key=KEY).ok
    dst = tmp_path / "dst"
    dst.mkdir()
    report = download(store, MemoryCheckpoint(), dst, ["f"])
    assert "--encrypt-key" in report.failed[0][1]
    report = download(
        store, MemoryCheckpoint(), dst, ["f"], encryption_key=EncryptionKey(b"fedcba9876543210")
    )
    assert "different key" in report.failed[0][1]
    assert list(dst.iterdir()) == []


def test_encrypted_multipart_resumes_from_recorded_chain_blocks(tmp_path: Path) -> None:
    data = os.urandom(520 * KIB)
    (tmp_path / "big").write_bytes(data)
    store, cp = MemoryStore(), MemoryCheckpoint()
    store.inject("complete_upload", TransientError("lost"), times=2)
    assert not upload(store, cp, tmp_path, "big", encryption_key=KEY).ok
    record = cp.uploads["big"]
    assert record.iv is not None and len(record.parts) == 6
    assert all(p.chain_block is not None and len(p.chain_block) == 16 for p in record.parts)
    # Drop the last two parts on the "server": the resumed run must send exactly those two.
    del store.uploads[record.upload_id].parts[5]
    del store.uploads[record.upload_id].parts[6]
    sent_before = sum(1 for c in store.calls if c[0] == "upload_part")
    report = upload(store, cp, tmp_path, "big", encryption_key=KEY)
    assert report.ok, report.failed
    assert sum(1 for c in store.calls if c[0] == "upload_part") - sent_before == 2
    meta = store.head("big")
    assert meta is not None and meta.is_multipart
    assert decrypt_object(KEY, meta.metadata, store.data("big"), object_key="big") == data


@pytest.mark.parametrize("encrypted", [False, True])
def test_streamed_single_put_reads_the_open_descriptor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encrypted: bool
) -> None:
    import ks3sync.transfer.upload as upload_module

    monkeypatch.setattr(upload_module, "SMALL_FILE", 1000)  # force the streamed (pread) body
    data = os.urandom(200_000)
    (tmp_path / "f").write_bytes(data)
    store, cp = MemoryStore(), MemoryCheckpoint()
    kw = {"encryption_key": KEY} if encrypted else {}
    report = upload(store, cp, tmp_path, "f", **kw)
    assert report.ok, report.failed
    stored = store.data("f")
    meta = store.head("f")
    assert meta is not None
    assert (decrypt_object(KEY, meta.metadata, stored, object_key="f") if encrypted else stored) == data
    assert cp.synced_entries["f"].md5 == hashlib.md5(data).hexdigest()


@pytest.mark.parametrize("initiated_with", ["no tag", "another content's tag"])
def test_a_resumed_encrypted_upload_is_recorded_only_if_the_object_carries_this_files_tag(
    tmp_path: Path, initiated_with: str
) -> None:
    """The tag is fixed at Initiate; a resumed upload was initiated by an earlier run (by a ks3sync without
    tags, or for content that differs without a visible identity change): checked after Complete. The
    completed object is not recorded; the pass's retry round uploads the file anew, tagged."""
    from dataclasses import replace

    data = os.urandom(520 * KIB)
    (tmp_path / "big").write_bytes(data)
    store, cp = MemoryStore(), MemoryCheckpoint()
    store.inject("complete_upload", TransientError("lost"), times=2)
    assert not upload(store, cp, tmp_path, "big", encryption_key=KEY).ok
    pending = store.uploads[cp.uploads["big"].upload_id]
    metadata = dict(pending.options.metadata)
    if initiated_with == "no tag":
        del metadata["ks3sync-tag"]
    else:
        metadata["ks3sync-tag"] = tag_value(KEY, "big", len(data), hashlib.sha256(b"older content").digest())
    pending.options = replace(pending.options, metadata=metadata)
    mark = len(store.calls)
    report = upload(store, cp, tmp_path, "big", encryption_key=KEY)
    assert report.ok, report.failed
    ops = [c[0] for c in store.calls[mark:] if c[0] in ("create_upload", "complete_upload", "head")]
    # resumed upload completed, HEAD finds the wrong tag; the retry starts a fresh (tagged) upload
    assert ops[:3] == ["complete_upload", "head", "create_upload"] and ops.count("complete_upload") == 2
    meta = store.head("big")
    assert meta is not None and cp.synced_entries["big"].remote_etag == meta.etag
    assert decrypt_object(KEY, meta.metadata, store.data("big"), object_key="big") == data


def test_restore_flags_for_plaintext_and_untagged_objects(tmp_path: Path) -> None:
    store = MemoryStore(prefix="p/")
    store.put("plain", MemoryBody(b"plaintext"), WriteOptions())
    sdk_like = EncryptedFileBody(KEY, b"no tag, like the SDK writes")
    store.put("sdk", sdk_like, WriteOptions(metadata=sdk_like.metadata()))
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "ours").write_bytes(b"tagged")
    assert upload(store, MemoryCheckpoint(), tmp_path / "src", "ours", encryption_key=KEY).ok
    ours = store.head("ours")
    assert ours is not None and "ks3sync-tag" in ours.metadata

    def restore(name: str, **kw: object) -> tuple[object, Path]:
        dst = tmp_path / name
        dst.mkdir()
        with Executor(
            store, MemoryCheckpoint(), dst, opts(direction=Direction.DOWNLOAD, encryption_key=KEY, **kw)
        ) as ex:
            return ex.run([Download(p, remote(store, p)) for p in ("ours", "plain", "sdk")]), dst

    report, dst = restore("default")
    assert [p for p, _ in report.failed] == ["plain"] and "not client-side encrypted" in report.failed[0][1]
    assert report.untagged_reads == 1 and sorted(p.name for p in dst.iterdir()) == ["ours", "sdk"]
    report, dst = restore("allow", allow_unencrypted=True)
    assert report.ok and report.untagged_reads == 1 and (dst / "plain").read_bytes() == b"plaintext"
    report, dst = restore("strict", require_integrity=True)
    assert sorted(p for p, _ in report.failed) == ["plain", "sdk"] and report.untagged_reads == 0
    assert [p.name for p in dst.iterdir()] == ["ours"]


@pytest.mark.parametrize("tampered", [False, True])
def test_a_large_encrypted_restore_checks_the_tag_hashed_on_the_pool(tmp_path: Path, tampered: bool) -> None:
    """From PIPELINE_MD5_FROM up the tag's SHA-256 runs on the part pool: same verdict as inline. The
    tampering is consistent (CRC-64 recomputed), as a bucket writer's would be: only the tag notices."""
    from ks3sync.store.checksums import crc64_update
    from ks3sync.transfer.download import PIPELINE_MD5_FROM

    data = os.urandom(PIPELINE_MD5_FROM + 4321)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "big").write_bytes(data)
    store = MemoryStore()
    assert upload(store, MemoryCheckpoint(), tmp_path / "src", "big", encryption_key=KEY).ok
    stored = store.objects["big"]
    assert "-" in stored.etag  # multipart: no plaintext MD5 in its metadata
    if tampered:
        damaged = bytearray(stored.data)
        damaged[len(damaged) // 3] ^= 0x04
        stored.data = bytes(damaged)
        stored.crc64 = crc64_update(0, stored.data)
    dst = tmp_path / "dst"
    dst.mkdir()
    report = download(store, MemoryCheckpoint(), dst, ["big"], encryption_key=KEY)
    if tampered:
        assert [p for p, _ in report.failed] == ["big"] and "integrity tag" in report.failed[0][1]
        assert list(dst.iterdir()) == []
    else:
        assert report.ok and report.untagged_reads == 0 and (dst / "big").read_bytes() == data


@pytest.mark.parametrize("require_integrity", [False, True])
def test_uploading_an_untagged_object_is_adopted_or_with_require_integrity_re_sent_tagged(
    tmp_path: Path, require_integrity: bool
) -> None:
    """An SDK-written object already holding the file (its plaintext MD5 and length match): adopted as
    before, unless integrity is required (a sync's require_integrity, the service's too): then uploaded
    anew, tagged."""
    data = b"written by the SDK, same bytes as the local file"
    (tmp_path / "f").write_bytes(data)
    store = MemoryStore()
    sdk_like = EncryptedFileBody(KEY, data)
    store.put("f", sdk_like, WriteOptions(metadata=sdk_like.metadata()))
    entry = LocalEntry("f", identity_of(os.stat(tmp_path / "f")))
    cp = MemoryCheckpoint()
    with Executor(store, cp, tmp_path, opts(encryption_key=KEY, require_integrity=require_integrity)) as ex:
        report = ex.run([Adopt("f", entry, remote(store, "f"))])
    assert report.ok, report.failed
    meta = store.head("f")
    assert meta is not None and cp.synced_entries["f"].remote_etag == meta.etag
    if require_integrity:
        assert report.counts["uploaded"] == 1 and "ks3sync-tag" in meta.metadata
    else:
        assert report.counts["adopted"] == 1 and "ks3sync-tag" not in meta.metadata
