"""``Coalescer``: requests that pile up while one is being served are served together by the next.

The shape of a group commit. Each request gets a ticket; whoever serves takes every request handed in
so far and, once the service succeeds, marks all their tickets done. A caller returns only when a
service that included its request has succeeded, so "returned" still means "done" for each caller; a
waiting caller usually finds its ticket done and returns without serving. Used where many transfer
threads each need one slow, serialised step: the journal's commit of confirmed entries, a folder's
fsync after renames into it. Standard library only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Coalescer(Generic[T]):
    """Thread-safe. ``submit(item, serve)`` returns once ``serve`` succeeded on a batch holding ``item``.

    If ``serve`` raises, the caller that ran it raises too and its own item is dropped; the other items
    of the batch go back to the queue, so their callers (still waiting) serve them again or raise
    themselves: nobody returns as if served when it was not."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # pending, issued
        self._pending: list[T] = []
        self._issued = 0
        self._serving = threading.Lock()  # one service at a time
        self._served = 0  # every ticket up to this one is done

    def submit(self, item: T, serve: Callable[[list[T]], None]) -> None:
        with self._lock:
            self._pending.append(item)
            self._issued += 1
            ticket = self._issued
        with self._serving:
            if self._served >= ticket:
                return
            with self._lock:
                batch, self._pending = self._pending, []
                covers = self._issued
            try:
                serve(batch)
            except BaseException:
                with self._lock:
                    self._pending[:0] = [other for other in batch if other is not item]
                raise
            self._served = covers

    def settled(self) -> bool:
        """Nothing pending and nobody waiting (a caller between its ticket and its return counts)."""
        with self._lock:
            return not self._pending and self._served == self._issued
