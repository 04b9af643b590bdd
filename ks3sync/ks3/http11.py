"""HTTP/1.1 keep-alive exchanges with the KS3 endpoint, over the standard library's ``http.client``.

Owns: one pool of keep-alive connections per host (idle ones kept last-in first-out and checked for a
peer close before reuse; at most ``max_connections`` in use at once, waiting up to the timeout for a
slot), connect and read/write timeouts, sending one request (head and an in-memory body in one
``send``; a larger body streamed chunk by chunk), and ``HttpResponse`` (status, case-insensitive headers,
the body read whole or streamed), which hands its connection back once the body has been read to the
end and closes it otherwise. Every socket or protocol failure surfaces as ``HttpTransportError``; an
exception raised by the body's own chunk iterator passes through unchanged (the request is abandoned
and its connection closed).
Must not import: anything else from ks3sync, nor httpx.

Why not httpx: on this machine a 4 KiB signed PUT through httpx cost ~430-760 us of client CPU (its
Request/URL/Headers models, httpcore's pool scan over every connection per request, h11's header
validation), versus ~190-200 us for the same PUT through ``http.client`` (docs/decisions.md D1).
"""

from __future__ import annotations

import http.client
import select
import socket
import ssl
import threading
from collections.abc import Iterable, Iterator
from typing import overload

_POLLIN_OR_WORSE = select.POLLIN | select.POLLERR | select.POLLHUP | select.POLLNVAL


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


class HttpResponse:
    """One response. Read it (``read``/``content``/``iter_raw``) or ``close`` it: a response left
    half-read keeps its connection (and a pool slot) until closed."""

    __slots__ = ("status_code", "headers", "_raw", "_release", "_content")

    def __init__(self, raw: http.client.HTTPResponse, release: _Release) -> None:
        self.status_code = raw.status
        self.headers = Headers.from_pairs(raw.getheaders())
        self._raw = raw
        self._release: _Release | None = release
        self._content: bytes | None = None

    def read(self) -> bytes:
        if self._content is None:
            try:
                self._content = self._raw.read()
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise _transport_error(exc) from exc
            self._finish()
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
        try:
            while chunk := self._raw.read(chunk_size):
                yield chunk
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise _transport_error(exc) from exc
        self._finish()

    iter_bytes = iter_raw  # bodies are never content-decoded (Accept-Encoding: identity)

    def _finish(self) -> None:
        """The body was read to its end: the connection may serve the next request."""
        release, self._release = self._release, None
        if release is not None:
            release.done(reusable=not self._raw.will_close)

    def close(self) -> None:
        release, self._release = self._release, None
        if release is None:
            return
        # Unread bytes would be taken as the next response's start: such a connection is closed.
        reusable = self._raw.isclosed() and not self._raw.will_close
        if not reusable:
            self._raw.close()
        release.done(reusable=reusable)


class _Release:
    """Gives a connection back to its pool exactly once (``done``)."""

    __slots__ = ("_pool", "_netloc", "_connection")

    def __init__(self, pool: ConnectionPool, netloc: str, connection: http.client.HTTPConnection) -> None:
        self._pool = pool
        self._netloc = netloc
        self._connection = connection

    def done(self, *, reusable: bool) -> None:
        self._pool._check_in(self._netloc, self._connection, reusable)


def _peer_closed(sock: socket.socket) -> bool:
    """An idle keep-alive connection that is readable has been closed by the server (or holds bytes
    nobody asked for): either way it must not carry a request."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return any(events & _POLLIN_OR_WORSE for _, events in poller.poll(0))


class ConnectionPool:
    """Keep-alive connections to one scheme's hosts; thread-safe, shared by all worker threads."""

    def __init__(self, scheme: str, *, timeout: float, connect_timeout: float, max_connections: int) -> None:
        if scheme not in ("http", "https"):
            raise ValueError(f"unsupported scheme {scheme!r}")
        self._scheme = scheme
        self._timeout = timeout
        self._connect_timeout = min(connect_timeout, timeout)
        self._slots = threading.BoundedSemaphore(max_connections)
        self._lock = threading.Lock()
        self._idle: dict[str, list[http.client.HTTPConnection]] = {}
        self._closed = False
        self._ssl_context = ssl.create_default_context() if scheme == "https" else None

    # --- connections ----------------------------------------------------------------------------

    def _connect(self, address: tuple[str, int], _timeout: object = None, source: object = None) -> socket.socket:
        # Connecting may take connect_timeout; every later send/receive gets the full timeout.
        sock = socket.create_connection(address, self._connect_timeout)
        sock.settimeout(self._timeout)
        return sock

    def _new_connection(self, netloc: str) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection
        if self._ssl_context is not None:
            connection = http.client.HTTPSConnection(netloc, timeout=self._timeout, context=self._ssl_context)
        else:
            connection = http.client.HTTPConnection(netloc, timeout=self._timeout)
        connection._create_connection = self._connect  # type: ignore[attr-defined]
        return connection

    def _check_out(self, netloc: str) -> http.client.HTTPConnection:
        """An idle connection to ``netloc`` if one is still open, else a new (unconnected) one. Waits
        up to the timeout for a free slot."""
        if not self._slots.acquire(timeout=self._timeout):
            raise HttpTransportError(f"no free connection within {self._timeout:g} s (pool full)")
        with self._lock:
            if self._closed:
                self._slots.release()
                raise HttpTransportError("connection pool is closed")
            idle = self._idle.get(netloc)
            while idle:
                connection = idle.pop()
                if connection.sock is not None and not _peer_closed(connection.sock):
                    return connection
                connection.close()
        return self._new_connection(netloc)

    def _check_in(self, netloc: str, connection: http.client.HTTPConnection, reusable: bool) -> None:
        try:
            if reusable and connection.sock is not None:
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

    # --- one exchange ---------------------------------------------------------------------------

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
        the response head has arrived; raises HttpTransportError if it cannot."""
        connection = self._check_out(netloc)
        try:
            connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            connection.putheader("Host", netloc)
            for name, value in headers:
                connection.putheader(name, value)
            if body is None or isinstance(body, bytes):
                # One send for head and body: no Nagle / delayed-ACK stall between them.
                connection.endheaders(body)
            else:
                connection.endheaders()
                self._stream(connection, body)
            raw = connection.getresponse()
        except _SourceFailure as failure:
            self._abandon(connection)
            raise failure.error from None
        except (OSError, http.client.HTTPException) as exc:
            self._abandon(connection)
            raise _transport_error(exc) from exc
        except BaseException:
            # Includes ValueError: http.client refuses a header or target it cannot put on the wire.
            self._abandon(connection)
            raise
        return HttpResponse(raw, _Release(self, netloc, connection))

    def _abandon(self, connection: http.client.HTTPConnection) -> None:
        connection.close()
        self._slots.release()

    @staticmethod
    def _stream(connection: http.client.HTTPConnection, body: Iterable[bytes]) -> None:
        sock = connection.sock
        assert sock is not None  # endheaders() connected it
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
