"""Invariant 5 at start-up: multipart uploads under the sync's prefix that the journal does not know and
that are older than a grace period are aborted (a kill before the journal recorded the upload id, or
another tool's leftovers); uploads the journal knows for paths that are no longer being uploaded are
aborted and forgotten.

Must not import: ks3sync.ks3, the journal, the CLI.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from ks3sync.errors import RemoteNotFound, UploadGone
from ks3sync.model import Checkpoint, UploadRecord
from ks3sync.store.base import PendingUpload, Store

log = logging.getLogger(__name__)

DEFAULT_GRACE_NS = 24 * 3600 * 1_000_000_000


def list_uploads_ahead(store: Store) -> Future[list[PendingUpload]]:
    """``store.list_uploads()`` sent now on a thread of its own, so that its round trip overlaps the
    pass's planning (its answer does not change what the plan decides). Uploads begun after it was sent
    are younger than any grace period, so the earlier answer aborts nothing it would not have."""
    pool = ThreadPoolExecutor(1, thread_name_prefix="ks3sync-uploads")
    listed = pool.submit(store.list_uploads)
    pool.shutdown(wait=False)  # its one thread ends with the answer
    return listed


def abort_stale_uploads(
    store: Store,
    checkpoint: Checkpoint,
    known: Sequence[UploadRecord],
    *,
    still_wanted: Collection[str],
    now_ns: int,
    grace_ns: int = DEFAULT_GRACE_NS,
    also_known: Collection[str] = (),
    listed: Future[list[PendingUpload]] | None = None,
) -> list[str]:
    """Abort what nobody will finish; returns the keys whose uploads were aborted. ``known`` are this
    sync's recorded uploads; ``also_known`` upload ids that other syncs of the same journal own;
    ``listed`` the bucket's pending uploads if already asked for (``list_uploads_ahead``)."""
    aborted: list[str] = []
    known_ids = {record.upload_id for record in known} | set(also_known)
    for record in known:
        if record.path in still_wanted:
            continue  # the upload task resumes it (or aborts it if the file changed)
        _abort(store, record.path, record.upload_id)
        checkpoint.upload_finished(record.upload_id)
        aborted.append(record.key)
    for pending in listed.result() if listed is not None else store.list_uploads():
        if pending.upload_id in known_ids or now_ns - pending.initiated_ns < grace_ns:
            continue
        _abort(store, pending.path, pending.upload_id)
        aborted.append(pending.key)
    if aborted:
        log.info("aborted %d stale multipart uploads", len(aborted))
    return aborted


def _abort(store: Store, path: str, upload_id: str) -> None:
    try:
        store.abort_upload(path, upload_id)
    except (UploadGone, RemoteNotFound):
        log.debug("upload %s of %s was already gone", upload_id, path)
