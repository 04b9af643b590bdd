"""An in-memory Store with the same semantics as KS3 (and local-server): ETag = MD5 of the bytes,
multipart ETag ``<md5-of-md5s>-N``, CRC-64 on every write, Content-MD5 verified, parts >= the minimum
size except the last, byte-ordered listings. It passes the same conformance suite as ``KS3Store``.

Fault injection: ``inject(op, exc, times=1, path=None)`` makes the next matching calls raise ``exc``
before doing anything (``op`` ``"delete_many"``: the whole batch call raises, nothing is deleted);
``tamper(op, change, times=1, path=None)`` lets the next matching calls happen and then answers
``change(result)`` instead (a wrong ETag, size or CRC-64, as a lying or buggy server would);
``lose_uploads(before=op)`` makes every multipart upload in flight disappear just before the next
matching call (aborted by someone else, expired by a lifecycle rule); ``hook`` (a callable(op, path))
runs before every call, for finer control (e.g. modify a local file in the middle of an upload).
``calls`` records (op, path) of every call so tests can count writes the way they count requests in
local-server's log.

Thread-safe (one lock); the executor's workers call it concurrently.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ks3sync.errors import IntegrityError, RemoteNotFound, RemoteRejected, UploadGone
from ks3sync.model import RemoteEntry
from ks3sync.store.base import (
    Body,
    ObjectMeta,
    PartResult,
    PendingUpload,
    RangeRead,
    WriteOptions,
    WriteResult,
)
from ks3sync.store.checksums import crc64_update, multipart_etag

MIN_PART_SIZE = 100 * 1024
MAX_KEY_BYTES = 1024

WRITE_OPS = frozenset({"put", "create_upload", "upload_part", "complete_upload", "copy", "delete"})
_T = TypeVar("_T")


@dataclass(slots=True)
class _Object:
    data: bytes
    etag: str
    crc64: int
    metadata: dict[str, str]
    storage_class: str
    last_modified_ns: int


@dataclass(slots=True)
class _Upload:
    key: str
    options: WriteOptions
    initiated_ns: int
    parts: dict[int, tuple[bytes, str, int]] = field(default_factory=dict)  # data, md5 hex, crc64


@dataclass(slots=True)
class _Fault:
    op: str
    exc: BaseException | None  # None: the uploads in flight vanish instead (``lose_uploads``)
    remaining: int
    path: str | None


@dataclass(slots=True)
class _Tamper:
    op: str
    change: Callable[[Any], Any]
    remaining: int
    path: str | None


class _Reader:
    def __init__(self, meta: ObjectMeta, data: bytes) -> None:
        self.meta = meta
        self._data = data
        # Yields the stored bytes as they are (tests corrupt them on purpose): callers must check.
        self.checks_crc64 = False

    def iter_bytes(self, chunk_size: int = 64 * 1024) -> Iterator[bytes]:
        for start in range(0, len(self._data), chunk_size):
            yield self._data[start : start + chunk_size]


class MemoryStore:
    def __init__(
        self,
        bucket: str = "memory",
        prefix: str = "",
        *,
        min_part_size: int = MIN_PART_SIZE,
        clock: Callable[[], int] = time.time_ns,
        shared: MemoryStore | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.min_part_size = min_part_size
        self.hook: Callable[[str, str], None] | None = None
        self._clock = clock
        # A store for another prefix of the same bucket shares the object table (backup prefixes).
        self._lock: threading.RLock = shared._lock if shared else threading.RLock()
        self.objects: dict[str, _Object] = shared.objects if shared else {}
        self.uploads: dict[str, _Upload] = shared.uploads if shared else {}
        self.calls: builtins.list[tuple[str, str]] = shared.calls if shared else []
        self._faults: list[_Fault] = shared._faults if shared else []
        self._tampers: list[_Tamper] = shared._tampers if shared else []

    # ------------------------------------------------------------------ test helpers

    def inject(self, op: str, exc: BaseException, *, times: int = 1, path: str | None = None) -> None:
        with self._lock:
            self._faults.append(_Fault(op, exc, times, path))

    def tamper(
        self, op: str, change: Callable[[Any], Any], *, times: int = 1, path: str | None = None
    ) -> None:
        """The next ``times`` calls of ``op`` (on ``path``) do their work, then answer ``change(result)``."""
        with self._lock:
            self._tampers.append(_Tamper(op, change, times, path))

    def lose_uploads(self, *, before: str, times: int = 1, path: str | None = None) -> None:
        """Just before the next ``times`` calls of ``before`` (on ``path``), every upload in flight vanishes."""
        with self._lock:
            self._faults.append(_Fault(before, None, times, path))

    def _answer(self, op: str, path: str, result: _T) -> _T:
        with self._lock:
            for tamper in self._tampers:
                if tamper.op == op and tamper.remaining > 0 and tamper.path in (None, path):
                    tamper.remaining -= 1
                    changed: _T = tamper.change(result)  # a test's tamper answers in the same shape
                    return changed
        return result

    def writes(self) -> builtins.list[tuple[str, str]]:
        with self._lock:
            return [call for call in self.calls if call[0] in WRITE_OPS]

    def data(self, path: str) -> bytes:
        return self.objects[self.key_for(path)].data

    def _enter(self, op: str, path: str) -> None:
        with self._lock:
            self.calls.append((op, path))
            self._raise_fault(op, path)
        if self.hook is not None:
            self.hook(op, path)

    def _raise_fault(self, op: str, path: str) -> None:
        for fault in self._faults:
            if fault.op == op and fault.remaining > 0 and fault.path in (None, path):
                fault.remaining -= 1
                if fault.exc is None:
                    self.uploads.clear()
                    continue
                raise fault.exc

    # ------------------------------------------------------------------ Store

    def key_for(self, path: str) -> str:
        return self.prefix + path

    def _checked_key(self, path: str) -> str:
        key = self.key_for(path)
        if not key or len(key.encode("utf-8")) > MAX_KEY_BYTES:
            raise RemoteRejected(f"{key!r}: key is empty or longer than {MAX_KEY_BYTES} bytes")
        return key

    def list(self) -> Iterator[RemoteEntry]:
        return self.list_under("")

    def list_under(self, sub: str, *, start_after: str | None = None) -> Iterator[RemoteEntry]:
        self._enter("list", sub)
        start = self.prefix + sub
        after = (self.prefix + start_after).encode("utf-8") if start_after is not None else None
        with self._lock:
            rows = [
                (key, obj)
                for key, obj in self.objects.items()
                if key.startswith(start)
                and not (len(obj.data) == 0 and key.endswith("/"))
                and (after is None or key.encode("utf-8") > after)
            ]
        rows.sort(key=lambda row: row[0].encode("utf-8"))
        for key, obj in rows:
            yield RemoteEntry(
                path=key[len(self.prefix) :],
                size=len(obj.data),
                etag=obj.etag,
                last_modified_ns=obj.last_modified_ns,
                storage_class=obj.storage_class,
            )

    def _meta(self, path: str, obj: _Object) -> ObjectMeta:
        return ObjectMeta(
            path=path,
            size=len(obj.data),
            etag=obj.etag,
            last_modified_ns=obj.last_modified_ns,
            storage_class=obj.storage_class,
            metadata=dict(obj.metadata),
            crc64=obj.crc64,
        )

    def head(self, path: str) -> ObjectMeta | None:
        self._enter("head", path)
        with self._lock:
            obj = self.objects.get(self.key_for(path))
            meta = None if obj is None else self._meta(path, obj)
        return self._answer("head", path, meta)

    def _read_body(self, what: str, body: Body) -> bytes:
        data = b"".join(body.chunks())
        if len(data) != body.length or hashlib.md5(data).digest() != body.content_md5():  # noqa: S324
            raise IntegrityError(f"{what}: body does not match its Content-MD5/length (InvalidDigest)")
        return data

    def put(self, path: str, body: Body, options: WriteOptions) -> WriteResult:
        self._enter("put", path)
        key = self._checked_key(path)
        data = self._read_body(key, body)
        obj = _Object(
            data=data,
            etag=hashlib.md5(data).hexdigest(),  # noqa: S324
            crc64=crc64_update(0, data),
            metadata={k.lower(): v for k, v in options.metadata.items()},
            storage_class=options.storage_class or "STANDARD",
            last_modified_ns=self._clock(),
        )
        with self._lock:
            self.objects[key] = obj
        return self._answer("put", path, WriteResult(obj.etag, obj.crc64))

    def create_upload(self, path: str, options: WriteOptions) -> str:
        self._enter("create_upload", path)
        key = self._checked_key(path)
        upload_id = uuid.uuid4().hex
        with self._lock:
            self.uploads[upload_id] = _Upload(key=key, options=options, initiated_ns=self._clock())
        return upload_id

    def _upload(self, path: str, upload_id: str) -> _Upload:
        upload = self.uploads.get(upload_id)
        if upload is None or upload.key != self.key_for(path):
            raise UploadGone(f"{self.key_for(path)!r}: no such multipart upload {upload_id}")
        return upload

    def upload_part(
        self,
        path: str,
        upload_id: str,
        part_number: int,
        body: Body,
        metadata: Mapping[str, str] | None = None,
    ) -> PartResult:
        self._enter("upload_part", path)
        if not 1 <= part_number <= 10_000:
            raise RemoteRejected(f"{self.key_for(path)!r}: part number {part_number} out of range")
        data = self._read_body(f"{self.key_for(path)!r} part {part_number}", body)
        md5 = hashlib.md5(data).hexdigest()  # noqa: S324
        crc = crc64_update(0, data)
        with self._lock:
            self._upload(path, upload_id).parts[part_number] = (data, md5, crc)
        return self._answer("upload_part", path, PartResult(part_number, md5, len(data), crc))

    def list_parts(self, path: str, upload_id: str) -> builtins.list[PartResult]:
        self._enter("list_parts", path)
        with self._lock:
            upload = self._upload(path, upload_id)
            listed = [
                PartResult(number, md5, len(data), crc)
                for number, (data, md5, crc) in sorted(upload.parts.items())
            ]
        return self._answer("list_parts", path, listed)

    def complete_upload(
        self, path: str, upload_id: str, parts: Sequence[PartResult], *, expected_crc64: int | None = None
    ) -> WriteResult:
        self._enter("complete_upload", path)
        with self._lock:
            upload = self._upload(path, upload_id)
            numbers = [part.part_number for part in parts]
            if not numbers or numbers != list(range(1, len(numbers) + 1)):
                raise RemoteRejected(f"{upload.key!r}: parts not ascending/contiguous (InvalidPartOrder)")
            chunks: list[bytes] = []
            md5s: list[str] = []
            for index, part in enumerate(parts):
                stored = upload.parts.get(part.part_number)
                if stored is None or stored[1] != part.etag:
                    raise RemoteRejected(f"{upload.key!r}: part {part.part_number} differs (InvalidPart)")
                if index < len(parts) - 1 and len(stored[0]) < self.min_part_size:
                    raise RemoteRejected(
                        f"{upload.key!r}: part {part.part_number} too small (EntityTooSmall)"
                    )
                chunks.append(stored[0])
                md5s.append(stored[1])
            data = b"".join(chunks)
            crc = crc64_update(0, data)
            if expected_crc64 is not None and crc != expected_crc64:
                raise IntegrityError(f"{upload.key!r}: completed object CRC-64 differs from the parts sent")
            obj = _Object(
                data=data,
                etag=multipart_etag(md5s),
                crc64=crc,
                metadata={k.lower(): v for k, v in upload.options.metadata.items()},
                storage_class=upload.options.storage_class or "STANDARD",
                last_modified_ns=self._clock(),
            )
            self.objects[upload.key] = obj
            del self.uploads[upload_id]
        return self._answer("complete_upload", path, WriteResult(obj.etag, obj.crc64))

    def abort_upload(self, path: str, upload_id: str) -> None:
        self._enter("abort_upload", path)
        with self._lock:
            self._upload(path, upload_id)
            del self.uploads[upload_id]

    def list_uploads(self) -> builtins.list[PendingUpload]:
        self._enter("list_uploads", "")
        with self._lock:
            rows = [
                PendingUpload(up.key[len(self.prefix) :], up.key, upload_id, up.initiated_ns)
                for upload_id, up in self.uploads.items()
                if up.key.startswith(self.prefix)
            ]
        return sorted(rows, key=lambda row: (row.key.encode("utf-8"), row.upload_id))

    def copy(
        self,
        src_path: str,
        dst_path: str,
        *,
        dst_key: str | None = None,
        options: WriteOptions | None = None,
        storage_class: str | None = None,
    ) -> WriteResult:
        self._enter("copy", dst_path)
        src_key = self.key_for(src_path)
        target = dst_key if dst_key is not None else self._checked_key(dst_path)
        with self._lock:
            src = self.objects.get(src_key)
            if src is None:
                raise RemoteNotFound(f"{src_key!r}: copy source does not exist")
            # KS3 computes a copied object's ETag over its bytes, so a multipart source becomes plain.
            obj = _Object(
                data=src.data,
                etag=hashlib.md5(src.data).hexdigest(),  # noqa: S324
                crc64=src.crc64,
                metadata=dict(src.metadata)
                if options is None
                else {k.lower(): v for k, v in options.metadata.items()},
                storage_class=(options.storage_class if options is not None else storage_class)
                or src.storage_class,
                last_modified_ns=self._clock(),
            )
            self.objects[target] = obj
        return self._answer("copy", dst_path, WriteResult(obj.etag, obj.crc64))

    def delete_many(self, paths: Sequence[str]) -> builtins.list[tuple[str, str]]:
        with self._lock:
            self._raise_fault("delete_many", "")  # the whole request fails (not recorded as a call)
        failed: builtins.list[tuple[str, str]] = []
        for path in paths:
            try:
                self._enter("delete", path)
            except RemoteRejected as exc:
                failed.append((path, str(exc)))
                continue
            with self._lock:
                self.objects.pop(self.key_for(path), None)
        return failed

    @contextlib.contextmanager
    def open(
        self,
        path: str,
        size: int | None = None,
        *,
        byte_range: tuple[int, int] | None = None,
        if_match: str | None = None,
    ) -> Iterator[_Reader]:
        self._enter("get", path)
        with self._lock:
            obj = self.objects.get(self.key_for(path))
            if obj is None:
                raise RemoteNotFound(f"{self.key_for(path)!r}: no such key")
            if if_match is not None and obj.etag != if_match:
                raise IntegrityError(
                    f"{path}: the object changed while it was being read (ETag no longer {if_match})"
                )
            if size is not None and len(obj.data) > size:  # as KS3Store: longer than listed is refused
                raise IntegrityError(
                    f"{self.key_for(path)!r}: {len(obj.data)} bytes, more than the {size} expected"
                )
            data = obj.data
            if byte_range is not None:
                first, last = byte_range
                if first >= len(data):
                    raise RemoteRejected(
                        f"{self.key_for(path)!r}: range {first}-{last} is past the end (InvalidRange)"
                    )
                data = data[first : last + 1]
            reader = _Reader(self._meta(path, obj), data)
        yield reader

    def read_range(self, path: str, first: int, last: int) -> RangeRead:
        if not 0 <= first <= last:
            raise ValueError(f"bad byte range {first}-{last}")
        self._enter("get", path)
        with self._lock:
            obj = self.objects.get(self.key_for(path))
            if obj is None:
                raise RemoteNotFound(f"{self.key_for(path)!r}: no such key")
            if last >= len(obj.data):
                raise RemoteRejected(f"{self.key_for(path)!r}: bytes {first}-{last} are past its end")
            return RangeRead(obj.etag, obj.data[first : last + 1])
