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

