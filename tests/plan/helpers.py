"""Builders for planner tests: local files, remote objects and journal records from small specs."""

from __future__ import annotations

import hashlib

from ks3sync.model import FileIdentity, LocalEntry, RemoteEntry, SyncedEntry


def md5(content: bytes) -> str:
    return hashlib.md5(content).hexdigest()


def ident(size: int, mtime: int = 1, inode: int = 1, ctime: int = 1) -> FileIdentity:
    return FileIdentity(size=size, mtime_ns=mtime, inode=inode, ctime_ns=ctime)


def local(
    path: str, content: bytes, *, mtime: int = 1, inode: int = 1, ctime: int = 1, hashed: bool = False
) -> LocalEntry:
    return LocalEntry(path, ident(len(content), mtime, inode, ctime), md5(content) if hashed else None)


def remote(path: str, content: bytes, *, multipart: bool = False) -> RemoteEntry:
    etag = md5(content) + "-2" if multipart else md5(content)
    return RemoteEntry(path, len(content), etag)


def record(entry: LocalEntry, content: bytes, obj: RemoteEntry, *, encrypted: bool = False) -> SyncedEntry:
    return SyncedEntry(entry.path, entry.identity, md5(content), obj.etag, obj.size, encrypted)
