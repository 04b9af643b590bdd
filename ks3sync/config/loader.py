"""Loading a config file: the YAML document in, a validated :class:`Config` out, or one
:class:`ConfigError` line naming the file and the key path.

:func:`load_config` reads the file (``yamlfile``), checks the top level's keys, expands ``${VAR}``
references (``reader``), then reads each section with its own reader below; the ``syncs:`` list has
its readers in ``syncs``. Sections are read in a fixed order (``_read_sections``), so that with several
mistakes the one reported first does not depend on how the file is laid out.

Must not import: anything of ks3sync outside this package but the leaf ``display``; no network I/O.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from ks3sync.config.reader import Reader, Section, kind_of, written_in_file
from ks3sync.config.schema import (
    CRED_KEYS,
    LOGGING_KEYS,
    METRICS_KEYS,
    TIMEOUT_KEYS,
    TOP_KEYS,
    TRANSFER_KEYS,
    Config,
    Credentials,
    LoggingConfig,
    MetricsConfig,
    TimeoutsConfig,
    TransferConfig,
    default_state_dir,
)
from ks3sync.config.syncs import read_syncs
from ks3sync.config.values import parse_duration, parse_multipart_threshold, parse_part_size, parse_rate
from ks3sync.config.yamlfile import read_yaml_file
from ks3sync.display import mask_url_credentials

_ENDPOINT = re.compile(
    r"(?:https?://)?[A-Za-z0-9.-]+(?::\d{1,5})?/?|(?:https?://)?\[[0-9a-fA-F:]+\](?::\d{1,5})?/?"
)
_PROXY_URL = re.compile(
    r"(?:https?://)?(?:[^@/\s]+@)?(?:[A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\])(?::\d{1,5})?/?", re.IGNORECASE
)
_LISTEN = re.compile(r"(?:\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]*):\d{1,5}")
MAX_JOBS = 256


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
    reader = Reader(file, os.environ if environ is None else environ)
    config_path = Path(path)
    document = read_yaml_file(config_path, file)
    base = config_path.resolve().parent  # relative paths in the file are relative to its folder
    top_values = reader.mapping(document.data, "", TOP_KEYS)
    secret_in_file = _secret_written_in_file(top_values)
    top = Section(reader, {name: reader.expand(value, name) for name, value in top_values.items()}, "")
    config = _read_sections(top, config_path, base, check_sources)
    if secret_in_file and config.credentials is not None:
        _warn_if_others_can_read(reader, document.mode)
    return replace(config, warnings=tuple(reader.warnings))


def _secret_written_in_file(top_values: dict[str, object]) -> bool:
    credentials = top_values.get("credentials")
    return isinstance(credentials, dict) and written_in_file(credentials.get("secret_key"))


def _warn_if_others_can_read(reader: Reader, file_mode: int) -> None:
    if file_mode & (stat.S_IRWXG | stat.S_IRWXO):
        reader.warn(
            "credentials.secret_key",
            f"the file holds a secret but is readable by group/others (mode {stat.S_IMODE(file_mode):04o}); "
            "chmod 600 it or use ${VAR} references",
        )


def _read_sections(top: Section, config_path: Path, base: Path, check_sources: bool) -> Config:
    """Every section of the file; keyword arguments are evaluated in the order written here."""
    reader = top.reader
    return Config(
        path=config_path,
        endpoint=_read_endpoint(top),
        credentials=_read_credentials(reader, top.values.get("credentials")),
        state_dir=_read_state_dir(top, base),
        transfer=_read_transfer(reader, top.values.get("transfer")),
        timeouts=_read_timeouts(reader, top.values.get("timeouts")),
        proxy=_read_proxy(top),
        ca_bundle=_read_ca_bundle(top, base),
        metrics=_read_metrics(reader, top.values.get("metrics")),
        logging=_read_logging(reader, top.values.get("logging")),
        syncs=read_syncs(reader, top.values.get("syncs"), base, check_sources),
    )


def _read_endpoint(top: Section) -> str:
    if "endpoint" not in top.values:
        raise top.fail("endpoint", "missing (e.g. https://ks3-cn-beijing.ksyuncs.com)")
    endpoint = top.string("endpoint").strip()
    if not _ENDPOINT.fullmatch(endpoint):
        raise top.fail("endpoint", f"expected a host name or http(s)://host[:port], got {endpoint!r}")
    return endpoint.rstrip("/")


def _read_credentials(reader: Reader, value: object) -> Credentials | None:
    if value is None:
        return None
    section = reader.section(value, "credentials", CRED_KEYS)
    section.require(*CRED_KEYS)
    return Credentials(
        access_key=section.string("access_key"),
        secret_key=section.string("secret_key", secret=True),  # described, never echoed
    )


def _read_state_dir(top: Section, base: Path) -> Path:
    if top.values.get("state_dir") is None:
        return default_state_dir()
    return top.path("state_dir", base)


def _read_transfer(reader: Reader, value: object) -> TransferConfig:
    """A key written empty (``jobs:``) is an error here, not the default."""
    defaults = TransferConfig()
    if value is None:
        return defaults
    section = reader.section(value, "transfer", TRANSFER_KEYS)
    jobs = defaults.jobs
    if "jobs" in section.values:
        jobs = reader.integer(section.values["jobs"], section.key("jobs"), minimum=1)
    if jobs > MAX_JOBS:
        raise section.fail("jobs", f"must be at most {MAX_JOBS}, got {jobs}")
    return TransferConfig(
        jobs=jobs,
        part_size=section.parsed_if_present("part_size", parse_part_size, defaults.part_size),
        multipart_threshold=section.parsed_if_present(
            "multipart_threshold", parse_multipart_threshold, defaults.multipart_threshold
        ),
        bwlimit=section.parsed_if_present("bwlimit", parse_rate, defaults.bwlimit),
    )


def _read_timeouts(reader: Reader, value: object) -> TimeoutsConfig:
    if value is None:
        return TimeoutsConfig()
    section = reader.section(value, "timeouts", TIMEOUT_KEYS)
    seconds: dict[str, float] = {}
    for name in TIMEOUT_KEYS:
        if section.values.get(name) is None:
            continue
        seconds[name] = section.parsed(name, parse_duration)
        if seconds[name] <= 0:
            raise section.fail(name, "must be more than 0s")
    return TimeoutsConfig(**seconds)


def _read_proxy(top: Section) -> str | None:
    """None (the environment's), "none" (direct), or a proxy URL; the URL is never echoed unmasked."""
    value = top.values.get("proxy")
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lower() == "none":
        return "none"
    expected = "expected a proxy URL like 'http://proxy.example:3128', or none"
    if not isinstance(value, str):
        raise top.fail("proxy", f"{expected}, got {kind_of(value)}")
    if not _PROXY_URL.fullmatch(value.strip()):
        raise top.fail("proxy", f"{expected}, got {mask_url_credentials(value.strip())!r}")
    return value.strip()


def _read_ca_bundle(top: Section, base: Path) -> Path | None:
    if top.values.get("ca_bundle") is None:
        return None
    ca_bundle = top.path("ca_bundle", base)
    if not ca_bundle.is_file():
        raise top.fail("ca_bundle", f"file {str(ca_bundle)!r} does not exist")
    return ca_bundle


def _read_metrics(reader: Reader, value: object) -> MetricsConfig:
    if value is None:
        return MetricsConfig()
    section = reader.section(value, "metrics", METRICS_KEYS)
    listen = section.optional_string("listen")
    if listen is None:
        return MetricsConfig()
    if not _LISTEN.fullmatch(listen):
        raise section.fail("listen", f"expected host:port like '127.0.0.1:9464', got {listen!r}")
    return MetricsConfig(listen=listen)


def _read_logging(reader: Reader, value: object) -> LoggingConfig:
    if value is None:
        return LoggingConfig()
    section = reader.section(value, "logging", LOGGING_KEYS)
    # str(): `level: 1` or an empty `level:` reads as text and is then refused by name.
    level = str(section.values.get("level", "info")).lower()
    if level not in ("debug", "info", "warning", "error"):
        raise section.fail("level", f"expected debug, info, warning or error, got {level!r}")
    log_format = str(section.values.get("format", "text")).lower()
    if log_format not in ("text", "json"):
        raise section.fail("format", f"expected text or json, got {log_format!r}")
    return LoggingConfig(level=level, format=log_format)
