"""run_mirror marches its three sources as streams: what it reads from the journal and hands to the
executor, and how a broken stream (out of order, a listing error, a stop) ends the pass with nothing
written or deleted. MemoryStore + MemoryJournal on real files; the same paths run over HTTP and SQLite in
tests/daemon and tests/cli."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from ks3sync.engine.mirror import MirrorOptions, run_mirror
from ks3sync.errors import TransientError
from ks3sync.model import Direction, RemoteEntry, SyncedEntry
from ks3sync.plan import OutOfOrderError
from ks3sync.scan.local import LocalScan
from ks3sync.store.base import WriteOptions
from ks3sync.store.memory import MemoryStore
from ks3sync.transfer import TransferOptions
from ks3sync.transfer.bodies import MemoryBody
from ks3sync.transfer.checkpoint import MemoryJournal
from ks3sync.transfer.executor import STOP_REQUESTED


def options(**kw: object) -> MirrorOptions:
    return MirrorOptions(transfer=TransferOptions(jobs=2), **kw)  # type: ignore[arg-type]


def tree(root: Path, files: dict[str, bytes]) -> None:
    for path, data in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


class CountingJournal(MemoryJournal):
    """Records how the pass reads the journal: full streams, and which paths it looks up."""

    def __init__(self) -> None:
        super().__init__()
        self.streams = 0
        self.looked_up: list[str] = []

    def iter_synced_entries(self, sync_id: int) -> Iterator[SyncedEntry]:
        self.streams += 1
        return super().iter_synced_entries(sync_id)

    def synced_for(self, sync_id: int, paths: Iterable[str]) -> dict[str, SyncedEntry]:
        wanted = list(paths)
        self.looked_up += wanted
        return super().synced_for(sync_id, wanted)


class ListingOf(MemoryStore):
    """A MemoryStore whose listing is replaced: reordered, or failing after some entries."""

    def __init__(self, inner: MemoryStore, *, reverse: bool = False, fail_after: int | None = None) -> None:
        super().__init__(prefix=inner.prefix, shared=inner)
        self.reverse = reverse
        self.fail_after = fail_after

    def list(self) -> Iterator[RemoteEntry]:
        entries = list(super().list())
        if self.reverse:
            entries.reverse()
        for n, entry in enumerate(entries):
            if self.fail_after is not None and n == self.fail_after:
                raise TransientError("listing: connection reset (injected)")
            yield entry


@pytest.fixture
def synced_pair(tmp_path: Path) -> tuple[Path, MemoryStore, CountingJournal]:
    src = tmp_path / "src"
    tree(src, {f"d{i}/f{j}.txt": f"{i}-{j}".encode() for i in range(3) for j in range(4)})
    store, journal = MemoryStore(prefix="p/"), CountingJournal()
    assert run_mirror(store, journal, 1, src, Direction.UPLOAD, options()).uploaded == 12
    store.calls.clear()
    journal.streams, journal.looked_up = 0, []
    return src, store, journal


def test_no_change_pass_streams_the_journal_once_and_looks_nothing_up(synced_pair) -> None:  # type: ignore[no-untyped-def]
    src, store, journal = synced_pair
    result = run_mirror(store, journal, 1, src, Direction.UPLOAD, options(delete=True))
    assert result.ok and result.skipped == 12 and store.writes() == []
    assert journal.streams == 1 and journal.looked_up == []


def test_new_files_read_the_journal_again_and_look_up_only_plan_paths(synced_pair) -> None:  # type: ignore[no-untyped-def]
    src, store, journal = synced_pair
    (src / "d0" / "f0.txt").write_bytes(b"changed content")
    (src / "d1" / "f1.txt").rename(src / "moved.txt")
    result = run_mirror(store, journal, 1, src, Direction.UPLOAD, options(delete=True))
    assert result.ok and (result.uploaded, result.copied, result.deleted) == (1, 1, 1)
    assert sorted(store.writes()) == [("copy", "moved.txt"), ("delete", "d1/f1.txt"), ("put", "d0/f0.txt")]
    assert journal.streams == 2  # phase 2: copy sources for the new file's size
    assert sorted(journal.looked_up) == ["d0/f0.txt", "d1/f1.txt", "moved.txt"]  # the copy reads its source


@pytest.mark.parametrize("direction", [Direction.UPLOAD, Direction.DOWNLOAD])
def test_out_of_order_listing_stops_the_pass_before_anything_is_written(
    synced_pair,
    direction: Direction,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    src, store, journal = synced_pair
    root = src if direction is Direction.UPLOAD else tmp_path / "restore"
    tree(tmp_path / "restore", {"local-only.txt": b"x"})
    broken = ListingOf(store, reverse=True)
    with pytest.raises(OutOfOrderError, match="remote listing came out of order"):
        run_mirror(broken, journal, 1, root, direction, options(delete=True, force=True))
    assert store.writes() == [] and len(journal.passes) == 1  # the fixture's pass only
    assert (tmp_path / "restore" / "local-only.txt").exists()
    assert not [t for t in threading.enumerate() if t.name == "ks3sync-list"]


def test_listing_error_mid_stream_is_raised_and_the_producer_ends(synced_pair) -> None:  # type: ignore[no-untyped-def]
    src, store, journal = synced_pair
    for path in list((src / "d2").iterdir()):
        path.unlink()  # deletes the march would plan if it trusted a half listing
    failing = ListingOf(store, fail_after=5)
    with pytest.raises(TransientError, match="injected"):
        run_mirror(failing, journal, 1, src, Direction.UPLOAD, options(delete=True, force=True))
    assert store.writes() == [] and len(journal.passes) == 1
    assert not [t for t in threading.enumerate() if t.name == "ks3sync-list"]


def test_stop_during_the_scan_ends_the_pass_without_a_record(
    synced_pair,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    src, store, journal = synced_pair
    (src / "new.txt").write_bytes(b"would be uploaded")
    stop = threading.Event()
    monkeypatch.setattr(LocalScan, "STOP_CHECK_EVERY", 2)
    original = LocalScan.__iter__

    def set_stop_midway(self: LocalScan) -> Iterator[object]:
        for n, entry in enumerate(original(self)):
            if n == 3:
                stop.set()
            yield entry

    monkeypatch.setattr(LocalScan, "__iter__", set_stop_midway)
    result = run_mirror(store, journal, 1, src, Direction.UPLOAD, options(), stop=stop)
    assert result.stopped == STOP_REQUESTED and store.writes() == [] and len(journal.passes) == 1


def test_backup_prefix_copies_only_objects_the_plan_overwrites(synced_pair) -> None:  # type: ignore[no-untyped-def]
    """The executor's object map holds the plan's paths only: an overwritten object is backed up, a
    new path is not (and nothing is HEADed to find out)."""
    src, store, journal = synced_pair
    (src / "d0" / "f0.txt").write_bytes(b"changed content")
    (src / "brand-new.txt").write_bytes(b"a new file of its own size")
    opts = MirrorOptions(transfer=TransferOptions(jobs=2, backup_prefix="backup/"))
    result = run_mirror(store, journal, 1, src, Direction.UPLOAD, opts)
    assert result.ok and result.uploaded == 2
    assert sorted(store.writes()) == [("copy", "d0/f0.txt"), ("put", "brand-new.txt"), ("put", "d0/f0.txt")]
    assert not [call for call in store.calls if call[0] == "head"]
    assert store.objects["backup/d0/f0.txt"].data == b"0-0"


def test_restore_streams_and_refuses_unsafe_keys(tmp_path: Path) -> None:
    store, journal = MemoryStore(prefix="r/"), CountingJournal()
    for path, data in (("a.txt", b"a"), ("b/../../escape", b"e"), ("z/z.txt", b"z")):
        store.put(path, MemoryBody(data), WriteOptions())
    target = tmp_path / "out"
    result = run_mirror(store, journal, 1, target, Direction.DOWNLOAD, options(delete=True))
    assert result.downloaded == 2 and [p for p, _ in result.failed] == ["b/../../escape"]
    assert sorted(p.name for p in target.rglob("*") if p.is_file()) == ["a.txt", "z.txt"]
    assert journal.streams == 1


def test_collections_are_rarer_during_the_march_and_restored_after(synced_pair) -> None:  # type: ignore[no-untyped-def]
    import gc

    src, store, journal = synced_pair
    seen: list[int] = []

    class Watching(ListingOf):
        def list(self) -> Iterator[RemoteEntry]:
            seen.append(gc.get_threshold()[0])
            yield from super().list()

    before = gc.get_threshold()
    assert run_mirror(Watching(store), journal, 1, src, Direction.UPLOAD, options()).skipped == 12
    assert seen == [max(before[0], 100_000)] and gc.get_threshold() == before
    with pytest.raises(TransientError):
        run_mirror(ListingOf(store, fail_after=1), journal, 1, src, Direction.UPLOAD, options())
    assert gc.get_threshold() == before
