"""The journal: ks3sync's state in one SQLite file (schema in docs/journal.md).

Public surface: :class:`Journal` (open, syncs, synced entries, the change queue, status),
:class:`JournalCheckpoint` (the durable ``model.Checkpoint``), the queue's value types and
:class:`JournalError` (:class:`EmptyJournalError`: a read-only open of a journal not created yet).
Built on SQLAlchemy Core (``schema.py`` is the schema's one definition; Alembic only to migrate an older
file). Must not import the store, the transfer engine, the planner, the CLI or httpx.
"""

from typing import TYPE_CHECKING, Any

from ks3sync.journal.checkpoint import JournalCheckpoint
from ks3sync.journal.errors import EmptyJournalError, JournalError, UnknownUploadError
from ks3sync.journal.journal import Journal
from ks3sync.journal.version import SCHEMA_VERSION

if TYPE_CHECKING:
    from ks3sync.journal.types import (
        Change,
        ChangeKind,
        ErrorRecord,
        HealthRecord,
        QueuedChange,
        ServiceRecord,
        SyncRecord,
        SyncStats,
        VerifyState,
    )

_TYPES = frozenset(
    {
        "Change",
        "ChangeKind",
        "ErrorRecord",
        "HealthRecord",
        "QueuedChange",
        "ServiceRecord",
        "SyncRecord",
        "SyncStats",
        "VerifyState",
    }
)


def __getattr__(name: str) -> Any:
    # The queue's and status's types load on first use (the service, `status`), not with every `mirror`.
    if name in _TYPES:
        from ks3sync.journal import types

        return getattr(types, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "SCHEMA_VERSION",
    "Change",
    "ChangeKind",
    "EmptyJournalError",
    "ErrorRecord",
    "HealthRecord",
    "Journal",
    "JournalCheckpoint",
    "JournalError",
    "QueuedChange",
    "ServiceRecord",
    "SyncRecord",
    "SyncStats",
    "UnknownUploadError",
    "VerifyState",
]
