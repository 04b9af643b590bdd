"""CRC-64/XZ (KS3's `crc64ecma`) for the local server: streaming update and zlib-style combine.

The streaming part delegates to fastcrc (C speed). `combine` is implemented here, over GF(2), the way
zlib's crc32_combine works: appending `len2` zero bytes to a message is a linear operator on its CRC,
so crc(A‖B) = zeros(len2)·crc(A) ⊕ crc(B). The server uses it to report a multipart object's CRC from
its parts' CRCs without re-reading the data. Imports nothing else from ks3sync.
"""

from __future__ import annotations

from functools import lru_cache

import fastcrc

# CRC-64/XZ polynomial 0x42F0E1EBA9EA3693, bit-reversed (LSB-first form).
_POLY_REFLECTED = 0xC96C5795D7870F42
_BITS = 64


def crc64(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC-64/XZ of `data`, continuing from `crc` (the CRC of the bytes before it; 0 for none)."""
    return int(fastcrc.crc64.xz(data, crc))  # fastcrc takes bytes, bytearray and memoryview alike


def _times(matrix: tuple[int, ...], vector: int) -> int:
    result = 0
    row = 0
    while vector:
        if vector & 1:
            result ^= matrix[row]
        vector >>= 1
        row += 1
    return result


def _square(matrix: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(_times(matrix, matrix[n]) for n in range(_BITS))


@lru_cache(maxsize=1)
def _zero_byte_operators() -> tuple[tuple[int, ...], ...]:
    """Operators that append 2**k zero bytes to a message, for k = 0..63."""
    one_zero_bit = (_POLY_REFLECTED,) + tuple(1 << n for n in range(_BITS - 1))
    operator = one_zero_bit
    for _ in range(3):  # 1 bit -> 2 -> 4 -> 8 bits = one byte
        operator = _square(operator)
    operators = [operator]
    for _ in range(_BITS - 1):
        operator = _square(operator)
        operators.append(operator)
    return tuple(operators)


def combine(crc1: int, crc2: int, len2: int) -> int:
    """CRC of A‖B given crc1 = crc(A), crc2 = crc(B) and len2 = len(B)."""
    if len2 < 0:
        raise ValueError("len2 must not be negative")
    operators = _zero_byte_operators()
    power = 0
    while len2:
        if len2 & 1:
            crc1 = _times(operators[power], crc1)
        len2 >>= 1
        power += 1
    return crc1 ^ crc2
