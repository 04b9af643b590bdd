"""The sockets under httpcore: its own blocking backend, each stream wrapped to know whether it carries an
exchange.

Owns: ``GuardedBackend`` and ``GuardedStream``. A stream is "in an exchange" from the first byte of a
request until the response is closed (wire.py says so with ``exchange_done``); it reports itself
readable only if no exchange was under way before or after it looked, nor began while it did.
Imports httpcore at module level: import this module only where a connection is about to be made
(wire.py does, lazily), not with ``ks3sync.ks3``.
Must not import: anything else from ks3sync.

Why the guard: httpcore's pool decides whether an idle connection was closed by the server by asking
its stream ``is_readable`` after reading the connection's state without the connection's lock
(``HTTP11Connection.has_expired``, httpcore 1.0.9). When another thread takes that connection in
between and the server answers fast (loopback), the answer makes the socket readable and the pool
closes the connection under the request waiting for it ("Bad file descriptor", or a hang until the
read timeout; encode/httpcore#1110; tests/ks3/test_ks3_wire.py::test_threads_share_the_pool failed
about one run in three without this). A stream that carries an exchange is never idle, so it says it
is not readable.
"""

from __future__ import annotations

import ssl
import time
import typing

import httpcore

# Writes are held back until this much is pending or the response is awaited: a request head and a
# small body then leave in one send (one segment, one wake-up of the server) instead of two.
COALESCE = 64 * 1024


class GuardedStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner
        self.in_exchange = False
        self._exchanges = 0  # exchanges begun: one that begins while is_readable polls changes it
        self._pending: list[bytes] = []
        self._pending_size = 0

    def exchange_done(self) -> None:
        """The response on this stream was read or closed: from now on it may be idle."""
        self.in_exchange = False

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self._pending:
            try:
                self._flush(timeout)
            except httpcore.WriteError:
                pass  # as httpcore does: a server that answered early and closed is heard by the read
        return self._inner.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not self.in_exchange:
            self.in_exchange = True
            self._exchanges += 1
        if not buffer:
            return
        if self._pending_size + len(buffer) <= COALESCE:
            self._pending.append(buffer)
            self._pending_size += len(buffer)
            return
        if self._pending:
            self._flush(timeout)
        self._inner.write(buffer, timeout)

    def _flush(self, timeout: float | None) -> None:
        pending = self._pending
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        self._pending, self._pending_size = [], 0
        self._inner.write(data, timeout)

    def close(self) -> None:
        self._pending, self._pending_size = [], 0
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        return GuardedStream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> typing.Any:
        if info != "is_readable":
            return self._inner.get_extra_info(info)
        begun = self._exchanges
        if self.in_exchange:
            return False
        readable = self._inner.get_extra_info(info)
        # The poll may have seen the answer to a request another thread sent meanwhile: not idle.
        return readable and not self.in_exchange and self._exchanges == begun


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore's own blocking backend, its streams wrapped in ``GuardedStream``."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        return GuardedStream(self._inner.connect_tcp(host, port, timeout, local_address, socket_options))

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.UnsupportedProtocol("unix sockets are not used")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)
