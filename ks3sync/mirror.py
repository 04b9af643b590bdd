"""The mirror engine: scan -> plan -> execute -> deletes last -> journal pass record.

``run_mirror`` is one pass between a local folder and a Store in one direction; ``ks3sync mirror`` runs
it once and the daemon runs it for rescans. ``execute`` carries out a list of operations the caller
already planned (the daemon's queued changes) with the same executor.

One pass:
1. the journal's records for the sync, the remote listing, the local scan (problems are reported, and
   deletes under a problem path are withheld: an unreadable folder must not look like an empty one);
2. (upload) local files that could be renames or duplicates of objects already in the bucket are hashed
   in parallel, so the pure planner can turn them into server-side copies;
3. the planner's decision table; ``--dry-run`` stops here and returns the plan;
4. stale multipart uploads are aborted (invariant 5), the executor runs the transfers on its pools,
   then the deletes, only if nothing failed (invariant 4);
5. the pass summary goes to the journal.

Imports the planner, the scanner, the store protocol and the executor; not the CLI, not the protocol
client, not a concrete journal (it takes anything with the ``JournalLike`` methods).
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from ks3sync.errors import Ks3SyncError, UnsafeKeyError, UsageError
from ks3sync.model import (
    Checkpoint,
    DeleteLocal,
    DeleteRemote,
    Direction,
    LocalEntry,
    Operation,
    PassSummary,
    Plan,
    RemoteEntry,
    SyncedEntry,
    UploadRecord,
)
from ks3sync.store.base import Store
from ks3sync.transfer.context import TMP_PREFIX, TransferOptions
from ks3sync.transfer.executor import STOP_REQUESTED, ExecutionReport, Executor
from ks3sync.transfer.progress import ProgressSubscriber
from ks3sync.transfer.stale import DEFAULT_GRACE_NS, abort_stale_uploads

log = logging.getLogger(__name__)


class JournalLike(Protocol):
    def synced_entries(self, sync_id: int) -> dict[str, SyncedEntry]: ...

    def checkpoint(self, sync_id: int) -> Checkpoint: ...

    def uploads(self, sync_id: int | None = None) -> list[UploadRecord]: ...

    # Optional: ``syncs() -> list[SyncRecord-like]`` (id, bucket, prefix) lets the stale sweep spare
    # other syncs' uploads.

    def record_pass(self, sync_id: int, summary: Any) -> None: ...


@dataclass(frozen=True, slots=True)
class MirrorOptions:
    delete: bool = False
    checksum: bool = False
    max_delete: int | None = None
    max_delete_percent: float | None = 50.0
    force: bool = False
    excludes: tuple[str, ...] = ()
    exclude_from: tuple[Path, ...] = ()
    follow_symlinks: bool = False
    dry_run: bool = False
    transfer: TransferOptions = field(default_factory=TransferOptions)
    stale_grace_ns: int = DEFAULT_GRACE_NS
    state_paths: tuple[Path, ...] = ()  # ks3sync's own files, never synced even inside the folder


@dataclass(frozen=True, slots=True)
class MirrorResult:
    uploaded: int = 0
    copied: int = 0
    deleted: int = 0
    downloaded: int = 0
    adopted: int = 0
    skipped: int = 0
    failed: tuple[tuple[str, str], ...] = ()
    bytes_sent: int = 0
    bytes_received: int = 0
    seconds: float = 0.0
    refused_deletes: int = 0
    deletes_skipped: int = 0  # deletes not run because something failed
    forgotten: int = 0
    aborted_uploads: int = 0
    warnings: tuple[str, ...] = ()
    problems: tuple[tuple[str, str], ...] = ()  # scan problems: (path, reason), skipped entries
    stopped: str | None = None  # the fatal error that ended the pass early
    dry_run: bool = False
    plan: Plan | None = None

    unsynced_problems: int = 0  # scan problems that left data unsynced (FAILING_PROBLEM_KINDS)

    @property
    def ok(self) -> bool:
        """Everything that should be in sync is: no failed entry, no fatal stop, no unreadable file."""
        return not self.failed and self.stopped is None and not self.unsynced_problems

    def summary(self) -> dict[str, Any]:
        """The machine-readable summary (``--json``, the journal's pass record)."""
        return {
            "uploaded": self.uploaded,
            "copied": self.copied,
            "deleted": self.deleted,
            "downloaded": self.downloaded,
            "adopted": self.adopted,
            "skipped": self.skipped,
            "forgotten": self.forgotten,
            "failed": [{"path": path, "error": message} for path, message in self.failed],
            "problems": [{"path": path, "reason": reason} for path, reason in self.problems],
            "unsynced_problems": self.unsynced_problems,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "seconds": round(self.seconds, 3),
            "refused_deletes": self.refused_deletes,
            "deletes_skipped": self.deletes_skipped,
            "aborted_uploads": self.aborted_uploads,
            "warnings": list(self.warnings),
            "stopped": self.stopped,
            "dry_run": self.dry_run,
        }


@dataclass(frozen=True, slots=True)
class _Planned:
    plan: Plan
    deletes: tuple[Operation, ...]  # the plan's deletes minus those withheld under scan problems
    unsafe: tuple[tuple[str, str], ...]  # restore keys refused (invariant 6), reported as failures
    warnings: tuple[str, ...]
    problems: tuple[tuple[str, str], ...]
    unsynced: int


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
) -> MirrorResult:
    """One pass. ``stop`` (a daemon's SIGTERM): once set, no new transfer or part starts, parts already
    sending finish and are checkpointed, deletes do not run, and the result says ``stopped``. Set during
    the scan or the listing, the pass ends before executing anything and records no pass."""
    started = time.monotonic()
    started_ns = clock()
    remote, synced, local, scan_problems = _gather(store, journal, sync_id, local_root, direction, opts)
    if stop is not None and stop.is_set():
        if progress is not None:
            progress.close()
        return MirrorResult(stopped=STOP_REQUESTED, seconds=time.monotonic() - started, dry_run=opts.dry_run)
    planned = _plan(local_root, direction, opts, remote, local, synced, scan_problems)
    if opts.dry_run:
        return MirrorResult(
            skipped=planned.plan.skipped,
            refused_deletes=planned.plan.refused_deletes,
            warnings=planned.warnings,
            problems=planned.problems,
            unsynced_problems=planned.unsynced,
            failed=planned.unsafe,
            seconds=time.monotonic() - started,
            dry_run=True,
            plan=replace(planned.plan, deletes=planned.deletes),
        )

    checkpoint = journal.checkpoint(sync_id)
    aborted: list[str] = []
    if direction is Direction.UPLOAD:
        aborted = abort_stale_uploads(
            store, checkpoint, journal.uploads(sync_id), still_wanted={op.path for op in planned.plan.transfers},
            now_ns=clock(), grace_ns=opts.stale_grace_ns, also_known=_other_targets_uploads(journal, sync_id),
        )
    if direction is Direction.DOWNLOAD:
        local_root.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(local_root)
    transfer_opts = replace(opts.transfer, direction=direction)
    try:
        with Executor(store, checkpoint, local_root, transfer_opts, progress=progress, synced=synced,
                      remote={obj.path: obj for obj in remote}, clock=clock, stop=stop) as executor:
            if planned.unsafe:
                # Refused keys are failures of this pass: no deletes after them (invariant 4).
                report = executor.run(planned.plan.transfers, ())
                report.deletes_skipped += len(planned.deletes)
            else:
                report = executor.run(planned.plan.transfers, planned.deletes)
    finally:
        if progress is not None:
            progress.close()
    result = _result(report, planned, started, len(aborted))
    journal.record_pass(sync_id, pass_summary(result, direction, started_ns, clock()))
    return result


def _other_targets_uploads(journal: JournalLike, sync_id: int) -> set[str]:
    """Upload ids that syncs of this journal with *other* targets have in flight: never "unknown" to us,
    whatever their age. A sync with the same bucket and prefix (the same pair reached through another
    endpoint URL) is not another owner: its leftovers are ours to clean up."""
    syncs = getattr(journal, "syncs", None)
    if syncs is None:
        return set()
    records = syncs()
    mine = next(((r.bucket, r.prefix) for r in records if r.id == sync_id), None)
    return {
        upload.upload_id
        for record in records
        if record.id != sync_id and (record.bucket, record.prefix) != mine
        for upload in journal.uploads(record.id)
    }


def _gather(
    store: Store, journal: JournalLike, sync_id: int, local_root: Path, direction: Direction, opts: MirrorOptions
) -> tuple[list[RemoteEntry], dict[str, SyncedEntry], list[LocalEntry], list[Any]]:
    """The remote listing, the journal's records and the local scan. The listing (network + XML
    parsing) runs in a thread while the journal is read and the folder is scanned."""
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ks3sync-list") as lister:
        listing = lister.submit(lambda: list(store.list()))
        synced = journal.synced_entries(sync_id)
        if direction is Direction.DOWNLOAD and not local_root.exists():
            local: list[LocalEntry] = []  # a restore into a new folder (created only when not a dry run)
            problems: list[Any] = []
        else:
            local, problems = _scan(local_root, opts, key_prefix=store.prefix, known=synced)
        return listing.result(), synced, local, problems


def _plan(
    local_root: Path,
    direction: Direction,
    opts: MirrorOptions,
    remote: list[RemoteEntry],
    local: list[LocalEntry],
    synced: Mapping[str, SyncedEntry],
    scan_problems: list[Any],
) -> _Planned:
    from ks3sync.plan import PlanOptions, plan_download, plan_upload, unsafe_reason

    plan_opts = PlanOptions(
        delete=opts.delete,
        checksum=opts.checksum,
        max_delete=opts.max_delete,
        max_delete_percent=opts.max_delete_percent,
        force=opts.force,
        encrypt=opts.transfer.encryption_key is not None,
    )
    unsafe: list[tuple[str, str]] = []
    if direction is Direction.UPLOAD:
        local = hash_copy_candidates(local_root, local, remote, synced, plan_opts.encrypt, opts.transfer.jobs)
        plan = plan_upload(local, remote, synced, plan_opts)
    else:
        for obj in remote:
            why = unsafe_reason(obj.path)
            if why is not None and not (obj.size == 0 and obj.path.endswith("/")):
                refusal = UnsafeKeyError(f"refusing key {obj.path!r}: {why}; it would not stay inside the target folder")
                unsafe.append((obj.path, str(refusal)))
        plan = plan_download(remote, local, synced, plan_opts)
    problems = [(p.path, p.reason) for p in scan_problems]
    deletes, withheld = _withhold_deletes_under_problems(plan.deletes, problems)
    # Refused keys are reported once, as failures, not again as the planner's "skipping" warnings.
    warnings = [w for w in plan.warnings if not any(repr(path) in w for path, _ in unsafe)]
    if withheld:
        warnings.append(f"{withheld} deletes withheld: they lie under paths the scan could not read")
    return _Planned(
        plan=plan,
        deletes=deletes,
        unsafe=tuple(unsafe),
        warnings=tuple(warnings),
        problems=tuple(problems),
        unsynced=sum(1 for p in scan_problems if p.kind in FAILING_PROBLEM_KINDS),
    )


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
    with Executor(store, checkpoint, local_root, options, progress=progress, synced=synced, clock=clock,
                  stop=stop) as ex:
        return ex.run(transfers, deletes)


def pass_summary(result: MirrorResult, direction: Direction, started_ns: int, finished_ns: int) -> PassSummary:
    """The journal's record of a pass (``status`` shows it)."""
    return PassSummary(
        started_ns=started_ns,
        finished_ns=finished_ns,
        direction=direction,
        uploaded=result.uploaded,
        copied=result.copied,
        deleted=result.deleted,
        downloaded=result.downloaded,
        adopted=result.adopted,
        skipped=result.skipped,
        failed=len(result.failed),
        bytes_sent=result.bytes_sent,
        bytes_received=result.bytes_received,
        refused_deletes=result.refused_deletes,
        error=result.stopped,
    )


def _result(report: ExecutionReport, planned: _Planned, started: float, aborted: int) -> MirrorResult:
    counts = report.counts
    return MirrorResult(
        uploaded=counts["uploaded"],
        copied=counts["copied"],
        deleted=counts["deleted"],
        downloaded=counts["downloaded"],
        adopted=counts["adopted"],
        forgotten=counts["forgotten"],
        skipped=planned.plan.skipped,
        failed=planned.unsafe + tuple(report.failed),
        bytes_sent=report.bytes_sent,
        bytes_received=report.bytes_received,
        seconds=time.monotonic() - started,
        refused_deletes=planned.plan.refused_deletes,
        deletes_skipped=report.deletes_skipped,
        aborted_uploads=aborted,
        warnings=planned.warnings,
        problems=planned.problems,
        unsynced_problems=planned.unsynced,
        stopped=report.stopped,
    )


# --------------------------------------------------------------------------------------------------
# local side


# Scan problems that leave user data unsynced (unreadable files or folders, names that cannot be keys):
# the pass is then not "all in sync". Special files, unfollowed symlinks, vanished entries are not data.
FAILING_PROBLEM_KINDS = frozenset({"unreadable", "name", "too-long"})


def scan_local(
    root: Path, opts: MirrorOptions, *, key_prefix: str = ""
) -> tuple[list[LocalEntry], list[tuple[str, str]]]:
    """The scan as two lists: entries, and (path, reason) of what was skipped."""
    entries, problems = _scan(root, opts, key_prefix=key_prefix)
    return entries, [(p.path, p.reason) for p in problems]


def _scan(
    root: Path, opts: MirrorOptions, *, key_prefix: str, known: Mapping[str, SyncedEntry] | None = None
) -> tuple[list[LocalEntry], list[Any]]:
    """ks3sync's own temp files and state files (the journal, when it lives inside the folder) are
    neither synced nor reported. A missing root or a bad exclude rule is a usage error. ``known`` (the
    journal's records) lets unchanged files share the journal's objects instead of equal copies."""
    from ks3sync.scan import Filters, FiltersError, ScanProblem, ScanRootError, scan_tree

    try:
        filters = Filters.build(root, excludes=opts.excludes, exclude_from=opts.exclude_from,
                                state_paths=opts.state_paths)
    except FiltersError as exc:
        raise UsageError(str(exc)) from exc
    entries: list[LocalEntry] = []
    problems: list[ScanProblem] = []
    try:
        for item in scan_tree(root, filters, follow_symlinks=opts.follow_symlinks, key_prefix=key_prefix,
                              known=known):
            if isinstance(item, ScanProblem):
                problems.append(item)
            elif not item.path.rsplit("/", 1)[-1].startswith(TMP_PREFIX):
                entries.append(item)
    except ScanRootError as exc:
        raise UsageError(str(exc)) from exc
    return entries, problems


def remove_stale_temp_files(root: Path) -> int:
    """Delete ``.ks3sync-tmp-*`` files a killed restore left behind (the scan never shows them). Only
    regular files with that name; symlinks are not followed. Returns how many were removed."""
    removed = 0
    for folder, _, files in os.walk(root, followlinks=False):
        for name in files:
            if not name.startswith(TMP_PREFIX):
                continue
            path = Path(folder) / name
            try:
                if stat.S_ISREG(path.lstat().st_mode):
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue  # gone already
            except OSError as exc:
                log.warning("cannot remove stale temp file %s: %s", path, exc.strerror or exc)
    if removed:
        log.info("removed %d temp files left by an interrupted restore", removed)
    return removed


def _withhold_deletes_under_problems(
    deletes: tuple[Operation, ...], problems: list[tuple[str, str]]
) -> tuple[tuple[Operation, ...], int]:
    if not problems or not deletes:
        return deletes, 0
    roots = [path.rstrip("/") for path, _ in problems]
    kept = tuple(
        op for op in deletes if not any(op.path == r or op.path.startswith(r + "/") or not r for r in roots)
    )
    return kept, len(deletes) - len(kept)


def hash_copy_candidates(
    root: Path,
    local: Iterable[LocalEntry],
    remote: Sequence[RemoteEntry],
    synced: Mapping[str, SyncedEntry],
    encrypt: bool,
    jobs: int,
) -> list[LocalEntry]:
    """Fill in the MD5 of new local files whose size matches content already in the bucket, so the
    planner can create them by server-side copy (renames, duplicates). Hashing runs on ``jobs``
    threads; a file that cannot be hashed stays unhashed (its upload will report the problem)."""
    from ks3sync.transfer.files import hash_file

    entries = list(local)
    remote_paths = {obj.path for obj in remote}
    sizes: set[int] = set()
    if not encrypt:
        sizes.update(obj.size for obj in remote if not obj.is_multipart_etag)
    sizes.update(rec.identity.size for rec in synced.values() if rec.path in remote_paths)
    candidates = [
        i
        for i, entry in enumerate(entries)
        if entry.md5 is None and entry.size > 0 and entry.size in sizes
        and entry.path not in remote_paths and entry.path not in synced
    ]
    if not candidates:
        return entries

    def digest(index: int) -> tuple[int, str | None]:
        entry = entries[index]
        try:
            return index, hash_file(entry.path, root / entry.path).md5
        except (Ks3SyncError, OSError) as exc:
            log.debug("could not hash %s for copy detection: %s", entry.path, exc)
            return index, None

    with concurrent.futures.ThreadPoolExecutor(max(1, jobs)) as pool:
        for index, md5 in pool.map(digest, candidates):
            if md5 is not None:
                entries[index] = replace(entries[index], md5=md5)
    return entries
