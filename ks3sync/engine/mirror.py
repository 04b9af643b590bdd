"""The mirror engine: one pass, scan -> plan -> execute -> deletes last -> journal pass record.

``run_mirror`` is one pass between a local folder and a Store in one direction; ``ks3sync mirror`` runs
it once and the service runs it for every reconcile. ``execute`` carries out a list of operations the
caller already planned with the same executor.

One pass:
1-3. scan -> plan (``engine.planning``): the local scan, the remote listing and the journal's records
   marched as three path-sorted streams, copy sources for new files, the planner's decision table;
   ``--dry-run`` stops here and returns the plan;
4. stale multipart uploads are aborted (invariant 5; ``transfer.stale``), a restore's folder is
   prepared (``transfer.localtree``), and the executor runs the transfers on its pools with the records
   and objects of the plan's paths only, then the deletes, only if nothing failed (invariant 4); with
   versions, what they replace is copied to the pass's versions first and the pass's manifest is
   written last (``ks3sync.versions``, docs/versions.md);
5. the pass summary goes to the journal.
A stop (a daemon's SIGTERM) during steps 1-3 ends the pass before anything is executed.

Imports the engine's planning and types, the store protocol, the executor and the versions recorder; not the CLI, not the
daemon, not the protocol client, not a concrete journal (it takes anything with the ``JournalLike``
methods).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ks3sync.engine.ahead import RemoteAhead
from ks3sync.engine.planning import NothingToRestore, Planned, plan_pass
from ks3sync.engine.types import JournalLike, MirrorOptions, MirrorResult, pass_summary
from ks3sync.errors import Ks3SyncError, StopRequested, describe
from ks3sync.model import (
    Action,
    Checkpoint,
    Copy,
    DeleteLocal,
    DeleteRemote,
    Direction,
    Forget,
    Operation,
    SyncedEntry,
)
from ks3sync.store.base import Store
from ks3sync.transfer.context import TransferOptions
from ks3sync.transfer.executor import STOP_REQUESTED, ExecutionReport, Executor
from ks3sync.transfer.localtree import prepare_restore_root
from ks3sync.transfer.progress import ProgressSubscriber
from ks3sync.transfer.stale import abort_stale_uploads
from ks3sync.versions.stamp import StampClock

if TYPE_CHECKING:
    from ks3sync.versions.recorder import VersionPass

__all__ = [
    "JournalLike",
    "MirrorOptions",
    "MirrorResult",
    "NothingToRestore",
    "RemoteAhead",
    "execute",
    "pass_summary",
    "run_mirror",
]


def run_mirror(
    store: Store,
    journal: JournalLike,
    sync_id: int,
    local_root: Path,
    direction: Direction,
    opts: MirrorOptions,
    *,
    progress: ProgressSubscriber | None = None,
    clock: Callable[[], int] = time.time_ns,
    stop: threading.Event | None = None,
    stamps: StampClock | None = None,
    ahead: RemoteAhead | None = None,
) -> MirrorResult:
    """One pass. ``stop`` (a daemon's SIGTERM): once set, no new transfer or part starts, parts already
    sending finish and are checkpointed, deletes do not run, and the result says ``stopped``. Set during
    the scan, the listing or the planning, the pass ends before executing anything and records no pass.
    ``stamps``: the sync's pass stamps (the service shares one between its batches and reconciles).
    ``ahead``: this pass's questions to the bucket, already entered by the caller (``engine.ahead``);
    without it the pass asks them itself."""
    if ahead is None:
        with RemoteAhead(store, opts, direction, stop) as own:
            return run_mirror(
                store,
                journal,
                sync_id,
                local_root,
                direction,
                opts,
                progress=progress,
                clock=clock,
                stop=stop,
                stamps=stamps,
                ahead=own,
            )
    started = time.monotonic()
    started_ns = clock()
    try:
        planned = plan_pass(store, journal, sync_id, local_root, direction, opts, stop, ahead.listing)
    except StopRequested:
        planned = None
    if planned is None or (stop is not None and stop.is_set()):
        if progress is not None:
            progress.close()
        return MirrorResult(stopped=STOP_REQUESTED, seconds=time.monotonic() - started, dry_run=opts.dry_run)
    if opts.dry_run:
        return MirrorResult(
            skipped=planned.plan.skipped,
            refused_deletes=planned.plan.refused_deletes,
            warnings=planned.warnings,
            problems=planned.problems,
            unsynced=planned.unsynced,
            failed=planned.unsafe,
            seconds=time.monotonic() - started,
            dry_run=True,
            plan=replace(planned.plan, deletes=planned.deletes),
        )

    checkpoint = journal.checkpoint(sync_id)
    aborted: list[str] = []
    if direction is Direction.UPLOAD:
        aborted = abort_stale_uploads(
            store,
            checkpoint,
            journal.uploads(sync_id),
            still_wanted={op.path for op in planned.plan.transfers},
            now_ns=clock(),
            grace_ns=opts.stale_grace_ns,
            also_known=_other_targets_uploads(journal, sync_id),
            listed=ahead.uploads,
        )
    if direction is Direction.DOWNLOAD:
        prepare_restore_root(local_root)
    from ks3sync.scan.filters import state_files

    # ks3sync's own files are never restored over or deleted, even inside the folder (D9).
    transfer_opts = replace(opts.transfer, direction=direction, protected_paths=state_files(opts.state_paths))
    # The executor looks records and objects up by the plan's paths only: hand it just those.
    # With versions, a deleted path's record tells its version's mtime and encryption (the manifest's).
    read = planned.plan.transfers + (planned.deletes if opts.versions is not None else ())
    synced = journal.synced_for(sync_id, _paths_read_by(read))
    vpass: VersionPass | None = None
    if opts.versions is not None and direction is Direction.UPLOAD:
        from ks3sync.versions.layout import Layout
        from ks3sync.versions.recorder import VersionPass

        vpass = VersionPass(
            store, Layout(opts.versions.prefix), (stamps or StampClock()).next(started_ns), clock=clock
        )
        checkpoint = vpass.watch(checkpoint)
    try:
        with Executor(
            store,
            checkpoint,
            local_root,
            transfer_opts,
            progress=progress,
            synced=synced,
            remote=planned.objects,
            clock=clock,
            stop=stop,
            keeper=vpass,
        ) as executor:
            if planned.unsafe:
                # Refused keys are failures of this pass: no deletes after them (invariant 4).
                report = executor.run(planned.plan.transfers, ())
                report.deletes_skipped += len(planned.deletes)
            else:
                report = executor.run(planned.plan.transfers, planned.deletes)
    finally:
        if progress is not None:
            progress.close()
    kept = _finish_versions(vpass, report) if vpass is not None else (0, None)
    result = _result(report, planned, started, len(aborted), kept)
    journal.record_pass(sync_id, pass_summary(result, direction, started_ns, clock()))
    return result


def _finish_versions(vpass: VersionPass, report: ExecutionReport) -> tuple[int, str | None]:
    """Write the pass's manifest, last: (versions kept, the pass's stamp if it kept any). A failure is
    the pass's failure; its versions stay, found by readers without the manifest (docs/versions.md §3)."""
    try:
        vpass.finish()
    except Ks3SyncError as exc:
        report.failed.append(
            (vpass.layout.manifest_path(vpass.stamp), f"manifest not written: {describe(exc)}")
        )
    kept = vpass.kept
    return kept, vpass.stamp if kept else None


def _paths_read_by(transfers: Iterable[Operation]) -> list[str]:
    """Every path a transfer may look up in the journal: its own, and a copy's source."""
    paths: list[str] = []
    for op in transfers:
        if isinstance(op, Forget):
            continue
        paths.append(op.path)
        if isinstance(op, Copy):
            paths.append(op.source_path)
    return paths


def _other_targets_uploads(journal: JournalLike, sync_id: int) -> set[str]:
    """Upload ids that syncs of this journal with *other* targets have in flight: never "unknown" to us,
    whatever their age. A sync with the same bucket and prefix (the same pair reached through another
    endpoint URL) is not another owner: its leftovers are ours to clean up."""
    records = journal.syncs()
    mine = next(((r.bucket, r.prefix) for r in records if r.id == sync_id), None)
    return {
        upload.upload_id
        for record in records
        if record.id != sync_id and (record.bucket, record.prefix) != mine
        for upload in journal.uploads(record.id)
    }


def execute(
    store: Store,
    checkpoint: Checkpoint,
    local_root: Path,
    operations: Sequence[Operation],
    options: TransferOptions,
    *,
    synced: Mapping[str, SyncedEntry] | None = None,
    progress: ProgressSubscriber | None = None,
    clock: Callable[[], int] = time.time_ns,
    stop: threading.Event | None = None,
) -> ExecutionReport:
    """Carry out already-planned operations (the daemon's queue): transfers first, deletes last and
    only if every transfer succeeded. ``stop`` as for ``run_mirror``."""
    deletes = [op for op in operations if isinstance(op, DeleteRemote | DeleteLocal)]
    transfers = [op for op in operations if not isinstance(op, DeleteRemote | DeleteLocal)]
    with Executor(
        store, checkpoint, local_root, options, progress=progress, synced=synced, clock=clock, stop=stop
    ) as ex:
        return ex.run(transfers, deletes)


def _result(
    report: ExecutionReport,
    planned: Planned,
    started: float,
    aborted: int,
    kept: tuple[int, str | None] = (0, None),
) -> MirrorResult:
    counts = report.counts
    warnings = planned.warnings
    if report.untagged_reads:
        # One line per pass, not one per object: a bucket written by the SDK has thousands.
        warnings += (
            f"{report.untagged_reads} encrypted objects carry no ks3sync integrity tag (written by the KS3 SDK or "
            f"an older ks3sync): accepted with the SDK format's checks only; --require-integrity refuses them",
        )
    return MirrorResult(
        uploaded=counts[Action.UPLOADED],
        copied=counts[Action.COPIED],
        deleted=counts[Action.DELETED],
        downloaded=counts[Action.DOWNLOADED],
        adopted=counts[Action.ADOPTED],
        forgotten=counts[Action.FORGOTTEN],
        skipped=planned.plan.skipped,
        failed=planned.unsafe + tuple(report.failed),
        bytes_sent=report.bytes_sent,
        bytes_received=report.bytes_received,
        seconds=time.monotonic() - started,
        refused_deletes=planned.plan.refused_deletes,
        deletes_skipped=report.deletes_skipped,
        aborted_uploads=aborted,
        warnings=warnings,
        problems=planned.problems,
        unsynced=planned.unsynced,
        stopped=report.stopped,
        versions_kept=kept[0],
        version_pass=kept[1],
    )
