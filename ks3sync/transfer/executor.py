"""Carry out a plan: transfers on a bounded thread pool, then deletes, last, only if nothing failed.

rclone's shape: the plan's transfers go to ``jobs`` file workers (each file worker reads/hashes/encrypts
its file); multipart parts (and the ranges of a large restore) go to a second, smaller pool of part
workers so a big file moves with full concurrency without starving small ones, and without a worker ever
waiting on a task queued behind it. Two different limits apply (docs/decisions.md D19): small requests
are limited by round trips, so there are many file workers (``jobs``, 64 by default) and the client's
request limit adapts how many of their requests are in flight (ks3/limiter.py); large ones are limited
by memory and bandwidth, so the part workers are as many as the byte budget
(``TransferOptions.bytes_in_flight``) holds parts of the part size.
Every exception is classified once (ks3sync.errors.classify): RETRY entries get one more attempt at the
end of the pass, SKIP entries are reported, STOP ends the run cleanly (queued entries are reported as
not attempted). Deletes run only when the transfers all succeeded (invariant 4); with a keeper (a backup
prefix, or the pass's versions: ``transfer.keep``) each object is copied away first (a batch of deletes:
the first copy alone, then the rest side by side on the file pool) and is deleted only if its copy
succeeded.

Must not import: ks3sync.ks3, the journal, the planner, the CLI.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ks3sync.errors import (
    Disposition,
    Ks3SyncError,
    PermanentError,
    TransientError,
    classify,
    describe,
    is_known_error,
)
from ks3sync.model import (
    Action,
    Adopt,
    Checkpoint,
    Copy,
    DeleteLocal,
    DeleteRemote,
    Download,
    Forget,
    Operation,
    RemoteEntry,
    SyncedEntry,
    Upload,
)
from ks3sync.store.base import Store
from ks3sync.transfer.checkpoint import GuardedCheckpoint
from ks3sync.transfer.context import StopSignal, TransferContext, TransferOptions
from ks3sync.transfer.download import delete_local, download_file
from ks3sync.transfer.keep import BackupKeeper, Keeper, keep_before_delete, keep_before_overwrite
from ks3sync.transfer.progress import NullProgress, ProgressSubscriber
from ks3sync.transfer.ranged import MAX_RANGES_AHEAD
from ks3sync.transfer.tasks import adopt_object, copy_object
from ks3sync.transfer.throttle import ByteBudget, TokenBucket
from ks3sync.transfer.upload import upload_file

log = logging.getLogger(__name__)

DELETE_BATCH = 1000
STOP_REQUESTED = "stopped on request before the pass finished (unfinished uploads resume next time)"


class NotAttempted(PermanentError):
    """The run stopped before this entry was tried."""


@dataclass(slots=True)
class ExecutionReport:
    counts: Counter[Action] = field(default_factory=Counter)
    failed: list[tuple[str, str]] = field(default_factory=list)
    bytes_sent: int = 0
    bytes_received: int = 0
    stopped: str | None = None  # the fatal error that ended the run
    unreachable: int = 0  # of ``failed``: those that failed because KS3 could not be reached (TransientError)
    deletes_skipped: int = 0  # deletes not run because something failed
    untagged_reads: int = 0  # encrypted objects accepted without ks3sync's integrity tag

    @property
    def ok(self) -> bool:
        return not self.failed and self.stopped is None


def part_workers(options: TransferOptions) -> int:
    """As many part workers as the byte budget holds parts (8 at the defaults), at most ``jobs``."""
    return max(1, min(options.jobs, max(2, options.bytes_in_flight // options.part_size)))


def operation_bytes(op: Operation) -> int:
    """Bytes an operation is expected to move (the progress total). Copies and adoptions move none
    unless they fall back to a transfer."""
    if isinstance(op, Upload):
        return op.local.size
    if isinstance(op, Download):
        return op.remote.size
    return 0


class Executor:
    """One executor per run (or per daemon batch); ``close()`` shuts its pools down."""

    def __init__(
        self,
        store: Store,
        checkpoint: Checkpoint,
        root: Path,
        options: TransferOptions,
        *,
        progress: ProgressSubscriber | None = None,
        synced: Mapping[str, SyncedEntry] | None = None,
        remote: Mapping[str, RemoteEntry] | None = None,
        clock: Callable[[], int] = time.time_ns,
        throttle: TokenBucket | None = None,
        stop: threading.Event | None = None,
        keeper: Keeper | None = None,
    ) -> None:
        """``stop``: the caller's "finish up" event. Once set, no new entry or part starts; parts already
        sending finish and are checkpointed (their uploads resume next time), and the report says
        ``stopped``. ``synced`` and ``remote`` are only looked up by the paths of the operations run (an
        operation's own path, a copy's source): callers pass just those, never a whole tree's map.
        ``remote=None`` means "not listed": keeping what a write replaces HEADs the object instead.
        ``keeper``: what copies replaced objects away (the caller's pass of versions); by default a
        ``BackupKeeper`` when ``options.backup_prefix`` is set, else none."""
        self.progress = progress or NullProgress()
        self._lock = threading.Lock()
        self._sent = 0
        self._received = 0
        # One bucket for every worker and both directions: --bwlimit is the process's total rate.
        self._bucket = throttle or (TokenBucket(options.bwlimit) if options.bwlimit else None)
        self._file_pool = concurrent.futures.ThreadPoolExecutor(
            options.jobs, thread_name_prefix="ks3sync-file"
        )
        self._part_pool = concurrent.futures.ThreadPoolExecutor(
            part_workers(options), thread_name_prefix="ks3sync-part"
        )
        self.ctx = TransferContext(
            store=store,
            checkpoint=GuardedCheckpoint(checkpoint),
            root=root,
            options=options,
            part_pool=self._part_pool,
            part_budget=ByteBudget(max(options.bytes_in_flight, 2 * options.part_size)),
            parallel_ranges=min(MAX_RANGES_AHEAD, part_workers(options)),
            meter_sent=self._on_sent,
            meter_received=self._on_received,
            stop=StopSignal(stop),
            synced=synced or {},
            remote=remote,
            clock=clock,
            keeper=keeper
            if keeper is not None
            else (BackupKeeper(options.backup_prefix) if options.backup_prefix is not None else None),
        )

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.ctx.stop.set()
        self._file_pool.shutdown(wait=True, cancel_futures=True)
        self._part_pool.shutdown(wait=True, cancel_futures=True)
        self.ctx.close_local_tree()  # the restore's open folders

    # ------------------------------------------------------------------ metering

    def _on_sent(self, n: int) -> None:
        if self._bucket is not None:
            self._bucket.consume(n)
        with self._lock:
            self._sent += n
        self.progress.bytes_moved(n)

    def _on_received(self, n: int) -> None:
        if self._bucket is not None:
            self._bucket.consume(n)
        with self._lock:
            self._received += n
        self.progress.bytes_moved(n)

    # ------------------------------------------------------------------ running

    def run(self, transfers: Sequence[Operation], deletes: Sequence[Operation] = ()) -> ExecutionReport:
        """Transfers (with one retry round), then deletes if all succeeded. May be called more than once
        (the daemon runs a batch's transfers and its deletes separately); each report counts its own call.
        Once ``ctx.stop`` is set (a fatal error, ``close()``, a shutting-down daemon) nothing new starts."""
        report = ExecutionReport()
        with self._lock:
            sent_before, received_before = self._sent, self._received
        untagged_before = self.ctx.untagged_reads.value
        self.progress.plan_ready(len(transfers) + len(deletes), sum(operation_bytes(op) for op in transfers))
        retry = self._run_round(transfers, report, final=False)
        self._note_requested_stop(report)
        if retry and report.stopped is None:
            log.info("retrying %d entries once more", len(retry))
            self._run_round(retry, report, final=True)
            self._note_requested_stop(report)
        if deletes:
            if report.ok:
                self._run_deletes(deletes, report)
            else:
                report.deletes_skipped = len(deletes)
                log.warning("%d deletes skipped because this pass had failures", len(deletes))
        with self._lock:
            report.bytes_sent = self._sent - sent_before
            report.bytes_received = self._received - received_before
        report.untagged_reads = self.ctx.untagged_reads.value - untagged_before
        return report

    def _note_requested_stop(self, report: ExecutionReport) -> None:
        if report.stopped is None and self.ctx.stop.by_request:
            report.stopped = STOP_REQUESTED
            log.info("stopping: %s", STOP_REQUESTED)

    def _run_round(
        self, ops: Sequence[Operation], report: ExecutionReport, *, final: bool
    ) -> list[Operation]:
        """Run ``ops`` concurrently; returns the ones to retry (only when not ``final``).

        ``jobs`` worker loops take the next operation from a shared cursor and record its outcome
        themselves: no future per entry and no hand-off to this thread per finished entry (waking the
        waiting thread for each completion was a visible share of a small-file run's CPU: D20)."""
        retry: list[Operation] = []
        cursor = iter(ops)
        take = threading.Lock()

        def loop() -> None:
            while True:
                with take:
                    op = next(cursor, None)
                if op is None:
                    return
                self.progress.entry_started(op)
                try:
                    action = self._run_one(op)
                except Exception as exc:  # noqa: BLE001 - every failure is classified and reported below
                    self._entry_failed(op, exc, report, retry, final=final)
                    continue
                with self._lock:
                    report.counts[action] += 1
                self.progress.entry_done(op.path, action, True)

        loops = [self._file_pool.submit(loop) for _ in range(min(self.ctx.options.jobs, len(ops)))]
        concurrent.futures.wait(loops)
        for finished in loops:
            finished.result()  # a BaseException (not an entry's failure) surfaces here
        return retry

    def _entry_failed(
        self, op: Operation, exc: Exception, report: ExecutionReport, retry: list[Operation], *, final: bool
    ) -> None:
        disposition = classify(exc)
        with self._lock:
            if disposition is Disposition.STOP and report.stopped is None:
                report.stopped = describe(exc)
                self.ctx.stop.set()
                log.error("stopping: %s", report.stopped)
            if disposition is Disposition.RETRY and not final and not self.ctx.stop.is_set():
                log.info("will retry %s: %s", op.path, describe(exc))
                retry.append(op)
                return
            message = describe(exc)
            report.failed.append((op.path, message))
            report.unreachable += isinstance(exc, TransientError)
        if not is_known_error(exc):
            log.error("unexpected error on %s", op.path, exc_info=exc)
        self.progress.entry_done(op.path, _verb(op), False, message)

    def _run_one(self, op: Operation) -> Action:
        if self.ctx.stop.is_set():
            raise NotAttempted(f"{op.path}: not attempted, the run stopped")
        ctx = self.ctx
        if isinstance(op, Upload):
            keep_before_overwrite(ctx, op.path)
            upload_file(ctx, op.path)
            return Action.UPLOADED
        if isinstance(op, Copy):
            return copy_object(ctx, op)[0]
        if isinstance(op, Adopt):
            return adopt_object(ctx, op)[0]
        if isinstance(op, Download):
            download_file(ctx, op.path, op.remote.size)
            return Action.DOWNLOADED
        if isinstance(op, Forget):
            ctx.checkpoint.removed([op.path])
            return Action.FORGOTTEN
        if isinstance(op, DeleteLocal):
            delete_local(ctx, op.path)
            ctx.checkpoint.removed([op.path])
            return Action.DELETED
        # A DeleteRemote never gets here: run() hands remote deletes to _delete_remote, in batches.
        raise TypeError(f"unknown operation {op!r}")

    # ------------------------------------------------------------------ deletes

    def _run_deletes(self, deletes: Sequence[Operation], report: ExecutionReport) -> None:
        remote = [op for op in deletes if isinstance(op, DeleteRemote)]
        other = [op for op in deletes if not isinstance(op, DeleteRemote)]
        for start in range(0, len(remote), DELETE_BATCH):
            self._delete_remote(remote[start : start + DELETE_BATCH], report)
        if other:
            self._run_round(other, report, final=True)

    def _delete_remote(self, batch: Sequence[DeleteRemote], report: ExecutionReport) -> None:
        store = self.ctx.store
        to_delete: list[str] = []
        failures: dict[str, str] = {}
        kept = self._keep_all(batch, stopped=report.stopped)
        for op in batch:
            outcome = kept[op.path]
            if isinstance(outcome, Exception):
                if classify(outcome) is Disposition.STOP and report.stopped is None:
                    report.stopped = describe(outcome)
                # Without its copy the object must not be destroyed (invariant 4).
                failures[op.path] = f"backup copy failed, not deleted: {describe(outcome)}"
            elif isinstance(outcome, str):
                failures[op.path] = outcome
            else:
                to_delete.append(op.path)
        if to_delete:
            try:
                failures.update(store.delete_many(to_delete))
            except Ks3SyncError as exc:
                if classify(exc) is Disposition.STOP:
                    report.stopped = describe(exc)
                failures.update((path, f"delete failed: {describe(exc)}") for path in to_delete)
        deleted = [path for path in to_delete if path not in failures]
        if deleted:
            self.ctx.checkpoint.removed(deleted)
        report.counts[Action.DELETED] += len(deleted)
        report.failed.extend(failures.items())
        for path in deleted:
            self.progress.entry_done(path, Action.DELETED, True)
        for path, message in failures.items():
            self.progress.entry_done(path, "delete", False, message)

    def _keep_all(
        self, batch: Sequence[DeleteRemote], *, stopped: str | None
    ) -> dict[str, bool | str | Ks3SyncError]:
        """Keep every object of a delete batch first (the keeper's copies): by path, True (kept, or
        nothing to keep), False (already gone), a refusal message, or the copy's error. The first copy
        runs alone; if it succeeds the rest run side by side on the file pool. After a fatal answer no
        copy is started any more (those already sent finish, like parts in flight)."""
        for op in batch:
            self.progress.entry_started(op)
        if stopped is not None:
            return {op.path: f"not deleted, the run stopped: {stopped}" for op in batch}
        if self.ctx.keeper is None:
            return {op.path: True for op in batch}
        fatal: list[str] = []
        lock = threading.Lock()

        def keep(op: DeleteRemote) -> bool | str | Ks3SyncError:
            with lock:
                if fatal:
                    return f"not deleted, the run stopped: {fatal[0]}"
            if self.ctx.stop.is_set():
                return "not deleted, the run stopped"
            try:
                return keep_before_delete(self.ctx, op.remote)
            except Ks3SyncError as exc:
                if classify(exc) is Disposition.STOP:
                    with lock:
                        fatal.append(describe(exc))
                return exc

        first, rest = batch[0], batch[1:]
        outcomes = {first.path: keep(first)}
        if len(rest) == 1:  # one more copy: not worth a hand-over to the pool
            outcomes.update((op.path, keep(op)) for op in rest)
        elif rest:
            outcomes.update(zip((op.path for op in rest), self._file_pool.map(keep, rest), strict=True))
        return outcomes


def _verb(op: Operation) -> str:
    return type(op).__name__.lower()
