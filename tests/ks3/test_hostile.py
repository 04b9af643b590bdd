"""A hostile or broken endpoint cannot exhaust the client's memory, disk or time (issue 15, point 5).

Each test scripts a loopback server (scripted_http.py) that never stops talking -- an endless listing
page, an endless object body, a flood of interim ``100 Continue`` answers, a head or body dripped a byte
at a time -- and checks that the client stops it with a clear error, within a bounded time and, where
memory is what it would eat, a bounded peak of Python allocations. Each also bounds the server: it
stops sending once the client has gone (``endless_bytes_sent``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import tracemalloc

import pytest

from ks3sync.ks3 import (
    KS3IntegrityError,
    KS3ServiceError,
    KS3TransportError,
)
from ks3sync.ks3.transport import MAX_DOCUMENT
from ks3sync.ks3.xml import MalformedResponse
from tests.ks3.scripted_http import Endless, Reply, client_for

CHUNK = 64 * 1024
ENDLESS_CHUNKS = Endless(
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"%x\r\n" % CHUNK + b"<Contents>" + b"x" * (CHUNK - 21) + b"</Contents>\r\n",
)


class Bounded:
    """Wall time and the peak of Python allocations (tracemalloc) of the block."""

    def __enter__(self) -> Bounded:
        tracemalloc.start()
        self._started = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.monotonic() - self._started
        self.peak_mib = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()


def test_an_endless_listing_page_stops_at_the_document_cap(servers) -> None:
    server = servers(ENDLESS_CHUNKS)
    with client_for(server) as client, Bounded() as bounded:
        with pytest.raises(MalformedResponse, match=f"longer than {MAX_DOCUMENT >> 20} MiB"):
            client.list_objects("bk")
    assert bounded.seconds < 30 and bounded.peak_mib < 3 * (MAX_DOCUMENT >> 20)
    assert server.endless_bytes_sent < MAX_DOCUMENT + 64 * 2**20  # what the socket buffers held, no more


def test_an_endless_error_body_is_read_only_as_far_as_it_names_the_error(servers) -> None:
    flood = Endless(
        b"HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n", ENDLESS_CHUNKS.piece
    )
    server = servers(flood)
    with client_for(server) as client, Bounded() as bounded, pytest.raises(KS3ServiceError, match="HTTP 500"):
        client.head_bucket("bk")
    assert bounded.seconds < 30 and bounded.peak_mib < 16


def test_an_endless_chunked_body_never_passes_its_declared_length(servers, tmp_path) -> None:
    # Content-Length: 12 and chunked coding: the chunks win (RFC 9112 6.3), and they never end.
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nTransfer-Encoding: chunked\r\n\r\n"
    server = servers(Endless(head, b"%x\r\n" % CHUNK + b"y" * CHUNK + b"\r\n"))
    out = tmp_path / "object"
    with client_for(server) as client, Bounded() as bounded:
        with pytest.raises(KS3IntegrityError, match="past the 12 bytes declared"):
            client.download_to_file("bk", "k", out)
    assert bounded.seconds < 30 and out.stat().st_size <= 12
    assert server.endless_bytes_sent < 64 * 2**20


def test_bytes_after_a_declared_length_are_never_read_as_body(servers, tmp_path) -> None:
    server = servers(Endless(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n", b"y" * CHUNK))
    out = tmp_path / "object"
    with client_for(server) as client, Bounded() as bounded:
        assert client.download_to_file("bk", "k", out).size == 12
    assert bounded.seconds < 30 and out.read_bytes() == b"y" * 12


def test_an_endless_body_of_no_declared_length_stops_at_the_listed_size(servers, tmp_path) -> None:
    server = servers(Endless(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", b"y" * CHUNK))
    out = tmp_path / "object"
    with client_for(server) as client, Bounded() as bounded:
        with pytest.raises(KS3IntegrityError, match="past the 12 bytes expected"):
            client.download_to_file("bk", "k", out, expected_size=12)
    assert bounded.seconds < 30 and out.stat().st_size <= 12
    assert server.endless_bytes_sent < 64 * 2**20


def test_a_declared_length_beyond_the_listed_size_is_refused_before_reading(servers, tmp_path) -> None:
    server = servers(Reply(200, {"Content-Length": str(10**12)}, close=True))
    with client_for(server) as client, pytest.raises(KS3IntegrityError, match="more than the 12 expected"):
        client.download_to_file("bk", "k", tmp_path / "object", expected_size=12)


def test_a_flood_of_interim_answers_is_cut_off(servers) -> None:
    server = servers(Endless(b"", b"HTTP/1.1 100 Continue\r\n\r\n"))
    with client_for(server) as client, Bounded() as bounded:
        with pytest.raises(KS3TransportError, match="before the final response head"):
            client.head_bucket("bk")
    assert bounded.seconds < 30 and bounded.peak_mib < 16


def test_an_endless_response_head_is_cut_off(servers) -> None:
    server = servers(Endless(b"HTTP/1.1 200 OK\r\n", b"X-Filler: " + b"f" * 1000 + b"\r\n"))
    with (
        client_for(server) as client,
        Bounded() as bounded,
        pytest.raises(KS3TransportError, match="RemoteProtocolError"),
    ):
        client.head_bucket("bk")
    assert bounded.seconds < 30 and bounded.peak_mib < 16


def test_a_head_dripped_a_byte_at_a_time_meets_the_request_deadline(servers) -> None:
    # Each byte arrives well within the idle read timeout (60 s), so only the overall deadline ends it.
    server = servers(Endless(b"", b"X", interval=0.05))
    with client_for(server, request_timeout=0.5) as client, Bounded() as bounded:
        with pytest.raises(KS3TransportError, match="request deadline passed"):
            client.head_bucket("bk")
    assert bounded.seconds < 5


def test_a_body_dripped_a_byte_at_a_time_meets_the_request_deadline(servers) -> None:
    server = servers(Endless(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", b"z", interval=0.05))
    with client_for(server, request_timeout=0.5) as client, Bounded() as bounded:
        with (
            client.get_object("bk", "k") as response,
            pytest.raises(KS3TransportError, match="request deadline passed"),
        ):
            response.read()
    assert bounded.seconds < 5


@pytest.mark.parametrize(("min_rate", "finishes"), [(10_000, True), (10**9, False)])
def test_the_deadline_grows_with_the_declared_body(servers, min_rate: int, finishes: bool) -> None:
    # 20,000 bytes over ~1 s: alive but slower than the 0.5 s floor allows. At 10,000 B/s the deadline
    # grows by 2 s for this body and it finishes; at 1 GB/s it grows by nothing and it is cut.
    size, pieces = 20_000, 20
    body = Endless(
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size,
        b"s" * (size // pieces),
        interval=0.05,
        limit=size,
    )
    server = servers(body)
    with client_for(server, request_timeout=0.5, min_rate=min_rate) as client:
        with client.get_object("bk", "k") as response:
            if finishes:
                assert response.read() == b"s" * size
            else:
                with pytest.raises(KS3TransportError, match="request deadline passed"):
                    response.read()


# --- end to end: a restore from a hostile endpoint ---------------------------------------------------

LISTING = (
    b'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>hostile</Name><Prefix>p/</Prefix>'
    b"<Marker></Marker><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated><Contents><Key>p/f.bin</Key>"
    b'<LastModified>2026-01-01T00:00:00.000Z</LastModified><ETag>"0123456789abcdef0123456789abcdef"</ETag>'
    b"<Size>12</Size><StorageClass>STANDARD</StorageClass></Contents></ListBucketResult>"
)


def test_a_restore_from_an_endless_object_fails_that_file_without_filling_the_disk(servers, tmp_path) -> None:
    # The listing says 12 bytes; the GET answers with no length and never stops (until 256 MiB, so
    # that this test ends even against a client without the bound).
    def handler(seen):
        if seen.method == "GET" and seen.target.startswith("/hostile/?"):
            return Reply(200, {"Content-Type": "application/xml"}, LISTING)
        if seen.method == "GET" and seen.target == "/hostile/p/f.bin":
            return Endless(
                b'HTTP/1.1 200 OK\r\nETag: "0123456789abcdef0123456789abcdef"\r\nConnection: close\r\n\r\n',
                b"y" * CHUNK,
                limit=256 * 2**20,
            )
        return Reply(404)

    server = servers(handler=handler)
    dst = tmp_path / "dst"
    env = {
        **os.environ,
        "KS3_ACCESS_KEY": "AK",
        "KS3_SECRET_KEY": "SK",
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ks3sync",
            "mirror",
            "ks3://hostile/p",
            str(dst),
            "--endpoint",
            server.endpoint,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert "f.bin: GET " in result.stderr and "the body goes on past the 12 bytes expected" in result.stderr
    assert time.monotonic() - started < 60
    assert list(dst.iterdir()) == []  # neither the file nor a temp file is left
    assert server.endless_bytes_sent < 64 * 2**20  # the client stopped reading; it did not drain the stream


def test_the_configs_request_timeout_bounds_a_dripping_listing(servers, tmp_path) -> None:
    # Every attempt at the listing gets a head, then one byte every 50 ms of a 1,000-byte body (50 s):
    # only the overall deadline (timeouts.request: 1s, plus 1,000 bytes at 16 KiB/s) ends each attempt.
    drip = Endless(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", b"<", interval=0.05, limit=1000)
    server = servers(handler=lambda seen: drip)
    config = tmp_path / "ks3sync.yaml"
    config.write_text(
        f"endpoint: {server.endpoint}\ncredentials: {{access_key: AK, secret_key: SK}}\n"
        f"state_dir: {tmp_path / 'state'}\ntimeouts: {{request: 1s}}\n"
        f"syncs: [{{name: s, source: {tmp_path}, target: 'ks3://hostile/p'}}]\n"
    )
    config.chmod(0o600)
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ks3sync",
            "mirror",
            "ks3://hostile/p",
            str(tmp_path / "dst"),
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert "GET hostile: reading the body: ReadTimeout: request deadline passed (1.1 s" in result.stderr, (
        result.stderr
    )
    assert time.monotonic() - started < 60
    assert len(server.requests) == 5  # the client's attempts, each cut at 1 s (not at the 60 s read timeout)
