"""Restore one object into the local folder, and delete local files the source no longer has.

Invariant 6: a key becomes a local path only if the result stays inside the target folder (``..``,
absolute paths, empty or ``.`` segments, NUL are refused), and files appear only by rename from a
verified temp file (``.ks3sync-tmp-*`` in the same folder: same file system, atomic rename).

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
import os
import stat
import uuid
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

from ks3sync.errors import EncryptionError, IntegrityError, LocalFileError, UnsafeKeyError
from ks3sync.model import SyncedEntry
from ks3sync.store.base import (
    META_ENC_IV,
    META_ENC_KEY,
    META_ENC_PLAIN_LENGTH,
    META_ENC_PLAIN_MD5,
    META_MTIME,
    ObjectMeta,
)
from ks3sync.store.checksums import crc64_update
from ks3sync.transfer.context import TMP_PREFIX, TransferContext
from ks3sync.transfer.files import identity_of

# Large reads: fewer trips through the HTTP stack, the hashes and write() per GiB.
CHUNK = 1024 * 1024
# From this size a restore hashes on a pool thread (_PipelinedHash); below it the hand-off costs more
# than the overlap gains.
PIPELINE_MD5_FROM = 8 * CHUNK


def safe_local_path(root: Path, path: str, *, resolved_root: Path | None = None) -> Path:
    """``root / path`` if ``path`` is a plain relative path that stays inside ``root``; else UnsafeKeyError.

    ``resolved_root`` is ``root.resolve()`` when the caller already has it (one restore checks
    thousands of paths against the same root)."""
    return _checked_target(root, path, resolved_root)[0]


def _checked_target(root: Path, path: str, resolved_root: Path | None) -> tuple[Path, bool]:
    """``root / path`` after every check of ``safe_local_path``, and whether its folders already exist."""
    parts = _checked_segments(path)
    real_root = resolved_root or _resolve(path, root)
    return root.joinpath(*parts), _check_folders_inside(real_root, parts[:-1], path)


def _checked_segments(path: str) -> list[str]:
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


def _resolve(path: str, folder: Path) -> Path:
    try:
        return folder.resolve()
    except OSError as exc:
        raise LocalFileError(f"{path}: {exc.strerror or exc}") from exc


def _check_folders_inside(resolved_root: Path, folders: list[str], path: str) -> bool:
    """Check the folders ``path`` goes through below the (resolved) root: a symlinked folder may lead
    outside (UnsafeKeyError), a file in the way is a LocalFileError. One lstat per existing folder,
    not a resolve of the whole chain from ``/``. Returns whether every folder already exists."""
    current = resolved_root
    for name in folders:
        current = current / name
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            return False  # the rest is created by mkdir: plain folders inside the root
        except OSError as exc:
            raise LocalFileError(f"{path}: {exc.strerror or exc}") from exc
        if stat.S_ISLNK(st.st_mode):  # rare: the full resolution decides, as it always did
            parent = _resolve(path, resolved_root.joinpath(*folders))
            if parent != resolved_root and resolved_root not in parent.parents:
                raise UnsafeKeyError(f"{path!r}: restoring it would leave the target folder (symlinked folder?)")
            return parent.is_dir()
        if not stat.S_ISDIR(st.st_mode):
            raise LocalFileError(f"{path}: a parent of it exists locally as a file")
    return True


def download_file(ctx: TransferContext, path: str) -> int:
    """Fetch ``path`` into the local folder; returns bytes received. Raises ks3sync.errors classes."""
    target, folders_exist = _checked_target(ctx.root, path, ctx.resolved_root)
    if not folders_exist:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            raise LocalFileError(f"{path}: a parent of it exists locally as a file") from exc
        except OSError as exc:
            raise LocalFileError(f"{path}: cannot create its folder: {exc.strerror or exc}") from exc
    tmp = target.parent / f"{TMP_PREFIX}{uuid.uuid4().hex}"
    renamed = False
    try:
        received, meta, plain_md5 = _fetch(ctx, path, tmp)
        mtime = _mtime_ns(meta)
        if mtime is not None:
            os.utime(tmp, ns=(mtime, mtime))
        try:
            os.replace(tmp, target)
        except IsADirectoryError as exc:  # rename() never replaces a folder (a symlink to one, it does)
            raise LocalFileError(f"{path}: exists locally as a folder") from exc
        renamed = True
        ctx.folder_syncs.renamed_into(target.parent)
    except OSError as exc:
        raise LocalFileError(f"{path}: {exc.strerror or exc}") from exc
    finally:
        if not renamed:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    identity = identity_of(os.stat(target))
    encrypted = meta.is_encrypted or (meta.size == 0 and ctx.options.encryption_key is not None)
    ctx.checkpoint.synced(SyncedEntry(path, identity, plain_md5, meta.etag, meta.size, encrypted, ctx.clock()))
    return received


def _mtime_ns(meta: ObjectMeta) -> int | None:
    text = meta.metadata.get(META_MTIME, "").strip()
    if text.isdigit():
        return int(text)
    return meta.last_modified_ns or None


def _fetch(ctx: TransferContext, path: str, tmp: Path) -> tuple[int, ObjectMeta, str]:
    """Stream the object into ``tmp`` (fsynced), verify it; returns (bytes received, meta, plaintext MD5).

    Each byte is hashed once: one MD5 over the plaintext (for a plain object the wire bytes *are* the
    plaintext, so it also checks a single-PUT ETag; an encrypted object is checked by its plaintext MD5).
    The CRC-64 is computed here only when the reader does not already check it (``checks_crc64``: the
    KS3 client compares the whole body with the service's CRC header itself) and something needs it.

    One sequential GET, not ranged parallel ones: on loopback the restore is bound by this process's
    CPU and the local disk rather than one connection's throughput, a single-PUT object's ETag needs
    one in-order MD5 pass anyway, and the recorded plaintext MD5 (the planner's content identity) needs
    the bytes in order too."""
    received = 0
    crc = 0
    written = 0
    # An explicit buffer size: open() need not ask the kernel whether a fresh temp file is a terminal.
    with ctx.store.open(path) as reader, open(tmp, "xb", buffering=CHUNK) as out:
        meta = reader.meta
        md5: Any = hashlib.md5()  # noqa: S324 - the protocol's checksum
        if meta.size >= PIPELINE_MD5_FROM:
            md5 = _PipelinedHash(ctx.part_pool, md5)
        decryptor = _decryptor(ctx, path, meta)
        need_crc = (
            meta.crc64 is not None
            and (meta.is_multipart or meta.is_encrypted)
            and not reader.checks_crc64
        )
        meter = ctx.meter_received
        for chunk in reader.iter_bytes(CHUNK):
            meter(len(chunk))
            received += len(chunk)
            if need_crc:
                crc = crc64_update(crc, chunk)
            plain = _decrypt(path, decryptor, chunk) if decryptor is not None else chunk
            if plain:
                md5.update(plain)
                out.write(plain)
                written += len(plain)
        if decryptor is not None:
            tail = _finish(path, decryptor)
            md5.update(tail)
            out.write(tail)
            written += len(tail)
        out.flush()
        os.fsync(out.fileno())
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
    expected_len = meta.metadata.get(META_ENC_PLAIN_LENGTH)
    expected_md5 = meta.metadata.get(META_ENC_PLAIN_MD5)
    if expected_len is not None and expected_len.strip().isdigit() and int(expected_len) != plain_len:
        raise IntegrityError(f"{path}: decrypted length {plain_len} != recorded {expected_len}")
    if expected_md5 is not None:
        if base64.b64encode(plain_md5).decode("ascii") != expected_md5.strip():
            raise IntegrityError(f"{path}: decrypted content does not match its recorded MD5")
    elif crc is not None and crc != meta.crc64:
        raise IntegrityError(f"{path}: downloaded ciphertext does not match the object's CRC-64")


def _decryptor(ctx: TransferContext, path: str, meta: ObjectMeta) -> Any:
    key = ctx.options.encryption_key
    enveloped = META_ENC_IV in meta.metadata or META_ENC_KEY in meta.metadata
    if key is None:
        if enveloped:
            raise EncryptionError(f"{path}: object is client-side encrypted; pass --encrypt-key to restore it")
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
            key, meta.metadata, ciphertext_length=meta.size, name=path, object_key=ctx.store.key_for(path),
            require_tag=ctx.options.require_integrity,
            plaintext_sha256=_PipelinedHash(ctx.part_pool, hashlib.sha256()) if meta.size >= PIPELINE_MD5_FROM else None,
        )
    except CryptoError as exc:
        raise _crypto_error(path, exc) from exc


def _crypto_error(path: str, exc: Exception) -> Exception:
    from ks3sync.crypto.errors import PlaintextMismatchError

    if isinstance(exc, PlaintextMismatchError):  # also a tag that does not match
        return IntegrityError(str(exc) if path in str(exc) else f"{path}: {exc}")
    return EncryptionError(str(exc) if path in str(exc) else f"{path}: {exc}")


def _decrypt(path: str, decryptor: Any, chunk: bytes) -> bytes:
    from ks3sync.crypto.errors import CryptoError

    try:
        return bytes(decryptor.update(chunk))
    except CryptoError as exc:
        raise _crypto_error(path, exc) from exc


def _finish(path: str, decryptor: Any) -> bytes:
    from ks3sync.crypto.errors import CryptoError

    try:
        return bytes(decryptor.finish())
    except CryptoError as exc:
        raise _crypto_error(path, exc) from exc


def delete_local(ctx: TransferContext, path: str) -> None:
    """Remove a local file the source no longer has, then any folders that became empty."""
    target = safe_local_path(ctx.root, path, resolved_root=ctx.resolved_root)
    try:
        target.unlink()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise LocalFileError(f"{path}: cannot delete: {exc.strerror or exc}") from exc
    parent = target.parent
    root = ctx.resolved_root
    while parent.resolve() != root:
        try:
            parent.rmdir()
        except OSError:
            break  # not empty (or not ours to remove): stop pruning here
        parent = parent.parent
