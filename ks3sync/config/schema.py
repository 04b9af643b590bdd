"""The shape of ``ks3sync.yaml``: the keys each section allows, the frozen dataclasses a valid file
becomes, their defaults, and :class:`ConfigError`, the one line that says where a file does not fit.

The keys are documented one by one in ``config/ks3sync.example.yaml``. Adding a key means a field
here, its name in the section's ``*_KEYS`` tuple, a reader in ``loader.py`` or ``syncs.py``, and a line
in :meth:`Config.effective` (what ``check-config`` prints).

Secrets never appear in reprs or in :meth:`Config.effective`: the secret key is masked, and so is the
password of a proxy URL.

Must not import: anything of ks3sync but the leaves ``digits`` and ``display``, and PyYAML; every
command imports this module (for :class:`ConfigError`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ks3sync.config.values import Ks3Url, MaxDelete, format_duration, format_max_delete, format_size

MASK = "********"


class ConfigError(Exception):
    """A configuration problem. ``str(error)`` is the one line to show the user."""

    def __init__(self, file: str, key: str, reason: str) -> None:
        self.file = file
        self.key = key
        self.reason = reason
        where = f"{file}: {key}: " if key else f"{file}: "
        super().__init__(where + reason)


# --------------------------------------------------------------------------------------------------
# The keys each section of the file allows (anything else is "unknown key", with a suggestion)

TOP_KEYS = (
    "endpoint",
    "credentials",
    "state_dir",
    "transfer",
    "syncs",
    "metrics",
    "logging",
    "timeouts",
    "proxy",
    "ca_bundle",
)
CRED_KEYS = ("access_key", "secret_key")
TRANSFER_KEYS = ("jobs", "part_size", "multipart_threshold", "bwlimit")
METRICS_KEYS = ("listen",)
LOGGING_KEYS = ("level", "format")
TIMEOUT_KEYS = ("connect", "read", "request")
SYNC_KEYS = (
    "name",
    "source",
    "target",
    "delete",
    "delete_excluded",
    "debounce",
    "max_delete",
    "backup_prefix",
    "excludes",
    "exclude_from",
    "encrypt_key_file",
    "allow_unencrypted",
    "require_integrity",
    "storage_class",
    "acl",
    "rescan_interval",
    "follow_symlinks",
    "versions",
    "verify",
)
VERSIONS_KEYS = ("prefix", "keep", "keep_passes", "cold_after")
VERIFY_KEYS = ("objects_per_day", "bytes_per_day")

STORAGE_CLASSES = (
    "STANDARD",
    "STANDARD_IA",
    "DEEP_IA",
    "ARCHIVE",
    "DEEP_COLD_ARCHIVE",
    "EXTREME_PL1",
    "EXTREME_PL2",
    "EXTREME_PL3",
)
OBJECT_ACLS = ("private", "public-read")


# --------------------------------------------------------------------------------------------------
# The sections


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key: str
    secret_key: str = field(repr=False)

    def __repr__(self) -> str:
        return f"Credentials(access_key={self.access_key!r}, secret_key={MASK!r})"


@dataclass(frozen=True, slots=True)
class TransferConfig:
    jobs: int = 64  # most requests in flight per process (transfer.sizing.DEFAULT_JOBS); as `mirror`
    part_size: int = 8 * 1024**2
    multipart_threshold: int = 16 * 1024**2
    bwlimit: int | None = None  # bytes per second across all transfers; None = unlimited


@dataclass(frozen=True, slots=True)
class VersionsConfig:
    """``versions:`` of a sync (docs/versions.md): where versions live, relative to the target, and how
    long they stay (``keep`` seconds, ``keep_passes`` newest passes; None = forever); ``cold_after``
    seconds moves them to STANDARD_IA."""

    prefix: str = ".versions/"
    keep: float | None = None
    keep_passes: int | None = None
    cold_after: float | None = None


@dataclass(frozen=True, slots=True)
class VerifyConfig:
    """``verify:`` of a sync (docs/decisions.md D21): the service re-checks what it uploaded, within one
    budget: ``objects_per_day`` (each object's metadata; encrypted ones also decrypted in part) or
    ``bytes_per_day`` (each object read back whole). Exactly one is set."""

    objects_per_day: int | None = None
    bytes_per_day: int | None = None


@dataclass(frozen=True, slots=True)
class SyncConfig:
    name: str
    source: Path  # absolute
    target: Ks3Url
    delete: bool = False
    delete_excluded: bool = False  # with delete: excluded objects are deleted too (rsync's --delete-excluded)
    debounce: float = 2.0  # seconds of quiet before a changed file is sent
    max_delete: MaxDelete = MaxDelete()
    backup_prefix: str | None = None  # overwritten/deleted objects are copied here first
    excludes: tuple[str, ...] = ()
    exclude_from: tuple[Path, ...] = ()
    encrypt_key_file: Path | None = None  # the key itself is read only where it is used
    allow_unencrypted: bool = False  # with a key, read objects without encryption metadata as plaintext
    require_integrity: bool = False  # with a key, refuse encrypted objects without ks3sync's integrity tag
    storage_class: str | None = None
    acl: str | None = None
    rescan_interval: float = 3600.0
    follow_symlinks: bool = False
    versions: VersionsConfig | None = None  # keep a version of everything overwritten or deleted
    verify: VerifyConfig | None = None  # continuous verification; None = off

    @property
    def bucket(self) -> str:
        return self.target.bucket

    @property
    def prefix(self) -> str:
        return self.target.prefix


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    listen: str | None = None  # "127.0.0.1:9464"; None = no metrics endpoint

    @property
    def enabled(self) -> bool:
        return self.listen is not None

    @property
    def host_port(self) -> tuple[str, int]:
        assert self.listen is not None
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]") or "127.0.0.1", int(port)


@dataclass(frozen=True, slots=True)
class TimeoutsConfig:
    """``timeouts:`` how long a request may take. The defaults are the KS3 client's own
    (``ks3sync.ks3.ClientConfig``; a test keeps them equal)."""

    connect: float = 10.0  # TCP connect and TLS handshake
    read: float = 60.0  # silence while a request is under way: each read or write
    request: float = 300.0  # the floor of each request's overall deadline, which grows with its bytes


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: str = "info"
    format: str = "text"  # "text" (key=value) or "json"


def default_state_dir() -> Path:
    """$STATE_DIRECTORY (systemd), else $XDG_STATE_HOME/ks3sync, else ~/.local/state/ks3sync."""
    # systemd's StateDirectory= sets $STATE_DIRECTORY; otherwise follow the XDG base-directory spec.
    if os.environ.get("STATE_DIRECTORY"):
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0])
    xdg_state_home = os.environ.get("XDG_STATE_HOME")
    if xdg_state_home:
        return Path(xdg_state_home) / "ks3sync"
    return Path.home() / ".local" / "state" / "ks3sync"


@dataclass(frozen=True, slots=True)
class Config:
    path: Path
    endpoint: str
    credentials: Credentials | None
    state_dir: Path
    transfer: TransferConfig = TransferConfig()
    syncs: tuple[SyncConfig, ...] = ()
    metrics: MetricsConfig = MetricsConfig()
    logging: LoggingConfig = LoggingConfig()
    timeouts: TimeoutsConfig = TimeoutsConfig()
    # None: the environment's (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY); "none": connect directly;
    # else a proxy URL, which may hold credentials (masked wherever it is shown).
    proxy: str | None = field(default=None, repr=False)
    ca_bundle: Path | None = None  # PEM file of CAs trusted for https; None: the system's trust store
    warnings: tuple[str, ...] = ()  # non-fatal findings (e.g. a world-readable file holding a secret)

    @property
    def journal_path(self) -> Path:
        return self.state_dir / "journal.db"  # the same file `mirror --config` uses

    def sync(self, name: str) -> SyncConfig:
        for sync in self.syncs:
            if sync.name == name:
                return sync
        raise KeyError(name)

    def effective(self) -> dict[str, object]:
        """The config as plain data with every default filled in and secrets masked
        (what ``check-config`` prints)."""
        from ks3sync.display import mask_url_credentials  # only check-config shows a config

        shown_credentials = (
            {"access_key": self.credentials.access_key, "secret_key": MASK} if self.credentials else None
        )
        return {
            "endpoint": self.endpoint,
            "credentials": shown_credentials,
            "state_dir": str(self.state_dir),
            "transfer": _transfer_effective(self.transfer),
            "proxy": mask_url_credentials(self.proxy) if self.proxy else "from the environment",
            "ca_bundle": str(self.ca_bundle) if self.ca_bundle else "the system trust store",
            "timeouts": _timeouts_effective(self.timeouts),
            "metrics": {"listen": self.metrics.listen},
            "logging": {"level": self.logging.level, "format": self.logging.format},
            "syncs": [_sync_effective(sync) for sync in self.syncs],
        }


def _transfer_effective(transfer: TransferConfig) -> dict[str, object]:
    return {
        "jobs": transfer.jobs,
        "part_size": format_size(transfer.part_size),
        "multipart_threshold": format_size(transfer.multipart_threshold),
        "bwlimit": f"{format_size(transfer.bwlimit)}/s" if transfer.bwlimit else "off",
    }


def _timeouts_effective(timeouts: TimeoutsConfig) -> dict[str, object]:
    return {
        "connect": format_duration(timeouts.connect),
        "read": format_duration(timeouts.read),
        "request": format_duration(timeouts.request),
    }


def _sync_effective(sync: SyncConfig) -> dict[str, object]:
    return {
        "name": sync.name,
        "source": str(sync.source),
        "target": str(sync.target),
        "delete": sync.delete,
        "delete_excluded": sync.delete_excluded,
        "debounce": format_duration(sync.debounce),
        "max_delete": format_max_delete(sync.max_delete),
        "backup_prefix": sync.backup_prefix,
        "excludes": list(sync.excludes),
        "exclude_from": [str(path) for path in sync.exclude_from],
        "encrypt_key_file": str(sync.encrypt_key_file) if sync.encrypt_key_file else None,
        "allow_unencrypted": sync.allow_unencrypted,
        "require_integrity": sync.require_integrity,
        "storage_class": sync.storage_class,
        "acl": sync.acl,
        "rescan_interval": format_duration(sync.rescan_interval),
        "follow_symlinks": sync.follow_symlinks,
        "versions": _versions_effective(sync.versions),
        "verify": _verify_effective(sync.verify),
    }


def _versions_effective(versions: VersionsConfig | None) -> dict[str, object] | None:
    if versions is None:
        return None
    return {
        "prefix": versions.prefix,
        "keep": format_duration(versions.keep) if versions.keep is not None else None,
        "keep_passes": versions.keep_passes,
        "cold_after": format_duration(versions.cold_after) if versions.cold_after is not None else None,
    }


def _verify_effective(verify: VerifyConfig | None) -> dict[str, object] | None:
    if verify is None:
        return None
    if verify.bytes_per_day is not None:
        return {"bytes_per_day": format_size(verify.bytes_per_day)}
    return {"objects_per_day": verify.objects_per_day}
