"""HTTP/1.1 keep-alive exchanges with the KS3 endpoint, on plain sockets (``ssl`` for https).

Owns: one pool of keep-alive connections per host (idle ones kept last-in first-out and checked for a
peer close before reuse; at most ``max_connections`` in use at once, waiting up to the timeout for a
slot), connect and read/write timeouts, writing one request (head and an in-memory body in one
``sendall``; a larger body streamed chunk by chunk), reading the response head, and ``HttpResponse``
(status, case-insensitive headers, the body read whole or streamed, framed by Content-Length, chunked
transfer coding or connection close per RFC 9112 section 6.3), which hands its connection back once
the body has been read to the end and closes it otherwise. A server that answers before the whole body
arrived (an error) and closes is heard: its answer is returned instead of the broken pipe. Every socket
or protocol failure surfaces as
``HttpTransportError``; an exception raised by the body's own chunk iterator passes through unchanged
(the request is abandoned and its connection closed).
Must not import: anything else from ks3sync but the leaf ks3sync.digits, nor httpx.

Why not httpx, and why not ``http.client``: for a 4 KiB signed PUT httpx cost ~430-760 us of client CPU
here (its Request/URL/Headers models, httpcore's pool scan over every connection, h11's validation),
``http.client`` ~190-200 us, of which ~45 us were its header writing (``putheader`` per field) and
header parsing (the ``email`` package's feed parser, a new buffered reader per response). KS3 needs
none of that generality: the head is one formatted string, headers are split at the first colon.
See docs/decisions.md D1.
"""

from __future__ import annotations

import io
import re
import select
import socket
import ssl
import threading
from collections.abc import Iterable, Iterator
from typing import cast, overload

from ks3sync.digits import parse_decimal

_POLLIN_OR_WORSE = select.POLLIN | select.POLLERR | select.POLLHUP | select.POLLNVAL
_MAX_LINE = 64 * 1024  # one status or header line
_MAX_HEADERS = 200
_READ_BUFFER = 64 * 1024
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_BAD_TARGET = re.compile(r"[\x00-\x20\x7f]")
_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([0-9]{3})(?: [^\r\n]*)?\r?\n")
_known_names: set[str] = set()  # header names already checked to be tokens


class HttpTransportError(Exception):
    """No usable response: connect/send/receive failed, timed out, or the peer spoke broken HTTP."""


class Headers(dict[str, str]):
    """Response headers keyed by lower-case name; ``get``/``[]``/``in`` ignore case. Repeated fields
    are joined with ", " (RFC 9110 5.3)."""

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]]) -> Headers:
        headers = cls()
        for name, value in pairs:
            lowered = name.lower()
            previous = dict.get(headers, lowered)
            dict.__setitem__(headers, lowered, value if previous is None else f"{previous}, {value}")
        return headers

    @overload  # type: ignore[override]
    def get(self, name: str) -> str | None: ...
    @overload
    def get(self, name: str, default: str) -> str: ...
    @overload
    def get(self, name: str, default: None) -> str | None: ...

    def get(self, name: str, default: str | None = None) -> str | None:
        return dict.get(self, name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return dict.__getitem__(self, name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and dict.__contains__(self, name.lower())


class _SourceFailure(Exception):
    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _transport_error(exc: BaseException) -> HttpTransportError:
    return HttpTransportError(f"{type(exc).__name__}: {exc}")


# --- wire format -----------------------------------------------------------------------------------


def encode_head(method: str, netloc: str, target: str, headers: Iterable[tuple[str, str]]) -> bytes:
    """The request line and header fields. Raises ValueError for a target or field that would change
    the message's meaning on the wire (spaces or controls in the target, CR/LF/NUL in a value, a
    name that is not a token)."""
    if _BAD_TARGET.search(target):
        raise ValueError(f"request target {target[:80]!r} contains spaces or control characters")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {netloc}"]
    for name, value in headers:
        if name not in _known_names:
            if not _TOKEN.fullmatch(name):
                raise ValueError(f"header name {name!r} is not a token")
            _known_names.add(name)
        if "\r" in value or "\n" in value or "\0" in value:
            raise ValueError(f"header {name}: value contains CR, LF or NUL")
        lines.append(f"{name}: {value}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1")


def _read_line(reader: io.BufferedReader) -> bytes:
    line = reader.readline(_MAX_LINE + 1)
    if len(line) > _MAX_LINE:
        raise HttpTransportError(f"LineTooLong: a response line exceeds {_MAX_LINE} bytes")
    return line


def _read_fields(reader: io.BufferedReader) -> list[tuple[str, str]]:
    """Header (or trailer) fields up to the empty line; obsolete line folding is unfolded."""
    fields: list[tuple[str, str]] = []
    while True:
        line = _read_line(reader)
        if line in (b"\r\n", b"\n"):
            return fields
        if not line.endswith(b"\n"):
            raise HttpTransportError("IncompleteRead: connection closed inside the response head")
        if len(fields) >= _MAX_HEADERS:
            raise HttpTransportError(f"TooManyHeaders: more than {_MAX_HEADERS} header fields")
        text = line.decode("latin-1")
        if text[0] in " \t" and fields:
            name, value = fields[-1]
            fields[-1] = (name, f"{value} {text.strip()}")
            continue
        name, colon, value = text.partition(":")
        if not colon or not name or name != name.strip():
            raise HttpTransportError(f"BadHeaderLine: {text[:80]!r}")
        fields.append((name, value.strip()))


def _read_head(reader: io.BufferedReader) -> tuple[int, int, Headers]:
    """(minor version, status, headers) of the final response; interim 1xx responses are skipped."""
    while True:
        line = _read_line(reader)
        if not line:
            raise HttpTransportError("RemoteDisconnected: the server closed the connection without a response")
        match = _STATUS_LINE.fullmatch(line)
        if match is None:
            raise HttpTransportError(f"BadStatusLine: {line[:80]!r}")
        fields = _read_fields(reader)
        status = int(match.group(2))
        if 100 <= status < 200:
            continue  # 100 Continue and friends: the real answer follows
        return int(match.group(1)), status, Headers.from_pairs(fields)


def _tokens(value: str | None) -> set[str]:
    return {token.strip().lower() for token in value.split(",")} if value else set()


# --- responses -------------------------------------------------------------------------------------

_LENGTH, _CHUNKED, _UNTIL_CLOSE = 0, 1, 2


class HttpResponse:
    """One response. Read it (``read``/``content``/``iter_raw``) or ``close`` it: a response left
    half-read keeps its connection (and a pool slot) until closed."""

    __slots__ = (
        "status_code", "headers", "keep_alive", "_reader", "_mode", "_remaining", "_release", "_content",
    )

    def __init__(self, method: str, version: int, status: int, headers: Headers, reader: io.BufferedReader,
                 release: _Release) -> None:
        self.status_code = status
        self.headers = headers
        self._reader = reader
        self._release: _Release | None = release
        self._content: bytes | None = None
        connection = _tokens(headers.get("connection"))
        self.keep_alive = "keep-alive" in connection if version == 0 else "close" not in connection
        self._remaining = 0
        self._mode = _LENGTH
        if method == "HEAD" or status in (204, 304):
            return  # no body, whatever the headers say
        transfer_coding = headers.get("transfer-encoding")
        if transfer_coding is not None:
            codings = [c.strip().lower() for c in transfer_coding.split(",")]
            self._mode = _CHUNKED if codings[-1] == "chunked" else _UNTIL_CLOSE
            return
        length = headers.get("content-length")
        if length is None:
            self._mode = _UNTIL_CLOSE
            return
        values = {parse_decimal(value) for value in length.split(",")}
        if len(values) != 1 or (remaining := values.pop()) is None:
            raise HttpTransportError(f"BadContentLength: {length[:40]!r}")
        self._remaining = remaining

    # --- body ---

    def _read_some(self, limit: int) -> bytes:
        """Up to ``limit`` body bytes (at least one unless the body has ended)."""
        reader = self._reader
        if self._mode == _LENGTH:
            if self._remaining == 0:
                return b""
            data = reader.read(min(limit, self._remaining))
            if not data:
                raise HttpTransportError(f"IncompleteRead: body ended {self._remaining} bytes early")
            self._remaining -= len(data)
            return data
        if self._mode == _UNTIL_CLOSE:
            return reader.read1(limit)
        if self._remaining == 0:
            line = _read_line(reader)
            size_text = line.split(b";", 1)[0].strip()
            if not size_text or not all(c in b"0123456789abcdefABCDEF" for c in size_text):
                raise HttpTransportError(f"BadChunk: {line[:40]!r}")
            size = int(size_text, 16)
            if size == 0:
                _read_fields(reader)  # trailers, ignored
                self._mode, self._remaining = _LENGTH, 0
                return b""
            self._remaining = size
        data = reader.read(min(limit, self._remaining))
        if not data:
            raise HttpTransportError("IncompleteRead: connection closed inside a chunk")
        self._remaining -= len(data)
        if self._remaining == 0 and _read_line(reader) not in (b"\r\n", b"\n"):
            raise HttpTransportError("BadChunk: chunk data not followed by CRLF")
        return data

    def read(self) -> bytes:
        if self._content is None:
            # A known length up to 16 MiB is asked for in one read (one allocation, no join).
            size = self._remaining if self._mode == _LENGTH and self._remaining <= 1 << 24 else 1 << 20
            chunks = list(self.iter_raw(max(size, 1)))
            self._content = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        return self._content

    @property
    def content(self) -> bytes:
        """The body; ``read()`` must have been called (the transport reads every non-streamed response)."""
        if self._content is None:
            raise RuntimeError("response body not read yet")
        return self._content

    def iter_raw(self, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        """The body as it arrives, in chunks of up to ``chunk_size`` bytes (no decoding of any kind)."""
        if self._content is not None:
            if self._content:
                yield self._content
            return
        while True:
            try:
                chunk = self._read_some(chunk_size)
            except (OSError, ValueError) as exc:
                self.close()
                raise _transport_error(exc) from exc
            except HttpTransportError:
                self.close()
                raise
            if not chunk:
                break
            yield chunk
        self._finish()

    iter_bytes = iter_raw  # bodies are never content-decoded (Accept-Encoding: identity)

    def _finish(self) -> None:
        """The body was read to its end: the connection may serve the next request."""
        release, self._release = self._release, None
        if release is not None:
            release.done(reusable=self.keep_alive and self._mode != _UNTIL_CLOSE)

    def close(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            # Unread bytes would be taken as the next response's start: such a connection is closed.
            release.done(reusable=False)


# --- connections and the pool ----------------------------------------------------------------------


class _Connection:
    __slots__ = ("sock", "reader")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = cast(io.BufferedReader, sock.makefile("rb", buffering=_READ_BUFFER))

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


class _Release:
    """Gives a connection back to its pool exactly once (``done``)."""

    __slots__ = ("_pool", "_netloc", "_connection")

    def __init__(self, pool: ConnectionPool, netloc: str, connection: _Connection) -> None:
        self._pool = pool
        self._netloc = netloc
        self._connection = connection

    def done(self, *, reusable: bool) -> None:
        self._pool._check_in(self._netloc, self._connection, reusable)


def _readable(sock: socket.socket) -> bool:
    """Readable now (data, end of stream or an error waiting), without blocking."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return any(events & _POLLIN_OR_WORSE for _, events in poller.poll(0))


def _peer_closed(sock: socket.socket) -> bool:
    """An idle keep-alive connection that is readable has been closed by the server (or holds bytes
    nobody asked for): either way it must not carry a request."""
    return _readable(sock)


def split_netloc(netloc: str, default_port: int) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` -> (host, port)."""
    if netloc.startswith("["):
        host, _, rest = netloc[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_text = netloc.rpartition(":") if ":" in netloc else (netloc, "", "")
    if not port_text:
        return host, default_port
    if not port_text.isdigit():
        raise ValueError(f"bad port in {netloc!r}")
    return host, int(port_text)


class ConnectionPool:
    """Keep-alive connections to one scheme's hosts; thread-safe, shared by all worker threads."""

    def __init__(self, scheme: str, *, timeout: float, connect_timeout: float, max_connections: int,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        """``ssl_context`` (https only) defaults to the system's trust store with host name checks."""
        if scheme not in ("http", "https"):
            raise ValueError(f"unsupported scheme {scheme!r}")
        self._timeout = timeout
        self._connect_timeout = min(connect_timeout, timeout)
        self._default_port = 443 if scheme == "https" else 80
        self._slots = threading.BoundedSemaphore(max_connections)
        self._lock = threading.Lock()
        self._idle: dict[str, list[_Connection]] = {}
        self._closed = False
        self._ssl_context = (ssl_context or ssl.create_default_context()) if scheme == "https" else None

    def _open(self, netloc: str) -> _Connection:
        host, port = split_netloc(netloc, self._default_port)
        sock = socket.create_connection((host, port), self._connect_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._ssl_context is not None:
                sock = self._ssl_context.wrap_socket(sock, server_hostname=host)  # handshake: connect timeout
            sock.settimeout(self._timeout)
        except BaseException:
            sock.close()
            raise
        return _Connection(sock)

    def _check_out(self, netloc: str) -> _Connection | None:
        """An idle connection to ``netloc`` that is still open, or None (open a new one). Waits up to
        the timeout for a free slot."""
        if not self._slots.acquire(timeout=self._timeout):
            raise HttpTransportError(f"PoolTimeout: no free connection within {self._timeout:g} s (pool full)")
        with self._lock:
            if self._closed:
                self._slots.release()
                raise HttpTransportError("PoolClosed: connection pool is closed")
            idle = self._idle.get(netloc)
            while idle:
                connection = idle.pop()
                if not _peer_closed(connection.sock):
                    return connection
                connection.close()
        return None

    def _check_in(self, netloc: str, connection: _Connection, reusable: bool) -> None:
        try:
            if reusable:
                with self._lock:
                    if not self._closed:
                        self._idle.setdefault(netloc, []).append(connection)
                        return
            connection.close()
        finally:
            self._slots.release()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()

    def request(
        self,
        method: str,
        netloc: str,
        target: str,
        headers: Iterable[tuple[str, str]],
        body: bytes | Iterable[bytes] | None = None,
    ) -> HttpResponse:
        """Send one request to ``netloc`` (``host[:port]``, also the Host header) for ``target`` (path and
        query, already encoded). ``headers`` must hold Content-Length when there is a body. Returns once
        the response head has arrived; raises HttpTransportError if it cannot, ValueError for a request
        that cannot be put on the wire."""
        head = encode_head(method, netloc, target, headers)
        connection = self._check_out(netloc)
        try:
            if connection is None:
                connection = self._open(netloc)
            sock = connection.sock
            early = False
            try:
                if body is None or isinstance(body, bytes):
                    # One send for head and body: no Nagle / delayed-ACK stall between them.
                    sock.sendall(head + body if body else head)
                else:
                    sock.sendall(head)
                    self._stream(sock, body)
            except OSError:
                # A server may answer before the whole body arrived (an error) and close: that answer,
                # if it can be read, says more than the broken pipe does.
                if not _readable(sock):
                    raise
                early = True
            version, status, response_headers = _read_head(connection.reader)
            response = HttpResponse(method, version, status, response_headers, connection.reader,
                                    _Release(self, netloc, connection))
            if early:
                response.keep_alive = False  # the request was cut short: this connection is done
            return response
        except _SourceFailure as failure:
            self._abandon(connection)
            raise failure.error from None
        except OSError as exc:
            self._abandon(connection)
            raise _transport_error(exc) from exc
        except BaseException:
            self._abandon(connection)
            raise

    def _abandon(self, connection: _Connection | None) -> None:
        if connection is not None:
            connection.close()
        self._slots.release()

    @staticmethod
    def _stream(sock: socket.socket, body: Iterable[bytes]) -> None:
        chunks = iter(body)
        while True:
            try:
                chunk = next(chunks)
            except StopIteration:
                return
            except Exception as exc:  # noqa: BLE001 - re-raised unchanged by request()
                # The body's own failure (a file that shrank, a read error) is not a transport failure.
                raise _SourceFailure(exc) from exc
            if chunk:
                sock.sendall(chunk)
