"""Durable renames into folders, shared between threads.

A restored file appears by rename, and the rename is durable only once its folder is fsynced. A
folder's fsync covers every rename into it that finished before the fsync began, so threads restoring
into the same folder share one (``Coalescer``): a thread that finds a later fsync already done returns
at once. Folders are whatever the caller renames into (for restores, ``localtree.Folder``: equal by
the folder's device and inode, fsynced through its open descriptor). Imports only ks3sync.coalesce.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from ks3sync.coalesce import Coalescer

F = TypeVar("F", bound=Hashable)


class FolderSyncer(Generic[F]):
    """``renamed_into(folder)`` after each rename; returns once a ``fsync(folder)`` that started after
    the rename has completed. Holds a record only for folders with renames in flight."""

    def __init__(self, fsync: Callable[[F], None]) -> None:
        self._fsync = fsync
        self._lock = threading.Lock()
        self._folders: dict[F, Coalescer[object]] = {}

    def renamed_into(self, folder: F) -> None:
        with self._lock:
            syncs = self._folders.get(folder)
            if syncs is None:
                syncs = self._folders[folder] = Coalescer()
        # A fresh token per rename: on a failed fsync the others' renames go back to be synced again.
        syncs.submit(object(), lambda _renames: self._fsync(folder))
        with self._lock:
            # Forget a settled folder. A thread that took this record just before still has its own
            # fsync done by it (its ticket is not served yet), so correctness never rests on the map.
            if self._folders.get(folder) is syncs and syncs.settled():
                del self._folders[folder]
