"""The service's side of versions (docs/versions.md): a batch is a pass (``start_pass`` gives the
executor its keeper, ``finish_pass`` writes the manifest last), and a reconcile ends with the sync's
retention (``prune_after_reconcile``, with the sync's delete guard). Problems are logged as events; the
sync goes on: a batch's changes are confirmed whether or not its manifest could be written (its
versions stay, found by readers without it).

Imports the config, the store protocol, ks3sync.versions and the daemon's log events.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from ks3sync.config import SyncConfig
from ks3sync.daemon.logs import event
from ks3sync.errors import Ks3SyncError, describe
from ks3sync.store.base import Store
from ks3sync.versions.stamp import StampClock

log = logging.getLogger("ks3sync.daemon")

if TYPE_CHECKING:  # the recorder is imported only by syncs that keep versions
    from ks3sync.versions.recorder import VersionPass


def start_pass(
    sync: SyncConfig, store: Store, stamps: StampClock, started_ns: int, clock: Callable[[], int]
) -> VersionPass | None:
    """The keeper of one batch, or None when the sync keeps no versions."""
    if sync.versions is None:
        return None
    from ks3sync.versions.layout import Layout
    from ks3sync.versions.recorder import VersionPass

    return VersionPass(store, Layout(sync.versions.prefix), stamps.next(started_ns), clock=clock)


def finish_pass(name: str, vpass: VersionPass) -> bool:
    """Write the batch's manifest (if it kept versions); False when that failed."""
    try:
        outcome = vpass.finish()
    except Ks3SyncError as exc:
        event(
            log, logging.WARNING, "manifest_failed", sync=name, version_pass=vpass.stamp, error=describe(exc)
        )
        return False
    if outcome.versions:
        event(
            log,
            logging.INFO,
            "versions_kept",
            sync=name,
            version_pass=outcome.stamp,
            versions=outcome.versions,
            entries=outcome.entries,
        )
    return True


def prune_after_reconcile(
    name: str,
    sync: SyncConfig,
    store: Store,
    now_ns: int,
    jobs: int,
    *,
    max_delete: int | None,
    max_delete_percent: float | None,
) -> None:
    """Delete the sync's expired versions and move old ones to cold storage (with the reconcile's delete
    guard: ``max_delete``, ``max_delete_percent``)."""
    versions = sync.versions
    if versions is None or (
        versions.keep is None and versions.keep_passes is None and versions.cold_after is None
    ):
        return
    from ks3sync.versions.layout import Layout
    from ks3sync.versions.prune import prune
    from ks3sync.versions.retention import Retention

    policy = Retention(keep=versions.keep, keep_passes=versions.keep_passes, cold_after=versions.cold_after)
    try:
        report = prune(
            store,
            Layout(versions.prefix),
            policy,
            now_ns,
            max_delete=max_delete,
            max_delete_percent=max_delete_percent,
            jobs=jobs,
        )
    except Ks3SyncError as exc:
        event(log, logging.WARNING, "prune_failed", sync=name, error=describe(exc))
        return
    if report.refused is not None:
        event(log, logging.WARNING, "prune_refused", sync=name, reason=report.refused)
    for key, why in report.failed[:10]:
        event(log, logging.WARNING, "prune_failed", sync=name, key=key, error=why)
    if report.deleted or report.cold:
        event(
            log,
            logging.INFO,
            "versions_pruned",
            sync=name,
            passes=report.deleted_passes,
            objects=report.deleted,
            cold=report.cold,
        )
