"""Typed results of KS3 operations: frozen dataclasses, the only shapes that leave the client.

Owns: the value types. ETags are stored unquoted and lower-case; CRCs are unsigned ints; times are
timezone-aware UTC datetimes; user metadata names are lower-case without the ``x-kss-meta-`` prefix.
Must not import: anything else from ks3sync, nor httpx.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class BucketInfo:
    name: str
    creation_date: datetime | None
    region: str | None


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What HEAD (or the headers of a GET) says about an object. ``size`` is the whole object's size,
    also for a ranged GET."""

    key: str
    size: int
    etag: str
    last_modified: datetime | None
    content_type: str | None
    storage_class: str
    metadata: dict[str, str]
    crc64: int | None
    restore: str | None
    headers: Mapping[str, str] = field(repr=False)


@dataclass(frozen=True, slots=True)
class ObjectSummary:
    key: str
    size: int
    etag: str
    last_modified: datetime | None
    storage_class: str


@dataclass(frozen=True, slots=True)
class ListPage:
    objects: list[ObjectSummary]
    common_prefixes: list[str]
    is_truncated: bool
    next_marker: str | None


@dataclass(frozen=True, slots=True)
class PutResult:
    """``crc64`` is the service's CRC (already checked equal to ours), None when it sent none."""

    etag: str
    crc64: int | None
    request_id: str


@dataclass(frozen=True, slots=True)
class CopyResult:
    etag: str
    crc64: int | None
    last_modified: datetime | None


@dataclass(frozen=True, slots=True)
class PartResult:
    part_number: int
    etag: str
    crc64: int | None
    size: int


@dataclass(frozen=True, slots=True)
class PartInfo:
    part_number: int
    etag: str
    size: int
    crc64: int | None
    last_modified: datetime | None


@dataclass(frozen=True, slots=True)
class PartsPage:
    parts: list[PartInfo]
    is_truncated: bool
    next_part_number_marker: int | None


@dataclass(frozen=True, slots=True)
class UploadInfo:
    key: str
    upload_id: str
    initiated: datetime | None


@dataclass(frozen=True, slots=True)
class UploadsPage:
    uploads: list[UploadInfo]
    common_prefixes: list[str]
    is_truncated: bool
    next_key_marker: str | None
    next_upload_id_marker: str | None


@dataclass(frozen=True, slots=True)
class InitiateResult:
    bucket: str
    key: str
    upload_id: str


@dataclass(frozen=True, slots=True)
class CompleteResult:
    etag: str
    crc64: int | None


@dataclass(frozen=True, slots=True)
class DeleteResult:
    deleted: list[str]
    errors: list[tuple[str, str, str]]  # (key, code, message)


@dataclass(frozen=True, slots=True)
class Grant:
    grantee_type: str  # CanonicalUser | Group
    grantee: str  # user ID or group URI
    permission: str  # FULL_CONTROL | READ | WRITE


@dataclass(frozen=True, slots=True)
class AccessControlPolicy:
    owner_id: str
    grants: list[Grant]

    def canned(self) -> str:
        """The canned ACL these grants amount to (AllUsers READ[+WRITE] -> public-read[-write])."""
        public = {
            g.permission for g in self.grants if g.grantee_type == "Group" and g.grantee.endswith("/AllUsers")
        }
        if {"READ", "WRITE"} <= public or "FULL_CONTROL" in public:
            return "public-read-write"
        if "READ" in public:
            return "public-read"
        return "private"
