"""A kill that lands inside the operation under test, and can prove it.

``KillPoint(server, op, count)`` is a rewriting proxy in front of a local-server: it forwards every
request and, once ``arm()``-ed, holds the answer to the ``count``-th successful request of ``op`` from
then on (the server has done it; the client has not heard) until the test has killed the client. ``wait(process)`` returns True once the
answer is held while the process is still running: a SIGKILL sent then lands inside that operation
(after the server acted, before the client recorded anything), which a crash test asserts instead of
hoping its sleep was short enough. Runs that must belong to the same journal sync (the endpoint is
part of it) all go through ``killpoint.endpoint``; after ``release()`` the proxy is transparent.

Ops are named as in local-server's request log: PutObject, CopyObject, UploadPart,
InitiateMultipartUpload, CompleteMultipartUpload, DeleteObjects, GetObject.
"""

from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import replace
from typing import Any

from tests.serverkit import ServerHandle

from .proxy import Exchange, RewritingProxy

HOLD_LIMIT = 60.0  # seconds an answer is held at most (the test kills long before)


def op_of(exchange: Exchange) -> str:
    """The request-log name of an S3 request (enough of them for the crash tests)."""
    query, method = exchange.query, exchange.method
    params = {item.partition("=")[0] for item in query.split("&") if item}
    copy = exchange.request_headers.get("x-kss-copy-source") is not None or any(
        k.lower() == "x-kss-copy-source" for k in exchange.request_headers
    )
    has_key = exchange.path.strip("/").count("/") >= 1
    if method == "PUT" and "uploadId" in params:
        return "UploadPartCopy" if copy else "UploadPart"
    if method == "PUT" and has_key and not params - {"acl"}:
        return "CopyObject" if copy else ("PutObjectAcl" if "acl" in params else "PutObject")
    if method == "POST" and "uploads" in params:
        return "InitiateMultipartUpload"
    if method == "POST" and "uploadId" in params:
        return "CompleteMultipartUpload"
    if method == "POST" and "delete" in params:
        return "DeleteObjects"
    if method == "GET" and has_key and not params & {"uploadId", "acl", "uploads"}:
        return "GetObject"
    return f"{method} other"


class KillPoint:
    def __init__(self, server: ServerHandle, op: str, count: int) -> None:
        self.server = server
        self.op = op
        self.count = count
        self.seen = 0  # successful requests of ``op`` since ``arm()``
        self.held: Exchange | None = None
        self._lock = threading.Lock()
        self._armed = False
        self._engaged = threading.Event()
        self._released = threading.Event()
        self._proxy = RewritingProxy(server.endpoint, self._rewrite)

    def _rewrite(self, exchange: Exchange) -> None:
        if exchange.status >= 300 or op_of(exchange) != self.op:
            return
        with self._lock:
            if not self._armed:
                return
            self.seen += 1
            if self.seen != self.count or self._released.is_set():
                return
            self.held = exchange
        self._engaged.set()
        self._released.wait(HOLD_LIMIT)

    @property
    def endpoint(self) -> str:
        return self._proxy.endpoint

    @property
    def via(self) -> ServerHandle:
        """The server as seen through this proxy (what the runs under test are given)."""
        return replace(self.server, endpoint=self.endpoint)

    def arm(self) -> None:
        """Count ``op`` from now on (the runs before the one to be killed pass through untouched)."""
        with self._lock:
            self._armed = True
            self.seen = 0

    def wait(self, process: subprocess.Popen[Any], timeout: float = 60.0) -> bool:
        """True once the answer is held and ``process`` still runs; False if it ended or time ran out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._engaged.wait(0.01):
                return process.poll() is None
            if process.poll() is not None:
                return False
        return False

    def release(self) -> None:
        self._released.set()

    def __enter__(self) -> KillPoint:
        self._proxy.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self._proxy.__exit__(*exc)
