"""The listing read ahead on a thread (store/prefetch.py), against the in-memory Store: every entry in
order across page-sized chunks, the caller's stop, an error of the listing, and a consumer that leaves
early. No test sleeps: the producer is joined when the ``with`` block ends."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from ks3sync.errors import StopRequested, TransientError
from ks3sync.model import RemoteEntry
from ks3sync.store.base import WriteOptions
from ks3sync.store.memory import MemoryStore
from ks3sync.store.prefetch import PrefetchedListing
from ks3sync.transfer.bodies import MemoryBody


def listing_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "ks3sync-list"]


@pytest.fixture()
def store() -> MemoryStore:
    store = MemoryStore(prefix="p/")
    for n in range(2 * PrefetchedListing.CHUNK + 7):  # three chunks, the last one short
        store.put(f"f{n:05d}", MemoryBody(b"x"), WriteOptions())
    return store


def test_every_entry_arrives_in_order(store: MemoryStore) -> None:
    with PrefetchedListing(store.list, None) as listing:
        paths = [entry.path for entry in listing]
    assert paths == [entry.path for entry in store.list()] and len(paths) == 2 * PrefetchedListing.CHUNK + 7
    assert not listing_threads()


def test_a_stop_raises_stop_requested_and_the_producer_ends(store: MemoryStore) -> None:
    stop = threading.Event()
    seen = 0
    with pytest.raises(StopRequested), PrefetchedListing(store.list, stop) as listing:
        for _ in listing:
            seen += 1
            stop.set()  # checked once per chunk: the rest of this chunk still arrives
    assert seen == PrefetchedListing.CHUNK
    assert not listing_threads()


class FailingStore(MemoryStore):
    def list(self) -> Iterator[RemoteEntry]:
        yield from list(super().list())[:3]
        raise TransientError("injected listing failure")


def test_an_error_of_the_listing_reaches_the_consumer() -> None:
    store = FailingStore(prefix="p/")
    for n in range(5):
        store.put(f"f{n}", MemoryBody(b"x"), WriteOptions())
    with pytest.raises(TransientError, match="injected"), PrefetchedListing(store.list, None) as listing:
        list(listing)
    assert not listing_threads()


def test_leaving_early_cancels_a_producer_blocked_on_a_full_queue(
    store: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(PrefetchedListing, "CHUNK", 10)  # 201 chunks: the queue of DEPTH fills up
    with PrefetchedListing(store.list, None) as listing:
        first = next(iter(listing))
    assert first.path == "f00000"
    assert not listing_threads()
