"""One sync's in-memory counters for logs, ``STATUS=`` and metrics (the journal keeps the durable ones).

``Counters`` is updated from the worker's batch threads and its reconcile, and read by the service
loop, so every update and the snapshot take its lock. Imports nothing of ks3sync.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

LATENCIES_KEPT = 1000  # the most recent watcher-to-bucket latencies are kept


@dataclass
class Counters:
    files: int = 0
    bytes_sent: int = 0
    errors: int = 0
    parked: int = 0
    held_deletes: int = 0
    reconciles: int = 0
    latencies_ns: list[int] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def file_done(self, latency_ns: int) -> None:
        """A queued change reached the bucket ``latency_ns`` after the watcher saw it."""
        with self._lock:
            self.files += 1
            self.latencies_ns.append(latency_ns)
            del self.latencies_ns[:-LATENCIES_KEPT]

    def change_failed(self, *, parked: bool) -> None:
        with self._lock:
            self.errors += 1
            self.parked += int(parked)

    def error(self) -> None:
        with self._lock:
            self.errors += 1

    def sent(self, n_bytes: int) -> None:
        with self._lock:
            self.bytes_sent += n_bytes

    def deletes_held(self, n: int) -> None:
        with self._lock:
            self.held_deletes += n

    def reconciled(self, files: int, n_bytes: int) -> None:
        """A reconcile returned its result (a stopped one too) after ``files`` files and ``n_bytes`` bytes."""
        with self._lock:
            self.reconciles += 1
            self.files += files
            self.bytes_sent += n_bytes

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {
                "files": self.files,
                "bytes_sent": self.bytes_sent,
                "errors": self.errors,
                "held_deletes": self.held_deletes,
                "reconciles": self.reconciles,
            }
