"""``JournalCheckpoint``: the durable ``model.Checkpoint`` the executor writes multipart progress and
confirmed entries through, bound to one sync.

Every method commits before it returns (durable against a killed process; ``upload_started`` also
against power loss: see docs/journal.md). Safe from many threads: writes go through the journal's
single writer lock, reads use pooled connections. ``synced`` commits as a group (``Coalescer``):
entries that arrive while another thread is committing go into the next transaction together, and
each caller returns only once a transaction holding its entry has committed.

The per-file and per-part statements are Core constructs compiled once and run on the writer's DBAPI
connection (``sql.Prepared``): they run once per transferred file or part. Imports: SQLAlchemy,
sqlite3, the journal's schema, statements and errors, ``ks3sync.model``, ``ks3sync.coalesce``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from sqlalchemy import Connection, bindparam, delete, insert, or_, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ks3sync.coalesce import Coalescer
from ks3sync.journal.errors import UnknownUploadError
from ks3sync.journal.schema import entries, parts, uploads
from ks3sync.journal.sql import Prepared, dbapi
from ks3sync.model import FileIdentity, PartRecord, SyncedEntry, UploadRecord

if TYPE_CHECKING:
    from ks3sync.journal.journal import Journal

_U64 = 1 << 64


def crc_to_sql(crc: int | None) -> int | None:
    """CRC-64 values use all 64 bits; SQLite integers are signed 64-bit."""
    if crc is None:
        return None
    return crc - _U64 if crc >= 1 << 63 else crc


def crc_from_sql(value: int | None) -> int | None:
    if value is None:
        return None
    return value + _U64 if value < 0 else value


_ENTRY_FIELDS = (
    "sync_id",
    "path",
    "size",
    "mtime_ns",
    "inode",
    "ctime_ns",
    "md5",
    "remote_etag",
    "remote_size",
    "encrypted",
    "synced_at_ns",
)
_insert_entry = sqlite_insert(entries)
ENTRY_UPSERT = Prepared(
    _insert_entry.on_conflict_do_update(
        index_elements=[entries.c.sync_id, entries.c.path],
        set_={name: _insert_entry.excluded[name] for name in _ENTRY_FIELDS[2:]},
    ),
    *_ENTRY_FIELDS,
)
_ENTRY_DELETE = Prepared(
    delete(entries).where(entries.c.sync_id == bindparam("d_sync"), entries.c.path == bindparam("d_path")),
    "d_sync",
    "d_path",
)


def write_entries(db: sqlite3.Connection, sync_id: int, batch: Iterable[SyncedEntry]) -> int:
    rows = [
        (
            sync_id,
            e.path,
            e.identity.size,
            e.identity.mtime_ns,
            e.identity.inode,
            e.identity.ctime_ns,
            e.md5,
            e.remote_etag,
            e.remote_size,
            int(e.encrypted),
            e.synced_at_ns,
        )
        for e in batch
    ]
    if len(rows) > 1:
        rows.sort(key=lambda r: r[1])  # primary-key order: B-tree appends instead of random inserts
    if rows:
        ENTRY_UPSERT.run_many(db, rows)
    return len(rows)


def delete_entries(db: sqlite3.Connection, sync_id: int, paths: Sequence[str]) -> None:
    _ENTRY_DELETE.run_many(db, [(sync_id, p) for p in paths])


class _UploadRow(NamedTuple):
    id: int
    path: str
    key: str
    upload_id: str
    part_size: int
    size: int
    mtime_ns: int
    inode: int
    ctime_ns: int
    iv: bytes | None
    started_at_ns: int


_UPLOADS = select(
    uploads.c.id,
    uploads.c.path,
    uploads.c.key,
    uploads.c.upload_id,
    uploads.c.part_size,
    uploads.c.size,
    uploads.c.mtime_ns,
    uploads.c.inode,
    uploads.c.ctime_ns,
    uploads.c.iv,
    uploads.c.started_at_ns,
).order_by(uploads.c.id)
_UPLOADS_OF_SYNC = _UPLOADS.where(uploads.c.sync_id == bindparam("sync_id"))
_UPLOAD_OF_PATH = _UPLOADS_OF_SYNC.where(uploads.c.path == bindparam("path"))
_PARTS_OF_UPLOAD = (
    select(parts.c.part_number, parts.c.size, parts.c.md5, parts.c.etag, parts.c.crc64, parts.c.chain_block)
    .where(parts.c.upload_row == bindparam("row"))
    .order_by(parts.c.part_number)
)


def read_uploads(
    db: Connection, *, sync_id: int | None = None, path: str | None = None
) -> list[UploadRecord]:
    """The uploads (of one sync, of one of its paths, or all), oldest first, with their parts."""
    if sync_id is None:
        result = db.execute(_UPLOADS)
    elif path is None:
        result = db.execute(_UPLOADS_OF_SYNC, {"sync_id": sync_id})
    else:
        result = db.execute(_UPLOAD_OF_PATH, {"sync_id": sync_id, "path": path})
    rows = [_UploadRow(*r) for r in result]
    return [_read_upload(db, row) for row in rows]


def _read_upload(db: Connection, row: _UploadRow) -> UploadRecord:
    part_rows = db.execute(_PARTS_OF_UPLOAD, {"row": row.id})
    return UploadRecord(
        path=row.path,
        key=row.key,
        upload_id=row.upload_id,
        part_size=row.part_size,
        identity=FileIdentity(row.size, row.mtime_ns, row.inode, row.ctime_ns),
        started_at_ns=row.started_at_ns,
        iv=row.iv,
        parts=tuple(
            PartRecord(number, size, md5, etag, crc_from_sql(crc), chain_block)
            for number, size, md5, etag, crc, chain_block in part_rows
        ),
    )


_PART_FIELDS = ("part_number", "size", "md5", "etag", "crc64", "chain_block")
_DROP_UPLOAD_OF = Prepared(
    delete(uploads).where(
        or_(
            uploads.c.upload_id == bindparam("u_id"),
            (uploads.c.sync_id == bindparam("u_sync")) & (uploads.c.path == bindparam("u_path")),
        )
    ),
    "u_id",
    "u_sync",
    "u_path",
)
_UPLOAD_FIELDS = (
    "sync_id",
    "path",
    "key",
    "upload_id",
    "part_size",
    "size",
    "mtime_ns",
    "inode",
    "ctime_ns",
    "iv",
    "started_at_ns",
)
_INSERT_UPLOAD = Prepared(
    insert(uploads).values({name: bindparam(f"v_{name}") for name in _UPLOAD_FIELDS}),
    *(f"v_{name}" for name in _UPLOAD_FIELDS),
)
_INSERT_PART = Prepared(insert(parts), "upload_row", *_PART_FIELDS)
# A part of an upload named by its id, which must belong to the sync: one statement, no lookup first.
_PART_DONE = Prepared(
    insert(parts)
    .prefix_with("OR REPLACE")
    .from_select(
        ["upload_row", *_PART_FIELDS],
        select(uploads.c.id, *(bindparam(f"p_{name}") for name in _PART_FIELDS)).where(
            uploads.c.upload_id == bindparam("p_upload"), uploads.c.sync_id == bindparam("p_sync")
        ),
    ),
    *(f"p_{name}" for name in _PART_FIELDS),
    "p_upload",
    "p_sync",
)
_UPLOAD_FINISHED = Prepared(delete(uploads).where(uploads.c.upload_id == bindparam("f_upload")), "f_upload")


class JournalCheckpoint:
    """``model.Checkpoint`` over the journal for one sync."""

    def __init__(self, journal: Journal, sync_id: int) -> None:
        self._journal = journal
        self.sync_id = sync_id
        # Group commit of ``synced``: entries handed in while another thread commits go in together.
        self._confirmed: Coalescer[SyncedEntry] = Coalescer()

    def upload_for(self, path: str) -> UploadRecord | None:
        with self._journal._read() as db:
            found = read_uploads(db, sync_id=self.sync_id, path=path)
        return found[0] if found else None

    def upload_started(self, record: UploadRecord) -> None:
        # Durable (FULL): an upload id lost to a power cut would leak storage until the stale sweep.
        with self._journal._write(durable=True) as conn:
            db = dbapi(conn)
            _DROP_UPLOAD_OF.run(db, (record.upload_id, self.sync_id, record.path))
            ident = record.identity
            row_id = _INSERT_UPLOAD.run(
                db,
                (
                    self.sync_id,
                    record.path,
                    record.key,
                    record.upload_id,
                    record.part_size,
                    ident.size,
                    ident.mtime_ns,
                    ident.inode,
                    ident.ctime_ns,
                    record.iv,
                    record.started_at_ns,
                ),
            ).lastrowid
            if record.parts:
                _INSERT_PART.run_many(
                    db,
                    [
                        (row_id, p.part_number, p.size, p.md5, p.etag, crc_to_sql(p.crc64), p.chain_block)
                        for p in record.parts
                    ],
                )

    def part_done(self, upload_id: str, part: PartRecord) -> None:
        with self._journal._write() as conn:
            cur = _PART_DONE.run(
                dbapi(conn),
                (
                    part.part_number,
                    part.size,
                    part.md5,
                    part.etag,
                    crc_to_sql(part.crc64),
                    part.chain_block,
                    upload_id,
                    self.sync_id,
                ),
            )
            if cur.rowcount != 1:
                raise UnknownUploadError(
                    f"{self._journal.path}: no multipart upload {upload_id!r} in the journal"
                )

    def upload_finished(self, upload_id: str) -> None:
        with self._journal._write() as conn:
            # parts go with it (ON DELETE CASCADE; foreign keys are on for every connection)
            _UPLOAD_FINISHED.run(dbapi(conn), (upload_id,))

    def synced(self, entry: SyncedEntry) -> None:
        """Record ``entry``; returns once it is committed. With many transfer threads, one commit per
        file serialised every worker behind the writer lock (2,000 restored files spent a fifth of
        their time there); here whoever gets the lock commits everything pending, so a waiting thread
        usually finds its entry already committed."""
        self._confirmed.submit(entry, self._write_confirmed)

    def _write_confirmed(self, batch: list[SyncedEntry]) -> None:
        with self._journal._write() as conn:
            write_entries(dbapi(conn), self.sync_id, batch)

    def synced_many(self, batch: Iterable[SyncedEntry]) -> int:
        """Record many confirmed entries in one transaction (Adopt results, a rebuilt journal)."""
        with self._journal._write() as conn:
            return write_entries(dbapi(conn), self.sync_id, batch)

    def removed(self, paths: Sequence[str]) -> None:
        if paths:
            with self._journal._write() as conn:
                delete_entries(dbapi(conn), self.sync_id, paths)
