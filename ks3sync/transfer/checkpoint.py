"""An in-memory ``model.Checkpoint``: the executor's tests and ``--dry-run`` use it; the journal provides
the durable one. Also a view that records what it was told, for assertions.

Imports only ks3sync.model.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace

from ks3sync.model import PartRecord, SyncedEntry, UploadRecord


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
                    self.uploads[path] = replace(record, parts=tuple(sorted(parts.values(),
                                                                             key=lambda p: p.part_number)))
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

    def checkpoint(self, sync_id: int) -> MemoryCheckpoint:
        return self.cp

    def uploads(self, sync_id: int | None = None) -> list[UploadRecord]:
        return self.cp.known_uploads()

    def record_pass(self, sync_id: int, summary: object) -> None:
        self.passes.append(summary)
