"""A large restore as parallel ranged GETs, written into the temp file at their offsets.

Owns: ``open_object``, the reader a restore streams an object from, and ``in_place``. An object of at
least two parts (by its listed size) is read as ranges of whole parts (``range_size``). The first
range's answer gives the object's metadata and is streamed to the caller as it arrives; the next
ranges (at most ``MAX_RANGES_AHEAD`` ahead) are fetched on the part pool, each written with ``pwrite``
into the restore's temp file at its offset as its body arrives (as rclone's multi-thread download
does), holding one socket read at a time. The caller still gets every byte in order: each range's
bytes are read back from the temp file (the page cache: a memory copy, no disk) as soon as its worker
has written them, so the restore's single pass over them (the plaintext MD5 the journal records and a
single-PUT ETag is checked against, the CBC chain and the integrity tag's SHA-256 of an encrypted
object) stays sequential and unchanged (download.py). The bytes are already in place: a plain
object's restore does not write them again; an encrypted one writes its plaintext over the ciphertext
behind the reading position (CBC plaintext is never longer than the ciphertext read so far) and
truncates the padding.
Must not import: ks3sync.ks3, the journal, the planner, the CLI.

- *One version*: every range after the first asks ``If-Match`` the first one's ETag, and must report
  the same total size; an object replaced meanwhile fails the file (IntegrityError, retried later in
  the pass), it is never stitched from two versions.
- *Verified*: each range's CRC-64 is computed as it arrives (on the pool thread) and the CRCs are
  combined in order into the whole object's, compared with the service's ``x-kss-checksum-crc64ecma``
  (KS3 sends the whole object's CRC with every ranged answer) at the end; each range must be exactly
  its length and nothing is written past it (a hostile endpoint cannot write outside the object, nor
  make it longer than listed). Unverified bytes live only in the temp file, which is renamed into
  place by the caller only after everything checked out, and removed otherwise.
- *Memory*: a range being fetched holds one socket read (``CHUNK``) against the transfer's byte budget
  from before it is requested until it is complete. The budget is taken by the caller's thread (waiting
  only when no range of its own is in flight), never by a pool thread, so restores sharing the budget
  and the pool cannot deadlock.
- *No write after the end*: ``close`` stops the ranges not started and waits for those running (they
  stop at their next piece), so no pool thread writes to the descriptor once the restore has returned
  and the caller closed (and perhaps reused) it.
- A range whose body breaks off is fetched once more (the client retries a request that got no
  answer by itself, but not a body cut halfway), from where it broke off: what it wrote may already be
  read back (and, encrypted, overwritten with plaintext), so it is never written twice.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import os
import threading
from collections.abc import Iterator
from concurrent.futures import Future

from ks3sync.errors import IntegrityError, TransientError
from ks3sync.store.base import ObjectMeta, ObjectReader
from ks3sync.store.checksums import crc64_combine, crc64_update
from ks3sync.transfer.context import TransferContext

CHUNK = 1024 * 1024
RANGE_ATTEMPTS = 2
STOP_CHECK_S = 0.5  # how often a restore waiting for a range's bytes looks at the run's stop flag
# What a range worker asks the body for at a time. Nothing downstream needs large pieces (each goes
# straight to pwrite), and asking for 1 MiB made the HTTP layer join the socket's smaller pieces into
# fresh 1 MiB buffers on several threads at once: memory the allocator gave back and faulted in again
# (D19, "Ranged restores, revised").
PIECE = 128 * 1024
# Ranges of one object in flight ahead of the restore at most (fewer with fewer part workers): D19.
MAX_RANGES_AHEAD = 3
# Ranges are written in place, so their size costs no memory; each one costs a round trip, so a large
# object is read in about TARGET_RANGES of them, none larger than MAX_RANGE (rclone's
# --multi-thread-chunk-size is 64 MiB too). D19, "Ranged restores, revised".
MAX_RANGE = 64 * 1024 * 1024
TARGET_RANGES = 16


def ranged(ctx: TransferContext, listed_size: int | None) -> bool:
    """Whether an object of this listed size is read as parallel ranges: at least two parts."""
    return listed_size is not None and listed_size >= 2 * ctx.options.part_size and ctx.parallel_ranges > 1


def range_size(part_size: int, listed_size: int) -> int:
    """Ranges are whole parts, as many per range as keep the object near ``TARGET_RANGES`` ranges, at
    most ``MAX_RANGE`` bytes (at least one part): each range is a round trip, not memory."""
    parts = -(-listed_size // part_size)
    per_range = max(1, min(parts // TARGET_RANGES, MAX_RANGE // part_size))
    return per_range * part_size


def in_place(reader: ObjectReader) -> bool:
    """Whether ``reader`` has already written each byte it yields into the temp file at its offset."""
    return isinstance(reader, _RangedReader)


@contextlib.contextmanager
def open_object(ctx: TransferContext, path: str, listed_size: int | None, fd: int) -> Iterator[ObjectReader]:
    """The object's reader: one GET, or (``ranged``) parallel ranges written into ``fd`` (the restore's
    temp file, opened for reading and writing) and read back from it in order."""
    if not ranged(ctx, listed_size):
        with ctx.store.open(path, listed_size) as reader:
            yield reader
        return
    assert listed_size is not None
    size = range_size(ctx.options.part_size, listed_size)
    with ctx.store.open(path, listed_size, byte_range=(0, size - 1)) as first:
        reader = _RangedReader(ctx, path, first, fd, size, listed_size)
        try:
            yield reader
        finally:
            reader.close()


class _RangedReader:
    """``ObjectReader`` over ranges: the first streamed, the others written in place on the part pool."""

    def __init__(
        self, ctx: TransferContext, path: str, first: ObjectReader, fd: int, range_size: int, listed: int
    ) -> None:
        self.meta: ObjectMeta = first.meta
        self.checks_crc64 = self.meta.crc64 is not None
        self._ctx = ctx
        self._path = path
        self._first = first
        self._fd = fd
        self._range_size = range_size
        if self.meta.size > listed:
            raise IntegrityError(
                f"{path}: the object is {self.meta.size} bytes, more than the {listed} listed "
                "(it changed since it was listed, or the server is broken)"
            )
        self._count = max(1, -(-self.meta.size // range_size))
        self._next = 1  # the next range to start
        self._pending: collections.deque[tuple[Future[int], _Progress, int]] = collections.deque()
        self._abandon = threading.Event()  # set by close(): running ranges stop at their next piece
        self._moved = threading.Condition()  # a range wrote another CHUNK, or ended

    def _bounds(self, index: int) -> tuple[int, int]:
        first = index * self._range_size
        return first, min(self.meta.size, first + self._range_size) - 1

    def _start_more(self, *, wait: bool) -> None:
        """Start ranges while the part workers and the byte budget allow; with ``wait``, wait for the
        budget of the first one (only when no range is in flight to finish meanwhile)."""
        ctx = self._ctx
        while self._next < self._count and len(self._pending) < ctx.parallel_ranges:
            if ctx.stop.is_set():
                raise TransientError(f"{self._path}: run stopped before the restore finished")
            first, last = self._bounds(self._next)
            held = min(CHUNK, last - first + 1)
            taken = (
                ctx.part_budget.acquire(held)
                if wait and not self._pending
                else ctx.part_budget.try_acquire(held)
            )
            if taken is None:
                return
            progress = _Progress(self._fd, first, last, self._moved, self._abandon)
            try:
                future = ctx.part_pool.submit(_fetch_range, ctx, self._path, self.meta, progress)
            except BaseException:
                ctx.part_budget.release(taken)
                raise
            self._pending.append((future, progress, taken))
            self._next += 1

    def iter_bytes(self, chunk_size: int = CHUNK) -> Iterator[bytes]:
        crc = 0
        received = 0
        expected = self._bounds(0)[1] + 1
        for chunk in self._first.iter_bytes(chunk_size):
            if received + len(chunk) > expected:
                break  # counted as a wrong length below, never written past the range
            _write_at(self._fd, chunk, received)
            crc = crc64_update(crc, chunk)
            received += len(chunk)
            self._start_more(wait=False)
            yield chunk
        if received != expected:
            raise IntegrityError(f"{self._path}: the first range brought {received} bytes, not {expected}")
        for index in range(1, self._count):
            self._start_more(wait=True)
            future, progress, taken = self._pending[0]
            first, last = self._bounds(index)
            # Back from the page cache, in order, for the caller's hashes and decryption, as soon as
            # the range's worker has written them (not once the whole range is in).
            for offset in range(first, last + 1, chunk_size):
                want = min(chunk_size, last + 1 - offset)
                if not self._wait_for(progress, offset + want - first):
                    future.result()  # the range ended short: its error
                    raise IntegrityError(
                        f"{self._path}: bytes {first}-{last} ended after {progress.written} bytes"
                    )
                chunk = os.pread(self._fd, want, offset)
                if len(chunk) != want:
                    raise IntegrityError(
                        f"{self._path}: the temp file is shorter than the bytes written to it"
                    )
                yield chunk
            range_crc = future.result()
            # Only a finished range leaves the queue: close() waits for every other one.
            self._pending.popleft()
            self._ctx.part_budget.release(taken)
            self._start_more(wait=False)
            crc = crc64_combine(crc, range_crc, last - first + 1)
        if self.meta.crc64 is not None and crc != self.meta.crc64:
            raise IntegrityError(f"{self._path}: the ranges' CRC-64 {crc} != the object's {self.meta.crc64}")

    def _wait_for(self, progress: _Progress, written: int) -> bool:
        """Wait until the range has ``written`` bytes in the file (True) or ended short of them (False)."""
        with self._moved:
            while progress.written < written:
                if progress.ended:
                    return False
                if self._ctx.stop.is_set():
                    raise TransientError(f"{self._path}: run stopped before the restore finished")
                self._moved.wait(STOP_CHECK_S)
        return True

    def close(self) -> None:
        """Stop what has not started, wait for what has, and give back the budget of both."""
        self._abandon.set()
        pending, self._pending = self._pending, collections.deque()
        for future, _progress, _taken in pending:
            future.cancel()
        concurrent.futures.wait([future for future, _progress, _taken in pending])
        for _future, _progress, taken in pending:
            self._ctx.part_budget.release(taken)


def _write_at(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        done = os.pwrite(fd, view, offset)
        view = view[done:]
        offset += done


class _Progress:
    """One range being written into the file: how far (bytes from its start, contiguous), and whether
    its worker is done (then ``written`` no longer moves)."""

    __slots__ = ("fd", "first", "last", "moved", "abandon", "written", "ended")

    def __init__(
        self, fd: int, first: int, last: int, moved: threading.Condition, abandon: threading.Event
    ) -> None:
        self.fd = fd
        self.first = first
        self.last = last
        self.moved = moved
        self.abandon = abandon
        self.written = 0
        self.ended = False

    def wrote(self, total: int, *, ended: bool = False) -> None:
        with self.moved:
            self.written = total
            self.ended = ended
            self.moved.notify_all()


def _fetch_range(ctx: TransferContext, path: str, meta: ObjectMeta, progress: _Progress) -> int:
    """On the part pool: write the bytes ``first..last`` of the version ``meta`` describes into the file
    at their offsets; returns their CRC-64. A second attempt resumes after the bytes already written
    (the restore may have read them back already: they are never written twice)."""
    first, last = progress.first, progress.last
    length = last - first + 1
    crc = 0
    got = 0
    told = 0
    try:
        for attempt in range(1, RANGE_ATTEMPTS + 1):
            try:
                byte_range = (first + got, last)
                with ctx.store.open(path, meta.size, byte_range=byte_range, if_match=meta.etag) as reader:
                    if reader.meta.size != meta.size:
                        raise IntegrityError(
                            f"{path}: the object is {reader.meta.size} bytes now, {meta.size} before"
                        )
                    for piece in reader.iter_bytes(PIECE):
                        if progress.abandon.is_set():
                            raise TransientError(f"{path}: restore abandoned")
                        if got + len(piece) > length:
                            raise IntegrityError(
                                f"{path}: bytes {first}-{last} brought more than {length} bytes"
                            )
                        _write_at(progress.fd, piece, first + got)
                        crc = crc64_update(crc, piece)
                        got += len(piece)
                        if got - told >= CHUNK:
                            progress.wrote(got)
                            told = got
                break
            except TransientError:
                if attempt == RANGE_ATTEMPTS or ctx.stop.is_set() or progress.abandon.is_set():
                    raise
    finally:
        progress.wrote(got, ended=True)
    if got != length:
        raise IntegrityError(f"{path}: bytes {first}-{last} brought {got} bytes, not {length}")
    return crc
