"""Authentication: the golden vectors of protocol §2.5 (pure), then every failure over real HTTP."""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from datetime import UTC, datetime
from urllib.parse import quote, unquote

import httpx
import pytest

from ks3sync.localserver.auth import Credentials, authenticate, kss_signature, kss_string_to_sign
from ks3sync.localserver.errors import S3Error
from ks3sync.localserver.request import parse_request
from tests.localserver.ls_wire import error_code, request, resource_path
from tests.serverkit import ServerHandle, sdk_connection

AK = "AKLTexampleAccessKey01"
SK = "exampleSecretKey/0123456789+abcdefgHIJ="
DATE = "Tue, 05 Mar 2024 08:00:00 GMT"
DATE_TS = datetime(2024, 3, 5, 8, 0, tzinfo=UTC).timestamp()


def _request(method: str, target: str, headers: dict[str, str]):  # type: ignore[no-untyped-def]
    path, _, query = target.partition("?")
    header_list = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return parse_request(method, path.encode(), query.encode(), header_list, "", None)


GOLDEN = [
    ("GET", "/", {}, "1Hac86zid2xzYc0zySj0mMh5FII="),
    ("GET", "/my-bucket/?delimiter=/&max-keys=100&prefix=photos/", {}, "KWL90Zzqo6XusyJlcYKbdeg2epw="),
    (
        "PUT",
        "/my-bucket/dir/sub%20dir/%E6%96%87%E4%BB%B6%20~%281%29.txt",
        {
            "Content-MD5": "XrY7u+Ae7tCTyyK7j1rNww==",
            "Content-Type": "text/plain",
            "x-kss-acl": "public-read",
            "X-Kss-Meta-Author": "alice",
            "x-kss-storage-class": "STANDARD_IA",
        },
        "JKw9Rkf+0lbHmL5h8MAcZngoDQ4=",
    ),
    (
        "PUT",
        "/my-bucket/big/file.bin?partNumber=3&uploadId=0123456789abcdef0123456789abcdef",
        {"Content-Type": "application/octet-stream"},
        "tHKWEUxD0tvxYWc5iCT0vgqwmzo=",
    ),
    ("GET", "/my-bucket/%2Fleading/%2Fslashes?acl", {}, "Kn37CWIH3vnQtUfetau3HE5X/3U="),
    (
        "PUT",
        "/dst-bucket/copy%20of%20a%2Bb.txt",
        {
            "Content-Type": "application/octet-stream",
            "x-kss-copy-source": "/src-bucket/a%2Fb+c.txt",
            "x-kss-metadata-directive": "REPLACE",
        },
        "kQ0wapxZi4ohNCqfSwtqRCMRBBk=",
    ),
]


@pytest.mark.parametrize(("method", "target", "headers", "signature"), GOLDEN)
def test_golden_header_signatures_verify(
    method: str, target: str, headers: dict[str, str], signature: str
) -> None:
    req = _request(method, target, {**headers, "Date": DATE, "Authorization": f"KSS {AK}:{signature}"})
    result = authenticate(req, Credentials(AK, SK), DATE_TS + 60)
    assert (result.scheme, result.access_key) == ("kss-v2", AK)


def test_golden_vector_v5_keeps_double_slashes_in_the_key() -> None:
    req = _request("GET", "/my-bucket/%2Fleading/%2Fslashes?acl", {"Date": DATE})
    assert req.key == "/leading//slashes"
    string_to_sign = kss_string_to_sign(req, DATE, [("acl", "")])
    assert string_to_sign == "GET\n\n\nTue, 05 Mar 2024 08:00:00 GMT\n/my-bucket/%2Fleading/%2Fslashes?acl"
    assert kss_signature(SK, string_to_sign) == "Kn37CWIH3vnQtUfetau3HE5X/3U="


@pytest.mark.parametrize(
    ("target", "headers"),
    [
        (
            "/my-bucket/dir/a%20b.txt?Signature=0MMo4oqNRUcZiWG0RkDWYaWJ4Ug%3D&Expires=1709632800"
            "&KSSAccessKeyId=AKLTexampleAccessKey01",
            {},
        ),
        (
            "/my-bucket/dir/a%20b.txt?Signature=v1%2FHKvSOxw%2B3EbP8Ja72uZnw%2Fpo%3D&Expires=1709632800"
            "&KSSAccessKeyId=AKLTexampleAccessKey01&response-content-type=text/plain"
            "&response-content-disposition=attachment%3B%20filename%3Dx.txt",
            {},
        ),
    ],
)
def test_golden_presigned_urls_verify_until_they_expire(target: str, headers: dict[str, str]) -> None:
    req = _request("GET", target, headers)
    assert authenticate(req, Credentials(AK, SK), 1709632800 - 5).scheme == "kss-presigned"
    with pytest.raises(S3Error) as raised:
        authenticate(req, Credentials(AK, SK), 1709632800 + 1)
    assert raised.value.code == "AccessDenied"


def test_golden_presigned_put_needs_the_signed_headers() -> None:
    target = (
        "/my-bucket/up.bin?Signature=suzTC6FPwog9Y2imkBQ1q2LJ3a0%3D&Expires=1709632800"
        "&KSSAccessKeyId=AKLTexampleAccessKey01"
    )
    good = {"Content-Type": "application/octet-stream", "x-kss-acl": "public-read"}
    assert (
        authenticate(_request("PUT", target, good), Credentials(AK, SK), 1709632000).scheme == "kss-presigned"
    )
    with pytest.raises(S3Error) as raised:
        authenticate(
            _request("PUT", target, {"Content-Type": "application/octet-stream"}),
            Credentials(AK, SK),
            1709632000,
        )
    assert raised.value.code == "SignatureDoesNotMatch"
    assert "x-kss-acl" not in raised.value.extra["StringToSign"]


def test_credentials_repr_hides_the_secret() -> None:
    assert SK not in repr(Credentials(AK, SK))


# ------------------------------------------------------------ over HTTP


def test_wrong_secret_is_signature_does_not_match(local_server: ServerHandle, bucket: str) -> None:
    response = request(local_server, "GET", bucket, secret="wrong-secret")
    assert (response.status_code, error_code(response)) == (403, "SignatureDoesNotMatch")
    assert "<StringToSign>GET\n" in response.text
    assert local_server.secret_key not in response.text


def test_unknown_access_key_is_invalid_access_key_id(local_server: ServerHandle, bucket: str) -> None:
    response = request(local_server, "GET", bucket, access_key="AKLTnobody")
    assert (response.status_code, error_code(response)) == (403, "InvalidAccessKeyId")


def test_clock_skew_beyond_15_minutes_is_refused(local_server: ServerHandle, bucket: str) -> None:
    assert request(local_server, "GET", bucket, date=time.time() - 14 * 60).status_code == 200
    for skew in (-16 * 60, 16 * 60):
        response = request(local_server, "GET", bucket, date=time.time() + skew)
        assert (response.status_code, error_code(response)) == (403, "RequestTimeTooSkewed")


def test_missing_or_bad_date_is_access_denied(local_server: ServerHandle, bucket: str) -> None:
    from ks3 import auth as sdk_auth

    headers: dict[str, str] = {"Date": "yesterday"}
    sdk_auth.add_auth_header(local_server.access_key, local_server.secret_key, headers, "GET", bucket, "", "")
    response = request(local_server, "GET", bucket, headers=headers, sign=False)
    assert (response.status_code, error_code(response)) == (403, "AccessDenied")
    del headers["Date"]
    response = request(local_server, "GET", bucket, headers=headers, sign=False)
    assert (response.status_code, error_code(response)) == (403, "AccessDenied")


def test_expired_presigned_url_is_access_denied(local_server: ServerHandle, bucket: str) -> None:
    conn = sdk_connection(local_server)
    conn.get_bucket(bucket).new_key("k").set_contents_from_string("v")
    url = conn.generate_url(int(time.time()) - 1, "GET", bucket, "k", expires_in_absolute=True)
    response = httpx.get(url)
    assert (response.status_code, error_code(response)) == (403, "AccessDenied")
    assert "expired" in response.text
    tampered = conn.generate_url(60, "GET", bucket, "k").replace("/k?", "/other?")
    response = httpx.get(tampered)
    assert (response.status_code, error_code(response)) == (403, "SignatureDoesNotMatch")


def test_anonymous_access_only_where_the_acl_allows(local_server: ServerHandle, bucket: str) -> None:
    conn = sdk_connection(local_server)
    b = conn.get_bucket(bucket)
    b.new_key("private.txt").set_contents_from_string("p")
    b.new_key("public.txt").set_contents_from_string("q", policy="public-read")
    anon = {"sign": False}
    assert error_code(request(local_server, "GET", bucket, "private.txt", **anon)) == "AccessDenied"  # type: ignore[arg-type]
    response = request(local_server, "GET", bucket, "public.txt", **anon)  # type: ignore[arg-type]
    assert (response.status_code, response.content) == (200, b"q")
    assert request(local_server, "HEAD", bucket, "public.txt", **anon).status_code == 200  # type: ignore[arg-type]
    # listing, writing, deleting and ListBuckets stay forbidden on a private bucket
    assert request(local_server, "GET", bucket, **anon).status_code == 403  # type: ignore[arg-type]
    assert request(local_server, "PUT", bucket, "new", content=b"x", **anon).status_code == 403  # type: ignore[arg-type]
    assert request(local_server, "DELETE", bucket, "public.txt", **anon).status_code == 403  # type: ignore[arg-type]
    assert request(local_server, "GET", **anon).status_code == 403  # type: ignore[arg-type]
    # a public-read-write bucket accepts anonymous writes
    b.set_acl("public-read-write")
    assert request(local_server, "PUT", bucket, "anon-upload", content=b"hi", **anon).status_code == 200  # type: ignore[arg-type]
    assert b.get_key("anon-upload").get_contents_as_string() == b"hi"
    assert request(local_server, "GET", bucket, **anon).status_code == 200  # type: ignore[arg-type]


# ------------------------------------------------------------ SigV4 (the S3 dialect)


def sigv4_headers(
    server: ServerHandle,
    method: str,
    path: str,
    query: str,
    body: bytes,
    *,
    secret: str | None = None,
    payload: str | None = None,
    no_spaces: bool = False,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """A minimal independent SigV4 signer (AWS documentation's algorithm) for the tests."""
    now = datetime.now(UTC)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = now.strftime("%Y%m%d")
    payload_hash = payload or hashlib.sha256(body).hexdigest()
    host = f"{server.host}:{server.port}"
    headers = {"host": host, "x-amz-content-sha256": payload_hash, "x-amz-date": amz_date, **(extra or {})}
    signed = ";".join(sorted(headers))
    canonical_query = "&".join(
        sorted(
            f"{quote(unquote(k), safe='-_.~')}={quote(unquote(v), safe='-_.~')}"
            for k, _, v in (item.partition("=") for item in query.split("&") if item)
        )
    )
    canonical = "\n".join(
        [
            method,
            path,
            canonical_query,
            "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)),
            signed,
            payload_hash,
        ]
    )
    scope = f"{day}/us-east-1/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + (secret or server.secret_key)).encode()
    for part in (day, "us-east-1", "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    sep = "," if no_spaces else ", "
    headers["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={server.access_key}/{scope}{sep}"
        f"SignedHeaders={signed}{sep}Signature={signature}"
    )
    del headers["host"]
    return headers


def test_sigv4_put_get_and_its_failures(local_server: ServerHandle, bucket: str) -> None:
    path = resource_path(bucket, "sig v4/ob+j.txt")
    body = b"signed payload"
    url = local_server.endpoint + path
    ok = httpx.put(
        url, content=body, headers=sigv4_headers(local_server, "PUT", path, "", body, no_spaces=True)
    )
    assert ok.status_code == 200, ok.text
    unsigned = httpx.put(
        url,
        content=b"other",
        headers=sigv4_headers(local_server, "PUT", path, "", b"", payload="UNSIGNED-PAYLOAD"),
    )
    assert unsigned.status_code == 200
    got = httpx.get(url, headers=sigv4_headers(local_server, "GET", path, "", b""))
    assert got.content == b"other"
    assert got.headers["x-amz-request-id"] == got.headers["x-kss-request-id"]
    lying = httpx.put(url, content=b"tampered", headers=sigv4_headers(local_server, "PUT", path, "", body))
    assert (lying.status_code, error_code(lying)) == (400, "XAmzContentSHA256Mismatch")
    assert httpx.get(url, headers=sigv4_headers(local_server, "GET", path, "", b"")).content == b"other"
    wrong = httpx.get(url, headers=sigv4_headers(local_server, "GET", path, "", b"", secret="nope"))
    assert (wrong.status_code, error_code(wrong)) == (403, "SignatureDoesNotMatch")
    query = "list-type=2&prefix=sig%20v4%2F"
    listing = httpx.get(
        f"{local_server.endpoint}/{bucket}/?{query}",
        headers=sigv4_headers(local_server, "GET", f"/{bucket}/", query, b""),
    )
    assert "<KeyCount>1</KeyCount>" in listing.text
    # a request whose signature failed is logged with auth "none"; the others as sigv4
    recent = {(e["status"], e["auth"]) for e in local_server.requests()[-3:]}
    assert recent == {(200, "sigv4"), (403, "none")}


def _chunked_body(
    server: ServerHandle, path: str, chunks: list[bytes], *, tamper: bool = False
) -> tuple[dict, bytes]:  # type: ignore[type-arg]
    """An aws-chunked (STREAMING-AWS4-HMAC-SHA256-PAYLOAD) upload signed the way the AWS docs describe."""
    payload = b"".join(chunks)
    headers = sigv4_headers(
        server,
        "PUT",
        path,
        "",
        b"",
        payload="STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        extra={"content-encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(payload))},
    )
    auth = headers["Authorization"]
    seed = auth.rsplit("Signature=", 1)[1]
    scope = auth.split("Credential=", 1)[1].split(",")[0].split("/", 1)[1]
    day = scope.split("/")[0]
    key = ("AWS4" + server.secret_key).encode()
    for part in (day, "us-east-1", "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    body = b""
    previous = seed
    for data in [*chunks, b""]:
        to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256-PAYLOAD",
                headers["x-amz-date"],
                scope,
                previous,
                hashlib.sha256(b"").hexdigest(),
                hashlib.sha256(data).hexdigest(),
            ]
        )
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        previous = signature
        if tamper and data:
            signature = "0" * 64
        body += f"{len(data):x};chunk-signature={signature}\r\n".encode() + data + b"\r\n"
    return headers, body


def test_aws_chunked_signed_upload(local_server: ServerHandle, bucket: str) -> None:
    path = resource_path(bucket, "chunked/signed.bin")
    chunks = [os.urandom(65536), os.urandom(65536), b"tail"]
    headers, body = _chunked_body(local_server, path, chunks)
    response = httpx.put(local_server.endpoint + path, content=body, headers=headers)
    assert response.status_code == 200, response.text
    got = httpx.get(local_server.endpoint + path, headers=sigv4_headers(local_server, "GET", path, "", b""))
    assert got.content == b"".join(chunks)
    assert "Content-Encoding" not in got.headers  # the framing is not the object's encoding
    headers, body = _chunked_body(local_server, path, [b"evil"], tamper=True)
    response = httpx.put(local_server.endpoint + path, content=body, headers=headers)
    assert (response.status_code, error_code(response)) == (403, "SignatureDoesNotMatch")
    assert httpx.get(
        local_server.endpoint + path, headers=sigv4_headers(local_server, "GET", path, "", b"")
    ).content == b"".join(chunks)


def test_aws_chunked_unsigned_with_trailer(local_server: ServerHandle, bucket: str) -> None:
    path = resource_path(bucket, "chunked/trailer.bin")
    payload = b"hello trailer world"
    headers = sigv4_headers(
        local_server,
        "PUT",
        path,
        "",
        b"",
        payload="STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        extra={
            "content-encoding": "aws-chunked",
            "x-amz-trailer": "x-amz-checksum-crc32",
            "x-amz-decoded-content-length": str(len(payload)),
        },
    )
    body = (
        b"5\r\nhello\r\n" + f"{len(payload) - 5:x}\r\n".encode() + payload[5:] + b"\r\n"
        b"0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n"
    )
    response = httpx.put(local_server.endpoint + path, content=body, headers=headers)
    assert response.status_code == 200, response.text
    got = httpx.get(local_server.endpoint + path, headers=sigv4_headers(local_server, "GET", path, "", b""))
    assert got.content == payload
    truncated = body[:-20]
    response = httpx.put(local_server.endpoint + path, content=truncated, headers=headers)
    assert (response.status_code, error_code(response)) == (400, "IncompleteBody")
