"""The configuration file: YAML in, frozen dataclasses out, or one line saying what is wrong.

This module owns the schema of ``ks3sync.yaml`` (documented key by key in
``config/ks3sync.example.yaml``) and the small value parsers shared with the command line:
durations (``2s``, ``500ms``, ``1h30m``), sizes (``8MiB``, ``64M``), rates (``10MB/s``) and
``ks3://bucket/prefix`` URLs. It does no network I/O and imports nothing else from ks3sync, so both
``mirror --config`` and the service can load a config without pulling in the engine.

Every problem becomes a :class:`ConfigError` whose message is ONE line naming the file and the key
path, e.g. ``ks3sync.yaml: syncs[0].debounce: expected a duration like '2s', got 'soon'``.
Secrets never appear in messages or reprs: a bad value under ``credentials`` is described, not echoed.

Units: a bare ``K/M/G/T`` or ``KiB/MiB/...`` is binary (1024-based, as rclone and rsync read them);
``KB/MB/GB/TB`` are decimal (1000-based). Durations accept ``ns, us, ms, s, m, h, d`` and sums such
as ``1h30m``; a bare number means seconds.
"""

from __future__ import annotations

import functools
import math
import os
import re
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ks3sync.digits import parse_decimal

if TYPE_CHECKING:
    import yaml

__all__ = [
    "Config",
    "ConfigError",
    "Credentials",
    "Ks3Url",
    "LoggingConfig",
    "MaxDelete",
    "MetricsConfig",
    "SyncConfig",
    "TimeoutsConfig",
    "TransferConfig",
    "load_config",
    "parse_duration",
    "parse_ks3_url",
    "parse_max_delete",
    "parse_multipart_threshold",
    "parse_part_size",
    "parse_rate",
    "parse_size",
]

MASK = "********"
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
MIN_PART_SIZE = 100 * 1024  # KS3's smallest part (except the last)
MAX_PART_SIZE = 5 * 1024**3
MAX_SINGLE_PUT = 5 * 1024**3  # KS3 refuses a larger PUT (EntityTooLarge): files below the threshold go in one


class ConfigError(Exception):
    """A configuration problem. ``str(error)`` is the one line to show the user."""

    def __init__(self, file: str, key: str, reason: str) -> None:
        self.file = file
        self.key = key
        self.reason = reason
        where = f"{file}: {key}: " if key else f"{file}: "
        super().__init__(where + reason)


# --------------------------------------------------------------------------------------------------
# Value parsers. They raise ValueError with a message that reads well after "<file>: <key>: ", so the
# mirror command line can reuse them (wrapping the message in click.BadParameter).

_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ns|us|µs|ms|s|m|h|d)")


def parse_duration(value: object) -> float:
    """Seconds from ``2s``, ``500ms``, ``1h30m``, ``1.5`` (a bare number is seconds). Never negative."""
    expected = "expected a duration like '2s', '500ms' or '1h'"
    if isinstance(value, bool):
        raise ValueError(f"{expected}, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        try:
            seconds = float(text)
        except ValueError:
            pos, seconds = 0, 0.0
            for match in _DURATION_PART.finditer(text):
                if match.start() != pos and text[pos : match.start()].strip():
                    raise ValueError(f"{expected}, got {value!r}") from None
                seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
                pos = match.end()
            if pos == 0 or text[pos:].strip():
                raise ValueError(f"{expected}, got {value!r}") from None
    else:
        raise ValueError(f"{expected}, got {type(value).__name__}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{expected}, got {value!r}")
    return seconds


_SIZE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([kmgtp]?)(i?)(b?)")
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}


def parse_size(value: object) -> int:
    """Bytes from ``8MiB``, ``64M`` (binary), ``64MB`` (decimal), ``1.5G`` or a bare integer."""
    expected = "expected a size like '8MiB', '64M' or '1048576'"
    if isinstance(value, bool):
        raise ValueError(f"{expected}, got {value!r}")
    if isinstance(value, int):
        size = float(value)
    elif isinstance(value, float) and value.is_integer():
        size = value
    elif isinstance(value, str):
        match = _SIZE.fullmatch(value.strip().lower())
        if match is None:
            raise ValueError(f"{expected}, got {value!r}")
        number, unit, binary, b = match.groups()
        if binary and not unit:
            raise ValueError(f"{expected}, got {value!r}")
        # "M" and "MiB" are binary; "MB" (a unit followed by B but no i) is decimal.
        base = 1000 if (unit and b and not binary) else 1024
        size = float(number) * base ** _POWERS[unit]
    else:
        raise ValueError(f"{expected}, got {type(value).__name__}")
    if not math.isfinite(size) or size < 0 or size != int(size):
        raise ValueError(f"{expected}, got {value!r}")
    return int(size)


def parse_part_size(value: object) -> int:
    """A multipart part size within KS3's limits; outside them is an error, never silently adjusted."""
    size = parse_size(value)
    if not MIN_PART_SIZE <= size <= MAX_PART_SIZE:
        raise ValueError(f"must be between 100KiB and 5GiB (KS3's part size limits), got {_shown_size(size)}")
    return size


def parse_multipart_threshold(value: object) -> int:
    """The size from which files go in parts. Every smaller file is one PUT, which KS3 takes up to 5 GiB,
    so the threshold may not be larger; a threshold below the part size is allowed (such files go as
    one part)."""
    size = parse_size(value)
    if not MIN_PART_SIZE <= size <= MAX_SINGLE_PUT:
        raise ValueError(
            f"must be between 100KiB and 5GiB (the largest single PUT KS3 takes), got {_shown_size(size)}"
        )
    return size


def _shown_size(size: int) -> str:
    shown = format_size(size)
    return shown if not shown.isdigit() else f"{shown} bytes"


def parse_rate(value: object) -> int | None:
    """Bytes per second from ``10MB/s``, ``10M`` (per second implied); ``0``/``off``/``none`` → no limit."""
    if value is None or value is False:  # YAML 1.1 reads a bare `off` as false
        return None
    if isinstance(value, str) and value.strip().lower() in ("off", "none", ""):
        return None
    text = value.strip() if isinstance(value, str) else value
    if isinstance(text, str) and text.lower().endswith("/s"):
        text = text[:-2]
    try:
        rate = parse_size(text)
    except ValueError:
        raise ValueError(f"expected a rate like '10MB/s', '512KiB/s' or 'off', got {value!r}") from None
    return rate or None


def parse_max_delete(value: object) -> MaxDelete:
    """``100`` (objects) or ``"10%"`` (of the remote objects in the pass)."""
    expected = "expected a count like 100 or a percentage like '10%'"
    if isinstance(value, bool):
        raise ValueError(f"{expected}, got {value!r}")
    if isinstance(value, int) and value >= 0:
        return MaxDelete(count=value, percent=None)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("%"):
            try:
                percent = float(text[:-1])
            except ValueError:
                raise ValueError(f"{expected}, got {value!r}") from None
            if 0 <= percent <= 100:
                return MaxDelete(count=None, percent=percent)
        elif (count := parse_decimal(text)) is not None:
            return MaxDelete(count=count, percent=None)
    raise ValueError(f"{expected}, got {value!r}")


_BUCKET = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")


@dataclass(frozen=True, slots=True)
class Ks3Url:
    """``ks3://bucket/prefix``. ``prefix`` is empty or ends with ``/``, so ``key = prefix + path``."""

    bucket: str
    prefix: str

    def __str__(self) -> str:
        return f"ks3://{self.bucket}/{self.prefix}"


def parse_ks3_url(value: object) -> Ks3Url:
    """Parse ``ks3://bucket`` or ``ks3://bucket/some/prefix`` (a trailing ``/`` is added to the prefix).

    Bucket names follow KS3's rules (3-63 of ``a-z0-9-``, not starting with ``kss``); the prefix may
    not contain empty, ``.`` or ``..`` segments, which would make keys that no folder maps back to."""
    if not isinstance(value, str):
        raise ValueError(f"expected a URL like 'ks3://bucket/prefix', got {type(value).__name__}")
    if not value.startswith("ks3://"):
        raise ValueError(f"expected a URL like 'ks3://bucket/prefix', got {value!r}")
    bucket, _, prefix = value[len("ks3://") :].partition("/")
    if not _BUCKET.fullmatch(bucket) or bucket.startswith("kss"):
        raise ValueError(
            f"bucket name must be 3-63 characters of a-z, 0-9 and '-' (not starting with 'kss'), "
            f"got {bucket!r} in {value!r}"
        )
    prefix = prefix.rstrip("/")
    if prefix:
        segments = prefix.split("/")
        if any(seg in ("", ".", "..") for seg in segments):
            raise ValueError(f"prefix must not contain empty, '.' or '..' segments, got {value!r}")
        prefix += "/"
    return Ks3Url(bucket=bucket, prefix=prefix)


# --------------------------------------------------------------------------------------------------
# The configuration values


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key: str
    secret_key: str = field(repr=False)

    def __repr__(self) -> str:
        return f"Credentials(access_key={self.access_key!r}, secret_key={MASK!r})"


@dataclass(frozen=True, slots=True)
class TransferConfig:
    jobs: int = 8  # concurrent transfers (and parts) per process; the same defaults as `mirror`
    part_size: int = 8 * 1024**2
    multipart_threshold: int = 16 * 1024**2
    bwlimit: int | None = None  # bytes per second across all transfers; None = unlimited


@dataclass(frozen=True, slots=True)
class MaxDelete:
    """The delete guard: refuse a pass's deletes beyond ``count`` objects or ``percent`` of the remote."""

    count: int | None = None
    percent: float | None = 50.0


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

    def effective(self) -> dict[str, Any]:
        """The config as plain data with every default filled in and secrets masked
        (what ``check-config`` prints)."""
        creds = {"access_key": self.credentials.access_key, "secret_key": MASK} if self.credentials else None
        return {
            "endpoint": self.endpoint,
            "credentials": creds,
            "state_dir": str(self.state_dir),
            "transfer": {
                "jobs": self.transfer.jobs,
                "part_size": format_size(self.transfer.part_size),
                "multipart_threshold": format_size(self.transfer.multipart_threshold),
                "bwlimit": f"{format_size(self.transfer.bwlimit)}/s" if self.transfer.bwlimit else "off",
            },
            "proxy": mask_url_credentials(self.proxy) if self.proxy else "from the environment",
            "ca_bundle": str(self.ca_bundle) if self.ca_bundle else "the system trust store",
            "timeouts": {name: format_duration(getattr(self.timeouts, name)) for name in TIMEOUT_KEYS},
            "metrics": {"listen": self.metrics.listen},
            "logging": {"level": self.logging.level, "format": self.logging.format},
            "syncs": [_sync_effective(s) for s in self.syncs],
        }


def _sync_effective(sync: SyncConfig) -> dict[str, Any]:
    md = sync.max_delete
    return {
        "name": sync.name,
        "source": str(sync.source),
        "target": str(sync.target),
        "delete": sync.delete,
        "delete_excluded": sync.delete_excluded,
        "debounce": format_duration(sync.debounce),
        "max_delete": f"{md.percent:g}%" if md.count is None and md.percent is not None else md.count,
        "backup_prefix": sync.backup_prefix,
        "excludes": list(sync.excludes),
        "exclude_from": [str(p) for p in sync.exclude_from],
        "encrypt_key_file": str(sync.encrypt_key_file) if sync.encrypt_key_file else None,
        "allow_unencrypted": sync.allow_unencrypted,
        "require_integrity": sync.require_integrity,
        "storage_class": sync.storage_class,
        "acl": sync.acl,
        "rescan_interval": format_duration(sync.rescan_interval),
        "follow_symlinks": sync.follow_symlinks,
    }


def format_size(n: int) -> str:
    for unit, power in (("TiB", 4), ("GiB", 3), ("MiB", 2), ("KiB", 1)):
        if n >= 1024**power and n % 1024**power == 0:
            return f"{n // 1024**power}{unit}"
    return str(n)


def format_duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    if seconds >= 1 or seconds == 0:
        return f"{seconds:.10g}s"
    return f"{seconds * 1000:.10g}ms"


# --------------------------------------------------------------------------------------------------
# Loading


class _Expanded(str):
    """A string that came from a ``${VAR}`` reference: typed fields may convert it (``jobs: ${JOBS}``)."""


class AliasRefused(Exception):
    """A YAML alias in a config file (``line`` is 1-based)."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


@functools.cache
def _unique_key_loader() -> type[yaml.SafeLoader]:
    """PyYAML keeps the last of two equal keys silently; a config typo deserves an error instead.
    Aliases are refused (``AliasRefused``): see ``compose_node``.

    Built on first use: PyYAML costs ~12 ms of imports, which a ``mirror`` without ``--config`` (start-up
    time is most of a no-change run) must not pay for the parsers below."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def compose_node(self, parent: Any, index: Any) -> Any:
            # Refused while composing, before anything is expanded: an alias "bomb" (nested lists of
            # aliases) is a few hundred bytes of YAML that grows exponentially when the values are
            # walked (1.8 GB and 30+ s, issue 15). An anchor alone expands nothing and is left alone.
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent):
                line = event.start_mark.line + 1 if event.start_mark is not None else 0
                raise AliasRefused(line, f"YAML aliases (*{event.anchor}) are not supported")
            return super().compose_node(parent, index)

    def construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return loader.construct_mapping(node, deep=deep)

    UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    return UniqueKeyLoader

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\{[^}]*\}?")

T = TypeVar("T")


class _Reader:
    """Walks the parsed YAML, keeping the key path for messages and collecting warnings."""

    def __init__(self, file: str, environ: Mapping[str, str]) -> None:
        self.file = file
        self.environ = environ
        self.warnings: list[str] = []

    def fail(self, key: str, reason: str) -> ConfigError:
        return ConfigError(self.file, key, reason)

    # -- ${VAR} expansion ------------------------------------------------------------------------
    def expand(self, value: Any, key: str) -> Any:
        if isinstance(value, dict):
            return {k: self.expand(v, _join(key, str(k))) for k, v in value.items()}
        if isinstance(value, list):
            return [self.expand(v, f"{key}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, str) and "$" in value:
            return _Expanded(_VAR.sub(lambda m: self._substitute(m, key), value))
        return value

    def _substitute(self, match: re.Match[str], key: str) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        if name is None:
            raise self.fail(key, f"malformed variable reference {match.group(0)!r} (use ${{NAME}})")
        if name not in self.environ:
            raise self.fail(key, f"environment variable ${{{name}}} is not set")
        return self.environ[name]

    # -- typed getters -----------------------------------------------------------------------------
    def mapping(self, value: Any, key: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key or "(top level)", f"expected a mapping, got {_kind(value)}")
        for k in value:
            if not isinstance(k, str):
                raise self.fail(_join(key, str(k)), "keys must be strings")
            if k not in allowed:
                hint = _close_match(k, allowed)
                raise self.fail(_join(key, k), "unknown key" + (f" (did you mean {hint!r}?)" if hint else ""))
        return value

    def string(self, value: Any, key: str, *, secret: bool = False) -> str:
        if isinstance(value, str) and value:
            return str(value)
        if secret:
            raise self.fail(key, "expected a non-empty string")
        raise self.fail(key, f"expected a non-empty string, got {_kind(value)}")

    def boolean(self, value: Any, key: str) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, _Expanded) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise self.fail(key, f"expected true or false, got {_kind(value)}")

    def integer(self, value: Any, key: str, *, minimum: int) -> int:
        if isinstance(value, _Expanded) and (number := parse_decimal(value)) is not None:
            value = number
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"expected an integer, got {_kind(value)}")
        if value < minimum:
            raise self.fail(key, f"must be at least {minimum}, got {value}")
        return value

    def parsed(self, value: Any, key: str, parse: Callable[[Any], T]) -> T:
        try:
            return parse(value)
        except ValueError as exc:
            raise self.fail(key, str(exc)) from None

    def path(self, value: Any, key: str, base: Path) -> Path:
        text = self.string(value, key)
        path = Path(os.path.expanduser(text))
        return path if path.is_absolute() else (base / path)

    def string_list(self, value: Any, key: str) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise self.fail(key, f"expected a list of strings, got {_kind(value)}")
        return tuple(self.string(v, f"{key}[{i}]") for i, v in enumerate(value))


def _join(key: str, child: str) -> str:
    return f"{key}.{child}" if key else child


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool | int | float) or (isinstance(value, str) and len(value) <= 60):
        return repr(str(value) if isinstance(value, _Expanded) else value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _close_match(word: str, options: tuple[str, ...]) -> str | None:
    import difflib

    close = difflib.get_close_matches(word.replace("-", "_"), options, n=1, cutoff=0.7)
    return close[0] if close else None


TOP_KEYS = (
    "endpoint", "credentials", "state_dir", "transfer", "syncs", "metrics", "logging", "timeouts", "proxy",
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
)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_ENDPOINT = re.compile(
    r"(?:https?://)?[A-Za-z0-9.-]+(?::\d{1,5})?/?|(?:https?://)?\[[0-9a-fA-F:]+\](?::\d{1,5})?/?"
)


def load_config(
    path: str | os.PathLike[str],
    *,
    environ: Mapping[str, str] | None = None,
    check_sources: bool = True,
) -> Config:
    """Read and validate a config file.

    ``check_sources=False`` lets the service start while one sync's folder is unmounted (that sync is
    then reported unavailable and retried, the others run); ``check-config`` and ``mirror`` keep the
    default and report a missing folder as an error.
    """
    file = str(path)
    reader = _Reader(file, os.environ if environ is None else environ)
    config_path = Path(path)
    try:
        text = config_path.read_text(encoding="utf-8")
        st = config_path.stat()
    except FileNotFoundError:
        raise ConfigError(file, "", "no such file") from None
    except IsADirectoryError:
        raise ConfigError(file, "", "is a directory, expected a YAML file") from None
    except PermissionError:
        raise ConfigError(file, "", "permission denied") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(file, "", f"not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(file, "", exc.strerror or str(exc)) from None
    import yaml

    try:
        raw = yaml.load(text, Loader=_unique_key_loader())  # noqa: S506 - a SafeLoader subclass
    except AliasRefused as exc:
        raise ConfigError(f"{file}:{exc.line}", "", exc.reason) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(file, "", f"{where}{exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(file, "", f"invalid YAML: {exc}") from None
    if raw is None:
        raise ConfigError(file, "", "the file is empty")

    base = config_path.resolve().parent
    top = reader.mapping(raw, "", TOP_KEYS)
    literal_secret = isinstance(top.get("credentials"), dict) and _has_literal(
        top["credentials"].get("secret_key")
    )
    top = reader.expand(top, "")

    if "endpoint" not in top:
        raise reader.fail("endpoint", "missing (e.g. https://ks3-cn-beijing.ksyuncs.com)")
    endpoint = reader.string(top["endpoint"], "endpoint").strip()
    if not _ENDPOINT.fullmatch(endpoint):
        raise reader.fail("endpoint", f"expected a host name or http(s)://host[:port], got {endpoint!r}")
    endpoint = endpoint.rstrip("/")

    credentials = None
    if top.get("credentials") is not None:
        c = reader.mapping(top["credentials"], "credentials", CRED_KEYS)
        for k in CRED_KEYS:
            if k not in c:
                raise reader.fail(f"credentials.{k}", "missing")
        credentials = Credentials(
            access_key=reader.string(c["access_key"], "credentials.access_key"),
            secret_key=reader.string(c["secret_key"], "credentials.secret_key", secret=True),
        )

    state_dir = _default_state_dir()
    if top.get("state_dir") is not None:
        state_dir = reader.path(top["state_dir"], "state_dir", base)

    transfer = _read_transfer(reader, top.get("transfer"))
    timeouts = _read_timeouts(reader, top.get("timeouts"))
    proxy = _read_proxy(reader, top.get("proxy"))
    ca_bundle = reader.path(top["ca_bundle"], "ca_bundle", base) if top.get("ca_bundle") is not None else None
    if ca_bundle is not None and not ca_bundle.is_file():
        raise reader.fail("ca_bundle", f"file {str(ca_bundle)!r} does not exist")
    metrics = MetricsConfig()
    if top.get("metrics") is not None:
        m = reader.mapping(top["metrics"], "metrics", METRICS_KEYS)
        if m.get("listen") is not None:
            listen = reader.string(m["listen"], "metrics.listen")
            if not re.fullmatch(r"(?:\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]*):\d{1,5}", listen):
                raise reader.fail(
                    "metrics.listen", f"expected host:port like '127.0.0.1:9464', got {listen!r}"
                )
            metrics = MetricsConfig(listen=listen)

    logging_cfg = LoggingConfig()
    if top.get("logging") is not None:
        lg = reader.mapping(top["logging"], "logging", LOGGING_KEYS)
        level = str(lg.get("level", "info")).lower()
        if level not in ("debug", "info", "warning", "error"):
            raise reader.fail("logging.level", f"expected debug, info, warning or error, got {level!r}")
        fmt = str(lg.get("format", "text")).lower()
        if fmt not in ("text", "json"):
            raise reader.fail("logging.format", f"expected text or json, got {fmt!r}")
        logging_cfg = LoggingConfig(level=level, format=fmt)

    syncs_raw = top.get("syncs")
    if syncs_raw is None:
        raise reader.fail("syncs", "missing: list at least one sync (name, source, target)")
    if not isinstance(syncs_raw, list):
        raise reader.fail("syncs", f"expected a list, got {_kind(syncs_raw)}")
    syncs: list[SyncConfig] = []
    names: set[str] = set()
    targets: dict[tuple[str, str], str] = {}
    for i, item in enumerate(syncs_raw):
        sync = _read_sync(reader, item, f"syncs[{i}]", base, check_sources)
        if sync.name in names:
            raise reader.fail(f"syncs[{i}].name", f"duplicate sync name {sync.name!r}")
        names.add(sync.name)
        for (bucket, prefix), other in targets.items():
            if bucket == sync.bucket and (sync.prefix.startswith(prefix) or prefix.startswith(sync.prefix)):
                raise reader.fail(
                    f"syncs[{i}].target", f"{sync.target} overlaps the target of sync {other!r}"
                )
        targets[(sync.bucket, sync.prefix)] = sync.name
        syncs.append(sync)

    if literal_secret and credentials is not None and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        reader.warnings.append(
            f"{file}: credentials.secret_key: the file holds a secret but is readable by group/others "
            f"(mode {stat.S_IMODE(st.st_mode):04o}); chmod 600 it or use ${{VAR}} references"
        )

    return Config(
        path=config_path,
        endpoint=endpoint,
        credentials=credentials,
        state_dir=state_dir,
        transfer=transfer,
        syncs=tuple(syncs),
        metrics=metrics,
        logging=logging_cfg,
        timeouts=timeouts,
        proxy=proxy,
        ca_bundle=ca_bundle,
        warnings=tuple(reader.warnings),
    )


def _has_literal(value: Any) -> bool:
    """True if a secret is written in the file itself rather than referenced as ``${VAR}``."""
    if not isinstance(value, str):
        return False
    return bool(_VAR.sub("", value).strip())


def _default_state_dir() -> Path:
    # systemd's StateDirectory= sets $STATE_DIRECTORY; otherwise follow the XDG base-directory spec.
    if os.environ.get("STATE_DIRECTORY"):
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0])
    xdg = os.environ.get("XDG_STATE_HOME")
    return Path(xdg) / "ks3sync" if xdg else Path.home() / ".local" / "state" / "ks3sync"


def _read_transfer(reader: _Reader, value: Any) -> TransferConfig:
    if value is None:
        return TransferConfig()
    t = reader.mapping(value, "transfer", TRANSFER_KEYS)
    d = TransferConfig()
    jobs = reader.integer(t["jobs"], "transfer.jobs", minimum=1) if "jobs" in t else d.jobs
    if jobs > 256:
        raise reader.fail("transfer.jobs", f"must be at most 256, got {jobs}")
    part_size = (
        reader.parsed(t["part_size"], "transfer.part_size", parse_part_size) if "part_size" in t else d.part_size
    )
    threshold = d.multipart_threshold
    if "multipart_threshold" in t:
        threshold = reader.parsed(t["multipart_threshold"], "transfer.multipart_threshold", parse_multipart_threshold)
    bwlimit = reader.parsed(t.get("bwlimit"), "transfer.bwlimit", parse_rate) if "bwlimit" in t else None
    return TransferConfig(jobs=jobs, part_size=part_size, multipart_threshold=threshold, bwlimit=bwlimit)


_PROXY_URL = re.compile(
    r"(?:https?://)?(?:[^@/\s]+@)?(?:[A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\])(?::\d{1,5})?/?", re.IGNORECASE
)


def mask_url_credentials(text: str) -> str:
    """``scheme://user:secret@host`` shown as ``scheme://user:****@host``."""
    scheme, sep, rest = text.rpartition("://")
    userinfo, at, host = rest.rpartition("@")
    if not at:
        return text
    user, colon, _ = userinfo.partition(":")
    return f"{scheme}{sep}{user}{':****' if colon else ''}@{host}"


def _read_proxy(reader: _Reader, value: Any) -> str | None:
    """None (the environment's), "none" (direct), or a proxy URL; the URL is never echoed unmasked."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lower() == "none":
        return "none"
    expected = "expected a proxy URL like 'http://proxy.example:3128', or none"
    if not isinstance(value, str):
        raise reader.fail("proxy", f"{expected}, got {_kind(value)}")
    if not _PROXY_URL.fullmatch(value.strip()):
        raise reader.fail("proxy", f"{expected}, got {mask_url_credentials(value.strip())!r}")
    return value.strip()


def _read_timeouts(reader: _Reader, value: Any) -> TimeoutsConfig:
    if value is None:
        return TimeoutsConfig()
    t = reader.mapping(value, "timeouts", TIMEOUT_KEYS)
    seconds: dict[str, float] = {}
    for name in TIMEOUT_KEYS:
        if t.get(name) is None:
            continue
        seconds[name] = reader.parsed(t[name], f"timeouts.{name}", parse_duration)
        if seconds[name] <= 0:
            raise reader.fail(f"timeouts.{name}", "must be more than 0s")
    return TimeoutsConfig(**seconds)


def _read_sync(reader: _Reader, value: Any, key: str, base: Path, check_sources: bool) -> SyncConfig:
    s = reader.mapping(value, key, SYNC_KEYS)
    for required in ("name", "source", "target"):
        if required not in s:
            raise reader.fail(f"{key}.{required}", "missing")
    name = reader.string(s["name"], f"{key}.name")
    if not _NAME.fullmatch(name):
        raise reader.fail(
            f"{key}.name", f"use 1-64 of A-Z a-z 0-9 . _ - (starting with a letter or digit), got {name!r}"
        )
    source = reader.path(s["source"], f"{key}.source", base)
    if check_sources:
        if not source.exists():
            raise reader.fail(f"{key}.source", f"folder {str(source)!r} does not exist")
        if not source.is_dir():
            raise reader.fail(f"{key}.source", f"{str(source)!r} is not a folder")
    target = reader.parsed(s["target"], f"{key}.target", parse_ks3_url)
    d = SyncConfig(name=name, source=source, target=target)

    def opt(k: str, read: Callable[[Any, str], T], default: T) -> T:
        return read(s[k], f"{key}.{k}") if s.get(k) is not None else default

    delete = opt("delete", reader.boolean, d.delete)
    delete_excluded = opt("delete_excluded", reader.boolean, d.delete_excluded)
    if delete_excluded and not delete:
        # Deleting is never switched on as a side effect in a file the service acts on for months.
        raise reader.fail(f"{key}.delete_excluded", "needs delete: true in the same sync")
    debounce = opt("debounce", lambda v, k: reader.parsed(v, k, parse_duration), d.debounce)
    rescan = opt("rescan_interval", lambda v, k: reader.parsed(v, k, parse_duration), d.rescan_interval)
    if rescan < 1:
        raise reader.fail(f"{key}.rescan_interval", f"must be at least 1s, got {format_duration(rescan)}")
    max_delete = opt("max_delete", lambda v, k: reader.parsed(v, k, parse_max_delete), d.max_delete)
    backup = opt("backup_prefix", reader.string, None)
    if backup is not None:
        backup = backup.strip("/") + "/"
        if any(seg in ("", ".", "..") for seg in backup[:-1].split("/")):
            raise reader.fail(
                f"{key}.backup_prefix", f"must not contain empty, '.' or '..' segments, got {backup!r}"
            )
        if backup.startswith(target.prefix):
            # Backups inside the synced keyspace would look like remote-only files and be deleted.
            raise reader.fail(f"{key}.backup_prefix", f"{backup!r} is inside the sync's own target {target}")
    no_strings: tuple[str, ...] = ()
    excludes = opt("excludes", reader.string_list, no_strings)
    exclude_from = tuple(
        reader.path(p, f"{key}.exclude_from[{i}]", base)
        for i, p in enumerate(opt("exclude_from", reader.string_list, no_strings))
    )
    for i, p in enumerate(exclude_from):
        if not p.is_file():
            raise reader.fail(f"{key}.exclude_from[{i}]", f"file {str(p)!r} does not exist")
    key_file = opt("encrypt_key_file", lambda v, k: reader.path(v, k, base), None)
    if key_file is not None:
        if not key_file.is_file():
            raise reader.fail(f"{key}.encrypt_key_file", f"key file {str(key_file)!r} does not exist")
        if key_file.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            reader.warnings.append(
                f"{reader.file}: {key}.encrypt_key_file: {str(key_file)!r} is readable by group/others; chmod 600 it"
            )
    allow_unencrypted = opt("allow_unencrypted", reader.boolean, d.allow_unencrypted)
    require_integrity = opt("require_integrity", reader.boolean, d.require_integrity)
    for setting, value in (("allow_unencrypted", allow_unencrypted), ("require_integrity", require_integrity)):
        if value and key_file is None:
            raise reader.fail(f"{key}.{setting}", "only means something with encrypt_key_file")
    storage_class = opt("storage_class", reader.string, None)
    if storage_class is not None and storage_class.upper() not in STORAGE_CLASSES:
        raise reader.fail(
            f"{key}.storage_class", f"expected one of {', '.join(STORAGE_CLASSES)}, got {storage_class!r}"
        )
    acl = opt("acl", reader.string, None)
    if acl is not None and acl not in OBJECT_ACLS:
        raise reader.fail(f"{key}.acl", f"expected one of {', '.join(OBJECT_ACLS)}, got {acl!r}")
    follow = opt("follow_symlinks", reader.boolean, d.follow_symlinks)
    return SyncConfig(
        name=name,
        source=source,
        target=target,
        delete=delete,
        delete_excluded=delete_excluded,
        debounce=debounce,
        max_delete=max_delete,
        backup_prefix=backup,
        excludes=excludes,
        exclude_from=exclude_from,
        encrypt_key_file=key_file,
        allow_unencrypted=allow_unencrypted,
        require_integrity=require_integrity,
        storage_class=storage_class.upper() if storage_class else None,
        acl=acl,
        rescan_interval=rescan,
        follow_symlinks=follow,
    )
