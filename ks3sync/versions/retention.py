"""Which passes a retention policy deletes, and which it moves to cold storage (docs/versions.md §7).

``keep`` (seconds) keeps passes stamped within that age; ``keep_passes`` keeps the newest N. With both,
a pass is deleted only when neither keeps it. ``cold_after`` moves passes older than that which are
not deleted. A pass stamped in the future is never old.

Pure: no I/O, no clock (``now_ns`` is the caller's).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

SECOND = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Retention:
    keep: float | None = None  # seconds
    keep_passes: int | None = None
    cold_after: float | None = None  # seconds

    @property
    def deletes(self) -> bool:
        return self.keep is not None or self.keep_passes is not None


def expired(stamps: Sequence[tuple[str, int]], now_ns: int, policy: Retention) -> list[str]:
    """The stamps (``(stamp, stamp_ns)`` pairs, any order) the policy deletes, oldest first."""
    if not policy.deletes:
        return []
    newest_first = sorted(stamps, key=lambda s: s[1], reverse=True)
    kept: set[str] = set()
    if policy.keep is not None:
        horizon = now_ns - int(policy.keep * SECOND)
        kept.update(stamp for stamp, ns in newest_first if ns >= horizon)
    if policy.keep_passes is not None:
        kept.update(stamp for stamp, _ in newest_first[: policy.keep_passes])
    return [stamp for stamp, _ in reversed(newest_first) if stamp not in kept]


def to_cold(stamps: Sequence[tuple[str, int]], now_ns: int, policy: Retention) -> list[str]:
    """The stamps whose versions belong in cold storage (older than ``cold_after``, not expired)."""
    if policy.cold_after is None:
        return []
    gone = set(expired(stamps, now_ns, policy))
    horizon = now_ns - int(policy.cold_after * SECOND)
    return [stamp for stamp, ns in sorted(stamps, key=lambda s: s[1]) if ns < horizon and stamp not in gone]
