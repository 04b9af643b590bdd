"""A large restore as parallel ranged GETs, handed to the restore in order.

Owns: ``open_object``, the reader a restore streams an object from. An object of at least two parts
(by its listed size) is read as part-size ranges: the first range's answer gives the object's metadata
and is streamed to the caller as it arrives, while the next ranges (at most ``MAX_RANGES_AHEAD``) are
fetched on the part pool into memory; the caller gets every byte in order, so the restore's single pass over them (the plaintext MD5
the journal records and a single-PUT ETag is checked against, the CBC chain and the integrity tag's
SHA-256 of an encrypted object, the write) stays sequential and unchanged (download.py).
Must not import: ks3sync.ks3, the journal, the planner, the CLI.

- *One version*: every range after the first asks ``If-Match`` the first one's ETag, and must report
  the same total size; an object replaced meanwhile fails the file (IntegrityError, retried later in
  the pass), it is never stitched from two versions.
- *Verified*: each range's CRC-64 is computed as it arrives (on the pool thread) and the CRCs are
  combined in order into the whole object's, compared with the service's ``x-kss-checksum-crc64ecma``
  (KS3 sends the whole object's CRC with every ranged answer) at the end; each range must be exactly
  its length; the object may not be longer than listed (a hostile endpoint cannot fill the disk).
- *Memory*: a range is held against the transfer's byte budget from before it is requested until the
  caller has taken its bytes. The budget is taken by the caller's thread (waiting only when it has
  no range in hand), never by a pool thread, so restores sharing the budget and the pool cannot
  deadlock: every range started will be fetched and then consumed.
- A range whose body breaks off is fetched once more (the client retries a request that got no
  answer by itself, but not a body cut halfway).
Why the bytes are not written in place with ``pwrite`` by the range workers: the MD5, the CBC chain
and the tag must see them in order anyway, so they would have to be read back; ranges are small
(the part size) and bounded in number by the budget.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
from collections.abc import Iterator
from concurrent.futures import Future

from ks3sync.errors import IntegrityError, TransientError
from ks3sync.store.base import ObjectMeta, ObjectReader
from ks3sync.store.checksums import crc64_combine, crc64_update
from ks3sync.transfer.context import TransferContext

CHUNK = 1024 * 1024
RANGE_ATTEMPTS = 2
# Ranges of one object fetched ahead of the restore at most (fewer with fewer part workers). Every one
# is held in memory until its turn: at the default 8 MiB part size, 3 keep a 1 GiB restore near 150 MB
# of peak RSS, where 8 (the part workers) reached 190-200 MB (D19).
MAX_RANGES_AHEAD = 3


def ranged(ctx: TransferContext, listed_size: int | None) -> bool:
    """Whether an object of this listed size is read as parallel ranges: at least two parts."""
    return listed_size is not None and listed_size >= 2 * ctx.options.part_size and ctx.parallel_ranges > 1


@contextlib.contextmanager
def open_object(ctx: TransferContext, path: str, listed_size: int | None) -> Iterator[ObjectReader]:
    """The object's reader: one GET, or (``ranged``) parallel ranges read back in order."""
    if not ranged(ctx, listed_size):
        with ctx.store.open(path, listed_size) as reader:
            yield reader
        return
    assert listed_size is not None
    size = ctx.options.part_size
    with ctx.store.open(path, listed_size, byte_range=(0, size - 1)) as first:
        reader = _RangedReader(ctx, path, first, size, listed_size)
        try:
            yield reader
        finally:
            reader.close()


class _RangedReader:
    """``ObjectReader`` over ranges: the first streamed, the others fetched ahead on the part pool."""

    def __init__(self, ctx: TransferContext, path: str, first: ObjectReader, range_size: int, listed: int) -> None:
        self.meta: ObjectMeta = first.meta
        self.checks_crc64 = self.meta.crc64 is not None
        self._ctx = ctx
        self._path = path
        self._first = first
        self._range_size = range_size
        if self.meta.size > listed:
            raise IntegrityError(f"{path}: the object is {self.meta.size} bytes, more than the {listed} listed "
                                 "(it changed since it was listed, or the server is broken)")
        self._count = max(1, -(-self.meta.size // range_size))
        self._next = 1  # the next range to start
        self._pending: collections.deque[tuple[Future[tuple[list[bytes], int]], int]] = collections.deque()

    def _bounds(self, index: int) -> tuple[int, int]:
        first = index * self._range_size
        return first, min(self.meta.size, first + self._range_size) - 1

    def _start_more(self, *, wait: bool) -> None:
        """Start ranges while the part workers and the byte budget allow; with ``wait``, wait for the
        budget of the first one (only when no range is in hand to be consumed meanwhile)."""
        ctx = self._ctx
        while self._next < self._count and len(self._pending) < ctx.parallel_ranges:
            if ctx.stop.is_set():
                raise TransientError(f"{self._path}: run stopped before the restore finished")
            first, last = self._bounds(self._next)
            length = last - first + 1
            taken = ctx.part_budget.acquire(length) if wait and not self._pending else ctx.part_budget.try_acquire(length)
            if taken is None:
                return
            try:
                future = ctx.part_pool.submit(_fetch_range, ctx, self._path, first, last, self.meta)
            except BaseException:
                ctx.part_budget.release(taken)
                raise
            self._pending.append((future, taken))
            self._next += 1

    def iter_bytes(self, chunk_size: int = CHUNK) -> Iterator[bytes]:
        crc = 0
        received = 0
        expected = self._bounds(0)[1] + 1
        for chunk in self._first.iter_bytes(chunk_size):
            crc = crc64_update(crc, chunk)
            received += len(chunk)
            self._start_more(wait=False)
            yield chunk
        if received != expected:
            raise IntegrityError(f"{self._path}: the first range brought {received} bytes, not {expected}")
        for _index in range(1, self._count):
            self._start_more(wait=True)
            future, taken = self._pending.popleft()
            try:
                chunks, range_crc = future.result()
                length = sum(len(chunk) for chunk in chunks)
                crc = crc64_combine(crc, range_crc, length)
                for chunk in chunks:
                    yield chunk
                    self._start_more(wait=False)
            finally:
                self._ctx.part_budget.release(taken)
        if self.meta.crc64 is not None and crc != self.meta.crc64:
            raise IntegrityError(f"{self._path}: the ranges' CRC-64 {crc} != the object's {self.meta.crc64}")

    def close(self) -> None:
        """Stop what has not started, wait for what has, and give back the budget of both."""
        pending, self._pending = self._pending, collections.deque()
        for future, _taken in pending:
            future.cancel()
        concurrent.futures.wait([future for future, _taken in pending])
        for _future, taken in pending:
            self._ctx.part_budget.release(taken)


def _fetch_range(ctx: TransferContext, path: str, first: int, last: int, meta: ObjectMeta) -> tuple[list[bytes], int]:
    """On the part pool: the bytes ``first..last`` of the version ``meta`` describes, and their CRC-64."""
    length = last - first + 1
    for attempt in range(1, RANGE_ATTEMPTS + 1):
        try:
            with ctx.store.open(path, meta.size, byte_range=(first, last), if_match=meta.etag) as reader:
                if reader.meta.size != meta.size:
                    raise IntegrityError(f"{path}: the object is {reader.meta.size} bytes now, {meta.size} before")
                chunks = list(reader.iter_bytes(CHUNK))
            break
        except TransientError:
            if attempt == RANGE_ATTEMPTS or ctx.stop.is_set():
                raise
    crc = 0
    got = 0
    for chunk in chunks:
        crc = crc64_update(crc, chunk)
        got += len(chunk)
    if got != length:
        raise IntegrityError(f"{path}: bytes {first}-{last} brought {got} bytes, not {length}")
    return chunks, crc
