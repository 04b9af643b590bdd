"""``Journal``: the one source of truth (invariant 8) for what was synced, what is queued and which
multipart uploads are in flight, in one SQLite file.

Concurrency: one writer connection behind one lock (SQLite allows a single writer anyway; taking the
lock in Python keeps transfer threads from spinning on SQLITE_BUSY), and a pool of reader connections
that WAL lets run beside the writer. Every public method is safe to call from any thread.

Owns: opening/migrating the file, syncs, synced entries, the change queue (rules in ``queue.py``),
multipart checkpoints (``checkpoint.py``), pass history and status. Must not import: the store, the
transfer engine, the planner, the CLI, httpx.
"""

from __future__ import annotations

import gc
import logging
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, Engine, Table, delete, func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from ks3sync.journal import queue
from ks3sync.journal.checkpoint import JournalCheckpoint, delete_entries, read_upload, write_entries
from ks3sync.journal.connection import as_journal_error, check_file, make_engine, restrict_permissions
from ks3sync.journal.errors import JournalError
from ks3sync.journal.migrations import SCHEMA_VERSION, migrate
from ks3sync.journal.schema import changes, entries, errors, passes, syncs, uploads
from ks3sync.journal.types import Change, ErrorRecord, QueuedChange, SyncRecord, SyncStats
from ks3sync.model import Direction, FileIdentity, PassSummary, SyncedEntry, UploadRecord

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

    def __init__(self, path: Path, engine: Engine, clock: Clock) -> None:
        self.path = path
        self._engine = engine
        self._clock = clock
        self._lock = threading.RLock()
        self._writer: Connection | None = None
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
        engine = make_engine(path)
        journal = cls(path, engine, clock)
        try:
            journal._prepare()
        except (SQLAlchemyError, sqlite3.Error) as exc:
            journal.close()
            raise as_journal_error(path, exc) from exc
        except JournalError:
            journal.close()
            raise
        restrict_permissions(path)
        return journal

    def _prepare(self) -> None:
        self._writer = self._engine.connect()
        raw = self._writer.connection.driver_connection
        assert raw is not None
        # Refuse foreign or newer files before changing anything in them (switching to WAL rewrites
        # the header).
        self._check_version(int(raw.execute("PRAGMA user_version").fetchone()[0]),
                            raw.execute("SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
                                        ).fetchone()[0])
        mode = raw.execute("PRAGMA journal_mode = WAL").fetchone()
        if mode is None or str(mode[0]).lower() != "wal":
            raise JournalError(f"{self.path}: cannot switch the journal to WAL mode (got {mode!r})")
        with self._write(durable=True) as conn:
            # Again inside the write lock: another process may have migrated in between.
            version = int(conn.exec_driver_sql("PRAGMA user_version").scalar_one())
            self._check_version(version, conn.exec_driver_sql(
                "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").scalar_one())
            migrate(conn, version)

    def _check_version(self, version: int, objects: int) -> None:
        if version > SCHEMA_VERSION:
            raise JournalError(
                f"{self.path}: journal schema version {version} is newer than this ks3sync supports "
                f"({SCHEMA_VERSION}); upgrade ks3sync"
            )
        if version == 0 and objects:
            raise JournalError(f"{self.path}: not a ks3sync journal (an SQLite database with other tables)")

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            self._engine.dispose()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r})"

    @contextmanager
    def _write(self, *, durable: bool = False) -> Iterator[Connection]:
        """One write transaction under the writer lock; FULL sync when ``durable``."""
        with self._lock:
            if self._closed or self._writer is None:
                raise JournalError(f"{self.path}: the journal is closed")
            conn = self._writer
            conn.execution_options(ks3sync_sync="FULL" if durable else "NORMAL")
            try:
                with conn.begin():
                    yield conn
            except (SQLAlchemyError, sqlite3.Error) as exc:
                raise as_journal_error(self.path, exc) from exc

    @contextmanager
    def _write_raw(self, *, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """Like :meth:`_write`, on the writer's raw sqlite3 connection, for hot paths (one entry per
        uploaded file). The transaction is driven directly (BEGIN IMMEDIATE / COMMIT / ROLLBACK, what
        the engine's begin hook issues too) instead of through SQLAlchemy's Transaction and events,
        which cost ~10x the SQL of a one-row insert. Safe because the writer lock is held and the
        SQLAlchemy connection is never inside a transaction between two ``_write`` calls."""
        with self._lock:
            if self._closed or self._writer is None:
                raise JournalError(f"{self.path}: the journal is closed")
            try:
                raw = self._writer.connection.driver_connection
                assert isinstance(raw, sqlite3.Connection)
                raw.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
                raw.execute("BEGIN IMMEDIATE")
            except (SQLAlchemyError, sqlite3.Error) as exc:
                raise as_journal_error(self.path, exc) from exc
            try:
                yield raw
            except BaseException as exc:
                self._rollback_raw(raw)
                if isinstance(exc, sqlite3.Error):
                    raise as_journal_error(self.path, exc) from exc
                raise
            try:
                raw.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback_raw(raw)
                raise as_journal_error(self.path, exc) from exc

    def _rollback_raw(self, raw: sqlite3.Connection) -> None:
        if not raw.in_transaction:
            return  # SQLite already rolled back (e.g. after SQLITE_FULL)
        try:
            raw.execute("ROLLBACK")
        except sqlite3.Error as exc:
            # The original error is what the caller must see; this one only goes to the log.
            log.warning("%s: rollback failed: %s", self.path, exc)

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        if self._closed:
            raise JournalError(f"{self.path}: the journal is closed")
        try:
            with self._engine.connect() as conn:
                yield conn
        except (SQLAlchemyError, sqlite3.Error) as exc:
            raise as_journal_error(self.path, exc) from exc

    # ----------------------------------------------------------------------------------------------
    # Syncs

    def register_sync(self, name: str, source: str, bucket: str, prefix: str, options_hash: str) -> int:
        """The id of the sync called ``name``, created or updated.

        If ``source``, ``bucket`` or ``prefix`` changed, the synced entries and pending changes describe
        another pair of trees and are dropped (a scan plus a listing rebuilds them, with Adopt instead
        of uploads). Multipart uploads in flight are kept so the caller can abort them
        (:meth:`uploads`). ``options_hash`` is opaque to the journal: never put secrets in it."""
        with self._write() as conn:
            row = conn.execute(select(syncs).where(syncs.c.name == name)).first()
            if row is None:
                result = conn.execute(insert(syncs).values(
                    name=name, source=source, bucket=bucket, prefix=prefix, options_hash=options_hash,
                    created_at_ns=self._clock(),
                ))
                return int(result.inserted_primary_key[0])  # type: ignore[index]
            if (row.source, row.bucket, row.prefix) != (source, bucket, prefix):
                conn.execute(delete(entries).where(entries.c.sync_id == row.id))
                conn.execute(delete(changes).where(changes.c.sync_id == row.id, changes.c.claimed == 0))
            conn.execute(update(syncs).where(syncs.c.id == row.id).values(
                source=source, bucket=bucket, prefix=prefix, options_hash=options_hash))
            return int(row.id)

    def syncs(self) -> list[SyncRecord]:
        with self._read() as conn:
            rows = conn.execute(select(syncs).order_by(syncs.c.name)).all()
        return [SyncRecord(r.id, r.name, r.source, r.bucket, r.prefix, r.options_hash) for r in rows]

    def remove_sync(self, sync_id: int) -> None:
        """Forget a sync and everything recorded for it. Abort its multipart uploads first."""
        with self._write() as conn:
            conn.execute(delete(syncs).where(syncs.c.id == sync_id))

    # ----------------------------------------------------------------------------------------------
    # Synced entries

    def synced_entries(self, sync_id: int) -> dict[str, SyncedEntry]:
        """The whole map for the planner. Reads through the raw cursor: 100k rows in well under 1 s."""
        with self._read() as conn:
            raw = conn.connection.driver_connection
            assert raw is not None
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

    def iter_synced_entries(self, sync_id: int, *, batch: int = 2000) -> Iterator[SyncedEntry]:
        """The sync's records in path order (SQLite's BINARY collation on UTF-8 text is UTF-8 byte order,
        the order of the scan and of KS3 listings), fetched ``batch`` rows at a time: the reconcile
        marches them beside the scan and the listing without holding a million-row map.

        Holds one pooled read connection (one WAL snapshot) until exhausted or closed."""
        with self._read() as conn:
            raw = conn.connection.driver_connection
            assert raw is not None
            cursor = raw.execute(f"{_ENTRY_SELECT} WHERE sync_id = ? ORDER BY path", (sync_id,))
            try:
                while rows := cursor.fetchmany(batch):
                    for r in rows:
                        yield _entry_from_row(r)
            except sqlite3.Error as exc:
                raise as_journal_error(self.path, exc) from exc
            finally:
                cursor.close()

    def synced_for(self, sync_id: int, paths: Iterable[str]) -> dict[str, SyncedEntry]:
        """Point lookups: the records of ``paths`` that exist (the service's per-batch view; it must not
        load a million-row map for every batch)."""
        wanted = list(dict.fromkeys(paths))
        found: dict[str, SyncedEntry] = {}
        with self._read() as conn:
            raw = conn.connection.driver_connection
            assert raw is not None
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
        with self._read() as conn:
            raw = conn.connection.driver_connection
            assert raw is not None
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
        with self._write_raw() as db:
            return write_entries(db, sync_id, batch)

    def remove_entries(self, sync_id: int, paths: Sequence[str]) -> None:
        if paths:
            with self._write_raw() as db:
                delete_entries(db, sync_id, paths)

    def checkpoint(self, sync_id: int) -> JournalCheckpoint:
        return JournalCheckpoint(self, sync_id)

    def uploads(self, sync_id: int | None = None) -> list[UploadRecord]:
        """Multipart uploads in flight (of one sync, or all), with their parts."""
        with self._read() as conn:
            query = select(uploads).order_by(uploads.c.id)
            if sync_id is not None:
                query = query.where(uploads.c.sync_id == sync_id)
            return [read_upload(conn, row) for row in conn.execute(query).all()]

    # ----------------------------------------------------------------------------------------------
    # The change queue (write-ahead: FULL sync, an event is on disk before it is acted on)

    def enqueue(self, sync_id: int, batch: Sequence[Change]) -> None:
        if not batch:
            return
        with self._write_raw(durable=True) as db:
            queue.enqueue(db, sync_id, batch)

    def due(self, sync_id: int, now_ns: int, limit: int, *, claim: bool = True) -> list[QueuedChange]:
        """Up to ``limit`` changes that may run now, claimed (in flight) unless ``claim=False``.

        Never returns two rows touching one path, nor a row whose path or move source is touched by a
        claimed row: per-path order holds however many workers run. Finish each with :meth:`done` or
        :meth:`failed`."""
        with self._write_raw() as db:
            return queue.due_changes(db, sync_id, now_ns, limit, claim=claim)

    def pending(self, sync_id: int) -> list[QueuedChange]:
        """Every queued row (claimed or not, parked or not), oldest first."""
        with self._read() as conn:
            raw = conn.connection.driver_connection
            assert isinstance(raw, sqlite3.Connection)
            return queue.all_changes(raw, sync_id)

    def done(self, change_ids: Sequence[int]) -> None:
        if change_ids:
            with self._write_raw() as db:
                queue.mark_done(db, list(change_ids))

    def failed(self, change_id: int, error: str, retry_at_ns: int, park: bool) -> None:
        """Count an attempt, keep the error (also in the sync's recent errors), retry at
        ``retry_at_ns``, or park the row (kept, not handed out until :meth:`unpark`)."""
        with self._write() as conn:
            raw = conn.connection.driver_connection
            assert isinstance(raw, sqlite3.Connection)
            row = queue.mark_failed(raw, change_id, error, retry_at_ns, park)
            if row is not None:
                self._add_error(conn, row.sync_id, row.path, error)

    def release_claims(self, sync_id: int) -> int:
        """At service start: rows claimed by a previous (dead) process become pending again."""
        with self._write_raw(durable=True) as db:
            return queue.release_claims(db, sync_id)

    def unpark(self, sync_id: int) -> int:
        with self._write_raw() as db:
            return queue.unpark(db, sync_id, self._clock())

    # ----------------------------------------------------------------------------------------------
    # History and status

    def record_pass(self, sync_id: int, summary: PassSummary) -> None:
        with self._write() as conn:
            conn.execute(insert(passes).values(
                sync_id=sync_id, direction=summary.direction.value, started_ns=summary.started_ns,
                finished_ns=summary.finished_ns, uploaded=summary.uploaded, copied=summary.copied,
                deleted=summary.deleted, downloaded=summary.downloaded, adopted=summary.adopted,
                skipped=summary.skipped, failed=summary.failed, bytes_sent=summary.bytes_sent,
                bytes_received=summary.bytes_received, refused_deletes=summary.refused_deletes,
                error=None if summary.error is None else " ".join(summary.error.split())[:1000],
            ))
            files = summary.uploaded + summary.copied + summary.downloaded + summary.deleted
            values: dict[str, object] = dict(files_done=syncs.c.files_done + files,
                                             bytes_done=syncs.c.bytes_done + summary.bytes_sent
                                             + summary.bytes_received)
            if summary.ok:
                values["last_success_ns"] = summary.finished_ns
            conn.execute(update(syncs).where(syncs.c.id == sync_id).values(**values))
            _prune(conn, passes, sync_id, KEEP_PASSES)

    def record_error(self, sync_id: int, path: str | None, message: str) -> None:
        with self._write() as conn:
            self._add_error(conn, sync_id, path, message)

    def _add_error(self, conn: Connection, sync_id: int, path: str | None, message: str) -> None:
        conn.execute(insert(errors).values(sync_id=sync_id, path=path,
                                           message=" ".join(message.split())[:1000], at_ns=self._clock()))
        _prune(conn, errors, sync_id, KEEP_ERRORS)

    def stats(self, sync_id: int, *, recent_errors: int = 10) -> SyncStats:
        with self._read() as conn:
            sync = conn.execute(select(syncs).where(syncs.c.id == sync_id)).first()
            if sync is None:
                raise JournalError(f"{self.path}: no sync with id {sync_id}")
            c = changes.c
            counts = conn.execute(
                select(
                    func.count().filter(c.claimed == 0, c.parked == 0),
                    func.count().filter(c.parked == 1),
                    func.count().filter(c.claimed == 1),
                    func.min(c.due_ns).filter(c.claimed == 0, c.parked == 0),
                ).where(c.sync_id == sync_id)
            ).one()
            n_entries = conn.execute(
                select(func.count()).select_from(entries).where(entries.c.sync_id == sync_id)).scalar_one()
            n_uploads = conn.execute(
                select(func.count()).select_from(uploads).where(uploads.c.sync_id == sync_id)).scalar_one()
            last = conn.execute(
                select(passes).where(passes.c.sync_id == sync_id)
                .order_by(passes.c.finished_ns.desc(), passes.c.id.desc()).limit(1)
            ).first()
            errs = conn.execute(
                select(errors).where(errors.c.sync_id == sync_id)
                .order_by(errors.c.at_ns.desc(), errors.c.id.desc()).limit(recent_errors)
            ).all()
        return SyncStats(
            sync_id=sync_id, name=sync.name, queue_depth=counts[0], parked=counts[1], in_flight=counts[2],
            next_due_ns=counts[3], entries=n_entries, uploads_in_flight=n_uploads,
            files_done=sync.files_done, bytes_done=sync.bytes_done, last_success_ns=sync.last_success_ns,
            last_pass=None if last is None else PassSummary(
                started_ns=last.started_ns, finished_ns=last.finished_ns, direction=Direction(last.direction),
                uploaded=last.uploaded, copied=last.copied, deleted=last.deleted, downloaded=last.downloaded,
                adopted=last.adopted, skipped=last.skipped, failed=last.failed, bytes_sent=last.bytes_sent,
                bytes_received=last.bytes_received, refused_deletes=last.refused_deletes, error=last.error,
            ),
            last_errors=tuple(ErrorRecord(e.path, e.message, e.at_ns) for e in errs),
        )

    # ----------------------------------------------------------------------------------------------
    # Checks

    def integrity_check(self) -> list[str]:
        """SQLite's own check plus the journal's invariants; an empty list means healthy."""
        problems: list[str] = []
        with self._read() as conn:
            for (line,) in conn.exec_driver_sql("PRAGMA integrity_check").all():
                if line != "ok":
                    problems.append(f"sqlite: {line}")
            for row in conn.exec_driver_sql("PRAGMA foreign_key_check").all():
                problems.append(f"foreign key: row {row[1]} of {row[0]} points at a missing {row[2]} row")
            version = conn.exec_driver_sql("PRAGMA user_version").scalar_one()
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
                n = conn.exec_driver_sql(sql).scalar_one()
                if n:
                    problems.append(f"{what}: {n}")
        return problems


def _prune(conn: Connection, table: Table, sync_id: int, keep: int) -> None:
    cutoff = conn.execute(
        select(table.c.id).where(table.c.sync_id == sync_id).order_by(table.c.id.desc()).offset(keep).limit(1)
    ).scalar()
    if cutoff is not None:
        conn.execute(delete(table).where(table.c.sync_id == sync_id, table.c.id <= cutoff))

