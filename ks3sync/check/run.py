"""``run_check``: a local folder and a Store compared without transferring anything.

The scan (mirror's, with the same exclusion rules and ks3sync's own files left out), the listing (on
its producer thread, a few pages ahead) and the journal's records (optional: they prove the content of
encrypted objects without a request) are marched in path order by ``plan.march``. One-sided paths are
missing or extra at once; a path on both sides goes through ``check.compare.triage``, and what needs
I/O (a HEAD, hashing the file, a download) runs on ``jobs`` threads.

Verdicts come out in path order through a bounded window (``WINDOW_PER_JOB`` per job): the march waits
when the oldest examination is still running, so at most that many entries are in flight, and only the
verdicts that are not "equal" are kept. Memory follows the differences, not the files.

The target's versions area (``.versions/``, and a configured one) is ks3sync's own, as for ``mirror``:
the listing skips it and the walk leaves a local folder of that name out, so neither is compared.

Scan problems: an unreadable file or folder, or a name that cannot be a key, is an error entry (as it
makes ``mirror`` fail); objects under any path the scan could not use are errors too ("not compared"),
never "missing" or "extra". Other problems (special files, unfollowed symlinks) are notes.

Imports the scan and listing streams mirror uses (``scan.local``, ``store.prefetch``) and the planner's
march; not the engine, the journal, the protocol client or the CLI.
"""

from __future__ import annotations

import functools
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ks3sync.check.compare import CompareOptions, Method, Status, Verdict, triage
from ks3sync.check.examine import Examination, examine
from ks3sync.gctune import fewer_collections
from ks3sync.model import Exclusion, SyncedEntry
from ks3sync.plan.march import march
from ks3sync.scan.local import FAILING_PROBLEM_KINDS, LocalScan, ScanOptions
from ks3sync.store.base import Store
from ks3sync.store.prefetch import PrefetchedListing
from ks3sync.versions.hide import reserved_prefixes, without_areas

if TYPE_CHECKING:
    from ks3sync.config import VersionsConfig

WINDOW_PER_JOB = 4


@dataclass(frozen=True, slots=True)
class CheckOptions:
    compare: CompareOptions = field(default_factory=CompareOptions)
    jobs: int = 8
    excludes: tuple[str, ...] = ()
    exclude_from: tuple[Path, ...] = ()
    follow_symlinks: bool = False
    state_paths: tuple[Path, ...] = ()  # ks3sync's own files: never compared, even inside the folder
    versions: VersionsConfig | None = None  # a configured versions area (the default one is always reserved)


@dataclass(slots=True)
class CheckResult:
    counts: Counter[Status] = field(default_factory=Counter)
    verified_by: Counter[Method] = field(default_factory=Counter)  # equal entries, by what proved them
    entries: list[Verdict] = field(default_factory=list)  # every verdict but "equal", in path order
    notes: list[tuple[str, str]] = field(default_factory=list)  # skipped local entries that are not errors
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Equal as far as could be checked: nothing differs, is missing or extra, nothing failed
        ("unverified" entries have equal sizes and are reported, as rclone does with missing hashes)."""
        return not any(self.counts[s] for s in (Status.DIFFER, Status.MISSING, Status.EXTRA, Status.ERROR))

    def add(self, verdict: Verdict) -> None:
        self.counts[verdict.status] += 1
        if verdict.status is Status.EQUAL:
            self.verified_by[verdict.compared[-1] if verdict.compared else Method.SIZE] += 1
        else:
            self.entries.append(verdict)


def run_check(
    store: Store,
    local_root: Path,
    opts: CheckOptions,
    *,
    records: Iterable[SyncedEntry] = (),
    on_verdict: Callable[[Verdict], None] | None = None,
) -> CheckResult:
    """Compare ``local_root`` with ``store``; ``on_verdict`` sees every verdict (equal ones too) in path
    order as it is given. ``records``: the journal's records of this pair, in path order."""
    started = time.monotonic()
    result = CheckResult()
    if opts.compare.key is not None:
        # Workers decrypt: the cipher package is imported here, once, not by several threads at a time
        # (a package imported by two threads at once can be seen half initialised by one of them).
        import ks3sync.crypto.decrypt  # noqa: F401
    # mirror's scan: the same rules, the same versions areas left out
    reserved = reserved_prefixes(opts.versions.prefix if opts.versions is not None else None)
    scan_opts = ScanOptions(
        excludes=opts.excludes,
        exclude_from=opts.exclude_from,
        follow_symlinks=opts.follow_symlinks,
        state_paths=opts.state_paths,
        reserved=reserved,
    )
    scan = LocalScan(local_root, scan_opts, key_prefix=store.prefix)
    problems = _Problems(scan.problems)
    compare = replace(opts.compare, key_prefix=store.prefix)  # a tag binds the object's full key
    root = str(local_root)  # joined as strings by the workers (see check.local)
    one_sided = {True: Status.MISSING, False: Status.EXTRA}  # keyed by "only in SRC"
    window: deque[Future[Verdict] | Verdict] = deque()
    limit = max(16, opts.jobs * WINDOW_PER_JOB)

    def give(item: Future[Verdict] | Verdict) -> None:
        window.append(item)
        while len(window) > limit:
            _deliver(window.popleft(), result, on_verdict)

    pool = ThreadPoolExecutor(max_workers=opts.jobs, thread_name_prefix="ks3sync-check")
    try:
        listed = functools.partial(without_areas, store, scan_opts.reserved)
        with fewer_collections(), PrefetchedListing(listed, None) as listing:
            for path, local, remote, record in march(scan, listing, records):
                for verdict in problems.new_errors():
                    give(verdict)
                if local is None and remote is None:
                    continue  # a journal record of a path on neither side
                if remote is None:
                    give(Verdict(path, one_sided[compare.local_is_source]))
                elif local is None:
                    if scan.filters.exclusion(path) is not Exclusion.INCLUDED:
                        continue  # outside the sync, as for mirror
                    reason = problems.covering(path)
                    if reason is not None:
                        if not problems.reported(path):
                            give(Verdict(path, Status.ERROR, f"not compared: {reason}"))
                    else:
                        give(Verdict(path, one_sided[not compare.local_is_source]))
                else:
                    step = triage(local, remote, record, compare)
                    if isinstance(step, Verdict):
                        give(step)
                    else:
                        job = Examination(local, remote, record, step)
                        give(pool.submit(examine, store, root, job, compare))
        for verdict in problems.new_errors():
            give(verdict)
        while window:
            _deliver(window.popleft(), result, on_verdict)
    finally:
        # A fatal error (credentials, bucket) ends the check: queued examinations are not started.
        pool.shutdown(wait=True, cancel_futures=True)
    result.notes = problems.notes + [
        (area, "the target reserves it for versions: not compared")
        for area in scan_opts.reserved
        if os.path.lexists(local_root / area.rstrip("/"))
    ]
    result.seconds = time.monotonic() - started
    return result


def _deliver(
    item: Future[Verdict] | Verdict, result: CheckResult, on_verdict: Callable[[Verdict], None] | None
) -> None:
    verdict = item.result() if isinstance(item, Future) else item
    result.add(verdict)
    if on_verdict is not None:
        on_verdict(verdict)


class _Problems:
    """The scan's problems as they appear (the scan appends to ``found`` while it is marched): errors
    to report, notes, and the paths below which objects cannot be compared."""

    def __init__(self, found: list[Any]) -> None:
        self._found = found
        self._seen = 0
        self._paths: dict[str, str] = {}
        self._errors: set[str] = set()
        self.notes: list[tuple[str, str]] = []

    def new_errors(self) -> list[Verdict]:
        errors: list[Verdict] = []
        while self._seen < len(self._found):
            problem = self._found[self._seen]
            self._seen += 1
            self._paths.setdefault(problem.path.rstrip("/"), problem.reason)
            if problem.kind in FAILING_PROBLEM_KINDS:
                self._errors.add(problem.path)
                errors.append(Verdict(problem.path, Status.ERROR, problem.reason))
            else:
                self.notes.append((problem.path, problem.reason))
        return errors

    def reported(self, path: str) -> bool:
        """True when ``path`` itself is already an error entry (an unreadable file with an object)."""
        return path in self._errors

    def covering(self, path: str) -> str | None:
        """The reason of a problem at ``path`` or at a folder above it, if any."""
        if not self._paths:
            return None
        if "" in self._paths:
            return self._paths[""]
        folder = path
        while folder:
            reason = self._paths.get(folder)
            if reason is not None:
                return reason
            folder = folder.rpartition("/")[0]
        return None
