"""One sync's scheduler and life cycle: watcher notes → journal queue → batches on a pool; reconciles.

``SyncWorker.step(now_ns)`` does one round of bookkeeping and returns at once (huey's consumer habit):
probe the source folder, enqueue what the watcher saw durably (write-ahead, invariant 2), reap
finished work, then start a reconcile when one is due (at start-up, every ``rescan_interval``, soon
after lost events) or else submit the due changes as a batch; its docstring lists the steps. Work runs
on a small thread pool; the journal's ``due()`` never hands out two rows touching one path (nor a
move's source while the move is in flight), so per-path order holds across batches (invariant 3).
Tests drive ``step`` with a fake clock and never sleep to wait.

What runs on the pool lives elsewhere: a batch (``daemon.batch``) decides each change against the file
as it is *now*, runs the transfers, then the deletes of the changes whose own transfers succeeded, and
settles every change in the journal, asking the worker for what only the scheduler knows (pause the
sync, the source's health, when work is due) through ``batch.BatchHost``; a reconcile
(``daemon.reconcile``) is one full mirror pass. With ``versions:`` each batch and each reconcile is a
pass (docs/versions.md §2), stamped from the sync's one ``StampClock``. On stop, interrupted changes stay claimed and go back
to the queue at the next start (``release_claims``): a kill -9 at any point loses nothing but time.

Imports the journal, the scanner's filters, the store protocol, the batch runner and watch/; never
the engine, the protocol client or the CLI (stores are built by ``ks3sync.cli.run`` and passed in).
"""

from __future__ import annotations

import concurrent.futures
import enum
import heapq
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from ks3sync.config import SyncConfig
from ks3sync.daemon.backoff import SECOND, Backoff
from ks3sync.daemon.batch import BatchRunner
from ks3sync.daemon.counters import Counters
from ks3sync.daemon.guard import SourceState, probe_source
from ks3sync.daemon.health import Health, SyncHealth, failure_message
from ks3sync.daemon.logs import describe_exc, event
from ks3sync.journal import Change, ChangeKind, Journal, JournalError
from ks3sync.scan import IGNORE_FILE, Filters
from ks3sync.store.base import Store
from ks3sync.transfer.context import TransferOptions
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


class ReconcileResult(Protocol):
    """What the worker reads of a reconcile's result (``engine.types.MirrorResult`` is one; the worker
    does not import the engine, so it names only what it reads)."""

    @property
    def uploaded(self) -> int: ...
    @property
    def copied(self) -> int: ...
    @property
    def deleted(self) -> int: ...
    @property
    def adopted(self) -> int: ...
    @property
    def bytes_sent(self) -> int: ...
    @property
    def stopped(self) -> str | None:
        """The fatal error that ended the pass early."""
        ...

    @property
    def ok(self) -> bool:
        """Everything that should be in sync is."""
        ...


class Reconciler(Protocol):
    """What the worker calls for a reconcile, on its pool: one full pass of the sync, ended early when
    ``stop`` is set; its result is kept as ``last_reconcile`` (``daemon.reconcile.mirror_reconciler``).
    ``None`` is a reconcile with nothing to report (nothing sent, not stopped, not clean)."""

    def __call__(self, worker: SyncWorker, stop: threading.Event) -> ReconcileResult | None: ...


class SyncWorker:
    """The scheduler and life cycle of one configured sync in the service.

    Life cycle: ``start`` (register the sync, take back a dead predecessor's claims, start watching,
    schedule the start-up reconcile), then ``step`` again and again from the service loop, then
    ``begin_stop`` (no new work; running transfers told to stop) and ``finish_stop`` (wait for them).
    ``state`` and ``reason`` say what it is doing (``State``), ``health`` whether it works, ``counters``
    what it did; ``next_wakeup_ns`` tells the service how long it may sleep.

    Scheduling only: the work runs on a pool of ``MAX_BATCHES`` threads, as batches of queued changes
    (``batches``, a ``batch.BatchRunner``) or a reconcile (``Reconciler``), never both at once. The
    methods a batch calls back (``pause``, ``reconcile_soon``, ``check_source``, ``recorded_count``,
    ``hint_dues``, ``poke``: ``batch.BatchHost``) are safe from its threads. Every time comes from
    ``clock``, so tests step it with a fake clock and never sleep."""

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
                sync.source,
                sync.excludes,
                sync.exclude_from,
                state_paths=state_paths,
                reserved=reserved_prefixes(sync.versions.prefix if sync.versions is not None else None),
            )
        self.excluded = excluded or self._is_excluded
        self.backoff = backoff
        self.retry_ns = retry_ns
        self.health = Health(clock)
        self.debounce_ns = int(sync.debounce * SECOND)
        self.rescan_ns = int(sync.rescan_interval * SECOND)
        self.buffer = ChangeBuffer(self.root, clock=clock, follow_symlinks=sync.follow_symlinks)
        self.watcher = (
            Watcher(self.root, self.buffer, follow_symlinks=sync.follow_symlinks) if watch else None
        )
        self.counters = Counters()
        self._reconcile = reconcile
        self._on_pass = on_pass
        self._pool = concurrent.futures.ThreadPoolExecutor(
            MAX_BATCHES, thread_name_prefix=f"ks3sync-{self.name}"
        )
        self._lock = threading.Lock()  # the due-time heap and the next reconcile time (batch threads)
        self._batches: list[concurrent.futures.Future[None]] = []
        self._reconciling: concurrent.futures.Future[ReconcileResult | None] | None = None
        self._stop = threading.Event()
        self.stamps = StampClock()  # pass stamps of this sync: batches and reconciles (docs/versions.md §2)
        self.batches = BatchRunner(
            self,
            sync,
            journal,
            store,
            transfer,
            clock=clock,
            backoff=backoff,
            excluded=self.excluded,
            stop=self._stop,
            health=self.health,
            counters=self.counters,
            stamps=self.stamps,
            on_done=on_done,
        )
        self.sync_id = -1
        self.state = State.STARTING
        self.reason = ""
        self._device: int | None = None
        self._next_probe_ns = 0
        self._next_reconcile_ns = 0
        self._next_check_ns = 0
        self._dues: list[int] = []  # heap of due times this worker enqueued: when to ask due() next
        self._paused_until_ns = 0
        self._recorded = (0, 0)  # (files the journal records, valid until): see recorded_count
        self._wake_listeners: list[Callable[[], None]] = []
        self._source = SourceState(False, "not probed yet")
        self.last_reconcile: ReconcileResult | None = None

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
        self.batches.stop_running()

    def busy(self) -> bool:
        return any(not f.done() for f in self._batches) or (
            self._reconciling is not None and not self._reconciling.done()
        )

    def finish_stop(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for running work; True if everything finished."""
        deadline = time.monotonic() + timeout
        # batches and the reconcile, waited for together: only whether they are done is read here
        pending: list[concurrent.futures.Future[Any]] = [f for f in self._batches if not f.done()]
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
        """One round of bookkeeping at ``now_ns`` (default: the clock); returns at once, starting at
        most one piece of work. In order:
        1. probe the source folder, at most every ``PROBE_EVERY_NS`` (missing, unmounted or emptied:
           the sync becomes ``UNAVAILABLE``; back again: it watches and reconciles at once);
        2. enqueue what the watcher saw, durably, due after the debounce (write-ahead, invariant 2);
        3. notice lost events (an inotify overflow, the watched folder replaced: a reconcile soon;
           the watch limit reached: polling mode);
        4. reap finished batches and the reconcile (its result schedules the next one, pauses the
           sync or makes it ok);
        5. stop here while the source is unavailable or the sync paused (a pause that ended goes
           back to watching), or while a reconcile runs;
        6. start a reconcile if one is due, once running batches have finished (a reconcile must not
           race a batch on a path); otherwise
        7. claim due changes from the journal and submit them as a batch, if fewer than
           ``MAX_BATCHES`` run and the next due check has come.
        After ``begin_stop`` a step only reaps."""
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
        return self.sync_id >= 0 and self.recorded_count() > 0

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
        self.hint_dues(c.due_ns for c in batch)
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

    def recorded_count(self) -> int:
        """How many files the journal records for this sync, re-counted at most every
        ``COUNT_EVERY_NS`` (any thread): counting every record is too slow for every probe or every
        batch with a delete with a million records (D20), and the guards it feeds need no exact figure."""
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
            reconciled, self._reconciling = self._reconciling, None
            exc = reconciled.exception()
            now = self.clock()
            polling = self.watcher is not None and self.watcher.mode is WatchMode.POLLING
            period = POLL_RESCAN_NS if polling else self.rescan_ns
            self._next_reconcile_ns = now + period
            if exc is not None:
                self.counters.error()
                event(log, logging.ERROR, "reconcile_failed", sync=self.name, error=describe_exc(exc))
                self._next_reconcile_ns = now + min(period, self.retry_ns)
                if not self._stop.is_set():
                    self.health.failed(failure_message(exc))
            else:
                self.last_reconcile = reconciled.result()
                self._after_reconcile(self.last_reconcile, now)
            if self.state is State.RECONCILING:
                self.state = (
                    State.POLLING
                    if self.watcher and self.watcher.mode is WatchMode.POLLING
                    else State.WATCHING
                )

    def _after_reconcile(self, result: ReconcileResult | None, now: int) -> None:
        files = result.uploaded + result.copied + result.deleted + result.adopted if result is not None else 0
        sent = result.bytes_sent if result is not None else 0
        self.counters.reconciled(files, sent)
        if self._on_pass is not None and (files or sent):
            self._on_pass(self.name, files, sent)
        stopped = result.stopped if result is not None else None
        if stopped:
            if self._stop.is_set():
                return  # our own SIGTERM stopped it: not a failure; the next start redoes the pass
            self._paused_until_ns = now + self.retry_ns
            self._next_reconcile_ns = min(
                self._next_reconcile_ns, self._paused_until_ns
            )  # the pass is unfinished
            self.state = State.PAUSED
            self.reason = str(stopped)
            self.health.failed(str(stopped))
            return
        # the pass ran to its end: KS3 and the folder work (a file's own failures are reported apart)
        self.health.ok()
        if result is not None and result.ok:
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
            future = self._pool.submit(self.batches.run, changes)
            future.add_done_callback(self._wake)
            self._batches.append(future)

    def hint_dues(self, dues: Iterable[int]) -> None:
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
    # what a batch asks of the scheduler (batch.BatchHost; any thread)

    def pause(self, why: str) -> int:
        """The run was stopped (credentials refused, bucket gone): nothing else can succeed now. Pause
        the sync for ``retry_ns``; returns until when."""
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
        return self._paused_until_ns

    def reconcile_soon(self) -> None:
        """Bring the next reconcile forward to within ``retry_ns`` (KS3 could not be reached)."""
        with self._lock:
            self._next_reconcile_ns = min(self._next_reconcile_ns, self.clock() + self.retry_ns)

    def check_source(self) -> SourceState:
        """The source folder now (before deletes run: still there, mounted, not emptied?)."""
        return probe_source(self.root, self._device, self._has_entries())

    # ------------------------------------------------------------------------------------------------

    def next_wakeup_ns(self) -> int:
        """When ``step`` next has scheduled work (the service sleeps until then or a wake callback).

        Only work that ``step`` could start then counts: a due check or reconcile that must wait for a
        running reconcile or batches is started when they finish, and their completion wakes the
        service (``add_wake_listener``). Counting such a past time would make the service loop spin
        for as long as they run, taking the GIL from the transfer threads (D20)."""
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
        return {
            "state": self.state.value,
            "reason": self.reason,
            "root": str(self.root),
            **self.counters.snapshot(),
        }


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


def options_hash(sync: SyncConfig) -> str:
    """What the journal compares to notice a sync whose meaning changed (never secrets)."""
    import hashlib
    import json

    data = [str(sync.source), sync.bucket, sync.prefix, sync.encrypt_key_file is not None]
    return hashlib.sha256(json.dumps(data).encode()).hexdigest()[:16]
