"""Running the app under uvicorn: the CLI's foreground server and the embeddable background server.

Owns the uvicorn wiring: a pre-bound socket (so `--port 0` is known before serving), the httptools
protocol with two small additions, signal handling (uvicorn's: SIGTERM/SIGINT stop gracefully), and
`EmbeddedServer`, a context manager that runs the same server in a thread for `mirror --endpoint local`
and tests. The protocol additions: uvicorn lower-cases response header names on the wire, but the
official SDK forwards HEAD headers into copies unless they are spelled `Content-Length`, `Date`, ... ,
so the cycle builds the head itself with the app's spelling (and sends it together with the first body chunk: one
send() per small response); and an app-level "drop" message closes the connection without a response
(fault injection). Imports nothing else from ks3sync.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import logging
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE as _HEADER_NAME_RE,
)
from uvicorn.protocols.http.httptools_impl import (
    HEADER_VALUE_RE as _HEADER_VALUE_RE,
)
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from ks3sync.localserver.app import KS3App
from ks3sync.localserver.config import ServerConfig

logger = logging.getLogger("ks3sync.localserver")


class _KS3Cycle(RequestResponseCycle):
    """uvicorn's request/response cycle with the response head built here: header names keep the spelling
    the app gave them (uvicorn lower-cases them, and the official SDK forwards HEAD headers into copies
    only when they are spelled `Content-Length`, `Date`, ...), and the head is held back and sent with the
    first body write, so a small response leaves in one transport write (one send())."""

    _held_head: bytes | None = None

    async def receive(self) -> Any:
        """uvicorn's receive(), minus its copy of every body chunk: the app gets the buffer itself (a
        bytearray, which hashlib, fastcrc and writev take as they are) and the cycle starts a new one."""
        if self.waiting_for_100_continue and not self.transport.is_closing():
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.waiting_for_100_continue = False
        if not self.disconnected and not self.response_complete:
            self.flow.resume_reading()
            await self.message_event.wait()
            self.message_event.clear()
        if self.disconnected or self.response_complete:
            return {"type": "http.disconnect"}
        body, self.body = self.body, bytearray()
        return {"type": "http.request", "body": body, "more_body": self.more_body}

    def _response_head(self, status: int, headers: list[tuple[bytes, bytes]]) -> bytes:
        """The status line and header block, with uvicorn's bookkeeping (length, chunking, keep-alive)."""
        if self.default_headers:
            headers = self.default_headers + list(headers)
        # Both patterns match single bytes, so one search over all names (and one over all values) is
        # the same check uvicorn makes per header.
        if _HEADER_NAME_RE.search(b"".join(name for name, _ in headers)):
            raise RuntimeError("Invalid HTTP header name.")
        if _HEADER_VALUE_RE.search(b"".join(value for _, value in headers)):
            raise RuntimeError("Invalid HTTP header value.")
        content = [STATUS_LINE[status]]
        has_connection_close = False
        for name, value in headers:
            lower = name.lower()
            if lower == b"content-length" and self.chunked_encoding is None:
                self.expected_content_length = int(value)
                self.chunked_encoding = False
            elif lower == b"transfer-encoding" and value.lower() == b"chunked":
                self.expected_content_length = 0
                self.chunked_encoding = True
            elif lower == b"connection" and b"close" in [token.strip().lower() for token in value.split(b",")]:
                self.keep_alive = False
                has_connection_close = True
            content += (name, b": ", value, b"\r\n")
        if not self.keep_alive and not has_connection_close:
            content.append(b"connection: close\r\n")  # uvicorn's spelling, as before
        if self.chunked_encoding is None and self.scope["method"] != "HEAD" and status not in (204, 304):
            self.chunked_encoding = True
            content.append(b"transfer-encoding: chunked\r\n")
        content.append(b"\r\n")
        return b"".join(content)

    async def send(self, message: Any) -> None:
        kind = message["type"]
        if kind == "ks3sync.drop":
            if not self.response_started:
                self.transport.abort()
                self.disconnected = True
                self.response_complete = True
            return
        if kind == "http.response.start" and not self.response_started:
            if self.flow.write_paused and not self.disconnected:
                await self.flow.drain()
            if self.disconnected:
                return
            self.response_started = True
            self.waiting_for_100_continue = False
            self._held_head = self._response_head(message["status"], message.get("headers", []))
            return
        head, self._held_head = self._held_head, None
        if head is None or self.disconnected:
            await super().send(message)
            return
        if (kind != "http.response.body" or self.chunked_encoding or self.scope["method"] == "HEAD"
                or self.response_complete):
            self.transport.write(head)  # uvicorn's own path handles these (and their errors)
            await super().send(message)
            return
        body = message.get("body", b"")
        more_body = message.get("more_body", False)
        if len(body) > self.expected_content_length:
            raise RuntimeError("Response content longer than Content-Length")
        self.expected_content_length -= len(body)
        if not more_body and self.expected_content_length != 0:
            raise RuntimeError("Response content shorter than Content-Length")
        self.transport.write(head + body if body else head)
        if not more_body:
            self.response_complete = True
            self.message_event.set()
            if not self.keep_alive:
                self.transport.close()
            self.on_response()


# uvicorn pauses reading once 64 KiB of body wait for the app; every receive() then hands over ~64 KiB,
# and per-chunk overhead (event, timeout, copies) dominates big uploads. A larger window batches more.
BODY_HIGH_WATER = 1 << 20


class KS3HttpProtocol(HttpToolsProtocol):
    def on_body(self, body: bytes) -> None:
        cycle = self.cycle
        if (self.parser.should_upgrade() and self._should_upgrade()) or cycle.response_complete:
            return
        cycle.body += body
        if len(cycle.body) > BODY_HIGH_WATER:
            self.flow.pause_reading()
        cycle.message_event.set()

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if isinstance(self.cycle, RequestResponseCycle) and not isinstance(self.cycle, _KS3Cycle):
            # The cycle's task has been created but not started, so the switch takes effect for it.
            self.cycle.__class__ = _KS3Cycle


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _uvicorn_config(app: KS3App, config: ServerConfig) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        http=KS3HttpProtocol,
        loop="uvloop",
        lifespan="off",
        server_header=False,
        date_header=False,
        access_log=False,
        # No reverse proxy sits in front of this server; the middleware would only add a call per request.
        proxy_headers=False,
        log_config=None,
        log_level="warning",
        timeout_keep_alive=30,
        timeout_graceful_shutdown=5,
        backlog=1024,
    )


class _Server(uvicorn.Server):
    """uvicorn's server with a hook for the moment it accepts connections."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None] | None = None) -> None:
        super().__init__(config)
        self._on_started = on_started

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """SIGTERM/SIGINT stop the server gracefully and the process then exits 0 (uvicorn would re-raise
        the signal afterwards, so the exit status would say "killed")."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self._on_started:
            self._on_started()


def tune_malloc() -> bool:
    """Keep glibc from mmap()ing (and page-faulting in) every 64 KiB-1 MiB body buffer: measured on the
    big-PUT benchmark, this cuts the server's CPU per MiB by about a quarter. No-op off glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 32 << 20) and libc.mallopt(m_trim_threshold, 128 << 20))
    except (OSError, AttributeError):
        return False


def serve_forever(config: ServerConfig, port_file: Path | None = None) -> int:
    """The CLI's foreground server: returns an exit status once SIGTERM/SIGINT stopped it."""
    tune_malloc()
    if not is_loopback(config.host):
        print(f"WARNING: binding {config.host}, a NON-LOOPBACK address: anyone who can reach this host and "
              "knows the access key can read and write everything under the root.", file=sys.stderr, flush=True)
    sock = bind_socket(config.host, config.port)
    host, port = sock.getsockname()[:2]
    app = KS3App(config)

    def announce() -> None:
        # The port file first: whoever reads the announcement may then rely on the file too.
        if port_file is not None:
            tmp = port_file.with_name(port_file.name + ".tmp")
            tmp.write_text(f"{port}\n")
            tmp.replace(port_file)
        shown = f"[{host}]" if ":" in host else host
        print(f"listening on http://{shown}:{port}", flush=True)

    server = _Server(_uvicorn_config(app, config), announce)
    try:
        server.run(sockets=[sock])
    finally:
        app.close()
        sock.close()
    return 0 if server.started else 1


class EmbeddedServer:
    """The local server in a background thread: `with EmbeddedServer(root, ak, sk) as srv: srv.endpoint`."""

    def __init__(self, root: Path | str, access_key: str, secret_key: str, host: str = "127.0.0.1", port: int = 0,
                 **options: Any) -> None:
        self.config = ServerConfig(Path(root), access_key, secret_key, host=host, port=port, **options)
        self._sock: socket.socket | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._app: KS3App | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self.host = host
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> EmbeddedServer:
        if self._thread is not None:
            raise RuntimeError("EmbeddedServer already started")
        self._sock = bind_socket(self.config.host, self.config.port)
        self.port = self._sock.getsockname()[1]
        self._app = KS3App(self.config)
        self._server = _Server(_uvicorn_config(self._app, self.config), self._started.set)
        self._thread = threading.Thread(target=self._run, name=f"ks3-local-server:{self.port}", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout) or not self._server.started:
            self.stop()
            raise RuntimeError(f"local server did not start within {timeout} s: {self._error!r}")
        return self

    def _run(self) -> None:
        assert self._server is not None and self._sock is not None
        try:
            import uvloop

            uvloop.run(self._server.serve(sockets=[self._sock]))
        except (OSError, RuntimeError) as exc:
            self._error = exc
            logger.exception("embedded local server failed")
        finally:
            self._started.set()

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._app is not None:
            self._app.close()
            self._app = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
