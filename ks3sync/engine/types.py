"""The engine's seams: what a pass takes (``MirrorOptions``, a ``JournalLike`` journal) and what it gives
back (``MirrorResult``, and ``pass_summary``, the journal's record of it).

Imports the model, the config's versions settings, the scanner's options and the transfer options;
nothing that does work.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ks3sync.config import VersionsConfig
from ks3sync.model import Checkpoint, Direction, PassSummary, Plan, RegisteredSync, SyncedEntry, UploadRecord
from ks3sync.scan.local import ScanOptions
from ks3sync.transfer.context import TransferOptions
from ks3sync.transfer.stale import DEFAULT_GRACE_NS


class JournalLike(Protocol):
    """The journal as the engine uses it: streamed and looked-up records, the checkpoint the executor
    records progress through, the sync's multipart uploads, the pass record. ``journal.Journal`` is one;
    ``transfer.checkpoint.MemoryJournal`` another (tests)."""

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

    def syncs(self) -> Sequence[RegisteredSync]:
        """Every sync of the journal: the stale-upload sweep spares other targets' uploads."""
        ...

    def record_pass(self, sync_id: int, summary: PassSummary) -> None: ...


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

    @property
    def scan(self) -> ScanOptions:
        """What decides which local files the pass covers."""
        return ScanOptions(
            excludes=self.excludes,
            exclude_from=self.exclude_from,
            follow_symlinks=self.follow_symlinks,
            state_paths=self.state_paths,
            reserved=self.reserved,
        )


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


def pass_summary(
    result: MirrorResult, direction: Direction, started_ns: int, finished_ns: int
) -> PassSummary:
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
