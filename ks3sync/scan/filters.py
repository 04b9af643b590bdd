"""Which paths a sync leaves alone: gitignore-syntax rules from ``--exclude``, ``--exclude-from``
files and ``.ks3ignore`` files (in the root and in any sub-folder, each relative to its folder, like
``.gitignore``), plus ks3sync's own files, which are always excluded.

Precedence, lowest to highest (the last rule that matches decides, so a ``!pattern`` can re-include):
``.ks3ignore`` files from the root down to the path's own folder, then ``--exclude-from`` files, then
``--exclude`` patterns. As in git, a file inside an excluded folder cannot be re-included: the walk
never enters an excluded folder.

The same rules judge remote keys (relative to the sync prefix): :meth:`Filters.exclusion` reads the
``.ks3ignore`` files of the *local* folders a key would live in, so a rule file only known locally
still protects the objects it matches (a key ending in ``/``, a folder placeholder, is judged as that
folder). ks3sync's own files are excluded too; a walk never shows them, even one without the rules
(:meth:`Filters.without_rules`), so no option can delete them locally.

Imports: pathspec (lazily, only when there are patterns), the standard library and ``ks3sync.model``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ks3sync.model import Exclusion

if TYPE_CHECKING:
    import pathspec

IGNORE_FILE = ".ks3ignore"
TMP_PREFIX = ".ks3sync-tmp-"  # the executor's download temp files (see ks3sync.transfer)
# A SQLite database and the files that travel with it (write-ahead log, shared memory, rollback
# journal, the dot-file lock of SQLite's unix-dotfile locking).
SQLITE_SIDECARS = ("", "-wal", "-shm", "-journal", ".lock")


def state_files(state_paths: Sequence[Path]) -> tuple[Path, ...]:
    """ks3sync's own files for ``state_paths`` (the journal, the state folder): each path and its
    SQLite companions. A sync never uploads them, a restore never writes or deletes them."""
    return tuple(Path(p).with_name(Path(p).name + suffix) for p in state_paths for suffix in SQLITE_SIDECARS)


class FiltersError(ValueError):
    """A rule source cannot be used (missing ``--exclude-from`` file, bad pattern): one line naming it."""


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Patterns that apply below ``base`` (a relative folder path ending in ``/``, or ``""``)."""

    base: str
    spec: pathspec.PathSpec
    origin: str  # where the patterns came from, for messages

    def verdict(self, rel: str, is_dir: bool) -> bool | None:
        """True: excluded, False: re-included by a ``!`` pattern, None: no pattern matched."""
        if not rel.startswith(self.base):
            return None
        sub = rel[len(self.base) :]
        return self.spec.check_file(sub + "/" if is_dir else sub).include


def parse_rules(lines: Sequence[str], base: str, origin: str) -> RuleSet | None:
    cleaned = [line.rstrip("\r\n") for line in lines]
    if not any(line.strip() and not line.lstrip().startswith("#") for line in cleaned):
        return None
    # Imported only when there are patterns: a pass without any does not pay for pathspec at start-up.
    import pathspec

    try:
        spec = pathspec.GitIgnoreSpec.from_lines(cleaned)
    except (ValueError, TypeError) as exc:
        raise FiltersError(f"{origin}: invalid exclude pattern: {exc}") from exc
    return RuleSet(base, spec, origin)


@dataclass(frozen=True)
class Filters:
    """Exclusion rules for one sync root. Build with :meth:`build`.

    The scanner evaluates rules folder by folder as it walks (reading each ``.ks3ignore`` once); the
    watcher asks :meth:`is_excluded` for single paths, which reads and caches the ``.ks3ignore`` files
    along the way (call :meth:`forget_ignore_file` when one changes)."""

    root: Path
    command_line: tuple[RuleSet, ...] = ()  # --exclude-from files, then --exclude patterns
    always: frozenset[str] = frozenset()  # relative paths of ks3sync's own files inside the root
    read_ignore_files: bool = True  # False: the walk skips .ks3ignore files (see without_rules)
    reserved: tuple[
        str, ...
    ] = ()  # sub-prefixes holding ks3sync's own objects (versions), each ending in "/"
    _cache: dict[str, RuleSet | None] = field(default_factory=dict, compare=False, repr=False)
    # folder ("" = the root) -> (excluded itself or through a parent, the .ks3ignore rules its entries see)
    _folders: dict[str, tuple[bool, tuple[RuleSet, ...]]] = field(
        default_factory=dict, compare=False, repr=False
    )
    _unreadable: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    _without_state: list[Filters] = field(default_factory=list, compare=False, repr=False)  # _rules_only

    @classmethod
    def build(
        cls,
        root: Path,
        excludes: Sequence[str] = (),
        exclude_from: Sequence[Path] = (),
        *,
        state_paths: Sequence[Path] = (),
        reserved: Sequence[str] = (),
    ) -> Filters:
        """``state_paths``: ks3sync's own files or folders (the journal, its state dir); those inside
        ``root`` are never synced (a journal file also takes its ``-wal``/``-shm`` files along).
        ``reserved``: sub-prefixes of the target that hold ks3sync's own objects (the versions area,
        ending in ``/``): never walked or uploaded, and their keys are protected (never deleted, even
        by ``--delete-excluded``)."""
        rules: list[RuleSet] = []
        for path in exclude_from:
            try:
                text = Path(path).read_text(encoding="utf-8")
            except FileNotFoundError as exc:
                raise FiltersError(f"--exclude-from {path}: no such file") from exc
            except UnicodeDecodeError as exc:
                raise FiltersError(f"--exclude-from {path}: not UTF-8 text") from exc
            except OSError as exc:
                raise FiltersError(f"--exclude-from {path}: {exc.strerror}") from exc
            parsed = parse_rules(text.splitlines(), "", f"--exclude-from {path}")
            if parsed is not None:
                rules.append(parsed)
        if excludes:
            parsed = parse_rules(list(excludes), "", "--exclude")
            if parsed is not None:
                rules.append(parsed)
        own = _own_paths(Path(root), state_paths) | {prefix.rstrip("/") for prefix in reserved}
        return cls(Path(root), tuple(rules), frozenset(own), reserved=tuple(reserved))

    def without_rules(self) -> Filters:
        """Filters that leave out only ks3sync's own files: a walk with them sees the excluded files
        too, for a restore that must delete them (``--delete-excluded``); ``exclusion`` still judges
        each path by every rule of ``self``."""
        return Filters(self.root, (), self.always, read_ignore_files=False, reserved=self.reserved)

    # -- used by the walk ---------------------------------------------------------------------------

    def always_excluded(self, rel: str, name: str) -> bool:
        return name.startswith(TMP_PREFIX) or rel in self.always

    def decide(self, rel: str, is_dir: bool, ignore_files: Sequence[RuleSet]) -> bool:
        """Excluded? ``ignore_files``: the ``.ks3ignore`` rule sets from the root down to rel's folder."""
        if not ignore_files and not self.command_line:
            return False  # the common case: no rules at all, decided without building a tuple
        verdict: bool | None = None
        for rules in (*ignore_files, *self.command_line):
            v = rules.verdict(rel, is_dir)
            if v is not None:
                verdict = v
        return bool(verdict)

    # -- single paths (the watcher) -----------------------------------------------------------------

    def is_excluded(self, rel: str, is_dir: bool = False) -> bool:
        """Is ``rel`` (relative POSIX path) excluded, itself or through an excluded parent folder?
        Raises OSError / FiltersError when a ``.ks3ignore`` on the way cannot be read."""
        folder, _, name = rel.rpartition("/")
        excluded, chain = self._folder(folder)
        return excluded or self.always_excluded(rel, name) or self.decide(rel, is_dir, chain)

    def exclusion(self, path: str) -> Exclusion:
        """What the rules say about a local path or a remote key (relative to the prefix; a trailing
        ``/`` marks a folder). A ``.ks3ignore`` that cannot be read protects what it might exclude:
        such a path is neither transferred nor deleted (the scan reports the file). ks3sync's state
        (the journal, its companions, the state folder and what is in it) is ``OWN`` unless the user's
        own rules exclude it too (a restore reports an ``OWN`` key; an excluded one stays silent)."""
        is_dir = path.endswith("/")
        if self.reserved and any(path.startswith(prefix) for prefix in self.reserved):
            return Exclusion.PROTECTED  # ks3sync's own objects (versions): no rule or option may delete them
        rel = path[:-1] if is_dir else path
        try:
            if not self.is_excluded(rel, is_dir):
                return Exclusion.INCLUDED
            if self.always and self._is_state(rel) and not self._rules_only().is_excluded(rel, is_dir):
                return Exclusion.OWN
            return Exclusion.EXCLUDED
        except (OSError, ValueError):  # FiltersError is a ValueError; so is a NUL byte in a path
            return Exclusion.PROTECTED

    def _is_state(self, rel: str) -> bool:
        return any(rel == own or rel.startswith(own + "/") for own in self.always)

    def _rules_only(self) -> Filters:
        """The same rules without ks3sync's state paths (made once, only when a key names our state)."""
        if not self._without_state:
            self._without_state.append(
                Filters(self.root, self.command_line, frozenset(), self.read_ignore_files)
            )
        return self._without_state[0]

    def _folder(self, folder: str) -> tuple[bool, tuple[RuleSet, ...]]:
        """Whether ``folder`` is excluded (itself or through a parent) and the rules its entries see,
        worked out once per folder: a listing asks about every key, and keys share their folders."""
        known = self._folders.get(folder)
        if known is not None:
            return known
        pending: list[str] = []  # the folder and its ancestors not known yet, deepest first
        while known is None:
            pending.append(folder)
            if not folder:
                known = (False, ())  # above the root: nothing excluded, no rules yet
                break
            folder = folder.rpartition("/")[0]
            known = self._folders.get(folder)
        assert known is not None
        excluded, chain = known
        for folder in reversed(pending):
            if folder and not excluded:
                name = folder.rpartition("/")[2]
                excluded = self.always_excluded(folder, name) or self.decide(folder, True, chain)
            if not excluded:
                here = self._ignore_file(folder)  # a failure raises before anything is cached
                if here is not None:
                    chain = (*chain, here)
            known = (excluded, chain)
            self._folders[folder] = known
        return known

    def forget_ignore_file(self, folder: str = "") -> None:
        """A ``.ks3ignore`` changed: re-read it (``folder`` relative, "" for the root) next time."""
        self._cache.pop(folder, None)
        self._folders.clear()  # every folder below saw the old rules

    def unreadable_ignore_files(self) -> list[tuple[str, str]]:
        """``(relative path, reason)`` of the ``.ks3ignore`` files single-path questions could not
        read (the paths they might exclude were judged protected)."""
        return sorted(self._unreadable.items())

    def _ignore_file(self, folder: str) -> RuleSet | None:
        if not self.read_ignore_files or not _is_plain_folder(folder):
            # A remote key with "..", "." or empty segments names no folder of the tree: no rule
            # file below the root applies to it, and none outside the root may be read.
            return None
        if folder not in self._cache:
            path = self.root / folder / IGNORE_FILE if folder else self.root / IGNORE_FILE
            try:
                # A failure is not cached: the next question reads the file again (it may be fixed).
                self._cache[folder] = load_ignore_file(path, folder + "/" if folder else "")
            except (OSError, FiltersError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                self._unreadable[f"{folder}/{IGNORE_FILE}" if folder else IGNORE_FILE] = reason
                raise
        return self._cache[folder]


def load_ignore_file(path: Path, base: str) -> RuleSet | None:
    """The rules of one ``.ks3ignore`` (None if absent or empty). Raises OSError / FiltersError."""
    try:
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FiltersError(f"{path}: not UTF-8 text") from exc
    return parse_rules(text.splitlines(), base, str(path))


def _is_plain_folder(folder: str) -> bool:
    return not folder or (
        "\x00" not in folder and all(segment not in ("", ".", "..") for segment in folder.split("/"))
    )


def _own_paths(root: Path, state_paths: Sequence[Path]) -> frozenset[str]:
    own: set[str] = set()
    try:
        real_root = root.resolve()
    except OSError:
        return frozenset()
    for p in state_paths:
        try:
            real = Path(p).resolve()
        except OSError:
            continue
        try:
            rel = real.relative_to(real_root).as_posix()
        except ValueError:
            continue  # outside the root: nothing to exclude
        if rel == ".":
            continue  # the state dir *is* the root: a configuration error the CLI reports
        own.update(rel + suffix for suffix in SQLITE_SIDECARS)
    return frozenset(own)


__all__ = [
    "Filters",
    "FiltersError",
    "IGNORE_FILE",
    "RuleSet",
    "TMP_PREFIX",
    "load_ignore_file",
    "state_files",
]
