"""Exclusion rules: --exclude, --exclude-from, hierarchical .ks3ignore, ks3sync's own files."""

from __future__ import annotations

from pathlib import Path

import pytest

from ks3sync.model import LocalEntry
from ks3sync.scan import Filters, FiltersError, scan_tree


def files(root: Path, filters: Filters) -> list[str]:
    return [i.path for i in scan_tree(root, filters) if isinstance(i, LocalEntry)]


def make(root: Path, *paths: str) -> None:
    for p in paths:
        (root / p).parent.mkdir(parents=True, exist_ok=True)
        (root / p).write_bytes(b"x")


TREE = [
    "a.log", "keep.log", "src/main.py", "src/cache.pyc", "build/out.bin", "src/build/gen.py",
    "docs/x.tmp", "docs/deep/y.tmp", "notes.txt", "sub/local.txt", "sub/other.txt", "sub/inner/z.txt",
]


def test_exclude_patterns_use_gitignore_syntax(tmp_path: Path) -> None:
    make(tmp_path, *TREE)
    f = Filters.build(tmp_path, excludes=["*.log", "!keep.log", "build/", "docs/**/*.tmp", "/notes.txt"])
    assert files(tmp_path, f) == [
        "keep.log", "src/cache.pyc", "src/main.py", "sub/inner/z.txt", "sub/local.txt", "sub/other.txt"]


def test_ks3ignore_files_apply_to_their_folder_and_below(tmp_path: Path) -> None:
    make(tmp_path, *TREE)
    (tmp_path / ".ks3ignore").write_text("# comments and blank lines are fine\n\n*.pyc\nsub/\n!sub/\n")
    (tmp_path / "sub" / ".ks3ignore").write_text("local.txt\n/inner/\n")
    (tmp_path / "src" / ".ks3ignore").write_text("*.py\n!main.py\n")
    f = Filters.build(tmp_path)
    got = files(tmp_path, f)
    assert "src/cache.pyc" not in got and "src/build/gen.py" not in got and "src/main.py" in got
    assert "sub/local.txt" not in got and "sub/inner/z.txt" not in got and "sub/other.txt" in got
    assert ".ks3ignore" in got and "sub/.ks3ignore" in got  # the rules travel with the folder
    # the watcher's single-path check agrees with the walk, for every file in the tree
    for path in TREE:
        assert f.is_excluded(path) == (path not in got), path


def test_command_line_beats_ignore_files(tmp_path: Path) -> None:
    make(tmp_path, "a.log", "b.log")
    (tmp_path / ".ks3ignore").write_text("!a.log\n")
    excl = tmp_path.parent / f"{tmp_path.name}-excludes.txt"
    excl.write_text("*.log\n")
    f = Filters.build(tmp_path, exclude_from=[excl])
    assert files(tmp_path, f) == [".ks3ignore"]
    f = Filters.build(tmp_path, excludes=["!b.log"], exclude_from=[excl])
    assert files(tmp_path, f) == [".ks3ignore", "b.log"]


def test_own_files_are_always_excluded(tmp_path: Path) -> None:
    make(tmp_path, "data.txt", ".ks3sync-tmp-abc123", "sub/.ks3sync-tmp-x", "state/journal.db",
         "state/journal.db-wal", "j.db", "j.db-wal", "j.db-shm")
    f = Filters.build(tmp_path, state_paths=[tmp_path / "state", tmp_path / "j.db", Path("/elsewhere/j.db")])
    assert files(tmp_path, f) == ["data.txt"]
    assert f.is_excluded("state/journal.db") and f.is_excluded("j.db-wal") and f.is_excluded("x/.ks3sync-tmp-1")
    assert not f.is_excluded("data.txt")


def test_excluded_folder_cannot_be_reincluded_from_inside(tmp_path: Path) -> None:
    make(tmp_path, "build/keep.txt", "build/drop.txt")
    (tmp_path / "build" / ".ks3ignore").write_text("!keep.txt\n")
    f = Filters.build(tmp_path, excludes=["build/"])
    assert files(tmp_path, f) == []
    assert f.is_excluded("build/keep.txt")


def test_bad_rule_sources_are_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(FiltersError, match=r"--exclude-from .*missing\.txt: no such file"):
        Filters.build(tmp_path, exclude_from=[tmp_path / "missing.txt"])
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes(b"caf\xe9\n")
    with pytest.raises(FiltersError, match="not UTF-8"):
        Filters.build(tmp_path, exclude_from=[latin1])


def test_unreadable_ignore_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    make(tmp_path, "sub/a.txt")
    (tmp_path / "sub" / ".ks3ignore").write_bytes(b"\xff\xfe not utf-8\n")
    items = list(scan_tree(tmp_path, Filters.build(tmp_path)))
    paths = [getattr(i, "path", None) for i in items]
    assert "sub/a.txt" in paths
    problems = [i for i in items if not isinstance(i, LocalEntry)]
    assert [(p.path, p.kind) for p in problems] == [("sub/.ks3ignore", "ignore-file")]
