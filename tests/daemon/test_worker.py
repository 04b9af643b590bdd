"""The per-sync scheduler, stepped with a fake clock against a real SQLite journal, real files and the
in-memory Store (the same Store the conformance suite checks against local-server). No test sleeps to
wait: batches run on the worker's threads and tests poll for them with a bound."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ks3sync.config import Ks3Url, MaxDelete, SyncConfig
from ks3sync.daemon.backoff import SECOND, Backoff
from ks3sync.daemon.worker import State, SyncWorker
from ks3sync.errors import TransientError
from ks3sync.journal import Journal
from ks3sync.store.memory import MemoryStore
from ks3sync.transfer.context import TransferOptions
from ks3sync.watch.translate import Note, Observed


@dataclass
class Rig:
    root: Path
    store: MemoryStore
    journal: Journal
    clock: Any
    worker: SyncWorker
    reconciles: list[int] = field(default_factory=list)

    def note(self, kind: Note, path: str, src: str | None = None) -> None:
        self.worker.buffer.add([Observed(kind, path, src)])

    def settle(self, wait_until: Callable[..., object], *, paused: bool = False) -> None:
        """Step until nothing is running and nothing due is left (or, when the sync is expected to be
        paused, until nothing is running)."""

        def idle() -> bool:
            was_busy = self.worker.busy()
            self.worker.poke()
            self.worker.step()  # reaps what finished before it
            if was_busy or self.worker.busy():
                return False
            stats = self.journal.stats(self.worker.sync_id)
            due = stats.next_due_ns is not None and stats.next_due_ns <= self.clock.now
            quiet.append((paused or not due) and stats.in_flight == 0 and not self.worker.busy())
            return quiet[-2:] == [True, True]  # two idle rounds: nothing started by the last step

        quiet: list[bool] = []

        wait_until(idle, timeout=30)

    def objects(self) -> dict[str, bytes]:
        return {e.path: self.store.data(e.path) for e in self.store.list()}

    def writes(self) -> list[tuple[str, str]]:
        return self.store.writes()


@pytest.fixture()
def make_rig(tmp_path: Path, fake_clock: Any) -> Iterator[Callable[..., Rig]]:
    rigs: list[Rig] = []

    def make(**sync_kw: Any) -> Rig:
        root = tmp_path / "src"
        root.mkdir(exist_ok=True)
        clock = fake_clock
        journal = Journal.open(tmp_path / "journal.db", clock=clock)
        store = MemoryStore("bkt", "p/")
        sync = SyncConfig(name="docs", source=root, target=Ks3Url("bkt", "p/"), **{"delete": True, **sync_kw})
        reconciles: list[int] = []

        def reconcile(worker: SyncWorker, stop: threading.Event) -> Any:
            reconciles.append(clock.now)  # the real reconcile (run_mirror) is exercised end to end
            return None

        worker = SyncWorker(
            sync,
            journal,
            store,
            TransferOptions(jobs=2),
            reconcile=reconcile,
            clock=clock,
            watch=False,
            backoff=Backoff(base_ns=SECOND, cap_ns=8 * SECOND, park_after=3),
        )
        rig = Rig(root, store, journal, clock, worker, reconciles)
        rigs.append(rig)
        worker.start()
        return rig

    yield make
    for rig in rigs:
        rig.worker.begin_stop()
        rig.worker.finish_stop(10)
        rig.journal.close()


def test_start_reconciles_then_a_new_file_waits_for_its_debounce(make_rig, wait_until) -> None:
    rig = make_rig()
    rig.settle(wait_until)
    assert rig.reconciles, "start-up reconcile"
    (rig.root / "a.txt").write_text("hello")
    rig.note(Note.FILE_CHANGED, "a.txt")
    rig.worker.step()
    assert rig.journal.stats(rig.worker.sync_id).queue_depth == 1  # durable before anything else
    rig.clock.advance(1.9)
    rig.settle(wait_until)
    assert rig.objects() == {}  # not yet: 2 s debounce
    rig.clock.advance(0.2)
    rig.settle(wait_until)
    assert rig.objects() == {"a.txt": b"hello"}
    assert rig.journal.synced_entries(rig.worker.sync_id)["a.txt"].md5


def test_modify_uploads_again_and_a_spurious_event_uploads_nothing(make_rig, wait_until) -> None:
    rig = make_rig()
    (rig.root / "a.txt").write_text("one")
    rig.note(Note.FILE_CHANGED, "a.txt")
    rig.clock.advance(3)
    rig.settle(wait_until)
    (rig.root / "a.txt").write_text("two!")
    rig.note(Note.FILE_CHANGED, "a.txt")
    rig.clock.advance(3)
    rig.settle(wait_until)
    assert rig.objects() == {"a.txt": b"two!"}
    before = len(rig.writes())
    rig.note(Note.FILE_CHANGED, "a.txt")  # e.g. closed without change
    rig.clock.advance(3)
    rig.settle(wait_until)
    assert len(rig.writes()) == before


def test_rename_is_a_server_side_copy_then_delete(make_rig, wait_until) -> None:
    rig = make_rig()
    (rig.root / "old.bin").write_bytes(os.urandom(50_000))
    rig.note(Note.FILE_CHANGED, "old.bin")
    rig.clock.advance(3)
    rig.settle(wait_until)
    os.rename(rig.root / "old.bin", rig.root / "new.bin")
    mark = len(rig.store.calls)
    rig.note(Note.FILE_MOVED, "new.bin", "old.bin")
    rig.clock.advance(3)
    rig.settle(wait_until)
    ops = [op for op, _ in rig.store.calls[mark:] if op in ("put", "copy", "delete", "upload_part")]
    assert ops == ["copy", "delete"]  # no data sent again
    assert set(rig.objects()) == {"new.bin"}
    synced = rig.journal.synced_entries(rig.worker.sync_id)
    assert set(synced) == {"new.bin"}


def test_delete_and_delete_off(make_rig, wait_until) -> None:
    rig = make_rig()
    for name in ("a", "b"):
        (rig.root / name).write_text(name)
        rig.note(Note.FILE_CHANGED, name)
    rig.clock.advance(3)
    rig.settle(wait_until)
    (rig.root / "a").unlink()
    rig.note(Note.FILE_DELETED, "a")
    rig.clock.advance(3)
    rig.settle(wait_until)
    assert set(rig.objects()) == {"b"}


def test_delete_off_keeps_the_object(make_rig, wait_until) -> None:
    rig = make_rig(delete=False)
    for name in ("a", "b"):
        (rig.root / name).write_text(name)
        rig.note(Note.FILE_CHANGED, name)
    rig.clock.advance(3)
    rig.settle(wait_until)
    (rig.root / "a").unlink()
    rig.note(Note.FILE_DELETED, "a")
    rig.clock.advance(3)
    rig.settle(wait_until)
    assert set(rig.objects()) == {"a", "b"}


def test_a_file_still_being_written_is_not_sent_half_way(make_rig, wait_until) -> None:
    rig = make_rig()
    path = rig.root / "growing.log"
    path.write_text("partial")
    now_s = rig.clock.now / SECOND
    os.utime(path, (now_s, now_s))  # written "just now" by this clock; events were coalesced away
    rig.note(Note.FILE_CHANGED, "growing.log")
    rig.clock.advance(2.5)  # the event is due, but the file was touched 2.5 s... no: at t0
    os.utime(path, (now_s + 2, now_s + 2))  # still being written 0.5 s ago
    rig.settle(wait_until)
    assert rig.objects() == {}
    rig.clock.advance(1.6)  # quiet for 2.1 s now
    rig.settle(wait_until)
    assert rig.objects() == {"growing.log": b"partial"}


def test_failures_back_off_then_park_without_blocking_others(make_rig, wait_until) -> None:
    rig = make_rig()
    rig.store.inject("put", TransientError("503 slow down"), times=1000, path="bad")
    for name in ("bad", "good1"):
        (rig.root / name).write_text(name)
        rig.note(Note.FILE_CHANGED, name)
    rig.clock.advance(3)
    rig.settle(wait_until)
    assert set(rig.objects()) == {"good1"}
    stats = rig.journal.stats(rig.worker.sync_id)
    assert stats.parked == 0 and stats.queue_depth == 1
    assert "503" in (stats.last_errors[0].message if stats.last_errors else "")
    # attempts 2 and 3 after backoff (1 s, 2 s): parked after the third
    for _ in range(3):
        rig.clock.advance(10)
        rig.settle(wait_until)
    stats = rig.journal.stats(rig.worker.sync_id)
    assert stats.parked == 1 and stats.queue_depth == 0
    (rig.root / "good2").write_text("x")
    rig.note(Note.FILE_CHANGED, "good2")
    rig.clock.advance(3)
    rig.settle(wait_until)
    assert set(rig.objects()) == {"good1", "good2"}


def test_max_delete_holds_deletes_beyond_the_budget(make_rig, wait_until) -> None:
    rig = make_rig(max_delete=MaxDelete(count=None, percent=30.0))
    for i in range(10):
        (rig.root / f"f{i}").write_text(str(i))
        rig.note(Note.FILE_CHANGED, f"f{i}")
    rig.clock.advance(3)
    rig.settle(wait_until)
    for i in range(6):
        (rig.root / f"f{i}").unlink()
        rig.note(Note.FILE_DELETED, f"f{i}")
    rig.clock.advance(3)
    rig.settle(wait_until)
    assert len(rig.objects()) == 7  # 30% of 10: three deletes, three held
    stats = rig.journal.stats(rig.worker.sync_id)
    assert stats.queue_depth == 3 and stats.parked == 0
    assert rig.worker.counters.held_deletes == 3


def test_an_emptied_source_never_deletes(make_rig, wait_until) -> None:
    rig = make_rig(max_delete=MaxDelete(count=None, percent=100.0))
    for i in range(3):
        (rig.root / f"f{i}").write_text(str(i))
        rig.note(Note.FILE_CHANGED, f"f{i}")
    rig.clock.advance(3)
    rig.settle(wait_until)
    for i in range(3):
        (rig.root / f"f{i}").unlink()
        rig.note(Note.FILE_DELETED, f"f{i}")
    rig.clock.advance(3)
    rig.settle(wait_until, paused=True)
    assert len(rig.objects()) == 3
    assert rig.journal.stats(rig.worker.sync_id).queue_depth == 3  # kept, not dropped
    assert rig.worker.state is State.UNAVAILABLE
    assert "empty" in rig.worker.reason


def test_a_missing_source_pauses_and_resumes(make_rig, wait_until) -> None:
    rig = make_rig()
    (rig.root / "f").write_text("f")
    rig.note(Note.FILE_CHANGED, "f")
    rig.clock.advance(3)
    rig.settle(wait_until)
    moved = rig.root.with_name("elsewhere")
    os.rename(rig.root, moved)
    rig.clock.advance(2)
    rig.worker.step()
    assert rig.worker.state is State.UNAVAILABLE and "missing" in rig.worker.reason
    assert set(rig.objects()) == {"f"}
    os.rename(moved, rig.root)
    before = len(rig.reconciles)
    rig.clock.advance(2)
    rig.settle(wait_until)
    assert rig.worker.state is State.WATCHING
    assert len(rig.reconciles) == before + 1  # catches up with whatever happened meanwhile


def test_excluded_files_are_neither_sent_nor_deleted(make_rig, wait_until) -> None:
    rig = make_rig(excludes=("*.tmp",))
    (rig.root / ".ks3ignore").write_text("build/\n")
    (rig.root / "build").mkdir()
    for name in ("keep.txt", "junk.tmp", "build/out.o"):
        (rig.root / name).write_text(name)
        rig.note(Note.FILE_CHANGED, name)
    rig.clock.advance(3)
    rig.settle(wait_until)
    assert set(rig.objects()) == {"keep.txt"}
    # the ignore file changes: build/ is no longer excluded, and a reconcile is scheduled
    before = len(rig.reconciles)
    (rig.root / ".ks3ignore").write_text("")
    rig.note(Note.FILE_CHANGED, ".ks3ignore")
    rig.note(Note.FILE_CHANGED, "build/out.o")
    rig.clock.advance(3)
    rig.settle(wait_until)
    assert "build/out.o" in rig.objects()
    rig.clock.advance(3)  # the reconcile waits for the debounce after the ignore file changed
    rig.settle(wait_until)
    assert len(rig.reconciles) == before + 1


def test_lost_events_trigger_a_reconcile_after_the_debounce(make_rig, wait_until) -> None:
    rig = make_rig()
    rig.settle(wait_until)
    before = len(rig.reconciles)
    rig.worker.buffer.mark_overflow()  # what the watcher does when inotify's queue overflowed
    rig.worker.step()
    assert len(rig.reconciles) == before  # not at once: the burst may still be going on
    rig.clock.advance(2.1)
    rig.settle(wait_until)
    assert len(rig.reconciles) == before + 1


def test_polling_mode_reconciles_every_30_seconds(tmp_path, fake_clock, wait_until) -> None:
    import errno

    class FullObserver:
        def schedule(self, *a: object, **k: object) -> None:
            raise OSError(errno.ENOSPC, "inotify watch limit reached")

        def stop(self) -> None: ...

        def is_alive(self) -> bool:
            return False

    root = tmp_path / "src"
    root.mkdir()
    journal = Journal.open(tmp_path / "j.db", clock=fake_clock)
    reconciles: list[int] = []

    def reconcile(worker: SyncWorker, stop: threading.Event) -> Any:
        reconciles.append(fake_clock.now)

    worker = SyncWorker(
        SyncConfig(name="p", source=root, target=Ks3Url("bkt", "")),
        journal,
        MemoryStore("bkt"),
        TransferOptions(jobs=1),
        reconcile=reconcile,
        clock=fake_clock,
    )
    worker.watcher._factory = FullObserver  # type: ignore[union-attr]  # the watch limit is reached
    try:
        worker.start()
        for _ in range(3):
            wait_until(lambda: (worker.step(), not worker.busy())[1] and worker.state is State.POLLING)
            fake_clock.advance(30)
        worker.step()
        assert len(reconciles) == 3
        assert "inotify limit" in worker.reason
    finally:
        worker.begin_stop()
        worker.finish_stop(5)
        journal.close()


def test_a_crashing_batch_releases_its_changes(make_rig, wait_until, monkeypatch) -> None:
    import ks3sync.daemon.batch as batch_module

    rig = make_rig()
    rig.settle(wait_until)
    real_decide = batch_module.decide

    def buggy(path: str, *args: Any, **kwargs: Any) -> Any:
        if path == "boom":
            raise RuntimeError("a bug")
        return real_decide(path, *args, **kwargs)

    monkeypatch.setattr(batch_module, "decide", buggy)
    (rig.root / "boom").write_text("x")
    rig.note(Note.FILE_CHANGED, "boom")
    rig.clock.advance(3)
    rig.worker.poke()
    rig.worker.step()
    wait_until(lambda: (rig.worker.step(), not rig.worker.busy())[1])
    stats = rig.journal.stats(rig.worker.sync_id)
    assert stats.in_flight == 0 and stats.queue_depth == 1  # released, not stuck as claimed
    assert "internal error: RuntimeError: a bug" in stats.last_errors[0].message
    monkeypatch.setattr(batch_module, "decide", real_decide)
    rig.clock.advance(5)
    rig.settle(wait_until)
    assert rig.objects() == {"boom": b"x"}


def test_service_sleeps_while_the_reconcile_runs_and_is_woken_when_it_ends(
    tmp_path: Path, fake_clock: Any, wait_until
) -> None:
    """A past due-check time must not count while a reconcile runs: the service loop would spin for
    the whole reconcile and take the GIL from its transfer threads."""
    root = tmp_path / "src"
    root.mkdir()
    (root / "a.txt").write_text("a")
    gate = threading.Event()

    def slow_reconcile(worker: SyncWorker, stop: threading.Event) -> Any:
        gate.wait(30)
        return None

    journal = Journal.open(tmp_path / "journal.db", clock=fake_clock)
    sync = SyncConfig(name="docs", source=root, target=Ks3Url("bkt", "p/"))
    worker = SyncWorker(
        sync,
        journal,
        MemoryStore("bkt", "p/"),
        TransferOptions(jobs=1),
        reconcile=slow_reconcile,
        clock=fake_clock,
        watch=False,
    )
    woken = threading.Event()
    worker.add_wake_listener(woken.set)
    try:
        worker.start()
        worker.step()
        assert worker.state is State.RECONCILING and worker.busy()
        worker.poke()  # a due check is pending, but cannot start before the reconcile ends
        assert worker.next_wakeup_ns() > fake_clock.now
        assert not woken.is_set()
        gate.set()
        wait_until(woken.is_set, timeout=10)
        worker.step()  # reaps the reconcile
        assert not worker.busy() and worker.state is State.WATCHING
        # the pending check ran in that step; the next one is at most a second away
        assert fake_clock.now < worker.next_wakeup_ns() <= fake_clock.now + SECOND
    finally:
        gate.set()
        worker.begin_stop()
        worker.finish_stop(10)
        journal.close()
