"""``Journal``: the one source of truth (invariant 8) for what was synced, what is queued and which
multipart uploads are in flight, in one SQLite file.

Concurrency: one writer connection behind one lock (SQLite allows a single writer anyway; taking the
lock in Python keeps transfer threads from spinning on SQLITE_BUSY), and a pool of reader connections
that WAL lets run beside the writer. Every public method is safe to call from any thread.

SQL text on the standard library's sqlite3 (tables and columns as ``schema.py`` describes them): a
no-change mirror is mostly start-up, and SQLAlchemy's import alone cost ~0.15 s of it. SQLAlchemy is
loaded only to create or migrate the file (``migrations.upgrade``).

Owns: opening/migrating the file, syncs, synced entries, the change queue (rules in ``queue.py``),
multipart checkpoints (``checkpoint.py``), pass history and status, the service's liveness and each
sync's health (``health.py``). Must not import: the store, the
transfer engine, the planner, the CLI, httpx.
"""

from __future__ import annotations

import gc
import logging
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ks3sync.journal.checkpoint import JournalCheckpoint, delete_entries, read_uploads, write_entries
from ks3sync.journal.connection import ReaderPool, as_journal_error, check_file, connect, restrict_permissions
from ks3sync.journal.errors import JournalError
from ks3sync.journal.version import SCHEMA_VERSION, refuse_unknown
from ks3sync.model import Direction, FileIdentity, PassSummary, SyncedEntry, UploadRecord

if TYPE_CHECKING:
    from ks3sync.journal.types import (
        Change,
        HealthRecord,
        QueueCounts,
        QueuedChange,
        ServiceRecord,
        SyncRecord,
        SyncStats,
    )

# The change queue (queue.py) and the status/record types (types.py) are imported by the methods that
# use them: `mirror` never does, and their dataclasses are start-up time a no-change run would pay.

log = logging.getLogger(__name__)

KEEP_PASSES = 1000  # per sync: enough history for status, bounded for a service that runs for years
KEEP_ERRORS = 100

Clock = Callable[[], int]

_ENTRY_SELECT = ("SELECT path, size, mtime_ns, inode, ctime_ns, md5, remote_etag, remote_size, encrypted,"
                 " synced_at_ns FROM entries")


def _entry_from_row(r: tuple[Any, ...]) -> SyncedEntry:
    size, md5, etag, remote_size = r[1], r[5], r[6], r[7]
    # SQLite hands out a new object per column: share the equal ones (a plain object's ETag is its MD5,
    # and its remote size is the file's size), ~110 bytes less per entry in a 100k-entry map. The path is
    # interned so the scan's and the listing's copies of it can be the same object too.
    if etag == md5:
        etag = md5
    if remote_size == size:
        remote_size = size
    return SyncedEntry(sys.intern(r[0]), FileIdentity(size, r[2], r[3], r[4]), md5, etag, remote_size,
                       bool(r[8]), r[9])


class Journal:
    """Open with :meth:`open`; close with :meth:`close` (or use as a context manager)."""

    def __init__(self, path: Path, writer: sqlite3.Connection, clock: Clock) -> None:
        self.path = path
        self._clock = clock
        self._lock = threading.RLock()
        self._writer: sqlite3.Connection | None = writer
        self._writer_sync: str | None = None  # the writer's current PRAGMA synchronous, once we set it
        self._readers = ReaderPool(path)
        self._closed = False

    # ----------------------------------------------------------------------------------------------
    # Life cycle

    @classmethod
    def open(cls, path: Path | str, *, clock: Clock = time.time_ns) -> Journal:
        """Open (creating parents and the file if needed) and migrate to ``SCHEMA_VERSION``.

        Raises :class:`JournalError` with one line naming ``path`` for a non-SQLite or corrupted file,
        a journal from a newer ks3sync, a foreign SQLite database, or an unwritable location."""
        path = Path(path)
        check_file(path)
        try:
            writer = connect(path)
        except sqlite3.Error as exc:
            raise as_journal_error(path, exc) from exc
        journal = cls(path, writer, clock)
        try:
            journal._prepare(writer)
        except sqlite3.Error as exc:
            journal.close()
            raise as_journal_error(path, exc) from exc
        except JournalError:
            journal.close()
            raise
        restrict_permissions(path)
        return journal

    def _prepare(self, writer: sqlite3.Connection) -> None:
        # Refuse foreign or newer files before changing anything in them (switching to WAL rewrites
        # the header).
        version = int(writer.execute("PRAGMA user_version").fetchone()[0])
        objects = 0
        if version == 0:
            objects = writer.execute("SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
                                     ).fetchone()[0]
        refuse_unknown(self.path, version, objects)
        mode = writer.execute("PRAGMA journal_mode = WAL").fetchone()
        if mode is None or str(mode[0]).lower() != "wal":
            raise JournalError(f"{self.path}: cannot switch the journal to WAL mode (got {mode!r})")
        if version < SCHEMA_VERSION:
            # Creating or migrating: the one path that loads SQLAlchemy. Versions never go down, so a
            # file already at SCHEMA_VERSION needs no write lock to stay there.
            from ks3sync.journal.migrations import upgrade

            upgrade(self.path, refuse_unknown)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            self._readers.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r})"

    @contextmanager
    def _write(self, *, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """One write transaction on the writer connection, under the writer lock: ``BEGIN IMMEDIATE``
        (the write lock up front, never a failed lock upgrade half-way), COMMIT, or ROLLBACK on any
        exception. FULL sync when ``durable``, NORMAL otherwise. sqlite3 errors become JournalErrors
        naming the file; other exceptions pass through after the rollback."""
        with self._lock:
            db = self._writer
            if self._closed or db is None:
                raise JournalError(f"{self.path}: the journal is closed")
            mode = "FULL" if durable else "NORMAL"
            try:
                if self._writer_sync != mode:  # a per-connection setting: issue it only on a change
                    db.execute(f"PRAGMA synchronous = {mode}")
                    self._writer_sync = mode
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise as_journal_error(self.path, exc) from exc
            try:
                yield db
            except BaseException as exc:
                self._rollback(db)
                if isinstance(exc, sqlite3.Error):
                    raise as_journal_error(self.path, exc) from exc
                raise
            try:
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback(db)
                raise as_journal_error(self.path, exc) from exc

    def _rollback(self, db: sqlite3.Connection) -> None:
        if not db.in_transaction:
            return  # SQLite already rolled back (e.g. after SQLITE_FULL)
        try:
            db.execute("ROLLBACK")
        except sqlite3.Error as exc:
            # The original error is what the caller must see; this one only goes to the log.
            log.warning("%s: rollback failed: %s", self.path, exc)

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A pooled reader inside one read transaction (one snapshot for all its statements)."""
        if self._closed:
            raise JournalError(f"{self.path}: the journal is closed")
        try:
            with self._readers.lease() as db:
                yield db
        except sqlite3.Error as exc:
            raise as_journal_error(self.path, exc) from exc

    # ----------------------------------------------------------------------------------------------
    # Syncs

    def register_sync(self, name: str, source: str, bucket: str, prefix: str, options_hash: str) -> int:
        """The id of the sync called ``name``, created or updated.

        If ``source``, ``bucket`` or ``prefix`` changed, the synced entries and pending changes describe
        another pair of trees and are dropped (a scan plus a listing rebuilds them, with Adopt instead
        of uploads). Multipart uploads in flight are kept so the caller can abort them
        (:meth:`uploads`). ``options_hash`` is opaque to the journal: never put secrets in it."""
        with self._write() as db:
            row = db.execute("SELECT id, source, bucket, prefix FROM syncs WHERE name = ?", (name,)).fetchone()
            if row is None:
                cur = db.execute(
                    "INSERT INTO syncs (name, source, bucket, prefix, options_hash, created_at_ns)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (name, source, bucket, prefix, options_hash, self._clock()),
                )
                assert cur.lastrowid is not None
                return int(cur.lastrowid)
            sync_id = int(row[0])
            if tuple(row[1:]) != (source, bucket, prefix):
                db.execute("DELETE FROM entries WHERE sync_id = ?", (sync_id,))
                db.execute("DELETE FROM changes WHERE sync_id = ? AND claimed = 0", (sync_id,))
            db.execute("UPDATE syncs SET source = ?, bucket = ?, prefix = ?, options_hash = ? WHERE id = ?",
                       (source, bucket, prefix, options_hash, sync_id))
            return sync_id

    def syncs(self) -> list[SyncRecord]:
        from ks3sync.journal.types import SyncRecord

        with self._read() as db:
            rows = db.execute("SELECT id, name, source, bucket, prefix, options_hash FROM syncs ORDER BY name"
                              ).fetchall()
        return [SyncRecord(*r) for r in rows]

    def remove_sync(self, sync_id: int) -> None:
        """Forget a sync and everything recorded for it. Abort its multipart uploads first."""
        with self._write() as db:
            # entries, changes, uploads (and their parts), passes, errors go with it: ON DELETE CASCADE
            db.execute("DELETE FROM syncs WHERE id = ?", (sync_id,))

    # ----------------------------------------------------------------------------------------------
    # Synced entries

    def synced_entries(self, sync_id: int) -> dict[str, SyncedEntry]:
        """The whole map for the planner. Reads through the raw cursor: 100k rows in well under 1 s."""
        with self._read() as raw:
            # Row by row (no fetchall list beside the map), with the cyclic GC paused: building 100k
            # small objects otherwise triggers full collections that rescan everything built so far.
            gc_was_on = gc.isenabled()
            gc.disable()
            try:
                found: dict[str, SyncedEntry] = {}
                for r in raw.execute(f"{_ENTRY_SELECT} WHERE sync_id = ?", (sync_id,)):
                    entry = _entry_from_row(r)
                    found[entry.path] = entry
            finally:
                if gc_was_on:
                    gc.enable()
        return found

    def iter_synced_entries(self, sync_id: int, *, batch: int = 2000) -> Generator[SyncedEntry, None, None]:
        """The sync's records in path order (SQLite's BINARY collation on UTF-8 text is UTF-8 byte order,
        the order of the scan and of KS3 listings), fetched ``batch`` rows at a time: the reconcile
        marches them beside the scan and the listing without holding a million-row map.

        Holds one pooled read connection (one WAL snapshot) until exhausted or closed."""
        with self._read() as raw:
            cursor = raw.execute(f"{_ENTRY_SELECT} WHERE sync_id = ? ORDER BY path", (sync_id,))
            try:
                while rows := cursor.fetchmany(batch):
                    for r in rows:
                        yield _entry_from_row(r)
            except sqlite3.Error as exc:
                raise as_journal_error(self.path, exc) from exc
            finally:
                cursor.close()

    def synced_count(self, sync_id: int, *, at_most: int) -> int:
        """How many records the sync has, counting no further than ``at_most`` (a bounded index range,
        however large the sync)."""
        with self._read() as raw:
            row = raw.execute("SELECT count(*) FROM (SELECT 1 FROM entries WHERE sync_id = ? LIMIT ?)",
                              (sync_id, at_most)).fetchone()
        return int(row[0])

    def synced_for(self, sync_id: int, paths: Iterable[str]) -> dict[str, SyncedEntry]:
        """Point lookups: the records of ``paths`` that exist (the service's per-batch view; it must not
        load a million-row map for every batch)."""
        wanted = list(dict.fromkeys(paths))
        found: dict[str, SyncedEntry] = {}
        with self._read() as raw:
            for start in range(0, len(wanted), 500):  # below SQLite's bound-parameter limit
                chunk = wanted[start:start + 500]
                marks = ", ".join("?" * len(chunk))
                rows = raw.execute(f"{_ENTRY_SELECT} WHERE sync_id = ? AND path IN ({marks})",
                                   (sync_id, *chunk)).fetchall()
                found.update((r[0], _entry_from_row(r)) for r in rows)
        return found

    def synced_paths_under(self, sync_id: int, prefix: str) -> list[str]:
        """Recorded paths starting with ``prefix`` (e.g. ``"dir/"`` for a moved or deleted folder), in
        key order; a range scan of the primary key, not a table scan."""
        with self._read() as raw:
            if not prefix:
                rows = raw.execute("SELECT path FROM entries WHERE sync_id = ? ORDER BY path", (sync_id,))
            else:
                upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)  # the first string after every prefix+...
                rows = raw.execute(
                    "SELECT path FROM entries WHERE sync_id = ? AND path >= ? AND path < ? ORDER BY path",
                    (sync_id, prefix, upper),
                )
            return [r[0] for r in rows.fetchall()]

    def record_synced(self, sync_id: int, batch: Iterable[SyncedEntry]) -> int:
        """Record many confirmed entries in one transaction."""
        with self._write() as db:
            return write_entries(db, sync_id, batch)

    def remove_entries(self, sync_id: int, paths: Sequence[str]) -> None:
        if paths:
            with self._write() as db:
                delete_entries(db, sync_id, paths)

    def checkpoint(self, sync_id: int) -> JournalCheckpoint:
        return JournalCheckpoint(self, sync_id)

    def uploads(self, sync_id: int | None = None) -> list[UploadRecord]:
        """Multipart uploads in flight (of one sync, or all), with their parts."""
        with self._read() as db:
            if sync_id is None:
                return read_uploads(db, "", ())
            return read_uploads(db, "WHERE sync_id = ?", (sync_id,))

    # ----------------------------------------------------------------------------------------------
    # The change queue (write-ahead: FULL sync, an event is on disk before it is acted on)

    def enqueue(self, sync_id: int, batch: Sequence[Change]) -> None:
        if not batch:
            return
        from ks3sync.journal import queue

        with self._write(durable=True) as db:
            queue.enqueue(db, sync_id, batch)

    def due(self, sync_id: int, now_ns: int, limit: int, *, claim: bool = True) -> list[QueuedChange]:
        """Up to ``limit`` changes that may run now, claimed (in flight) unless ``claim=False``.

        Never returns two rows touching one path, nor a row whose path or move source is touched by a
        claimed row: per-path order holds however many workers run. Finish each with :meth:`done` or
        :meth:`failed`."""
        from ks3sync.journal import queue

        with self._write() as db:
            return queue.due_changes(db, sync_id, now_ns, limit, claim=claim)

    def pending(self, sync_id: int) -> list[QueuedChange]:
        """Every queued row (claimed or not, parked or not), oldest first."""
        from ks3sync.journal import queue

        with self._read() as db:
            return queue.all_changes(db, sync_id)

    def done(self, change_ids: Sequence[int]) -> None:
        if change_ids:
            from ks3sync.journal import queue

            with self._write() as db:
                queue.mark_done(db, list(change_ids))

    def failed(self, change_id: int, error: str, retry_at_ns: int, park: bool) -> None:
        """Count an attempt, keep the error (also in the sync's recent errors), retry at
        ``retry_at_ns``, or park the row (kept, not handed out until :meth:`unpark`)."""
        from ks3sync.journal import queue

        with self._write() as db:
            row = queue.mark_failed(db, change_id, error, retry_at_ns, park)
            if row is not None:
                self._add_error(db, row.sync_id, row.path, error)

    def release_claims(self, sync_id: int) -> int:
        """At service start: rows claimed by a previous (dead) process become pending again."""
        from ks3sync.journal import queue

        with self._write(durable=True) as db:
            return queue.release_claims(db, sync_id)

    def unpark(self, sync_id: int) -> int:
        from ks3sync.journal import queue

        with self._write() as db:
            return queue.unpark(db, sync_id, self._clock())

    # ----------------------------------------------------------------------------------------------
    # History and status

    def record_pass(self, sync_id: int, summary: PassSummary) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO passes (sync_id, direction, started_ns, finished_ns, uploaded, copied, deleted,"
                " downloaded, adopted, skipped, failed, bytes_sent, bytes_received, refused_deletes, error)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (sync_id, summary.direction.value, summary.started_ns, summary.finished_ns, summary.uploaded,
                 summary.copied, summary.deleted, summary.downloaded, summary.adopted, summary.skipped,
                 summary.failed, summary.bytes_sent, summary.bytes_received, summary.refused_deletes,
                 None if summary.error is None else " ".join(summary.error.split())[:1000]),
            )
            files = summary.uploaded + summary.copied + summary.downloaded + summary.deleted
            totals = "files_done = files_done + ?, bytes_done = bytes_done + ?"
            params: tuple[int, ...] = (files, summary.bytes_sent + summary.bytes_received)
            if summary.ok:
                totals += ", last_success_ns = ?"
                params += (summary.finished_ns,)
            db.execute(f"UPDATE syncs SET {totals} WHERE id = ?", (*params, sync_id))
            _prune(db, "passes", sync_id, KEEP_PASSES)

    def record_error(self, sync_id: int, path: str | None, message: str) -> None:
        with self._write() as db:
            self._add_error(db, sync_id, path, message)

    def _add_error(self, db: sqlite3.Connection, sync_id: int, path: str | None, message: str) -> None:
        db.execute("INSERT INTO errors (sync_id, path, message, at_ns) VALUES (?, ?, ?, ?)",
                   (sync_id, path, " ".join(message.split())[:1000], self._clock()))
        _prune(db, "errors", sync_id, KEEP_ERRORS)

    def queue_counts(self, sync_id: int) -> QueueCounts:
        """Only the queue's counts, from the changes table's index: unlike :meth:`stats`, no count of the
        sync's records, which costs tens of milliseconds with a million of them."""
        from ks3sync.journal.types import QueueCounts

        with self._read() as db:
            counts = db.execute(
                "SELECT count(*) FILTER (WHERE claimed = 0 AND parked = 0), count(*) FILTER (WHERE parked = 1),"
                " count(*) FILTER (WHERE claimed = 1) FROM changes WHERE sync_id = ?", (sync_id,)
            ).fetchone()
        return QueueCounts(queue_depth=counts[0], parked=counts[1], in_flight=counts[2])

    def stats(self, sync_id: int, *, recent_errors: int = 10) -> SyncStats:
        from ks3sync.journal.types import ErrorRecord, SyncStats

        with self._read() as db:
            sync = db.execute("SELECT name, files_done, bytes_done, last_success_ns FROM syncs WHERE id = ?",
                              (sync_id,)).fetchone()
            if sync is None:
                raise JournalError(f"{self.path}: no sync with id {sync_id}")
            counts = db.execute(
                "SELECT count(*) FILTER (WHERE claimed = 0 AND parked = 0), count(*) FILTER (WHERE parked = 1),"
                " count(*) FILTER (WHERE claimed = 1), min(due_ns) FILTER (WHERE claimed = 0 AND parked = 0)"
                " FROM changes WHERE sync_id = ?", (sync_id,)
            ).fetchone()
            n_entries = db.execute("SELECT count(*) FROM entries WHERE sync_id = ?", (sync_id,)).fetchone()[0]
            n_uploads = db.execute("SELECT count(*) FROM uploads WHERE sync_id = ?", (sync_id,)).fetchone()[0]
            last = db.execute(
                "SELECT started_ns, finished_ns, direction, uploaded, copied, deleted, downloaded, adopted,"
                " skipped, failed, bytes_sent, bytes_received, refused_deletes, error FROM passes"
                " WHERE sync_id = ? ORDER BY finished_ns DESC, id DESC LIMIT 1", (sync_id,)
            ).fetchone()
            errs = db.execute(
                "SELECT path, message, at_ns FROM errors WHERE sync_id = ? ORDER BY at_ns DESC, id DESC LIMIT ?",
                (sync_id, recent_errors),
            ).fetchall()
        name, files_done, bytes_done, last_success_ns = sync
        return SyncStats(
            sync_id=sync_id, name=name, queue_depth=counts[0], parked=counts[1], in_flight=counts[2],
            next_due_ns=counts[3], entries=n_entries, uploads_in_flight=n_uploads,
            files_done=files_done, bytes_done=bytes_done, last_success_ns=last_success_ns,
            last_pass=None if last is None else _pass_from_row(last),
            last_errors=tuple(ErrorRecord(*e) for e in errs),
        )

    # ----------------------------------------------------------------------------------------------
    # The service's liveness and each sync's health (``status``; rules in health.py)

    def service_started(self, pid: int, now_ns: int, records: Sequence[HealthRecord] = ()) -> None:
        """``pid`` runs the service from ``now_ns``; ``records``: its syncs' health at start."""
        from ks3sync.journal import health

        with self._write() as db:
            health.service_started(db, pid, now_ns)
            health.write_health(db, records)

    def write_health(self, pid: int, now_ns: int, records: Sequence[HealthRecord], *, heartbeat: bool = False,
                     stopped: bool = False) -> None:
        """Store ``records``; with ``heartbeat`` (or ``stopped``, a clean stop) also refresh the service
        row of ``pid`` to ``now_ns``. One transaction."""
        from ks3sync.journal import health

        if not records and not heartbeat and not stopped:
            return
        with self._write() as db:
            health.write_health(db, records)
            if heartbeat or stopped:
                health.heartbeat(db, pid, now_ns, stopped=stopped)

    def service(self) -> ServiceRecord | None:
        from ks3sync.journal import health

        with self._read() as db:
            return health.read_service(db)

    def health(self) -> dict[int, HealthRecord]:
        """Every sync's last written health, by sync id."""
        from ks3sync.journal import health

        with self._read() as db:
            return health.read_health(db)

    # ----------------------------------------------------------------------------------------------
    # Checks

    def integrity_check(self) -> list[str]:
        """SQLite's own check plus the journal's invariants; an empty list means healthy."""
        problems: list[str] = []
        with self._read() as db:
            for (line,) in db.execute("PRAGMA integrity_check").fetchall():
                if line != "ok":
                    problems.append(f"sqlite: {line}")
            for row in db.execute("PRAGMA foreign_key_check").fetchall():
                problems.append(f"foreign key: row {row[1]} of {row[0]} points at a missing {row[2]} row")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version != SCHEMA_VERSION:
                problems.append(f"schema version {version}, expected {SCHEMA_VERSION}")
            checks = {
                "parts whose upload is gone":
                    "SELECT count(*) FROM parts WHERE upload_row NOT IN (SELECT id FROM uploads)",
                "moves without a source path / other changes with one":
                    "SELECT count(*) FROM changes WHERE (kind = 'move') != (src_path IS NOT NULL)",
                "paths with more than one pending change":
                    "SELECT count(*) FROM (SELECT 1 FROM changes WHERE claimed = 0 "
                    "GROUP BY sync_id, path HAVING count(*) > 1)",
                "entries with a malformed MD5":
                    "SELECT count(*) FROM entries WHERE length(md5) != 32 OR md5 GLOB '*[^0-9a-f]*'",
                "entries with negative sizes":
                    "SELECT count(*) FROM entries WHERE size < 0 OR remote_size < 0",
                "absolute or empty paths":
                    "SELECT (SELECT count(*) FROM entries WHERE path = '' OR path LIKE '/%')"
                    " + (SELECT count(*) FROM changes WHERE path = '' OR path LIKE '/%')",
                "parts numbered outside 1..10000":
                    "SELECT count(*) FROM parts WHERE part_number < 1 OR part_number > 10000",
            }
            for what, sql in checks.items():
                n = db.execute(sql).fetchone()[0]
                if n:
                    problems.append(f"{what}: {n}")
        return problems


def _pass_from_row(r: tuple[Any, ...]) -> PassSummary:
    (started_ns, finished_ns, direction, uploaded, copied, deleted, downloaded, adopted, skipped, failed,
     bytes_sent, bytes_received, refused_deletes, error) = r
    return PassSummary(
        started_ns=started_ns, finished_ns=finished_ns, direction=Direction(direction), uploaded=uploaded,
        copied=copied, deleted=deleted, downloaded=downloaded, adopted=adopted, skipped=skipped,
        failed=failed, bytes_sent=bytes_sent, bytes_received=bytes_received,
        refused_deletes=refused_deletes, error=error,
    )


def _prune(db: sqlite3.Connection, table: str, sync_id: int, keep: int) -> None:
    """Keep the newest ``keep`` rows of ``table`` (``passes`` or ``errors``, a constant) for the sync."""
    cutoff = db.execute(f"SELECT id FROM {table} WHERE sync_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?",
                        (sync_id, keep)).fetchone()
    if cutoff is not None:
        db.execute(f"DELETE FROM {table} WHERE sync_id = ? AND id <= ?", (sync_id, cutoff[0]))
