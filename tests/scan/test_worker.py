"""scan_tree_in_worker: a child process walks, and the parent sees exactly what scan_tree yields, the
same errors, and never a partial scan passed off as a complete one."""

from __future__ import annotations

import os
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ks3sync.model import LocalEntry
from ks3sync.scan import Filters, ScanProblem, ScanRootError, ScanWorkerError, scan_tree
from ks3sync.scan.worker import scan_tree_in_worker


def make(root: Path, *paths: str, content: bytes = b"x") -> None:
    for p in paths:
        target = root / p
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)


def awkward_tree(root: Path) -> dict[str, object]:
    """Files, every kind of problem the walk reports, and every rule source; returns the settings."""
    make(
        root,
        "a/b",
        "a-b",
        "a.b",
        "a/c/d.txt",
        "\u00e9t\u00e9/x",
        "skip/me",
        "keep.log",
        "drop.log",
        "ignored/inner",
        "deep/" + "n" * 200 + "/f",
        "state/journal.db",
        "empty",
    )
    (root / "empty").write_bytes(b"")
    (root / ".ks3ignore").write_text("drop.log\n")
    (root / os.fsdecode(b"bad\xffname")).write_bytes(b"x")
    os.mkfifo(root / "fifo")
    with tempfile.TemporaryDirectory(dir="/tmp") as short:  # socket paths are limited to ~108 bytes
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(os.path.join(short, "s"))
        os.rename(os.path.join(short, "s"), root / "sock")
        sock.close()
    (root / "link").symlink_to(root / "a")
    (root / "dangling").symlink_to(root / "nowhere")
    rules = root.parent / "rules.txt"
    rules.write_text("ignored/\n")
    return {"excludes": ("skip/",), "exclude_from": (rules,), "state_paths": (root / "state" / "journal.db",)}


def direct(root: Path, settings: dict[str, object], **kw: object) -> list[LocalEntry | ScanProblem]:
    filters = Filters.build(root, **settings)  # type: ignore[arg-type]
    return list(scan_tree(root, filters, **kw))  # type: ignore[arg-type]


@pytest.mark.parametrize("follow_symlinks", [False, True])
def test_the_worker_yields_exactly_what_scan_tree_yields(tmp_path: Path, follow_symlinks: bool) -> None:
    root = tmp_path / "root"
    settings = awkward_tree(root)
    expected = direct(root, settings, follow_symlinks=follow_symlinks, key_prefix="p" * 830)
    got = list(scan_tree_in_worker(root, follow_symlinks=follow_symlinks, key_prefix="p" * 830, **settings))  # type: ignore[arg-type]
    assert got == expected
    kinds = {item.kind for item in got if isinstance(item, ScanProblem)}
    assert {"name", "special", "too-long"} <= kinds  # the tree really exercises the problem records
    assert "drop.log" not in {item.path for item in got} and "keep.log" in {item.path for item in got}


def test_many_files_cross_several_frames_in_order(tmp_path: Path) -> None:
    for d in range(5):
        folder = tmp_path / f"d{d}"
        folder.mkdir()
        for f in range(700):
            (folder / f"f{f:04d}").write_bytes(b"")
    got = list(scan_tree_in_worker(tmp_path))
    assert len(got) == 3500
    assert got == direct(tmp_path, {})


def test_a_missing_root_is_the_same_error_as_in_process(tmp_path: Path) -> None:
    with pytest.raises(ScanRootError) as in_process:
        direct(tmp_path / "missing", {})
    with pytest.raises(ScanRootError) as in_worker:
        list(scan_tree_in_worker(tmp_path / "missing"))
    assert (in_worker.value.errno, str(in_worker.value)) == (in_process.value.errno, str(in_process.value))


def children_running_scan_worker() -> list[int]:
    """PIDs of this process's children that run the worker module."""
    found = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except FileNotFoundError:
                continue
            if b"ks3sync.scan.worker" in cmdline:
                found.append(int(pid))
    return found


@pytest.fixture
def big_tree(tmp_path: Path) -> Path:
    """More records than a pipe holds, so the child is still running when the test acts."""
    for d in range(3):  # ~270 kB of records: several times a pipe's 64 kB plus both ends' buffers
        folder = tmp_path / f"d{d}"
        folder.mkdir()
        for f in range(2000):
            (folder / f"file-with-a-longish-name-{f:05d}").write_bytes(b"")
    return tmp_path


def first_item_and_worker(stream: Iterator[LocalEntry | ScanProblem]) -> int:
    next(stream)
    workers = children_running_scan_worker()
    assert len(workers) == 1
    return workers[0]


def wait_gone(pid: int) -> bool:
    for _ in range(200):  # bounded: 10 s
        if not Path(f"/proc/{pid}").exists():
            return True
        time.sleep(0.05)
    return False


def test_a_worker_that_dies_midway_is_a_failed_scan_not_a_short_one(big_tree: Path) -> None:
    stream = scan_tree_in_worker(big_tree)
    pid = first_item_and_worker(stream)
    os.kill(pid, 9)
    with pytest.raises(ScanWorkerError, match="stopped before finishing"):
        for _ in stream:
            pass


def test_closing_the_stream_early_stops_the_worker(big_tree: Path) -> None:
    stream = scan_tree_in_worker(big_tree)
    pid = first_item_and_worker(stream)
    stream.close()
    assert wait_gone(pid)
    assert children_running_scan_worker() == []


def test_a_failure_inside_the_worker_is_reported(tmp_path: Path) -> None:
    make(tmp_path, "a")
    # A rule file that vanished between the parent's check and the child's build: the child says why.
    with pytest.raises(ScanWorkerError, match="the scan worker failed: FiltersError: --exclude-from"):
        list(scan_tree_in_worker(tmp_path, exclude_from=(tmp_path / "gone.txt",)))


def test_the_worker_walks_without_rules_like_scan_tree(tmp_path: Path) -> None:
    root = tmp_path / "root"
    settings = awkward_tree(root)
    filters = Filters.build(root, **settings).without_rules()  # type: ignore[arg-type]
    expected = list(scan_tree(root, filters))
    got = list(scan_tree_in_worker(root, rules=False, **settings))  # type: ignore[arg-type]
    assert got == expected
    paths = {item.path for item in got}
    assert {"drop.log", "skip/me", "ignored/inner"} <= paths  # excluded, but seen
    assert "state/journal.db" not in paths  # ks3sync's own file: never
