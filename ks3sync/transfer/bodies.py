"""Request bodies for the Store (structurally ``ks3sync.ks3.Body``: length, MD5 up front, re-iterable so
the client's one retry wrapper can resend from the start), plus a metering wrapper that feeds the shared
bandwidth limiter and the progress subscribers as bytes leave.

Must not import: ks3sync.ks3 (bodies are duck-typed), the journal, the CLI.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from ks3sync.store.base import Body

CHUNK = 256 * 1024


class MemoryBody:
    __slots__ = ("_data", "_md5", "length")

    def __init__(self, data: bytes | memoryview, md5: bytes | None = None) -> None:
        self._data = data
        self.length = len(data)
        self._md5 = md5 if md5 is not None else hashlib.md5(data).digest()  # noqa: S324

    def content_md5(self) -> bytes:
        return self._md5

    def chunks(self) -> Iterator[bytes]:
        view = memoryview(self._data)
        for start in range(0, self.length, CHUNK):
            yield bytes(view[start : start + CHUNK])


class FileBody:
    """A byte range of a file, streamed from disk on every attempt (never whole in memory)."""

    __slots__ = ("_path", "_offset", "_md5", "length")

    def __init__(self, path: Path, offset: int, length: int, md5: bytes) -> None:
        self._path = path
        self._offset = offset
        self.length = length
        self._md5 = md5

    def content_md5(self) -> bytes:
        return self._md5

    def chunks(self) -> Iterator[bytes]:
        # A file that shrank yields fewer bytes; the server then rejects the body (length/MD5 mismatch).
        with open(self._path, "rb") as fh:
            fh.seek(self._offset)
            remaining = self.length
            while remaining > 0:
                chunk = fh.read(min(CHUNK, remaining))
                if not chunk:
                    return
                remaining -= len(chunk)
                yield chunk


class MeteredBody:
    """Wraps a body; calls ``on_bytes(n)`` before each chunk goes out (throttle + progress)."""

    __slots__ = ("_inner", "_on_bytes", "length")

    def __init__(self, inner: Body, on_bytes: Callable[[int], None]) -> None:
        self._inner = inner
        self._on_bytes = on_bytes
        self.length = inner.length

    def content_md5(self) -> bytes:
        return self._inner.content_md5()

    def chunks(self) -> Iterator[bytes]:
        for chunk in self._inner.chunks():
            self._on_bytes(len(chunk))
            yield chunk

    def __getattr__(self, name: str) -> object:
        # Encrypted bodies carry extra facts (plaintext MD5, metadata) the upload task reads through.
        return getattr(self._inner, name)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
