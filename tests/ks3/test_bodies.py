"""Request bodies: exact ranges, MD5 up front, re-iterable from the first byte, bounded chunks."""

from __future__ import annotations

import hashlib

import pytest

from ks3sync.ks3 import Body, BytesBody, FileRangeBody, SourceChangedError
from ks3sync.ks3.bodies import CHUNK_SIZE, as_body


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE - 7])
def test_bytes_body(size):
    data = bytes(i % 253 for i in range(size))
    for source in (data, bytearray(data), memoryview(data)):
        body = BytesBody(source)
        assert isinstance(body, Body)
        chunks = list(body.chunks())
        assert b"".join(chunks) == data == b"".join(body.chunks())
        assert all(0 < len(c) <= CHUNK_SIZE for c in chunks)
        assert body.length == size and body.content_md5() == hashlib.md5(data).digest()


def test_as_body_wraps_bytes_and_passes_bodies_through(tmp_path):
    assert isinstance(as_body(b"x"), BytesBody)
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    body = FileRangeBody(path)
    assert as_body(body) is body


@pytest.mark.parametrize(
    ("offset", "length"), [(0, None), (5, None), (0, 0), (CHUNK_SIZE - 3, CHUNK_SIZE + 10), (17, 1)]
)
def test_file_range_body(tmp_path, offset, length):
    data = bytes(i % 249 for i in range(2 * CHUNK_SIZE + 100))
    path = tmp_path / "f"
    path.write_bytes(data)
    body = FileRangeBody(path, offset, length)
    expected = data[offset:] if length is None else data[offset : offset + length]
    assert body.length == len(expected)
    assert b"".join(body.chunks()) == expected == b"".join(body.chunks())
    assert all(len(c) <= CHUNK_SIZE for c in body.chunks())
    assert body.content_md5() == hashlib.md5(expected).digest()


def test_file_range_body_trusts_a_given_md5(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert FileRangeBody(path, md5=b"\x01" * 16).content_md5() == b"\x01" * 16


def test_file_range_body_past_the_end_raises_source_changed(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    with pytest.raises(SourceChangedError, match="3 bytes early"):
        list(FileRangeBody(path, 0, 6).chunks())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"offset": -1}, "offset"), ({"length": -2}, "length"), ({"md5": b"short"}, "md5")],
)
def test_file_range_body_rejects_bad_arguments(tmp_path, kwargs, message):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    with pytest.raises(ValueError, match=message):
        FileRangeBody(path, **kwargs)
