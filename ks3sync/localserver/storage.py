"""Disk storage for the local server: object bodies as files, metadata and the key index in SQLite.

Layout under the root directory:
  meta.sqlite3          buckets, objects, uploads, parts (WAL). Keys are BLOBs of their UTF-8 bytes, so
                        SQLite's memcmp order is KS3's byte order and prefix scans are index range scans.
  data/<xx>/<id>        one file per object body or multipart part, never modified after its rename.
  inline_bodies         with --no-fsync only: bodies up to `inline_max` bytes (64 KiB) as rows, ids "i...".
                        A rowid table: WITHOUT ROWID tables store big rows badly (measured 2x slower).
                        Creating an inode costs more CPU here than all the rest of a small PUT, and
                        without fsync a row is exactly as durable as an unsynced file.
  server.lock, server.json   who owns the root (rootlock.py): one process at a time.
  tmp/<id>              bodies being received, and empty spare files opened ahead of need. A body is
                        written here, fsynced (unless disabled), then renamed into data/ before its row
                        is committed, so a crash never exposes a half-written object. At start-up tmp/ is
                        emptied and bodies in data/ that no row references (a crash between rename and
                        commit) are removed, by the root's owner only (rootlock.py).

Every method runs on the server's event-loop thread (one SQLite connection, no locking needed); the
slow, GIL-releasing work (fsync, hashing big bodies, concatenating parts) goes to thread pools through
`seal()` and `run_io()`. Imports nothing else from ks3sync.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import functools
import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ks3sync.localserver import assembly
from ks3sync.localserver.assembly import PartSlot, Placements
from ks3sync.localserver.errors import S3Error
from ks3sync.localserver.rootlock import RootLock

SCHEMA_VERSION = 1
T = TypeVar("T")
# copy_file_range refused by the platform or filesystem: fall back to read/write
_NO_COPY_RANGE = {errno.ENOSYS, errno.EXDEV, errno.EINVAL, errno.EOPNOTSUPP}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS buckets (
    name TEXT PRIMARY KEY,
    created REAL NOT NULL,
    acl TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS objects (
    bucket TEXT NOT NULL,
    key BLOB NOT NULL,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    crc64 TEXT NOT NULL,
    mtime REAL NOT NULL,
    storage_class TEXT NOT NULL,
    acl TEXT NOT NULL,
    headers TEXT NOT NULL,
    data_id TEXT NOT NULL,
    restore_state TEXT,
    restore_ready REAL,
    restore_expiry REAL,
    PRIMARY KEY (bucket, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS uploads (
    upload_id TEXT PRIMARY KEY,
    bucket TEXT NOT NULL,
    key BLOB NOT NULL,
    initiated REAL NOT NULL,
    storage_class TEXT NOT NULL,
    acl TEXT NOT NULL,
    headers TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS uploads_by_key ON uploads (bucket, key, upload_id);
CREATE TABLE IF NOT EXISTS inline_bodies (
    data_id TEXT PRIMARY KEY,
    data BLOB NOT NULL
);
-- Completes of the last few minutes, so a repeated Complete of the same parts gets the same answer
-- while the object is still the one it made (multipart_ops.py); pruned as new ones are written.
CREATE TABLE IF NOT EXISTS completed_uploads (
    upload_id TEXT PRIMARY KEY,
    bucket TEXT NOT NULL,
    key BLOB NOT NULL,
    parts TEXT NOT NULL,
    data_id TEXT NOT NULL,
    etag TEXT NOT NULL,
    crc64 TEXT NOT NULL,
    completed REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS parts (
    upload_id TEXT NOT NULL,
    part_number INTEGER NOT NULL,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    crc64 TEXT NOT NULL,
    mtime REAL NOT NULL,
    data_id TEXT NOT NULL,
    PRIMARY KEY (upload_id, part_number)
) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class BucketRecord:
    name: str
    created: float
    acl: str


@dataclass(frozen=True, slots=True)
class ObjectRecord:
    bucket: str
    key: str
    size: int
    etag: str  # without quotes
    crc64: int
    mtime: float
    storage_class: str
    acl: str
    # response headers stored with the object: canonical system headers and lower-case x-kss-meta-*
    headers: dict[str, str]
    data_id: str
    restore_state: str | None = None  # None | "frozen" | "ongoing" | "restored" (ARCHIVE objects only)
    restore_ready: float | None = None  # when an ongoing restore completes
    restore_expiry: float | None = None  # when a completed restore lapses


@dataclass(frozen=True, slots=True)
class ListedObject:
    """What a listing shows of an object (no stored headers: listings never parse them)."""

    key: str
    size: int
    etag: str
    mtime: float
    storage_class: str


@dataclass(frozen=True, slots=True)
class UploadRecord:
    upload_id: str
    bucket: str
    key: str
    initiated: float
    storage_class: str
    acl: str
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class CompletedUpload:
    """What a Complete produced, kept for a bounded time (the `completed_uploads` table)."""

    upload_id: str
    bucket: str
    key: str
    parts: str  # a digest of the part list it was given
    data_id: str  # the body it made: the object is "still the one" while its row names this body
    etag: str
    crc64: int
    completed: float


@dataclass(frozen=True, slots=True)
class PartRecord:
    upload_id: str
    part_number: int
    size: int
    etag: str
    crc64: int
    mtime: float
    data_id: str


@dataclass(slots=True)
class StoredBody:
    """A body renamed into data/ (or, inline, still in memory) but not yet referenced by a row."""

    data_id: str
    path: str
    # an inline body waits here, to be inserted in the same transaction as the row naming it
    pending: bytes | None = None


@dataclass(slots=True)
class TempBody:
    data_id: str
    path: str  # plain strings on the per-request path: pathlib costs tens of microseconds per join
    fd: int
    closed: bool = field(default=False)


class _SpareFiles:
    """Empty temp files opened ahead of need by a background thread.

    Creating an inode costs 75-600 us of kernel CPU on this machine (measured), more than everything
    else a small PUT does; made here, that work leaves the event loop and runs on another core.
    `take()` never blocks: with no spare ready the caller creates its file itself.
    """

    def __init__(self, tmp_prefix: str, depth: int = 64) -> None:
        self._prefix = tmp_prefix
        self._depth = depth
        self._ready: collections.deque[tuple[str, str, int]] = collections.deque()
        self._wanted = threading.Event()
        self._stopped = False
        self._thread = threading.Thread(target=self._fill, name="ks3-spare-files", daemon=True)
        self._wanted.set()
        self._thread.start()

    def take(self) -> tuple[str, str, int] | None:
        try:
            spare = self._ready.popleft()
        except IndexError:
            spare = None
        if len(self._ready) < self._depth // 2:
            self._wanted.set()
        return spare

    def _fill(self) -> None:
        while not self._stopped:
            self._wanted.wait()
            self._wanted.clear()
            while not self._stopped and len(self._ready) < self._depth:
                data_id = secrets.token_hex(16)
                path = self._prefix + data_id
                try:
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                except OSError:
                    break  # disk trouble: callers create their own files and report the error
                self._ready.append((data_id, path, fd))

    def close(self) -> None:
        self._stopped = True
        self._wanted.set()
        self._thread.join(5)
        while self._ready:
            _, path, fd = self._ready.popleft()
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def is_inline(data_id: str) -> bool:
    return data_id.startswith("i")


def _key_bytes(key: str) -> bytes:
    return key.encode("utf-8")


class Storage:
    def __init__(self, root: Path, *, fsync: bool = True, inline_max: int = 0, shared: bool = False) -> None:
        self.root = root
        self.fsync = fsync
        self.inline_max = inline_max
        self.data_dir = root / "data"
        self.tmp_dir = root / "tmp"
        root.mkdir(parents=True, exist_ok=True)
        # First of all: the clean-up below removes files no row names, which would be another live
        # server's bodies in flight if two processes opened one root (RootInUse for the second).
        self.lock = RootLock.acquire(root, shared=shared)
        try:
            self._open(root)
        except BaseException:
            self.lock.release()
            raise

    def _open(self, root: Path) -> None:
        fsync = self.fsync
        self.data_dir.mkdir(exist_ok=True)
        self.tmp_dir.mkdir(exist_ok=True)
        for index in range(256):  # made once here, so no PUT pays a mkdir
            (self.data_dir / f"{index:02x}").mkdir(exist_ok=True)
        self._remove_stale_temp_files()
        self._data_prefix = str(self.data_dir) + os.sep
        self._tmp_prefix = str(self.tmp_dir) + os.sep
        self.db = sqlite3.connect(root / "meta.sqlite3", isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        # Without fsync the caller has given up crash safety for bodies; the index follows suit, so WAL
        # checkpoints (every ~250 small inline PUTs) stop blocking the event loop on two fsyncs each.
        self.db.execute("PRAGMA synchronous=NORMAL" if fsync else "PRAGMA synchronous=OFF")
        self.db.executescript(_SCHEMA)
        self.db.execute("INSERT OR IGNORE INTO settings VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        self._remove_orphan_bodies()
        # Buckets are few and change only through this object: keep them in memory, skip a query per request.
        self._buckets = {
            row[0]: BucketRecord(*row) for row in self.db.execute("SELECT name, created, acl FROM buckets")
        }
        # fsync blocks for a journal commit; many in flight at once share commits (ext4 groups them), so
        # the pool is wide rather than the default executor's cpu+4 threads.
        self._sync_pool = (
            ThreadPoolExecutor(max_workers=64, thread_name_prefix="ks3-fsync") if fsync else None
        )
        self._spares = _SpareFiles(self._tmp_prefix)
        # Hashing and writing big bodies, assembling parts, copying ranges.
        self._io_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="ks3-io")
        self.placements = Placements()  # multipart parts written in place (assembly.py)

    def run_io(self, function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run blocking work (hashing, big writes, copies) in the I/O pool; await the result."""
        return asyncio.get_running_loop().run_in_executor(self._io_pool, function, *args)

    def close(self) -> None:
        try:
            self._spares.close()
            self._io_pool.shutdown(wait=True)
            if self._sync_pool is not None:
                self._sync_pool.shutdown(wait=True)
            self.db.close()
        finally:
            self.lock.release()

    def _remove_stale_temp_files(self) -> None:
        for leftover in self.tmp_dir.iterdir():
            leftover.unlink(missing_ok=True)

    def _remove_orphan_bodies(self) -> None:
        self.db.execute(
            "DELETE FROM inline_bodies WHERE data_id NOT IN "
            "(SELECT data_id FROM objects UNION SELECT data_id FROM parts)"
        )
        referenced = {
            row[0] for row in self.db.execute("SELECT data_id FROM objects UNION SELECT data_id FROM parts")
        }
        # a part placed in its upload's assembly file keeps that whole file
        referenced.update(
            assembly.file_name(assembly.parse(data_id)[0])
            for data_id in list(referenced)
            if assembly.is_assembled(data_id)
        )
        for directory in self.data_dir.iterdir():
            for body in directory.iterdir():
                if body.name not in referenced:
                    body.unlink(missing_ok=True)

    # ------------------------------------------------------------ bodies

    def open_temp(self) -> TempBody:
        spare = self._spares.take()
        if spare is not None:
            return TempBody(*spare)
        data_id = secrets.token_hex(16)
        path = self._tmp_prefix + data_id
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        return TempBody(data_id, path, fd)

    def data_path(self, data_id: str) -> str:
        return f"{self._data_prefix}{data_id[:2]}{os.sep}{data_id}"

    def seal_temp(self, temp: TempBody) -> StoredBody:
        """fsync (if enabled), close and rename into data/. Blocking: run it in a worker thread."""
        try:
            if self.fsync:
                os.fsync(temp.fd)
        finally:
            os.close(temp.fd)
            temp.closed = True
        final = self.data_path(temp.data_id)
        os.rename(temp.path, final)
        return StoredBody(temp.data_id, final)

    async def seal(self, temp: TempBody) -> StoredBody:
        """seal_temp, off the event loop when it has to wait for the disk."""
        if self._sync_pool is None:
            return self.seal_temp(temp)  # close + rename: microseconds, not worth a thread hop
        return await asyncio.get_running_loop().run_in_executor(self._sync_pool, self.seal_temp, temp)

    def discard_temp(self, temp: TempBody) -> None:
        if not temp.closed:
            os.close(temp.fd)
            temp.closed = True
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp.path)

    def remove_data(self, data_ids: Iterable[str]) -> None:
        for data_id in data_ids:
            if is_inline(data_id):
                self.db.execute("DELETE FROM inline_bodies WHERE data_id = ?", (data_id,))
                continue
            if assembly.is_assembled(data_id):
                # One file holds all the placed parts of an upload: it goes when the upload does.
                upload_id = assembly.parse(data_id)[0]
                if not self.upload_exists(upload_id):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self.assembly_path(upload_id))
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.data_path(data_id))

    def store_inline(self, data: bytes) -> StoredBody:
        """An inline body; `put_object(..., inline=...)` writes it together with its row (one commit)."""
        return StoredBody("i" + secrets.token_hex(15), "", data)

    def read_inline(self, data_id: str) -> bytes:
        row = self.db.execute("SELECT data FROM inline_bodies WHERE data_id = ?", (data_id,)).fetchone()
        if row is None:
            raise FileNotFoundError(f"inline body {data_id} is missing")
        return bytes(row[0])

    async def duplicate(self, data_id: str) -> str:
        """A second, independent name for a body (CopyObject): a row copy or a hard link. Bodies are
        immutable once named, so sharing the bytes is safe."""
        if is_inline(data_id):
            new_id = "i" + secrets.token_hex(15)
            self.db.execute(
                "INSERT INTO inline_bodies SELECT ?, data FROM inline_bodies WHERE data_id = ?",
                (new_id, data_id),
            )
            return new_id
        new_id = secrets.token_hex(16)
        await self.run_io(os.link, self.data_path(data_id), self.data_path(new_id))
        return new_id

    def concatenate(self, sources: list[str], temp: TempBody) -> None:
        """Append the given part bodies to `temp`, in kernel space where the platform can (one copy, no
        trip through Python). Blocking: run it in a worker thread."""
        for data_id in sources:
            if assembly.is_assembled(data_id):
                upload_id, position, remaining = assembly.parse(data_id)
                path = self.assembly_path(upload_id)
            else:
                path, position, remaining = self.data_path(data_id), 0, -1
            with open(path, "rb") as source:
                if remaining < 0:
                    remaining = os.fstat(source.fileno()).st_size
                try:
                    while remaining:
                        copied = os.copy_file_range(
                            source.fileno(), temp.fd, min(remaining, 1 << 30), position
                        )
                        if copied == 0:
                            raise OSError(f"short copy from part body {data_id}")
                        remaining -= copied
                        position += copied
                except (AttributeError, OSError) as exc:
                    if isinstance(exc, OSError) and exc.errno not in _NO_COPY_RANGE:
                        raise
                    while remaining and (
                        block := os.pread(source.fileno(), min(remaining, 1 << 20), position)
                    ):
                        os.write(temp.fd, block)  # not Linux, or not this fs
                        remaining -= len(block)
                        position += len(block)

    # ------------------------------------------------------------ multipart parts in place (assembly.py)

    def assembly_path(self, upload_id: str) -> str:
        return f"{self._data_prefix}{upload_id[:2]}{os.sep}{assembly.file_name(upload_id)}"

    def open_part_slot(self, upload_id: str, part_number: int, size: int | None) -> PartSlot | None:
        """Where to receive a part in place, or None (then it goes to a temp file of its own). The
        caller releases the claim (`placements.release`) after the part's row is written or it failed."""
        if size is None or self.part_exists(upload_id, part_number):
            return None
        path = self.assembly_path(upload_id)
        if not self.placements.placing(upload_id) and os.path.exists(path):
            # Parts were placed before a restart: their stride is forgotten, so no region is known free.
            self.placements.close(upload_id)
            return None
        offset = self.placements.claim(upload_id, part_number, size)
        if offset is None:
            return None
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        except OSError:
            self.placements.release(upload_id, part_number)
            raise
        os.lseek(fd, offset, os.SEEK_SET)
        return PartSlot(upload_id, part_number, offset, size, fd, path)

    def _copy_body_to(self, data_id: str, size: int, fd: int, offset: int) -> None:
        """Write a part body of its own (parts are files, never inline rows) into ``fd`` at ``offset``."""
        with open(self.data_path(data_id), "rb") as source:
            position = 0
            while position < size:
                try:
                    copied = os.copy_file_range(
                        source.fileno(), fd, size - position, position, offset + position
                    )
                except (AttributeError, OSError) as exc:
                    if isinstance(exc, OSError) and exc.errno not in _NO_COPY_RANGE:
                        raise
                    # not Linux, or not this fs
                    block = os.pread(source.fileno(), min(size - position, 1 << 20), position)
                    copied = os.pwrite(fd, block, offset + position) if block else 0
                if copied == 0:
                    raise OSError(f"short copy from part body {data_id}")
                position += copied

    def _close_slot(self, slot: PartSlot, *, sync: bool) -> None:
        try:
            if sync and self.fsync:
                os.fsync(slot.fd)
        finally:
            slot.closed = True
            os.close(slot.fd)

    async def seal_slot(self, slot: PartSlot) -> StoredBody:
        """fsync (if enabled) and close a part received in place."""
        if self._sync_pool is None:
            self._close_slot(slot, sync=False)
        else:
            await asyncio.get_running_loop().run_in_executor(
                self._sync_pool, functools.partial(self._close_slot, slot, sync=True)
            )
        return StoredBody(slot.data_id, slot.path)

    def discard_slot(self, slot: PartSlot) -> None:
        """A part that failed: close its descriptor; its region stays unreferenced."""
        if not slot.closed:
            self._close_slot(slot, sync=False)

    def adopt_assembly(self, upload_id: str, parts: list[tuple[str, int]], offsets: list[int]) -> StoredBody:
        """Copy the (data id, size) parts that are not in the assembly file yet into their offsets, cut
        the file to the object's size and rename it into data/ as a body of its own. Blocking: run it in
        a worker thread."""
        path = self.assembly_path(upload_id)
        fd = os.open(path, os.O_WRONLY)
        try:
            for (data_id, size), offset in zip(parts, offsets, strict=True):
                if not assembly.is_assembled(data_id):
                    self._copy_body_to(data_id, size, fd, offset)
            os.ftruncate(fd, offsets[-1] + parts[-1][1])
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        data_id = secrets.token_hex(16)
        final = self.data_path(data_id)
        os.rename(path, final)
        return StoredBody(data_id, final)

    # ------------------------------------------------------------ buckets

    def create_bucket(self, name: str, acl: str) -> BucketRecord:
        record = BucketRecord(name, time.time(), acl)
        try:
            self.db.execute("INSERT INTO buckets VALUES (?, ?, ?)", (name, record.created, acl))
        except sqlite3.IntegrityError as exc:
            raise S3Error("BucketAlreadyExists") from exc
        self._buckets[name] = record
        return record

    def bucket_count(self) -> int:
        return len(self._buckets)

    def get_bucket(self, name: str) -> BucketRecord | None:
        return self._buckets.get(name)

    def require_bucket(self, name: str) -> BucketRecord:
        record = self.get_bucket(name)
        if record is None:
            raise S3Error("NoSuchBucket", extra={"BucketName": name})
        return record

    def list_buckets(self) -> list[BucketRecord]:
        return [self._buckets[name] for name in sorted(self._buckets)]

    def set_bucket_acl(self, name: str, acl: str) -> None:
        self.db.execute("UPDATE buckets SET acl = ? WHERE name = ?", (acl, name))
        self._buckets[name] = BucketRecord(name, self._buckets[name].created, acl)

    def delete_bucket(self, name: str) -> list[str]:
        """Delete an empty bucket, aborting its in-progress multipart uploads (as S3 does; KS3 documents
        409 BucketNotEmpty for them instead). Returns the data ids no longer referenced."""
        self.require_bucket(name)
        if self.db.execute("SELECT 1 FROM objects WHERE bucket = ? LIMIT 1", (name,)).fetchone():
            raise S3Error("BucketNotEmpty", extra={"BucketName": name})
        uploads = [
            str(row[0]) for row in self.db.execute("SELECT upload_id FROM uploads WHERE bucket = ?", (name,))
        ]
        unused: list[str] = []
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for upload_id in uploads:
                unused += [
                    str(row[0])
                    for row in self.db.execute(
                        "DELETE FROM parts WHERE upload_id = ? RETURNING data_id", (upload_id,)
                    )
                ]
            self.db.execute("DELETE FROM uploads WHERE bucket = ?", (name,))
            self.db.execute("DELETE FROM completed_uploads WHERE bucket = ?", (name,))
            self.db.execute("DELETE FROM buckets WHERE name = ?", (name,))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        del self._buckets[name]
        for upload_id in uploads:
            self.placements.forget(upload_id)
            unused.append(assembly.file_id(upload_id))
        return unused

    # ------------------------------------------------------------ objects

    _OBJECT_COLUMNS = (
        "bucket, key, size, etag, crc64, mtime, storage_class, acl, headers, data_id, "
        "restore_state, restore_ready, restore_expiry"
    )

    @staticmethod
    def _object(row: tuple[Any, ...]) -> ObjectRecord:
        return ObjectRecord(
            bucket=row[0],
            key=row[1].decode("utf-8"),
            size=row[2],
            etag=row[3],
            crc64=int(row[4]),
            mtime=row[5],
            storage_class=row[6],
            acl=row[7],
            headers=json.loads(row[8]),
            data_id=row[9],
            restore_state=row[10],
            restore_ready=row[11],
            restore_expiry=row[12],
        )

    def get_object(self, bucket: str, key: str) -> ObjectRecord | None:
        row = self.db.execute(
            f"SELECT {self._OBJECT_COLUMNS} FROM objects WHERE bucket = ? AND key = ?",
            (bucket, _key_bytes(key)),
        ).fetchone()
        return self._object(row) if row else None

    def put_object(self, record: ObjectRecord, inline: bytes | None = None) -> str | None:
        """Insert or replace (with its inline body, if given, in the same transaction); returns the
        replaced body's data id (the caller removes it) or None."""
        if inline is None:
            return self._put_object_row(record)
        self.db.execute("BEGIN")
        try:
            self.db.execute("INSERT INTO inline_bodies VALUES (?, ?)", (record.data_id, inline))
            replaced = self._put_object_row(record)
            if replaced is not None and is_inline(replaced):
                self.db.execute("DELETE FROM inline_bodies WHERE data_id = ?", (replaced,))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return replaced

    def _put_object_row(self, record: ObjectRecord) -> str | None:
        key = _key_bytes(record.key)
        old = self.db.execute(
            "SELECT data_id FROM objects WHERE bucket = ? AND key = ?", (record.bucket, key)
        ).fetchone()
        self.db.execute(
            f"INSERT OR REPLACE INTO objects ({self._OBJECT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                record.bucket,
                key,
                record.size,
                record.etag,
                str(record.crc64),
                record.mtime,
                record.storage_class,
                record.acl,
                json.dumps(record.headers),
                record.data_id,
                record.restore_state,
                record.restore_ready,
                record.restore_expiry,
            ),
        )
        if old and old[0] != record.data_id:
            return str(old[0])
        return None

    def delete_object(self, bucket: str, key: str) -> str | None:
        """Remove the row; returns the body's data id (the caller removes it) or None if absent."""
        row = self.db.execute(
            "DELETE FROM objects WHERE bucket = ? AND key = ? RETURNING data_id", (bucket, _key_bytes(key))
        ).fetchone()
        return str(row[0]) if row else None

    def data_in_use(self, data_id: str) -> bool:
        return (
            self.db.execute("SELECT 1 FROM objects WHERE data_id = ? LIMIT 1", (data_id,)).fetchone()
            is not None
        )

    def scan(
        self, bucket: str, after: bytes, inclusive: bool, below: bytes | None, limit: int
    ) -> list[ListedObject]:
        """Objects with `after` < key (or <= when inclusive) and key < `below`, in byte order: one range
        scan of the primary key."""
        op = ">=" if inclusive else ">"
        columns = "key, size, etag, mtime, storage_class"
        if below is None:
            rows = self.db.execute(
                f"SELECT {columns} FROM objects WHERE bucket = ? AND key {op} ? ORDER BY key LIMIT ?",
                (bucket, after, limit),
            )
        else:
            rows = self.db.execute(
                f"SELECT {columns} FROM objects WHERE bucket = ? AND key {op} ? AND key < ? ORDER BY key LIMIT ?",
                (bucket, after, below, limit),
            )
        return [ListedObject(row[0].decode("utf-8"), row[1], row[2], row[3], row[4]) for row in rows]

    # ------------------------------------------------------------ multipart

    def create_upload(
        self, bucket: str, key: str, storage_class: str, acl: str, headers: dict[str, str]
    ) -> UploadRecord:
        record = UploadRecord(secrets.token_hex(16), bucket, key, time.time(), storage_class, acl, headers)
        self.db.execute(
            "INSERT INTO uploads VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                record.upload_id,
                bucket,
                _key_bytes(key),
                record.initiated,
                storage_class,
                acl,
                json.dumps(headers),
            ),
        )
        return record

    @staticmethod
    def _upload(row: tuple[Any, ...]) -> UploadRecord:
        return UploadRecord(
            row[0], row[1], row[2].decode("utf-8"), row[3], row[4], row[5], json.loads(row[6])
        )

    def get_upload(self, bucket: str, key: str, upload_id: str) -> UploadRecord:
        row = self.db.execute("SELECT * FROM uploads WHERE upload_id = ?", (upload_id,)).fetchone()
        if row is None or row[1] != bucket or row[2] != _key_bytes(key):
            raise S3Error("NoSuchUpload", extra={"UploadId": upload_id})
        return self._upload(row)

    def list_uploads(
        self, bucket: str, after_key: bytes, after_upload: str, below: bytes | None, limit: int
    ) -> list[UploadRecord]:
        below_clause = " AND key < ?" if below is not None else ""
        args: tuple[Any, ...] = (bucket, after_key, after_key, after_upload)
        if below is not None:
            args += (below,)
        rows = self.db.execute(
            "SELECT * FROM uploads WHERE bucket = ? AND (key > ? OR (key = ? AND upload_id > ?))"
            f"{below_clause} ORDER BY key, upload_id LIMIT ?",
            (*args, limit),
        )
        return [self._upload(row) for row in rows]

    def put_part(self, part: PartRecord) -> str | None:
        old = self.db.execute(
            "SELECT data_id FROM parts WHERE upload_id = ? AND part_number = ?",
            (part.upload_id, part.part_number),
        ).fetchone()
        self.db.execute(
            "INSERT OR REPLACE INTO parts VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                part.upload_id,
                part.part_number,
                part.size,
                part.etag,
                str(part.crc64),
                part.mtime,
                part.data_id,
            ),
        )
        return str(old[0]) if old else None

    def list_parts(self, upload_id: str, after: int = 0, limit: int = 10_000) -> list[PartRecord]:
        rows = self.db.execute(
            "SELECT * FROM parts WHERE upload_id = ? AND part_number > ? ORDER BY part_number LIMIT ?",
            (upload_id, after, limit),
        )
        return [PartRecord(r[0], r[1], r[2], r[3], int(r[4]), r[5], r[6]) for r in rows]

    def part_exists(self, upload_id: str, part_number: int) -> bool:
        return (
            self.db.execute(
                "SELECT 1 FROM parts WHERE upload_id = ? AND part_number = ?", (upload_id, part_number)
            ).fetchone()
            is not None
        )

    def upload_exists(self, upload_id: str) -> bool:
        return (
            self.db.execute("SELECT 1 FROM uploads WHERE upload_id = ?", (upload_id,)).fetchone() is not None
        )

    def finish_upload(
        self, upload_id: str, record: ObjectRecord | None, parts: str = "", forget_before: float = 0.0
    ) -> list[str]:
        """Complete (record given; remembered with the `parts` digest, and completes older than
        `forget_before` forgotten) or abort (None) atomically; returns data ids no longer referenced."""
        unused = [
            str(row[0])
            for row in self.db.execute("SELECT data_id FROM parts WHERE upload_id = ?", (upload_id,))
        ]
        self.db.execute("BEGIN IMMEDIATE")
        try:
            if record is not None:
                replaced = self._put_object_row(record)
                if replaced:
                    unused.append(replaced)
                self.db.execute("DELETE FROM completed_uploads WHERE completed < ?", (forget_before,))
                self.db.execute(
                    "INSERT OR REPLACE INTO completed_uploads VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        upload_id,
                        record.bucket,
                        _key_bytes(record.key),
                        parts,
                        record.data_id,
                        record.etag,
                        str(record.crc64),
                        record.mtime,
                    ),
                )
            self.db.execute("DELETE FROM parts WHERE upload_id = ?", (upload_id,))
            self.db.execute("DELETE FROM uploads WHERE upload_id = ?", (upload_id,))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.placements.forget(upload_id)
        unused.append(assembly.file_id(upload_id))  # parts placed in place, and any failed ones' bytes
        return unused

    def completed_upload(self, upload_id: str) -> CompletedUpload | None:
        row = self.db.execute("SELECT * FROM completed_uploads WHERE upload_id = ?", (upload_id,)).fetchone()
        if row is None:
            return None
        return CompletedUpload(
            row[0], row[1], row[2].decode("utf-8"), row[3], row[4], row[5], int(row[6]), row[7]
        )

    def update_restore(
        self, bucket: str, key: str, state: str | None, ready: float | None, expiry: float | None
    ) -> None:
        self.db.execute(
            "UPDATE objects SET restore_state = ?, restore_ready = ?, restore_expiry = ? WHERE bucket = ? AND key = ?",
            (state, ready, expiry, bucket, _key_bytes(key)),
        )

    def set_object_acl(self, bucket: str, key: str, acl: str) -> None:
        self.db.execute(
            "UPDATE objects SET acl = ? WHERE bucket = ? AND key = ?", (acl, bucket, _key_bytes(key))
        )
