"""Streaming decryption of SDK-envelope objects, whole or by plaintext range.

Feed ciphertext chunks of any size to ``update()``, get plaintext back; ``finish()`` validates the pad,
for whole single-PUT objects the recorded plaintext length and MD5, and for whole objects that carry
ks3sync's integrity tag (``integrity``), the tag over what was decrypted. Output is trustworthy only
once ``finish()`` returned: write it to a temp file and rename after (invariant 6). Before any output
the key fingerprint (``x-kss-meta-key``) is checked, the IV is required, and the body's IV prefix must
equal ``x-kss-meta-iv``, so a wrong key gives WrongKeyError, never garbage.

A ranged read (``plan``) checks the pad when it reaches the end, nothing more: no digest covers a part
of the plaintext. It is never authenticated, so it refuses ``require_tag``.

Imports only ks3sync.crypto modules.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Protocol

from Crypto.Cipher._mode_cbc import CbcMode

from ks3sync.crypto.envelope import (
    BLOCK_SIZE,
    IV_SIZE,
    ObjectEncryption,
    check_ciphertext_length,
    unpadded_length,
)
from ks3sync.crypto.errors import (
    CorruptCiphertextError,
    EncryptionMetadataError,
    MissingIntegrityTagError,
    PlaintextMismatchError,
    WrongKeyError,
)
from ks3sync.crypto.integrity import TAG_METADATA, stored_tag, verify_tag
from ks3sync.crypto.key import EncryptionKey
from ks3sync.crypto.ranges import RangePlan


class CbcDecryptStream:
    """Ciphertext that starts with its 16-byte chain IV (the object's IV prefix, or the ciphertext
    block preceding a range) → plaintext, optionally pad-stripped, skipped and limited."""

    def __init__(
        self,
        key: EncryptionKey,
        *,
        strip_pad: bool,
        skip: int = 0,
        limit: int | None = None,
        expected_iv: bytes | None = None,
    ) -> None:
        self._key = key
        self._strip_pad = strip_pad
        self._skip = skip
        self._limit = limit
        self._expected_iv = expected_iv
        self._cipher: CbcMode | None = None
        self._pending = b""
        self._finished = False
        self.ciphertext_seen = 0

    def update(self, data: bytes | bytearray | memoryview) -> bytes:
        if self._finished:
            raise ValueError("update() after finish()")
        self.ciphertext_seen += len(data)
        # A leftover of < 17 bytes forces one copy of the chunk; a memcpy is ~20x cheaper than AES.
        buf = self._pending + bytes(data) if self._pending else data
        view = memoryview(buf)
        if self._cipher is None:
            if len(view) < IV_SIZE:
                self._pending = bytes(view)
                return b""
            cipher = self._start(bytes(view[:IV_SIZE]))
            view = view[IV_SIZE:]
        else:
            cipher = self._cipher
        # With a pad to strip, always hold back the final (possibly last) block until finish().
        reserve = 1 if self._strip_pad else 0
        usable = max(len(view) - reserve, 0) // BLOCK_SIZE * BLOCK_SIZE
        self._pending = bytes(view[usable:])
        if not usable:
            return b""
        return self._emit(cipher.decrypt(view[:usable]))

    def finish(self) -> bytes:
        if self._finished:
            return b""
        self._finished = True
        if self._cipher is None:
            raise CorruptCiphertextError(
                f"encrypted object is truncated: {self.ciphertext_seen} bytes, not even the 16-byte IV"
            )
        if not self._strip_pad:
            if self._pending:
                raise CorruptCiphertextError("encrypted range does not end on a 16-byte block boundary")
            return b""
        if len(self._pending) != BLOCK_SIZE:
            raise CorruptCiphertextError(
                f"encrypted object is truncated or has trailing bytes: {self.ciphertext_seen} bytes received, "
                f"which is not the IV plus a positive multiple of 16"
            )
        last = self._cipher.decrypt(self._pending)
        self._pending = b""
        return self._emit(last[: unpadded_length(last)])

    def _start(self, iv: bytes) -> CbcMode:
        if self._expected_iv is not None and not hmac.compare_digest(iv, self._expected_iv):
            raise EncryptionMetadataError("the object's first 16 bytes differ from its x-kss-meta-iv")
        self._cipher = self._key.new_cbc(iv)
        return self._cipher

    def _emit(self, plain: bytes) -> bytes:
        if self._skip:
            dropped = min(self._skip, len(plain))
            self._skip -= dropped
            plain = plain[dropped:]
        if self._limit is not None:
            if len(plain) > self._limit:
                plain = plain[: self._limit]
            self._limit -= len(plain)
        return plain


class ObjectDecryptor:
    """Decrypts one encrypted object (or one plaintext range of it, with ``plan``).

    Raises at construction, before any output: WrongKeyError when ``x-kss-meta-key`` is another key's
    fingerprint, EncryptionMetadataError when the object is not encrypted (and not empty) or its
    metadata is incomplete, MissingIntegrityTagError when ``require_tag`` and the object has no tag.
    ``name`` (e.g. ``bucket/key``) only makes messages clearer.

    ``object_key``: the object's full key, which its integrity tag binds. A whole object that carries a
    tag cannot be decrypted without it (ValueError), so no caller skips the check by forgetting it.
    After ``finish()``, ``integrity`` is ``"verified"`` (tag checked), ``"untagged"`` (a whole object
    without a tag: written by the SDK) or ``"unchecked"`` (a range, or an empty unencrypted object).
    ``plaintext_sha256``: the SHA-256 object the plaintext is fed to for the tag (default: a new
    ``hashlib.sha256()``, inline); a caller may pass one that hashes on another thread while it writes
    the previous chunk, as long as ``digest()`` waits for what was fed."""

    def __init__(
        self,
        key: EncryptionKey,
        metadata: Mapping[str, str],
        *,
        ciphertext_length: int | None = None,
        plan: RangePlan | None = None,
        name: str = "object",
        object_key: str | None = None,
        require_tag: bool = False,
        plaintext_sha256: _Hash | None = None,
    ) -> None:
        self.name = name
        self.encryption = ObjectEncryption.from_metadata(metadata)
        self.integrity = "unchecked"
        self._core: CbcDecryptStream | None = None
        self._plain_md5: hashlib._Hash | None = None
        self._plain_length = 0
        self._expected_ciphertext: int | None = None
        self._tag: _TagCheck | None = None
        self._whole = plan is None
        if self.encryption is None:
            # The SDK stores empty plaintext unencrypted and without metadata: only that is accepted.
            if ciphertext_length not in (None, 0) or plan is not None:
                raise EncryptionMetadataError(
                    f"{name} is not client-side encrypted (it has no x-kss-meta-key/x-kss-meta-iv)"
                )
            # ks3sync tags it all the same: otherwise any object could be blanked by an empty one.
            self._tag = _TagCheck.start(key, metadata, object_key, None, require=require_tag, name=name)
            return
        if not key.matches_fingerprint(self.encryption.fingerprint):
            raise WrongKeyError(
                f"{name} was encrypted with a different key (x-kss-meta-key does not match "
                f"the key from {key.source})"
            )
        if ciphertext_length is not None:
            check_ciphertext_length(ciphertext_length)
        if plan is not None:
            self._expected_ciphertext = plan.fetch_length
        elif ciphertext_length is not None:
            self._expected_ciphertext = ciphertext_length
        if plan is None:
            self._tag = _TagCheck.start(
                key, metadata, object_key, plaintext_sha256, require=require_tag, name=name
            )
            self._core = CbcDecryptStream(key, strip_pad=True, expected_iv=self.encryption.iv)
            if self.encryption.plaintext_md5 is not None:
                self._plain_md5 = hashlib.md5(usedforsecurity=False)
        else:
            if require_tag:
                raise ValueError("a ranged read cannot be checked against the integrity tag")
            self._core = CbcDecryptStream(
                key,
                strip_pad=plan.strip_pad,
                skip=plan.skip,
                limit=plan.limit,
                # Only a range from offset 0 starts with the IV prefix; the SDK checks it there too.
                expected_iv=self.encryption.iv if plan.fetch_start == 0 else None,
            )

    def update(self, data: bytes | bytearray | memoryview) -> bytes:
        if self._core is None:
            if len(data):
                raise EncryptionMetadataError(
                    f"{self.name} is not client-side encrypted (it has no x-kss-meta-key/x-kss-meta-iv)"
                )
            return b""
        return self._account(self._core.update(data))

    def finish(self) -> bytes:
        if self._core is None:
            self._check_tag()  # an empty object
            return b""
        if self._expected_ciphertext is not None and self._core.ciphertext_seen != self._expected_ciphertext:
            raise CorruptCiphertextError(
                f"{self.name}: received {self._core.ciphertext_seen} encrypted bytes, expected "
                f"{self._expected_ciphertext} (truncated or extended body)"
            )
        tail = self._account(self._core.finish())
        if self._whole and self.encryption is not None:
            self._verify(self.encryption)
            self._check_tag()
        return tail

    def _check_tag(self) -> None:
        if not self._whole or self.integrity != "unchecked":
            return
        if self._tag is None:
            self.integrity = "untagged"
            return
        self._tag.verify(self._plain_length)
        self.integrity = "verified"

    def _account(self, plain: bytes) -> bytes:
        self._plain_length += len(plain)
        if self._plain_md5 is not None:
            self._plain_md5.update(plain)
        if self._tag is not None and plain:
            self._tag.sha256.update(plain)
        return plain

    def _verify(self, encryption: ObjectEncryption) -> None:
        expected_length = encryption.plaintext_length
        if expected_length is not None and expected_length != self._plain_length:
            raise PlaintextMismatchError(
                f"{self.name}: decrypted {self._plain_length} bytes but x-kss-meta-unencrypted-content-length "
                f"says {expected_length}"
            )
        if self._plain_md5 is not None and encryption.plaintext_md5 is not None:
            if not hmac.compare_digest(self._plain_md5.digest(), encryption.plaintext_md5):
                raise PlaintextMismatchError(
                    f"{self.name}: decrypted bytes do not match x-kss-meta-unencrypted-content-md5"
                )


class _Hash(Protocol):
    def update(self, data: bytes, /) -> None: ...

    def digest(self) -> bytes: ...


class _TagCheck:
    """SHA-256 of the plaintext as it is decrypted, then the tag check (``integrity.verify_tag``)."""

    def __init__(
        self, key: EncryptionKey, metadata: Mapping[str, str], object_key: str, sha256: _Hash, name: str
    ) -> None:
        self._key = key
        self._metadata = metadata
        self._object_key = object_key
        self._name = name
        self.sha256 = sha256

    @classmethod
    def start(
        cls,
        key: EncryptionKey,
        metadata: Mapping[str, str],
        object_key: str | None,
        sha256: _Hash | None,
        *,
        require: bool,
        name: str,
    ) -> _TagCheck | None:
        """The check for a whole object, or None when it has no tag (refused when one is required)."""
        if stored_tag(metadata) is None:
            if require:
                raise MissingIntegrityTagError(
                    f"{name}: no ks3sync integrity tag (x-kss-meta-{TAG_METADATA}: written by the KS3 SDK "
                    f"or an older ks3sync, or the tag was removed); refused because integrity is required"
                )
            return None
        if object_key is None:
            raise ValueError(f"{name}: carries an integrity tag: pass object_key= so that it can be checked")
        return cls(key, metadata, object_key, sha256 if sha256 is not None else hashlib.sha256(), name)

    def verify(self, plaintext_length: int) -> None:
        verify_tag(
            self._key,
            self._metadata,
            object_key=self._object_key,
            plaintext_length=plaintext_length,
            plaintext_sha256=self.sha256.digest(),
            name=self._name,
        )


def decrypt_object(
    key: EncryptionKey,
    metadata: Mapping[str, str],
    ciphertext: bytes | bytearray | memoryview,
    *,
    name: str = "object",
    object_key: str | None = None,
) -> bytes:
    """Whole-object convenience for small objects and tests."""
    decryptor = ObjectDecryptor(
        key, metadata, ciphertext_length=len(ciphertext), name=name, object_key=object_key
    )
    return decryptor.update(ciphertext) + decryptor.finish()


def plaintext_length(key: EncryptionKey, ciphertext_length: int, tail: bytes) -> int:
    """Plaintext size of an encrypted object from its stored size and its last 32 bytes
    (``ranges.tail_range``): decrypting the final block reveals the pad length."""
    check_ciphertext_length(ciphertext_length)
    if len(tail) != 2 * BLOCK_SIZE:
        raise ValueError(f"need the last {2 * BLOCK_SIZE} ciphertext bytes, got {len(tail)}")
    last = key.new_cbc(tail[:BLOCK_SIZE]).decrypt(tail[BLOCK_SIZE:])
    return ciphertext_length - IV_SIZE - BLOCK_SIZE + unpadded_length(last)
