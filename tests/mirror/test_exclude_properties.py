"""Excluded paths are never deleted, in either direction, unless --delete-excluded asks for it: a
Hypothesis property over random trees, bucket contents and exclude sets (``--exclude`` patterns and
``.ks3ignore`` files, negations and folder patterns included), driving the real engine (``run_mirror``:
real files, the real scan, the planner, the executor).

Each example runs two passes, so that paths synced by the first can become excluded before the second:
a first pass with one exclude set and no deletes, then files disappear from the source, and a second
pass with another exclude set, ``--delete`` and, drawn, ``--delete-excluded`` and ``--force``.

The oracle for "excluded" is the scanner itself, not ``Filters.exclusion``: every path is created as a
file in a scratch copy of the tree (with the same ``.ks3ignore`` files) and walked; a path the walk
leaves out is excluded (ks3sync's own files, under the state folder, among them). So a remote key
counts as excluded exactly when a local file of that name would be, which is the contract.

Checked after the second pass: the destination entries that went are exactly the expected ones (not in
the filtered source; plus the excluded ones with ``--delete-excluded``; never ks3sync's own local
files), or none at all when a guard refused the pass or the pass failed; a restore fails exactly for
the keys that name ks3sync's state and that no rule of the user's excludes (D9); every excluded destination entry that stayed
is byte-for-byte unchanged (never overwritten, never fetched over); no excluded path was fetched into
the folder; every journal record names an object that exists with the recorded ETag.

Many examples run against MemoryStore + MemoryJournal; a few go over HTTP to local-server with the
SQLite journal."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ks3sync.engine.mirror import MirrorOptions, MirrorResult, run_mirror
from ks3sync.journal import Journal
from ks3sync.ks3 import Client
from ks3sync.model import Direction, LocalEntry
from ks3sync.scan import Filters, scan_tree
from ks3sync.store.base import Store, WriteOptions
from ks3sync.store.ks3store import KS3Store
from ks3sync.store.memory import MemoryStore
from ks3sync.transfer.bodies import MemoryBody
from ks3sync.transfer.checkpoint import MemoryJournal
from tests.serverkit import ServerHandle, client_config

# File names and folder names never collide, so any set of these paths can exist at once.
FOLDERS = ("", "a/", "a/build/", "build/", "logs/")
LEAVES = ("x.txt", "y.log", "keep.log", "z.tmp", "d.bin")
PATHS = tuple(folder + leaf for folder in FOLDERS for leaf in LEAVES)
STATE = ".ks3state"  # ks3sync's state folder inside the tree: always excluded, never deleted locally
OWN = (f"{STATE}/journal.db", f"{STATE}/journal.db-wal")
PATTERNS = (
    "*.log",
    "!keep.log",
    "build/",
    "*.tmp",
    "a/",
    "/x.txt",
    "a/**/d.bin",
    "logs",
    "x.*",
    "!a/x.txt",
    "build/d.bin",
    "!build/",
    "*",
)
IGNORE_FOLDERS = ("", "a/", "logs/")
CONTENTS = (b"", b"one", b"two!", b"three", bytes(range(64)))

Tree = dict[str, bytes]


@dataclass(frozen=True)
class Scenario:
    local: Tree
    remote: Tree
    ignore_files: dict[str, tuple[str, ...]]  # folder -> patterns of its .ks3ignore
    first_excludes: tuple[str, ...]
    second_excludes: tuple[str, ...]
    vanish: frozenset[str]  # source entries gone before the second pass
    delete_excluded: bool
    force: bool


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    contents = st.sampled_from(CONTENTS)
    local = draw(st.dictionaries(st.sampled_from(PATHS), contents, max_size=12))
    remote = draw(st.dictionaries(st.sampled_from(PATHS + OWN), contents, max_size=12))
    ignore_files = draw(
        st.dictionaries(
            st.sampled_from(IGNORE_FOLDERS),
            st.lists(st.sampled_from(PATTERNS), min_size=1, max_size=3).map(tuple),
            max_size=2,
        )
    )
    excludes = st.lists(st.sampled_from(PATTERNS), max_size=3).map(tuple)
    return Scenario(
        local=local,
        remote=remote,
        ignore_files=ignore_files,
        first_excludes=draw(excludes),
        second_excludes=draw(excludes),
        vanish=frozenset(draw(st.sets(st.sampled_from(PATHS), max_size=6))),
        delete_excluded=draw(st.booleans()),
        force=draw(st.booleans()),
    )


# --------------------------------------------------------------------------------------------------
# the oracle


def judge(
    paths: set[str],
    ignore_files: dict[str, tuple[str, ...]],
    excludes: tuple[str, ...],
    *,
    state: bool = True,
) -> dict[str, str]:
    """path -> "included" | "excluded", by walking a scratch tree that holds every path (``state``:
    with ks3sync's state folder among the tree's own files, as a sync has it)."""
    scratch = Path(tempfile.mkdtemp(prefix="ks3sync-oracle-"))
    try:
        for path in paths:
            target = scratch / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(b"")
        write_ignore_files(scratch, ignore_files)
        filters = Filters.build(scratch, excludes, state_paths=[scratch / STATE] if state else [])
        seen = {item.path for item in scan_tree(scratch, filters) if isinstance(item, LocalEntry)}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {path: "included" if path in seen else "excluded" for path in paths}


def refused_as_state(
    keys: set[str], ignore_files: dict[str, tuple[str, ...]], excludes: tuple[str, ...]
) -> set[str]:
    """Keys a restore reports instead of fetching (D9): those naming ks3sync's state that no rule of the
    user's excludes (an excluded one is left out in silence, like any excluded key)."""
    own = keys & set(OWN)
    return {
        key
        for key, verdict in judge(own, ignore_files, excludes, state=False).items()
        if verdict == "included"
    }


def write_ignore_files(root: Path, ignore_files: dict[str, tuple[str, ...]]) -> None:
    for folder, patterns in ignore_files.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / ".ks3ignore").write_text("\n".join(patterns) + "\n")


# --------------------------------------------------------------------------------------------------
# the two sides


def write_tree(root: Path, files: Tree) -> None:
    for path, data in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def read_tree(root: Path) -> Tree:
    if not root.exists():
        return {}
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def objects_of(store: Store) -> dict[str, str]:
    """path -> ETag (every object here is a single PUT: the ETag is the MD5 of its bytes)."""
    return {entry.path: entry.etag for entry in store.list()}


def put_all(store: Store, files: Tree) -> None:
    for path, data in files.items():
        store.put(path, MemoryBody(data), WriteOptions())


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@dataclass
class Rig:
    store: Store
    journal: Any
    sync_id: int


RigFactory = Callable[[Path], AbstractContextManager[Rig]]


@contextmanager
def memory_rig(_base: Path) -> Iterator[Rig]:
    yield Rig(MemoryStore(prefix="p/"), MemoryJournal(), 1)


def options(excludes: tuple[str, ...], root: Path, **kw: Any) -> MirrorOptions:
    # No share-of-destination bound: the count guard is --force's business; the emptied-source guard stays.
    return MirrorOptions(excludes=excludes, state_paths=(root / STATE,), max_delete_percent=None, **kw)


def journal_consistent(rig: Rig, kept_locally: Callable[[str], bool] = lambda _path: False) -> None:
    """Every record names the object it was made for; a restore may also keep the record of a file
    whose object vanished while the file stays (no --delete, or a guard refused it), never of an
    excluded one."""
    objects = objects_of(rig.store)
    for record in rig.journal.iter_synced_entries(rig.sync_id):
        if objects.get(record.path) != record.remote_etag:
            assert kept_locally(record.path), f"record of {record.path!r} names no such object"


def check_deletes(result: MirrorResult, before: set[str], after: set[str], expected: set[str]) -> None:
    gone = before - after
    if result.refused_deletes:
        assert gone == set() and expected, (result.warnings, expected)
    else:
        assert gone == expected, (sorted(gone), sorted(expected), result.warnings, result.failed)


# --------------------------------------------------------------------------------------------------
# the properties


def upload_property(case: Scenario, make_rig: RigFactory) -> None:
    base = Path(tempfile.mkdtemp(prefix="ks3sync-excl-up-"))
    try:
        src = base / "src"
        src.mkdir()
        write_tree(src, case.local)
        write_tree(src, dict.fromkeys(OWN, b"journal"))  # our own files: never uploaded
        write_ignore_files(src, case.ignore_files)
        with make_rig(base) as rig:
            put_all(rig.store, case.remote)  # what another client put there before
            first = run_mirror(
                rig.store, rig.journal, rig.sync_id, src, Direction.UPLOAD, options(case.first_excludes, src)
            )
            assert first.ok, first.failed
            objects = objects_of(rig.store)
            verdict = judge(set(read_tree(src)) | set(objects), case.ignore_files, case.first_excludes)
            for path, etag in objects.items():
                if verdict[path] != "included":
                    # an excluded local file is never sent over the object of its name
                    assert path in case.remote and etag == md5(case.remote[path]), path
            journal_consistent(rig)

            for path in case.vanish:
                (src / path).unlink(missing_ok=True)
            source = read_tree(src)
            before = objects_of(rig.store)
            verdict = judge(set(source) | set(before), case.ignore_files, case.second_excludes)
            second = run_mirror(
                rig.store,
                rig.journal,
                rig.sync_id,
                src,
                Direction.UPLOAD,
                options(
                    case.second_excludes,
                    src,
                    delete=True,
                    force=case.force,
                    delete_excluded=case.delete_excluded,
                ),
            )
            assert not second.failed, second.failed
            after = objects_of(rig.store)
            in_source = {p for p in source if verdict[p] == "included"}
            expected = {
                p
                for p in before
                if (verdict[p] == "included" and p not in in_source)
                or (case.delete_excluded and verdict[p] == "excluded")
            }
            check_deletes(second, set(before), set(after), expected)
            for path in set(after) & set(before):
                if verdict[path] != "included":
                    assert after[path] == before[path], f"excluded object {path!r} was rewritten"
            assert not any(verdict.get(p, "included") != "included" for p in set(after) - set(before))
            journal_consistent(rig)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def download_property(case: Scenario, make_rig: RigFactory) -> None:
    base = Path(tempfile.mkdtemp(prefix="ks3sync-excl-down-"))
    try:
        dst = base / "dst"
        dst.mkdir()
        write_tree(dst, case.local)
        write_tree(dst, dict.fromkeys(OWN, b"journal"))
        write_ignore_files(dst, case.ignore_files)
        with make_rig(base) as rig:
            put_all(rig.store, case.remote)
            local_before = read_tree(dst)
            verdict = judge(set(local_before) | set(case.remote), case.ignore_files, case.first_excludes)
            first = run_mirror(
                rig.store,
                rig.journal,
                rig.sync_id,
                dst,
                Direction.DOWNLOAD,
                options(case.first_excludes, dst),
            )
            refused = refused_as_state(set(case.remote), case.ignore_files, case.first_excludes)
            assert {path for path, _ in first.failed} == refused, first.failed
            local = read_tree(dst)
            for path, data in local.items():
                if verdict[path] != "included":
                    assert local_before.get(path) == data, f"excluded local file {path!r} was written"
            journal_consistent(rig, lambda p: verdict[p] == "included" and (dst / p).is_file())

            # objects vanish from the source (the bucket) before the second pass
            gone = [p for p in case.vanish if p in case.remote]
            if gone:
                rig.store.delete_many(gone)
            remote = {p: d for p, d in case.remote.items() if p not in case.vanish}
            verdict = judge(set(local) | set(remote), case.ignore_files, case.second_excludes)
            second = run_mirror(
                rig.store,
                rig.journal,
                rig.sync_id,
                dst,
                Direction.DOWNLOAD,
                options(
                    case.second_excludes,
                    dst,
                    delete=True,
                    force=case.force,
                    delete_excluded=case.delete_excluded,
                ),
            )
            refused = refused_as_state(set(remote), case.ignore_files, case.second_excludes)
            assert {path for path, _ in second.failed} == refused, second.failed
            after = read_tree(dst)
            in_source = {p for p in remote if verdict[p] == "included"}
            expected = {
                p
                for p in local
                if (verdict[p] == "included" and p not in in_source)
                or (case.delete_excluded and verdict[p] == "excluded" and p not in OWN)
            }
            if refused:  # a pass with failures runs no deletes
                assert set(local) - set(after) == set(), sorted(set(local) - set(after))
            else:
                check_deletes(second, set(local), set(after), expected)
            for path, data in after.items():
                if verdict[path] != "included":
                    assert local.get(path) == data, f"excluded local file {path!r} was written"
            journal_consistent(rig, lambda p: verdict.get(p) == "included" and (dst / p).is_file())
    finally:
        shutil.rmtree(base, ignore_errors=True)


def nonempty_bucket(case: Scenario) -> bool:
    # A restore from a prefix with no object at all is refused before anything (tests/cli cover it).
    return bool(set(case.remote) - case.vanish)


FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HTTP = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@FAST
@given(case=scenarios())
def test_upload_never_deletes_an_excluded_object_unless_asked(case: Scenario) -> None:
    upload_property(case, memory_rig)


@FAST
@given(case=scenarios().filter(nonempty_bucket))
def test_restore_never_deletes_an_excluded_file_unless_asked(case: Scenario) -> None:
    download_property(case, memory_rig)


@pytest.fixture
def http_rig(local_server: ServerHandle, bucket: str) -> Iterator[RigFactory]:
    with Client(client_config(local_server)) as client:

        @contextmanager
        def factory(base: Path) -> Iterator[Rig]:
            store = KS3Store(client, bucket, f"x{uuid.uuid4().hex[:8]}/")
            with Journal.open(base / "journal.db") as journal:
                sync_id = journal.register_sync("excl", str(base), store.bucket, store.prefix, "h")
                yield Rig(store, journal, sync_id)

        yield factory


@HTTP
@given(case=scenarios())
def test_upload_property_over_local_server(case: Scenario, http_rig: RigFactory) -> None:
    upload_property(case, http_rig)


@HTTP
@given(case=scenarios().filter(nonempty_bucket))
def test_restore_property_over_local_server(case: Scenario, http_rig: RigFactory) -> None:
    download_property(case, http_rig)


def test_restore_with_delete_excluded_keeps_what_an_unreadable_ignore_file_may_exclude(
    tmp_path: Path,
) -> None:
    dst = tmp_path / "dst"
    write_tree(dst, {"sub/a.txt": b"mine", "sub/b.log": b"log", "c.log": b"log", "keep.txt": b"k"})
    (dst / "sub" / ".ks3ignore").write_bytes(b"\xff\xfe not utf-8\n")
    store, journal = MemoryStore(prefix="p/"), MemoryJournal()
    put_all(store, {"keep.txt": b"k", "sub/a.txt": b"theirs"})
    result = run_mirror(
        store,
        journal,
        1,
        dst,
        Direction.DOWNLOAD,
        options(("*.log",), dst, delete=True, delete_excluded=True),
    )
    # c.log goes; below sub/ nothing is fetched or deleted, and the unreadable rule file is named
    assert read_tree(dst) == {
        "sub/a.txt": b"mine",
        "sub/b.log": b"log",
        "keep.txt": b"k",
        "sub/.ks3ignore": b"\xff\xfe not utf-8\n",
    }
    assert [(path, "cannot use ignore file" in reason) for path, reason in result.problems] == [
        ("sub/.ks3ignore", True)
    ]
