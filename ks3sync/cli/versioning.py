"""What ``mirror``, ``restore``, ``versions`` and ``prune`` share about versions (docs/versions.md): the
settings from flags or a ``--config`` sync, finding a target's versions area from a ``ks3://`` URL, and
the prune that follows a pass (or is the whole command) with its report.

Imports inside functions, like every command module: ``mirror`` without versions loads none of this.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ks3sync.cli.common import die

if TYPE_CHECKING:
    from ks3sync.config import SyncConfig, VersionsConfig
    from ks3sync.engine.mirror import MirrorResult
    from ks3sync.ks3 import Client
    from ks3sync.store.base import Store
    from ks3sync.versions.prune import PruneReport


def versions_prefix(value: str, flag: str) -> str:
    from ks3sync.config import check_versions_prefix

    try:
        return check_versions_prefix(value)
    except ValueError as exc:
        die(f"{flag}: {exc}")


def duration(value: str, flag: str) -> float:
    from ks3sync.config import parse_duration

    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        die(f"{flag}: {exc}")
    if seconds < 1:
        die(f"{flag}: must be at least 1s, got {value!r}")
    return seconds


def mirror_versions(
    keep_versions: str | None, keep: str | None, sync: SyncConfig | None
) -> VersionsConfig | None:
    """``mirror``'s versions: ``--keep-versions PREFIX`` [``--keep DURATION``], else the matching sync's."""
    from dataclasses import replace

    from ks3sync.config import VersionsConfig

    configured = sync.versions if sync is not None else None
    if keep_versions is None:
        if keep is not None and configured is None:
            die("--keep: only means something with --keep-versions PREFIX (or a sync's versions:)")
        if keep is not None and configured is not None:
            return replace(configured, keep=duration(keep, "--keep"))
        return configured
    chosen = VersionsConfig(prefix=versions_prefix(keep_versions, "--keep-versions"))
    if configured is not None and configured.prefix == chosen.prefix:
        chosen = configured  # the sync's retention comes along
    if keep is not None:
        chosen = replace(chosen, keep=duration(keep, "--keep"))
    return chosen


def find_target(client: Client, bucket: str, key: str, prefix: str) -> tuple[str, str] | None:
    """``(target prefix, path under it)`` for a ``ks3://bucket/key`` that names a target with versions,
    a folder under one or a path under one: the nearest of ``key`` (as a folder) and its parents that
    holds a versions area (``<it><prefix>``). None when none does."""
    folder = key if not key or key.endswith("/") else key + "/"
    candidates = [folder]
    parts = folder.rstrip("/").split("/") if folder else []
    for n in range(len(parts) - 1, -1, -1):
        candidates.append("/".join(parts[:n]) + "/" if n else "")
    from ks3sync.ks3 import KS3Error
    from ks3sync.store.ks3store import mapped

    for root in candidates:
        try:
            page = client.list_objects(bucket, prefix=root + prefix, max_keys=1)
        except KS3Error as exc:
            raise mapped(exc, bucket) from exc  # a missing bucket, refused credentials: one line, exit 2
        if page.objects:
            return root, key[len(root) :]
    return None


def prune_now(
    store: Store,
    versions: VersionsConfig,
    *,
    max_delete: int | None,
    max_delete_percent: float | None,
    force: bool = False,
    dry_run: bool = False,
    jobs: int = 8,
    now_ns: int | None = None,
) -> PruneReport:
    from ks3sync.versions.layout import Layout
    from ks3sync.versions.prune import prune
    from ks3sync.versions.retention import Retention

    policy = Retention(keep=versions.keep, keep_passes=versions.keep_passes, cold_after=versions.cold_after)
    return prune(
        store,
        Layout(versions.prefix),
        policy,
        time.time_ns() if now_ns is None else now_ns,
        max_delete=max_delete,
        max_delete_percent=max_delete_percent,
        force=force,
        dry_run=dry_run,
        jobs=jobs,
    )


def prune_words(report: PruneReport) -> str:
    """One line for a person: what the prune did (or, a dry run, would do)."""
    if report.dry_run:
        return (
            f"versions: would delete {len(report.expired)} of {report.passes} passes ({report.to_delete} "
            f"objects), move {report.cold} to STANDARD_IA; nothing changed"
        )
    words = [f"deleted {report.deleted_passes} of {report.passes} passes ({report.deleted} objects)"]
    if report.cold:
        words.append(f"moved {report.cold} versions to STANDARD_IA")
    if report.failed:
        words.append(f"failed {len(report.failed)}")
    return "versions: " + ", ".join(words)


def say_prune(report: PruneReport, *, quiet: bool, verbose: bool) -> None:
    from ks3sync.cli import output
    from ks3sync.cli.report import say_groups

    if report.refused is not None:
        output.warning(f"versions not pruned: {report.refused}")
    say_groups("failed", report.failed, verbose=verbose)
    if not quiet and (report.to_delete or report.cold or report.failed or report.dry_run):
        output.line(prune_words(report), err=True)


def say_versions(result: MirrorResult, pruned: PruneReport | None, *, quiet: bool, verbose: bool) -> None:
    """After a ``mirror`` pass with versions: what it kept, then what the prune did."""
    from ks3sync.cli import output

    if result.versions_kept and not quiet:
        output.line(f"versions: kept {result.versions_kept} in pass {result.version_pass}", err=True)
    if pruned is not None:
        say_prune(pruned, quiet=quiet, verbose=verbose)
