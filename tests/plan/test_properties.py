"""Property tests: random local / remote / journal states, the plan applied to an in-memory model.

The model's assumptions are the planner's: an identity (size, mtime, inode, ctime) determines the
content, an ETag determines the object's content, and a journal record describes content that KS3
confirmed (invariant 1). Under those, applying the plan must make the destination equal the source."""

from __future__ import annotations

from dataclasses import dataclass
from random import Random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ks3sync.model import (
    Adopt,
    Copy,
    DeleteLocal,
    DeleteRemote,
    Download,
    FileIdentity,
    Forget,
    LocalEntry,
    Plan,
    RemoteEntry,
    SyncedEntry,
    Upload,
)
from ks3sync.plan import (
    NO_SOURCES,
    OutOfOrderError,
    PlanOptions,
    collect_copy_sources,
    finish_upload,
    hash_candidates,
    march_upload,
    plan_download,
    plan_upload,
)

from .helpers import md5

PATHS = ["a", "a-b", "a.b", "a/b", "a/c/d", "b", "caf\u00e9", "cafe\u0301", "z z+%#?"]
CONTENTS = [b"", b"aa", b"bb", b"ccc", b"dddd"]  # "aa" and "bb" share a size: sizes alone never decide


@dataclass(frozen=True)
class FileState:
    content: int  # index into CONTENTS
    touched: bool  # mtime changed without a content change
    inode: int
    ctime: int


def identity(f: FileState) -> FileIdentity:
    # mtime is injective in (content, touched): equal identities imply equal content.
    return FileIdentity(len(CONTENTS[f.content]), 1 + 2 * f.content + int(f.touched), f.inode, f.ctime)


def etag(content: int, multipart: bool) -> str:
    digest = md5(CONTENTS[content])
    return digest + "-2" if multipart else digest


file_states = st.builds(
    FileState,
    content=st.integers(0, len(CONTENTS) - 1),
    touched=st.booleans(),
    inode=st.integers(0, 3),
    ctime=st.integers(0, 1),
)
objects = st.tuples(st.integers(0, len(CONTENTS) - 1), st.booleans())  # (content, multipart)


@st.composite
def worlds(
    draw: st.DrawFn,
) -> tuple[dict[str, FileState], dict[str, tuple[int, bool]], dict[str, tuple[FileState, bool]], bool]:
    local = draw(st.dictionaries(st.sampled_from(PATHS), file_states, max_size=len(PATHS)))
    remote = draw(st.dictionaries(st.sampled_from(PATHS), objects, max_size=len(PATHS)))
    # A record: the file version that was confirmed, and whether its object was multipart.
    synced = draw(
        st.dictionaries(st.sampled_from(PATHS), st.tuples(file_states, st.booleans()), max_size=len(PATHS))
    )
    hashed = draw(st.booleans())
    return local, remote, synced, hashed


def to_entries(
    local: dict[str, FileState],
    remote: dict[str, tuple[int, bool]],
    synced: dict[str, tuple[FileState, bool]],
    hashed: bool,
) -> tuple[list[LocalEntry], list[RemoteEntry], dict[str, SyncedEntry]]:
    """Local files and objects in path order, as the scan and the listing deliver them."""
    loc = [
        LocalEntry(p, identity(f), md5(CONTENTS[f.content]) if hashed else None)
        for p, f in sorted(local.items())
    ]
    rem = [RemoteEntry(p, len(CONTENTS[c]), etag(c, mp)) for p, (c, mp) in sorted(remote.items())]
    rec = {
        p: SyncedEntry(
            p, identity(f), md5(CONTENTS[f.content]), etag(f.content, mp), len(CONTENTS[f.content])
        )
        for p, (f, mp) in synced.items()
    }
    return loc, rem, rec


options = st.builds(
    PlanOptions,
    delete=st.booleans(),
    checksum=st.booleans(),
    max_delete=st.none() | st.integers(0, 5),
    max_delete_percent=st.none() | st.floats(0, 100),
    force=st.booleans(),
)


NO_LIMITS = PlanOptions(delete=True, max_delete_percent=None)


def apply_upload(
    plan: Plan, local: dict[str, FileState], remote: dict[str, tuple[int, bool]]
) -> dict[str, int]:
    """Execute a plan against a model bucket (path -> content index), as the executor would."""
    bucket = {p: c for p, (c, _) in remote.items()}
    for op in plan.transfers:
        if isinstance(op, Upload):
            bucket[op.path] = local[op.path].content
        elif isinstance(op, Copy):
            # The copy's source must still hold the content the planner promised.
            assert md5(CONTENTS[bucket[op.source_path]]) == op.expected_md5
            assert bucket[op.source_path] == local[op.path].content
            bucket[op.path] = bucket[op.source_path]
        elif isinstance(op, Adopt):
            bucket[op.path] = local[op.path].content  # hash matches, or it uploads: same end state
        else:
            assert isinstance(op, Forget), op
    for op in plan.deletes:
        assert isinstance(op, DeleteRemote)
        del bucket[op.path]
    return bucket


@settings(max_examples=400, deadline=None)
@given(worlds(), options)
def test_upload_plan_converges(world: tuple, opts: PlanOptions) -> None:  # type: ignore[type-arg]
    local, remote, synced, hashed = world
    loc, rem, rec = to_entries(local, remote, synced, hashed)
    plan = plan_upload(loc, rem, rec, opts)
    bucket = apply_upload(plan, local, remote)
    for path, f in local.items():
        assert bucket[path] == f.content, path
    extra = set(bucket) - set(local)
    if opts.delete and plan.refused_deletes == 0:
        assert extra == set()
    else:
        assert extra == set(remote) - set(local)  # nothing deleted
    assert plan.skipped + len([op for op in plan.transfers if not isinstance(op, Forget)]) == len(local)
    for op in plan.transfers:
        if isinstance(op, Forget):
            assert op.path not in local and op.path not in remote


@settings(max_examples=300, deadline=None)
@given(worlds(), options)
def test_never_deletes_without_delete_and_guard_holds(world: tuple, opts: PlanOptions) -> None:  # type: ignore[type-arg]
    local, remote, synced, hashed = world
    loc, rem, rec = to_entries(local, remote, synced, hashed)
    for plan, source_n, dest_n in (
        (plan_upload(loc, rem, rec, opts), len(loc), len(rem)),
        (plan_download(rem, loc, rec, opts), len(rem), len(loc)),
    ):
        if not opts.delete:
            assert plan.deletes == () and plan.refused_deletes == 0
        if opts.force:
            assert plan.refused_deletes == 0
            continue
        if source_n == 0 and dest_n > 0:
            assert plan.deletes == ()
        n = len(plan.deletes)
        if opts.max_delete is not None:
            assert n <= opts.max_delete
        if opts.max_delete_percent is not None and n:
            assert n * 100 <= opts.max_delete_percent * dest_n
        assert plan.refused_deletes == 0 or len(plan.warnings) >= 1


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.sampled_from(PATHS), st.integers(0, len(CONTENTS) - 1), min_size=1),
    st.data(),
)
def test_renames_become_copies_never_uploads(files: dict[str, int], data: st.DataObject) -> None:
    # A fully synced tree (one inode per file), then some files are renamed to fresh paths.
    states = {p: FileState(c, False, inode, 0) for inode, (p, c) in enumerate(sorted(files.items()))}
    remote = {p: (f.content, False) for p, f in states.items()}
    synced = {p: (f, False) for p, f in states.items()}
    free = [p for p in PATHS if p not in states]
    moved = data.draw(st.lists(st.sampled_from(sorted(states)), unique=True, max_size=len(free)))
    local = dict(states)
    renames = {}
    for src, dst in zip(moved, free, strict=False):
        f = local.pop(src)
        local[dst] = FileState(f.content, f.touched, f.inode, 1)  # a rename changes ctime only
        renames[dst] = src
    loc, rem, rec = to_entries(local, remote, synced, hashed=False)
    plan = plan_upload(loc, rem, rec, PlanOptions(delete=True, force=True))
    assert not any(isinstance(op, Upload) for op in plan.transfers)
    assert {op.path: op.source_path for op in plan.transfers if isinstance(op, Copy)} == renames
    assert {op.path for op in plan.deletes} == set(renames.values())
    bucket = apply_upload(plan, local, remote)
    assert bucket == {p: f.content for p, f in local.items()}


@settings(max_examples=400, deadline=None)
@given(worlds(), options, st.sampled_from(["../x", "a//b", "/abs"]))
def test_download_plan_converges(world: tuple, opts: PlanOptions, bad_key: str) -> None:  # type: ignore[type-arg]
    local, remote, synced, hashed = world
    loc, rem, rec = to_entries(local, remote, synced, hashed)
    rem = sorted([*rem, RemoteEntry(bad_key, 1, md5(b"x"))], key=lambda e: e.path)
    plan = plan_download(rem, loc, rec, opts)
    folder = {p: f.content for p, f in local.items()}
    for op in plan.transfers:
        assert op.path != bad_key
        if isinstance(op, Download | Adopt):
            folder[op.path] = remote[op.path][0]
        else:
            assert isinstance(op, Forget), op
    for op in plan.deletes:
        assert isinstance(op, DeleteLocal)
        del folder[op.path]
    assert any(bad_key in w for w in plan.warnings)
    for path, (content, _) in remote.items():
        assert folder[path] == content
    if opts.delete and plan.refused_deletes == 0:
        assert set(folder) == set(remote)
    else:
        assert set(folder) == set(remote) | set(local)


@settings(max_examples=300, deadline=None)
@given(worlds(), options, st.randoms(use_true_random=False))
def test_phased_upload_with_hashing_converges(world: tuple[Any, ...], opts: PlanOptions, rnd: Random) -> None:
    """What ``ks3sync.engine.mirror`` does: unhashed scan entries, phase 1, copy sources from the records read
    again in any order, the candidates hashed, then phase 2. Every copy must read the promised content
    (``apply_upload`` checks) and the bucket must end equal to the folder."""
    local, remote, synced, _ = world
    loc, rem, rec = to_entries(local, remote, synced, hashed=False)
    records = sorted(rec.values(), key=lambda r: r.path)
    marched = march_upload(iter(loc), iter(rem), iter(records), opts)
    reread = list(records)
    rnd.shuffle(reread)
    sources = collect_copy_sources(marched, reread, opts) if marched.local_only else NO_SOURCES
    hashed = {e.path: md5(CONTENTS[local[e.path].content]) for e in hash_candidates(marched, sources)}
    plan = finish_upload(marched, sources, opts, hashed=hashed)
    bucket = apply_upload(plan, local, remote)
    for path, f in local.items():
        assert bucket[path] == f.content, path
    assert plan.skipped + len([op for op in plan.transfers if not isinstance(op, Forget)]) == len(local)


@settings(max_examples=100, deadline=None)
@given(worlds(), st.randoms(use_true_random=False))
def test_unsorted_local_input_is_refused_not_planned(world: tuple[Any, ...], rnd: Random) -> None:
    local, remote, synced, hashed = world
    loc, rem, rec = to_entries(local, remote, synced, hashed)
    shuffled = list(loc)
    rnd.shuffle(shuffled)
    if shuffled == loc:
        assert plan_upload(shuffled, rem, rec, NO_LIMITS) == plan_upload(loc, rem, rec, NO_LIMITS)
    else:
        with pytest.raises(OutOfOrderError):
            plan_upload(shuffled, rem, rec, NO_LIMITS)
