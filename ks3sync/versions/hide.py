"""The target's listing without ks3sync's own sub-prefixes (docs/versions.md §1): the versions area is
never counted, overwritten, deleted, copied from or downloaded as if it were the user's data.

The listing is not filtered object by object through the area: when it reaches an area, a new listing
starts after it (one more LIST request instead of reading every version page by page).

Imports the store protocol and model only.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator

from ks3sync.model import RemoteEntry
from ks3sync.store.base import Store
from ks3sync.versions.layout import DEFAULT_PREFIX

# The greatest code point: every key under an area that fits KS3's 1,024 bytes, except absurd ones made
# of it, sorts before "<area>" + this. Those few are still recognised and skipped one by one.
_AFTER_ALL = "\U0010ffff"


def reserved_prefixes(configured: str | None = None) -> tuple[str, ...]:
    """The sub-prefixes a target reserves: always the default versions prefix (so that a run without
    the setting cannot delete or download another run's history), plus a configured one."""
    return tuple(sorted({DEFAULT_PREFIX, configured or DEFAULT_PREFIX}))


def without_areas(store: Store, areas: Iterable[str]) -> Iterator[RemoteEntry]:
    """``store.list()`` minus every path under ``areas`` (store paths ending in ``/``), in path order."""
    ordered = sorted(set(areas))
    n = len(ordered)
    i = 0  # the next area the listing can still reach
    entries = store.list()
    try:
        while True:
            restart: str | None = None
            for obj in entries:
                path = obj.path
                # Areas the listing has passed without finding anything in them.
                while i < n and path >= ordered[i] and not path.startswith(ordered[i]):
                    i += 1
                if i < n and path.startswith(ordered[i]):
                    restart = max(ordered[i] + _AFTER_ALL, path)
                    break
                yield obj
            if restart is None:
                return
            _close(entries)
            entries = store.list_under("", start_after=restart)
    finally:
        _close(entries)


def _close(entries: Iterator[RemoteEntry]) -> None:
    if isinstance(entries, Generator):  # a listing that holds a connection or a thread
        entries.close()
