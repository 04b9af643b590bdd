"""The mirror engine: scan -> plan -> execute -> deletes last -> journal pass record.

``run_mirror`` is one pass between a local folder and a Store in one direction; ``ks3sync mirror`` runs
it once and the daemon runs it for rescans. ``execute`` carries out a list of operations the caller
already planned (the daemon's queued changes) with the same executor.

One pass:
1. the local scan, the remote listing and the journal's records are marched as three path-sorted
   streams (the listing is produced on a thread, a few pages ahead); only the changes, counts and the
   planner's small side structures survive, so memory follows the changes, not the files (a no-change
   pass over a million files holds no per-file state). Scan problems are collected, and deletes under
   a problem path are withheld: an unreadable folder must not look like an empty one;
2. (upload, only when there are new local files) the journal is read again for copy sources of their
   sizes, and the new files that could be renames or duplicates are hashed in parallel, so the pure
   planner can turn them into server-side copies;
3. the planner's decision table; ``--dry-run`` stops here and returns the plan;
4. stale multipart uploads are aborted (invariant 5), the executor runs the transfers on its pools
   with the records and objects of the plan's paths only, then the deletes, only if nothing failed
   (invariant 4); with versions, what they replace is copied to the pass's versions first and the
   pass's manifest is written last (``ks3sync.versions``, docs/versions.md);
5. the pass summary goes to the journal.

The target's versions area is never part of the listing (``versions.hide``), nor of the local walk.

Imports the planner, the scanner, the store protocol and the executor; not the CLI, not the protocol
client, not a concrete journal (it takes anything with the ``JournalLike`` methods).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import gc
import itertools
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ks3sync.config import VersionsConfig
from ks3sync.errors import FatalError, Ks3SyncError, UnsafeKeyError, UsageError, describe
from ks3sync.model import (
    Adopt,
    Checkpoint,
    Copy,
    DeleteLocal,
    DeleteRemote,
    Direction,
    Download,
    Forget,
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
from ks3sync.transfer.localtree import remove_stale_temp_files
from ks3sync.transfer.progress import ProgressSubscriber
from ks3sync.transfer.stale import DEFAULT_GRACE_NS, abort_stale_uploads
from ks3sync.versions.stamp import StampClock

if TYPE_CHECKING:
    from ks3sync.versions.recorder import VersionPass

log = logging.getLogger(__name__)


class JournalLike(Protocol):
    def iter_synced_entries(self, sync_id: int) -> Iterator[SyncedEntry]:
        """The sync's records in path order (UTF-8 byte order), streamed."""
        ...

    def synced_for(self, sync_id: int, paths: Iterable[str]) -> dict[str, SyncedEntry]:
        """The records of ``paths`` that exist (point lookups for the executor)."""
        ...

    def synced_count(self, sync_id: int, *, at_most: int) -> int:
        """How many records the sync has, counting no further than ``at_most``."""
        ...

    def checkpoint(self, sync_id: int) -> Checkpoint: ...

    def uploads(self, sync_id: int | None = None) -> list[UploadRecord]: ...

    # Optional: ``syncs() -> list[SyncRecord-like]`` (id, bucket, prefix) lets the stale sweep spare
    # other syncs' uploads.

    def record_pass(self, sync_id: int, summary: Any) -> None: ...


@dataclass(frozen=True, slots=True)
class MirrorOptions:
    delete: bool = False
    delete_excluded: bool = False  # with delete: excluded destination entries go too (rsync's option)
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
    versions: VersionsConfig | None = None  # upload: keep a version of what each pass replaces

    @property
    def reserved(self) -> tuple[str, ...]:
        """The target's sub-prefixes that hold ks3sync's own objects (never listed, walked or synced)."""
        from ks3sync.versions.hide import reserved_prefixes

        return reserved_prefixes(self.versions.prefix if self.versions is not None else None)


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
    versions_kept: int = 0  # objects this pass copied to its versions before replacing them
    version_pass: str | None = None  # the pass's stamp, when it kept versions

    # Scan problems that left data unsynced (FAILING_PROBLEM_KINDS: unreadable files or folders, names
    # that cannot be keys), also in ``problems``: they count as failed entries of the pass.
    unsynced: tuple[tuple[str, str], ...] = ()

    @property
    def unsynced_problems(self) -> int:
        return len(self.unsynced)

    @property
    def failures(self) -> tuple[tuple[str, str], ...]:
        """Every entry the pass left unsynced, with why: failed transfers and unreadable files."""
        return self.failed + self.unsynced

    @property
    def ok(self) -> bool:
        """Everything that should be in sync is: no failed entry, no fatal stop, no unreadable file."""
        return not self.failed and self.stopped is None and not self.unsynced

    def summary(self) -> dict[str, Any]:
        """The machine-readable summary (``--json``), in the words of the text summary (D12):
        ``recorded`` = already in the destination, hashed and recorded, nothing sent; ``unchanged`` = in
        sync already; ``failed`` includes files the scan could not read."""
        return {
            "uploaded": self.uploaded,
            "copied": self.copied,
            "deleted": self.deleted,
            "downloaded": self.downloaded,
            "recorded": self.adopted,
            "unchanged": self.skipped,
            "forgotten": self.forgotten,
            "failed": [{"path": path, "error": message} for path, message in self.failures],
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
            "versions_kept": self.versions_kept,
            "version_pass": self.version_pass,
        }


@dataclass(frozen=True, slots=True)
class _Planned:
    plan: Plan
    deletes: tuple[Operation, ...]  # the plan's deletes minus those withheld under scan problems
    objects: Mapping[str, RemoteEntry]  # the listed object at each transfer's path, if there is one
    unsafe: tuple[tuple[str, str], ...]  # restore keys refused (invariant 6), reported as failures
    warnings: tuple[str, ...]
    problems: tuple[tuple[str, str], ...]
    unsynced: tuple[tuple[str, str], ...]


# From this many files a pass walks the tree in a child process: starting one costs ~50 ms, walking
# in-process ~7 us per file of the one core Python code runs on (measured, docs/benchmarks.md).
WORKER_SCAN_MIN_FILES = 20_000


class _Stopped(Exception):
    """The caller's stop event was set while the sources were being marched."""


class NothingToRestore(FatalError):
    """A restore whose bucket prefix holds no object at all (most likely a typo): nothing is created."""


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
) -> MirrorResult:
    """One pass. ``stop`` (a daemon's SIGTERM): once set, no new transfer or part starts, parts already
    sending finish and are checkpointed, deletes do not run, and the result says ``stopped``. Set during
    the scan, the listing or the planning, the pass ends before executing anything and records no pass.
    ``stamps``: the sync's pass stamps (the service shares one between its batches and reconciles)."""
    started = time.monotonic()
    started_ns = clock()
    try:
        planned = _plan(store, journal, sync_id, local_root, direction, opts, stop)
    except _Stopped:
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
            store, checkpoint, journal.uploads(sync_id), still_wanted={op.path for op in planned.plan.transfers},
            now_ns=clock(), grace_ns=opts.stale_grace_ns, also_known=_other_targets_uploads(journal, sync_id),
        )
    if direction is Direction.DOWNLOAD:
        local_root.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(local_root)
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

        vpass = VersionPass(store, Layout(opts.versions.prefix), (stamps or StampClock()).next(started_ns), clock=clock)
        checkpoint = vpass.watch(checkpoint)
    try:
        with Executor(store, checkpoint, local_root, transfer_opts, progress=progress, synced=synced,
                      remote=planned.objects, clock=clock, stop=stop, keeper=vpass) as executor:
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
        report.failed.append((vpass.layout.manifest_path(vpass.stamp), f"manifest not written: {describe(exc)}"))
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


def _plan(
    store: Store,
    journal: JournalLike,
    sync_id: int,
    local_root: Path,
    direction: Direction,
    opts: MirrorOptions,
    stop: threading.Event | None,
) -> _Planned:
    """March the scan, the listing and the journal's records; raises ``_Stopped`` if ``stop`` is set
    on the way."""
    from ks3sync.plan import (
        NO_SOURCES,
        PlanOptions,
        collect_copy_sources,
        finish_upload,
        hash_candidates,
        march_download,
        march_upload,
    )
    from ks3sync.scan import ScanProblem

    plan_opts = PlanOptions(
        delete=opts.delete,
        delete_excluded=opts.delete_excluded,
        checksum=opts.checksum,
        max_delete=opts.max_delete,
        max_delete_percent=opts.max_delete_percent,
        force=opts.force,
        encrypt=opts.transfer.encryption_key is not None,
    )
    # A tree the journal knows to be large is walked by a second process (see ks3sync.scan.worker).
    in_worker = journal.synced_count(sync_id, at_most=WORKER_SCAN_MIN_FILES) >= WORKER_SCAN_MIN_FILES
    # A restore that deletes excluded files must see them: it walks without the rules, and the
    # planner judges each path (an upload never sends an excluded file, so its walk always filters).
    walk_excluded = direction is Direction.DOWNLOAD and opts.delete and opts.delete_excluded
    scan = _LocalScan(local_root, opts, key_prefix=store.prefix, stop=stop, in_worker=in_worker,
                      rules=not walk_excluded)
    excluded = scan.filters.exclusion  # remote keys are judged by the same rules, .ks3ignore files included
    unsafe: list[tuple[str, str]] = []
    if direction is Direction.UPLOAD:
        with (_fewer_collections(), _Listing(store, stop, opts.reserved) as listing,
              _closing(journal.iter_synced_entries(sync_id)) as records):
            marched = march_upload(scan, listing, records, plan_opts, excluded)
        sources = NO_SOURCES
        hashed: dict[str, str] = {}
        if marched.local_only:  # new files: could they be renames or duplicates of objects we keep?
            with _closing(journal.iter_synced_entries(sync_id)) as records:
                sources = collect_copy_sources(marched, records, plan_opts)
            hashed = _hash_files(local_root, hash_candidates(marched, sources), opts.transfer.jobs)
        plan = finish_upload(marched, sources, plan_opts, hashed=hashed)
        objects = marched.objects
    else:
        # A restore into a new folder sees an empty one (created only when not a dry run).
        local: Iterable[LocalEntry] = scan if local_root.exists() else ()
        with (_fewer_collections(), _Listing(store, stop, opts.reserved) as listing,
              _closing(journal.iter_synced_entries(sync_id)) as records):
            restore = march_download(listing, local, records, plan_opts, excluded)
        if restore.listed == 0:
            # Most likely a mistyped bucket or prefix: say so rather than create an empty folder.
            raise NothingToRestore(f"nothing to restore: ks3://{store.bucket}/{store.prefix} holds no objects")
        plan = restore.plan
        for obj, why in restore.refused:
            if not (obj.size == 0 and obj.path.endswith("/")):
                refusal = UnsafeKeyError(f"refusing key {obj.path!r}: {why}")
                unsafe.append((obj.path, str(refusal)))
        objects = {op.path: op.remote for op in plan.transfers if isinstance(op, Download | Adopt)}
    if walk_excluded:
        # The walk read no .ks3ignore; the ones the planner could not read are reported here.
        scan.problems.extend(ScanProblem(path, f"cannot use ignore file: {reason}", "ignore-file")
                             for path, reason in scan.filters.unreadable_ignore_files())
    problems = [(p.path, p.reason) for p in scan.problems]
    deletes, withheld = _withhold_deletes_under_problems(plan.deletes, problems)
    # Refused keys are reported once, as failures, not again as the planner's "skipping" warnings.
    refused_reprs = {repr(path) for path, _ in unsafe}
    warnings = [w for w in plan.warnings if not any(r in w for r in refused_reprs)]
    if withheld:
        warnings.append(f"{withheld} deletes withheld: they lie under paths the scan could not read")
    if direction is Direction.UPLOAD:
        warnings.extend(f"{area} in the source folder is not uploaded: the target reserves it for versions"
                        for area in opts.reserved if os.path.lexists(local_root / area.rstrip("/")))
    return _Planned(
        plan=plan,
        deletes=deletes,
        objects=objects,
        unsafe=tuple(unsafe),
        warnings=tuple(warnings),
        problems=tuple(problems),
        unsynced=tuple((p.path, p.reason) for p in scan.problems if p.kind in FAILING_PROBLEM_KINDS),
    )


class _Listing:
    """``store.list()`` run on a producer thread, handed over in chunks through a small bounded queue:
    the listing (network + XML parsing) overlaps the scan, and at most ``DEPTH`` chunks wait in memory.
    An error of the listing is raised to the consumer; leaving the ``with`` block early (an error of
    the march, a stop) cancels the producer."""

    CHUNK = 1000  # one KS3 page: one queue hand-over per page, not per object
    DEPTH = 4

    def __init__(self, store: Store, stop: threading.Event | None, areas: tuple[str, ...] = ()) -> None:
        self._store = store
        self._stop = stop
        self._areas = areas  # the target's own sub-prefixes, left out of the listing
        self._queue: queue.Queue[list[RemoteEntry] | BaseException | None] = queue.Queue(self.DEPTH)
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="ks3sync-list", daemon=True)

    def __enter__(self) -> _Listing:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._cancel.set()  # a producer waiting on a full queue gives up within its put timeout
        self._thread.join()

    def _put(self, item: list[RemoteEntry] | BaseException | None) -> bool:
        while not self._cancel.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            from ks3sync.versions.hide import without_areas

            entries = without_areas(self._store, self._areas) if self._areas else self._store.list()
            while chunk := list(itertools.islice(entries, self.CHUNK)):
                if not self._put(chunk):
                    return
            self._put(None)
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            self._put(exc)

    def __iter__(self) -> Iterator[RemoteEntry]:
        while True:
            try:
                item = self._queue.get(timeout=0.5)
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    raise RuntimeError("the listing thread ended without a result") from None
                continue
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            if self._stop is not None and self._stop.is_set():
                raise _Stopped
            yield from item


_gc_lock = threading.Lock()
_gc_marches = 0  # marches running in this process (the service reconciles several syncs at once)
_gc_saved: tuple[int, int, int] = (700, 10, 10)


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    """A march allocates three short-lived objects per file, freed by reference counting; the cyclic
    collector's young-generation passes over them cost ~8% of a no-change pass's CPU (100,000 files:
    ~0.2 s of 2.5 s, measured). Make them rarer while any march runs; collection still happens."""
    global _gc_marches, _gc_saved
    with _gc_lock:
        if _gc_marches == 0:
            _gc_saved = gc.get_threshold()
            gc.set_threshold(max(_gc_saved[0], 100_000), *_gc_saved[1:])
        _gc_marches += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_marches -= 1
            if _gc_marches == 0:
                gc.set_threshold(*_gc_saved)


@contextlib.contextmanager
def _closing(records: Iterator[SyncedEntry]) -> Iterator[Iterator[SyncedEntry]]:
    """Close a journal stream when the block ends, so its read connection is given back even when the
    march stops early (a generator's ``close``; plain iterators have nothing to give back)."""
    try:
        yield records
    finally:
        close = getattr(records, "close", None)
        if close is not None:
            close()


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
        failed=len(result.failures),
        bytes_sent=result.bytes_sent,
        bytes_received=result.bytes_received,
        refused_deletes=result.refused_deletes,
        error=result.stopped,
    )


def _result(
    report: ExecutionReport, planned: _Planned, started: float, aborted: int, kept: tuple[int, str | None] = (0, None)
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
        warnings=warnings,
        problems=planned.problems,
        unsynced=planned.unsynced,
        stopped=report.stopped,
        versions_kept=kept[0],
        version_pass=kept[1],
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
    scan = _LocalScan(root, opts, key_prefix=key_prefix)
    entries = list(scan)
    return entries, [(p.path, p.reason) for p in scan.problems]


class _LocalScan:
    """The scan as a stream of entries (in path order) for the march; problems are collected on the
    side. ks3sync's own temp files and state files (the journal, when it lives inside the folder) are
    neither synced nor reported. A missing root or a bad exclude rule is a usage error (the filters are
    built here, the root is checked when the stream starts)."""

    STOP_CHECK_EVERY = 4096  # entries between looks at the stop event

    def __init__(self, root: Path, opts: MirrorOptions, *, key_prefix: str,
                 stop: threading.Event | None = None, in_worker: bool = False, rules: bool = True) -> None:
        from ks3sync.scan import Filters, FiltersError, ScanProblem

        try:
            # Built even when a worker walks: a bad rule is the caller's usage error, raised here.
            self.filters = Filters.build(root, excludes=opts.excludes, exclude_from=opts.exclude_from,
                                         state_paths=opts.state_paths, reserved=opts.reserved)
        except FiltersError as exc:
            raise UsageError(str(exc)) from exc
        self._rules = rules  # False: the walk leaves out only ks3sync's own files
        self._root = root
        self._opts = opts
        self._key_prefix = key_prefix
        self._stop = stop
        self._in_worker = in_worker and bool(sys.executable)  # an embedding without an interpreter path walks here
        self.problems: list[ScanProblem] = []

    def _items(self) -> Iterator[Any]:
        if not self._in_worker:
            from ks3sync.scan import scan_tree

            walk_filters = self.filters if self._rules else self.filters.without_rules()
            return scan_tree(self._root, walk_filters, follow_symlinks=self._opts.follow_symlinks,
                             key_prefix=self._key_prefix)
        from ks3sync.scan.worker import scan_tree_in_worker

        return scan_tree_in_worker(self._root, excludes=self._opts.excludes, exclude_from=self._opts.exclude_from,
                                   state_paths=self._opts.state_paths, reserved=self._opts.reserved,
                                   follow_symlinks=self._opts.follow_symlinks,
                                   key_prefix=self._key_prefix, rules=self._rules)

    def __iter__(self) -> Iterator[LocalEntry]:
        from ks3sync.scan import ScanProblem, ScanRootError, ScanWorkerError

        stop = self._stop
        countdown = self.STOP_CHECK_EVERY
        items = self._items()
        try:
            for item in items:
                if isinstance(item, ScanProblem):
                    self.problems.append(item)
                    continue
                if stop is not None:
                    countdown -= 1
                    if not countdown:
                        countdown = self.STOP_CHECK_EVERY
                        if stop.is_set():
                            raise _Stopped
                if not item.path.rsplit("/", 1)[-1].startswith(TMP_PREFIX):
                    yield item
        except ScanRootError as exc:
            raise UsageError(str(exc)) from exc
        except ScanWorkerError as exc:
            raise FatalError(f"{self._root}: {exc}; nothing was transferred or deleted") from exc
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # a march that stops early stops the walk (and a worker) with it


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


def _hash_files(root: Path, entries: Sequence[LocalEntry], jobs: int) -> dict[str, str]:
    """MD5 by path of new local files that could be renames or duplicates (the planner's
    ``hash_candidates``), on ``jobs`` threads; a file that cannot be hashed stays unhashed (its upload
    will report the problem)."""
    if not entries:
        return {}
    from ks3sync.transfer.files import hash_file

    def digest(entry: LocalEntry) -> str | None:
        try:
            return hash_file(entry.path, root / entry.path).md5
        except (Ks3SyncError, OSError) as exc:
            log.debug("could not hash %s for copy detection: %s", entry.path, exc)
            return None

    with concurrent.futures.ThreadPoolExecutor(max(1, jobs)) as pool:
        return {
            entry.path: md5
            for entry, md5 in zip(entries, pool.map(digest, entries), strict=True)
            if md5 is not None
        }
