"""Retention of a target's versions (docs/versions.md §7): delete the passes the policy expires, each
pass's version objects first and its manifest last (in a separate request, only if every version went);
move older passes' versions to cold storage with a server-side copy onto themselves.

The delete guard applies as to every delete: more objects than ``max_delete`` (a count, or a share of
the area's objects) refuses the whole prune unless ``force``; ``dry_run`` only reports.

Imports the store protocol, errors and sibling modules.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Sequence
from dataclasses import dataclass, field

from ks3sync.errors import Ks3SyncError, describe
from ks3sync.store.base import Store
from ks3sync.versions.area import AreaListing, PassObjects, list_area
from ks3sync.versions.layout import Layout
from ks3sync.versions.retention import Retention, expired, to_cold

COLD_CLASS = "STANDARD_IA"
DELETE_BATCH = 1000


@dataclass(slots=True)
class PruneReport:
    passes: int = 0  # passes in the area before the prune
    objects: int = 0  # versions + manifests in the area before the prune
    expired: list[str] = field(default_factory=list)  # stamps the policy expires, oldest first
    to_delete: int = 0  # objects of those passes
    deleted: int = 0
    deleted_passes: int = 0
    cold: int = 0  # versions moved (or, dry run, to move) to cold storage
    refused: str | None = None  # the guard's reason, when it held the prune back
    failed: list[tuple[str, str]] = field(default_factory=list)  # (key, why)
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return not self.failed and self.refused is None

    def summary(self) -> dict[str, object]:
        return {
            "passes": self.passes,
            "objects": self.objects,
            "expired_passes": self.expired,
            "to_delete": self.to_delete,
            "deleted": self.deleted,
            "deleted_passes": self.deleted_passes,
            "cold": self.cold,
            "refused": self.refused,
            "failed": [{"key": key, "error": why} for key, why in self.failed],
            "dry_run": self.dry_run,
        }


def prune(
    store: Store,
    layout: Layout,
    policy: Retention,
    now_ns: int,
    *,
    max_delete: int | None = None,
    max_delete_percent: float | None = 50.0,
    force: bool = False,
    dry_run: bool = False,
    jobs: int = 8,
) -> PruneReport:
    area = list_area(store, layout)
    report = PruneReport(passes=len(area.passes), objects=area.objects, dry_run=dry_run)
    stamps = [(p.stamp, p.stamp_ns) for p in area.passes.values()]
    report.expired = expired(stamps, now_ns, policy)
    gone = [area.passes[s] for s in report.expired]
    report.to_delete = sum(len(p.versions) + (p.manifest is not None) for p in gone)
    if report.to_delete and not force:
        report.refused = _guard(report.to_delete, area.objects, max_delete, max_delete_percent)
    cold = [area.passes[s] for s in to_cold(stamps, now_ns, policy)]
    if dry_run:
        report.cold = sum(1 for p in cold for v in p.versions.values() if v.storage_class != COLD_CLASS)
        return report
    if report.refused is None:
        for group in gone:
            _delete_pass(store, area, group, report)
    _move_cold(store, layout, cold, report, jobs)
    return report


def _guard(n: int, total: int, max_delete: int | None, percent: float | None) -> str | None:
    if max_delete is not None and n > max_delete:
        return (
            f"refusing to delete {n} version objects: more than --max-delete {max_delete}; "
            "raise --max-delete or use --force"
        )
    if percent is not None and total > 0 and n * 100 > percent * total:
        return (
            f"refusing to delete {n} of {total} objects in the versions area ({100.0 * n / total:.1f}%): "
            f"more than --max-delete {percent:g}%; raise --max-delete or use --force"
        )
    return None


def _delete_pass(store: Store, area: AreaListing, group: PassObjects, report: PruneReport) -> None:
    """The versions of one pass, then (only if they all went) its manifest."""
    layout = area.layout
    paths = [layout.version_path(group.stamp, original) for original in sorted(group.versions)]
    failures: list[tuple[str, str]] = []
    for start in range(0, len(paths), DELETE_BATCH):
        batch = paths[start : start + DELETE_BATCH]
        try:
            failures.extend(store.delete_many(batch))
        except Ks3SyncError as exc:
            failures.extend((path, f"delete failed: {describe(exc)}") for path in batch)
    report.deleted += len(paths) - len(failures)
    if failures:
        report.failed.extend((store.key_for(path), why) for path, why in failures)
        if group.manifest is not None:
            report.failed.append(
                (
                    store.key_for(layout.manifest_path(group.stamp)),
                    "kept: not every version of its pass could be deleted",
                )
            )
        return
    if group.manifest is not None:
        manifest = layout.manifest_path(group.stamp)
        try:
            failed = store.delete_many([manifest])
        except Ks3SyncError as exc:
            failed = [(manifest, f"delete failed: {describe(exc)}")]
        if failed:
            report.failed.extend((store.key_for(path), why) for path, why in failed)
            return
        report.deleted += 1
    report.deleted_passes += 1


def _move_cold(
    store: Store, layout: Layout, passes: Sequence[PassObjects], report: PruneReport, jobs: int
) -> None:
    moves = [
        layout.version_path(p.stamp, v.path)
        for p in passes
        for v in p.versions.values()
        if v.storage_class != COLD_CLASS
    ]
    if not moves:
        return

    def move(path: str) -> tuple[str, str | None]:
        try:
            store.copy(path, path, storage_class=COLD_CLASS)
        except Ks3SyncError as exc:
            return path, f"cannot move to {COLD_CLASS}: {describe(exc)}"
        return path, None

    with concurrent.futures.ThreadPoolExecutor(max(1, min(jobs, len(moves)))) as pool:
        for path, why in pool.map(move, moves):
            if why is None:
                report.cold += 1
            else:
                report.failed.append((store.key_for(path), why))
