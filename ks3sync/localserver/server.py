"""Running the app: the CLI's foreground server and the embeddable background server.

Owns the process-level wiring around `http1.HttpServer`: a pre-bound socket (so `--port 0` is known
before serving), the event loop (uvloop when installed), SIGTERM/SIGINT in the foreground server (stop
gracefully, exit 0), and `EmbeddedServer`, a context manager that runs the same server in a thread for
`mirror --endpoint local` and tests. Imports nothing else from ks3sync.
"""

from __future__ import annotations

import asyncio
import ctypes
import ipaddress
import logging
import signal
import socket
import ssl
import sys
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from ks3sync.localserver.app import KS3App
from ks3sync.localserver.config import ServerConfig
from ks3sync.localserver.http1 import Limits
from ks3sync.localserver.httpserver import HttpServer

logger = logging.getLogger("ks3sync.localserver")


def limits(config: ServerConfig) -> Limits:
    return Limits(max_head_bytes=config.max_head_bytes, head_timeout=config.head_timeout,
                  idle_timeout=config.idle_timeout, write_timeout=config.body_timeout)


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


def tls_context(tls: tuple[Path, Path] | None) -> ssl.SSLContext | None:
    """A server-side TLS context for (certificate chain, private key) PEM files, or None for HTTP."""
    if tls is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls[0], tls[1])
    return context


def tune_malloc() -> bool:
    """Keep glibc from mmap()ing (and page-faulting in) every 64 KiB-1 MiB body buffer: measured on the
    big-PUT benchmark, this cuts the server's CPU per MiB by about a quarter. No-op off glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 32 << 20) and libc.mallopt(m_trim_threshold, 128 << 20))
    except (OSError, AttributeError):
        return False


def serve_forever(config: ServerConfig, port_file: Path | None = None, tls: tuple[Path, Path] | None = None) -> int:
    """The CLI's foreground server: returns an exit status once SIGTERM/SIGINT stopped it. Raises
    RootInUse (before binding anything) when another process owns the root. ``tls``: (certificate
    chain, private key) PEM files to serve HTTPS instead of HTTP."""
    tune_malloc()
    app = KS3App(config)  # takes the root first: a refused root binds nothing and prints nothing
    try:
        if not is_loopback(config.host):
            print(f"WARNING: binding {config.host}, a NON-LOOPBACK address: anyone who can reach this host and "
                  "knows the access key can read and write everything under the root.", file=sys.stderr,
                  flush=True)
        sock = bind_socket(config.host, config.port)
    except BaseException:
        app.close()
        raise
    host, port = sock.getsockname()[:2]
    server = HttpServer(app, limits(config))

    def announce() -> None:
        # The port file first: whoever reads the announcement may then rely on the file too.
        if port_file is not None:
            tmp = port_file.with_name(port_file.name + ".tmp")
            tmp.write_text(f"{port}\n")
            tmp.replace(port_file)
        shown = f"[{host}]" if ":" in host else host
        print(f"listening on {'https' if tls else 'http'}://{shown}:{port}", flush=True)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, server.stop)  # graceful, and a second signal changes nothing
        await server.serve(sock, announce, tls_context(tls))

    try:
        run_loop(main())
    finally:
        app.close()
        sock.close()
    return 0 if server.started else 1


class EmbeddedServer:
    """The local server in a background thread: `with EmbeddedServer(root, ak, sk) as srv: srv.endpoint`.
    `start()` raises RootInUse when another process owns the root."""

    def __init__(self, root: Path | str, access_key: str, secret_key: str, host: str = "127.0.0.1", port: int = 0,
                 **options: Any) -> None:
        self.config = ServerConfig(Path(root), access_key, secret_key, host=host, port=port, **options)
        self._sock: socket.socket | None = None
        self._server: HttpServer | None = None
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
        self._server = HttpServer(self._app, limits(self.config))
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
            run_loop(self._server.serve(self._sock, self._started.set))
        except (OSError, RuntimeError) as exc:
            self._error = exc
            logger.exception("embedded local server failed")
        finally:
            self._started.set()

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is not None:
            self._server.stop()
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
