"""Each sync's health as the service sees it, and its bounded-rate record in the journal.

``Health`` (one per worker): *ok*, or *failing* since the first failure of the current streak, with the
last error. What fails a sync is what stops it as a whole, not one file (a file's failures are retried,
parked and listed on their own): KS3 refusing the credentials or missing the bucket, a reconcile that
cannot list or scan, a batch whose every transfer failed for network reasons, the source folder
missing or unmounted, a worker step raising. What makes it ok again: KS3 accepting work (a reconcile
that ran to the end, a batch with a success), or the end of the cause that failed it (``recovered``:
the folder is back, the step works again).

``HealthWriter`` puts every worker's health and the service's heartbeat in the journal
(``journal/health.py``), so that ``ks3sync status`` reads one source of truth (invariant 8). It writes
when a sync changes state (activity or ok/failing: at once) and with the heartbeat (every
``HEARTBEAT_NS``, carrying changes of wording only, e.g. a new request id in a repeated error), never
on every loop iteration: a service stepping ten times a second writes a few rows a minute.

Error messages are one line, at most ``MAX_MESSAGE`` characters, with control characters replaced and
the configured secrets scrubbed (``logs.scrub``) before they reach the journal (invariant 7).

Imports the journal's types, the error tree and the daemon's logs module; nothing else of ks3sync.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from ks3sync.daemon.backoff import SECOND
from ks3sync.daemon.logs import describe_exc, scrub
from ks3sync.errors import Ks3SyncError, describe
from ks3sync.journal import HealthRecord, Journal

HEARTBEAT_NS = 10 * SECOND
MAX_MESSAGE = 500
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


def failure_message(exc: BaseException) -> str:
    """What ``status`` shows for a sync that failed: ks3sync's own errors are written for users (the
    message alone), anything else keeps its type name."""
    return describe(exc) if isinstance(exc, Ks3SyncError) else describe_exc(exc)


def clean_message(text: str) -> str:
    """One line for the journal and ``status``: no control characters, no secret, bounded."""
    line = " ".join(_CONTROL.sub(" ", scrub(text)).split())
    return line if len(line) <= MAX_MESSAGE else line[: MAX_MESSAGE - 1] + "…"


@dataclass(frozen=True, slots=True)
class HealthState:
    failing_since_ns: int | None = None  # the first failure of the current streak; None: ok
    error: str | None = None  # the last failure's message (kept after a recovery)
    error_ns: int | None = None
    cause: str | None = None  # what failed it: "ks3", "source", "step"


class Health:
    """One sync's health, changed from the service loop and the worker's batch threads.
    ``recovered(cause)`` ends only a failure of that cause, ``ok()`` (KS3 accepted work) any."""

    def __init__(self, clock: Callable[[], int]) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._state = HealthState()
        self._carried_since: int | None = None

    def carry(self, failing_since_ns: int | None) -> None:
        """The previous run ended failing since ``failing_since_ns``: if this run fails before anything
        succeeds, the streak goes on from there (a restart does not make a week-old failure new).
        Until then the sync is not failing: this run has not seen a failure yet."""
        with self._lock:
            self._carried_since = failing_since_ns

    @property
    def state(self) -> HealthState:
        return self._state

    @property
    def failing(self) -> bool:
        return self._state.failing_since_ns is not None

    def failed(self, message: str, cause: str = "ks3") -> None:
        now = self.clock()
        text = clean_message(message)
        with self._lock:
            since = self._state.failing_since_ns or self._carried_since or now
            self._state = HealthState(since, text, now, cause)

    def ok(self) -> None:
        with self._lock:
            self._state = replace(self._state, failing_since_ns=None, cause=None)
            self._carried_since = None

    def recovered(self, cause: str) -> None:
        with self._lock:
            if self._state.cause == cause:
                self._state = replace(self._state, failing_since_ns=None, cause=None)
                self._carried_since = None


@dataclass(frozen=True, slots=True)
class SyncHealth:
    """What the writer needs of one worker (``SyncWorker.health_record`` builds it)."""

    sync_id: int
    activity: str
    reason: str
    health: Health


class HealthWriter:
    """The service's side of ``service`` and ``health`` in the journal. Not thread-safe: the service
    loop calls it."""

    def __init__(
        self, journal: Journal, pid: int, clock: Callable[[], int], heartbeat_ns: int = HEARTBEAT_NS
    ) -> None:
        self.journal = journal
        self.pid = pid
        self.clock = clock
        self.heartbeat_ns = heartbeat_ns
        self._written: dict[int, HealthRecord] = {}
        self._next_heartbeat_ns = 0
        self._started = False
        self.writes = 0  # journal transactions, for tests of the write rate

    def start(self, syncs: Sequence[SyncHealth]) -> None:
        now = self.clock()
        records = [self._record(s, now) for s in syncs if s.sync_id >= 0]
        self.journal.service_started(self.pid, now, records)
        self.writes += 1
        self._started = True
        self._written = {r.sync_id: r for r in records}
        self._next_heartbeat_ns = now + self.heartbeat_ns

    def publish(
        self, syncs: Sequence[SyncHealth], now_ns: int | None = None, *, stopped: bool = False
    ) -> None:
        """Write what changed: at once if a sync's activity or ok/failing changed, else with the next
        heartbeat (or the stop)."""
        if not self._started:  # the journal refused the start: try it again, it holds the service row
            self.start(syncs)
        now = self.clock() if now_ns is None else now_ns
        heartbeat = stopped or now >= self._next_heartbeat_ns
        changed: list[HealthRecord] = []
        transition = False
        for s in syncs:
            if s.sync_id < 0:
                continue
            record = self._record(s, now)
            before = self._written.get(s.sync_id)
            if record.same_as(before):
                continue
            changed.append(record)
            transition |= before is None or (
                before.activity,
                before.reason,
                before.failing_since_ns is None,
            ) != (record.activity, record.reason, record.failing_since_ns is None)
        if not heartbeat and not transition:
            return
        self.journal.write_health(self.pid, now, changed, heartbeat=heartbeat, stopped=stopped)
        self.writes += 1
        self._written.update((r.sync_id, r) for r in changed)
        if heartbeat:
            self._next_heartbeat_ns = now + self.heartbeat_ns

    @staticmethod
    def _record(s: SyncHealth, now: int) -> HealthRecord:
        h = s.health.state
        return HealthRecord(
            s.sync_id, s.activity, s.reason or None, h.failing_since_ns, h.error, h.error_ns, now
        )
