"""FolderSyncer: concurrent renames into one folder share fsyncs, and nobody returns before a fsync
that began after their rename has finished. WritebackAhead: each step of a large file is handed to the
disk once, after the file's buffer was emptied."""

from __future__ import annotations

import itertools
import os
import threading
import time
from pathlib import Path

import pytest

from ks3sync.transfer.durable import FolderSyncer, WritebackAhead
from ks3sync.transfer.localtree import LocalTree, sync_folder
from tests.threadkit import run_together


class SlowFsync:
    """Stands in for fsync_dir: records when each call starts and ends on one shared clock."""

    def __init__(self, fail_calls: frozenset[int] = frozenset()) -> None:
        self.clock = itertools.count()
        self.lock = threading.Lock()
        self.calls: list[tuple[Path, int, int]] = []
        self.fail_calls = fail_calls

    def tick(self) -> int:
        with self.lock:
            return next(self.clock)

    def __call__(self, folder: Path) -> None:
        start = self.tick()
        time.sleep(0.01)
        with self.lock:
            number = len(self.calls) + 1
            self.calls.append((folder, start, next(self.clock)))
        if number in self.fail_calls:
            raise OSError(5, "Input/output error (simulated)")


def _hammer(syncer: FolderSyncer, fsync: SlowFsync, folders: list[Path], per_thread: int):
    """One thread per entry of ``folders``, each renaming into its folder ``per_thread`` times; returns
    (for each successful call, whether an fsync of its folder began after it and ended before it
    returned; the errors raised)."""
    covered: list[bool] = []
    errors: list[BaseException] = []

    def work(index: int) -> None:
        folder = folders[index]
        for _ in range(per_thread):
            renamed_at = fsync.tick()
            try:
                syncer.renamed_into(folder)
            except OSError as exc:
                errors.append(exc)
                continue
            returned_at = fsync.tick()
            covered.append(any(f == folder and renamed_at < s and e < returned_at for f, s, e in fsync.calls))

    assert run_together(len(folders), work) == []
    return covered, errors


def test_renames_into_one_folder_share_fsyncs_and_each_is_covered(tmp_path: Path) -> None:
    fsync = SlowFsync()
    covered, errors = _hammer(FolderSyncer(fsync), fsync, [tmp_path] * 8, per_thread=5)
    assert errors == [] and len(covered) == 40 and all(covered)
    assert len(fsync.calls) < 40  # one per rename without sharing


def test_folders_are_synced_apart(tmp_path: Path) -> None:
    fsync = SlowFsync()
    folders = [tmp_path / "a", tmp_path / "b"]
    covered, errors = _hammer(FolderSyncer(fsync), fsync, folders, per_thread=3)
    assert errors == [] and all(covered) and len(covered) == 6
    assert {f for f, _, _ in fsync.calls} == set(folders)


@pytest.mark.parametrize("failing", [1, 2])
def test_a_failed_fsync_fails_its_caller_and_the_others_sync_again(tmp_path: Path, failing: int) -> None:
    fsync = SlowFsync(fail_calls=frozenset({failing}))
    covered, errors = _hammer(FolderSyncer(fsync), fsync, [tmp_path] * 6, per_thread=1)
    assert len(errors) == 1 and len(covered) == 5 and all(covered)


def test_the_real_fsync_runs_on_a_real_folder(tmp_path: Path) -> None:
    """A restore's folders: two descriptors of one folder are one folder to the syncer."""
    (tmp_path / "d").mkdir()
    first, second = LocalTree(tmp_path), LocalTree(tmp_path)
    try:
        with first.folder(["d"], "d/f", create=False) as a, second.folder(["d"], "d/f", create=False) as b:
            assert a.fd != b.fd and a == b and hash(a) == hash(b)
            calls: list[int] = []
            syncer = FolderSyncer(lambda folder: (calls.append(folder.fd), sync_folder(folder)))
            syncer.renamed_into(a)
            syncer.renamed_into(b)
            assert calls == [a.fd, b.fd] and syncer._folders == {}
    finally:
        first.close()
        second.close()


def test_settled_folders_are_forgotten(tmp_path: Path) -> None:
    fsync = SlowFsync()
    syncer = FolderSyncer(fsync)
    covered, errors = _hammer(syncer, fsync, [tmp_path / "a", tmp_path / "b"] * 3, per_thread=2)
    assert errors == [] and all(covered)
    assert syncer._folders == {}


def test_writeback_ahead_hands_each_step_to_the_disk_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    advised: list[tuple[int, int, int]] = []
    monkeypatch.setattr(
        os, "posix_fadvise", lambda fd, offset, length, advice: advised.append((offset, length, advice))
    )
    with open(tmp_path / "f", "wb") as out:
        flushes = []
        ahead = WritebackAhead(out.fileno(), lambda: flushes.append(out.flush()), step=1000)
        written = 0
        for size in (600, 600, 300, 900, 50):
            out.write(b"x" * size)
            written += size
            ahead.wrote(written)
    # 1,200 bytes written: the first 1,200 go; 2,400: the next 1,200; the last 50 stay (the fsync's).
    assert advised == [(0, 1200, os.POSIX_FADV_DONTNEED), (1200, 1200, os.POSIX_FADV_DONTNEED)]
    assert len(flushes) == 2  # the buffer is emptied before each, so the kernel sees the bytes
    assert (tmp_path / "f").stat().st_size == 2450
