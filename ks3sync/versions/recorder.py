"""One pass's versions (docs/versions.md §3): the ``Keeper`` that copies what the pass replaces to
``<versions prefix><stamp>/<path>``, notes what the pass then confirmed (through a checkpoint that
watches the journal's ``synced``/``removed``), and writes the pass's manifest last.

``VersionPass`` is given to the executor as its keeper; its ``watch(checkpoint)`` is the checkpoint the
executor writes through; ``finish()`` writes the manifest if the pass kept at least one version.

Imports the store protocol, model, transfer bodies and sibling modules; not the journal, not the CLI.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ks3sync.model import Checkpoint, PartRecord, SyncedEntry, UploadRecord
from ks3sync.store.base import Store, WriteOptions
from ks3sync.transfer.bodies import MemoryBody
from ks3sync.transfer.keep import Previous
from ks3sync.versions.layout import Layout
from ks3sync.versions.manifest import After, Before, Entry, Manifest, encode
from ks3sync.versions.stamp import format_stamp

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PassOutcome:
    """What a pass left in the versions area."""

    stamp: str
    versions: int  # objects kept
    entries: int  # manifest entries (0: no manifest written)
    manifest: str | None  # the manifest's store path, when one was written


class VersionPass:
    """The keeper of one pass (thread-safe: the executor's workers call it side by side)."""

    def __init__(self, store: Store, layout: Layout, stamp: str, *, clock: Callable[[], int]) -> None:
        self.store = store
        self.layout = layout
        self.stamp = stamp
        self._clock = clock
        self._lock = threading.Lock()
        self._before: dict[str, Before | None] = {}  # paths this pass is writing or deleting
        self._after: dict[str, object] = {}  # path -> After, or None when deleted
        self._kept = 0

    # ------------------------------------------------------------------ the executor's Keeper

    def keep(self, store: Store, previous: Previous, record: SyncedEntry | None) -> None:
        result = store.copy(previous.path, self.layout.version_path(self.stamp, previous.path))
        known = record is not None and (record.remote_etag, record.remote_size) == (
            previous.etag,
            previous.size,
        )
        modified = previous.modified_ns or (record.synced_at_ns if known and record is not None else 0)
        before = Before(
            etag=result.etag,  # the version as stored (a multipart original's copy has a plain MD5 ETag)
            size=previous.size,
            modified_ns=modified or None,
            mtime_ns=record.identity.mtime_ns if known and record is not None else None,
            encrypted=record.encrypted if known and record is not None else None,
        )
        with self._lock:
            self._before[previous.path] = before
            self._kept += 1

    def creating(self, path: str) -> None:
        with self._lock:
            self._before.setdefault(path, None)

    # ------------------------------------------------------------------ what the pass confirmed

    def watch(self, checkpoint: Checkpoint) -> Checkpoint:
        return _Watching(checkpoint, self)

    def _confirmed(self, path: str, after: After | None) -> None:
        with self._lock:
            if path in self._before:
                self._after[path] = after

    # ------------------------------------------------------------------ the manifest

    @property
    def kept(self) -> int:
        with self._lock:
            return self._kept

    def manifest(self) -> Manifest:
        with self._lock:
            entries = []
            for path, after in self._after.items():
                before = self._before[path]
                if before is None and after is None:
                    continue  # created and deleted within the pass: nothing before, nothing after
                assert after is None or isinstance(after, After)
                entries.append(Entry(path, before, after))
        return Manifest(self.stamp, format_stamp(self._clock()), tuple(entries))

    def finish(self) -> PassOutcome:
        """Write the manifest, last, if the pass kept any version (raises the store's errors)."""
        if not self.kept:
            return PassOutcome(self.stamp, 0, 0, None)
        manifest = self.manifest()
        try:
            data = encode(manifest)
        except ValueError as exc:
            # Too large to index: the versions are still found from the listing (docs/versions.md §4).
            log.warning("pass %s: no manifest written: %s", self.stamp, exc)
            return PassOutcome(self.stamp, self.kept, 0, None)
        path = self.layout.manifest_path(self.stamp)
        self.store.put(path, MemoryBody(data), WriteOptions(content_type="application/json"))
        return PassOutcome(self.stamp, self.kept, len(manifest.entries), path)


class _Watching:
    """A checkpoint that forwards everything and tells the pass what was confirmed."""

    def __init__(self, inner: Checkpoint, vpass: VersionPass) -> None:
        self._inner = inner
        self._pass = vpass

    def upload_for(self, path: str) -> UploadRecord | None:
        return self._inner.upload_for(path)

    def upload_started(self, record: UploadRecord) -> None:
        self._inner.upload_started(record)

    def part_done(self, upload_id: str, part: PartRecord) -> None:
        self._inner.part_done(upload_id, part)

    def upload_finished(self, upload_id: str) -> None:
        self._inner.upload_finished(upload_id)

    def synced(self, entry: SyncedEntry) -> None:
        self._inner.synced(entry)
        self._pass._confirmed(entry.path, After(entry.remote_etag, entry.remote_size))

    def removed(self, paths: Sequence[str]) -> None:
        self._inner.removed(paths)
        for path in paths:
            self._pass._confirmed(path, None)
