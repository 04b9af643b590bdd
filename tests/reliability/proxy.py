"""A tiny loopback HTTP proxy for tests: forwards every request to a real local-server and lets a test
rewrite chosen answers (an ETag that does not match, an XML body cut off or with an <Error> in the
middle), so the client meets a misbehaving server through the real wire path.

`with RewritingProxy(upstream, rewrite) as proxy: proxy.endpoint` - ``rewrite(exchange)`` may change the
status, headers or body of an `Exchange` in place; ``short_circuit(method, target)`` may answer a request
itself so the upstream never sees it. Every request seen is kept in ``proxy.seen``.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


@dataclass
class Exchange:
    method: str
    target: str  # raw path + query
    request_headers: dict[str, str]
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> str:
        return self.target.split("?", 1)[1] if "?" in self.target else ""

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def set_header(self, name: str, value: str) -> None:
        self.headers = [(k, v) for k, v in self.headers if k.lower() != name.lower()] + [(name, value)]


Rewrite = Callable[[Exchange], None]
# (method, target) -> an answer to give instead of forwarding (the upstream never sees the request)
ShortCircuit = Callable[[str, str], Exchange | None]


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        # A client killed on purpose (crash tests) leaves its answer nowhere to go: not worth a traceback.
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class RewritingProxy:
    def __init__(self, upstream: str, rewrite: Rewrite, short_circuit: ShortCircuit | None = None) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._rewrite = rewrite
        self._short_circuit = short_circuit
        self.seen: list[Exchange] = []
        self._lock = threading.Lock()
        self._server = _QuietServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> RewritingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)

    def _forward(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Exchange:
        conn = http.client.HTTPConnection(*self._upstream, timeout=30)
        try:
            conn.request(method, target, body=body if body else None, headers=headers)
            response = conn.getresponse()
            data = response.read()
            # A HEAD answer's Content-Length describes the object, so it is kept; others are recomputed.
            dropped = HOP_BY_HOP if method == "HEAD" else HOP_BY_HOP | {"content-length"}
            out = [(k, v) for k, v in response.getheaders() if k.lower() not in dropped]
            return Exchange(method, target, headers, response.status, out, data)
        finally:
            conn.close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet test output
                return

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if len(body) < length:
                    # The client went away mid-body: a server discards such a request, so nothing is
                    # forwarded (and the hooks never see it).
                    self.close_connection = True
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                exchange = proxy._short_circuit(self.command, self.path) if proxy._short_circuit else None
                if exchange is None:
                    exchange = proxy._forward(self.command, self.path, headers, body)
                    proxy._rewrite(exchange)
                with proxy._lock:
                    proxy.seen.append(exchange)
                self.send_response(exchange.status)
                for key, value in exchange.headers:
                    self.send_header(key, value)
                if self.command != "HEAD":
                    self.send_header("Content-Length", str(len(exchange.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(exchange.body)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

        return Handler
