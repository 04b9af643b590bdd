"""Fault injection for data-plane requests: error statuses, dropped connections; and the added latency,
which app.py applies to every request (a slow link delays the control plane too).

Deterministic: one seeded PRNG drawn in request-arrival order, so a serial client sees the same faults
on every run with the same seed. A 503 is answered as KS3's throttling error (SlowDown); other statuses
as InternalError. Which requests count as data plane is decided in routing.py.
Imports nothing else from ks3sync.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

_CODES = {
    500: "InternalError",
    502: "BadGateway",
    503: "SlowDown",
    504: "GatewayTimeout",
    408: "RequestTimeout",
    429: "SlowDown",
}


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str  # "error" | "drop"
    status: int = 0

    @property
    def code(self) -> str:
        return _CODES.get(self.status, "InternalError")


class FaultInjector:
    def __init__(
        self,
        fault_rate: float,
        fault_codes: tuple[int, ...],
        drop_rate: float,
        latency_ms: float,
        seed: int | None,
    ) -> None:
        if not 0 <= fault_rate <= 1 or not 0 <= drop_rate <= 1 or fault_rate + drop_rate > 1:
            raise ValueError("fault rate and drop rate must be in [0, 1] and sum to at most 1")
        if fault_rate and not fault_codes:
            raise ValueError("a fault rate needs at least one fault code")
        self.fault_rate = fault_rate
        self.drop_rate = drop_rate
        self.fault_codes = fault_codes
        self.latency = latency_ms / 1000.0
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self.enabled = bool(fault_rate or drop_rate)

    def decide(self) -> Fault | None:
        if not self.enabled:
            return None
        with self._lock:
            draw = self._random.random()
            status = self._random.choice(self.fault_codes) if self.fault_codes else 500
        if draw < self.drop_rate:
            return Fault("drop")
        if draw < self.drop_rate + self.fault_rate:
            return Fault("error", status)
        return None
