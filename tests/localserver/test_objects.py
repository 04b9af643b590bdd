"""Objects over HTTP: ranges (206/416), conditionals, digests, names, wire header spelling, deletes, copies."""

from __future__ import annotations

import base64
import hashlib
import os
import time
from email.utils import formatdate

import pytest

from ks3sync.localserver.crc64 import crc64
from tests.localserver.ls_wire import error_code, raw_exchange, request, resource_path, sign_headers
from tests.serverkit import ServerHandle, sdk_connection

BODY = bytes(range(256)) * 40  # 10,240 bytes


@pytest.fixture
def stored(local_server: ServerHandle, bucket: str) -> str:
    assert request(local_server, "PUT", bucket, "obj", content=BODY).status_code == 200
    return "obj"


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-0", 0, 0),
        ("bytes=100-199", 100, 199),
        ("bytes=10000-", 10000, 10239),
        ("bytes=-100", 10140, 10239),
        ("bytes=10200-999999", 10200, 10239),
        ("bytes=-99999", 0, 10239),
    ],
)
def test_single_ranges_are_206(
    local_server: ServerHandle, bucket: str, stored: str, header: str, first: int, last: int
) -> None:
    response = request(local_server, "GET", bucket, stored, headers={"Range": header})
    assert response.status_code == 206
    assert response.content == BODY[first : last + 1]
    assert response.headers["Content-Range"] == f"bytes {first}-{last}/{len(BODY)}"
    assert response.headers["x-kss-checksum-crc64ecma"] == str(crc64(BODY))  # the whole object's CRC


@pytest.mark.parametrize("header", ["bytes=10240-", "bytes=20000-20001", "bytes=-0"])
def test_unsatisfiable_ranges_are_416(
    local_server: ServerHandle, bucket: str, stored: str, header: str
) -> None:
    response = request(local_server, "GET", bucket, stored, headers={"Range": header})
    assert (response.status_code, error_code(response)) == (416, "InvalidRange")
    assert response.headers["Content-Range"] == f"bytes */{len(BODY)}"


@pytest.mark.parametrize("header", ["bytes=5-1", "bytes=0-1,5-6", "items=0-1", "bytes=abc"])
def test_unusable_range_headers_serve_the_whole_object(
    local_server: ServerHandle, bucket: str, stored: str, header: str
) -> None:
    response = request(local_server, "GET", bucket, stored, headers={"Range": header})
    assert (response.status_code, response.content) == (200, BODY)


def test_conditional_get_and_head(local_server: ServerHandle, bucket: str, stored: str) -> None:
    etag = '"' + hashlib.md5(BODY).hexdigest() + '"'
    later = formatdate(time.time() + 3600, usegmt=True)
    earlier = formatdate(time.time() - 3600, usegmt=True)
    cases = [
        ({"If-Match": etag}, 200),
        ({"If-Match": '"nope"'}, 412),
        ({"If-None-Match": etag}, 304),
        ({"If-None-Match": '"nope"'}, 200),
        ({"If-Modified-Since": later}, 304),
        ({"If-Modified-Since": earlier}, 200),
        ({"If-Unmodified-Since": earlier}, 412),
        ({"If-Unmodified-Since": later}, 200),
        ({"If-Match": etag, "If-Unmodified-Since": earlier}, 200),
    ]
    for headers, status in cases:
        for method in ("GET", "HEAD"):
            assert request(local_server, method, bucket, stored, headers=headers).status_code == status, (
                headers
            )


def test_content_md5_and_crc_headers_are_verified(local_server: ServerHandle, bucket: str) -> None:
    good = base64.b64encode(hashlib.md5(b"data").digest()).decode()
    assert (
        request(
            local_server, "PUT", bucket, "md5", content=b"data", headers={"Content-MD5": good}
        ).status_code
        == 200
    )
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    for md5 in (wrong, "not-base64!", base64.b64encode(b"short").decode()):
        response = request(local_server, "PUT", bucket, "md5", content=b"data", headers={"Content-MD5": md5})
        assert (response.status_code, error_code(response)) == (400, "InvalidDigest")
    response = request(
        local_server,
        "PUT",
        bucket,
        "crc",
        content=b"data",
        headers={"x-kss-checksum-crc64ecma": str(crc64(b"data") ^ 1)},
    )
    assert (response.status_code, error_code(response)) == (400, "InvalidDigest")
    assert request(local_server, "GET", bucket, "crc").status_code == 404
    assert request(local_server, "GET", bucket, "md5").content == b"data"


def test_key_and_bucket_name_rules(local_server: ServerHandle, bucket: str) -> None:
    longest = "k" * 1024
    assert request(local_server, "PUT", bucket, longest, content=b"x").status_code == 200
    assert request(local_server, "GET", bucket, longest).content == b"x"
    response = request(local_server, "PUT", bucket, "k" * 1025, content=b"x")
    assert (response.status_code, error_code(response)) == (400, "KeyTooLong")
    response = request(local_server, "PUT", bucket, "a@base@b", content=b"x")
    assert (response.status_code, error_code(response)) == (400, "InvalidKey")
    for name in ["ab", "-abc", "abc-", "a_b", "kss-bucket", "x" * 64, "a..b"]:
        response = request(local_server, "PUT", name)
        assert (response.status_code, error_code(response)) == (400, "InvalidBucketName"), name
    response = request(local_server, "PUT", "no-such-bucket-here", "k", content=b"x")
    assert (response.status_code, error_code(response)) == (404, "NoSuchBucket")


def test_odd_keys_round_trip(local_server: ServerHandle, bucket: str) -> None:
    b = sdk_connection(local_server).get_bucket(bucket)
    # (keys with "." or ".." segments are left out: the SDK's HTTP stack normalises them away client-side)
    for key in ["/lead//x", "a//b", "a///b", "trail//", "sp ace+plus%2Fpct?q#h", "ü/€/😀", "...", "x."]:
        b.new_key(key).set_contents_from_string(key)
        assert b.get_key(key).get_contents_as_string() == key.encode(), key
    listed = {k.name for k in b.list(delimiter="")}
    assert "/lead//x" in listed and "trail//" in listed and "..." in listed


def test_response_headers_on_the_wire(local_server: ServerHandle, bucket: str) -> None:
    """Canonical casing for standard headers, lower-case x-kss-* (protocol §3.2), CRC, storage class."""
    request(
        local_server,
        "PUT",
        bucket,
        "wire",
        content=b"abc",
        headers={"X-Kss-Meta-Author": "alice", "Content-Type": "text/plain", "Cache-Control": "no-cache"},
    )
    headers = sign_headers(local_server, "HEAD", bucket, "wire")
    lines = [
        f"HEAD {resource_path(bucket, 'wire')} HTTP/1.1",
        f"Host: {local_server.host}:{local_server.port}",
        "Connection: close",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    raw = raw_exchange(local_server, ("\r\n".join(lines) + "\r\n\r\n").encode())
    head = raw.split(b"\r\n\r\n")[0].decode()
    names = [line.split(":")[0] for line in head.split("\r\n")[1:]]
    for name in [
        "Content-Length",
        "ETag",
        "Last-Modified",
        "Content-Type",
        "Cache-Control",
        "Accept-Ranges",
        "Date",
        "Server",
        "x-kss-request-id",
        "x-kss-meta-author",
        "x-kss-storage-class",
        "x-kss-checksum-crc64ecma",
    ]:
        assert name in names, (name, names)
    assert "Content-Length: 3" in head
    assert "X-Kss-Meta-Author" not in head


def test_delete_is_idempotent_and_multi_delete(local_server: ServerHandle, bucket: str) -> None:
    assert request(local_server, "DELETE", bucket, "never-existed").status_code == 204
    for i in range(3):
        request(local_server, "PUT", bucket, f"m{i}", content=b"x")
    body = (
        b"<Delete><Quiet>false</Quiet><Object><Key>m0</Key></Object>"
        b"<Object><Key>m1</Key><VersionId>null</VersionId></Object><Object><Key>absent</Key></Object></Delete>"
    )
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    response = request(local_server, "POST", bucket, query="delete", content=body)
    assert (response.status_code, error_code(response)) == (400, "InvalidDigest")  # Content-MD5 required
    response = request(
        local_server, "POST", bucket, query="delete", content=body, headers={"Content-MD5": md5}
    )
    assert response.status_code == 200
    assert response.text.count("<Deleted>") == 3
    assert request(local_server, "GET", bucket, "m1").status_code == 404
    quiet = b"<Delete><Quiet>true</Quiet><Object><Key>m2</Key></Object></Delete>"
    response = request(
        local_server,
        "POST",
        bucket,
        query="delete",
        content=quiet,
        headers={"Content-MD5": base64.b64encode(hashlib.md5(quiet).digest()).decode()},
    )
    assert "<Deleted>" not in response.text and response.status_code == 200
    too_many = (
        b"<Delete>" + b"".join(b"<Object><Key>k%d</Key></Object>" % i for i in range(1001)) + b"</Delete>"
    )
    response = request(
        local_server,
        "POST",
        bucket,
        query="delete",
        content=too_many,
        headers={"Content-MD5": base64.b64encode(hashlib.md5(too_many).digest()).decode()},
    )
    assert (response.status_code, error_code(response)) == (400, "MalformedXML")


def test_copy_source_forms_and_errors(local_server: ServerHandle, bucket: str) -> None:
    request(local_server, "PUT", bucket, "a/b c+d.txt", content=b"src", headers={"x-kss-meta-x": "1"})
    for source in (
        f"/{bucket}/a%2Fb+c%2Bd.txt",
        f"/{bucket}/a%2Fb+c%2Bd.txt?versionId=123",
        f"{bucket}/a/b%20c%2Bd.txt",
    ):
        response = request(local_server, "PUT", bucket, "dst", headers={"x-kss-copy-source": source})
        assert response.status_code == 200, (source, response.text)
        assert "<CopyObjectResult>" in response.text
        assert response.headers["x-kss-checksum-crc64ecma"] == str(crc64(b"src"))
    assert request(local_server, "GET", bucket, "dst").content == b"src"
    response = request(
        local_server, "PUT", bucket, "dst", headers={"x-kss-copy-source": f"/{bucket}/missing"}
    )
    assert (response.status_code, error_code(response)) == (404, "NoSuchKey")
    response = request(
        local_server, "PUT", bucket, "dst", headers={"x-kss-copy-source": "/no-such-bucket-x/k"}
    )
    assert (response.status_code, error_code(response)) == (404, "NoSuchBucket")
    response = request(
        local_server,
        "PUT",
        bucket,
        "dst",
        headers={"x-kss-copy-source": f"/{bucket}/dst", "x-kss-storage-class": "REDUCED_REDUNDANCY"},
    )
    assert (response.status_code, error_code(response)) == (400, "InvalidStorageClass")


def test_canned_acl_values_are_checked(local_server: ServerHandle, bucket: str) -> None:
    for acl in ("authenticated-read", "bucket-owner-read", "bogus"):
        response = request(local_server, "PUT", bucket, "acl", content=b"x", headers={"x-kss-acl": acl})
        assert (response.status_code, error_code(response)) == (400, "InvalidArgument")
    response = request(local_server, "PUT", bucket, "acl", content=b"x", headers={"x-amz-acl": "public-read"})
    assert response.status_code == 200
    assert request(local_server, "GET", bucket, "acl", sign=False).content == b"x"


def test_tagging_stub_and_unsupported_subresources(local_server: ServerHandle, bucket: str) -> None:
    request(local_server, "PUT", bucket, "tagged", content=b"x", headers={"x-kss-tagging": "k=v&a%20b=c"})
    request(local_server, "PUT", bucket, "plain", content=b"x")
    tagged = request(local_server, "GET", bucket, "tagged", "tagging").text
    assert "<Tag><Key>k</Key><Value>v</Value></Tag>" in tagged and "<Key>a b</Key>" in tagged
    assert "<TagSet></TagSet>" in request(local_server, "GET", bucket, "plain", "tagging").text
    assert request(local_server, "GET", bucket, query="lifecycle").status_code == 501
    location = request(local_server, "GET", bucket, query="location")
    assert "<LocationConstraint>" in location.text


def test_large_object_round_trip_and_sdk_transfer_helpers(
    local_server: ServerHandle, bucket: str, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """The SDK's own upload_file (multipart), download_file (CRC-checked) and copy_file (HEAD headers forwarded)."""
    data = os.urandom(3 * 1024 * 1024 + 5)
    source = tmp_path / "src.bin"
    source.write_bytes(data)
    b = sdk_connection(local_server).get_bucket(bucket)
    key = b.new_key("transfer/src.bin")
    key.upload_file(str(source), part_size=1024 * 1024)
    head = b.get_key("transfer/src.bin", validate=True)
    assert head.size == len(data) and head.etag.endswith('-4"')
    target = tmp_path / "back.bin"
    b.get_key("transfer/src.bin", validate=True).download_file(str(target), part_size=1024 * 1024)
    assert target.read_bytes() == data
    copy = b.new_key("transfer/copy.bin")
    copy.copy_file(b.get_key("transfer/src.bin", validate=True))
    copy_big = b.new_key("transfer/copy-parts.bin")
    copy_big.copy_file(b.get_key("transfer/src.bin", validate=True), part_size=1024 * 1024)
    for name in ("transfer/copy.bin", "transfer/copy-parts.bin"):
        assert b.get_key(name).get_contents_as_string() == data


def test_virtual_host_addressing(local_server: ServerHandle, bucket: str) -> None:
    """Host: <bucket>.localhost puts the bucket in the Host header; the signature still names /bucket/."""
    import httpx
    from ks3 import auth as sdk_auth

    headers = {
        "Date": formatdate(time.time(), usegmt=True),
        "Host": f"{bucket}.localhost:{local_server.port}",
    }
    sdk_auth.add_auth_header(
        local_server.access_key, local_server.secret_key, headers, "PUT", bucket, "vh/key", ""
    )
    response = httpx.put(f"{local_server.endpoint}/vh/key", content=b"virtual", headers=headers)
    assert response.status_code == 200, response.text
    assert request(local_server, "GET", bucket, "vh/key").content == b"virtual"


def test_chunked_transfer_encoding_put(local_server: ServerHandle, bucket: str) -> None:
    """The SDK's set_contents_from_stream sends chunked bodies without Content-Length."""
    import httpx

    def body():  # type: ignore[no-untyped-def]
        yield b"part one, "
        yield b"part two"

    headers = sign_headers(local_server, "PUT", bucket, "chunked")
    response = httpx.put(
        local_server.endpoint + resource_path(bucket, "chunked"), content=body(), headers=headers
    )
    assert response.status_code == 200, response.text
    assert request(local_server, "GET", bucket, "chunked").content == b"part one, part two"


def test_acl_from_an_xml_body(local_server: ServerHandle, bucket: str) -> None:
    request(local_server, "PUT", bucket, "xml-acl", content=b"x")
    policy = (
        b"<AccessControlPolicy><Owner><ID>1234567</ID></Owner><AccessControlList>"
        b'<Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="Group">'
        b"<URI>http://acs.ksyun.com/groups/global/AllUsers</URI></Grantee><Permission>READ</Permission></Grant>"
        b"</AccessControlList></AccessControlPolicy>"
    )
    response = request(
        local_server,
        "PUT",
        bucket,
        "xml-acl",
        "acl=",
        content=policy,
        headers={"Content-Type": "application/xml"},
    )
    assert response.status_code == 200, response.text
    got = request(local_server, "GET", bucket, "xml-acl", "acl").text
    assert got.count('xsi:type="') == 2 and "AllUsers" in got
    assert request(local_server, "GET", bucket, "xml-acl", sign=False).content == b"x"
    response = request(local_server, "PUT", bucket, "xml-acl", "acl", content=b"<nonsense")
    assert (response.status_code, error_code(response)) == (400, "MalformedXML")


def test_a_path_that_is_not_utf8_is_invalid_uri(local_server: ServerHandle, bucket: str) -> None:
    raw = raw_exchange(
        local_server, f"GET /{bucket}/%FF%FE HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    )
    assert raw.startswith(b"HTTP/1.1 400 ") and b"<Code>InvalidURI</Code>" in raw
