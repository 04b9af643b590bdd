"""Continuous verification: the service re-checks, within a budget, that what it uploaded is still in
KS3 as the journal recorded it (docs/decisions.md D21; the decisions are ``verifyrules.py``'s).

One :class:`Verifier` per sync with ``verify:``. ``step(now)`` is called by the service after the sync's
worker stepped; it returns at once, starting at most one *chunk* (up to ``MAX_CHUNK`` records) on the
verifier's own thread when the budget allows and the sync is idle (watching or polling, no batch
running): verification never takes a thread, a queue slot or a step from the sync's own work. A chunk
reads the next records after the round's cursor (path order, ``Journal.records_after``), and for each:
HEAD, compared with the record; the reading ``reading_for`` asks for (the whole object, or the
decrypted end of an encrypted one); then the cursor and counts are saved. An empty batch ends the
round: ``last_full_ns`` is when every record was last verified.

A mismatch is reported (a WARNING ``verify_mismatch`` line naming the path, a per-path error and the
count in the journal, hence ``status``) and, when the local file is still the recorded one (same size,
mtime and MD5), the record is dropped and an upload queued in one transaction: the normal batch path
uploads it and records it once KS3 confirmed it (invariants 1 and 2). Otherwise it is left to the
normal sync path, which sends the changed file. A mismatch seen while the sync path may be rewriting
the object (a reconcile ran during the chunk, a change of the path is in flight, the record changed)
is not acted on: the object is checked again later.

Stops between objects when the service stops; ``close`` waits (bounded) for the chunk.

Imports the journal, the store protocol, crypto, the transfer's file helpers, the daemon's logs and
rules, and the worker's stat helper; never the protocol client or the CLI.
"""

from __future__ import annotations

import concurrent.futures
import enum
import hashlib
import logging
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from ks3sync.config import SyncConfig, VerifyConfig
from ks3sync.crypto import CryptoError, EncryptionKey, ObjectDecryptor, plan_range
from ks3sync.daemon.backoff import SECOND
from ks3sync.daemon.logs import event
from ks3sync.daemon.verifyrules import (
    Budget,
    Pace,
    Reading,
    head_problem,
    local_unchanged,
    reading_for,
    same_size_and_mtime,
    tail_start,
)
from ks3sync.errors import IntegrityError, Ks3SyncError, RemoteNotFound, describe
from ks3sync.journal import Change, ChangeKind, Journal
from ks3sync.model import SyncedEntry
from ks3sync.store.base import Store
from ks3sync.transfer.context import TransferOptions
from ks3sync.transfer.files import check_unchanged, hash_file, open_for_read

log = logging.getLogger("ks3sync.daemon")

MAX_CHUNK = 32  # records per chunk: bounds the work between two looks at stop and at the sync's state
EMPTY_RECHECK_NS = 60 * SECOND  # a sync with no records yet: look again this much later
RETRY_NS = 30 * SECOND  # KS3 could not be asked (network, 5xx, credentials): the round waits this long
MAX_REMEMBERED = 10_000  # reported mismatches remembered, so that each is reported once per run
IDLE_STATES = frozenset({"watching", "polling"})


class VerifyHost(Protocol):
    """What the verifier needs of its sync's worker (``daemon.worker.SyncWorker`` is one)."""

    name: str
    sync_id: int
    sync: SyncConfig
    journal: Journal
    store: Store
    root: Path
    transfer: TransferOptions
    clock: Callable[[], int]

    @property
    def state(self) -> enum.Enum: ...

    def busy(self) -> bool: ...


class Outcome(enum.Enum):
    CHECKED = "checked"  # matched, or a mismatch handled (or left to the sync path that owns the object)
    AGAIN = "again"  # not concluded (KS3 unreachable, a reconcile ran): check it again later


class Verifier:
    def __init__(self, host: VerifyHost, config: VerifyConfig) -> None:
        self.host = host
        self.budget = Budget.of(config)
        self._pace: Pace | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix=f"ks3sync-verify-{host.name}"
        )
        self._chunk: concurrent.futures.Future[None] | None = None
        self._stop = threading.Event()
        self._reconciles = (
            0  # steps that saw the sync reconciling: a chunk that saw it change concludes nothing
        )
        self._loaded = False
        self._cursor: str | None = None
        self._round_started_ns: int | None = None
        self._not_before_ns = 0
        # mismatches already reported in this run, by (path, record's ETag, problem): a file the sync
        # has not re-sent yet is found again every round, and is reported (and counted) once
        self._reported: set[tuple[str, str, str]] = set()
        self._lock = threading.Lock()  # the counters below (chunk thread → metrics)
        self.checked = 0
        self.mismatches = 0
        self.last_full_ns: int | None = None

    # ------------------------------------------------------------------------------------------------
    # the service's side (its loop thread)

    def step(self, now_ns: int) -> None:
        host = self.host
        if host.state.value == "reconciling":
            self._reconciles += 1
        if self._stop.is_set() or host.sync_id < 0:
            return
        if self._chunk is not None:
            if not self._chunk.done():
                return
            self._reap()
        if not self._loaded:
            self._load(now_ns)
        if now_ns < self._not_before_ns or host.state.value not in IDLE_STATES or host.busy():
            return
        assert self._pace is not None
        if self._pace.ready(now_ns):
            self._chunk = self._pool.submit(self._run_chunk, self._reconciles)

    def next_wakeup_ns(self, now_ns: int) -> int:
        """When ``step`` could next start a chunk (never ``now`` unless it would: the loop must not spin
        while the sync is busy)."""
        if self._stop.is_set() or self._pace is None or self._chunk is not None:
            return now_ns + SECOND
        if self.host.state.value not in IDLE_STATES or self.host.busy():
            return now_ns + SECOND
        return max(self._not_before_ns, self._pace.next_ready_ns(now_ns))

    def stop(self) -> None:
        self._stop.set()

    def close(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a running chunk (it stops after its current object)."""
        self._stop.set()
        done = True
        if self._chunk is not None:
            done = not concurrent.futures.wait([self._chunk], timeout=timeout).not_done
            if done:
                self._reap()
        self._pool.shutdown(wait=done, cancel_futures=True)
        return done

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "verified": self.checked,
                "verify_mismatches": self.mismatches,
                "last_full_verification_ns": self.last_full_ns,
            }

    def _load(self, now_ns: int) -> None:
        state = self.host.journal.verify_state(self.host.sync_id)
        if state is not None:
            self._cursor, self._round_started_ns = state.cursor, state.round_started_ns
            with self._lock:
                self.mismatches, self.last_full_ns = state.mismatches, state.last_full_ns
        self._pace = Pace(self.budget, now_ns)
        self._loaded = True

    def _reap(self) -> None:
        assert self._chunk is not None
        future, self._chunk = self._chunk, None
        exc = future.exception()
        if exc is not None:
            # a journal that cannot be written, a bug: the round waits; the sync itself goes on
            self._not_before_ns = self.host.clock() + RETRY_NS
            event(log, logging.ERROR, "verify_failed", sync=self.host.name, error=describe(exc))

    # ------------------------------------------------------------------------------------------------
    # a chunk (the verifier's thread)

    def _run_chunk(self, reconciles: int) -> None:
        host, pace = self.host, self._pace
        assert pace is not None
        records = host.journal.records_after(host.sync_id, self._cursor, MAX_CHUNK)
        now = host.clock()
        if not records:
            if self._cursor is None:
                self._not_before_ns = now + EMPTY_RECHECK_NS  # nothing recorded yet
            else:
                self._finish_round(now)
            return
        started = self._round_started_ns if self._round_started_ns is not None else now
        cursor, checked, complete = self._cursor, 0, True
        for record in records:
            if self._stop.is_set() or not pace.ready(host.clock()):
                complete = False
                break
            pace.spend(self.budget.cost(record), host.clock())
            if self._verify(record, reconciles) is Outcome.AGAIN:
                complete = False
                break
            cursor, checked = record.path, checked + 1
        self._cursor, self._round_started_ns = cursor, started
        if complete and len(records) < MAX_CHUNK:
            self._finish_round(host.clock(), checked)
        elif checked:
            host.journal.verify_progress(
                host.sync_id, cursor=cursor, checked=checked, round_started_ns=started
            )
        with self._lock:
            self.checked += checked

    def _finish_round(self, now: int, checked: int = 0) -> None:
        assert self._round_started_ns is not None
        host = self.host
        host.journal.verify_progress(
            host.sync_id,
            cursor=None,
            checked=checked,
            round_started_ns=self._round_started_ns,
            finished_ns=now,
        )
        event(
            log,
            logging.INFO,
            "verify_round_done",
            sync=host.name,
            seconds=round((now - self._round_started_ns) / SECOND, 3),
        )
        self._cursor = self._round_started_ns = None
        with self._lock:
            self.last_full_ns = now

    def _verify(self, record: SyncedEntry, reconciles: int) -> Outcome:
        try:
            problem = self._problem(record)
        except Ks3SyncError as exc:
            # KS3 could not answer (network, 5xx after the client's retries, credentials): no verdict
            self._not_before_ns = self.host.clock() + RETRY_NS
            event(
                log,
                logging.WARNING,
                "verify_unavailable",
                sync=self.host.name,
                path=record.path,
                error=describe(exc),
                retry_in_s=RETRY_NS / SECOND,
            )
            return Outcome.AGAIN
        if problem is None:
            return Outcome.CHECKED
        if reconciles != self._reconciles or self.host.state.value == "reconciling":
            return Outcome.AGAIN  # a reconcile may have been rewriting it: no verdict now
        return self._mismatch(record, problem)

    def _problem(self, record: SyncedEntry) -> str | None:
        """What is wrong with the object of ``record``, or None. Raises Ks3SyncError when KS3 could not
        answer (bad content is a problem, not an exception)."""
        store = self.host.store
        meta = store.head(record.path)
        problem = head_problem(record, meta)
        if problem is not None:
            return problem
        reading = reading_for(record, self.budget.unit)
        if reading is Reading.NONE:
            return None
        try:
            if reading is Reading.WHOLE:
                return self._read_whole(record)
            return self._read_tail(record, meta.metadata if meta is not None else {})
        except RemoteNotFound:
            return "the object is missing"
        except (IntegrityError, CryptoError) as exc:
            return describe(exc)

    def _key(self, record: SyncedEntry) -> EncryptionKey | None:
        """The key that decrypts the object of ``record``; None when it is stored plain."""
        if not record.encrypted:
            return None
        key = self.host.transfer.encryption_key
        if key is None:
            raise IntegrityError(f"{record.path}: recorded as encrypted, but the sync has no key")
        return key

    def _read_whole(self, record: SyncedEntry) -> str | None:
        """The whole object read back: its (decrypted) bytes against the recorded length and MD5; the
        client checks the body's CRC-64 against KS3's header, the decryptor the pad, the SDK digest
        and ks3sync's integrity tag."""
        store, key = self.host.store, self._key(record)
        md5 = hashlib.md5()  # noqa: S324 - the journal's content identity
        length = 0
        with store.open(record.path, size=record.remote_size) as reader:
            moved = head_problem(record, reader.meta)
            if moved is not None:
                return moved
            decryptor = None
            if key is not None:  # the record is encrypted
                decryptor = ObjectDecryptor(
                    key,
                    reader.meta.metadata,
                    ciphertext_length=record.remote_size,
                    name=record.path,
                    object_key=store.key_for(record.path),
                )
            for chunk in reader.iter_bytes():
                plain = decryptor.update(chunk) if decryptor is not None else chunk
                md5.update(plain)
                length += len(plain)
            if decryptor is not None:
                tail = decryptor.finish()
                md5.update(tail)
                length += len(tail)
        if length != record.identity.size:
            return f"read back, it holds {length} bytes, {record.identity.size} were recorded"
        if md5.hexdigest() != record.md5:
            return "read back, its content does not match the recorded MD5"
        return None

    def _read_tail(self, record: SyncedEntry, metadata: Mapping[str, str]) -> str | None:
        """The end of a large encrypted object: one ranged GET, decrypted. Proves the key (its
        fingerprint, and a pad that decrypts right), the recorded length, and, while the local file is
        still the recorded one, that these bytes are the file's."""
        store = self.host.store
        plan = plan_range(tail_start(record), None, record.remote_size)
        got = store.read_range(record.path, plan.fetch_start, plan.fetch_end)
        if got.etag != record.remote_etag:
            return f"the object's ETag is {got.etag}, {record.remote_etag} was recorded"
        key = self._key(record)
        if key is None:
            raise IntegrityError(f"{record.path}: a tail read decrypts, but the object is recorded as plain")
        decryptor = ObjectDecryptor(key, metadata, plan=plan, name=record.path)
        plain = decryptor.update(got.data) + decryptor.finish()
        if plan.start + len(plain) != record.identity.size:
            return f"its end decrypts to a length of {plan.start + len(plain)} bytes, {record.identity.size} were recorded"
        local = self._local_bytes(record, plan.start, len(plain))
        if local is not None and local != plain:
            return f"its last {len(plain)} bytes, decrypted, differ from the local file's"
        return None

    def _local_bytes(self, record: SyncedEntry, start: int, length: int) -> bytes | None:
        """Bytes of the local file if it still has the recorded size and mtime (else None: nothing to
        compare with)."""
        abs_path = self.host.root / record.path
        try:
            fd, before = open_for_read(record.path, abs_path)
        except Ks3SyncError:
            return None
        try:
            if not same_size_and_mtime(record, before):
                return None
            data = os.pread(fd, length, start)
            check_unchanged(record.path, abs_path, fd, before)
            return data
        except (OSError, Ks3SyncError):
            return None
        finally:
            os.close(fd)

    def _local_matches(self, record: SyncedEntry) -> bool:
        try:
            digest = hash_file(record.path, self.host.root / record.path)
        except Ks3SyncError:
            return False  # gone, unreadable, or changing while read
        return local_unchanged(record, digest.identity, digest.md5)

    def _mismatch(self, record: SyncedEntry, problem: str) -> Outcome:
        host = self.host
        seen = (record.path, record.remote_etag, problem)
        if seen in self._reported:
            return Outcome.CHECKED
        reupload = self._local_matches(record)
        now = host.clock()
        change = Change(record.path, ChangeKind.UPSERT, observed_ns=now, due_ns=now) if reupload else None
        if not host.journal.verify_mismatch(host.sync_id, record, f"verification: {problem}", requeue=change):
            event(
                log,
                logging.DEBUG,
                "verify_deferred",
                sync=host.name,
                path=record.path,
                reason="the sync is rewriting it",
            )
            return Outcome.CHECKED
        with self._lock:
            self.mismatches += 1
        if len(self._reported) < MAX_REMEMBERED:
            self._reported.add(seen)
        action = (
            "re-upload queued: the local file is unchanged since it was recorded"
            if reupload
            else "reported only: the local file changed too; the sync sends it when it sees the change"
        )
        event(
            log,
            logging.WARNING,
            "verify_mismatch",
            sync=host.name,
            path=record.path,
            problem=problem,
            action=action,
        )
        return Outcome.CHECKED
