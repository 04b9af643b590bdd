"""Encrypted multipart uploads: one CBC chain cut into parts.

Part 1 is ``IV ‖ CBC(IV, P1)``; part k>1 continues the chain from the last ciphertext block of part
k−1 (that block is not sent again); only the last part carries the pad; every other part's plaintext
must be a multiple of 16 bytes. The parts concatenated are byte-identical to a single-PUT encryption of
the whole plaintext, so the SDK (and ks3sync) decrypt the result like any encrypted object.

The SDK keeps the chain in memory and therefore uploads parts one at a time. Here the chain is data:
``MultipartEncryptor.next_part`` runs the cheap sequential step (one encrypt-and-hash pass that yields
the part's Content-MD5 and its ``chain_block``) and returns an ``EncryptedPart`` that re-encrypts itself
from its own chain IV whenever it is sent, so parts can be uploaded concurrently and retried
independently. The journal records (IV, chain_block per finished part); ``MultipartEncryptor.resume``
continues after the last finished contiguous part in a new process.

For a part already in memory (the upload task reads each part once anyway), ``seal_part`` is the
cheaper form: the sequential step is one AES pass into a ciphertext buffer, and everything else — the
part's plaintext and ciphertext MD5s — is left to ``SealedPart.hashed()`` on whichever thread sends it,
so parts hash in parallel while the chain moves on (AES and MD5 release the GIL), and the ciphertext is
sent from memory instead of being encrypted a second time.

The object-level metadata is split as the SDK splits it: key fingerprint and IV on Initiate, the
plaintext length and MD5 of each part on its UploadPart.

Imports only ks3sync.crypto modules.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator

from ks3sync.crypto.encrypt import CACHE_LIMIT, CHUNK_SIZE, EncryptedStream, as_source, new_iv
from ks3sync.crypto.envelope import (
    BLOCK_SIZE,
    IV_SIZE,
    META_PREFIX,
    ObjectEncryption,
    pad_bytes,
    pad_length,
    part_metadata,
)
from ks3sync.crypto.key import EncryptionKey
from ks3sync.crypto.source import PlaintextSource


class EncryptedPart:
    """One part's body (client Body protocol) plus what the journal needs to resume after it."""

    def __init__(self, part_number: int, stream: EncryptedStream) -> None:
        self.part_number = part_number
        self._stream = stream
        self.length = stream.length
        self.plaintext_length = stream.plaintext_length
        self.is_last = stream.padded
        # The sequential step: hash now, so chain_block is known before the part is sent.
        self._digests = stream.digests()

    def content_md5(self) -> bytes:
        return self._digests.content_md5

    def chunks(self) -> Iterator[bytes]:
        return self._stream.chunks()

    @property
    def chain_block(self) -> bytes:
        """Last ciphertext block of this part: the chain IV of the next part (store it in the journal)."""
        return self._digests.chain_block

    @property
    def plaintext_md5(self) -> bytes:
        return self._digests.plaintext_md5

    def metadata(self) -> dict[str, str]:
        """UploadPart metadata as the SDK sends it (names without ``x-kss-meta-``)."""
        return part_metadata(self.plaintext_length, self._digests.plaintext_md5)

    def headers(self) -> dict[str, str]:
        return {META_PREFIX + name: value for name, value in self.metadata().items()}

    def __repr__(self) -> str:
        return f"EncryptedPart(part_number={self.part_number}, length={self.length}, last={self.is_last})"


SEND_CHUNK = 256 * 1024  # bytes objects handed to the HTTP client per write from a sealed part


class SealedPart:
    """One part encrypted in memory by ``MultipartEncryptor.seal_part``: a Body (``length``,
    ``content_md5()``, ``chunks()`` from the first byte on every call) whose hashes are computed once, by
    the first caller of ``hashed()`` (or of anything that needs them), on that caller's thread."""

    def __init__(
        self,
        part_number: int,
        plaintext: bytes | bytearray | memoryview,
        ciphertext: bytearray,
        chain_block: bytes,
        *,
        is_last: bool,
    ) -> None:
        self.part_number = part_number
        self.length = len(ciphertext)
        self.plaintext_length = len(plaintext)
        self.is_last = is_last
        self.chain_block = chain_block  # the next part's chain IV (store it in the journal)
        self._plaintext: bytes | bytearray | memoryview | None = plaintext  # dropped once hashed
        self._ciphertext = ciphertext
        self._digests: tuple[bytes, bytes] | None = None  # (content MD5, plaintext MD5)
        self._lock = threading.Lock()

    def hashed(self) -> SealedPart:
        """Compute both MD5s now (idempotent); returns self."""
        with self._lock:
            if self._digests is None:
                assert self._plaintext is not None
                plain = hashlib.md5(self._plaintext, usedforsecurity=False).digest()
                content = hashlib.md5(self._ciphertext, usedforsecurity=False).digest()
                self._digests = (content, plain)
                self._plaintext = None
        return self

    def content_md5(self) -> bytes:
        digests = self.hashed()._digests
        assert digests is not None
        return digests[0]

    @property
    def plaintext_md5(self) -> bytes:
        digests = self.hashed()._digests
        assert digests is not None
        return digests[1]

    def chunks(self) -> Iterator[bytes]:
        view = memoryview(self._ciphertext)
        for start in range(0, self.length, SEND_CHUNK):
            yield bytes(view[start : start + SEND_CHUNK])

    def metadata(self) -> dict[str, str]:
        """UploadPart metadata as the SDK sends it (names without ``x-kss-meta-``)."""
        return part_metadata(self.plaintext_length, self.plaintext_md5)

    def __repr__(self) -> str:
        return f"SealedPart(part_number={self.part_number}, length={self.length}, last={self.is_last})"


class MultipartEncryptor:
    """Hands out the parts of one encrypted multipart upload, strictly in part-number order."""

    def __init__(
        self,
        key: EncryptionKey,
        iv: bytes | None = None,
        *,
        chunk_size: int = CHUNK_SIZE,
        cache_limit: int = CACHE_LIMIT,
        _next_part_number: int = 1,
        _chain: bytes | None = None,
    ) -> None:
        self._key = key
        self.iv = new_iv() if iv is None else bytes(iv)
        if len(self.iv) != IV_SIZE:
            raise ValueError(f"IV must be {IV_SIZE} bytes, got {len(self.iv)}")
        self._chunk_size = chunk_size
        self._cache_limit = cache_limit
        self.next_part_number = _next_part_number
        self._chain = self.iv if _chain is None else bytes(_chain)
        self.finished = False

    @classmethod
    def resume(
        cls,
        key: EncryptionKey,
        iv: bytes,
        *,
        next_part_number: int,
        chain_block: bytes | None,
        chunk_size: int = CHUNK_SIZE,
        cache_limit: int = CACHE_LIMIT,
    ) -> MultipartEncryptor:
        """Continue an upload whose parts 1..next_part_number−1 are done; ``chain_block`` is the recorded
        chain block of part next_part_number−1 (None when starting at part 1)."""
        if next_part_number < 1:
            raise ValueError(f"part numbers start at 1, got {next_part_number}")
        if next_part_number == 1:
            return cls(key, iv, chunk_size=chunk_size, cache_limit=cache_limit)
        if chain_block is None or len(chain_block) != BLOCK_SIZE:
            raise ValueError(
                f"resuming at part {next_part_number} needs the {BLOCK_SIZE}-byte chain block "
                f"of part {next_part_number - 1}"
            )
        return cls(
            key,
            iv,
            chunk_size=chunk_size,
            cache_limit=cache_limit,
            _next_part_number=next_part_number,
            _chain=chain_block,
        )

    @property
    def encryption(self) -> ObjectEncryption:
        return ObjectEncryption(fingerprint=self._key.fingerprint, iv=self.iv)

    def initiate_metadata(self) -> dict[str, str]:
        """Metadata for InitiateMultipartUpload (key fingerprint and IV; names without the prefix)."""
        return self.encryption.initiate_metadata()

    def initiate_headers(self) -> dict[str, str]:
        return {META_PREFIX + name: value for name, value in self.initiate_metadata().items()}

    def next_part(
        self,
        source: str | os.PathLike[str] | bytes | bytearray | memoryview | PlaintextSource,
        *,
        last: bool,
        plaintext_md5: bytes | None = None,
    ) -> EncryptedPart:
        """Encrypt-and-hash the next part (sequential, one AES pass) and return its body, which can then
        be uploaded from any thread, any number of times."""
        if self.finished:
            raise ValueError("the last part was already produced")
        plain = as_source(source)
        number = self.next_part_number
        stream = EncryptedStream(
            self._key,
            plain,
            chain_iv=self._chain,
            iv_prefix=number == 1,
            padded=last,
            plaintext_md5=plaintext_md5,
            chunk_size=self._chunk_size,
            cache_limit=self._cache_limit,
        )
        part = EncryptedPart(number, stream)
        self._chain = part.chain_block
        self.next_part_number += 1
        self.finished = last
        return part

    def seal_part(self, plaintext: bytes | bytearray | memoryview, *, last: bool) -> SealedPart:
        """Encrypt the next part, held in memory, into a ciphertext buffer of its own (one AES pass, no
        hashing: that is ``SealedPart.hashed()``'s, on any thread). The bytes equal ``next_part``'s."""
        if self.finished:
            raise ValueError("the last part was already produced")
        view = memoryview(plaintext).cast("B")
        size = len(view)
        if not last and size % BLOCK_SIZE:
            raise ValueError(
                f"only the last part of an encrypted upload may have a length that is not a multiple of "
                f"{BLOCK_SIZE} bytes (got {size})"
            )
        number = self.next_part_number
        prefix = self.iv if number == 1 else b""
        whole = size - size % BLOCK_SIZE
        tail = bytes(view[whole:]) + pad_bytes(size) if last else b""
        out = bytearray(len(prefix) + whole + len(tail))
        out[: len(prefix)] = prefix
        cipher = self._key.new_cbc(self._chain)
        out_view = memoryview(out)
        if whole:
            cipher.encrypt(view[:whole], output=out_view[len(prefix) : len(prefix) + whole])
        if tail:
            cipher.encrypt(tail, output=out_view[len(prefix) + whole :])
        chain = bytes(out_view[-BLOCK_SIZE:]) if len(out) > len(prefix) else self._chain
        part = SealedPart(number, view, out, chain, is_last=last)
        self._chain = chain
        self.next_part_number += 1
        self.finished = last
        return part

    def skip_part(self, chain_block: bytes) -> None:
        """Advance past a part that is already uploaded, using its recorded chain block (resume with
        gaps: part k+2 done while k+1 was not)."""
        if self.finished:
            raise ValueError("the last part was already produced")
        if len(chain_block) != BLOCK_SIZE:
            raise ValueError(f"a chain block is {BLOCK_SIZE} bytes, got {len(chain_block)}")
        self._chain = bytes(chain_block)
        self.next_part_number += 1

    def __repr__(self) -> str:
        return f"MultipartEncryptor(next_part_number={self.next_part_number}, finished={self.finished})"


def part_wire_length(plaintext_length: int, *, first: bool, last: bool) -> int:
    """Bytes on the wire for a part: +16 for the IV on part 1, + the pad (1..16) on the last part."""
    return plaintext_length + (IV_SIZE if first else 0) + (pad_length(plaintext_length) if last else 0)
