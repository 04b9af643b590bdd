"""The service's per-change delete selection when a change's own transfer fails for good: a rename whose
server-side copy is refused must not delete the old object (the bucket would end with neither name).

The scheduler is stepped with a fake clock, as in test_worker.py, against two stores: the in-memory
Store with an injected copy fault, and ``KS3Store`` talking to a real local-server through a rewriting
proxy that refuses the copy on the wire (400 InvalidArgument: a permanent, non-fatal answer).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ks3sync.config import Ks3Url, SyncConfig
from ks3sync.daemon.backoff import SECOND, Backoff
from ks3sync.daemon.worker import SyncWorker
from ks3sync.errors import RemoteRejected
from ks3sync.journal import Journal
from ks3sync.store.base import Store
from ks3sync.store.memory import MemoryStore
from ks3sync.transfer.context import TransferOptions
from ks3sync.watch.translate import Note, Observed
from tests.reliability.proxy import Exchange, RewritingProxy
from tests.serverkit import ServerHandle, client_config

PREFIX = "p/"
REFUSED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InvalidArgument</Code>'
    b"<Message>copy refused (test)</Message></Error>"
)


class Bucket:
    """What the test needs of either store: make the next copies fail, and list what is there."""

    def __init__(self, store: Store, refuse_copies: Callable[[bool], None]) -> None:
        self.store = store
        self.refuse_copies = refuse_copies

    def objects(self) -> dict[str, bytes]:
        out = {}
        for entry in self.store.list():
            with self.store.open(entry.path) as reader:
                out[entry.path] = b"".join(reader.iter_bytes())
        return out


@pytest.fixture(params=["memory", "local-server"])
def bucket_store(request: pytest.FixtureRequest) -> Iterator[Bucket]:
    if request.param == "memory":
        store = MemoryStore("bkt", PREFIX)

        def refuse_memory(on: bool) -> None:
            if on:
                store.inject("copy", RemoteRejected("InvalidArgument: copy refused (test)"), times=100)
            else:
                store._faults.clear()

        yield Bucket(store, refuse_memory)
        return
    from ks3sync.ks3 import Client
    from ks3sync.store.ks3store import KS3Store

    server: ServerHandle = request.getfixturevalue("local_server")
    name = request.getfixturevalue("bucket")
    refusing = [False]

    def short_circuit(method: str, target: str) -> Exchange | None:
        # Only the rename's destination is ever PUT in this test's second half: that PUT is the copy.
        if refusing[0] and method == "PUT" and target.split("?")[0].endswith("/new.bin"):
            return Exchange(method, target, {}, 400, [("Content-Type", "application/xml")], REFUSED)
        return None

    with RewritingProxy(server.endpoint, lambda exchange: None, short_circuit) as proxy:
        from dataclasses import replace

        with Client(client_config(replace(server, endpoint=proxy.endpoint))) as client:
            yield Bucket(KS3Store(client, name, PREFIX), lambda on: refusing.__setitem__(0, on))
        refused = [e for e in proxy.seen if e.status == 400 and e.method == "PUT"]
        assert refused or not refusing[0], "the proxy refused no copy: the case tested nothing"


def _settle(worker: SyncWorker, journal: Journal, clock: Any, wait_until: Callable[..., object]) -> None:
    quiet: list[bool] = []

    def idle() -> bool:
        was_busy = worker.busy()
        worker.poke()
        worker.step()
        if was_busy or worker.busy():
            return False
        stats = journal.stats(worker.sync_id)
        due = stats.next_due_ns is not None and stats.next_due_ns <= clock.now
        quiet.append(not due and stats.in_flight == 0)
        return quiet[-2:] == [True, True]

    wait_until(idle, timeout=60)


def test_a_rename_whose_copy_is_refused_keeps_the_old_object(
    bucket_store: Bucket, tmp_path: Path, fake_clock: Any, wait_until: Callable[..., object]
) -> None:
    """Guards the per-change delete selection (daemon/batch.py: a change whose copy failed is settled,
    so its deletes do not run)."""
    root = tmp_path / "src"
    root.mkdir()
    data = os.urandom(50_000)
    journal = Journal.open(tmp_path / "journal.db", clock=fake_clock)
    sync = SyncConfig(name="docs", source=root, target=Ks3Url("bkt", PREFIX), delete=True)
    worker = SyncWorker(
        sync,
        journal,
        bucket_store.store,
        TransferOptions(jobs=2),
        reconcile=lambda worker, stop: None,
        clock=fake_clock,
        watch=False,
        backoff=Backoff(base_ns=SECOND, cap_ns=8 * SECOND, park_after=3),
    )
    worker.start()
    try:
        (root / "old.bin").write_bytes(data)
        worker.buffer.add([Observed(Note.FILE_CHANGED, "old.bin")])
        fake_clock.advance(3)
        _settle(worker, journal, fake_clock, wait_until)
        assert bucket_store.objects() == {"old.bin": data}

        os.rename(root / "old.bin", root / "new.bin")
        bucket_store.refuse_copies(True)
        worker.buffer.add([Observed(Note.FILE_MOVED, "new.bin", "old.bin")])
        fake_clock.advance(3)
        _settle(worker, journal, fake_clock, wait_until)
        # The copy failed, so the change failed: its delete of the old name must not have run.
        assert bucket_store.objects() == {"old.bin": data}
        stats = journal.stats(worker.sync_id)
        assert stats.queue_depth == 1 and stats.last_errors, stats
        assert "copy refused" in stats.last_errors[0].message
        assert set(journal.synced_entries(worker.sync_id)) == {"old.bin"}

        bucket_store.refuse_copies(False)  # the service answers again: the retry completes the rename
        fake_clock.advance(10)
        _settle(worker, journal, fake_clock, wait_until)
        assert bucket_store.objects() == {"new.bin": data}
        assert set(journal.synced_entries(worker.sync_id)) == {"new.bin"}
    finally:
        worker.begin_stop()
        worker.finish_stop(10)
        journal.close()


def test_a_stop_between_a_renames_copy_and_its_delete_resumes_at_the_next_start(
    tmp_path: Path, fake_clock: Any, wait_until: Callable[..., object]
) -> None:
    """The service is told to stop while a rename's copy runs: the old object is not deleted in the
    shutdown, the change stays claimed, and the next start finishes it (copy verified, old name deleted).
    Guards the batch's 'deletes after a stop are interrupted, not dropped' branch."""
    root = tmp_path / "src"
    root.mkdir()
    store = MemoryStore("bkt", PREFIX)
    data = os.urandom(50_000)

    def new_worker(journal: Journal) -> SyncWorker:
        sync = SyncConfig(name="docs", source=root, target=Ks3Url("bkt", PREFIX), delete=True)
        worker = SyncWorker(
            sync,
            journal,
            store,
            TransferOptions(jobs=2),
            reconcile=lambda worker, stop: None,
            clock=fake_clock,
            watch=False,
            backoff=Backoff(base_ns=SECOND, cap_ns=8 * SECOND),
        )
        worker.start()
        return worker

    journal = Journal.open(tmp_path / "journal.db", clock=fake_clock)
    worker = new_worker(journal)
    try:
        (root / "old.bin").write_bytes(data)
        worker.buffer.add([Observed(Note.FILE_CHANGED, "old.bin")])
        fake_clock.advance(3)
        _settle(worker, journal, fake_clock, wait_until)
        os.rename(root / "old.bin", root / "new.bin")
        store.hook = lambda op, path: worker.begin_stop() if op == "copy" else None
        worker.buffer.add([Observed(Note.FILE_MOVED, "new.bin", "old.bin")])
        fake_clock.advance(3)
        worker.poke()
        worker.step()
        wait_until(lambda: worker._stop.is_set() and not worker.busy())
        assert worker.finish_stop(10)
    finally:
        store.hook = None
        worker.begin_stop()
        worker.finish_stop(10)
    assert set(Bucket(store, lambda on: None).objects()) == {"old.bin", "new.bin"}  # copied, not yet deleted
    assert journal.stats(worker.sync_id).in_flight == 1  # the change is still claimed: nothing was lost

    worker = new_worker(journal)  # the next start releases the claim and finishes the rename
    try:
        fake_clock.advance(3)
        _settle(worker, journal, fake_clock, wait_until)
        assert Bucket(store, lambda on: None).objects() == {"new.bin": data}
        assert set(journal.synced_entries(worker.sync_id)) == {"new.bin"}
    finally:
        worker.begin_stop()
        worker.finish_stop(10)
        journal.close()


# ------------------------------------------------------------------------------------------ from the
# mutation run of the delete selection (docs/mutation.md): each guards a line no test noticed changing


class _Rig:
    def __init__(
        self, tmp_path: Path, fake_clock: Any, wait_until: Callable[..., object], **sync_kw: Any
    ) -> None:
        self.root = tmp_path / "src"
        self.root.mkdir(exist_ok=True)
        self.store = MemoryStore("bkt", PREFIX)
        self.clock = fake_clock
        self.wait_until = wait_until
        self.journal = Journal.open(tmp_path / "journal.db", clock=fake_clock)
        self.sync = SyncConfig(
            name="docs", source=self.root, target=Ks3Url("bkt", PREFIX), **{"delete": True, **sync_kw}
        )
        self.worker = self.start()
        self.settle()  # the start-up reconcile

    def start(self) -> SyncWorker:
        worker = SyncWorker(
            self.sync,
            self.journal,
            self.store,
            TransferOptions(jobs=2, part_size=100 * 1024, multipart_threshold=256 * 1024),
            reconcile=lambda worker, stop: None,
            clock=self.clock,
            watch=False,
            backoff=Backoff(base_ns=SECOND, cap_ns=8 * SECOND, park_after=5),
        )
        worker.start()
        return worker

    def settle(self) -> None:
        _settle(self.worker, self.journal, self.clock, self.wait_until)

    def write(self, name: str, data: bytes) -> None:
        (self.root / name).write_bytes(data)
        self.worker.buffer.add([Observed(Note.FILE_CHANGED, name)])

    def objects(self) -> dict[str, bytes]:
        return Bucket(self.store, lambda on: None).objects()

    def close(self) -> None:
        self.store.hook = None
        self.worker.begin_stop()
        self.worker.finish_stop(10)


def test_a_stop_in_the_middle_of_an_upload_keeps_its_change_claimed(
    tmp_path: Path, fake_clock: Any, wait_until: Callable[..., object]
) -> None:
    """A transfer cut short by the service's stop is interrupted, not failed and not done: the change
    stays claimed (no attempt counted) and the next start sends the file."""
    rig = _Rig(tmp_path, fake_clock, wait_until)
    data = os.urandom(450 * 1024)
    try:
        rig.store.hook = lambda op, path: rig.worker.begin_stop() if op == "upload_part" else None
        rig.write("big.bin", data)
        fake_clock.advance(3)
        rig.worker.poke()
        rig.worker.step()
        wait_until(lambda: rig.worker._stop.is_set() and not rig.worker.busy())
        assert rig.worker.finish_stop(10)
        stats = rig.journal.stats(rig.worker.sync_id)
        assert (stats.in_flight, stats.queue_depth, stats.last_errors) == (1, 0, ()), stats
        assert "big.bin" not in rig.objects()
        rig.store.hook = None
        rig.worker = rig.start()
        fake_clock.advance(3)
        rig.settle()
        assert rig.objects() == {"big.bin": data}
    finally:
        rig.close()
        rig.journal.close()


def test_a_failed_delete_fails_its_change_which_is_retried(
    tmp_path: Path, fake_clock: Any, wait_until: Callable[..., object]
) -> None:
    """A delete KS3 refuses is that change's failure: retried later, never marked done with the object
    still there."""
    from ks3sync.config import MaxDelete

    # A delete that KS3 refused still used its share of max_delete: the retry needs room for another.
    rig = _Rig(tmp_path, fake_clock, wait_until, max_delete=MaxDelete(count=None, percent=100.0))
    try:
        rig.write("a.txt", b"a")
        rig.write("keep.txt", b"keep")  # an emptied source would hold every delete instead
        fake_clock.advance(3)
        rig.settle()
        (rig.root / "a.txt").unlink()
        rig.store.inject("delete", RemoteRejected("AccessDenied for this key (test)"), path="a.txt")
        rig.worker.buffer.add([Observed(Note.FILE_DELETED, "a.txt")])
        fake_clock.advance(3)
        rig.settle()
        assert set(rig.objects()) == {"a.txt", "keep.txt"}
        stats = rig.journal.stats(rig.worker.sync_id)
        assert stats.queue_depth == 1 and "AccessDenied" in stats.last_errors[0].message
        fake_clock.advance(10)
        rig.settle()
        assert set(rig.objects()) == {"keep.txt"} and set(rig.journal.synced_entries(rig.worker.sync_id)) == {
            "keep.txt"
        }
    finally:
        rig.close()
        rig.journal.close()


def test_a_source_emptied_during_the_batch_holds_its_deletes(
    tmp_path: Path, fake_clock: Any, wait_until: Callable[..., object]
) -> None:
    """The source is probed again right before a batch's deletes: emptied meanwhile (an unmount racing
    the batch), the deletes are held (retried later, not failed, not parked) and nothing is deleted."""
    from ks3sync.config import MaxDelete

    rig = _Rig(tmp_path, fake_clock, wait_until, max_delete=MaxDelete(count=None, percent=100.0))
    try:
        for name in ("a.txt", "b.txt"):
            rig.write(name, name.encode())
        fake_clock.advance(3)
        rig.settle()
        (rig.root / "a.txt").unlink()
        rig.worker.buffer.add([Observed(Note.FILE_DELETED, "a.txt")])
        fake_clock.advance(3)
        claim = rig.worker.batches._synced_for

        def emptied_after_the_step_probed(paths: set[str]) -> Any:
            # The batch starts after step() found the source healthy; now the last file goes.
            (rig.root / "b.txt").unlink(missing_ok=True)
            return claim(paths)

        rig.worker.batches._synced_for = emptied_after_the_step_probed  # type: ignore[method-assign]
        rig.worker.poke()
        rig.worker.step()
        wait_until(lambda: not rig.worker.busy() and rig.journal.stats(rig.worker.sync_id).in_flight == 0)
        assert set(rig.objects()) == {"a.txt", "b.txt"}
        stats = rig.journal.stats(rig.worker.sync_id)
        assert stats.queue_depth == 1 and stats.parked == 0
        assert stats.last_errors[0].message.startswith("delete held: "), stats.last_errors
        assert stats.next_due_ns is not None and stats.next_due_ns >= fake_clock.now + 10 * SECOND
        assert rig.worker.counters.held_deletes == 1
    finally:
        rig.close()
        rig.journal.close()


def test_a_rename_is_not_held_by_max_delete(
    tmp_path: Path, fake_clock: Any, wait_until: Callable[..., object]
) -> None:
    """max_delete budgets real deletions only: a rename's old name goes once its copy succeeded, even
    when the budget is used up."""
    from ks3sync.config import MaxDelete

    rig = _Rig(tmp_path, fake_clock, wait_until, max_delete=MaxDelete(count=1, percent=None))
    try:
        for name in ("a.txt", "b.txt", "c.txt"):
            rig.write(name, name.encode())
        fake_clock.advance(3)
        rig.settle()
        (rig.root / "a.txt").unlink()  # uses the budget of one
        rig.worker.buffer.add([Observed(Note.FILE_DELETED, "a.txt")])
        fake_clock.advance(3)
        rig.settle()
        os.rename(rig.root / "b.txt", rig.root / "d.txt")
        rig.worker.buffer.add([Observed(Note.FILE_MOVED, "d.txt", "b.txt")])
        fake_clock.advance(3)
        rig.settle()
        assert rig.objects() == {"c.txt": b"c.txt", "d.txt": b"b.txt"}
        assert rig.worker.counters.held_deletes == 0
    finally:
        rig.close()
        rig.journal.close()
