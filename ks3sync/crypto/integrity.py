"""ks3sync's keyed integrity tag: what it adds to the SDK envelope, which has no MAC.

The SDK format (AES-CBC, docs/encryption.md §2-4) authenticates nothing: a multipart object records no
plaintext digest at all, and a single PUT's plaintext MD5 is plain metadata anyone who can write the
object can drop. ks3sync therefore stores one more metadata entry on every encrypted object it writes
(the SDK ignores unknown ``x-kss-meta-*`` entries, so it still reads the object)::

    x-kss-meta-ks3sync-tag: v1:<Base64(tag)>
    tag     = HMAC-SHA256(K_tag, message)
    K_tag   = HKDF-SHA256(IKM = the 16-byte AES key, salt = none, info = "ks3sync integrity tag v1", L = 32)
    message = "ks3sync-tag-v1" 0x00 ‖ u32be(n) ‖ object key (n bytes of UTF-8, bucket excluded)
              ‖ u64be(plaintext length) ‖ SHA-256(plaintext)

The tag binds the whole plaintext, its length and the object's full key, under a key only the holder of
the AES key can derive: an object's tag cannot be moved to another key or to other content, and cannot
be made without the key. What it cannot do (replay, deletion, downgrade by stripping the tag) is in
docs/threat-model.md.

Pure: hashing only, no I/O. Imports only ks3sync.crypto modules.
"""

from __future__ import annotations

import base64
import hmac
import struct
from collections.abc import Mapping

from ks3sync.crypto.envelope import META_PREFIX
from ks3sync.crypto.errors import IntegrityTagError
from ks3sync.crypto.key import EncryptionKey

TAG_METADATA = "ks3sync-tag"  # x-kss-meta-ks3sync-tag
TAG_VERSION = "v1"
TAG_PURPOSE = b"ks3sync integrity tag v1"  # the HKDF info: K_tag serves this tag and nothing else
_LABEL = b"ks3sync-tag-v1\x00"
SHA256_SIZE = 32


def tag_message(object_key: str, plaintext_length: int, plaintext_sha256: bytes) -> bytes:
    """The bytes the tag authenticates; every field has a fixed size or a length prefix, so no two
    (key, length, digest) triples give the same message."""
    if len(plaintext_sha256) != SHA256_SIZE:
        raise ValueError(f"a SHA-256 digest is {SHA256_SIZE} bytes, got {len(plaintext_sha256)}")
    if plaintext_length < 0:
        raise ValueError(f"plaintext length must be >= 0, got {plaintext_length}")
    name = object_key.encode("utf-8")
    return b"".join(
        (_LABEL, struct.pack(">I", len(name)), name, struct.pack(">Q", plaintext_length), plaintext_sha256)
    )


def tag_value(key: EncryptionKey, object_key: str, plaintext_length: int, plaintext_sha256: bytes) -> str:
    """The ``x-kss-meta-ks3sync-tag`` value for this plaintext stored at ``object_key``."""
    mac = key.keyed_digest(TAG_PURPOSE, tag_message(object_key, plaintext_length, plaintext_sha256))
    return f"{TAG_VERSION}:{base64.b64encode(mac).decode('ascii')}"


def tag_metadata(
    key: EncryptionKey, object_key: str, plaintext_length: int, plaintext_sha256: bytes
) -> dict[str, str]:
    """The tag as user metadata (name without ``x-kss-meta-``, like ``ObjectEncryption.metadata()``)."""
    return {TAG_METADATA: tag_value(key, object_key, plaintext_length, plaintext_sha256)}


def stored_tag(metadata: Mapping[str, str]) -> str | None:
    """The object's tag value, or None when it has none. Accepts names with or without ``x-kss-meta-``,
    in any case (as ``ObjectEncryption.from_metadata`` does)."""
    for name, value in metadata.items():
        lower = name.lower()
        if lower.startswith(META_PREFIX):
            lower = lower[len(META_PREFIX) :]
        if lower == TAG_METADATA:
            return value
    return None


def verify_tag(
    key: EncryptionKey,
    metadata: Mapping[str, str],
    *,
    object_key: str,
    plaintext_length: int,
    plaintext_sha256: bytes,
    name: str = "object",
) -> bool:
    """True when the object's tag matches this plaintext at ``object_key``; False when it has no tag.
    Raises IntegrityTagError when the tag does not match or cannot be read. Messages never show a tag
    (it is derived from the key)."""
    stored = stored_tag(metadata)
    if stored is None:
        return False
    version, sep, _ = stored.strip().partition(":")
    if not sep or version != TAG_VERSION:
        raise IntegrityTagError(
            f"{name}: x-kss-meta-{TAG_METADATA} is not a {TAG_VERSION} tag (written by a newer ks3sync, or damaged)"
        )
    expected = tag_value(key, object_key, plaintext_length, plaintext_sha256)
    if not hmac.compare_digest(stored.strip().encode("utf-8", "surrogateescape"), expected.encode("ascii")):
        raise IntegrityTagError(
            f"{name}: decrypted content does not match its integrity tag (x-kss-meta-{TAG_METADATA}): the object "
            f"was altered, or its tag belongs to another key or another content"
        )
    return True
