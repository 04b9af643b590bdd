"""Multipart parts are hashed on the part pool (upload.py `_finish_part`): a part KS3 already holds but the
journal never recorded (a kill between KS3's answer and the record) is confirmed there without being
sent again, plain or encrypted (then re-encrypted in order: no chain block was recorded); a part whose
bytes differ from what KS3 holds is sent. Executor on MemoryStore, real files."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from ks3sync.crypto.decrypt import decrypt_object
from ks3sync.crypto.key import EncryptionKey
from ks3sync.errors import TransientError
from ks3sync.model import LocalEntry, Upload
from ks3sync.store.memory import MemoryStore
from ks3sync.transfer import Executor, MemoryCheckpoint, TransferOptions
from ks3sync.transfer.files import identity_of

KIB = 1024
KEY = EncryptionKey(b"0123456789abcdef")


def _upload(store: MemoryStore, cp: MemoryCheckpoint, root: Path, key: EncryptionKey | None):  # type: ignore[no-untyped-def]
    options = TransferOptions(jobs=4, part_size=100 * KIB, multipart_threshold=256 * KIB, encryption_key=key)
    entry = LocalEntry("big", identity_of(os.stat(root / "big")))
    with Executor(store, cp, root, options) as executor:
        return executor.run([Upload("big", entry, "new")])


def _part_calls(store: MemoryStore) -> int:
    return sum(1 for call in store.calls if call[0] == "upload_part")


@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "encrypted"])
def test_parts_ks3_holds_but_the_journal_lost_are_confirmed_not_resent(
    tmp_path: Path, key: EncryptionKey | None
) -> None:
    data = os.urandom(520 * KIB)  # 6 parts of 100 KiB (+ the IV on part 1 when encrypted)
    (tmp_path / "big").write_bytes(data)
    store, cp = MemoryStore(), MemoryCheckpoint()
    store.inject("complete_upload", TransientError("lost"), times=2)
    assert not _upload(store, cp, tmp_path, key).ok
    record = cp.uploads["big"]
    assert len(record.parts) == 6
    # The journal lost parts 2..6 (killed after KS3 answered): only part 1 stays recorded.
    cp.uploads["big"] = replace(record, parts=record.parts[:1])
    sent = _part_calls(store)
    report = _upload(store, cp, tmp_path, key)
    assert report.ok, report.failed
    assert _part_calls(store) == sent  # every part proven by ListParts + its MD5, none re-sent
    meta = store.head("big")
    assert meta is not None and meta.is_multipart
    stored = store.data("big")
    assert (decrypt_object(KEY, meta.metadata, stored, object_key="big") if key else stored) == data


def test_a_part_ks3_holds_with_other_bytes_is_sent_again(tmp_path: Path) -> None:
    data = os.urandom(520 * KIB)
    (tmp_path / "big").write_bytes(data)
    store, cp = MemoryStore(), MemoryCheckpoint()
    store.inject("complete_upload", TransientError("lost"), times=2)
    assert not _upload(store, cp, tmp_path, None).ok
    record = cp.uploads["big"]
    cp.uploads["big"] = replace(record, parts=record.parts[:2])
    held = store.uploads[record.upload_id].parts
    # KS3 holds part 4 with other bytes (an older attempt): its ETag no longer matches the file's part.
    part_data, _, part_crc = held[4]
    held[4] = (part_data, "0" * 32, part_crc)
    sent = _part_calls(store)
    report = _upload(store, cp, tmp_path, None)
    assert report.ok, report.failed
    assert _part_calls(store) - sent == 1
    assert store.data("big") == data
