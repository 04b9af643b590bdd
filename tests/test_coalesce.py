"""Coalescer: the group-commit primitive behind the journal's confirmed entries and shared folder
fsyncs. Each caller returns only after a successful service that included its item."""

from __future__ import annotations

import itertools
import time

from ks3sync.coalesce import Coalescer
from tests.threadkit import run_together


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

    assert run_together(8, work) == []
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

    errors = run_together(6, work)
    assert len(errors) == 1 and isinstance(errors[0], OSError)
    assert sorted(served) == sorted(returned) and len(returned) == 5
    assert coalescer.settled()
