"""Where plaintext comes from: a byte range of a file or an in-memory buffer, re-readable from the
start any number of times (an encrypted body is read once to hash it and again to send it, and again on
every retry). Imports only ``errors`` from ks3sync.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from ks3sync.crypto.errors import SourceChangedError


class PlaintextSource(Protocol):
    @property
    def length(self) -> int: ...

    def open(self) -> io.RawIOBase | io.BufferedIOBase:
        """A binary reader positioned at the start of the plaintext (the caller closes it)."""
        ...


@dataclass(frozen=True, slots=True)
class FileSlice:
    """``length`` bytes of ``path`` from ``offset``. Read unbuffered: reads are large and land straight
    in the encryptor's buffer, so a buffered reader would only add a copy."""

    path: str
    offset: int = 0
    length: int = -1  # -1: to the end of the file, measured now

    def __post_init__(self) -> None:
        path = os.fspath(self.path)
        object.__setattr__(self, "path", path)
        if self.offset < 0:
            raise ValueError(f"offset must be >= 0, got {self.offset}")
        if self.length < 0:
            object.__setattr__(self, "length", max(os.stat(path).st_size - self.offset, 0))

    def open(self) -> io.RawIOBase | io.BufferedIOBase:
        handle = open(self.path, "rb", buffering=0)
        if self.offset:
            handle.seek(self.offset)
        return handle


@dataclass(frozen=True, slots=True)
class BytesSource:
    data: bytes | bytearray | memoryview = field(repr=False)

    @property
    def length(self) -> int:
        return memoryview(self.data).nbytes

    def open(self) -> io.RawIOBase | io.BufferedIOBase:
        return io.BytesIO(self.data)


@contextmanager
def opened(source: PlaintextSource) -> Iterator[io.RawIOBase | io.BufferedIOBase]:
    handle = source.open()
    try:
        yield handle
    finally:
        handle.close()


def read_exactly(
    handle: io.RawIOBase | io.BufferedIOBase, view: memoryview, source: PlaintextSource, remaining: int
) -> None:
    """Fill ``view`` completely from ``handle``. ``remaining`` (bytes still owed by the source, this read
    included) only makes the message exact. Raises SourceChangedError if the source ends early (the file
    shrank while it was read)."""
    got = 0
    want = len(view)
    while got < want:
        n = handle.readinto(view[got:])
        if not n:
            raise SourceChangedError(
                f"{_describe(source)} ended {remaining - got} bytes early (changed while reading)"
            )
        got += n


def _describe(source: PlaintextSource) -> str:
    if isinstance(source, FileSlice):
        return f"{source.path} (bytes {source.offset}..{source.offset + source.length - 1})"
    return "plaintext buffer"
