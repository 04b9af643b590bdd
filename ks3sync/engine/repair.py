"""Rebuilding a lost or corrupted journal from a scan plus a listing (invariant 8), for ``ks3sync repair``.

The journal is the only record of what was synced. When it is gone (deleted, a new machine) or damaged
(garbage bytes, a failed integrity check), re-uploading everything would be correct but wasteful, and
blindly trusting the bucket would be wrong. Repair walks both sides and records a path as synced only
when the remote object provably holds the local file's bytes:

- sizes differ (plaintext) -> not recorded: the next mirror uploads it;
- single-PUT object (ETag is the content MD5) -> the file is hashed; recorded iff MD5 == ETag;
- multipart object (ETag ``<md5>-<n>`` is not a content hash) -> HEAD it; recorded iff KS3's whole-object
  CRC-64 equals the file's CRC-64 (same size is already known);
- encrypted object (ks3sync/SDK envelope metadata) -> only with ``--encrypt-key``: recorded iff the key
  fingerprint matches and ks3sync's integrity tag matches the file's SHA-256, length and the object's
  key (no download, multipart or not); an untagged (SDK-written) object iff the plaintext MD5 and length
  in its metadata match the file, and an untagged encrypted multipart object, which has no plaintext MD5
  in its metadata, is downloaded, decrypted and hashed (a read; still nothing is written). A plaintext
  object where the sync writes ciphertext is never recorded: the next mirror uploads it encrypted.
A file that changes while it is hashed is not recorded (invariant 1). Nothing is uploaded, copied or
deleted on the object side; the only remote writes are aborts of multipart uploads under the prefix
that the rebuilt journal cannot resume (their part records died with the old journal), and only when
``abort_unknown_uploads`` is set.

A damaged journal file is never deleted: it is renamed to ``<name>.corrupt-<UTC time>`` (with its
``-wal``/``-shm`` companions) so it can be inspected, and a fresh one is created in its place.

Imports the journal, the scan (``scan.local.scan_local``, the scan a mirror pass marches, so filters match),
the store protocol and the file hashing of ``transfer.files``; not the CLI, not the protocol client.
"""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ks3sync.errors import FatalError, Ks3SyncError, RemoteNotFound, UploadGone
from ks3sync.journal import Journal, JournalError
from ks3sync.model import LocalEntry, RemoteEntry, SyncedEntry
from ks3sync.store.base import (
    META_ENC_KEY,
    META_ENC_PLAIN_LENGTH,
    META_ENC_PLAIN_MD5,
    ObjectMeta,
    PendingUpload,
    Store,
)

if TYPE_CHECKING:
    from ks3sync.crypto.key import EncryptionKey  # the cipher package is imported only with a key
    from ks3sync.transfer.files import FileDigest

log = logging.getLogger(__name__)

CORRUPT_SUFFIX = ".corrupt-"
_COMPANIONS = ("-wal", "-shm")
_RECORD_BATCH = 2000


@dataclass(frozen=True, slots=True)
class RepairOptions:
    excludes: tuple[str, ...] = ()
    exclude_from: tuple[Path, ...] = ()
    follow_symlinks: bool = False
    jobs: int = 8
    encryption_key: EncryptionKey | None = None
    abort_unknown_uploads: bool = True
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class RepairResult:
    recorded: int = 0  # paths now recorded as synced
    differ: tuple[str, ...] = ()  # present on both sides but the object does not hold the file
    unverified: tuple[tuple[str, str], ...] = ()  # could not be checked (changed while hashed, ...)
    local_only: int = 0
    remote_only: int = 0
    aborted_uploads: int = 0
    problems: tuple[tuple[str, str], ...] = ()  # scan problems, skipped
    moved_aside: Path | None = None  # where the damaged journal went
    dry_run: bool = False
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "recorded": self.recorded,
            "differ": list(self.differ),
            "unverified": [{"path": path, "reason": reason} for path, reason in self.unverified],
            "local_only": self.local_only,
            "remote_only": self.remote_only,
            "aborted_uploads": self.aborted_uploads,
            "problems": [{"path": path, "reason": reason} for path, reason in self.problems],
            "moved_aside": str(self.moved_aside) if self.moved_aside is not None else None,
            "dry_run": self.dry_run,
            "seconds": round(self.seconds, 3),
        }


# --------------------------------------------------------------------------------------------------
# The journal file


def open_or_replace_journal(
    path: Path, *, clock: Callable[[], float] = time.time
) -> tuple[Journal, Path | None]:
    """Open the journal at ``path``; if it cannot be opened as a journal or fails its integrity check,
    move it aside and create a fresh one. Returns (journal, where the damaged file went or None).

    Raises FatalError when the location itself is unusable (read-only directory, ...): repair cannot
    help there and must not pretend to."""
    reason: str | None = None
    try:
        journal = Journal.open(path)
    except JournalError as exc:
        if not path.exists():
            raise FatalError(f"cannot create a journal at {path}: {exc}") from exc
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    else:
        try:
            problems = journal.integrity_check()
        except JournalError as exc:
            problems = [str(exc).splitlines()[0]]
        if not problems:
            return journal, None
        journal.close()
        reason = "; ".join(problems[:3])
    moved = _move_aside(path, clock())
    log.warning("journal %s is damaged (%s); moved to %s and rebuilding", path, reason, moved)
    try:
        return Journal.open(path), moved
    except JournalError as exc:
        raise FatalError(f"cannot create a fresh journal at {path}: {exc}") from exc


def _move_aside(path: Path, now: float) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    target = path.with_name(path.name + CORRUPT_SUFFIX + stamp)
    n = 1
    while target.exists():  # two repairs in one second keep both old files
        target = path.with_name(f"{path.name}{CORRUPT_SUFFIX}{stamp}.{n}")
        n += 1
    try:
        for companion in _COMPANIONS:
            side = path.with_name(path.name + companion)
            if side.exists():
                side.replace(target.with_name(target.name + companion))
        path.replace(target)
    except OSError as exc:
        raise FatalError(f"cannot move the damaged journal {path} aside: {exc.strerror or exc}") from exc
    return target


# --------------------------------------------------------------------------------------------------
# Rebuilding the entries of one sync


@dataclass(frozen=True, slots=True)
class _Verdict:
    path: str
    entry: SyncedEntry | None = None
    differs: bool = False
    unverified: str | None = None


def rebuild(
    store: Store,
    journal: Journal,
    sync_id: int,
    local_root: Path,
    opts: RepairOptions,
    *,
    moved_aside: Path | None = None,
    clock: Callable[[], int] = time.time_ns,
) -> RepairResult:
    """Re-derive the synced entries of ``sync_id`` from a scan of ``local_root`` and a listing of
    ``store``; replaces whatever the journal held for this sync (unless ``opts.dry_run``)."""
    from ks3sync.scan.local import ScanOptions, scan_local
    from ks3sync.versions.hide import reserved_prefixes, without_areas

    started = time.monotonic()
    # The versions area is ks3sync's own, not a synced path (docs/versions.md §1).
    reserved = reserved_prefixes()
    remote = {obj.path: obj for obj in without_areas(store, reserved)}
    scan_opts = ScanOptions(
        excludes=opts.excludes,
        exclude_from=opts.exclude_from,
        follow_symlinks=opts.follow_symlinks,
        reserved=reserved,
    )
    local, problems = scan_local(local_root, scan_opts, key_prefix=store.prefix)
    local_by = {entry.path: entry for entry in local}
    candidates: list[tuple[LocalEntry, RemoteEntry]] = []
    verdicts: list[_Verdict] = []
    for entry in local:
        obj = remote.get(entry.path)
        if obj is None:
            continue
        if _worth_hashing(entry, obj, opts.encryption_key is not None):
            candidates.append((entry, obj))
        else:
            verdicts.append(_Verdict(entry.path, differs=True))  # sizes differ: no byte needs reading
    verdicts += _verify_all(store, local_root, candidates, opts, clock)
    entries = [v.entry for v in verdicts if v.entry is not None]
    aborted = 0
    if not opts.dry_run:
        stale = list(journal.synced_entries(sync_id))
        journal.remove_entries(sync_id, stale)
        for batch in _batches(entries, _RECORD_BATCH):
            journal.record_synced(sync_id, batch)
        if opts.abort_unknown_uploads:
            aborted = _abort_unknown_uploads(store, journal, sync_id)
    return RepairResult(
        recorded=len(entries),
        differ=tuple(sorted(v.path for v in verdicts if v.differs)),
        unverified=tuple(sorted((v.path, v.unverified) for v in verdicts if v.unverified is not None)),
        local_only=sum(1 for path in local_by if path not in remote),
        remote_only=sum(1 for path in remote if path not in local_by),
        aborted_uploads=aborted,
        problems=tuple(problems),
        moved_aside=moved_aside,
        dry_run=opts.dry_run,
        seconds=time.monotonic() - started,
    )


def _worth_hashing(local: LocalEntry, remote: RemoteEntry, with_key: bool) -> bool:
    # Encrypted objects are larger than their plaintext (padding), so with a key the size says
    # nothing until the metadata is read; without one, a size mismatch proves the content differs.
    return with_key or local.size == remote.size


def _verify_all(
    store: Store,
    root: Path,
    candidates: Sequence[tuple[LocalEntry, RemoteEntry]],
    opts: RepairOptions,
    clock: Callable[[], int],
) -> list[_Verdict]:
    if not candidates:
        return []
    with concurrent.futures.ThreadPoolExecutor(max(1, opts.jobs), thread_name_prefix="repair") as pool:
        return list(pool.map(lambda pair: _verify(store, root, pair[0], pair[1], opts, clock), candidates))


def _verify(
    store: Store,
    root: Path,
    local: LocalEntry,
    remote: RemoteEntry,
    opts: RepairOptions,
    clock: Callable[[], int],
) -> _Verdict:
    from ks3sync.transfer.files import hash_file

    try:
        digest = hash_file(local.path, root / local.path, sha256=opts.encryption_key is not None)
        holds, encrypted = _remote_holds(store, remote, digest, opts.encryption_key)
    except RemoteNotFound:
        return _Verdict(local.path, differs=True)  # deleted since the listing: the next mirror uploads it
    except Ks3SyncError as exc:
        return _Verdict(local.path, unverified=str(exc))
    if not holds:
        return _Verdict(local.path, differs=True)
    entry = SyncedEntry(local.path, digest.identity, digest.md5, remote.etag, remote.size, encrypted, clock())
    return _Verdict(local.path, entry=entry)


def _remote_holds(
    store: Store, remote: RemoteEntry, digest: FileDigest, key: EncryptionKey | None
) -> tuple[bool, bool]:
    """(does the object hold exactly the file's bytes in the form this sync writes, is it encrypted)."""
    if key is None and not remote.is_multipart_etag:
        # A single-PUT object's ETag is the MD5 of its bytes. (An encrypted single PUT's ETag is the
        # ciphertext's MD5, which never equals the plaintext's, so it cannot be adopted by mistake.)
        return remote.size == digest.size and remote.etag == digest.md5, False
    meta = store.head(remote.path)
    if meta is None or meta.etag != remote.etag:
        return False, False  # replaced since the listing
    if meta.is_encrypted:
        if key is None or not key.matches_fingerprint(meta.metadata.get(META_ENC_KEY, "").strip()):
            return False, True
        from ks3sync.transfer.tagging import TagVerdict, tag_verdict

        verdict = tag_verdict(key, store.key_for(meta.path), meta.metadata, digest.size, digest.sha256)
        if verdict is not TagVerdict.UNTAGGED:
            return verdict is TagVerdict.VERIFIED, True
        recorded_md5 = meta.metadata.get(META_ENC_PLAIN_MD5, "").strip()
        if not recorded_md5:
            # Encrypted multipart objects carry only the key fingerprint and IV (the plaintext MD5 is not
            # known at Initiate): decrypt the object and hash what comes out. Reads, never writes.
            return _decrypted_md5(store, meta, key) == digest.md5, True
        md5_b64 = base64.b64encode(bytes.fromhex(digest.md5)).decode("ascii")
        same = recorded_md5 == md5_b64 and meta.metadata.get(META_ENC_PLAIN_LENGTH, "").strip() == str(
            digest.size
        )
        return same, True
    if key is not None:
        return False, False  # a plaintext object where this sync writes ciphertext: re-upload it
    # Multipart, plaintext: KS3's whole-object CRC-64 is a content checksum even though the ETag is not.
    return meta.size == digest.size and meta.crc64 is not None and meta.crc64 == digest.crc64, False


def _decrypted_md5(store: Store, meta: ObjectMeta, key: EncryptionKey) -> str | None:
    """MD5 (hex) of the object's plaintext, or None if it does not decrypt (wrong pad, truncated)."""
    from ks3sync.crypto.decrypt import ObjectDecryptor
    from ks3sync.crypto.errors import CryptoError

    md5 = hashlib.md5()  # noqa: S324 - content identity, compared with the file's MD5
    try:
        decryptor = ObjectDecryptor(
            key,
            meta.metadata,
            ciphertext_length=meta.size,
            name=meta.path,
            object_key=store.key_for(meta.path),
        )
        with store.open(meta.path, meta.size) as reader:
            if reader.meta.etag != meta.etag:
                return None  # replaced since the HEAD
            for chunk in reader.iter_bytes(1 << 20):
                md5.update(decryptor.update(chunk))
        md5.update(decryptor.finish())
    except CryptoError as exc:
        log.info("%s does not decrypt with the given key: %s", meta.path, exc)
        return None
    return md5.hexdigest()


def _abort_unknown_uploads(store: Store, journal: Journal, sync_id: int) -> int:
    """Abort multipart uploads under the prefix that this journal cannot resume (invariant 5)."""
    known = {record.upload_id for record in journal.uploads(sync_id)}
    aborted = 0
    pending_uploads: Sequence[PendingUpload] = store.list_uploads()
    for pending in pending_uploads:
        if pending.upload_id in known:
            continue
        try:
            store.abort_upload(pending.path, pending.upload_id)
        except (RemoteNotFound, UploadGone):
            continue  # completed or aborted meanwhile
        aborted += 1
    return aborted


def _batches(items: Iterable[SyncedEntry], size: int) -> Iterable[list[SyncedEntry]]:
    batch: list[SyncedEntry] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
