"""Presigned (query-string authenticated) URLs, as ks3sdk's ``Connection.generate_url`` makes them.

Owns: the URL layout ``<url>?Signature=..&Expires=..&KSSAccessKeyId=..[&extra]`` (that exact order),
with extra parameters URL-encoded in the URL and signed raw (ks3-protocol.md §2.2, vectors P1-P3).
Must not import: anything else from ks3sync, nor httpx.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

from .addressing import Addressing, encode_query
from .signing import canonical_resource, signature, string_to_sign


def presign_url(
    addressing: Addressing,
    access_key: str,
    secret_key: str,
    method: str,
    bucket: str | None,
    key: str | None,
    expires: int,
    *,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
) -> str:
    """A URL valid until the absolute Unix time ``expires``.

    ``headers`` are the Content-Type / Content-MD5 / x-kss-* headers the eventual requester must send
    verbatim; they are signed but do not appear in the URL.
    """
    method = method.upper()
    text = string_to_sign(method, canonical_resource(bucket, key, params), headers or {}, str(expires))
    base = addressing.url(bucket, key)
    query = (
        f"?Signature={quote(signature(secret_key, text), safe='')}"
        f"&Expires={expires}&KSSAccessKeyId={quote(access_key, safe='')}"
    )
    extra = encode_query(params)
    if extra:
        query += "&" + extra[1:]
    return base + query
