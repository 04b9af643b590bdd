"""A store's listing read a few pages ahead on a thread, so the network and the XML parsing of the listing
overlap the local scan and the journal's reads that the march consumes alongside it.

``PrefetchedListing`` runs a listing (``store.list``, or the engine's listing without the versions area)
on a producer thread and hands it over in chunks through a small bounded queue: at most ``DEPTH``
chunks wait in memory. An error of the listing is raised to the consumer; leaving the ``with`` block
early (an error of the march, a stop) cancels the producer. When the caller's ``stop`` event is set the
consumer raises ``errors.StopRequested``.

Imports the model and the errors; nothing above the store layer.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable, Iterator

from ks3sync.errors import StopRequested
from ks3sync.model import RemoteEntry


class PrefetchedListing:
    """A listing as an iterator filled by a producer thread; use it as a context manager. ``listing`` is
    called on that thread, so the first request is sent there too."""

    CHUNK = 1000  # one KS3 page: one queue hand-over per page, not per object
    DEPTH = 4

    def __init__(self, listing: Callable[[], Iterator[RemoteEntry]], stop: threading.Event | None) -> None:
        self._listing = listing
        self._stop = stop
        self._queue: queue.Queue[list[RemoteEntry] | BaseException | None] = queue.Queue(self.DEPTH)
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="ks3sync-list", daemon=True)

    def __enter__(self) -> PrefetchedListing:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._cancel.set()  # a producer waiting on a full queue gives up within its put timeout
        self._thread.join()

    def _put(self, item: list[RemoteEntry] | BaseException | None) -> bool:
        while not self._cancel.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            entries = self._listing()
            while chunk := list(itertools.islice(entries, self.CHUNK)):
                if not self._put(chunk):
                    return
            self._put(None)
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            self._put(exc)

    def __iter__(self) -> Iterator[RemoteEntry]:
        while True:
            try:
                item = self._queue.get(timeout=0.5)
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    raise RuntimeError("the listing thread ended without a result") from None
                continue
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            if self._stop is not None and self._stop.is_set():
                raise StopRequested
            yield from item
