"""Restore safety from the mutation run of transfer/download.py (docs/mutation.md): the CRC-64 check
of a multipart object (its ETag is no MD5 of the bytes, so only the CRC can catch a corruption), the
encrypted flag of a restored record, and the target folder surviving the deletes that empty it.
Through the executor on MemoryStore, whose reader hands out the stored bytes unchecked, as a
misbehaving server or a corrupted disk would."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from ks3sync.crypto.key import EncryptionKey
from ks3sync.model import DeleteLocal, Direction, Download, LocalEntry, SyncedEntry, Upload
from ks3sync.store.base import WriteOptions
from ks3sync.store.memory import MemoryStore
from ks3sync.transfer import Executor, MemoryCheckpoint, TransferOptions
from ks3sync.transfer.bodies import MemoryBody
from ks3sync.transfer.files import identity_of

KIB = 1024


def _opts(**kw: object) -> TransferOptions:
    base: dict[str, object] = {"jobs": 2, "part_size": 100 * KIB, "multipart_threshold": 256 * KIB}
    base.update(kw)
    return TransferOptions(**base)  # type: ignore[arg-type]


def _uploaded(tmp_path: Path, data: bytes, **kw: object) -> MemoryStore:
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(data)
    store = MemoryStore()
    with Executor(store, MemoryCheckpoint(), src, _opts(**kw)) as ex:
        assert ex.run(
            [Upload("big.bin", LocalEntry("big.bin", identity_of(os.stat(src / "big.bin"))), "new")]
        ).ok
    return store


def _restore(store: MemoryStore, target: Path, **kw: object):  # type: ignore[no-untyped-def]
    cp = MemoryCheckpoint()
    target.mkdir(exist_ok=True)
    entry = next(iter(store.list()))
    with Executor(store, cp, target, _opts(direction=Direction.DOWNLOAD, **kw)) as ex:
        return ex.run([Download(entry.path, entry)]), cp


def test_a_corrupted_multipart_object_is_caught_by_its_crc64(tmp_path: Path) -> None:
    data = os.urandom(450 * KIB)
    store = _uploaded(tmp_path, data)
    obj = store.objects["big.bin"]
    assert obj.etag.endswith("-5")  # multipart: the ETag is no MD5 of the bytes
    obj.data = obj.data[:1000] + bytes([obj.data[1000] ^ 0xFF]) + obj.data[1001:]  # same length
    target = tmp_path / "restore"
    report, cp = _restore(store, target)
    assert [p for p, _ in report.failed] == ["big.bin"] and "CRC-64" in report.failed[0][1]
    assert [p.name for p in target.iterdir()] == [] and cp.synced_entries == {}  # nothing renamed into place
    obj.data = data
    report, cp = _restore(store, target)
    assert report.ok and (target / "big.bin").read_bytes() == data
    assert cp.synced_entries["big.bin"].md5 == hashlib.md5(data).hexdigest()


def test_a_restored_encrypted_file_is_recorded_as_encrypted(tmp_path: Path) -> None:
    key = EncryptionKey(b"0123456789abcdef")
    data = os.urandom(300 * KIB)
    store = _uploaded(tmp_path, data, encryption_key=key)
    report, cp = _restore(store, tmp_path / "restore", encryption_key=key)
    assert report.ok, report.failed
    record = cp.synced_entries["big.bin"]
    assert record.encrypted is True and record.md5 == hashlib.md5(data).hexdigest()
    plain = MemoryStore()
    plain.put("x", MemoryBody(b"x"), WriteOptions())
    report, cp = _restore(plain, tmp_path / "restore2")
    assert report.ok and cp.synced_entries["x"].encrypted is False


def test_deletes_that_empty_the_target_keep_the_target_folder(tmp_path: Path) -> None:
    target = tmp_path / "target"
    (target / "d").mkdir(parents=True)
    (target / "d" / "only.txt").write_bytes(b"x")
    cp = MemoryCheckpoint()
    ident = identity_of(os.stat(target / "d" / "only.txt"))
    cp.synced(SyncedEntry("d/only.txt", ident, "0" * 32, "0" * 32, 1, False, 1))
    with Executor(MemoryStore(), cp, target, _opts(direction=Direction.DOWNLOAD)) as ex:
        report = ex.run([], [DeleteLocal("d/only.txt")])
    assert report.ok and report.counts["deleted"] == 1
    assert target.is_dir() and list(target.iterdir()) == []  # d/ pruned, the target itself kept
    assert tmp_path.is_dir() and sorted(p.name for p in tmp_path.iterdir()) == ["target"]


@pytest.mark.parametrize("tagged", [True, False], ids=["ks3sync-tagged", "sdk-untagged"])
def test_a_corrupted_encrypted_multipart_object_is_never_restored(tmp_path: Path, tagged: bool) -> None:
    """An encrypted multipart object records no plaintext MD5 (the SDK's format): a flipped ciphertext
    byte in a middle block still decrypts (to garbage) with a valid pad. ks3sync's integrity tag catches
    it; for an object without the tag (written by the SDK) only the ciphertext's CRC-64 can. Nothing may
    be renamed into place either way."""
    from ks3sync.crypto import TAG_METADATA

    key = EncryptionKey(b"0123456789abcdef")
    data = os.urandom(450 * KIB)
    store = _uploaded(tmp_path, data, encryption_key=key)
    obj = store.objects["big.bin"]
    assert obj.etag.endswith("-5") and "unencrypted-content-md5" not in obj.metadata
    if not tagged:
        del obj.metadata[TAG_METADATA]
    middle = len(obj.data) // 2
    obj.data = obj.data[:middle] + bytes([obj.data[middle] ^ 0x01]) + obj.data[middle + 1 :]
    target = tmp_path / "restore"
    # One GET (a part size above the object's): the whole-object reader leaves the CRC to the end, so
    # what catches the byte first is the tag when there is one.
    report, cp = _restore(store, target, encryption_key=key, part_size=1024 * KIB)
    assert [p for p, _ in report.failed] == ["big.bin"]
    assert ("integrity tag" if tagged else "CRC-64") in report.failed[0][1], report.failed
    assert [p.name for p in target.iterdir()] == [] and cp.synced_entries == {}
    # Parallel ranges (ranged.py): their combined CRC-64 is checked as the last range is handed over.
    report, cp = _restore(store, target, encryption_key=key)
    assert [p for p, _ in report.failed] == ["big.bin"] and "CRC-64" in report.failed[0][1], report.failed
    assert [p.name for p in target.iterdir()] == [] and cp.synced_entries == {}
