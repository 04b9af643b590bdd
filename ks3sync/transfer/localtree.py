"""The restore's hold on its target folder: every folder below it is reached by descriptor, never by
resolving a path a second time, and never through a symbolic link (invariant 6, also under races).

Why descriptors: a path that is checked and then used is resolved twice, and a folder swapped for a
symlink between the two sends the write elsewhere. Here the target folder is opened once (a symlink
in the user's own argument is followed then, once, as rsync does); each folder below it is opened
relative to its parent with ``O_NOFOLLOW | O_DIRECTORY`` (made with ``mkdir(dir_fd=)`` when missing);
files are created, renamed, stat'ed and removed by name relative to their folder's descriptor. A folder
that is renamed or swapped after it was opened keeps receiving what was meant for it; a symlink met on
the way is refused (``UnsafeKeyError``), whatever it points to (no ``--keep-dirlinks``, D9).

Open folders are cached for the pass, at most ``max_open`` of them (least recently used closed first;
a folder in use is never closed; the target folder itself stays open), and ``close()`` closes them all.

ks3sync's own state (the journal, its SQLite companion files, the state folder) is never written,
replaced, deleted or entered, whatever path leads to it (``StateGuard``).

Imports only ks3sync.errors.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ks3sync.errors import LocalFileError, UnsafeKeyError
from ks3sync.scan.filters import TMP_PREFIX as TMP_PREFIX  # downloads land in such a file before the rename

log = logging.getLogger(__name__)

DEFAULT_MAX_OPEN = 128  # folders kept open per pass: a restore's working set, well under RLIMIT_NOFILE
_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_ROUNDS = 4  # looks at a folder name that changes under the restore before giving up on it


class Folder:
    """One open folder of the target. Equal (and hashed) by the folder's identity (device, inode), so
    ``FolderSyncer`` shares one fsync among every descriptor of the same folder."""

    __slots__ = ("rel", "fd", "dev", "ino", "users", "cached")

    def __init__(self, rel: str, fd: int, dev: int, ino: int) -> None:
        self.rel = rel  # "" for the target folder itself, else "a/b"
        self.fd = fd
        self.dev = dev
        self.ino = ino
        self.users = 0  # leases held (guarded by the tree's lock); closed only at 0
        self.cached = True  # False once evicted or forgotten: closed when the last lease ends

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Folder) and (self.dev, self.ino) == (other.dev, other.ino)

    def __hash__(self) -> int:
        return hash((self.dev, self.ino))

    def __repr__(self) -> str:
        return f"Folder({self.rel!r}, fd={self.fd})"


def sync_folder(folder: Folder) -> None:
    """fsync a folder through its descriptor (``FolderSyncer``'s fsync for restores)."""
    os.fsync(folder.fd)


@dataclass(frozen=True, slots=True)
class StateGuard:
    """ks3sync's own files and folders, as the file system knows them: ``entries`` are (device, inode
    of a folder, name in it) for each of them, existing or not (an alias of the folder, such as a
    symlinked or bind-mounted path, has the same identity); ``ids`` are the (device, inode) of those
    that exist (a hard link has the same identity). ``names`` maps both to the path for messages."""

    entries: frozenset[tuple[int, int, str]] = frozenset()
    ids: frozenset[tuple[int, int]] = frozenset()
    names: tuple[tuple[object, str], ...] = ()

    @classmethod
    def of(cls, paths: Sequence[Path]) -> StateGuard:
        entries: set[tuple[int, int, str]] = set()
        ids: set[tuple[int, int]] = set()
        names: list[tuple[object, str]] = []
        for path in paths:
            path = Path(path)
            try:
                parent = os.stat(path.parent)
            except OSError:
                continue  # its folder does not exist: nothing of ks3sync's is there to protect
            entry = (parent.st_dev, parent.st_ino, path.name)
            entries.add(entry)
            names.append((entry, str(path)))
            try:
                own = os.stat(path)
            except OSError:
                continue
            ids.add((own.st_dev, own.st_ino))
            names.append(((own.st_dev, own.st_ino), str(path)))
        return cls(frozenset(entries), frozenset(ids), tuple(names))

    def _refuse(self, key: object, path: str) -> UnsafeKeyError:
        what = next((name for k, name in self.names if k == key), "ks3sync's state")
        return UnsafeKeyError(f"{path!r}: refusing to write or delete ks3sync's own state ({what})")

    def check_entry(self, folder: Folder, name: str, path: str) -> None:
        """Refuse ``name`` in ``folder`` when it is (or would be) one of ks3sync's own files."""
        if not self.entries:
            return
        entry = (folder.dev, folder.ino, name)
        if entry in self.entries:
            raise self._refuse(entry, path)
        if self.ids:
            try:
                st = os.stat(name, dir_fd=folder.fd, follow_symlinks=False)
            except OSError:
                return  # nothing there (or unreadable: the write itself reports that)
            self.check_identity(st, path)

    def check_identity(self, st: os.stat_result, path: str) -> None:
        key = (st.st_dev, st.st_ino)
        if key in self.ids:
            raise self._refuse(key, path)


class LocalTree:
    """The target folder of one restore pass. Thread-safe; ``close()`` once the pass is over."""

    def __init__(
        self, root: Path, state_paths: Sequence[Path] = (), *, max_open: int = DEFAULT_MAX_OPEN
    ) -> None:
        self.root = root
        self.guard = StateGuard.of(state_paths)
        self._max_open = max(1, max_open)
        self._lock = threading.Lock()
        self._open: OrderedDict[str, Folder] = OrderedDict()  # least recently used first
        self._closed = False
        self._root_lock = threading.Lock()  # the target folder is opened once, not once per racing worker

    # ------------------------------------------------------------------ folders

    @contextmanager
    def folder(self, folders: Sequence[str], path: str, *, create: bool) -> Iterator[Folder]:
        """The open folder ``folders`` (key segments below the target folder) while the block runs.
        Missing folders are made when ``create``; otherwise a missing one raises FileNotFoundError.
        A symlink on the way, or ks3sync's state folder, raises UnsafeKeyError; a file on the way
        raises LocalFileError. ``path`` (the key) names the entry in messages."""
        folder = self._acquire(folders, path, create)
        try:
            yield folder
        finally:
            self._release(folder)

    def _acquire(self, folders: Sequence[str], path: str, create: bool) -> Folder:
        rel = "/".join(folders)
        with self._lock:
            folder = self._open.get(rel)
            if folder is not None:
                folder.users += 1
                self._open.move_to_end(rel)
                return folder
        if not folders:
            return self._open_target(path)
        parent = self._acquire(folders[:-1], path, create)
        try:
            self.guard.check_entry(parent, folders[-1], path)
            fd = _open_child(parent.fd, folders[-1], create, path, rel)
        finally:
            self._release(parent)
        return self._install(rel, fd, path)

    def _open_target(self, path: str) -> Folder:
        with self._root_lock:  # once, not once per worker racing to the first restore
            with self._lock:
                root = self._open.get("")
                if root is not None:
                    root.users += 1
                    return root
            return self._install("", _open_root(self.root, path), path)

    def _install(self, rel: str, fd: int, path: str) -> Folder:
        """Cache the folder just opened as ``fd`` (leased once), or use the one another worker cached
        meanwhile."""
        try:
            st = os.fstat(fd)
            self.guard.check_identity(st, path)
        except BaseException:
            os.close(fd)
            raise
        folder = Folder(rel, fd, st.st_dev, st.st_ino)
        with self._lock:
            closed = self._closed
            existing = None if closed else self._open.get(rel)
            if closed or existing is not None:
                victims = [folder]  # not needed: the pass is over, or another worker opened it meanwhile
                if existing is not None:
                    existing.users += 1
            else:
                folder.users = 1
                self._open[rel] = folder
                victims = self._evict()
        for victim in victims:
            os.close(victim.fd)
        if closed:
            raise LocalFileError(f"{path}: the restore is over; not written")
        return existing if existing is not None else folder

    def _evict(self) -> list[Folder]:
        """Under the lock: take unused folders out, oldest first, until at most ``max_open`` are open.
        The target folder stays (it is opened once per pass); folders in use stay too."""
        victims: list[Folder] = []
        excess = len(self._open) - self._max_open
        if excess <= 0:
            return victims
        for rel, folder in self._open.items():
            if folder.users == 0 and rel != "":
                victims.append(folder)
                if len(victims) == excess:
                    break
        for folder in victims:
            del self._open[folder.rel]
            folder.cached = False
        return victims

    def _release(self, folder: Folder) -> None:
        with self._lock:
            folder.users -= 1
            close = folder.users == 0 and not folder.cached
        if close:
            os.close(folder.fd)

    def forget(self, rel: str) -> None:
        """``rel`` was removed: close it and everything cached below it (once no longer in use)."""
        below = rel + "/"
        with self._lock:
            gone = [f for key, f in self._open.items() if key == rel or key.startswith(below)]
            for folder in gone:
                del self._open[folder.rel]
                folder.cached = False
            idle = [folder for folder in gone if folder.users == 0]
        for folder in idle:
            os.close(folder.fd)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            folders = list(self._open.values())
            self._open.clear()
            for folder in folders:
                folder.cached = False
            idle = [folder for folder in folders if folder.users == 0]
        for folder in idle:
            os.close(folder.fd)

    # ------------------------------------------------------------------ entries

    def create_temp(self, folder: Folder, path: str) -> tuple[str, int]:
        """A new, empty temp file in ``folder``; returns (its name, a descriptor open for reading and writing:
        a ranged restore reads back what it wrote, ranged.py)."""
        name = f"{TMP_PREFIX}{os.urandom(16).hex()}"
        try:
            return name, os.open(name, _NEW_FILE_FLAGS, 0o666, dir_fd=folder.fd)
        except OSError as exc:
            raise LocalFileError(
                f"{path}: cannot create a temp file in its folder: {exc.strerror or exc}"
            ) from exc

    def remove_temp(self, folder: Folder, name: str) -> None:
        try:
            os.unlink(name, dir_fd=folder.fd)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning(
                "cannot remove temp file %s in %s: %s", name, self.root / folder.rel, exc.strerror or exc
            )

    def replace(self, folder: Folder, tmp: str, name: str, path: str) -> None:
        """Rename ``tmp`` over ``name`` in ``folder`` (a symlink named ``name`` is replaced, not followed).
        The caller has checked ``name`` with ``guard.check_entry`` (by folder identity: no race)."""
        try:
            os.rename(tmp, name, src_dir_fd=folder.fd, dst_dir_fd=folder.fd)
        except IsADirectoryError as exc:  # rename() never replaces a folder
            raise LocalFileError(f"{path}: exists locally as a folder") from exc
        except OSError as exc:
            raise LocalFileError(f"{path}: {exc.strerror or exc}") from exc

    def delete(self, folders: Sequence[str], name: str, path: str) -> bool:
        """Remove the file ``name`` in ``folders``, then the folders that became empty (never the target
        folder). Returns False if there was nothing to remove."""
        try:
            with self.folder(folders, path, create=False) as folder:
                self.guard.check_entry(folder, name, path)
                os.unlink(name, dir_fd=folder.fd)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise LocalFileError(f"{path}: cannot delete: {exc.strerror or exc}") from exc
        self._prune(folders, path)
        return True

    def _prune(self, folders: Sequence[str], path: str) -> None:
        for depth in range(len(folders), 0, -1):
            try:
                with self.folder(folders[: depth - 1], path, create=False) as parent:
                    self.guard.check_entry(parent, folders[depth - 1], path)
                    os.rmdir(folders[depth - 1], dir_fd=parent.fd)  # never follows a symlink
            except (OSError, UnsafeKeyError, LocalFileError):
                return  # not empty, not a folder, or not ours to remove: stop pruning here
            self.forget("/".join(folders[:depth]))


def _open_root(root: Path, path: str) -> int:
    try:
        return os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise LocalFileError(f"{path}: cannot open the target folder {root}: {exc.strerror or exc}") from exc


def _open_child(parent_fd: int, name: str, create: bool, path: str, rel: str) -> int:
    """Open (or make, with ``create``) the folder ``name`` in ``parent_fd`` without following a symlink.
    The name may change between the calls (another worker, or someone racing the restore): each round
    looks again, and a name that keeps changing is refused after a few."""
    for _ in range(_OPEN_ROUNDS):
        try:
            return os.open(name, _FOLDER_FLAGS, dir_fd=parent_fd)
        except FileNotFoundError:
            if not create:
                raise
            try:
                os.mkdir(name, 0o777, dir_fd=parent_fd)
            except FileExistsError:
                pass  # made meanwhile (by another worker, or someone else): the next open decides what it is
            except OSError as exc:
                raise _folder_error(path, rel, exc) from exc
        except OSError as exc:
            if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                raise _folder_error(path, rel, exc) from exc
            # O_NOFOLLOW | O_DIRECTORY fails the same way on a symlink and on a file: tell them apart.
            try:
                mode = os.stat(name, dir_fd=parent_fd, follow_symlinks=False).st_mode
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(mode):
                raise UnsafeKeyError(
                    f"{path!r}: {rel!r} is a symbolic link inside the target folder; a restore does not write through it"
                ) from exc
            if not stat.S_ISDIR(mode):
                raise LocalFileError(f"{path}: a parent of it exists locally as a file") from exc
            # A folder by now: it changed since the open; look again.
    raise LocalFileError(f"{path}: its folder {rel!r} keeps changing while it is opened; not restored")


def _folder_error(path: str, rel: str, exc: OSError) -> LocalFileError:
    return LocalFileError(f"{path}: cannot open or create its folder {rel!r}: {exc.strerror or exc}")


def prepare_restore_root(root: Path) -> int:
    """Make ``root`` ready for a restore: created if missing, without the temp files a killed restore
    left in it. Returns how many temp files were removed."""
    root.mkdir(parents=True, exist_ok=True)
    return remove_stale_temp_files(root)


def remove_stale_temp_files(root: Path) -> int:
    """Delete ``.ks3sync-tmp-*`` files a killed restore left behind (the scan never shows them). Walks by
    descriptor (``os.fwalk``: symlinked folders are not entered, a folder swapped for one midway is
    detected) and removes only regular files. Returns how many were removed."""
    removed = 0
    for folder, _, files, dir_fd in os.fwalk(root, follow_symlinks=False):
        for name in files:
            if not name.startswith(TMP_PREFIX):
                continue
            try:
                if stat.S_ISREG(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                    os.unlink(name, dir_fd=dir_fd)
                    removed += 1
            except FileNotFoundError:
                continue  # gone already
            except OSError as exc:
                log.warning("cannot remove stale temp file %s: %s", Path(folder) / name, exc.strerror or exc)
    if removed:
        log.info("removed %d temp files left by an interrupted restore", removed)
    return removed
