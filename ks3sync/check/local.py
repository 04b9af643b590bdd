"""Reading a local file for ``ks3sync check``: one read computes whatever the comparison asked for (MD5,
CRC-64, SHA-256 for an integrity tag, multipart ETags for several part sizes at once), and a file that
changed while it was read is an error, never a verdict (restic's rule: size, mtime, inode and ctime
before and after).

Paths are plain strings (``os.path.join(root, path)``): ``pathlib`` interns every name it parses, and
the interpreter's table of interned strings grows with the number of files and never shrinks.

OSErrors become ks3sync.errors classes here. Imports ``ks3sync.errors``, ``ks3sync.model``,
``ks3sync.scan.identity``, ``ks3sync.store.checksums`` and the sibling ``compare``.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat

from ks3sync.check.compare import Hashes, LocalDigest
from ks3sync.errors import FileChangedError, LocalFileError
from ks3sync.model import FileIdentity
from ks3sync.scan.identity import identity_of_fd, stat_identity
from ks3sync.store.checksums import crc64_update, multipart_etag

READ_CHUNK = 1024 * 1024


def open_local(path: str, abs_path: str) -> tuple[int, FileIdentity]:
    """Open a regular file for reading; returns (fd, identity at open)."""
    try:
        # O_NONBLOCK: a path swapped for a FIFO after the scan must not hang a worker (fstat rejects it).
        fd = os.open(abs_path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise _error(path, exc) from exc
    identity = identity_of_fd(fd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise LocalFileError(f"{path}: not a regular file any more")
    return fd, identity


def read_chunk(path: str, fd: int, size: int = READ_CHUNK) -> bytes:
    try:
        return os.read(fd, size)
    except OSError as exc:
        raise _error(path, exc) from exc


def ensure_unchanged(path: str, abs_path: str, fd: int, before: FileIdentity) -> None:
    """FileChangedError unless the open file and its name both still show ``before``."""
    if identity_of_fd(fd) != before or stat_identity(abs_path) != before:
        raise FileChangedError(f"{path}: the file changed while it was read; compare again")


def digest_file(path: str, abs_path: str, hashes: Hashes) -> LocalDigest:
    """The file's size and what ``hashes`` asks for, from one sequential read."""
    fd, before = open_local(path, abs_path)
    try:
        md5 = hashlib.md5(usedforsecurity=False) if hashes.md5 else None
        sha = hashlib.sha256() if hashes.sha256 else None
        crc = 0
        parts = [_PartDigests(size) for size in hashes.part_sizes]
        size = 0
        # No 1 MiB buffer for a small file: read what the file should hold (and a little more, to see
        # it end or grow).
        while chunk := read_chunk(path, fd, min(READ_CHUNK, max(before.size - size + 1, 64 * 1024))):
            size += len(chunk)
            if md5 is not None:
                md5.update(chunk)
            if sha is not None:
                sha.update(chunk)
            if hashes.crc64:
                crc = crc64_update(crc, chunk)
            for part in parts:
                part.update(chunk)
        ensure_unchanged(path, abs_path, fd, before)
    finally:
        os.close(fd)
    return LocalDigest(
        size=size,
        md5=md5.hexdigest() if md5 is not None else None,
        crc64=crc if hashes.crc64 else None,
        sha256=sha.digest() if sha is not None else None,
        multipart_etags=tuple((part.part_size, part.etag()) for part in parts),
    )


class _PartDigests:
    """The MD5 of each ``part_size`` slice of a stream, for the S3-style multipart ETag."""

    __slots__ = ("part_size", "_current", "_filled", "_digests")

    def __init__(self, part_size: int) -> None:
        self.part_size = part_size
        self._current = hashlib.md5(usedforsecurity=False)
        self._filled = 0
        self._digests: list[str] = []

    def update(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            take = min(len(view), self.part_size - self._filled)
            self._current.update(view[:take])
            self._filled += take
            view = view[take:]
            if self._filled == self.part_size:
                self._digests.append(self._current.hexdigest())
                self._current = hashlib.md5(usedforsecurity=False)
                self._filled = 0

    def etag(self) -> str:
        digests = list(self._digests)
        if self._filled or not digests:
            digests.append(self._current.hexdigest())
        return multipart_etag(digests)


def _error(path: str, exc: OSError) -> LocalFileError | FileChangedError:
    if exc.errno == errno.ENOENT:
        return FileChangedError(f"{path}: the file vanished after the scan")
    return LocalFileError(f"{path}: {exc.strerror or exc}")
