"""Service- and bucket-level operations: buckets, bucket ACL and location, listings, multi-object delete.

Each handler takes a Context and returns a Response or raises S3Error; status codes follow protocol
§3.1 exactly (the SDK checks them). Imports nothing else from ks3sync.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from ks3sync.localserver import policy, xmlio
from ks3sync.localserver.context import Context
from ks3sync.localserver.errors import S3Error
from ks3sync.localserver.exchange import Response
from ks3sync.localserver.listing import ListPage, list_page, prefix_successor
from ks3sync.localserver.storage import BucketRecord, ListedObject

Encoder = Callable[[str], str]
XML = ("Content-Type", "application/xml")
_OWNER = f"<Owner><ID>{policy.OWNER_ID}</ID><DisplayName>{policy.OWNER_ID}</DisplayName></Owner>"


def xml_response(body: str, status: int = 200) -> Response:
    return Response(status, [XML], xmlio.document(body))


def _bucket_for_read(ctx: Context) -> BucketRecord:
    record = ctx.storage.require_bucket(ctx.bucket)
    if ctx.auth.anonymous and not policy.anonymous_may_read(record.acl, None):
        raise S3Error("AccessDenied")
    return record


# ------------------------------------------------------------ service and buckets


async def list_buckets(ctx: Context) -> Response:
    policy.require_owner(ctx.auth.anonymous)
    buckets = "".join(
        f"<Bucket><Name>{xmlio.text(b.name)}</Name><CreationDate>{xmlio.iso8601(b.created)}</CreationDate>"
        "<Region>BEIJING</Region><Type>NORMAL</Type></Bucket>"
        for b in ctx.storage.list_buckets()
    )
    return xml_response(
        f'<ListAllMyBucketsResult xmlns="{xmlio.S3_NAMESPACE}">{_OWNER}'
        f"<Buckets>{buckets}</Buckets></ListAllMyBucketsResult>"
    )


async def create_bucket(ctx: Context) -> Response:
    policy.require_owner(ctx.auth.anonymous)
    # The body (CreateBucketConfiguration) is read and ignored: the SDK may send a literal "%s" in it.
    await ctx.body.read_all(64 * 1024)
    policy.validate_bucket_name(ctx.bucket)
    acl = policy.canned_acl(ctx.request.headers, policy.BUCKET_ACLS)
    if ctx.storage.get_bucket(ctx.bucket) is not None:
        raise S3Error("BucketAlreadyExists", extra={"BucketName": ctx.bucket})
    if ctx.storage.bucket_count() >= ctx.config.max_buckets:
        raise S3Error("TooManyBuckets")
    ctx.storage.create_bucket(ctx.bucket, acl)
    return Response(200, [("Location", "/" + ctx.bucket)])


async def head_bucket(ctx: Context) -> Response:
    _bucket_for_read(ctx)
    return Response(200)


async def delete_bucket(ctx: Context) -> Response:
    policy.require_owner(ctx.auth.anonymous)
    ctx.storage.remove_data(ctx.storage.delete_bucket(ctx.bucket))
    return Response(204)


async def get_bucket_acl(ctx: Context) -> Response:
    policy.require_owner(ctx.auth.anonymous)
    record = ctx.storage.require_bucket(ctx.bucket)
    return Response(200, [XML], policy.acl_document(record.acl))


async def put_bucket_acl(ctx: Context) -> Response:
    policy.require_owner(ctx.auth.anonymous)
    ctx.storage.require_bucket(ctx.bucket)
    body = await ctx.body.read_all(xmlio.MAX_XML_BODY)
    if policy.kss_header(ctx.request.headers, "acl") is not None:  # the header wins over a body
        acl = policy.canned_acl(ctx.request.headers, policy.BUCKET_ACLS)
    elif body.strip():
        acl = policy.acl_from_document(body, policy.BUCKET_ACLS)
    else:
        raise S3Error("InvalidArgument", "Give a canned ACL in x-kss-acl or an AccessControlPolicy body.")
    ctx.storage.set_bucket_acl(ctx.bucket, acl)
    return Response(200)


async def get_bucket_location(ctx: Context) -> Response:
    policy.require_owner(ctx.auth.anonymous)
    ctx.storage.require_bucket(ctx.bucket)
    if ctx.amz:  # S3 tools: an empty constraint means the default region, keeping them on this endpoint
        return xml_response(f'<LocationConstraint xmlns="{xmlio.S3_NAMESPACE}"></LocationConstraint>')
    return xml_response(
        "<CreateBucketConfiguration><LocationConstraint>BEIJING</LocationConstraint>"
        "</CreateBucketConfiguration>"
    )


async def not_implemented(ctx: Context) -> Response:
    raise S3Error(
        "NotImplemented",
        f"{ctx.request.method} on this sub-resource is not supported by ks3sync local-server.",
    )


# ------------------------------------------------------------ listings


def _scan(ctx: Context) -> Callable[[bytes, bool, bytes | None, int], list[ListedObject]]:
    bucket = ctx.bucket
    storage = ctx.storage

    def scan(after: bytes, inclusive: bool, below: bytes | None, limit: int) -> list[ListedObject]:
        return storage.scan(bucket, after, inclusive, below, limit)

    return scan


def _contents(ctx: Context, records: list[ListedObject], encode: Encoder, with_owner: bool) -> str:
    owner = _OWNER if with_owner else ""
    return "".join(
        f"<Contents><Key>{encode(r.key)}</Key><LastModified>{xmlio.iso8601(r.mtime)}</LastModified>"
        f"<ETag>&quot;{r.etag}&quot;</ETag><Size>{r.size}</Size>{owner}"
        f"<StorageClass>{r.storage_class}</StorageClass></Contents>"
        for r in records
    )


def _encoder(ctx: Context) -> Encoder:
    encoding = ctx.request.arg("encoding-type")
    if encoding not in (None, "", "url"):
        raise S3Error("InvalidArgument", "encoding-type must be 'url'.")
    return xmlio.url_text if encoding == "url" else xmlio.text


def _page_size(ctx: Context, delimiter: str) -> int:
    # KS3 pages at most 100 entries when a delimiter is given (and 100 is the default then).
    if delimiter:
        return ctx.int_arg("max-keys", 100, 0, 100)
    return ctx.int_arg("max-keys", 1000, 0, 1000)


@dataclass(frozen=True, slots=True)
class _Listing:
    """The request parameters every object listing shares, and the page they select."""

    prefix: str
    delimiter: str
    max_keys: int
    encode: Encoder
    page: ListPage[ListedObject]

    def head(self) -> str:
        """Prefix, MaxKeys, Delimiter and EncodingType elements, in KS3's order."""
        encode = self.encode
        xml = f"<Prefix>{encode(self.prefix)}</Prefix><MaxKeys>{self.max_keys}</MaxKeys>"
        if self.delimiter:
            xml += f"<Delimiter>{encode(self.delimiter)}</Delimiter>"
        if encode is xmlio.url_text:
            xml += "<EncodingType>url</EncodingType>"
        return xml

    def truncated(self) -> str:
        return f"<IsTruncated>{'true' if self.page.is_truncated else 'false'}</IsTruncated>"

    def common_prefixes(self) -> str:
        return "".join(
            f"<CommonPrefixes><Prefix>{self.encode(p)}</Prefix></CommonPrefixes>"
            for p in self.page.common_prefixes
        )


def _list(ctx: Context, marker: str) -> _Listing:
    _bucket_for_read(ctx)
    prefix = ctx.request.arg("prefix") or ""
    delimiter = ctx.request.arg("delimiter") or ""
    max_keys = _page_size(ctx, delimiter)
    encode = _encoder(ctx)
    return _Listing(
        prefix, delimiter, max_keys, encode, list_page(_scan(ctx), prefix, delimiter, marker, max_keys)
    )


async def list_objects(ctx: Context) -> Response:
    marker = ctx.request.arg("marker") or ""
    listing = _list(ctx, marker)
    page, encode = listing.page, listing.encode
    parts = [
        f'<ListBucketResult xmlns="{xmlio.S3_NAMESPACE}"><Name>{xmlio.text(ctx.bucket)}</Name>',
        listing.head(),
        f"<Marker>{encode(marker)}</Marker>",
        listing.truncated(),
    ]
    if page.is_truncated and page.next_marker is not None:
        parts.append(f"<NextMarker>{encode(page.next_marker)}</NextMarker>")
    parts += [
        _contents(ctx, page.contents, encode, with_owner=True),
        listing.common_prefixes(),
        "</ListBucketResult>",
    ]
    return xml_response("".join(parts))


def _token(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode("utf-8")).decode("ascii")


def _untoken(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode("ascii")).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError) as exc:
        raise S3Error(
            "InvalidArgument",
            "The continuation token provided is incorrect.",
            extra={"ArgumentName": "continuation-token"},
        ) from exc


async def list_objects_v2(ctx: Context) -> Response:
    token = ctx.request.arg("continuation-token")
    start_after = ctx.request.arg("start-after") or ""
    listing = _list(ctx, _untoken(token) if token else start_after)
    page, encode = listing.page, listing.encode
    parts = [
        f'<ListBucketResult xmlns="{xmlio.S3_NAMESPACE}"><Name>{xmlio.text(ctx.bucket)}</Name>',
        listing.head(),
        f"<KeyCount>{len(page.contents) + len(page.common_prefixes)}</KeyCount>",
    ]
    if token:
        parts.append(f"<ContinuationToken>{xmlio.text(token)}</ContinuationToken>")
    if start_after:
        parts.append(f"<StartAfter>{encode(start_after)}</StartAfter>")
    parts.append(listing.truncated())
    if page.is_truncated and page.next_marker is not None:
        parts.append(f"<NextContinuationToken>{_token(page.next_marker)}</NextContinuationToken>")
    with_owner = ctx.request.arg("fetch-owner") == "true"
    parts += [
        _contents(ctx, page.contents, encode, with_owner),
        listing.common_prefixes(),
        "</ListBucketResult>",
    ]
    return xml_response("".join(parts))


async def list_object_versions(ctx: Context) -> Response:
    """An unversioned bucket's objects as versions with VersionId null (harnesses empty buckets so)."""
    key_marker = ctx.request.arg("key-marker") or ""
    listing = _list(ctx, key_marker)
    page, encode = listing.page, listing.encode
    parts = [
        f'<ListVersionsResult xmlns="{xmlio.S3_NAMESPACE}"><Name>{xmlio.text(ctx.bucket)}</Name>',
        listing.head(),
        f"<KeyMarker>{encode(key_marker)}</KeyMarker><VersionIdMarker></VersionIdMarker>",
        listing.truncated(),
    ]
    if page.is_truncated and page.next_marker is not None:
        parts.append(
            f"<NextKeyMarker>{encode(page.next_marker)}</NextKeyMarker>"
            "<NextVersionIdMarker>null</NextVersionIdMarker>"
        )
    parts.extend(
        f"<Version><Key>{encode(r.key)}</Key><VersionId>null</VersionId><IsLatest>true</IsLatest>"
        f"<LastModified>{xmlio.iso8601(r.mtime)}</LastModified><ETag>&quot;{r.etag}&quot;</ETag>"
        f"<Size>{r.size}</Size>{_OWNER}<StorageClass>{r.storage_class}</StorageClass></Version>"
        for r in page.contents
    )
    parts += [listing.common_prefixes(), "</ListVersionsResult>"]
    return xml_response("".join(parts))


async def list_multipart_uploads(ctx: Context) -> Response:
    policy.require_owner(ctx.auth.anonymous)
    ctx.storage.require_bucket(ctx.bucket)
    prefix = ctx.request.arg("prefix") or ""
    delimiter_b = (ctx.request.arg("delimiter") or "").encode("utf-8")
    key_marker = ctx.request.arg("key-marker") or ""
    upload_marker = ctx.request.arg("upload-id-marker") or ""
    max_uploads = ctx.int_arg("max-uploads", 1000, 0, 1000)
    encode = _encoder(ctx)
    prefix_b = prefix.encode("utf-8")
    below = prefix_successor(prefix_b) if prefix_b else None
    # The cursor is exclusive on (key, upload id): "" precedes every id, "~" follows every (hex) id.
    cursor: tuple[bytes, str] = (prefix_b, "")
    if key_marker and key_marker.encode("utf-8") >= prefix_b:
        cursor = (key_marker.encode("utf-8"), upload_marker or "~")
    uploads_xml: list[str] = []
    prefixes: list[str] = []
    truncated = False
    next_key = next_upload = ""
    while not truncated:
        batch = ctx.storage.list_uploads(ctx.bucket, cursor[0], cursor[1], below, 256)
        if not batch:
            break
        for upload in batch:
            if len(uploads_xml) + len(prefixes) >= max_uploads:
                truncated = True
                break
            key_b = upload.key.encode("utf-8")
            cut = key_b.find(delimiter_b, len(prefix_b)) if delimiter_b else -1
            if cut != -1:
                rolled = key_b[: cut + len(delimiter_b)]
                prefixes.append(rolled.decode("utf-8"))
                next_key, next_upload = prefixes[-1], ""
                successor = prefix_successor(rolled)
                if successor is None:
                    return _uploads_response(
                        ctx,
                        encode,
                        key_marker,
                        upload_marker,
                        next_key,
                        next_upload,
                        max_uploads,
                        False,
                        uploads_xml,
                        prefixes,
                    )
                cursor = (successor, "")
                break
            next_key, next_upload = upload.key, upload.upload_id
            cursor = (key_b, upload.upload_id)
            uploads_xml.append(
                f"<Upload><Key>{encode(upload.key)}</Key><UploadId>{upload.upload_id}</UploadId>"
                f"<Initiator><ID>{policy.OWNER_ID}</ID><DisplayName>{policy.OWNER_ID}</DisplayName></Initiator>"
                f"{_OWNER}<StorageClass>{upload.storage_class}</StorageClass>"
                f"<Initiated>{xmlio.iso8601(upload.initiated)}</Initiated></Upload>"
            )
        else:
            if len(batch) < 256:
                break
    return _uploads_response(
        ctx,
        encode,
        key_marker,
        upload_marker,
        next_key,
        next_upload,
        max_uploads,
        truncated,
        uploads_xml,
        prefixes,
    )


def _uploads_response(
    ctx: Context,
    encode: Encoder,
    key_marker: str,
    upload_marker: str,
    next_key: str,
    next_upload: str,
    max_uploads: int,
    truncated: bool,
    uploads_xml: list[str],
    prefixes: list[str],
) -> Response:
    body = [
        f'<ListMultipartUploadsResult xmlns="{xmlio.S3_NAMESPACE}"><Bucket>{xmlio.text(ctx.bucket)}</Bucket>',
        f"<KeyMarker>{encode(key_marker)}</KeyMarker><UploadIdMarker>{xmlio.text(upload_marker)}</UploadIdMarker>",
        f"<NextKeyMarker>{encode(next_key)}</NextKeyMarker><NextUploadIdMarker>{next_upload}</NextUploadIdMarker>",
        f"<Delimiter>{encode(ctx.request.arg('delimiter') or '')}</Delimiter>",
        f"<Prefix>{encode(ctx.request.arg('prefix') or '')}</Prefix>",
        f"<MaxUploads>{max_uploads}</MaxUploads><IsTruncated>{'true' if truncated else 'false'}</IsTruncated>",
        "".join(uploads_xml),
        "".join(f"<CommonPrefixes><Prefix>{encode(p)}</Prefix></CommonPrefixes>" for p in prefixes),
        "</ListMultipartUploadsResult>",
    ]
    return xml_response("".join(body))


# ------------------------------------------------------------ multi-object delete

MAX_DELETE_KEYS = 1000


async def delete_objects(ctx: Context) -> Response:
    record = ctx.storage.require_bucket(ctx.bucket)
    if ctx.auth.anonymous and not policy.anonymous_may_write(record.acl):
        raise S3Error("AccessDenied")
    body = await ctx.body.read_all(xmlio.MAX_XML_BODY)
    headers = ctx.request.headers
    md5_header = headers.get("content-md5")
    if md5_header is not None:
        if md5_header != base64.b64encode(hashlib.md5(body).digest()).decode("ascii"):  # noqa: S324
            raise S3Error("BadDigest" if ctx.amz else "InvalidDigest")
    elif not (ctx.auth.payload_sha256 or any(name.startswith("x-amz-checksum-") for name in headers)):
        # KS3 requires Content-MD5; a SigV4-signed payload hash or an S3 checksum protects the body too.
        raise S3Error("InvalidDigest", "Content-MD5 is required for a multi-object delete.")
    root = xmlio.parse(body, "Delete")
    quiet = (xmlio.child_text(root, "Quiet") or "").strip().lower() == "true"
    objects = root.findall("Object")
    if len(objects) > MAX_DELETE_KEYS:
        raise S3Error("MalformedXML", f"At most {MAX_DELETE_KEYS} keys may be deleted per request.")
    out = [f'<DeleteResult xmlns="{xmlio.S3_NAMESPACE}">']
    unused = []
    for node in objects:
        key = xmlio.child_text(node, "Key")
        if not key:
            raise S3Error("MalformedXML", "Every <Object> needs a <Key>.")
        version = xmlio.child_text(node, "VersionId")
        data_id = ctx.storage.delete_object(ctx.bucket, key)
        if data_id:
            unused.append(data_id)
        if not quiet:
            version_xml = f"<VersionId>{xmlio.text(version)}</VersionId>" if version else ""
            out.append(f"<Deleted><Key>{xmlio.text(key)}</Key>{version_xml}</Deleted>")
    ctx.storage.remove_data(unused)
    out.append("</DeleteResult>")
    return xml_response("".join(out))
