"""Request bodies for the Store (structurally ``ks3sync.ks3.Body``: length, MD5 up front, re-iterable so
the client's one retry wrapper can resend from the start), plus a metering wrapper that feeds the shared
bandwidth limiter and the progress subscribers as bytes leave.

Must not import: ks3sync.ks3 (bodies are duck-typed), the journal, the CLI.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable, Iterator
from typing import Any

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
        if isinstance(self._data, bytes) and self.length <= CHUNK:
            if self.length:
                yield self._data  # the common small file: sent as read, no copy
            return
        view = memoryview(self._data)
        for start in range(0, self.length, CHUNK):
            yield bytes(view[start : start + CHUNK])


class FileBody:
    """A byte range of an open file, read with ``pread`` on every attempt (never whole in memory). The
    caller keeps ``fd`` open for the body's life: reading the descriptor that was hashed, not the name,
    means a file swapped under the same name cannot slip other bytes into the request."""

    __slots__ = ("_fd", "_offset", "_md5", "length")

    def __init__(self, fd: int, offset: int, length: int, md5: bytes) -> None:
        self._fd = fd
        self._offset = offset
        self.length = length
        self._md5 = md5

    def content_md5(self) -> bytes:
        return self._md5

    def chunks(self) -> Iterator[bytes]:
        # A file that shrank yields fewer bytes; the server then rejects the body (length/MD5 mismatch).
        position = self._offset
        end = self._offset + self.length
        while position < end:
            chunk = os.pread(self._fd, min(CHUNK, end - position), position)
            if not chunk:
                return
            position += len(chunk)
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


class _PreadReader(io.RawIOBase):
    """A reader over ``[offset, offset + length)`` of an open descriptor, by pread (own position)."""

    def __init__(self, fd: int, offset: int, length: int) -> None:
        super().__init__()
        self._fd = fd
        self._position = offset
        self._end = offset + length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._end - self._position)
        if want <= 0:
            return 0
        chunk = os.pread(self._fd, want, self._position)
        view[: len(chunk)] = chunk
        self._position += len(chunk)
        return len(chunk)

    def close(self) -> None:
        # The descriptor belongs to the upload task, which closes it when the upload ends.
        super().close()


class FdSource:
    """A plaintext source for ks3sync.crypto (``length`` + ``open()``) reading an already-open file."""

    def __init__(self, fd: int, offset: int, length: int) -> None:
        self._fd = fd
        self._offset = offset
        self._length = length

    @property
    def length(self) -> int:
        return self._length

    def open(self) -> io.RawIOBase:
        return _PreadReader(self._fd, self._offset, self._length)
