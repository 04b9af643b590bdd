"""Durable renames into folders, shared between threads; a large file's writeback started early.

A restored file appears by rename, and the rename is durable only once its folder is fsynced. A
folder's fsync covers every rename into it that finished before the fsync began, so threads restoring
into the same folder share one (``Coalescer``): a thread that finds a later fsync already done returns
at once. Folders are whatever the caller renames into (for restores, ``localtree.Folder``: equal by
the folder's device and inode, fsynced through its open descriptor). Imports only ks3sync.coalesce.

``WritebackAhead``: the fsync a restored file gets before its rename waits for every byte of it still
only in the page cache; on a machine with room for gigabytes of dirty pages, that is the whole file,
written while nothing else happens. Asking the kernel to start writing each piece as soon as it is
written overlaps the disk with the download (``posix_fadvise(DONTNEED)`` starts writeback of the
range without waiting, and drops it from the cache once written: a restore does not read it again).
"""

from __future__ import annotations

import os
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


class WritebackAhead:
    """Call ``wrote(total)`` after writing to a buffered file (``flush`` is a callable that empties its
    buffer); every ``step`` bytes the part written since the last call is handed to the disk."""

    STEP = 16 * 1024 * 1024

    __slots__ = ("_fd", "_flush", "_step", "_started")

    def __init__(self, fd: int, flush: Callable[[], None], step: int = STEP) -> None:
        self._fd = fd
        self._flush = flush
        self._step = step
        self._started = 0  # bytes whose writeback was started

    def wrote(self, total: int) -> None:
        if total - self._started < self._step or not hasattr(os, "posix_fadvise"):
            return
        self._flush()
        os.posix_fadvise(self._fd, self._started, total - self._started, os.POSIX_FADV_DONTNEED)
        self._started = total
