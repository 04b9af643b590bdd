"""``Journal``: the one source of truth (invariant 8) for what was synced, what is queued and which
multipart uploads are in flight, in one SQLite file.

Concurrency: one writer connection behind one lock (SQLite allows a single writer anyway; taking the
lock in Python keeps transfer threads from spinning on SQLITE_BUSY), and a pool of reader connections
that WAL lets run beside the writer, all from one SQLAlchemy engine per journal (``connection.py``,
whose events carry the durability rules). Every public method is safe to call from any thread.

Statements are SQLAlchemy Core constructs over ``schema.py``'s tables, built once at module level;
how each is run (SQLAlchemy's execute, or compiled once and run on the DBAPI cursor where it runs
per file or per change) is ``sql.py``'s subject.

Read-only (``Journal.open(path, read_only=True)``, what ``status`` and ``check`` use): no writer; the
file is opened by SQLite read-only, never created, switched to WAL or migrated; a journal not at
``SCHEMA_VERSION`` is refused, and every write method raises.

Owns: opening/creating/migrating the file, syncs, synced entries, the change queue (rules in
``queue.py``), multipart checkpoints (``checkpoint.py``), pass history and status, the service's
liveness and each sync's health (``health.py``). Must not import: the store, the transfer engine, the
planner, the CLI, httpx.
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

from sqlalchemy import (
    BindParameter,
    Connection,
    Engine,
    Integer,
    bindparam,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy import exc as sa_exc

from ks3sync.journal.checkpoint import JournalCheckpoint, delete_entries, read_uploads, write_entries
from ks3sync.journal.connection import (
    BUSY_TIMEOUT_MS,
    DEFAULT_READERS,
    SYNCHRONOUS,
    Readers,
    as_journal_error,
    check_file,
    is_database_error,
    journal_engine,
    read_lease,
    restrict_permissions,
)
from ks3sync.journal.errors import EmptyJournalError, JournalError
from ks3sync.journal.schema import changes, entries, errors, parts, passes, syncs, uploads
from ks3sync.journal.sql import Prepared, dbapi
from ks3sync.journal.version import SCHEMA_VERSION, refuse_older, refuse_unknown
from ks3sync.model import Direction, FileIdentity, PassSummary, SyncedEntry, UploadRecord

if TYPE_CHECKING:
    from sqlalchemy import Select, Table

    from ks3sync.journal.types import (
        Change,
        HealthRecord,
        QueueCounts,
        QueuedChange,
        ServiceRecord,
        SyncRecord,
        SyncStats,
        VerifyState,
    )

# The change queue (queue.py) and the status/record types (types.py) are imported by the methods that
# use them: `mirror` never does, and their dataclasses are start-up time a no-change run would pay.

log = logging.getLogger(__name__)

KEEP_PASSES = 1000  # per sync: enough history for status, bounded for a service that runs for years
KEEP_ERRORS = 100

Clock = Callable[[], int]

# --------------------------------------------------------------------------------------------------
# Statements (Core constructs; SQLAlchemy compiles each once and caches it)

_ENTRY_COLUMNS = (
    entries.c.path,
    entries.c.size,
    entries.c.mtime_ns,
    entries.c.inode,
    entries.c.ctime_ns,
    entries.c.md5,
    entries.c.remote_etag,
    entries.c.remote_size,
    entries.c.encrypted,
    entries.c.synced_at_ns,
)
_SYNC_ID: BindParameter[int] = bindparam("sync_id", type_=Integer)
_ENTRIES_OF_SYNC = select(*_ENTRY_COLUMNS).where(entries.c.sync_id == _SYNC_ID)
_ENTRIES_IN_PATH_ORDER = _ENTRIES_OF_SYNC.order_by(entries.c.path)
_ENTRIES_FROM_START = _ENTRIES_IN_PATH_ORDER.limit(bindparam("n"))
_ENTRIES_AFTER = _ENTRIES_IN_PATH_ORDER.where(entries.c.path > bindparam("after")).limit(bindparam("n"))
_ENTRIES_OF_PATHS = _ENTRIES_OF_SYNC.where(entries.c.path.in_(bindparam("paths", expanding=True)))
_PATHS_OF_SYNC = select(entries.c.path).where(entries.c.sync_id == _SYNC_ID).order_by(entries.c.path)
_PATHS_IN_RANGE = _PATHS_OF_SYNC.where(entries.c.path >= bindparam("low"), entries.c.path < bindparam("high"))
_COUNT_UP_TO = select(func.count()).select_from(
    select(literal_column("1")).where(entries.c.sync_id == _SYNC_ID).limit(bindparam("at_most")).subquery()
)

_SYNC_BY_NAME = select(syncs.c.id, syncs.c.source, syncs.c.bucket, syncs.c.prefix).where(
    syncs.c.name == bindparam("name")
)
_INSERT_SYNC = insert(syncs)
_UPDATE_SYNC = update(syncs).where(syncs.c.id == _SYNC_ID)
_DROP_ENTRIES = delete(entries).where(entries.c.sync_id == _SYNC_ID)
_DROP_PENDING = delete(changes).where(changes.c.sync_id == _SYNC_ID, changes.c.claimed == 0)
_ALL_SYNCS = select(
    syncs.c.id, syncs.c.name, syncs.c.source, syncs.c.bucket, syncs.c.prefix, syncs.c.options_hash
).order_by(syncs.c.name)
_REMOVE_SYNC = delete(syncs).where(syncs.c.id == _SYNC_ID)
# A sync named the way an older ks3sync named it (a prefix of the name) that holds the same pair of trees;
# the most recently active first (its last pass, then the newest row).
_FORMER_SYNCS = (
    select(syncs.c.id)
    .where(
        func.substr(syncs.c.name, 1, func.length(bindparam("former"))) == bindparam("former"),
        syncs.c.source == bindparam("source"),
        syncs.c.bucket == bindparam("bucket"),
        syncs.c.prefix == bindparam("prefix"),
    )
    .order_by(
        select(func.max(passes.c.finished_ns))
        .where(passes.c.sync_id == syncs.c.id)
        .scalar_subquery()
        .desc()
        .nulls_last(),
        syncs.c.id.desc(),
    )
    .limit(1)
)

_INSERT_PASS = insert(passes)
_INSERT_ERROR = Prepared(
    insert(errors).values(
        sync_id=bindparam("e_sync"),
        path=bindparam("e_path"),
        message=bindparam("e_message"),
        at_ns=bindparam("e_at"),
    ),
    "e_sync",
    "e_path",
    "e_message",
    "e_at",
)


def _pending_filter() -> Any:
    return (changes.c.claimed == 0) & (changes.c.parked == 0)


_QUEUE_COUNTS = select(
    func.count().filter(_pending_filter()),
    func.count().filter(changes.c.parked == 1),
    func.count().filter(changes.c.claimed == 1),
).where(changes.c.sync_id == _SYNC_ID)
_QUEUE_STATS = _QUEUE_COUNTS.add_columns(func.min(changes.c.due_ns).filter(_pending_filter()))
_SYNC_TOTALS = select(syncs.c.name, syncs.c.files_done, syncs.c.bytes_done, syncs.c.last_success_ns).where(
    syncs.c.id == _SYNC_ID
)
_COUNT_ENTRIES = select(func.count()).select_from(entries).where(entries.c.sync_id == _SYNC_ID)
_COUNT_UPLOADS = select(func.count()).select_from(uploads).where(uploads.c.sync_id == _SYNC_ID)
_PASS_COLUMNS = (
    passes.c.started_ns,
    passes.c.finished_ns,
    passes.c.direction,
    passes.c.uploaded,
    passes.c.copied,
    passes.c.deleted,
    passes.c.downloaded,
    passes.c.adopted,
    passes.c.skipped,
    passes.c.failed,
    passes.c.bytes_sent,
    passes.c.bytes_received,
    passes.c.refused_deletes,
    passes.c.error,
)
_LAST_PASS = (
    select(*_PASS_COLUMNS)
    .where(passes.c.sync_id == _SYNC_ID)
    .order_by(passes.c.finished_ns.desc(), passes.c.id.desc())
    .limit(1)
)
_RECENT_ERRORS = (
    select(errors.c.path, errors.c.message, errors.c.at_ns)
    .where(errors.c.sync_id == _SYNC_ID)
    .order_by(errors.c.at_ns.desc(), errors.c.id.desc())
    .limit(bindparam("n"))
)


def _pruning(table: Table) -> tuple[Prepared, Prepared]:
    """(the id of the newest row past ``keep``, delete up to that id) for ``passes`` or ``errors``."""
    cutoff = Prepared(
        select(table.c.id)
        .where(table.c.sync_id == bindparam("p_sync"))
        .order_by(table.c.id.desc())
        .limit(literal_column("1"))
        .offset(bindparam("p_keep")),
        "p_sync",
        "p_keep",
    )
    drop = Prepared(
        delete(table).where(table.c.sync_id == bindparam("p_sync"), table.c.id <= bindparam("p_id")),
        "p_sync",
        "p_id",
    )
    return cutoff, drop


_PRUNE = {"passes": _pruning(passes), "errors": _pruning(errors)}


def _integrity_checks() -> dict[str, Select[Any]]:
    def count(table: Table, *where: Any) -> Select[Any]:
        return select(func.count()).select_from(table).where(*where)

    def bad_path(table: Table) -> Any:
        return or_(table.c.path == "", table.c.path.startswith("/", autoescape=True))

    pending_dupes = (
        select(literal_column("1"))
        .where(changes.c.claimed == 0)
        .group_by(changes.c.sync_id, changes.c.path)
        .having(func.count() > 1)
        .subquery()
    )
    return {
        "parts whose upload is gone": count(parts, parts.c.upload_row.not_in(select(uploads.c.id))),
        "moves without a source path / other changes with one": count(
            changes, (changes.c.kind == "move") != changes.c.src_path.is_not(None)
        ),
        "paths with more than one pending change": select(func.count()).select_from(pending_dupes),
        "entries with a malformed MD5": count(
            entries, or_(func.length(entries.c.md5) != 32, entries.c.md5.op("GLOB")("*[^0-9a-f]*"))
        ),
        "entries with negative sizes": count(entries, or_(entries.c.size < 0, entries.c.remote_size < 0)),
        "absolute or empty paths": select(
            count(entries, bad_path(entries)).scalar_subquery()
            + count(changes, bad_path(changes)).scalar_subquery()
        ),
        "parts numbered outside 1..10000": count(
            parts, or_(parts.c.part_number < 1, parts.c.part_number > 10000)
        ),
    }


def _entry_from_row(r: Any) -> SyncedEntry:
    path, size, mtime_ns, inode, ctime_ns, md5, etag, remote_size, encrypted, synced_at_ns = r
    # SQLite hands out a new object per column: share the equal ones (a plain object's ETag is its MD5,
    # and its remote size is the file's size), ~110 bytes less per entry in a 100k-entry map. The path is
    # interned so the scan's and the listing's copies of it can be the same object too.
    if etag == md5:
        etag = md5
    if remote_size == size:
        remote_size = size
    return SyncedEntry(
        sys.intern(path),
        FileIdentity(size, mtime_ns, inode, ctime_ns),
        md5,
        etag,
        remote_size,
        bool(encrypted),
        synced_at_ns,
    )


class Journal:
    """Open with :meth:`open`; close with :meth:`close` (or use as a context manager)."""

    def __init__(
        self, path: Path, engine: Engine, writer: Connection | None, readers: Readers, clock: Clock
    ) -> None:
        self.path = path
        self.read_only = writer is None
        self._clock = clock
        self._lock = threading.RLock()
        self._engine = engine
        self._writer: Connection | None = writer
        self._writer_level: str | None = None  # the writer's SYNCHRONOUS execution option, once set
        self._readers = readers
        self._closed = False

    # ----------------------------------------------------------------------------------------------
    # Life cycle

    @classmethod
    def open(
        cls,
        path: Path | str,
        *,
        clock: Clock = time.time_ns,
        readers: Readers = DEFAULT_READERS,
        read_only: bool = False,
    ) -> Journal:
        """Open (creating parents and the file if needed) and migrate to ``SCHEMA_VERSION``.

        Raises :class:`JournalError` with one line naming ``path`` for a non-SQLite or corrupted file,
        a journal from a newer ks3sync, a foreign SQLite database, or an unwritable location.

        ``read_only``: only read an existing journal, changing nothing in it or beside it (no folder,
        no file, no WAL switch, no migration, no permissions, no write lock); also refused: a missing
        file and a journal at an older schema; :class:`EmptyJournalError` for a file whose schema is not
        created yet. Its write methods raise :class:`JournalError`."""
        path = Path(path)
        check_file(path, read_only=read_only)
        engine = journal_engine(path, readers, read_only=read_only)
        if read_only:
            journal = cls(path, engine, None, readers, clock)
            try:
                journal._check_readable()
            except BaseException:
                journal.close()
                raise
            return journal
        try:
            writer = engine.connect()
        except sa_exc.DBAPIError as exc:
            engine.dispose()
            raise as_journal_error(path, exc) from exc
        journal = cls(path, engine, writer, readers, clock)
        try:
            journal._prepare(writer)
        except Exception as exc:
            journal.close()
            if is_database_error(exc):
                raise as_journal_error(path, exc) from exc
            raise
        restrict_permissions(path)
        return journal

    def _prepare(self, writer: Connection) -> None:
        # Refuse foreign or newer files before changing anything in them (switching to WAL rewrites
        # the header). Outside any transaction: journal_mode cannot change inside one.
        raw = dbapi(writer)
        raw.execute("BEGIN")
        try:
            version, objects = _version_and_objects(raw)
        finally:
            raw.execute("COMMIT")
        refuse_unknown(self.path, version, objects)
        _switch_to_wal(raw, self.path)
        if version < SCHEMA_VERSION:
            from ks3sync.journal import migrations

            # Versions never go down, so a file already at SCHEMA_VERSION needs no write lock to stay
            # there; creating or upgrading one does, and looks again once it holds the lock.
            with self._write(durable=True) as db:
                migrations.upgrade(db, self.path, refuse_unknown)

    def _check_readable(self) -> None:
        """A read-only journal reads only a file at ``SCHEMA_VERSION``: it cannot migrate an older one,
        and this ks3sync's statements assume the current schema."""
        with self._read() as db:
            version, objects = _version_and_objects(dbapi(db))
        refuse_unknown(self.path, version, objects)
        if version == 0:
            raise EmptyJournalError(
                f"{self.path}: the journal holds nothing yet (no schema: a starting ks3sync may be creating it)"
            )
        refuse_older(self.path, version)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            self._engine.dispose()  # idle readers close now; leased ones when they come back

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r})"

    @contextmanager
    def _write(self, *, durable: bool = False) -> Iterator[Connection]:
        """One write transaction on the writer connection, under the writer lock: the engine's
        ``begin`` event takes the write lock up front (``BEGIN IMMEDIATE``) with FULL sync when
        ``durable``, NORMAL otherwise; COMMIT, or ROLLBACK on any exception. SQLite errors (raw or
        through SQLAlchemy) become JournalErrors naming the file; other exceptions pass through after
        the rollback."""
        with self._lock:
            db = self._writer
            if self._closed:
                raise JournalError(f"{self.path}: the journal is closed")
            if db is None:
                raise JournalError(
                    f"{self.path}: the journal is open read-only; nothing may be written to it"
                )
            level = "FULL" if durable else "NORMAL"
            if level != self._writer_level:  # setting an option dispatches an event: only on a change
                db.execution_options(**{SYNCHRONOUS: level})
                self._writer_level = level
            try:
                with db.begin():
                    yield db
            except Exception as exc:
                if is_database_error(exc):
                    raise as_journal_error(self.path, exc) from exc
                raise

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """A pooled reader inside one read transaction (one snapshot for all its statements)."""
        if self._closed:
            raise JournalError(f"{self.path}: the journal is closed")
        try:
            with read_lease(self._engine, self.path, self._readers, lambda: self._closed) as db:
                yield db
        except Exception as exc:
            if is_database_error(exc):
                raise as_journal_error(self.path, exc) from exc
            raise

    # ----------------------------------------------------------------------------------------------
    # Syncs

    def register_sync(
        self,
        name: str,
        source: str,
        bucket: str,
        prefix: str,
        options_hash: str,
        *,
        formerly: str | None = None,
    ) -> int:
        """The id of the sync called ``name``, created or updated.

        If ``source``, ``bucket`` or ``prefix`` changed, the synced entries and pending changes describe
        another pair of trees and are dropped (a scan plus a listing rebuilds them, with Adopt instead
        of uploads). Multipart uploads in flight are kept so the caller can abort them
        (:meth:`uploads`). ``options_hash`` is opaque to the journal: never put secrets in it.

        ``formerly``: how an older ks3sync began this sync's name. When no sync is called ``name``
        yet, the most recently active sync whose name starts so and which holds the same ``source``,
        ``bucket`` and ``prefix`` is renamed ``name``, with its records and uploads in flight."""
        values = {"source": source, "bucket": bucket, "prefix": prefix}
        with self._write() as db:
            row = db.execute(_SYNC_BY_NAME, {"name": name}).first()
            if row is None and formerly:
                found = db.execute(_FORMER_SYNCS, {"former": formerly, **values}).first()
                if found is not None:
                    db.execute(_UPDATE_SYNC, {"sync_id": found[0], "name": name})
                    row = db.execute(_SYNC_BY_NAME, {"name": name}).first()
            if row is None:
                result = db.execute(
                    _INSERT_SYNC,
                    {"name": name, "options_hash": options_hash, "created_at_ns": self._clock(), **values},
                )
                (sync_id,) = result.inserted_primary_key or (None,)
                assert sync_id is not None
                return int(sync_id)
            sync_id = int(row[0])
            if tuple(row[1:]) != (source, bucket, prefix):
                db.execute(_DROP_ENTRIES, {"sync_id": sync_id})
                db.execute(_DROP_PENDING, {"sync_id": sync_id})
            db.execute(_UPDATE_SYNC, {"sync_id": sync_id, "options_hash": options_hash, **values})
            return sync_id

    def syncs(self) -> list[SyncRecord]:
        from ks3sync.journal.types import SyncRecord

        with self._read() as db:
            rows = db.execute(_ALL_SYNCS).all()
        return [SyncRecord(*r) for r in rows]

    def remove_sync(self, sync_id: int) -> None:
        """Forget a sync and everything recorded for it. Abort its multipart uploads first."""
        with self._write() as db:
            # entries, changes, uploads (and their parts), passes, errors, health go with it: ON DELETE CASCADE
            db.execute(_REMOVE_SYNC, {"sync_id": sync_id})

    # ----------------------------------------------------------------------------------------------
    # Synced entries

    def synced_entries(self, sync_id: int) -> dict[str, SyncedEntry]:
        """The whole map (repair's view). Built row by row (no list of rows beside the map), with the
        cyclic GC paused: building 100k small objects otherwise triggers full collections that rescan
        everything built so far."""
        with self._read() as db:
            gc_was_on = gc.isenabled()
            gc.disable()
            try:
                found: dict[str, SyncedEntry] = {}
                for r in db.execute(_ENTRIES_OF_SYNC, {"sync_id": sync_id}):
                    entry = _entry_from_row(r)
                    found[entry.path] = entry
            finally:
                if gc_was_on:
                    gc.enable()
        return found

    def iter_synced_entries(self, sync_id: int, *, batch: int = 2000) -> Generator[SyncedEntry, None, None]:
        """The sync's records in path order (SQLite's BINARY collation on UTF-8 text is UTF-8 byte order,
        the order of the scan and of KS3 listings), streamed ``batch`` rows at a time: the reconcile
        marches them beside the scan and the listing without holding a million-row map.

        Holds one pooled read connection (one WAL snapshot) until exhausted or closed."""
        with self._read() as db:
            result = db.execute(
                _ENTRIES_IN_PATH_ORDER, {"sync_id": sync_id}, execution_options={"yield_per": batch}
            )
            try:
                for rows in result.partitions():
                    for r in rows:
                        yield _entry_from_row(r)
            finally:
                result.close()

    def synced_count(self, sync_id: int, *, at_most: int) -> int:
        """How many records the sync has, counting no further than ``at_most`` (a bounded index range,
        however large the sync)."""
        with self._read() as db:
            return int(db.execute(_COUNT_UP_TO, {"sync_id": sync_id, "at_most": at_most}).scalar_one())

    def synced_for(self, sync_id: int, paths: Iterable[str]) -> dict[str, SyncedEntry]:
        """Point lookups: the records of ``paths`` that exist (the service's per-batch view; it must not
        load a million-row map for every batch)."""
        wanted = list(dict.fromkeys(paths))
        found: dict[str, SyncedEntry] = {}
        with self._read() as db:
            for start in range(0, len(wanted), 500):  # below SQLite's bound-parameter limit
                rows = db.execute(
                    _ENTRIES_OF_PATHS, {"sync_id": sync_id, "paths": wanted[start : start + 500]}
                )
                found.update((r[0], _entry_from_row(r)) for r in rows)
        return found

    def synced_paths_under(self, sync_id: int, prefix: str) -> list[str]:
        """Recorded paths starting with ``prefix`` (e.g. ``"dir/"`` for a moved or deleted folder), in
        key order; a range scan of the primary key, not a table scan."""
        with self._read() as db:
            if not prefix:
                rows = db.execute(_PATHS_OF_SYNC, {"sync_id": sync_id})
            else:
                upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)  # the first string after every prefix+...
                rows = db.execute(_PATHS_IN_RANGE, {"sync_id": sync_id, "low": prefix, "high": upper})
            return list(rows.scalars())

    def record_synced(self, sync_id: int, batch: Iterable[SyncedEntry]) -> int:
        """Record many confirmed entries in one transaction."""
        with self._write() as db:
            return write_entries(dbapi(db), sync_id, batch)

    def remove_entries(self, sync_id: int, paths: Sequence[str]) -> None:
        if paths:
            with self._write() as db:
                delete_entries(dbapi(db), sync_id, paths)

    def checkpoint(self, sync_id: int) -> JournalCheckpoint:
        return JournalCheckpoint(self, sync_id)

    def uploads(self, sync_id: int | None = None) -> list[UploadRecord]:
        """Multipart uploads in flight (of one sync, or all), with their parts."""
        with self._read() as db:
            return read_uploads(db, sync_id=sync_id)

    # ----------------------------------------------------------------------------------------------
    # The change queue (write-ahead: FULL sync, an event is on disk before it is acted on)

    def enqueue(self, sync_id: int, batch: Sequence[Change]) -> None:
        if not batch:
            return
        from ks3sync.journal import queue

        with self._write(durable=True) as db:
            queue.enqueue(dbapi(db), sync_id, batch)

    def due(self, sync_id: int, now_ns: int, limit: int, *, claim: bool = True) -> list[QueuedChange]:
        """Up to ``limit`` changes that may run now, claimed (in flight) unless ``claim=False``.

        Never returns two rows touching one path, nor a row whose path or move source is touched by a
        claimed row: per-path order holds however many workers run. Finish each with :meth:`done` or
        :meth:`failed`."""
        from ks3sync.journal import queue

        with self._write() as db:
            return queue.due_changes(dbapi(db), sync_id, now_ns, limit, claim=claim)

    def pending(self, sync_id: int) -> list[QueuedChange]:
        """Every queued row (claimed or not, parked or not), oldest first."""
        from ks3sync.journal import queue

        with self._read() as db:
            return queue.all_changes(dbapi(db), sync_id)

    def done(self, change_ids: Sequence[int]) -> None:
        if change_ids:
            from ks3sync.journal import queue

            with self._write() as db:
                queue.mark_done(dbapi(db), list(change_ids))

    def failed(self, change_id: int, error: str, retry_at_ns: int, park: bool) -> None:
        """Count an attempt, keep the error (also in the sync's recent errors), retry at
        ``retry_at_ns``, or park the row (kept, not handed out until :meth:`unpark`)."""
        from ks3sync.journal import queue

        with self._write() as db:
            raw = dbapi(db)
            row = queue.mark_failed(raw, change_id, error, retry_at_ns, park)
            if row is not None:
                self._add_error(raw, row.sync_id, row.path, error)

    def release_claims(self, sync_id: int) -> int:
        """At service start: rows claimed by a previous (dead) process become pending again."""
        from ks3sync.journal import queue

        with self._write(durable=True) as db:
            return queue.release_claims(dbapi(db), sync_id)

    def unpark(self, sync_id: int) -> int:
        from ks3sync.journal import queue

        with self._write() as db:
            return queue.unpark(dbapi(db), sync_id, self._clock())

    # ----------------------------------------------------------------------------------------------
    # History and status

    def record_pass(self, sync_id: int, summary: PassSummary) -> None:
        with self._write() as db:
            db.execute(
                _INSERT_PASS,
                {
                    "sync_id": sync_id,
                    "direction": summary.direction.value,
                    "started_ns": summary.started_ns,
                    "finished_ns": summary.finished_ns,
                    "uploaded": summary.uploaded,
                    "copied": summary.copied,
                    "deleted": summary.deleted,
                    "downloaded": summary.downloaded,
                    "adopted": summary.adopted,
                    "skipped": summary.skipped,
                    "failed": summary.failed,
                    "bytes_sent": summary.bytes_sent,
                    "bytes_received": summary.bytes_received,
                    "refused_deletes": summary.refused_deletes,
                    "error": None if summary.error is None else " ".join(summary.error.split())[:1000],
                },
            )
            files = summary.uploaded + summary.copied + summary.downloaded + summary.deleted
            totals: dict[str, Any] = {
                "files_done": syncs.c.files_done + files,
                "bytes_done": syncs.c.bytes_done + summary.bytes_sent + summary.bytes_received,
            }
            if summary.ok:
                totals["last_success_ns"] = summary.finished_ns
            db.execute(_UPDATE_SYNC.values(totals), {"sync_id": sync_id})
            _prune(dbapi(db), "passes", sync_id, KEEP_PASSES)

    def record_error(self, sync_id: int, path: str | None, message: str) -> None:
        with self._write() as db:
            self._add_error(dbapi(db), sync_id, path, message)

    def _add_error(self, db: Any, sync_id: int, path: str | None, message: str) -> None:
        _INSERT_ERROR.run(db, (sync_id, path, " ".join(message.split())[:1000], self._clock()))
        _prune(db, "errors", sync_id, KEEP_ERRORS)

    def queue_counts(self, sync_id: int) -> QueueCounts:
        """Only the queue's counts, from the changes table's index: unlike :meth:`stats`, no count of the
        sync's records, which costs tens of milliseconds with a million of them."""
        from ks3sync.journal.types import QueueCounts

        with self._read() as db:
            counts = db.execute(_QUEUE_COUNTS, {"sync_id": sync_id}).one()
        return QueueCounts(queue_depth=counts[0], parked=counts[1], in_flight=counts[2])

    def stats(self, sync_id: int, *, recent_errors: int = 10) -> SyncStats:
        from ks3sync.journal.types import ErrorRecord, SyncStats

        params = {"sync_id": sync_id}
        with self._read() as db:
            sync = db.execute(_SYNC_TOTALS, params).first()
            if sync is None:
                raise JournalError(f"{self.path}: no sync with id {sync_id}")
            counts = db.execute(_QUEUE_STATS, params).one()
            n_entries = db.execute(_COUNT_ENTRIES, params).scalar_one()
            n_uploads = db.execute(_COUNT_UPLOADS, params).scalar_one()
            last = db.execute(_LAST_PASS, params).first()
            errs = db.execute(_RECENT_ERRORS, {**params, "n": recent_errors}).all()
        name, files_done, bytes_done, last_success_ns = sync
        return SyncStats(
            sync_id=sync_id,
            name=name,
            queue_depth=counts[0],
            parked=counts[1],
            in_flight=counts[2],
            next_due_ns=counts[3],
            entries=n_entries,
            uploads_in_flight=n_uploads,
            files_done=files_done,
            bytes_done=bytes_done,
            last_success_ns=last_success_ns,
            last_pass=None if last is None else _pass_from_row(last),
            last_errors=tuple(ErrorRecord(*e) for e in errs),
        )

    # ----------------------------------------------------------------------------------------------
    # Continuous verification (the service's verifier, daemon/verify.py; rules in verification.py)

    def records_after(self, sync_id: int, after: str | None, limit: int) -> list[SyncedEntry]:
        """Up to ``limit`` records in path order after the path ``after`` (from the first when None)."""
        with self._read() as db:
            if after is None:
                rows = db.execute(_ENTRIES_FROM_START, {"sync_id": sync_id, "n": limit})
            else:
                rows = db.execute(_ENTRIES_AFTER, {"sync_id": sync_id, "after": after, "n": limit})
            return [_entry_from_row(r) for r in rows]

    def verify_state(self, sync_id: int) -> VerifyState | None:
        from ks3sync.journal import verification

        with self._read() as db:
            return verification.read_state(db, sync_id)

    def verify_progress(
        self,
        sync_id: int,
        *,
        cursor: str | None,
        checked: int,
        round_started_ns: int,
        finished_ns: int | None = None,
    ) -> None:
        """``checked`` more objects verified, the round now at ``cursor``; ``finished_ns`` ends the round
        (everything was verified by then)."""
        from ks3sync.journal import verification

        with self._write() as db:
            verification.save_progress(
                db,
                sync_id,
                cursor=cursor,
                checked=checked,
                round_started_ns=round_started_ns,
                finished_ns=finished_ns,
                now_ns=self._clock(),
            )

    def verify_mismatch(
        self, sync_id: int, record: SyncedEntry, message: str, *, requeue: Change | None
    ) -> bool:
        """The object of ``record`` does not match it: counted, kept in the recent errors, and with
        ``requeue`` the record is dropped and the change queued, in one durable transaction. Nothing
        happens (False) when the record changed meanwhile or a change of the path is in flight: the
        sync path is rewriting it."""
        from ks3sync.journal import queue, verification

        with self._write(durable=True) as db:
            if not verification.confirm_mismatch(
                db, sync_id, record, self._clock(), requeue=requeue is not None
            ):
                return False
            raw = dbapi(db)
            if requeue is not None:
                queue.enqueue(raw, sync_id, [requeue])
            self._add_error(raw, sync_id, record.path, message)
            return True

    # ----------------------------------------------------------------------------------------------
    # The service's liveness and each sync's health (``status``; rules in health.py)

    def service_started(self, pid: int, now_ns: int, records: Sequence[HealthRecord] = ()) -> None:
        """``pid`` runs the service from ``now_ns``; ``records``: its syncs' health at start."""
        from ks3sync.journal import health

        with self._write() as db:
            health.service_started(db, pid, now_ns)
            health.write_health(db, records)

    def write_health(
        self,
        pid: int,
        now_ns: int,
        records: Sequence[HealthRecord],
        *,
        heartbeat: bool = False,
        stopped: bool = False,
    ) -> None:
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
            raw = dbapi(db)
            for (line,) in raw.execute("PRAGMA integrity_check").fetchall():
                if line != "ok":
                    problems.append(f"sqlite: {line}")
            for row in raw.execute("PRAGMA foreign_key_check").fetchall():
                problems.append(f"foreign key: row {row[1]} of {row[0]} points at a missing {row[2]} row")
            version = raw.execute("PRAGMA user_version").fetchone()[0]
            if version != SCHEMA_VERSION:
                problems.append(f"schema version {version}, expected {SCHEMA_VERSION}")
            for what, query in _integrity_checks().items():
                n = db.execute(query).scalar_one()
                if n:
                    problems.append(f"{what}: {n}")
        return problems


def _version_and_objects(raw: sqlite3.Connection) -> tuple[int, int]:
    """The file's schema version and, at version 0, the number of tables, indexes, views and triggers
    in it (for ``refuse_unknown``). Called inside one read transaction: another process (a ``status``
    while the service starts) may create the file between two separate reads, and a version 0 read
    before its commit with its tables counted after would call our own journal foreign."""
    version = int(raw.execute("PRAGMA user_version").fetchone()[0])
    if version != 0:
        return version, 0
    from ks3sync.journal import migrations

    return 0, migrations.foreign_objects(raw)


def _switch_to_wal(raw: sqlite3.Connection, path: Path) -> None:
    """Put the file in WAL mode (a no-op once any process did: the mode is stored in the file).

    Switching needs the file to itself, and while another process creates the same new journal SQLite
    may answer "database is locked" at once instead of calling the busy handler (a lock upgrade it
    refuses to wait for, as it could deadlock): try again, for as long as the busy timeout allows."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    pause = 0.005
    while True:
        try:
            mode = raw.execute("PRAGMA journal_mode = WAL").fetchone()
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.2)
    if mode is None or str(mode[0]).lower() != "wal":
        raise JournalError(f"{path}: cannot switch the journal to WAL mode (got {mode!r})")


def _pass_from_row(r: Any) -> PassSummary:
    (
        started_ns,
        finished_ns,
        direction,
        uploaded,
        copied,
        deleted,
        downloaded,
        adopted,
        skipped,
        failed,
        bytes_sent,
        bytes_received,
        refused_deletes,
        error,
    ) = r
    return PassSummary(
        started_ns=started_ns,
        finished_ns=finished_ns,
        direction=Direction(direction),
        uploaded=uploaded,
        copied=copied,
        deleted=deleted,
        downloaded=downloaded,
        adopted=adopted,
        skipped=skipped,
        failed=failed,
        bytes_sent=bytes_sent,
        bytes_received=bytes_received,
        refused_deletes=refused_deletes,
        error=error,
    )


def _prune(db: Any, table: str, sync_id: int, keep: int) -> None:
    """Keep the newest ``keep`` rows of ``table`` (``passes`` or ``errors``) for the sync."""
    find_cutoff, drop = _PRUNE[table]
    cutoff = find_cutoff.one(db, (sync_id, keep))
    if cutoff is not None:
        drop.run(db, (sync_id, cutoff[0]))
