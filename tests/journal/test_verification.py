"""The journal's side of continuous verification (journal/verification.py): records in path order after
a cursor, round progress, and the one transaction that acts on a mismatch, with its guards."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ks3sync.journal import Change, ChangeKind, Journal
from ks3sync.model import FileIdentity, SyncedEntry


def entry(path: str, etag: str = "e" * 32, synced_at: int = 1) -> SyncedEntry:
    return SyncedEntry(
        path, FileIdentity(3, 10, 20, 30), hashlib.md5(path.encode()).hexdigest(), etag, 3, False, synced_at
    )


def journal_with(tmp_path: Path, paths: list[str]) -> tuple[Journal, int]:
    j = Journal.open(tmp_path / "j.db", clock=lambda: 1000)
    sid = j.register_sync("docs", "/srv/docs", "bucket", "p/", "h")
    j.record_synced(sid, [entry(p) for p in paths])
    return j, sid


def test_records_after_walk_in_path_order_in_bounded_batches(tmp_path: Path) -> None:
    paths = ["b", "a/z", "a+b", "é", "a/b/c", "~"]
    j, sid = journal_with(tmp_path, paths)
    with j:
        walked, cursor = [], None
        while batch := j.records_after(sid, cursor, 2):
            assert len(batch) <= 2
            walked += [e.path for e in batch]
            cursor = batch[-1].path
        assert walked == sorted(paths, key=lambda p: p.encode())


def test_progress_and_a_finished_round(tmp_path: Path) -> None:
    j, sid = journal_with(tmp_path, ["a", "b"])
    with j:
        j.verify_progress(sid, cursor="a", checked=1, round_started_ns=500)
        state = j.verify_state(sid)
        assert state is not None and (state.cursor, state.round_started_ns, state.checked, state.rounds) == (
            "a",
            500,
            1,
            0,
        )
        j.verify_progress(sid, cursor=None, checked=1, round_started_ns=500, finished_ns=900)
        state = j.verify_state(sid)
        assert state is not None
        assert (state.cursor, state.round_started_ns, state.last_full_ns, state.checked, state.rounds) == (
            None,
            None,
            900,
            2,
            1,
        )


def test_a_mismatch_with_requeue_drops_the_record_and_queues_an_upload_in_one_go(tmp_path: Path) -> None:
    j, sid = journal_with(tmp_path, ["a", "b"])
    with j:
        assert j.verify_mismatch(
            sid,
            entry("a"),
            "verification: the object is missing",
            requeue=Change("a", ChangeKind.UPSERT, observed_ns=5, due_ns=5),
        )
        assert sorted(j.synced_entries(sid)) == ["b"]
        assert [(c.path, c.kind, c.due_ns) for c in j.pending(sid)] == [("a", ChangeKind.UPSERT, 5)]
        state = j.verify_state(sid)
        assert state is not None and (state.mismatches, state.last_mismatch_ns) == (1, 1000)
        (err,) = j.stats(sid).last_errors
        assert (err.path, err.message) == ("a", "verification: the object is missing")


def test_a_mismatch_without_requeue_is_counted_and_the_record_stays(tmp_path: Path) -> None:
    j, sid = journal_with(tmp_path, ["a"])
    with j:
        j.enqueue(sid, [Change("a", ChangeKind.UPSERT, observed_ns=1, due_ns=10**18)])  # queued, not running
        assert j.verify_mismatch(sid, entry("a"), "verification: size", requeue=None)
        assert sorted(j.synced_entries(sid)) == ["a"]
        state = j.verify_state(sid)
        assert state is not None and state.mismatches == 1


def test_no_verdict_while_the_sync_rewrites_the_path(tmp_path: Path) -> None:
    j, sid = journal_with(tmp_path, ["a", "src"])
    with j:
        # the record changed since it was verified (the sync re-sent the file meanwhile)
        assert not j.verify_mismatch(sid, entry("a", synced_at=0), "x", requeue=None)
        # an upload of the path is in flight (claimed), or a move from it
        j.enqueue(
            sid,
            [
                Change("a", ChangeKind.UPSERT, observed_ns=1, due_ns=1),
                Change("dst", ChangeKind.MOVE, "src", observed_ns=1, due_ns=1),
            ],
        )
        assert len(j.due(sid, 2, 10)) == 2
        assert not j.verify_mismatch(sid, entry("a"), "x", requeue=Change("a", ChangeKind.UPSERT))
        assert not j.verify_mismatch(sid, entry("src"), "x", requeue=None)
        assert sorted(j.synced_entries(sid)) == ["a", "src"]
        assert j.verify_state(sid) is None and j.stats(sid).last_errors == ()
