"""Parsing one HTTP request into what the KS3 handlers need: bucket, key, query, headers.

Owns the addressing rules of protocol §1/§2.6: the raw request target is split and percent-decoded
here and only here, never normalised (`%2F` and `//` survive, so keys like `/a//b` round-trip), and the
bucket comes from the Host header (virtual-host style under a configured domain) or from the first path
segment (path style). Imports nothing else from ks3sync except the error type.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, unquote_plus

from ks3sync.localserver.errors import S3Error

# More digits than any size, count or time the server compares a number with: int() of a longer string
# only costs time, and past 4,300 digits it raises ValueError (which used to become a 500).
MAX_DIGITS = 19


def bounded_int(digits: str) -> int:
    """An ASCII decimal as an int, capped at 10**19 (larger than anything it is compared with)."""
    return int(digits) if len(digits) <= MAX_DIGITS else 10**MAX_DIGITS


@dataclass(frozen=True, slots=True)
class QueryParam:
    name: str
    raw: str  # the value exactly as it appeared in the URL (still percent-encoded)
    value: str  # the value decoded (form-style: '+' is a space)


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    raw_path: str
    raw_query: str
    bucket: str | None
    key: str | None
    query: tuple[QueryParam, ...]
    # lower-case header name -> value; repeated headers joined with ","
    headers: dict[str, str]
    client: str
    # why the target could not be decoded (bucket and key are then None); answered before any handler
    invalid: str | None = None

    def arg(self, name: str) -> str | None:
        for param in self.query:
            if param.name == name:
                return param.value
        return None

    def has_arg(self, name: str) -> bool:
        return any(param.name == name for param in self.query)

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)


def parse_query(raw_query: str) -> tuple[QueryParam, ...]:
    params = []
    for item in raw_query.split("&"):
        if not item:
            continue
        name, _, raw = item.partition("=")
        params.append(QueryParam(unquote(name), raw, unquote_plus(raw)))
    return tuple(params)


def _decode(segment: str) -> str:
    try:
        return unquote(segment, encoding="utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise S3Error(
            "InvalidURI", "The request path is not valid UTF-8 after percent-decoding.", status=400
        ) from exc


def split_target(raw_path: str, host: str, virtual_host_domain: str | None) -> tuple[str | None, str | None]:
    """(bucket, key) from the raw path and Host; key None means a bucket- or service-level request."""
    hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    hostname = hostname.lower()
    if virtual_host_domain and hostname.endswith("." + virtual_host_domain):
        bucket = hostname[: -len(virtual_host_domain) - 1]
        rest = raw_path[1:] if raw_path.startswith("/") else raw_path
        return bucket, (_decode(rest) if rest else None)
    if not raw_path.startswith("/") or raw_path == "/":
        return None, None
    bucket_part, slash, rest = raw_path[1:].partition("/")
    bucket = _decode(bucket_part)
    if not bucket:
        return None, None
    return bucket, (_decode(rest) if slash and rest else None)


def parse_request(
    method: str,
    raw_path: bytes,
    query_string: bytes,
    header_list: list[tuple[bytes, bytes]],
    client: str,
    virtual_host_domain: str | None,
) -> Request:
    headers: dict[str, str] = {}
    for name_b, value_b in header_list:
        name = name_b.decode("latin-1").lower()
        value = value_b.decode("latin-1")
        headers[name] = headers[name] + "," + value if name in headers else value
    path = raw_path.decode("latin-1")
    raw_query = query_string.decode("latin-1")
    invalid = None
    try:
        bucket, key = split_target(path, headers.get("host", ""), virtual_host_domain)
    except S3Error as error:
        bucket, key, invalid = None, None, error.message
    return Request(
        method=method,
        raw_path=path,
        raw_query=raw_query,
        bucket=bucket,
        key=key,
        query=parse_query(raw_query),
        headers=headers,
        client=client,
        invalid=invalid,
    )
