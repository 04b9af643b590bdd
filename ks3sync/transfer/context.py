"""What every transfer task shares during one run: the store, the checkpoint, the local root, options,
the part pool and its byte budget, the byte meter (bandwidth limit + progress), the clock.

Imports model, store.base, errors and transfer.durable only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ks3sync.model import Checkpoint, Direction, RemoteEntry, SyncedEntry
from ks3sync.store.base import Store, WriteOptions
from ks3sync.transfer.durable import FolderSyncer
from ks3sync.transfer.sizing import DEFAULT_MULTIPART_THRESHOLD, DEFAULT_PART_SIZE
from ks3sync.transfer.throttle import ByteBudget

if TYPE_CHECKING:
    from ks3sync.crypto.key import EncryptionKey

TMP_PREFIX = ".ks3sync-tmp-"  # downloads land in such a file in the target folder before the rename
SMALL_FILE = 8 * 1024 * 1024  # single PUTs up to this size are read once into memory
PART_BUFFER_BUDGET = 256 * 1024 * 1024  # at most this much part data in memory (more if one part is bigger)


@dataclass(frozen=True, slots=True)
class TransferOptions:
    jobs: int = 8
    part_size: int = DEFAULT_PART_SIZE
    multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD
    write: WriteOptions = field(default_factory=WriteOptions)
    encryption_key: EncryptionKey | None = None
    # Reading with a key: accept objects without encryption metadata as plaintext (default: an error).
    allow_unencrypted: bool = False
    # Encrypted objects without ks3sync's integrity tag (SDK-written) are refused, not only reported.
    require_integrity: bool = False
    backup_prefix: str | None = None
    bwlimit: float | None = None  # bytes per second, shared by all workers
    direction: Direction = Direction.UPLOAD  # which side an Adopt that does not match is fixed from

    def __post_init__(self) -> None:
        if self.jobs < 1:
            raise ValueError("jobs must be >= 1")


class StopSignal:
    """"Start nothing new": set by the run itself (a fatal error, ``Executor.close()``) or by the caller's
    event (a daemon shutting down). The caller's event is only read, never set: closing an executor
    must not stop the caller's other work."""

    __slots__ = ("_own", "requested")

    def __init__(self, requested: threading.Event | None = None) -> None:
        self._own = threading.Event()
        self.requested = requested

    def set(self) -> None:
        self._own.set()

    def is_set(self) -> bool:
        return self._own.is_set() or (self.requested is not None and self.requested.is_set())

    @property
    def by_request(self) -> bool:
        """True when the caller asked for the stop (rather than the run stopping itself)."""
        return self.requested is not None and self.requested.is_set()


class Tally:
    """A count the tasks of a run raise from any thread and the executor reports once per pass (e.g.
    encrypted objects read without an integrity tag)."""

    __slots__ = ("_lock", "_value")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 0

    def add(self, n: int = 1) -> None:
        with self._lock:
            self._value += n

    @property
    def value(self) -> int:
        with self._lock:
            return self._value


@dataclass(slots=True)
class TransferContext:
    store: Store
    checkpoint: Checkpoint
    root: Path
    options: TransferOptions
    part_pool: ThreadPoolExecutor
    part_budget: ByteBudget  # bytes of part buffers in flight, shared by every multipart upload
    meter_sent: Callable[[int], None]
    meter_received: Callable[[int], None]
    stop: StopSignal
    synced: Mapping[str, SyncedEntry] = field(default_factory=dict)
    remote: Mapping[str, RemoteEntry] | None = None  # the pass's listing, when the caller has one
    clock: Callable[[], int] = time.time_ns
    folder_syncs: FolderSyncer = field(default_factory=FolderSyncer)  # restores share folder fsyncs
    untagged_reads: Tally = field(default_factory=Tally)  # encrypted objects accepted without a tag
    _resolved_root: Path | None = field(default=None, init=False, repr=False)  # cache of resolved_root

    @property
    def resolved_root(self) -> Path:
        """``root`` with symlinks resolved, once per run (every restored path is checked against it)."""
        if self._resolved_root is None:
            self._resolved_root = self.root.resolve()
        return self._resolved_root

    def abs_path(self, path: str) -> Path:
        return self.root / path
