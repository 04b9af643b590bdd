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
import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace


def log_event(logger: logging.Logger, level: int, name: str, **fields: object) -> None:
    """A structured log record (rendered by the daemon's formatters as ``event=name key=value ...``);
    the field key is the daemon's convention, spelled out here so watch/ does not import the daemon."""
    logger.log(level, name, extra={"ks3sync_fields": fields})


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


def coalesce(changes: Iterable[FsChange]) -> list[FsChange]:
    """One change per path, in order of first appearance, following the journal's rule that a MOVE
    owns the deletion of its source (copy first, delete the old name after the copy succeeded):
    - a rename drops whatever was pending for the old name (it no longer exists; the move deletes it);
      chained renames (a→b, b→c) become a→c plus a delete of b;
    - a write after a rename keeps the move (the executor compares the file with the source's record
      and uploads instead of copying when they differ);
    - deleting (or renaming over) the new name before the move was acted on also deletes the old name.
    The debounce clock follows the latest event on the path."""
    by_path: dict[str, FsChange] = {}
    for change in changes:
        if change.kind is Kind.MOVE:
            assert change.src_path is not None
            pending = by_path.pop(change.src_path, None)
            if pending is not None and pending.kind is Kind.MOVE and pending.src_path != change.path:
                # the old name was itself renamed from an older one and not yet acted on: what may
                # already be in the bucket is under that older name
                change = replace(change, src_path=pending.src_path)
                # ...and the middle name may hold an object from before it was overwritten
                by_path[pending.path] = FsChange(pending.path, Kind.DELETE, change.observed_ns)
        old = by_path.get(change.path)
        if old is None:
            by_path[change.path] = change
        elif old.kind is Kind.MOVE and change.kind is Kind.UPSERT:
            by_path[change.path] = replace(old, observed_ns=max(old.observed_ns, change.observed_ns))
        else:
            if old.kind is Kind.MOVE and old.src_path != change.src_path:
                # the pending move is superseded (deleted, or overwritten by another rename): its old
                # name still has to go
                assert old.src_path is not None
                by_path.setdefault(old.src_path, FsChange(old.src_path, Kind.DELETE, change.observed_ns))
            by_path[change.path] = replace(change, observed_ns=max(old.observed_ns, change.observed_ns))
    return list(by_path.values())
