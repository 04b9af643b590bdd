"""Coalescer: the group-commit primitive behind the journal's confirmed entries and shared folder
fsyncs. Each caller returns only after a successful service that included its item."""

from __future__ import annotations

import itertools
import threading
import time

from ks3sync.coalesce import Coalescer


def _run(count: int, work) -> list[BaseException]:  # type: ignore[no-untyped-def]
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def run(t: int) -> None:
        barrier.wait(timeout=30)
        try:
            work(t)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, checked there
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(count)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert not any(th.is_alive() for th in threads)
    return errors


def test_every_item_is_served_once_before_its_caller_returns_and_batches_form() -> None:
    coalescer: Coalescer[int] = Coalescer()
    served: list[int] = []
    batches: list[list[int]] = []
    late: list[int] = []

    def serve(batch: list[int]) -> None:
        time.sleep(0.01)
        batches.append(list(batch))
        served.extend(batch)

    def work(t: int) -> None:
        for i in range(5):
            item = t * 100 + i
            coalescer.submit(item, serve)
            if item not in served:
                late.append(item)

    assert _run(8, work) == []
    assert late == [] and sorted(served) == sorted(t * 100 + i for t in range(8) for i in range(5))
    assert len(batches) < 40 and coalescer.settled()


def test_a_failed_service_fails_its_server_only_and_the_rest_is_served_again() -> None:
    coalescer: Coalescer[int] = Coalescer()
    calls = itertools.count(1)
    served: list[int] = []
    returned: list[int] = []

    def serve(batch: list[int]) -> None:
        time.sleep(0.02)
        if next(calls) == 2:  # the batch of everything that arrived during the first service
            raise OSError("simulated")
        served.extend(batch)

    def work(t: int) -> None:
        coalescer.submit(t, serve)
        returned.append(t)

    errors = _run(6, work)
    assert len(errors) == 1 and isinstance(errors[0], OSError)
    assert sorted(served) == sorted(returned) and len(returned) == 5
    assert coalescer.settled()
