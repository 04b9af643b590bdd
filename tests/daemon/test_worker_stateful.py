"""A Hypothesis state machine drives the scheduler with random writes, deletes, file and directory
renames and transient store faults; whenever it settles, the bucket must equal the folder.

Real journal (SQLite), real files, the in-memory Store, and the real reconcile (``run_mirror``) at
start-up; the watcher is replaced by the notes it would produce (its translation is tested against the
real observer in tests/watch)."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from ks3sync.config import Ks3Url, MaxDelete, SyncConfig
from ks3sync.daemon.backoff import SECOND, Backoff
from ks3sync.daemon.reconcile import mirror_reconciler
from ks3sync.daemon.worker import SyncWorker
from ks3sync.engine.mirror import MirrorOptions
from ks3sync.errors import TransientError
from ks3sync.journal import Journal
from ks3sync.store.memory import MemoryStore
from ks3sync.transfer.context import TransferOptions
from ks3sync.watch.translate import Note, Observed

NAMES = ["a", "b", "d/c", "d/e", "f/c"]


class Clock:
    def __init__(self) -> None:
        self.now = time.time_ns() + 3600 * SECOND

    def __call__(self) -> int:
        return self.now


class SchedulerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="ks3sync-stateful-"))
        self.root = self.tmp / "src"
        self.root.mkdir()
        # one file the rules never touch: an emptied folder is (rightly) treated as unmounted and paused,
        # which tests/daemon/test_worker.py covers on its own
        (self.root / "anchor").write_text("stays")
        self.clock = Clock()
        self.journal = Journal.open(self.tmp / "journal.db", clock=self.clock)
        self.store = MemoryStore("bkt", "p/")
        sync = SyncConfig(
            name="s",
            source=self.root,
            target=Ks3Url("bkt", "p/"),
            delete=True,
            debounce=1.0,
            max_delete=MaxDelete(count=None, percent=100.0),
        )
        self.worker = SyncWorker(
            sync,
            self.journal,
            self.store,
            TransferOptions(jobs=2),
            reconcile=mirror_reconciler(
                lambda w: MirrorOptions(delete=True, max_delete_percent=100.0, transfer=w.transfer)
            ),
            clock=self.clock,
            watch=False,
            backoff=Backoff(base_ns=SECOND, cap_ns=2 * SECOND, park_after=50),
        )
        self.worker.start()
        self.settle()

    def note(self, kind: Note, path: str, src: str | None = None) -> None:
        self.worker.buffer.add([Observed(kind, path, src)])

    def folder(self) -> dict[str, bytes]:
        out = {}
        for dirpath, _, files in os.walk(self.root):
            for name in files:
                p = Path(dirpath) / name
                out[p.relative_to(self.root).as_posix()] = p.read_bytes()
        return out

    def settle(self) -> None:
        """Advance past debounce and backoff, step until idle twice in a row (bounded)."""
        deadline = time.monotonic() + 30
        quiet = 0
        while quiet < 2:
            assert time.monotonic() < deadline, "scheduler did not settle"
            was_busy = self.worker.busy()
            self.clock.now += 3 * SECOND
            self.worker.poke()
            self.worker.step()
            stats = self.journal.stats(self.worker.sync_id)
            idle = not was_busy and not self.worker.busy() and stats.in_flight == 0 and stats.queue_depth == 0
            quiet = quiet + 1 if idle else 0
            if not idle:
                time.sleep(0.005)  # let the batch threads run; bounded by the deadline above

    @rule(name=st.sampled_from(NAMES), data=st.binary(max_size=64))
    def write(self, name: str, data: bytes) -> None:
        path = self.root / name
        if path.parent.exists() and not path.parent.is_dir():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.note(Note.FILE_CHANGED, name)

    @rule(name=st.sampled_from(NAMES))
    def delete(self, name: str) -> None:
        if (self.root / name).is_file():
            (self.root / name).unlink()
            self.note(Note.FILE_DELETED, name)

    @rule(src=st.sampled_from(NAMES), dst=st.sampled_from(NAMES))
    def rename(self, src: str, dst: str) -> None:
        s, d = self.root / src, self.root / dst
        if src == dst or not s.is_file() or (d.parent.exists() and not d.parent.is_dir()):
            return
        d.parent.mkdir(parents=True, exist_ok=True)
        os.replace(s, d)
        self.note(Note.FILE_MOVED, dst, src)

    @precondition(lambda self: (self.root / "d").is_dir() and not (self.root / "f").exists())
    @rule()
    def rename_directory(self) -> None:
        os.rename(self.root / "d", self.root / "f")
        self.note(Note.DIR_MOVED, "f", "d")

    @rule(name=st.sampled_from(NAMES))
    def flaky_store(self, name: str) -> None:
        self.store.inject("put", TransientError("503 injected"), times=1, path=name)

    @rule()
    def quiet_period(self) -> None:
        self.settle()
        objects = {e.path: self.store.data(e.path) for e in self.store.list()}
        assert objects == self.folder()

    @invariant()
    def nothing_parked(self) -> None:
        assert self.journal.stats(self.worker.sync_id, recent_errors=0).parked == 0

    def teardown(self) -> None:
        try:
            self.settle()
            objects = {e.path: self.store.data(e.path) for e in self.store.list()}
            assert objects == self.folder()
        finally:
            self.worker.begin_stop()
            self.worker.finish_stop(10)
            self.journal.close()
            shutil.rmtree(self.tmp, ignore_errors=True)


TestScheduler = SchedulerMachine.TestCase
TestScheduler.settings = settings(max_examples=25, stateful_step_count=15, deadline=None)
