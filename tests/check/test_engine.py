"""run_check on real files against MemoryStore: the march (missing, extra, differ, in path order),
the exclusion rules mirror uses, scan problems, errors per entry, --download, and memory that follows
the differences. The same paths run over HTTP against local-server in test_cli.py."""

from __future__ import annotations

import gc
import hashlib
import os
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from ks3sync.check import CheckOptions, CompareOptions, Method, Status, Verdict, run_check
from ks3sync.check import local as check_local
from ks3sync.check.examine import ATTEMPTS
from ks3sync.engine.mirror import MirrorOptions, run_mirror
from ks3sync.errors import AuthError, TransientError
from ks3sync.model import Direction, RemoteEntry
from ks3sync.store.base import ObjectMeta
from ks3sync.store.memory import MemoryStore
from ks3sync.store.prefetch import PrefetchedListing
from ks3sync.transfer import TransferOptions
from ks3sync.transfer.checkpoint import MemoryJournal

KIB = 1024
FILES = {"a.txt": b"alpha", "b/c.txt": b"charlie", "b/d.bin": os.urandom(300 * KIB), "e": b""}


def tree(root: Path, files: dict[str, bytes]) -> None:
    for path, data in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, MemoryStore]:
    """A folder mirrored to a MemoryStore, with multipart objects for the 300 KiB file."""
    src = tmp_path / "src"
    tree(src, FILES)
    store = MemoryStore(prefix="p/", min_part_size=100 * KIB)
    transfer = TransferOptions(jobs=2, part_size=100 * KIB, multipart_threshold=200 * KIB)
    assert run_mirror(store, MemoryJournal(), 1, src, Direction.UPLOAD, MirrorOptions(transfer=transfer)).ok
    assert store.objects["p/b/d.bin"].etag.endswith("-3")
    store.calls.clear()
    return src, store


def check(store: MemoryStore, root: Path, **kw: object) -> tuple[object, list[Verdict]]:
    seen: list[Verdict] = []
    compare = CompareOptions(**{k: v for k, v in kw.items() if k in CompareOptions.__slots__})  # type: ignore[arg-type]
    rest = {k: v for k, v in kw.items() if k not in CompareOptions.__slots__}
    result = run_check(store, root, CheckOptions(compare=compare, jobs=2, **rest), on_verdict=seen.append)  # type: ignore[arg-type]
    return result, seen


def rows(verdicts: list[Verdict]) -> list[tuple[str, str, str]]:
    return [(v.path, v.status.value, v.detail) for v in verdicts]


def test_an_equal_pair_is_ok_and_says_how_each_entry_was_proven(pair) -> None:  # type: ignore[no-untyped-def]
    src, store = pair
    result, seen = check(store, src)
    assert result.ok and result.entries == []
    assert [(v.path, v.compared) for v in seen] == [
        ("a.txt", (Method.SIZE, Method.MD5)),
        ("b/c.txt", (Method.SIZE, Method.MD5)),
        ("b/d.bin", (Method.SIZE, Method.CRC64)),  # multipart: one HEAD for its CRC-64
        ("e", (Method.SIZE,)),
    ]
    assert store.calls == [("list", ""), ("head", "b/d.bin")]
    assert dict(result.verified_by) == {Method.MD5: 2, Method.CRC64: 1, Method.SIZE: 1}


def test_missing_extra_and_differing_entries_in_path_order_and_swapped_with_the_order(pair) -> None:  # type: ignore[no-untyped-def]
    src, store = pair
    (src / "a.txt").write_bytes(b"ALPHA")  # same size, other content
    (src / "b" / "c.txt").write_bytes(b"charlie, longer")
    (src / "b" / "new").write_bytes(b"n")
    store.objects["p/zz-extra"] = store.objects["p/a.txt"]
    result, seen = check(store, src)
    expected = [
        ("a.txt", "differ", "md5"),
        ("b/c.txt", "differ", "size 15 != 7"),
        ("b/new", "missing", ""),
        ("zz-extra", "extra", ""),
    ]
    assert rows(result.entries) == expected
    assert rows([v for v in seen if v.status is not Status.EQUAL]) == expected
    assert not result.ok and result.counts[Status.EQUAL] == 2
    reverse, _ = check(store, src, local_is_source=False)
    assert rows(reverse.entries) == [
        ("a.txt", "differ", "md5"),
        ("b/c.txt", "differ", "size 7 != 15"),
        ("b/new", "extra", ""),
        ("zz-extra", "missing", ""),
    ]


def test_verdicts_come_in_path_order_when_examinations_finish_out_of_order(tmp_path: Path) -> None:
    src = tmp_path / "src"
    files = {f"f{i:02}": f"file {i}".encode() for i in range(40)}
    tree(src, files)
    store = MemoryStore()
    for path, data in files.items():
        store.objects[path] = _object_like(store, data)
    first_done = threading.Event()

    def slow_first(op: str, path: str) -> None:
        if op == "head" and path == "f00":
            assert first_done.wait(10)  # f00 finishes only after a later file was examined

        if op == "head" and path == "f05":
            first_done.set()

    store.hook = slow_first
    for path in ("f00", "f05"):
        store.objects[path].etag = "0" * 32 + "-1"  # multipart-looking: examined with a HEAD
    result, seen = check(store, src)
    assert [v.path for v in seen] == sorted(files)
    assert result.ok


def _object_like(store: MemoryStore, data: bytes) -> object:
    from ks3sync.store.base import WriteOptions
    from ks3sync.transfer.bodies import MemoryBody

    scratch = MemoryStore()
    scratch.put("x", MemoryBody(data), WriteOptions())
    return scratch.objects["x"]


def test_excluded_paths_and_ks3syncs_own_files_are_outside_the_check(pair, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src, store = pair
    (src / "skip.log").write_bytes(b"local only, excluded")
    store.objects["p/old.log"] = store.objects["p/a.txt"]  # remote only, excluded
    (src / ".ks3ignore").write_text("ignored/\n")
    store.objects["p/.ks3ignore"] = _object_like(store, b"ignored/\n")
    store.objects["p/ignored/x"] = store.objects["p/a.txt"]
    (src / "journal.db").write_bytes(b"state")
    result, _ = check(store, src, excludes=("*.log",), state_paths=(src / "journal.db",))
    assert result.ok, rows(result.entries)
    assert result.counts[Status.EQUAL] == 5


def test_objects_where_the_scan_could_not_look_are_errors_not_extra(pair) -> None:  # type: ignore[no-untyped-def]
    src, store = pair
    (src / "link").symlink_to(src / "a.txt")
    store.objects["p/link"] = store.objects["p/a.txt"]
    (src / "dangling").symlink_to(src / "nowhere")  # no object: only a note
    os.close(os.open(os.fsencode(src) + b"/bad\xffname", os.O_CREAT | os.O_WRONLY, 0o600))
    result, _ = check(store, src)
    assert [(v.path, v.status.value) for v in result.entries] == [
        ("bad\\xffname", "error"),
        ("link", "error"),
    ]
    assert result.entries[1].detail.startswith("not compared: symbolic link")
    assert [path for path, _ in result.notes] == ["dangling", "link"]
    assert not result.ok


def test_a_network_error_is_retried_then_counted_as_an_error_and_a_fatal_one_stops(pair) -> None:  # type: ignore[no-untyped-def]
    src, store = pair
    store.inject("head", TransientError("connection reset (injected)"), times=ATTEMPTS - 1, path="b/d.bin")
    result, _ = check(store, src)
    assert result.ok
    store.inject("head", TransientError("connection reset (injected)"), times=ATTEMPTS, path="b/d.bin")
    result, _ = check(store, src)
    assert rows(result.entries) == [("b/d.bin", "error", "connection reset (injected)")]
    store.inject("head", AuthError("credentials refused (injected)"), path="b/d.bin")
    with pytest.raises(AuthError):
        check(store, src)
    assert not [t for t in threading.enumerate() if t.name.startswith(("ks3sync-check", "ks3sync-list"))]


def test_a_file_that_changes_while_it_is_read_is_an_error(pair, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    src, store = pair
    original = check_local.read_chunk
    grow_on_reads = [ATTEMPTS]

    def growing(path: str, fd: int, size: int = check_local.READ_CHUNK) -> bytes:
        chunk = original(path, fd, size)
        first = os.lseek(fd, 0, os.SEEK_CUR) == len(chunk)
        if path == "a.txt" and first and grow_on_reads[0] > 0:  # once per read of the file
            grow_on_reads[0] -= 1
            with open(src / path, "ab") as fh:
                fh.write(b"!")
        return chunk

    monkeypatch.setattr(check_local, "read_chunk", growing)
    result, _ = check(store, src)
    assert rows(result.entries) == [("a.txt", "error", "the file changed while it was read; compare again")]
    # Changed during the first read only: the next read sees a stable file, which now differs.
    (src / "a.txt").write_bytes(b"alpha")
    grow_on_reads[0] = 1
    result, _ = check(store, src)
    assert rows(result.entries) == [("a.txt", "differ", "size 6 != 5")]


def test_download_finds_what_the_metadata_cannot_and_proves_the_rest(pair) -> None:  # type: ignore[no-untyped-def]
    src, store = pair
    stored = store.objects["p/b/d.bin"]
    corrupt = bytearray(stored.data)
    corrupt[150_000] ^= 0x01
    stored.data = bytes(corrupt)  # same size, ETag and CRC-64 header: only reading it shows the change
    by_metadata, _ = check(store, src)
    assert by_metadata.ok
    read_back, seen = check(store, src, download=True)
    assert rows(read_back.entries) == [("b/d.bin", "differ", "content at byte 150000")]
    assert {v.path: v.compared for v in seen if v.status is Status.EQUAL} == {
        "a.txt": (Method.SIZE, Method.CONTENT),
        "b/c.txt": (Method.SIZE, Method.CONTENT),
        "e": (Method.SIZE,),
    }


def test_download_refuses_an_object_that_fails_its_own_etag(pair) -> None:  # type: ignore[no-untyped-def]
    src, store = pair
    store.objects["p/a.txt"].etag = hashlib.md5(b"something else").hexdigest()
    result, _ = check(store, src, download=True)
    assert rows(result.entries) == [("a.txt", "differ", "the object's bytes do not match its ETag (MD5)")]


class Streaming(MemoryStore):
    """A store of ``count`` one-line objects listed lazily, as KS3 pages would arrive: the listing
    itself holds nothing, so what the check holds is what it keeps."""

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count

    def list(self) -> Iterator[RemoteEntry]:
        for i in range(self.count):
            data = line(i)
            yield RemoteEntry(name(i), len(data), hashlib.md5(data).hexdigest())

    def head(self, path: str) -> ObjectMeta | None:
        raise AssertionError("an equal plain tree needs no HEAD")


def name(i: int) -> str:
    return f"d{i // 100:03}/f{i % 100:02}"


def line(i: int) -> bytes:
    return f"{i}\n".encode()


class HeldMemory:
    """Every 500 verdicts, what is still allocated once garbage is collected (the march frees its cyclic
    garbage in large batches, mirror._fewer_collections, so a raw peak is mostly collector timing)."""

    def __init__(self) -> None:
        self.verdicts = 0
        self.samples: list[int] = []

    def __call__(self, _: Verdict) -> None:
        self.verdicts += 1
        if self.verdicts % 500 == 0:
            gc.collect()
            self.samples.append(tracemalloc.get_traced_memory()[0])


def test_memory_follows_the_differences_not_the_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The listing runs a few chunks ahead of the march: small chunks make that look-ahead (bounded, but
    # larger than a 1,000-object listing at the default 1,000 per chunk) the same for both trees.
    monkeypatch.setattr(PrefetchedListing, "CHUNK", 100)
    import ks3sync.crypto.envelope  # noqa: F401 - loaded by the first size difference; not part of what is held

    held = {}
    for count in (1_000, 10_000):
        root = tmp_path / str(count)
        for i in range(count):
            path = root / name(i)
            if i % 100 == 0:
                path.parent.mkdir(parents=True)
            path.write_bytes(line(i))
        (root / name(7)).write_bytes(b"changed\n")
        sampler = HeldMemory()
        tracemalloc.start()
        try:
            result = run_check(Streaming(count), root, CheckOptions(jobs=4), on_verdict=sampler)
        finally:
            tracemalloc.stop()
        assert rows(result.entries) == [(name(7), "differ", "size 8 != 2")]
        assert result.counts[Status.EQUAL] == count - 1
        held[count] = max(sampler.samples)
    # Holding 9,000 more entries (path, verdict) would add over 1 MB; the check holds the same for both.
    assert held[10_000] < held[1_000] + 512 * KIB, held


def test_a_non_empty_object_named_like_a_folder_is_extra_and_an_empty_marker_is_nothing(pair) -> None:  # type: ignore[no-untyped-def]
    src, store = pair
    store.objects["p/b/"] = _object_like(store, b"a body under a folder's name")  # no file can be it
    store.objects["p/marker/"] = _object_like(store, b"")  # a folder marker: not an entry at all
    result, _ = check(store, src)
    assert rows(result.entries) == [("b/", "extra", "")]
    reverse, _ = check(store, src, local_is_source=False)
    assert rows(reverse.entries) == [("b/", "missing", "")]
