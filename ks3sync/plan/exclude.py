"""What the planner does with excluded paths (the rule for every direction, in one place).

An excluded path is outside the sync: it is never transferred, and the copy on the destination is
left alone, as rsync, rclone and ``aws s3 sync`` do. With ``delete_excluded`` (rsync's and rclone's
``--delete-excluded``) the destination copy of a path excluded by a user's rule is deleted instead,
through the same guards as every other delete. Paths whose rules could not be read are ``PROTECTED``:
never transferred, never deleted. (ks3sync's own files are excluded; the local walk never shows them,
so they cannot be deleted locally either.)

The caller supplies the judgement as a function (``ks3sync.scan.Filters.exclusion``, which reads
``.ks3ignore`` files); the planner only calls it, so it stays pure.

Pure: imports only ``ks3sync.model``."""

from __future__ import annotations

from collections.abc import Callable

from ks3sync.model import Exclusion

ExclusionTest = Callable[[str], Exclusion]


def nothing_excluded(_path: str) -> Exclusion:
    return Exclusion.INCLUDED


def delete_reason(exclusion: Exclusion, *, delete: bool, delete_excluded: bool) -> str | None:
    """Why a destination entry that is not in the (filtered) source is deleted, or ``None`` to keep it."""
    if not delete:
        return None
    if exclusion is Exclusion.INCLUDED:
        return "not-in-source"
    if exclusion in (Exclusion.EXCLUDED, Exclusion.OWN) and delete_excluded:
        return "excluded"
    # Excluded without --delete-excluded, or protected: outside the sync, kept.
    return None
