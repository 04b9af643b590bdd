"""No delete under a path the scan could not read (plan.guard.withhold_deletes_under): an unreadable
folder must not look like an empty one."""

from __future__ import annotations

from ks3sync.model import DeleteRemote
from ks3sync.plan import withhold_deletes_under

from .helpers import remote


def deletes(*paths: str) -> tuple[DeleteRemote, ...]:
    return tuple(DeleteRemote(path, remote(path, b"x")) for path in paths)


def test_deletes_at_or_under_a_problem_path_are_withheld_and_counted() -> None:
    planned = deletes("a", "a/b", "a/b/c", "ab", "a-b", "z")
    kept, withheld = withhold_deletes_under(planned, ["a/"])
    assert [op.path for op in kept] == ["ab", "a-b", "z"]  # a sibling sharing the name's start stays
    assert withheld == 3


def test_a_problem_at_the_root_withholds_every_delete() -> None:
    kept, withheld = withhold_deletes_under(deletes("a", "b/c"), [""])
    assert kept == () and withheld == 2


def test_no_problem_keeps_every_delete() -> None:
    planned = deletes("a", "b")
    assert withhold_deletes_under(planned, []) == (planned, 0)
    assert withhold_deletes_under((), ["a"]) == ((), 0)
