"""``ks3sync check --download``: read an object back and compare it with the local file byte for byte,
streaming (one chunk of each side in memory, no temp file), decrypting client-side encrypted objects.

The object must also pass what a restore checks (``transfer.download``): the bytes received match the
object's size, a single-PUT object's ETag is their MD5, the CRC-64 header holds (the KS3 reader checks
it itself), and an encrypted object decrypts with this key, with a valid pad, the recorded plaintext
length and MD5, and ks3sync's integrity tag over what was decrypted (``crypto.ObjectDecryptor``; with
``--require-integrity`` an untagged object differs). An object that fails those differs even when its bytes
equal the file: a restore would refuse it.

Must not import: ks3sync.ks3, the journal, the CLI.
"""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING, Any

from ks3sync.check.compare import CompareOptions, Method, Status, Verdict, detail_of
from ks3sync.check.local import READ_CHUNK, ensure_unchanged, open_local
from ks3sync.errors import IntegrityError
from ks3sync.model import LocalEntry
from ks3sync.store.base import ObjectMeta, ObjectReader, Store
from ks3sync.store.checksums import crc64_update

if TYPE_CHECKING:  # the cipher package is imported on first use
    from ks3sync.crypto.decrypt import ObjectDecryptor
    from ks3sync.crypto.key import EncryptionKey

_SAME = (Method.SIZE, Method.CONTENT)


def compare_download(store: Store, root: str, local: LocalEntry, opts: CompareOptions) -> Verdict:
    """The verdict for ``local`` against its object, read back (decrypted with ``opts.key``, an
    ``EncryptionKey``, when there is one)."""
    path = local.path
    abs_path = os.path.join(root, path)
    fd, before = open_local(path, abs_path)
    try:
        with open(fd, "rb", buffering=READ_CHUNK, closefd=False) as file, store.open(path) as reader:
            verdict = _compare(path, reader, file, opts, store.key_for(path))
        ensure_unchanged(path, abs_path, fd, before)  # a verdict about a file being written means nothing
    finally:
        os.close(fd)
    return verdict


def _compare(path: str, reader: ObjectReader, file: Any, opts: CompareOptions, object_key: str) -> Verdict:
    meta = reader.meta
    key = opts.key
    if meta.is_encrypted and key is None:
        return Verdict(
            path, Status.ERROR, "the object is client-side encrypted: pass --encrypt-key to compare it"
        )
    if key is not None and not meta.is_encrypted and meta.size > 0:
        return Verdict(path, Status.DIFFER, "not client-side encrypted", (Method.SIZE,))
    decryptor = _decryptor(path, meta, key, opts, object_key) if key is not None else None
    if isinstance(decryptor, Verdict):
        return decryptor
    md5 = hashlib.md5(usedforsecurity=False) if decryptor is None and not meta.is_multipart else None
    need_crc = meta.crc64 is not None and not reader.checks_crc64
    crc = received = offset = 0
    # The cipher's refusals (bad pad, wrong length or MD5) are verdicts. Its package is loaded only when
    # there is something to decrypt: run_check imported it before any worker started.
    refusals = _crypto_errors() if decryptor is not None else ()
    try:
        for chunk in reader.iter_bytes(READ_CHUNK):
            received += len(chunk)
            if md5 is not None:
                md5.update(chunk)
            if need_crc:
                crc = crc64_update(crc, chunk)
            plain = bytes(decryptor.update(chunk)) if decryptor is not None else chunk
            where = _first_difference(plain, file.read(len(plain)))
            if where is not None:
                return Verdict(path, Status.DIFFER, f"content at byte {offset + where}", _SAME)
            offset += len(plain)
        if decryptor is not None:
            tail = bytes(decryptor.finish())
            where = _first_difference(tail, file.read(len(tail)))
            if where is not None:
                return Verdict(path, Status.DIFFER, f"content at byte {offset + where}", _SAME)
            offset += len(tail)
    except IntegrityError as exc:
        return Verdict(
            path, Status.DIFFER, f"the object fails its own check: {detail_of(path, str(exc))}", _SAME
        )
    except refusals as exc:
        return Verdict(
            path, Status.DIFFER, f"the object does not decrypt: {detail_of(path, str(exc))}", _SAME
        )
    if file.read(1):
        return Verdict(path, Status.DIFFER, f"content at byte {offset} (the file is longer)", _SAME)
    verdict = _self_check(path, meta, received, md5, crc if need_crc else None)
    if verdict.status is Status.EQUAL and decryptor is not None and decryptor.integrity == "verified":
        return Verdict(path, Status.EQUAL, compared=(*_SAME, Method.TAG))
    return verdict


def _self_check(path: str, meta: ObjectMeta, received: int, md5: Any, crc: int | None) -> Verdict:
    """What a restore would verify about the bytes received, beyond the comparison with the file."""
    if received != meta.size:
        return Verdict(path, Status.DIFFER, f"received {received} bytes of a {meta.size}-byte object", _SAME)
    if md5 is not None and md5.hexdigest() != meta.etag:
        return Verdict(path, Status.DIFFER, "the object's bytes do not match its ETag (MD5)", _SAME)
    if crc is not None and crc != meta.crc64:
        return Verdict(path, Status.DIFFER, "the object's bytes do not match its CRC-64", _SAME)
    return Verdict(path, Status.EQUAL, compared=_SAME)


def _crypto_errors() -> tuple[type[Exception], ...]:
    from ks3sync.crypto.errors import CryptoError

    return (CryptoError,)


def _decryptor(
    path: str, meta: ObjectMeta, key: EncryptionKey, opts: CompareOptions, object_key: str
) -> ObjectDecryptor | Verdict:
    """An ``ObjectDecryptor`` (its integrity tag binds ``object_key``), or the verdict when the object
    cannot be decrypted with the key at all (another key, no tag where one is required, malformed
    encryption metadata)."""
    from ks3sync.crypto.decrypt import ObjectDecryptor
    from ks3sync.crypto.errors import CryptoError, WrongKeyError

    try:
        return ObjectDecryptor(
            key,
            meta.metadata,
            ciphertext_length=meta.size,
            name=path,
            object_key=object_key,
            require_tag=opts.require_tag,
        )
    except WrongKeyError:
        return Verdict(path, Status.DIFFER, "encrypted with a different key", (Method.SIZE,))
    except CryptoError as exc:
        return Verdict(
            path, Status.DIFFER, f"the object does not decrypt: {detail_of(path, str(exc))}", (Method.SIZE,)
        )


_SCAN = 64 * 1024


def _first_difference(remote: bytes, local: bytes) -> int | None:
    """Offset of the first byte where the two differ (a shorter ``local`` differs where it ends)."""
    if remote == local:
        return None
    size = min(len(remote), len(local))
    for start in range(0, size, _SCAN):
        end = min(start + _SCAN, size)
        if remote[start:end] != local[start:end]:
            return next(i for i in range(start, end) if remote[i] != local[i])
    return size
