"""What a client can make local-server hold, and for how long (issue 15 point 10): the request head's size,
its header count and its time, idle connections, a response nobody reads, a request body left unread, and
bucket names that would break the reply. (The uvicorn the HTTP layer is pinned to: test_uvicorn_pin.py.)"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from ks3sync.localserver import EmbeddedServer
from tests.localserver.ls_wire import error_code, request, sign_headers
from tests.serverkit import ServerHandle


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _read_until_closed(sock: socket.socket, limit: float = 10.0) -> bytes:
    sock.settimeout(limit)
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def test_an_oversized_request_head_is_refused_without_buffering_it(
    server_factory: Callable[..., ServerHandle], tmp_path: Path
) -> None:
    server = server_factory()
    before = _rss_kib(server.process.pid)
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(b"GET /bucket/key HTTP/1.1\r\nHost: x\r\nX-Huge: ")
        sent = 0
        try:
            while sent < 64 * 1024 * 1024:  # 64 MiB of one header value: refused long before the end
                sock.sendall(b"a" * 65536)
                sent += 65536
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = _read_until_closed(sock)
    assert sent < 8 * 1024 * 1024, sent
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert b"<Code>RequestHeaderSectionTooLarge</Code>" in answer
    assert _rss_kib(server.process.pid) - before < 16 * 1024
    assert request(server, "GET").status_code == 200  # still serving


def test_too_many_header_fields_are_refused(local_server: ServerHandle) -> None:
    head = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(300)) + b"\r\n"
    with socket.create_connection((local_server.host, local_server.port), timeout=10) as sock:
        sock.sendall(head)
        answer = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"<Code>RequestHeaderSectionTooLarge</Code>" in answer


def test_an_oversized_pipelined_head_is_refused(local_server: ServerHandle) -> None:
    """A head sent right behind another request (so it starts in the read that ends the first) is held to
    the same limit: the first request is answered, the connection closes, the second is never served."""
    mark = local_server.mark()
    first = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    second = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * (100 * 1024) + b"\r\n\r\n"
    with socket.create_connection((local_server.host, local_server.port), timeout=10) as sock:
        sock.sendall(first + second)
        answer = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 403 ") and answer.count(b"HTTP/1.1 ") == 1, answer[:300]
    assert [entry["status"] for entry in local_server.requests()[mark:]] == [403]


def test_a_head_of_the_largest_allowed_size_is_served(local_server: ServerHandle, bucket: str) -> None:
    # A long presigned-style query and big metadata fit well under the limit.
    padding = "p" * 30_000
    response = request(local_server, "GET", bucket, "missing", query=f"response-cache-control={padding}")
    assert (response.status_code, error_code(response)) == (404, "NoSuchKey")


def test_a_head_stalled_midway_is_answered_and_closed(server_factory: Callable[..., ServerHandle]) -> None:
    server = server_factory(head_timeout=0.5)
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(b"GET /bucket/key HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        started = time.monotonic()
        answer = _read_until_closed(sock)
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert b"<Code>RequestTimeout</Code>" in answer
    assert waited < 5.0  # 0.5 s plus the sweep's granularity, not the old "open forever"


def test_a_slow_but_steady_head_is_still_bounded(server_factory: Callable[..., ServerHandle]) -> None:
    """One byte at a time keeps no timer of its own alive: the head's deadline runs from its first byte."""
    server = server_factory(head_timeout=0.5)
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(b"GET /bucket/key HTTP/1.1\r\nX-Trickle: ")
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < 5.0 and not closed:
            try:
                sock.sendall(b"a")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            sock.settimeout(0.05)
            try:
                closed = sock.recv(65536) != b"" or closed
            except TimeoutError:
                continue
            except ConnectionResetError:
                closed = True
    assert closed, "a head trickling in byte by byte was never cut off"


def test_idle_connections_are_closed_fresh_or_kept_alive(tmp_path: Path) -> None:
    """A connection that never sends a byte is closed like a kept-alive one that sends no next request
    (uvicorn itself times out only connections that have had a response)."""
    with EmbeddedServer(tmp_path / "root", "AK", "SK", fsync=False, idle_timeout=1) as server:
        with (
            socket.create_connection((server.host, server.port), timeout=10) as fresh,
            socket.create_connection((server.host, server.port), timeout=10) as kept,
        ):
            kept.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # unsigned: 403, and the connection stays
            started = time.monotonic()
            fresh_answer = _read_until_closed(fresh)
            kept_answer = _read_until_closed(kept)
            waited = time.monotonic() - started
    assert fresh_answer == b""
    assert kept_answer.startswith(b"HTTP/1.1 403 ") and b"Connection: close" not in kept_answer
    assert waited < 8.0  # 1 s each, not the 10 s read timeout


def test_a_response_that_leaves_the_request_body_unread_ends_the_connection(
    local_server: ServerHandle, bucket: str
) -> None:
    """Refused before its body is read, a PUT announcing 1 GiB gets its answer and a closed connection,
    not a server reading (and throwing away) the gigabyte to keep the connection."""
    headers = sign_headers(local_server, "PUT", bucket, "k", secret="wrong")
    head = [
        f"PUT /{bucket}/k HTTP/1.1",
        "Host: x",
        f"Content-Length: {1 << 30}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    with socket.create_connection((local_server.host, local_server.port), timeout=10) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + b"x" * 1000)
        answer = _read_until_closed(sock, limit=5.0)
    assert answer.startswith(b"HTTP/1.1 403 "), answer[:200]
    assert b"\r\nConnection: close\r\n" in answer


def test_a_response_nobody_reads_does_not_hold_the_server(
    server_factory: Callable[..., ServerHandle], tmp_path: Path
) -> None:
    server = server_factory(body_timeout=0.5)
    bucket = "unread"
    assert request(server, "PUT", bucket).status_code == 200
    body = b"x" * (16 * 1024 * 1024)
    assert request(server, "PUT", bucket, "big", content=body).status_code == 200
    headers = sign_headers(server, "GET", bucket, "big")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((server.host, server.port))
        head = [f"GET /{bucket}/big HTTP/1.1", "Host: x", *(f"{k}: {v}" for k, v in headers.items())]
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        # The server gives up on the stalled reader: its request ends (logged) while we read nothing.
        deadline = time.monotonic() + 15
        while not any(e["method"] == "GET" and e["path"] == f"/{bucket}/big" for e in server.requests()):
            assert time.monotonic() < deadline, "the server is still waiting for a reader that never reads"
            time.sleep(0.05)
        received = _read_until_closed(sock)
    assert len(received) < len(body)
    assert request(server, "GET", bucket, "big").content == body


@pytest.mark.parametrize("name", ["abc\n", "abc\r", "abc\t"])
def test_bucket_names_with_control_characters_are_refused(local_server: ServerHandle, name: str) -> None:
    headers = sign_headers(local_server, "PUT", name, None)
    encoded = name.replace("\n", "%0A").replace("\r", "%0D").replace("\t", "%09")
    response = httpx.put(f"{local_server.endpoint}/{encoded}/", headers=headers, timeout=10)
    assert (response.status_code, error_code(response)) == (400, "InvalidBucketName")
    listing = request(local_server, "GET")
    assert f"<Name>{name}</Name>" not in listing.text


def test_response_overrides_with_control_characters_are_refused(
    local_server: ServerHandle, bucket: str
) -> None:
    assert request(local_server, "PUT", bucket, "k", content=b"x").status_code == 200
    response = request(
        local_server, "GET", bucket, "k", query="response-content-type=text%0D%0AX-Injected:%201"
    )
    assert (response.status_code, error_code(response)) == (400, "InvalidArgument")
    assert "X-Injected" not in response.headers


def test_numbers_of_any_length_are_answered_4xx_not_500(local_server: ServerHandle, bucket: str) -> None:
    """int() of more than 4,300 digits raises ValueError, which the app answered as 500 InternalError."""
    big = "9" * 5000
    assert request(local_server, "PUT", bucket, "k", content=b"0123456789").status_code == 200
    upload = request(local_server, "POST", bucket, "mp", "uploads").text
    upload_id = upload.split("<UploadId>")[1].split("</UploadId>")[0]
    complete = (
        f"<CompleteMultipartUpload><Part><PartNumber>{big}</PartNumber><ETag>e</ETag></Part>"
        "</CompleteMultipartUpload>"
    ).encode()
    answers = {
        "partNumber": request(
            local_server, "PUT", bucket, "mp", f"partNumber={big}&uploadId={upload_id}", content=b"x"
        ),
        "Range first": request(local_server, "GET", bucket, "k", headers={"Range": f"bytes={big}-"}),
        "Range suffix": request(local_server, "GET", bucket, "k", headers={"Range": f"bytes=-{big}"}),
        "copy-source-range": request(
            local_server,
            "PUT",
            bucket,
            "mp",
            f"partNumber=1&uploadId={upload_id}",
            headers={"x-kss-copy-source": f"/{bucket}/k", "x-kss-copy-source-range": f"bytes=0-{big}"},
        ),
        "Complete PartNumber": request(
            local_server, "POST", bucket, "mp", f"uploadId={upload_id}", content=complete
        ),
        "presigned Expires": httpx.get(
            f"{local_server.endpoint}/{bucket}/k?KSSAccessKeyId={local_server.access_key}"
            f"&Expires={big}&Signature=x",
            timeout=10,
        ),
    }
    statuses = {name: response.status_code for name, response in answers.items()}
    assert all(400 <= status < 500 or status == 206 for status in statuses.values()), statuses
    assert statuses["Range suffix"] == 206  # a suffix longer than the object is the whole object
