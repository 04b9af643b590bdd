"""Checksums the store layer and the transfer tasks agree on: MD5 hex, the S3-style multipart ETag,
and streaming CRC-64/XZ (KS3's ``x-kss-checksum-crc64ecma``).

Pure functions; imports nothing from ks3sync.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable

from fastcrc import crc64 as _crc64


def crc64_update(crc: int, data: bytes | memoryview) -> int:
    """CRC-64/XZ of ``previous ‖ data`` given the CRC of ``previous`` (0 for the empty prefix)."""
    if not data:
        return crc
    return _crc64.xz(data, crc)


def multipart_etag(part_md5_hex: Iterable[str]) -> str:
    """``hex(MD5(md5(part1) ‖ … ‖ md5(partN)))-N``: the multipart ETag form local-server (and S3) use."""
    digests = [bytes.fromhex(h) for h in part_md5_hex]
    return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"  # noqa: S324 - protocol checksum


_CRC64_POLY_REFLECTED = 0xC96C5795D7870F42


def _gf2_times(matrix: list[int], vector: int) -> int:
    total = 0
    index = 0
    while vector:
        if vector & 1:
            total ^= matrix[index]
        vector >>= 1
        index += 1
    return total


def _gf2_square(matrix: list[int]) -> list[int]:
    return [_gf2_times(matrix, row) for row in matrix]


@functools.cache
def _zero_byte_operators() -> tuple[list[int], ...]:
    """``ops[k]`` appends 2**k zero bytes to a CRC register (k = 0..63), built once by repeated squaring
    of the one-zero-bit operator, not on every call, which a large upload pays once per part (D20)."""
    bit = [_CRC64_POLY_REFLECTED] + [1 << n for n in range(63)]  # operator for one zero bit
    byte = _gf2_square(_gf2_square(_gf2_square(bit)))  # eight zero bits
    operators = [byte]
    for _ in range(63):
        operators.append(_gf2_square(operators[-1]))
    return tuple(operators)


def crc64_combine(crc1: int, crc2: int, length2: int) -> int:
    """CRC-64/XZ of ``A ‖ B`` from crc(A), crc(B) and len(B), without the data (zlib's crc32_combine
    method: apply len(B) zero bytes to crc(A), one cached power-of-two operator per set bit of len(B))."""
    if length2 <= 0:
        return crc1
    operators = _zero_byte_operators()
    power = 0
    while length2:
        if length2 & 1:
            crc1 = _gf2_times(operators[power], crc1)
        length2 >>= 1
        power += 1
    return crc1 ^ crc2
