"""Which ciphertext bytes to fetch for a plaintext byte range, and how to cut the decrypted result.

Plaintext block j sits at ciphertext offset 16·(j+1) (after the IV) and is chained from the 16 bytes
just before it, so plaintext [p, e] needs ciphertext ``16·⌊p/16⌋ … 16·⌊e/16⌋+31`` (capped at the last
byte): the first fetched block serves only as the CBC IV. The first decrypted byte is plaintext offset
16·⌊p/16⌋, so ``p mod 16`` bytes are skipped; the pad is stripped only when the fetch reaches the end of
the object. (The SDK fetches one block more at the front; the result is the same.)

Pure arithmetic: no I/O, no ciphers. Imports only ks3sync.crypto.envelope.
"""

from __future__ import annotations

from dataclasses import dataclass

from ks3sync.crypto.envelope import BLOCK_SIZE, IV_SIZE, check_ciphertext_length


@dataclass(frozen=True, slots=True)
class RangePlan:
    start: int  # first plaintext byte wanted
    end: int | None  # last plaintext byte wanted (inclusive); None = to the end of the object
    fetch_start: int  # ciphertext range to GET, inclusive
    fetch_end: int
    skip: int  # decrypted bytes to drop before ``start``
    strip_pad: bool  # the fetch reaches the end of the object, so its last block holds the pad

    @property
    def limit(self) -> int | None:
        """Plaintext bytes to deliver at most (fewer when the range runs past the end of the object)."""
        return None if self.end is None else self.end - self.start + 1

    @property
    def byte_range(self) -> tuple[int, int]:
        return self.fetch_start, self.fetch_end

    @property
    def range_header(self) -> str:
        return f"bytes={self.fetch_start}-{self.fetch_end}"

    @property
    def fetch_length(self) -> int:
        return self.fetch_end - self.fetch_start + 1


def plan_range(start: int, end: int | None, ciphertext_length: int) -> RangePlan:
    """Plan the GET for plaintext bytes ``start..end`` (inclusive) of an encrypted object whose stored
    size is ``ciphertext_length``. ``end`` past the end of the plaintext is clipped, as HTTP does."""
    check_ciphertext_length(ciphertext_length)
    if start < 0:
        raise ValueError(f"range start must be >= 0, got {start}")
    if end is not None and end < start:
        raise ValueError(f"range end {end} is before its start {start}")
    last_plain_possible = ciphertext_length - IV_SIZE - 2  # at least one pad byte follows
    if start > last_plain_possible:
        raise ValueError(f"range start {start} is past the end of the object")
    block_start = start - start % BLOCK_SIZE
    fetch_end = ciphertext_length - 1
    if end is not None:
        fetch_end = min(end - end % BLOCK_SIZE + 2 * BLOCK_SIZE - 1, ciphertext_length - 1)
    return RangePlan(
        start=start,
        end=end,
        fetch_start=block_start,
        fetch_end=fetch_end,
        skip=start - block_start,
        strip_pad=fetch_end == ciphertext_length - 1,
    )


def tail_range(ciphertext_length: int) -> tuple[int, int]:
    """The last two ciphertext blocks: enough to decrypt the pad and learn the plaintext size of an
    object whose metadata does not record it (multipart uploads). See ``decrypt.plaintext_length``."""
    check_ciphertext_length(ciphertext_length)
    return ciphertext_length - 2 * BLOCK_SIZE, ciphertext_length - 1
