"""``plan_upload``: local folder -> KS3. A decision table over (local, remote, journal) per path.

Pure: no I/O, no clock; imports only ``ks3sync.model`` and sibling planner modules."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

from ks3sync.model import (
    Adopt,
    Copy,
    DeleteRemote,
    Forget,
    LocalEntry,
    Operation,
    Plan,
    RemoteEntry,
    SyncedEntry,
    Upload,
)
from ks3sync.plan.guard import guard_deletes
from ks3sync.plan.march import index_by_path, march
from ks3sync.plan.options import PlanOptions


def plan_upload(
    local: Iterable[LocalEntry],
    remote: Iterable[RemoteEntry],
    synced: Mapping[str, SyncedEntry],
    opts: PlanOptions,
) -> Plan:
    """What to do so that KS3 holds exactly the local files (deletes only with ``opts.delete``).

    Transfers come out in path order; deletes are separate and guarded. ``Copy`` operations read their
    source objects, which this plan never overwrites and deletes only after the transfers."""
    local_list = list(local)
    remote_list = list(remote)
    transfers: dict[str, Operation] = {}
    deletes: list[Operation] = []
    forgets: list[Operation] = []
    local_only: list[LocalEntry] = []
    skipped = 0

    def decide(path: str, loc: LocalEntry | None, rem: RemoteEntry | None, rec: SyncedEntry | None) -> None:
        nonlocal skipped
        if loc is not None and rem is not None:
            op = _both_sides(loc, rem, rec, opts)
            if op is None:
                skipped += 1
            else:
                transfers[path] = op
        elif loc is not None:
            # Local only: decided after the march, once we know which objects this plan keeps intact
            # (a Copy may only read an object that no transfer of this plan rewrites).
            local_only.append(loc)
        elif rem is not None:
            # Remote only: the object is not in the source. Deleted only when asked (and guarded).
            if opts.delete:
                deletes.append(DeleteRemote(path, rem))
        else:
            # Journal only: the path is gone from both sides; drop the stale record.
            forgets.append(Forget(path))

    remote_by: Mapping[str, RemoteEntry] | None = None
    if _strictly_sorted(local_list) and _strictly_sorted(remote_list):
        # What the scan and the listing deliver: merge the two sorted sides instead of indexing both
        # and sorting the union (100k paths: ~20 MB and half the time less).
        seen_synced = 0
        for path, loc, rem in _merge(local_list, remote_list):
            rec = synced.get(path)
            if rec is not None:
                seen_synced += 1
            decide(path, loc, rem, rec)
        if seen_synced < len(synced):
            on_a_side = {e.path for e in local_list}
            on_a_side.update(e.path for e in remote_list)
            for path in sorted(p for p in synced if p not in on_a_side):
                decide(path, None, None, synced[path])
        source_count, destination_count = len(local_list), len(remote_list)
    else:
        local_by = index_by_path(local_list)
        remote_by = index_by_path(remote_list)
        for path in march(local_by, remote_by, synced):
            decide(path, local_by.get(path), remote_by.get(path), synced.get(path))
        source_count, destination_count = len(local_by), len(remote_by)

    if local_only:  # indexing every object for copy sources is only worth it when something is new
        if remote_by is None:
            remote_by = index_by_path(remote_list)
        sources = _copy_sources(remote_by, synced, rewritten=transfers.keys(), opts=opts)
    for loc in local_only:
        transfers[loc.path] = _local_only(loc, synced.get(loc.path), sources)

    allowed, refused, warnings = guard_deletes(
        deletes, source_count=source_count, destination_count=destination_count, opts=opts
    )
    ordered = tuple(transfers[p] for p in sorted(transfers))
    return Plan(
        transfers=ordered + tuple(forgets),
        deletes=allowed,
        skipped=skipped,
        refused_deletes=refused,
        warnings=warnings,
    )


def _strictly_sorted(entries: Sequence[LocalEntry | RemoteEntry]) -> bool:
    return all(a.path < b.path for a, b in zip(entries, entries[1:], strict=False))  # pairs: one shorter


def _merge(
    local: list[LocalEntry], remote: list[RemoteEntry]
) -> Iterator[tuple[str, LocalEntry | None, RemoteEntry | None]]:
    """(path, local, remote) for every path of two strictly sorted lists, in order."""
    i = j = 0
    while i < len(local) and j < len(remote):
        loc, rem = local[i], remote[j]
        if loc.path == rem.path:
            yield loc.path, loc, rem
            i += 1
            j += 1
        elif loc.path < rem.path:
            yield loc.path, loc, None
            i += 1
        else:
            yield rem.path, None, rem
            j += 1
    for loc in local[i:]:
        yield loc.path, loc, None
    for rem in remote[j:]:
        yield rem.path, None, rem


def _both_sides(
    loc: LocalEntry, rem: RemoteEntry, rec: SyncedEntry | None, opts: PlanOptions
) -> Operation | None:
    """The path exists locally and remotely. ``None`` means in sync."""
    path = loc.path
    if rec is not None and (rec.remote_size, rec.remote_etag) == (rem.size, rem.etag):
        # The object is still the one we wrote; the question is whether the local file moved on.
        if rec.encrypted != opts.encrypt:
            # Encryption switched on or off for this sync: the stored form is wrong.
            return Upload(path, loc, "encryption-changed")
        if rec.identity == loc.identity:
            if not opts.checksum:
                # Same size, mtime, inode and ctime as when confirmed: in sync (restic's rule).
                return None
            if loc.md5 is None:
                # --checksum, but the scan did not hash: Adopt re-hashes and uploads on mismatch.
                return Adopt(path, loc, rem)
            # --checksum with a known hash: content decides, identity is not trusted.
            return None if loc.md5 == rec.md5 else Upload(path, loc, "checksum-differs")
        if loc.md5 is not None and loc.md5 == rec.md5:
            # Touched (mtime/ctime/inode changed) but the content is proven the same: just re-record.
            return Adopt(path, loc, rem)
        # The file changed since it was confirmed.
        return Upload(path, loc, "changed")

    # No record, or the object was changed behind our back: never re-upload blindly (invariant 8).
    plain_etag = not rem.is_multipart_etag and not opts.encrypt
    if loc.md5 is not None and plain_etag:
        # A plain ETag is the object's MD5: compare directly.
        return Adopt(path, loc, rem) if loc.md5 == rem.etag else Upload(path, loc, "checksum-differs")
    if rem.size == loc.size or opts.encrypt:
        # Sizes match (or the object is ciphertext, whose size the planner does not model): let Adopt
        # hash the file and compare with the ETag / ks3sync's metadata, uploading only on mismatch.
        return Adopt(path, loc, rem)
    # Different sizes: the object certainly differs.
    return Upload(path, loc, "remote-differs" if rec is not None else "size-differs")


_ContentKey = tuple[int, str]  # (size, md5)
_IdentityKey = tuple[int, int, int]  # (size, mtime_ns, inode): a rename keeps these, changes ctime


class _CopySources:
    """Objects that stay intact for the whole pass and whose content is known, by two keys."""

    def __init__(self) -> None:
        self.by_content: dict[_ContentKey, tuple[str, str]] = {}  # -> (path, md5)
        self.by_identity: dict[_IdentityKey, tuple[str, str]] = {}


def _copy_sources(
    remote_by: Mapping[str, RemoteEntry],
    synced: Mapping[str, SyncedEntry],
    *,
    rewritten: Iterable[str],
    opts: PlanOptions,
) -> _CopySources:
    skip = set(rewritten)
    sources = _CopySources()
    if not opts.encrypt:
        # An object with a plain ETag is a known content even without a journal record.
        for path, rem in remote_by.items():
            if path not in skip and not rem.is_multipart_etag:
                sources.by_content.setdefault((rem.size, rem.etag), (path, rem.etag))
    for path, rec in synced.items():
        obj = remote_by.get(path)
        if path in skip or obj is None or (obj.size, obj.etag) != (rec.remote_size, rec.remote_etag):
            continue  # no object, or not the one we recorded: its content is unknown
        if rec.encrypted != opts.encrypt:
            continue  # a copy keeps the stored form, which would be wrong for this sync
        sources.by_content[(rec.identity.size, rec.md5)] = (path, rec.md5)
        ident = rec.identity
        sources.by_identity[(ident.size, ident.mtime_ns, ident.inode)] = (path, rec.md5)
    return sources


def _local_only(loc: LocalEntry, rec: SyncedEntry | None, sources: _CopySources) -> Operation:
    if loc.md5 is not None:
        hit = sources.by_content.get((loc.size, loc.md5))
        if hit is not None:
            # Same size and MD5 as an object already in the bucket: server-side copy, no data sent.
            return Copy(loc.path, hit[0], loc, hit[1], "same-content")
    else:
        ident = loc.identity
        hit = sources.by_identity.get((ident.size, ident.mtime_ns, ident.inode))
        if hit is not None:
            # Same inode, size and mtime as a recorded file: a rename. The executor hashes the file to
            # confirm expected_md5 before recording (and uploads if it differs).
            return Copy(loc.path, hit[0], loc, hit[1], "renamed")
    # New file, or its object vanished from the bucket.
    return Upload(loc.path, loc, "new" if rec is None else "remote-missing")
