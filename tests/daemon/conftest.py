from __future__ import annotations

import time
from collections.abc import Callable

import pytest


def poll(condition: Callable[[], object], timeout: float = 30.0, interval: float = 0.02) -> object:
    """Return the first truthy value of ``condition()``; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s: {condition}")
        time.sleep(interval)


@pytest.fixture()
def wait_until() -> Callable[..., object]:
    return poll


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
