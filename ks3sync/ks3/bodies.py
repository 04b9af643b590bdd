"""Request bodies: re-iterable byte sources whose length and MD5 are known before sending.

Owns: the ``Body`` protocol, ``BytesBody`` (in memory) and ``FileRangeBody`` (a byte range of a file,
streamed from disk in chunks, never held whole in memory). ``chunks()`` starts from the first byte on
every call, which is how the retry wrapper rewinds a body.
Must not import: anything else from ks3sync, nor httpx.

A file that shrinks while being sent would leave the server waiting for bytes that never come, so
``FileRangeBody`` raises ``SourceChangedError`` the moment it reads short. A file whose bytes change at
the same size is caught by the server's Content-MD5 check (the MD5 was taken before sending).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from .errors import SourceChangedError

CHUNK_SIZE = 1024 * 1024


@runtime_checkable
class Body(Protocol):
    length: int

    def content_md5(self) -> bytes:
        """16-byte MD5 digest of the whole body."""
        ...

    def chunks(self) -> Iterator[bytes]:
        """A fresh iterator over the body from its first byte."""
        ...


class BytesBody:
    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self._bytes = data if isinstance(data, bytes) else None
        self._data = memoryview(data).cast("B")
        self.length = len(self._data)
        self._md5 = hashlib.md5(self._data, usedforsecurity=False).digest()

    def content_md5(self) -> bytes:
        return self._md5

    def chunks(self) -> Iterator[bytes]:
        if self._bytes is not None and self.length <= CHUNK_SIZE:
            if self.length:
                yield self._bytes  # the common small PUT: no copy at all
            return
        for start in range(0, self.length, CHUNK_SIZE):
            yield bytes(self._data[start : start + CHUNK_SIZE])

    def __repr__(self) -> str:
        return f"BytesBody(length={self.length})"


class FileRangeBody:
    """``length`` bytes of ``path`` from ``offset`` (to the end of the file when ``length`` is None)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        offset: int = 0,
        length: int | None = None,
        md5: bytes | None = None,
    ) -> None:
        self.path = os.fspath(path)
        if offset < 0:
            raise ValueError(f"{self.path}: offset must be >= 0, not {offset}")
        if length is None:
            length = max(os.stat(self.path).st_size - offset, 0)
        if length < 0:
            raise ValueError(f"{self.path}: length must be >= 0, not {length}")
        if md5 is not None and len(md5) != 16:
            raise ValueError(f"{self.path}: md5 must be a 16-byte digest")
        self.offset = offset
        self.length = length
        self._md5 = md5
        self._lock = threading.Lock()

    def content_md5(self) -> bytes:
        with self._lock:
            if self._md5 is None:
                digest = hashlib.md5(usedforsecurity=False)
                for chunk in self.chunks():
                    digest.update(chunk)
                self._md5 = digest.digest()
            return self._md5

    def chunks(self) -> Iterator[bytes]:
        remaining = self.length
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            while remaining > 0:
                chunk = handle.read(min(CHUNK_SIZE, remaining))
                if not chunk:
                    raise SourceChangedError(
                        f"{self.path}: file ended {remaining} bytes early "
                        f"(range {self.offset}+{self.length}); it changed while being read"
                    )
                remaining -= len(chunk)
                yield chunk

    def __repr__(self) -> str:
        return f"FileRangeBody({self.path!r}, offset={self.offset}, length={self.length})"


def as_body(body: Body | bytes | bytearray | memoryview) -> Body:
    if isinstance(body, bytes | bytearray | memoryview):
        return BytesBody(body)
    return body
