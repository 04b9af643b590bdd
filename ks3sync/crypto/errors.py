"""The exceptions ks3sync.crypto raises. Imports nothing.

::

    CryptoError                      base: anything this package refuses to do
    ├── KeyFileError                 key file missing, unreadable or not 16 bytes (names the file)
    │   └── KeyFileExistsError       keygen: refusing to overwrite an existing file
    ├── WrongKeyError                the object's x-kss-meta-key fingerprint is not this key's
    ├── EncryptionMetadataError      x-kss-meta-iv missing/invalid, or the body's IV prefix differs from it
    ├── CorruptCiphertextError       bad length or bad pad: tampered or truncated ciphertext
    ├── PlaintextMismatchError       decrypted bytes do not match x-kss-meta-unencrypted-content-md5/length
    │   └── IntegrityTagError        ... or do not match ks3sync's keyed integrity tag (or the tag is malformed)
    ├── MissingIntegrityTagError     integrity is required but the object carries no tag (SDK-written)
    └── SourceChangedError           the plaintext file got shorter while it was being encrypted

Messages never contain key bytes (invariant 7); they name the file or the object instead.
"""

from __future__ import annotations


class CryptoError(Exception):
    """Base class: client-side encryption or decryption cannot go on."""


class KeyFileError(CryptoError):
    """The key file is missing, unreadable, or does not hold exactly 16 bytes."""


class KeyFileExistsError(KeyFileError):
    """A new key file was requested where a file already exists (keys are never overwritten)."""


class WrongKeyError(CryptoError):
    """The object was encrypted with a different key (its fingerprint does not match)."""


class EncryptionMetadataError(CryptoError):
    """The object's encryption metadata is missing or inconsistent with its body."""


class CorruptCiphertextError(CryptoError):
    """The ciphertext cannot be a valid SDK envelope: wrong length or invalid padding."""


class PlaintextMismatchError(CryptoError):
    """The decrypted plaintext does not match the length/MD5 recorded at upload time."""


class IntegrityTagError(PlaintextMismatchError):
    """The decrypted plaintext does not match the object's ``x-kss-meta-ks3sync-tag`` (content, length or
    object key differ from what was tagged), or the tag cannot be read."""


class MissingIntegrityTagError(CryptoError):
    """Integrity is required and the object has no ``x-kss-meta-ks3sync-tag`` (the SDK writes none)."""


class SourceChangedError(CryptoError):
    """The plaintext source ended before its announced length (the file changed while read)."""
