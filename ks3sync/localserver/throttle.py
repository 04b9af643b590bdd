"""`--max-inflight N`: the server holds at most N requests at once and refuses the rest, as a throttled
KS3 does (503 SlowDown).

Owns the count of requests in flight and the admission decision. A request is in flight from the moment
the app receives its head until its response has been handed to the connection (or the request ended
otherwise: an error answer, the client vanishing, the server stopping), so the `--latency-ms` delay counts:
what a client has outstanding on a slow link is what it is throttled on. A refused request never holds a
slot. The app (app.py) takes and gives back slots around the whole handling of a request, which keeps
this above the HTTP layer. Imports nothing from ks3sync.

Not thread-safe on purpose: one app serves one event loop, and acquire/release run on that loop's thread
(no await between the check and the increment).
"""

from __future__ import annotations


class InflightLimit:
    """At most `limit` requests in flight; `try_acquire` says whether one more may enter."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("the in-flight limit must be at least 1")
        self.limit = limit
        self.in_flight = 0
        self.refused = 0

    def try_acquire(self) -> bool:
        if self.in_flight >= self.limit:
            self.refused += 1
            return False
        self.in_flight += 1
        return True

    def release(self) -> None:
        if self.in_flight <= 0:
            raise RuntimeError("in-flight slot released twice")
        self.in_flight -= 1
