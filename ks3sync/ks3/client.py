"""The KS3 client: every operation of the API contract (docs: /work/briefs/client-api.md), one method
each, built on ``Transport`` (one signed exchange) and the single retry wrapper.

Owns: what each operation sends (method, sub-resources, headers, body) and how its answer becomes a
typed result; pagination (ListObjects, ListParts, ListMultipartUploads); the complete-multipart retry
rule; multi-delete batching. Thread-safe: one ``Client`` (one connection pool) is meant to be
shared by a pool of worker threads.
Must not import: anything else from ks3sync.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from urllib.parse import quote

from .bodies import Body, BytesBody, as_body
from .checksums import multipart_etag, unquote_etag
from .errors import (
    BucketAlreadyExists,
    KS3IntegrityError,
    KS3ServiceError,
    NoSuchBucket,
    NoSuchKey,
    NoSuchUpload,
    service_error,
)
from .models import (
    BucketInfo,
    CompleteResult,
    CopyResult,
    DeleteResult,
    ListPage,
    ObjectInfo,
    ObjectSummary,
    PartInfo,
    PartResult,
    PutResult,
    UploadInfo,
)
from .objectinfo import CRC_HEADER, GetResponse, object_info, parse_crc
from .presign import presign_url
from .retry import call_with_retry
from .transport import REQUEST_ID_HEADER, ClientConfig, Request, Transport
from .wire import HttpResponse
from .xml import (
    MalformedResponse,
    build_complete,
    build_create_bucket,
    build_delete,
    build_restore,
    parse_acl,
    parse_complete,
    parse_copy_result,
    parse_delete_result,
    parse_initiate,
    parse_list_buckets,
    parse_list_objects,
    parse_list_parts,
    parse_list_uploads,
)

log = logging.getLogger("ks3sync.ks3")

MAX_DELETE_KEYS = 1000
DEFAULT_PRESIGN_SECONDS = 3600
RESPONSE_OVERRIDES = frozenset(
    {
        "response-content-type",
        "response-content-language",
        "response-expires",
        "response-cache-control",
        "response-content-disposition",
        "response-content-encoding",
    }
)
# A header name is an RFC 7230 token; metadata names become part of one.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_PRINTABLE_ASCII = re.compile(r"[\t\x20-\x7e]*")
# Characters XML 1.0 can carry in element text without change (CR would be normalised to LF).
_XML_UNSAFE = re.compile("[^\t\n\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# A 200 response can still carry an <Error> document (S3 does this for Complete and Copy).
_ERROR_DOCUMENT = re.compile(rb"^\s*(?:<\?xml[^>]*\?>\s*)?<(?:\w+:)?Error[\s>]")


def copy_source(bucket: str, key: str) -> str:
    """``x-kss-copy-source`` value: ``/bucket/`` + the key with everything but unreserved characters
    percent-encoded (``%20`` for space, ``%2B`` for ``+``, ``%2F`` for ``/``), which decodes to the
    same key under both ``unquote`` and the ``unquote_plus`` KS3 applies."""
    return f"/{bucket}/{quote(key.encode('utf-8'), safe='~')}"


def _object_headers(
    *,
    content_type: str | None,
    acl: str | None,
    storage_class: str | None,
    metadata: Mapping[str, str] | None,
    headers: Mapping[str, str] | None,
) -> dict[str, str]:
    result: dict[str, str] = {}
    if content_type:
        result["Content-Type"] = content_type
    if acl:
        result["x-kss-acl"] = acl
    if storage_class:
        result["x-kss-storage-class"] = storage_class
    for name, value in (metadata or {}).items():
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"metadata name {name!r} is not a valid HTTP header token")
        if not _PRINTABLE_ASCII.fullmatch(value):
            raise ValueError(f"metadata {name!r}: value must be printable ASCII on one line")
        # KS3 stores and returns metadata names lower-case; sign and send them that way too.
        result[f"x-kss-meta-{name.lower()}"] = value
    result.update(headers or {})
    return result


def _raise_if_error_document(response: HttpResponse, request: Request) -> None:
    if _ERROR_DOCUMENT.match(response.content[:512]):
        raise service_error(
            status=response.status_code,
            body=response.content,
            method=request.method,
            bucket=request.bucket,
            key=request.key,
            request_id=response.headers.get(REQUEST_ID_HEADER, ""),
        )


def _xml_safe(key: str) -> bool:
    return _XML_UNSAFE.search(key) is None


def _expected_size(byte_range: tuple[int, int | None] | None, listed: int | None) -> int | None:
    """The most bytes a GET may answer: the range's length (at most the listed size), or the listed size."""
    if byte_range is not None and byte_range[1] is not None:
        length = byte_range[1] - byte_range[0] + 1
        return length if listed is None else min(length, max(listed - byte_range[0], 0))
    if byte_range is not None and listed is not None:
        return max(listed - byte_range[0], 0)
    return listed


def _byte_range_header(byte_range: tuple[int, int | None]) -> str:
    start, end = byte_range
    if start < 0 or (end is not None and end < start):
        raise ValueError(f"bad byte range {byte_range}")
    return f"bytes={start}-{'' if end is None else end}"


class Client:
    """Thread-safe KS3 client."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self._transport = Transport(config)

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(endpoint={self.config.endpoint!r}, access_key={self.config.access_key!r})"

    # --- plumbing ------------------------------------------------------------------------------

    def _send(self, request: Request) -> HttpResponse:
        return self._transport.send(request)

    def _send_xml(self, request: Request) -> HttpResponse:
        """Send with retries; a 200 carrying an ``<Error>`` document counts as that error (and is
        retried when its code is retryable)."""

        def attempt(_number: int) -> HttpResponse:
            response = self._transport.attempt(request)
            _raise_if_error_document(response, request)
            return response

        return call_with_retry(self.config.retry, attempt)

    # --- service / bucket ----------------------------------------------------------------------

    def list_buckets(self) -> list[BucketInfo]:
        return parse_list_buckets(self._send_xml(Request("GET")).content)

    def create_bucket(self, bucket: str, acl: str | None = None, region: str | None = None) -> None:
        """Raises BucketAlreadyExists if the name is taken (KS3 says so for our own buckets too).
        ``region`` (a LocationConstraint such as ``BEIJING``) goes in a CreateBucketConfiguration
        body; without it the endpoint's region is used."""
        headers = {"x-kss-acl": acl} if acl else {}
        body = None
        if region:
            headers["Content-Type"] = "application/xml"
            body = BytesBody(build_create_bucket(region))
        request = Request("PUT", bucket, headers=headers, body=body, success=frozenset({200}))

        def attempt(number: int) -> None:
            try:
                self._transport.attempt(request)
            except BucketAlreadyExists:
                # On a retry this is most likely our own first attempt, whose answer was lost; a
                # bucket we can HEAD is one we may use either way.
                if number == 1 or not self.head_bucket(bucket):
                    raise

        call_with_retry(self.config.retry, attempt)

    def head_bucket(self, bucket: str) -> bool:
        """True if the bucket exists and is ours to use; False on 404. 403 and others raise."""
        try:
            self._send(Request("HEAD", bucket, missing=NoSuchBucket))
        except NoSuchBucket:
            return False
        return True

    def delete_bucket(self, bucket: str) -> None:
        request = Request("DELETE", bucket, success=frozenset({204}))

        def attempt(number: int) -> None:
            try:
                self._transport.attempt(request)
            except NoSuchBucket:
                if number == 1:
                    raise
                # An earlier attempt deleted it but its answer was lost.

        call_with_retry(self.config.retry, attempt)

    def get_bucket_acl(self, bucket: str) -> str:
        return parse_acl(self._send_xml(Request("GET", bucket, params={"acl": ""})).content).canned()

    def put_bucket_acl(self, bucket: str, acl: str) -> None:
        self._send(
            Request("PUT", bucket, params={"acl": ""}, headers={"x-kss-acl": acl}, success=frozenset({200}))
        )

    # --- objects -------------------------------------------------------------------------------

    def put_object(
        self,
        bucket: str,
        key: str,
        body: Body | bytes | bytearray | memoryview,
        *,
        content_type: str | None = None,
        acl: str | None = None,
        storage_class: str | None = None,
        metadata: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> PutResult:
        """Single PUT with Content-MD5. Raises KS3IntegrityError unless the returned ETag is the MD5
        sent and the returned CRC-64 (when present) is the CRC of the bytes sent."""
        request = Request(
            "PUT",
            bucket,
            key,
            headers=_object_headers(
                content_type=content_type or "application/octet-stream",
                acl=acl,
                storage_class=storage_class,
                metadata=metadata,
                headers=headers,
            ),
            body=as_body(body),
            verify_upload=True,
        )
        response = self._send(request)
        return PutResult(
            etag=unquote_etag(response.headers.get("ETag", "")),
            crc64=parse_crc(response.headers.get(CRC_HEADER)),
            request_id=response.headers.get(REQUEST_ID_HEADER, ""),
        )

    def get_object(
        self,
        bucket: str,
        key: str,
        *,
        byte_range: tuple[int, int | None] | None = None,
        response_headers: Mapping[str, str] | None = None,
        expected_size: int | None = None,
        if_match: str | None = None,
    ) -> GetResponse:
        """Streamed GET; the caller must close the result (it is a context manager). ``byte_range`` is
        inclusive ``(first, last)``, ``last=None`` meaning to the end. ``expected_size``: the object's
        listed size, when known; a body longer than it (or than the range) is refused as it arrives.
        ``if_match``: an ETag the object must still have (else ``412 PreconditionFailed``): the ranges
        of one object read in parallel all come from the same version."""
        params: dict[str, str] = {}
        for name, value in (response_headers or {}).items():
            if name not in RESPONSE_OVERRIDES:
                raise ValueError(f"unsupported response header override {name!r}")
            params[name] = value
        headers = {"Range": _byte_range_header(byte_range)} if byte_range is not None else {}
        if if_match is not None:
            headers["If-Match"] = f'"{if_match}"'
        expected = _expected_size(byte_range, expected_size)
        response = self._send(
            Request(
                "GET",
                bucket,
                key,
                params=params,
                headers=headers,
                stream=True,
                missing=NoSuchKey,
                expected_size=expected,
            )
        )
        return GetResponse(response, key, expected_size=expected)

    def download_to_file(
        self,
        bucket: str,
        key: str,
        path: str | os.PathLike[str],
        *,
        byte_range: tuple[int, int | None] | None = None,
        expected_size: int | None = None,
    ) -> ObjectInfo:
        """Stream the object (or range) into ``path`` (created or truncated). The whole download is one
        retried unit: a connection lost mid-body starts it again from the first byte. ``expected_size``
        as for ``get_object``."""
        headers = {"Range": _byte_range_header(byte_range)} if byte_range is not None else {}
        expected = _expected_size(byte_range, expected_size)
        request = Request(
            "GET", bucket, key, headers=headers, stream=True, missing=NoSuchKey, expected_size=expected
        )

        def attempt(_number: int) -> ObjectInfo:
            response = GetResponse(self._transport.attempt(request), key, expected_size=expected)
            with response, open(path, "wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
                return response.info

        return call_with_retry(self.config.retry, attempt)

    def head_object(self, bucket: str, key: str) -> ObjectInfo:
        response = self._send(Request("HEAD", bucket, key, missing=NoSuchKey))
        return object_info(key, response.headers)

    def delete_object(self, bucket: str, key: str) -> None:
        self._send(Request("DELETE", bucket, key, success=frozenset({200, 204})))

    def delete_objects(self, bucket: str, keys: Sequence[str], quiet: bool = False) -> DeleteResult:
        """Multi-object delete, at most 1,000 keys per request. Missing keys count as deleted.

        Keys that cannot travel in an XML 1.0 document (control characters; a CR, which XML parsers
        turn into LF and so would name a different key) are deleted one request each instead."""
        deleted: list[str] = []
        errors: list[tuple[str, str, str]] = []
        in_xml = [key for key in keys if _xml_safe(key)]
        for start in range(0, len(in_xml), MAX_DELETE_KEYS):
            batch = in_xml[start : start + MAX_DELETE_KEYS]
            request = Request(
                "POST",
                bucket,
                params={"delete": ""},
                headers={"Content-Type": "application/xml"},
                body=BytesBody(build_delete(batch, quiet)),
            )
            result = parse_delete_result(self._send_xml(request).content)
            deleted.extend(result.deleted)
            errors.extend(result.errors)
        for key in keys:
            if _xml_safe(key):
                continue
            try:
                self.delete_object(bucket, key)
            except KS3ServiceError as exc:
                errors.append((key, exc.code, exc.message))
            else:
                if not quiet:
                    deleted.append(key)
        return DeleteResult(deleted=deleted, errors=errors)

    def copy_object(
        self,
        src_bucket: str,
        src_key: str,
        dst_bucket: str,
        dst_key: str,
        *,
        metadata_directive: str = "COPY",
        metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
        storage_class: str | None = None,
        acl: str | None = None,
    ) -> CopyResult:
        if metadata_directive not in ("COPY", "REPLACE"):
            raise ValueError(f"metadata_directive must be COPY or REPLACE, not {metadata_directive!r}")
        if metadata_directive == "COPY" and (metadata or content_type):
            raise ValueError("metadata/content_type are only applied with metadata_directive='REPLACE'")
        headers = _object_headers(
            content_type=content_type, acl=acl, storage_class=storage_class, metadata=metadata, headers=None
        )
        headers["x-kss-copy-source"] = copy_source(src_bucket, src_key)
        headers["x-kss-metadata-directive"] = metadata_directive
        response = self._send_xml(
            Request("PUT", dst_bucket, dst_key, headers=headers, success=frozenset({200}))
        )
        result = parse_copy_result(response.content)
        header_crc = parse_crc(response.headers.get(CRC_HEADER))
        return CopyResult(
            etag=result.etag,
            crc64=result.crc64 if result.crc64 is not None else header_crc,
            last_modified=result.last_modified,
        )

    def list_objects(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str | None = None,
        marker: str | None = None,
        max_keys: int | None = None,
    ) -> ListPage:
        """One ListObjects (v1) page. Keys come back url-encoded on the wire (``encoding-type=url``, so
        any key survives XML) and are decoded here."""
        params: dict[str, str] = {"encoding-type": "url"}
        if prefix:
            params["prefix"] = prefix
        if delimiter:
            params["delimiter"] = delimiter
        if marker:
            params["marker"] = marker
        if max_keys is not None:
            params["max-keys"] = str(max_keys)
        return parse_list_objects(self._send_xml(Request("GET", bucket, params=params)).content)

    def iter_objects(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str | None = None,
        start_after: str | None = None,
        max_keys: int | None = None,
    ) -> Iterator[ObjectSummary | str]:
        """Every object (and, with a delimiter, every common prefix as a ``str``) in UTF-8 byte order,
        across all pages (``max_keys`` per page; the service's default when None)."""
        marker = start_after
        while True:
            page = self.list_objects(
                bucket, prefix=prefix, delimiter=delimiter, marker=marker, max_keys=max_keys
            )
            items: list[ObjectSummary | str]
            if page.common_prefixes:
                # The page lists objects and prefixes apart: merge them into one order.
                items = [*page.objects, *page.common_prefixes]
                items.sort(key=lambda item: (item if isinstance(item, str) else item.key).encode("utf-8"))
            else:
                # Objects alone come in the service's order (a no-change pass reads 100 such pages per
                # 100,000 files; sorting each again cost ~10% of the listing). Callers that rely on the
                # order check it: the planner's march stops the pass on a key out of order.
                items = list(page.objects)
            yield from items
            if not page.is_truncated:
                return
            last = items[-1] if items else None
            next_marker = page.next_marker or (
                (last if isinstance(last, str) else last.key) if last is not None else None
            )
            if not next_marker or (marker is not None and next_marker.encode() <= marker.encode()):
                raise MalformedResponse(
                    f"ListObjects {bucket}: truncated page did not advance past marker {marker!r}"
                )
            marker = next_marker

    def restore_object(self, bucket: str, key: str, days: int = 1) -> int:
        """Start (202) or extend (200) a restore of an archived object; returns the status."""
        response = self._send(
            Request(
                "POST",
                bucket,
                key,
                params={"restore": ""},
                body=BytesBody(build_restore(days)),
                headers={"Content-Type": "application/xml"},
                success=frozenset({200, 202}),
            )
        )
        return response.status_code

    def get_object_acl(self, bucket: str, key: str) -> str:
        return parse_acl(self._send_xml(Request("GET", bucket, key, params={"acl": ""})).content).canned()

    def put_object_acl(self, bucket: str, key: str, acl: str) -> None:
        self._send(
            Request(
                "PUT", bucket, key, params={"acl": ""}, headers={"x-kss-acl": acl}, success=frozenset({200})
            )
        )

    # --- multipart -----------------------------------------------------------------------------

    def initiate_multipart(
        self,
        bucket: str,
        key: str,
        *,
        content_type: str | None = None,
        acl: str | None = None,
        storage_class: str | None = None,
        metadata: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> str:
        """Returns the upload id. (A retried initiate whose first answer was lost leaves an orphan
        upload; orphans are the caller's start-up cleanup's job, DESIGN-NOTES invariant 5.)"""
        request = Request(
            "POST",
            bucket,
            key,
            params={"uploads": ""},
            headers=_object_headers(
                content_type=content_type or "application/octet-stream",
                acl=acl,
                storage_class=storage_class,
                metadata=metadata,
                headers=headers,
            ),
            success=frozenset({200}),
        )
        return parse_initiate(self._send_xml(request).content).upload_id

    def upload_part(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_number: int,
        body: Body | bytes | bytearray | memoryview,
        headers: Mapping[str, str] | None = None,
    ) -> PartResult:
        """Verified like put_object: ETag == part MD5, CRC-64 header == CRC of the part sent."""
        part = as_body(body)
        request = Request(
            "PUT",
            bucket,
            key,
            params={"partNumber": str(part_number), "uploadId": upload_id},
            headers=dict(headers or {}),
            body=part,
            verify_upload=True,
        )
        response = self._send(request)
        return PartResult(
            part_number=part_number,
            etag=unquote_etag(response.headers.get("ETag", "")),
            crc64=parse_crc(response.headers.get(CRC_HEADER)),
            size=part.length,
        )

    def upload_part_copy(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_number: int,
        src_bucket: str,
        src_key: str,
        byte_range: tuple[int, int] | None = None,
    ) -> PartResult:
        """Copy ``byte_range`` (inclusive) of the source (all of it when None) into a part."""
        headers = {"x-kss-copy-source": copy_source(src_bucket, src_key)}
        if byte_range is not None:
            first, last = byte_range
            if first < 0 or last < first:
                raise ValueError(f"bad byte range {byte_range}")
            headers["x-kss-copy-source-range"] = f"bytes={first}-{last}"
            size = last - first + 1
        else:
            size = self.head_object(src_bucket, src_key).size
        response = self._send_xml(
            Request(
                "PUT",
                bucket,
                key,
                params={"partNumber": str(part_number), "uploadId": upload_id},
                headers=headers,
                success=frozenset({200}),
            )
        )
        result = parse_copy_result(response.content)
        crc = result.crc64 if result.crc64 is not None else parse_crc(response.headers.get(CRC_HEADER))
        return PartResult(part_number=part_number, etag=result.etag, crc64=crc, size=size)

    def complete_multipart(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        parts: Sequence[tuple[int, str]],
        *,
        expected_etag: str | None = None,
        expected_crc64: int | None = None,
    ) -> CompleteResult:
        """Complete with ``(part_number, etag)`` pairs in ascending order.

        ``expected_crc64`` (the parts' CRCs combined, see checksums.combine_parts) is compared with the
        service's; a mismatch raises KS3IntegrityError. A *retried* complete that gets NoSuchUpload may
        mean the first attempt succeeded and only its answer was lost: then the object is HEADed, and if
        its ETag equals ``expected_etag`` (default: the S3-style multipart ETag of the part MD5s) and its
        CRC-64 equals ``expected_crc64`` when both are known, that counts as success.
        """
        ordered = sorted(parts)
        etag_if_done = (
            unquote_etag(expected_etag) if expected_etag else multipart_etag([e for _, e in ordered])
        )
        request = Request(
            "POST",
            bucket,
            key,
            params={"uploadId": upload_id},
            headers={"Content-Type": "text/xml"},
            body=BytesBody(build_complete(ordered)),
            success=frozenset({200}),
        )

        def attempt(number: int) -> CompleteResult:
            try:
                response = self._transport.attempt(request)
                _raise_if_error_document(response, request)
            except NoSuchUpload:
                if number == 1:
                    raise
                return self._completed_earlier(bucket, key, upload_id, etag_if_done, expected_crc64)
            result = parse_complete(response.content)
            if result.crc64 is None:
                result = CompleteResult(result.etag, parse_crc(response.headers.get(CRC_HEADER)))
            return result

        result = call_with_retry(self.config.retry, attempt)
        if expected_crc64 is not None and result.crc64 is not None and result.crc64 != expected_crc64:
            raise KS3IntegrityError(
                f"complete {bucket}/{key} upload {upload_id}: service CRC-64 {result.crc64} "
                f"!= CRC-64 of the parts {expected_crc64}"
            )
        return result

    def _completed_earlier(
        self, bucket: str, key: str, upload_id: str, etag: str, crc: int | None
    ) -> CompleteResult:
        try:
            info = self.head_object(bucket, key)
        except NoSuchKey:
            info = None
        matches = (
            info is not None
            and info.etag == etag
            and (crc is None or info.crc64 is None or info.crc64 == crc)
        )
        if info is None or not matches:
            raise NoSuchUpload(
                status=404,
                code="NoSuchUpload",
                method="POST",
                bucket=bucket,
                key=key,
                message=f"upload {upload_id} is gone after a retried complete and the object there is not "
                f"the expected one (ETag {info.etag if info else '(none)'} vs {etag})",
            )
        log.info("complete %s/%s: retry found the upload already completed (ETag %s)", bucket, key, etag)
        return CompleteResult(etag=info.etag, crc64=info.crc64)

    def abort_multipart(self, bucket: str, key: str, upload_id: str) -> None:
        request = Request(
            "DELETE", bucket, key, params={"uploadId": upload_id}, success=frozenset({200, 204})
        )

        def attempt(number: int) -> None:
            try:
                self._transport.attempt(request)
            except NoSuchUpload:
                if number == 1:
                    raise
                # An earlier attempt aborted it but its answer was lost.

        call_with_retry(self.config.retry, attempt)

    def iter_parts(
        self, bucket: str, key: str, upload_id: str, *, max_parts: int | None = None
    ) -> Iterator[PartInfo]:
        """Every uploaded part, paging with ``part-number-marker`` (``max_parts`` per page)."""
        marker: int | None = None
        while True:
            params = {"uploadId": upload_id}
            if max_parts is not None:
                params["max-parts"] = str(max_parts)
            if marker is not None:
                params["part-number-marker"] = str(marker)
            page = parse_list_parts(self._send_xml(Request("GET", bucket, key, params=params)).content)
            yield from page.parts
            if not page.is_truncated:
                return
            next_marker = page.next_part_number_marker or (page.parts[-1].part_number if page.parts else None)
            if next_marker is None or (marker is not None and next_marker <= marker):
                raise MalformedResponse(f"ListParts {bucket}/{key}: truncated page did not advance")
            marker = next_marker

    def iter_multipart_uploads(
        self, bucket: str, *, prefix: str = "", max_uploads: int | None = None
    ) -> Iterator[UploadInfo]:
        """Every in-progress upload under ``prefix``, paging with key and upload-id markers."""
        key_marker: str | None = None
        upload_id_marker: str | None = None
        while True:
            # No encoding-type=url here: a server that url-encodes keys without echoing
            # <EncodingType> would make the keys ambiguous; plain XML-escaped keys are not.
            params = {"uploads": ""}
            if max_uploads is not None:
                params["max-uploads"] = str(max_uploads)
            if prefix:
                params["prefix"] = prefix
            if key_marker is not None:
                params["key-marker"] = key_marker
            if upload_id_marker is not None:
                params["upload-id-marker"] = upload_id_marker
            page = parse_list_uploads(self._send_xml(Request("GET", bucket, params=params)).content)
            yield from page.uploads
            if not page.is_truncated:
                return
            if (page.next_key_marker, page.next_upload_id_marker) == (key_marker, upload_id_marker) or (
                page.next_key_marker is None and page.next_upload_id_marker is None
            ):
                raise MalformedResponse(f"ListMultipartUploads {bucket}: truncated page did not advance")
            key_marker, upload_id_marker = page.next_key_marker, page.next_upload_id_marker

    # --- presign -------------------------------------------------------------------------------

    def presign(
        self,
        method: str,
        bucket: str,
        key: str,
        *,
        expires_in: int | None = None,
        expires_at: int | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> str:
        """A URL for ``method`` on ``bucket``/``key`` valid for ``expires_in`` seconds (default one hour)
        or until the absolute Unix time ``expires_at``. The requester must send ``headers`` verbatim."""
        if expires_in is not None and expires_at is not None:
            raise ValueError("give expires_in or expires_at, not both")
        expires = (
            expires_at
            if expires_at is not None
            else int(time.time()) + (DEFAULT_PRESIGN_SECONDS if expires_in is None else expires_in)
        )
        return presign_url(
            self._transport.addressing,
            self.config.access_key,
            self.config.secret_key,
            method,
            bucket,
            key,
            expires,
            headers=headers,
            params=params,
        )
