"""Retry timing for failed changes. Pure but for the random draw of the jitter (injectable);
imports nothing from ks3sync."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

SECOND = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential: ``base * 2**attempts``, capped, then jittered; a change that failed ``park_after``
    times is parked (kept in the journal and shown by ``status``, no longer retried until the next
    reconcile).

    ``jitter``: the fraction of the delay drawn at random (the delay lies in ``[(1 - jitter) * d, d]``).
    Changes that failed together (a whole batch when the endpoint went away) would otherwise all come
    back in the same instant, every time, and meet the same overloaded service together; spread over
    half the delay they come back as a trickle. Never longer than ``d``: the cap stays a cap."""

    base_ns: int = 1 * SECOND
    cap_ns: int = 300 * SECOND
    park_after: int = 6
    jitter: float = 0.5
    draw: Callable[[], float] = field(default=random.random, compare=False, repr=False)  # in [0, 1)

    def __post_init__(self) -> None:
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"the backoff's jitter must be between 0 and 1, not {self.jitter}")

    def delay_ns(self, attempts: int) -> int:
        delay = min(self.cap_ns, self.base_ns << min(attempts, 40))
        if not self.jitter:
            return delay
        return delay - int(delay * self.jitter * self.draw())

    def should_park(self, attempts_before: int) -> bool:
        return attempts_before + 1 >= self.park_after
