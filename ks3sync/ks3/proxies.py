"""Which forward proxy, if any, carries the requests to a host.

Owns: ``ProxyURL`` (a parsed ``http(s)://[user:password@]host[:port]`` proxy, shown only with its password
masked), ``ProxySettings`` (an explicit proxy, or the environment's, or none) and the NO_PROXY match.

The environment is read as curl, rclone (Go's net/http) and the aws cli read it: ``HTTPS_PROXY`` for https
endpoints, ``HTTP_PROXY`` for http ones, ``ALL_PROXY`` for either when the scheme's own is unset; each
name lower-case first, then upper-case (except ``HTTP_PROXY`` under CGI, where ``REQUEST_METHOD`` is set
and the upper-case name may come from a request header: "httpoxy"). ``NO_PROXY`` is a comma list of host
names (matching the name and every name under it; a leading ``.`` or ``*.`` changes nothing), IP
addresses, CIDR ranges, or ``*`` for every host. It applies to an explicit proxy too, as curl's does.
Must not import: anything else from ks3sync but the leaf ``display`` (whose ``mask_url_credentials`` the
config's proxy key shares), nor httpx or httpcore (wire.py builds the pools).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from ks3sync.display import mask_url_credentials

PROXY_SCHEMES = ("http", "https")


@dataclass(frozen=True)
class ProxyURL:
    scheme: str
    host: str  # no brackets around an IPv6 literal
    port: int
    username: str = ""
    password: str = field(default="", repr=False)

    @classmethod
    def parse(cls, text: str) -> ProxyURL:
        """``http://host:3128``, ``https://user:pass@proxy.example``, or a bare ``host:port`` (http, as
        curl reads it). Raises ValueError naming the URL with its password masked."""
        shown = mask_url_credentials(text)
        raw = text.strip()
        if "://" not in raw:
            raw = "http://" + raw
        try:
            parts = urlsplit(raw)
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"proxy {shown!r}: {exc}") from None
        if parts.scheme not in PROXY_SCHEMES:
            raise ValueError(
                f"proxy {shown!r}: the scheme must be http or https (socks proxies are not supported)"
            )
        if not parts.hostname:
            raise ValueError(f"proxy {shown!r}: no host")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"proxy {shown!r}: give only scheme://[user:password@]host[:port]")
        return cls(
            scheme=parts.scheme,
            host=parts.hostname,
            port=port if port is not None else (443 if parts.scheme == "https" else 80),
            username=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
        )

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def masked(self) -> str:
        """The URL as it may be shown: the password never appears."""
        user = f"{self.username}:****@" if self.password else (f"{self.username}@" if self.username else "")
        return f"{self.scheme}://{user}{self.netloc}"

    def __str__(self) -> str:
        return self.masked()


def _env(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name.lower())
    if value is None and not (name == "HTTP_PROXY" and "REQUEST_METHOD" in environ):
        value = environ.get(name)
    return (value or "").strip()


def _no_proxy_rules(
    text: str,
) -> tuple[bool, tuple[str, ...], tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]]:
    """(every host, host-name suffixes, address ranges) from a NO_PROXY value."""
    names: list[str] = []
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for raw in text.replace(" ", ",").split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True, (), ()
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            continue
        except ValueError:
            pass
        names.append(entry.removeprefix("*").lstrip("."))
    return False, tuple(name for name in names if name), tuple(networks)


@dataclass(frozen=True)
class ProxySettings:
    """``proxy``: used for every host (unless NO_PROXY names it). ``from_environment``: read
    HTTP(S)_PROXY / ALL_PROXY (when no explicit proxy is given) and NO_PROXY. Neither: connect directly."""

    proxy: ProxyURL | None = None
    from_environment: bool = True

    @classmethod
    def direct(cls) -> ProxySettings:
        return cls(proxy=None, from_environment=False)

    def resolve(self, scheme: str, environ: Mapping[str, str] | None = None) -> ProxyRoute:
        """The proxy (or none) for an endpoint of ``scheme``, with the NO_PROXY exceptions, read now."""
        if not self.from_environment:
            return ProxyRoute(self.proxy)
        env = os.environ if environ is None else environ
        proxy = self.proxy
        if proxy is None:
            text = _env(env, f"{scheme.upper()}_PROXY") or _env(env, "ALL_PROXY")
            if text:
                try:
                    proxy = ProxyURL.parse(text)
                except ValueError as exc:
                    raise ValueError(f"{scheme.upper()}_PROXY/ALL_PROXY: {exc}") from None
        if proxy is None:
            return ProxyRoute(None)
        every, names, networks = _no_proxy_rules(_env(env, "NO_PROXY"))
        return ProxyRoute(None if every else proxy, names, networks)


@dataclass(frozen=True)
class ProxyRoute:
    """The outcome of ``ProxySettings.resolve``: the proxy, and the hosts that bypass it."""

    proxy: ProxyURL | None
    bypass_names: tuple[str, ...] = ()
    bypass_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    def for_host(self, host: str) -> ProxyURL | None:
        """The proxy for requests to ``host`` (no brackets, no port), or None to connect directly."""
        if self.proxy is None:
            return None
        name = host.lower().rstrip(".")
        for suffix in self.bypass_names:
            if name == suffix or name.endswith("." + suffix):
                return None
        if self.bypass_networks:
            try:
                address = ipaddress.ip_address(name)
            except ValueError:
                return self.proxy
            if any(address in network for network in self.bypass_networks):
                return None
        return self.proxy
