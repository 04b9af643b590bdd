"""Where a request goes: scheme, host and path for a (bucket, key), in the three addressing modes.

Owns: endpoint parsing, the path-style/virtual-host decision (path style automatically for IP
literals and localhost, where ``<bucket>.<host>`` cannot resolve), custom-domain mode (the SDK's
``domain_mode``: the host is one bucket's own domain, used as given), and query-string encoding.
Must not import: anything else from ks3sync, nor httpcore.

Query values are percent-encoded like the SDK (``quote``, ``/`` kept); sub-resources with an empty
value are sent bare (``?acl``, ``?uploads``) because that is also how they are signed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from .signing import key_path, resource_path


@dataclass(frozen=True, slots=True)
class Endpoint:
    scheme: str
    host: str
    port: int | None  # None = the scheme's default, and then no port appears in URLs

    @classmethod
    def parse(cls, endpoint: str) -> Endpoint:
        """``http://127.0.0.1:9000``, ``https://ks3-cn-beijing.ksyuncs.com``, or a bare host (https)."""
        text = endpoint.strip()
        if "://" not in text:
            text = "https://" + text
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"endpoint {endpoint!r}: scheme must be http or https")
        if not parts.hostname:
            raise ValueError(f"endpoint {endpoint!r}: no host")
        if parts.path not in ("", "/") or parts.query or parts.username:
            raise ValueError(f"endpoint {endpoint!r}: give only scheme://host[:port]")
        try:
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"endpoint {endpoint!r}: bad port") from exc
        return cls(parts.scheme, parts.hostname.lower(), port)

    def netloc(self, host: str | None = None) -> str:
        host = host or self.host
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        return f"{host}:{self.port}" if self.port is not None else host


def is_ip_or_localhost(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def encode_query(params: Mapping[str, str] | None) -> str:
    if not params:
        return ""
    items = []
    for name, value in params.items():
        items.append(
            quote(name, safe="") if value == "" else f"{quote(name, safe='')}={quote(value, safe='/')}"
        )
    return "?" + "&".join(items)


@dataclass(frozen=True, slots=True)
class Addressing:
    endpoint: Endpoint
    path_style: bool
    domain_mode: bool = False

    @classmethod
    def from_config(cls, endpoint: str, path_style: bool | None, domain_mode: bool) -> Addressing:
        parsed = Endpoint.parse(endpoint)
        if path_style is None:
            path_style = is_ip_or_localhost(parsed.host)
        return cls(parsed, path_style, domain_mode)

    def host_and_path(self, bucket: str | None, key: str | None) -> tuple[str, str]:
        """(host, encoded path) for a request on ``bucket``/``key`` (both None: ListBuckets). The host has
        no brackets and no port: the port is always the endpoint's."""
        if not bucket:
            return self.endpoint.host, "/"
        if self.domain_mode:
            return self.endpoint.host, key_path(key)
        if self.path_style:
            return self.endpoint.host, resource_path(bucket, key)
        return f"{bucket}.{self.endpoint.host}", key_path(key)

    def url(self, bucket: str | None, key: str | None, params: Mapping[str, str] | None = None) -> str:
        host, path = self.host_and_path(bucket, key)
        return f"{self.endpoint.scheme}://{self.endpoint.netloc(host)}{path}{encode_query(params)}"
