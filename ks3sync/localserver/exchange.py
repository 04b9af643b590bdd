"""One request/response exchange: the request body as a bounded, timed stream, and the response value.

Owns reading the ASGI body (`BodyReader`: whole small bodies, or chunks of big ones, each wait bounded
by the stalled-body timeout, with the SigV4 payload hash checked at the end) and the `Response` value
handlers return. Imports nothing else from ks3sync except the error type.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ks3sync.localserver.awschunked import ChunkedDecoder
from ks3sync.localserver.errors import S3Error

Receive = Callable[[], Awaitable[dict[str, Any]]]


@dataclass(slots=True)
class FileBody:
    path: str
    offset: int
    length: int


@dataclass(slots=True)
class Response:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    file: FileBody | None = None


class ClientGone(Exception):
    """The client disconnected before its request body arrived; nobody is left to answer."""


class BodyReader:
    def __init__(
        self,
        receive: Receive,
        timeout: float,
        expected_sha256: str | None,
        decoder: ChunkedDecoder | None = None,
    ) -> None:
        self._receive = receive
        self._decoder = decoder  # aws-chunked framing, removed here so handlers see only the payload
        self._timeout = timeout
        self._expected_sha256 = expected_sha256
        self._sha256 = hashlib.sha256() if expected_sha256 else None
        self._done = False
        self.started = False
        self.bytes_in = 0

    @property
    def done(self) -> bool:
        return self._done

    async def _next(self) -> bytes:
        self.started = True
        try:
            async with asyncio.timeout(self._timeout):
                message = await self._receive()
        except TimeoutError as exc:
            self._done = True
            raise S3Error("RequestTimeout", headers=[("Connection", "close")]) from exc
        if message["type"] == "http.disconnect":
            self._done = True
            raise ClientGone()
        chunk: bytes = message.get("body", b"")  # a bytearray under our protocol (no copy), bytes elsewhere
        self.bytes_in += len(chunk)
        more = message.get("more_body", False)
        if self._decoder is not None:
            chunk = self._decoder.feed(chunk)
            if not more:
                self._decoder.finish()
        if self._sha256 is not None and chunk:
            self._sha256.update(chunk)
        if not more:
            self._done = True
            self._check_payload_hash()
        return chunk

    def _check_payload_hash(self) -> None:
        if self._sha256 is not None and self._sha256.hexdigest() != self._expected_sha256:
            raise S3Error(
                "XAmzContentSHA256Mismatch",
                extra={
                    "ClientComputedContentSHA256": self._expected_sha256 or "",
                    "S3ComputedContentSHA256": self._sha256.hexdigest(),
                },
            )

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as the connection delivers it (typically 64-256 KiB pieces), without copying."""
        while not self._done:
            chunk = await self._next()
            if chunk:
                yield chunk

    async def read_all(self, limit: int) -> bytes:
        parts = []
        size = 0
        while not self._done:
            chunk = await self._next()
            size += len(chunk)
            if size > limit:
                raise S3Error("EntityTooLarge", f"This request body may be at most {limit} bytes.")
            parts.append(chunk)
        return b"".join(parts)

    async def drain(self) -> None:
        """Consume and discard what is left, so the connection can carry the next request."""
        while not self._done:
            await self._next()
