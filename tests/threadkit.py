"""Running a piece of work on many threads at once, for tests of thread-safe parts
(`from threadkit import run_together`)."""

from __future__ import annotations

import threading
from collections.abc import Callable


def run_together(count: int, work: Callable[[int], None], *, timeout: float = 60.0) -> list[BaseException]:
    """Start ``count`` threads that call ``work(index)`` at the same moment (a barrier); join them all
    (bounded) and return what they raised, for the test to check."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def run(index: int) -> None:
        barrier.wait(timeout=30)
        try:
            work(index)
        except BaseException as exc:  # noqa: BLE001 - handed to the test, checked there
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(thread.is_alive() for thread in threads), "a thread did not finish"
    return errors
