"""Change values and the per-path coalescing rule.

A ``FsChange`` says "this relative path changed in this way at this time"; it is a plain hashable value
(watchdog's habit) and carries no file content or metadata: whoever acts on it looks at the file as it
is *then*. So kinds are hints: an ``UPSERT`` of a file that has since vanished is handled as a delete,
and a ``MOVE`` says where identical content may already be in the bucket (server-side copy instead of
a re-upload).

Coalescing keeps one change per path and the latest observation time (the debounce clock restarts with
every event, so a file still being written keeps pushing its upload back).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, replace


class Kind(enum.Enum):
    UPSERT = "upsert"
    DELETE = "delete"
    MOVE = "move"  # path is the destination; src_path the old name


@dataclass(frozen=True, slots=True)
class FsChange:
    path: str  # relative POSIX path under the sync root
    kind: Kind
    observed_ns: int
    src_path: str | None = None  # MOVE only

    def __post_init__(self) -> None:
        if (self.kind is Kind.MOVE) != (self.src_path is not None):
            raise ValueError(f"{self.path}: src_path is required for MOVE and only for MOVE")


def merge(older: FsChange, newer: FsChange) -> FsChange:
    """The single change equivalent to ``older`` followed by ``newer`` on the same path."""
    assert older.path == newer.path
    if newer.kind is Kind.UPSERT and older.kind is Kind.MOVE:
        # Written to after being renamed: still try the copy; the executor checks the file's identity
        # against the source's record and uploads instead when the content may differ.
        return replace(older, observed_ns=max(older.observed_ns, newer.observed_ns))
    return replace(newer, observed_ns=max(older.observed_ns, newer.observed_ns))


def coalesce(changes: Iterable[FsChange]) -> list[FsChange]:
    """One change per path, in order of first appearance.

    A move also leaves a ``DELETE`` of its source: whoever acts on the queue deletes the old object only
    after the copy to the new name succeeded (per-path order), and if the new name is deleted before
    the move was acted on, the old object still goes. Chained renames (a→b, b→c) become a→c."""
    by_path: dict[str, FsChange] = {}
    for change in changes:
        if change.kind is Kind.MOVE:
            src = change.src_path
            assert src is not None
            pending = by_path.get(src)
            if pending is not None and pending.kind is Kind.MOVE and pending.src_path != change.path:
                # src was itself renamed from an older name and not yet acted on: the content that may
                # already be in the bucket is under that older name.
                change = replace(change, src_path=pending.src_path)
            by_path[src] = FsChange(src, Kind.DELETE, change.observed_ns)
        old = by_path.get(change.path)
        by_path[change.path] = change if old is None else merge(old, change)
    return list(by_path.values())
