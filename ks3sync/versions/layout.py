"""Where a sync's versions and manifests live inside its target (docs/versions.md §1): the versions
prefix, the store paths of a version and of a manifest, and the checks every path read back from the
bucket goes through.

All paths here are *store paths*, relative to the sync's target prefix (``KS3Store.key_for`` adds it).

Pure: the standard library, ``versions.stamp`` and the config's prefix rule.
"""

from __future__ import annotations

from dataclasses import dataclass

from ks3sync.versions.stamp import is_stamp

DEFAULT_PREFIX = ".versions/"
MANIFEST_SUFFIX = ".json"
MAX_PATH_BYTES = 1024  # KS3's key limit: no stored path can be longer


def check_prefix(prefix: str) -> str:
    """The versions prefix normalised to end in ``/``; ValueError unless it is relative and plain (the
    config's rule, ``config.check_versions_prefix``)."""
    from ks3sync.config import check_versions_prefix

    if not isinstance(prefix, str) or not prefix.strip():
        raise ValueError("expected a relative prefix such as '.versions/'")
    return check_versions_prefix(prefix)


def path_problem(path: object) -> str | None:
    """Why ``path`` cannot be a synced path (``None`` when it can): the manifest's and the restore's rule."""
    if not isinstance(path, str) or not path:
        return "not a non-empty string"
    if "\x00" in path:
        return "contains a NUL byte"
    try:
        size = len(path.encode("utf-8"))
    except UnicodeEncodeError:
        return "is not valid Unicode"
    if size > MAX_PATH_BYTES:
        return f"is longer than {MAX_PATH_BYTES} bytes"
    if path.startswith("/"):
        return "is absolute"
    if any(segment in ("", ".", "..") for segment in path.split("/")):
        return "has an empty, '.' or '..' segment"
    return None


@dataclass(frozen=True, slots=True)
class Layout:
    """The versions area of one target: ``prefix`` is the versions prefix (relative, ends in ``/``)."""

    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        check_prefix(self.prefix)

    def version_path(self, stamp: str, path: str) -> str:
        return f"{self.prefix}{stamp}/{path}"

    def manifest_path(self, stamp: str) -> str:
        return f"{self.prefix}{stamp}{MANIFEST_SUFFIX}"

    def owns(self, path: str) -> bool:
        """Is this store path inside the versions area (never a synced path)?"""
        return path.startswith(self.prefix)

    def parse(self, path: str) -> tuple[str, str | None] | None:
        """A store path under the area as ``(stamp, version's original path)`` or ``(stamp, None)`` for
        a manifest; ``None`` for anything else (a foreign object in the area is ignored, not trusted)."""
        if not path.startswith(self.prefix):
            return None
        rest = path[len(self.prefix) :]
        stamp, slash, original = rest.partition("/")
        if slash:
            if not is_stamp(stamp) or path_problem(original) is not None:
                return None
            return stamp, original
        if rest.endswith(MANIFEST_SUFFIX) and is_stamp(rest[: -len(MANIFEST_SUFFIX)]):
            return rest[: -len(MANIFEST_SUFFIX)], None
        return None
