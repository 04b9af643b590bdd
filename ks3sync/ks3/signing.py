"""KSS v2 request signing, computed exactly as the official SDK (ks3sdk 1.18.0) does it.

Owns: key encoding for paths and signatures (``url_encode`` + the ``//`` -> ``/%2F`` rule), the
canonicalised resource (bucket, key, signed sub-resources), canonicalised ``x-kss-*`` headers, the
string to sign, and the HMAC-SHA1 signature. See ks3-protocol.md §2.1-2.2 and the golden vectors in
§2.5, which tests/ks3/test_signing.py pins.
Must not import: anything else from ks3sync, nor httpx; this module is pure string work.

The resource path put in the URL and the one signed are produced by the same function, so they can
never disagree.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import quote

# The SDK's exact, case-sensitive list. Any other query parameter (prefix, marker, max-keys, ...) is
# left out of the signature.
SUB_RESOURCES: frozenset[str] = frozenset(
    """
    acl cors defaultObjectAcl location logging partNumber policy requestPayment torrent versioning
    versionId versions website uploads uploadId response-content-type response-content-language
    response-expires response-cache-control response-content-disposition response-content-encoding
    delete lifecycle tagging restore notification thumbnail queryadp adp asyntask querytask domain
    storageClass websiteConfig compose quota crr fetch append position mirror retention recycle
    recover clear inventory id x-kss-process encryption accessmonitor decompresspolicy migration
    bucketqos requesterqos transferAcceleration dataAccelerator dataRedundancySwitch VpcAccessBlock
    PublicNetworkBlock BucketPublicNetworkBlock dataRedundancyTransition jobs jobId action priority
    worm wormId wormExtend archiveDirectRead http2
    """.split()
)

KSS_HEADER_PREFIX = "x-kss-"


def url_encode(key: str) -> str:
    """Percent-encode a key's UTF-8 bytes, keeping ``A-Z a-z 0-9 _ . - ~ /`` (upper-case hex)."""
    return quote(key.encode("utf-8"), safe="/~")


def resource_path(bucket: str | None, key: str | None) -> str:
    """``/bucket/`` + encoded key, with every ``//`` turned into ``/%2F`` (left to right).

    The SDK applies the ``//`` rule so that empty path segments survive proxies that merge slashes;
    decoding ``%2F`` gives the original key back. Used both for the signature and for path-style URLs.
    """
    path = "/"
    if bucket:
        path += bucket + "/"
    if key:
        path += url_encode(key)
    return path.replace("//", "/%2F")


def key_path(key: str | None) -> str:
    """The URL path for virtual-host and domain addressing: ``/`` + encoded key, same ``//`` rule."""
    return ("/" + url_encode(key) if key else "/").replace("//", "/%2F")


def canonical_resource(bucket: str | None, key: str | None, params: Mapping[str, str] | None = None) -> str:
    """CanonicalizedResource: the resource path plus the signed sub-resources, sorted by name.

    Sub-resource values are signed as given (unencoded); an empty value is signed as the bare name.
    """
    resource = resource_path(bucket, key)
    if params:
        signed = sorted((name, value) for name, value in params.items() if name in SUB_RESOURCES)
        if signed:
            resource += "?" + "&".join(f"{name}={value}" if value != "" else name for name, value in signed)
    return resource


def canonical_kss_headers(headers: Mapping[str, str]) -> str:
    """``name:value`` for every ``x-kss-*`` header, names lower-cased, values untouched, sorted."""
    lines = sorted(
        (name.lower(), value) for name, value in headers.items() if name.lower().startswith(KSS_HEADER_PREFIX)
    )
    return "\n".join(f"{name}:{value}" for name, value in lines)


def _header(headers: Mapping[str, str], wanted: str) -> str:
    for name, value in headers.items():
        if name.lower() == wanted:
            return value
    return ""


def string_to_sign(method: str, resource: str, headers: Mapping[str, str], date: str | None = None) -> str:
    """The KSS v2 StringToSign. ``date`` overrides the ``Date`` header (presigned URLs pass Expires)."""
    parts = [
        method,
        _header(headers, "content-md5"),
        _header(headers, "content-type"),
        date if date is not None else _header(headers, "date"),
    ]
    kss = canonical_kss_headers(headers)
    if kss:
        parts.append(kss)
    parts.append(resource)
    return "\n".join(parts)


def signature(secret_key: str, text: str) -> str:
    """Base64(HMAC-SHA1(secret, text))."""
    digest = hmac.new(secret_key.encode("utf-8"), text.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def sign_v2(
    secret_key: str,
    method: str,
    bucket: str | None,
    key: str | None,
    headers: Mapping[str, str],
    params: Mapping[str, str] | None = None,
    *,
    date: str | None = None,
) -> str:
    """Signature for a request; ``Authorization: KSS <AK>:<this>``. Uses the ``Date`` header unless
    ``date`` is given (the Expires integer, for presigned URLs)."""
    return signature(
        secret_key, string_to_sign(method, canonical_resource(bucket, key, params), headers, date)
    )


def authorization(
    access_key: str,
    secret_key: str,
    method: str,
    bucket: str | None,
    key: str | None,
    headers: Mapping[str, str],
    params: Mapping[str, str] | None = None,
) -> str:
    return f"KSS {access_key}:{sign_v2(secret_key, method, bucket, key, headers, params)}"
