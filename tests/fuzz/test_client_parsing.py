"""Fuzz the client's response parsing in-process (hypothesis, bounded and fast): every XML document
type it reads (listings, parts, uploads, complete, copy, delete, ACL, buckets, error bodies) and the
object headers of HEAD/GET.

The contract: a body the client cannot use raises ``KS3Error`` (``MalformedResponse`` for a 2xx body);
an error body never raises at all (it maps to a ``KS3ServiceError`` value). Any other exception type
would escape the error tree the store maps at its boundary and crash a sync pass.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ks3sync.ks3 import KS3Error, KS3ServiceError
from ks3sync.ks3 import xml as ks3xml
from ks3sync.ks3.errors import parse_error_body, service_error
from ks3sync.ks3.objectinfo import object_info

from .strategies import HEADER_VALUE, mutated, xml_documents

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

LIST_TAGS = [
    "Name",
    "Prefix",
    "Marker",
    "NextMarker",
    "MaxKeys",
    "Delimiter",
    "IsTruncated",
    "EncodingType",
    "Contents",
    "Key",
    "LastModified",
    "ETag",
    "Size",
    "StorageClass",
    "Owner",
    "ID",
    "CommonPrefixes",
]
PARTS_TAGS = [
    "Bucket",
    "Key",
    "UploadId",
    "PartNumberMarker",
    "NextPartNumberMarker",
    "MaxParts",
    "IsTruncated",
    "Part",
    "PartNumber",
    "LastModified",
    "ETag",
    "Size",
    "ChecksumCRC64ECMA",
]
UPLOADS_TAGS = [
    "Bucket",
    "KeyMarker",
    "UploadIdMarker",
    "NextKeyMarker",
    "NextUploadIdMarker",
    "EncodingType",
    "IsTruncated",
    "Upload",
    "Key",
    "UploadId",
    "Initiated",
    "CommonPrefixes",
    "Prefix",
]
ACL_TAGS = [
    "Owner",
    "ID",
    "DisplayName",
    "AccessControlList",
    "Grant",
    "Grantee",
    "URI",
    "EmailAddress",
    "Permission",
]

PARSERS: list[tuple[str, Callable[[bytes], object], str, list[str]]] = [
    ("list_objects", ks3xml.parse_list_objects, "ListBucketResult", LIST_TAGS),
    ("list_parts", ks3xml.parse_list_parts, "ListPartsResult", PARTS_TAGS),
    ("list_uploads", ks3xml.parse_list_uploads, "ListMultipartUploadsResult", UPLOADS_TAGS),
    (
        "complete",
        ks3xml.parse_complete,
        "CompleteMultipartUploadResult",
        ["ETag", "ChecksumCRC64ECMA", "Key"],
    ),
    ("initiate", ks3xml.parse_initiate, "InitiateMultipartUploadResult", ["Bucket", "Key", "UploadId"]),
    ("copy", ks3xml.parse_copy_result, "CopyObjectResult", ["ETag", "LastModified", "ChecksumCRC64ECMA"]),
    ("delete", ks3xml.parse_delete_result, "DeleteResult", ["Deleted", "Error", "Key", "Code", "Message"]),
    ("acl", ks3xml.parse_acl, "AccessControlPolicy", ACL_TAGS),
    (
        "buckets",
        ks3xml.parse_list_buckets,
        "ListAllMyBucketsResult",
        ["Owner", "Buckets", "Bucket", "Name", "CreationDate", "Region"],
    ),
]


def _url_encoded_listing(keys: list[str]) -> bytes:
    contents = "".join(f"<Contents><Key>{k}</Key><Size>1</Size><ETag>x</ETag></Contents>" for k in keys)
    return f"<ListBucketResult><EncodingType>url</EncodingType>{contents}</ListBucketResult>".encode()


@pytest.mark.parametrize(("name", "parser", "root", "tags"), PARSERS, ids=[p[0] for p in PARSERS])
def test_response_parser_returns_or_raises_ks3error(
    name: str, parser: Callable[[bytes], object], root: str, tags: list[str]
) -> None:
    @FUZZ
    @given(mutated(xml_documents(root, tags, depth=2)))
    def check(body: bytes) -> None:
        try:
            parser(body)
        except KS3Error:
            pass

    check()


@FUZZ
@given(
    st.lists(
        st.sampled_from(["a", "%20", "%FF", "%C3%A9", "%", "%2", "b%2Fc", "%E2%82"]), min_size=1, max_size=4
    ).map("".join)
)
def test_url_encoded_listing_keys_decode_or_raise_ks3error(key: str) -> None:
    try:
        page = ks3xml.parse_list_objects(_url_encoded_listing([key]))
    except KS3Error:
        return
    assert len(page.objects) == 1


@FUZZ
@given(
    st.integers(100, 599),
    mutated(xml_documents("Error", ["Code", "Message", "RequestId", "Resource", "HostId"])),
)
def test_error_bodies_always_map_to_a_service_error(status: int, body: bytes) -> None:
    code, message, request_id, resource = parse_error_body(body)
    assert all(isinstance(v, str) for v in (code, message, request_id, resource))
    error = service_error(status=status, body=body, method="GET", bucket="b", key="k")
    assert isinstance(error, KS3ServiceError)
    assert error.status == status and error.code
    str(error)  # formatting the message must not fail either


HEADER_NAMES = st.sampled_from(
    [
        "etag",
        "content-length",
        "content-range",
        "last-modified",
        "content-type",
        "x-kss-storage-class",
        "x-kss-checksum-crc64ecma",
        "x-kss-meta-mtime",
        "x-kss-meta-iv",
        "x-kss-restore",
    ]
)


@FUZZ
@given(st.lists(st.tuples(HEADER_NAMES, HEADER_VALUE), max_size=8))
def test_object_headers_parse_or_raise_ks3error(headers: list[tuple[str, str]]) -> None:
    try:
        info = object_info("k", httpx.Headers([(n.encode(), v.encode("utf-8")) for n, v in headers]))
    except KS3Error:
        return
    assert info.size >= 0
    assert info.crc64 is None or isinstance(info.crc64, int)


# Deterministic regressions for what the fuzzers found (kept so a fix stays fixed).


def test_unknown_encoding_declaration_is_a_malformed_response() -> None:
    body = b'<?xml version="1.0" encoding="U-F-8"?><DeleteResult></DeleteResult>'
    with pytest.raises(KS3Error):
        ks3xml.parse_delete_result(body)


def test_url_encoded_key_that_is_not_utf8_is_a_malformed_response() -> None:
    with pytest.raises(KS3Error):
        ks3xml.parse_list_objects(_url_encoded_listing(["%FF"]))
