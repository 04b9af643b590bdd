"""LocalTree: the restore's folders by descriptor (bounded cache, leases, pruning) and the guard that
keeps ks3sync's own state out of reach. The races themselves run end to end in
tests/security/test_restore_safety.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ks3sync.errors import LocalFileError, UnsafeKeyError
from ks3sync.model import DeleteLocal, Direction
from ks3sync.scan.filters import state_files
from ks3sync.store.memory import MemoryStore
from ks3sync.transfer import Executor, MemoryCheckpoint, TransferOptions
from ks3sync.transfer.localtree import LocalTree, remove_stale_temp_files


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_open_folders_are_bounded_and_all_closed_at_the_end(tmp_path: Path) -> None:
    before = _open_fds()
    tree = LocalTree(tmp_path, max_open=4)
    for i in range(20):
        with tree.folder([f"d{i}", "inner"], f"d{i}/inner/f", create=True) as folder:
            assert os.path.samestat(os.fstat(folder.fd), os.stat(tmp_path / f"d{i}" / "inner"))
        assert _open_fds() <= before + 4 + 1  # the cache's bound, plus the target folder itself
    tree.close()
    assert _open_fds() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"d{i}" for i in range(20))


def test_a_folder_in_use_is_not_closed_by_eviction_or_forget(tmp_path: Path) -> None:
    tree = LocalTree(tmp_path, max_open=1)
    try:
        with tree.folder(["held"], "held/f", create=True) as held:
            for i in range(5):
                with tree.folder([f"other{i}"], f"other{i}/f", create=True):
                    pass
            tree.forget("held")
            assert os.path.samestat(os.fstat(held.fd), os.stat(tmp_path / "held"))  # still open, same folder
        with pytest.raises(OSError):
            os.fstat(held.fd)  # closed once its lease ended
    finally:
        tree.close()


def test_a_file_or_a_symlink_on_the_way_is_refused_and_nothing_is_created(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"x")
    (tmp_path / "outside").mkdir()
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "file").write_bytes(b"x")
    (tmp_path / "root" / "link").symlink_to(tmp_path / "outside")
    (tmp_path / "root" / "dangling").symlink_to(tmp_path / "nowhere")
    tree = LocalTree(tmp_path / "root")
    try:
        with pytest.raises(LocalFileError, match="a parent of it exists locally as a file"):
            tree.folder(["file", "x"], "file/x/y", create=True).__enter__()
        for link in ("link", "dangling"):
            with pytest.raises(UnsafeKeyError, match=f"'{link}' is a symbolic link inside the target folder"):
                tree.folder([link, "new"], f"{link}/new/y", create=True).__enter__()
        with pytest.raises(FileNotFoundError):
            tree.folder(["missing"], "missing/y", create=False).__enter__()
    finally:
        tree.close()
    assert list((tmp_path / "outside").iterdir()) == [] and not (tmp_path / "nowhere").exists()
    assert not (tmp_path / "root" / "missing").exists()


def test_delete_prunes_the_folders_it_emptied_but_never_the_target(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "x").write_bytes(b"x")
    (tmp_path / "a" / "keep").write_bytes(b"k")
    (tmp_path / "top").write_bytes(b"t")
    tree = LocalTree(tmp_path)
    try:
        assert tree.delete(["a", "b"], "x", "a/b/x")
        assert not (tmp_path / "a" / "b").exists() and (tmp_path / "a" / "keep").exists()
        assert not tree.delete(["a", "b"], "x", "a/b/x")  # nothing left to delete
        assert tree.delete(["a"], "keep", "a/keep") and tree.delete([], "top", "top")
        assert tmp_path.is_dir() and list(tmp_path.iterdir()) == []
        # A folder deleted meanwhile is not used from the cache: it is made afresh.
        with tree.folder(["a", "b"], "a/b/y", create=True) as folder:
            assert os.path.samestat(os.fstat(folder.fd), os.stat(tmp_path / "a" / "b"))
    finally:
        tree.close()


def test_state_files_are_refused_through_any_path_that_leads_to_them(tmp_path: Path) -> None:
    """The journal, its companions and the state folder, by folder identity + name and by inode: through
    the target folder given as a symlink, through a hard link, existing or not yet."""
    real = tmp_path / "real"
    (real / "state").mkdir(parents=True)
    (real / "journal.db").write_bytes(b"journal")
    os.link(real / "journal.db", real / "hardlink")
    (tmp_path / "alias").symlink_to(real, target_is_directory=True)
    tree = LocalTree(tmp_path / "alias", state_files([real / "journal.db", real / "state"]))
    try:
        with tree.folder([], "x", create=False) as root:
            for name in ("journal.db", "journal.db-wal", "journal.db-journal", "journal.db.lock", "hardlink"):
                with pytest.raises(UnsafeKeyError, match="ks3sync's own state"):
                    tree.guard.check_entry(root, name, name)
            tree.guard.check_entry(root, "other.db", "other.db")  # anything else is fine
        with pytest.raises(UnsafeKeyError, match="ks3sync's own state"):
            tree.folder(["state"], "state/x", create=True).__enter__()
        with pytest.raises(UnsafeKeyError, match="ks3sync's own state"):
            tree.delete([], "journal.db", "journal.db")
    finally:
        tree.close()
    assert (real / "journal.db").read_bytes() == b"journal" and list((real / "state").iterdir()) == []


def test_delete_local_never_removes_state_files(tmp_path: Path) -> None:
    (tmp_path / "journal.db").write_bytes(b"journal")
    (tmp_path / "journal.db-wal").write_bytes(b"wal")
    (tmp_path / "gone.txt").write_bytes(b"x")
    options = TransferOptions(
        direction=Direction.DOWNLOAD, protected_paths=state_files([tmp_path / "journal.db"])
    )
    with Executor(MemoryStore(), MemoryCheckpoint(), tmp_path, options) as ex:
        report = ex.run(
            [], [DeleteLocal("journal.db"), DeleteLocal("journal.db-wal"), DeleteLocal("gone.txt")]
        )
    assert sorted(path for path, _ in report.failed) == ["journal.db", "journal.db-wal"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["journal.db", "journal.db-wal"]


def test_stale_temp_files_are_removed_without_entering_symlinked_folders(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (root / ".ks3sync-tmp-1").write_bytes(b"")
    (root / "sub" / ".ks3sync-tmp-2").write_bytes(b"")
    (root / "sub" / "keep").write_bytes(b"")
    (outside / ".ks3sync-tmp-3").write_bytes(b"")
    (root / "link").symlink_to(outside, target_is_directory=True)
    assert remove_stale_temp_files(root) == 2
    assert sorted(p.name for p in root.rglob("*")) == ["keep", "link", "sub"]
    assert (outside / ".ks3sync-tmp-3").exists()
