"""The change queue: coalescing rules, debounce, claims, retries, parking, and a Hypothesis stateful
test that drives a model folder + bucket through the real queue (real SQLite) with workers that
claim, finish, fail and crash, and checks that draining the queue makes the bucket equal the folder."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule

from ks3sync.journal import Change, ChangeKind, Journal, QueuedChange

UPSERT, DELETE, MOVE = ChangeKind.UPSERT, ChangeKind.DELETE, ChangeKind.MOVE


def up(path: str, t: int = 0, due: int | None = None) -> Change:
    return Change(path, UPSERT, observed_ns=t, due_ns=t if due is None else due)


def rm(path: str, t: int = 0) -> Change:
    return Change(path, DELETE, observed_ns=t, due_ns=t)


def mv(src: str, dst: str, t: int = 0) -> Change:
    return Change(dst, MOVE, src_path=src, observed_ns=t, due_ns=t)


@pytest.fixture
def q(tmp_path: Path):  # type: ignore[no-untyped-def]
    j = Journal.open(tmp_path / "j.db")
    j.sid = j.register_sync("s", "/src", "b", "", "h")  # type: ignore[attr-defined]
    yield j
    j.close()


def state(j: Journal) -> list[tuple[str, str, str | None]]:
    return sorted((c.path, c.kind.value, c.src_path) for c in j.pending(j.sid))  # type: ignore[attr-defined]


def test_change_validates_move_source() -> None:
    with pytest.raises(ValueError, match="src_path"):
        Change("a", MOVE)
    with pytest.raises(ValueError, match="src_path"):
        Change("a", UPSERT, src_path="b")


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ([up("a", 1), up("a", 2)], [("a", "upsert", None)]),
        ([up("a"), rm("a")], [("a", "delete", None)]),
        ([rm("a"), up("a")], [("a", "upsert", None)]),
        ([mv("a", "b")], [("b", "move", "a")]),
        # created and renamed before it was ever uploaded: upload the new name, delete the old one
        ([up("a"), mv("a", "b")], [("a", "delete", None), ("b", "upsert", None)]),
        # a chain of renames is one move from the origin (b may have held an older object: delete it)
        ([mv("a", "b"), mv("b", "c")], [("b", "delete", None), ("c", "move", "a")]),
        # and a rename back is no move at all (the file may have been touched: re-check it)
        ([mv("a", "b"), mv("b", "a")], [("a", "upsert", None), ("b", "delete", None)]),
        # the source of a pending move is written again: the move uploads instead of copying
        ([mv("a", "b"), up("a")], [("a", "upsert", None), ("b", "upsert", None)]),
        # the moved file is modified: upload it, and the old name still has to go
        ([mv("a", "b"), up("b")], [("a", "delete", None), ("b", "upsert", None)]),
        ([mv("a", "b"), rm("b")], [("a", "delete", None), ("b", "delete", None)]),
        # a move onto a path that another pending move reads from
        ([mv("b", "c"), mv("a", "b")], [("b", "move", "a"), ("c", "upsert", None)]),
        ([mv("a", "a")], [("a", "upsert", None)]),
    ],
)
def test_coalescing(q: Journal, events: list[Change], expected: list[tuple[str, str, str | None]]) -> None:
    q.enqueue(q.sid, events)  # type: ignore[attr-defined]
    assert state(q) == expected
    # one event per enqueue call must give the same result
    q.done([c.id for c in q.pending(q.sid)])  # type: ignore[attr-defined]
    for event in events:
        q.enqueue(q.sid, [event])  # type: ignore[attr-defined]
    assert state(q) == expected


def test_debounce_keeps_first_observation_and_latest_due(q: Journal) -> None:
    sid = q.sid  # type: ignore[attr-defined]
    q.enqueue(sid, [up("log", 100, due=2100)])
    q.enqueue(sid, [up("log", 900, due=2900)])
    assert q.due(sid, 2500, 10) == []  # still being written
    (c,) = q.due(sid, 2900, 10)
    assert (c.observed_ns, c.due_ns, c.claimed) == (100, 2900, True)


def test_due_orders_by_due_time_and_respects_limit(q: Journal) -> None:
    sid = q.sid  # type: ignore[attr-defined]
    q.enqueue(sid, [up("c", 3), up("a", 1), up("b", 2), up("later", 50)])
    assert [c.path for c in q.due(sid, 10, 2)] == ["a", "b"]
    assert [c.path for c in q.due(sid, 10, 10)] == ["c"]  # a and b are in flight


def test_a_change_for_a_path_in_flight_waits_for_it(q: Journal) -> None:
    sid = q.sid  # type: ignore[attr-defined]
    q.enqueue(sid, [up("a")])
    (first,) = q.due(sid, 0, 10)
    q.enqueue(sid, [rm("a", 1)])  # arrives while the upload runs
    assert q.due(sid, 10, 10) == []  # a delete must not overtake the put it follows
    assert q.stats(sid).in_flight == 1 and q.stats(sid).queue_depth == 1
    q.done([first.id])
    (second,) = q.due(sid, 10, 10)
    assert second.kind is DELETE


def test_a_move_waits_for_its_source_in_flight(q: Journal) -> None:
    sid = q.sid  # type: ignore[attr-defined]
    q.enqueue(sid, [up("a")])
    (upload,) = q.due(sid, 0, 10)
    q.enqueue(sid, [mv("a", "b", 1)])
    assert q.due(sid, 10, 10) == []
    q.done([upload.id])
    (move,) = q.due(sid, 10, 10)
    assert (move.kind, move.src_path) == (MOVE, "a")


def test_failure_retries_later_and_parks(q: Journal) -> None:
    sid = q.sid  # type: ignore[attr-defined]
    q.enqueue(sid, [up("a")])
    (c,) = q.due(sid, 0, 10)
    q.failed(c.id, "503 SlowDown\nretry", retry_at_ns=500, park=False)
    assert q.due(sid, 499, 10) == []
    (c,) = q.due(sid, 500, 10)
    assert (c.attempts, c.last_error) == (1, "503 SlowDown retry")
    q.failed(c.id, "AccessDenied", retry_at_ns=600, park=True)
    assert q.due(sid, 10**12, 10) == []
    st = q.stats(sid)
    assert (st.parked, st.queue_depth, st.in_flight) == (1, 0, 0)
    assert st.last_errors[0].path == "a" and st.last_errors[0].message == "AccessDenied"
    q.enqueue(sid, [up("b")])
    assert [c.path for c in q.due(sid, 10**12, 10)] == ["b"]  # a parked path blocks nothing
    assert q.unpark(sid) == 1


def test_new_change_unparks_the_path(q: Journal) -> None:
    sid = q.sid  # type: ignore[attr-defined]
    q.enqueue(sid, [up("a")])
    (c,) = q.due(sid, 0, 10)
    q.failed(c.id, "denied", 0, park=True)
    q.enqueue(sid, [up("a", 5)])
    (c,) = q.due(sid, 10, 10)
    assert c.attempts == 0 and not c.parked


def test_failed_move_superseded_while_in_flight_still_deletes_its_source(q: Journal) -> None:
    sid = q.sid  # type: ignore[attr-defined]
    q.enqueue(sid, [mv("a", "b")])
    (move,) = q.due(sid, 0, 10)
    q.enqueue(sid, [up("b", 1)])  # b modified while the copy runs
    q.failed(move.id, "copy failed", 0, park=False)
    assert state(q) == [("a", "delete", None), ("b", "upsert", None)]


def test_release_claims_after_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    j = Journal.open(path)
    sid = j.register_sync("s", "/src", "b", "", "h")
    j.enqueue(sid, [up("a"), up("b")])
    assert len(j.due(sid, 0, 10)) == 2
    j.close()  # the process "dies" with two operations in flight
    j = Journal.open(path)
    assert j.due(sid, 0, 10) == []
    assert j.release_claims(sid) == 2
    assert sorted(c.path for c in j.due(sid, 0, 10)) == ["a", "b"]
    j.close()


def test_enqueue_is_durable_before_it_returns(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    j = Journal.open(path)
    sid = j.register_sync("s", "/src", "b", "", "h")
    j.enqueue(sid, [up(f"f{i}", i) for i in range(100)])
    # A second, independent connection (another process would see the same) reads it immediately.
    other = Journal.open(path)
    assert len(other.pending(sid)) == 100
    other.close()
    j.close()


# --------------------------------------------------------------------------------------------------
# Stateful: folder + bucket model, real queue.

PATHS = ["a", "b", "c"]  # few paths: histories collide on them often


class QueueMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="ks3sync-queue-"))
        self.journal = Journal.open(self.dir / "j.db")
        self.sid = self.journal.register_sync("s", "/src", "b", "", "h")
        self.folder: dict[str, int] = {}
        self.bucket: dict[str, int] = {}
        self.version = 0
        self.now = 0
        # claimed operations: id -> (change, what an upload read at claim time)
        self.in_flight: dict[int, tuple[QueuedChange, int | None]] = {}

    def teardown(self) -> None:
        try:
            self.drain_and_compare()
        finally:
            self.journal.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    def _event(self, change: Change) -> None:
        self.now += 1
        self.journal.enqueue(self.sid, [change])

    # the watcher -----------------------------------------------------------------------------------
    @rule(path=st.sampled_from(PATHS))
    def write(self, path: str) -> None:
        self.version += 1
        self.folder[path] = self.version
        self._event(up(path, self.now))

    @rule(path=st.sampled_from(PATHS))
    def delete(self, path: str) -> None:
        if path in self.folder:
            del self.folder[path]
            self._event(rm(path, self.now))

    @rule(src=st.sampled_from(PATHS), dst=st.sampled_from(PATHS))
    def rename(self, src: str, dst: str) -> None:
        if src in self.folder and src != dst:
            self.folder[dst] = self.folder.pop(src)
            self._event(mv(src, dst, self.now))

    # the workers -----------------------------------------------------------------------------------
    @rule(n=st.integers(1, 3))
    def claim(self, n: int) -> None:
        for c in self.journal.due(self.sid, self.now, n):
            assert c.id not in self.in_flight
            busy = {p for q, _ in self.in_flight.values() for p in (q.path, q.src_path) if p}
            assert not ({c.path, c.src_path} - {None}) & busy, "two operations on one path at once"
            # an upload reads the file when it starts
            self.in_flight[c.id] = (c, self.folder.get(c.path))

    def _execute(self, c: QueuedChange, read: int | None) -> None:
        if c.kind is UPSERT:
            if read is None:
                self.bucket.pop(c.path, None)  # the file was gone when the upload started
            else:
                self.bucket[c.path] = read
        elif c.kind is DELETE:
            self.bucket.pop(c.path, None)
        else:
            assert c.src_path is not None
            if c.src_path in self.bucket:
                self.bucket[c.path] = self.bucket[c.src_path]  # server-side copy
            elif read is not None:
                self.bucket[c.path] = read  # no source object: upload instead
            else:
                self.bucket.pop(c.path, None)
            self.bucket.pop(c.src_path, None)

    @precondition(lambda self: self.in_flight)
    @rule(data=st.data())
    def finish(self, data: st.DataObject) -> None:
        cid = data.draw(st.sampled_from(sorted(self.in_flight)))
        c, read = self.in_flight.pop(cid)
        self._execute(c, read)
        self.journal.done([cid])

    @precondition(lambda self: self.in_flight)
    @rule(data=st.data(), park=st.booleans())
    def fail(self, data: st.DataObject, park: bool) -> None:
        cid = data.draw(st.sampled_from(sorted(self.in_flight)))
        self.in_flight.pop(cid)
        self.journal.failed(cid, "boom", self.now, park)

    @rule(data=st.data())
    def crash(self, data: st.DataObject) -> None:
        # kill -9: each in-flight operation may or may not have reached KS3; none was marked done.
        for cid in sorted(self.in_flight):
            c, read = self.in_flight[cid]
            if data.draw(st.booleans()):
                self._execute(c, read)
        self.in_flight.clear()
        self.journal.close()
        self.journal = Journal.open(self.dir / "j.db")
        self.journal.release_claims(self.sid)

    def drain_and_compare(self) -> None:
        """Drain: finish everything in flight, unpark, run the queue dry; the bucket equals the folder."""
        for cid in sorted(self.in_flight):
            c, read = self.in_flight.pop(cid)
            self._execute(c, read)
            self.journal.done([cid])
        self.journal.unpark(self.sid)
        for _ in range(100):
            batch = self.journal.due(self.sid, 1 << 62, 10)
            if not batch:
                break
            for c in batch:
                self._execute(c, self.folder.get(c.path))
            self.journal.done([c.id for c in batch])
        assert self.journal.pending(self.sid) == []
        assert self.journal.integrity_check() == []
        assert self.bucket == self.folder


QueueMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)
TestQueueConverges = QueueMachine.TestCase


def test_watcher_and_workers_on_threads(tmp_path: Path) -> None:
    """One watcher thread enqueues while four workers claim and finish: nothing is lost, no two
    workers ever hold the same path, and the queue drains."""
    import threading
    import time

    j = Journal.open(tmp_path / "j.db")
    sid = j.register_sync("s", "/src", "b", "", "h")
    paths = [f"dir/{i % 40}" for i in range(400)]
    holding: dict[str, int] = {}
    guard = threading.Lock()
    handled: list[str] = []
    errors: list[BaseException] = []
    watcher_done = threading.Event()

    def watcher() -> None:
        try:
            for start in range(0, len(paths), 20):
                j.enqueue(sid, [up(p, start + k) for k, p in enumerate(paths[start : start + 20])])
        except BaseException as exc:  # noqa: BLE001 - re-raised by the main thread
            errors.append(exc)
        finally:
            watcher_done.set()

    def worker(n: int) -> None:
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                batch = j.due(sid, 1 << 62, 5)
                if not batch:
                    if watcher_done.is_set() and not j.pending(sid):
                        return
                    time.sleep(0.001)
                    continue
                with guard:
                    for c in batch:
                        assert c.path not in holding, f"{c.path} held by two workers"
                        holding[c.path] = n
                with guard:
                    for c in batch:
                        del holding[c.path]
                        handled.append(c.path)
                j.done([c.id for c in batch])
        except BaseException as exc:  # noqa: BLE001 - re-raised by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=watcher)] + [
        threading.Thread(target=worker, args=(n,)) for n in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    assert not errors, errors
    assert j.pending(sid) == []
    assert set(handled) == set(paths)  # every path handled at least once (coalescing may merge repeats)
    assert len(handled) <= len(paths)
    j.close()


def test_queue_counts_agree_with_stats_through_claim_park_and_done(q: Journal) -> None:
    sid = q.sid  # type: ignore[attr-defined]
    other = q.register_sync("t", "/other", "b", "t/", "h")
    q.enqueue(other, [up("x"), up("y")])  # another sync's queue is not counted
    q.enqueue(sid, [up("a"), up("b"), up("c", due=50)])

    def both() -> tuple[int, int, int]:
        counts, st = q.queue_counts(sid), q.stats(sid)
        assert (counts.queue_depth, counts.parked, counts.in_flight) == (
            st.queue_depth,
            st.parked,
            st.in_flight,
        )
        return counts.queue_depth, counts.parked, counts.in_flight

    assert both() == (3, 0, 0)
    a, b = q.due(sid, 0, 2)
    assert both() == (1, 0, 2)
    q.failed(a.id, "AccessDenied", retry_at_ns=10, park=True)
    q.done([b.id])
    assert both() == (1, 1, 0)
