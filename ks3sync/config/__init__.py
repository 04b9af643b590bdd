"""The configuration file: YAML in, frozen dataclasses out, or one line saying what is wrong.

The package has three jobs, one module (or two) each:

- ``values.py``: one value from text and back (durations ``2s``/``1h30m``, sizes ``8MiB``/``64MB``,
  part sizes, rates ``10MB/s``, the delete guard ``100``/``10%``, ``ks3://bucket/prefix`` URLs). Pure,
  and shared with the command line.
- ``schema.py``: the keys each section allows, the frozen dataclasses (:class:`Config`,
  :class:`SyncConfig`, ...) with their defaults, :meth:`Config.effective` (what ``check-config``
  prints), and :class:`ConfigError`.
- loading: ``yamlfile.py`` (the file into YAML data: no aliases, no duplicate keys), ``reader.py``
  (``${VAR}`` expansion and typed getters that keep the key path), ``loader.py`` (:func:`load_config`
  and the top-level sections' readers) and ``syncs.py`` (the ``syncs:`` list).

Every problem becomes a :class:`ConfigError` whose message is ONE line naming the file and the key
path, e.g. ``ks3sync.yaml: syncs[0].debounce: expected a duration like '2s', got 'soon'``.
Secrets never appear in messages or reprs: a bad value under ``credentials`` is described, not echoed.

Every command imports this package (for :class:`ConfigError`), and ``mirror`` without ``--config`` uses
only the value parsers: so only ``values`` and ``schema`` are imported here, and the loading modules
(and PyYAML, which ``yamlfile`` imports on first use) on the first use of :func:`load_config`.

Must not import: the engine, the client or the service (``ks3sync.ks3``, ``store``, ``daemon``, ``cli``);
only the leaves ``digits`` and ``display``. No network I/O.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ks3sync.config.schema import (
    STORAGE_CLASSES,
    Config,
    ConfigError,
    Credentials,
    LoggingConfig,
    MetricsConfig,
    SyncConfig,
    TimeoutsConfig,
    TransferConfig,
    VerifyConfig,
    VersionsConfig,
    default_state_dir,
)
from ks3sync.config.values import (
    Ks3Url,
    MaxDelete,
    check_versions_prefix,
    format_duration,
    format_size,
    parse_duration,
    parse_ks3_url,
    parse_max_delete,
    parse_multipart_threshold,
    parse_part_size,
    parse_rate,
    parse_size,
)

if TYPE_CHECKING:
    from ks3sync.config.loader import load_config

__all__ = [
    "STORAGE_CLASSES",
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
    "VerifyConfig",
    "VersionsConfig",
    "check_versions_prefix",
    "default_state_dir",
    "format_duration",
    "format_size",
    "load_config",
    "parse_duration",
    "parse_ks3_url",
    "parse_max_delete",
    "parse_multipart_threshold",
    "parse_part_size",
    "parse_rate",
    "parse_size",
]


def __getattr__(name: str) -> object:
    # PEP 562: `from ks3sync.config import load_config` imports the loading modules on first use.
    if name == "load_config":
        from ks3sync.config.loader import load_config

        return load_config
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
