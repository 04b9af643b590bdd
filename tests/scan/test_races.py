"""The tree changing under a running walk, made deterministic: the scan is a generator that lists a
folder when it enters it and stats each entry when it reaches it, so the test deletes or replaces
entries between two steps of the walk. Real files, no mocks."""

from __future__ import annotations

import shutil
from pathlib import Path

from ks3sync.model import LocalEntry
from ks3sync.scan import Filters, ScanProblem, scan_tree


def make(root: Path, *paths: str) -> None:
    for rel in paths:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rel.encode())


def test_a_file_deleted_after_its_folder_was_listed_is_simply_absent(tmp_path: Path) -> None:
    make(tmp_path, "a/1", "a/2", "a/3", "b/1")
    walk = scan_tree(tmp_path, Filters.build(tmp_path))
    first = next(walk)
    assert isinstance(first, LocalEntry) and first.path == "a/1"  # "a/" is listed now
    (tmp_path / "a" / "2").unlink()
    rest = list(walk)
    assert [i.path for i in rest] == ["a/3", "b/1"]
    assert not [i for i in rest if isinstance(i, ScanProblem)], "a vanished file is not a problem"


def test_a_folder_deleted_before_the_walk_enters_it_is_a_problem_not_an_empty_folder(tmp_path: Path) -> None:
    make(tmp_path, "a/1", "b/1", "b/2", "c/1")
    walk = scan_tree(tmp_path, Filters.build(tmp_path))
    assert next(walk).path == "a/1"
    shutil.rmtree(tmp_path / "b")
    rest = list(walk)
    problems = [i for i in rest if isinstance(i, ScanProblem)]
    # Reported (so the mirror withholds deletes under it), not silently treated as empty.
    assert [(p.path, p.kind) for p in problems] == [("b", "vanished")]
    assert [i.path for i in rest if isinstance(i, LocalEntry)] == ["c/1"]


def test_a_file_replaced_by_a_folder_mid_walk_is_not_reported_as_a_file(tmp_path: Path) -> None:
    make(tmp_path, "a/1", "a/2", "a/3")
    walk = scan_tree(tmp_path, Filters.build(tmp_path))
    assert next(walk).path == "a/1"
    (tmp_path / "a" / "2").unlink()
    (tmp_path / "a" / "2").mkdir()
    rest = list(walk)
    assert [i.path for i in rest if isinstance(i, LocalEntry)] == ["a/3"]
    assert [(p.path, p.kind) for p in rest if isinstance(p, ScanProblem)] == [("a/2", "special")]
