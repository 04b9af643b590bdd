"""An in-memory ``model.Checkpoint``: the executor's tests and ``--dry-run`` use it; the journal provides
the durable one. Also a view that records what it was told, for assertions.

Also ``GuardedCheckpoint``, which gives any Checkpoint's failures one meaning for the executor.

Imports only ks3sync.model and ks3sync.errors.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Any

from ks3sync.errors import JournalUnavailable, Ks3SyncError
from ks3sync.model import Checkpoint, PartRecord, RegisteredSync, SyncedEntry, UploadRecord


class MemoryCheckpoint:
    def __init__(self, synced: dict[str, SyncedEntry] | None = None) -> None:
        self._lock = threading.Lock()
        self.uploads: dict[str, UploadRecord] = {}  # by path
        self.synced_entries: dict[str, SyncedEntry] = dict(synced or {})
        self.events: list[tuple[str, str]] = []

    def upload_for(self, path: str) -> UploadRecord | None:
        with self._lock:
            return self.uploads.get(path)

    def upload_started(self, record: UploadRecord) -> None:
        with self._lock:
            self.uploads[record.path] = record
            self.events.append(("upload_started", record.path))

    def part_done(self, upload_id: str, part: PartRecord) -> None:
        with self._lock:
            for path, record in self.uploads.items():
                if record.upload_id == upload_id:
                    parts = {p.part_number: p for p in record.parts}
                    parts[part.part_number] = part
                    self.uploads[path] = replace(
                        record, parts=tuple(sorted(parts.values(), key=lambda p: p.part_number))
                    )
                    self.events.append(("part_done", f"{path}#{part.part_number}"))
                    return
            raise KeyError(f"unknown upload {upload_id}")

    def upload_finished(self, upload_id: str) -> None:
        with self._lock:
            for path, record in list(self.uploads.items()):
                if record.upload_id == upload_id:
                    del self.uploads[path]
                    self.events.append(("upload_finished", path))

    def synced(self, entry: SyncedEntry) -> None:
        with self._lock:
            self.synced_entries[entry.path] = entry
            self.events.append(("synced", entry.path))

    def removed(self, paths: Sequence[str]) -> None:
        with self._lock:
            for path in paths:
                self.synced_entries.pop(path, None)
                self.events.append(("removed", path))

    def known_uploads(self) -> list[UploadRecord]:
        with self._lock:
            return list(self.uploads.values())


class MemoryJournal:
    """Just enough of ``ks3sync.journal.Journal`` for ``run_mirror`` against a MemoryStore (fast tests,
    ``--dry-run`` without a state database): one sync, its checkpoint, its pass records."""

    def __init__(self) -> None:
        self.cp = MemoryCheckpoint()
        self.passes: list[object] = []

    def synced_entries(self, sync_id: int) -> dict[str, SyncedEntry]:
        with self.cp._lock:
            return dict(self.cp.synced_entries)

    def iter_synced_entries(self, sync_id: int) -> Iterator[SyncedEntry]:
        """The records in path order (a snapshot taken when iteration starts), like the journal's."""
        with self.cp._lock:
            snapshot = sorted(self.cp.synced_entries.values(), key=lambda entry: entry.path)
        yield from snapshot

    def synced_count(self, sync_id: int, *, at_most: int) -> int:
        with self.cp._lock:
            return min(len(self.cp.synced_entries), at_most)

    def synced_for(self, sync_id: int, paths: Iterable[str]) -> dict[str, SyncedEntry]:
        with self.cp._lock:
            found = ((path, self.cp.synced_entries.get(path)) for path in paths)
            return {path: entry for path, entry in found if entry is not None}

    def checkpoint(self, sync_id: int) -> MemoryCheckpoint:
        return self.cp

    def uploads(self, sync_id: int | None = None) -> list[UploadRecord]:
        return self.cp.known_uploads()

    def syncs(self) -> list[RegisteredSync]:
        return []  # one sync, no other target's uploads to spare

    def record_pass(self, sync_id: int, summary: object) -> None:
        self.passes.append(summary)


class GuardedCheckpoint:
    """The executor's view of the caller's Checkpoint: any error a method raises (an SQLite error, the
    journal's own exception class, an OSError from a full disk) becomes ``JournalUnavailable``, which
    stops the run with one line. This module cannot import the journal, and must not guess its error
    classes by name; everything a Checkpoint raises means the same thing here: progress cannot be
    recorded, so no further transfer may start (invariant 1 would have nothing to stand on)."""

    __slots__ = ("inner",)

    def __init__(self, inner: Checkpoint) -> None:
        self.inner = inner

    def _call(self, name: str, *args: Any) -> Any:
        try:
            return getattr(self.inner, name)(*args)
        except Ks3SyncError:
            raise
        except Exception as exc:
            detail = str(exc).strip().splitlines()
            raise JournalUnavailable(
                f"the journal could not record progress ({name}): {detail[0] if detail else type(exc).__name__}"
            ) from exc

    def upload_for(self, path: str) -> UploadRecord | None:
        record: UploadRecord | None = self._call("upload_for", path)
        return record

    def upload_started(self, record: UploadRecord) -> None:
        self._call("upload_started", record)

    def part_done(self, upload_id: str, part: PartRecord) -> None:
        self._call("part_done", upload_id, part)

    def upload_finished(self, upload_id: str) -> None:
        self._call("upload_finished", upload_id)

    def synced(self, entry: SyncedEntry) -> None:
        self._call("synced", entry)

    def removed(self, paths: Sequence[str]) -> None:
        self._call("removed", paths)
