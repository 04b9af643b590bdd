"""The hand-off between the observer thread and the daemon: notes in, coalesced per-file changes out.

The observer thread only appends notes (cheap, so inotify's queue keeps draining). The daemon calls
``drain()`` once per step; that is where directories are expanded, off the observer's thread:
- a created (or moved-in) directory → an upsert for every file under it, found by walking it;
- a deleted (or moved-out) directory → a delete for every file the journal knows under it (the
  ``known_under`` callback), since the files are gone and cannot be listed any more;
- a renamed directory → a move for every file now under the new name (server-side copy, no upload)
  plus deletes for whatever the journal knew under the old name.
Everything drained is coalesced per path (``changes.coalesce``). ``overflowed`` and ``root_gone`` are
sticky flags the daemon reads and clears: both mean "events were lost, rescan".
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from ks3sync.watch.changes import FsChange, Kind, coalesce, log_event
from ks3sync.watch.translate import INTERNAL_PREFIXES, Note, Observed

log = logging.getLogger(__name__)

KnownUnder = Callable[[str], Iterable[str]]  # relative dir -> journal-known file paths under it


class ChangeBuffer:
    def __init__(self, root: Path, *, clock: Callable[[], int] = time.time_ns, follow_symlinks: bool = False):
        self.root = root
        self._clock = clock
        self._follow = follow_symlinks
        self._lock = threading.Lock()
        self._notes: list[tuple[Observed, int]] = []
        self._overflowed = False
        self._root_gone = False
        self._wakeup = threading.Event()
        self._listeners: list[Callable[[], None]] = []

    # -- observer side ------------------------------------------------------------------------------
    def add(self, notes: Iterable[Observed]) -> None:
        now = self._clock()
        with self._lock:
            for note in notes:
                if note.note is Note.ROOT_GONE:
                    self._root_gone = True
                else:
                    self._notes.append((note, now))
        self._notify()

    def add_listener(self, callback: Callable[[], None]) -> None:
        """``callback()`` runs (on the observer's thread) whenever notes arrive: keep it tiny."""
        self._listeners.append(callback)

    def _notify(self) -> None:
        self._wakeup.set()
        for callback in self._listeners:
            callback()

    def mark_overflow(self) -> None:
        with self._lock:
            self._overflowed = True
        self._notify()

    # -- daemon side --------------------------------------------------------------------------------
    @property
    def wakeup(self) -> threading.Event:
        """Set whenever something was added; the daemon may wait on it instead of polling."""
        return self._wakeup

    def pending(self) -> int:
        with self._lock:
            return len(self._notes)

    def take_flags(self) -> tuple[bool, bool]:
        """(overflowed, root_gone) since the last call."""
        with self._lock:
            flags = (self._overflowed, self._root_gone)
            self._overflowed = self._root_gone = False
        return flags

    def drain(self, known_under: KnownUnder) -> list[FsChange]:
        with self._lock:
            notes, self._notes = self._notes, []
            self._wakeup.clear()
        if not notes:
            return []
        return coalesce(self._expand(notes, known_under))

    def _expand(self, notes: list[tuple[Observed, int]], known_under: KnownUnder) -> Iterator[FsChange]:
        for note, when in notes:
            kind = note.note
            if kind is Note.FILE_CHANGED:
                yield FsChange(note.path, Kind.UPSERT, when)
            elif kind is Note.FILE_DELETED:
                yield FsChange(note.path, Kind.DELETE, when)
            elif kind is Note.FILE_MOVED:
                assert note.src_path is not None
                yield FsChange(note.path, Kind.MOVE, when, src_path=note.src_path)
            elif kind is Note.DIR_CREATED:
                for rel in self._files_under(note.path):
                    yield FsChange(rel, Kind.UPSERT, when)
            elif kind is Note.DIR_DELETED:
                for rel in known_under(note.path):
                    yield FsChange(rel, Kind.DELETE, when)
            elif kind is Note.DIR_MOVED:
                assert note.src_path is not None
                moved: set[str] = set()
                for rel in self._files_under(note.path):
                    old = note.src_path + rel[len(note.path) :]
                    moved.add(old)
                    yield FsChange(rel, Kind.MOVE, when, src_path=old)
                for old in known_under(note.src_path):
                    if old not in moved:
                        yield FsChange(old, Kind.DELETE, when)

    def _files_under(self, rel_dir: str) -> Iterator[str]:
        """Regular files under ``rel_dir`` (relative paths), depth-first; unreadable parts are skipped
        with a log line (the next full scan reports them properly)."""
        stack = [rel_dir]
        while stack:
            current = stack.pop()
            try:
                with os.scandir(self.root / current) as it:
                    entries = list(it)
            except OSError as exc:
                log_event(log, logging.INFO, "walk_skipped", path=current, error=exc.strerror)
                continue
            for entry in entries:
                rel = f"{current}/{entry.name}" if current else entry.name
                try:
                    rel.encode("utf-8")
                    if entry.is_dir(follow_symlinks=self._follow):
                        stack.append(rel)
                    elif entry.is_file(follow_symlinks=self._follow) and not entry.name.startswith(
                        INTERNAL_PREFIXES
                    ):
                        yield rel
                except UnicodeEncodeError:
                    continue  # reported by the scanner; never queued
                except OSError as exc:
                    log_event(log, logging.INFO, "walk_skipped", path=rel, error=exc.strerror)
