"""Executes operations against a Store: single PUT and resumable multipart uploads, server-side copies,
adoption of matching remote objects, verified downloads, batched deletes; progress subscribers, the
shared bandwidth limiter, and the start-up sweep of stale multipart uploads.

Talks to the journal only through ``model.Checkpoint``. Must not import: ks3sync.ks3, ks3sync.journal,
ks3sync.plan, ks3sync.cli.
"""

from ks3sync.transfer.checkpoint import MemoryCheckpoint
from ks3sync.transfer.context import TransferOptions
from ks3sync.transfer.executor import ExecutionReport, Executor
from ks3sync.transfer.progress import LogProgress, NullProgress, ProgressSubscriber
from ks3sync.transfer.stale import abort_stale_uploads

__all__ = [
    "ExecutionReport",
    "Executor",
    "LogProgress",
    "MemoryCheckpoint",
    "NullProgress",
    "ProgressSubscriber",
    "TransferOptions",
    "abort_stale_uploads",
]
