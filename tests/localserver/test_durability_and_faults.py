"""Restart persistence, crash safety, fault injection determinism, stalled bodies, Expect: 100-continue."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.localserver.ls_wire import error_code, read_head, request, resource_path, sign_headers
from tests.serverkit import ServerHandle, sdk_connection


def _partial_bodies(root: Path) -> list[Path]:
    """Files in tmp/ holding bytes (tmp/ also holds empty spare files the server opens ahead of need)."""
    return [p for p in (root / "tmp").iterdir() if p.stat().st_size > 0]


def test_data_survives_a_restart(server_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "persist"
    first = server_factory(root=root)
    assert request(first, "PUT", "keep-me").status_code == 200
    request(first, "PUT", "keep-me", "dir/ü file", content=b"persisted", headers={"x-kss-meta-a": "1"})
    request(first, "PUT", "keep-me", query="acl", headers={"x-kss-acl": "public-read"})
    upload = request(first, "POST", "keep-me", "pending", "uploads").text.split("<UploadId>")[1][:32]
    part = request(first, "PUT", "keep-me", "pending", f"partNumber=1&uploadId={upload}", content=b"p1")
    assert first.stop() == 0
    orphan = root / "data" / "ab" / ("ab" + "0" * 30)  # renamed into data/ but never committed (a crash)
    orphan.write_bytes(b"orphan")
    second = server_factory(root=root)
    assert not orphan.exists()
    got = request(second, "GET", "keep-me", "dir/ü file")
    assert (got.content, got.headers["x-kss-meta-a"]) == (b"persisted", "1")
    assert request(second, "GET", "keep-me", "dir/ü file", sign=False).status_code == 200  # bucket ACL kept
    body = (
        f"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{part.headers['ETag']}</ETag></Part>"
        "</CompleteMultipartUpload>"
    )
    assert (
        request(second, "POST", "keep-me", "pending", f"uploadId={upload}", content=body.encode()).status_code
        == 200
    )
    assert request(second, "GET", "keep-me", "pending").content == b"p1"


def test_a_crash_mid_upload_exposes_nothing(server_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "crash"
    server = server_factory(root=root)
    request(server, "PUT", "crash-test")
    request(server, "PUT", "crash-test", "obj", content=b"old version")
    headers = sign_headers(server, "PUT", "crash-test", "obj")
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        head = [
            f"PUT {resource_path('crash-test', 'obj')} HTTP/1.1",
            f"Host: {server.host}:{server.port}",
            "Content-Length: 3000000",
            *(f"{k}: {v}" for k, v in headers.items()),
        ]
        # more than one 1 MiB block, so part of the body is already on disk when the server dies
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + b"n" * 1_500_000)
        deadline = time.monotonic() + 10
        while not _partial_bodies(root) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _partial_bodies(root), "the half-received body should be in tmp/ before the kill"
        server.kill()  # SIGKILL while the body is half received
    data_files_before = {p.name for p in (root / "data").rglob("*") if p.is_file()}
    restarted = server_factory(root=root)
    assert request(restarted, "GET", "crash-test", "obj").content == b"old version"
    assert _partial_bodies(root) == []  # half-received bodies are swept at start-up
    assert {p.name for p in (root / "data").rglob("*") if p.is_file()} == data_files_before


def _statuses(server: ServerHandle, count: int) -> list[int]:
    statuses = []
    with httpx.Client(timeout=10) as client:
        for i in range(count):
            headers = sign_headers(server, "PUT", "faulty", f"k{i}")
            try:
                statuses.append(
                    client.put(f"{server.endpoint}/faulty/k{i}", content=b"x", headers=headers).status_code
                )
            except httpx.TransportError:
                statuses.append(0)  # dropped connection
    return statuses


def test_fault_injection_is_deterministic_with_a_seed(server_factory) -> None:  # type: ignore[no-untyped-def]
    runs = []
    for _ in range(2):
        server = server_factory(fault_rate=0.3, drop_rate=0.1, fault_codes="500,503", seed=11)
        assert request(server, "PUT", "faulty").status_code == 200  # control plane: never faulted
        runs.append(_statuses(server, 40))
    assert runs[0] == runs[1]
    assert {0, 200, 500, 503} <= set(runs[0])
    other_seed = server_factory(fault_rate=0.3, drop_rate=0.1, fault_codes="500,503", seed=12)
    request(other_seed, "PUT", "faulty")
    assert _statuses(other_seed, 40) != runs[0]
    entries = [e for e in server.requests() if e["op"] == "PutObject"]
    assert [e["status"] if "fault" not in e or e["fault"] == "error" else 0 for e in entries] == runs[1]


def test_fault_kinds_and_the_control_plane(server_factory) -> None:  # type: ignore[no-untyped-def]
    server = server_factory(fault_rate=1.0, fault_codes="503", latency_ms=30, seed=1)
    assert request(server, "PUT", "always-faulty").status_code == 200
    assert (
        request(server, "PUT", "always-faulty", query="acl", headers={"x-kss-acl": "private"}).status_code
        == 200
    )
    assert request(server, "GET").status_code == 200
    response = request(server, "PUT", "always-faulty", "k", content=b"body")
    assert (response.status_code, error_code(response)) == (503, "SlowDown")
    entry = server.requests()[-1]
    assert entry["fault"] == "error" and entry["ms"] >= 30 and entry["bytes_in"] == 4
    dropper = server_factory(drop_rate=1.0, seed=1)
    assert request(dropper, "PUT", "drops").status_code == 200
    with pytest.raises(httpx.TransportError):
        request(dropper, "GET", "drops", "k")
    assert dropper.requests()[-1]["fault"] == "drop"


def test_a_stalled_body_times_out_with_request_timeout(server_factory) -> None:  # type: ignore[no-untyped-def]
    server = server_factory(body_timeout=0.5)
    request(server, "PUT", "stall")
    headers = sign_headers(server, "PUT", "stall", "k")
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        head = [
            "PUT /stall/k HTTP/1.1",
            f"Host: {server.host}:{server.port}",
            "Content-Length: 100",
            *(f"{k}: {v}" for k, v in headers.items()),
        ]
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + b"only ten..")
        answer = read_head(sock)
        assert answer.startswith(b"HTTP/1.1 400 ")
        assert b"<Code>RequestTimeout</Code>" in answer + sock.recv(65536)
        sock.settimeout(5)
        assert sock.recv(65536) == b""  # the connection is closed afterwards
    assert request(server, "GET", "stall", "k").status_code == 404
    assert _partial_bodies(server.root) == []


def test_expect_100_continue(local_server: ServerHandle, bucket: str) -> None:
    headers = sign_headers(local_server, "PUT", bucket, "continued")
    with socket.create_connection((local_server.host, local_server.port), timeout=10) as sock:
        head = [
            f"PUT /{bucket}/continued HTTP/1.1",
            f"Host: {local_server.host}:{local_server.port}",
            "Content-Length: 5",
            "Expect: 100-continue",
            *(f"{k}: {v}" for k, v in headers.items()),
        ]
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        assert read_head(sock).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(b"hello")
        assert read_head(sock).startswith(b"HTTP/1.1 200 OK")
    assert request(local_server, "GET", bucket, "continued").content == b"hello"
    bad = sign_headers(local_server, "PUT", bucket, "refused", secret="wrong")
    with socket.create_connection((local_server.host, local_server.port), timeout=10) as sock:
        head = [
            f"PUT /{bucket}/refused HTTP/1.1",
            f"Host: {local_server.host}:{local_server.port}",
            "Content-Length: 5",
            "Expect: 100-continue",
            *(f"{k}: {v}" for k, v in bad.items()),
        ]
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        answer = read_head(sock)
        assert answer.startswith(b"HTTP/1.1 403 ")  # refused before the body is asked for
        assert b"connection: close" in answer.lower()


def test_sdk_connection_sees_the_request_ids(local_server: ServerHandle, bucket: str) -> None:
    b = sdk_connection(local_server).get_bucket(bucket)
    b.new_key("rid").set_contents_from_string("x")
    ids = [e["request_id"] for e in local_server.requests()[-2:]]
    assert len(set(ids)) == 2
