"""The streaming march: order is enforced on every stream, inputs are read once and lazily, and the
two upload phases keep only what the changes need."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ks3sync.errors import FatalError
from ks3sync.model import Copy, DeleteRemote, LocalEntry, Upload
from ks3sync.plan import (
    NO_SOURCES,
    OutOfOrderError,
    PlanOptions,
    collect_copy_sources,
    finish_upload,
    hash_candidates,
    march_download,
    march_upload,
    plan_download,
    plan_upload,
)
from ks3sync.plan.march import march

from .helpers import local, md5, record, remote

NO_GUARD = PlanOptions(delete=True, max_delete_percent=None)


class OneShot:
    """An iterable that may be iterated once, and counts how far it was read."""

    def __init__(self, items: list[Any]) -> None:
        self.items = items
        self.read = 0
        self.iterated = False

    def __iter__(self) -> Iterator[Any]:
        assert not self.iterated, "iterated twice"
        self.iterated = True
        for item in self.items:
            self.read += 1
            yield item


@pytest.mark.parametrize("side", ["local", "remote", "journal"])
@pytest.mark.parametrize("bad", [["b", "a"], ["a", "a"]])
def test_any_stream_out_of_order_stops_the_plan(side: str, bad: list[str]) -> None:
    locs = [local(p, b"x") for p in bad] if side == "local" else []
    objs = [remote(p, b"x") for p in bad] if side == "remote" else []
    recs = [record(local(p, b"x"), b"x", remote(p, b"x")) for p in bad] if side == "journal" else []
    with pytest.raises(OutOfOrderError, match="out of order") as err:
        march_upload(locs, objs, recs, NO_GUARD)
    assert isinstance(err.value, FatalError)  # the CLI and the daemon stop the pass, exit 1
    with pytest.raises(OutOfOrderError):
        march_download(objs, locs, recs, NO_GUARD)


def test_out_of_order_listing_never_reaches_the_deletes() -> None:
    # "b" listed before "a": a planner that merged blindly would see "a" as missing on one side.
    objs = [remote("b", b"x"), remote("a", b"x")]
    with pytest.raises(OutOfOrderError, match="remote listing"):
        plan_upload([local("a", b"x"), local("b", b"x")], objs, {}, NO_GUARD)


@given(st.lists(st.text(min_size=1, max_size=6), unique=True))
def test_str_order_is_utf8_byte_order(paths: list[str]) -> None:
    """The march compares str; the scan, KS3 and SQLite order by UTF-8 bytes: they must agree, also
    for surrogates and characters outside the BMP."""
    by_str = sorted(paths)
    assert by_str == sorted(paths, key=lambda p: p.encode("utf-8", "surrogatepass"))
    steps = list(march([LocalEntry(p, local(p, b"").identity) for p in by_str], [], []))
    assert [s[0] for s in steps] == by_str


def test_march_reads_streams_lazily_one_ahead() -> None:
    locs = OneShot([local(p, b"x") for p in ("a", "b", "c")])
    objs = OneShot([remote(p, b"x") for p in ("a", "b", "c")])
    steps = march(locs, objs, [])
    assert next(steps)[0] == "a"
    assert locs.read <= 2 and objs.read <= 2
    assert [s[0] for s in steps] == ["b", "c"]


def test_steady_state_keeps_no_side_structures() -> None:
    """Nothing changed: phase 1 holds counts only, and phase 2 is not needed."""
    paths = [f"d/{i:04}" for i in range(200)]
    locs = [local(p, b"x", inode=i) for i, p in enumerate(paths)]
    objs = [remote(p, b"x") for p in paths]
    recs = [record(loc, b"x", obj) for loc, obj in zip(locs, objs, strict=True)]
    marched = march_upload(OneShot(locs), OneShot(objs), OneShot(recs), NO_GUARD)
    assert marched.skipped == 200 and (marched.source_count, marched.destination_count) == (200, 200)
    assert not marched.decided and not marched.local_only and not marched.deletes
    assert not marched.not_intact and not marched.loose_objects
    plan = finish_upload(marched, NO_SOURCES, NO_GUARD)
    assert plan.transfers == () and plan.skipped == 200


def test_phase_two_keeps_only_sources_of_the_new_files_sizes() -> None:
    old = local("old", b"renamed!", inode=7, mtime=3)
    other = local("other", b"different size", inode=8)
    objs = [remote("old", b"renamed!"), remote("other", b"different size")]
    recs = [record(old, b"renamed!", objs[0]), record(other, b"different size", objs[1])]
    moved = local("new", b"renamed!", inode=7, mtime=3, ctime=9)
    marched = march_upload([moved], objs, recs, NO_GUARD)
    assert [lo.entry.path for lo in marched.local_only] == ["new"]
    sources = collect_copy_sources(marched, reversed(recs), NO_GUARD)  # any order in phase 2
    assert dict(sources.by_content) == {(8, md5(b"renamed!")): ("old", md5(b"renamed!"))}
    assert list(sources.by_identity) == [(8, 3, 7)]
    assert hash_candidates(marched, sources) == [moved]
    plan = finish_upload(marched, sources, NO_GUARD, hashed={"new": md5(b"renamed!")})
    assert [type(op) for op in plan.transfers] == [Copy]
    assert plan.transfers[0].reason == "same-content"  # type: ignore[union-attr]
    assert {op.path for op in plan.deletes} == {"old", "other"}


def test_rewritten_and_changed_objects_are_never_sources() -> None:
    a_old, b_old = local("a", b"aaaa", inode=1), local("b", b"bbbb", inode=2)
    a_obj, b_obj = remote("a", b"aaaa"), remote("b", b"bbbb")
    b_theirs = remote("b", b"BBBB")  # changed behind our back, local "b" deleted
    a_new = local("a", b"AAAA", inode=1, mtime=2)  # rewritten by this plan
    dup_a = local("c", b"aaaa", inode=3, hashed=True)
    dup_b = local("d", b"bbbb", inode=4, hashed=True)
    recs = [record(a_old, b"aaaa", a_obj), record(b_old, b"bbbb", b_obj)]
    marched = march_upload([a_new, dup_a, dup_b], [a_obj, b_theirs], recs, PlanOptions())
    assert marched.not_intact == {"a", "b"}
    plan = finish_upload(marched, collect_copy_sources(marched, recs, PlanOptions()), PlanOptions())
    assert [(op.path, type(op).__name__) for op in plan.transfers] == [
        ("a", "Upload"),
        ("c", "Upload"),
        ("d", "Upload"),
    ]


def test_untracked_plain_objects_are_sources_multipart_and_encrypted_are_not() -> None:
    """A bucket adopted without a journal: plain ETags are content MD5s, multipart ETags are not."""
    objs = [remote("m", b"multi", multipart=True), remote("p", b"plain")]
    new = [local("x", b"multi", hashed=True), local("y", b"plain", hashed=True)]
    plan = plan_upload(new, objs, {}, PlanOptions())
    assert plan.transfers == (
        Upload("x", new[0], "new"),
        Copy("y", "p", new[1], md5(b"plain"), "same-content"),
    )
    encrypted = plan_upload(new, objs, {}, PlanOptions(encrypt=True))
    assert all(isinstance(op, Upload) for op in encrypted.transfers)


def test_upload_march_remembers_objects_of_decided_paths_only() -> None:
    loc = local("a", b"new content")
    obj, gone = remote("a", b"old"), remote("z", b"zz")
    marched = march_upload([loc], [obj, gone], [], NO_GUARD)
    assert dict(marched.objects) == {"a": obj}
    assert marched.deletes == (DeleteRemote("z", gone),)


def test_download_reports_refused_keys_with_their_objects() -> None:
    objs = [remote("../x", b"1"), remote("dir/", b""), remote("full/", b"123"), remote("ok", b"2")]
    got = march_download(objs, [], {}, PlanOptions())
    assert [(obj.path, why) for obj, why in got.refused] == [
        ("../x", "'..' path segment; it would not stay inside the target folder"),
        (
            "full/",
            "the key ends in '/' (a folder's name) but the object holds 3 bytes: no file can have that name",
        ),
    ]
    assert [op.path for op in got.plan.transfers] == ["ok"]
    assert plan_download(objs, [], [], PlanOptions()) == got.plan


def test_download_guard_counts_only_restorable_objects() -> None:
    files = [local(f"f{i}", b"x") for i in range(3)]
    # Only unsafe keys in the bucket: the source is empty, nothing local may be deleted.
    plan = plan_download([remote("/abs", b"1")], files, [], PlanOptions(delete=True, max_delete_percent=None))
    assert plan.deletes == () and plan.refused_deletes == 3


def test_records_may_be_any_collection() -> None:
    loc, obj = local("a", b"x"), remote("a", b"x")
    rec = record(loc, b"x", obj)
    assert plan_upload([loc], [obj], [rec], PlanOptions()) == plan_upload(
        [loc], [obj], {"a": rec}, PlanOptions()
    )


paths_st = st.lists(
    st.sampled_from(["a", "a-b", "a.b", "a/b", "b", "caf\u00e9", "cafe\u0301", "\U0001f600", "z"]),
    unique=True,
).map(sorted)


@given(paths_st, paths_st, paths_st)
def test_march_visits_the_union_once_in_order_with_each_sides_entry(
    lp: list[str], rp: list[str], sp: list[str]
) -> None:
    locs = [local(p, b"l") for p in lp]
    objs = [remote(p, b"r") for p in rp]
    recs = [record(local(p, b"s"), b"s", remote(p, b"s")) for p in sp]
    steps = list(march(iter(locs), iter(objs), iter(recs)))
    assert [s[0] for s in steps] == sorted(set(lp) | set(rp) | set(sp))
    for path, loc, rem, rec in steps:
        assert (loc is not None) == (path in lp) and (loc is None or loc.path == path)
        assert (rem is not None) == (path in rp) and (rem is None or rem.path == path)
        assert (rec is not None) == (path in sp) and (rec is None or rec.path == path)
