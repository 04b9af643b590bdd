"""Local-file facts the transfer tasks rely on: identities (restic's size/mtime/inode/ctime rule),
the "did it change while I read it" re-check (invariant 1), and one-pass MD5 + CRC-64 hashing.

OSErrors become ks3sync.errors classes here, at the file-system boundary.
Must not import: the store, the journal, the CLI.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from ks3sync.errors import FileChangedError, LocalFileError
from ks3sync.model import FileIdentity
from ks3sync.store.checksums import crc64_update

READ_CHUNK = 1024 * 1024


def identity_of(st: os.stat_result) -> FileIdentity:
    return FileIdentity(size=st.st_size, mtime_ns=st.st_mtime_ns, inode=st.st_ino, ctime_ns=st.st_ctime_ns)


def local_error(path: str, exc: OSError) -> LocalFileError | FileChangedError:
    """Map an OSError on ``path`` to the app tree (a file that vanished mid-pass changed, too)."""
    if exc.errno == errno.ENOENT:
        return FileChangedError(f"{path}: file vanished while it was being synced")
    return LocalFileError(f"{path}: {exc.strerror or exc}")


def open_for_read(path: str, abs_path: Path) -> tuple[int, FileIdentity]:
    """Open a regular file; returns (fd, identity at open)."""
    try:
        # O_NONBLOCK: a path swapped for a FIFO after the scan must not hang the worker (fstat rejects it).
        fd = os.open(abs_path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise local_error(path, exc) from exc
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise LocalFileError(f"{path}: not a regular file")
    return fd, identity_of(st)


def check_unchanged(path: str, abs_path: Path, fd: int, before: FileIdentity) -> None:
    """Raise FileChangedError unless the open file and the name both still show ``before``."""
    try:
        after_fd = identity_of(os.fstat(fd))
        after_name = identity_of(os.stat(abs_path))
    except OSError as exc:
        raise local_error(path, exc) from exc
    if after_fd != before or after_name != before:
        raise FileChangedError(f"{path}: file changed while it was read; not recorded")


@dataclass(frozen=True, slots=True)
class FileDigest:
    md5: str
    crc64: int
    size: int
    identity: FileIdentity


def hash_file(path: str, abs_path: Path) -> FileDigest:
    """MD5 + CRC-64 in one read; raises FileChangedError if the file changed meanwhile."""
    fd, before = open_for_read(path, abs_path)
    try:
        md5 = hashlib.md5()  # noqa: S324 - content identity, the protocol's checksum
        crc = 0
        size = 0
        while chunk := _read(path, fd, READ_CHUNK):
            md5.update(chunk)
            crc = crc64_update(crc, chunk)
            size += len(chunk)
        if size != before.size:
            raise FileChangedError(f"{path}: file changed while it was read; not recorded")
        check_unchanged(path, abs_path, fd, before)
    finally:
        os.close(fd)
    return FileDigest(md5.hexdigest(), crc, size, before)


def _read(path: str, fd: int, n: int) -> bytes:
    try:
        return os.read(fd, n)
    except OSError as exc:
        raise local_error(path, exc) from exc


def read_exactly(path: str, fd: int, offset: int, n: int) -> bytes:
    """``n`` bytes at ``offset``; a short read means the file shrank under us."""
    chunks: list[bytes] = []
    got = 0
    while got < n:
        try:
            chunk = os.pread(fd, n - got, offset + got)
        except OSError as exc:
            raise local_error(path, exc) from exc
        if not chunk:
            raise FileChangedError(f"{path}: file shrank while it was read; not recorded")
        chunks.append(chunk)
        got += len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
