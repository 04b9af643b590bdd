from __future__ import annotations

import time

import pytest


class FakeClock:
    """Nanoseconds since the epoch, moved only by ``advance``. Starts an hour ahead of real time so
    files written by the test are long "quiet" for the scheduler's debounce check."""

    def __init__(self) -> None:
        self.now = time.time_ns() + 3600 * 1_000_000_000

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1_000_000_000)


@pytest.fixture()
def fake_clock() -> FakeClock:
    return FakeClock()
