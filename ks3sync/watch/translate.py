"""watchdog events → ``Observed`` notes relative to a sync root. Pure: no I/O, no clock.

watchdog reports absolute paths (str, or bytes when watching a bytes path) and uses different classes
for files and directories; this module turns each event into zero or more notes about paths *under the
root*, so the buffer never sees an absolute path, a path outside the root, or an event that cannot change
an object (opened, closed without writing, a directory's own mtime).

Moves across the root's edge arrive from watchdog as create/delete already; a move whose other end is
outside the root is mapped the same way here, in case an emitter reports it as a move with an empty end.
Synthetic events (watchdog's own expansion of a moved or created directory) are dropped: the buffer
expands directories itself, at drain time, off the observer's thread.
"""

from __future__ import annotations

import enum
import logging
import os
from dataclasses import dataclass

from watchdog.events import (
    EVENT_TYPE_ATTRIB,
    EVENT_TYPE_CLOSED,
    EVENT_TYPE_CREATED,
    EVENT_TYPE_DELETED,
    EVENT_TYPE_MODIFIED,
    EVENT_TYPE_MOVED,
    FileSystemEvent,
)

from ks3sync.watch.changes import log_event

log = logging.getLogger(__name__)

INTERNAL_PREFIXES = (".ks3sync-tmp-",)  # the engine's own temporary files (downloads being verified)


class Note(enum.Enum):
    FILE_CHANGED = "file-changed"
    FILE_DELETED = "file-deleted"
    FILE_MOVED = "file-moved"
    DIR_CREATED = "dir-created"
    DIR_DELETED = "dir-deleted"
    DIR_MOVED = "dir-moved"
    ROOT_GONE = "root-gone"  # the watched folder itself was deleted, moved away or unmounted


@dataclass(frozen=True, slots=True)
class Observed:
    note: Note
    path: str  # relative POSIX path ("" for the root)
    src_path: str | None = None  # *_MOVED: the old relative path


def relative(root: str, path: bytes | str) -> str | None:
    """``path`` relative to ``root`` as a POSIX string, "" for the root itself, None if outside or
    not representable as UTF-8 (such names are reported by the scanner, never queued)."""
    text = os.fsdecode(path)
    if text == root:
        return ""
    if not text.startswith(root + os.sep):
        return None
    rel = text[len(root) + 1 :]
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        log_event(
            log,
            logging.WARNING,
            "skipped",
            reason="name is not UTF-8",
            path=repr(rel.encode("utf-8", "surrogateescape")),
        )
        return None
    if os.sep != "/":
        rel = rel.replace(os.sep, "/")
    return rel


def _internal(rel: str) -> bool:
    return rel.rpartition("/")[2].startswith(INTERNAL_PREFIXES)


def translate(root: str, event: FileSystemEvent) -> list[Observed]:
    """Notes for one watchdog event; ``root`` is the absolute watched folder without a trailing slash."""
    if event.is_synthetic:
        return []
    kind = event.event_type
    src = relative(root, event.src_path) if event.src_path else None
    if kind == EVENT_TYPE_MOVED:
        dest = relative(root, event.dest_path) if event.dest_path else None
        if src == "":
            return [Observed(Note.ROOT_GONE, "")]
        if dest is None or (dest and _internal(dest)):
            # moved out of the tree (or into our own temp name): gone from here
            if src is None or _internal(src):
                return []
            return [Observed(Note.DIR_DELETED if event.is_directory else Note.FILE_DELETED, src)]
        if src is None or _internal(src):
            # moved in from outside: new content here
            return [Observed(Note.DIR_CREATED if event.is_directory else Note.FILE_CHANGED, dest)]
        return [Observed(Note.DIR_MOVED if event.is_directory else Note.FILE_MOVED, dest, src)]
    if src is None or (src and _internal(src)):
        return []
    if event.is_directory:
        if src == "":
            return [Observed(Note.ROOT_GONE, "")] if kind == EVENT_TYPE_DELETED else []
        if kind == EVENT_TYPE_CREATED:
            return [Observed(Note.DIR_CREATED, src)]
        if kind == EVENT_TYPE_DELETED:
            return [Observed(Note.DIR_DELETED, src)]
        return []  # a directory's own modified/attrib: its entries report themselves
    if kind in (EVENT_TYPE_CREATED, EVENT_TYPE_MODIFIED, EVENT_TYPE_CLOSED, EVENT_TYPE_ATTRIB):
        # "closed" (after writing) restarts the quiet period too: the writer just finished.
        return [Observed(Note.FILE_CHANGED, src)]
    if kind == EVENT_TYPE_DELETED:
        return [Observed(Note.FILE_DELETED, src)]
    return []  # opened, closed without writing
