"""Fuzz the local server's parsers in-process (hypothesis, bounded and fast): request-body XML
(CompleteMultipartUpload, AccessControlPolicy, Delete), and header/request-line parsing (Authorization,
Range, x-kss-copy-source, the request target).

The contract under test: malformed input ends in ``S3Error`` (a 4xx answer), never in another exception
type, which the app would turn into a 500 or (outside its try block) a dropped request. Results that do
come back must be sane (ranges inside the object, part numbers positive integers).
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ks3sync.localserver import policy, xmlio
from ks3sync.localserver.auth import Credentials, authenticate
from ks3sync.localserver.errors import S3Error
from ks3sync.localserver.multipart_ops import _requested_parts
from ks3sync.localserver.object_ops import parse_copy_source, parse_range
from ks3sync.localserver.request import Request, parse_request

from .strategies import HEADER_VALUE, complete_multipart_documents, delete_documents, mutated, xml_documents

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CREDS = Credentials("AKLTfuzz", "fuzz-secret")

COMPLETE_DOCS = st.one_of(
    complete_multipart_documents(),
    mutated(xml_documents("CompleteMultipartUpload", ["Part", "PartNumber", "ETag"])),
)
ACL_DOCS = mutated(
    xml_documents(
        "AccessControlPolicy",
        ["Owner", "ID", "AccessControlList", "Grant", "Grantee", "URI", "Permission", "DisplayName"],
        depth=3,
    )
)
DELETE_DOCS = st.one_of(
    delete_documents(), mutated(xml_documents("Delete", ["Object", "Key", "VersionId", "Quiet"]))
)


@FUZZ
@given(COMPLETE_DOCS)
def test_complete_multipart_body_parses_or_raises_s3error(body: bytes) -> None:
    try:
        parts = _requested_parts(body)
    except S3Error as exc:
        assert exc.status == 400, exc
        return
    assert parts, "an empty part list must be refused"
    assert all(isinstance(n, int) and n >= 0 and isinstance(e, str) for n, e in parts)


@FUZZ
@given(ACL_DOCS)
def test_acl_body_parses_or_raises_s3error(body: bytes) -> None:
    try:
        acl = policy.acl_from_document(body, policy.BUCKET_ACLS)
    except S3Error as exc:
        assert exc.status == 400, exc
        return
    assert acl in policy.BUCKET_ACLS


@FUZZ
@given(DELETE_DOCS)
def test_delete_body_parses_or_raises_s3error(body: bytes) -> None:
    # The handler's own element access (findall/child_text) runs over what parse() returns.
    try:
        root = xmlio.parse(body, "Delete")
    except S3Error as exc:
        assert exc.code == "MalformedXML"
        return
    for node in root.findall("Object"):
        key = xmlio.child_text(node, "Key")
        assert key is None or isinstance(key, str)


def test_xml_entity_expansion_is_refused_not_expanded() -> None:
    """A billion-laughs body must not be expanded into memory (expat's amplification limit)."""
    lol = (
        '<!DOCTYPE d [<!ENTITY a "aaaaaaaaaa">'
        + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(8))
        + "]>"
    )
    body = (lol + "<Delete><Object><Key>&i;</Key></Object></Delete>").encode()
    started = time.monotonic()
    with pytest.raises(S3Error):
        xmlio.parse(body, "Delete")
    assert time.monotonic() - started < 5


@FUZZ
@given(HEADER_VALUE, st.integers(0, 10**12))
def test_range_header_parses_inside_the_object_or_raises_s3error(header: str, size: int) -> None:
    try:
        result = parse_range(header, size)
    except S3Error as exc:
        assert exc.status == 416, exc
        return
    if result is not None:
        first, last = result
        assert 0 <= first <= last < size


def _request(method: str, path: bytes, query: bytes, headers: list[tuple[bytes, bytes]]) -> Request:
    return parse_request(method, path, query, headers, "127.0.0.1:1", "localhost")


PATHS = st.one_of(
    st.binary(max_size=40).map(lambda b: b"/" + b),
    st.sampled_from([b"/", b"//", b"/b", b"/b/k", b"/b/%FF", b"/%C3%28/k", b"/b/%", b"/b/a%2Fb", b"/b//k"]),
)
QUERIES = st.one_of(
    st.binary(max_size=40),
    st.sampled_from(
        [
            b"Signature=x&KSSAccessKeyId=AKLTfuzz&Expires=%C2%B2",
            b"Signature=x&KSSAccessKeyId=AKLTfuzz",
            b"Signature=x&KSSAccessKeyId=AKLTfuzz&Expires=\xc2\xb2",
            b"X-Amz-Signature=x",
            b"X-Amz-Signature=x&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=a/b/c/d/aws4_request"
            b"&X-Amz-Date=20240101T000000Z&X-Amz-Expires=-99999999999&X-Amz-SignedHeaders=host",
            b"uploads",
            b"acl=&uploadId=%FF",
        ]
    ),
)


@FUZZ
@given(
    st.sampled_from(["GET", "PUT", "HEAD", "POST", "DELETE"]),
    PATHS,
    QUERIES,
    st.lists(
        st.tuples(
            st.sampled_from(
                [
                    b"authorization",
                    b"date",
                    b"x-amz-date",
                    b"host",
                    b"content-length",
                    b"x-amz-content-sha256",
                    b"x-kss-acl",
                    b"content-md5",
                ]
            ),
            HEADER_VALUE.map(lambda v: v.encode("utf-8")),
        ),
        max_size=5,
    ),
)
def test_request_line_and_auth_headers_parse_or_raise_s3error(
    method: str, path: bytes, query: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    try:
        request = _request(method, path, query, [(b"host", b"127.0.0.1:9000"), *headers])
        result = authenticate(request, CREDS, time.time())
    except S3Error as exc:
        assert 400 <= exc.status < 500, exc
        return
    # Without the secret nobody can produce a valid signature: only anonymous access may come back.
    assert result.anonymous, result


@FUZZ
@given(HEADER_VALUE, st.booleans())
def test_copy_source_header_parses_or_raises_s3error(value: str, amz: bool) -> None:
    request = _request(
        "PUT", b"/dst/key", b"", [(b"host", b"127.0.0.1"), (b"x-kss-copy-source", value.encode("utf-8"))]
    )
    ctx = SimpleNamespace(request=request, amz=amz)
    try:
        bucket, key = parse_copy_source(ctx)  # type: ignore[arg-type]
    except S3Error as exc:
        assert exc.status == 400, exc
        return
    assert bucket and key


# Deterministic regressions for what the fuzzers found (kept so a fix stays fixed).


def test_superscript_part_number_is_malformed_xml_not_a_crash() -> None:
    body = "<CompleteMultipartUpload><Part><PartNumber>²</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>"
    with pytest.raises(S3Error):
        _requested_parts(body.encode())


def test_unknown_encoding_declaration_is_malformed_xml_not_a_crash() -> None:
    with pytest.raises(S3Error):
        xmlio.parse(b'<?xml version="1.0" encoding="U-F-8"?><Delete></Delete>', "Delete")
