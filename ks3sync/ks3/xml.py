"""KS3 XML documents: parsing every response body the client reads, building every request body.

Owns: tolerant parsing with ``xml.etree`` (a default ``xmlns`` is stripped, so namespaced and plain
documents read the same; unknown elements are ignored; a DOCTYPE is refused unparsed),
``encoding-type=url`` decoding (percent decoding, never ``+`` -> space), and the request bodies
(Complete, Delete, Restore).
Must not import: anything else from ks3sync but the leaf ks3sync.digits, nor httpx.

Parsers raise ``MalformedResponse`` (a non-retryable ``KS3Error``) with the document's root name when a
required element is missing, rather than returning half-filled results.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from datetime import datetime
from urllib.parse import unquote

from ks3sync.digits import INT64_MAX, UINT64_MAX, parse_decimal

from .checksums import unquote_etag
from .errors import KS3Error
from .models import (
    AccessControlPolicy,
    BucketInfo,
    CompleteResult,
    CopyResult,
    DeleteResult,
    Grant,
    InitiateResult,
    ListPage,
    ObjectSummary,
    PartInfo,
    PartsPage,
    UploadInfo,
    UploadsPage,
)
from .xml_contents import Entry, split_contents

_XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
_UNSEEN = object()
_DEFAULT_XMLNS = re.compile(rb"""\sxmlns\s*=\s*(?:"[^"]*"|'[^']*')""")


class MalformedResponse(KS3Error):
    """A 2xx response whose body is not the document the operation returns."""


# --- helpers -------------------------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def refused_construct(body: bytes) -> str | None:
    """Why a response body is refused unparsed, or None: a document type declaration (entities,
    external references; no KS3 answer has one), or UTF-16/32, the encodings expat reads in which that
    byte search would not see it (pyexpat refuses every other non-ASCII-compatible encoding itself)."""
    head = body[:4]
    if b"\x00" in head or head.startswith((b"\xfe\xff", b"\xff\xfe")):
        return "a UTF-16/32 document"
    if b"<!DOCTYPE" in body:
        return "a DOCTYPE declaration"
    return None


def parse_document(body: bytes, expected_root: str | Iterable[str]) -> ET.Element:
    """Parse ``body`` and strip namespaces from every tag; the root must be one of ``expected_root``."""
    wanted = {expected_root} if isinstance(expected_root, str) else set(expected_root)
    refused = refused_construct(body)
    if refused is not None:
        raise MalformedResponse(f"expected <{'|'.join(sorted(wanted))}> XML, got {refused}")
    body = _drop_root_default_namespace(body)
    try:
        root = ET.fromstring(body)
    except (ET.ParseError, LookupError, ValueError) as exc:
        # LookupError: an unknown encoding in the XML declaration.
        raise MalformedResponse(
            f"expected <{'|'.join(sorted(wanted))}> XML, got unparseable body: {exc}"
        ) from exc
    if b"xmlns" in body:  # some element still declares a namespace (rare): strip it everywhere
        for element in root.iter():
            tag = element.tag
            # Comments and processing instructions have a non-str tag; plain tags have no "{ns}".
            if isinstance(tag, str) and tag[:1] == "{":
                element.tag = tag.rpartition("}")[2]
    if root.tag not in wanted:
        raise MalformedResponse(f"expected <{'|'.join(sorted(wanted))}> XML, got <{root.tag}>")
    return root


def _drop_root_default_namespace(body: bytes) -> bytes:
    """``body`` without the root element's default ``xmlns="..."`` declaration (prefixed ones such as
    ``xmlns:xsi`` stay). Every tag then parses without a ``{namespace}`` to strip, which on a 1,000-key
    listing page is 40% of the parse. Returns ``body`` unchanged when the root has none."""
    start = body.find(b"<")
    while start >= 0 and body.startswith((b"<?", b"<!"), start):  # declaration, comment, doctype
        start = body.find(b"<", start + 2)
    if start < 0:
        return body
    end = body.find(b">", start)
    if end < 0:
        return body
    head = body[start:end]
    stripped = _DEFAULT_XMLNS.sub(b"", head, count=1)
    if len(stripped) == len(head):
        return body
    return body[:start] + stripped + body[end:]


def root_name(body: bytes) -> str | None:
    """The local name of the root element, or None if the body is not XML (or not XML we read)."""
    if refused_construct(body) is not None:
        return None
    try:
        return _local(ET.fromstring(body).tag)
    except (ET.ParseError, LookupError, ValueError):
        return None


def _text(element: ET.Element, name: str, default: str | None = None) -> str:
    child = element.find(name)
    if child is None:
        if default is None:
            raise MalformedResponse(f"<{element.tag}> has no <{name}>")
        return default
    return child.text or ""


def _opt_text(element: ET.Element, name: str) -> str | None:
    child = element.find(name)
    return None if child is None else (child.text or "")


def _decimal(parent: str, name: str, raw: str, limit: int = INT64_MAX) -> int:
    value = parse_decimal(raw, limit)
    if value is None:
        raise MalformedResponse(f"<{parent}><{name}> is not a decimal integer: {raw[:40]!r}")
    return value


def _int(element: ET.Element, name: str, default: int | None = None) -> int:
    raw = _opt_text(element, name)
    if raw is None or raw.strip() == "":
        if default is None:
            raise MalformedResponse(f"<{element.tag}> has no <{name}>")
        return default
    return _decimal(element.tag, name, raw)


def _opt_int(element: ET.Element, name: str, limit: int = INT64_MAX) -> int | None:
    raw = _opt_text(element, name)
    if raw is None or raw.strip() == "":
        return None
    return _decimal(element.tag, name, raw, limit)


def _bool(element: ET.Element, name: str) -> bool:
    return (_opt_text(element, name) or "").strip().lower() == "true"


def parse_iso_time(raw: str | None) -> datetime | None:
    """``2024-03-05T08:00:00.000Z`` -> aware datetime; None for absent/unparseable (never fatal)."""
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw.strip())
    except ValueError:
        return None


def _url_decoded(root: ET.Element) -> bool:
    return (_opt_text(root, "EncodingType") or "").strip().lower() == "url"


def _maybe_unquote(value: str | None, encoded: bool) -> str | None:
    if value is None or not encoded:
        return value
    try:
        return unquote(value, errors="strict")
    except UnicodeDecodeError as exc:
        raise MalformedResponse(f"url-encoded name is not UTF-8: {value[:80]!r}") from exc


# --- responses -----------------------------------------------------------------------------------


def parse_list_buckets(body: bytes) -> list[BucketInfo]:
    root = parse_document(body, "ListAllMyBucketsResult")
    buckets = root.find("Buckets")
    if buckets is None:
        return []
    return [
        BucketInfo(
            name=_text(b, "Name"),
            creation_date=parse_iso_time(_opt_text(b, "CreationDate")),
            region=_opt_text(b, "Region"),
        )
        for b in buckets.findall("Bucket")
    ]


def parse_list_objects(body: bytes) -> ListPage:
    """ListObjects (v1). With ``<EncodingType>url</EncodingType>``, keys, prefixes and NextMarker are
    percent-decoded."""
    fast = split_contents(body)
    if fast is None:
        return parse_list_objects_slowly(body)
    # The run of <Contents> read by the fast path, the envelope (the rest of the page) by ElementTree.
    entries, envelope = fast
    root = parse_document(envelope, "ListBucketResult")
    if root.find("Contents") is not None:
        return parse_list_objects_slowly(body)  # entries outside the run (e.g. namespace-prefixed ones)
    encoded = _url_decoded(root)
    return _list_page(root, encoded, _summaries(entries, encoded))


def _summaries(entries: list[Entry], encoded: bool) -> list[ObjectSummary]:
    """The fast path's entries as summaries: what ``_summary`` makes of each, with the common cases
    (a quoted lower-case ETag, a plain decimal size, a key without escapes, a timestamp the page has
    already shown) taken without a call. Objects uploaded together share their LastModified second,
    so a page parses a handful of distinct timestamps, not 1,000; equal ones share one datetime."""
    times: dict[str, datetime | None] = {}
    summaries = []
    for key, last_modified, etag, size_text, storage_class in entries:
        size = parse_decimal(size_text)
        if (
            size is None
            or len(etag) < 2
            or etag[0] != '"'
            or etag[-1] != '"'
            or (encoded and "%" in key)
            or not etag[1:-1].islower()
        ):
            summaries.append(_summary(key, size_text, etag, last_modified, storage_class, encoded))
            continue
        when = times.get(last_modified, _UNSEEN)
        if when is _UNSEEN:
            when = times[last_modified] = parse_iso_time(last_modified)
        summaries.append(
            ObjectSummary(
                key,
                size,
                etag[1:-1],
                when,  # type: ignore[arg-type]
                storage_class or "STANDARD",
            )
        )
    return summaries


def parse_list_objects_slowly(body: bytes) -> ListPage:
    """ListObjects through ElementTree alone (the reference the fast path is tested against)."""
    root = parse_document(body, "ListBucketResult")
    encoded = _url_decoded(root)
    return _list_page(root, encoded, [_object_summary(c, encoded) for c in root.iterfind("Contents")])


def _list_page(root: ET.Element, encoded: bool, objects: list[ObjectSummary]) -> ListPage:
    prefixes: list[str] = []
    for cp in root.findall("CommonPrefixes"):
        for p in cp.findall("Prefix"):
            prefixes.append(_maybe_unquote(p.text or "", encoded) or "")
    next_marker = _opt_text(root, "NextMarker")
    return ListPage(
        objects=objects,
        common_prefixes=prefixes,
        is_truncated=_bool(root, "IsTruncated"),
        next_marker=_maybe_unquote(next_marker, encoded) if next_marker else None,
    )


def _object_summary(contents: ET.Element, encoded: bool) -> ObjectSummary:
    """One ``<Contents>``, read in a single pass over its children (a listing page has 1,000 of them;
    five ``find`` calls each cost more than the rest of the parse). The first of a repeated child wins,
    as with ``find``."""
    fields: dict[str, str] = {}
    for child in contents:
        tag = child.tag
        if isinstance(tag, str) and tag not in fields:
            fields[tag] = child.text or ""
    key = fields.get("Key")
    if key is None:
        raise MalformedResponse(f"<{contents.tag}> has no <Key>")
    return _summary(
        key,
        fields.get("Size", ""),
        fields.get("ETag", ""),
        fields.get("LastModified"),
        fields.get("StorageClass"),
        encoded,
    )


def _summary(
    key: str, size_text: str, etag: str, last_modified: str | None, storage_class: str | None, encoded: bool
) -> ObjectSummary:
    if size_text.strip() == "":
        raise MalformedResponse("<Contents> has no <Size>")
    return ObjectSummary(
        key=_maybe_unquote(key, encoded) or "",
        size=_decimal("Contents", "Size", size_text),
        etag=unquote_etag(etag),
        last_modified=parse_iso_time(last_modified),
        storage_class=storage_class or "STANDARD",
    )


def parse_initiate(body: bytes) -> InitiateResult:
    root = parse_document(body, "InitiateMultipartUploadResult")
    upload_id = _text(root, "UploadId").strip()
    if not upload_id:
        raise MalformedResponse("<InitiateMultipartUploadResult> has an empty <UploadId>")
    return InitiateResult(bucket=_text(root, "Bucket", ""), key=_text(root, "Key", ""), upload_id=upload_id)


def parse_list_parts(body: bytes) -> PartsPage:
    root = parse_document(body, "ListPartsResult")
    parts = [
        PartInfo(
            part_number=_int(p, "PartNumber"),
            etag=unquote_etag(_text(p, "ETag")),
            size=_int(p, "Size"),
            crc64=_opt_int(p, "ChecksumCRC64ECMA", UINT64_MAX),
            last_modified=parse_iso_time(_opt_text(p, "LastModified")),
        )
        for p in root.findall("Part")
    ]
    return PartsPage(
        parts=parts,
        is_truncated=_bool(root, "IsTruncated"),
        next_part_number_marker=_opt_int(root, "NextPartNumberMarker"),
    )


def parse_complete(body: bytes) -> CompleteResult:
    root = parse_document(body, "CompleteMultipartUploadResult")
    return CompleteResult(
        etag=unquote_etag(_text(root, "ETag")), crc64=_opt_int(root, "ChecksumCRC64ECMA", UINT64_MAX)
    )


def parse_list_uploads(body: bytes) -> UploadsPage:
    root = parse_document(body, "ListMultipartUploadsResult")
    encoded = _url_decoded(root)
    uploads = [
        UploadInfo(
            key=_maybe_unquote(_text(u, "Key"), encoded) or "",
            upload_id=_text(u, "UploadId"),
            initiated=parse_iso_time(_opt_text(u, "Initiated")),
        )
        for u in root.findall("Upload")
    ]
    prefixes = [
        _maybe_unquote(p.text or "", encoded) or ""
        for cp in root.findall("CommonPrefixes")
        for p in cp.findall("Prefix")
    ]
    next_key = _opt_text(root, "NextKeyMarker")
    return UploadsPage(
        uploads=uploads,
        common_prefixes=prefixes,
        is_truncated=_bool(root, "IsTruncated"),
        next_key_marker=_maybe_unquote(next_key, encoded) if next_key else None,
        next_upload_id_marker=_opt_text(root, "NextUploadIdMarker") or None,
    )


def parse_copy_result(body: bytes) -> CopyResult:
    """CopyObjectResult (CopyObject) or CopyPartResult (UploadPartCopy)."""
    root = parse_document(body, ("CopyObjectResult", "CopyPartResult"))
    return CopyResult(
        etag=unquote_etag(_text(root, "ETag")),
        crc64=_opt_int(root, "ChecksumCRC64ECMA", UINT64_MAX),
        last_modified=parse_iso_time(_opt_text(root, "LastModified")),
    )


def parse_delete_result(body: bytes) -> DeleteResult:
    root = parse_document(body, "DeleteResult")
    deleted = [_text(d, "Key") for d in root.findall("Deleted")]
    errors = [(_text(e, "Key"), _text(e, "Code", ""), _text(e, "Message", "")) for e in root.findall("Error")]
    return DeleteResult(deleted=deleted, errors=errors)


def parse_acl(body: bytes) -> AccessControlPolicy:
    root = parse_document(body, "AccessControlPolicy")
    owner = root.find("Owner")
    grants: list[Grant] = []
    acl = root.find("AccessControlList")
    for grant in acl.findall("Grant") if acl is not None else []:
        grantee = grant.find("Grantee")
        if grantee is None:
            raise MalformedResponse("<Grant> has no <Grantee>")
        kind = grantee.get(_XSI_TYPE) or grantee.get("type") or ""
        ident = (
            _opt_text(grantee, "URI") or _opt_text(grantee, "ID") or _opt_text(grantee, "EmailAddress") or ""
        )
        if not kind:
            kind = "Group" if grantee.find("URI") is not None else "CanonicalUser"
        grants.append(
            Grant(grantee_type=kind, grantee=ident.strip(), permission=_text(grant, "Permission").strip())
        )
    return AccessControlPolicy(owner_id=_text(owner, "ID", "") if owner is not None else "", grants=grants)


# --- requests ------------------------------------------------------------------------------------


def _serialise(root: ET.Element) -> bytes:
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return body


def build_complete(parts: Sequence[tuple[int, str]]) -> bytes:
    """CompleteMultipartUpload body; ETags are sent quoted, as ListParts returns them."""
    root = ET.Element("CompleteMultipartUpload")
    for number, etag in parts:
        part = ET.SubElement(root, "Part")
        ET.SubElement(part, "PartNumber").text = str(number)
        ET.SubElement(part, "ETag").text = f'"{unquote_etag(etag)}"'
    return _serialise(root)


def build_delete(keys: Sequence[str], quiet: bool) -> bytes:
    root = ET.Element("Delete")
    ET.SubElement(root, "Quiet").text = "true" if quiet else "false"
    for key in keys:
        obj = ET.SubElement(root, "Object")
        ET.SubElement(obj, "Key").text = key
    return _serialise(root)


def build_create_bucket(region: str) -> bytes:
    """CreateBucket's body: the region (``LocationConstraint``, e.g. ``BEIJING``) to create it in."""
    root = ET.Element("CreateBucketConfiguration", xmlns="http://s3.amazonaws.com/doc/2006-03-01/")
    ET.SubElement(root, "LocationConstraint").text = region
    return _serialise(root)


def build_restore(days: int) -> bytes:
    root = ET.Element("RestoreRequest")
    ET.SubElement(root, "Days").text = str(days)
    return _serialise(root)
