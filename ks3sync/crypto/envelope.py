"""The SDK's envelope format as data and arithmetic (docs/encryption.md is the prose version):

    stored body = IV (16 bytes) ‖ AES-128-CBC(key, IV, plaintext ‖ pad)
    pad         = n copies of "123456789abcdefg"[n-1], n = 16 − len(plaintext) mod 16   (1..16)

plus the ``x-kss-meta-*`` metadata that identifies the key and IV. Pure: no I/O, no ciphers; imports
only ``errors`` and the leaf ``digits`` (the one checked parser of numbers from metadata) from ks3sync.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass

from ks3sync.crypto.errors import CorruptCiphertextError, EncryptionMetadataError
from ks3sync.digits import parse_decimal

BLOCK_SIZE = 16
IV_SIZE = 16
# Not PKCS#7: the SDK pads with printable characters, so a PKCS#7 decoder fails on its objects.
PAD_ALPHABET = b"123456789abcdefg"

META_PREFIX = "x-kss-meta-"
META_KEY = "key"  # Base64(hex(MD5(key))): the key fingerprint
META_IV = "iv"  # Base64(IV)
META_PLAIN_LENGTH = "unencrypted-content-length"  # single PUT (or per part on multipart)
META_PLAIN_MD5 = "unencrypted-content-md5"  # Base64(MD5(plaintext)), same scope


def pad_length(plaintext_length: int) -> int:
    """1..16: a full block of padding is added when the plaintext is already block-aligned."""
    return BLOCK_SIZE - plaintext_length % BLOCK_SIZE


def pad_bytes(plaintext_length: int) -> bytes:
    n = pad_length(plaintext_length)
    return PAD_ALPHABET[n - 1 : n] * n


def unpadded_length(last_plain_block: bytes | bytearray | memoryview) -> int:
    """How many bytes of the final decrypted block are plaintext; validates the whole pad so a
    tampered or truncated body fails loudly instead of yielding garbage."""
    if len(last_plain_block) != BLOCK_SIZE:
        raise CorruptCiphertextError("encrypted object is truncated: the final block is incomplete")
    marker = last_plain_block[-1]
    n = PAD_ALPHABET.find(bytes((marker,)))
    if n < 0:
        raise CorruptCiphertextError(
            "encrypted object has an invalid pad (tampered, truncated, or encrypted with another key)"
        )
    n += 1
    if bytes(last_plain_block[BLOCK_SIZE - n :]) != bytes((marker,)) * n:
        raise CorruptCiphertextError(
            "encrypted object has an inconsistent pad (tampered, truncated, or encrypted with another key)"
        )
    return BLOCK_SIZE - n


def ciphertext_length(plaintext_length: int) -> int:
    """Stored size of a single-PUT object. Empty plaintext is stored unencrypted (0 bytes)."""
    if plaintext_length < 0:
        raise ValueError(f"plaintext length must be >= 0, got {plaintext_length}")
    if plaintext_length == 0:
        return 0
    return IV_SIZE + plaintext_length + pad_length(plaintext_length)


def check_ciphertext_length(ciphertext_length: int) -> None:
    if ciphertext_length < IV_SIZE + BLOCK_SIZE or ciphertext_length % BLOCK_SIZE:
        raise CorruptCiphertextError(
            f"{ciphertext_length} bytes cannot be an encrypted object "
            f"(needs the 16-byte IV plus a positive multiple of 16 bytes)"
        )


def plaintext_length_bounds(ciphertext_length: int) -> tuple[int, int]:
    """Smallest and largest plaintext length that encrypts to this many bytes (the pad is 1..16)."""
    check_ciphertext_length(ciphertext_length)
    body = ciphertext_length - IV_SIZE
    return body - BLOCK_SIZE, body - 1


@dataclass(frozen=True, slots=True)
class ObjectEncryption:
    """An object's encryption metadata. ``plaintext_length``/``plaintext_md5`` are present on single
    PUT objects only: on multipart uploads the SDK sends them per part, and they are not object metadata."""

    fingerprint: str
    iv: bytes
    plaintext_length: int | None = None
    plaintext_md5: bytes | None = None  # 16-byte digest

    def metadata(self) -> dict[str, str]:
        """User metadata names without the ``x-kss-meta-`` prefix (for a client that adds it)."""
        meta = {META_KEY: self.fingerprint, META_IV: base64.b64encode(self.iv).decode("ascii")}
        if self.plaintext_length is not None:
            meta[META_PLAIN_LENGTH] = str(self.plaintext_length)
        if self.plaintext_md5 is not None:
            meta[META_PLAIN_MD5] = base64.b64encode(self.plaintext_md5).decode("ascii")
        return meta

    def headers(self) -> dict[str, str]:
        """The same as full request header names, as the SDK sends them."""
        return {META_PREFIX + name: value for name, value in self.metadata().items()}

    def initiate_metadata(self) -> dict[str, str]:
        """The part of the metadata that goes on a multipart Initiate (key and IV only)."""
        return {META_KEY: self.fingerprint, META_IV: base64.b64encode(self.iv).decode("ascii")}

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str]) -> ObjectEncryption | None:
        """Parse an object's user metadata. Accepts names with or without ``x-kss-meta-``, in any case.
        None when the object carries no encryption metadata at all (an unencrypted object)."""
        meta: dict[str, str] = {}
        for name, value in metadata.items():
            lower = name.lower()
            if lower.startswith(META_PREFIX):
                lower = lower[len(META_PREFIX) :]
            meta[lower] = value
        fingerprint = meta.get(META_KEY)
        iv_text = meta.get(META_IV)
        if fingerprint is None and iv_text is None:
            return None
        if iv_text is None:
            raise EncryptionMetadataError("object has x-kss-meta-key but no x-kss-meta-iv: cannot decrypt it")
        if fingerprint is None:
            raise EncryptionMetadataError(
                "object has x-kss-meta-iv but no x-kss-meta-key: cannot check which key encrypted it"
            )
        iv = _b64decode(iv_text, "x-kss-meta-iv")
        if len(iv) != IV_SIZE:
            raise EncryptionMetadataError(f"x-kss-meta-iv decodes to {len(iv)} bytes, expected {IV_SIZE}")
        length: int | None = None
        if META_PLAIN_LENGTH in meta:
            length = parse_decimal(meta[META_PLAIN_LENGTH])
            if length is None:
                text = meta[META_PLAIN_LENGTH]
                raise EncryptionMetadataError(
                    f"x-kss-meta-{META_PLAIN_LENGTH} is not a length: {text[:40]!r}"
                )
        md5: bytes | None = None
        if META_PLAIN_MD5 in meta:
            md5 = _b64decode(meta[META_PLAIN_MD5], "x-kss-meta-" + META_PLAIN_MD5)
            if len(md5) != 16:
                raise EncryptionMetadataError(f"x-kss-meta-{META_PLAIN_MD5} is not a Base64 MD5 digest")
        return cls(fingerprint=fingerprint.strip(), iv=iv, plaintext_length=length, plaintext_md5=md5)


def part_metadata(plaintext_length: int, plaintext_md5: bytes) -> dict[str, str]:
    """What the SDK sends on each encrypted UploadPart (names without the ``x-kss-meta-`` prefix)."""
    return {
        META_PLAIN_LENGTH: str(plaintext_length),
        META_PLAIN_MD5: base64.b64encode(plaintext_md5).decode("ascii"),
    }


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise EncryptionMetadataError(f"{what} is not valid Base64") from None
