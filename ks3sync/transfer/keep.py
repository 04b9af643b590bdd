"""Keeping what a write or a delete replaces: the copy-before-change step (invariant 4), one mechanism
for ``backup_prefix`` (one generation at ``<backup_prefix><path>``) and for versions (a per-pass copy at
``<versions prefix><pass>/<path>`` plus a manifest, ``ks3sync.versions.recorder``).

Before an object is overwritten or deleted, the executor calls :func:`keep_before_overwrite` or
:func:`keep_before_delete`; the context's :class:`Keeper` makes a server-side copy, and the change is
sent only after that copy succeeded. A path is kept at most once per pass (``context.Once``): a retried
write must not copy the pass's own new content over the version of what the path held before it, nor
keep it as if it had been there before the pass. A path with no object is not copied; the keeper is
told it is being created.

Must not import: ks3sync.ks3, the journal, the planner, the CLI, ks3sync.versions (which implements
the Keeper protocol structurally).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ks3sync.errors import RemoteNotFound
from ks3sync.model import RemoteEntry, SyncedEntry
from ks3sync.store.base import Store
from ks3sync.transfer.context import TransferContext


@dataclass(frozen=True, slots=True)
class Previous:
    """The object about to be replaced, as the listing or a HEAD showed it (``modified_ns`` 0: unknown)."""

    path: str
    etag: str
    size: int
    modified_ns: int = 0


class Keeper(Protocol):
    def keep(self, store: Store, previous: Previous, record: SyncedEntry | None) -> None:
        """Copy the object at ``previous.path`` away (server-side); returns once KS3 confirmed the copy.
        ``record`` is the journal's record of the path, if the executor has it."""
        ...

    def creating(self, path: str) -> None:
        """``path`` has no object: the write about to be sent creates it."""
        ...


class BackupKeeper:
    """``--backup-prefix``: the object goes to ``<prefix><path>`` (an absolute key), replacing the backup
    an earlier pass left there."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def keep(self, store: Store, previous: Previous, record: SyncedEntry | None) -> None:
        store.copy(previous.path, previous.path, dst_key=self.prefix + previous.path)

    def creating(self, path: str) -> None:
        return None


def keep_before_overwrite(ctx: TransferContext, path: str) -> None:
    """Before a write to ``path``: keep the object there, if any (the pass's listing says, or a HEAD)."""
    keeper = ctx.keeper
    if keeper is None or ctx.kept.done(path):
        return
    previous: Previous | None
    if ctx.remote is not None:
        listed = ctx.remote.get(path)
        previous = None if listed is None else _from_listing(listed)
    else:
        meta = ctx.store.head(path)
        previous = None if meta is None else Previous(path, meta.etag, meta.size, meta.last_modified_ns)
    if previous is not None:
        try:
            keeper.keep(ctx.store, previous, ctx.synced.get(path))
        except RemoteNotFound:
            previous = None  # gone since it was listed: nothing to keep, the write creates it
    if previous is None:
        keeper.creating(path)
    # Either way this pass has decided what the path held before it: a retried write (whose first
    # attempt may have landed) must not keep the pass's own content as that.
    ctx.kept.add(path)


def keep_before_delete(ctx: TransferContext, obj: RemoteEntry) -> bool:
    """Before deleting ``obj``: keep it. False when the object is already gone (the delete is a no-op);
    raises when the copy failed (the object must then not be deleted)."""
    keeper = ctx.keeper
    if keeper is None or ctx.kept.done(obj.path):
        return True
    try:
        keeper.keep(ctx.store, _from_listing(obj), ctx.synced.get(obj.path))
    except RemoteNotFound:
        return False
    ctx.kept.add(obj.path)
    return True


def _from_listing(obj: RemoteEntry) -> Previous:
    return Previous(obj.path, obj.etag, obj.size, obj.last_modified_ns)
