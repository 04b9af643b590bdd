"""The connection pool (ks3sync/ks3/http11.py) over real loopback sockets: keep-alive reuse, what is never
reused (a connection the server closed, a response left half-read, ``Connection: close``), the
``max_connections`` bound, timeouts, and errors of a body's own source passing through unchanged."""

from __future__ import annotations

import hashlib
import threading

import pytest
from scripted_http import DROP, Reply, ScriptedServer, Seen, Stall

from ks3sync.ks3 import (
    Client,
    ClientConfig,
    FileRangeBody,
    KS3TransportError,
    RetryPolicy,
    SourceChangedError,
)
from ks3sync.ks3.checksums import crc64
from ks3sync.ks3.http11 import ConnectionPool, Headers, HttpTransportError


def ok(request: Seen) -> Reply:
    return Reply(200, {"ETag": f'"{hashlib.md5(request.body).hexdigest()}"', "x-kss-checksum-crc64ecma":
                       str(crc64(request.body, 0))}, b"" if request.method != "GET" else b"g" * 1000)


@pytest.fixture()
def servers():
    started: list[ScriptedServer] = []

    def start(*replies) -> ScriptedServer:
        server = ScriptedServer(*replies)
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
