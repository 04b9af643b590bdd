"""Test helper: hand-made requests to local-server, signed with the official SDK's own signing functions.

Independent of the server's code (the SDK's `ks3.auth` builds the string to sign), so a signing bug in the
server cannot be mirrored here. Raw paths are built with the SDK's key encoding plus the `//` rule.
"""

from __future__ import annotations

import socket
import time
from email.utils import formatdate

import httpx
from ks3 import auth as sdk_auth

from tests.serverkit import ServerHandle


def resource_path(bucket: str | None, key: str | None) -> str:
    path = "/"
    if bucket:
        path += bucket + "/"
        if key:
            path += sdk_auth.url_encode(key)
    return path.replace("//", "/%2F")


def sign_headers(
    server: ServerHandle,
    method: str,
    bucket: str | None,
    key: str | None,
    query: str = "",
    headers: dict[str, str] | None = None,
    *,
    secret: str | None = None,
    access_key: str | None = None,
    date: float | None = None,
) -> dict[str, str]:
    signed = dict(headers or {})
    signed.setdefault("Date", formatdate(time.time() if date is None else date, usegmt=True))
    sdk_auth.add_auth_header(
        access_key or server.access_key,
        secret or server.secret_key,
        signed,
        method,
        bucket or "",
        key or "",
        query,
    )
    return signed


def request(
    server: ServerHandle,
    method: str,
    bucket: str | None = None,
    key: str | None = None,
    query: str = "",
    headers: dict[str, str] | None = None,
    content: bytes = b"",
    *,
    sign: bool = True,
    secret: str | None = None,
    access_key: str | None = None,
    date: float | None = None,
    timeout: float = 30,
) -> httpx.Response:
    all_headers = dict(headers or {})
    if sign:
        all_headers = sign_headers(
            server, method, bucket, key, query, all_headers, secret=secret, access_key=access_key, date=date
        )
    url = server.endpoint + resource_path(bucket, key) + ("?" + query if query else "")
    return _client().request(method, httpx.URL(url), headers=all_headers, content=content, timeout=timeout)


_CLIENT: list[httpx.Client] = []


def _client() -> httpx.Client:
    """One pooled client for the test process: building an httpx.Client costs ~20 ms (TLS context)."""
    if not _CLIENT:
        _CLIENT.append(httpx.Client())
    return _CLIENT[0]


def error_code(response: httpx.Response) -> str | None:
    text = response.text
    if "<Code>" not in text:
        return None
    return text.split("<Code>", 1)[1].split("</Code>", 1)[0]


def read_head(sock: socket.socket) -> bytes:
    """Read until the end of a response head (or the connection's end): the status line and headers, and
    whatever part of the body came with them."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def raw_exchange(server: ServerHandle, data: bytes, timeout: float = 10.0) -> bytes:
    """Send raw bytes, return everything the server answers until it closes or goes quiet."""
    with socket.create_connection((server.host, server.port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks) and _complete(b"".join(chunks)):
                break
        return b"".join(chunks)


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return False
