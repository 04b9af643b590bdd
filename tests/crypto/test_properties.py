"""Property tests: round trips with random sizes and chunkings, ranged reads equal slices, multipart with
random part sizes (and resumes) equals single PUT, tampering and truncation never yield output silently."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ks3sync.crypto import (
    CryptoError,
    EncryptedFileBody,
    EncryptionKey,
    MultipartEncryptor,
    ObjectDecryptor,
    ciphertext_length,
    plaintext_length,
    plan_range,
    tail_range,
)

KEY = EncryptionKey(b"0123456789abcdef")
IVS = st.binary(min_size=16, max_size=16)
DATA = st.binary(min_size=1, max_size=5000)
CHUNK = st.integers(min_value=1, max_value=256).map(lambda n: n * 16)
# Per test, not a global profile: loading a profile would change every other suite's settings too.
SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def split(data: bytes, cuts: Iterable[int]) -> Iterator[bytes]:
    """``data`` cut at the given offsets (any order, duplicates allowed), so chunks of any size arrive."""
    last = 0
    for cut in sorted({c % (len(data) + 1) for c in cuts}):
        yield data[last:cut]
        last = cut
    yield data[last:]


def decrypt_chunks(decryptor: ObjectDecryptor, chunks: Iterable[bytes]) -> bytes:
    out = [decryptor.update(chunk) for chunk in chunks]
    out.append(decryptor.finish())
    return b"".join(out)


@SETTINGS
@given(data=DATA, iv=IVS, chunk_size=CHUNK, cuts=st.lists(st.integers(min_value=0), max_size=8))
def test_round_trip_any_chunking(data: bytes, iv: bytes, chunk_size: int, cuts: list[int]) -> None:
    body = EncryptedFileBody(KEY, data, iv=iv, chunk_size=chunk_size)
    wire = b"".join(body.chunks())
    assert wire == b"".join(body.chunks())  # re-iterable, deterministic
    assert body.content_md5() == hashlib.md5(wire).digest()
    decryptor = ObjectDecryptor(KEY, body.metadata(), ciphertext_length=len(wire))
    assert decrypt_chunks(decryptor, split(wire, cuts)) == data


@SETTINGS
@given(
    data=DATA,
    iv=IVS,
    start=st.integers(min_value=0),
    span=st.integers(min_value=0, max_value=6000),
    open_ended=st.booleans(),
    cuts=st.lists(st.integers(min_value=0), max_size=6),
)
def test_ranged_read_equals_slice(
    data: bytes, iv: bytes, start: int, span: int, open_ended: bool, cuts: list[int]
) -> None:
    body = EncryptedFileBody(KEY, data, iv=iv)
    wire = b"".join(body.chunks())
    start %= len(data)
    end = None if open_ended else start + span
    plan = plan_range(start, end, len(wire))
    assert plan.fetch_start % 16 == 0 and plan.fetch_start <= start
    assert (plan.fetch_end + 1) % 16 == 0 and plan.fetch_end <= len(wire) - 1
    fetched = wire[plan.fetch_start : plan.fetch_end + 1]
    decryptor = ObjectDecryptor(KEY, body.metadata(), ciphertext_length=len(wire), plan=plan)
    expected = data[start:] if end is None else data[start : end + 1]
    assert decrypt_chunks(decryptor, split(fetched, cuts)) == expected


@SETTINGS
@given(
    length=st.integers(min_value=1, max_value=10**12),
    start=st.integers(min_value=0),
    span=st.integers(min_value=0, max_value=10**9),
)
def test_range_fetch_is_minimal(length: int, start: int, span: int) -> None:
    size = ciphertext_length(length)
    start %= length
    end = start + span
    plan = plan_range(start, end, size)
    # One block before the first wanted block (its CBC IV), through the block holding `end`, plus the
    # pad block only when the wanted range reaches into it.
    assert plan.fetch_start == 16 * (start // 16)
    assert plan.fetch_end == min(16 * (end // 16) + 31, size - 1)


@st.composite
def multipart_layout(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    data = draw(st.binary(min_size=0, max_size=4000))
    sizes: list[int] = []
    remaining = len(data)
    while True:
        size = draw(st.integers(min_value=1, max_value=100)) * 16  # KS3 refuses empty parts
        if size >= remaining or draw(st.integers(0, 4)) == 0:
            break
        sizes.append(size)
        remaining -= size
    sizes.append(remaining)  # the last part takes the rest (any length, even 0)
    return data, sizes


def encrypt_parts(
    encryptor: MultipartEncryptor, data: bytes, sizes: list[int], first_index: int = 0
) -> list[bytes]:
    offsets = [sum(sizes[:i]) for i in range(len(sizes))]
    wires = []
    for i in range(first_index, len(sizes)):
        part = encryptor.next_part(data[offsets[i] : offsets[i] + sizes[i]], last=i == len(sizes) - 1)
        assert part.part_number == i + 1
        wire = b"".join(part.chunks())
        assert len(wire) == part.length and part.content_md5() == hashlib.md5(wire).digest()
        assert part.chain_block == wire[-16:]
        wires.append(wire)
    return wires


@SETTINGS
@given(layout=multipart_layout(), iv=IVS)
def test_multipart_equals_single_put(layout: tuple[bytes, list[int]], iv: bytes) -> None:
    data, sizes = layout
    encryptor = MultipartEncryptor(KEY, iv)
    wires = encrypt_parts(encryptor, data, sizes)
    whole = b"".join(wires)
    if data:
        assert whole == b"".join(EncryptedFileBody(KEY, data, iv=iv).chunks())
    # The object as the SDK leaves it: key + IV metadata only (part lengths/MD5s are not object metadata).
    decryptor = ObjectDecryptor(KEY, encryptor.initiate_metadata(), ciphertext_length=len(whole))
    assert decrypt_chunks(decryptor, [whole]) == data


@SETTINGS
@given(layout=multipart_layout(), iv=IVS, resume_at=st.integers(min_value=0))
def test_multipart_resumes_from_a_recorded_chain_block(
    layout: tuple[bytes, list[int]], iv: bytes, resume_at: int
) -> None:
    data, sizes = layout
    full = encrypt_parts(MultipartEncryptor(KEY, iv), data, sizes)
    done = resume_at % len(sizes)  # parts 1..done finished before the "crash"
    chain = None if done == 0 else MultipartEncryptor(KEY, iv)
    chain_block = None
    if chain is not None:
        offsets = [sum(sizes[:i]) for i in range(len(sizes))]
        for i in range(done):
            chain_block = chain.next_part(data[offsets[i] : offsets[i] + sizes[i]], last=False).chain_block
    resumed = MultipartEncryptor.resume(KEY, iv, next_part_number=done + 1, chain_block=chain_block)
    assert encrypt_parts(resumed, data, sizes, first_index=done) == full[done:]


def test_skip_part_continues_after_a_gap() -> None:
    data = bytes(range(256)) * 20  # 5120 bytes: parts of 1024
    iv = bytes(16)
    original = MultipartEncryptor(KEY, iv)
    parts = [original.next_part(data[i : i + 1024], last=i == 4096) for i in range(0, 5120, 1024)]
    # Parts 1, 2 and 4 finished; 3 and 5 did not. Resume after 2, re-send 3, skip 4 by its record, send 5.
    resumed = MultipartEncryptor.resume(KEY, iv, next_part_number=3, chain_block=parts[1].chain_block)
    third = resumed.next_part(data[2048:3072], last=False)
    resumed.skip_part(parts[3].chain_block)
    fifth = resumed.next_part(data[4096:], last=True)
    assert (third.part_number, fifth.part_number) == (3, 5)
    assert b"".join(third.chunks()) == b"".join(parts[2].chunks())
    assert b"".join(fifth.chunks()) == b"".join(parts[4].chunks())


def test_non_last_part_must_be_block_aligned() -> None:
    with pytest.raises(ValueError, match="multiple of 16"):
        MultipartEncryptor(KEY).next_part(b"x" * 100, last=False)


def test_no_part_after_the_last() -> None:
    encryptor = MultipartEncryptor(KEY)
    encryptor.next_part(b"x" * 10, last=True)
    with pytest.raises(ValueError, match="last part"):
        encryptor.next_part(b"y", last=True)


@SETTINGS
@given(data=DATA, iv=IVS)
def test_plaintext_length_from_the_tail(data: bytes, iv: bytes) -> None:
    wire = b"".join(EncryptedFileBody(KEY, data, iv=iv).chunks())
    first, last = tail_range(len(wire))
    assert plaintext_length(KEY, len(wire), wire[first : last + 1]) == len(data)


@SETTINGS
@given(data=DATA, iv=IVS, position=st.integers(min_value=0), bit=st.integers(min_value=0, max_value=7))
def test_single_put_tampering_is_always_detected(data: bytes, iv: bytes, position: int, bit: int) -> None:
    body = EncryptedFileBody(KEY, data, iv=iv)
    wire = bytearray(b"".join(body.chunks()))
    wire[position % len(wire)] ^= 1 << bit
    decryptor = ObjectDecryptor(KEY, body.metadata(), ciphertext_length=len(wire))
    with pytest.raises(CryptoError):
        decrypt_chunks(decryptor, [bytes(wire)])


@SETTINGS
@given(data=DATA, iv=IVS, keep=st.integers(min_value=0))
def test_truncation_is_always_detected(data: bytes, iv: bytes, keep: int) -> None:
    body = EncryptedFileBody(KEY, data, iv=iv)
    wire = b"".join(body.chunks())
    keep %= len(wire)
    # Without the recorded plaintext length/MD5 (a multipart object), a cut at a block boundary can still
    # leave a valid-looking pad; with them (single PUT) every truncation must fail.
    decryptor = ObjectDecryptor(KEY, body.metadata())
    with pytest.raises(CryptoError):
        decrypt_chunks(decryptor, [wire[:keep]])
