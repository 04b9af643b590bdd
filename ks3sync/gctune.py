"""Garbage-collector tuning for the march: fewer young-generation collections while any march runs.

A march allocates three short-lived objects per file, freed by reference counting; the cyclic
collector's young-generation passes over them are a visible share of a no-change pass's CPU (D20).
``fewer_collections`` makes them rarer while any march of this process runs
(the service reconciles several syncs at once: the threshold is restored when the last one ends);
collection still happens.

A leaf: imports nothing of ks3sync.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_marches = 0  # marches running in this process
_saved: tuple[int, int, int] = (700, 10, 10)


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Raise the young generation's threshold to at least 100,000 allocations for the block."""
    global _marches, _saved
    with _lock:
        if _marches == 0:
            _saved = gc.get_threshold()
            gc.set_threshold(max(_saved[0], 100_000), *_saved[1:])
        _marches += 1
    try:
        yield
    finally:
        with _lock:
            _marches -= 1
            if _marches == 0:
                gc.set_threshold(*_saved)
