"""Large restores as parallel ranged GETs (ks3sync/transfer/ranged.py) through the executor on MemoryStore:
the bytes land in order and are verified (MD5 / ETag, the combined CRC-64, decryption and the integrity
tag), one version only (If-Match), memory within the byte budget, a broken range fetched again, a
failure leaves no temp file and no record. The real server's path: tests/cli/test_ranged_restore.py."""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from pathlib import Path

import pytest

from ks3sync.crypto.key import EncryptionKey
from ks3sync.errors import TransientError
from ks3sync.model import Direction, Download, LocalEntry, RemoteEntry, Upload
from ks3sync.store.base import WriteOptions
from ks3sync.store.memory import MemoryStore
from ks3sync.transfer import Executor, MemoryCheckpoint, TransferOptions
from ks3sync.transfer.bodies import MemoryBody
from ks3sync.transfer.files import identity_of

KIB = 1024
PART = 100 * KIB


def opts(**kw: object) -> TransferOptions:
    base: dict[str, object] = {
        "jobs": 8,
        "part_size": PART,
        "multipart_threshold": 256 * KIB,
        "direction": Direction.DOWNLOAD,
    }
    base.update(kw)
    return TransferOptions(**base)  # type: ignore[arg-type]


def listed(store: MemoryStore, path: str) -> RemoteEntry:
    return next(e for e in store.list() if e.path == path)


def restore(store: MemoryStore, root: Path, path: str, entry: RemoteEntry | None = None, **kw: object):
    """Restore ``path`` as listed now, or as ``entry`` says (listed before the test changes the store)."""
    cp = MemoryCheckpoint()
    with Executor(store, cp, root, opts(**kw)) as ex:
        report = ex.run([Download(path, entry or listed(store, path))])
    return report, cp


class GetLog:
    """Records the ranges asked for (MemoryStore.open is wrapped: the store's own ``calls`` has no range)."""

    def __init__(self, store: MemoryStore) -> None:
        self.ranges: list[tuple[tuple[int, int] | None, str | None]] = []
        inner = store.open
        lock = threading.Lock()

        def open_logged(path, size=None, *, byte_range=None, if_match=None):
            with lock:
                self.ranges.append((byte_range, if_match))
            return inner(path, size, byte_range=byte_range, if_match=if_match)

        store.open = open_logged  # type: ignore[method-assign]


@pytest.mark.parametrize("size", [2 * PART, 2 * PART + 1, 7 * PART + 12345])
def test_a_large_object_arrives_in_ranges_in_order_and_verified(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    store = MemoryStore()
    etag = store.put("big", MemoryBody(data), WriteOptions()).etag
    log = GetLog(store)
    report, cp = restore(store, tmp_path, "big")
    assert report.ok, report.failed
    assert (tmp_path / "big").read_bytes() == data
    assert cp.synced_entries["big"].md5 == hashlib.md5(data).hexdigest() == etag
    count = -(-size // PART)
    assert sorted(r for r, _ in log.ranges) == [
        (n * PART, min(size, (n + 1) * PART) - 1) for n in range(count)
    ]
    assert log.ranges[0] == ((0, PART - 1), None)  # the first one learns the ETag ...
    assert all(m == etag for _, m in log.ranges[1:])  # ... every other asks for that version


def test_a_multipart_object_is_checked_by_the_combined_crc(tmp_path: Path) -> None:
    data = os.urandom(5 * PART)
    store = MemoryStore()
    upload_id = store.create_upload("mp", WriteOptions())
    parts = [
        store.upload_part("mp", upload_id, n + 1, MemoryBody(data[n * 2 * PART : (n + 1) * 2 * PART]))
        for n in range(3)
    ]
    store.complete_upload("mp", upload_id, parts)
    report, cp = restore(store, tmp_path, "mp")
    assert report.ok and (tmp_path / "mp").read_bytes() == data
    store.objects["mp"].data = data[:-1] + bytes([data[-1] ^ 0x80])  # one bit of the last range
    (tmp_path / "mp").unlink()
    report, cp = restore(store, tmp_path, "mp")
    assert [p for p, _ in report.failed] == ["mp"] and "CRC-64" in report.failed[0][1]
    assert list(tmp_path.iterdir()) == [] and not cp.synced_entries  # no temp file left, nothing recorded


def test_an_object_replaced_during_the_restore_is_never_stitched_from_two_versions(tmp_path: Path) -> None:
    first, second = os.urandom(6 * PART), os.urandom(6 * PART)
    store = MemoryStore()
    store.put("v", MemoryBody(first), WriteOptions())
    gets = [0]

    def replace_after_the_first_range(op: str, path: str) -> None:
        if op == "get":
            gets[0] += 1
            if gets[0] == 2:  # between the first range and the next ones
                store.put("v", MemoryBody(second), WriteOptions())

    entry = listed(store, "v")
    store.hook = replace_after_the_first_range
    report, cp = restore(store, tmp_path, "v", entry)
    # The first round fails (the ETag changed under it); the retry round reads the new version whole.
    assert report.ok, report.failed
    assert (tmp_path / "v").read_bytes() == second
    assert cp.synced_entries["v"].md5 == hashlib.md5(second).hexdigest()


def test_ranges_in_memory_stay_within_the_byte_budget(tmp_path: Path) -> None:
    store = MemoryStore()
    for n in range(3):
        store.put(f"f{n}", MemoryBody(os.urandom(12 * PART)), WriteOptions())
    peak = [0]
    cp = MemoryCheckpoint()
    with Executor(store, cp, tmp_path, opts(bytes_in_flight=3 * PART)) as ex:
        budget = ex.ctx.part_budget
        store.hook = lambda op, path: peak.__setitem__(0, max(peak[0], budget.in_use))
        report = ex.run([Download(f"f{n}", listed(store, f"f{n}")) for n in range(3)])
        assert budget.in_use == 0
    assert report.ok, report.failed
    assert PART <= peak[0] <= 3 * PART


def test_a_range_that_breaks_off_is_fetched_again(tmp_path: Path) -> None:
    data = os.urandom(4 * PART)
    store = MemoryStore()
    store.put("b", MemoryBody(data), WriteOptions())
    entry = listed(store, "b")
    store.inject("get", TransientError("connection reset reading the body"), times=1)
    gets_before = store.calls.count(("get", "b"))
    # The first GET (range 0) fails in the executor's first round; its retry round succeeds, and a
    # fault on a later range is absorbed by the range's own second attempt.
    faults = [0]

    def fail_the_third_get_once(op: str, path: str) -> None:
        if op == "get":
            faults[0] += 1
            if faults[0] == 3:
                raise TransientError("connection reset reading the body")

    store.hook = fail_the_third_get_once
    report, _cp = restore(store, tmp_path, "b", entry)
    assert report.ok, report.failed
    assert (tmp_path / "b").read_bytes() == data
    assert store.calls.count(("get", "b")) - gets_before == 1 + 4 + 1  # failed first, 4 ranges, 1 again


def test_a_large_encrypted_object_is_decrypted_and_its_tag_checked_across_ranges(tmp_path: Path) -> None:
    key = EncryptionKey(b"0123456789abcdef")
    data = os.urandom(9 * PART + 77)
    src = tmp_path / "src"
    src.mkdir()
    (src / "secret").write_bytes(data)
    store = MemoryStore()
    with Executor(store, MemoryCheckpoint(), src, opts(encryption_key=key, direction=Direction.UPLOAD)) as ex:
        entry = LocalEntry("secret", identity_of(os.stat(src / "secret")))
        assert ex.run([Upload("secret", entry, "new")]).ok
    dst = tmp_path / "dst"
    dst.mkdir()
    log = GetLog(store)
    report, cp = restore(store, dst, "secret", encryption_key=key)
    assert report.ok, report.failed
    assert (dst / "secret").read_bytes() == data
    assert cp.synced_entries["secret"].md5 == hashlib.md5(data).hexdigest()
    assert len(log.ranges) > 2 and all(r is not None for r, _ in log.ranges)
    # A flipped ciphertext bit in a later range is refused, not restored.
    obj = store.objects["secret"]
    obj.data = obj.data[: 5 * PART] + bytes([obj.data[5 * PART] ^ 1]) + obj.data[5 * PART + 1 :]
    (dst / "secret").unlink()
    report, cp = restore(store, dst, "secret", encryption_key=key)
    assert [p for p, _ in report.failed] == ["secret"] and not cp.synced_entries
    assert list(dst.iterdir()) == []


def test_a_range_that_fails_midway_leaves_no_file_and_no_temp_file(tmp_path: Path) -> None:
    """Ranges are written into the temp file at their offsets as they arrive: when one fails for good
    (here every GET of the fourth range), the ones written before it are not kept, the temp file is
    removed, nothing is recorded, and every range's budget comes back."""
    data = os.urandom(8 * PART)
    store = MemoryStore()
    store.put("big", MemoryBody(data), WriteOptions())
    entry = listed(store, "big")
    log = GetLog(store)
    inner = store.open

    def fourth_range_breaks(path, size=None, *, byte_range=None, if_match=None):
        if byte_range is not None and byte_range[0] == 3 * PART:
            raise TransientError("connection reset reading the body")
        return inner(path, size, byte_range=byte_range, if_match=if_match)

    store.open = fourth_range_breaks  # type: ignore[method-assign]
    cp = MemoryCheckpoint()
    with Executor(store, cp, tmp_path, opts()) as ex:
        report = ex.run([Download("big", entry)])
        assert ex.ctx.part_budget.in_use == 0
    assert [p for p, _ in report.failed] == ["big"]
    assert list(tmp_path.iterdir()) == [] and not cp.synced_entries
    assert any(r is not None and r[0] > 3 * PART for r, _ in log.ranges)  # later ranges had started


def test_a_larger_object_is_read_in_ranges_of_several_parts(tmp_path: Path) -> None:
    """About 16 ranges per object, whole parts each: 40 parts come as 20 ranges of 2 parts, the last
    one short; every byte arrives once and in place."""
    data = os.urandom(40 * PART - 5)
    store = MemoryStore()
    etag = store.put("big", MemoryBody(data), WriteOptions()).etag
    log = GetLog(store)
    report, cp = restore(store, tmp_path, "big")
    assert report.ok, report.failed
    assert (tmp_path / "big").read_bytes() == data and cp.synced_entries["big"].md5 == etag
    size = 2 * PART
    assert sorted(r for r, _ in log.ranges) == [
        (n * size, min(len(data), (n + 1) * size) - 1) for n in range(20)
    ]


def test_a_range_cut_off_midway_resumes_after_the_bytes_already_written(tmp_path: Path) -> None:
    """The restore may already have read back (and, encrypted, overwritten with plaintext) what a range
    wrote before its body broke off: the second attempt asks only for the rest, never the same bytes."""
    data = os.urandom(6 * PART)
    store = MemoryStore()
    etag = store.put("c", MemoryBody(data), WriteOptions()).etag
    log = GetLog(store)
    inner = store.open
    cut = [True]

    class CutReader:
        def __init__(self, reader) -> None:
            self.meta, self.checks_crc64, self._reader = reader.meta, reader.checks_crc64, reader

        def iter_bytes(self, chunk_size: int = 64 * KIB):
            yield next(iter(self._reader.iter_bytes(30 * KIB)))
            raise TransientError("connection reset reading the body")

    @contextlib.contextmanager
    def cut_the_third_range_once(path, size=None, *, byte_range=None, if_match=None):
        with inner(path, size, byte_range=byte_range, if_match=if_match) as reader:
            if byte_range is not None and byte_range[0] == 2 * PART and cut[0]:
                cut[0] = False
                reader = CutReader(reader)
            yield reader

    store.open = cut_the_third_range_once  # type: ignore[method-assign]
    report, cp = restore(store, tmp_path, "c")
    assert report.ok, report.failed
    assert (tmp_path / "c").read_bytes() == data and cp.synced_entries["c"].md5 == etag
    third = [r for r, _ in log.ranges if r is not None and 2 * PART <= r[0] < 3 * PART]
    assert len(third) == 2 and third[0] == (2 * PART, 3 * PART - 1)
    assert third[1] == (2 * PART + 30 * KIB, 3 * PART - 1), third  # the rest only
