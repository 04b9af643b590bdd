"""Keep-alive connections to one origin (scheme, host, port) for direct routes, each an
``httpcore.HTTPConnection`` (httpcore connects, does TLS and all HTTP/1.1 framing through h11).

Owns: which connection a request goes out on and when one is opened, reused or dropped. A request takes
the most recently returned idle connection (LIFO keeps few connections warm) after one check that it has
not expired (``keepalive_expiry``) and that the server has not closed it (one poll of its socket, made
outside the lock); otherwise it opens a new one, up to ``max_connections`` open at once, beyond which it
waits up to the request's pool timeout (then ``httpcore.PoolTimeout``). A connection goes back to the idle
list when its response is closed after being read to the end, and is dropped otherwise (half read, a
``Connection: close`` answer, a failure).
Imports httpcore at module level: imported only where a connection is about to be made (wire.py).
Must not import: anything else from ks3sync.

Why not ``httpcore.ConnectionPool`` for direct routes: on every request and every response close it
walks all its connections and all queued requests under one lock, polling each idle socket, so its
cost per request grows with the connections open and the threads waiting (measured in docs/decisions.md
D19). Here each
request costs one lock round trip to take a connection and one to give it back. An idle connection here
belongs to nobody until it is taken, so the check-while-another-thread-sends race of that pool
(network.py) cannot happen. Proxied routes keep httpcore's ``HTTPProxy``.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore


class _ReturningStream:
    """A response body that hands its connection back to the pool once closed."""

    __slots__ = ("_inner", "_pool", "_connection")

    def __init__(self, inner: Any, pool: OriginPool, connection: httpcore.HTTPConnection) -> None:
        self._inner = inner
        self._pool = pool
        self._connection: httpcore.HTTPConnection | None = connection

    def __iter__(self) -> Iterator[bytes]:
        inner: Iterable[bytes] = self._inner
        yield from inner

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            self._inner.close()  # httpcore marks the connection idle, or closes it
        finally:
            self._pool.give_back(connection)


class OriginPool:
    """Connections to one origin, shared by threads. ``handle_request`` has the shape of httpcore's
    ``ConnectionPool.handle_request`` (the request's ``timeout`` extension: ``pool`` for the wait for a
    connection; the others go down to the sockets)."""

    def __init__(
        self,
        origin: httpcore.Origin,
        *,
        ssl_context: ssl.SSLContext | None,
        max_connections: int,
        keepalive_expiry: float,
        network_backend: httpcore.NetworkBackend,
    ) -> None:
        if max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, not {max_connections}")
        self._origin = origin
        self._ssl_context = ssl_context
        self._max = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._backend = network_backend
        self._lock = threading.Lock()
        self._returned = threading.Condition(self._lock)
        self._idle: list[httpcore.HTTPConnection] = []
        self._open = 0  # connections that exist (idle, in use, or being opened)
        self._waiting = 0  # requests waiting for a connection
        self._closed = False

    @property
    def waiting(self) -> int:
        with self._lock:
            return self._waiting

    def handle_request(self, request: httpcore.Request) -> httpcore.Response:
        timeouts = request.extensions.get("timeout", {})
        connection = self._take(timeouts.get("pool"))
        try:
            response = connection.handle_request(request)
        except BaseException:
            self.give_back(connection)  # closed by httpcore on failure: dropped
            raise
        response.stream = _ReturningStream(response.stream, self, connection)
        return response

    def _take(self, timeout: float | None) -> httpcore.HTTPConnection:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while True:
                if self._closed:
                    raise RuntimeError("the client is closed")
                if self._idle:
                    connection: httpcore.HTTPConnection | None = self._idle.pop()
                    break
                if self._open < self._max:
                    self._open += 1
                    connection = None
                    break
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise httpcore.PoolTimeout(f"no connection free within {timeout} s ({self._max} in use)")
                self._waiting += 1
                try:
                    self._returned.wait(left)
                finally:
                    self._waiting -= 1
        if connection is not None:
            if not connection.has_expired():  # one poll: did the server close it while it was idle?
                return connection
            connection.close()  # its place is taken by a new connection below
        return httpcore.HTTPConnection(
            self._origin,
            ssl_context=self._ssl_context,
            keepalive_expiry=self._keepalive_expiry,
            network_backend=self._backend,
        )

    def give_back(self, connection: httpcore.HTTPConnection) -> None:
        """Called once per ``_take``: the connection is idle again (response read to the end), or dropped."""
        reusable = connection.is_idle() and not connection.is_closed()
        with self._lock:
            if reusable and not self._closed:
                self._idle.append(connection)
                connection = None  # type: ignore[assignment]
            else:
                self._open -= 1
            self._returned.notify()
        if connection is not None:
            connection.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            self._open -= len(idle)
            self._returned.notify_all()
        for connection in idle:
            connection.close()
