"""Streaming encryption into the SDK envelope, as request bodies.

``EncryptedStream`` is one contiguous stretch of the CBC chain: optionally the IV prefix, then
``CBC(key, chain_iv, plaintext [‖ pad])``. A single PUT is one stream from the IV to the pad
(``EncryptedFileBody``); a multipart upload is a sequence of streams, one per part, each chained from the
previous part's last ciphertext block (see ``multipart``).

Both follow the client's Body protocol (``length``, ``content_md5()``, ``chunks()`` re-iterable) and are
deterministic given (key, chain IV, plaintext), which is what makes the two-pass design work: pass 1
(``scan``) encrypts into a reused buffer only to hash it (Content-MD5 must be known before sending),
pass 2 (``chunks``) encrypts again while sending, and any retry re-encrypts from the start. Bodies of at
most ``CACHE_LIMIT`` bytes keep the ciphertext of pass 1 and send it instead. Memory is two chunk buffers
(plus that small cache) whatever the object size.

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
from ks3sync.crypto.source import BytesSource, FileSlice, PlaintextSource, opened, read_exactly

# 64 KiB: large enough that per-call overhead vanishes, small enough that the one bytes object per
# chunk that ``chunks()`` must hand out stays a cheap heap allocation (1 MiB ones page-fault: D20).
CHUNK_SIZE = 64 * 1024

# Bodies up to this size keep their ciphertext after the hashing pass (bounded memory, and for the many
# small files of a sync it halves the reads and AES work); larger ones encrypt again when sent.
CACHE_LIMIT = 256 * 1024

_EMPTY_MD5 = hashlib.md5(b"", usedforsecurity=False).digest()


def new_iv() -> bytes:
    return os.urandom(IV_SIZE)


def as_source(
    source: str | os.PathLike[str] | bytes | bytearray | memoryview | PlaintextSource,
) -> PlaintextSource:
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
        cache_limit: int = CACHE_LIMIT,
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
        self.length = (
            (IV_SIZE if iv_prefix else 0) + source.length + (pad_length(source.length) if padded else 0)
        )
        self._cache_limit = cache_limit
        self._cached: bytes | None = None
        self._digests: StreamDigests | None = None
        self._lock = threading.Lock()

    # -- Body protocol ----------------------------------------------------------------------------

    def content_md5(self) -> bytes:
        return self.digests().content_md5

    def chunks(self) -> Iterator[bytes]:
        cached = self._cached
        if cached is not None:
            for start in range(0, len(cached), self._chunk_size):
                yield cached[start : start + self._chunk_size]
            return
        for _, cipher_view in self._pieces():
            yield bytes(cipher_view)

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
        keep: list[bytes] | None = [] if self.length <= self._cache_limit else None
        tail = b""
        # One thread on purpose: hashing on a helper thread while AES encrypts the next chunk was no
        # faster and cost more CPU (D20).
        for plain_view, cipher_view in self._pieces():
            if plain is not None:
                plain.update(plain_view)
            content.update(cipher_view)
            if keep is not None:
                keep.append(bytes(cipher_view))
            tail = bytes(cipher_view[-BLOCK_SIZE:])
        if keep is not None:
            # Small bodies keep their ciphertext: sending them needs no second read or AES pass.
            self._cached = b"".join(keep)
        if not tail:
            tail = self.chain_iv  # an empty unpadded stream continues the chain unchanged
        if plain is not None:
            return StreamDigests(content.digest(), plain.digest(), tail)
        assert self._known_plaintext_md5 is not None
        return StreamDigests(content.digest(), self._known_plaintext_md5, tail)

    # -- the encryption loop ----------------------------------------------------------------------

    def _pieces(self) -> Iterator[tuple[memoryview, memoryview]]:
        """(plaintext, ciphertext) views, block-aligned and non-empty; the plaintext view excludes the
        pad. Both buffers are reused: a view is valid only until the next piece is requested, which is
        why ``chunks()`` copies and the hashing pass need not."""
        cipher = self._key.new_cbc(self.chain_iv)
        if self.iv_prefix:
            yield memoryview(b""), memoryview(self.chain_iv)
        size = self._chunk_size
        # + one block: room for a whole pad block after a full chunk.
        plain_buf = memoryview(bytearray(size + BLOCK_SIZE))
        cipher_buf = memoryview(bytearray(size + BLOCK_SIZE))
        remaining = self.source.length
        if remaining:
            with opened(self.source) as handle:
                while remaining:
                    n = min(size, remaining)
                    read_exactly(handle, plain_buf[:n], self.source, remaining)
                    remaining -= n
                    total = n
                    if self.padded and not remaining:
                        pad = pad_bytes(self.source.length)
                        plain_buf[n : n + len(pad)] = pad
                        total += len(pad)
                    cipher.encrypt(plain_buf[:total], output=cipher_buf[:total])
                    yield plain_buf[:n], cipher_buf[:total]
        elif self.padded:
            # Empty last part of a multipart upload: the pad alone is a full block.
            cipher.encrypt(pad_bytes(0), output=cipher_buf[:BLOCK_SIZE])
            yield plain_buf[:0], cipher_buf[:BLOCK_SIZE]


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
        cache_limit: int = CACHE_LIMIT,
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
                cache_limit=cache_limit,
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
