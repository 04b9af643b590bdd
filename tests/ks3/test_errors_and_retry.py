"""Error mapping and the retry policy. A scripted loopback HTTP server (scripted_http.py) stands in for
KS3 here ONLY, to produce failures (503 then 200, lost answers, cut bodies, stalls) that the local server
cannot be made to give on cue; the client still talks real HTTP over a socket. Everything else runs
against the real local server (test_integration.py)."""

from __future__ import annotations

import email.utils
import hashlib

import pytest

from ks3sync.ks3 import (
    BucketAlreadyExists,
    BytesBody,
    Client,
    ClientConfig,
    FileRangeBody,
    KS3AuthError,
    KS3IntegrityError,
    KS3ServiceError,
    KS3TransportError,
    NoSuchBucket,
    NoSuchKey,
    NoSuchUpload,
    RetryPolicy,
    SourceChangedError,
    crc64,
)
from ks3sync.ks3.errors import parse_error_body, service_error
from ks3sync.ks3.objectinfo import object_info
from ks3sync.ks3.retry import call_with_retry
from tests.ks3.scripted_http import DROP, Reply, ScriptedServer, Seen, Stall

SECRET = "s3cr3t-never-printed"

ERROR_XML = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code>'
    b"<Message>The specified key does not exist.</Message><Resource>/my-bucket/a.txt</Resource>"
    b"<RequestId>7f3c</RequestId></Error>"
)


def error_xml(code: str, message: str = "m") -> bytes:
    return (
        f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>rid</RequestId></Error>".encode()
    )


# --- error parsing / mapping ---------------------------------------------------------------------


def test_parse_error_body_fields():
    assert parse_error_body(ERROR_XML) == (
        "NoSuchKey",
        "The specified key does not exist.",
        "7f3c",
        "/my-bucket/a.txt",
    )


@pytest.mark.parametrize("body", [b"", b"<html>bad gateway</html>", b"not xml at all", b"<Other/>"])
def test_parse_error_body_tolerates_junk(body):
    assert parse_error_body(body) == ("", "", "", "")


@pytest.mark.parametrize(
    ("status", "body", "cls", "code", "retryable"),
    [
        (404, error_xml("NoSuchKey"), NoSuchKey, "NoSuchKey", False),
        (404, error_xml("NoSuchBucket"), NoSuchBucket, "NoSuchBucket", False),
        (404, error_xml("NoSuchUpload"), NoSuchUpload, "NoSuchUpload", False),
        (403, error_xml("SignatureDoesNotMatch"), KS3AuthError, "SignatureDoesNotMatch", False),
        (403, error_xml("RequestTimeTooSkewed"), KS3AuthError, "RequestTimeTooSkewed", False),
        (503, error_xml("SlowDown"), KS3ServiceError, "SlowDown", True),
        (400, error_xml("RequestTimeout"), KS3ServiceError, "RequestTimeout", True),
        (500, b"", KS3ServiceError, "InternalError", True),
        (502, b"<html>proxy</html>", KS3ServiceError, "HTTP502", True),
        (429, b"", KS3ServiceError, "HTTP429", True),
        (408, b"", KS3ServiceError, "HTTP408", True),
        (400, error_xml("InvalidDigest"), KS3ServiceError, "InvalidDigest", False),
        (409, error_xml("BucketNotEmpty"), KS3ServiceError, "BucketNotEmpty", False),
    ],
)
def test_service_error_mapping(status, body, cls, code, retryable):
    err = service_error(status=status, body=body, method="PUT", bucket="bk", key="dir/k", request_id="hdr-id")
    assert type(err) is cls or isinstance(err, cls)
    assert (err.status, err.code, err.retryable) == (status, code, retryable)
    text = str(err)
    assert text.startswith(f"PUT bk/dir/k: HTTP {status} {code}")
    assert ("rid" in text) if body.startswith(b"<Error>") else ("hdr-id" in text)


def test_bodiless_404_means_what_the_request_says():
    assert isinstance(
        service_error(status=404, body=b"", method="HEAD", bucket="b", key="k", missing=NoSuchKey), NoSuchKey
    )
    err = service_error(status=404, body=b"", method="HEAD", bucket="b", key=None, missing=NoSuchBucket)
    assert isinstance(err, NoSuchBucket) and str(err).startswith("HEAD b: HTTP 404 NoSuchBucket")


# --- retry policy --------------------------------------------------------------------------------


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def test_backoff_is_full_jitter_under_an_exponential_cap():
    policy = RetryPolicy(max_attempts=10, base_delay=0.5, max_delay=3.0, random=lambda: 1.0)
    assert [policy.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    half = RetryPolicy(base_delay=0.5, random=lambda: 0.5)
    assert half.delay(2) == 0.5


def test_retry_gives_up_after_max_attempts_with_the_last_error():
    sleeps = Sleeps()
    policy = RetryPolicy(max_attempts=3, base_delay=0.1, sleep=sleeps, random=lambda: 1.0)
    calls: list[int] = []

    def attempt(number: int) -> None:
        calls.append(number)
        raise KS3TransportError("GET", "b/k", f"reset {number}")

    with pytest.raises(KS3TransportError, match="reset 3"):
        call_with_retry(policy, attempt)
    assert calls == [1, 2, 3]
    assert sleeps == [0.1, 0.2]


def test_non_retryable_error_is_raised_at_once():
    sleeps = Sleeps()
    calls: list[int] = []

    def attempt(number: int) -> None:
        calls.append(number)
        raise service_error(status=403, body=error_xml("AccessDenied"), method="GET", bucket="b", key=None)

    with pytest.raises(KS3AuthError):
        call_with_retry(RetryPolicy(sleep=sleeps), attempt)
    assert calls == [1] and sleeps == []


def test_policy_rejects_nonsense():
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


# --- the wrapper inside the client, over a scripted transport ------------------------------------


_servers: list[ScriptedServer] = []


@pytest.fixture(autouse=True)
def _stop_scripted_servers():
    yield
    while _servers:
        _servers.pop().close()


def Script(*replies) -> ScriptedServer:  # noqa: N802 - reads like the class it returns
    """A scripted server, stopped when the test ends."""
    server = ScriptedServer(*replies)
    _servers.append(server)
    return server


def ok_put(request: Seen) -> Reply:
    body = request.body
    return Reply(
        200,
        {
            "ETag": f'"{hashlib.md5(body).hexdigest()}"',
            "x-kss-checksum-crc64ecma": str(crc64(body)),
            "x-kss-request-id": "r-ok",
        },
    )


def status(code: int, body: bytes = b"") -> Reply:
    return Reply(code, {"x-kss-request-id": f"r{code}"}, body)


def make_client(script: ScriptedServer, attempts: int = 4, timeout: float = 10.0) -> tuple[Client, Sleeps]:
    sleeps = Sleeps()
    config = ClientConfig(
        endpoint=script.endpoint,
        access_key="AK",
        secret_key=SECRET,
        timeout=timeout,
        retry=RetryPolicy(max_attempts=attempts, base_delay=0.01, sleep=sleeps),
    )
    return Client(config), sleeps


def test_503_then_200_put_is_retried_with_body_rewound_and_fresh_signature(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"0123456789" * 300_000)  # 3 MB: several chunks
    script = Script(status(503, error_xml("SlowDown")), DROP, ok_put)
    client, sleeps = make_client(script)
    result = client.put_object("bk", "dir/f.bin", FileRangeBody(path, offset=10, length=2_000_000))
    expected = path.read_bytes()[10:2_000_010]
    assert len(script.requests) == 3 and len(sleeps) == 2
    assert script.bodies[0] == expected and script.bodies[2] == expected  # re-sent from the first byte
    assert result.etag == hashlib.md5(expected).hexdigest() and result.crc64 == crc64(expected)
    assert all(r.headers["Content-MD5"] for r in script.requests)
    assert all(r.headers["Authorization"].startswith("KSS AK:") for r in script.requests)
    assert all(r.headers["Accept-Encoding"] == "identity" for r in script.requests)


@pytest.mark.parametrize("code", [408, 429, 500, 502, 503, 504])
def test_retryable_statuses(code):
    script = Script(status(code), ok_put)
    client, sleeps = make_client(script)
    client.put_object("bk", "k", b"x")
    assert len(script.requests) == 2


def test_request_timeout_code_on_400_is_retried():
    script = Script(status(400, error_xml("RequestTimeout")), ok_put)
    client, _ = make_client(script)
    client.put_object("bk", "k", b"abc")
    assert len(script.requests) == 2


def test_timeouts_are_retried_then_surface_as_transport_error():
    script = Script(*[Stall(2.0)] * 3)
    client, sleeps = make_client(script, attempts=3, timeout=0.2)
    with pytest.raises(KS3TransportError, match="ReadTimeout") as info:
        client.head_object("bk", "k")
    assert len(script.requests) == 3 and len(sleeps) == 2
    assert SECRET not in str(info.value)


def test_client_errors_are_not_retried_and_never_show_the_secret():
    script = Script(status(403, error_xml("SignatureDoesNotMatch", "The request signature we calculated...")))
    client, sleeps = make_client(script)
    with pytest.raises(KS3AuthError) as info:
        client.put_object("bk", "a b.txt", b"data")
    assert len(script.requests) == 1 and sleeps == []
    text = str(info.value)
    assert "PUT bk/a b.txt: HTTP 403 SignatureDoesNotMatch" in text and "rid" in text
    assert SECRET not in text and SECRET not in repr(client.config) and SECRET not in repr(client)


def test_etag_mismatch_is_an_integrity_error_after_retries():
    bad = Reply(200, {"ETag": '"00000000000000000000000000000000"'})
    script = Script(bad, bad)
    client, _ = make_client(script, attempts=2)
    with pytest.raises(KS3IntegrityError, match="ETag"):
        client.put_object("bk", "k", b"data")
    assert len(script.requests) == 2


def test_crc_mismatch_is_an_integrity_error():
    def wrong_crc(request: Seen) -> Reply:
        return Reply(
            200, {"ETag": f'"{hashlib.md5(request.body).hexdigest()}"', "x-kss-checksum-crc64ecma": "12345"}
        )

    client, _ = make_client(Script(wrong_crc), attempts=1)
    with pytest.raises(KS3IntegrityError, match="CRC-64"):
        client.upload_part("bk", "k", "u1", 1, b"data")


def test_missing_crc_header_is_accepted():
    def no_crc(request: Seen) -> Reply:
        return Reply(200, {"ETag": f'"{hashlib.md5(request.body).hexdigest()}"'})

    client, _ = make_client(Script(no_crc), attempts=1)
    assert client.put_object("bk", "k", b"data").crc64 is None


def test_file_that_shrinks_while_sending_is_not_retried(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    body = FileRangeBody(path)
    body.content_md5()
    path.write_bytes(b"x" * 10)
    script = Script(ok_put, ok_put)
    client, _ = make_client(script)
    with pytest.raises(SourceChangedError, match="changed while being read"):
        client.put_object("bk", "k", body)


def test_200_with_error_document_on_complete_is_retried():
    complete_ok = (
        b'<CompleteMultipartUploadResult><Bucket>bk</Bucket><Key>k</Key><ETag>"e-1"</ETag>'
        b"<ChecksumCRC64ECMA>7</ChecksumCRC64ECMA></CompleteMultipartUploadResult>"
    )
    script = Script(status(200, error_xml("InternalError")), status(200, complete_ok))
    client, _ = make_client(script)
    result = client.complete_multipart("bk", "k", "u1", [(1, "aa" * 16)], expected_crc64=7)
    assert (result.etag, result.crc64) == ("e-1", 7)
    assert len(script.requests) == 2
    assert b'<ETag>"' + b"aa" * 16 + b'"</ETag>' in script.bodies[1]


def _head_reply(etag: str, crc: int | None):
    headers = {"ETag": f'"{etag}"', "Content-Length": "10"}
    if crc is not None:
        headers["x-kss-checksum-crc64ecma"] = str(crc)
    return Reply(200, headers)


PART_ETAGS = [(1, hashlib.md5(b"p1").hexdigest()), (2, hashlib.md5(b"p2").hexdigest())]


def _multipart_etag() -> str:
    return hashlib.md5(b"".join(bytes.fromhex(e) for _, e in PART_ETAGS)).hexdigest() + "-2"


def test_retried_complete_that_finds_upload_gone_checks_the_object():
    script = Script(
        DROP,
        status(404, error_xml("NoSuchUpload")),
        _head_reply(_multipart_etag(), 99),
    )
    client, _ = make_client(script)
    result = client.complete_multipart("bk", "k", "u1", PART_ETAGS, expected_crc64=99)
    assert (result.etag, result.crc64) == (_multipart_etag(), 99)
    assert [r.method for r in script.requests] == ["POST", "POST", "HEAD"]


@pytest.mark.parametrize(
    ("etag", "crc"), [("0" * 32 + "-2", 99), (None, 98)], ids=["other-etag", "other-crc"]
)
def test_retried_complete_with_a_different_object_raises(etag, crc):
    script = Script(
        DROP,
        status(404, error_xml("NoSuchUpload")),
        _head_reply(etag or _multipart_etag(), crc),
    )
    client, _ = make_client(script)
    with pytest.raises(NoSuchUpload, match="not the expected one"):
        client.complete_multipart("bk", "k", "u1", PART_ETAGS, expected_crc64=99)


def test_first_complete_no_such_upload_is_raised_without_head():
    script = Script(status(404, error_xml("NoSuchUpload")))
    client, _ = make_client(script)
    with pytest.raises(NoSuchUpload):
        client.complete_multipart("bk", "k", "u1", PART_ETAGS)
    assert len(script.requests) == 1


def test_retried_abort_that_finds_upload_gone_is_success():
    script = Script(DROP, status(404, error_xml("NoSuchUpload")))
    client, _ = make_client(script)
    client.abort_multipart("bk", "k", "u1")
    assert len(script.requests) == 2


def test_download_restarts_from_scratch_after_a_broken_body(tmp_path):
    data = bytes(range(256)) * 100

    script = Script(
        Reply(200, {"Content-Length": str(len(data))}, data[:1000], close=True),  # connection lost mid-body
        Reply(200, {"x-kss-checksum-crc64ecma": str(crc64(data))}, data),
    )
    client, _ = make_client(script)
    target = tmp_path / "out"
    info = client.download_to_file("bk", "k", target)
    assert target.read_bytes() == data and info.crc64 == crc64(data)


def test_get_with_wrong_crc_raises_integrity_error():
    data = b"payload"
    script = Script(Reply(200, {"x-kss-checksum-crc64ecma": "1"}, data))
    client, _ = make_client(script)
    with client.get_object("bk", "k") as response, pytest.raises(KS3IntegrityError, match="CRC-64"):
        response.read()


def test_bytes_body_is_rewindable():
    body = BytesBody(memoryview(b"abc" * 1_000_000))
    assert b"".join(body.chunks()) == b"".join(body.chunks()) == b"abc" * 1_000_000
    assert body.content_md5() == hashlib.md5(b"abc" * 1_000_000).digest()


def test_retried_create_bucket_that_finds_it_existing_is_success():
    script = Script(DROP, status(409, error_xml("BucketAlreadyExists")), status(200))
    client, _ = make_client(script)
    client.create_bucket("bk")
    assert [r.method for r in script.requests] == ["PUT", "PUT", "HEAD"]


def test_first_create_bucket_conflict_is_raised():
    client, _ = make_client(Script(status(409, error_xml("BucketAlreadyExists"))))
    with pytest.raises(BucketAlreadyExists):
        client.create_bucket("bk")


def test_wire_format_of_a_put():
    script = Script(ok_put)
    client, _ = make_client(script)
    client.put_object("bk", "dir/a b+c.txt", b"abc", metadata={"Author": "alice"}, acl="public-read")
    request = script.requests[0]
    assert request.target == "/bk/dir/a%20b%2Bc.txt"
    assert request.headers["Content-MD5"] == "kAFQmDzST7DWlj99KOF/cg=="
    assert request.headers["Content-Length"] == "3"
    assert request.headers["Content-Type"] == "application/octet-stream"
    assert request.headers["x-kss-meta-author"] == "alice" and request.headers["x-kss-acl"] == "public-read"
    assert "Transfer-Encoding" not in request.headers
    assert email.utils.parsedate_to_datetime(request.headers["Date"]).tzinfo is not None


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"bad name": "v"}, "token"),
        ({"name\n": "v"}, "token"),
        ({"ok": "caf\u00e9"}, "printable"),
        ({"ok": "a\r\nX-Evil: 1"}, "printable"),
        ({"ok": "\x01"}, "printable"),
        ({"ok": "trailing\n"}, "printable"),
    ],
)
def test_bad_metadata_is_refused_before_sending(metadata, message):
    script = Script()
    client, _ = make_client(script)
    with pytest.raises(ValueError, match=message):
        client.put_object("bk", "k", b"x", metadata=metadata)
    assert script.requests == []


def test_error_body_with_unknown_encoding_falls_back_to_the_status():
    err = service_error(
        status=503, body=b'<?xml version="1.0" encoding="nope"?><Error/>', method="GET", bucket="b", key="k"
    )
    assert (err.code, err.retryable) == ("ServiceUnavailable", True)


@pytest.mark.parametrize(
    ("headers", "size", "crc"),
    [
        ({"Content-Length": "\u00b2", "x-kss-checksum-crc64ecma": "+5"}, 0, None),
        ({"Content-Length": "10", "x-kss-checksum-crc64ecma": str(1 << 64)}, 10, None),
        ({"Content-Range": "bytes 0-1/\u0662", "Content-Length": "2"}, 2, None),
        ({"Content-Range": "bytes 0-1/99", "x-kss-checksum-crc64ecma": " 7 "}, 99, 7),
    ],
)
def test_object_headers_accept_only_plain_decimals(headers, size, crc):
    info = object_info("k", headers)
    assert (info.size, info.crc64) == (size, crc)


def test_unparseable_crc_on_upload_is_an_integrity_error():
    def weird(request: Seen) -> Reply:
        etag = f'"{hashlib.md5(request.body).hexdigest()}"'
        return Reply(200, [("ETag", etag), ("x-kss-checksum-crc64ecma", "\u0661".encode())])

    client, _ = make_client(Script(weird), attempts=1)
    with pytest.raises(KS3IntegrityError, match="unparseable"):
        client.put_object("bk", "k", b"data")


# --- throttling: the retry line, Retry-After, the request limit ------------------------------------


def test_a_slowdown_with_retry_after_is_waited_logged_and_shrinks_the_request_limit(caplog):
    throttled = Reply(503, {"x-kss-request-id": "r503", "Retry-After": "3"}, error_xml("SlowDown"))
    script = Script(throttled, ok_put)
    client, sleeps = make_client(script)
    before = client._transport.limit.allowed
    with caplog.at_level("INFO", logger="ks3sync.ks3"):
        client.put_object("bk", "a/b.txt", b"data")
    assert sleeps == [3.0]  # at least what the service asked for (the backoff alone is ~0.01 s)
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("retry")] == [
        "retry 2/4 PUT bk/a/b.txt: 503 SlowDown (Retry-After 3 s)"
    ]
    limit = client._transport.limit
    assert limit.throttles == 1 and limit.allowed < before
    client.close()


def test_every_retry_is_logged_with_its_reason(caplog):
    script = Script(DROP, status(500, error_xml("InternalError")), ok_put)
    client, _ = make_client(script)
    with caplog.at_level("INFO", logger="ks3sync.ks3"):
        client.put_object("bk", "k", b"data")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("retry")]
    assert lines[0].startswith("retry 2/4 PUT bk/k: RemoteProtocolError")
    assert lines[1] == "retry 3/4 PUT bk/k: 500 InternalError"
    # An internal error is retried, but it is not the service asking for less: the limit keeps.
    assert client._transport.limit.throttles == 0
    client.close()


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("0", 0.0),
        ("7", 7.0),
        (" 12 ", 12.0),
        ("100000", 60.0),
        ("-1", None),
        ("1.5", None),
        ("soon", None),
        ("²", None),
        ("", None),
    ],
)
def test_retry_after_in_seconds_is_bounded_and_junk_is_ignored(value, seconds):
    from ks3sync.ks3.transport import retry_after_seconds

    assert retry_after_seconds(value) == seconds


def test_retry_after_as_a_date_counts_from_now():
    from ks3sync.ks3.transport import retry_after_seconds

    when = email.utils.formatdate(1_000_020, usegmt=True)
    assert retry_after_seconds(when, now=lambda: 1_000_000.0) == 20.0
    assert retry_after_seconds(email.utils.formatdate(999_000, usegmt=True), now=lambda: 1_000_000.0) == 0.0


def test_a_retry_after_on_an_answer_that_is_not_throttling_is_not_obeyed():
    error = service_error(
        status=500, body=error_xml("InternalError"), method="GET", bucket="b", key="k", retry_after=30.0
    )
    assert error.retryable and not error.throttling and error.retry_after is None


def test_a_timeout_is_a_throttling_signal_but_a_refused_connection_is_not():
    timed_out = KS3TransportError("GET", "b/k", "ReadTimeout: timed out", timed_out=True)
    refused = KS3TransportError("GET", "b/k", "ConnectError: refused")
    assert timed_out.throttling and not refused.throttling and timed_out.retryable and refused.retryable
