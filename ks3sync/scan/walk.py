"""``scan_tree``: the local side of a sync as ``LocalEntry`` values in UTF-8 byte order of their
relative path, plus ``ScanProblem`` values for what cannot be synced.

Order: KS3 lists keys in UTF-8 byte order, and the planner marches both sides in that order. Sorting
each folder's names and recursing is *not* that order: "a/b" sorts after "a-b" and "a.b" ('/' is 0x2F,
after '-' 0x2D and '.' 0x2E), yet a naive walk emits folder "a"'s files first. So each folder's entries
are sorted by their name bytes with "/" appended to folder names: a folder's key then compares with
its siblings exactly as every path below it does (no sibling name contains "/").

Names are read as bytes (``os.scandir`` on a bytes path), so a name that is not valid UTF-8 is seen as
such whatever the locale, and reported, never guessed. Problems carry a printable path (invalid bytes
shown as ``\\xNN``).

Imports: the standard library, ``ks3sync.model`` and the sibling ``filters`` module.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ks3sync.model import FileIdentity, LocalEntry
from ks3sync.scan.filters import IGNORE_FILE, Filters, FiltersError, RuleSet, load_ignore_file

MAX_KEY_BYTES = 1024
_IGNORE_FILE_B = IGNORE_FILE.encode()


@dataclass(frozen=True, slots=True)
class ScanProblem:
    """Something under the root that is not synced, and why. ``path`` is relative and printable
    ("" is the root itself); ``kind`` is one of ``KINDS`` for callers that count or filter."""

    path: str
    reason: str
    kind: str = "unreadable"

    def __str__(self) -> str:
        return f"{self.path or '.'}: {self.reason}"


KINDS = ("name", "too-long", "unreadable", "special", "symlink", "loop", "vanished", "ignore-file")


class ScanRootError(OSError):
    """The root itself is missing or not a folder: a configuration error, not a per-entry problem."""


class ScanWorkerError(RuntimeError):
    """A scan run by a child process (``ks3sync.scan.worker``) failed or stopped early; a partial
    scan must never be used (files it did not reach would look deleted)."""


@dataclass(slots=True)
class _Folder:
    """One folder being walked: its sorted entries and where we are in them."""

    rel: str  # "" or "dir/sub/"
    rel_bytes: int  # len(rel.encode())
    entries: list[tuple[bytes, str, os.DirEntry[bytes], bool]]  # (sort key, name, entry, is_dir)
    index: int
    ignore_files: tuple[RuleSet, ...]
    ancestors: frozenset[tuple[int, int]]  # (dev, inode) of folders on the way here (loop check)


def scan_tree(
    root: Path,
    filters: Filters,
    *,
    follow_symlinks: bool = False,
    key_prefix: str = "",
) -> Iterator[LocalEntry | ScanProblem]:
    """Walk ``root``. Never raises for a single bad entry; raises :class:`ScanRootError` if ``root``
    is missing or not a folder. ``key_prefix`` only counts towards the 1,024-byte key limit. Entries are
    produced lazily: the mirror marches them against the listing and the journal without keeping them."""
    root = Path(root)
    try:
        root_stat = os.stat(root)
    except OSError as exc:
        raise ScanRootError(exc.errno, f"{root}: cannot use as the source folder: {exc.strerror}") from exc
    if not stat.S_ISDIR(root_stat.st_mode):
        raise ScanRootError(errno.ENOTDIR, f"{root}: not a folder")
    prefix_bytes = len(key_prefix.encode("utf-8"))
    root_b = os.fsencode(root)

    first, problems = _open_folder(
        root_b, "", 0, (), frozenset({(root_stat.st_dev, root_stat.st_ino)}), filters, follow_symlinks
    )
    yield from problems
    stack = [first] if first is not None else []
    while stack:
        folder = stack[-1]
        if folder.index >= len(folder.entries):
            stack.pop()
            continue
        _key, name, entry, is_dir = folder.entries[folder.index]
        folder.index += 1
        rel = folder.rel + name
        if is_dir:
            identity = _dir_identity(entry, follow_symlinks)
            if identity is not None and identity in folder.ancestors:
                yield ScanProblem(
                    rel, "symbolic link loop: leads back to a folder above it (skipped)", "loop"
                )
                continue
            ancestors = folder.ancestors | {identity} if identity is not None else folder.ancestors
            child, problems = _open_folder(
                entry.path,
                rel + "/",
                folder.rel_bytes + len(entry.name) + 1,
                folder.ignore_files,
                ancestors,
                filters,
                follow_symlinks,
            )
            yield from problems
            if child is not None:
                stack.append(child)
            continue
        item = _file_item(entry, rel, folder.rel_bytes + len(entry.name), prefix_bytes, follow_symlinks)
        if item is not None:
            yield item


def _open_folder(
    path_b: bytes,
    rel: str,
    rel_bytes: int,
    ignore_files: tuple[RuleSet, ...],
    ancestors: frozenset[tuple[int, int]],
    filters: Filters,
    follow_symlinks: bool,
) -> tuple[_Folder | None, list[ScanProblem]]:
    problems: list[ScanProblem] = []
    display = rel.rstrip("/")
    try:
        with os.scandir(path_b) as it:
            raw = list(it)
    except FileNotFoundError:
        return None, [ScanProblem(display, "folder vanished during the scan", "vanished")]
    except OSError as exc:
        return None, [ScanProblem(display, f"cannot read folder: {exc.strerror}", "unreadable")]

    # This folder's .ks3ignore applies to everything below it.
    if filters.read_ignore_files and any(e.name == _IGNORE_FILE_B for e in raw):
        try:
            rules = load_ignore_file(Path(os.fsdecode(path_b)) / IGNORE_FILE, rel)
        except (OSError, FiltersError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            problems.append(
                ScanProblem(rel + IGNORE_FILE, f"cannot use ignore file: {reason}", "ignore-file")
            )
        else:
            if rules is not None:
                ignore_files = (*ignore_files, rules)

    entries: list[tuple[bytes, str, os.DirEntry[bytes], bool]] = []
    for entry in raw:
        name_b = entry.name
        try:
            name = name_b.decode("utf-8")
        except UnicodeDecodeError:
            shown = rel + name_b.decode("utf-8", "backslashreplace")
            problems.append(ScanProblem(shown, "name is not valid UTF-8 (cannot be a KS3 key)", "name"))
            continue
        is_dir = _is_dir(entry, follow_symlinks)
        child_rel = rel + name
        if filters.always_excluded(child_rel, name) or filters.decide(child_rel, is_dir, ignore_files):
            continue
        entries.append((name_b + b"/" if is_dir else name_b, name, entry, is_dir))
    entries.sort(key=lambda e: e[0])
    return _Folder(rel, rel_bytes, entries, 0, ignore_files, ancestors), problems


def _is_dir(entry: os.DirEntry[bytes], follow_symlinks: bool) -> bool:
    try:
        if entry.is_dir(follow_symlinks=False):
            return True
        return follow_symlinks and entry.is_symlink() and entry.is_dir(follow_symlinks=True)
    except OSError:
        return False  # decided (and reported) when the entry is looked at as a file


def _dir_identity(entry: os.DirEntry[bytes], follow_symlinks: bool) -> tuple[int, int] | None:
    if not follow_symlinks:
        return None  # without following links the tree cannot loop
    try:
        st = entry.stat(follow_symlinks=True)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _file_item(
    entry: os.DirEntry[bytes], rel: str, rel_bytes: int, prefix_bytes: int, follow_symlinks: bool
) -> LocalEntry | ScanProblem | None:
    try:
        st = entry.stat(follow_symlinks=False)
    except FileNotFoundError:
        return None  # deleted since the folder was listed: simply not part of the source
    except OSError as exc:
        return ScanProblem(rel, f"cannot stat: {exc.strerror}", "unreadable")
    if stat.S_ISLNK(st.st_mode):
        if not follow_symlinks:
            return ScanProblem(rel, "symbolic link (not followed; use --follow-symlinks)", "symlink")
        try:
            st = entry.stat(follow_symlinks=True)
        except FileNotFoundError:
            return ScanProblem(rel, "broken symbolic link", "symlink")
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return ScanProblem(rel, "symbolic link loop", "loop")
            return ScanProblem(rel, f"cannot follow symbolic link: {exc.strerror}", "unreadable")
    if not stat.S_ISREG(st.st_mode):
        return ScanProblem(rel, f"special file ({_kind_name(st.st_mode)}): not synced", "special")
    key_bytes = prefix_bytes + rel_bytes
    if key_bytes > MAX_KEY_BYTES:
        return ScanProblem(
            rel, f"key would be {key_bytes} bytes, over KS3's {MAX_KEY_BYTES}-byte limit", "too-long"
        )
    # Not world-readable: ask the kernel (cheap enough for the few files this applies to).
    if not st.st_mode & stat.S_IROTH and not os.access(entry.path, os.R_OK):
        return ScanProblem(rel, "file is not readable (permission denied)", "unreadable")
    return LocalEntry(rel, FileIdentity(st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns))


def _kind_name(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISBLK(mode):
        return "block device"
    if stat.S_ISDIR(mode):
        return "folder"
    return f"mode {stat.S_IFMT(mode):o}"
