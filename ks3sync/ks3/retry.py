"""THE retry wrapper: every request the client makes goes through ``call_with_retry`` exactly once.

Owns: the policy (attempts, exponential backoff with full jitter, injectable sleep), the loop, and the
retry line logged at INFO (shown by ``-v``): ``retry 2/5 PUT bucket/a/b.txt: 503 SlowDown (Retry-After
1 s)``. A ``Retry-After`` the service sent is waited at least (the request limit, limiter.py, also
pauses every other request for it). What is retryable is decided by the error itself
(``KS3Error.retryable``, see errors.py); the caller's
``attempt`` function must rebuild the request from scratch each time (fresh Date and signature, body
re-iterated from its first byte), which is what makes retrying a PUT safe.
Must not import: anything else from ks3sync, nor httpx.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from .errors import KS3Error

T = TypeVar("T")

log = logging.getLogger("ks3sync.ks3")


@dataclass(frozen=True)
class RetryPolicy:
    """``max_attempts`` counts the first try. Delay before retry n (n = 1, 2, ...) is uniform in
    ``[0, min(max_delay, base_delay * 2**(n-1))]`` ("full jitter": spreads a thundering herd best)."""

    max_attempts: int = 5
    base_delay: float = 0.2
    max_delay: float = 10.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)
    random: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"RetryPolicy.max_attempts must be >= 1, not {self.max_attempts}")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("RetryPolicy delays must be >= 0")

    def delay(self, retry_number: int) -> float:
        ceiling: float = min(self.max_delay, self.base_delay * (2 ** (retry_number - 1)))
        return ceiling * self.random()


def call_with_retry(policy: RetryPolicy, attempt: Callable[[int], T]) -> T:
    """Run ``attempt(n)`` for n = 1.. until it returns, raises a non-retryable error, or attempts run
    out (then the last error propagates unchanged)."""
    number = 1
    while True:
        try:
            return attempt(number)
        except KS3Error as exc:
            if not exc.retryable or number >= policy.max_attempts:
                raise
            delay = policy.delay(number)
            if exc.retry_after is not None:
                delay = max(delay, exc.retry_after)
            log.info("retry %d/%d %s", number + 1, policy.max_attempts, exc.retry_reason())
        policy.sleep(delay)
        number += 1
