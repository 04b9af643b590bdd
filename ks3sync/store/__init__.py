"""The Store layer: one bucket + prefix as the engine sees it (``base.Store``), the KS3 adapter
(``KS3Store``) and the in-memory fake (``MemoryStore``); both imported on first use, so importing the
protocol does not pull in the HTTP client or the fake.
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

if TYPE_CHECKING:
    from ks3sync.store.ks3store import KS3Store
    from ks3sync.store.memory import MemoryStore

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
    if name == "MemoryStore":
        from ks3sync.store.memory import MemoryStore

        return MemoryStore
    raise AttributeError(name)
