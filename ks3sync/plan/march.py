"""The march: three path-sorted streams (local files, remote objects, journal records) walked side by
side, one step per path, without holding any of them.

Every stream must come in strictly increasing path order. Python compares ``str`` by code point, and
UTF-8 preserves code-point order, so ``<`` on the strings *is* UTF-8 byte order: the order of the scan,
of KS3 listings and of the journal's ``ORDER BY path``. A stream out of order (or repeating a path)
stops the march with :class:`OutOfOrderError`: a sorting bug upstream must never turn into uploads of
files that exist or deletes of objects that do not look listed.

Pure: imports only ``ks3sync.model`` and ``ks3sync.errors``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Generic, Protocol, TypeVar

from ks3sync.errors import FatalError
from ks3sync.model import LocalEntry, RemoteEntry, SyncedEntry


class OutOfOrderError(FatalError):
    """A stream handed to the march was not in strictly increasing path order. The pass stops before
    anything is transferred or deleted."""


class _HasPath(Protocol):
    @property
    def path(self) -> str: ...


E = TypeVar("E", bound=_HasPath)


class _Side(Generic[E]):
    """One stream and its current head. ``path`` is ``None`` once the stream is exhausted."""

    __slots__ = ("_entries", "head", "name", "path")

    def __init__(self, name: str, entries: Iterable[E]) -> None:
        self.name = name
        self._entries = iter(entries)
        self.head: E | None = None
        self.path: str | None = None
        self._advance()

    def _advance(self) -> None:
        previous = self.path
        self.head = next(self._entries, None)
        if self.head is None:
            self.path = None
            return
        self.path = self.head.path
        if previous is not None and not previous < self.path:
            raise OutOfOrderError(
                f"the {self.name} came out of order ({self.path!r} after {previous!r}); "
                "nothing was transferred or deleted"
            )

    def take(self, path: str) -> E | None:
        """The head if it is at ``path`` (and move on), else ``None``."""
        if self.path != path:
            return None
        head = self.head
        self._advance()
        return head


Step = tuple[str, LocalEntry | None, RemoteEntry | None, SyncedEntry | None]


def march(
    local: Iterable[LocalEntry], remote: Iterable[RemoteEntry], records: Iterable[SyncedEntry]
) -> Iterator[Step]:
    """``(path, local entry, remote entry, journal record)`` for every path present in any stream, in
    order; absent sides are ``None``. Streams are read lazily, one entry ahead."""
    loc_side = _Side("local scan", local)
    rem_side = _Side("remote listing", remote)
    rec_side = _Side("journal", records)
    while True:
        lp, rp, sp = loc_side.path, rem_side.path, rec_side.path
        # The smallest head path; written out because this loop runs once per file of the sync.
        path = lp
        if rp is not None and (path is None or rp < path):
            path = rp
        if sp is not None and (path is None or sp < path):
            path = sp
        if path is None:
            return
        yield path, loc_side.take(path), rem_side.take(path), rec_side.take(path)


def sorted_records(records: Iterable[SyncedEntry]) -> list[SyncedEntry]:
    """A map's or a list's records in march order (for callers that hold them all: tests, small tools)."""
    return sorted(records, key=lambda rec: rec.path)
