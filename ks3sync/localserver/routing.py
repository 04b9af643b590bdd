"""Which KS3 operation a request is: (method, bucket?, key?, sub-resources, copy header) -> handler.

Also decides what counts as the data plane for fault injection: everything that reads or writes object
data or lists keys (object GET/PUT/HEAD/DELETE, copy, every multipart step, multi-delete, listings).
Bucket creation/deletion, ACLs, location and ListBuckets are never faulted, so test set-up stays
reliable while transfers get the injected errors. Imports nothing else from ks3sync.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ks3sync.localserver import bucket_ops, multipart_ops, object_ops, policy
from ks3sync.localserver.context import Context
from ks3sync.localserver.errors import S3Error
from ks3sync.localserver.exchange import Response
from ks3sync.localserver.request import Request

Handler = Callable[[Context], Awaitable[Response]]

# Bucket sub-resources that real KS3 has and this server does not implement (answered 501).
_UNSUPPORTED_BUCKET = (
    "policy",
    "cors",
    "lifecycle",
    "logging",
    "website",
    "crr",
    "versioning",
    "tagging",
    "notification",
    "encryption",
    "inventory",
    "mirror",
    "retention",
    "quota",
    "replication",
)


@dataclass(frozen=True, slots=True)
class Route:
    op: str
    handler: Handler
    data_plane: bool


def _route(op: str, handler: Handler, data_plane: bool = False) -> Route:
    return Route(op, handler, data_plane)


def _service(request: Request) -> Route:
    if request.method == "GET":
        return _route("ListBuckets", bucket_ops.list_buckets)
    return _route("MethodNotAllowed", _method_not_allowed)


async def _method_not_allowed(ctx: Context) -> Response:
    raise S3Error("MethodNotAllowed")


def _bucket(request: Request) -> Route:
    method = request.method
    has = request.has_arg
    if any(has(name) for name in _UNSUPPORTED_BUCKET):
        return _route("Unsupported", bucket_ops.not_implemented)
    if method == "GET":
        if has("acl"):
            return _route("GetBucketAcl", bucket_ops.get_bucket_acl)
        if has("location"):
            return _route("GetBucketLocation", bucket_ops.get_bucket_location)
        if has("uploads"):
            return _route("ListMultipartUploads", bucket_ops.list_multipart_uploads, True)
        if has("versions"):
            return _route("ListObjectVersions", bucket_ops.list_object_versions, True)
        if request.arg("list-type") == "2":
            return _route("ListObjectsV2", bucket_ops.list_objects_v2, True)
        return _route("ListObjects", bucket_ops.list_objects, True)
    if method == "PUT":
        if has("acl"):
            return _route("PutBucketAcl", bucket_ops.put_bucket_acl)
        return _route("CreateBucket", bucket_ops.create_bucket)
    if method == "HEAD":
        return _route("HeadBucket", bucket_ops.head_bucket)
    if method == "DELETE":
        return _route("DeleteBucket", bucket_ops.delete_bucket)
    if method == "POST" and has("delete"):
        return _route("DeleteObjects", bucket_ops.delete_objects, True)
    return _route("MethodNotAllowed", _method_not_allowed)


def _object(request: Request) -> Route:
    method = request.method
    has = request.has_arg
    if method == "GET":
        if has("acl"):
            return _route("GetObjectAcl", object_ops.get_object_acl)
        if has("uploadId"):
            return _route("ListParts", multipart_ops.list_parts, True)
        if has("tagging"):
            return _route("GetObjectTagging", object_ops.get_object_tagging)
        return _route("GetObject", object_ops.get_object, True)
    if method == "HEAD":
        return _route("HeadObject", object_ops.head_object, True)
    if method == "PUT":
        if has("acl"):
            return _route("PutObjectAcl", object_ops.put_object_acl)
        if has("tagging") or has("fetch") or has("append"):
            return _route("Unsupported", bucket_ops.not_implemented)
        copy = policy.kss_header(request.headers, "copy-source") is not None
        if has("uploadId") or has("partNumber"):
            if copy:
                return _route("UploadPartCopy", multipart_ops.upload_part_copy, True)
            return _route("UploadPart", multipart_ops.upload_part, True)
        if copy:
            return _route("CopyObject", object_ops.copy_object, True)
        return _route("PutObject", object_ops.put_object, True)
    if method == "DELETE":
        if has("uploadId"):
            return _route("AbortMultipartUpload", multipart_ops.abort, True)
        if has("tagging"):
            return _route("Unsupported", bucket_ops.not_implemented)
        return _route("DeleteObject", object_ops.delete_object, True)
    if method == "POST":
        if has("uploads"):
            return _route("InitiateMultipartUpload", multipart_ops.initiate, True)
        if has("uploadId"):
            return _route("CompleteMultipartUpload", multipart_ops.complete, True)
        if has("restore"):
            return _route("RestoreObject", object_ops.restore_object)
    return _route("MethodNotAllowed", _method_not_allowed)


async def _invalid_uri(ctx: Context) -> Response:
    raise S3Error("InvalidURI", ctx.request.invalid)


def route(request: Request) -> Route:
    if request.invalid is not None:
        return _route("InvalidURI", _invalid_uri)
    if request.bucket is None:
        return _service(request)
    if request.key is None:
        return _bucket(request)
    return _object(request)
