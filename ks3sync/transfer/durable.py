"""Durable renames into folders, shared between threads.

A restored file appears by rename, and the rename is durable only once its folder is fsynced. A
folder's fsync covers every rename into it that finished before the fsync began, so threads restoring
into the same folder can share one: a thread that finds a later fsync already done returns at once.
Imports only ks3sync.transfer.bodies.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from ks3sync.transfer.bodies import fsync_dir


class _Folder:
    __slots__ = ("lock", "requested", "synced")

    def __init__(self) -> None:
        self.lock = threading.Lock()  # one fsync of this folder at a time
        self.requested = 0  # tickets handed out: renames done into this folder
        self.synced = 0  # every ticket up to this one is covered by a completed fsync


class FolderSyncer:
    """``renamed_into(folder)`` after each rename; returns once a fsync of ``folder`` that started
    after the rename has completed. Holds a small record only for folders with renames in flight."""

    def __init__(self, fsync: Callable[[Path], None] = fsync_dir) -> None:
        self._fsync = fsync
        self._lock = threading.Lock()
        self._folders: dict[Path, _Folder] = {}

    def renamed_into(self, folder: Path) -> None:
        with self._lock:
            state = self._folders.get(folder)
            if state is None:
                state = self._folders[folder] = _Folder()
            state.requested += 1
            ticket = state.requested
        with state.lock:
            if state.synced >= ticket:
                return
            with self._lock:
                covers = state.requested  # renames counted so far all finished before this fsync
            self._fsync(folder)  # on failure nothing is marked: every waiter tries again itself
            state.synced = covers
            with self._lock:
                if state.requested == covers:  # nobody else holds a ticket: forget the folder
                    del self._folders[folder]
