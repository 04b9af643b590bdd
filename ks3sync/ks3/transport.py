"""One signed HTTP exchange with KS3, its limits, and the request side of the error mapping.

Owns: ``ClientConfig`` (endpoint, credentials, timeouts, pool size, proxy and TLS settings), request
assembly (Date, Content-MD5, Content-Length, x-kss-* headers, signature, target), each request's
overall deadline (below), the cap on bodies read whole, mapping error responses to the exception tree
(errors.py), the upload integrity check (returned ETag == MD5 sent, returned CRC-64 == CRC of the bytes
sent), and request logging without secrets. The HTTP itself is wire.py's (httpcore). Retrying is NOT
done here: ``Transport.send`` hands one-shot attempts to retry.py's wrapper; every attempt is rebuilt
from scratch (fresh Date and signature, body iterated again from its first byte).
Must not import: anything else from ks3sync.

Each request's deadline (besides the idle ``timeout`` of every read and write): ``request_timeout`` plus
the bytes it carries at ``min_rate`` -- the request body, and the response body once its length is
known (Content-Length, or the size the caller expects). A slow but alive 1 GiB part at 16 KiB/s is not
cut; a server that drips a byte every few seconds is, after ``request_timeout`` for a small request.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from .addressing import Addressing, encode_query
from .bodies import Body
from .checksums import crc64, md5_base64, unquote_etag
from .errors import KS3Error, KS3IntegrityError, KS3ServiceError, KS3TransportError, service_error
from .limiter import LARGE_REQUEST, MAX_PAUSE, Outcome, RequestLimit, SlotTimeout
from .objectinfo import CRC_HEADER, parse_crc, parse_decimal
from .proxies import ProxySettings
from .retry import RetryPolicy, call_with_retry
from .signing import authorization
from .wire import BodyTooLarge, HttpResponse, Wire, WireSettings
from .xml import MalformedResponse

log = logging.getLogger("ks3sync.ks3")

REQUEST_ID_HEADER = "x-kss-request-id"
_MAX_ERROR_BODY = 1024 * 1024
# A body read whole (an XML document) may not be longer: a ListObjects page of 1,000 keys is at most
# ~4 MiB even with 1,024-byte keys url-encoded at three characters a byte.
MAX_DOCUMENT = 16 * 1024 * 1024
DEFAULT_MIN_RATE = 16 * 1024
# A streamed body of at least this size is read from the socket this much at a time (httpcore asks
# for 64 KiB; each read is one h11 event, a few dozen Python calls).
LARGE_READ = 1024 * 1024


@dataclass(frozen=True)
class ClientConfig:
    """Connection settings. ``path_style=None`` picks path style for IPs/localhost, virtual-host
    otherwise; ``domain_mode`` means the endpoint is one bucket's custom domain."""

    endpoint: str
    access_key: str
    secret_key: str = field(repr=False)
    path_style: bool | None = None
    domain_mode: bool = False
    timeout: float = 60.0  # each read and write (idle time), and the wait for a free connection
    connect_timeout: float = 10.0  # TCP connect and TLS handshake
    request_timeout: float = 300.0  # the floor of every request's overall deadline (module docstring)
    min_rate: float = DEFAULT_MIN_RATE  # bytes/s: the deadline grows by the bytes carried at this rate
    max_connections: int = 32
    # The ceiling of the adaptive number of requests in flight (limiter.py); None: max_connections.
    max_in_flight: int | None = None
    keepalive_expiry: float = 30.0  # an idle connection older than this is closed, not reused
    proxy: ProxySettings = field(default_factory=ProxySettings)  # default: the environment's, as curl
    ca_bundle: str | None = None  # PEM file of trusted CAs for https; None = the system's trust store
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    user_agent: str = "ks3sync"

    def __post_init__(self) -> None:
        if not self.access_key or not self.secret_key:
            raise ValueError("ClientConfig: access_key and secret_key must not be empty")
        if self.max_connections < 1:
            raise ValueError(f"ClientConfig.max_connections must be >= 1, not {self.max_connections}")
        if self.max_in_flight is not None and self.max_in_flight < 1:
            raise ValueError(f"ClientConfig.max_in_flight must be >= 1, not {self.max_in_flight}")
        for name in ("timeout", "connect_timeout", "request_timeout", "min_rate"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ClientConfig.{name} must be > 0, not {getattr(self, name)}")
        if self.keepalive_expiry < 0:
            raise ValueError(f"ClientConfig.keepalive_expiry must be >= 0, not {self.keepalive_expiry}")


@dataclass(frozen=True)
class Request:
    """One KS3 operation's request, independent of attempts."""

    method: str
    bucket: str | None = None
    key: str | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Body | None = None
    stream: bool = False  # leave a successful response unread (GET to iterate)
    expected_size: int | None = None  # of the response body, when the caller knows it (a listed object)
    verify_upload: bool = False  # ETag must equal the body's MD5; CRC header must equal the body's CRC
    missing: type[KS3ServiceError] | None = None  # what a bodiless 404 means (HEAD)
    success: frozenset[int] | None = None  # None = any 2xx


class _CrcCounter:
    """Wraps a body's chunk iterator, computing the CRC-64 and byte count of what was actually sent."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self.crc = 0
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            self.crc = crc64(chunk, self.crc)
            self.sent += len(chunk)
            yield chunk


def target_name(bucket: str | None, key: str | None) -> str:
    return f"{bucket or ''}/{key}" if key is not None else (bucket or "/")


# Bodies up to this size are joined into one bytes object before sending: the CRC-64 is taken in one
# call and httpcore sends it with one write.
_INLINE_BODY_MAX = 256 * 1024


def retry_after_seconds(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """A ``Retry-After`` value (delay-seconds or an HTTP date, RFC 9110 10.2.3) in seconds from now,
    at most ``MAX_PAUSE``; None when absent or unusable (a hostile value is ignored, not obeyed)."""
    if not value:
        return None
    seconds = parse_decimal(value.strip())
    if seconds is None:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        return min(MAX_PAUSE, max(0.0, when.timestamp() - now()))
    return min(MAX_PAUSE, float(seconds))


class Transport:
    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.addressing = Addressing.from_config(config.endpoint, config.path_style, config.domain_mode)
        endpoint = self.addressing.endpoint
        self.wire = Wire(
            WireSettings(
                scheme=endpoint.scheme,
                connect_timeout=config.connect_timeout,
                read_timeout=config.timeout,
                max_connections=config.max_connections,
                keepalive_expiry=config.keepalive_expiry,
                proxies=config.proxy,
                ca_bundle=config.ca_bundle,
            )
        )
        # Every attempt of a small request holds a slot from the time it is built until its response is
        # closed: the client's requests in flight adapt to what the service takes (limiter.py).
        self.limit = RequestLimit(config.max_in_flight or config.max_connections)
        # Bytes, once: httpcore takes header fields as (name, value) byte pairs.
        self._default_headers = [
            (b"User-Agent", config.user_agent.encode("latin-1")),
            (b"Accept-Encoding", b"identity"),
            (b"Accept", b"*/*"),
        ]
        self._date = (0, "")  # (whole second, its RFC 1123 form), replaced as one tuple: thread-safe

    def close(self) -> None:
        self.wire.close()

    def _date_header(self) -> str:
        now = int(time.time())
        cached = self._date
        if cached[0] == now:
            return cached[1]
        text = email.utils.formatdate(now, usegmt=True)
        self._date = (now, text)
        return text

    # --- one attempt ---------------------------------------------------------------------------

    def attempt(self, request: Request) -> HttpResponse:
        """Send ``request`` once. Returns a successful response (read, unless ``request.stream``);
        raises KS3TransportError / KS3ServiceError / KS3IntegrityError otherwise.

        A small request (limiter.py) first waits for a slot of the request limit, given back when the
        response is closed (at once unless streamed) with what the exchange says about the service's
        load; a large one takes no slot, and only a throttling answer to it is reported."""
        limit = self.limit
        carried = (request.body.length if request.body is not None else 0) + (request.expected_size or 0)
        if carried > LARGE_REQUEST:
            try:
                return self._exchange(request)
            except KS3Error as exc:
                if exc.throttling:
                    limit.observe(Outcome.THROTTLED, exc.retry_after)
                raise
        try:
            ticket = limit.acquire(self.config.timeout)
        except SlotTimeout as exc:
            raise KS3TransportError(
                request.method, target_name(request.bucket, request.key), str(exc)
            ) from None
        try:
            response = self._exchange(request)
        except KS3Error as exc:
            if exc.throttling:
                limit.release(ticket, Outcome.THROTTLED, exc.retry_after)
            else:
                # Any other answer (an error status, a wrong checksum) means the service kept up.
                limit.release(
                    ticket, Outcome.FAILED if isinstance(exc, KS3TransportError) else Outcome.ANSWERED
                )
            raise
        except BaseException:
            limit.release(ticket, Outcome.FAILED)
            raise
        if request.stream:
            response.call_on_close(
                lambda failed: limit.release(ticket, Outcome.FAILED if failed else Outcome.ANSWERED)
            )
        else:
            limit.release(ticket, Outcome.ANSWERED)
        return response

    def _exchange(self, request: Request) -> HttpResponse:
        headers: dict[str, str] = {"Date": self._date_header()}
        headers.update(request.headers)
        content: bytes | _CrcCounter | None = None
        counter: _CrcCounter | None = None
        sent_crc = 0
        sent_bytes = 0
        body = request.body
        target = target_name(request.bucket, request.key)
        if body is not None:
            headers["Content-MD5"] = md5_base64(body.content_md5())
            headers["Content-Length"] = str(body.length)
            if body.length <= _INLINE_BODY_MAX:
                content = b"".join(body.chunks())
                sent_crc = crc64(content, 0)
                sent_bytes = len(content)
                if sent_bytes != body.length:
                    raise KS3IntegrityError(
                        f"{request.method} {target}: body has {sent_bytes} bytes but declared {body.length}"
                    )
            else:
                content = counter = _CrcCounter(body.chunks())
        elif request.method in ("PUT", "POST"):
            headers["Content-Length"] = "0"
        headers["Authorization"] = authorization(
            self.config.access_key,
            self.config.secret_key,
            request.method,
            request.bucket,
            request.key,
            headers,
            request.params,
        )
        host, path = self.addressing.host_and_path(request.bucket, request.key)
        config = self.config
        seconds = (
            config.request_timeout
            + ((body.length if body is not None else 0) + (request.expected_size or 0)) / config.min_rate
        )
        started = time.monotonic()
        try:
            response = self.wire.request(
                request.method,
                host,
                self.addressing.endpoint.port,
                path + encode_query(request.params),
                [
                    *self._default_headers,
                    *((name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()),
                ],
                content,
                seconds,
                target,
            )
        except ValueError:
            if counter is not None and body is not None and counter.sent != body.length:
                # h11 refuses a body that is not its declared length: say which it was.
                raise KS3IntegrityError(
                    f"{request.method} {target}: sent {counter.sent} bytes but declared {body.length}"
                ) from None
            raise
        except KS3TransportError as exc:
            log.debug("%s %s failed: %s", request.method, target, exc.reason)
            raise
        request_id = response.headers.get(REQUEST_ID_HEADER, "")
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s %s -> %d (%.1f ms, request id %s)",
                request.method,
                target,
                response.status_code,
                (time.monotonic() - started) * 1000,
                request_id,
            )
        ok = (
            response.status_code in request.success
            if request.success is not None
            else 200 <= response.status_code < 300
        )
        if not ok:
            error_body = self._read_error_body(response, request.method, target)
            raise service_error(
                status=response.status_code,
                body=error_body,
                method=request.method,
                bucket=request.bucket,
                key=request.key,
                request_id=request_id,
                missing=request.missing,
                retry_after=retry_after_seconds(response.headers.get("retry-after")),
            )
        declared = parse_decimal(response.headers.get("content-length"))
        if request.stream:
            if declared is not None and request.expected_size is None:
                response.allow_more_time(declared / config.min_rate)
            if (declared or 0) >= LARGE_READ:
                response.read_in(LARGE_READ)
        else:
            if declared is not None:
                response.allow_more_time(min(declared, MAX_DOCUMENT) / config.min_rate)
            try:
                response.read(MAX_DOCUMENT)
            except BodyTooLarge:
                raise MalformedResponse(
                    f"{request.method} {target}: response body longer than {MAX_DOCUMENT // (1024 * 1024)} MiB, "
                    "the most any KS3 document needs"
                ) from None
        if request.verify_upload and body is not None:
            if counter is not None:
                sent_crc, sent_bytes = counter.crc, counter.sent
            self._verify_upload(response, request, sent_crc, sent_bytes, target)
        return response

    @staticmethod
    def _read_error_body(response: HttpResponse, method: str, target: str) -> bytes:
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_raw(64 * 1024):
                chunks.append(chunk)
                size += len(chunk)
                if size >= _MAX_ERROR_BODY:
                    break  # enough to name the error; the rest is never read
        except KS3TransportError as exc:
            # The status line arrived, so the error is still meaningful without its body.
            log.debug("%s %s: error body unreadable: %s", method, target, exc)
        finally:
            response.close()
        return b"".join(chunks)

    @staticmethod
    def _verify_upload(
        response: HttpResponse, request: Request, sent_crc: int, sent_bytes: int, target: str
    ) -> None:
        assert request.body is not None
        if sent_bytes != request.body.length:
            raise KS3IntegrityError(
                f"{request.method} {target}: sent {sent_bytes} bytes but declared {request.body.length}"
            )
        expected_etag = request.body.content_md5().hex()
        etag = unquote_etag(response.headers.get("ETag", ""))
        if etag != expected_etag:
            raise KS3IntegrityError(
                f"{request.method} {target}: service ETag {etag or '(none)'} != MD5 sent {expected_etag}"
            )
        returned_crc = response.headers.get(CRC_HEADER)
        if returned_crc is not None:
            value = parse_crc(returned_crc)
            if value is None:
                raise KS3IntegrityError(
                    f"{request.method} {target}: unparseable {CRC_HEADER}: {returned_crc[:40]!r}"
                )
            if value != sent_crc:
                raise KS3IntegrityError(
                    f"{request.method} {target}: service CRC-64 {value} != CRC-64 sent {sent_crc}"
                )

    # --- with retries --------------------------------------------------------------------------

    def send(self, request: Request, policy: RetryPolicy | None = None) -> HttpResponse:
        return call_with_retry(policy or self.config.retry, lambda _number: self.attempt(request))

    def retry(self, attempt: Callable[[int], HttpResponse]) -> HttpResponse:
        return call_with_retry(self.config.retry, attempt)
