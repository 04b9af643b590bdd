"""The one exception tree of the KS3 client. Lower-layer errors (httpcore in wire.py, XML in xml.py) are
mapped onto it at those boundaries, and nowhere else.

    KS3Error                      anything the client raises on purpose
     +-- KS3TransportError        no usable HTTP response: connect/read/write failure, timeout, the
     |                            request's deadline, a proxy refusing the tunnel, broken HTTP
     +-- KS3CertificateError      the endpoint's TLS certificate was refused (unknown issuer, host-name
     |                            mismatch, expired): a setup problem, never retried
     +-- KS3IntegrityError        the service answered, but the bytes do not match what we sent or expect
     |                            (ETag != Content-MD5, CRC-64 mismatch, source file changed while read)
     +-- KS3ServiceError          an error response: .status .code .message .request_id .method .bucket .key
          +-- NoSuchBucket        404 NoSuchBucket
          +-- NoSuchKey           404 NoSuchKey (also a bodiless 404 on HEAD of an object)
          +-- NoSuchUpload        404 NoSuchUpload
          +-- BucketAlreadyExists 409
          +-- BucketNotEmpty      409
          +-- KS3AuthError        403 AccessDenied / InvalidAccessKeyId / SignatureDoesNotMatch /
                                  RequestTimeTooSkewed: retrying cannot help, the caller should stop

Every error carries ``retryable``: what the retry wrapper (retry.py) acts on, and ``throttling``: what
the request limit (limiter.py) shrinks on (a 503/429 or a throttling code, with the ``Retry-After`` it
came with; a timeout). Errors are classified by what to do about them, not only by type.

Owns: the tree, error-XML parsing into code/message/request id, and the retry classification.
Must not import: anything else from ks3sync, nor httpx/httpcore. Never put the secret key or the Authorization
header in a message; nothing here ever receives them.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

RETRYABLE_STATUSES: frozenset[int] = frozenset({408, 429, 500, 502, 503, 504})
RETRYABLE_CODES: frozenset[str] = frozenset(
    {"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "Throttling"}
)
# Answers that say "too many requests": the request limit shrinks (limiter.py). 500 InternalError is
# retried but is not a signal of load.
THROTTLING_STATUSES: frozenset[int] = frozenset({429, 503})
THROTTLING_CODES: frozenset[str] = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequests",
        "ServiceUnavailable",
    }
)
AUTH_CODES: frozenset[str] = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "RequestTimeTooSkewed"}
)


class KS3Error(Exception):
    """Base of everything the client raises on purpose."""

    retryable: bool = False
    throttling: bool = False  # the service is overloaded: fewer requests in flight (limiter.py)
    retry_after: float | None = None  # seconds the service asked us to wait (Retry-After), when it did

    def retry_reason(self) -> str:
        """``METHOD target: what went wrong``, in a few words, for the retry line at -v (retry.py)."""
        return str(self)


class KS3TransportError(KS3Error):
    """No usable response (connection refused/reset, timeout, protocol error). Always retryable."""

    retryable = True

    def __init__(self, method: str, target: str, reason: str, *, timed_out: bool = False) -> None:
        super().__init__(f"{method} {target}: {reason}")
        self.method = method
        self.target = target
        self.reason = reason
        # A timeout (or the request's deadline) is taken as a sign of load, like a 503.
        self.throttling = timed_out


class KS3CertificateError(KS3Error):
    """The endpoint (or the proxy) presented a certificate the trust store refuses. Not retryable: the
    same certificate comes back every time; the message names the endpoint and what failed."""

    retryable = False


class KS3IntegrityError(KS3Error):
    """The service confirmed different bytes than we sent (or a stored checksum disagrees).

    Retryable: an upload re-sends its body from the start, which cures a corrupted transfer; a file
    that changed on disk is reported as such and the caller decides.
    """

    retryable = True


class SourceChangedError(KS3IntegrityError):
    """The file being uploaded changed size while it was read. Not retryable: re-plan instead."""

    retryable = False


class KS3ServiceError(KS3Error):
    """An error response from the service."""

    def __init__(
        self,
        *,
        status: int,
        code: str,
        message: str,
        request_id: str = "",
        method: str = "",
        bucket: str | None = None,
        key: str | None = None,
        resource: str = "",
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.method = method
        self.bucket = bucket
        self.key = key
        self.resource = resource
        self.retryable = status in RETRYABLE_STATUSES or code in RETRYABLE_CODES
        self.throttling = status in THROTTLING_STATUSES or code in THROTTLING_CODES
        self.retry_after = retry_after if self.throttling else None
        super().__init__(self._describe())

    def _target(self) -> str:
        target = self.bucket or ""
        if self.key is not None:
            target += "/" + self.key
        return target or "/"

    def retry_reason(self) -> str:
        text = f"{self.method} {self._target()}: {self.status} {self.code}"
        if self.retry_after is not None:
            text += f" (Retry-After {self.retry_after:g} s)"
        return text

    def _describe(self) -> str:
        text = f"{self.method} {self._target()}: HTTP {self.status} {self.code}"
        if self.message:
            text += f": {self.message}"
        if self.request_id:
            text += f" (request id {self.request_id})"
        return text


class NoSuchBucket(KS3ServiceError):
    pass


class NoSuchKey(KS3ServiceError):
    pass


class NoSuchUpload(KS3ServiceError):
    pass


class BucketAlreadyExists(KS3ServiceError):
    pass


class BucketNotEmpty(KS3ServiceError):
    pass


class KS3AuthError(KS3ServiceError):
    pass


_BY_CODE: dict[str, type[KS3ServiceError]] = {
    "NoSuchBucket": NoSuchBucket,
    "NoSuchKey": NoSuchKey,
    "NotFound": NoSuchKey,  # KS3's Java SDK table calls it this
    "NoSuchUpload": NoSuchUpload,
    "BucketAlreadyExists": BucketAlreadyExists,
    "BucketAlreadyOwnedByYou": BucketAlreadyExists,
    "BucketNotEmpty": BucketNotEmpty,
    **{code: KS3AuthError for code in AUTH_CODES},
}

# Bodiless responses (HEAD) carry only a status; name the usual code for it.
_CODE_BY_STATUS: dict[int, str] = {
    400: "BadRequest",
    401: "Unauthorized",  # never KS3's own (it answers 403); some proxies refuse credentials with it
    403: "AccessDenied",
    404: "NotFound",
    405: "MethodNotAllowed",
    407: "ProxyAuthenticationRequired",  # a forward proxy's own answer (plain http through a proxy)
    409: "Conflict",
    412: "PreconditionFailed",
    416: "InvalidRange",
    500: "InternalError",
    501: "NotImplemented",
    503: "ServiceUnavailable",
}


def parse_error_body(body: bytes) -> tuple[str, str, str, str]:
    """``(code, message, request_id, resource)`` from an ``<Error>`` document; empty strings when the
    body is empty or not KS3 error XML (a proxy's HTML page, say)."""
    if not body.strip() or b"<!DOCTYPE" in body or b"\x00" in body[:4]:  # no KS3 error has a DOCTYPE
        return "", "", "", ""
    try:
        root = ET.fromstring(body)
    except (ET.ParseError, LookupError, ValueError):
        # Not KS3 error XML (a proxy's page, an unknown encoding): the status alone must do.
        return "", "", "", ""
    if root.tag.rpartition("}")[2] != "Error":
        return "", "", "", ""
    fields: dict[str, str] = {}
    for child in root:
        fields[child.tag.rpartition("}")[2]] = (child.text or "").strip()
    return (
        fields.get("Code", ""),
        fields.get("Message", ""),
        fields.get("RequestId", fields.get("RequestID", "")),
        fields.get("Resource", ""),
    )


def service_error(
    *,
    status: int,
    body: bytes,
    method: str,
    bucket: str | None,
    key: str | None,
    request_id: str = "",
    missing: type[KS3ServiceError] | None = None,
    retry_after: float | None = None,
) -> KS3ServiceError:
    """Map an error response to the right exception. ``missing`` says what a bodiless 404 means for
    this request (NoSuchKey for an object HEAD, NoSuchBucket for a bucket HEAD); ``retry_after`` is the
    answer's ``Retry-After`` in seconds (kept only on a throttling answer)."""
    code, message, body_request_id, resource = parse_error_body(body)
    if not code:
        code = _CODE_BY_STATUS.get(status, f"HTTP{status}")
        if status == 404 and missing is not None:
            code = missing.__name__
    if not message and not body.strip():
        message = "(no error body)"
    cls = _BY_CODE.get(code, KS3ServiceError)
    return cls(
        status=status,
        code=code,
        message=message,
        request_id=body_request_id or request_id,
        method=method,
        bucket=bucket,
        key=key,
        resource=resource,
        retry_after=retry_after,
    )
