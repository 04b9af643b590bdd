"""Upload planning (local folder -> KS3): one decision table over (local, remote, journal) per path,
applied while the three sorted streams are marched, so memory follows the changes, not the files.

Two phases, because a new local file may be a rename or a duplicate of an object the march has already
passed (or has not reached yet):

1. :func:`march_upload` walks the streams once. Paths on both sides are decided at once; remote-only
   paths become (guarded) deletes, unless the exclusion rules exclude them (``plan.exclude``: the local
   stream is already filtered, so only remote-only paths are judged), and except objects named like a
   folder (``dir/`` with content: no file can be one, they are left alone); journal-only paths are
   forgotten. Local-only files are kept aside, with what phase 2 needs to know about the objects:
   which record paths are *not* intact (few), and plain-ETag objects without an intact record (none in
   a steady state; every object when a populated bucket is adopted with an empty journal, the one case
   where this phase holds O(objects)).
2. Only if there are local-only files: :func:`collect_copy_sources` reads the journal's records again
   and keeps the intact ones whose size one of those files has; the caller hashes the files that could
   be duplicates (:func:`hash_candidates`), and :func:`finish_upload` decides them (server-side copy or
   upload) and applies the delete guard.

:func:`plan_upload` runs both phases for callers that hold everything (tests, small tools).

Pure: no I/O, no clock; imports only ``ks3sync.model`` and sibling planner modules."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from ks3sync.model import (
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
from ks3sync.plan.compare import UPLOAD_RULES, both_sides, is_intact
from ks3sync.plan.exclude import ExclusionTest, delete_reason, nothing_excluded
from ks3sync.plan.guard import guard_deletes
from ks3sync.plan.march import march, sorted_records
from ks3sync.plan.options import PlanOptions

ContentKey = tuple[int, str]  # (size, md5)
IdentityKey = tuple[int, int, int]  # (size, mtime_ns, inode): a rename keeps these, changes ctime


@dataclass(frozen=True, slots=True)
class LocalOnly:
    """A local file with no object at its path: decided in phase 2. ``record`` is the journal's record
    of the path, if any (its object vanished from the bucket)."""

    entry: LocalEntry
    record: SyncedEntry | None


@dataclass(frozen=True, slots=True)
class UploadMarch:
    """What phase 1 keeps: the decided changes, counts, and the small side structures of phase 2."""

    decided: Mapping[str, Operation]  # transfers of paths present on both sides
    objects: Mapping[str, RemoteEntry]  # the object at each decided path (for the executor's backups)
    deletes: tuple[Operation, ...]  # before the guard
    forgets: tuple[Operation, ...]
    local_only: tuple[LocalOnly, ...]
    not_intact: frozenset[str]  # record paths whose object is missing, changed, or rewritten by this plan
    loose_objects: Mapping[ContentKey, str]  # plain-ETag objects without an intact record (first per content)
    skipped: int
    source_count: int  # local files
    destination_count: int  # remote objects


@dataclass(frozen=True, slots=True)
class CopySources:
    """Objects that stay intact for the whole pass and whose content is known, by two keys, each mapping
    to ``(path, md5)``. Only sizes some local-only file has are kept."""

    by_content: Mapping[ContentKey, tuple[str, str]] = field(default_factory=dict)
    by_identity: Mapping[IdentityKey, tuple[str, str]] = field(default_factory=dict)


NO_SOURCES = CopySources()


def plan_upload(
    local: Iterable[LocalEntry],
    remote: Iterable[RemoteEntry],
    synced: Mapping[str, SyncedEntry] | Iterable[SyncedEntry],
    opts: PlanOptions,
    excluded: ExclusionTest = nothing_excluded,
) -> Plan:
    """What to do so that KS3 holds exactly the local files (deletes only with ``opts.delete``).
    ``local`` must already leave out what ``excluded`` excludes (the scan applies the same rules).

    ``local`` and ``remote`` must be in path order (see ``plan.march``); ``synced`` is a map or any
    collection of records. Local files are taken as given: only those with an ``md5`` can become
    "same-content" copies (``ks3sync.engine.mirror`` hashes the candidates between the phases)."""
    records = sorted_records(synced)
    marched = march_upload(local, remote, records, opts, excluded)
    sources = collect_copy_sources(marched, records, opts) if marched.local_only else NO_SOURCES
    return finish_upload(marched, sources, opts)


def march_upload(
    local: Iterable[LocalEntry],
    remote: Iterable[RemoteEntry],
    records: Iterable[SyncedEntry],
    opts: PlanOptions,
    excluded: ExclusionTest = nothing_excluded,
) -> UploadMarch:
    """Phase 1: one pass over the three sorted streams. ``excluded`` judges the remote-only paths."""
    decided: dict[str, Operation] = {}
    objects: dict[str, RemoteEntry] = {}
    deletes: list[Operation] = []
    forgets: list[Operation] = []
    local_only: list[LocalOnly] = []
    not_intact: set[str] = set()
    loose: dict[ContentKey, str] = {}
    skipped = source_count = destination_count = 0
    for path, loc, rem, rec in march(local, remote, records):
        if loc is not None:
            source_count += 1
        if rem is None:
            if loc is not None:
                # Local only: decided once we know which objects this plan keeps intact (a Copy may only
                # read an object that no transfer of this plan rewrites).
                local_only.append(LocalOnly(loc, rec))
            elif rec is not None:
                forgets.append(Forget(path))  # gone from both sides: drop the stale record
            if rec is not None:
                not_intact.add(path)
            continue
        if loc is None and path.endswith("/"):
            # A non-empty object named like a folder (markers are not listed): no file can have its
            # name, so ks3sync never wrote it; it is left alone, as before such objects were listed.
            continue
        destination_count += 1
        if loc is not None:
            op = both_sides(loc, rem, rec, opts, UPLOAD_RULES)
            if op is None:
                skipped += 1
                continue
            decided[path] = op
            objects[path] = rem
            if rec is not None:
                not_intact.add(path)  # rewritten by this plan: not a copy source
            continue
        # Remote only: the object is not in the source. Deleted only when asked (and guarded), after
        # every transfer: until then it can still be a copy source. An excluded object stays (and so
        # does its record, if it became excluded after it was synced) unless --delete-excluded.
        if opts.delete:
            why = delete_reason(excluded(path), delete=True, delete_excluded=opts.delete_excluded)
            if why is not None:
                deletes.append(DeleteRemote(path, rem, why))
        intact = rec is not None and is_intact(rec, rem)
        if rec is not None and not intact:
            not_intact.add(path)
        if not intact and not opts.encrypt and not rem.is_multipart_etag:
            # A plain ETag is the object's MD5: a known content even without a journal record.
            loose.setdefault((rem.size, rem.etag), path)
    return UploadMarch(
        decided=decided,
        objects=objects,
        deletes=tuple(deletes),
        forgets=tuple(forgets),
        local_only=tuple(local_only),
        not_intact=frozenset(not_intact),
        loose_objects=loose,
        skipped=skipped,
        source_count=source_count,
        destination_count=destination_count,
    )


def collect_copy_sources(
    marched: UploadMarch, records: Iterable[SyncedEntry], opts: PlanOptions
) -> CopySources:
    """Phase 2: copy sources for the sizes of the local-only files, from the journal's records (read
    again, in any order) that phase 1 found intact, then from loose plain-ETag objects. A record that
    phase 1 did not see (written between the two reads) counts as intact: the executor confirms every
    copy's resulting ETag and hashes the file, so a wrong source costs an upload, never wrong data."""
    sizes = {lo.entry.size for lo in marched.local_only}
    by_content: dict[ContentKey, tuple[str, str]] = {}
    by_identity: dict[IdentityKey, tuple[str, str]] = {}
    for rec in records:
        ident = rec.identity
        if ident.size not in sizes or rec.path in marched.not_intact:
            continue
        if rec.encrypted != opts.encrypt:
            continue  # a copy keeps the stored form, which would be wrong for this sync
        by_content.setdefault((ident.size, rec.md5), (rec.path, rec.md5))
        by_identity.setdefault((ident.size, ident.mtime_ns, ident.inode), (rec.path, rec.md5))
    for (size, etag), path in marched.loose_objects.items():
        if size in sizes:
            by_content.setdefault((size, etag), (path, etag))
    return CopySources(by_content, by_identity)


def hash_candidates(marched: UploadMarch, sources: CopySources) -> list[LocalEntry]:
    """Local-only files worth hashing: not hashed yet, not empty, no record of their own, and of a size
    some copy source has. Once hashed, they can only match by content (see :func:`finish_upload`)."""
    sizes = {size for size, _ in sources.by_content}
    return [
        lo.entry
        for lo in marched.local_only
        if lo.entry.md5 is None and lo.entry.size > 0 and lo.record is None and lo.entry.size in sizes
    ]


def finish_upload(
    marched: UploadMarch, sources: CopySources, opts: PlanOptions, *, hashed: Mapping[str, str] | None = None
) -> Plan:
    """Phase 2's end: decide the local-only files (``hashed``: MD5s the caller computed, by path), guard
    the deletes, and order the transfers by path. ``Copy`` operations read their source objects, which
    this plan never overwrites and deletes only after the transfers."""
    transfers = dict(marched.decided)
    for lo in marched.local_only:
        entry = lo.entry
        if hashed and entry.path in hashed:
            entry = replace(entry, md5=hashed[entry.path])
        transfers[entry.path] = _local_only(entry, lo.record, sources)
    allowed, refused, warnings = guard_deletes(
        list(marched.deletes),
        source_count=marched.source_count,
        destination_count=marched.destination_count,
        opts=opts,
    )
    ordered = tuple(transfers[p] for p in sorted(transfers))
    return Plan(
        transfers=ordered + marched.forgets,
        deletes=allowed,
        skipped=marched.skipped,
        refused_deletes=refused,
        warnings=warnings,
    )


def _local_only(loc: LocalEntry, rec: SyncedEntry | None, sources: CopySources) -> Operation:
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
