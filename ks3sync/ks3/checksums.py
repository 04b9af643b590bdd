"""Checksums KS3 speaks: CRC-64/XZ (``x-kss-checksum-crc64ecma``) and MD5 (``Content-MD5``, ETags).

Owns: the CRC-64 of a byte string, streaming continuation, the zlib-style combine used to predict a
multipart object's CRC from its parts, the S3-style multipart ETag, and MD5 helpers.
Must not import: anything else from ks3sync (``ks3`` is a leaf), nor httpx.

CRC-64/XZ is computed by ``fastcrc`` in C (about 50x faster than the pure-Python ``crcmod`` the SDK
uses, which would halve large-file throughput). Its ``initial`` argument is the CRC of the bytes so far,
so ``crc64(b, crc64(a)) == crc64(a + b)``.
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from fastcrc import crc64 as _fastcrc64

# CRC-64/XZ polynomial 0x42F0E1EBA9EA3693 in reflected (LSB-first) form.
_POLY_REFLECTED = 0xC96C5795D7870F42
_BITS = 64


def crc64(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC-64/XZ of ``data``, continuing from ``crc`` (the CRC of whatever came before; 0 for none)."""
    if not data:
        return crc
    return int(_fastcrc64.xz(bytes(data) if not isinstance(data, bytes) else data, crc))


# --- combine -------------------------------------------------------------------------------------
# zlib's crc32_combine, widened to 64 bits. A CRC register advanced over n zero bytes is a linear map
# over GF(2); the map for 2**k bytes is the square of the map for 2**(k-1). We build those 64 maps once,
# so a combine costs at most 64 matrix-vector products instead of O(log n) matrix squarings.

_Matrix = tuple[int, ...]


def _matrix_times(matrix: _Matrix, vector: int) -> int:
    result = 0
    row = 0
    while vector:
        if vector & 1:
            result ^= matrix[row]
        vector >>= 1
        row += 1
    return result


def _matrix_square(matrix: _Matrix) -> _Matrix:
    return tuple(_matrix_times(matrix, matrix[n]) for n in range(_BITS))


@lru_cache(maxsize=1)
def _zero_byte_operators() -> tuple[_Matrix, ...]:
    """Operator k advances a CRC register over 2**k zero bytes (k = 0..63)."""
    one_bit = (_POLY_REFLECTED,) + tuple(1 << (n - 1) for n in range(1, _BITS))
    two_bits = _matrix_square(one_bit)
    four_bits = _matrix_square(two_bits)
    operators = [_matrix_square(four_bits)]  # 8 bits = one byte
    for _ in range(1, _BITS):
        operators.append(_matrix_square(operators[-1]))
    return tuple(operators)


def crc64_combine(crc1: int, crc2: int, len2: int) -> int:
    """CRC of ``A + B`` given ``crc1 = crc64(A)``, ``crc2 = crc64(B)`` and ``len2 = len(B)``."""
    if len2 < 0:
        raise ValueError(f"len2 must be >= 0, not {len2}")
    if len2 == 0:
        return crc1
    operators = _zero_byte_operators()
    bit = 0
    while len2:
        if len2 & 1:
            crc1 = _matrix_times(operators[bit], crc1)
        len2 >>= 1
        bit += 1
    return crc1 ^ crc2


def combine_parts(parts: list[tuple[int, int]] | tuple[tuple[int, int], ...]) -> int:
    """Whole-object CRC from ``(crc, size)`` of each part, in part-number order."""
    acc = 0
    for part_crc, size in parts:
        acc = crc64_combine(acc, part_crc, size)
    return acc


# --- MD5 -----------------------------------------------------------------------------------------


def md5_digest(data: bytes | bytearray | memoryview) -> bytes:
    return hashlib.md5(data, usedforsecurity=False).digest()


def md5_base64(digest: bytes) -> str:
    """The ``Content-MD5`` header value for a 16-byte digest."""
    return base64.b64encode(digest).decode("ascii")


def multipart_etag(part_md5_hex: list[str] | tuple[str, ...]) -> str:
    """S3-convention multipart ETag (unquoted): hex MD5 of the concatenated binary part MD5s + ``-N``."""
    joined = b"".join(bytes.fromhex(h) for h in part_md5_hex)
    return f"{hashlib.md5(joined, usedforsecurity=False).hexdigest()}-{len(part_md5_hex)}"


def unquote_etag(etag: str) -> str:
    """ETags travel quoted (``"abc"``); we compare and store them bare and lower-case."""
    etag = etag.strip()
    if etag.startswith("W/"):
        etag = etag[2:]
    if len(etag) >= 2 and etag[0] == '"' and etag[-1] == '"':
        etag = etag[1:-1]
    return etag.lower()
