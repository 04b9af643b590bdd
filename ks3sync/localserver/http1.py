"""HTTP/1.1 for the local server: an asyncio protocol on httptools' public parser API.

Owns everything between the socket and the app: parsing requests, the limits on what a client may make
the server hold (request-head size, head time, idle keep-alive time, a response nobody reads), `100
Continue`, one request at a time per connection (a pipelined one waits its turn), flow control both ways,
and writing responses: the head keeps the app's header spelling (the official SDK copies HEAD headers
into a copy unless they are spelled `Content-Length`, `Date`, ...) and leaves in one write with the first
body chunk. httpserver.py runs these connections on a listening socket.

The app interface is ASGI-shaped (`await app(scope, receive, send)`) with three liberties: request body
chunks are bytearrays handed over without a copy; a response must declare its Content-Length (every KS3
response does; 204, 304 and HEAD excepted); a `ks3sync.drop` message closes the connection without any
response (fault injection). A response that leaves part of its request body unread closes the
connection, so unread bytes are never taken for the next request.

Why not uvicorn: the server needs the header spelling, the single write, the drop and the head limits,
and uvicorn's public interface offers none of them; reaching them meant subclassing its private protocol
classes (docs/decisions.md D7). httptools' parser and asyncio's Protocol are public and stable.

Imports nothing else from ks3sync except xmlio (the error bodies written here) and, for types only,
httpserver.
"""

from __future__ import annotations

import asyncio
import http
import logging
import re
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httptools

from ks3sync.localserver import xmlio

if TYPE_CHECKING:
    from ks3sync.localserver.httpserver import HttpServer

logger = logging.getLogger("ks3sync.localserver")

Scope = dict[str, Any]
App = Callable[[Scope, Callable[[], Awaitable[dict[str, Any]]], Callable[[dict[str, Any]], Awaitable[None]]],
               Awaitable[None]]

# RFC 9110 token characters only in names; no control characters but tab in values.
_BAD_NAME = re.compile(b'[\x00-\x20\x7f()<>@,;:\\[\\]={}\\\\"/?]')
_BAD_VALUE = re.compile(b"[\x00-\x08\x0a-\x1f\x7f]")
_STATUS_LINES = {
    status.value: f"HTTP/1.1 {status.value} {status.phrase}\r\n".encode("ascii") for status in http.HTTPStatus
}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


@dataclass(frozen=True, slots=True)
class Limits:
    """What one connection may make the server hold, and for how long."""

    # request line + header lines; S3 itself refuses heads over 8 KiB, presigned URLs need a few KiB
    max_head_bytes: int = 64 * 1024
    max_header_count: int = 200
    # from the first byte of a request to the end of its head
    head_timeout: float = 10.0
    # a kept-alive connection with no request
    idle_timeout: float = 30.0
    # a response nobody reads: the connection is dropped once writing has waited this long
    write_timeout: float = 20.0
    # request body bytes buffered for the app before reading pauses; uvicorn's 64 KiB made every
    # receive() hand over ~64 KiB, and per-chunk overhead dominated big uploads
    body_high_water: int = 1 << 20


def _status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    return line if line is not None else f"HTTP/1.1 {status} \r\n".encode("ascii")


def _error_response(status: int, code: str, message: str) -> bytes:
    body = xmlio.document(f"<Error><Code>{code}</Code><Message>{xmlio.text(message)}</Message></Error>")
    return (_status_line(status) + b"Content-Type: application/xml\r\nContent-Length: "
            + str(len(body)).encode("ascii") + b"\r\nConnection: close\r\n\r\n" + body)


class _Exchange:
    """One request and its response: the ASGI `receive` and `send` of one app call."""

    __slots__ = ("conn", "transport", "scope", "head_only", "body", "more_body", "event", "keep_alive",
                 "waiting_for_continue", "disconnected", "response_started", "response_complete", "remaining",
                 "held_head")

    def __init__(self, conn: HttpConnection, scope: Scope, keep_alive: bool, expects_continue: bool) -> None:
        self.conn = conn
        self.transport = conn.transport
        self.scope = scope
        self.head_only = scope["method"] == "HEAD"
        self.body = bytearray()
        self.more_body = True
        self.event = asyncio.Event()
        self.keep_alive = keep_alive
        self.waiting_for_continue = expects_continue
        self.disconnected = False
        self.response_started = False
        self.response_complete = False
        self.remaining = 0  # response body bytes still owed
        self.held_head: bytes | None = None

    async def receive(self) -> dict[str, Any]:
        if self.waiting_for_continue and not self.transport.is_closing():
            self.transport.write(_CONTINUE)
            self.waiting_for_continue = False
        if not self.disconnected and not self.response_complete:
            self.conn.resume_reading()
            await self.event.wait()
            self.event.clear()
        if self.disconnected or self.response_complete:
            return {"type": "http.disconnect"}
        body, self.body = self.body, bytearray()
        return {"type": "http.request", "body": body, "more_body": self.more_body}

    def _response_head(self, status: int, headers: list[tuple[bytes, bytes]]) -> bytes:
        # Both patterns match single bytes, so one search over all names (and one over all values) is
        # the same check as one per header.
        if _BAD_NAME.search(b"".join(name for name, _ in headers)):
            raise RuntimeError("invalid response header name")
        if _BAD_VALUE.search(b"".join(value for _, value in headers)):
            raise RuntimeError("invalid response header value")
        if self.more_body:
            self.keep_alive = False  # the rest of the request body will not be read: end the connection
        content = [_status_line(status)]
        length = None
        has_close = False
        for name, value in headers:
            lower = name.lower()
            if lower == b"content-length":
                length = int(value)
            elif lower == b"connection" and b"close" in [token.strip().lower() for token in value.split(b",")]:
                self.keep_alive = False
                has_close = True
            elif lower == b"transfer-encoding":
                raise RuntimeError("chunked responses are not supported: declare Content-Length")
            content += (name, b": ", value, b"\r\n")
        if not self.keep_alive and not has_close:
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
        kind = message["type"]
        if self.conn.write_paused and not self.disconnected and not await self.conn.drain():
            self.disconnected = True
        if self.disconnected:
            return
        if kind == "http.response.body":
            if not self.response_started or self.response_complete:
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
                self.transport.write(head + body if body else head)
            elif body:
                self.transport.write(body)
            if not more_body:
                self.response_complete = True
                self.event.set()
                self.conn.response_done(self)
        elif kind == "http.response.start":
            if self.response_started:
                raise RuntimeError("response started twice")
            self.response_started = True
            self.waiting_for_continue = False
            self.held_head = self._response_head(message["status"], message.get("headers", []))
        elif kind == "ks3sync.drop":
            if not self.response_started:
                self.disconnected = self.response_complete = True
                self.transport.abort()
        else:
            raise RuntimeError(f"unknown message {kind!r}")


class HttpConnection(asyncio.Protocol):
    """One client connection: parser callbacks, timers, and the exchanges it carries in order."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.limits = server.limits
        self.loop = server.loop
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.parser = httptools.HttpRequestParser(self)
        if hasattr(self.parser, "set_dangerous_leniencies"):
            # bytes after a `Connection: close` request are ignored instead of failing the parse
            self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        self.client: tuple[str, int] | None = None
        self.local: tuple[str, int] | None = None
        self.active: _Exchange | None = None  # the exchange the app is working on
        self.parsing: _Exchange | None = None  # the exchange whose request is being received
        self.pipeline: deque[_Exchange] = deque()
        self.read_paused = False
        self.write_paused = False
        self._writable: asyncio.Event | None = None
        # When the current wait ends (checked by the server's sweep, so a request costs a timestamp, not a
        # timer): idle until a request begins, or the head's deadline; None while a request is served.
        self.deadline: float | None = None
        self._deadline_is_head = False
        # Head bytes are counted from the end of the previous message (or the connection's start) to the end
        # of this head; the head timer runs from the head's first byte.
        self._in_head = True
        self._head_begun = False
        self._head_bytes = 0
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._header_bytes = 0
        self._expects_continue = False
        self._failure: tuple[int, str, str] | None = None  # set by callbacks, answered after the feed
        self._failed = False
        self._closed = False

    # ------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections.add(self)
        self.client = transport.get_extra_info("peername")
        self.local = transport.get_extra_info("sockname")
        self._wait(self.limits.idle_timeout, head=False)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.server.connections.discard(self)
        self.deadline = None
        for exchange in (self.active, self.parsing, *self.pipeline):
            if exchange is not None:
                if not exchange.response_complete:
                    exchange.disconnected = True
                exchange.event.set()
        if self._writable is not None:
            self._writable.set()

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(400, "InvalidRequest", "Protocol upgrades and CONNECT are not supported.")
        except httptools.HttpParserError:
            self._fail(400, "BadRequest", "The request is not valid HTTP/1.1.")
        if self._failure is not None:
            self._fail(*self._failure)
        elif self._in_head and self._head_bytes > self.limits.max_head_bytes:
            self._head_too_large()

    def eof_received(self) -> bool | None:
        return None  # close the transport

    def pause_writing(self) -> None:
        self.write_paused = True
        if self._writable is None:
            self._writable = asyncio.Event()
        self._writable.clear()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self._writable is not None:
            self._writable.set()

    # ------------------------------------------------------------ httptools callbacks

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._expects_continue = False
        self._header_bytes = 0
        self._head_begun = True
        if self.active is None:
            self._wait(self.limits.head_timeout, head=True)

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        headers = self._headers
        if len(headers) >= self.limits.max_header_count:
            self._failure = (400, "RequestHeaderSectionTooLarge",
                             f"A request may carry at most {self.limits.max_header_count} header fields.")
            return
        name = name.lower()
        value = value.rstrip(b" \t")  # llhttp keeps trailing whitespace, which is not part of the value
        self._header_bytes += len(name) + len(value) + 4
        if name == b"expect" and value.lower() == b"100-continue":
            self._expects_continue = True
        headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._in_head = self._head_begun = False
        if len(self._url) + self._header_bytes > self.limits.max_head_bytes:
            self._failure = self._too_large_failure()
        if self._failure is not None:
            return
        if self.active is None:
            self.deadline = None
        parser = self.parser
        if parser.should_upgrade():
            self._failure = (400, "InvalidRequest", "Protocol upgrades and CONNECT are not supported.")
            return
        try:
            url = httptools.parse_url(self._url)
        except httptools.HttpParserInvalidURLError:
            self._failure = (400, "InvalidURI", "Could not parse the request target.")
            return
        version = parser.get_http_version()
        scope: Scope = {
            "type": "http",
            "http_version": version,
            "method": parser.get_method().decode("ascii"),
            "raw_path": url.path,
            "query_string": url.query or b"",
            "headers": self._headers,
            "client": self.client,
            "server": self.local,
        }
        keep_alive = version != "1.0" and parser.should_keep_alive()
        exchange = _Exchange(self, scope, keep_alive, self._expects_continue)
        self.parsing = exchange
        if self.active is None:
            self._start(exchange)
        else:  # pipelined: it waits until the response before it is complete
            self.pipeline.append(exchange)
            self.pause_reading()

    def on_body(self, body: bytes) -> None:
        exchange = self.parsing
        if exchange is None or exchange.response_complete:
            return
        exchange.body += body
        if len(exchange.body) > self.limits.body_high_water:
            self.pause_reading()
        exchange.event.set()

    def on_message_complete(self) -> None:
        exchange = self.parsing
        self._in_head = True
        self._head_bytes = 0
        if exchange is None:
            return
        exchange.more_body = False
        exchange.event.set()

    # ------------------------------------------------------------ flow and lifecycle

    def pause_reading(self) -> None:
        if not self.read_paused and not self._closed:
            self.read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused and not self._closed and not self._failed:
            self.read_paused = False
            self.transport.resume_reading()

    async def drain(self) -> bool:
        """Wait until the transport takes writes again; False (and the connection dropped) when the client
        stopped reading for the write timeout."""
        assert self._writable is not None
        try:
            await asyncio.wait_for(self._writable.wait(), self.limits.write_timeout)
        except TimeoutError:
            logger.info("dropped %s: it read nothing of its response for %g s", self.client,
                        self.limits.write_timeout)
            self.transport.abort()
            return False
        return not self._closed

    def _start(self, exchange: _Exchange) -> None:
        self.active = exchange
        self.server.start_task(self._run(exchange))

    async def _run(self, exchange: _Exchange) -> None:
        try:
            await self.server.app(exchange.scope, exchange.receive, exchange.send)
        except Exception:  # noqa: BLE001 - a bug in the app: answer 500 if still possible, never crash
            logger.exception("exception while answering %s %r", exchange.scope["method"], exchange.scope["raw_path"])
            if not exchange.response_started and not exchange.disconnected:
                self.transport.write(_error_response(500, "InternalError", "We encountered an internal error."))
            self.transport.close()
        else:
            if not exchange.response_complete and not exchange.disconnected:
                logger.error("the app did not complete its response to %s %r", exchange.scope["method"],
                             exchange.scope["raw_path"])
                self.transport.close()

    def response_done(self, exchange: _Exchange) -> None:
        """The response is written: end the connection, start the next pipelined request, or wait idle."""
        self.active = None
        if not exchange.keep_alive or self._closed:
            self.transport.close()
            return
        if self.pipeline:
            self.resume_reading()
            self._start(self.pipeline.popleft())
            return
        self.resume_reading()
        if self._head_begun:
            self._wait(self.limits.head_timeout, head=True)  # the next head has begun arriving
        else:
            self._wait(self.limits.idle_timeout, head=False)

    def shutdown(self) -> None:
        """Graceful stop: an idle connection closes now, a busy one after its response."""
        if self.active is None:
            self.transport.close()
        else:
            self.active.keep_alive = False
            self.pipeline.clear()

    # ------------------------------------------------------------ limits and failures

    def _wait(self, seconds: float, *, head: bool) -> None:
        self.deadline = self.loop.time() + seconds
        self._deadline_is_head = head

    def expire(self) -> None:
        """The deadline passed (called by the server's sweep): an idle connection closes, a head that
        is still arriving is refused."""
        self.deadline = None
        if self._deadline_is_head:
            self._fail(400, "RequestTimeout", "The request head did not arrive within "
                                              f"{self.limits.head_timeout:g} seconds.")
        elif self.active is None and not self.pipeline:
            self.transport.close()

    def _too_large_failure(self) -> tuple[int, str, str]:
        return (400, "RequestHeaderSectionTooLarge",
                f"The request head exceeds the maximum allowed size of {self.limits.max_head_bytes} bytes.")

    def _head_too_large(self) -> None:
        self._fail(*self._too_large_failure())

    def _fail(self, status: int, code: str, message: str) -> None:
        """A request the app never sees: answer it (unless a response is in flight) and end the connection."""
        self._failure = None
        if self._closed or self._failed:
            return
        self._failed = True
        self.deadline = None
        self.pause_reading()
        self.parser = _Discard()  # type: ignore[assignment]  # nothing after this is parsed
        self.pipeline.clear()
        active = self.active
        if active is not None:
            if active.more_body:  # its own request is what broke: nobody is left to answer
                self.transport.abort()
            else:
                active.keep_alive = False  # finish the response in flight, then close
            return
        logger.info("refused a request from %s: %s", self.client, code)
        self.transport.write(_error_response(status, code, message))
        self.transport.close()


class _Discard:
    """Stands in for the parser once a connection is failing: input is ignored."""

    def feed_data(self, data: bytes) -> None:
        return None
