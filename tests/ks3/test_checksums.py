"""CRC-64/XZ vectors from ks3-protocol.md §7 (SDK ``utils.compute_data_crc64``), combine, MD5 helpers."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ks3sync.ks3 import combine_parts, crc64, crc64_combine, multipart_etag
from ks3sync.ks3.checksums import md5_base64, unquote_etag


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", 0),
        (b"123456789", 11051210869376104954),
        (b"hello", 11177612005948864433),
        (b"hello world", 5981764153023615706),
        (bytes(1024 * 1024), 6947770692288575170),
    ],
)
def test_crc64_vectors(data, expected):
    assert crc64(data) == expected


def test_crc64_check_value_hex():
    assert crc64(b"123456789") == 0x995DC9BBDF1939FA


def test_crc64_streaming_continuation():
    assert crc64(b"world", crc64(b"hello ")) == 5981764153023615706
    assert crc64(memoryview(b"hello world")) == 5981764153023615706


def test_crc64_combine_vector():
    assert crc64_combine(crc64(b"hello "), crc64(b"world"), 5) == 5981764153023615706


def test_combine_with_empty_second_part_is_identity():
    assert crc64_combine(12345, 0, 0) == 12345


def test_combine_rejects_negative_length():
    with pytest.raises(ValueError):
        crc64_combine(1, 2, -1)


def test_combine_parts_folds_from_zero():
    parts = [b"abc" * 1000, b"", b"x" * 12345, b"\x00" * 7]
    assert combine_parts([(crc64(p), len(p)) for p in parts]) == crc64(b"".join(parts))


@given(st.binary(max_size=3000), st.binary(max_size=3000))
def test_combine_matches_crc_of_concatenation(a, b):
    assert crc64_combine(crc64(a), crc64(b), len(b)) == crc64(a + b)


def test_combine_large_length_is_fast_and_correct():
    # 5 MiB of zeros: compare against streaming rather than trusting the matrix code alone.
    zeros = bytes(5 * 1024 * 1024)
    assert crc64_combine(crc64(b"head"), crc64(zeros), len(zeros)) == crc64(zeros, crc64(b"head"))


def test_md5_base64_and_multipart_etag():
    assert md5_base64(hashlib.md5(b"").digest()) == "1B2M2Y8AsgTpgAmY7PhCfg=="
    p1, p2 = hashlib.md5(b"one").hexdigest(), hashlib.md5(b"two").hexdigest()
    expected = hashlib.md5(bytes.fromhex(p1) + bytes.fromhex(p2)).hexdigest() + "-2"
    assert multipart_etag([p1, p2]) == expected


@pytest.mark.parametrize(
    ("raw", "bare"), [('"ABCdef"', "abcdef"), ("abc", "abc"), ('W/"x-2"', "x-2"), ('  "q"  ', "q")]
)
def test_unquote_etag(raw, bare):
    assert unquote_etag(raw) == bare
