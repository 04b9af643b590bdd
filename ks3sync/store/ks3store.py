"""``KS3Store``: the Store protocol over ``ks3sync.ks3.Client`` for one bucket + prefix.

The one boundary where the protocol client's KS3Error tree becomes ks3sync.errors (``_mapped``): auth
failures and a missing bucket stop the run, NoSuchKey/NoSuchUpload become "gone", transport trouble
and retryable statuses that outlived the client's retries are transient, a digest mismatch is an
integrity problem (usually a file that changed between hashing and sending), other 4xx are permanent.
Retries themselves live only in the client.

Imports ks3sync.ks3 (this is the only store module that does) and store.base.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import mimetypes
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime

from ks3sync.errors import (
    AuthError,
    BucketMissing,
    CertificateRefused,
    FileChangedError,
    IntegrityError,
    Ks3SyncError,
    RemoteNotFound,
    RemoteRejected,
    TransientError,
    UploadGone,
)
from ks3sync.ks3 import (
    Client,
    GetResponse,
    KS3AuthError,
    KS3CertificateError,
    KS3Error,
    KS3IntegrityError,
    KS3ServiceError,
    KS3TransportError,
    NoSuchBucket,
    NoSuchKey,
    NoSuchUpload,
    ObjectInfo,
    SourceChangedError,
)
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

_DIGEST_CODES = frozenset({"InvalidDigest", "BadDigest", "IncompleteBody"})


def _ns(when: datetime | None) -> int:
    return 0 if when is None else int(when.timestamp() * 1_000_000_000)


def mapped(exc: KS3Error, bucket: str, connect: str = "") -> Ks3SyncError:
    """The app-level class for a client error (message kept: it names method, key, code, request id;
    a missing bucket's says how to create it instead, ``connect`` as in ``BucketMissing``)."""
    text = str(exc)
    if isinstance(exc, KS3AuthError):
        return AuthError(f"credentials refused by KS3: {text}")
    if isinstance(exc, KS3CertificateError):
        return CertificateRefused(text)
    if isinstance(exc, NoSuchBucket):
        return BucketMissing(bucket, connect)
    if isinstance(exc, NoSuchKey):
        return RemoteNotFound(text)
    if isinstance(exc, NoSuchUpload):
        return UploadGone(text)
    if isinstance(exc, SourceChangedError):
        return FileChangedError(text)
    if isinstance(exc, KS3IntegrityError):
        return IntegrityError(text)
    if isinstance(exc, KS3TransportError):
        return TransientError(text)
    if isinstance(exc, KS3ServiceError):
        if exc.code in _DIGEST_CODES:
            return IntegrityError(text)
        if exc.retryable or exc.status >= 500:
            return TransientError(text)
        return RemoteRejected(text)
    return RemoteRejected(text)


class _Reader:
    def __init__(self, meta: ObjectMeta, response: GetResponse, bucket: str, *, whole: bool) -> None:
        self.meta = meta
        self._response = response
        self._bucket = bucket
        # The client's GetResponse compares a whole-object (200) body with the service's CRC-64 header,
        # which is where meta.crc64 comes from; a range is only a piece of what that CRC covers.
        self.checks_crc64 = whole and meta.crc64 is not None

    def iter_bytes(self, chunk_size: int = 256 * 1024) -> Iterator[bytes]:
        try:
            yield from self._response.iter_bytes(chunk_size)
        except KS3Error as exc:
            raise mapped(exc, self._bucket) from exc


class KS3Store:
    def __init__(self, client: Client, bucket: str, prefix: str = "", *, connect: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.connect = connect  # how to reach this endpoint from the command line (BucketMissing)

    def __repr__(self) -> str:
        return f"KS3Store(bucket={self.bucket!r}, prefix={self.prefix!r})"

    def key_for(self, path: str) -> str:
        return self.prefix + path

    def _path_of(self, key: str) -> str:
        return key[len(self.prefix) :]

    def _error(self, exc: KS3Error) -> Ks3SyncError:
        return mapped(exc, self.bucket, self.connect)

    # ------------------------------------------------------------------ reading

    def list(self) -> Iterator[RemoteEntry]:
        """The objects under the prefix, page by page as KS3 sends them (UTF-8 byte order of the key;
        the planner's march checks that order and stops the pass if it is broken)."""
        return self.list_under("")

    def list_under(self, sub: str, *, start_after: str | None = None) -> Iterator[RemoteEntry]:
        skip = len(self.prefix)  # hoisted: this loop runs once per object of the sync
        # Objects written together share a timestamp, and the client hands equal ones out as one
        # datetime: convert each once (timestamp() is a third of this loop's cost when done per object).
        times: dict[datetime | None, int] = {}
        try:
            after = self.prefix + start_after if start_after is not None else None
            for item in self.client.iter_objects(self.bucket, prefix=self.prefix + sub, start_after=after):
                if isinstance(item, str):
                    continue  # a common prefix (none without a delimiter)
                key = item.key
                if len(key) <= skip or (item.size == 0 and key.endswith("/")):
                    continue  # the prefix object itself, folder markers
                when = item.last_modified
                ns = times.get(when)
                if ns is None:
                    if len(times) > 4096:
                        times.clear()  # bounded: a bucket written over years has many distinct seconds
                    ns = times[when] = _ns(when)
                yield RemoteEntry(key[skip:], item.size, item.etag, ns, item.storage_class)
        except KS3Error as exc:
            raise self._error(exc) from exc

    def head(self, path: str) -> ObjectMeta | None:
        try:
            info = self.client.head_object(self.bucket, self.key_for(path))
        except NoSuchKey:
            return None
        except KS3Error as exc:
            raise self._error(exc) from exc
        return self._meta(path, info)

    @staticmethod
    def _meta(path: str, info: ObjectInfo) -> ObjectMeta:
        return ObjectMeta(
            path=path,
            size=info.size,
            etag=info.etag,
            last_modified_ns=_ns(info.last_modified),
            storage_class=info.storage_class or "STANDARD",
            metadata=dict(info.metadata),
            crc64=info.crc64,
        )

    @contextlib.contextmanager
    def open(
        self,
        path: str,
        size: int | None = None,
        *,
        byte_range: tuple[int, int] | None = None,
        if_match: str | None = None,
    ) -> Iterator[_Reader]:
        try:
            response = self.client.get_object(
                self.bucket, self.key_for(path), expected_size=size, byte_range=byte_range, if_match=if_match
            )
        except KS3ServiceError as exc:
            if exc.status == 412 and if_match is not None:
                raise IntegrityError(
                    f"{path}: the object changed while it was being read (ETag no longer {if_match})"
                ) from exc
            raise self._error(exc) from exc
        except KS3Error as exc:
            raise self._error(exc) from exc
        with response:
            yield _Reader(self._meta(path, response.info), response, self.bucket, whole=byte_range is None)

    def read_range(self, path: str, first: int, last: int) -> RangeRead:
        if not 0 <= first <= last:
            raise ValueError(f"bad byte range {first}-{last}")
        with self.open(path, byte_range=(first, last)) as reader:
            data = b"".join(reader.iter_bytes())
            etag = reader.meta.etag
        if len(data) != last - first + 1:
            raise IntegrityError(
                f"{self.key_for(path)!r}: asked for bytes {first}-{last}, got {len(data)} bytes"
            )
        return RangeRead(etag, data)

    # ------------------------------------------------------------------ writing

    def _content_type(self, path: str, options: WriteOptions) -> str:
        if options.content_type:
            return options.content_type
        name = path.rpartition("/")[2]
        return _guess_content_type(name.partition(".")[2] if "." in name[1:] else "")

    def put(self, path: str, body: Body, options: WriteOptions) -> WriteResult:
        try:
            result = self.client.put_object(
                self.bucket,
                self.key_for(path),
                body,
                content_type=self._content_type(path, options),
                acl=options.acl,
                storage_class=options.storage_class,
                metadata=options.metadata,
            )
        except KS3Error as exc:
            raise self._error(exc) from exc
        return WriteResult(result.etag, result.crc64)

    def create_upload(self, path: str, options: WriteOptions) -> str:
        try:
            return self.client.initiate_multipart(
                self.bucket,
                self.key_for(path),
                content_type=self._content_type(path, options),
                acl=options.acl,
                storage_class=options.storage_class,
                metadata=options.metadata,
            )
        except KS3Error as exc:
            raise self._error(exc) from exc

    def upload_part(
        self,
        path: str,
        upload_id: str,
        part_number: int,
        body: Body,
        metadata: Mapping[str, str] | None = None,
    ) -> PartResult:
        headers = {f"x-kss-meta-{name}": value for name, value in (metadata or {}).items()}
        try:
            result = self.client.upload_part(
                self.bucket, self.key_for(path), upload_id, part_number, body, headers=headers
            )
        except KS3Error as exc:
            raise self._error(exc) from exc
        return PartResult(result.part_number, result.etag, result.size, result.crc64)

    def list_parts(self, path: str, upload_id: str) -> builtins.list[PartResult]:
        try:
            return [
                PartResult(p.part_number, p.etag, p.size, p.crc64)
                for p in self.client.iter_parts(self.bucket, self.key_for(path), upload_id)
            ]
        except KS3Error as exc:
            raise self._error(exc) from exc

    def complete_upload(
        self, path: str, upload_id: str, parts: Sequence[PartResult], *, expected_crc64: int | None = None
    ) -> WriteResult:
        try:
            result = self.client.complete_multipart(
                self.bucket,
                self.key_for(path),
                upload_id,
                [(p.part_number, p.etag) for p in parts],
                expected_crc64=expected_crc64,
            )
        except KS3Error as exc:
            raise self._error(exc) from exc
        return WriteResult(result.etag, result.crc64)

    def abort_upload(self, path: str, upload_id: str) -> None:
        try:
            self.client.abort_multipart(self.bucket, self.key_for(path), upload_id)
        except KS3Error as exc:
            raise self._error(exc) from exc

    def list_uploads(self) -> builtins.list[PendingUpload]:
        try:
            return [
                PendingUpload(self._path_of(u.key), u.key, u.upload_id, _ns(u.initiated))
                for u in self.client.iter_multipart_uploads(self.bucket, prefix=self.prefix)
                if u.key.startswith(self.prefix)
            ]
        except KS3Error as exc:
            raise self._error(exc) from exc

    def copy(
        self,
        src_path: str,
        dst_path: str,
        *,
        dst_key: str | None = None,
        options: WriteOptions | None = None,
        storage_class: str | None = None,
    ) -> WriteResult:
        target = dst_key if dst_key is not None else self.key_for(dst_path)
        try:
            if options is None:
                result = self.client.copy_object(
                    self.bucket, self.key_for(src_path), self.bucket, target, storage_class=storage_class
                )
            else:
                result = self.client.copy_object(
                    self.bucket,
                    self.key_for(src_path),
                    self.bucket,
                    target,
                    metadata_directive="REPLACE",
                    metadata=options.metadata,
                    content_type=self._content_type(dst_path, options),
                    storage_class=options.storage_class,
                    acl=options.acl,
                )
        except KS3Error as exc:
            raise self._error(exc) from exc
        return WriteResult(result.etag, result.crc64)

    def delete_many(self, paths: Sequence[str]) -> builtins.list[tuple[str, str]]:
        by_key = {self.key_for(path): path for path in paths}
        try:
            result = self.client.delete_objects(self.bucket, list(by_key), quiet=True)
        except KS3Error as exc:
            raise self._error(exc) from exc
        return [
            (by_key.get(key, self._path_of(key)), f"{code}: {message}")
            for key, code, message in result.errors
        ]


@functools.lru_cache(maxsize=512)
def _guess_content_type(suffixes: str) -> str:
    """Content-Type by a name's suffixes ("tar.gz"), cached: ``mimetypes.guess_type`` once per file
    shows in a small-file upload's CPU (D20)."""
    if not suffixes:
        return "application/octet-stream"
    guessed, _ = mimetypes.guess_type("x." + suffixes, strict=False)
    return guessed or "application/octet-stream"
