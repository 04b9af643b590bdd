"""MemoryBody: a small file's bytes go out as read (no copy); larger or memoryview data in CHUNK pieces;
every call to chunks() starts again from the first byte (the retry wrapper's rewind)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ks3sync.transfer.bodies import CHUNK, MemoryBody


def test_small_bytes_are_sent_without_a_copy() -> None:
    data = b"x" * 4096
    [chunk] = list(MemoryBody(data).chunks())
    assert chunk is data


def test_empty_body_has_no_chunks() -> None:
    assert list(MemoryBody(b"").chunks()) == []


@pytest.mark.parametrize("size", [CHUNK, CHUNK + 1, 3 * CHUNK + 5])
def test_large_bodies_come_in_chunks_and_rewind(size: int) -> None:
    data = bytes(range(256)) * (size // 256 + 1)
    body = MemoryBody(data[:size])
    first, second = list(body.chunks()), list(body.chunks())
    assert first == second and b"".join(first) == data[:size]
    assert all(len(chunk) <= CHUNK for chunk in first)


@given(st.binary(max_size=3 * 1024), st.booleans())
def test_any_data_round_trips_with_its_md5(data: bytes, as_view: bool) -> None:
    body = MemoryBody(memoryview(data) if as_view else data)
    assert b"".join(body.chunks()) == data and body.length == len(data)
    assert body.content_md5() == hashlib.md5(data).digest()
    assert all(type(chunk) is bytes for chunk in body.chunks())
