"""What every transfer task shares during one run: the store, the checkpoint, the local root (and, for
restores, its folders opened by descriptor), options, the part pool and its byte budget, the byte meter
(bandwidth limit + progress), the clock.

Imports model, store.base, errors and transfer.durable / sizing / throttle / localtree only.
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
from ks3sync.transfer.localtree import TMP_PREFIX as TMP_PREFIX  # re-exported: where its users import it
from ks3sync.transfer.localtree import Folder, LocalTree, sync_folder
from ks3sync.transfer.sizing import DEFAULT_JOBS, DEFAULT_MULTIPART_THRESHOLD, DEFAULT_PART_SIZE
from ks3sync.transfer.throttle import ByteBudget

if TYPE_CHECKING:
    from ks3sync.crypto.key import EncryptionKey
    from ks3sync.transfer.keep import Keeper

SMALL_FILE = 8 * 1024 * 1024  # single PUTs up to this size are read once into memory
# Bytes of request bodies and ranges held in memory at once, across all transfers: parts, single-PUT
# bodies above BUDGETED_BODY, ranges of a parallel restore (more if one part is bigger). 64 MiB keeps
# a 20 ms link of up to 3 GB/s busy and the process far below 150 MB, whatever --jobs says (D19).
BYTES_IN_FLIGHT = 64 * 1024 * 1024
BUDGETED_BODY = 256 * 1024  # smaller single-PUT bodies are not counted: at most jobs x this many bytes


@dataclass(frozen=True, slots=True)
class TransferOptions:
    # File workers, and the ceiling of small requests in flight (which the client adapts below).
    jobs: int = DEFAULT_JOBS
    bytes_in_flight: int = BYTES_IN_FLIGHT  # the byte budget (raised to two parts if parts are larger)
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
    # ks3sync's own files and folders (the journal and its companions, the state folder): a restore
    # never writes, replaces or deletes them, whatever path inside the target leads to them.
    protected_paths: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        if self.jobs < 1:
            raise ValueError("jobs must be >= 1")
        if self.bytes_in_flight < 1:
            raise ValueError("bytes_in_flight must be >= 1")


class StopSignal:
    """ "Start nothing new": set by the run itself (a fatal error, ``Executor.close()``) or by the caller's
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


class Once:
    """Paths already kept in this pass (thread-safe): a retried write must not copy the pass's own new
    content over the copy of what the path held before it (``transfer.keep``)."""

    __slots__ = ("_done", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done: set[str] = set()

    def done(self, path: str) -> bool:
        with self._lock:
            return path in self._done

    def add(self, path: str) -> None:
        with self._lock:
            self._done.add(path)


@dataclass(slots=True)
class TransferContext:
    store: Store
    checkpoint: Checkpoint
    root: Path
    options: TransferOptions
    part_pool: ThreadPoolExecutor
    part_budget: (
        ByteBudget  # bytes of bodies and ranges in memory, shared by every transfer (BYTES_IN_FLIGHT)
    )
    meter_sent: Callable[[int], None]
    meter_received: Callable[[int], None]
    stop: StopSignal
    synced: Mapping[str, SyncedEntry] = field(default_factory=dict)
    remote: Mapping[str, RemoteEntry] | None = None  # the pass's listing, when the caller has one
    clock: Callable[[], int] = time.time_ns
    # Restores share folder fsyncs, through the folders' open descriptors.
    folder_syncs: FolderSyncer[Folder] = field(default_factory=lambda: FolderSyncer(sync_folder))
    untagged_reads: Tally = field(default_factory=Tally)  # encrypted objects accepted without a tag
    keeper: Keeper | None = None  # copies what a write or delete replaces (backup prefix, versions)
    kept: Once = field(default_factory=Once)  # paths the keeper kept in this pass
    parallel_ranges: int = 1  # ranges of one large restore fetched ahead (ranged.MAX_RANGES_AHEAD at most)
    _local: LocalTree | None = field(default=None, init=False, repr=False)
    _local_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def local_tree(self) -> LocalTree:
        """The target folder of a restore, opened on first use and kept until ``close_local_tree``."""
        tree = self._local
        if tree is None:
            with self._local_lock:
                tree = self._local
                if tree is None:
                    tree = self._local = LocalTree(self.root, self.options.protected_paths)
        return tree

    def close_local_tree(self) -> None:
        with self._local_lock:
            tree, self._local = self._local, None
        if tree is not None:
            tree.close()

    def abs_path(self, path: str) -> Path:
        return self.root / path
