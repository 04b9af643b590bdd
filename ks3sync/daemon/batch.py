"""One batch of queued changes, run on a worker's pool: decide, transfer, guarded deletes, settle, record.

``BatchRunner.run(changes)`` takes changes the journal handed out (``Journal.due``: never two touching
one path) and:
1. decides each against the file as it is *now* (``decide``: send, wait for a writer to finish, or
   nothing to do); a change still being written is re-queued for later (``deferred``);
2. runs the transfers of the changes to send on one ``Executor``;
3. settles what each change's transfers did (``BatchOutcome``): failed, held back because the run was
   stopped (credentials refused, bucket gone: the sync pauses), or interrupted by our own stop;
4. runs the deletes of the changes whose own transfers all succeeded (invariant 3: a move's source is
   deleted only after its copy), if the source folder still looks healthy and the ``max_delete``
   budget allows them (invariant 4), else holds them back for later;
5. with ``versions:``, the batch is a pass (docs/versions.md §2): what its transfers and deletes
   overwrite or delete is copied to its versions first (the executor's keeper, ``daemon.versioning``),
   and its manifest is written after its deletes, last;
6. records the batch as a pass in the journal (``status`` shows it), and settles every change in the
   queue: done, retried with backoff, or parked after repeated failure. An interrupted change stays
   claimed and goes back to the queue at the next start (``release_claims``).
A batch that raises releases its changes with an attempt counted, so a path that always crashes is
parked rather than blocking its path until a restart.

What a batch needs from its sync's scheduler (pause the sync, look at the source folder, wake the
scheduler, bring the reconcile forward) is the ``BatchHost`` protocol, which ``SyncWorker`` implements.

Imports the journal, the store protocol, the executor, the daemon's pure parts (``decide``, ``guard``)
and its versioning; never the worker, the protocol client or the CLI.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ks3sync.config import SyncConfig
from ks3sync.daemon.backoff import SECOND, Backoff
from ks3sync.daemon.counters import Counters
from ks3sync.daemon.decide import Decision, Outcome, decide
from ks3sync.daemon.guard import DeleteBudget, SourceState
from ks3sync.daemon.health import Health
from ks3sync.daemon.logs import OpLog, describe_exc, event
from ks3sync.daemon.versioning import finish_pass, start_pass
from ks3sync.journal import Change, Journal, JournalError, QueuedChange
from ks3sync.model import (
    Action,
    Adopt,
    Copy,
    DeleteRemote,
    Direction,
    FileIdentity,
    LocalEntry,
    Operation,
    PassSummary,
    SyncedEntry,
    Upload,
)
from ks3sync.scan import TMP_PREFIX
from ks3sync.store.base import Store
from ks3sync.transfer.context import TransferOptions
from ks3sync.transfer.executor import ExecutionReport, Executor
from ks3sync.versions.stamp import StampClock

log = logging.getLogger("ks3sync.daemon")

HELD_DELETE_RETRY_NS = 10 * SECOND  # deletes held while the source looks unhealthy are tried again after


@dataclass(frozen=True, slots=True)
class Held:
    """A change held back, not failed: retried at ``retry_at_ns`` and never parked."""

    message: str
    retry_at_ns: int


@dataclass(slots=True)
class BatchOutcome:
    """What running a batch's operations did, by change id; a change in none of the three succeeded."""

    failed: dict[int, str] = field(default_factory=dict)  # its first error: retried with backoff or parked
    interrupted: set[int] = field(default_factory=set)  # our own stop: stays claimed until the next start
    held: dict[int, Held] = field(default_factory=dict)

    def settled(self, change_id: int) -> bool:
        """Whether the change ended in one of the three (its deletes must then not run)."""
        return change_id in self.failed or change_id in self.interrupted or change_id in self.held


class BatchHost(Protocol):
    """What a batch asks of its sync's scheduler (``SyncWorker``). Called from the pool's threads."""

    @property
    def sync_id(self) -> int: ...

    def pause(self, why: str) -> int:
        """Pause the sync (the run was stopped: nothing else can succeed now); returns until when."""
        ...

    def reconcile_soon(self) -> None:
        """Bring the next reconcile forward (KS3 could not be reached: it tells when it is back)."""
        ...

    def check_source(self) -> SourceState:
        """The source folder now: is it still there, mounted, not emptied?"""
        ...

    def recorded_count(self) -> int:
        """About how many files the journal records for the sync (the delete budget's base)."""
        ...

    def hint_dues(self, dues: Iterable[int]) -> None:
        """Queued work becomes due at these times: look for it then."""
        ...

    def poke(self) -> None:
        """Ask the journal for due work at the next step (this batch is finishing)."""
        ...


class BatchRunner:
    """Runs one sync's batches (``run``, on the worker's pool) and stops the running ones on request."""

    def __init__(
        self,
        host: BatchHost,
        sync: SyncConfig,
        journal: Journal,
        store: Store,
        transfer: TransferOptions,
        *,
        clock: Callable[[], int],
        backoff: Backoff,
        excluded: Callable[[str], bool],
        stop: threading.Event,
        health: Health,
        counters: Counters,
        stamps: StampClock,
        on_done: Callable[[str, str, int, int], None] | None = None,
    ) -> None:
        self.host = host
        self.sync = sync
        self.name = sync.name
        self.root = sync.source
        self.journal = journal
        self.store = store
        self.transfer = transfer
        self.clock = clock
        self.backoff = backoff
        self.excluded = excluded
        self.health = health
        self.counters = counters
        self.stamps = stamps  # the sync's pass stamps, shared with its reconciles
        self.debounce_ns = int(sync.debounce * SECOND)
        self.rescan_ns = int(sync.rescan_interval * SECOND)
        self.budget = DeleteBudget(sync.max_delete.count, sync.max_delete.percent, self.rescan_ns)
        self._stop = stop
        self._on_done = on_done
        self._lock = threading.Lock()  # the budget and the running executors (batch threads, begin_stop)
        self._executors: set[Executor] = set()

    def stop_running(self) -> None:
        """Tell running transfers to stop (the worker's stop event is already set): a multipart upload
        finishes the parts in flight and records them; the rest resumes at the next start."""
        with self._lock:
            for executor in self._executors:
                executor.ctx.stop.set()

    def run(self, changes: Sequence[QueuedChange]) -> None:
        """One batch, start to end (see the module docstring)."""
        try:
            self._settle_batch(changes)
        except BaseException as exc:
            # A bug or an unexpected error: the batch's changes must not stay claimed (blocking their
            # paths until a restart). They count an attempt, so a path that always crashes is parked.
            self._release_after_crash(changes, describe_exc(exc))
            raise
        finally:
            self.host.poke()

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
        outcome = self._execute(to_send, decisions, synced, now) if to_send else BatchOutcome()
        for ch in to_send:
            if ch.id in outcome.interrupted:
                continue  # stays claimed; the next start releases it
            if ch.id in outcome.held:
                # not a failure of the change itself: retried later, never parked
                held = outcome.held[ch.id]
                self.journal.failed(ch.id, held.message, held.retry_at_ns, park=False)
            elif ch.id in outcome.failed:
                self._fail(ch, outcome.failed[ch.id], now)
            else:
                done.append(ch)
        if done:
            self.journal.done([ch.id for ch in done])
            finished = self.clock()
            for ch in done:
                d = decisions[ch.id]
                if d.outcome is Outcome.SEND:
                    self._note_done(ch, d, finished)

    def _synced_for(self, paths: set[str]) -> dict[str, SyncedEntry]:
        """The journal's records for a batch's paths: point lookups, so a batch costs the same with a
        million tracked files as with ten (never the whole map: ~0.5 s and ~70 MB per 100k files)."""
        return self.journal.synced_for(self.host.sync_id, paths)

    def _defer(self, deferred: Sequence[tuple[QueuedChange, int]]) -> None:
        if not deferred:
            return
        # Re-queue as a fresh change due when the file has been quiet long enough; the claimed row is
        # then done. A move keeps its source (the copy is still possible after the writer finishes).
        self.journal.enqueue(
            self.host.sync_id,
            [
                Change(ch.path, ch.kind, ch.src_path, observed_ns=ch.observed_ns, due_ns=until)
                for ch, until in deferred
            ],
        )
        self.journal.done([ch.id for ch, _ in deferred])
        self.host.hint_dues(until for _, until in deferred)
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
            self.host.hint_dues([retry_at])
        self.counters.change_failed(parked=park)
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
        self.counters.file_done(latency)
        if self._on_done is not None:
            action = d.note or "sent"
            size = sum(op.local.size for op in d.transfers if isinstance(op, Upload | Copy | Adopt))
            self._on_done(self.name, action, size, latency)

    # ------------------------------------------------------------------------------------------------
    # the operations: transfers, then the deletes they allow, then the pass record

    def _execute(
        self,
        changes: Sequence[QueuedChange],
        decisions: Mapping[int, Decision],
        synced: Mapping[str, SyncedEntry],
        started_ns: int,
    ) -> BatchOutcome:
        """Run the batch's transfers, then each change's deletes if its transfers succeeded."""
        transfers: list[Operation] = [op for ch in changes for op in decisions[ch.id].transfers]
        vpass = start_pass(self.sync, self.store, self.stamps, started_ns, self.clock)
        checkpoint = self.journal.checkpoint(self.host.sync_id)
        executor = Executor(
            self.store,
            vpass.watch(checkpoint) if vpass is not None else checkpoint,
            self.root,
            self.transfer,
            progress=OpLog(self.name),
            synced=synced,
            clock=self.clock,
            stop=self._stop,
            keeper=vpass,
        )
        with self._lock:
            if self._stop.is_set():
                executor.close()
                return BatchOutcome(interrupted={ch.id for ch in changes})
            self._executors.add(executor)
        try:
            report = executor.run(transfers, ()) if transfers else ExecutionReport()
            outcome = self._transfer_outcome(changes, decisions, report)
            counts = Counter(report.counts)
            counts.update(self._run_deletes(executor, changes, decisions, outcome))
            self.counters.sent(report.bytes_sent)
            if vpass is not None and not finish_pass(self.name, vpass):
                self.counters.error()
            self._record(counts, len(outcome.failed), report.bytes_sent, report.stopped, started_ns)
            return outcome
        finally:
            with self._lock:
                self._executors.discard(executor)
            executor.close()

    def _transfer_outcome(
        self, changes: Sequence[QueuedChange], decisions: Mapping[int, Decision], report: ExecutionReport
    ) -> BatchOutcome:
        """Settle each change by its own transfers' failures; a stopped run pauses the sync."""
        outcome = BatchOutcome()
        failed_paths = dict(report.failed)
        shutting_down = self._stop.is_set()
        paused_until = 0
        if report.stopped is not None and not shutting_down:
            # credentials refused, bucket gone...: nothing else can succeed now
            paused_until = self.host.pause(report.stopped)
        elif not shutting_down:
            self._note_batch_health(report)
        for ch in changes:
            errs = [failed_paths[op.path] for op in decisions[ch.id].transfers if op.path in failed_paths]
            if errs and shutting_down:
                outcome.interrupted.add(ch.id)
            elif errs and report.stopped is not None:
                outcome.held[ch.id] = Held(f"run stopped: {report.stopped}", paused_until)
            elif errs:
                outcome.failed[ch.id] = errs[0]
        return outcome

    def _run_deletes(
        self,
        executor: Executor,
        changes: Sequence[QueuedChange],
        decisions: Mapping[int, Decision],
        outcome: BatchOutcome,
    ) -> Counter[Action]:
        """The deletes of changes whose own transfers all succeeded (invariant 3), as far as the guards
        allow; their failures and interruptions go into ``outcome``. Returns the deletes' counts."""
        wanted = [ch for ch in changes if decisions[ch.id].deletes and not outcome.settled(ch.id)]
        allowed_ids = self._guard_deletes(wanted, decisions, outcome.held)
        deletes: list[DeleteRemote] = []
        delete_owner: dict[str, int] = {}
        for ch in wanted:
            if ch.id in allowed_ids:
                for op in decisions[ch.id].deletes:
                    deletes.append(op)
                    delete_owner[op.path] = ch.id
        if deletes and not self._stop.is_set():
            dreport = executor.run([], deletes)
            for path, message in dreport.failed:
                outcome.failed.setdefault(delete_owner[path], message)
            return Counter(dreport.counts)
        if deletes:
            outcome.interrupted.update(delete_owner.values())
        return Counter()

    def _record(
        self, counts: Counter[Action], failed: int, bytes_sent: int, stopped: str | None, started_ns: int
    ) -> None:
        """The batch as a pass record: ``status`` shows files/bytes done and the last success from it."""
        if not counts and not failed:
            return
        self.journal.record_pass(
            self.host.sync_id,
            PassSummary(
                started_ns=started_ns,
                finished_ns=self.clock(),
                direction=Direction.UPLOAD,
                uploaded=counts[Action.UPLOADED],
                copied=counts[Action.COPIED],
                deleted=counts[Action.DELETED],
                adopted=counts[Action.ADOPTED],
                failed=failed,
                bytes_sent=bytes_sent,
                error=stopped,
            ),
        )

    def _guard_deletes(
        self,
        wanted: Sequence[QueuedChange],
        decisions: Mapping[int, Decision],
        held: dict[int, Held],
    ) -> set[int]:
        """The ids of the changes in ``wanted`` whose deletes may run now; the others go into ``held``.
        Nothing while the source looks unhealthy (missing, unmounted, emptied); within the sync's
        ``max_delete`` budget per rescan interval otherwise (a rename's old name is not budgeted)."""
        if not wanted:
            return set()
        now = self.clock()
        source = self.host.check_source()
        if not source.healthy:
            for ch in wanted:
                held[ch.id] = Held(f"delete held: {source.reason}", now + HELD_DELETE_RETRY_NS)
            self._note_held(len(wanted), source.reason)
            return set()
        recorded = self.host.recorded_count()
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
                held[ch.id] = Held(
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
        self.counters.deletes_held(n)
        event(log, logging.WARNING, "deletes_held", sync=self.name, count=n, reason=why)

    def _note_batch_health(self, report: ExecutionReport) -> None:
        """A transfer KS3 accepted makes the sync ok; a batch whose every transfer failed because KS3
        could not be reached (network, 5xx outliving the client's retries) makes it failing, and brings
        the reconcile forward: its listing tells whether KS3 is back, and it catches up."""
        if report.counts:
            self.health.ok()
        elif report.failed and report.unreachable == len(report.failed):
            path, message = report.failed[0]
            n = len(report.failed)
            self.health.failed(
                f"cannot reach KS3 ({n} transfer{'s' if n > 1 else ''} failed): {path}: {message}"
            )
            self.host.reconcile_soon()


def _budgeted(decision: Decision) -> int:
    """Deletes that count against max_delete: a renamed file's old name is not a loss (its copy
    succeeded first), so only real deletions are budgeted."""
    return sum(1 for op in decision.deletes if op.reason != "renamed")


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
