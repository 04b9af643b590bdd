"""Turning response headers into ``ObjectInfo``, and the streamed GET response wrapper.

Owns: header parsing (size from Content-Length or Content-Range, quoted ETag, RFC 1123 Last-Modified,
``x-kss-meta-*`` metadata, CRC-64, restore state) and ``GetResponse``, which streams the body and checks
its length (a body longer than its Content-Length, or than the size the caller expects, is an error
the moment the excess arrives) and, for whole-object reads, its CRC-64 against the service's header.
Must not import: anything else from ks3sync but the leaf ks3sync.digits, nor httpcore (the response comes from wire.py).
"""

from __future__ import annotations

import email.utils
from collections.abc import Iterator, Mapping
from datetime import datetime
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING

from ks3sync.digits import UINT64_MAX, parse_decimal

from .checksums import crc64, unquote_etag
from .errors import KS3IntegrityError, KS3TransportError
from .models import ObjectInfo

if TYPE_CHECKING:
    from .wire import HttpResponse

META_PREFIX = "x-kss-meta-"
CRC_HEADER = "x-kss-checksum-crc64ecma"


def parse_http_date(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        return email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None


def parse_crc(raw: str | None) -> int | None:
    return parse_decimal(raw, UINT64_MAX)


def _total_size(headers: Mapping[str, str]) -> int:
    content_range = headers.get("content-range", "")
    if "/" in content_range:
        total = parse_decimal(content_range.rpartition("/")[2])
        if total is not None:
            return total
    return parse_decimal(headers.get("content-length")) or 0


def object_info(key: str, headers: Mapping[str, str]) -> ObjectInfo:
    lowered = {name.lower(): value for name, value in headers.items()}
    metadata = {
        name[len(META_PREFIX) :]: value for name, value in lowered.items() if name.startswith(META_PREFIX)
    }
    return ObjectInfo(
        key=key,
        size=_total_size(lowered),
        etag=unquote_etag(lowered.get("etag", "")),
        last_modified=parse_http_date(lowered.get("last-modified")),
        content_type=lowered.get("content-type"),
        storage_class=lowered.get("x-kss-storage-class") or "STANDARD",
        metadata=metadata,
        crc64=parse_crc(lowered.get(CRC_HEADER)),
        restore=lowered.get("x-kss-restore"),
        headers=MappingProxyType(lowered),
    )


class GetResponse:
    """A streamed GET. Use as a context manager; ``iter_bytes`` may be consumed once.

    When the whole object is read (status 200) and the service sent a CRC-64, the CRC of the bytes
    received is compared at the end and a mismatch raises ``KS3IntegrityError``; a body shorter than
    Content-Length raises ``KS3TransportError``. ``expected_size`` (the listed size of the object, or of
    the range asked for) bounds the body too: a longer Content-Length is refused before any byte is
    read, and a body of no declared length stops the moment it passes that size.
    """

    def __init__(
        self, response: HttpResponse, key: str, method: str = "GET", expected_size: int | None = None
    ) -> None:
        self._response = response
        self._target = f"{method} {key}"
        self.status = response.status_code
        self.info = object_info(key, response.headers)
        self.content_length: int | None = parse_decimal(response.headers.get("content-length"))
        self._limit = self.content_length if self.content_length is not None else expected_size
        if expected_size is not None and self._limit is not None and self._limit > expected_size:
            response.close()
            raise KS3IntegrityError(
                f"{self._target}: the response declares {self._limit} bytes, more than the {expected_size} "
                "expected (the object changed since it was listed, or the server is broken)"
            )

    def iter_bytes(self, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        crc = 0
        received = 0
        limit = self._limit
        try:
            for chunk in self._response.iter_raw(chunk_size):
                crc = crc64(chunk, crc)
                received += len(chunk)
                if limit is not None and received > limit:
                    raise KS3IntegrityError(
                        f"{self._target}: the body goes on past the {limit} bytes "
                        f"{'declared' if limit == self.content_length else 'expected'}; stopped reading it"
                    )
                yield chunk
        finally:
            self._response.close()
        if self.content_length is not None and received != self.content_length:
            raise KS3TransportError(
                "GET", self._target, f"body ended after {received} of {self.content_length} bytes"
            )
        if self.status == 200 and self.info.crc64 is not None and crc != self.info.crc64:
            raise KS3IntegrityError(
                f"{self._target}: CRC-64 of the bytes received {crc} != service CRC-64 {self.info.crc64}"
            )

    def read(self) -> bytes:
        return b"".join(self.iter_bytes())

    def close(self) -> None:
        self._response.close()

    def __enter__(self) -> GetResponse:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
