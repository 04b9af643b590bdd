"""The application: one request in, one KS3 response out, logged.

Per request: take an in-flight slot when `--max-inflight` is set (throttle.py), parse the raw target
(request.py), pick the operation (routing.py), wait the added latency, refuse with 503 SlowDown when no
slot was free, authenticate (auth.py), maybe inject a fault (faults.py), run the handler, send the
response with KS3's header conventions (x-kss-request-id always; header names in their canonical
spelling, which http1.py keeps), write one request-log line, and give the slot back. An ASGI-shaped
callable served by http1.py, no framework: per-request overhead is what the small-PUT benchmark
measures. Imports nothing else from ks3sync.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from ks3sync.localserver import xmlio
from ks3sync.localserver.auth import AuthResult, Credentials, authenticate
from ks3sync.localserver.awschunked import ChunkedDecoder
from ks3sync.localserver.config import ServerConfig
from ks3sync.localserver.context import Context
from ks3sync.localserver.errors import S3Error
from ks3sync.localserver.exchange import BodyReader, ClientGone, Response
from ks3sync.localserver.faults import FaultInjector
from ks3sync.localserver.reqlog import RequestLog, redact_query
from ks3sync.localserver.request import Request, parse_request
from ks3sync.localserver.routing import route
from ks3sync.localserver.storage import Storage
from ks3sync.localserver.throttle import InflightLimit

logger = logging.getLogger("ks3sync.localserver")

DROP_MESSAGE = {"type": "ks3sync.drop"}
_FILE_CHUNK = 1 << 20


class KS3App:
    def __init__(self, config: ServerConfig, storage: Storage | None = None) -> None:
        self.config = config
        self.storage = storage or Storage(
            config.root, fsync=config.fsync, inline_max=config.effective_inline_max, shared=config.shared
        )
        self.credentials = Credentials(config.access_key, config.secret_key)
        self.faults = FaultInjector(
            config.fault_rate, config.fault_codes, config.drop_rate, config.latency_ms, config.seed
        )
        self.request_log = RequestLog(config.request_log) if config.request_log else None
        self.inflight = InflightLimit(config.max_inflight) if config.max_inflight is not None else None
        self._ids = itertools.count(1)
        self._id_prefix = f"{os.getpid():x}{int(time.time()):x}"
        self._date_cache: tuple[int, bytes] = (0, b"")

    def close(self) -> None:
        if self.request_log:
            self.request_log.close()
        self.storage.close()

    def _http_date(self, now: float) -> bytes:
        second = int(now)
        if self._date_cache[0] != second:
            self._date_cache = (second, xmlio.http_date(second).encode())
        return self._date_cache[1]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        inflight = self.inflight
        if inflight is None:
            await self._handle(scope, receive, send, admitted=True)
            return
        # The slot is taken before anything else and given back however the request ends (an error
        # answer, a client that vanished, a bug, the server stopping): a leaked slot would throttle for ever.
        admitted = inflight.try_acquire()
        try:
            await self._handle(scope, receive, send, admitted=admitted)
        finally:
            if admitted:
                inflight.release()

    async def _handle(self, scope: dict[str, Any], receive: Any, send: Any, *, admitted: bool) -> None:
        started = time.perf_counter()
        request_id = f"{self._id_prefix}{next(self._ids):08x}"
        client = scope.get("client")
        request = parse_request(
            scope["method"],
            scope.get("raw_path") or scope["path"].encode(),
            scope.get("query_string", b""),
            scope["headers"],
            f"{client[0]}:{client[1]}" if client else "",
            self.config.virtual_host_domain,
        )
        auth: AuthResult | None = None
        op = "Unknown"
        fault_kind = None
        body = BodyReader(receive, self.config.body_timeout, None)
        try:
            selected = route(request)
            op = selected.op
            if self.faults.latency:
                # The link's round trip: every request pays it, control plane and refusals included.
                await _sleep_at_least(self.faults.latency)
            if not admitted:
                fault_kind = "throttle"
                await self._refuse(request, body)
            now = time.time()
            auth = authenticate(request, self.credentials, now)
            decoder = ChunkedDecoder(auth.streaming, auth.chunk_signing) if auth.streaming else None
            body = BodyReader(receive, self.config.body_timeout, auth.payload_sha256, decoder)
            if selected.data_plane:
                fault = self.faults.decide()
                if fault is not None:
                    fault_kind = fault.kind
                    await body.drain()
                    if fault.kind == "drop":
                        # logged first: the client may look at the log as soon as its connection dies
                        self._log(request, op, auth, 0, body.bytes_in, 0, started, request_id, fault_kind)
                        await send(DROP_MESSAGE)
                        return
                    raise S3Error(
                        fault.code, "Injected fault (ks3sync local-server --fault-rate).", status=fault.status
                    )
            ctx = Context(request, auth, body, self.storage, self.config, request_id, time.time)
            response = await selected.handler(ctx)
        except S3Error as error:
            response = self._error_response(request, error, request_id)
        except ClientGone:
            self._log(request, op, auth, 499, body.bytes_in, 0, started, request_id, fault_kind)
            return
        except (
            OSError,
            ValueError,
            LookupError,
            sqlite3.Error,
        ) as exc:  # a bug or a disk problem: answer, go on
            logger.exception("internal error handling %s %s", request.method, request.raw_path)
            response = self._error_response(
                request, S3Error("InternalError", f"{type(exc).__name__}"), request_id
            )
        if not body.done and response.status < 300:
            await body.drain()
        # (an error leaves the body unread, and http1 then ends the connection after the answer)

        def log(status: int, bytes_out: int) -> None:
            self._log(request, op, auth, status, body.bytes_in, bytes_out, started, request_id, fault_kind)

        await self._send(send, request, response, request_id, log)

    async def _refuse(self, request: Request, body: BodyReader) -> None:
        """No in-flight slot: answer 503 SlowDown. A body the client is already sending is read and dropped,
        so the connection carries on; one held back for `100 Continue` is never asked for (the answer then
        ends the connection, as for any error before the body)."""
        if request.headers.get("expect", "").lower() != "100-continue":
            await body.drain()
        raise S3Error("SlowDown", "Please reduce your request rate (ks3sync local-server --max-inflight).")

    def _error_response(self, request: Request, error: S3Error, request_id: str) -> Response:
        if error.status == 304:
            return Response(304, list(error.headers))
        headers = [("Content-Type", "application/xml"), *error.headers]
        if error.code == "SlowDown" and self.config.retry_after is not None:
            headers.append(("Retry-After", str(self.config.retry_after)))
        if request.method == "HEAD":
            return Response(error.status, headers)
        resource = request.raw_path
        extra = "".join(xmlio.element(name, value) for name, value in error.extra.items())
        body = xmlio.document(
            f"<Error><Code>{error.code}</Code><Message>{xmlio.text(error.message)}</Message>"
            f"<Resource>{xmlio.text(resource)}</Resource><RequestId>{request_id}</RequestId>{extra}</Error>"
        )
        return Response(error.status, headers, body)

    async def _send(
        self,
        send: Any,
        request: Request,
        response: Response,
        request_id: str,
        before_last: Callable[[int, int], None],
    ) -> None:
        """Send the response; `before_last(status, bytes_out)` runs just before the final write, so the request-log
        line exists by the time the client has the whole response (tests read the log right after)."""
        headers: list[tuple[bytes, bytes]] = [
            (b"x-kss-request-id", request_id.encode()),
            (b"Date", self._http_date(time.time())),
            (b"Server", b"ks3sync-local"),
        ]
        if request.headers.get("authorization", "").startswith("AWS4"):
            headers.append((b"x-amz-request-id", request_id.encode()))
        has_length = False
        for name, value in response.headers:
            if name == "Content-Length":
                has_length = True
            headers.append((name.encode("latin-1"), value.encode("latin-1")))
        file = response.file
        if not has_length and response.status not in (204, 304):
            headers.append((b"Content-Length", str(len(response.body)).encode()))
        handle = None
        if file is not None and file.length:
            try:
                # Opened before the status goes out: a concurrent overwrite or delete unlinks the name
                # later, but this handle keeps the body it was chosen for.
                handle = open(file.path, "rb", buffering=0)  # noqa: SIM115 - closed below
            except FileNotFoundError:  # deleted between the lookup and now: it is gone
                gone = self._error_response(request, S3Error("NoSuchKey"), request_id)
                await self._send(send, request, gone, request_id, before_last)
                return
        if file is None or handle is None:
            await send({"type": "http.response.start", "status": response.status, "headers": headers})
            before_last(response.status, len(response.body))
            await send({"type": "http.response.body", "body": response.body})
            return
        with handle:
            await send({"type": "http.response.start", "status": response.status, "headers": headers})
            handle.seek(file.offset)
            remaining = file.length
            while remaining:
                chunk = handle.read(min(_FILE_CHUNK, remaining))
                if not chunk:
                    raise OSError(f"{file.path} is shorter than its record")
                remaining -= len(chunk)
                if not remaining:
                    before_last(response.status, file.length)
                await send({"type": "http.response.body", "body": chunk, "more_body": remaining > 0})

    def _log(
        self,
        request: Request,
        op: str,
        auth: AuthResult | None,
        status: int,
        bytes_in: int,
        bytes_out: int,
        started: float,
        request_id: str,
        fault: str | None,
    ) -> None:
        if self.request_log is None:
            return
        entry = {
            "ts": round(time.time(), 3),
            "method": request.method,
            "path": request.raw_path,
            "query": redact_query(request.raw_query),
            "status": status,
            "bytes_in": bytes_in,
            "bytes_out": bytes_out,
            "ms": round((time.perf_counter() - started) * 1000, 3),
            "auth": auth.scheme if auth else "none",
            "op": op,
            "request_id": request_id,
        }
        if fault:
            entry["fault"] = fault
        self.request_log.write(entry)


async def _sleep_at_least(seconds: float) -> None:
    """``asyncio.sleep`` under uvloop may end a fraction of a millisecond early by perf_counter: libuv
    times it from the loop clock it cached, at ms resolution, when the loop turn began. An injected
    latency is a promise of *at least* that much, as the request log (``ms``, from perf_counter) shows
    it. Each round sleeps what is left, so this ends."""
    deadline = time.perf_counter() + seconds
    while (left := deadline - time.perf_counter()) > 0:
        await asyncio.sleep(left)
