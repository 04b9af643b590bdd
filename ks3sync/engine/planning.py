"""Steps 1-3 of a pass, scan -> plan: the local scan, the remote listing and the journal's records marched
as three path-sorted streams, copy sources found for new files, and the planner's decision.

The streams come from ``scan.local.LocalScan`` (walked in a child process for a tree the journal knows to
be large), the caller's listing (``engine.ahead``: a few pages ahead on a thread, without the target's
versions area, as the scan leaves it out) and the journal's ``iter_synced_entries``.
``plan.march_upload`` / ``march_download`` step through them, so only the changes, counts and
the planner's small side structures survive and memory follows the changes, not the files. Uploads with
new local files read the journal again for copy sources of their sizes and hash the candidates
(``transfer.files.hash_files``) so the pure planner can turn renames and duplicates into server-side
copies. Scan problems are collected, and deletes under a problem path are withheld
(``plan.withhold_deletes_under``); restore keys the planner refused become failures of the pass.

Imports the planner, the scanner, the store protocol and file hashing; not the executor's pools, not a
concrete journal.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from ks3sync.engine.types import JournalLike, MirrorOptions
from ks3sync.errors import FatalError, UnsafeKeyError
from ks3sync.gctune import fewer_collections
from ks3sync.model import Adopt, Direction, Download, LocalEntry, Operation, Plan, RemoteEntry, SyncedEntry
from ks3sync.plan import (
    NO_SOURCES,
    PlanOptions,
    collect_copy_sources,
    finish_upload,
    hash_candidates,
    march_download,
    march_upload,
    withhold_deletes_under,
)
from ks3sync.scan.local import FAILING_PROBLEM_KINDS, LocalScan
from ks3sync.scan.walk import ScanProblem
from ks3sync.store.base import Store
from ks3sync.transfer.files import hash_files


@dataclass(frozen=True, slots=True)
class Planned:
    """A decided pass: what the executor runs and what the result reports besides."""

    plan: Plan
    deletes: tuple[Operation, ...]  # the plan's deletes minus those withheld under scan problems
    objects: Mapping[str, RemoteEntry]  # the listed object at each transfer's path, if there is one
    unsafe: tuple[tuple[str, str], ...]  # restore keys refused (invariant 6), reported as failures
    warnings: tuple[str, ...]
    problems: tuple[tuple[str, str], ...]
    unsynced: tuple[tuple[str, str], ...]


# From this many files a pass walks the tree in a child process: below it, starting the child costs
# more than walking in-process on the core Python code runs on saves (D5, D20).
WORKER_SCAN_MIN_FILES = 20_000


class NothingToRestore(FatalError):
    """A restore whose bucket prefix holds no object at all (most likely a typo): nothing is created."""


def plan_pass(
    store: Store,
    journal: JournalLike,
    sync_id: int,
    local_root: Path,
    direction: Direction,
    opts: MirrorOptions,
    stop: threading.Event | None,
    listing: Iterable[RemoteEntry],
) -> Planned:
    """Steps 1-3 of a pass: march the scan, the remote ``listing`` (started by the caller:
    ``engine.ahead``) and the journal's records, find copy sources, and decide. Raises
    ``StopRequested`` if ``stop`` is set on the way, ``NothingToRestore`` for a restore from an empty
    prefix."""
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
    scan = LocalScan(
        local_root,
        opts.scan,
        key_prefix=store.prefix,
        stop=stop,
        in_worker=in_worker,
        rules=not walk_excluded,
    )
    excluded = scan.filters.exclusion  # remote keys are judged by the same rules, .ks3ignore files included
    unsafe: list[tuple[str, str]] = []
    if direction is Direction.UPLOAD:
        with (
            fewer_collections(),
            _closing(journal.iter_synced_entries(sync_id)) as records,
        ):
            marched = march_upload(scan, listing, records, plan_opts, excluded)
        sources = NO_SOURCES
        hashed: dict[str, str] = {}
        if marched.local_only:  # new files: could they be renames or duplicates of objects we keep?
            with _closing(journal.iter_synced_entries(sync_id)) as records:
                sources = collect_copy_sources(marched, records, plan_opts)
            hashed = hash_files(local_root, hash_candidates(marched, sources), opts.transfer.jobs)
        plan = finish_upload(marched, sources, plan_opts, hashed=hashed)
        objects = marched.objects
    else:
        # A restore into a new folder sees an empty one (created only when not a dry run).
        local: Iterable[LocalEntry] = scan if local_root.exists() else ()
        with (
            fewer_collections(),
            _closing(journal.iter_synced_entries(sync_id)) as records,
        ):
            restore = march_download(listing, local, records, plan_opts, excluded)
        if restore.listed == 0:
            # Most likely a mistyped bucket or prefix: say so rather than create an empty folder.
            raise NothingToRestore(
                f"nothing to restore: ks3://{store.bucket}/{store.prefix} holds no objects"
            )
        plan = restore.plan
        for obj, why in restore.refused:
            if not (obj.size == 0 and obj.path.endswith("/")):
                refusal = UnsafeKeyError(f"refusing key {obj.path!r}: {why}")
                unsafe.append((obj.path, str(refusal)))
        objects = {op.path: op.remote for op in plan.transfers if isinstance(op, Download | Adopt)}
    if walk_excluded:
        # The walk read no .ks3ignore; the ones the planner could not read are reported here.
        scan.problems.extend(
            ScanProblem(path, f"cannot use ignore file: {reason}", "ignore-file")
            for path, reason in scan.filters.unreadable_ignore_files()
        )
    problems = [(p.path, p.reason) for p in scan.problems]
    deletes, withheld = withhold_deletes_under(plan.deletes, [path for path, _ in problems])
    # Refused keys are reported once, as failures, not again as the planner's "skipping" warnings.
    refused_reprs = {repr(path) for path, _ in unsafe}
    warnings = [w for w in plan.warnings if not any(r in w for r in refused_reprs)]
    if withheld:
        warnings.append(f"{withheld} deletes withheld: they lie under paths the scan could not read")
    if direction is Direction.UPLOAD:
        warnings.extend(
            f"{area} in the source folder is not uploaded: the target reserves it for versions"
            for area in opts.reserved
            if os.path.lexists(local_root / area.rstrip("/"))
        )
    return Planned(
        plan=plan,
        deletes=deletes,
        objects=objects,
        unsafe=tuple(unsafe),
        warnings=tuple(warnings),
        problems=tuple(problems),
        unsynced=tuple((p.path, p.reason) for p in scan.problems if p.kind in FAILING_PROBLEM_KINDS),
    )


@contextlib.contextmanager
def _closing(records: Iterator[SyncedEntry]) -> Iterator[Iterator[SyncedEntry]]:
    """Close a journal stream when the block ends, so its read connection is given back even when the
    march stops early (a generator's ``close``; plain iterators have nothing to give back)."""
    try:
        yield records
    finally:
        if isinstance(records, Generator):
            records.close()
