"""The sockets under httpcore: its own blocking backend, each stream wrapped to hold every exchange to its
request's budget and to know whether it carries an exchange at all.

Owns: ``Budget`` (one request's overall deadline and the bytes it may read before its response head is
complete), ``BudgetedTimeout`` (the carrier that takes a budget through httpcore's ``timeout`` request
extension down to the socket calls), ``GuardedStream``, ``KernelTimedStream`` and ``GuardedBackend``.
Imports httpcore at module level: import this module only where a connection is about to be made
(wire.py does, lazily), not with ``ks3sync.ks3``.
Must not import: anything else from ks3sync.

Why the budget lives here: httpcore bounds each socket call by the idle timeouts it is given, so a
server that sends one byte every few seconds, or interim ``100 Continue`` answers without end, never
trips them; and it hands its streams the request's own timeout values unchanged. A float that also
carries the request's budget therefore reaches every read, write, connect and TLS handshake of that
request, which clip their timeout to what is left of the deadline -- without per-thread state.

Why the guard (for the proxied routes, which keep httpcore's pool; pool.py's direct pool never polls
a connection another thread holds): httpcore's pool decides whether an idle connection was closed by
the server by asking its stream ``is_readable`` after reading the connection's state without the
connection's lock (``HTTP11Connection.has_expired``, httpcore 1.0.9). When another thread takes that
connection in between and the server answers fast (loopback), the answer makes the socket readable and
the pool closes the connection under the request waiting for it ("Bad file descriptor", or a hang until
the read timeout; encode/httpcore#1110). A stream is "in an exchange" from the first byte of a request
until the response is closed (wire.py says so with ``exchange_done``), and then, or when one began
while it looked, it says it is not readable.

Why plain direct connections keep their timeouts in the kernel (``KernelTimedStream``): a Python socket
with a timeout polls before every send and receive, and httpcore sets the timeout (an ``ioctl``) before
each; each of those system calls lets go of the GIL, and with dozens of transfer threads every let-go is
a hand-over between threads. A blocking socket with ``SO_RCVTIMEO``/``SO_SNDTIMEO`` makes one call per
send or receive and is held to the same limits (set with ``setsockopt``, which keeps the GIL, only when
the limit changes). TLS streams stay on httpcore's backend: an ``SSLSocket`` in blocking mode retries a
receive the kernel timed out, so the limit would not hold (docs/decisions.md D23).

Why writes are held back: h11 hands the head and the body to the socket as two writes; held until
``COALESCE`` bytes are pending or the answer is awaited, a head and a small body leave in one send.
"""

from __future__ import annotations

import select
import socket
import ssl
import struct
import time
import typing

import httpcore

COALESCE = 64 * 1024
# Bytes that may arrive before the final response head is complete: h11 refuses a head still
# incomplete past 100 KiB and httpcore reads 64 KiB at a time, so an honest answer (a few interim 1xx
# heads of a few dozen bytes, then its own head) stays far below this; a stream of interim answers
# (each a complete head, which h11's cap never sees) ends here.
HEAD_ALLOWANCE = 256 * 1024


class Budget:
    """What one request may still spend. ``seconds`` is the whole allowance (grown by ``extend`` once
    the response says how long its body is); ``head_done`` is set when the response head was read."""

    __slots__ = ("seconds", "deadline", "head_left", "head_done", "read_size")

    def __init__(self, seconds: float, head_allowance: int = HEAD_ALLOWANCE) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.head_left = head_allowance
        self.head_done = False
        # Bytes asked of the socket per read once the head is in (0: what httpcore asks, 64 KiB). A large
        # body read 1 MiB at a time costs h11 and httpcore a sixteenth of the events (wire.py).
        self.read_size = 0

    def extend(self, seconds: float) -> None:
        self.seconds += seconds
        self.deadline += seconds

    def clip(self, timeout: float | None, error: type[Exception]) -> float:
        """``timeout`` shortened to the time left; ``error`` if none is left."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise error(f"request deadline passed ({self.seconds:.1f} s for the whole exchange)")
        return left if timeout is None or left < timeout else float(timeout)

    def received(self, count: int) -> None:
        if self.head_done:
            return
        self.head_left -= count
        if self.head_left < 0:
            raise httpcore.RemoteProtocolError(
                f"more than {HEAD_ALLOWANCE // 1024} KiB arrived before the final response head "
                "(interim 1xx answers without end?)"
            )


class BudgetedTimeout(float):
    """A timeout in seconds that also names the request's budget (see the module docstring)."""

    __slots__ = ("budget",)
    budget: Budget

    def __new__(cls, seconds: float, budget: Budget) -> BudgetedTimeout:
        value = super().__new__(cls, seconds)
        value.budget = budget
        return value


def _budget(timeout: float | None) -> Budget | None:
    return timeout.budget if isinstance(timeout, BudgetedTimeout) else None


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
        budget = _budget(timeout)
        if budget is None:
            return self._inner.read(max_bytes, timeout)
        if budget.head_done and budget.read_size > max_bytes:
            max_bytes = budget.read_size  # h11 takes whatever arrives; it never reads past the body
        try:
            data = self._inner.read(max_bytes, budget.clip(timeout, httpcore.ReadTimeout))
        except httpcore.ReadTimeout:
            budget.clip(None, httpcore.ReadTimeout)  # says so when it was the deadline that ran out
            raise
        budget.received(len(data))
        return data

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
        self._send(buffer, timeout)

    def _flush(self, timeout: float | None) -> None:
        pending = self._pending
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        self._pending, self._pending_size = [], 0
        self._send(data, timeout)

    def _send(self, data: bytes, timeout: float | None) -> None:
        budget = _budget(timeout)
        if budget is None:
            self._inner.write(data, timeout)
            return
        try:
            self._inner.write(data, budget.clip(timeout, httpcore.WriteTimeout))
        except httpcore.WriteTimeout:
            budget.clip(None, httpcore.WriteTimeout)
            raise

    def close(self) -> None:
        self._pending, self._pending_size = [], 0
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        budget = _budget(timeout)
        if budget is not None:
            timeout = budget.clip(timeout, httpcore.ConnectTimeout)
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


_NO_LIMIT = struct.pack("@ll", 0, 0)  # a zero ``struct timeval``: wait as long as it takes


def _timeval(timeout: float | None) -> bytes:
    """``timeout`` as the ``struct timeval`` of SO_RCVTIMEO / SO_SNDTIMEO; never zero for a number
    (zero means no limit there)."""
    if timeout is None:
        return _NO_LIMIT
    micros = max(1, round(timeout * 1_000_000))
    return struct.pack("@ll", micros // 1_000_000, micros % 1_000_000)


class KernelTimedStream(httpcore.NetworkStream):
    """A plain TCP connection on a blocking socket whose send and receive limits the kernel keeps
    (module docstring). A limit that runs out is ``httpcore.ReadTimeout``/``WriteTimeout``; any other
    socket error ``ReadError``/``WriteError``, as on httpcore's own streams."""

    def __init__(self, sock: socket.socket) -> None:
        sock.settimeout(None)
        self._sock = sock
        self._limits = {socket.SO_RCVTIMEO: _NO_LIMIT, socket.SO_SNDTIMEO: _NO_LIMIT}

    def _hold_to(self, option: int, timeout: float | None) -> None:
        """Set the kernel's limit ``option`` to ``timeout``, only when it changes."""
        limit = _timeval(timeout)
        if limit != self._limits[option]:
            self._sock.setsockopt(socket.SOL_SOCKET, option, limit)
            self._limits[option] = limit

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            self._hold_to(socket.SO_RCVTIMEO, timeout)
            return self._sock.recv(max_bytes)
        except BlockingIOError as exc:  # EAGAIN: the receive limit ran out
            raise httpcore.ReadTimeout(f"no data within {timeout:g} s") from exc
        except OSError as exc:
            raise httpcore.ReadError(str(exc) or type(exc).__name__) from exc

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        view = memoryview(buffer)
        try:
            self._hold_to(socket.SO_SNDTIMEO, timeout)
            while view:
                view = view[self._sock.send(view) :]
        except BlockingIOError as exc:  # EAGAIN: the send limit ran out
            raise httpcore.WriteTimeout(f"could not send within {timeout:g} s") from exc
        except OSError as exc:
            raise httpcore.WriteError(str(exc) or type(exc).__name__) from exc

    def close(self) -> None:
        self._sock.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.UnsupportedProtocol(
            "TLS connections are made by httpcore's backend (module docstring)"
        )

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "is_readable":  # data or EOF waiting on an idle connection: the server closed it
            poller = select.poll()
            poller.register(self._sock, select.POLLIN)
            return bool(poller.poll(0))
        if info == "socket":
            return self._sock
        if info == "client_addr":
            return self._sock.getsockname()
        if info == "server_addr":
            return self._sock.getpeername()
        return None


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore's own blocking backend, its streams wrapped in ``GuardedStream``; with ``kernel_timeouts``
    (plain connections only: no ``start_tls`` follows) the sockets are ``KernelTimedStream``s."""

    def __init__(self, *, kernel_timeouts: bool = False) -> None:
        self._inner = httpcore.SyncBackend()
        self._kernel_timeouts = kernel_timeouts

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        budget = _budget(timeout)
        if budget is not None:
            timeout = budget.clip(timeout, httpcore.ConnectTimeout)
        stream = self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        if self._kernel_timeouts:
            stream = KernelTimedStream(stream.get_extra_info("socket"))  # httpcore connected it
        return GuardedStream(stream)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.UnsupportedProtocol("unix sockets are not used")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)
