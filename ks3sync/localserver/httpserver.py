"""Serving `http1.HttpConnection`s on a listening socket: accept, expire, stop gracefully.

Owns the set of live connections and of running requests, the sweep that expires connections past their
idle or head deadline (one task, a few passes per shortest timeout, instead of a timer per request),
and the graceful stop (stop accepting, close idle connections, give requests in flight
`shutdown_timeout`, then abort). Imports nothing else from ks3sync but http1.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Coroutine
from typing import Any

from ks3sync.localserver.http1 import App, HttpConnection, Limits


class HttpServer:
    """`app` served on a listening socket until `stop()` (callable from any thread)."""

    def __init__(self, app: App, limits: Limits | None = None, shutdown_timeout: float = 5.0) -> None:
        self.app = app
        self.limits = limits or Limits()
        self.shutdown_timeout = shutdown_timeout
        self.connections: set[HttpConnection] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self.started = False
        self._stopping: asyncio.Event | None = None
        self._stop_requested = False

    def start_task(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = self.loop.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def serve(self, sock: Any, on_started: Callable[[], None] | None = None,
                    ssl_context: ssl.SSLContext | None = None) -> None:
        """``ssl_context``: serve HTTPS (``local-server --tls-cert/--tls-key``)."""
        self.loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        if self._stop_requested:
            return
        listener = await self.loop.create_server(lambda: HttpConnection(self), sock=sock, backlog=1024,
                                                 ssl=ssl_context)
        self.started = True
        sweep = self.loop.create_task(self._sweep())
        try:
            if on_started is not None:
                on_started()
            await self._stopping.wait()
        finally:
            listener.close()
            sweep.cancel()
            await self._close_connections()

    async def _sweep(self) -> None:
        """Expire connections past their deadline, a few times per shortest timeout: one pass over the
        connections instead of a timer set and cancelled per request."""
        limits = self.limits
        interval = min(1.0, max(0.02, min(limits.head_timeout, limits.idle_timeout) / 4))
        while True:
            await asyncio.sleep(interval)
            now = self.loop.time()
            for conn in [c for c in self.connections if c.deadline is not None and c.deadline <= now]:
                conn.expire()

    def stop(self) -> None:
        """Stop accepting, let requests in flight finish (bounded), then return from `serve`."""
        self._stop_requested = True
        if self._stopping is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._stopping.set)

    async def _close_connections(self) -> None:
        for conn in list(self.connections):
            conn.shutdown()
        deadline = self.loop.time() + self.shutdown_timeout
        while (self.connections or self.tasks) and self.loop.time() < deadline:
            await asyncio.sleep(0.01)
        for conn in list(self.connections):
            conn.transport.abort()
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=1.0)
