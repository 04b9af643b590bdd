"""The local side of a pass: the walk of a sync root as a stream of entries, with its problems collected
on the side, as the engine marches it against the listing and the journal.

``LocalScan`` builds the filters (``--exclude``, ``--exclude-from``, ``.ks3ignore`` files, ks3sync's own
state files, the target's versions area), walks in this process or, for a tree known to be large, in a child (``scan.worker``), and
yields ``LocalEntry`` values in path order. It leaves out ks3sync's own temp files, checks the caller's
stop event every few thousand entries (``errors.StopRequested``), and maps the walk's errors onto the
application's tree: a missing root or a bad exclude rule is a ``UsageError``, a failed worker a
``FatalError``. ``scan_local`` is the same scan as two lists (``ks3sync repair``).

Imports the scanner's own modules, the model and the errors; not the store, the journal, the planner or
the engine.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

from ks3sync.errors import FatalError, StopRequested, UsageError
from ks3sync.model import LocalEntry
from ks3sync.scan.filters import TMP_PREFIX, Filters, FiltersError
from ks3sync.scan.walk import ScanProblem, ScanRootError, ScanWorkerError, scan_tree

# Scan problems that leave user data unsynced (unreadable files or folders, names that cannot be keys):
# the pass is then not "all in sync". Special files, unfollowed symlinks, vanished entries are not data.
FAILING_PROBLEM_KINDS = frozenset({"unreadable", "name", "too-long"})


@dataclass(frozen=True, slots=True)
class ScanOptions:
    """What decides which local files a sync covers."""

    excludes: tuple[str, ...] = ()
    exclude_from: tuple[Path, ...] = ()
    follow_symlinks: bool = False
    state_paths: tuple[Path, ...] = ()  # ks3sync's own files, never synced even inside the folder
    reserved: tuple[
        str, ...
    ] = ()  # the target's sub-prefixes for ks3sync's own objects (versions), never walked


def scan_local(
    root: Path, opts: ScanOptions, *, key_prefix: str = ""
) -> tuple[list[LocalEntry], list[tuple[str, str]]]:
    """The scan as two lists: entries, and (path, reason) of what was skipped."""
    scan = LocalScan(root, opts, key_prefix=key_prefix)
    entries = list(scan)
    return entries, [(p.path, p.reason) for p in scan.problems]


class LocalScan:
    """The scan as a stream of entries (in path order) for the march; problems are collected on the
    side. ks3sync's own temp files and state files (the journal, when it lives inside the folder) are
    neither synced nor reported. A missing root or a bad exclude rule is a usage error (the filters are
    built here, the root is checked when the stream starts)."""

    STOP_CHECK_EVERY = 4096  # entries between looks at the stop event

    def __init__(
        self,
        root: Path,
        opts: ScanOptions,
        *,
        key_prefix: str,
        stop: threading.Event | None = None,
        in_worker: bool = False,
        rules: bool = True,
    ) -> None:
        try:
            # Built even when a worker walks: a bad rule is the caller's usage error, raised here.
            self.filters = Filters.build(
                root,
                excludes=opts.excludes,
                exclude_from=opts.exclude_from,
                state_paths=opts.state_paths,
                reserved=opts.reserved,
            )
        except FiltersError as exc:
            raise UsageError(str(exc)) from exc
        self._rules = rules  # False: the walk leaves out only ks3sync's own files
        self._root = root
        self._opts = opts
        self._key_prefix = key_prefix
        self._stop = stop
        self._in_worker = in_worker and bool(
            sys.executable
        )  # an embedding without an interpreter path walks here
        self.problems: list[ScanProblem] = []

    def _items(self) -> Iterator[LocalEntry | ScanProblem]:
        if not self._in_worker:
            walk_filters = self.filters if self._rules else self.filters.without_rules()
            return scan_tree(
                self._root,
                walk_filters,
                follow_symlinks=self._opts.follow_symlinks,
                key_prefix=self._key_prefix,
            )
        from ks3sync.scan.worker import scan_tree_in_worker

        return scan_tree_in_worker(
            self._root,
            excludes=self._opts.excludes,
            exclude_from=self._opts.exclude_from,
            state_paths=self._opts.state_paths,
            reserved=self._opts.reserved,
            follow_symlinks=self._opts.follow_symlinks,
            key_prefix=self._key_prefix,
            rules=self._rules,
        )

    def __iter__(self) -> Iterator[LocalEntry]:
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
                            raise StopRequested
                if not item.path.rsplit("/", 1)[-1].startswith(TMP_PREFIX):
                    yield item
        except ScanRootError as exc:
            raise UsageError(str(exc)) from exc
        except ScanWorkerError as exc:
            raise FatalError(f"{self._root}: {exc}; nothing was transferred or deleted") from exc
        finally:
            if isinstance(items, Generator):
                items.close()  # a march that stops early stops the walk (and a worker) with it
