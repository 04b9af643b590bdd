"""A pass over a tree the journal knows to be large walks it in a child process (ks3sync.scan.worker):
the plan is the same, and a worker that fails stops the pass before anything is sent or deleted. Real
local-server over HTTP, real journal, real files; the size threshold is lowered to a few files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import ks3sync.engine.planning
import ks3sync.scan.worker
from ks3sync.engine.mirror import MirrorOptions, run_mirror
from ks3sync.errors import FatalError
from ks3sync.journal import Journal
from ks3sync.ks3 import Client
from ks3sync.model import Direction
from ks3sync.scan import ScanWorkerError
from ks3sync.store.ks3store import KS3Store
from tests.serverkit import ServerHandle, client_config


@pytest.fixture
def setup(
    tmp_path: Path, local_server: ServerHandle, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, KS3Store, Journal, list[int]]]:
    monkeypatch.setattr(ks3sync.engine.planning, "WORKER_SCAN_MIN_FILES", 5)
    walks: list[int] = []
    real = ks3sync.scan.worker.scan_tree_in_worker

    def counted(*args: Any, **kwargs: Any) -> Iterator[Any]:
        walks.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(ks3sync.scan.worker, "scan_tree_in_worker", counted)
    src = tmp_path / "src"
    for i in range(8):
        (src / f"d{i % 2}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 2}" / f"f{i}.txt").write_bytes(f"file {i}".encode() * 50)
    with Journal.open(tmp_path / "journal.db") as journal, Client(client_config(local_server)) as client:
        yield src, KS3Store(client, bucket, "w/"), journal, walks


def test_a_large_known_tree_is_walked_by_the_worker_with_the_same_outcome(
    setup: tuple[Path, KS3Store, Journal, list[int]],
) -> None:
    src, store, journal, walks = setup
    sync_id = journal.register_sync("worker", str(src), store.bucket, store.prefix, "h")
    first = run_mirror(store, journal, sync_id, src, Direction.UPLOAD, MirrorOptions(delete=True))
    assert first.ok and first.uploaded == 8
    assert walks == []  # an empty journal: the tree is walked in-process

    (src / "d0" / "f0.txt").write_bytes(b"changed")
    (src / "d1" / "f1.txt").unlink()
    (src / "d1" / "f3.txt").rename(src / "d1" / "renamed.txt")
    second = run_mirror(store, journal, sync_id, src, Direction.UPLOAD, MirrorOptions(delete=True))

    assert walks == [1]
    assert second.ok
    assert (second.uploaded, second.copied, second.deleted, second.skipped) == (1, 1, 2, 5)
    local = sorted(str(p.relative_to(src)) for p in src.rglob("*") if p.is_file())
    assert sorted(entry.path for entry in store.list()) == local


def test_a_failing_worker_stops_the_pass_before_any_transfer_or_delete(
    setup: tuple[Path, KS3Store, Journal, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    src, store, journal, walks = setup
    sync_id = journal.register_sync("worker", str(src), store.bucket, store.prefix, "h")
    assert (
        run_mirror(store, journal, sync_id, src, Direction.UPLOAD, MirrorOptions(delete=True)).uploaded == 8
    )
    (src / "d0" / "new.txt").write_bytes(b"new")
    before = sorted((e.path, e.etag) for e in store.list())
    real = ks3sync.scan.worker.scan_tree_in_worker

    def dies_after_two(*args: Any, **kwargs: Any) -> Iterator[Any]:
        stream = real(*args, **kwargs)
        try:
            yield next(stream)
            yield next(stream)
            raise ScanWorkerError("the scan worker stopped before finishing (exit status -9)")
        finally:
            stream.close()

    monkeypatch.setattr(ks3sync.scan.worker, "scan_tree_in_worker", dies_after_two)
    with pytest.raises(
        FatalError, match="scan worker stopped before finishing.*nothing was transferred or deleted"
    ):
        run_mirror(store, journal, sync_id, src, Direction.UPLOAD, MirrorOptions(delete=True))
    assert sorted((e.path, e.etag) for e in store.list()) == before  # six unlisted files were not deleted
