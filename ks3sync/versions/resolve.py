"""The point-in-time rule (docs/versions.md §5): which object holds each path's content at time T.

Inputs: the target's current listing (path order, the versions area left out), and every pass of the
versions area (its version objects from one listing, and its manifest when it has a readable one).
Output, in path order: for each path that had known content at T, the object to restore (the current
object, or a version); plus what was left out (written after T, no earlier content known) and what a
manifest promised but the bucket no longer holds (a missing version: a failure, never "absent").

Only passes stamped at or after T matter: a pass before T changed things that the state at T already
shows. For each path, the earliest such pass that touched it says what the path held just before it.

Pure: ``ks3sync.model`` and sibling modules; no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from ks3sync.model import RemoteEntry
from ks3sync.versions.manifest import Manifest


@dataclass(frozen=True, slots=True)
class StoredVersion:
    """A version object as the listing of the versions area shows it."""

    stamp: str
    path: str  # the original path (relative to the target)
    etag: str
    size: int
    last_modified_ns: int = 0  # of the copy, not of the original content
    storage_class: str = "STANDARD"
    # The local file's mtime the object carries (x-kss-meta-mtime, copied with it), read only for
    # versions no manifest describes: content cannot have been uploaded before its file was modified.
    mtime_ns: int | None = None


@dataclass(frozen=True, slots=True)
class Pass:
    """One pass of the versions area. ``manifest`` None: unindexed (killed before it wrote one, or its
    manifest was unreadable), or not read because the pass is older than every T asked about."""

    stamp: str
    stamp_ns: int
    versions: Mapping[str, StoredVersion] = field(default_factory=dict)
    manifest: Manifest | None = None
    has_manifest: bool = False  # a manifest object exists (read or not)
    version_bytes: int = 0


@dataclass(frozen=True, slots=True)
class Choice:
    """The object holding ``path``'s content at T: the current object (``version`` None) or a version."""

    path: str
    etag: str
    size: int
    last_modified_ns: int
    storage_class: str
    version: StoredVersion | None = None

    def as_remote(self, path: str | None = None) -> RemoteEntry:
        return RemoteEntry(
            path if path is not None else self.path,
            self.size,
            self.etag,
            self.last_modified_ns,
            self.storage_class,
        )


_ABSENT = object()  # the earliest later pass says: no object at T


@dataclass(slots=True)
class Resolution:
    """Iterate it once for the choices (path order); the counters are complete afterwards."""

    current: Iterable[RemoteEntry]
    touched: Mapping[str, object]  # path -> StoredVersion | _ABSENT | ("left-out", why) | ("missing", stamp)
    as_of_ns: int
    under: str = ""
    left_out: list[tuple[str, str]] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)
    from_versions: int = 0

    def __iter__(self) -> Iterator[Choice]:
        later = sorted((p for p in self.touched if p.startswith(self.under)), key=lambda p: p.encode("utf-8"))
        pending = iter(later)
        nxt = next(pending, None)
        for obj in self.current:
            if not obj.path.startswith(self.under):
                continue
            while nxt is not None and nxt < obj.path:
                yield from self._touched(nxt)
                nxt = next(pending, None)
            if nxt == obj.path:
                yield from self._touched(nxt)
                nxt = next(pending, None)
                continue
            if obj.last_modified_ns and obj.last_modified_ns > self.as_of_ns:
                self.left_out.append((obj.path, "written after that time, no earlier version kept"))
                continue
            yield Choice(obj.path, obj.etag, obj.size, obj.last_modified_ns, obj.storage_class)
        while nxt is not None:
            yield from self._touched(nxt)
            nxt = next(pending, None)

    def _touched(self, path: str) -> Iterator[Choice]:
        decision = self.touched[path]
        if decision is _ABSENT:
            return
        if isinstance(decision, tuple):
            kind, detail = decision
            (self.left_out if kind == "left-out" else self.missing).append((path, detail))
            return
        assert isinstance(decision, StoredVersion)
        self.from_versions += 1
        yield Choice(
            path, decision.etag, decision.size, decision.last_modified_ns, decision.storage_class, decision
        )


def resolve(
    current: Iterable[RemoteEntry], passes: Sequence[Pass], as_of_ns: int, *, under: str = ""
) -> Resolution:
    """The state at ``as_of_ns`` (see the module docstring). ``current`` must be in path order;
    ``passes`` in any order, with the manifests of every pass stamped at or after T read (those that
    have one). ``under`` restricts the result to paths starting with it."""
    touched: dict[str, object] = {}
    for p in sorted((p for p in passes if p.stamp_ns >= as_of_ns), key=lambda p: p.stamp_ns, reverse=True):
        # Newest first, so the earliest pass after T is the one that stays in ``touched``.
        entries = {e.path: e for e in p.manifest.entries} if p.manifest is not None else {}
        for path in entries.keys() | p.versions.keys():
            if not path.startswith(under):
                continue
            version = p.versions.get(path)
            entry = entries.get(path)
            if version is not None:
                if entry is not None and entry.before is not None:
                    written = entry.before.modified_ns  # the server's time of the original write
                else:
                    written = version.mtime_ns  # no manifest: its file's mtime bounds the upload from below
                if written is not None and written > as_of_ns:
                    touched[path] = (
                        "left-out",
                        f"the content pass {p.stamp} replaced was written after that time",
                    )
                else:
                    touched[path] = version
            elif entry is not None and entry.before is None:
                touched[path] = _ABSENT  # the pass created it: nothing there before
            else:
                touched[path] = ("missing", f"pass {p.stamp} kept a version that is no longer in the bucket")
    return Resolution(current, touched, as_of_ns, under)
