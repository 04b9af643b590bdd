"""HTTP/1.1 for the local server: uvicorn's httptools protocol, subclassed at a few pinned hook points.

uvicorn does the HTTP: parsing (httptools), keep-alive and its timeout, pipelining, `100 Continue`,
flow control, TLS, the task per request and its error handling, graceful shutdown. This module adds
what uvicorn's settings do not offer, as a subclass handed to uvicorn through its public
`Config(http=...)`:
- limits on what one connection may make the server hold: a request head of at most 64 KiB and 200
  fields, counted as it arrives (uvicorn buffers any size); a head complete within `head_timeout` of its
  first byte (uvicorn has no head timer); a fresh connection that never sends is closed after the
  keep-alive timeout like a kept-alive one (uvicorn arms that timer only after a response); a response
  the client stops reading drops the connection after `write_timeout` (uvicorn waits forever);
- a response that leaves part of its request body unread ends the connection (uvicorn would read and
  discard the rest, however large, to keep the connection);
- request bodies handed to the app in windows of up to 1 MiB, without a copy (uvicorn: 64 KiB, copied);
- responses written with header names in the app's spelling (uvicorn lower-cases them; the official SDK
  copies HEAD headers into a copy unless they are spelled `Content-Length`, `Date`, ...), the head in
  one write with the first body chunk, and a `ks3sync.drop` message that closes the connection without
  a response (fault injection).

The app's `receive`/`send` are `_Exchange`'s, over the state of uvicorn's request/response cycle; the
cycle class itself is uvicorn's, unchanged (no `__class__` swap). The hook points (methods overridden,
attributes read) are uvicorn internals: pyproject.toml pins the tested uvicorn range and
tests/localserver/test_uvicorn_pin.py fails, naming the pin, when the installed uvicorn is outside it or
a hook point is gone or changed (docs/decisions.md D7).

Imports nothing else from ks3sync except xmlio (the error bodies written here).
"""

from __future__ import annotations

import asyncio
import http
import logging
import re
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from ks3sync.localserver import xmlio

logger = logging.getLogger("ks3sync.localserver")

# RFC 9110 token characters only in names; no control characters but tab in values.
_BAD_NAME = re.compile(b'[\x00-\x20\x7f()<>@,;:\\[\\]={}\\\\"/?]')
_BAD_VALUE = re.compile(b"[\x00-\x08\x0a-\x1f\x7f]")
_STATUS_LINES = {
    status.value: f"HTTP/1.1 {status.value} {status.phrase}\r\n".encode("ascii") for status in http.HTTPStatus
}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


@dataclass(frozen=True, slots=True)
class Limits:
    """What one connection may make the server hold, and for how long (the idle timeout is uvicorn's
    `timeout_keep_alive`)."""

    # request line + header lines; S3 itself refuses heads over 8 KiB, presigned URLs need a few KiB
    max_head_bytes: int = 64 * 1024
    max_header_count: int = 200
    # from the first byte of a request to the end of its head
    head_timeout: float = 10.0
    # a response nobody reads: the connection is dropped once writing has waited this long
    write_timeout: float = 20.0
    # request body bytes buffered for the app before reading pauses; uvicorn's 64 KiB made every
    # receive() hand over ~64 KiB, and per-chunk overhead dominated big uploads
    body_high_water: int = 1 << 20


class _Refused(Exception):
    """Raised in a parser callback to stop parsing a request the app will never see (httptools wraps
    it in HttpParserCallbackError, which `data_received` answers with the refusal recorded first)."""


def _status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    return line if line is not None else f"HTTP/1.1 {status} \r\n".encode("ascii")


def _error_response(status: int, code: str, message: str) -> bytes:
    body = xmlio.document(f"<Error><Code>{code}</Code><Message>{xmlio.text(message)}</Message></Error>")
    return (
        _status_line(status)
        + b"Content-Type: application/xml\r\nContent-Length: "
        + str(len(body)).encode("ascii")
        + b"\r\nConnection: close\r\n\r\n"
        + body
    )


class _Exchange:
    """The app's `receive` and `send` for one uvicorn cycle. The request and response state (body,
    events, flags) stays on the cycle, where uvicorn's protocol and its error handling read it; this
    object holds only what the single write needs (the head held back, the bytes still owed)."""

    __slots__ = ("cycle", "app", "write_timeout", "head_only", "held_head", "remaining")

    def __init__(self, cycle: RequestResponseCycle, app: Any, write_timeout: float) -> None:
        self.cycle = cycle
        self.app = app
        self.write_timeout = write_timeout
        self.head_only = cycle.scope["method"] == "HEAD"
        self.held_head: bytes | None = None
        self.remaining = 0  # response body bytes still owed

    def __call__(self, scope: Any, _receive: Any, _send: Any) -> Awaitable[None]:
        """Called by uvicorn's `cycle.run_asgi` (which awaits it, and answers 500 or closes if the app
        fails) in place of the app: the app's own coroutine, with this exchange's receive and send
        instead of the cycle's."""
        run: Awaitable[None] = self.app(scope, self.receive, self.send)
        return run

    async def receive(self) -> dict[str, Any]:
        cycle = self.cycle
        if cycle.waiting_for_100_continue and not cycle.transport.is_closing():
            cycle.transport.write(_CONTINUE)
            cycle.waiting_for_100_continue = False
        if not cycle.disconnected and not cycle.response_complete:
            cycle.flow.resume_reading()
            await cycle.message_event.wait()
            cycle.message_event.clear()
        if cycle.disconnected or cycle.response_complete:
            return {"type": "http.disconnect"}
        # The buffer itself, not a copy (hashlib, fastcrc and writev take a bytearray as it is).
        body, cycle.body = cycle.body, bytearray()
        return {"type": "http.request", "body": body, "more_body": cycle.more_body}

    def _response_head(self, status: int, headers: list[tuple[bytes, bytes]]) -> bytes:
        cycle = self.cycle
        # Both patterns match single bytes, so one search over all names (and one over all values) is
        # the same check as one per header.
        if _BAD_NAME.search(b"".join(name for name, _ in headers)):
            raise RuntimeError("invalid response header name")
        if _BAD_VALUE.search(b"".join(value for _, value in headers)):
            raise RuntimeError("invalid response header value")
        if cycle.more_body:
            cycle.keep_alive = False  # the rest of the request body will not be read: end the connection
        content = [_status_line(status)]
        length = None
        has_close = False
        for name, value in headers:
            lower = name.lower()
            if lower == b"content-length":
                length = int(value)
            elif lower == b"connection" and b"close" in [
                token.strip().lower() for token in value.split(b",")
            ]:
                cycle.keep_alive = False
                has_close = True
            elif lower == b"transfer-encoding":
                raise RuntimeError("chunked responses are not supported: declare Content-Length")
            content += (name, b": ", value, b"\r\n")
        if not cycle.keep_alive and not has_close:
            content.append(b"Connection: close\r\n")
        content.append(b"\r\n")
        if self.head_only or status in (204, 304):
            self.remaining = 0
        elif length is None:
            raise RuntimeError(f"a {status} response needs Content-Length")
        else:
            self.remaining = length
        return b"".join(content)

    async def send(self, message: dict[str, Any]) -> None:
        cycle = self.cycle
        if cycle.flow.write_paused and not cycle.disconnected:
            await self._drain()
        if cycle.disconnected:
            return
        kind = message["type"]
        if kind == "http.response.body":
            if not cycle.response_started or cycle.response_complete:
                raise RuntimeError("response body outside a response")
            body = b"" if self.head_only else message.get("body", b"")
            more_body = message.get("more_body", False)
            if len(body) > self.remaining:
                raise RuntimeError("response longer than its Content-Length")
            self.remaining -= len(body)
            if not more_body and self.remaining:
                raise RuntimeError("response shorter than its Content-Length")
            head, self.held_head = self.held_head, None
            if head is not None:
                cycle.transport.write(head + body if body else head)
            elif body:
                cycle.transport.write(body)
            if not more_body:
                cycle.response_complete = True
                cycle.message_event.set()
                if not cycle.keep_alive:
                    cycle.transport.close()
                cycle.on_response()  # uvicorn's protocol: the next pipelined request, or the keep-alive timer
        elif kind == "http.response.start":
            if cycle.response_started:
                raise RuntimeError("response started twice")
            cycle.response_started = True
            cycle.waiting_for_100_continue = False
            self.held_head = self._response_head(message["status"], message.get("headers", []))
        elif kind == "ks3sync.drop":
            if not cycle.response_started:
                cycle.disconnected = cycle.response_complete = True
                cycle.transport.abort()
        else:
            raise RuntimeError(f"unknown message {kind!r}")

    async def _drain(self) -> None:
        """Wait until the transport takes writes again; a client that read nothing for the write
        timeout is dropped (uvicorn's own drain waits forever)."""
        cycle = self.cycle
        try:
            await asyncio.wait_for(cycle.flow.drain(), self.write_timeout)
        except TimeoutError:
            logger.info(
                "dropped %s: it read nothing of its response for %g s",
                cycle.scope.get("client"),
                self.write_timeout,
            )
            cycle.disconnected = True
            cycle.transport.abort()


class KS3HttpProtocol(HttpToolsProtocol):
    """One client connection. `protocol_class(limits)` makes the class a server passes to uvicorn."""

    limits: ClassVar[Limits] = Limits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Armed only when a head spans reads (most arrive in one): no timer set and cancelled per request.
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_begun = False
        # Head bytes are counted from the end of the previous message (or the connection's start) to the
        # end of this head, read by read, so httptools never holds more than one read past the limit.
        self._in_head = True
        self._head_bytes = 0
        # A head that begins in the read that ended the previous message (pipelining) was not counted
        # from its first byte: the read number tells, and such a head is measured exactly at its end.
        self._reads = 0
        self._message_end_read = -1
        self._head_uncounted = False
        self._refusal: tuple[int, str, str] | None = None  # set by a callback, answered by data_received
        self._refused = False

    # ------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # uvicorn arms its keep-alive timer after each response only: a connection that never sends a
        # byte would stay open for good. The first byte cancels it, as for a kept-alive connection.
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        self._unset_keepalive_if_required()
        self._reads += 1
        if self._in_head:
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(400, "InvalidRequest", "Protocol upgrades and CONNECT are not supported.")
        except httptools.HttpParserError as exc:
            refusal = self._refusal
            if refusal is None:
                logger.info("unparsable request from %s: %r (%r)", self.client, exc, exc.__context__)
                refusal = (400, "BadRequest", "The request is not valid HTTP/1.1.")
            self._refuse(*refusal)
        else:
            if self._in_head and self._head_bytes > self.limits.max_head_bytes:
                self._refuse(*self._too_large())
            elif self._head_begun and self._head_timer is None:  # the head's first byte came in this read
                self._head_timer = self.loop.call_later(self.limits.head_timeout, self._head_timed_out)

    # ------------------------------------------------------------ httptools callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_begun = True
        self._head_uncounted = self._reads == self._message_end_read

    def on_header(self, name: bytes, value: bytes) -> None:
        # Stores the header where uvicorn's on_headers_complete reads it, as uvicorn's own on_header does;
        # not calling it saves a Python call per header (~8 per request), with the count check added.
        headers = self.headers
        if len(headers) >= self.limits.max_header_count:
            self._stop(
                400,
                "RequestHeaderSectionTooLarge",
                f"A request may carry at most {self.limits.max_header_count} header fields.",
            )
        name = name.lower()
        value = value.rstrip(b" \t")  # llhttp keeps trailing whitespace, which is not part of the value
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._head_begun = False
        self._cancel_head_timer()
        self._in_head = False
        # What arrived since the head began bounds its size; only a read that crossed the limit (it may
        # also hold body bytes), or a head not counted from its start, needs the head itself measured.
        if (
            self._head_bytes > self.limits.max_head_bytes or self._head_uncounted
        ) and self._head_size() > self.limits.max_head_bytes:
            self._stop(*self._too_large())
        if self.parser.should_upgrade():
            self._stop(400, "InvalidRequest", "Protocol upgrades and CONNECT are not supported.")
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        # uvicorn's on_body with a 1 MiB window instead of its 64 KiB (and no upgrade check: refused above)
        cycle = self.cycle
        if cycle.response_complete:
            return
        cycle.body += body
        if len(cycle.body) > self.limits.body_high_water:
            self.flow.pause_reading()
        cycle.message_event.set()

    def on_message_complete(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        self._message_end_read = self._reads
        super().on_message_complete()

    # ------------------------------------------------------------ uvicorn's request task

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        super()._start_asgi_task(cycle, _Exchange(cycle, app, self.limits.write_timeout))

    # ------------------------------------------------------------ limits and refusals

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        self._refuse(
            400,
            "RequestTimeout",
            f"The request head did not arrive within {self.limits.head_timeout:g} seconds.",
        )

    def _head_size(self) -> int:
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def _too_large(self) -> tuple[int, str, str]:
        return (
            400,
            "RequestHeaderSectionTooLarge",
            f"The request head exceeds the maximum allowed size of {self.limits.max_head_bytes} bytes.",
        )

    def _stop(self, status: int, code: str, message: str) -> None:
        """In a parser callback: stop parsing here; data_received answers."""
        self._refusal = (status, code, message)
        raise _Refused(code)

    def _refuse(self, status: int, code: str, message: str) -> None:
        """A request the app never sees: answer it (unless a response is in flight) and end the connection."""
        self._refusal = None
        if self._refused or self.transport.is_closing():
            return
        self._refused = True
        self._cancel_head_timer()
        self._unset_keepalive_if_required()
        self.flow.pause_reading()
        self.pipeline.clear()
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            if cycle.more_body:  # its own request is what broke: nobody is left to answer
                self.transport.abort()
            else:
                cycle.keep_alive = False  # finish the response in flight, then close
            return
        logger.info("refused a request from %s: %s", self.client, code)
        self.transport.write(_error_response(status, code, message))
        self.transport.close()


def protocol_class(limits: Limits) -> type[KS3HttpProtocol]:
    """The protocol class for one server: uvicorn constructs it with its own arguments only, so the
    limits travel as a class attribute."""
    return type("KS3HttpProtocol", (KS3HttpProtocol,), {"limits": limits})
