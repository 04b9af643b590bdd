"""The verifier's pure decisions (daemon/verifyrules.py): pacing with an injected clock, what is read of
each object, a HEAD against its record, and whether the local file is still the recorded one."""

from __future__ import annotations

import base64
import hashlib

import pytest

from ks3sync.config import VerifyConfig
from ks3sync.daemon.verifyrules import (
    BURST_NS,
    DAY_NS,
    SECOND,
    TAIL_SAMPLE,
    WHOLE_READ_MAX,
    Budget,
    Pace,
    Reading,
    Unit,
    head_problem,
    local_unchanged,
    reading_for,
    tail_start,
)
from ks3sync.model import FileIdentity, SyncedEntry
from ks3sync.store.base import ObjectMeta

MD5 = hashlib.md5(b"content").hexdigest()


def record(size: int = 7, *, remote_size: int | None = None, encrypted: bool = False) -> SyncedEntry:
    return SyncedEntry(
        "a/b.txt",
        FileIdentity(size, 100, 5, 200),
        MD5,
        MD5 if not encrypted else "c" * 32,
        size if remote_size is None else remote_size,
        encrypted,
        1,
    )


def verified_in(pace: Pace, budget: Budget, sizes: list[int], start: int, seconds: int, step_ns: int) -> int:
    """Drive ``pace`` as the verifier does (one object whenever it is ready) over ``seconds`` of fake
    time in steps of ``step_ns``; how many objects were verified."""
    done = 0
    now = start
    end = start + seconds * SECOND
    while now < end:
        while done < len(sizes) and pace.ready(now):
            pace.spend(budget.cost(record(sizes[done])), now)
            done += 1
        now += step_ns
    return done


def test_a_budget_of_n_objects_a_day_verifies_about_n_a_day_not_a_big_tree_at_once() -> None:
    budget = Budget.of(VerifyConfig(objects_per_day=1000))
    start = 10**18
    pace = Pace(budget, start)
    tree = [10] * 100_000
    assert verified_in(pace, budget, tree, start, 60, SECOND // 10) <= 2  # a minute: ~0.7 objects
    pace = Pace(budget, start)
    day = verified_in(pace, budget, tree, start, 86_400, 10 * SECOND)
    assert 999 <= day <= 1001


def test_idle_time_accumulates_at_most_a_burst() -> None:
    budget = Budget.of(VerifyConfig(objects_per_day=86_400))  # one a second
    start = 10**18
    pace = Pace(budget, start)
    later = start + 7 * DAY_NS  # a week stopped or busy
    burst = 0
    while pace.ready(later):
        pace.spend(1, later)
        burst += 1
    assert burst == BURST_NS // SECOND  # 60: a minute's worth, not a week's
    assert pace.next_ready_ns(later) == later + 1  # empty, not in debt: any refill lets one more start
    pace.spend(1, later + 1)
    assert later + SECOND <= pace.next_ready_ns(later + 1) <= later + SECOND + 1  # in debt by one: a second


def test_a_byte_budget_charges_stored_size_and_lets_one_large_object_through_in_debt() -> None:
    budget = Budget.of(VerifyConfig(bytes_per_day=86_400 * 1000))  # 1000 bytes a second
    assert budget.unit is Unit.BYTES and budget.cost(record(0)) == 1 and budget.cost(record(5000)) == 5000
    start = 10**18
    pace = Pace(budget, start)
    assert pace.ready(start + 1)
    pace.spend(1_000_000, start + 1)  # far larger than the burst: verified, then paid for
    assert abs(pace.next_ready_ns(start + 1) - (start + 1 + 1000 * SECOND)) <= 2
    assert not pace.ready(start + 900 * SECOND)
    assert pace.ready(start + 1001 * SECOND)


@pytest.mark.parametrize(
    ("rec", "unit", "reading"),
    [
        (record(7), Unit.OBJECTS, Reading.NONE),
        (record(7), Unit.BYTES, Reading.WHOLE),
        (record(0), Unit.BYTES, Reading.NONE),
        (record(1000, remote_size=1024, encrypted=True), Unit.OBJECTS, Reading.WHOLE),
        (record(WHOLE_READ_MAX, remote_size=WHOLE_READ_MAX + 16, encrypted=True), Unit.OBJECTS, Reading.TAIL),
        (record(WHOLE_READ_MAX, remote_size=WHOLE_READ_MAX + 16, encrypted=True), Unit.BYTES, Reading.WHOLE),
    ],
)
def test_what_is_read_of_each_object(rec: SyncedEntry, unit: Unit, reading: Reading) -> None:
    assert reading_for(rec, unit) is reading


def test_the_tail_sample_is_the_last_64k_of_plaintext() -> None:
    assert tail_start(record(10 * TAIL_SAMPLE, encrypted=True)) == 9 * TAIL_SAMPLE
    assert tail_start(record(100, encrypted=True)) == 0


def meta(size: int = 7, etag: str = MD5, **metadata: str) -> ObjectMeta:
    return ObjectMeta("a/b.txt", size, etag, metadata=metadata)


def test_head_against_the_record() -> None:
    assert head_problem(record(), meta()) is None
    assert head_problem(record(), None) == "the object is missing"
    assert "8 bytes, 7 were recorded" in str(head_problem(record(), meta(8)))
    assert "ETag is x" in str(head_problem(record(), meta(etag="x")))


def test_head_of_an_encrypted_record_needs_agreeing_encryption_metadata() -> None:
    enc = record(7, remote_size=32, encrypted=True)
    iv = base64.b64encode(b"\0" * 16).decode()
    good_md5 = base64.b64encode(bytes.fromhex(MD5)).decode()
    base = {"key": "fp", "iv": iv}
    assert head_problem(enc, meta(32, "c" * 32, **base)) is None
    assert (
        head_problem(
            enc,
            meta(
                32,
                "c" * 32,
                **base,
                **{"unencrypted-content-length": "7", "unencrypted-content-md5": good_md5},
            ),
        )
        is None
    )
    assert "not client-side encrypted" in str(head_problem(enc, meta(32, "c" * 32)))
    assert "says 9 plaintext bytes" in str(
        head_problem(enc, meta(32, "c" * 32, **base, **{"unencrypted-content-length": "9"}))
    )
    other = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    assert "plaintext MD5" in str(
        head_problem(enc, meta(32, "c" * 32, **base, **{"unencrypted-content-md5": other}))
    )
    assert "damaged" in str(head_problem(enc, meta(32, "c" * 32, key="fp")))


def test_the_local_file_is_the_recorded_one_by_size_mtime_and_md5() -> None:
    rec = record()
    same = FileIdentity(7, 100, 99, 999)  # another inode and ctime: copied back, same bytes
    assert local_unchanged(rec, same, MD5)
    assert not local_unchanged(rec, FileIdentity(7, 101, 5, 200), MD5)
    assert not local_unchanged(rec, FileIdentity(8, 100, 5, 200), MD5)
    assert not local_unchanged(rec, same, hashlib.md5(b"edited").hexdigest())
    assert not local_unchanged(rec, None, None)
