"""A file's identity now, and restic's re-check: a file whose size, mtime, inode or ctime changed
between the scan (or the start of reading) and the end of reading must not be recorded as synced
(invariant 1). Imports: the standard library and ``ks3sync.model``."""

from __future__ import annotations

import os
from pathlib import Path

from ks3sync.model import FileIdentity


def stat_identity(path: Path | str) -> FileIdentity | None:
    """The identity of the file at ``path`` (symlinks followed: this is what reading it sees), or
    ``None`` if it does not exist any more."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return FileIdentity(st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def identity_of_fd(fd: int) -> FileIdentity:
    """The identity of an open file (for a check against the very file that was read)."""
    st = os.fstat(fd)
    return FileIdentity(st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def changed_since(identity: FileIdentity, path: Path | str) -> bool:
    """True if the file at ``path`` is gone or differs in size, mtime, inode or ctime."""
    return stat_identity(path) != identity
