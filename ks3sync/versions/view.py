"""The target as it was at time T, as a read-only Store (docs/versions.md §5-6): ``mirror``'s restore
machinery (planner, executor, verification, temp file + rename, traversal guard, ``--delete``) runs on
it unchanged.

Its listing is the resolver's choices (path order); reading a path reads the object chosen for it, the
current one or a version. ``key_for`` is the path's *original* key: an encrypted object's integrity tag
is bound to it (docs/encryption.md §8), so a version is verified against the key it was copied from,
never its own. ``under`` restricts the view to a sub-folder of the target, whose paths become the
view's paths (the view's prefix is the target's plus ``under``).

Imports the store protocol, model, errors and sibling modules.
"""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import Iterator, Mapping, Sequence

from ks3sync.errors import RemoteRejected
from ks3sync.model import RemoteEntry
from ks3sync.store.base import (
    Body,
    ObjectMeta,
    ObjectReader,
    PartResult,
    PendingUpload,
    RangeRead,
    Store,
    WriteOptions,
    WriteResult,
)
from ks3sync.versions.layout import Layout
from ks3sync.versions.resolve import Choice


class PointInTimeView:
    """``choices``: the resolver's, in path order. The view's paths are the choices' paths with ``under``
    removed (those outside it are left out); ``rename`` instead maps one view path to one original path
    (a single file restored under another name)."""

    def __init__(
        self,
        store: Store,
        layout: Layout,
        choices: Sequence[Choice],
        *,
        under: str = "",
        rename: tuple[str, Choice] | None = None,
    ) -> None:
        self._store = store
        self._layout = layout
        self._under = under
        if rename is not None:
            self._by_path: dict[str, Choice] = {rename[0]: rename[1]}
        else:
            skip = len(under)
            self._by_path = {c.path[skip:]: c for c in choices if c.path.startswith(under)}
        self.bucket = store.bucket
        self.prefix = store.prefix + under

    def __repr__(self) -> str:
        return f"PointInTimeView(bucket={self.bucket!r}, prefix={self.prefix!r}, paths={len(self._by_path)})"

    def _original(self, path: str) -> str:
        choice = self._by_path.get(path)
        return choice.path if choice is not None else self._under + path

    def source(self, path: str) -> str:
        """The store path (in the real target) that holds ``path``'s content at T."""
        choice = self._by_path.get(path)
        if choice is None or choice.version is None:
            return self._original(path)
        return self._layout.version_path(choice.version.stamp, choice.path)

    def key_for(self, path: str) -> str:
        """The *original* key of ``path`` (what an integrity tag is bound to), never a version's."""
        return self._store.key_for(self._original(path))

    def list(self) -> Iterator[RemoteEntry]:
        for path in sorted(self._by_path):  # str order is UTF-8 byte order (plan.march)
            yield self._by_path[path].as_remote(path)

    def list_under(self, sub: str, *, start_after: str | None = None) -> Iterator[RemoteEntry]:
        for entry in self.list():
            if entry.path.startswith(sub) and (start_after is None or entry.path > start_after):
                yield entry

    def head(self, path: str) -> ObjectMeta | None:
        if path not in self._by_path:
            return None
        return self._store.head(self.source(path))

    def open(
        self,
        path: str,
        size: int | None = None,
        *,
        byte_range: tuple[int, int] | None = None,
        if_match: str | None = None,
    ) -> contextlib.AbstractContextManager[ObjectReader]:
        return self._store.open(self.source(path), size, byte_range=byte_range, if_match=if_match)

    def read_range(self, path: str, first: int, last: int) -> RangeRead:
        return self._store.read_range(self.source(path), first, last)

    # A restore never writes to the bucket: everything below refuses.

    def _read_only(self, *_args: object, **_kwargs: object) -> RemoteRejected:
        return RemoteRejected("a point-in-time view of the bucket is read-only")

    def put(self, path: str, body: Body, options: WriteOptions) -> WriteResult:
        raise self._read_only()

    def create_upload(self, path: str, options: WriteOptions) -> str:
        raise self._read_only()

    def upload_part(
        self,
        path: str,
        upload_id: str,
        part_number: int,
        body: Body,
        metadata: Mapping[str, str] | None = None,
    ) -> PartResult:
        raise self._read_only()

    def list_parts(self, path: str, upload_id: str) -> builtins.list[PartResult]:
        raise self._read_only()

    def complete_upload(
        self, path: str, upload_id: str, parts: Sequence[PartResult], *, expected_crc64: int | None = None
    ) -> WriteResult:
        raise self._read_only()

    def abort_upload(self, path: str, upload_id: str) -> None:
        raise self._read_only()

    def list_uploads(self) -> builtins.list[PendingUpload]:
        return []

    def copy(
        self,
        src_path: str,
        dst_path: str,
        *,
        dst_key: str | None = None,
        options: WriteOptions | None = None,
        storage_class: str | None = None,
    ) -> WriteResult:
        raise self._read_only()

    def delete_many(self, paths: Sequence[str]) -> builtins.list[tuple[str, str]]:
        raise self._read_only()
