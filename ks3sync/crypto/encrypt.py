"""Streaming encryption into the SDK envelope, as request bodies.

``EncryptedStream`` is one contiguous stretch of the CBC chain: optionally the IV prefix, then
``CBC(key, chain_iv, plaintext [‖ pad])``. A single PUT is one stream from the IV to the pad
(``EncryptedFileBody``); a multipart upload is a sequence of streams, one per part, each chained from the
previous part's last ciphertext block (see ``multipart``).

Both follow the client's Body protocol (``length``, ``content_md5()``, ``chunks()`` re-iterable) and are
deterministic given (key, chain IV, plaintext), which is what makes the two-pass design work: pass 1
(``scan``) encrypts into a reused buffer only to hash it (Content-MD5 must be known before sending),
pass 2 (``chunks``) encrypts again while sending, and any retry re-encrypts from the start. Memory is
two chunk buffers whatever the object size.

Imports only ks3sync.crypto modules.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from ks3sync.crypto.envelope import (
    BLOCK_SIZE,
    IV_SIZE,
    ObjectEncryption,
    pad_bytes,
    pad_length,
)
from ks3sync.crypto.key import EncryptionKey
from ks3sync.crypto.source import BytesSource, FileSlice, PlaintextSource, read_blocks

# 64 KiB: large enough that per-call overhead vanishes, small enough that the one bytes object per
# chunk that ``chunks()`` must hand out stays a cheap heap allocation (1 MiB allocations cost ~40% of
# AES throughput here in page faults; see bench/bench_crypto.py).
CHUNK_SIZE = 64 * 1024

_EMPTY_MD5 = hashlib.md5(b"", usedforsecurity=False).digest()


def new_iv() -> bytes:
    return os.urandom(IV_SIZE)


def as_source(source: str | os.PathLike[str] | bytes | bytearray | memoryview | PlaintextSource) -> PlaintextSource:
    if isinstance(source, str | os.PathLike):
        return FileSlice(os.fspath(source))
    if isinstance(source, bytes | bytearray | memoryview):
        return BytesSource(source)
    return source


@dataclass(frozen=True, slots=True)
class StreamDigests:
    """What one pass over a stream learns: the MD5s and the block the next part chains from."""

    content_md5: bytes  # of the bytes on the wire (IV prefix and pad included)
    plaintext_md5: bytes
    chain_block: bytes  # last 16 ciphertext bytes


class EncryptedStream:
    """``[IV ‖] CBC(key, chain_iv, plaintext [‖ pad])`` as a re-iterable request body."""

    def __init__(
        self,
        key: EncryptionKey,
        source: PlaintextSource,
        *,
        chain_iv: bytes,
        iv_prefix: bool,
        padded: bool,
        plaintext_md5: bytes | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        if len(chain_iv) != BLOCK_SIZE:
            raise ValueError(f"chain IV must be {BLOCK_SIZE} bytes, got {len(chain_iv)}")
        if chunk_size <= 0 or chunk_size % BLOCK_SIZE:
            raise ValueError(f"chunk size must be a positive multiple of {BLOCK_SIZE}, got {chunk_size}")
        if not padded and source.length % BLOCK_SIZE:
            raise ValueError(
                f"only the last part of an encrypted upload may have a length that is not a multiple of "
                f"{BLOCK_SIZE} bytes (got {source.length})"
            )
        if plaintext_md5 is not None and len(plaintext_md5) != 16:
            raise ValueError("plaintext_md5 must be a 16-byte digest")
        self._key = key
        self.source = source
        self.chain_iv = bytes(chain_iv)
        self.iv_prefix = iv_prefix
        self.padded = padded
        self._chunk_size = chunk_size
        self._known_plaintext_md5 = plaintext_md5
        self.plaintext_length = source.length
        self.length = (IV_SIZE if iv_prefix else 0) + source.length + (pad_length(source.length) if padded else 0)
        self._digests: StreamDigests | None = None
        self._lock = threading.Lock()

    # -- Body protocol ----------------------------------------------------------------------------

    def content_md5(self) -> bytes:
        return self.digests().content_md5

    def chunks(self) -> Iterator[bytes]:
        for view in self._cipher_views(None):
            yield bytes(view)

    # -- the hashing pass -------------------------------------------------------------------------

    def digests(self) -> StreamDigests:
        """Encrypt once without keeping anything but hashes and the final block (computed once)."""
        with self._lock:
            if self._digests is None:
                self._digests = self._scan()
            return self._digests

    def plaintext_md5(self) -> bytes:
        return self.digests().plaintext_md5

    @property
    def chain_block(self) -> bytes:
        return self.digests().chain_block

    def _scan(self) -> StreamDigests:
        content = hashlib.md5(usedforsecurity=False)
        plain = None if self._known_plaintext_md5 is not None else hashlib.md5(usedforsecurity=False)
        tail = b""
        for view in self._cipher_views(plain):
            content.update(view)
            # The chain block is the last 16 ciphertext bytes; views are block-aligned and non-empty.
            tail = bytes(view[-BLOCK_SIZE:])
        if not tail:
            tail = self.chain_iv  # an empty unpadded stream continues the chain unchanged
        if plain is not None:
            return StreamDigests(content.digest(), plain.digest(), tail)
        assert self._known_plaintext_md5 is not None
        return StreamDigests(content.digest(), self._known_plaintext_md5, tail)

    # -- the encryption loop ----------------------------------------------------------------------

    def _cipher_views(self, plain_hash: hashlib._Hash | None) -> Iterator[memoryview]:
        """Ciphertext in block-aligned pieces. Each view is only valid until the next one is requested
        (the buffers are reused), which is why ``chunks()`` copies and ``_scan`` does not need to."""
        cipher = self._key.new_cbc(self.chain_iv)
        if self.iv_prefix:
            yield memoryview(self.chain_iv)
        size = self._chunk_size
        plain_buf = bytearray(size + BLOCK_SIZE)  # room for a whole pad block after a full chunk
        cipher_buf = bytearray(size + BLOCK_SIZE)
        plain_view = memoryview(plain_buf)
        cipher_view = memoryview(cipher_buf)
        produced = 0
        for n in read_blocks(self.source, plain_buf, size):
            produced += n
            if plain_hash is not None:
                plain_hash.update(plain_view[:n])
            if self.padded and produced == self.source.length:
                pad = pad_bytes(self.source.length)
                plain_buf[n : n + len(pad)] = pad
                n += len(pad)
            cipher.encrypt(plain_view[:n], output=cipher_view[:n])
            yield cipher_view[:n]
        if self.padded and self.source.length == 0:
            # Empty last part of a multipart upload: the pad alone is a full block.
            pad = pad_bytes(0)
            cipher.encrypt(pad, output=cipher_view[:BLOCK_SIZE])
            yield cipher_view[:BLOCK_SIZE]


class EncryptedFileBody:
    """A whole object for a single PUT, encrypted as the SDK does, plus the metadata to send with it.

    Empty plaintext is stored unencrypted with no metadata, exactly as the SDK does: ``length`` 0,
    ``encryption`` None, ``metadata()`` empty. ``iv`` defaults to a fresh random IV; pass one only to
    reproduce a known object (tests, golden vectors)."""

    def __init__(
        self,
        key: EncryptionKey,
        source: str | os.PathLike[str] | bytes | bytearray | memoryview | PlaintextSource,
        *,
        iv: bytes | None = None,
        plaintext_md5: bytes | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        self._key = key
        self.source = as_source(source)
        self.iv = new_iv() if iv is None else bytes(iv)
        self.plaintext_length = self.source.length
        self._stream: EncryptedStream | None = None
        if self.plaintext_length:
            self._stream = EncryptedStream(
                key,
                self.source,
                chain_iv=self.iv,
                iv_prefix=True,
                padded=True,
                plaintext_md5=plaintext_md5,
                chunk_size=chunk_size,
            )
        self.length = 0 if self._stream is None else self._stream.length

    def content_md5(self) -> bytes:
        return _EMPTY_MD5 if self._stream is None else self._stream.content_md5()

    def chunks(self) -> Iterator[bytes]:
        if self._stream is not None:
            yield from self._stream.chunks()

    @property
    def encryption(self) -> ObjectEncryption | None:
        if self._stream is None:
            return None
        return ObjectEncryption(
            fingerprint=self._key.fingerprint,
            iv=self.iv,
            plaintext_length=self.plaintext_length,
            plaintext_md5=self._stream.plaintext_md5(),
        )

    def metadata(self) -> dict[str, str]:
        """User metadata for the PUT, names without ``x-kss-meta-`` (empty for an empty file)."""
        encryption = self.encryption
        return {} if encryption is None else encryption.metadata()

    def headers(self) -> dict[str, str]:
        """The same metadata as full ``x-kss-meta-*`` request headers."""
        encryption = self.encryption
        return {} if encryption is None else encryption.headers()

    def __repr__(self) -> str:
        return f"EncryptedFileBody(source={self.source!r}, length={self.length})"
