"""Pure pieces of the transfer layer: part sizing, CRC-64 combination, multipart ETags, the token bucket."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from ks3sync.store.checksums import crc64_combine, crc64_update, multipart_etag
from ks3sync.transfer.sizing import GIB, MAX_PARTS, MIB, MIN_PART_SIZE, choose_part_size, part_count
from ks3sync.transfer.throttle import TokenBucket


@given(size=st.integers(0, 48 * 1024 * GIB), requested=st.integers(1, 6 * GIB))
def test_part_size_respects_service_limits(size: int, requested: int) -> None:
    part = choose_part_size(size, requested)
    assert MIN_PART_SIZE <= part <= 5 * GIB
    assert part % 16 == 0
    assert part_count(size, part) <= MAX_PARTS or part == 5 * GIB
    if requested >= MIN_PART_SIZE and part_count(size, requested) <= MAX_PARTS and requested % 16 == 0:
        assert part == min(requested, 5 * GIB)


def test_part_size_grows_for_huge_files() -> None:
    assert choose_part_size(100 * GIB, 8 * MIB) == 16 * MIB
    assert choose_part_size(10, 1) == MIN_PART_SIZE


@settings(max_examples=60)
@given(a=st.binary(max_size=3000), b=st.binary(max_size=3000))
def test_crc64_combine_equals_crc_of_concatenation(a: bytes, b: bytes) -> None:
    assert crc64_combine(crc64_update(0, a), crc64_update(0, b), len(b)) == crc64_update(0, a + b)


def test_crc64_vectors() -> None:
    assert crc64_update(0, b"123456789") == 11051210869376104954
    assert crc64_combine(crc64_update(0, b"hello "), crc64_update(0, b"world"), 5) == 5981764153023615706


def test_multipart_etag_form() -> None:
    parts = [b"a" * 10, b"b" * 5]
    md5s = [hashlib.md5(p).hexdigest() for p in parts]
    expected = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + "-2"
    assert multipart_etag(md5s) == expected


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_token_bucket_limits_the_average_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1000.0, burst=100.0, clock=clock.time, sleep=clock.sleep)
    for _ in range(50):
        bucket.consume(100)
    # 5,000 bytes at 1,000 B/s with a 100-byte burst take ~4.9 s of (fake) time.
    assert 4.8 <= clock.now <= 5.0


def test_token_bucket_refills_while_idle() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1000.0, burst=500.0, clock=clock.time, sleep=clock.sleep)
    bucket.consume(500)
    assert clock.slept == []
    clock.now += 10  # idle: the bucket refills only up to its burst
    bucket.consume(500)
    assert clock.slept == []
    bucket.consume(500)
    assert clock.slept == [0.5]


def test_executor_sends_every_byte_through_the_shared_bucket(tmp_path) -> None:
    import os

    from ks3sync.model import LocalEntry, Upload
    from ks3sync.store.memory import MemoryStore
    from ks3sync.transfer import Executor, MemoryCheckpoint, TransferOptions
    from ks3sync.transfer.files import identity_of

    clock = FakeClock()
    bucket = TokenBucket(100_000.0, burst=10_000.0, clock=clock.time, sleep=clock.sleep)
    ops = []
    for i in range(4):
        (tmp_path / f"f{i}").write_bytes(os.urandom(150_000))
        ops.append(Upload(f"f{i}", LocalEntry(f"f{i}", identity_of(os.stat(tmp_path / f"f{i}"))), "new"))
    options = TransferOptions(jobs=4, part_size=100 * 1024, multipart_threshold=120_000)
    with Executor(MemoryStore(), MemoryCheckpoint(), tmp_path, options, throttle=bucket) as executor:
        report = executor.run(ops)
    assert report.ok and report.bytes_sent == 600_000
    # 600,000 bytes at 100,000 B/s with a 10,000-byte burst: 5.9 s of (fake) waiting in total.
    assert abs(sum(clock.slept) - 5.9) < 0.01


def test_byte_budget_blocks_until_released_and_clamps_huge_requests() -> None:
    import threading

    from ks3sync.transfer.throttle import ByteBudget

    budget = ByteBudget(100)
    assert budget.acquire(60) == 60
    got: list[int] = []
    waiter = threading.Thread(target=lambda: got.append(budget.acquire(50)))
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive() and not got  # 60 + 50 > 100: waits
    budget.release(60)
    waiter.join(5)
    assert got == [50] and budget.in_use == 50
    budget.release(50)
    assert budget.acquire(10_000) == 100  # a part bigger than the budget proceeds alone
    budget.release(100)
    assert budget.in_use == 0


def test_multipart_memory_stays_within_the_budget(tmp_path) -> None:
    import os

    from ks3sync.model import LocalEntry, Upload
    from ks3sync.store.memory import MemoryStore
    from ks3sync.transfer import Executor, MemoryCheckpoint, TransferOptions
    from ks3sync.transfer.files import identity_of

    peak = [0]
    store = MemoryStore()
    # Many jobs, a budget of four parts: the budget, not the jobs, bounds the part bytes in memory.
    options = TransferOptions(
        jobs=64, bytes_in_flight=4 * 100 * 1024, part_size=100 * 1024, multipart_threshold=200 * 1024
    )
    ops = []
    for i in range(3):
        (tmp_path / f"f{i}").write_bytes(os.urandom(1024 * 1024))
        ops.append(Upload(f"f{i}", LocalEntry(f"f{i}", identity_of(os.stat(tmp_path / f"f{i}"))), "new"))
    with Executor(store, MemoryCheckpoint(), tmp_path, options) as executor:
        store.hook = lambda op, path: peak.__setitem__(0, max(peak[0], executor.ctx.part_budget.in_use))
        assert executor.run(ops).ok
    assert 0 < peak[0] <= 4 * 100 * 1024


def test_whole_bodies_in_memory_stay_within_the_budget(tmp_path) -> None:
    # 64 file workers, 40 files of 1 MiB read whole for their single PUT: at most the budget's worth
    # is in memory at once (without it, 40 MiB could be).
    import os

    from ks3sync.model import LocalEntry, Upload
    from ks3sync.store.memory import MemoryStore
    from ks3sync.transfer import Executor, MemoryCheckpoint, TransferOptions
    from ks3sync.transfer.files import identity_of

    peak = [0]
    store = MemoryStore()
    options = TransferOptions(jobs=64, bytes_in_flight=3 * 1024 * 1024, part_size=1024 * 1024)
    ops = []
    for i in range(40):
        (tmp_path / f"f{i}").write_bytes(os.urandom(1024 * 1024))
        ops.append(Upload(f"f{i}", LocalEntry(f"f{i}", identity_of(os.stat(tmp_path / f"f{i}"))), "new"))
    with Executor(store, MemoryCheckpoint(), tmp_path, options) as executor:
        budget = executor.ctx.part_budget
        store.hook = lambda op, path: peak.__setitem__(0, max(peak[0], budget.in_use))
        assert executor.run(ops).ok
        assert budget.in_use == 0
    assert 1024 * 1024 <= peak[0] <= 3 * 1024 * 1024
    assert len(store.objects) == 40


def test_crc64_combine_over_part_sized_lengths() -> None:
    # The cached power-of-two operators must agree with the data for real part sizes (bits up to 2**23
    # and an odd tail), not just the short strings hypothesis draws.
    part = bytes(range(256)) * (8 * 4096) + b"tail"
    head = b"first part"
    assert crc64_combine(crc64_update(0, head), crc64_update(0, part), len(part)) == crc64_update(
        0, head + part
    )
