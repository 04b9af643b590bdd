"""Object-level operations: put, get/head (ranges, conditionals, overrides), delete, copy, ACL, tagging,
restore of archived objects.

Each handler takes a Context and returns a Response or raises S3Error. Imports nothing else from ks3sync.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from email.utils import parsedate_to_datetime
from urllib.parse import unquote, unquote_plus

from ks3sync.localserver import policy, xmlio
from ks3sync.localserver.bucket_ops import XML, xml_response
from ks3sync.localserver.context import Context
from ks3sync.localserver.errors import S3Error
from ks3sync.localserver.exchange import FileBody, Response
from ks3sync.localserver.ingest import MAX_SINGLE_PUT, receive_body
from ks3sync.localserver.request import bounded_int
from ks3sync.localserver.storage import BucketRecord, ObjectRecord, is_inline

_RANGE = re.compile(r"bytes=(\d*)-(\d*)", re.ASCII)
# what a header value may hold (no CR, LF or other controls): response-* overrides come from the query
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
RESPONSE_OVERRIDES = {
    "response-content-type": "Content-Type",
    "response-content-language": "Content-Language",
    "response-expires": "Expires",
    "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
}
DAY = 86400.0


def _writable_bucket(ctx: Context) -> BucketRecord:
    record = ctx.storage.require_bucket(ctx.bucket)
    if ctx.auth.anonymous and not policy.anonymous_may_write(record.acl):
        raise S3Error("AccessDenied")
    return record


def current_restore(record: ObjectRecord, now: float) -> ObjectRecord:
    """The record with its restore state advanced to `now` (restores finish and lapse with time)."""
    if record.restore_state == "ongoing" and record.restore_ready is not None and now >= record.restore_ready:
        record = replace(record, restore_state="restored")
    if (
        record.restore_state == "restored"
        and record.restore_expiry is not None
        and now >= record.restore_expiry
    ):
        record = replace(record, restore_state="frozen", restore_ready=None, restore_expiry=None)
    return record


def object_headers(ctx: Context, record: ObjectRecord) -> list[tuple[str, str]]:
    headers = [
        ("ETag", f'"{record.etag}"'),
        ("Last-Modified", xmlio.http_date(record.mtime)),
        ("Accept-Ranges", "bytes"),
        (ctx.kss("storage-class"), record.storage_class),
        ("x-kss-checksum-crc64ecma", str(record.crc64)),
    ]
    headers.extend(policy.response_headers(record.headers, ctx.amz))
    if record.restore_state == "ongoing":
        headers.append((ctx.kss("restore"), 'ongoing-request="true"'))
    elif record.restore_state == "restored" and record.restore_expiry is not None:
        headers.append(
            (
                ctx.kss("restore"),
                f'ongoing-request="false", expiry-date="{xmlio.http_date(record.restore_expiry)}"',
            )
        )
    return headers


# ------------------------------------------------------------ PUT


async def put_object(ctx: Context) -> Response:
    _writable_bucket(ctx)
    policy.validate_key(ctx.key)
    headers = ctx.request.headers
    acl = policy.canned_acl(headers, policy.OBJECT_ACLS)
    storage_class = policy.storage_class(headers)
    stored_headers = policy.stored_headers(headers)
    forbid_overwrite = headers.get("x-kss-forbid-overwrite", "").lower() == "true"
    if forbid_overwrite and ctx.storage.get_object(ctx.bucket, ctx.key) is not None:
        raise S3Error("KeyAlreadyExists")
    received = await receive_body(ctx)
    record = ObjectRecord(
        bucket=ctx.bucket,
        key=ctx.key,
        size=received.size,
        etag=received.etag,
        crc64=received.crc64,
        mtime=ctx.now(),
        storage_class=storage_class,
        acl=acl,
        headers=stored_headers,
        data_id=received.body.data_id,
        restore_state="frozen" if storage_class in policy.ARCHIVE_CLASSES else None,
    )
    if ctx.storage.get_bucket(ctx.bucket) is None:  # deleted while the body was arriving
        ctx.storage.remove_data([received.body.data_id])
        raise S3Error("NoSuchBucket")
    if forbid_overwrite and ctx.storage.get_object(ctx.bucket, ctx.key) is not None:
        ctx.storage.remove_data([received.body.data_id])
        raise S3Error("KeyAlreadyExists")
    replaced = ctx.storage.put_object(record, inline=received.body.pending)
    if replaced:
        ctx.storage.remove_data([replaced])  # (an inline one is already gone with the same commit)
    return Response(200, [("ETag", f'"{received.etag}"'), ("x-kss-checksum-crc64ecma", str(received.crc64))])


# ------------------------------------------------------------ GET / HEAD


def _readable_object(ctx: Context) -> ObjectRecord:
    bucket = ctx.storage.require_bucket(ctx.bucket)
    record = ctx.storage.get_object(ctx.bucket, ctx.key)
    if ctx.auth.anonymous and not policy.anonymous_may_read(bucket.acl, record.acl if record else None):
        raise S3Error("AccessDenied")
    if record is None:
        raise S3Error("NoSuchKey", extra={"Key": ctx.key})
    return current_restore(record, ctx.now())


def _http_time(value: str) -> float | None:
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


def _etag_matches(header: str, etag: str) -> bool:
    candidates = [item.strip().removeprefix("W/").strip('"') for item in header.split(",")]
    return "*" in candidates or etag in candidates


def check_conditions(headers: dict[str, str], record: ObjectRecord, prefix: str = "") -> None:
    """If-Match / If-Unmodified-Since (412) and If-None-Match / If-Modified-Since (304), RFC 7232 order."""
    last_modified = int(record.mtime)
    if_match = headers.get(prefix + "if-match")
    if if_match is not None:
        if not _etag_matches(if_match, record.etag):
            raise S3Error("PreconditionFailed", extra={"Condition": "If-Match"})
    else:
        since = headers.get(prefix + "if-unmodified-since")
        when = _http_time(since) if since else None
        if when is not None and last_modified > when:
            raise S3Error("PreconditionFailed", extra={"Condition": "If-Unmodified-Since"})
    if_none_match = headers.get(prefix + "if-none-match")
    if if_none_match is not None:
        unchanged = _etag_matches(if_none_match, record.etag)
    else:
        since = headers.get(prefix + "if-modified-since")
        when = _http_time(since) if since else None
        unchanged = when is not None and last_modified <= when
    if unchanged and prefix:
        raise S3Error(
            "PreconditionFailed",
            extra={"Condition": "If-None-Match" if if_none_match is not None else "If-Modified-Since"},
        )
    if unchanged:
        # RFC 9110 15.4.5: a 304 carries the validators a 200 would (caches and S3 tools compare the ETag)
        validators = [("ETag", f'"{record.etag}"'), ("Last-Modified", xmlio.http_date(record.mtime))]
        validators += [
            (name, value) for name, value in record.headers.items() if name in ("Cache-Control", "Expires")
        ]
        raise S3Error("NotModified", status=304, headers=validators)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) inclusive for a single satisfiable range; None to serve the whole object."""
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:  # multiple ranges or nonsense: serve the whole object, as S3 does
        return None
    first_s, last_s = match.groups()
    if first_s == "" and last_s == "":
        return None
    if first_s == "":
        suffix = bounded_int(last_s)
        if suffix == 0 or size == 0:
            raise S3Error(
                "InvalidRange",
                headers=[("Content-Range", f"bytes */{size}")],
                extra={"ActualObjectSize": str(size)},
            )
        return max(size - suffix, 0), size - 1
    first = bounded_int(first_s)
    last = bounded_int(last_s) if last_s else None
    if last is not None and last < first:  # syntactically invalid: ignored, as RFC 7233 says
        return None
    if first >= size:
        raise S3Error(
            "InvalidRange",
            headers=[("Content-Range", f"bytes */{size}")],
            extra={"ActualObjectSize": str(size)},
        )
    return first, size - 1 if last is None else min(last, size - 1)


async def _get_or_head(ctx: Context, with_body: bool) -> Response:
    record = _readable_object(ctx)
    check_conditions(ctx.request.headers, record)
    if with_body and record.storage_class in policy.ARCHIVE_CLASSES and record.restore_state != "restored":
        raise S3Error(
            "InvalidObjectState",
            "The object is archived; restore it before reading it.",
            extra={"StorageClass": record.storage_class},
        )
    headers = object_headers(ctx, record)
    for param, header in RESPONSE_OVERRIDES.items():
        value = ctx.request.arg(param)
        if value is not None:
            if not _HEADER_VALUE.fullmatch(value):
                raise S3Error(
                    "InvalidArgument", f"{param} must be a valid header value.", extra={"ArgumentName": param}
                )
            headers = [(n, v) for n, v in headers if n != header]
            headers.append((header, value))
    byte_range = parse_range(ctx.request.headers.get("range"), record.size)
    status, first, length = 200, 0, record.size
    if byte_range is not None:
        status, first, length = 206, byte_range[0], byte_range[1] - byte_range[0] + 1
        headers.append(("Content-Range", f"bytes {first}-{byte_range[1]}/{record.size}"))
    headers.append(("Content-Length", str(length)))
    if not with_body:
        return Response(status, headers)
    if is_inline(record.data_id):
        return Response(status, headers, ctx.storage.read_inline(record.data_id)[first : first + length])
    return Response(status, headers, file=FileBody(ctx.storage.data_path(record.data_id), first, length))


async def get_object(ctx: Context) -> Response:
    return await _get_or_head(ctx, with_body=True)


async def head_object(ctx: Context) -> Response:
    return await _get_or_head(ctx, with_body=False)


# ------------------------------------------------------------ DELETE


async def delete_object(ctx: Context) -> Response:
    _writable_bucket(ctx)
    data_id = ctx.storage.delete_object(ctx.bucket, ctx.key)
    if data_id:
        ctx.storage.remove_data([data_id])
    return Response(204)


# ------------------------------------------------------------ COPY


def parse_copy_source(ctx: Context) -> tuple[str, str]:
    """(bucket, key) from x-kss-copy-source: '/bucket/key' (or 'bucket/key'), key form-encoded by the
    SDK (so unquote_plus) or URL-encoded by S3 tools (so plain unquote), '?versionId=' stripped."""
    source = policy.kss_header(ctx.request.headers, "copy-source")
    assert source is not None
    source = source.split("?versionId=", 1)[0]
    bucket, slash, encoded_key = source.lstrip("/").partition("/")
    if not slash or not bucket or not encoded_key:
        raise S3Error(
            "InvalidArgument",
            "x-kss-copy-source must be /bucket/key.",
            extra={"ArgumentName": "x-kss-copy-source"},
        )
    key = unquote(encoded_key) if ctx.amz else unquote_plus(encoded_key)
    return unquote(bucket), key


def readable_source(ctx: Context) -> ObjectRecord:
    bucket_name, key = parse_copy_source(ctx)
    bucket = ctx.storage.require_bucket(bucket_name)
    record = ctx.storage.get_object(bucket_name, key)
    if ctx.auth.anonymous and not policy.anonymous_may_read(bucket.acl, record.acl if record else None):
        raise S3Error("AccessDenied")
    if record is None:
        raise S3Error("NoSuchKey", extra={"Key": key})
    record = current_restore(record, ctx.now())
    if record.storage_class in policy.ARCHIVE_CLASSES and record.restore_state != "restored":
        raise S3Error("InvalidObjectState", "The source object is archived; restore it first.")
    # x-kss-copy-source-if-match etc. (x-amz-copy-source-* for S3 tools): 412 when they do not hold
    check_conditions(
        ctx.request.headers, record, prefix="x-amz-copy-source-" if ctx.amz else "x-kss-copy-source-"
    )
    return record


def _changes_attributes(headers: dict[str, str], source: ObjectRecord) -> bool:
    """Whether a COPY-directive copy changes what S3 lets a copy onto itself change: the storage class,
    the encryption or the website redirect (a new ACL or tag set alone does not count)."""
    storage_class = policy.kss_header(headers, "storage-class")
    if storage_class is not None and storage_class.upper() != source.storage_class:
        return True
    return any(
        name.startswith(("x-kss-server-side-encryption", "x-amz-server-side-encryption"))
        or name == "x-amz-website-redirect-location"
        for name in headers
    )


def _whole_md5(path: str) -> str:
    digest = hashlib.md5()  # noqa: S324 - protocol ETag
    with open(path, "rb") as source:
        while block := source.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


async def copy_object(ctx: Context) -> Response:
    _writable_bucket(ctx)
    policy.validate_key(ctx.key)
    await ctx.body.drain()
    source = readable_source(ctx)
    if source.size > MAX_SINGLE_PUT:
        raise S3Error("InvalidRequest", "The source is larger than 5 GiB; copy it with UploadPartCopy.")
    headers = ctx.request.headers
    directive = (policy.kss_header(headers, "metadata-directive") or "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise S3Error("InvalidArgument", "x-kss-metadata-directive must be COPY or REPLACE.")
    if (
        (source.bucket, source.key) == (ctx.bucket, ctx.key)
        and directive == "COPY"
        and not _changes_attributes(headers, source)
    ):
        raise S3Error(
            "InvalidRequest",
            "This copy request is illegal because it is trying to copy an object to "
            "itself without changing the object's metadata, storage class, website "
            "redirect location or encryption attributes.",
        )
    stored = policy.stored_headers(headers) if directive == "REPLACE" else dict(source.headers)
    if directive == "COPY" and policy.kss_header(headers, "tagging") is not None:
        stored["@tagging"] = policy.kss_header(headers, "tagging") or ""
    storage_class = policy.storage_class(headers)
    acl = policy.canned_acl(headers, policy.OBJECT_ACLS)
    storage = ctx.storage
    new_id = await storage.duplicate(source.data_id)
    etag = source.etag
    if "-" in etag:  # a multipart source (always a file): the copy's ETag is the MD5 of its bytes
        etag = await storage.run_io(_whole_md5, storage.data_path(new_id))
    now = ctx.now()
    record = ObjectRecord(
        bucket=ctx.bucket,
        key=ctx.key,
        size=source.size,
        etag=etag,
        crc64=source.crc64,
        mtime=now,
        storage_class=storage_class,
        acl=acl,
        headers=stored,
        data_id=new_id,
        restore_state="frozen" if storage_class in policy.ARCHIVE_CLASSES else None,
    )
    replaced = storage.put_object(record)
    if replaced:
        storage.remove_data([replaced])
    body = (
        f"<CopyObjectResult><LastModified>{xmlio.iso8601(now)}</LastModified>"
        f"<ETag>&quot;{etag}&quot;</ETag></CopyObjectResult>"
    )
    response = xml_response(body)
    response.headers.append(("x-kss-checksum-crc64ecma", str(source.crc64)))
    return response


# ------------------------------------------------------------ ACL, tagging


async def get_object_acl(ctx: Context) -> Response:
    policy.require_owner(ctx.auth.anonymous)
    ctx.storage.require_bucket(ctx.bucket)
    record = ctx.storage.get_object(ctx.bucket, ctx.key)
    if record is None:
        raise S3Error("NoSuchKey", extra={"Key": ctx.key})
    return Response(200, [XML], policy.acl_document(record.acl))


async def put_object_acl(ctx: Context) -> Response:
    policy.require_owner(ctx.auth.anonymous)
    ctx.storage.require_bucket(ctx.bucket)
    body = await ctx.body.read_all(xmlio.MAX_XML_BODY)
    if ctx.storage.get_object(ctx.bucket, ctx.key) is None:
        raise S3Error("NoSuchKey", extra={"Key": ctx.key})
    if policy.kss_header(ctx.request.headers, "acl") is not None:
        acl = policy.canned_acl(ctx.request.headers, policy.OBJECT_ACLS)
    elif body.strip():
        acl = policy.acl_from_document(body, policy.OBJECT_ACLS)
    else:
        raise S3Error("InvalidArgument", "Give a canned ACL in x-kss-acl or an AccessControlPolicy body.")
    ctx.storage.set_object_acl(ctx.bucket, ctx.key, acl)
    return Response(200)


async def get_object_tagging(ctx: Context) -> Response:
    """The tags given at upload (x-kss-tagging), else an empty TagSet (the SDK's copy_file reads it)."""
    policy.require_owner(ctx.auth.anonymous)
    record = _readable_object(ctx)
    tags = []
    for pair in record.headers.get("@tagging", "").split("&"):
        if pair:
            name, _, value = pair.partition("=")
            tags.append(
                f"<Tag><Key>{xmlio.text(unquote(name))}</Key><Value>{xmlio.text(unquote(value))}</Value></Tag>"
            )
    return xml_response(f"<Tagging><TagSet>{''.join(tags)}</TagSet></Tagging>")


# ------------------------------------------------------------ restore


async def restore_object(ctx: Context) -> Response:
    policy.require_owner(ctx.auth.anonymous)
    ctx.storage.require_bucket(ctx.bucket)
    body = await ctx.body.read_all(xmlio.MAX_XML_BODY)
    days = 1
    if body.strip():
        root = xmlio.parse(body, "RestoreRequest")
        days_text = xmlio.child_text(root, "Days")
        if days_text is not None:
            try:
                days = int(days_text)
            except ValueError as exc:
                raise S3Error("MalformedXML", "Days must be an integer.") from exc
            if not 1 <= days <= 365:
                raise S3Error("InvalidArgument", "Days must be between 1 and 365.")
    record = ctx.storage.get_object(ctx.bucket, ctx.key)
    if record is None:
        raise S3Error("NoSuchKey", extra={"Key": ctx.key})
    if record.storage_class not in policy.ARCHIVE_CLASSES:
        raise S3Error("InvalidObjectState", "Only ARCHIVE objects can be restored.", status=400)
    now = ctx.now()
    record = current_restore(record, now)
    if record.restore_state == "ongoing":
        raise S3Error("RestoreAlreadyInProgress")
    if record.restore_state == "restored":
        ctx.storage.update_restore(ctx.bucket, ctx.key, "restored", record.restore_ready, now + days * DAY)
        return Response(200)
    ready = now + ctx.config.restore_seconds
    ctx.storage.update_restore(ctx.bucket, ctx.key, "ongoing", ready, ready + days * DAY)
    return Response(202)
