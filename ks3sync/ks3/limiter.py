"""How many requests one client keeps in flight: an adaptive limit shared by every request it sends.

Owns: ``AimdLimit``, the arithmetic (pure: no locks, no clock of its own; tests drive it with numbers),
and ``RequestLimit``, the gate every attempt passes (transport.py takes a slot before sending and gives
it back when the response is closed, saying how the exchange went).
Must not import: anything else from ks3sync.

The rule is TCP's congestion control applied to requests (AIMD with slow start, as in Netflix's
concurrency-limits and the AWS SDKs' adaptive retry mode):
- *slow start*: from ``initial`` slots, each answered request adds one, so the limit doubles every
  round trip, up to ``ceiling`` (``--jobs``);
- after the first throttling answer it grows by one slot per round trip's worth of answers (``1/limit``
  per answer);
- a throttling answer (503 or 429, ``SlowDown``/``Throttling``) or a timeout sets the limit to
  ``backoff`` times the limit in force when the refused request was sent (half of it when that ends
  slow start: the limit of the round trip before, which the service took, as TCP's ssthresh), at most
  once per round trip: the answers to requests sent before the decrease say nothing about the new
  limit (each slot carries a ticket; only a ticket issued after the last decrease can cause the next
  one);
- it grows only while at least half of it is in use, so a client with little to do does not
  accumulate a limit it never tested;
- ``Retry-After`` on a throttling answer pauses every new request for that long (at most
  ``MAX_PAUSE``): the server said when to come back, to all of us.
What is limited is the number of *small* requests in flight: those whose time is a round trip rather
than bytes (a PUT or GET of up to ``LARGE_REQUEST``, HEAD, COPY, DELETE, listings, multipart control).
Large transfers (parts, big objects) are bounded by the bytes their senders keep in flight (transfer/),
and take no slot: a part that streams for minutes must not starve the small requests, nor wait for
them; their throttling answers still shrink the limit (``observe``).
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

MAX_PAUSE = 60.0  # seconds: a longer Retry-After is taken as this (a broken or hostile value)
LARGE_REQUEST = 1024 * 1024  # bytes carried (either way) above which a request takes no slot
DEFAULT_INITIAL = 32
DEFAULT_BACKOFF = 0.7  # CUBIC's factor: gentler than halving, and a throttled link still refills quickly


class Outcome(enum.Enum):
    ANSWERED = "answered"  # any answer that is not throttling, errors included: the service kept up
    THROTTLED = "throttled"  # 503/429, SlowDown/Throttling, or a timeout: too much in flight
    FAILED = "failed"  # no answer for another reason (refused, reset, a local error): says nothing


class Ticket(NamedTuple):
    """A slot's ticket: when it was issued (a sequence number) and the limit then."""

    number: int
    limit: float


@dataclass(slots=True)
class AimdLimit:
    """The limit and its rules (module docstring). ``allowed`` is the number of slots now."""

    ceiling: int
    limit: float = float(DEFAULT_INITIAL)
    backoff: float = DEFAULT_BACKOFF
    slow_start: bool = True
    issued: int = 0  # tickets handed out so far
    recovery_until: int = -1  # the last ticket issued when the limit last decreased
    paused_until: float = 0.0  # no new request before this time (Retry-After)
    throttles: int = field(default=0)  # throttling answers seen, for the run's summary and tests

    def __post_init__(self) -> None:
        if self.ceiling < 1:
            raise ValueError(f"the request limit's ceiling must be >= 1, not {self.ceiling}")
        if not 0 < self.backoff < 1:
            raise ValueError(f"the backoff factor must be between 0 and 1, not {self.backoff}")
        self.limit = float(min(max(1.0, self.limit), self.ceiling))

    @property
    def allowed(self) -> int:
        return max(1, int(self.limit))

    def issue(self) -> Ticket:
        self.issued += 1
        return Ticket(self.issued, self.limit)

    def answered(self, in_flight: int) -> None:
        """A request was answered while ``in_flight`` requests (itself included) were out."""
        if 2 * in_flight < self.limit:
            return  # not limited by the limit: nothing learned about a larger one
        step = 1.0 if self.slow_start else 1.0 / self.limit
        self.limit = min(float(self.ceiling), self.limit + step)

    def throttled(self, ticket: Ticket, now: float, retry_after: float | None = None) -> bool:
        """A throttling answer (or a timeout) to the request holding ``ticket``; True when the limit
        decreased (once per round trip: see the module docstring)."""
        self.throttles += 1
        if retry_after is not None and retry_after > 0:
            self.paused_until = max(self.paused_until, now + min(retry_after, MAX_PAUSE))
        if ticket.number <= self.recovery_until:
            return False
        factor = 0.5 if self.slow_start else self.backoff
        self.slow_start = False
        self.limit = max(1.0, min(self.limit, ticket.limit) * factor)
        self.recovery_until = self.issued
        return True

    def pause_left(self, now: float) -> float:
        return max(0.0, self.paused_until - now)


class SlotTimeout(Exception):
    """No slot came free in time (every slot held that long: a leak, or a service silent for as long)."""


class RequestLimit:
    """The gate: ``acquire`` waits for a slot (and for any pause to end) and returns its ticket;
    ``release`` gives it back with the exchange's outcome; ``observe`` takes the outcome of a request
    that held no slot (a large one). Thread-safe."""

    def __init__(
        self,
        ceiling: int,
        *,
        initial: int = DEFAULT_INITIAL,
        backoff: float = DEFAULT_BACKOFF,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._state = AimdLimit(ceiling, float(initial), backoff)
        self._clock = clock
        self._cond = threading.Condition(threading.Lock())
        self._in_flight = 0

    @property
    def allowed(self) -> int:
        with self._cond:
            return self._state.allowed

    @property
    def throttles(self) -> int:
        with self._cond:
            return self._state.throttles

    @property
    def in_flight(self) -> int:
        with self._cond:
            return self._in_flight

    def acquire(self, timeout: float | None = None) -> Ticket:
        """A slot's ticket, once one is free and no pause holds. ``timeout`` bounds the wait for a slot
        (a ``Retry-After`` pause is waited on top of it): SlotTimeout past it."""
        clock = self._clock
        deadline = None if timeout is None else clock() + timeout
        with self._cond:
            state = self._state
            while True:
                now = clock()
                pause = state.pause_left(now)
                if pause > 0:
                    self._cond.wait(pause)
                    if deadline is not None:
                        deadline += min(clock(), now + pause) - now  # the time the pause took
                    continue
                if self._in_flight < state.allowed:
                    self._in_flight += 1
                    return state.issue()
                left = None if deadline is None else deadline - now
                if left is not None and left <= 0:
                    raise SlotTimeout(
                        f"no request slot came free within {timeout:g} s "
                        f"({self._in_flight} requests in flight)"
                    )
                self._cond.wait(left)

    def release(self, ticket: Ticket, outcome: Outcome, retry_after: float | None = None) -> None:
        with self._cond:
            state = self._state
            if outcome is Outcome.ANSWERED:
                state.answered(self._in_flight)
            elif outcome is Outcome.THROTTLED:
                state.throttled(ticket, self._clock(), retry_after)
            self._in_flight -= 1
            # Wake as many waiters as there are free slots now (a grown limit frees more than one);
            # during a pause those wait until it ends, on their own timers.
            free = state.allowed - self._in_flight
            if free > 0:
                self._cond.notify(free)

    def observe(self, outcome: Outcome, retry_after: float | None = None) -> None:
        """The outcome of a request that held no slot: a throttling answer shrinks the limit (as one
        to the latest ticket would) and its Retry-After pauses everyone; other outcomes change nothing."""
        if outcome is not Outcome.THROTTLED:
            return
        with self._cond:
            state = self._state
            state.throttled(Ticket(state.issued, state.limit), self._clock(), retry_after)
