"""Local-file facts the transfer tasks rely on: identities (restic's size/mtime/inode/ctime rule),
the "did it change while I read it" re-check (invariant 1), and one-pass hashing: MD5 + CRC-64 of a
file by name (``hash_file``), MD5 (+ SHA-256 for an integrity tag) of an open file (``content_digests``),
MD5s of many files on a thread pool (``hash_files``: the planner's copy candidates).

OSErrors become ks3sync.errors classes here, at the file-system boundary.
Must not import: the store, the journal, the CLI.
"""

from __future__ import annotations

import concurrent.futures
import errno
import hashlib
import logging
import os
import stat
from collections.abc import Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from pathlib import Path

from ks3sync.errors import FileChangedError, Ks3SyncError, LocalFileError
from ks3sync.model import FileIdentity, LocalEntry
from ks3sync.store.checksums import crc64_update

log = logging.getLogger(__name__)

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
    sha256: bytes | None = None  # only when asked for (the integrity tag of an encrypted object)


def hash_file(path: str, abs_path: Path, *, sha256: bool = False) -> FileDigest:
    """MD5 + CRC-64 (+ SHA-256) in one read; raises FileChangedError if the file changed meanwhile."""
    fd, before = open_for_read(path, abs_path)
    try:
        md5 = hashlib.md5()  # noqa: S324 - content identity, the protocol's checksum
        sha = hashlib.sha256() if sha256 else None
        crc = 0
        size = 0
        while chunk := _read(path, fd, READ_CHUNK):
            md5.update(chunk)
            crc = crc64_update(crc, chunk)
            if sha is not None:
                sha.update(chunk)
            size += len(chunk)
        if size != before.size:
            raise FileChangedError(f"{path}: file changed while it was read; not recorded")
        check_unchanged(path, abs_path, fd, before)
    finally:
        os.close(fd)
    return FileDigest(md5.hexdigest(), crc, size, before, sha.digest() if sha is not None else None)


DIGEST_CHUNK = 4 * 1024 * 1024


def hash_files(root: Path, entries: Sequence[LocalEntry], jobs: int) -> dict[str, str]:
    """MD5 by path of new local files that could be renames or duplicates (the planner's
    ``hash_candidates``), on ``jobs`` threads; a file that cannot be hashed stays unhashed (its upload
    will report the problem)."""
    if not entries:
        return {}

    def digest(entry: LocalEntry) -> str | None:
        try:
            return hash_file(entry.path, root / entry.path).md5
        except (Ks3SyncError, OSError) as exc:
            log.debug("could not hash %s for copy detection: %s", entry.path, exc)
            return None

    with concurrent.futures.ThreadPoolExecutor(max(1, jobs)) as pool:
        return {
            entry.path: md5
            for entry, md5 in zip(entries, pool.map(digest, entries), strict=True)
            if md5 is not None
        }


def content_digests(
    path: str, fd: int, size: int, *, sha256: bool = False, pool: Executor | None = None
) -> tuple[bytes, bytes | None]:
    """MD5 (and SHA-256) of the first ``size`` bytes of an open file, in one read; a short read raises
    FileChangedError. With ``pool``, the SHA-256 of each chunk runs there while this thread reads the
    next chunk and hashes it with MD5 (hashlib releases the GIL): the pre-pass of an encrypted multipart
    upload then costs ~max(MD5, SHA-256) of wall time, not their sum. Two buffers take turns, so a chunk
    is never overwritten while it is being hashed."""
    md5 = hashlib.md5()  # noqa: S324 - the protocol's content checksum
    sha = hashlib.sha256() if sha256 else None
    buffers = [bytearray(min(DIGEST_CHUNK, size)), bytearray(min(DIGEST_CHUNK, size) if pool else 0)]
    pending: Future[None] | None = None
    offset = turn = 0
    try:
        while offset < size:
            n = min(DIGEST_CHUNK, size - offset)
            view = memoryview(buffers[turn])[:n]
            _pread_into(path, fd, view, offset)
            md5.update(view)
            if sha is not None:
                if pool is None:
                    sha.update(view)
                else:
                    if pending is not None:
                        pending.result()  # the other buffer is free again
                    pending = pool.submit(sha.update, view)
                    turn ^= 1
            offset += n
    finally:
        if pending is not None:
            pending.result()
    return md5.digest(), sha.digest() if sha is not None else None


def _pread_into(path: str, fd: int, view: memoryview, offset: int) -> None:
    got = 0
    while got < len(view):
        try:
            n = os.preadv(fd, [view[got:]], offset + got)
        except OSError as exc:
            raise local_error(path, exc) from exc
        if not n:
            raise FileChangedError(f"{path}: file shrank while it was read; not recorded")
        got += n


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
