"""A scripted HTTP/1.1 server on loopback, for the client tests whose point is a reply the local server
cannot be made to give on cue: 503 then 200, an answer lost after the request arrived, a body cut
short, a wrong ETag or CRC, a stall past the client's timeout. The client talks to it over a real
socket, so its connection pool, keep-alive handling and error mapping are what is tested.

Each request pops the next entry of the script: a ``Reply``, a function of the request returning one,
``Raw(bytes)`` (an answer sent verbatim), ``Early(reply)`` (answered before the body is read), ``DROP``
(read the request, close without answering), ``Stall(seconds)`` (read it, say nothing for that long,
then close) or ``Endless(head, piece, interval)`` (a hostile or broken server: ``head`` verbatim, then
``piece`` again and again, ``interval`` seconds apart, until the client goes away: an endless body,
a flood of interim answers, a drip). Once the script is used up, ``handler`` (if given) answers every
further request. Every request is recorded (``requests``) before it is answered; connections opened
and closed (by either side) are counted, and so are the bytes of ``Endless`` answers sent
(``endless_bytes_sent``) and the TLS handshakes that failed (``tls_handshakes_failed``).
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from ks3sync.ks3 import Client, ClientConfig, RetryPolicy
from ks3sync.ks3.wire import Headers


@dataclass(frozen=True)
class Seen:
    """One request as it arrived."""

    method: str
    target: str  # path and query, as sent
    headers: Headers
    body: bytes


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str | bytes] | Sequence[tuple[str, str | bytes]] = field(default_factory=dict)
    body: bytes = b""
    close: bool = False  # close the connection after sending (with a short body: a body cut off)

    def encode(self, method: str) -> bytes:
        pairs = list(self.headers.items()) if isinstance(self.headers, Mapping) else list(self.headers)
        if not any(name.lower() == "content-length" for name, _ in pairs):
            pairs.append(("Content-Length", str(len(self.body))))
        reason = HTTPStatus(self.status).phrase if self.status in HTTPStatus._value2member_map_ else "Other"
        lines = [f"HTTP/1.1 {self.status} {reason}".encode()]
        for name, value in pairs:
            raw = value if isinstance(value, bytes) else value.encode("latin-1")
            lines.append(name.encode("latin-1") + b": " + raw)
        head = b"\r\n".join(lines) + b"\r\n\r\n"
        return head if method == "HEAD" else head + self.body


@dataclass(frozen=True)
class Raw:
    """Bytes sent verbatim as the answer (status line included), then the connection is closed unless
    ``close`` is False."""

    data: bytes
    close: bool = True
    pieces: int = 1  # > 1: sent in that many parts, 20 ms apart (a head split across segments)

    def encode(self, method: str) -> bytes:
        return self.data


@dataclass(frozen=True)
class Early:
    """Answer ``reply`` as soon as the request head has arrived, without reading the body, then close
    (a server refusing a large upload early: the client is still sending when the connection goes)."""

    reply: Reply


@dataclass(frozen=True)
class Stall:
    seconds: float


@dataclass(frozen=True)
class Endless:
    head: bytes
    piece: bytes
    interval: float = 0.0
    limit: int = 8 << 30  # bytes of pieces at most: a test that fails still ends


DROP = object()

Entry = Reply | Raw | Early | Stall | Endless | object | Callable[[Seen], Reply]


class ScriptedServer:
    def __init__(
        self,
        *replies: Entry,
        tls: ssl.SSLContext | None = None,
        handler: Callable[[Seen], Entry] | None = None,
    ) -> None:
        """``tls``: a server-side context; every accepted connection is wrapped in it (https)."""
        self.replies = list(replies)
        self._handler = handler
        self._tls = tls
        self.endless_bytes_sent = 0
        self.tls_handshakes_failed = 0
        self.requests: list[Seen] = []
        self.connections_opened = 0
        self.connections_closed = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)  # the accept loop checks the stop flag this often
        scheme = "https" if tls is not None else "http"
        self.endpoint = f"{scheme}://127.0.0.1:{self._listener.getsockname()[1]}"
        self._threads = [threading.Thread(target=self._accept_loop, daemon=True)]
        self._threads[0].start()

    @property
    def bodies(self) -> list[bytes]:
        return [seen.body for seen in self.requests]

    def close(self) -> None:
        self._stop.set()
        for thread in list(self._threads):
            thread.join(timeout=5)
        self._listener.close()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            if self._tls is not None:
                conn.settimeout(5)
                try:
                    conn = self._tls.wrap_socket(conn, server_side=True)
                except (OSError, ssl.SSLError):
                    conn.close()  # the client refused the certificate: nothing to serve
                    with self._lock:
                        self.tls_handshakes_failed += 1
                    continue
            conn.settimeout(0.1)
            with self._lock:
                self.connections_opened += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _next_entry(self, seen: Seen) -> Entry:
        with self._lock:
            self.requests.append(seen)
            if self.replies:
                return self.replies.pop(0)
        if self._handler is not None:
            return self._handler(seen)
        return Reply(500, {"x-kss-request-id": "unscripted"}, b"no reply scripted")

    def _serve(self, conn: socket.socket) -> None:
        buffer = bytearray()
        try:
            while not self._stop.is_set():
                seen = self._read_request(conn, buffer)
                if seen is None:
                    return
                entry = self._next_entry(seen)
                if callable(entry):
                    entry = entry(seen)
                if entry is DROP:
                    return
                if isinstance(entry, Stall):
                    self._stop.wait(entry.seconds)
                    return
                if isinstance(entry, Early):
                    conn.settimeout(5)
                    conn.sendall(entry.reply.encode(seen.method))
                    return  # closed with the body unread
                if isinstance(entry, Endless):
                    self._send_endless(conn, entry)
                    return
                reply = entry
                assert isinstance(reply, Reply | Raw), reply
                conn.settimeout(5)
                data = reply.encode(seen.method)
                pieces = reply.pieces if isinstance(reply, Raw) else 1
                step = -(-len(data) // pieces)
                for start in range(0, len(data), step):
                    if start:
                        self._stop.wait(0.02)
                    conn.sendall(data[start : start + step])
                conn.settimeout(0.1)
                if reply.close:
                    return
        except OSError:
            return  # the client went away mid-exchange; nothing to answer
        finally:
            conn.close()
            with self._lock:
                self.connections_closed += 1

    def _send_endless(self, conn: socket.socket, entry: Endless) -> None:
        """Until the client stops reading (its close, or 5 s of a full socket buffer) or the server stops."""
        conn.settimeout(5)
        conn.sendall(entry.head)
        sent = 0
        while sent < entry.limit and not self._stop.is_set():
            conn.sendall(entry.piece)
            sent += len(entry.piece)
            with self._lock:
                self.endless_bytes_sent += len(entry.piece)
            if entry.interval:
                self._stop.wait(entry.interval)

    def _receive(self, conn: socket.socket, buffer: bytearray) -> bool:
        """Append what arrives to ``buffer``; False once the client closed or the server stops."""
        while not self._stop.is_set():
            try:
                data = conn.recv(256 * 1024)
            except TimeoutError:
                continue
            if not data:
                return False
            buffer += data
            return True
        return False

    def _read_request(self, conn: socket.socket, buffer: bytearray) -> Seen | None:
        while b"\r\n\r\n" not in buffer:
            if not self._receive(conn, buffer):
                return None
        head_end = buffer.index(b"\r\n\r\n")
        lines = bytes(buffer[:head_end]).decode("latin-1").split("\r\n")
        del buffer[: head_end + 4]
        method, target, _version = lines[0].split(" ", 2)
        headers = Headers.from_pairs(tuple(line.split(": ", 1)) for line in lines[1:])  # type: ignore[misc]
        length = int(headers.get("content-length", "0"))
        with self._lock:
            early = bool(self.replies) and isinstance(self.replies[0], Early)
        if early:
            return Seen(method, target, headers, b"")
        while len(buffer) < length:
            if not self._receive(conn, buffer):
                return None
        body = bytes(buffer[:length])
        del buffer[:length]
        return Seen(method, target, headers, body)


def client_for(server: ScriptedServer, **options: Any) -> Client:
    """A KS3 client of ``server`` (test credentials); one attempt per request unless ``retry`` says more."""
    options.setdefault("retry", RetryPolicy(max_attempts=1))
    return Client(ClientConfig(endpoint=server.endpoint, access_key="AK", secret_key="SK", **options))
