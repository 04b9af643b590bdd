"""Values the journal hands out and takes in (besides ``ks3sync.model``'s): the change queue's items
and the status snapshot. Frozen dataclasses; no I/O."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ks3sync.model import PassSummary


class ChangeKind(enum.Enum):
    UPSERT = "upsert"  # the path was created or modified: make the remote match the file
    DELETE = "delete"  # the path is gone locally
    MOVE = "move"  # ``src_path`` was renamed to ``path``: copy server-side, then delete ``src_path``


@dataclass(frozen=True, slots=True)
class Change:
    """An observed change, as the watcher / rescan reports it. ``due_ns`` is when it may be acted on
    (``observed_ns`` + debounce)."""

    path: str
    kind: ChangeKind
    src_path: str | None = None
    observed_ns: int = 0
    due_ns: int = 0

    def __post_init__(self) -> None:
        if (self.kind is ChangeKind.MOVE) != (self.src_path is not None):
            raise ValueError(
                f"{self.kind.value} change for {self.path!r}: src_path is required for a move "
                "and only for a move"
            )


@dataclass(frozen=True, slots=True)
class QueuedChange:
    """A change as it sits in the queue: coalesced per path, with its retry state.

    A MOVE owns the deletion of its ``src_path`` (copy first, delete the source after the copy
    succeeded); no separate DELETE row is queued for it."""

    id: int
    path: str
    kind: ChangeKind
    src_path: str | None
    observed_ns: int  # the first observation still folded into this row
    due_ns: int
    attempts: int
    last_error: str | None
    parked: bool
    claimed: bool


@dataclass(frozen=True, slots=True)
class SyncRecord:
    id: int
    name: str
    source: str
    bucket: str
    prefix: str
    options_hash: str


@dataclass(frozen=True, slots=True)
class ErrorRecord:
    path: str | None
    message: str
    at_ns: int


@dataclass(frozen=True, slots=True)
class QueueCounts:
    """The change queue of one sync: what the service publishes every few seconds (cheap to read)."""

    queue_depth: int  # pending, not parked, not in flight
    parked: int
    in_flight: int  # claimed by due() and not yet done/failed


@dataclass(frozen=True, slots=True)
class SyncStats:
    """What ``ks3sync status`` shows for one sync; read without blocking the writer (WAL)."""

    sync_id: int
    name: str
    queue_depth: int  # pending, not parked, not in flight
    parked: int
    in_flight: int  # claimed by due() and not yet done/failed
    next_due_ns: int | None
    entries: int  # paths recorded as synced
    uploads_in_flight: int  # multipart uploads the journal is tracking
    files_done: int
    bytes_done: int
    last_success_ns: int | None
    last_pass: PassSummary | None
    last_errors: tuple[ErrorRecord, ...]


@dataclass(frozen=True, slots=True)
class ServiceRecord:
    """The service of this journal's state directory, as it last wrote (the ``service`` row)."""

    pid: int
    started_ns: int
    heartbeat_ns: int  # refreshed every few seconds while it runs
    stopped_ns: int | None  # set by a clean stop; None while running, or after a crash / kill -9


@dataclass(frozen=True, slots=True)
class HealthRecord:
    """One sync's health as the service last wrote it (the ``health`` row). Failing when
    ``failing_since_ns`` is set; ``last_error`` stays after a recovery (``failing_since_ns`` None)."""

    sync_id: int
    activity: str  # the worker's state: starting, reconciling, watching, polling, unavailable, paused, ...
    reason: str | None
    failing_since_ns: int | None
    last_error: str | None
    last_error_ns: int | None
    updated_ns: int

    def same_as(self, other: HealthRecord | None) -> bool:
        """Equal but for ``updated_ns`` (nothing new to write)."""
        return other is not None and (
            self.sync_id,
            self.activity,
            self.reason,
            self.failing_since_ns,
            self.last_error,
            self.last_error_ns,
        ) == (
            other.sync_id,
            other.activity,
            other.reason,
            other.failing_since_ns,
            other.last_error,
            other.last_error_ns,
        )


@dataclass(frozen=True, slots=True)
class VerifyState:
    """Where one sync's continuous verification stands (the ``verification`` row, schema v4)."""

    sync_id: int
    cursor: str | None  # the last path checked in the round under way; None: the round starts at the first
    round_started_ns: int | None  # None: no round under way
    last_full_ns: int | None  # end of the last completed round: everything was verified by then
    rounds: int  # completed rounds
    checked: int  # objects checked, all rounds
    mismatches: int  # objects found not to match their record, all rounds
    last_mismatch_ns: int | None
    updated_ns: int
