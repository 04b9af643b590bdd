"""`--max-inflight N`: requests beyond N in flight get 503 SlowDown (the KS3 error XML), and every slot
comes back however a request ends (answered, refused, failed, abandoned by its client)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx

from tests.localserver.ls_wire import error_code, read_head, request, resource_path, sign_headers
from tests.serverkit import TEST_ACCESS_KEY, TEST_SECRET_KEY, ServerHandle


def _hold(server: ServerHandle, bucket: str, key: str) -> tuple[socket.socket, bytes]:
    """Start a 5-byte PUT that waits for `100 Continue`: the server sends that once the request is in its
    handler (so it holds a slot); a refused one gets its 503 instead."""
    headers = sign_headers(server, "PUT", bucket, key)
    sock = socket.create_connection((server.host, server.port), timeout=15)
    head = [
        f"PUT {resource_path(bucket, key)} HTTP/1.1",
        f"Host: {server.host}:{server.port}",
        "Content-Length: 5",
        "Expect: 100-continue",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
    return sock, read_head(sock)


def _two_held_and_a_third_refused(server: ServerHandle, bucket: str) -> bool:
    """True when two requests can be in flight at once and a third is then refused (N = 2, all slots free)."""
    a, a_head = _hold(server, bucket, "held-a")
    b, b_head = _hold(server, bucket, "held-b")
    with a, b:
        if not (a_head.startswith(b"HTTP/1.1 100 Continue") and b_head.startswith(b"HTTP/1.1 100 Continue")):
            return False
        third = request(server, "GET", bucket)
        assert (third.status_code, error_code(third)) == (503, "SlowDown"), third.text
        for sock in (a, b):
            sock.sendall(b"hello")
            assert read_head(sock).startswith(b"HTTP/1.1 200 ")
    return True


def test_requests_beyond_the_limit_get_slowdown(server_factory) -> None:  # type: ignore[no-untyped-def]
    server = server_factory(max_inflight=2, retry_after=3)
    assert request(server, "PUT", "throttled").status_code == 200
    a, a_head = _hold(server, "throttled", "a")
    b, b_head = _hold(server, "throttled", "b")
    with a, b:
        assert a_head.startswith(b"HTTP/1.1 100 Continue") and b_head.startswith(b"HTTP/1.1 100 Continue")
        third = request(server, "GET", "throttled", "a")
        assert (third.status_code, error_code(third)) == (503, "SlowDown")
        assert third.headers["Retry-After"] == "3" and third.headers["Content-Type"] == "application/xml"
        assert "<RequestId>" in third.text and "<Resource>/throttled/a</Resource>" in third.text
        entry = server.requests()[-1]
        assert (entry["status"], entry["fault"], entry["op"]) == (503, "throttle", "GetObject")
        # A refused body is read and dropped (the connection carries on), and a refusal holds no slot.
        refused_put = request(server, "PUT", "throttled", "c", content=b"xyz")
        assert refused_put.status_code == 503 and server.requests()[-1]["bytes_in"] == 3
        a.sendall(b"hello")
        b.sendall(b"world")
        assert read_head(a).startswith(b"HTTP/1.1 200 ") and read_head(b).startswith(b"HTTP/1.1 200 ")
    assert request(server, "GET", "throttled", "a").content == b"hello"
    assert request(server, "GET", "throttled", "c").status_code == 404  # the refused PUT stored nothing
    unlimited = server_factory()
    request(unlimited, "PUT", "free")
    assert "Retry-After" not in request(unlimited, "GET", "free", "nothing").headers


def test_the_third_of_three_slow_requests_is_refused(server_factory) -> None:  # type: ignore[no-untyped-def]
    # The added latency is part of a request's time in flight: three concurrent requests, each held
    # 1.5 s by the link, against N = 2.
    server = server_factory(max_inflight=2, latency_ms=1500)
    assert request(server, "PUT", "slow").status_code == 200
    start = threading.Barrier(3)
    statuses: list[int] = []

    def one(i: int) -> None:
        headers = sign_headers(server, "GET", "slow", f"k{i}")
        with httpx.Client(timeout=30) as client:
            start.wait(timeout=30)
            statuses.append(client.get(f"{server.endpoint}/slow/k{i}", headers=headers).status_code)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(statuses) == [404, 404, 503]
    refused = [e for e in server.requests() if e.get("fault") == "throttle"]
    assert len(refused) == 1 and refused[0]["ms"] >= 1500  # a refusal also waits out the round trip


def _abandon_mid_body(server: ServerHandle, bucket: str, key: str) -> None:
    headers = sign_headers(server, "PUT", bucket, key)
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        head = [
            f"PUT {resource_path(bucket, key)} HTTP/1.1",
            f"Host: {server.host}:{server.port}",
            "Content-Length: 100",
            *(f"{k}: {v}" for k, v in headers.items()),
        ]
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + b"half")


def _abandon_before_answer(server: ServerHandle, bucket: str) -> None:
    headers = sign_headers(server, "GET", bucket, None)
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        head = [
            f"GET /{bucket}/ HTTP/1.1",
            f"Host: {server.host}:{server.port}",
            *(f"{k}: {v}" for k, v in headers.items()),
        ]
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())


def test_slots_come_back_after_errors_and_disconnects(server_factory, wait_until) -> None:  # type: ignore[no-untyped-def]
    server = server_factory(max_inflight=2, body_timeout=0.5)
    assert request(server, "PUT", "leaks").status_code == 200
    rounds = 30
    for i in range(rounds):
        assert request(server, "GET", "leaks", f"missing-{i}").status_code == 404
        assert request(server, "GET", "leaks", "x", secret="wrong-secret").status_code == 403
        bad_md5 = request(
            server, "PUT", "leaks", "d", headers={"Content-MD5": "AAAAAAAAAAAAAAAAAAAAAA=="}, content=b"x"
        )
        assert bad_md5.status_code == 400
        assert request(server, "GET", "no-such-bucket", "k").status_code == 404
        _abandon_mid_body(server, "leaks", f"gone-{i}")
        _abandon_before_answer(server, "leaks")
        # Both end on their own time (the server sees the close, or answers nobody): wait for their log
        # lines, so the next request does not meet them still in flight.
        wait_until(lambda n=i + 1: _ended(server) == (n, n), timeout=30)
        assert request(server, "PUT", "leaks", f"ok-{i}", content=b"ok").status_code == 200
    # A body that stalls until the server gives up on it (400 RequestTimeout).
    headers = sign_headers(server, "PUT", "leaks", "stalled")
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        head = [
            "PUT /leaks/stalled HTTP/1.1",
            f"Host: {server.host}:{server.port}",
            "Content-Length: 10",
            *(f"{k}: {v}" for k, v in headers.items()),
        ]
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + b"abc")
        assert read_head(sock).startswith(b"HTTP/1.1 400 ")
    assert _ended(server) == (rounds, rounds)
    wait_until(lambda: _two_held_and_a_third_refused(server, "leaks"), timeout=30)
    # Nothing was refused before that last check: the errors and disconnects left no slot taken.
    assert [e["op"] for e in server.requests() if e.get("fault") == "throttle"][:1] == ["ListObjects"]


def _ended(server: ServerHandle) -> tuple[int, int]:
    """(abandoned bodies logged as 499, listings answered to nobody) so far."""
    entries = server.requests()
    return (
        sum(e["status"] == 499 for e in entries),
        sum(e["op"] == "ListObjects" and e["status"] == 200 for e in entries),
    )


def test_max_inflight_must_be_positive(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "ks3sync",
            "local-server",
            "--root",
            str(tmp_path / "r"),
            "--access-key",
            TEST_ACCESS_KEY,
            "--secret-key",
            TEST_SECRET_KEY,
            "--max-inflight",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2 and "--max-inflight" in out.stderr
