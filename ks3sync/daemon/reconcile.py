"""The service's reconcile: one full mirror pass of a sync (``engine.mirror.run_mirror``), as the
worker's ``Reconciler``.

The worker schedules it (at start-up, every ``rescan_interval``, soon after lost events, in polling
mode) and reacts to its result; this module only says what a reconcile is: the pass's options from the
sync's configuration (``mirror_options``), the run itself with the worker's store, journal, clock,
stop event and pass stamps (with ``versions:`` a reconcile is a pass too, and prunes expired versions
after a clean one: ``daemon.versioning``), and its log lines (``reconcile_started``, ``reconcile_done``, one ``reconcile_warning`` per
warning, one ``op`` line per operation).

Imports the engine (when a reconcile runs), the daemon's versioning and the worker's types; never the protocol client or the CLI.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ks3sync.daemon.logs import OpLog, event
from ks3sync.daemon.versioning import prune_after_reconcile
from ks3sync.model import Direction

if TYPE_CHECKING:
    from ks3sync.daemon.worker import Reconciler, SyncWorker
    from ks3sync.engine.mirror import MirrorOptions, MirrorResult

log = logging.getLogger("ks3sync.daemon")


def mirror_options(worker: SyncWorker) -> MirrorOptions:
    """A reconcile's options: the sync's delete, exclude and symlink settings, the worker's transfer
    options, and ks3sync's own files, which the scan leaves out."""
    from ks3sync.engine.mirror import MirrorOptions

    sync = worker.sync
    return MirrorOptions(
        delete=sync.delete,
        delete_excluded=sync.delete_excluded,
        max_delete=sync.max_delete.count,
        max_delete_percent=sync.max_delete.percent,
        excludes=sync.excludes,
        exclude_from=sync.exclude_from,
        follow_symlinks=sync.follow_symlinks,
        transfer=worker.transfer,
        state_paths=worker.state_paths,
        versions=sync.versions,
    )


def mirror_reconciler(options_for: Callable[[SyncWorker], MirrorOptions] = mirror_options) -> Reconciler:
    """The default reconcile: one ``run_mirror`` pass (scan + listing + plan + execute)."""

    def reconcile(worker: SyncWorker, stop: threading.Event) -> MirrorResult:
        from ks3sync.engine.mirror import run_mirror

        started = time.monotonic()
        event(log, logging.INFO, "reconcile_started", sync=worker.name)
        options = options_for(worker)
        result = run_mirror(
            worker.store,
            worker.journal,
            worker.sync_id,
            worker.root,
            Direction.UPLOAD,
            options,
            progress=OpLog(worker.name),
            clock=worker.clock,
            stop=stop,  # SIGTERM ends a long rescan too, with in-flight parts checkpointed
            stamps=worker.stamps,
        )
        event(
            log,
            logging.INFO if result.ok else logging.WARNING,
            "reconcile_done",
            sync=worker.name,
            uploaded=result.uploaded,
            copied=result.copied,
            deleted=result.deleted,
            adopted=result.adopted,
            skipped=result.skipped,
            failed=len(result.failed),
            refused_deletes=result.refused_deletes,
            bytes_sent=result.bytes_sent,
            seconds=round(time.monotonic() - started, 3),
            stopped=result.stopped,
        )
        for warning in result.warnings:
            event(log, logging.WARNING, "reconcile_warning", sync=worker.name, warning=warning)
        if result.stopped is None and not stop.is_set():
            prune_after_reconcile(
                worker.name,
                worker.sync,
                worker.store,
                worker.clock(),
                worker.transfer.jobs,
                max_delete=options.max_delete,
                max_delete_percent=options.max_delete_percent,
            )
        return result

    return reconcile
