"""Client-side encryption byte-compatible with the official KS3 SDK (``local_encrypt=True``).

The format is written down in docs/encryption.md. Modules, each with one job:

* ``key``       EncryptionKey: key files (load, check, generate, write 0600), the fingerprint
* ``envelope``  the format as data: pad alphabet, sizes, x-kss-meta-* metadata (pure)
* ``source``    re-readable plaintext: a file range or a buffer
* ``encrypt``   EncryptedStream / EncryptedFileBody: streaming encryption as request bodies
* ``multipart`` MultipartEncryptor / EncryptedPart: one CBC chain cut into parts, resumable
* ``ranges``    RangePlan: ciphertext range for a plaintext range (pure)
* ``integrity`` ks3sync's keyed integrity tag (HMAC-SHA256 under an HKDF subkey), which the SDK lacks
* ``decrypt``   ObjectDecryptor: streaming, verified decryption (whole or ranged)
* ``errors``    the exception tree

This package must not import the KS3 client, the journal, the transfer engine or the CLI: callers hand
it bytes and metadata and get bodies and plaintext back.
"""

from ks3sync.crypto.decrypt import CbcDecryptStream, ObjectDecryptor, decrypt_object, plaintext_length
from ks3sync.crypto.encrypt import CHUNK_SIZE, EncryptedFileBody, EncryptedStream, new_iv
from ks3sync.crypto.envelope import (
    BLOCK_SIZE,
    IV_SIZE,
    PAD_ALPHABET,
    ObjectEncryption,
    ciphertext_length,
    pad_bytes,
    pad_length,
    plaintext_length_bounds,
)
from ks3sync.crypto.errors import (
    CorruptCiphertextError,
    CryptoError,
    EncryptionMetadataError,
    IntegrityTagError,
    KeyFileError,
    KeyFileExistsError,
    MissingIntegrityTagError,
    PlaintextMismatchError,
    SourceChangedError,
    WrongKeyError,
)
from ks3sync.crypto.integrity import TAG_METADATA, stored_tag, tag_metadata, tag_value, verify_tag
from ks3sync.crypto.key import KEY_SIZE, EncryptionKey, InsecureKeyFileWarning
from ks3sync.crypto.multipart import EncryptedPart, MultipartEncryptor, part_wire_length
from ks3sync.crypto.ranges import RangePlan, plan_range, tail_range
from ks3sync.crypto.source import BytesSource, FileSlice, PlaintextSource

__all__ = [
    "BLOCK_SIZE",
    "CHUNK_SIZE",
    "IV_SIZE",
    "KEY_SIZE",
    "PAD_ALPHABET",
    "TAG_METADATA",
    "BytesSource",
    "CbcDecryptStream",
    "CorruptCiphertextError",
    "CryptoError",
    "EncryptedFileBody",
    "EncryptedPart",
    "EncryptedStream",
    "EncryptionKey",
    "EncryptionMetadataError",
    "FileSlice",
    "InsecureKeyFileWarning",
    "IntegrityTagError",
    "KeyFileError",
    "KeyFileExistsError",
    "MissingIntegrityTagError",
    "MultipartEncryptor",
    "ObjectDecryptor",
    "ObjectEncryption",
    "PlaintextMismatchError",
    "PlaintextSource",
    "RangePlan",
    "SourceChangedError",
    "WrongKeyError",
    "ciphertext_length",
    "decrypt_object",
    "new_iv",
    "pad_bytes",
    "pad_length",
    "part_wire_length",
    "plaintext_length",
    "plaintext_length_bounds",
    "plan_range",
    "stored_tag",
    "tag_metadata",
    "tag_value",
    "tail_range",
    "verify_tag",
]
