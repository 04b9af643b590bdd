"""The march: three path-sorted streams (local files, remote objects, journal records) walked side by
side, one step per path, without holding any of them.

Every stream must come in strictly increasing path order. Python compares ``str`` by code point, and
UTF-8 preserves code-point order, so ``<`` on the strings *is* UTF-8 byte order: the order of the scan,
of KS3 listings and of the journal's ``ORDER BY path``. A stream out of order (or repeating a path)
stops the march with :class:`OutOfOrderError`: a sorting bug upstream must never turn into uploads of
files that exist or deletes of objects that do not look listed.

Pure: imports only ``ks3sync.model`` and ``ks3sync.errors``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Protocol, TypeVar

from ks3sync.errors import FatalError
from ks3sync.model import LocalEntry, RemoteEntry, SyncedEntry


class OutOfOrderError(FatalError):
    """A stream handed to the march was not in strictly increasing path order. The pass stops before
    anything is transferred or deleted."""


class _HasPath(Protocol):
    @property
    def path(self) -> str: ...


E = TypeVar("E", bound=_HasPath)


def _after(entries: Iterator[E], previous: str | None, side: str) -> tuple[E | None, str | None]:
    """The next entry of a stream and its path (``None, None`` at the end), checked to come after
    ``previous`` (``None``: the first entry)."""
    entry = next(entries, None)
    if entry is None:
        return None, None
    path = entry.path
    if previous is not None and not previous < path:
        raise OutOfOrderError(
            f"the {side} came out of order ({path!r} after {previous!r}); nothing was transferred or deleted"
        )
    return entry, path


Step = tuple[str, LocalEntry | None, RemoteEntry | None, SyncedEntry | None]


def march(
    local: Iterable[LocalEntry], remote: Iterable[RemoteEntry], records: Iterable[SyncedEntry]
) -> Iterator[Step]:
    """``(path, local entry, remote entry, journal record)`` for every path present in any stream, in
    order; absent sides are ``None``. Streams are read lazily, one entry ahead."""
    # Written out per side (no per-step objects or method calls): this loop runs once per file.
    loc_it, rem_it, rec_it = iter(local), iter(remote), iter(records)
    loc, lp = _after(loc_it, None, "local scan")
    rem, rp = _after(rem_it, None, "remote listing")
    rec, sp = _after(rec_it, None, "journal")
    while True:
        path = lp
        if rp is not None and (path is None or rp < path):
            path = rp
        if sp is not None and (path is None or sp < path):
            path = sp
        if path is None:
            return
        here_loc = here_rem = here_rec = None
        if lp == path:
            here_loc = loc
            loc, lp = _after(loc_it, path, "local scan")
        if rp == path:
            here_rem = rem
            rem, rp = _after(rem_it, path, "remote listing")
        if sp == path:
            here_rec = rec
            rec, sp = _after(rec_it, path, "journal")
        yield path, here_loc, here_rem, here_rec


def sorted_records(records: Mapping[str, SyncedEntry] | Iterable[SyncedEntry]) -> list[SyncedEntry]:
    """A map's (path -> record) or a list's records in march order (for callers that hold them all:
    tests, small tools)."""
    entries = records.values() if isinstance(records, Mapping) else records
    return sorted(entries, key=lambda rec: rec.path)
