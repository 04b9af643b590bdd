"""A token bucket shared by all transfer workers (``--bwlimit``): every byte sent or received takes a
token; a worker that finds the bucket empty sleeps until enough tokens have accrued.

The clock and sleep are injectable so tests do not wait. Imports nothing from ks3sync.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    def __init__(
        self,
        rate: float,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        # A quarter second of burst keeps chunks flowing smoothly without overshooting the limit much.
        self.capacity = float(burst if burst is not None else max(rate / 4, 64 * 1024))
        self._tokens = self.capacity
        self._clock = clock
        self._sleep = sleep
        self._stamp = clock()
        self._lock = threading.Lock()

    def consume(self, n: int) -> None:
        """Take ``n`` tokens, waiting as needed (``n`` may exceed the burst: the debt is slept off)."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= n
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)


class ByteBudget:
    """Bounds the bytes of part buffers in flight across all uploads (s3transfer bounds chunks by count;
    a byte budget also holds when part sizes grow for huge files). A request larger than the whole
    budget is clamped to it, so a single huge part still proceeds, alone."""

    def __init__(self, limit: int) -> None:
        if limit <= 0:
            raise ValueError("limit must be positive")
        self.limit = limit
        self._used = 0
        self._cond = threading.Condition()

    def acquire(self, n: int) -> int:
        """Wait until ``n`` bytes fit; returns the amount actually taken (pass it to ``release``)."""
        n = max(0, min(n, self.limit))
        with self._cond:
            self._cond.wait_for(lambda: self._used + n <= self.limit)
            self._used += n
        return n

    def try_acquire(self, n: int) -> int | None:
        """As ``acquire`` without waiting: the amount taken, or None when it does not fit now."""
        n = max(0, min(n, self.limit))
        with self._cond:
            if self._used + n > self.limit:
                return None
            self._used += n
        return n

    def release(self, n: int) -> None:
        with self._cond:
            self._used -= n
            self._cond.notify_all()

    @property
    def in_use(self) -> int:
        with self._cond:
            return self._used
