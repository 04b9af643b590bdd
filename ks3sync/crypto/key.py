"""The AES-128 key: loading and checking a key file, generating and writing a new one, and the
fingerprint the SDK stores in ``x-kss-meta-key``.

The raw key bytes never leave this object except into a cipher (``new_cbc``) or a key derivation whose
output also stays inside (``keyed_digest``): no repr, no str, no message shows them (invariant 7).
Imports only ``errors`` from ks3sync.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import stat
import warnings
from typing import Any

from Crypto.Cipher import AES
from Crypto.Cipher._mode_cbc import CbcMode
from Crypto.Hash import SHA256
from Crypto.Protocol.KDF import HKDF

from ks3sync.crypto.errors import KeyFileError, KeyFileExistsError

KEY_SIZE = 16
# A key file larger than this is certainly not a key; never read a huge file into memory to say so.
_MAX_KEY_FILE_BYTES = 4096


class InsecureKeyFileWarning(UserWarning):
    """The key file can be read by group or others (it still works: the SDK does not check either)."""


class EncryptionKey:
    """A 16-byte AES-128 key for SDK-compatible client-side encryption."""

    __slots__ = ("_key", "_subkeys", "source")

    def __init__(self, key: bytes, *, source: str = "<in-memory key>") -> None:
        if len(key) != KEY_SIZE:
            raise KeyFileError(f"{source}: encryption key must be exactly {KEY_SIZE} bytes, got {len(key)}")
        self._key = bytes(key)
        self._subkeys: dict[bytes, bytes] = {}  # HKDF outputs by purpose: as secret as the key itself
        self.source = source

    # ---------------------------------------------------------------------------------------------
    # Construction

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> EncryptionKey:
        """Read a key file the way the SDK does: the file's bytes with surrounding ASCII whitespace
        stripped must be exactly 16 bytes. Group/world-readable files give an InsecureKeyFileWarning."""
        name = os.fspath(path)
        try:
            # O_NONBLOCK: a FIFO or device at the key path must give an error, not hang the process.
            fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as handle:
                mode = os.fstat(handle.fileno()).st_mode
                if not stat.S_ISREG(mode):
                    raise KeyFileError(f"encryption key file {name} is not a regular file")
                content = handle.read(_MAX_KEY_FILE_BYTES + 1)
        except FileNotFoundError:
            raise KeyFileError(f"encryption key file {name} does not exist") from None
        except IsADirectoryError:
            raise KeyFileError(f"encryption key file {name} is a directory") from None
        except OSError as exc:
            raise KeyFileError(f"cannot read encryption key file {name}: {exc.strerror or exc}") from None
        key = content.strip()
        if len(key) != KEY_SIZE:
            size = f"more than {_MAX_KEY_FILE_BYTES}" if len(content) > _MAX_KEY_FILE_BYTES else str(len(key))
            raise KeyFileError(
                f"encryption key file {name} must hold exactly {KEY_SIZE} bytes "
                f"(surrounding whitespace ignored), found {size}"
            )
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            warnings.warn(
                f"encryption key file {name} is readable by group or others "
                f"(mode {stat.S_IMODE(mode):04o}); run: chmod 600 {name}",
                InsecureKeyFileWarning,
                stacklevel=2,
            )
        return cls(key, source=name)

    @classmethod
    def generate(cls) -> EncryptionKey:
        """16 random bytes that the SDK's loader accepts unchanged: it strips surrounding whitespace,
        so a key starting or ending with a whitespace byte would be unreadable by the SDK."""
        while True:
            key = os.urandom(KEY_SIZE)
            if key.strip() == key:
                return cls(key, source="<generated key>")

    def write_new_file(self, path: str | os.PathLike[str]) -> None:
        """Write the key to a NEW file with mode 0600. Refuses to overwrite anything (O_EXCL, which also
        refuses a dangling symlink) and removes a half-written file on failure."""
        name = os.fspath(path)
        try:
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise KeyFileExistsError(
                f"{name} already exists; refusing to overwrite it with a new key"
            ) from None
        except OSError as exc:
            raise KeyFileError(f"cannot create key file {name}: {exc.strerror or exc}") from None
        try:
            os.fchmod(fd, 0o600)  # exact mode whatever the umask
            written = os.write(fd, self._key)
            if written != KEY_SIZE:
                raise KeyFileError(f"short write to key file {name}")
            os.fsync(fd)
        except OSError as exc:
            os.close(fd)
            os.unlink(name)
            raise KeyFileError(f"cannot write key file {name}: {exc.strerror or exc}") from None
        except KeyFileError:
            os.close(fd)
            os.unlink(name)
            raise
        os.close(fd)

    # ---------------------------------------------------------------------------------------------
    # Use

    @property
    def fingerprint(self) -> str:
        """The SDK's ``x-kss-meta-key`` value: Base64 of the ASCII hex MD5 of the key."""
        hex_digest = hashlib.md5(self._key, usedforsecurity=False).hexdigest()
        return base64.b64encode(hex_digest.encode("ascii")).decode("ascii")

    def matches_fingerprint(self, fingerprint: str) -> bool:
        try:
            given = fingerprint.strip().encode("ascii")
        except UnicodeEncodeError:
            return False
        return hmac.compare_digest(self.fingerprint.encode("ascii"), given)

    def new_cbc(self, iv: bytes | bytearray | memoryview) -> CbcMode:
        """A fresh AES-128-CBC cipher object chained from ``iv`` (pycryptodome keeps the chain state
        across ``encrypt``/``decrypt`` calls as long as each call is block-aligned)."""
        cipher: CbcMode = AES.new(self._key, AES.MODE_CBC, iv=bytes(iv))
        return cipher

    def keyed_digest(self, purpose: bytes, message: bytes) -> bytes:
        """HMAC-SHA256 of ``message`` under a subkey derived for ``purpose`` alone:
        ``HKDF-SHA256(IKM = this key, salt = none (32 zero bytes), info = purpose, L = 32)``.

        The AES key itself never keys a MAC (one key, one algorithm), and a different ``purpose`` gives
        an unrelated subkey. The subkey is derived once per purpose and never leaves this object."""
        subkey = self._subkeys.get(purpose)
        if subkey is None:
            derived = HKDF(self._key, 32, b"", SHA256, context=purpose)
            assert isinstance(derived, bytes)
            subkey = self._subkeys.setdefault(purpose, derived)
        return hmac.new(subkey, message, hashlib.sha256).digest()

    def __repr__(self) -> str:
        return f"EncryptionKey(source={self.source!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EncryptionKey):
            return NotImplemented
        return hmac.compare_digest(self._key, other._key)

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __reduce__(self) -> Any:
        # Pickling would write the key into whatever stores the pickle (a journal, a log).
        raise TypeError("EncryptionKey cannot be pickled")
