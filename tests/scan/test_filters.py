"""Exclusion rules: --exclude, --exclude-from, hierarchical .ks3ignore, ks3sync's own files."""

from __future__ import annotations

from pathlib import Path

import pytest

from ks3sync.model import Exclusion, LocalEntry
from ks3sync.scan import Filters, FiltersError, scan_tree


def files(root: Path, filters: Filters) -> list[str]:
    return [i.path for i in scan_tree(root, filters) if isinstance(i, LocalEntry)]


def make(root: Path, *paths: str) -> None:
    for p in paths:
        (root / p).parent.mkdir(parents=True, exist_ok=True)
        (root / p).write_bytes(b"x")


TREE = [
    "a.log",
    "keep.log",
    "src/main.py",
    "src/cache.pyc",
    "build/out.bin",
    "src/build/gen.py",
    "docs/x.tmp",
    "docs/deep/y.tmp",
    "notes.txt",
    "sub/local.txt",
    "sub/other.txt",
    "sub/inner/z.txt",
]


def test_exclude_patterns_use_gitignore_syntax(tmp_path: Path) -> None:
    make(tmp_path, *TREE)
    f = Filters.build(tmp_path, excludes=["*.log", "!keep.log", "build/", "docs/**/*.tmp", "/notes.txt"])
    assert files(tmp_path, f) == [
        "keep.log",
        "src/cache.pyc",
        "src/main.py",
        "sub/inner/z.txt",
        "sub/local.txt",
        "sub/other.txt",
    ]


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
    make(
        tmp_path,
        "data.txt",
        ".ks3sync-tmp-abc123",
        "sub/.ks3sync-tmp-x",
        "state/journal.db",
        "state/journal.db-wal",
        "j.db",
        "j.db-wal",
        "j.db-shm",
    )
    f = Filters.build(tmp_path, state_paths=[tmp_path / "state", tmp_path / "j.db", Path("/elsewhere/j.db")])
    assert files(tmp_path, f) == ["data.txt"]
    assert (
        f.is_excluded("state/journal.db") and f.is_excluded("j.db-wal") and f.is_excluded("x/.ks3sync-tmp-1")
    )
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


def test_remote_keys_are_judged_by_the_same_rules_as_the_walk(tmp_path: Path) -> None:
    make(tmp_path, *TREE)
    (tmp_path / "sub" / ".ks3ignore").write_text("local.txt\n/inner/\n")
    f = Filters.build(tmp_path, excludes=["*.log", "!keep.log", "build/", "docs/**/*.tmp", "/notes.txt"])
    walked = set(files(tmp_path, f))
    for path in TREE:  # a key names what a file of that path would: the verdicts agree with the walk
        assert f.exclusion(path) is (Exclusion.INCLUDED if path in walked else Exclusion.EXCLUDED), path
    # keys with no local file: the local .ks3ignore of their folder still protects them
    assert f.exclusion("sub/local.txt") is Exclusion.EXCLUDED
    assert f.exclusion("sub/inner/only-remote.bin") is Exclusion.EXCLUDED
    assert f.exclusion("elsewhere/build/x") is Exclusion.EXCLUDED  # a folder pattern matches any depth
    assert f.exclusion("build") is Exclusion.INCLUDED  # "build/" matches folders, and this key is a file
    assert f.exclusion("build/") is Exclusion.EXCLUDED  # a folder placeholder is judged as that folder
    assert f.exclusion("keep.log") is Exclusion.INCLUDED and f.exclusion("x/keep.log") is Exclusion.INCLUDED


def test_own_files_are_excluded_keys_and_unreadable_rules_protect(tmp_path: Path) -> None:
    make(tmp_path, "state/journal.db", "sub/a.txt")
    f = Filters.build(tmp_path, state_paths=[tmp_path / "state"])
    # ks3sync's state: never fetched over our journal, and a restore reports such keys (D9)
    assert f.exclusion("state/journal.db") is Exclusion.OWN
    assert f.exclusion("state/") is Exclusion.OWN and f.exclusion("state") is Exclusion.OWN
    assert f.exclusion("x/.ks3sync-tmp-abc") is Exclusion.EXCLUDED  # a restore's temp file: just excluded
    assert f.exclusion("statement") is Exclusion.INCLUDED
    # ... unless the user's rules exclude them as well: then they are left out in silence like the rest
    ruled = Filters.build(tmp_path, ["state/j*"], state_paths=[tmp_path / "state"])
    assert (
        ruled.exclusion("state/journal.db") is Exclusion.EXCLUDED
        and ruled.exclusion("state/x") is Exclusion.OWN
    )
    assert f.unreadable_ignore_files() == []
    (tmp_path / "sub" / ".ks3ignore").write_bytes(b"\xff\xfe not utf-8\n")
    assert f.exclusion("sub/a.txt") is Exclusion.PROTECTED  # the rules might exclude it: leave it alone
    assert f.exclusion("other.txt") is Exclusion.INCLUDED
    assert [path for path, _ in f.unreadable_ignore_files()] == ["sub/.ks3ignore"]


def test_keys_that_are_no_local_path_never_read_rules_outside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    make(root, "a.txt")
    (tmp_path / ".ks3ignore").write_text("*\n")  # outside the root: must never apply
    (root / "d").mkdir()
    (root / "d" / ".ks3ignore").write_text("*\n")
    f = Filters.build(root, excludes=["*.log"])
    for key in ("../x.txt", "../../x.txt", "a//b.txt", "./x.txt", "nul\x00/x.txt"):
        assert f.exclusion(key) is Exclusion.INCLUDED, key
    assert f.exclusion("../x.log") is Exclusion.EXCLUDED  # the command line's rules still apply
    assert f.exclusion("d/x.txt") is Exclusion.EXCLUDED
    assert f.exclusion("d/../x.txt") is Exclusion.EXCLUDED  # lexically under d/, whose rules are inside


def test_a_walk_without_rules_sees_excluded_files_but_never_own_ones(tmp_path: Path) -> None:
    make(tmp_path, "a.log", "b.txt", "build/x.o", "state/journal.db", "c/.ks3sync-tmp-1")
    (tmp_path / ".ks3ignore").write_text("b.txt\n")
    f = Filters.build(tmp_path, excludes=["*.log", "build/"], state_paths=[tmp_path / "state"])
    assert files(tmp_path, f) == [".ks3ignore"]
    assert files(tmp_path, f.without_rules()) == [".ks3ignore", "a.log", "b.txt", "build/x.o"]
    assert f.exclusion("b.txt") is Exclusion.EXCLUDED  # the rules still judge each path
