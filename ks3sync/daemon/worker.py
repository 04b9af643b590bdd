"""One sync's scheduler: watcher notes → journal queue → batches on the executor; periodic reconciles.

``SyncWorker.step(now_ns)`` does one round of bookkeeping and returns at once (huey's consumer habit):
1. probe the source folder (missing, unmounted or emptied → the sync pauses: nothing sent or deleted);
2. drain the watcher's buffer and enqueue the changes durably (write-ahead, invariant 2) with
   ``due = observed + debounce``;
3. reap finished batches / the reconcile;
4. start a reconcile (a full ``run_mirror`` pass) when one is due: at start-up, every
   ``rescan_interval``, soon after lost events (inotify overflow, watch limit → polling mode);
5. otherwise claim due changes from the journal and submit them as a batch.
Work runs on a small thread pool; the journal's ``due()`` never hands out two rows touching one path
(nor a move's source while the move is in flight), so per-path order holds across batches
(invariant 3). Tests drive ``step`` with a fake clock and never sleep to wait.

A batch decides each change against the file as it is *now* (``decide``), runs the transfers, then the
deletes of the changes whose own transfers succeeded (a move's source is deleted only after its copy),
and settles every change in the journal: done, retried with backoff, or parked after repeated failure.
With ``versions:`` a batch is a pass (docs/versions.md §2): what it overwrites or deletes is copied to
its versions first, and it writes a manifest if it kept any; the reconcile is a pass too, and prunes
expired versions after it.
On stop, interrupted changes stay claimed and go back to the queue at the next start
(``release_claims``): a kill -9 at any point loses nothing but time.

Imports the journal, the scanner's filters, the store protocol, the executor and watch/; never the
protocol client or the CLI (stores are built by ``ks3sync.cli.run`` and passed in).
"""

from __future__ import annotations

import concurrent.futures
import enum
import heapq
import logging
import os
import stat
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ks3sync.config import SyncConfig
from ks3sync.daemon.backoff import SECOND, Backoff
from ks3sync.daemon.decide import Decision, Outcome, decide
from ks3sync.daemon.guard import DeleteBudget, SourceState, probe_source
from ks3sync.daemon.health import Health, SyncHealth
from ks3sync.daemon.logs import event
from ks3sync.daemon.versioning import finish_pass, prune_after_reconcile, start_pass
from ks3sync.errors import Ks3SyncError, describe
from ks3sync.journal import Change, ChangeKind, Journal, JournalError, QueuedChange
from ks3sync.model import (
    DeleteRemote,
    Direction,
    FileIdentity,
    LocalEntry,
    Operation,
    PassSummary,
    SyncedEntry,
)
from ks3sync.scan import IGNORE_FILE, Filters
from ks3sync.store.base import Store
from ks3sync.transfer.context import TMP_PREFIX, TransferOptions
from ks3sync.transfer.executor import ExecutionReport, Executor
from ks3sync.versions.hide import reserved_prefixes
from ks3sync.versions.stamp import StampClock
from ks3sync.watch import ChangeBuffer, FsChange, Kind, Watcher, WatchMode

log = logging.getLogger("ks3sync.daemon")

BATCH_LIMIT = 256  # changes claimed per batch
MAX_BATCHES = 2  # batches in flight per sync: a long upload does not hold back small files
POLL_RESCAN_NS = 30 * SECOND  # reconcile period while events cannot be trusted (polling mode)
PROBE_EVERY_NS = 1 * SECOND
IDLE_CHECK_NS = 1 * SECOND  # ask the journal for due work at least this often
MAX_KNOWN_DUES = 100_000
COUNT_EVERY_NS = 10 * SECOND  # how stale the recorded-file count that the guards use may be
RETRY_NS = 30 * SECOND  # a sync failing as a whole (credentials, bucket, listing) is retried this often
DEFAULT_BACKOFF = Backoff()


class State(enum.Enum):
    STARTING = "starting"
    RECONCILING = "reconciling"
    WATCHING = "watching"
    POLLING = "polling"  # events lost or unavailable: periodic reconciles stand in
    UNAVAILABLE = "unavailable"  # the source folder is missing / unmounted / emptied
    PAUSED = "paused"  # a fatal error (credentials refused, bucket gone): retried later
    STOPPING = "stopping"
    STOPPED = "stopped"


class Reconciler(Protocol):
    def __call__(self, worker: SyncWorker, stop: threading.Event) -> Any: ...


@dataclass
class Counters:
    """In-memory counters for logs, STATUS= and metrics (the journal keeps the durable ones)."""

    files: int = 0
    bytes_sent: int = 0
    errors: int = 0
    parked: int = 0
    held_deletes: int = 0
    reconciles: int = 0
    latencies_ns: list[int] = field(default_factory=list)


class SyncWorker:
    def __init__(
        self,
        sync: SyncConfig,
        journal: Journal,
        store: Store,
        transfer: TransferOptions,
        *,
        reconcile: Reconciler,
        clock: Callable[[], int] = time.time_ns,
        watch: bool = True,
        excluded: Callable[[str], bool] | None = None,
        state_paths: Sequence[Path] = (),
        backoff: Backoff = DEFAULT_BACKOFF,
        on_done: Callable[[str, str, int, int], None] | None = None,
        on_pass: Callable[[str, int, int], None] | None = None,
        retry_ns: int = RETRY_NS,
    ) -> None:
        self.sync = sync
        self.name = sync.name
        self.root = sync.source
        self.journal = journal
        self.store = store
        self.transfer = transfer
        self.clock = clock
        self.state_paths = tuple(state_paths)  # ks3sync's own files: the reconcile's scan skips them too
        self._filters: Filters | None = None
        if excluded is None:
            # the same rules the scanner applies (--exclude, exclude_from, .ks3ignore files, our own
            # state files inside the root); a FiltersError here is a config problem and propagates
            self._filters = Filters.build(
                sync.source, sync.excludes, sync.exclude_from, state_paths=state_paths,
                reserved=reserved_prefixes(sync.versions.prefix if sync.versions is not None else None),
            )
        self.excluded = excluded or self._is_excluded
        self.backoff = backoff
        self.retry_ns = retry_ns
        self.health = Health(clock)
        self.debounce_ns = int(sync.debounce * SECOND)
        self.rescan_ns = int(sync.rescan_interval * SECOND)
        self.budget = DeleteBudget(sync.max_delete.count, sync.max_delete.percent, self.rescan_ns)
        self.buffer = ChangeBuffer(self.root, clock=clock, follow_symlinks=sync.follow_symlinks)
        self.watcher = (
            Watcher(self.root, self.buffer, follow_symlinks=sync.follow_symlinks) if watch else None
        )
        self.counters = Counters()
        self.stamps = StampClock()  # pass stamps of this sync: batches and reconciles (docs/versions.md §2)
        self._reconcile = reconcile
        self._on_done = on_done
        self._on_pass = on_pass
        self._pool = concurrent.futures.ThreadPoolExecutor(
            MAX_BATCHES, thread_name_prefix=f"ks3sync-{self.name}"
        )
        self._lock = threading.Lock()  # budget, executors, counters (batch threads)
        self._batches: list[concurrent.futures.Future[None]] = []
        self._reconciling: concurrent.futures.Future[Any] | None = None
        self._executors: set[Executor] = set()
        self._stop = threading.Event()
        self.sync_id = -1
        self.state = State.STARTING
        self.reason = ""
        self._device: int | None = None
        self._next_probe_ns = 0
        self._next_reconcile_ns = 0
        self._next_check_ns = 0
        self._dues: list[int] = []  # heap of due times this worker enqueued: when to ask due() next
        self._paused_until_ns = 0
        self._recorded = (0, 0)  # (files the journal records, valid until): see _recorded_count
        self._wake_listeners: list[Callable[[], None]] = []
        self._source = SourceState(False, "not probed yet")
        self.last_reconcile: Any = None

    # ------------------------------------------------------------------------------------------------
    # life cycle

    def register(self) -> int:
        """The sync's id in the journal (registered, or updated, on the first call)."""
        if self.sync_id < 0:
            sync = self.sync
            self.sync_id = self.journal.register_sync(
                sync.name, str(sync.source), sync.bucket, sync.prefix, options_hash(sync)
            )
        return self.sync_id

    def start(self) -> None:
        """Register the sync, return claims of a dead predecessor, start watching, and schedule the
        start-up reconcile (it catches what changed while the service was down)."""
        self.register()
        released = self.journal.release_claims(self.sync_id)
        if released:
            event(log, logging.INFO, "claims_released", sync=self.name, changes=released)
        now = self.clock()
        self._probe(now, force=True)
        if self._source.healthy:
            self._device = self._source.device
            self._start_watching()
            self.state = State.RECONCILING  # the first step starts it; events queue meanwhile
        self._next_reconcile_ns = now  # first step reconciles

    def _start_watching(self) -> None:
        if self.watcher is None:
            self.state = State.WATCHING
            return
        mode = self.watcher.start()
        self.state = State.WATCHING if mode is WatchMode.WATCHING else State.POLLING
        self.reason = self.watcher.reason
        event(
            log,
            logging.INFO,
            "watch_started",
            sync=self.name,
            root=str(self.root),
            mode=mode.value,
            reason=self.reason or None,
        )

    def begin_stop(self) -> None:
        """Stop accepting work: the watcher stops, running transfers are told to stop (a multipart
        upload finishes the parts in flight and records them; the rest resumes at the next start)."""
        if self._stop.is_set():
            return
        self._stop.set()
        self.state = State.STOPPING
        if self.watcher is not None:
            self.watcher.stop()
        # notes already observed are intents: keep them (write-ahead) for the next start
        self._enqueue_from_buffer()
        with self._lock:
            for executor in self._executors:
                executor.ctx.stop.set()

    def busy(self) -> bool:
        return any(not f.done() for f in self._batches) or (
            self._reconciling is not None and not self._reconciling.done()
        )

    def finish_stop(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for running work; True if everything finished."""
        deadline = time.monotonic() + timeout
        pending = [f for f in self._batches if not f.done()]
        if self._reconciling is not None and not self._reconciling.done():
            pending.append(self._reconciling)
        done, not_done = concurrent.futures.wait(pending, timeout=max(0.0, deadline - time.monotonic()))
        self._reap()
        self._pool.shutdown(wait=not not_done, cancel_futures=True)
        self.state = State.STOPPED
        return not not_done

    # ------------------------------------------------------------------------------------------------
    # one step

    def step(self, now_ns: int | None = None) -> None:
        now = self.clock() if now_ns is None else now_ns
        if self._stop.is_set():
            self._reap()
            return
        self._probe(now)
        self._enqueue_from_buffer()
        self._check_watch(now)
        self._reap()
        if not self._source.healthy or now < self._paused_until_ns:
            return
        if self.state is State.PAUSED:
            self.state = (
                State.POLLING if self.watcher and self.watcher.mode is WatchMode.POLLING else State.WATCHING
            )
            self.reason = ""
        if self._reconciling is not None:
            return
        if now >= self._next_reconcile_ns:
            if self.busy():
                return  # let running batches finish first: a reconcile must not race them on a path
            self._start_reconcile(now)
            return
        self._submit_due(now)

    def _probe(self, now: int, *, force: bool = False) -> None:
        if not force and now < self._next_probe_ns:
            return
        self._next_probe_ns = now + PROBE_EVERY_NS
        has_entries = self._has_entries()
        source = probe_source(self.root, self._device, has_entries)
        was_healthy = self._source.healthy
        self._source = source
        if not source.healthy:
            if self.state is not State.UNAVAILABLE:
                event(
                    log,
                    logging.WARNING,
                    "source_unavailable",
                    sync=self.name,
                    root=str(self.root),
                    reason=source.reason,
                    action="paused: nothing is sent or deleted until it is back",
                )
                if self.watcher is not None:
                    self.watcher.stop()
            self.state = State.UNAVAILABLE
            self.reason = source.reason
            self.health.failed(f"{self.root}: {source.reason}", cause="source")
            return
        if not was_healthy and self.state is State.UNAVAILABLE:
            event(log, logging.INFO, "source_available", sync=self.name, root=str(self.root))
            self.health.recovered("source")
            if self._device is None:
                self._device = source.device
            self._start_watching()
            self._next_reconcile_ns = now  # whatever happened meanwhile

    def _has_entries(self) -> bool:
        """Whether the journal records any synced file (an empty source is then suspicious)."""
        return self.sync_id >= 0 and self._recorded_count() > 0

    def _check_watch(self, now: int) -> None:
        overflowed, root_gone = self.buffer.take_flags()
        if self.watcher is not None and self.state is State.WATCHING:
            if self.watcher.check() is WatchMode.POLLING:
                self.state = State.POLLING
                self.reason = self.watcher.reason
        if overflowed or root_gone:
            event(
                log,
                logging.WARNING,
                "events_lost",
                sync=self.name,
                cause="inotify overflow" if overflowed else "watched folder replaced or removed",
                action="full rescan",
            )
            # give the burst that overflowed the queue a moment to settle, then rescan
            self._next_reconcile_ns = min(self._next_reconcile_ns, now + self.debounce_ns)
            if root_gone:
                self._next_probe_ns = now

    def _enqueue_from_buffer(self) -> None:
        changes = self.buffer.drain(self._known_under)
        if not changes:
            return
        self._ignore_files_changed(changes, self.clock())
        batch = [to_journal(c, self.debounce_ns) for c in changes]
        # Write-ahead: durable (FULL sync) before anything acts on it.
        try:
            self.journal.enqueue(self.sync_id, batch)
        except JournalError:
            # the journal could not take them (disk full?): these events are lost, so rescan once
            # the journal works again
            self._next_reconcile_ns = min(self._next_reconcile_ns, self.clock() + self.debounce_ns)
            raise
        self._hint_dues(c.due_ns for c in batch)
        event(log, logging.DEBUG, "queued", sync=self.name, changes=len(batch))

    def _is_excluded(self, path: str) -> bool:
        assert self._filters is not None
        try:
            return self._filters.is_excluded(path)
        except (OSError, ValueError) as exc:
            # an unreadable .ks3ignore: leave the path alone (neither sent nor deleted); the reconcile
            # reports the problem
            event(log, logging.WARNING, "filter_failed", sync=self.name, path=path, error=str(exc))
            return True

    def _ignore_files_changed(self, changes: Sequence[FsChange], now: int) -> None:
        """A changed .ks3ignore changes what is excluded: re-read it and reconcile soon."""
        if self._filters is None:
            return
        touched = {c.path for c in changes} | {c.src_path for c in changes if c.src_path}
        folders = {p.rpartition("/")[0] for p in touched if p.rpartition("/")[2] == IGNORE_FILE}
        for folder in folders:
            self._filters.forget_ignore_file(folder)
        if folders:
            event(log, logging.INFO, "ignore_file_changed", sync=self.name, folders=",".join(sorted(folders)))
            self._next_reconcile_ns = min(self._next_reconcile_ns, now + self.debounce_ns)

    def _known_under(self, rel_dir: str) -> list[str]:
        """Recorded paths under a moved or deleted folder (a range scan of the journal's key)."""
        return self.journal.synced_paths_under(self.sync_id, rel_dir + "/" if rel_dir else "")

    def _synced_for(self, paths: set[str]) -> dict[str, SyncedEntry]:
        """The journal's records for a batch's paths: point lookups, so a batch costs the same with a
        million tracked files as with ten (never the whole map: ~0.5 s and ~70 MB per 100k files)."""
        return self.journal.synced_for(self.sync_id, paths)

    def _recorded_count(self) -> int:
        """How many files the journal records for this sync, re-counted at most every
        ``COUNT_EVERY_NS`` (any thread): counting a million rows takes ~70 ms, too much for every
        probe or every batch with a delete, and the guards it feeds need no exact figure."""
        now = self.clock()
        count, until = self._recorded
        if until > now:
            return count
        count = self.journal.stats(self.sync_id, recent_errors=0).entries
        # none recorded yet: counted afresh each time (cheap), so the first files recorded arm the
        # emptied-source guard at once
        self._recorded = (count, now + COUNT_EVERY_NS if count else 0)
        return count

    def _reap(self) -> None:
        for future in [f for f in self._batches if f.done()]:
            self._batches.remove(future)
            exc = future.exception()
            if exc is not None:
                event(log, logging.ERROR, "batch_crashed", sync=self.name, error=repr(exc))
        if self._reconciling is not None and self._reconciling.done():
            future, self._reconciling = self._reconciling, None
            exc = future.exception()
            now = self.clock()
            polling = self.watcher is not None and self.watcher.mode is WatchMode.POLLING
            period = POLL_RESCAN_NS if polling else self.rescan_ns
            self._next_reconcile_ns = now + period
            if exc is not None:
                self.counters.errors += 1
                event(log, logging.ERROR, "reconcile_failed", sync=self.name, error=describe_exc(exc))
                self._next_reconcile_ns = now + min(period, self.retry_ns)
                if not self._stop.is_set():
                    self.health.failed(failure_message(exc))
            else:
                self.last_reconcile = future.result()
                self._after_reconcile(self.last_reconcile, now)
            if self.state is State.RECONCILING:
                self.state = (
                    State.POLLING
                    if self.watcher and self.watcher.mode is WatchMode.POLLING
                    else State.WATCHING
                )

    def _after_reconcile(self, result: Any, now: int) -> None:
        self.counters.reconciles += 1
        files = sum(getattr(result, k, 0) for k in ("uploaded", "copied", "deleted", "adopted"))
        sent = getattr(result, "bytes_sent", 0)
        with self._lock:
            self.counters.files += files
            self.counters.bytes_sent += sent
        if self._on_pass is not None and (files or sent):
            self._on_pass(self.name, files, sent)
        stopped = getattr(result, "stopped", None)
        if stopped:
            if self._stop.is_set():
                return  # our own SIGTERM stopped it: not a failure; the next start redoes the pass
            self._paused_until_ns = now + self.retry_ns
            self._next_reconcile_ns = min(self._next_reconcile_ns, self._paused_until_ns)  # the pass is unfinished
            self.state = State.PAUSED
            self.reason = str(stopped)
            self.health.failed(str(stopped))
            return
        # the pass ran to its end: KS3 and the folder work (a file's own failures are reported apart)
        self.health.ok()
        if getattr(result, "ok", False):
            # a clean pass: parked paths get another chance
            unparked = self.journal.unpark(self.sync_id)
            if unparked:
                event(log, logging.INFO, "unparked", sync=self.name, changes=unparked)

    def _start_reconcile(self, now: int) -> None:
        self.state = State.RECONCILING
        self._next_reconcile_ns = now + self.rescan_ns  # provisional; set again when it ends
        self._reconciling = self._pool.submit(self._reconcile, self, self._stop)
        self._reconciling.add_done_callback(self._wake)

    def _submit_due(self, now: int) -> None:
        running = sum(1 for f in self._batches if not f.done())
        if running >= MAX_BATCHES or now < self._next_check_ns:
            return
        changes = self.journal.due(self.sync_id, now, BATCH_LIMIT)
        with self._lock:
            while self._dues and self._dues[0] <= now:
                heapq.heappop(self._dues)
            soonest = self._dues[0] if self._dues else now + IDLE_CHECK_NS
        # Next look: at once after a full batch, else at the next due time we know of (our own
        # enqueues, deferrals, retries), and at least every IDLE_CHECK_NS.
        upcoming = min(now + IDLE_CHECK_NS, soonest)
        self._next_check_ns = now if len(changes) == BATCH_LIMIT else upcoming
        if changes:
            future = self._pool.submit(self._run_batch, changes)
            future.add_done_callback(self._wake)
            self._batches.append(future)

    def _hint_dues(self, dues: Iterable[int]) -> None:
        """Remember when queued work becomes due, so the scheduler looks right then (any thread)."""
        with self._lock:
            for due in sorted(set(dues)):
                heapq.heappush(self._dues, due)
            del self._dues[MAX_KNOWN_DUES:]  # a heap stays a heap when its tail is cut
            if self._dues:
                self._next_check_ns = min(self._next_check_ns, self._dues[0])

    def poke(self) -> None:
        """Ask the journal for due work at the next step (a batch finished, a test enqueued)."""
        self._next_check_ns = 0

    def add_wake_listener(self, callback: Callable[[], None]) -> None:
        """``callback`` (any thread) whenever ``step`` has new work: a watcher note arrived, a batch or
        the reconcile finished. The service then sleeps until ``next_wakeup_ns`` or a callback."""
        self._wake_listeners.append(callback)
        self.buffer.add_listener(callback)

    def _wake(self, _future: object = None) -> None:
        for callback in self._wake_listeners:
            callback()

    # ------------------------------------------------------------------------------------------------
    # a batch (runs on the pool)

    def _run_batch(self, changes: Sequence[QueuedChange]) -> None:
        try:
            self._settle_batch(changes)
        except BaseException as exc:
            # A bug or an unexpected error: the batch's changes must not stay claimed (blocking their
            # paths until a restart). They count an attempt, so a path that always crashes is parked.
            self._release_after_crash(changes, describe_exc(exc))
            raise
        finally:
            self.poke()

    def _release_after_crash(self, changes: Sequence[QueuedChange], why: str) -> None:
        now = self.clock()
        for ch in changes:
            try:
                # a change already settled is gone from the queue; failed() then does nothing
                self.journal.failed(
                    ch.id,
                    f"internal error: {why}",
                    now + self.backoff.delay_ns(ch.attempts),
                    park=self.backoff.should_park(ch.attempts),
                )
            except JournalError as exc:
                event(log, logging.ERROR, "release_failed", sync=self.name, path=ch.path, error=str(exc))

    def _settle_batch(self, changes: Sequence[QueuedChange]) -> None:
        now = self.clock()
        synced = self._synced_for(
            {ch.path for ch in changes} | {ch.src_path for ch in changes if ch.src_path}
        )
        decisions: dict[int, Decision] = {}
        for ch in changes:
            decisions[ch.id] = decide(
                ch.path,
                ch.src_path,
                local_entry(self.root, ch.path, follow_symlinks=self.sync.follow_symlinks),
                ch.src_path is not None and os.path.lexists(self.root / ch.src_path),
                synced,
                delete=self.sync.delete,
                debounce_ns=self.debounce_ns,
                now_ns=now,
                excluded=self.excluded,
            )
        done: list[QueuedChange] = []
        deferred: list[tuple[QueuedChange, int]] = []
        to_send: list[QueuedChange] = []
        for ch in changes:
            d = decisions[ch.id]
            if d.outcome is Outcome.DEFER:
                assert d.defer_until_ns is not None
                deferred.append((ch, d.defer_until_ns))
            elif d.outcome is Outcome.SEND:
                to_send.append(ch)
            else:
                done.append(ch)
        self._defer(deferred)
        failures: dict[int, str] = {}
        interrupted: set[int] = set()
        held: dict[int, tuple[str, int]] = {}
        if to_send:
            failures, interrupted, held = self._execute(to_send, decisions, synced, now)
        for ch in to_send:
            if ch.id in interrupted:
                continue  # stays claimed; the next start releases it
            if ch.id in held:
                # not a failure of the change itself: retried later, never parked
                message, retry_at = held[ch.id]
                self.journal.failed(ch.id, message, retry_at, park=False)
            elif ch.id in failures:
                self._fail(ch, failures[ch.id], now)
            else:
                done.append(ch)
        if done:
            self.journal.done([ch.id for ch in done])
            finished = self.clock()
            for ch in done:
                d = decisions[ch.id]
                if d.outcome is Outcome.SEND:
                    self._note_done(ch, d, finished)

    def _defer(self, deferred: Sequence[tuple[QueuedChange, int]]) -> None:
        if not deferred:
            return
        # Re-queue as a fresh change due when the file has been quiet long enough; the claimed row is
        # then done. A move keeps its source (the copy is still possible after the writer finishes).
        self.journal.enqueue(
            self.sync_id,
            [
                Change(ch.path, ch.kind, ch.src_path, observed_ns=ch.observed_ns, due_ns=until)
                for ch, until in deferred
            ],
        )
        self.journal.done([ch.id for ch, _ in deferred])
        self._hint_dues(until for _, until in deferred)
        for ch, until in deferred:
            event(
                log,
                logging.DEBUG,
                "deferred",
                sync=self.name,
                path=ch.path,
                reason="still being written",
                until_ms=(until - self.clock()) // 1_000_000,
            )

    def _fail(self, ch: QueuedChange, error: str, now: int) -> None:
        park = self.backoff.should_park(ch.attempts)
        retry_at = now + self.backoff.delay_ns(ch.attempts)
        self.journal.failed(ch.id, error, retry_at, park)
        if not park:
            self._hint_dues([retry_at])
        with self._lock:
            self.counters.errors += 1
            self.counters.parked += int(park)
        event(
            log,
            logging.WARNING if not park else logging.ERROR,
            "op_failed",
            sync=self.name,
            path=ch.path,
            kind=ch.kind.value,
            attempt=ch.attempts + 1,
            error=error,
            next="parked" if park else f"retry in {(retry_at - now) / SECOND:.0f}s",
        )

    def _note_done(self, ch: QueuedChange, d: Decision, finished_ns: int) -> None:
        latency = max(0, finished_ns - ch.observed_ns)
        with self._lock:
            self.counters.files += 1
            self.counters.latencies_ns.append(latency)
            del self.counters.latencies_ns[:-1000]
        if self._on_done is not None:
            action = d.note or "sent"
            size = sum(op.local.size for op in d.transfers if hasattr(op, "local"))
            self._on_done(self.name, action, size, latency)

    def _execute(
        self,
        changes: Sequence[QueuedChange],
        decisions: Mapping[int, Decision],
        synced: Mapping[str, SyncedEntry],
        started_ns: int,
    ) -> tuple[dict[int, str], set[int], dict[int, tuple[str, int]]]:
        """Run the batch's transfers, then each change's deletes if its transfers succeeded.
        Returns (failures, interrupted, held: message and retry time) by change id."""
        failures: dict[int, str] = {}
        interrupted: set[int] = set()
        held: dict[int, tuple[str, int]] = {}
        transfers: list[Operation] = []
        owner: dict[str, int] = {}
        for ch in changes:
            for op in decisions[ch.id].transfers:
                transfers.append(op)
                owner[op.path] = ch.id
        progress = _OpLog(self.name)
        vpass = start_pass(self.sync, self.store, self.stamps, started_ns, self.clock)
        checkpoint = self.journal.checkpoint(self.sync_id)
        executor = Executor(
            self.store,
            vpass.watch(checkpoint) if vpass is not None else checkpoint,
            self.root,
            self.transfer,
            progress=progress,
            synced=synced,
            clock=self.clock,
            stop=self._stop,
            keeper=vpass,
        )
        with self._lock:
            if self._stop.is_set():
                executor.close()
                return failures, {ch.id for ch in changes}, held
            self._executors.add(executor)
        try:
            report = executor.run(transfers, ()) if transfers else ExecutionReport()
            failed_paths = dict(report.failed)
            shutting_down = self._stop.is_set()
            if report.stopped is not None and not shutting_down:
                # credentials refused, bucket gone...: nothing else can succeed now
                self._pause(report.stopped)
            elif not shutting_down:
                self._note_batch_health(report)
            for ch in changes:
                errs = [failed_paths[op.path] for op in decisions[ch.id].transfers if op.path in failed_paths]
                if errs and shutting_down:
                    interrupted.add(ch.id)
                elif errs and report.stopped is not None:
                    held[ch.id] = (f"run stopped: {report.stopped}", self._paused_until_ns)
                elif errs:
                    failures[ch.id] = errs[0]
            # deletes: only for changes whose own transfers all succeeded (invariant 3)
            deletes: list[DeleteRemote] = []
            delete_owner: dict[str, int] = {}
            wanted = [
                ch
                for ch in changes
                if decisions[ch.id].deletes
                and ch.id not in failures
                and ch.id not in interrupted
                and ch.id not in held
            ]
            allowed_ids = self._guard_deletes(wanted, decisions, held)
            for ch in wanted:
                if ch.id in allowed_ids:
                    for op in decisions[ch.id].deletes:
                        deletes.append(op)
                        delete_owner[op.path] = ch.id
            counts = Counter(report.counts)
            if deletes and not self._stop.is_set():
                dreport = executor.run([], deletes)
                counts.update(dreport.counts)
                for path, message in dreport.failed:
                    failures.setdefault(delete_owner[path], message)
            elif deletes:
                interrupted.update(delete_owner.values())
            with self._lock:
                self.counters.bytes_sent += report.bytes_sent
            if vpass is not None and not finish_pass(self.name, vpass):
                with self._lock:
                    self.counters.errors += 1
            self._record(counts, len(failures), report.bytes_sent, report.stopped, started_ns)
            return failures, interrupted, held
        finally:
            with self._lock:
                self._executors.discard(executor)
            executor.close()

    def _record(
        self, counts: Counter[str], failed: int, bytes_sent: int, stopped: str | None, started_ns: int
    ) -> None:
        """The batch as a pass record: ``status`` shows files/bytes done and the last success from it."""
        if not counts and not failed:
            return
        self.journal.record_pass(
            self.sync_id,
            PassSummary(
                started_ns=started_ns,
                finished_ns=self.clock(),
                direction=Direction.UPLOAD,
                uploaded=counts["uploaded"],
                copied=counts["copied"],
                deleted=counts["deleted"],
                adopted=counts["adopted"],
                failed=failed,
                bytes_sent=bytes_sent,
                error=stopped,
            ),
        )

    def _guard_deletes(
        self,
        wanted: Sequence[QueuedChange],
        decisions: Mapping[int, Decision],
        held: dict[int, tuple[str, int]],
    ) -> set[int]:
        if not wanted:
            return set()
        now = self.clock()
        source = probe_source(self.root, self._device, self._has_entries())
        if not source.healthy:
            for ch in wanted:
                held[ch.id] = (f"delete held: {source.reason}", now + PROBE_EVERY_NS * 10)
            self._note_held(len(wanted), source.reason)
            return set()
        recorded = self._recorded_count()
        count = sum(_budgeted(decisions[ch.id]) for ch in wanted)
        with self._lock:
            granted = self.budget.allow(count, recorded, now)
        allowed: set[int] = set()
        used = 0
        for ch in wanted:
            n = _budgeted(decisions[ch.id])
            if used + n <= granted:
                allowed.add(ch.id)
                used += n
            else:
                held[ch.id] = (
                    f"delete held by max_delete ({self.budget.limit(recorded)} per "
                    f"{self.sync.rescan_interval:g}s of {recorded} objects)",
                    now + self.rescan_ns,
                )
        if used < granted:
            with self._lock:
                self.budget.refund(granted - used)
        if held:
            self._note_held(len(held), "max_delete guard")
        return allowed

    def _note_held(self, n: int, why: str) -> None:
        with self._lock:
            self.counters.held_deletes += n
        event(log, logging.WARNING, "deletes_held", sync=self.name, count=n, reason=why)

    def _pause(self, why: str) -> None:
        self._paused_until_ns = self.clock() + self.retry_ns
        self.state = State.PAUSED
        self.reason = why
        self.health.failed(why)
        event(
            log,
            logging.ERROR,
            "sync_paused",
            sync=self.name,
            error=why,
            retry_in_s=self.retry_ns / SECOND,
        )

    def _note_batch_health(self, report: ExecutionReport) -> None:
        """A transfer KS3 accepted makes the sync ok; a batch whose every transfer failed because KS3
        could not be reached (network, 5xx outliving the client's retries) makes it failing, and brings
        the reconcile forward: its listing tells whether KS3 is back, and it catches up."""
        if report.counts:
            self.health.ok()
        elif report.failed and report.unreachable == len(report.failed):
            path, message = report.failed[0]
            n = len(report.failed)
            self.health.failed(f"cannot reach KS3 ({n} transfer{'s' if n > 1 else ''} failed): {path}: {message}")
            with self._lock:
                self._next_reconcile_ns = min(self._next_reconcile_ns, self.clock() + self.retry_ns)

    # ------------------------------------------------------------------------------------------------

    def next_wakeup_ns(self) -> int:
        """When ``step`` next has scheduled work (the service sleeps until then or a wake callback).

        Only work that ``step`` could start then counts: a due check or reconcile that must wait for a
        running reconcile or batches is started when they finish, and their completion wakes the
        service (``add_wake_listener``). Counting such a past time would make the service loop spin
        for as long as they run, taking the GIL from the transfer threads: the initial sync ran ~3x
        slower than ``mirror`` because of it."""
        now = self.clock()
        if self.sync_id < 0:
            return now + SECOND  # not started: the service retries the start on its own schedule
        candidates = [self._next_probe_ns]
        if not self._source.healthy:
            return min(candidates)  # only the probe can change anything
        if self._paused_until_ns > now:
            return min(self._next_probe_ns, self._paused_until_ns)
        running = sum(1 for f in self._batches if not f.done())
        if self._reconciling is None:
            if running == 0 or self._next_reconcile_ns > now:
                candidates.append(self._next_reconcile_ns)
            if running < MAX_BATCHES and not (self._next_reconcile_ns <= now and running):
                candidates.append(self._next_check_ns)
        return min(candidates)

    def health_record(self) -> SyncHealth:
        """What the service writes to the journal's ``health`` table about this worker."""
        return SyncHealth(self.sync_id, self.state.value, self.reason, self.health)

    def snapshot(self) -> dict[str, Any]:
        """What the service publishes about this worker (status file, STATUS=, metrics)."""
        with self._lock:
            return {
                "state": self.state.value,
                "reason": self.reason,
                "root": str(self.root),
                "files": self.counters.files,
                "bytes_sent": self.counters.bytes_sent,
                "errors": self.counters.errors,
                "held_deletes": self.counters.held_deletes,
                "reconciles": self.counters.reconciles,
            }


def _budgeted(decision: Decision) -> int:
    """Deletes that count against max_delete: a renamed file's old name is not a loss (its copy
    succeeded first), so only real deletions are budgeted."""
    return sum(1 for op in decision.deletes if op.reason != "renamed")


class _OpLog:
    """The executor's progress subscriber: one log line per operation."""

    def __init__(self, sync: str) -> None:
        self.sync = sync

    def plan_ready(self, entries: int, total_bytes: int) -> None:
        return None

    def bytes_moved(self, n: int) -> None:
        return None

    def entry_started(self, op: Operation) -> None:
        return None

    def entry_done(self, path: str, action: str, ok: bool, message: str = "") -> None:
        if ok:
            event(log, logging.INFO, "op", sync=self.sync, action=action, path=path)
        else:
            event(
                log, logging.WARNING, "op", sync=self.sync, action=action, path=path, ok=False, error=message
            )

    def close(self) -> None:
        return None


def to_journal(change: FsChange, debounce_ns: int) -> Change:
    kind = {Kind.UPSERT: ChangeKind.UPSERT, Kind.DELETE: ChangeKind.DELETE, Kind.MOVE: ChangeKind.MOVE}[
        change.kind
    ]
    return Change(
        change.path,
        kind,
        change.src_path,
        observed_ns=change.observed_ns,
        due_ns=change.observed_ns + debounce_ns,
    )


def local_entry(root: Path, path: str, *, follow_symlinks: bool = False) -> LocalEntry | None:
    """The file at ``path`` now, if it is a regular file (a symlink counts only with
    ``follow_symlinks``, as in the scanner)."""
    if path.rpartition("/")[2].startswith(TMP_PREFIX):
        return None
    try:
        st = os.stat(root / path) if follow_symlinks else os.lstat(root / path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        event(log, logging.INFO, "stat_failed", path=path, error=exc.strerror)
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return LocalEntry(path, FileIdentity(st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns))


def options_hash(sync: SyncConfig) -> str:
    """What the journal compares to notice a sync whose meaning changed (never secrets)."""
    import hashlib
    import json

    data = [str(sync.source), sync.bucket, sync.prefix, sync.encrypt_key_file is not None]
    return hashlib.sha256(json.dumps(data).encode()).hexdigest()[:16]


def describe_exc(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def failure_message(exc: BaseException) -> str:
    """What ``status`` shows for a sync that failed: ks3sync's own errors are written for users (the
    message alone), anything else keeps its type name."""
    return describe(exc) if isinstance(exc, Ks3SyncError) else describe_exc(exc)


def mirror_reconciler(options_for: Callable[[SyncWorker], Any]) -> Reconciler:
    """The default reconcile: one ``run_mirror`` pass (scan + listing + plan + execute)."""

    def reconcile(worker: SyncWorker, stop: threading.Event) -> Any:
        from ks3sync.engine.mirror import run_mirror

        started = time.monotonic()
        event(log, logging.INFO, "reconcile_started", sync=worker.name)
        options = options_for(worker)
        result = run_mirror(
            worker.store,
            worker.journal,
            worker.sync_id,
            worker.root,
            Direction.UPLOAD,
            options,
            progress=_OpLog(worker.name),
            clock=worker.clock,
            stop=stop,  # SIGTERM ends a long rescan too, with in-flight parts checkpointed
            stamps=worker.stamps,
        )
        event(
            log,
            logging.INFO if result.ok else logging.WARNING,
            "reconcile_done",
            sync=worker.name,
            uploaded=result.uploaded,
            copied=result.copied,
            deleted=result.deleted,
            adopted=result.adopted,
            skipped=result.skipped,
            failed=len(result.failed),
            refused_deletes=result.refused_deletes,
            bytes_sent=result.bytes_sent,
            seconds=round(time.monotonic() - started, 3),
            stopped=result.stopped,
        )
        for warning in result.warnings:
            event(log, logging.WARNING, "reconcile_warning", sync=worker.name, warning=warning)
        if result.stopped is None and not stop.is_set():
            prune_after_reconcile(worker.name, worker.sync, worker.store, options, worker.clock(), worker.transfer.jobs)
        return result

    return reconcile
