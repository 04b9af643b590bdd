"""The ``syncs:`` list: each entry read into a :class:`SyncConfig`, and the checks across entries
(names are unique: a name keys the sync's journal records; targets do not overlap: two syncs would
delete each other's objects).

Must not import: anything of ks3sync outside this package.
"""

from __future__ import annotations

import re
import stat
from pathlib import Path

from ks3sync.config.reader import Reader, Section, kind_of
from ks3sync.config.schema import (
    OBJECT_ACLS,
    STORAGE_CLASSES,
    SYNC_KEYS,
    VERIFY_KEYS,
    VERSIONS_KEYS,
    SyncConfig,
    VerifyConfig,
    VersionsConfig,
)
from ks3sync.config.values import (
    Ks3Url,
    check_versions_prefix,
    format_duration,
    has_bad_segment,
    parse_duration,
    parse_ks3_url,
    parse_max_delete,
    parse_size,
)

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def read_syncs(reader: Reader, value: object, base: Path, check_sources: bool) -> tuple[SyncConfig, ...]:
    if value is None:
        raise reader.fail("syncs", "missing: list at least one sync (name, source, target)")
    if not isinstance(value, list):
        raise reader.fail("syncs", f"expected a list, got {kind_of(value)}")
    syncs: list[SyncConfig] = []
    for index, item in enumerate(value):
        sync = _read_sync(reader.section(item, f"syncs[{index}]", SYNC_KEYS), base, check_sources)
        _check_distinct(reader, sync, syncs, f"syncs[{index}]")
        syncs.append(sync)
    return tuple(syncs)


def _check_distinct(reader: Reader, sync: SyncConfig, earlier: list[SyncConfig], key: str) -> None:
    for other in earlier:
        if other.name == sync.name:
            raise reader.fail(f"{key}.name", f"duplicate sync name {sync.name!r}")
    for other in earlier:
        if other.bucket == sync.bucket and (
            sync.prefix.startswith(other.prefix) or other.prefix.startswith(sync.prefix)
        ):
            raise reader.fail(f"{key}.target", f"{sync.target} overlaps the target of sync {other.name!r}")


def _read_sync(section: Section, base: Path, check_sources: bool) -> SyncConfig:
    """One entry. The keys are read in the order below, keyword arguments included, so that with several
    mistakes the same one is reported first; a reader that checks one key against another returns both."""
    section.require("name", "source", "target")
    name = _read_name(section)
    source = _read_source(section, base, check_sources)
    target = section.parsed("target", parse_ks3_url)
    defaults = SyncConfig(name=name, source=source, target=target)
    delete, delete_excluded = _read_delete_switches(section, defaults)
    debounce = section.optional_parsed("debounce", parse_duration, defaults.debounce)
    rescan_interval = _read_rescan_interval(section, defaults)
    max_delete = section.optional_parsed("max_delete", parse_max_delete, defaults.max_delete)
    backup_prefix = _read_backup_prefix(section, target)
    excludes, exclude_from = _read_excludes(section, base)
    key_file, allow_unencrypted, require_integrity = _read_encryption(section, base, defaults)
    storage_class, acl = _read_storage_class(section), _read_acl(section)
    follow_symlinks = section.optional_boolean("follow_symlinks", defaults.follow_symlinks)
    versions = _read_versions(section)
    if versions is not None and backup_prefix is not None:
        raise section.fail(
            "versions",
            "cannot be combined with backup_prefix (versions keep every generation "
            "the backup would; drop backup_prefix)",
        )
    verify = _read_verify(section)
    return SyncConfig(
        name=name,
        source=source,
        target=target,
        delete=delete,
        delete_excluded=delete_excluded,
        debounce=debounce,
        max_delete=max_delete,
        backup_prefix=backup_prefix,
        excludes=excludes,
        exclude_from=exclude_from,
        encrypt_key_file=key_file,
        allow_unencrypted=allow_unencrypted,
        require_integrity=require_integrity,
        storage_class=storage_class,
        acl=acl,
        rescan_interval=rescan_interval,
        follow_symlinks=follow_symlinks,
        versions=versions,
        verify=verify,
    )


def _read_name(section: Section) -> str:
    name = section.string("name")
    if not _NAME.fullmatch(name):
        raise section.fail(
            "name", f"use 1-64 of A-Z a-z 0-9 . _ - (starting with a letter or digit), got {name!r}"
        )
    return name


def _read_source(section: Section, base: Path, check_sources: bool) -> Path:
    source = section.path("source", base)
    if check_sources:
        if not source.exists():
            raise section.fail("source", f"folder {str(source)!r} does not exist")
        if not source.is_dir():
            raise section.fail("source", f"{str(source)!r} is not a folder")
    return source


def _read_delete_switches(section: Section, defaults: SyncConfig) -> tuple[bool, bool]:
    """``delete`` and ``delete_excluded``."""
    delete = section.optional_boolean("delete", defaults.delete)
    delete_excluded = section.optional_boolean("delete_excluded", defaults.delete_excluded)
    if delete_excluded and not delete:
        # Deleting is never switched on as a side effect in a file the service acts on for months.
        raise section.fail("delete_excluded", "needs delete: true in the same sync")
    return delete, delete_excluded


def _read_rescan_interval(section: Section, defaults: SyncConfig) -> float:
    interval = section.optional_parsed("rescan_interval", parse_duration, defaults.rescan_interval)
    if interval < 1:
        raise section.fail("rescan_interval", f"must be at least 1s, got {format_duration(interval)}")
    return interval


def _read_backup_prefix(section: Section, target: Ks3Url) -> str | None:
    written = section.optional_string("backup_prefix")
    if written is None:
        return None
    backup_prefix = written.strip("/") + "/"
    if has_bad_segment(backup_prefix[:-1]):
        raise section.fail(
            "backup_prefix", f"must not contain empty, '.' or '..' segments, got {backup_prefix!r}"
        )
    if backup_prefix.startswith(target.prefix):
        # Backups inside the synced keyspace would look like remote-only files and be deleted.
        raise section.fail("backup_prefix", f"{backup_prefix!r} is inside the sync's own target {target}")
    return backup_prefix


def _read_excludes(section: Section, base: Path) -> tuple[tuple[str, ...], tuple[Path, ...]]:
    """``excludes`` (patterns) and ``exclude_from`` (files of patterns, which must exist)."""
    no_strings: tuple[str, ...] = ()
    excludes = section.optional("excludes", section.reader.string_list, no_strings)
    listed = section.optional("exclude_from", section.reader.string_list, no_strings)
    exclude_from = tuple(
        section.reader.path(text, section.key(f"exclude_from[{index}]"), base)
        for index, text in enumerate(listed)
    )
    for index, path in enumerate(exclude_from):
        if not path.is_file():
            raise section.fail(f"exclude_from[{index}]", f"file {str(path)!r} does not exist")
    return excludes, exclude_from


def _read_encryption(section: Section, base: Path, defaults: SyncConfig) -> tuple[Path | None, bool, bool]:
    """``encrypt_key_file``, and the two switches that only mean something with it:
    ``allow_unencrypted`` and ``require_integrity``."""
    key_file = _read_key_file(section, base)
    allow_unencrypted = section.optional_boolean("allow_unencrypted", defaults.allow_unencrypted)
    require_integrity = section.optional_boolean("require_integrity", defaults.require_integrity)
    for setting, switched_on in (
        ("allow_unencrypted", allow_unencrypted),
        ("require_integrity", require_integrity),
    ):
        if switched_on and key_file is None:
            raise section.fail(setting, "only means something with encrypt_key_file")
    return key_file, allow_unencrypted, require_integrity


def _read_key_file(section: Section, base: Path) -> Path | None:
    """The key file's path; the key itself is read only where it is used."""
    if section.values.get("encrypt_key_file") is None:
        return None
    key_file = section.path("encrypt_key_file", base)
    if not key_file.is_file():
        raise section.fail("encrypt_key_file", f"key file {str(key_file)!r} does not exist")
    if key_file.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        section.reader.warn(
            section.key("encrypt_key_file"), f"{str(key_file)!r} is readable by group/others; chmod 600 it"
        )
    return key_file


def _read_storage_class(section: Section) -> str | None:
    storage_class = section.optional_string("storage_class")
    if storage_class is None:
        return None
    if storage_class.upper() not in STORAGE_CLASSES:
        raise section.fail(
            "storage_class", f"expected one of {', '.join(STORAGE_CLASSES)}, got {storage_class!r}"
        )
    return storage_class.upper()


def _read_acl(section: Section) -> str | None:
    acl = section.optional_string("acl")
    if acl is not None and acl not in OBJECT_ACLS:
        raise section.fail("acl", f"expected one of {', '.join(OBJECT_ACLS)}, got {acl!r}")
    return acl


def _read_versions(section: Section) -> VersionsConfig | None:
    """``versions:``, a mapping (``versions: {}`` keeps every version forever under ``.versions/``)."""
    value = section.values.get("versions")
    if value is None:
        return None
    versions = section.reader.section(value, section.key("versions"), VERSIONS_KEYS)
    defaults = VersionsConfig()
    prefix = defaults.prefix
    if versions.values.get("prefix") is not None:
        prefix = versions.reader.parsed(versions.string("prefix"), versions.key("prefix"), _prefix)

    def duration(name: str) -> float | None:
        seconds = versions.optional_parsed(name, parse_duration, None)
        if seconds is not None and seconds < 1:
            raise versions.fail(name, f"must be at least 1s, got {format_duration(seconds)}")
        return seconds

    keep = duration("keep")
    cold_after = duration("cold_after")
    keep_passes = versions.optional(
        "keep_passes", lambda v, k: versions.reader.integer(v, k, minimum=1), None
    )
    if cold_after is not None and keep is not None and cold_after >= keep:
        raise versions.fail(
            "cold_after",
            f"must be shorter than keep ({format_duration(keep)}), got {format_duration(cold_after)}",
        )
    return VersionsConfig(prefix=prefix, keep=keep, keep_passes=keep_passes, cold_after=cold_after)


def _read_verify(section: Section) -> VerifyConfig | None:
    """``verify:``, a mapping with exactly one budget: ``objects_per_day`` (an integer) or
    ``bytes_per_day`` (a size, like ``part_size``); absent means off."""
    value = section.values.get("verify")
    if value is None:
        return None
    verify = section.reader.section(value, section.key("verify"), VERIFY_KEYS)
    given = [name for name in VERIFY_KEYS if verify.values.get(name) is not None]
    if not given:
        raise section.fail("verify", "set a budget: objects_per_day: N or bytes_per_day: SIZE")
    if len(given) > 1:
        raise verify.fail(given[1], f"set objects_per_day or bytes_per_day, not both (got {given[0]} too)")
    if given[0] == "objects_per_day":
        return VerifyConfig(
            objects_per_day=verify.optional(
                "objects_per_day", lambda v, k: verify.reader.integer(v, k, minimum=1), None
            )
        )
    size = verify.parsed("bytes_per_day", parse_size)
    if size < 1:
        raise verify.fail("bytes_per_day", "must be more than 0")
    return VerifyConfig(bytes_per_day=size)


def _prefix(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a relative prefix such as '.versions/', got {kind_of(value)}")
    return check_versions_prefix(value)
