"""Retry timing for failed changes. Pure; imports nothing from ks3sync."""

from __future__ import annotations

from dataclasses import dataclass

SECOND = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential: ``base * 2**attempts``, capped; a change that failed ``park_after`` times is parked
    (kept in the journal and shown by ``status``, no longer retried until the next reconcile)."""

    base_ns: int = 1 * SECOND
    cap_ns: int = 300 * SECOND
    park_after: int = 6

    def delay_ns(self, attempts: int) -> int:
        return min(self.cap_ns, self.base_ns << min(attempts, 40))

    def should_park(self, attempts_before: int) -> bool:
        return attempts_before + 1 >= self.park_after
