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
