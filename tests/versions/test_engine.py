"""Versions through the engine against MemoryStore (real files in tmp_path): the keeper's copy comes
before every change and once per pass, manifests record what was confirmed, the listing skips the
versions area, and the point-in-time view reads versions but verifies against the original key."""

from __future__ import annotations

import os
from pathlib import Path

from ks3sync.errors import RemoteRejected, TransientError
from ks3sync.model import Copy, DeleteRemote, Direction, LocalEntry, RemoteEntry, Upload
from ks3sync.store.base import Body, WriteOptions, WriteResult
from ks3sync.store.memory import MemoryStore
from ks3sync.transfer import Executor, MemoryCheckpoint, TransferOptions
from ks3sync.transfer.bodies import MemoryBody
from ks3sync.transfer.files import identity_of
from ks3sync.versions.area import list_area, read_manifest
from ks3sync.versions.hide import without_areas
from ks3sync.versions.layout import Layout
from ks3sync.versions.recorder import VersionPass

LAYOUT = Layout(".versions/")
STAMP = "2026-12-06T18-30-05.123Z"


def local(root: Path, path: str, data: bytes) -> LocalEntry:
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_bytes(data)
    return LocalEntry(path, identity_of(os.stat(root / path)))


def seeded(**objects: bytes) -> MemoryStore:
    store = MemoryStore(prefix="docs/")
    for path, data in objects.items():
        store.put(path.replace("__", "/"), MemoryBody(data), WriteOptions())
    return store


def run_pass(store: MemoryStore, root: Path, ops: list, deletes: list, *, remote: bool = True):  # type: ignore[no-untyped-def]
    vpass = VersionPass(store, LAYOUT, STAMP, clock=lambda: 1)
    listed = {e.path: e for e in store.list()} if remote else None
    with Executor(
        store, vpass.watch(MemoryCheckpoint()), root, TransferOptions(jobs=4), remote=listed, keeper=vpass
    ) as ex:
        report = ex.run(ops, deletes)
    return report, vpass.finish()


def test_overwrites_and_deletes_are_copied_first_and_the_manifest_comes_last(tmp_path: Path) -> None:
    store = seeded(**{"a.txt": b"old a", "b.txt": b"old b", "c.txt": b"old c"})
    order: list[tuple[str, str]] = []
    store.hook = lambda op, path: order.append((op, path))
    remote = {e.path: e for e in store.list()}
    ops = [
        Upload("a.txt", local(tmp_path, "a.txt", b"new a"), "changed"),
        Upload("n.txt", local(tmp_path, "n.txt", b"new"), "new"),
    ]
    report, outcome = run_pass(
        store, tmp_path, ops, [DeleteRemote("b.txt", remote["b.txt"]), DeleteRemote("c.txt", remote["c.txt"])]
    )
    assert report.ok and outcome.versions == 3 and outcome.entries == 4
    version = f".versions/{STAMP}/"
    assert order.index(("copy", version + "a.txt")) < order.index(("put", "a.txt"))
    assert order.index(("copy", version + "b.txt")) < order.index(("delete", "b.txt"))
    assert order[-1] == ("put", f".versions/{STAMP}.json")  # the manifest, last
    assert [store.data(version + p) for p in ("a.txt", "b.txt", "c.txt")] == [b"old a", b"old b", b"old c"]
    manifest = read_manifest(store, LAYOUT, STAMP)
    assert {e.path: e.change for e in manifest.entries} == {
        "a.txt": "overwritten",
        "b.txt": "deleted",
        "c.txt": "deleted",
        "n.txt": "created",
    }
    assert not any(
        p.startswith(".versions/") for p, _ in store.calls if _ == "put" and p != f".versions/{STAMP}.json"
    )


def test_a_failed_copy_leaves_the_object_alone(tmp_path: Path) -> None:
    store = seeded(**{"a.txt": b"old a", "b.txt": b"old b"})
    remote = {e.path: e for e in store.list()}
    store.inject("copy", TransientError("copy broke"), times=10)
    report, outcome = run_pass(
        store,
        tmp_path,
        [Upload("a.txt", local(tmp_path, "a.txt", b"new a"), "changed")],
        [DeleteRemote("b.txt", remote["b.txt"])],
    )
    assert not report.ok and outcome.versions == 0 and outcome.manifest is None
    assert store.data("a.txt") == b"old a" and store.data("b.txt") == b"old b"


class LateAnswers(MemoryStore):
    """A PUT that KS3 applies but whose answer is lost (a timeout after the body went through)."""

    lost: set[str] = set()  # the paths whose next PUT answer is lost (set per instance)

    def put(self, path: str, body: Body, options: WriteOptions) -> WriteResult:
        result = super().put(path, body, options)
        if path in self.lost:
            self.lost = set()
            raise TransientError("read timed out")
        return result


def test_a_retried_write_never_keeps_the_passs_own_content_as_the_version(tmp_path: Path) -> None:
    # Regression: keeping again on the retry copied "new a" over the version of "old a".
    store = LateAnswers(prefix="docs/")
    store.put("a.txt", MemoryBody(b"old a"), WriteOptions())
    store.lost = {"a.txt"}
    report, outcome = run_pass(
        store, tmp_path, [Upload("a.txt", local(tmp_path, "a.txt", b"new a"), "changed")], [], remote=False
    )
    assert report.ok and store.data("a.txt") == b"new a"
    assert store.data(f".versions/{STAMP}/a.txt") == b"old a"
    assert [c for c in store.calls if c[0] == "copy"] == [("copy", f".versions/{STAMP}/a.txt")]


def test_a_copy_that_falls_back_to_an_upload_keeps_what_it_overwrites(tmp_path: Path) -> None:
    # Regression: the service's Copy (a moved file landing on a path that has an object) uploaded
    # without a backup when the copy could not be proven.
    store = seeded(**{"old.txt": b"moved", "dst.txt": b"precious"})
    entry = local(tmp_path, "dst.txt", b"moved, then edited")
    op = Copy("dst.txt", "old.txt", entry, expected_md5="0" * 32, reason="renamed")
    with Executor(store, MemoryCheckpoint(), tmp_path, TransferOptions(backup_prefix="bak/")) as ex:
        assert ex.run([op]).ok
    assert store.objects["bak/dst.txt"].data == b"precious" and store.data("dst.txt") == b"moved, then edited"


def test_the_listing_skips_the_versions_area_and_restarts_after_it(tmp_path: Path) -> None:
    store = seeded(
        **{
            "-a": b"1",
            ".a": b"2",
            ".versions__x": b"3",
            ".versions__\U0010ffff\U0010ffffz": b"4",
            ".versions0": b"5",
            "z": b"6",
            "hist__2026__v": b"7",
        }
    )
    store.calls.clear()
    assert [e.path for e in without_areas(store, [".versions/", "hist/"])] == ["-a", ".a", ".versions0", "z"]
    assert [c for c in store.calls if c[0] == "list"] == [
        ("list", ""),
        ("list", ""),
        ("list", ""),
        ("list", ""),
    ]
    assert [e.path for e in without_areas(seeded(a=b"1"), [".versions/"])] == ["a"]


def test_the_engine_never_deletes_or_downloads_the_versions_area(tmp_path: Path) -> None:
    from ks3sync.engine.mirror import MirrorOptions, run_mirror
    from ks3sync.transfer.checkpoint import MemoryCheckpoint as Cp

    class Journal:
        def __init__(self) -> None:
            self.cp = Cp()

        def iter_synced_entries(self, sync_id: int):  # type: ignore[no-untyped-def]
            return iter(sorted(self.cp.synced_entries.values(), key=lambda e: e.path))

        def synced_for(self, sync_id: int, paths):  # type: ignore[no-untyped-def]
            return {p: self.cp.synced_entries[p] for p in paths if p in self.cp.synced_entries}

        def synced_count(self, sync_id: int, *, at_most: int) -> int:
            return len(self.cp.synced_entries)

        def checkpoint(self, sync_id: int):  # type: ignore[no-untyped-def]
            return self.cp

        def uploads(self, sync_id=None):  # type: ignore[no-untyped-def]
            return []

        def syncs(self) -> list[object]:
            return []

        def record_pass(self, sync_id: int, summary: object) -> None:
            return None

    store = seeded(**{"keep.txt": b"k", ".versions__2026-12-06T18-30-05.123Z__gone.txt": b"v"})
    src = tmp_path / "src"
    local(src, "keep.txt", b"k")
    local(src, ".versions/mine.txt", b"local folder of that name")
    opts = MirrorOptions(delete=True, delete_excluded=True, excludes=(".versions",), force=True)
    result = run_mirror(store, Journal(), 1, src, Direction.UPLOAD, opts)
    assert result.ok and result.deleted == 0 and result.uploaded == 0
    assert any(".versions/ in the source folder is not uploaded" in w for w in result.warnings)
    assert ".versions/2026-12-06T18-30-05.123Z/gone.txt" in {e.path for e in store.list()}
    down = run_mirror(store, Journal(), 1, tmp_path / "down", Direction.DOWNLOAD, MirrorOptions())
    assert down.downloaded == 1 and sorted(p.name for p in (tmp_path / "down").iterdir()) == ["keep.txt"]
    assert list_area(store, LAYOUT).passes.keys() == {"2026-12-06T18-30-05.123Z"}


def test_remote_entry_of_a_choice_keeps_the_version_identity() -> None:
    store = seeded(**{"a.txt": b"now"})
    store.copy("a.txt", f".versions/{STAMP}/a.txt")
    store.put("a.txt", MemoryBody(b"newer"), WriteOptions())
    area = list_area(store, LAYOUT)
    version = area.passes[STAMP].versions["a.txt"]
    assert isinstance(version.etag, str) and version.size == 3
    assert RemoteEntry("a.txt", 3, version.etag).etag == version.etag


def test_prune_deletes_a_passs_versions_before_its_manifest_and_keeps_the_manifest_if_one_fails() -> None:
    from ks3sync.versions.prune import prune
    from ks3sync.versions.retention import Retention
    from ks3sync.versions.stamp import format_stamp

    store = seeded(**{"a.txt": b"a", "b.txt": b"b"})
    now = 1_900_000_000 * 1_000_000_000
    old, older = format_stamp(now - 50 * 86400 * 10**9), format_stamp(now - 60 * 86400 * 10**9)
    for stamp in (old, older):
        for path in ("a.txt", "b.txt"):
            store.copy(path, f".versions/{stamp}/{path}")
        store.put(f".versions/{stamp}.json", MemoryBody(b"{}"), WriteOptions())
    store.inject("delete", RemoteRejected("AccessDenied"), path=f".versions/{old}/b.txt")  # one key refused
    store.calls.clear()
    report = prune(store, LAYOUT, Retention(keep=30 * 86400), now, max_delete_percent=None)
    deletes = [path for op, path in store.calls if op == "delete"]
    assert deletes.index(f".versions/{older}.json") > deletes.index(f".versions/{older}/b.txt")
    assert report.deleted_passes == 1 and report.deleted == 4
    left = {e.path for e in store.list_under(".versions/")}
    assert left == {f".versions/{old}/b.txt", f".versions/{old}.json"}  # the manifest stays with its version
    assert [key for key, _ in report.failed] == [f"docs/.versions/{old}/b.txt", f"docs/.versions/{old}.json"]


def test_an_unindexed_versions_mtime_is_read_as_hostile_metadata() -> None:
    from ks3sync.versions.area import load_passes

    store = seeded(**{"a.txt": b"a", "b.txt": b"b"})
    for path, mtime in (("a.txt", "\u00b2"), ("b.txt", " 1765045700000000000 ")):
        store.put(f".versions/{STAMP}/{path}", MemoryBody(b"v"), WriteOptions(metadata={"mtime": mtime}))
    area = list_area(store, LAYOUT)
    [p], problems = load_passes(store, area, [STAMP])
    assert problems == [] and p.manifest is None
    assert (p.versions["a.txt"].mtime_ns, p.versions["b.txt"].mtime_ns) == (None, 1765045700000000000)
