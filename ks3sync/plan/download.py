"""``plan_download``: KS3 -> local folder (restore). The mirror image of ``plan_upload``, marched over
the same three sorted streams in one phase (a restore makes no copies), plus the refusal of keys that
would escape the target folder (invariant 6; the executor checks again).

Excluded keys are not fetched: a local file of an excluded name is outside the sync and is neither
overwritten nor deleted. With ``delete_excluded`` the local stream holds the excluded files too (the
caller walks without the rules) and they become guarded deletes (see ``plan.exclude``).

Pure: no I/O, no clock; imports only ``ks3sync.model`` and sibling planner modules."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from ks3sync.model import (
    DeleteLocal,
    Download,
    Exclusion,
    Forget,
    LocalEntry,
    Operation,
    Plan,
    RemoteEntry,
    SyncedEntry,
)
from ks3sync.plan.compare import DOWNLOAD_RULES, both_sides
from ks3sync.plan.exclude import ExclusionTest, delete_reason, nothing_excluded
from ks3sync.plan.guard import guard_deletes
from ks3sync.plan.keys import OWN_STATE, is_directory_marker, restore_refusal
from ks3sync.plan.march import march, sorted_records
from ks3sync.plan.options import PlanOptions


@dataclass(frozen=True, slots=True)
class DownloadPlan:
    """The plan, the keys it refused with the reason (invariant 6, and non-empty objects named like a
    folder; the caller reports them as failures), and how many objects the listing held (folder
    placeholders and refused keys included)."""

    plan: Plan
    refused: tuple[tuple[RemoteEntry, str], ...]
    listed: int = 0


def plan_download(
    remote: Iterable[RemoteEntry],
    local: Iterable[LocalEntry],
    synced: Mapping[str, SyncedEntry] | Iterable[SyncedEntry],
    opts: PlanOptions,
    excluded: ExclusionTest = nothing_excluded,
) -> Plan:
    """What to do so that the local folder holds exactly the remote objects (see :func:`march_download`);
    ``synced`` is a map or any collection of records."""
    records = sorted_records(synced)
    return march_download(remote, local, records, opts, excluded).plan


def march_download(
    remote: Iterable[RemoteEntry],
    local: Iterable[LocalEntry],
    records: Iterable[SyncedEntry],
    opts: PlanOptions,
    excluded: ExclusionTest = nothing_excluded,
) -> DownloadPlan:
    """One pass over the three streams, each in path order (see ``plan.march``).

    An ``Adopt`` here means "hash the local file; if it equals the object, record it, else download".
    Keys that cannot become a local file are skipped with a warning (the caller reports them as failed):
    unsafe keys, and non-empty objects whose key ends in ``/``; folder placeholder objects (``dir/``,
    0 bytes) are skipped silently and create nothing.
    ``excluded`` judges the remote-only paths, and every local one when ``opts.delete_excluded`` (with
    ``opts.delete``) says the local stream was walked without the rules."""
    refused: list[tuple[RemoteEntry, str]] = []
    warnings: list[str] = []
    counts = [0, 0, 0]  # objects to restore, local files, objects listed
    local_unfiltered = opts.delete and opts.delete_excluded

    def restorable(objects: Iterable[RemoteEntry]) -> Iterator[RemoteEntry]:
        for obj in objects:
            counts[2] += 1
            if is_directory_marker(obj.path, obj.size):
                continue  # a console's "folder" object: nothing to create
            why = restore_refusal(obj.path, obj.size)
            if why is not None and excluded(obj.path) in (Exclusion.EXCLUDED, Exclusion.PROTECTED):
                continue  # excluded: not fetched, so nothing to refuse
            if why is not None:
                refused.append((obj, why))
                warnings.append(f"skipping key {obj.path!r}: {why}")
                continue
            counts[0] += 1
            yield obj

    def counted(entries: Iterable[LocalEntry]) -> Iterator[LocalEntry]:
        for entry in entries:
            counts[1] += 1
            yield entry

    transfers: list[Operation] = []
    deletes: list[Operation] = []
    forgets: list[Operation] = []
    skipped = 0
    for path, loc, rem, rec in march(counted(local), restorable(remote), records):
        exclusion = Exclusion.INCLUDED
        if (loc is None and rem is not None) or (loc is not None and local_unfiltered):
            # A filtered local entry is included already; only these can be excluded.
            exclusion = excluded(path)
        if exclusion is Exclusion.OWN and rem is not None:
            # Named like ks3sync's journal or state: never written over, so the object is not restored,
            # and it is data the user may want, so it is reported as failed, not left out in silence.
            refused.append((rem, OWN_STATE))
            warnings.append(f"skipping key {path!r}: {OWN_STATE}")
            counts[0] -= 1
            continue
        if exclusion is not Exclusion.INCLUDED:
            # Outside the sync: never fetched (so an excluded local file is never overwritten), and
            # the local file is deleted only with --delete-excluded (guarded like every delete).
            if rem is not None:
                counts[0] -= 1  # not part of the source
            why = delete_reason(exclusion, delete=opts.delete, delete_excluded=opts.delete_excluded)
            if loc is not None and why is not None:
                deletes.append(DeleteLocal(path, why))
            if rem is None and rec is not None:
                # The object is gone: its record goes now, whether or not a guard holds the delete back.
                forgets.append(Forget(path))
            continue
        if loc is not None and rem is not None:
            op = both_sides(loc, rem, rec, opts, DOWNLOAD_RULES)
            if op is None:
                skipped += 1
            else:
                transfers.append(op)
        elif rem is not None:
            # Remote only: a new object to fetch.
            transfers.append(Download(path, rem, "new"))
        elif loc is not None:
            # Local only: not in the source (the bucket). Deleted only when asked (and guarded).
            if opts.delete:
                deletes.append(DeleteLocal(path))
        else:
            # Journal only: gone from both sides; drop the stale record.
            forgets.append(Forget(path))

    allowed, refused_n, guard_warnings = guard_deletes(
        deletes, source_count=counts[0], destination_count=counts[1], opts=opts
    )
    plan = Plan(
        transfers=tuple(transfers) + tuple(forgets),
        deletes=allowed,
        skipped=skipped,
        refused_deletes=refused_n,
        warnings=tuple(warnings) + guard_warnings,
    )
    return DownloadPlan(plan, tuple(refused), listed=counts[2])
