"""Coalescing rules, and a model check: acting on the coalesced changes gives the same end state as
acting on every event."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ks3sync.watch.changes import FsChange, Kind, coalesce

U, D, M = Kind.UPSERT, Kind.DELETE, Kind.MOVE


def test_burst_on_one_path_is_one_change_with_the_latest_time() -> None:
    out = coalesce([FsChange("a", U, t) for t in range(100)])
    assert out == [FsChange("a", U, 99)]


def test_delete_after_write_wins_and_write_after_delete_wins() -> None:
    assert coalesce([FsChange("a", U, 1), FsChange("a", D, 2)]) == [FsChange("a", D, 2)]
    assert coalesce([FsChange("a", D, 1), FsChange("a", U, 2)]) == [FsChange("a", U, 2)]


def test_a_move_owns_its_source_and_drops_what_was_pending_for_it() -> None:
    assert coalesce([FsChange("b", M, 5, src_path="a")]) == [FsChange("b", M, 5, src_path="a")]
    out = coalesce([FsChange("a", U, 1), FsChange("b", M, 5, src_path="a")])
    assert out == [FsChange("b", M, 5, src_path="a")]


def test_write_after_move_keeps_the_move_hint() -> None:
    out = coalesce([FsChange("b", M, 1, src_path="a"), FsChange("b", U, 3)])
    assert FsChange("b", M, 3, src_path="a") in out


def test_chained_renames_point_at_the_oldest_name() -> None:
    out = coalesce([FsChange("b", M, 1, src_path="a"), FsChange("c", M, 2, src_path="b")])
    assert out == [FsChange("b", D, 2), FsChange("c", M, 2, src_path="a")]


def test_rename_back_and_forth() -> None:
    out = coalesce([FsChange("b", M, 1, src_path="a"), FsChange("a", M, 2, src_path="b")])
    assert out == [FsChange("a", M, 2, src_path="b")]


def test_move_then_delete_of_the_new_name_still_deletes_the_old() -> None:
    out = coalesce([FsChange("b", M, 1, src_path="a"), FsChange("b", D, 2)])
    assert set(out) == {FsChange("a", D, 2), FsChange("b", D, 2)}


def test_move_requires_source_and_only_move_has_one() -> None:
    with pytest.raises(ValueError):
        FsChange("b", M, 1)
    with pytest.raises(ValueError):
        FsChange("b", U, 1, src_path="a")


# -- model check ------------------------------------------------------------------------------------
# A folder is a dict path -> content. Events mutate it; the "bucket" mirrors it by acting on changes the
# way the daemon does: look at the file as it is *now* (kinds are hints); a move copies its source's
# remote content when it is the same, then deletes the source unless the source exists again. Acting on
# coalesced changes must reach the same bucket as acting on the uncoalesced stream, and both must equal
# the folder: no path is lost by coalescing.

NAMES = ["a", "b", "c", "d"]

event = st.one_of(
    st.tuples(st.just("write"), st.sampled_from(NAMES), st.integers(0, 3)),
    st.tuples(st.just("delete"), st.sampled_from(NAMES), st.just(0)),
    st.tuples(st.just("move"), st.sampled_from(NAMES), st.sampled_from(NAMES)),
)


def apply_events(folder: dict[str, int], events: list[tuple[str, str, object]]) -> list[FsChange]:
    changes = []
    for t, (op, name, arg) in enumerate(events):
        if op == "write":
            folder[name] = int(arg)  # type: ignore[call-overload]
            changes.append(FsChange(name, U, t))
        elif op == "delete" and name in folder:
            del folder[name]
            changes.append(FsChange(name, D, t))
        elif op == "move" and name in folder and arg != name:
            folder[str(arg)] = folder.pop(name)
            changes.append(FsChange(str(arg), M, t, src_path=name))
    return changes


def act(bucket: dict[str, int], folder: dict[str, int], changes: list[FsChange]) -> None:
    for ch in changes:
        if ch.path in folder:
            bucket[ch.path] = folder[ch.path]  # upload, or a server-side copy of equal content
        else:
            bucket.pop(ch.path, None)
        if ch.kind is M and ch.src_path not in folder:
            bucket.pop(str(ch.src_path), None)  # the move deletes its source after the copy succeeded


@given(st.dictionaries(st.sampled_from(NAMES), st.integers(0, 3)), st.lists(event, max_size=12))
def test_coalesced_changes_converge_like_the_full_stream(start: dict[str, int], events: list) -> None:
    folder = dict(start)
    bucket_full, bucket_coalesced = dict(start), dict(start)
    changes = apply_events(folder, events)
    act(bucket_full, folder, changes)
    act(bucket_coalesced, folder, coalesce(changes))
    assert bucket_full == folder
    assert bucket_coalesced == folder
    assert len({c.path for c in coalesce(changes)}) == len(coalesce(changes))  # one per path
