"""Multipart part sizing, clamped to the service limits (s3transfer's ChunksizeAdjuster idea).

Pure; imports nothing from ks3sync.
"""

from __future__ import annotations

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

MIN_PART_SIZE = 100 * KIB  # KS3: every part but the last >= 100 KiB
MAX_PART_SIZE = 5 * GIB
MAX_PARTS = 10_000
DEFAULT_PART_SIZE = 8 * MIB
DEFAULT_MULTIPART_THRESHOLD = 16 * MIB
# File workers, and the most small requests in flight (the client adapts below it: ks3/limiter.py, D19).
DEFAULT_JOBS = 64
CIPHER_BLOCK = 16  # encrypted parts must stay whole AES blocks


def choose_part_size(file_size: int, requested: int = DEFAULT_PART_SIZE) -> int:
    """The requested part size, raised to >= 100 KiB, doubled until the file fits in 10,000 parts,
    rounded up to a whole cipher block, and capped at 5 GiB."""
    part = max(requested, MIN_PART_SIZE)
    while -(-file_size // part) > MAX_PARTS:
        part *= 2
    part = -(-part // CIPHER_BLOCK) * CIPHER_BLOCK
    return min(part, MAX_PART_SIZE)


def part_count(file_size: int, part_size: int) -> int:
    return max(1, -(-file_size // part_size))
