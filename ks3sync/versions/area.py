"""Reading a target's versions area: one listing of it, grouped by pass, and the manifests of the
passes a reader needs (docs/versions.md §1, §4).

A manifest is read with a size bound and decoded strictly (``versions.manifest``); one that cannot be
read or fails a check is reported by its key and its pass is read as unindexed (its version objects
still count). Objects in the area that are neither a version nor a manifest are ignored (and never
deleted by a prune).

Imports the store protocol, errors and sibling modules.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

from ks3sync.errors import Ks3SyncError, RemoteNotFound, describe
from ks3sync.model import RemoteEntry
from ks3sync.store.base import META_MTIME, Store, parse_mtime
from ks3sync.versions.layout import Layout
from ks3sync.versions.manifest import MAX_MANIFEST_BYTES, Manifest, ManifestError, decode
from ks3sync.versions.resolve import Pass, StoredVersion
from ks3sync.versions.stamp import parse_stamp

T = TypeVar("T")
R = TypeVar("R")


@dataclass(slots=True)
class PassObjects:
    """What the listing of the area shows of one pass."""

    stamp: str
    stamp_ns: int
    versions: dict[str, StoredVersion] = field(default_factory=dict)  # by original path
    manifest: RemoteEntry | None = None

    @property
    def version_bytes(self) -> int:
        return sum(v.size for v in self.versions.values())


@dataclass(slots=True)
class AreaListing:
    layout: Layout
    passes: dict[str, PassObjects] = field(default_factory=dict)
    foreign: int = 0  # objects in the area that are neither versions nor manifests

    def ordered(self) -> list[PassObjects]:
        return sorted(self.passes.values(), key=lambda p: p.stamp_ns)

    @property
    def objects(self) -> int:
        return sum(len(p.versions) + (p.manifest is not None) for p in self.passes.values())


def list_area(store: Store, layout: Layout) -> AreaListing:
    """One listing of the versions area, grouped by pass."""
    area = AreaListing(layout)
    for obj in store.list_under(layout.prefix):
        parsed = layout.parse(obj.path)
        if parsed is None:
            area.foreign += 1
            continue
        stamp, original = parsed
        group = area.passes.get(stamp)
        if group is None:
            group = area.passes[stamp] = PassObjects(stamp, parse_stamp(stamp))
        if original is None:
            group.manifest = obj
        else:
            group.versions[original] = StoredVersion(
                stamp, original, obj.etag, obj.size, obj.last_modified_ns, obj.storage_class
            )
    return area


def read_manifest(store: Store, layout: Layout, stamp: str, listed_size: int | None = None) -> Manifest:
    """Fetch and check one manifest (ManifestError, or the store's errors); ``listed_size`` bounds the
    body the server may send."""
    path = layout.manifest_path(stamp)
    chunks: list[bytes] = []
    size = 0
    with store.open(path, listed_size) as reader:
        if reader.meta.size > MAX_MANIFEST_BYTES:
            raise ManifestError(f"larger than {MAX_MANIFEST_BYTES} bytes")
        for chunk in reader.iter_bytes():
            size += len(chunk)
            if size > MAX_MANIFEST_BYTES:
                raise ManifestError(f"larger than {MAX_MANIFEST_BYTES} bytes")
            chunks.append(chunk)
    return decode(b"".join(chunks), stamp=stamp, layout=layout)


def load_passes(
    store: Store, area: AreaListing, stamps: Iterable[str], *, jobs: int = 8
) -> tuple[list[Pass], list[tuple[str, str]]]:
    """Every pass of ``area`` as the resolver takes it, with the manifests of ``stamps`` read (in
    parallel), and, for the versions of those passes that no manifest entry describes (a pass killed
    before its manifest, a write that failed after its version was kept), the file mtime each carries
    (one HEAD each: docs/versions.md §5). Returns (passes, problems: (key, why it was not used))."""
    chosen = [s for s in stamps if s in area.passes]
    problems: list[tuple[str, str]] = []
    manifests: dict[str, Manifest] = {}

    def fetch(stamp: str) -> tuple[str, Manifest | str]:
        try:
            listed = area.passes[stamp].manifest
            return stamp, read_manifest(
                store, area.layout, stamp, listed.size if listed is not None else None
            )
        except ManifestError as exc:
            return stamp, f"unusable manifest: {exc}"
        except RemoteNotFound:
            return stamp, "manifest vanished while it was read (a prune?)"
        except Ks3SyncError as exc:
            return stamp, f"cannot read the manifest: {describe(exc)}"

    for stamp, got in _parallel(fetch, [s for s in chosen if area.passes[s].manifest is not None], jobs):
        if isinstance(got, str):
            problems.append((store.key_for(area.layout.manifest_path(stamp)), got))
        else:
            manifests[stamp] = got
    unexplained: list[StoredVersion] = []
    for stamp in chosen:
        described = {e.path for e in manifests[stamp].entries} if stamp in manifests else set()
        unexplained.extend(v for path, v in area.passes[stamp].versions.items() if path not in described)

    def mtime(version: StoredVersion) -> StoredVersion:
        try:
            meta = store.head(area.layout.version_path(version.stamp, version.path))
        except Ks3SyncError:
            return version  # unknown: the version counts as there (the rule's default)
        mtime = parse_mtime(meta.metadata.get(META_MTIME)) if meta is not None else None
        return replace(version, mtime_ns=mtime) if mtime is not None else version

    for version in _parallel(mtime, unexplained, jobs):
        area.passes[version.stamp].versions[version.path] = version
    passes = [
        Pass(p.stamp, p.stamp_ns, p.versions, manifests.get(p.stamp), p.manifest is not None, p.version_bytes)
        for p in area.ordered()
    ]
    return passes, problems


def _parallel(func: Callable[[T], R], items: Sequence[T], jobs: int) -> list[R]:
    if not items:
        return []
    with concurrent.futures.ThreadPoolExecutor(max(1, min(jobs, len(items)))) as pool:
        return list(pool.map(func, items))


def stamps_from(area: AreaListing, from_ns: int) -> Sequence[str]:
    """The stamps of passes at or after ``from_ns`` (the ones a restore to that time reads)."""
    return [p.stamp for p in area.ordered() if p.stamp_ns >= from_ns]
