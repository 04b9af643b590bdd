"""How the commands that talk to KS3 reach it: ``--proxy`` / ``--no-proxy`` / ``--ca-bundle``, the config's
``proxy:``, ``ca_bundle:`` and ``timeouts:``, and what they become in the client's ``ClientConfig``.

Owns: the click options every connecting command shares (``network_options``), ``NetworkSettings`` (what
the command line and the config file chose, checked), and ``client_options`` (the ``ClientConfig``
keywords, including the request deadline's minimum rate under ``--bwlimit``).

Proxies, as curl, rclone and the aws cli do: the environment's HTTPS_PROXY / HTTP_PROXY / ALL_PROXY by
default, minus NO_PROXY; ``proxy: URL`` in the config or ``--proxy URL`` instead (NO_PROXY still
applies); ``proxy: none`` or ``--no-proxy``: direct. The command line beats the config. A proxy URL's
password never appears in a message. TLS: certificates are checked against the system's trust store
unless ``--ca-bundle FILE`` / ``ca_bundle:`` names a PEM file of CAs to trust instead (as curl's
``--cacert`` and the aws cli's ``--ca-bundle``); a bundle that does not load is one line, exit 2.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from ks3sync.config import Config
    from ks3sync.ks3 import ProxySettings

F = TypeVar("F", bound=Callable[..., Any])


def network_options(func: F) -> F:
    """``--proxy URL``, ``--no-proxy`` and ``--ca-bundle FILE``, for every command that talks to KS3."""
    func = click.option(
        "--ca-bundle",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        metavar="FILE",
        help="PEM file of CA certificates to trust for https (default: the system trust store).",
    )(func)
    func = click.option(
        "--no-proxy", is_flag=True, help="Connect directly, whatever the environment or the config says."
    )(func)
    func = click.option(
        "--proxy",
        metavar="URL",
        help="Forward proxy for every request: http(s)://[user:password@]host:port (default: "
        "HTTPS_PROXY / HTTP_PROXY / ALL_PROXY from the environment, except hosts in NO_PROXY).",
    )(func)
    return func


@dataclass(frozen=True)
class NetworkSettings:
    connect_timeout: float | None = None  # None: the client's default
    read_timeout: float | None = None
    request_timeout: float | None = None
    proxies: ProxySettings | None = field(default=None)  # None: the client's default (the environment's)
    ca_bundle: Path | None = None  # None: the system's trust store


def network_settings(
    config: Config | None, *, proxy: str | None = None, no_proxy: bool = False, ca_bundle: Path | None = None
) -> NetworkSettings:
    """What the command line (``proxy``, ``no_proxy``, ``ca_bundle``) and ``config`` chose; a bad proxy
    URL (given, or in the environment) or CA bundle ends the command with one line and exit 2."""
    from ks3sync.cli.common import die
    from ks3sync.ks3 import ProxySettings, ProxyURL
    from ks3sync.ks3.wire import make_ssl_context

    if proxy is not None and no_proxy:
        die("give --proxy URL or --no-proxy, not both")
    chosen, where = (
        (proxy, "--proxy")
        if proxy is not None
        else ((config.proxy, f"{config.path}: proxy") if config is not None else (None, ""))
    )
    if no_proxy or chosen == "none":
        proxies = ProxySettings.direct()
    elif chosen is not None:
        try:
            proxies = ProxySettings(ProxyURL.parse(chosen))
        except ValueError as exc:
            die(f"{where}: {exc}")
    else:
        proxies = ProxySettings()
    try:
        proxies.resolve("https")  # the environment's proxy URLs too: a bad one fails here, not mid-run
        proxies.resolve("http")
    except ValueError as exc:
        die(str(exc))
    bundle, where = (
        (ca_bundle, "--ca-bundle")
        if ca_bundle is not None
        else ((config.ca_bundle, f"{config.path}: ca_bundle") if config is not None else (None, ""))
    )
    if bundle is not None:
        try:
            make_ssl_context(str(bundle))
        except ValueError as exc:
            die(f"{where}: {exc}")
    timeouts = config.timeouts if config is not None else None
    return NetworkSettings(
        connect_timeout=timeouts.connect if timeouts else None,
        read_timeout=timeouts.read if timeouts else None,
        request_timeout=timeouts.request if timeouts else None,
        proxies=proxies,
        ca_bundle=bundle,
    )


def client_options(network: NetworkSettings, *, jobs: int, bwlimit: float | None) -> dict[str, Any]:
    """``ClientConfig`` keywords. Under a bandwidth limit shared by ``jobs`` transfers, each may get
    less than the client's minimum rate, so the deadline's rate is lowered to half a fair share: a
    throttled transfer is slow, not dead."""
    from ks3sync.ks3.transport import DEFAULT_MIN_RATE

    options: dict[str, Any] = {}
    if network.connect_timeout is not None:
        options["connect_timeout"] = network.connect_timeout
    if network.read_timeout is not None:
        options["timeout"] = network.read_timeout
    if network.request_timeout is not None:
        options["request_timeout"] = network.request_timeout
    if network.proxies is not None:
        options["proxy"] = network.proxies
    if network.ca_bundle is not None:
        options["ca_bundle"] = str(network.ca_bundle)
    if bwlimit:
        options["min_rate"] = min(DEFAULT_MIN_RATE, max(bwlimit / (2 * max(jobs, 1)), 1024.0))
    return options
