"""A deliberately tiny KS3 client for the harness: V2-signed PUT, GET, HEAD, list, create bucket.

Owns: the harness's own view of the bucket (verification, seeding, machine limits).
Must not import: ks3sync (so a bug in ks3sync's client can never hide itself in the check of its own
results) or ks3sdk (a peer under test). Keys used by the benchmarks are plain ASCII paths, so only the
subset of the KS3 signing rules those need is implemented (no sub-resources, no `//` quirk).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from email.utils import formatdate
from urllib.parse import quote

import httpx

_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


@dataclass(frozen=True)
class Listed:
    key: str
    size: int
    etag: str


class MiniError(RuntimeError):
    """A request the harness itself made failed."""


class Ks3Mini:
    def __init__(self, endpoint: str, access_key: str, secret_key: str, *, timeout: float = 120.0) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._ak = access_key
        self._sk = secret_key.encode()
        # 16: the harness seeds the restore bucket from a thread pool (at 20 ms a serial seed took a minute).
        self._http = httpx.Client(timeout=timeout, limits=httpx.Limits(max_connections=16))

    def close(self) -> None:
        self._http.close()

    def _headers(self, method: str, resource: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        headers["Date"] = formatdate(usegmt=True)
        kss = sorted((k.lower(), v) for k, v in headers.items() if k.lower().startswith("x-kss-"))
        lines = [method, headers.get("Content-MD5", ""), headers.get("Content-Type", ""), headers["Date"]]
        lines += [f"{k}:{v}" for k, v in kss]
        lines.append(resource)
        sig = hmac.new(self._sk, "\n".join(lines).encode(), hashlib.sha1).digest()
        headers["Authorization"] = f"KSS {self._ak}:{base64.b64encode(sig).decode()}"
        return headers

    @staticmethod
    def _resource(bucket: str, key: str = "") -> str:
        return f"/{bucket}/" + quote(key, safe="/~")

    def _url(self, resource: str) -> str:
        return self.endpoint + resource

    # -- operations ------------------------------------------------------------------------------
    def probe(self, token: str) -> int:
        """A cheap signed request whose path carries `token` (used as a request-log mark)."""
        res = self._resource(token)
        return self._http.head(self._url(res), headers=self._headers("HEAD", res)).status_code

    def create_bucket(self, bucket: str) -> None:
        res = self._resource(bucket)
        r = self._http.put(self._url(res), headers=self._headers("PUT", res, {"Content-Length": "0"}))
        if r.status_code not in (200, 409):
            raise MiniError(f"create bucket {bucket}: HTTP {r.status_code} {r.text[:200]}")

    def put(
        self,
        bucket: str,
        key: str,
        body: bytes | Iterable[bytes],
        *,
        length: int | None = None,
        md5: bytes | None = None,
    ) -> str:
        res = self._resource(bucket, key)
        extra = {"Content-Type": "application/octet-stream"}
        if md5 is not None:
            extra["Content-MD5"] = base64.b64encode(md5).decode()
        if length is not None:
            extra["Content-Length"] = str(length)
        r = self._http.put(self._url(res), content=body, headers=self._headers("PUT", res, extra))
        if r.status_code != 200:
            raise MiniError(f"PUT {bucket}/{key}: HTTP {r.status_code} {r.text[:200]}")
        return r.headers.get("ETag", "").strip('"')

    def iter_get(self, bucket: str, key: str, chunk: int = 1 << 20) -> Iterator[bytes]:
        res = self._resource(bucket, key)
        with self._http.stream("GET", self._url(res), headers=self._headers("GET", res)) as r:
            if r.status_code != 200:
                raise MiniError(f"GET {bucket}/{key}: HTTP {r.status_code}")
            yield from r.iter_bytes(chunk)

    def head_meta(self, bucket: str, key: str) -> dict[str, str]:
        res = self._resource(bucket, key)
        r = self._http.head(self._url(res), headers=self._headers("HEAD", res))
        if r.status_code != 200:
            raise MiniError(f"HEAD {bucket}/{key}: HTTP {r.status_code}")
        return {k.lower(): v for k, v in r.headers.items()}

    def list(self, bucket: str, prefix: str = "") -> Iterator[Listed]:
        """Every object under prefix (ListObjects V1, 1,000 per page, following NextMarker)."""
        res = self._resource(bucket)
        marker = ""
        while True:
            params = {"prefix": prefix, "max-keys": "1000"}
            if marker:
                params["marker"] = marker
            r = self._http.get(self._url(res), params=params, headers=self._headers("GET", res))
            if r.status_code != 200:
                raise MiniError(f"LIST {bucket}/{prefix}: HTTP {r.status_code} {r.text[:200]}")
            root = ET.fromstring(r.content)
            ns = _NS if root.tag.startswith(_NS) else ""
            last = ""
            for c in root.iter(f"{ns}Contents"):
                key = c.findtext(f"{ns}Key") or ""
                yield Listed(
                    key, int(c.findtext(f"{ns}Size") or 0), (c.findtext(f"{ns}ETag") or "").strip('"')
                )
                last = key
            if (root.findtext(f"{ns}IsTruncated") or "false").lower() != "true":
                return
            marker = root.findtext(f"{ns}NextMarker") or last
            if not marker:
                raise MiniError(f"LIST {bucket}: truncated page without a marker")

    def delete(self, bucket: str, key: str) -> None:
        res = self._resource(bucket, key)
        r = self._http.delete(self._url(res), headers=self._headers("DELETE", res))
        if r.status_code not in (200, 204, 404):
            raise MiniError(f"DELETE {bucket}/{key}: HTTP {r.status_code}")
