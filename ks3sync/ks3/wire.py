"""HTTP/1.1 exchanges with the KS3 endpoint, over httpcore (the transport httpx is built on).

Owns: the connection pools (one per origin reached directly, pool.py; one per proxy in use, httpcore's
``HTTPProxy``; each shared by every thread), which route a host takes (proxies.py decides), the TLS context (a CA bundle or the system's trust store; host names
checked), each request's timeouts and overall budget (network.py enforces them at the socket), the
Host value (checked to be a host name or address before it is written),
``HttpResponse`` (status, case-insensitive headers, the body read whole under a cap or streamed as it
arrives, never decoded), and THE boundary where every httpcore failure becomes ``KS3TransportError``,
or ``KS3CertificateError`` when a certificate was refused (naming the endpoint and what failed). An exception raised by a request body's own iterator passes through unchanged
(httpcore re-raises it after closing the connection).
httpcore (and ssl) are imported when the first request is made, not with ``ks3sync.ks3``: ``--help``,
``presign`` and ``status`` never pay for them.
Must not import: anything else from ks3sync.

What httpcore does that the client relies on (checked in tests/ks3): the request target goes out as
given, never normalised (keys with ``.``/``..`` segments and ``//`` keep their signature); a server that
answers early and closes while a body is still being sent is heard (httpcore reads the answer after a
failed write); idle connections are checked for a peer close before reuse and expire after
``keepalive_expiry``; h11 refuses CR/LF/NUL in header values and the target, caps one response head at
100 KiB, and frames bodies by Content-Length or chunked coding, never reading past either.
Why httpcore and not ``httpx.Client``: see docs/decisions.md D6.
"""

from __future__ import annotations

import ipaddress
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, overload

from .errors import KS3CertificateError, KS3TransportError
from .proxies import ProxyRoute, ProxySettings, ProxyURL

if TYPE_CHECKING:
    import ssl

    from .network import Budget

_HOST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,251}[A-Za-z0-9])?")


class Headers(dict[str, str]):
    """Response headers keyed by lower-case name; ``get``/``[]``/``in`` ignore case. Repeated fields
    are joined with ", " (RFC 9110 5.3)."""

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]]) -> Headers:
        headers = cls()
        for name, value in pairs:
            lowered = name.lower()
            previous = dict.get(headers, lowered)
            dict.__setitem__(headers, lowered, value if previous is None else f"{previous}, {value}")
        return headers

    @classmethod
    def from_raw(cls, pairs: Iterable[tuple[bytes, bytes]]) -> Headers:
        return cls.from_pairs((name.decode("latin-1"), value.decode("latin-1")) for name, value in pairs)

    @overload  # type: ignore[override]
    def get(self, name: str) -> str | None: ...
    @overload
    def get(self, name: str, default: str) -> str: ...
    @overload
    def get(self, name: str, default: None) -> str | None: ...

    def get(self, name: str, default: str | None = None) -> str | None:
        return dict.get(self, name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return dict.__getitem__(self, name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and dict.__contains__(self, name.lower())


@dataclass(frozen=True)
class WireSettings:
    scheme: str  # of the endpoint: http or https
    connect_timeout: float
    read_timeout: float  # each read and write; also the wait for a free connection
    max_connections: int
    keepalive_expiry: float
    proxies: ProxySettings = field(default_factory=ProxySettings)
    ca_bundle: str | None = None  # PEM file of trusted CAs; None = the system's trust store


# --- the one error boundary -------------------------------------------------------------------------

_httpcore: ModuleType | None = None
_FAILURES: tuple[type[Exception], ...] = ()


def _load() -> ModuleType:
    """httpcore, imported on first use; also fills ``_FAILURES`` (its transport failure classes)."""
    global _httpcore, _FAILURES
    if _httpcore is None:
        import httpcore

        _FAILURES = (
            httpcore.TimeoutException,
            httpcore.NetworkError,
            httpcore.ProtocolError,
            httpcore.ProxyError,
            httpcore.UnsupportedProtocol,
        )
        _httpcore = httpcore
    return _httpcore


def _failure(exc: Exception, method: str, label: str, where: str = "", origin: str = "") -> Exception:
    """The KS3 error for an httpcore failure. A request h11 would not put on the wire (a header value
    with CR/LF, a body longer or shorter than its Content-Length) is a ValueError: retrying cannot help.
    A refused certificate is KS3CertificateError naming ``origin`` (scheme://host:port), not retried:
    the same certificate comes back every time."""
    assert _httpcore is not None
    text = str(exc) or type(exc).__name__
    if isinstance(exc, _httpcore.LocalProtocolError):
        return ValueError(f"{method} {label}: the request cannot be sent: {text}")
    refused = _refused_certificate(exc)
    if refused is not None:
        return KS3CertificateError(
            f"{origin or label}: TLS certificate refused: {_certificate_problem(refused)}"
        )
    # A timeout (a silent peer, or the request's deadline) is a sign of load; waiting for one of our
    # own connections (PoolTimeout) is not.
    timed_out = isinstance(exc, _httpcore.TimeoutException) and not isinstance(exc, _httpcore.PoolTimeout)
    return KS3TransportError(method, label, f"{where}{type(exc).__name__}: {text}", timed_out=timed_out)


def _refused_certificate(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification failure behind ``exc`` (httpcore chains it as the cause), if any."""
    import ssl

    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen and not isinstance(cause, ssl.SSLCertVerificationError):
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return cause if isinstance(cause, ssl.SSLCertVerificationError) else None


# OpenSSL's X509_V_ERR_* codes, in words a user can act on.
_CERTIFICATE_PROBLEMS = {
    9: "not yet valid",
    10: "expired",
    18: "unknown issuer (self-signed)",
    19: "unknown issuer (self-signed CA in the chain)",
    20: "unknown issuer",
    21: "unknown issuer",
    62: "host-name mismatch",
    64: "host-name mismatch (IP address)",
}


def _certificate_problem(error: ssl.SSLCertVerificationError) -> str:
    """What failed: unknown issuer, host-name mismatch, expired, ... then OpenSSL's own words."""
    code = getattr(error, "verify_code", None)
    reason = getattr(error, "verify_message", "") or str(error)
    kind = _CERTIFICATE_PROBLEMS.get(code) if isinstance(code, int) else None
    return f"{kind} ({reason})" if kind else reason


# --- responses --------------------------------------------------------------------------------------


class BodyTooLarge(Exception):
    """A body read whole was longer than the caller's cap."""


class HttpResponse:
    """One response. Read it (``read``/``content``/``iter_raw``) or ``close`` it: a response left
    half-read holds its connection until closed (the connection is then dropped, not reused)."""

    __slots__ = (
        "status_code",
        "headers",
        "method",
        "label",
        "_stream",
        "_content",
        "_network_stream",
        "_budget",
        "_on_close",
        "_failed",
    )

    def __init__(
        self,
        status: int,
        headers: Headers,
        stream: Any,
        method: str,
        label: str,
        budget: Budget,
        network_stream: Any = None,
    ) -> None:
        self.status_code = status
        self.headers = headers
        self.method = method
        self.label = label
        self._stream = stream
        self._content: bytes | None = None
        self._budget = budget
        self._network_stream = network_stream  # network.GuardedStream: told when the exchange is over
        self._on_close: Callable[[bool], None] | None = None
        self._failed = False  # reading the body failed

    def call_on_close(self, callback: Callable[[bool], None]) -> None:
        """Have ``callback(failed)`` called once, when the response is closed (read to the end, given
        up, or broken: ``failed`` says whether reading the body failed)."""
        self._on_close = callback

    def allow_more_time(self, seconds: float) -> None:
        """Grow the request's deadline (for a body whose length is now known)."""
        self._budget.extend(seconds)

    def read_in(self, size: int) -> None:
        """Read the body from the socket ``size`` bytes at a time (for a large one)."""
        self._budget.read_size = size

    def read(self, limit: int | None = None) -> bytes:
        """The whole body (read once, then kept). More than ``limit`` bytes: BodyTooLarge, the moment
        the limit is passed (the connection is dropped)."""
        if self._content is None:
            chunks: list[bytes] = []
            size = 0
            for chunk in self.iter_raw(1 << 20):
                size += len(chunk)
                if limit is not None and size > limit:
                    self.close()
                    raise BodyTooLarge(f"response body longer than {limit} bytes")
                chunks.append(chunk)
            self._content = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        return self._content

    @property
    def content(self) -> bytes:
        """The body; ``read()`` must have been called (the transport reads every non-streamed response)."""
        if self._content is None:
            raise RuntimeError("response body not read yet")
        return self._content

    def iter_raw(self, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        """The body as it arrives, in chunks of up to ``chunk_size`` bytes (never content-decoded):
        small pieces are joined to ``chunk_size``, a piece of at least a quarter of it is passed on as
        it came (a large body's reads are large: ``read_in``)."""
        if self._content is not None:
            for start in range(0, len(self._content), chunk_size):
                yield self._content[start : start + chunk_size]
            return
        pending: list[bytes] = []
        size = 0
        large = chunk_size // 4
        try:
            for piece in self._stream:
                if not pending and large <= len(piece) <= chunk_size:
                    yield piece  # large enough as it is: not copied into a joined chunk
                    continue
                pending.append(piece)
                size += len(piece)
                if size >= chunk_size:
                    data = b"".join(pending)
                    whole = len(data) - len(data) % chunk_size
                    for start in range(0, whole, chunk_size):
                        yield data[start : start + chunk_size]
                    pending = [data[whole:]] if whole < len(data) else []
                    size = len(data) - whole
        except _FAILURES as exc:
            self._failed = True
            raise _failure(exc, self.method, self.label, "reading the body: ") from exc
        finally:
            self.close()
        if pending:
            yield b"".join(pending)

    iter_bytes = iter_raw  # bodies are never content-decoded (Accept-Encoding: identity)

    def close(self) -> None:
        network_stream, self._network_stream = self._network_stream, None
        exchange_done = getattr(network_stream, "exchange_done", None)
        if exchange_done is not None:
            exchange_done()  # before httpcore marks the connection idle (network.py says why)
        stream, self._stream = self._stream, ()
        close = getattr(stream, "close", None)
        try:
            if close is not None:
                try:
                    close()
                except _FAILURES:
                    pass  # closing a connection that already failed: nothing left to release
        finally:
            on_close, self._on_close = self._on_close, None
            if on_close is not None:
                on_close(self._failed)


# --- routes and pools -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Route:
    pool: Any  # httpcore.ConnectionPool or httpcore.HTTPProxy
    scheme: bytes
    host: bytes
    port: int
    host_header: tuple[bytes, bytes]
    origin: str  # scheme://host[:port], for messages


def check_host(host: str) -> None:
    """A host name or IP address that can be written as the Host value and connected to as it is."""
    if _HOST_NAME.fullmatch(host):
        return
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        raise ValueError(f"{host!r} is not a valid host name") from None


class Wire:
    """The pools of one client; thread-safe. Pools and the TLS context are made on first use."""

    def __init__(self, settings: WireSettings, default_port: int | None = None) -> None:
        if settings.scheme not in ("http", "https"):
            raise ValueError(f"unsupported scheme {settings.scheme!r}")
        self.settings = settings
        self._scheme = settings.scheme.encode("ascii")
        self._default_port = default_port or (443 if settings.scheme == "https" else 80)
        self._lock = threading.Lock()
        self._routes: dict[tuple[str, int | None], _Route] = {}
        # One pool per proxy in use (httpcore's HTTPProxy), one per origin reached directly (pool.py).
        self._pools: dict[ProxyURL | tuple[str, int], Any] = {}
        self._ssl_context: ssl.SSLContext | None = None
        self._closed = False
        if settings.ca_bundle is not None:
            self._ssl_context = make_ssl_context(settings.ca_bundle)  # a bad bundle fails here, not mid-run
        self._proxy_route: ProxyRoute | None = None  # the environment is read at the first request

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pools, self._pools = list(self._pools.values()), {}
            self._routes = {}
        for pool in pools:
            pool.close()

    def _route(self, host: str, port: int | None) -> _Route:
        route = self._routes.get((host, port))
        if route is not None:
            return route
        check_host(host)
        with self._lock:
            if self._closed:
                raise RuntimeError("the client is closed")
            if self._proxy_route is None:
                self._proxy_route = self.settings.proxies.resolve(self.settings.scheme)
            proxy = self._proxy_route.for_host(host)
            pool_key: ProxyURL | tuple[str, int] = (
                proxy if proxy is not None else (host, port or self._default_port)
            )
            pool = self._pools.get(pool_key)
            if pool is None:
                pool = self._pools[pool_key] = self._new_pool(proxy, host, port or self._default_port)
            shown_host = f"[{host}]" if ":" in host else host
            netloc = shown_host if port is None else f"{shown_host}:{port}"
            route = _Route(
                pool,
                self._scheme,
                host.encode("ascii"),
                port or self._default_port,
                (b"Host", netloc.encode("ascii")),
                f"{self.settings.scheme}://{netloc}",
            )
            self._routes[(host, port)] = route
            return route

    def _context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = make_ssl_context(None)
        return self._ssl_context

    def _new_pool(self, proxy: ProxyURL | None, host: str, port: int) -> Any:
        """A pool of direct connections to ``host``:``port`` (pool.py), or of connections through
        ``proxy``: plain http is forwarded (the target in absolute form), https is tunnelled with CONNECT
        (TLS to the endpoint inside, so the proxy sees only host and port). Proxy credentials go in
        Proxy-Authorization."""
        httpcore = _load()
        from .network import GuardedBackend

        settings = self.settings
        tls = settings.scheme == "https" or (proxy is not None and proxy.scheme == "https")
        if proxy is None:
            from .pool import OriginPool

            return OriginPool(
                httpcore.Origin(self._scheme, host.encode("ascii"), port),
                ssl_context=self._context() if tls else None,
                max_connections=settings.max_connections,
                keepalive_expiry=settings.keepalive_expiry,
                network_backend=GuardedBackend(kernel_timeouts=not tls),
            )
        common: dict[str, Any] = {
            "ssl_context": self._context() if tls else None,
            "max_connections": settings.max_connections,
            "max_keepalive_connections": settings.max_connections,
            "keepalive_expiry": settings.keepalive_expiry,
            "network_backend": GuardedBackend(),
        }
        auth = (
            (proxy.username.encode(), proxy.password.encode()) if proxy.username or proxy.password else None
        )
        return httpcore.HTTPProxy(
            proxy_url=httpcore.URL(
                scheme=proxy.scheme.encode(), host=proxy.host.encode("idna"), port=proxy.port, target=b"/"
            ),
            proxy_auth=auth,
            proxy_ssl_context=self._context() if proxy.scheme == "https" else None,
            **common,
        )

    def request(
        self,
        method: str,
        host: str,
        port: int | None,
        target: str,
        headers: list[tuple[bytes, bytes]],
        content: bytes | Iterable[bytes] | None,
        seconds: float,
        label: str,
    ) -> HttpResponse:
        """Send one request to ``host`` (no brackets) and ``port`` (None: the scheme's default, and then
        absent from the Host value) for ``target`` (path and query, already encoded, sent as it is).
        ``seconds`` is the whole exchange's deadline, until the response's body is read (see
        ``HttpResponse.allow_more_time``). Returns once the response head has arrived."""
        route = self._route(host, port)
        httpcore = _load()
        from .network import Budget, BudgetedTimeout

        budget = Budget(seconds)
        settings = self.settings
        io_timeout = BudgetedTimeout(settings.read_timeout, budget)
        timeouts = {
            "connect": BudgetedTimeout(min(settings.connect_timeout, settings.read_timeout), budget),
            "read": io_timeout,
            "write": io_timeout,
            "pool": settings.read_timeout,
        }
        try:
            request = httpcore.Request(
                method,
                httpcore.URL(scheme=route.scheme, host=route.host, port=route.port, target=target),
                headers=[route.host_header, *headers],
                content=content,
                extensions={"timeout": timeouts},
            )
            response = route.pool.handle_request(request)
        except _FAILURES as exc:
            raise _failure(exc, method, label, origin=route.origin) from exc
        except TypeError as exc:  # httpcore refuses a str that is not ASCII
            raise ValueError(f"{method} {label}: the request cannot be sent: {exc}") from None
        budget.head_done = True
        return HttpResponse(
            response.status,
            Headers.from_raw(response.headers),
            response.stream,
            method,
            label,
            budget,
            response.extensions.get("network_stream"),
        )


def make_ssl_context(ca_bundle: str | None) -> ssl.SSLContext:
    """Certificates and host names checked against ``ca_bundle`` (PEM) or the system's trust store."""
    import ssl

    if ca_bundle is None:
        return ssl.create_default_context()
    try:
        return ssl.create_default_context(cafile=ca_bundle)
    except FileNotFoundError:
        raise ValueError(f"CA bundle {ca_bundle}: no such file") from None
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"CA bundle {ca_bundle}: not a readable PEM file of certificates ({exc})") from None
