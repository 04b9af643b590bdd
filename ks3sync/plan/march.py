"""The march: every path seen on either side or in the journal, once, in UTF-8 byte order.

Python compares ``str`` by code point, and UTF-8 preserves code-point order, so ``sorted()`` on the
strings *is* UTF-8 byte order (the order KS3 lists keys in); no encoding is needed. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Protocol, TypeVar


class _HasPath(Protocol):
    @property
    def path(self) -> str: ...


E = TypeVar("E", bound=_HasPath)


def index_by_path(entries: Iterable[E]) -> dict[str, E]:
    """One entry per path. Listings never repeat a path; if a caller's does, the last one wins."""
    return {entry.path: entry for entry in entries}


def march(*sides: Mapping[str, object]) -> Iterator[str]:
    """Every path present in any of ``sides``, sorted."""
    paths: set[str] = set()
    for side in sides:
        paths.update(side)
    return iter(sorted(paths))
