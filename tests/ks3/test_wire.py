"""The HTTP stack under the client (ks3sync/ks3/wire.py on httpcore) over real loopback sockets: keep-alive
reuse, what is never reused (a connection the server closed, a response left half-read, ``Connection:
close``, one idle past its expiry), the ``max_connections`` bound, timeouts, the Host value, response
framing (RFC 9112 section 6.3), TLS, an early answer to an upload, and errors of a body's own source
passing through unchanged."""

from __future__ import annotations

import hashlib
import ssl

import pytest

from ks3sync.ks3 import (
    Client,
    ClientConfig,
    FileRangeBody,
    KS3AuthError,
    KS3CertificateError,
    KS3TransportError,
    RetryPolicy,
    SourceChangedError,
)
from ks3sync.ks3.checksums import crc64
from ks3sync.ks3.wire import Headers, check_host
from tests.ks3.scripted_http import DROP, Early, Raw, Reply, ScriptedServer, Seen, Stall, client_for
from tests.threadkit import run_together
from tests.tlskit import Pair, make_ca, make_cert, self_signed


def ok(request: Seen) -> Reply:
    return Reply(
        200,
        {
            "ETag": f'"{hashlib.md5(request.body).hexdigest()}"',
            "x-kss-checksum-crc64ecma": str(crc64(request.body, 0)),
        },
        b"" if request.method != "GET" else b"g" * 1000,
    )


def get(server: ScriptedServer, **options) -> bytes:
    with client_for(server, **options) as client, client.get_object("bk", "k") as response:
        return response.read()


def test_sequential_requests_share_one_connection(servers) -> None:
    server = servers(ok, ok, ok)
    with client_for(server) as client:
        for n in range(3):
            client.put_object("bk", f"k{n}", b"data")
    assert server.connections_opened == 1 and len(server.requests) == 3


def test_an_idle_connection_past_its_expiry_is_not_reused(servers) -> None:
    server = servers(ok, ok)
    with client_for(server, keepalive_expiry=0) as client:
        client.put_object("bk", "a", b"data")
        client.put_object("bk", "b", b"data")
    assert server.connections_opened == 2


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
    # Two request slots (limiter.py), so that the wait is for the pool's one connection.
    with client_for(server, max_connections=1, max_in_flight=2, timeout=0.3) as client:
        held = client.get_object("bk", "held")  # not read: keeps the only connection
        with pytest.raises(KS3TransportError, match="PoolTimeout"):
            client.put_object("bk", "k", b"data")
        assert held.read() == b"x" * 10  # reading it to the end hands the connection back
        client.put_object("bk", "k", b"data")
    assert server.connections_opened == 1


def test_a_stalled_answer_times_out(servers) -> None:
    server = servers(Stall(3.0))
    with client_for(server, timeout=0.2) as client, pytest.raises(KS3TransportError, match="ReadTimeout"):
        client.head_object("bk", "k")


def test_connect_refused_is_a_transport_error(servers) -> None:
    server = servers()
    server.close()  # the port is free again: nobody listens
    with client_for(server) as client, pytest.raises(KS3TransportError, match="ConnectError"):
        client.head_bucket("bk")


def test_lost_answer_is_a_transport_error_and_the_next_request_reconnects(servers) -> None:
    server = servers(DROP, Reply(200))
    with client_for(server) as client:
        with pytest.raises(KS3TransportError, match="RemoteProtocolError"):
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
    with client_for(server, max_connections=4) as client:

        def work(n: int) -> None:
            for i in range(5):
                client.put_object("bk", f"{n}/{i}", f"{n}-{i}".encode())

        errors = run_together(8, work, timeout=30)
    assert errors == [] and len(server.requests) == 40
    assert server.connections_opened <= 4


def test_headers_ignore_case_and_join_repeats() -> None:
    headers = Headers.from_pairs([("ETag", '"a"'), ("X-Kss-Meta-A", "1"), ("x-kss-meta-a", "2")])
    assert headers["etag"] == headers.get("ETAG") == '"a"'
    assert headers.get("x-kss-meta-a") == "1, 2" and "X-KSS-META-A" in headers
    assert headers.get("missing") is None and headers.get("missing", "") == ""


def test_a_closed_client_refuses_requests(servers) -> None:
    server = servers(ok)
    client = client_for(server)
    client.close()
    with pytest.raises(RuntimeError, match="closed"):
        client.head_bucket("bk")
    assert server.requests == []


# --- the Host value and the request line ------------------------------------------------------------


@pytest.mark.parametrize("host", ["ks3-cn-beijing.ksyuncs.com", "127.0.0.1", "::1", "my-bucket.example", "a"])
def test_host_names_and_addresses_are_accepted(host: str) -> None:
    check_host(host)


@pytest.mark.parametrize(
    "host", ["bad bucket.example", "a/b.example", "x@evil.example", "h\r\nX: 1", "", ".x", "é.example"]
)
def test_a_host_value_that_is_not_a_host_is_refused(host: str) -> None:
    with pytest.raises(ValueError, match="not a valid host name"):
        check_host(host)


def test_a_bucket_that_cannot_be_a_host_name_is_refused_before_connecting() -> None:
    # Virtual-host style puts the bucket into the Host value: it must stay a host name.
    config = ClientConfig(
        endpoint="http://ks3.example.invalid:9",
        access_key="AK",
        secret_key="SK",
        path_style=False,
        retry=RetryPolicy(max_attempts=1),
    )
    with Client(config) as client, pytest.raises(ValueError, match="not a valid host name"):
        client.head_object("bad/bucket", "k")


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"X-A": "v\r\nX-Evil: 1"}, "cannot be sent"),
        ({"X-A": "v\x00"}, "cannot be sent"),
        ({"Bad Name": "v"}, "cannot be sent"),
    ],
)
def test_requests_that_would_change_meaning_on_the_wire_are_refused(servers, headers, message) -> None:
    server = servers(ok)
    with client_for(server) as client, pytest.raises(ValueError, match=message):
        client.put_object("bk", "k", b"x", headers=headers)
    assert server.requests == []


# --- framing of responses (RFC 9112 section 6.3), over the socket -----------------------------------


@pytest.mark.parametrize("chunk", [1, 7, 1 << 20])
def test_chunked_body_with_extensions_and_trailers(servers, chunk: int) -> None:
    wire = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\n1A\r\n" + b"z" * 26 + b"\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    server = servers(Raw(wire, close=False), Reply(204))
    with client_for(server) as client:
        with client.get_object("bk", "k") as response:
            assert b"".join(response.iter_bytes(chunk)) == b"hello" + b"z" * 26
        client.delete_object("bk", "k")  # same connection, next answer
    assert server.connections_opened == 1


@pytest.mark.parametrize(
    "wire",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc",
    ],
    ids=["bad-size", "no-crlf-after-data", "cut-inside-chunk"],
)
def test_broken_chunked_bodies_are_transport_errors(servers, wire: bytes) -> None:
    server = servers(Raw(wire))
    with pytest.raises(KS3TransportError, match="reading the body"):
        get(server)


def test_body_until_close_when_no_length_is_given(servers) -> None:
    server = servers(Raw(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it, then EOF"))
    assert get(server) == b"all of it, then EOF"


@pytest.mark.parametrize("pieces", [2, 5, 40])
def test_a_head_arriving_in_pieces_is_read_the_same(servers, pieces: int) -> None:
    wire = b'HTTP/1.1 200 OK\r\nETag: "abc"\r\nX-Long: first\r\n second\r\nContent-Length: 4\r\n\r\nbody'
    server = servers(Raw(wire, close=False, pieces=pieces), Reply(200, {}, b"next"))
    with client_for(server) as client:
        with client.get_object("bk", "k") as response:
            assert response.info.etag == "abc" and response.info.headers["x-long"] == "first second"
            assert response.read() == b"body"
        with client.get_object("bk", "k") as response:
            assert response.read() == b"next"


def test_interim_100_continue_is_skipped(servers) -> None:
    server = servers(Raw(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
    assert get(server) == b"ok"


def test_head_and_204_have_no_body_whatever_the_headers_say(servers) -> None:
    server = servers(
        Reply(200, {"Content-Length": "1000"}),
        Raw(b"HTTP/1.1 204 No Content\r\n\r\n", close=False),
        Reply(200, {}, b"after"),
    )
    with client_for(server) as client:
        assert client.head_object("bk", "k").size == 1000
        client.delete_object("bk", "k")
        with client.get_object("bk", "k") as response:
            assert response.read() == b"after"
    assert server.connections_opened == 1


def test_repeated_headers_are_joined(servers) -> None:
    server = servers(Raw(b"HTTP/1.1 200 OK\r\nX-Rep: a\r\nx-rep: b\r\nContent-Length: 0\r\n\r\n"))
    with client_for(server) as client:
        assert client.head_object("bk", "k").headers["x-rep"] == "a, b"


def test_http_1_0_answers_close_unless_kept_alive(servers) -> None:
    server = servers(Raw(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\na", close=False), Reply(200, {}, b"b"))
    with client_for(server) as client:
        for expected in (b"a", b"b"):
            with client.get_object("bk", "k") as response:
                assert response.read() == expected
    assert server.connections_opened == 2  # the HTTP/1.0 connection was not reused


@pytest.mark.parametrize(
    "wire",
    [
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\nx",
        b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nx",
        b"HTTP/1.1 200 OK\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\nx",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Len",
        b"HTTP/1.1 200 OK\r\nX: " + b"a" * (300 * 1024) + b"\r\n\r\n",
    ],
    ids=[
        "not-http",
        "two-lengths",
        "signed-length",
        "endless-length",
        "no-colon",
        "cut-head",
        "head-too-long",
    ],
)
def test_malformed_answers_are_transport_errors(servers, wire: bytes) -> None:
    server = servers(Raw(wire))
    with pytest.raises(KS3TransportError, match="RemoteProtocolError"):
        get(server)


def test_a_body_cut_short_is_a_transport_error(servers) -> None:
    server = servers(Raw(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"))
    with pytest.raises(KS3TransportError, match="reading the body.*RemoteProtocolError"):
        get(server)


def test_equal_repeated_content_lengths_are_one_length(servers) -> None:
    server = servers(Raw(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"))
    assert get(server) == b"abc"


# --- https ------------------------------------------------------------------------------------------


def _tls_server(servers, cert: Pair, *replies) -> ScriptedServer:
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(cert.cert, cert.key)
    return servers(*replies, tls=server_side)


def test_https_exchanges_reuse_one_tls_connection(servers, tmp_path) -> None:
    ca = make_ca(tmp_path)
    server = _tls_server(servers, make_cert(tmp_path, ca), ok, Reply(200, {}, b"x" * 100_000))
    with client_for(server, ca_bundle=str(ca.cert)) as client:
        client.put_object("bk", "k", b"data")
        with client.get_object("bk", "k") as response:
            assert response.read() == b"x" * 100_000
    assert server.requests[0].body == b"data" and server.connections_opened == 1


@pytest.mark.parametrize(
    ("problem", "words"),
    [("untrusted", "unknown issuer"), ("other-name", "host-name mismatch"), ("expired", "expired")],
)
def test_a_refused_certificate_is_one_error_naming_the_endpoint_and_what_failed(
    servers, tmp_path, wait_until, problem: str, words: str
) -> None:
    ca = make_ca(tmp_path)
    if problem == "untrusted":
        cert = self_signed(tmp_path / "own")
    else:
        cert = make_cert(
            tmp_path,
            ca,
            "DNS:other.example" if problem == "other-name" else "IP:127.0.0.1",
            expired=problem == "expired",
        )
    server = _tls_server(servers, cert, ok)
    attempts = RetryPolicy(max_attempts=3, sleep=lambda _s: None)
    with client_for(server, retry=attempts, ca_bundle=str(ca.cert)) as client:
        with pytest.raises(KS3CertificateError, match=words) as info:
            client.head_bucket("bk")
    assert str(info.value).startswith(f"{server.endpoint}: TLS certificate refused: {words}")
    assert not info.value.retryable and server.requests == []
    wait_until(lambda: server.tls_handshakes_failed >= 1, timeout=5)
    assert (server.tls_handshakes_failed, server.connections_opened) == (1, 0)  # refused once, not retried


def test_the_system_trust_store_is_the_default(servers, tmp_path) -> None:
    server = _tls_server(servers, self_signed(tmp_path), ok)
    with client_for(server) as client, pytest.raises(KS3CertificateError, match="unknown issuer"):
        client.head_bucket("bk")


def test_a_ca_bundle_that_is_not_pem_is_refused_at_once(tmp_path) -> None:
    bundle = tmp_path / "bundle.pem"
    bundle.write_text("not a certificate\n")
    with pytest.raises(ValueError, match="CA bundle"):
        Client(
            ClientConfig(
                endpoint="https://127.0.0.1:9", access_key="AK", secret_key="SK", ca_bundle=str(bundle)
            )
        )
    with pytest.raises(ValueError, match="no such file"):
        Client(
            ClientConfig(
                endpoint="https://127.0.0.1:9",
                access_key="AK",
                secret_key="SK",
                ca_bundle=str(tmp_path / "missing.pem"),
            )
        )


# --- an early answer --------------------------------------------------------------------------------


def test_an_early_error_answer_to_a_large_upload_is_heard(servers, tmp_path) -> None:
    # The server refuses after the head, closing with the body unread; the client is mid-stream
    # (32 MiB does not fit in loopback socket buffers) when its sends start failing.
    path = tmp_path / "big"
    path.write_bytes(b"b" * (32 * 1024 * 1024))
    denied = Reply(
        403,
        {"x-kss-request-id": "early", "Connection": "close"},
        b"<Error><Code>AccessDenied</Code><Message>no</Message><RequestId>early</RequestId></Error>",
    )
    server = servers(Early(denied), ok)
    with client_for(server) as client:
        with pytest.raises(KS3AuthError, match="AccessDenied"):
            client.put_object("bk", "k", FileRangeBody(path))
        client.put_object("bk", "small", b"data")  # a fresh connection carries on
    assert server.connections_opened == 2
