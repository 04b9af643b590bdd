"""The connection pool (ks3sync/ks3/http11.py) over real loopback sockets: keep-alive reuse, what is never
reused (a connection the server closed, a response left half-read, ``Connection: close``), the
``max_connections`` bound, timeouts, and errors of a body's own source passing through unchanged."""

from __future__ import annotations

import hashlib
import shutil
import ssl
import subprocess
import threading

import pytest
from scripted_http import DROP, Early, Raw, Reply, ScriptedServer, Seen, Stall

from ks3sync.ks3 import (
    Client,
    ClientConfig,
    FileRangeBody,
    KS3AuthError,
    KS3TransportError,
    RetryPolicy,
    SourceChangedError,
)
from ks3sync.ks3.checksums import crc64
from ks3sync.ks3.http11 import (
    ConnectionPool,
    Headers,
    HttpResponse,
    HttpTransportError,
    encode_head,
    split_netloc,
)


def ok(request: Seen) -> Reply:
    return Reply(200, {"ETag": f'"{hashlib.md5(request.body).hexdigest()}"', "x-kss-checksum-crc64ecma":
                       str(crc64(request.body, 0))}, b"" if request.method != "GET" else b"g" * 1000)


@pytest.fixture()
def servers():
    started: list[ScriptedServer] = []

    def start(*replies, tls: ssl.SSLContext | None = None) -> ScriptedServer:
        server = ScriptedServer(*replies, tls=tls)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


def client_for(server: ScriptedServer, **options) -> Client:
    options.setdefault("retry", RetryPolicy(max_attempts=1))
    return Client(ClientConfig(endpoint=server.endpoint, access_key="AK", secret_key="SK", **options))


def test_sequential_requests_share_one_connection(servers) -> None:
    server = servers(ok, ok, ok)
    with client_for(server) as client:
        for n in range(3):
            client.put_object("bk", f"k{n}", b"data")
    assert server.connections_opened == 1 and len(server.requests) == 3


def test_a_connection_the_server_closed_is_not_reused(servers, wait_until) -> None:
    # The server answers, then closes without saying so (no "Connection: close"): an idle keep-alive
    # connection the peer dropped. The next request must go out on a new connection, not fail.
    server = servers(Reply(200, {"x-kss-request-id": "a"}, close=True), Reply(200))
    with client_for(server) as client:
        assert client.head_bucket("bk")
        wait_until(lambda: server.connections_closed == 1, timeout=5)
        assert client.head_bucket("bk")  # one attempt only: a stale connection would fail here
    assert server.connections_opened == 2


def test_connection_close_answers_are_not_reused(servers) -> None:
    server = servers(Reply(200, {"Connection": "close"}), Reply(200))
    with client_for(server) as client:
        assert client.head_bucket("bk") and client.head_bucket("bk")
    assert server.connections_opened == 2


def test_a_half_read_response_closes_its_connection(servers) -> None:
    server = servers(Reply(200, {}, b"x" * 200_000), ok)
    with client_for(server) as client:
        with client.get_object("bk", "big") as response:
            first = next(response.iter_bytes(1000))
            assert first == b"x" * 1000
        client.put_object("bk", "after", b"data")  # would read the rest of the GET body as its answer
    assert server.connections_opened == 2


def test_max_connections_bounds_requests_in_flight(servers) -> None:
    server = servers(Reply(200, {}, b"x" * 10), ok)
    with client_for(server, max_connections=1, timeout=0.3) as client:
        held = client.get_object("bk", "held")  # not read: keeps the only connection
        with pytest.raises(KS3TransportError, match="pool full"):
            client.put_object("bk", "k", b"data")
        assert held.read() == b"x" * 10  # reading it to the end hands the connection back
        client.put_object("bk", "k", b"data")
    assert server.connections_opened == 1


def test_a_stalled_answer_times_out(servers) -> None:
    server = servers(Stall(3.0))
    with client_for(server, timeout=0.2) as client, pytest.raises(KS3TransportError, match="TimeoutError"):
        client.head_object("bk", "k")


def test_connect_refused_is_a_transport_error(servers) -> None:
    server = servers()
    server.close()  # the port is free again: nobody listens
    with client_for(server) as client, pytest.raises(KS3TransportError, match="ConnectionRefused"):
        client.head_bucket("bk")


def test_lost_answer_is_a_transport_error_and_the_next_request_reconnects(servers) -> None:
    server = servers(DROP, Reply(200))
    with client_for(server) as client:
        with pytest.raises(KS3TransportError, match="RemoteDisconnected"):
            client.head_bucket("bk")
        assert client.head_bucket("bk")
    assert server.connections_opened == 2


def test_a_file_that_shrinks_mid_stream_raises_its_own_error_not_a_transport_error(servers, tmp_path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"z" * (3 * 1024 * 1024))  # streamed in 1 MiB chunks, not sent inline
    body = FileRangeBody(path)
    body.content_md5()

    class Shrinking:
        length = body.length

        def content_md5(self) -> bytes:
            return body.content_md5()

        def chunks(self):
            chunks = body.chunks()
            yield next(chunks)
            path.write_bytes(b"z" * 10)
            yield from chunks

    server = servers(ok)
    with client_for(server, retry=RetryPolicy(max_attempts=3, sleep=lambda _s: None)) as client:
        with pytest.raises(SourceChangedError):
            client.put_object("bk", "k", Shrinking())
    assert server.requests == []  # the body never arrived whole: the server never saw a request


def test_an_os_error_from_a_body_passes_through_unchanged(servers) -> None:
    class Unreadable:
        length = 300 * 1024

        def content_md5(self) -> bytes:
            return b"\0" * 16

        def chunks(self):
            yield b"a" * 1024
            raise PermissionError("source file became unreadable")

    server = servers(ok)
    with client_for(server) as client, pytest.raises(PermissionError):
        client.put_object("bk", "k", Unreadable())


def test_threads_share_the_pool(servers) -> None:
    server = servers(*[ok] * 40)
    errors: list[BaseException] = []
    with client_for(server, max_connections=4) as client:

        def work(n: int) -> None:
            try:
                for i in range(5):
                    client.put_object("bk", f"{n}/{i}", f"{n}-{i}".encode())
            except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert errors == [] and len(server.requests) == 40
    assert server.connections_opened <= 4


def test_headers_ignore_case_and_join_repeats() -> None:
    headers = Headers.from_pairs([("ETag", '"a"'), ("X-Kss-Meta-A", "1"), ("x-kss-meta-a", "2")])
    assert headers["etag"] == headers.get("ETAG") == '"a"'
    assert headers.get("x-kss-meta-a") == "1, 2" and "X-KSS-META-A" in headers
    assert headers.get("missing") is None and headers.get("missing", "") == ""


def test_closed_pool_refuses_requests() -> None:
    pool = ConnectionPool("http", timeout=1.0, connect_timeout=1.0, max_connections=2)
    pool.close()
    with pytest.raises(HttpTransportError, match="closed"):
        pool.request("GET", "127.0.0.1:9", "/", [])


def test_only_http_and_https() -> None:
    with pytest.raises(ValueError, match="scheme"):
        ConnectionPool("ftp", timeout=1.0, connect_timeout=1.0, max_connections=1)


# --- framing of responses (RFC 9112 section 6.3), over the socket ---------------------------------


def pool_for(server: ScriptedServer, timeout: float = 5.0) -> ConnectionPool:
    return ConnectionPool("http", timeout=timeout, connect_timeout=timeout, max_connections=2)


def netloc(server: ScriptedServer) -> str:
    return server.endpoint.partition("://")[2]


def exchange(server: ScriptedServer, method: str = "GET") -> tuple[HttpResponse, ConnectionPool]:
    pool = pool_for(server)
    return pool.request(method, netloc(server), "/bk/k", [("Accept", "*/*")]), pool


@pytest.mark.parametrize("chunk", [1, 7, 1 << 20])
def test_chunked_body_with_extensions_and_trailers(servers, chunk: int) -> None:
    wire = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5;name=value\r\nhello\r\n1A\r\n" + b"z" * 26 + b"\r\n0\r\nX-Trailer: t\r\n\r\n")
    server = servers(Raw(wire, close=False), Reply(204))
    response, pool = exchange(server)
    assert b"".join(response.iter_raw(chunk)) == b"hello" + b"z" * 26
    assert pool.request("DELETE", netloc(server), "/bk/k", []).read() == b""  # same connection, next answer
    assert server.connections_opened == 1
    pool.close()


@pytest.mark.parametrize(
    "wire",
    [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
     b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY0\r\n\r\n",
     b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc"],
    ids=["bad-size", "no-crlf-after-data", "cut-inside-chunk"],
)
def test_broken_chunked_bodies_are_transport_errors(servers, wire: bytes) -> None:
    server = servers(Raw(wire))
    response, pool = exchange(server)
    with pytest.raises(HttpTransportError, match="Chunk|IncompleteRead"):
        response.read()
    pool.close()


def test_body_until_close_when_no_length_is_given(servers) -> None:
    server = servers(Raw(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it, then EOF"))
    response, pool = exchange(server)
    assert response.read() == b"all of it, then EOF"
    pool.close()


@pytest.mark.parametrize("pieces", [2, 5, 40])
def test_a_head_arriving_in_pieces_is_read_the_same(servers, pieces: int) -> None:
    wire = (b"HTTP/1.1 200 OK\r\nETag: \"abc\"\r\nX-Long: first\r\n second\r\nContent-Length: 4\r\n\r\nbody")
    server = servers(Raw(wire, close=False, pieces=pieces), Reply(200, {}, b"next"))
    response, pool = exchange(server)
    assert (response.status_code, response.headers["etag"], response.headers["x-long"]) == (200, '"abc"', "first second")
    assert response.read() == b"body"
    assert pool.request("GET", netloc(server), "/", []).read() == b"next"
    pool.close()


def test_interim_100_continue_is_skipped(servers) -> None:
    server = servers(Raw(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"))
    response, pool = exchange(server)
    assert (response.status_code, response.read()) == (201, b"ok")
    pool.close()


def test_head_and_204_have_no_body_whatever_the_headers_say(servers) -> None:
    server = servers(Reply(200, {"Content-Length": "1000"}), Raw(b"HTTP/1.1 204 No Content\r\n\r\n", close=False),
                     Reply(200, {}, b"after"))
    pool = pool_for(server)
    head = pool.request("HEAD", netloc(server), "/bk/k", [])
    assert (head.headers["content-length"], head.read()) == ("1000", b"")
    assert pool.request("DELETE", netloc(server), "/bk/k", []).read() == b""
    assert pool.request("GET", netloc(server), "/bk/k", []).read() == b"after"
    assert server.connections_opened == 1
    pool.close()


def test_folded_and_repeated_headers(servers) -> None:
    server = servers(Raw(b"HTTP/1.1 200 OK\r\nX-Long: first\r\n  second\r\nX-Rep: a\r\nx-rep: b\r\n"
                         b"Content-Length: 0\r\n\r\n"))
    response, pool = exchange(server)
    assert response.headers["x-long"] == "first second" and response.headers["X-REP"] == "a, b"
    pool.close()


def test_http_1_0_answers_close_unless_kept_alive(servers) -> None:
    server = servers(Raw(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\na", close=False), Reply(200, {}, b"b"))
    pool = pool_for(server)
    assert pool.request("GET", netloc(server), "/", []).read() == b"a"
    assert pool.request("GET", netloc(server), "/", []).read() == b"b"
    assert server.connections_opened == 2  # the HTTP/1.0 connection was not reused
    pool.close()


@pytest.mark.parametrize(
    ("wire", "error"),
    [(b"SSH-2.0-OpenSSH\r\n\r\n", "BadStatusLine"),
     (b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\nx", "BadContentLength"),
     (b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nx", "BadContentLength"),
     (b"HTTP/1.1 200 OK\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\nx", "BadContentLength"),
     (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "BadHeaderLine"),
     (b"HTTP/1.1 200 OK\r\nContent-Len", "IncompleteRead"),
     (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "IncompleteRead"),
     (b"HTTP/1.1 200 OK\r\nX: " + b"a" * (70 * 1024) + b"\r\n\r\n", "LineTooLong")],
    ids=["not-http", "two-lengths", "signed-length", "endless-length", "no-colon", "cut-head", "cut-body", "long-line"],
)
def test_malformed_answers_are_transport_errors(servers, wire: bytes, error: str) -> None:
    server = servers(Raw(wire))
    pool = pool_for(server)
    with pytest.raises(HttpTransportError, match=error):
        pool.request("GET", netloc(server), "/", []).read()
    pool.close()


def test_equal_repeated_content_lengths_are_one_length(servers) -> None:
    server = servers(Raw(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"))
    response, pool = exchange(server)
    assert response.read() == b"abc"
    pool.close()


@pytest.mark.parametrize(
    ("target", "headers", "message"),
    [("/a b", [], "target"), ("/a\r\nX: 1", [], "target"), ("/k", [("X-A", "v\r\nX-Evil: 1")], "CR, LF"),
     ("/k", [("X-A", "v\x00")], "CR, LF"), ("/k", [("Bad Name", "v")], "token"), ("/k", [("X:Y", "v")], "token")],
)
def test_requests_that_would_change_meaning_on_the_wire_are_refused(target, headers, message) -> None:
    with pytest.raises(ValueError, match=message):
        encode_head("GET", "h", target, headers)


def test_request_head_layout() -> None:
    head = encode_head("PUT", "127.0.0.1:9", "/bk/a%20b?acl", [("Content-Length", "3"), ("x-kss-acl", "private")])
    assert head == (b"PUT /bk/a%20b?acl HTTP/1.1\r\nHost: 127.0.0.1:9\r\nContent-Length: 3\r\n"
                    b"x-kss-acl: private\r\n\r\n")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("h", ("h", 80)), ("h:9000", ("h", 9000)), ("[::1]", ("::1", 80)), ("[::1]:8080", ("::1", 8080)),
     ("b.h.example:1", ("b.h.example", 1))],
)
def test_split_netloc(text, expected) -> None:
    assert split_netloc(text, 80) == expected


# --- https ------------------------------------------------------------------------------------------


def _self_signed(tmp_path, san: str) -> tuple[str, str]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl command not available to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=ks3sync-test", "-addext", f"subjectAltName={san}"],
        check=True, capture_output=True, timeout=60,
    )
    return str(cert), str(key)


def _tls_server(servers, tmp_path, san: str, *replies) -> tuple[ScriptedServer, str]:
    cert, key = _self_signed(tmp_path, san)
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(cert, key)
    return servers(*replies, tls=server_side), cert


def test_https_exchanges_reuse_one_tls_connection(servers, tmp_path) -> None:
    server, cert = _tls_server(servers, tmp_path, "IP:127.0.0.1", ok, Reply(200, {}, b"x" * 100_000))
    trusting = ssl.create_default_context(cafile=cert)
    pool = ConnectionPool("https", timeout=5.0, connect_timeout=5.0, max_connections=2, ssl_context=trusting)
    try:
        first = pool.request("PUT", netloc(server), "/bk/k", [("Content-Length", "4")], b"data")
        assert first.status_code == 200 and first.read() == b""
        assert pool.request("GET", netloc(server), "/bk/k", []).read() == b"x" * 100_000
    finally:
        pool.close()
    assert server.requests[0].body == b"data" and server.connections_opened == 1


def test_https_refuses_an_untrusted_certificate(servers, tmp_path) -> None:
    server, _cert = _tls_server(servers, tmp_path, "IP:127.0.0.1", ok)
    pool = ConnectionPool("https", timeout=5.0, connect_timeout=5.0, max_connections=1)  # the system trust store
    with pytest.raises(HttpTransportError, match="CERTIFICATE_VERIFY_FAILED"):
        pool.request("GET", netloc(server), "/", [])
    pool.close()
    assert server.requests == []


def test_https_checks_the_host_name(servers, tmp_path) -> None:
    server, cert = _tls_server(servers, tmp_path, "DNS:other.example", ok)
    pool = ConnectionPool("https", timeout=5.0, connect_timeout=5.0, max_connections=1,
                          ssl_context=ssl.create_default_context(cafile=cert))
    with pytest.raises(HttpTransportError, match="CERTIFICATE_VERIFY_FAILED|match"):
        pool.request("GET", netloc(server), "/", [])
    pool.close()
    assert server.requests == []


def test_an_early_error_answer_to_a_large_upload_is_heard(servers, tmp_path) -> None:
    # The server refuses after the head, closing with the body unread; the client is mid-stream
    # (32 MiB does not fit in loopback socket buffers) when its sends start failing.
    path = tmp_path / "big"
    path.write_bytes(b"b" * (32 * 1024 * 1024))
    denied = Reply(403, {"x-kss-request-id": "early", "Connection": "close"},
                   b"<Error><Code>AccessDenied</Code><Message>no</Message><RequestId>early</RequestId></Error>")
    server = servers(Early(denied), ok)
    with client_for(server) as client:
        with pytest.raises(KS3AuthError, match="AccessDenied"):
            client.put_object("bk", "k", FileRangeBody(path))
        client.put_object("bk", "small", b"data")  # a fresh connection carries on
    assert server.connections_opened == 2
