"""``JournalCheckpoint``: the durable ``model.Checkpoint`` the executor writes multipart progress and
confirmed entries through, bound to one sync.

Every method commits before it returns (durable against a killed process; ``upload_started`` also
against power loss: see docs/journal.md). Safe from many threads: writes go through the journal's
single writer lock, reads use pooled connections.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Row, delete, insert, select

from ks3sync.journal.errors import UnknownUploadError
from ks3sync.journal.schema import parts, uploads
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


ENTRY_UPSERT = (
    "INSERT INTO entries (sync_id, path, size, mtime_ns, inode, ctime_ns, md5, remote_etag, remote_size,"
    " encrypted, synced_at_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (sync_id, path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns,"
    " inode = excluded.inode, ctime_ns = excluded.ctime_ns, md5 = excluded.md5,"
    " remote_etag = excluded.remote_etag, remote_size = excluded.remote_size,"
    " encrypted = excluded.encrypted, synced_at_ns = excluded.synced_at_ns"
)


def write_entries(db: sqlite3.Connection, sync_id: int, batch: Iterable[SyncedEntry]) -> int:
    rows = [
        (sync_id, e.path, e.identity.size, e.identity.mtime_ns, e.identity.inode, e.identity.ctime_ns,
         e.md5, e.remote_etag, e.remote_size, int(e.encrypted), e.synced_at_ns)
        for e in batch
    ]
    if len(rows) > 1:
        rows.sort(key=lambda r: r[1])  # primary-key order: B-tree appends instead of random inserts
    if rows:
        # Raw executemany: SQLAlchemy's per-row parameter handling costs several times the SQL here.
        db.executemany(ENTRY_UPSERT, rows)
    return len(rows)


def delete_entries(db: sqlite3.Connection, sync_id: int, paths: Sequence[str]) -> None:
    db.executemany("DELETE FROM entries WHERE sync_id = ? AND path = ?", [(sync_id, p) for p in paths])


def read_upload(conn: Connection, upload_row: Row) -> UploadRecord:
    part_rows = conn.execute(
        select(parts).where(parts.c.upload_row == upload_row.id).order_by(parts.c.part_number)
    ).all()
    return UploadRecord(
        path=upload_row.path,
        key=upload_row.key,
        upload_id=upload_row.upload_id,
        part_size=upload_row.part_size,
        identity=FileIdentity(upload_row.size, upload_row.mtime_ns, upload_row.inode, upload_row.ctime_ns),
        started_at_ns=upload_row.started_at_ns,
        iv=upload_row.iv,
        parts=tuple(
            PartRecord(p.part_number, p.size, p.md5, p.etag, crc_from_sql(p.crc64), p.chain_block)
            for p in part_rows
        ),
    )


def _part_values(upload_row: int, part: PartRecord) -> dict[str, object]:
    return dict(upload_row=upload_row, part_number=part.part_number, size=part.size, md5=part.md5,
                etag=part.etag, crc64=crc_to_sql(part.crc64), chain_block=part.chain_block)


class JournalCheckpoint:
    """``model.Checkpoint`` over the journal for one sync."""

    def __init__(self, journal: Journal, sync_id: int) -> None:
        self._journal = journal
        self.sync_id = sync_id

    def upload_for(self, path: str) -> UploadRecord | None:
        with self._journal._read() as conn:
            row = conn.execute(
                select(uploads).where(uploads.c.sync_id == self.sync_id, uploads.c.path == path)
            ).first()
            return None if row is None else read_upload(conn, row)

    def upload_started(self, record: UploadRecord) -> None:
        # Durable (FULL): an upload id lost to a power cut would leak storage until the stale sweep.
        with self._journal._write(durable=True) as conn:
            conn.execute(delete(uploads).where(
                (uploads.c.upload_id == record.upload_id)
                | ((uploads.c.sync_id == self.sync_id) & (uploads.c.path == record.path))
            ))
            ident = record.identity
            result = conn.execute(insert(uploads).values(
                sync_id=self.sync_id, path=record.path, key=record.key, upload_id=record.upload_id,
                part_size=record.part_size, size=ident.size, mtime_ns=ident.mtime_ns, inode=ident.inode,
                ctime_ns=ident.ctime_ns, iv=record.iv, started_at_ns=record.started_at_ns,
            ))
            row_id = result.inserted_primary_key[0]  # type: ignore[index]
            if record.parts:
                conn.execute(insert(parts), [_part_values(row_id, p) for p in record.parts])

    def part_done(self, upload_id: str, part: PartRecord) -> None:
        with self._journal._write_raw() as db:
            cur = db.execute(
                "INSERT OR REPLACE INTO parts (upload_row, part_number, size, md5, etag, crc64, chain_block)"
                " SELECT id, ?, ?, ?, ?, ?, ? FROM uploads WHERE upload_id = ? AND sync_id = ?",
                (part.part_number, part.size, part.md5, part.etag, crc_to_sql(part.crc64), part.chain_block,
                 upload_id, self.sync_id),
            )
            if cur.rowcount != 1:
                raise UnknownUploadError(f"{self._journal.path}: no multipart upload {upload_id!r} in the journal")

    def upload_finished(self, upload_id: str) -> None:
        with self._journal._write() as conn:
            # parts go with it (ON DELETE CASCADE; foreign keys are on for every connection)
            conn.execute(delete(uploads).where(uploads.c.upload_id == upload_id))

    def synced(self, entry: SyncedEntry) -> None:
        with self._journal._write_raw() as db:
            write_entries(db, self.sync_id, [entry])

    def synced_many(self, batch: Iterable[SyncedEntry]) -> int:
        """Record many confirmed entries in one transaction (Adopt results, a rebuilt journal)."""
        with self._journal._write_raw() as db:
            return write_entries(db, self.sync_id, batch)

    def removed(self, paths: Sequence[str]) -> None:
        if paths:
            with self._journal._write_raw() as db:
                delete_entries(db, self.sync_id, paths)


