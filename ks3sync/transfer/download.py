"""Restore one object into the local folder, and delete local files the source no longer has.

Invariant 6: a key becomes a local path only if the result stays inside the target folder (``..``,
absolute paths, empty or ``.`` segments, NUL are refused; folders are reached by descriptor without
following symlinks, see ``localtree``), and files appear only by rename from a verified temp file
(``.ks3sync-tmp-*`` in the same folder: same file system, atomic rename). ks3sync's own state files
are never written or deleted (``localtree.StateGuard``). Numbers from metadata go through
``ks3sync.digits``; an unusable mtime costs the file its mtime, not its restore (D9).

Verification: a single-PUT object's ETag is the MD5 of its bytes; a multipart object is checked by its
CRC-64; an encrypted object by the plaintext MD5/length it carries (or, for encrypted multipart objects,
the ciphertext CRC-64), after decryption with the key, which must match the object's fingerprint, and
by ks3sync's keyed integrity tag over the decrypted plaintext when the object has one (SDK-written
objects have none: counted for the pass's warning, or refused with ``require_integrity``). With a key,
an object without encryption metadata is refused unless ``allow_unencrypted`` (docs/encryption.md §8).

Must not import: ks3sync.ks3, the journal, the planner, the CLI.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, BinaryIO

from ks3sync.digits import parse_decimal
from ks3sync.errors import EncryptionError, IntegrityError, LocalFileError, UnsafeKeyError
from ks3sync.model import SyncedEntry
from ks3sync.store.base import (
    META_ENC_IV,
    META_ENC_KEY,
    META_ENC_PLAIN_LENGTH,
    META_ENC_PLAIN_MD5,
    META_MTIME,
    ObjectMeta,
    parse_mtime,
)
from ks3sync.store.checksums import crc64_update
from ks3sync.transfer.context import TMP_PREFIX, TransferContext
from ks3sync.transfer.durable import WritebackAhead
from ks3sync.transfer.files import identity_of
from ks3sync.transfer.ranged import in_place, open_object, ranged

if TYPE_CHECKING:  # the cipher package is imported only when a key is used
    from ks3sync.crypto.decrypt import ObjectDecryptor

log = logging.getLogger(__name__)

# Large reads: fewer trips through the HTTP stack, the hashes and write() per GiB.
CHUNK = 1024 * 1024
# From this size a restore hashes on a pool thread (_PipelinedHash); below it the hand-off costs more
# than the overlap gains.
PIPELINE_MD5_FROM = 8 * CHUNK


def key_segments(path: str) -> list[str]:
    """The key's ``/`` segments, once none of them could lead outside the target folder."""
    if not path:
        raise UnsafeKeyError("empty key: refusing to restore it")
    if "\x00" in path:
        raise UnsafeKeyError(f"{path!r}: key contains a NUL byte; refusing to restore it")
    if path.startswith("/"):
        raise UnsafeKeyError(f"{path!r}: absolute key; refusing to restore outside the target folder")
    parts = path.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise UnsafeKeyError(
                f"{path!r}: key has an empty, '.' or '..' segment; refusing to restore outside the target folder"
            )
    if parts[-1].startswith(TMP_PREFIX):
        raise UnsafeKeyError(f"{path!r}: key uses ks3sync's temp-file name; refusing to restore it")
    return parts


def download_file(ctx: TransferContext, path: str, listed_size: int | None = None) -> int:
    """Fetch ``path`` into the local folder; returns bytes received. Raises ks3sync.errors classes.
    ``listed_size`` bounds the body: an endpoint sending more fails the file, it cannot fill the disk.

    Everything local goes through the folder's descriptor (``localtree``): the temp file is created,
    written, fsynced, given its mtime and renamed over the key's name inside the folder that was opened
    without following symlinks, so a folder swapped for a symlink meanwhile cannot redirect it."""
    parts = key_segments(path)
    name = parts[-1]
    tree = ctx.local_tree()
    with tree.folder(parts[:-1], path, create=True) as folder:
        # By folder identity and name: immune to a swap between this check and the rename below.
        tree.guard.check_entry(folder, name, path)
        tmp, fd = tree.create_temp(folder, path)
        renamed = False
        try:
            # An explicit buffer size: open() need not ask the kernel whether a fresh temp file is a terminal.
            with open(fd, "wb", buffering=CHUNK) as out:
                received, meta, plain_md5 = _fetch(ctx, path, out, listed_size)
                _set_mtime(path, out.fileno(), meta)
                os.fsync(out.fileno())
                tree.replace(folder, tmp, name, path)
                renamed = True
                identity = identity_of(os.fstat(out.fileno()))
        except OSError as exc:
            raise LocalFileError(f"{path}: {exc.strerror or exc}") from exc
        finally:
            if not renamed:
                tree.remove_temp(folder, tmp)
        ctx.folder_syncs.renamed_into(folder)
    encrypted = meta.is_encrypted or (meta.size == 0 and ctx.options.encryption_key is not None)
    ctx.checkpoint.synced(
        SyncedEntry(path, identity, plain_md5, meta.etag, meta.size, encrypted, ctx.clock())
    )
    return received


def _set_mtime(path: str, fd: int, meta: ObjectMeta) -> None:
    mtime = _mtime_ns(path, meta)
    if mtime is None:
        return
    try:
        os.utime(fd, ns=(mtime, mtime))
    except (OSError, OverflowError) as exc:
        # The data is what matters: a file system that cannot hold this time keeps the restore's time.
        log.warning("%s: cannot set its modification time (%s); it keeps the time of the restore", path, exc)


def _mtime_ns(path: str, meta: ObjectMeta) -> int | None:
    """The file's mtime from ``x-kss-meta-mtime``; without a usable one, the object's Last-Modified
    (an unusable one is also reported: D9)."""
    text = meta.metadata.get(META_MTIME)
    if text is not None:
        mtime = parse_mtime(text)
        if mtime is not None:
            return mtime
        log.warning(
            "%s: x-kss-meta-%s is not a time (%r); restored with the object's Last-Modified time",
            path,
            META_MTIME,
            text[:40],
        )
    return meta.last_modified_ns or None


def _fetch(
    ctx: TransferContext, path: str, out: BinaryIO, listed_size: int | None
) -> tuple[int, ObjectMeta, str]:
    """Stream the object into ``out`` (flushed, not fsynced), verify it; returns (bytes received, meta,
    plaintext MD5).

    Each byte is hashed once: one MD5 over the plaintext (for a plain object the wire bytes *are* the
    plaintext, so it also checks a single-PUT ETag; an encrypted object is checked by its plaintext MD5).
    The CRC-64 is computed here only when the reader does not already check it (``checks_crc64``: the
    KS3 client compares the whole body with the service's CRC header itself) and something needs it.

    An object of two parts or more arrives as parallel ranged GETs (ranged.py), handed over in order:
    a single-PUT object's ETag and the recorded plaintext MD5 (the planner's content identity) need
    one in-order MD5 pass, and the CBC chain and the integrity tag need the bytes in order too. The
    hashes of a large object run on threads of their own (``_PipelinedHash``), overlapping the write;
    for a ranged one not on the part pool, which its ranges keep busy."""
    received = 0
    crc = 0
    written = 0
    with contextlib.ExitStack() as stack:
        hash_pool: Executor = ctx.part_pool
        if ranged(ctx, listed_size):
            hash_pool = stack.enter_context(ThreadPoolExecutor(2, thread_name_prefix="ks3sync-hash"))
        reader = stack.enter_context(open_object(ctx, path, listed_size, out.fileno()))
        meta = reader.meta
        md5: Any = hashlib.md5()  # noqa: S324 - the protocol's checksum
        if meta.size >= PIPELINE_MD5_FROM:
            md5 = _PipelinedHash(hash_pool, md5)
        decryptor = _decryptor(ctx, path, meta, hash_pool)
        # Ranges are already in the temp file at their offsets: only an encrypted object's plaintext is
        # written (over its ciphertext, behind the reading position), then its padding cut off.
        write = out.write if decryptor is not None or not in_place(reader) else None
        need_crc = (
            meta.crc64 is not None and (meta.is_multipart or meta.is_encrypted) and not reader.checks_crc64
        )
        meter = ctx.meter_received
        writeback = WritebackAhead(out.fileno(), out.flush) if meta.size >= PIPELINE_MD5_FROM else None
        for chunk in reader.iter_bytes(CHUNK):
            meter(len(chunk))
            received += len(chunk)
            if need_crc:
                crc = crc64_update(crc, chunk)
            plain = _decrypt(path, decryptor, chunk) if decryptor is not None else chunk
            if plain:
                md5.update(plain)
                if write is not None:
                    write(plain)
                written += len(plain)
                if writeback is not None:
                    writeback.wrote(written)
        if decryptor is not None:
            tail = _finish(path, decryptor)
            md5.update(tail)
            out.write(tail)
            written += len(tail)
            if in_place(reader):
                out.truncate(written)
        out.flush()
    if received != meta.size:
        raise IntegrityError(f"{path}: received {received} bytes, object size is {meta.size}")
    if meta.is_encrypted:
        _verify_encrypted(path, meta, md5.digest(), written, crc if need_crc else None)
    elif meta.is_multipart:
        if need_crc and crc != meta.crc64:
            raise IntegrityError(f"{path}: downloaded bytes do not match the object's CRC-64")
    elif md5.hexdigest() != meta.etag:
        raise IntegrityError(f"{path}: downloaded bytes do not match the object's ETag (MD5)")
    if decryptor is not None and decryptor.integrity == "untagged":
        ctx.untagged_reads.add()  # verified as far as the SDK format allows: reported once per pass
    return received, meta, md5.hexdigest()


class _PipelinedHash:
    """A hash of a stream with each chunk hashed on a pool thread while the caller receives and writes
    the next one: hashlib releases the GIL on large buffers, so on two cores a large restore's MD5 (its
    biggest CPU cost; with a key, also the integrity tag's SHA-256) overlaps with the socket, AES and the
    disk instead of adding to them. At most one chunk is being hashed at a time, so the order of updates
    is the order of the stream."""

    __slots__ = ("_hash", "_pool", "_pending")

    def __init__(self, pool: Executor, hasher: Any) -> None:
        self._hash = hasher
        self._pool = pool
        self._pending: Future[None] | None = None

    def update(self, chunk: bytes) -> None:
        self._wait()
        self._pending = self._pool.submit(self._hash.update, chunk)

    def _wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def digest(self) -> bytes:
        self._wait()
        return bytes(self._hash.digest())

    def hexdigest(self) -> str:
        self._wait()
        return str(self._hash.hexdigest())


def _verify_encrypted(path: str, meta: ObjectMeta, plain_md5: bytes, plain_len: int, crc: int | None) -> None:
    """``crc`` is None when the reader already checked the ciphertext CRC-64 (or there is none)."""
    expected_len = parse_decimal(meta.metadata.get(META_ENC_PLAIN_LENGTH))
    expected_md5 = meta.metadata.get(META_ENC_PLAIN_MD5)
    if expected_len is not None and expected_len != plain_len:
        raise IntegrityError(f"{path}: decrypted length {plain_len} != recorded {expected_len}")
    if expected_md5 is not None:
        if base64.b64encode(plain_md5).decode("ascii") != expected_md5.strip():
            raise IntegrityError(f"{path}: decrypted content does not match its recorded MD5")
    elif crc is not None and crc != meta.crc64:
        raise IntegrityError(f"{path}: downloaded ciphertext does not match the object's CRC-64")


def _decryptor(
    ctx: TransferContext, path: str, meta: ObjectMeta, hash_pool: Executor
) -> ObjectDecryptor | None:
    key = ctx.options.encryption_key
    enveloped = META_ENC_IV in meta.metadata or META_ENC_KEY in meta.metadata
    if key is None:
        if enveloped:
            raise EncryptionError(
                f"{path}: object is client-side encrypted; pass --encrypt-key to restore it"
            )
        return None
    if not enveloped and meta.size > 0:
        # docs/encryption.md §2: with a key, plaintext is never passed through unless asked for.
        if ctx.options.allow_unencrypted:
            return None
        raise EncryptionError(
            f"{path}: object is not client-side encrypted (no x-kss-meta-iv/x-kss-meta-key) but a key is set; "
            f"refusing to restore it as plaintext (--allow-unencrypted accepts such objects)"
        )
    from ks3sync.crypto.decrypt import ObjectDecryptor
    from ks3sync.crypto.errors import CryptoError

    try:
        # Checks the key fingerprint, the IV and (with require_integrity) the presence of a tag before
        # producing any output (a wrong key is an error, never garbage); finish() checks the pad, the
        # recorded plaintext length/MD5 and the integrity tag. An empty object (the SDK's form of an
        # empty file) goes through it too, for its tag.
        return ObjectDecryptor(
            key,
            meta.metadata,
            ciphertext_length=meta.size,
            name=path,
            object_key=ctx.store.key_for(path),
            require_tag=ctx.options.require_integrity,
            plaintext_sha256=_PipelinedHash(hash_pool, hashlib.sha256())
            if meta.size >= PIPELINE_MD5_FROM
            else None,
        )
    except CryptoError as exc:
        raise _crypto_error(path, exc) from exc


def _crypto_error(path: str, exc: Exception) -> Exception:
    from ks3sync.crypto.errors import PlaintextMismatchError

    if isinstance(exc, PlaintextMismatchError):  # also a tag that does not match
        return IntegrityError(str(exc) if path in str(exc) else f"{path}: {exc}")
    return EncryptionError(str(exc) if path in str(exc) else f"{path}: {exc}")


def _decrypt(path: str, decryptor: ObjectDecryptor, chunk: bytes) -> bytes:
    from ks3sync.crypto.errors import CryptoError

    try:
        return bytes(decryptor.update(chunk))
    except CryptoError as exc:
        raise _crypto_error(path, exc) from exc


def _finish(path: str, decryptor: ObjectDecryptor) -> bytes:
    from ks3sync.crypto.errors import CryptoError

    try:
        return bytes(decryptor.finish())
    except CryptoError as exc:
        raise _crypto_error(path, exc) from exc


def delete_local(ctx: TransferContext, path: str) -> None:
    """Remove a local file the source no longer has, then any folders that became empty; by descriptor
    like the writes (a symlinked folder is not deleted through, ks3sync's state never deleted)."""
    parts = key_segments(path)
    ctx.local_tree().delete(parts[:-1], parts[-1], path)
