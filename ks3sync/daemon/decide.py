"""What to do about one queued change, given the file as it is now. Pure: no I/O, no clock.

The queue's kinds are hints; the file system at the time of acting is the truth (the watcher may have
coalesced or lost events, and the file may have changed again since):

| local file now                | journal record            | decision                                       |
|-------------------------------|---------------------------|------------------------------------------------|
| excluded by the filters       | any                       | nothing for the path (a move still owes its source's delete) |
| regular, written < debounce ago | any                     | defer: wait until it has been quiet for ``debounce`` |
| regular, same identity        | present                   | in sync: nothing to send                       |
| regular, MOVE from ``src``    | ``src`` recorded, same size | server-side ``Copy`` (hashed and verified by the executor; it uploads if the content differs) |
| regular, otherwise            | any                       | ``Upload``                                     |
| missing (or not a regular file) | present, delete on      | ``DeleteRemote``                               |
| missing                       | present, delete off       | nothing (the object stays)                     |
| missing                       | absent                    | nothing (e.g. a temp file that came and went)  |

A MOVE also owns its source's deletion (the journal's rule): when ``src`` is gone locally, recorded,
not excluded, and deletes are on, ``DeleteRemote(src)`` is returned in ``deletes`` and runs only after
this change's transfers succeeded (invariant 3: a move's source is not deleted before its copy).

Excluded paths are outside the sync: their objects are never deleted from here, not even a moved
source that became excluded after it was synced, nor a path under a deleted folder. With
``delete_excluded`` it is the periodic reconcile (``run_mirror``) that deletes them, through its guards.

Imports ks3sync.model only: no journal, no store, no file system (the caller stats the file).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ks3sync.model import Copy, DeleteRemote, LocalEntry, Operation, RemoteEntry, SyncedEntry, Upload


class Outcome(enum.Enum):
    SEND = "send"  # transfers and/or deletes to run
    IN_SYNC = "in-sync"
    NOTHING = "nothing"
    DEFER = "defer"  # still being written


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    transfers: tuple[Operation, ...] = ()
    deletes: tuple[DeleteRemote, ...] = ()
    defer_until_ns: int | None = None
    note: str = ""


def remote_of(entry: SyncedEntry) -> RemoteEntry:
    """The object the journal says we wrote for ``entry``."""
    return RemoteEntry(entry.path, entry.remote_size, entry.remote_etag)


def decide(
    path: str,
    src_path: str | None,
    local: LocalEntry | None,
    src_exists: bool,
    synced: Mapping[str, SyncedEntry],
    *,
    delete: bool,
    debounce_ns: int,
    now_ns: int,
    excluded: Callable[[str], bool] = lambda _path: False,
) -> Decision:
    """``local``: the file at ``path`` now (None when missing or not a regular file); ``src_exists``:
    whether something exists at ``src_path`` now (a re-created source must not be deleted)."""
    deletes: tuple[DeleteRemote, ...] = ()
    source = synced.get(src_path) if src_path is not None else None
    if src_path is not None and source is not None and delete and not src_exists and not excluded(src_path):
        deletes = (DeleteRemote(src_path, remote_of(source), reason="renamed"),)

    if excluded(path):
        local = None
        own = None  # an excluded path's old object is the rescan's business, never the watcher's
    else:
        own = synced.get(path)

    if local is not None:
        age = now_ns - local.identity.mtime_ns
        if 0 <= age < debounce_ns:
            # Written to within the quiet period (events may have been coalesced away): wait, so a file
            # still being written is never sent half-way.
            return Decision(
                Outcome.DEFER,
                defer_until_ns=local.identity.mtime_ns + debounce_ns,
                note="still being written",
            )
        if own is not None and own.identity == local.identity:
            if deletes:
                return Decision(Outcome.SEND, deletes=deletes, note="renamed; already in sync")
            return Decision(Outcome.IN_SYNC)
        if source is not None and source.identity.size == local.size and not source.path == path:
            op: Operation = Copy(path, src_path or "", local, expected_md5=source.md5, reason="renamed")
            return Decision(Outcome.SEND, transfers=(op,), deletes=deletes, note="copy")
        reason = "new" if own is None else "changed"
        return Decision(Outcome.SEND, transfers=(Upload(path, local, reason),), deletes=deletes, note=reason)

    if own is not None and delete:
        deletes = (*deletes, DeleteRemote(path, remote_of(own), reason="deleted"))
    if deletes:
        return Decision(Outcome.SEND, deletes=deletes, note="delete")
    return Decision(Outcome.NOTHING, note="kept (delete is off)" if own is not None else "")
