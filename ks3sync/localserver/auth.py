"""Request authentication for the local server: KSS V2 header, KSS presigned URL, AWS SigV4.

Owns signature verification only (protocol §2.1, §2.2, §2.6 and the SigV4 dialect S3 tools speak):
it answers "who signed this request, with which scheme" or raises the KS3 error a real KS3 would
(InvalidAccessKeyId, SignatureDoesNotMatch, AccessDenied for expired URLs or a missing Date,
RequestTimeTooSkewed). Authorization (ACLs) is the handlers' business. Pure: no I/O; the clock is a
parameter. Secrets never enter an error message; the StringToSign (no secret in it) is echoed to help.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache
from urllib.parse import quote, unquote

from ks3sync.localserver import awschunked
from ks3sync.localserver.awschunked import ChunkSigning
from ks3sync.localserver.errors import S3Error
from ks3sync.localserver.request import QueryParam, Request, bounded_int

MAX_SKEW_SECONDS = 15 * 60
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"

# The SDK's exact, case-sensitive list of query parameters that enter the V2 signature (§2.1).
SIGNED_SUBRESOURCES = frozenset(
    """acl cors defaultObjectAcl location logging partNumber policy requestPayment torrent versioning
    versionId versions website uploads uploadId response-content-type response-content-language
    response-expires response-cache-control response-content-disposition response-content-encoding
    delete lifecycle tagging restore notification thumbnail queryadp adp asyntask querytask domain
    storageClass websiteConfig compose quota crr fetch append position mirror retention recycle
    recover clear inventory id x-kss-process encryption accessmonitor decompresspolicy migration
    bucketqos requesterqos transferAcceleration dataAccelerator dataRedundancySwitch VpcAccessBlock
    PublicNetworkBlock BucketPublicNetworkBlock dataRedundancyTransition jobs jobId action priority
    worm wormId wormExtend archiveDirectRead http2""".split()
)


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key: str
    secret_key: str

    def __repr__(self) -> str:  # the secret never reaches a log line or a traceback
        return f"Credentials(access_key={self.access_key!r}, secret_key='***')"

    def secret_for(self, access_key: str) -> str:
        if not hmac.compare_digest(access_key.encode(), self.access_key.encode()):
            raise S3Error("InvalidAccessKeyId", extra={"AWSAccessKeyId": access_key})
        return self.secret_key


@dataclass(frozen=True, slots=True)
class AuthResult:
    scheme: str  # "kss-v2" | "kss-presigned" | "sigv4" | "sigv4-presigned" | "anonymous"
    access_key: str | None
    # hex SHA-256 the body must have (SigV4 with a signed payload), else None
    payload_sha256: str | None = None
    # aws-chunked body: its framing (awschunked.SIGNED / UNSIGNED_TRAILER) and, if signed, how to check it
    streaming: str | None = None
    chunk_signing: ChunkSigning | None = None

    @property
    def anonymous(self) -> bool:
        return self.access_key is None


ANONYMOUS = AuthResult("anonymous", None)


def authenticate(request: Request, credentials: Credentials, now: float) -> AuthResult:
    authorization = request.headers.get("authorization")
    if authorization is not None:
        if authorization.startswith("KSS "):
            return _verify_kss_header(request, credentials, authorization, now)
        if authorization.startswith("AWS4-HMAC-SHA256"):
            return _verify_sigv4_header(request, credentials, authorization, now)
        raise S3Error("InvalidArgument", "Unsupported Authorization type.")
    if request.has_arg("Signature") and request.has_arg("KSSAccessKeyId"):
        return _verify_kss_presigned(request, credentials, now)
    if request.has_arg("X-Amz-Signature"):
        return _verify_sigv4_presigned(request, credentials, now)
    return ANONYMOUS


# ---------------------------------------------------------------- KSS V2


def url_encode_key(key: str) -> str:
    """The SDK's key encoding: everything but A-Z a-z 0-9 _ . - ~ / percent-encoded (UTF-8)."""
    return quote(key.encode("utf-8"), safe="/")


def canonical_resource(bucket: str | None, key: str | None, subresources: list[tuple[str, str]]) -> str:
    resource = "/"
    if bucket:
        resource += bucket + "/"
        if key:
            resource += url_encode_key(key)
    resource = resource.replace("//", "/%2F")
    if subresources:
        parts = [name if value == "" else f"{name}={value}" for name, value in sorted(subresources)]
        resource += "?" + "&".join(parts)
    return resource


def kss_string_to_sign(request: Request, date_line: str, subresources: list[tuple[str, str]]) -> str:
    headers = request.headers
    kss_headers = sorted((name, value) for name, value in headers.items() if name.startswith("x-kss-"))
    lines = [
        request.method,
        headers.get("content-md5", ""),
        headers.get("content-type", ""),
        date_line,
    ]
    lines.extend(f"{name}:{value}" for name, value in kss_headers)
    lines.append(canonical_resource(request.bucket, request.key, subresources))
    return "\n".join(lines)


def kss_signature(secret_key: str, string_to_sign: str) -> str:
    digest = hmac.new(secret_key.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def _subresource_variants(query: tuple[QueryParam, ...]) -> list[list[tuple[str, str]]]:
    """Decoded sub-resource values first, then the raw ones (the SDK signs either form, §2.1)."""
    signed = [param for param in query if param.name in SIGNED_SUBRESOURCES]
    decoded = [(param.name, unquote(param.raw)) for param in signed]
    raw = [(param.name, param.raw) for param in signed]
    return [decoded] if decoded == raw else [decoded, raw]


def _check_kss_signature(request: Request, secret: str, date_line: str, given: str) -> None:
    string_to_sign = ""
    for subresources in _subresource_variants(request.query):
        string_to_sign = kss_string_to_sign(request, date_line, subresources)
        if hmac.compare_digest(kss_signature(secret, string_to_sign).encode(), given.encode()):
            return
    raise S3Error("SignatureDoesNotMatch", extra={"StringToSign": string_to_sign})


def _verify_kss_header(
    request: Request, credentials: Credentials, authorization: str, now: float
) -> AuthResult:
    access_key, sep, signature = authorization[4:].strip().rpartition(":")
    if not sep or not access_key:
        raise S3Error("InvalidArgument", "Authorization header is malformed: expected 'KSS AK:Signature'.")
    secret = credentials.secret_for(access_key)
    date_value = request.headers.get("date")
    if date_value is None:
        raise S3Error("AccessDenied", "A Date header is required for a signed request.")
    _check_skew(_parse_http_date(date_value), now)
    _check_kss_signature(request, secret, date_value, signature)
    return AuthResult("kss-v2", access_key)


def _verify_kss_presigned(request: Request, credentials: Credentials, now: float) -> AuthResult:
    params = {param.name: param for param in request.query}
    access_key = unquote(params["KSSAccessKeyId"].raw)
    secret = credentials.secret_for(access_key)
    expires_param = params.get("Expires")
    if expires_param is None or not (expires_param.raw.isascii() and expires_param.raw.isdigit()):
        raise S3Error("AccessDenied", "Query-string authentication requires an integer Expires parameter.")
    if now > bounded_int(expires_param.raw):
        raise S3Error("AccessDenied", "Request has expired.", extra={"Expires": expires_param.raw})
    _check_kss_signature(request, secret, expires_param.raw, unquote(params["Signature"].raw))
    return AuthResult("kss-presigned", access_key)


@lru_cache(maxsize=256)
def _parse_http_date(value: str) -> float:
    """Cached: a busy client sends the same Date string for a whole second."""
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError) as exc:
        raise S3Error("AccessDenied", f"Unparseable Date header: {value!r}.") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _check_skew(request_time: float, now: float) -> None:
    if abs(request_time - now) > MAX_SKEW_SECONDS:
        raise S3Error(
            "RequestTimeTooSkewed",
            extra={"ServerTime": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")},
        )


# ---------------------------------------------------------------- AWS SigV4

_SIGV4_QUERY_SAFE = "-_.~"


def _parse_amz_date(value: str) -> float:
    try:
        return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError as exc:
        raise S3Error("AccessDenied", f"Unparseable X-Amz-Date: {value!r}.") from exc


def _canonical_query(query: tuple[QueryParam, ...], exclude: str | None = None) -> str:
    pairs = sorted(
        (quote(param.name, safe=_SIGV4_QUERY_SAFE), quote(unquote(param.raw), safe=_SIGV4_QUERY_SAFE))
        for param in query
        if param.name != exclude
    )
    return "&".join(f"{name}={value}" for name, value in pairs)


def _canonical_uris(request: Request) -> list[str]:
    """The raw path as sent, then the AWS re-encoding of the decoded path; clients differ."""
    raw = request.raw_path
    reencoded = quote(unquote(raw), safe="/~")
    return [raw] if reencoded == raw else [raw, reencoded]


def _canonical_headers(request: Request, signed_headers: list[str]) -> str:
    lines = []
    for name in signed_headers:
        value = request.headers.get(name)
        if value is None:
            raise S3Error("AccessDenied", f"Signed header {name!r} is missing from the request.")
        lines.append(f"{name}:{' '.join(value.split())}\n")
    return "".join(lines)


def _sigv4_signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = hmac.new(("AWS4" + secret).encode("utf-8"), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


@dataclass(frozen=True, slots=True)
class _SigV4Parts:
    access_key: str
    scope_date: str
    region: str
    service: str
    signed_headers: list[str]
    signature: str

    @property
    def scope(self) -> str:
        return f"{self.scope_date}/{self.region}/{self.service}/aws4_request"


def _parse_credential(credential: str) -> tuple[str, str, str, str]:
    pieces = credential.split("/")
    if len(pieces) != 5 or pieces[4] != "aws4_request":
        raise S3Error("AuthorizationHeaderMalformed", "The Credential is malformed.", status=400)
    return pieces[0], pieces[1], pieces[2], pieces[3]


def _check_sigv4(
    request: Request, secret: str, parts: _SigV4Parts, amz_date: str, payload_hash: str, canonical_query: str
) -> None:
    signing_key = _sigv4_signing_key(secret, parts.scope_date, parts.region, parts.service)
    canonical_headers = _canonical_headers(request, parts.signed_headers)
    string_to_sign = ""
    for uri in _canonical_uris(request):
        canonical_request = "\n".join(
            [
                request.method,
                uri,
                canonical_query,
                canonical_headers,
                ";".join(parts.signed_headers),
                payload_hash,
            ]
        )
        string_to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256",
                amz_date,
                parts.scope,
                hashlib.sha256(canonical_request.encode()).hexdigest(),
            ]
        )
        expected = hmac.new(signing_key, string_to_sign.encode(), hashlib.sha256).hexdigest()
        if hmac.compare_digest(expected.encode(), parts.signature.encode()):
            return
    raise S3Error("SignatureDoesNotMatch", extra={"StringToSign": string_to_sign})


def _verify_sigv4_header(
    request: Request, credentials: Credentials, authorization: str, now: float
) -> AuthResult:
    fields: dict[str, str] = {}
    # s3cmd writes "a=b,c=d" without spaces; others "a=b, c=d"
    for item in authorization[len("AWS4-HMAC-SHA256") :].split(","):
        name, _, value = item.strip().partition("=")
        fields[name] = value
    try:
        access_key, scope_date, region, service = _parse_credential(fields["Credential"])
        parts = _SigV4Parts(
            access_key, scope_date, region, service, fields["SignedHeaders"].split(";"), fields["Signature"]
        )
    except KeyError as exc:
        raise S3Error(
            "AuthorizationHeaderMalformed", f"The authorization header lacks {exc.args[0]}.", status=400
        ) from exc
    secret = credentials.secret_for(access_key)
    amz_date = request.headers.get("x-amz-date")
    if amz_date is not None:
        request_time = _parse_amz_date(amz_date)
    elif "date" in request.headers:
        request_time = _parse_http_date(request.headers["date"])
        amz_date = datetime.fromtimestamp(request_time, UTC).strftime("%Y%m%dT%H%M%SZ")
    else:
        raise S3Error("AccessDenied", "A Date or X-Amz-Date header is required for a signed request.")
    _check_skew(request_time, now)
    payload_hash = request.headers.get("x-amz-content-sha256")
    if payload_hash is None:
        if request.headers.get("content-length", "0") not in ("", "0"):
            raise S3Error("MissingSecurityHeader", "x-amz-content-sha256 is required with a body.")
        payload_hash = EMPTY_SHA256
    _check_sigv4(request, secret, parts, amz_date, payload_hash, _canonical_query(request.query))
    if payload_hash == awschunked.SIGNED:
        signing = ChunkSigning(
            _sigv4_signing_key(secret, parts.scope_date, parts.region, parts.service),
            amz_date,
            parts.scope,
            parts.signature,
        )
        return AuthResult("sigv4", access_key, streaming=payload_hash, chunk_signing=signing)
    if payload_hash == awschunked.UNSIGNED_TRAILER:
        return AuthResult("sigv4", access_key, streaming=payload_hash)
    if payload_hash.startswith("STREAMING-"):
        raise S3Error("NotImplemented", f"aws-chunked bodies of type {payload_hash} are not supported.")
    expected_body = None if payload_hash == UNSIGNED_PAYLOAD else payload_hash.lower()
    return AuthResult("sigv4", access_key, expected_body)


def _verify_sigv4_presigned(request: Request, credentials: Credentials, now: float) -> AuthResult:
    params = {param.name: unquote(param.raw) for param in request.query}
    try:
        if params["X-Amz-Algorithm"] != "AWS4-HMAC-SHA256":
            raise S3Error("InvalidArgument", "Unsupported X-Amz-Algorithm.")
        access_key, scope_date, region, service = _parse_credential(params["X-Amz-Credential"])
        amz_date = params["X-Amz-Date"]
        expires = int(params["X-Amz-Expires"])
        parts = _SigV4Parts(
            access_key,
            scope_date,
            region,
            service,
            params["X-Amz-SignedHeaders"].split(";"),
            params["X-Amz-Signature"],
        )
    except (KeyError, ValueError) as exc:
        raise S3Error(
            "AuthorizationQueryParametersError", "Presigned SigV4 parameters are incomplete.", status=400
        ) from exc
    secret = credentials.secret_for(access_key)
    if now > _parse_amz_date(amz_date) + expires:
        raise S3Error("AccessDenied", "Request has expired.")
    _check_sigv4(
        request,
        secret,
        parts,
        amz_date,
        UNSIGNED_PAYLOAD,
        _canonical_query(request.query, exclude="X-Amz-Signature"),
    )
    return AuthResult("sigv4-presigned", access_key)
