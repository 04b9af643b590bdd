"""run_mirror(stop=...): a caller's event (the daemon's SIGTERM) ends a pass early and cleanly — nothing new
starts, parts already sending finish and are checkpointed, deletes do not run, the result says ``stopped``,
and the next pass finishes the job (resuming the multipart upload). Run against MemoryStore and against
KS3Store over HTTP to a real local-server."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ks3sync.engine.mirror import MirrorOptions, run_mirror
from ks3sync.model import Direction
from ks3sync.store.base import Store, WriteOptions
from ks3sync.store.memory import MemoryStore
from ks3sync.transfer import NullProgress, TransferOptions
from ks3sync.transfer.bodies import MemoryBody
from ks3sync.transfer.checkpoint import MemoryJournal
from ks3sync.transfer.executor import STOP_REQUESTED
from tests.serverkit import client_config

KIB = 1024
PART = 100 * KIB


@pytest.fixture(params=["memory", "ks3"])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    if request.param == "memory":
        yield MemoryStore(prefix="s/")
        return
    from ks3sync.ks3 import Client
    from ks3sync.store.ks3store import KS3Store

    server = request.getfixturevalue("local_server")
    bucket = request.getfixturevalue("bucket")
    with Client(client_config(server)) as client:
        yield KS3Store(client, bucket, "s/")


class StopAfter(NullProgress):
    """Sets ``stop`` when the first bytes move (called on the worker sending them)."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop

    def bytes_moved(self, n: int) -> None:
        self.stop.set()


def options(**kw: object) -> MirrorOptions:
    transfer = TransferOptions(jobs=1, part_size=PART, multipart_threshold=2 * PART)
    return MirrorOptions(transfer=transfer, **kw)  # type: ignore[arg-type]


def remote_paths(store: Store) -> set[str]:
    return {entry.path for entry in store.list()}


def test_stop_during_the_first_entry_starts_nothing_new_and_runs_no_deletes(
    tmp_path: Path, store: Store
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in "abcde":
        (src / f"{name}.txt").write_bytes(name.encode() * 100)
    store.put("gone.txt", MemoryBody(b"only remote"), WriteOptions())
    journal = MemoryJournal()
    stop = threading.Event()

    # Set while the first file is being sent (on the one file worker): that file finishes, no other starts.
    result = run_mirror(
        store, journal, 1, src, Direction.UPLOAD, options(delete=True), stop=stop, progress=StopAfter(stop)
    )

    assert result.stopped == STOP_REQUESTED and not result.ok
    assert result.uploaded == 1 and result.deleted == 0
    assert remote_paths(store) - {"gone.txt"} == set(journal.cp.synced_entries)  # uploaded == recorded
    assert len(result.failed) == 4 and all("not attempted" in message for _, message in result.failed)
    assert "gone.txt" in remote_paths(store)  # deletes never run in a stopped pass
    assert journal.passes and getattr(journal.passes[-1], "error", None) == STOP_REQUESTED

    again = run_mirror(store, journal, 1, src, Direction.UPLOAD, options(delete=True))
    assert again.ok and again.uploaded == 4 and again.deleted == 1
    assert remote_paths(store) == {f"{name}.txt" for name in "abcde"}


def test_stop_mid_multipart_checkpoints_sent_parts_and_the_next_pass_resumes(
    tmp_path: Path, store: Store
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    data = os.urandom(10 * PART)
    (src / "big.bin").write_bytes(data)
    journal = MemoryJournal()
    stop = threading.Event()

    result = run_mirror(
        store, journal, 1, src, Direction.UPLOAD, options(), stop=stop, progress=StopAfter(stop)
    )

    assert result.stopped == STOP_REQUESTED and result.uploaded == 0
    assert "big.bin" not in remote_paths(store)
    (record,) = journal.cp.known_uploads()
    on_server = store.list_parts("big.bin", record.upload_id)
    # The part that was sending (on the one part worker) finished and was recorded; no part started after.
    assert len(on_server) == 1
    assert sorted(p.part_number for p in on_server) == sorted(p.part_number for p in record.parts)

    again = run_mirror(store, journal, 1, src, Direction.UPLOAD, options())
    assert again.ok and again.uploaded == 1
    assert again.bytes_sent == len(data) - sum(p.size for p in on_server)  # only the missing parts
    with store.open("big.bin") as reader:
        assert b"".join(reader.iter_bytes()) == data
    assert not journal.cp.known_uploads()


def test_stop_set_before_the_pass_executes_nothing(tmp_path: Path, store: Store) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"a")
    journal = MemoryJournal()
    stop = threading.Event()
    stop.set()
    result = run_mirror(store, journal, 1, src, Direction.UPLOAD, options(), stop=stop)
    assert result.stopped == STOP_REQUESTED and result.uploaded == 0
    assert remote_paths(store) == set() and not journal.passes
