"""The Store layer: one bucket + prefix as the engine sees it (``base.Store``), the KS3 adapter
(``KS3Store``, imported lazily: it pulls in the protocol client) and the in-memory fake (``MemoryStore``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ks3sync.store.base import (
    Body,
    ObjectMeta,
    PartResult,
    PendingUpload,
    Store,
    WriteOptions,
    WriteResult,
)
from ks3sync.store.memory import MemoryStore

if TYPE_CHECKING:
    from ks3sync.store.ks3store import KS3Store

__all__ = [
    "Body",
    "KS3Store",
    "MemoryStore",
    "ObjectMeta",
    "PartResult",
    "PendingUpload",
    "Store",
    "WriteOptions",
    "WriteResult",
]


def __getattr__(name: str) -> Any:
    if name == "KS3Store":
        from ks3sync.store.ks3store import KS3Store

        return KS3Store
    raise AttributeError(name)
