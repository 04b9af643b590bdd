"""What a pass asks the bucket before it needs the answer: its listing, read a few pages ahead on a
thread (``store.prefetch``), and for an upload the bucket's pending multipart uploads
(``transfer.stale.list_uploads_ahead``), whose answer only step 4 needs.

``ks3sync mirror`` enters a ``RemoteAhead`` before it imports the rest of the engine and opens the
journal, so that those round trips overlap that start-up (SQLAlchemy's import is most of it); a pass
given none starts its own. Neither answer changes what is asked next, so asking early changes no result.

Imports the store's prefetching, the versions area's hiding and the stale-upload listing; kept light on
purpose (nothing of the planner, the executor or a journal), as it is imported before them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future
from typing import TYPE_CHECKING

from ks3sync.gctune import fewer_collections
from ks3sync.model import Direction, RemoteEntry
from ks3sync.store.base import PendingUpload, Store
from ks3sync.store.prefetch import PrefetchedListing
from ks3sync.transfer.stale import list_uploads_ahead
from ks3sync.versions.hide import without_areas

if TYPE_CHECKING:
    from ks3sync.engine.types import MirrorOptions


class RemoteAhead:
    """A pass's questions to the bucket, sent when the block is entered. ``listing`` iterates once;
    ``uploads`` is None where the pass will not need them (a restore, a dry run)."""

    def __init__(
        self, store: Store, opts: MirrorOptions, direction: Direction, stop: threading.Event | None
    ) -> None:
        self._store = store
        reserved = opts.reserved
        self.listing = PrefetchedListing(lambda: _listed(store, reserved), stop)
        self._wants_uploads = direction is Direction.UPLOAD and not opts.dry_run
        self.uploads: Future[list[PendingUpload]] | None = None

    def __enter__(self) -> RemoteAhead:
        self.listing.__enter__()
        if self._wants_uploads:
            self.uploads = list_uploads_ahead(self._store)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.listing.__exit__(*exc_info)


def _listed(store: Store, reserved: tuple[str, ...]) -> Iterator[RemoteEntry]:
    """The listing without the target's versions area (docs/versions.md §1), its entries made with the
    march's rarer collections (gctune), since it may start before the march does."""
    with fewer_collections():
        yield from without_areas(store, reserved)
