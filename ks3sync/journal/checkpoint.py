"""``JournalCheckpoint``: the durable ``model.Checkpoint`` the executor writes multipart progress and
confirmed entries through, bound to one sync.

Every method commits before it returns (durable against a killed process; ``upload_started`` also
against power loss: see docs/journal.md). Safe from many threads: writes go through the journal's
single writer lock, reads use pooled connections. ``synced`` commits as a group (``Coalescer``):
entries that arrive while another thread is committing go into the next transaction together, and
each caller returns only once a transaction holding its entry has committed. SQL text on sqlite3
connections (columns as in ``schema.py``); imports: sqlite3, the journal's errors, ``ks3sync.model``,
``ks3sync.coalesce``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from ks3sync.coalesce import Coalescer
from ks3sync.journal.errors import UnknownUploadError
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


UPLOAD_SELECT = ("SELECT id, path, key, upload_id, part_size, size, mtime_ns, inode, ctime_ns, iv, started_at_ns"
                 " FROM uploads")


def read_uploads(db: sqlite3.Connection, where: str, params: tuple[object, ...]) -> list[UploadRecord]:
    """The uploads matching ``where`` (SQL over the uploads table), oldest first, with their parts."""
    rows = [_UploadRow(*r) for r in db.execute(f"{UPLOAD_SELECT} {where} ORDER BY id", params).fetchall()]
    return [_read_upload(db, row) for row in rows]


def _read_upload(db: sqlite3.Connection, row: _UploadRow) -> UploadRecord:
    part_rows = db.execute(
        "SELECT part_number, size, md5, etag, crc64, chain_block FROM parts WHERE upload_row = ?"
        " ORDER BY part_number", (row.id,)
    ).fetchall()
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


_PART_INSERT = ("INSERT INTO parts (upload_row, part_number, size, md5, etag, crc64, chain_block)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)")


class JournalCheckpoint:
    """``model.Checkpoint`` over the journal for one sync."""

    def __init__(self, journal: Journal, sync_id: int) -> None:
        self._journal = journal
        self.sync_id = sync_id
        # Group commit of ``synced``: entries handed in while another thread commits go in together.
        self._confirmed: Coalescer[SyncedEntry] = Coalescer()

    def upload_for(self, path: str) -> UploadRecord | None:
        with self._journal._read() as db:
            found = read_uploads(db, "WHERE sync_id = ? AND path = ?", (self.sync_id, path))
        return found[0] if found else None

    def upload_started(self, record: UploadRecord) -> None:
        # Durable (FULL): an upload id lost to a power cut would leak storage until the stale sweep.
        with self._journal._write(durable=True) as db:
            db.execute("DELETE FROM uploads WHERE upload_id = ? OR (sync_id = ? AND path = ?)",
                       (record.upload_id, self.sync_id, record.path))
            ident = record.identity
            cur = db.execute(
                "INSERT INTO uploads (sync_id, path, key, upload_id, part_size, size, mtime_ns, inode,"
                " ctime_ns, iv, started_at_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (self.sync_id, record.path, record.key, record.upload_id, record.part_size, ident.size,
                 ident.mtime_ns, ident.inode, ident.ctime_ns, record.iv, record.started_at_ns),
            )
            row_id = cur.lastrowid
            if record.parts:
                db.executemany(_PART_INSERT, [
                    (row_id, p.part_number, p.size, p.md5, p.etag, crc_to_sql(p.crc64), p.chain_block)
                    for p in record.parts
                ])

    def part_done(self, upload_id: str, part: PartRecord) -> None:
        with self._journal._write() as db:
            cur = db.execute(
                "INSERT OR REPLACE INTO parts (upload_row, part_number, size, md5, etag, crc64, chain_block)"
                " SELECT id, ?, ?, ?, ?, ?, ? FROM uploads WHERE upload_id = ? AND sync_id = ?",
                (part.part_number, part.size, part.md5, part.etag, crc_to_sql(part.crc64), part.chain_block,
                 upload_id, self.sync_id),
            )
            if cur.rowcount != 1:
                raise UnknownUploadError(f"{self._journal.path}: no multipart upload {upload_id!r} in the journal")

    def upload_finished(self, upload_id: str) -> None:
        with self._journal._write() as db:
            # parts go with it (ON DELETE CASCADE; foreign keys are on for every connection)
            db.execute("DELETE FROM uploads WHERE upload_id = ?", (upload_id,))

    def synced(self, entry: SyncedEntry) -> None:
        """Record ``entry``; returns once it is committed. With many transfer threads, one commit per
        file serialised every worker behind the writer lock (2,000 restored files spent a fifth of
        their time there); here whoever gets the lock commits everything pending, so a waiting thread
        usually finds its entry already committed."""
        self._confirmed.submit(entry, self._write_confirmed)

    def _write_confirmed(self, batch: list[SyncedEntry]) -> None:
        with self._journal._write() as db:
            write_entries(db, self.sync_id, batch)

    def synced_many(self, batch: Iterable[SyncedEntry]) -> int:
        """Record many confirmed entries in one transaction (Adopt results, a rebuilt journal)."""
        with self._journal._write() as db:
            return write_entries(db, self.sync_id, batch)

    def removed(self, paths: Sequence[str]) -> None:
        if paths:
            with self._journal._write() as db:
                delete_entries(db, self.sync_id, paths)


