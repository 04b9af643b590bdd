"""The narrow Store protocol: one bucket + prefix, addressed by relative sync paths, speaking model types.

A Store is what the executor and the mirror engine see of KS3. Two implementations pass one conformance
suite (tests/store/test_conformance.py): ``KS3Store`` over the protocol client and ``MemoryStore`` (a
fake with fault injection for fast tests). Errors raised by a Store are already ks3sync.errors classes.

Keys: the remote key of ``path`` is ``prefix + path``. Listings yield ``RemoteEntry`` sorted by the
UTF-8 bytes of the path (the order the planner's march needs) and skip "folder markers", empty objects
whose key ends in ``/`` (they hold no file content and have no local counterpart). A non-empty object
whose key ends in ``/`` is listed: it is data, and the planners decide (a restore reports it, D9).

Must not import: ks3sync.ks3 (only the adapter does), the journal, the planner, the CLI.
"""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ks3sync.digits import parse_decimal
from ks3sync.model import RemoteEntry

# Metadata names (without the x-kss-meta- prefix) that ks3sync writes on every object it uploads.
META_MTIME = "mtime"  # the source file's mtime: see format_mtime
# Encryption metadata written by the official SDK and by ks3sync.crypto (protocol §8).
META_ENC_KEY = "key"
META_ENC_IV = "iv"
META_ENC_PLAIN_LENGTH = "unencrypted-content-length"
META_ENC_PLAIN_MD5 = "unencrypted-content-md5"


def format_mtime(mtime_ns: int) -> str:
    """The file's mtime as ``META_MTIME`` holds it: seconds since the epoch with nine decimals, the
    format rclone reads and writes under the same key, so either tool keeps the other's times (D22)."""
    if mtime_ns < 0:  # before 1970: the integer nanoseconds older ks3sync wrote (parse_mtime reads both)
        return str(mtime_ns)
    seconds, nanos = divmod(mtime_ns, 1_000_000_000)
    return f"{seconds}.{nanos:09d}"


def parse_mtime(text: str | None) -> int | None:
    """Nanoseconds from ``META_MTIME``: ``S.FFFFFFFFF`` (rclone, ks3sync since D22; up to nine
    decimals) or an integer count of nanoseconds (older ks3sync). ``None`` for anything else; the value
    comes from the network, so only ASCII digits pass (digits.parse_decimal)."""
    if text is None:
        return None
    text = text.strip(" \t\r\n")
    if not text.isascii() or not text.isprintable() or " " in text:
        return None
    whole, dot, fraction = text.partition(".")
    if not dot:
        return parse_decimal(whole)
    seconds = parse_decimal(whole, limit=_MAX_MTIME_SECONDS)
    nanos = parse_decimal(fraction) if 0 < len(fraction) <= 9 else None
    if seconds is None or nanos is None:
        return None
    scale: int = 10 ** (9 - len(fraction))
    return seconds * 1_000_000_000 + nanos * scale


_MAX_MTIME_SECONDS = 9_000_000_000  # ~year 2255; keeps the nanoseconds inside a signed 64-bit value


@runtime_checkable
class Body(Protocol):
    """A request body that knows its length and MD5 up front and can be read again from the start
    (structurally the same as ``ks3sync.ks3.Body``, so either side's bodies can be passed)."""

    length: int

    def content_md5(self) -> bytes: ...

    def chunks(self) -> Iterator[bytes]: ...


@dataclass(frozen=True, slots=True)
class ObjectMeta:
    """What a HEAD (or the start of a GET) tells about an object."""

    path: str
    size: int
    etag: str
    last_modified_ns: int = 0
    storage_class: str = "STANDARD"
    metadata: Mapping[str, str] = field(default_factory=dict)
    crc64: int | None = None

    @property
    def is_multipart(self) -> bool:
        return "-" in self.etag

    @property
    def is_encrypted(self) -> bool:
        return META_ENC_IV in self.metadata


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What KS3 confirmed for a put, a completed multipart upload or a copy."""

    etag: str
    crc64: int | None = None


@dataclass(frozen=True, slots=True)
class PartResult:
    part_number: int
    etag: str
    size: int
    crc64: int | None = None


@dataclass(frozen=True, slots=True)
class RangeRead:
    """Bytes ``first..last`` (inclusive) of an object, and the ETag of the object they came from."""

    etag: str
    data: bytes


@dataclass(frozen=True, slots=True)
class PendingUpload:
    """A multipart upload the service knows about (ListMultipartUploads)."""

    path: str
    key: str
    upload_id: str
    initiated_ns: int


@dataclass(frozen=True, slots=True)
class WriteOptions:
    """Per-object options from the command line / config."""

    storage_class: str | None = None
    acl: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    content_type: str | None = None


class ObjectReader(Protocol):
    """An open GET: its metadata and a stream of its bytes.

    ``checks_crc64``: True when ``iter_bytes`` itself compares the bytes of the whole object with
    ``meta.crc64`` and raises IntegrityError at the end on a mismatch, so callers need not compute it again.
    """

    meta: ObjectMeta
    checks_crc64: bool

    def iter_bytes(self, chunk_size: int = ...) -> Iterator[bytes]: ...


class Store(Protocol):
    bucket: str
    prefix: str

    def key_for(self, path: str) -> str: ...

    def list(self) -> Iterator[RemoteEntry]: ...

    def list_under(self, sub: str, *, start_after: str | None = None) -> Iterator[RemoteEntry]:
        """Like ``list`` for the paths that start with ``sub`` and come after ``start_after`` (a path),
        read from there on (the service skips what comes before; the versions area is read this way)."""
        ...

    def head(self, path: str) -> ObjectMeta | None: ...

    def put(self, path: str, body: Body, options: WriteOptions) -> WriteResult: ...

    def create_upload(self, path: str, options: WriteOptions) -> str: ...

    def upload_part(
        self,
        path: str,
        upload_id: str,
        part_number: int,
        body: Body,
        metadata: Mapping[str, str] | None = None,
    ) -> PartResult: ...

    def list_parts(self, path: str, upload_id: str) -> builtins.list[PartResult]: ...

    def complete_upload(
        self, path: str, upload_id: str, parts: Sequence[PartResult], *, expected_crc64: int | None = None
    ) -> WriteResult: ...

    def abort_upload(self, path: str, upload_id: str) -> None: ...

    def list_uploads(self) -> builtins.list[PendingUpload]: ...

    def copy(
        self,
        src_path: str,
        dst_path: str,
        *,
        dst_key: str | None = None,
        options: WriteOptions | None = None,
        storage_class: str | None = None,
    ) -> WriteResult:
        """Server-side copy of ``src_path`` to ``dst_path`` (or to the absolute ``dst_key`` in the same
        bucket, e.g. under a backup prefix). Without ``options`` the metadata is copied (and
        ``storage_class``, if given, is the copy's class: a copy onto itself moves an object to another
        class); with them it is replaced by ``options`` (metadata, storage class, ACL, content type)."""
        ...

    def delete_many(self, paths: Sequence[str]) -> builtins.list[tuple[str, str]]:
        """Delete the objects; returns (path, reason) for each one that could not be deleted."""
        ...

    def open(
        self,
        path: str,
        size: int | None = None,
        *,
        byte_range: tuple[int, int] | None = None,
        if_match: str | None = None,
    ) -> contextlib.AbstractContextManager[ObjectReader]:
        """A GET of ``path``. ``size``: its listed size, when known; a body that goes on past it is an
        IntegrityError the moment it does (a broken or hostile endpoint cannot fill the disk).
        ``byte_range``: only bytes ``first..last`` (inclusive; the last clipped to the object's end);
        ``meta.size`` is still the whole object's, and the reader checks no CRC (it has only a piece).
        ``if_match``: the ETag the object must still have; another one is an IntegrityError (the
        object changed while its ranges were being read)."""
        ...

    def read_range(self, path: str, first: int, last: int) -> RangeRead:
        """A small ranged GET: bytes ``first..last`` (inclusive, within the object) held in memory; a
        body of another length is an IntegrityError. No CRC-64 covers a range: the caller checks."""
        ...
