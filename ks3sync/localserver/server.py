"""Running the app on uvicorn: the CLI's foreground server and the embeddable background server.

Owns the process-level wiring: uvicorn's `Config` (the pinned protocol subclass of protocol.py through
its public `http=` parameter, keep-alive and graceful-shutdown timeouts, TLS files), a pre-bound socket
(so `--port 0` is known before serving), the event loop (uvloop when installed), SIGTERM/SIGINT in the
foreground server (stop gracefully, exit 0), and `EmbeddedServer`, a context manager that runs the same
server in a thread for `mirror --endpoint local` and tests. Imports nothing else from ks3sync.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ipaddress
import logging
import math
import signal
import socket
import sys
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import uvicorn

from ks3sync.localserver.app import KS3App
from ks3sync.localserver.config import ServerConfig
from ks3sync.localserver.protocol import Limits, protocol_class

logger = logging.getLogger("ks3sync.localserver")

# Requests in flight at a graceful stop get this long before their tasks are cancelled.
SHUTDOWN_SECONDS = 5


def uvicorn_config(app: KS3App, config: ServerConfig, tls: tuple[Path, Path] | None = None) -> uvicorn.Config:
    """uvicorn's settings for `app`; ``tls``: (certificate chain, private key) PEM files to serve HTTPS."""
    limits = Limits(
        max_head_bytes=config.max_head_bytes,
        head_timeout=config.head_timeout,
        write_timeout=config.body_timeout,
    )
    return uvicorn.Config(
        app,
        http=protocol_class(limits),
        ws="none",  # no WebSocket upgrades: the protocol refuses every upgrade
        lifespan="off",
        interface="asgi3",
        server_header=False,  # the app writes Server and Date itself, in its own spelling
        date_header=False,
        access_log=False,  # the app's request log (--request-log) is the access log
        # No reverse proxy sits in front of this server; the middleware would only add a call per request.
        proxy_headers=False,
        log_config=None,
        log_level="warning",
        # whole seconds in uvicorn; an idle connection, fresh or kept alive, is closed after this
        timeout_keep_alive=math.ceil(config.idle_timeout),
        timeout_graceful_shutdown=SHUTDOWN_SECONDS,
        backlog=1024,
        ssl_certfile=tls[0] if tls else None,
        ssl_keyfile=tls[1] if tls else None,
    )


class _Server(uvicorn.Server):
    """uvicorn's server with a hook for the moment it accepts connections, exit status 0 after a signal,
    and no connection left open after a stop whose grace period ran out."""

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
        if self.started and self._on_started is not None:
            self._on_started()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets)
        # uvicorn cancels the requests still running after the grace period but leaves their connections
        for connection in list(self.server_state.connections):
            connection.transport.abort()


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run `main` on a fresh event loop: uvloop's where it is installed (it halves the per-request cost
    of the loop itself), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)


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


def tune_malloc() -> bool:
    """Keep glibc from mmap()ing (and page-faulting in) every 64 KiB-1 MiB body buffer: measured on the
    big-PUT benchmark, this cuts the server's CPU per MiB by about a quarter. No-op off glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 32 << 20) and libc.mallopt(m_trim_threshold, 128 << 20))
    except (OSError, AttributeError):
        return False


def serve_forever(
    config: ServerConfig, port_file: Path | None = None, tls: tuple[Path, Path] | None = None
) -> int:
    """The CLI's foreground server: returns an exit status once SIGTERM/SIGINT stopped it. Raises
    RootInUse (before binding anything) when another process owns the root. ``tls``: (certificate
    chain, private key) PEM files to serve HTTPS instead of HTTP."""
    tune_malloc()
    app = KS3App(config)  # takes the root first: a refused root binds nothing and prints nothing
    try:
        if not is_loopback(config.host):
            print(
                f"WARNING: binding {config.host}, a NON-LOOPBACK address: anyone who can reach this host and "
                "knows the access key can read and write everything under the root.",
                file=sys.stderr,
                flush=True,
            )
        sock = bind_socket(config.host, config.port)
    except BaseException:
        app.close()
        raise
    host, port = sock.getsockname()[:2]

    def announce() -> None:
        # The port file first: whoever reads the announcement may then rely on the file too.
        if port_file is not None:
            tmp = port_file.with_name(port_file.name + ".tmp")
            tmp.write_text(f"{port}\n")
            tmp.replace(port_file)
        shown = f"[{host}]" if ":" in host else host
        print(f"listening on {'https' if tls else 'http'}://{shown}:{port}", flush=True)

    server = _Server(uvicorn_config(app, config, tls), announce)
    try:
        run_loop(server.serve(sockets=[sock]))
    finally:
        app.close()
        sock.close()
    return 0 if server.started else 1


class EmbeddedServer:
    """The local server in a background thread: `with EmbeddedServer(root, ak, sk) as srv: srv.endpoint`.
    `start()` raises RootInUse when another process owns the root."""

    def __init__(
        self,
        root: Path | str,
        access_key: str,
        secret_key: str,
        host: str = "127.0.0.1",
        port: int = 0,
        **options: Any,
    ) -> None:
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
        self._app = KS3App(self.config)
        try:
            self._sock = bind_socket(self.config.host, self.config.port)
        except BaseException:
            self.stop()
            raise
        self.port = self._sock.getsockname()[1]
        self._server = _Server(uvicorn_config(self._app, self.config), self._started.set)
        self._thread = threading.Thread(target=self._run, name=f"ks3-local-server:{self.port}", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout) or not self._server.started:
            self.stop()
            raise RuntimeError(f"local server did not start within {timeout} s: {self._error!r}")
        if self.config.shared:
            self._app.storage.lock.publish(self.endpoint)
        return self

    def _run(self) -> None:
        assert self._server is not None and self._sock is not None
        try:
            run_loop(self._server.serve(sockets=[self._sock]))
        except (OSError, RuntimeError) as exc:
            self._error = exc
            logger.exception("embedded local server failed")
        finally:
            self._started.set()

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is not None:
            self._server.should_exit = True  # seen by uvicorn's main loop within 0.1 s
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
