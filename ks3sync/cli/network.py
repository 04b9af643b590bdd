"""How the commands that talk to KS3 reach it: the config's ``timeouts:``, and what they become in the
client's ``ClientConfig``.

Owns: ``NetworkSettings`` (what the command line and the config file chose) and ``client_options`` (the
``ClientConfig`` keywords for them, including the request deadline's minimum rate under ``--bwlimit``).
Imports stay inside functions (like cli/common.py): building settings must not import the client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ks3sync.config import Config


@dataclass(frozen=True, slots=True)
class NetworkSettings:
    connect_timeout: float | None = None  # None: the client's default
    read_timeout: float | None = None
    request_timeout: float | None = None


def network_settings(config: Config | None) -> NetworkSettings:
    """The settings of ``config`` (the client's defaults without one)."""
    if config is None:
        return NetworkSettings()
    timeouts = config.timeouts
    return NetworkSettings(connect_timeout=timeouts.connect, read_timeout=timeouts.read,
                           request_timeout=timeouts.request)


def client_options(network: NetworkSettings, *, jobs: int, bwlimit: int | None) -> dict[str, Any]:
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
    if bwlimit:
        options["min_rate"] = min(DEFAULT_MIN_RATE, max(bwlimit / (2 * max(jobs, 1)), 1024.0))
    return options
