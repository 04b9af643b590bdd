"""The service: every configured sync's worker in one process, systemd notifications, each sync's
health in the journal, metrics, and a bounded shutdown.

``Service.step(now_ns)`` steps every worker once; a worker that raises is logged and marked, and the
others go on (one sync failing — its folder unmounted, its bucket gone — never stops the rest).
``Service.run(stop)`` is the loop ``ks3sync run`` uses: step, then wait for the next scheduled time, an
event from a watcher, or ``stop``, at most ``TICK`` seconds. ``Service.shutdown()`` stops accepting
work and waits a bounded time for running transfers to finish or checkpoint.

``ks3sync status`` reads from the journal whether the service runs (its heartbeat; the state
directory's lock, ``lock.py``, says whether its process is alive) and each sync's activity and health
(ok, or failing since when and why); ``health.HealthWriter`` writes them on every change and with a
heartbeat, at a bounded rate.

Imports the journal, the store protocol, the transfer options, watch/ and the daemon's own modules;
concrete KS3 clients are built by the CLI and passed in.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from ks3sync.config import Config, SyncConfig
from ks3sync.daemon.backoff import SECOND
from ks3sync.daemon.health import HEARTBEAT_NS, HealthWriter
from ks3sync.daemon.logs import describe_exc, event
from ks3sync.daemon.notify import Notifier
from ks3sync.daemon.verify import Verifier
from ks3sync.daemon.worker import RETRY_NS, Reconciler, State, SyncWorker
from ks3sync.errors import Ks3SyncError
from ks3sync.journal import Journal, JournalError
from ks3sync.store.base import Store
from ks3sync.transfer.context import TransferOptions

if TYPE_CHECKING:  # prometheus_client is imported only when metrics are configured
    from ks3sync.daemon.metrics import Metrics

log = logging.getLogger("ks3sync.daemon")

TICK = 0.1  # seconds: the longest the loop sleeps between steps
STATUS_EVERY_NS = 2 * SECOND  # the STATUS= line and metrics (the journal's heartbeat: health.HEARTBEAT_NS)
STOP_TIMEOUT = 8.0  # seconds for in-flight work at shutdown; systemd's TimeoutStopSec is larger

# Errors a worker's step may raise that must not take the other syncs down with it.
STEP_ERRORS = (Ks3SyncError, JournalError, OSError)


class Service:
    def __init__(
        self,
        config: Config,
        journal: Journal,
        stores: Mapping[str, Store],
        transfer_for: Callable[[SyncConfig], TransferOptions],
        *,
        reconcile: Reconciler,
        clock: Callable[[], int] = time.time_ns,
        notifier: Notifier | None = None,
        watch: bool = True,
        metrics: Metrics | None = None,
        retry_ns: int = RETRY_NS,
        heartbeat_ns: int = HEARTBEAT_NS,
    ) -> None:
        self.config = config
        self.journal = journal
        self.clock = clock
        self.notifier = notifier or Notifier({})
        self.metrics = metrics
        self.workers: list[SyncWorker] = []
        self.failed: dict[str, str] = {}  # sync name -> why it could not start
        self.retry_ns = retry_ns
        self.health = HealthWriter(journal, os.getpid(), clock, heartbeat_ns)
        self._health_error = ""
        self._wake = threading.Event()
        self._next_status_ns = 0
        self._next_watchdog = 0.0
        self._retry_start_ns: dict[str, int] = {}
        self._published_states: tuple[tuple[State, str], ...] = ()
        for sync in config.syncs:
            self.workers.append(
                SyncWorker(
                    sync,
                    journal,
                    stores[sync.name],
                    transfer_for(sync),
                    reconcile=reconcile,
                    clock=clock,
                    watch=watch,
                    state_paths=(config.state_dir,),
                    on_done=metrics.done if metrics is not None else None,
                    on_pass=metrics.passed if metrics is not None else None,
                    retry_ns=retry_ns,
                )
            )
        # continuous verification (D21): one verifier beside each worker whose sync asks for it
        self.verifiers = {
            w.name: Verifier(w, w.sync.verify) for w in self.workers if w.sync.verify is not None
        }

    # ------------------------------------------------------------------------------------------------

    def start(self) -> None:
        # Registered first (cheap), so that the journal says at once which syncs this service runs,
        # even while a large folder's watches are still being set up.
        for worker in self.workers:
            try:
                worker.register()
            except STEP_ERRORS as exc:
                self._worker_failed(worker, exc, "start")
        try:
            before = self.journal.health()  # a failure streak goes on across a restart
            for worker in self.workers:
                if worker.sync_id in before:
                    worker.health.carry(before[worker.sync_id].failing_since_ns)
            self.health.start([w.health_record() for w in self.workers])
        except JournalError as exc:
            self._health_failed(exc)
        for worker in self.workers:
            try:
                worker.start()
            except STEP_ERRORS as exc:
                self._worker_failed(worker, exc, "start")
            self._publish_health()
        self.publish(force=True)
        self.notifier.ready(self.summary())
        event(log, logging.INFO, "service_ready", syncs=len(self.workers), pid=os.getpid())

    def step(self, now_ns: int | None = None) -> None:
        now = self.clock() if now_ns is None else now_ns
        for worker in self.workers:
            try:
                if worker.sync_id < 0:
                    if now < self._retry_start_ns.get(worker.name, 0):
                        continue
                    self._retry_start_ns[worker.name] = now + self.retry_ns
                    worker.start()  # it could not start before: try again now and then
                worker.step(now)
                if worker.name in self.verifiers:
                    self.verifiers[worker.name].step(now)
            except STEP_ERRORS as exc:
                self._worker_failed(worker, exc, "step")
            else:
                if self.failed.pop(worker.name, None) is not None:
                    worker.health.recovered("step")
                    event(log, logging.INFO, "sync_recovered", sync=worker.name)
        self.publish(now)
        self._ping_watchdog()

    def _worker_failed(self, worker: SyncWorker, exc: BaseException, where: str) -> None:
        why = describe_exc(exc)
        if self.failed.get(worker.name) != why:
            event(
                log,
                logging.ERROR,
                "sync_error",
                sync=worker.name,
                during=where,
                error=why,
                action="other syncs continue; retried next step",
            )
        self.failed[worker.name] = why
        worker.reason = why
        worker.health.failed(why, cause="step")

    def run(self, stop: threading.Event) -> None:
        """Step until ``stop`` is set. Never sleeps past a scheduled time by more than ``TICK``."""
        for worker in self.workers:
            worker.add_wake_listener(self._wake.set)
        while not stop.is_set():
            self.step()
            now = self.clock()
            soonest = min(
                [w.next_wakeup_ns() for w in self.workers]
                + [v.next_wakeup_ns(now) for v in self.verifiers.values()],
                default=now + SECOND,
            )
            timeout = min(TICK, max(0.0, (soonest - now) / SECOND))
            if timeout > 0:
                self._wake.wait(timeout)
                self._wake.clear()

    def shutdown(self, timeout: float = STOP_TIMEOUT) -> bool:
        """Stop accepting work, give running transfers ``timeout`` seconds, record the state.
        True if everything in flight finished (else the rest resumes at the next start)."""
        self.notifier.stopping("stopping: finishing transfers in flight")
        event(log, logging.INFO, "service_stopping", timeout_s=timeout)
        for verifier in self.verifiers.values():
            verifier.stop()
        for worker in self.workers:
            worker.begin_stop()
        deadline = time.monotonic() + timeout
        clean = True
        for verifier in self.verifiers.values():
            clean &= verifier.close(max(0.0, deadline - time.monotonic()))
        for worker in self.workers:
            clean &= worker.finish_stop(max(0.0, deadline - time.monotonic()))
        self.publish(force=True, stopped=True)
        if self.metrics is not None:
            self.metrics.close()
        event(log, logging.INFO if clean else logging.WARNING, "service_stopped", clean=clean)
        return clean

    # ------------------------------------------------------------------------------------------------
    # status: each sync's health in the journal, STATUS= line, metrics, watchdog

    def summary(self, queues: dict[str, tuple[int, int]] | None = None) -> str:
        """The STATUS= line: each sync's state, and its queue depth and parked count when known."""
        parts = []
        for w in self.workers:
            text = f"{w.name}: {w.state.value}" + (f" ({w.reason})" if w.reason else "")
            if queues and w.name in queues and any(queues[w.name]):
                queued, parked = queues[w.name]
                text += f", {queued} queued" + (f", {parked} parked" if parked else "")
            parts.append(text)
        return "; ".join(parts) or "no syncs configured"

    def publish(self, now_ns: int | None = None, *, force: bool = False, stopped: bool = False) -> None:
        now = self.clock() if now_ns is None else now_ns
        self._publish_health(now, stopped=stopped)
        states = tuple((w.state, w.reason) for w in self.workers)
        if not force and now < self._next_status_ns and states == self._published_states:
            return
        self._published_states = states
        self._next_status_ns = now + STATUS_EVERY_NS
        queues: dict[str, tuple[int, int]] = {}
        for w in self.workers:
            snap = w.snapshot()
            if w.name in self.verifiers:
                snap.update(self.verifiers[w.name].snapshot())
            counts = None
            if w.sync_id >= 0:
                try:
                    # Every STATUS_EVERY_NS: the queue's counts only (a full stats() also counts every
                    # record of the sync, ~tens of ms with a million tracked files).
                    counts = self.journal.queue_counts(w.sync_id)
                except JournalError:
                    counts = None
            if counts is not None:
                queues[w.name] = (counts.queue_depth + counts.in_flight, counts.parked)
            if self.metrics is not None:
                self.metrics.update(w.name, counts, snap)
        if not stopped:
            self.notifier.status(self.summary(queues))

    def _publish_health(self, now_ns: int | None = None, *, stopped: bool = False) -> None:
        """Each sync's health and the heartbeat into the journal (the writer decides whether anything
        is due). A journal that cannot take them is logged once per distinct error, not fatal here: the
        workers meet the same journal and report it."""
        try:
            self.health.publish([w.health_record() for w in self.workers], now_ns, stopped=stopped)
        except JournalError as exc:
            self._health_failed(exc)
        else:
            self._health_error = ""

    def _health_failed(self, exc: JournalError) -> None:
        why = describe_exc(exc)
        if why != self._health_error:
            event(log, logging.WARNING, "health_not_recorded", error=why)
        self._health_error = why

    def _ping_watchdog(self) -> None:
        interval = self.notifier.watchdog_interval
        if interval is None:
            return
        now = time.monotonic()
        if now >= self._next_watchdog:
            self.notifier.watchdog()
            self._next_watchdog = now + interval

    def worker(self, name: str) -> SyncWorker:
        return next(w for w in self.workers if w.name == name)

    def states(self) -> dict[str, State]:
        return {w.name: w.state for w in self.workers}
