"""Upload one local file: a single PUT below the multipart threshold, a resumable multipart upload above.

Invariant 1 lives here: a path is recorded as synced only after KS3 confirmed the exact bytes (ETag ==
MD5 sent for the PUT and for every part; Complete succeeded with the CRC-64 the parts add up to) and
the file still shows the identity it had when it was opened. A file that changed is never recorded;
a multipart upload of a changed file is aborted before Complete, so the object is never a mix of two
versions.

Multipart (s3transfer's task graph, flattened): the file worker reads parts in order — hashing the
whole file and, with a key, encrypting each part into memory (the CBC chain is sequential) — and hands
each part to the shared part pool, which hashes it (part MD5s run in parallel with the reader) and
uploads concurrently; an encrypted part is sent from its ciphertext buffer, never encrypted twice.
Memory is bounded by ``part_budget`` (bytes of part buffers and whole bodies in memory, shared by all
transfers). Every finished part is recorded through the Checkpoint (MD5, ETag, CRC and, when
encrypted, the chain block) so a killed run resumes: ListParts is reconciled with the record and only
missing parts are sent.

Single PUT: files up to ``SMALL_FILE`` are read once into memory; larger ones are hashed, then streamed
from the same open descriptor (pread), so the bytes sent are those of the file that was hashed.

Encrypted syncs tag every object (``transfer.tagging``, docs/encryption.md §8): the tag covers the whole
plaintext's SHA-256 but must go with the PUT or the multipart Initiate, so a multipart upload with a key
first reads the file once for its MD5 and SHA-256 (docs/decisions.md D10), and a resumed one checks
after Complete that the object carries this file's tag.

Must not import: ks3sync.ks3, the journal, the planner, the CLI.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import logging
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ks3sync.errors import (
    EncryptionError,
    FileChangedError,
    IntegrityError,
    RemoteNotFound,
    TransientError,
    UploadGone,
)
from ks3sync.model import FileIdentity, PartRecord, SyncedEntry, UploadRecord
from ks3sync.store.base import META_MTIME, Body, PartResult, WriteOptions, format_mtime
from ks3sync.store.checksums import crc64_combine, multipart_etag
from ks3sync.transfer.bodies import FdSource, FileBody, MemoryBody, MeteredBody
from ks3sync.transfer.context import BUDGETED_BODY, SMALL_FILE, TransferContext
from ks3sync.transfer.files import check_unchanged, content_digests, open_for_read, read_exactly
from ks3sync.transfer.sizing import choose_part_size, part_count
from ks3sync.transfer.tagging import check_completed_tag, tag_metadata

if TYPE_CHECKING:  # the cipher package is imported only when a key is used
    from ks3sync.crypto.multipart import MultipartEncryptor
    from ks3sync.crypto.source import PlaintextSource

log = logging.getLogger(__name__)

_S3_MULTIPART_ETAG = re.compile(r"[0-9a-f]{32}-[0-9]+")


def upload_file(ctx: TransferContext, path: str) -> int:
    """Upload ``path``; returns the bytes put on the wire. Raises ks3sync.errors classes."""
    abs_path = ctx.abs_path(path)
    try:
        fd, identity = open_for_read(path, abs_path)
    except FileChangedError:
        # The file vanished: an upload recorded for it can never complete (invariant 5).
        record = ctx.checkpoint.upload_for(path)
        if record is not None:
            abort_upload(ctx, path, record.upload_id)
        raise
    try:
        if identity.size > 0 and identity.size >= ctx.options.multipart_threshold:
            return _multipart(ctx, path, abs_path, fd, identity)
        return _single_put(ctx, path, abs_path, fd, identity)
    finally:
        os.close(fd)


def write_options(ctx: TransferContext, identity: FileIdentity, extra: dict[str, str]) -> WriteOptions:
    """The options of an object ks3sync writes for a file: the run's options plus the file's mtime."""
    metadata = dict(ctx.options.write.metadata)
    metadata[META_MTIME] = format_mtime(identity.mtime_ns)
    metadata.update(extra)
    return replace(ctx.options.write, metadata=metadata)


def _crypto_error(path: str, exc: Exception) -> Exception:
    from ks3sync.crypto.errors import SourceChangedError

    if isinstance(exc, SourceChangedError):
        return FileChangedError(f"{path}: file changed while it was encrypted; not recorded")
    return EncryptionError(f"{path}: {exc}")


def _single_put(ctx: TransferContext, path: str, abs_path: Path, fd: int, identity: FileIdentity) -> int:
    """A body read into memory counts against the byte budget (all but the smallest), so that many
    file workers cannot hold many megabytes each; an encrypted one twice (plaintext and ciphertext)."""
    held = 0
    if BUDGETED_BODY < identity.size <= SMALL_FILE:
        held = ctx.part_budget.acquire(identity.size * (2 if ctx.options.encryption_key is not None else 1))
    try:
        return _put_whole(ctx, path, abs_path, fd, identity)
    finally:
        if held:
            ctx.part_budget.release(held)


def _put_whole(ctx: TransferContext, path: str, abs_path: Path, fd: int, identity: FileIdentity) -> int:
    key = ctx.options.encryption_key
    body: Body
    extra: dict[str, str] = {}
    plain_sha: bytes | None = None
    if identity.size <= SMALL_FILE:
        data = read_exactly(path, fd, 0, identity.size) if identity.size else b""
        plain_md5 = hashlib.md5(data).digest()  # noqa: S324 - the protocol's content checksum
        if key is not None:
            plain_sha = hashlib.sha256(data).digest()
        source: bytes | None = data
        body = MemoryBody(data, plain_md5)
    else:
        plain_md5, plain_sha = content_digests(
            path, fd, identity.size, sha256=key is not None, pool=ctx.part_pool
        )
        source = None
        body = FileBody(fd, 0, identity.size, plain_md5)
    # Empty files are stored unencrypted, as the SDK does.
    encrypted = key is not None and identity.size > 0
    if key is not None and encrypted:
        from ks3sync.crypto.encrypt import EncryptedFileBody
        from ks3sync.crypto.errors import CryptoError

        try:
            plain: bytes | PlaintextSource = source if source is not None else FdSource(fd, 0, identity.size)
            sealed = EncryptedFileBody(key, plain, plaintext_md5=plain_md5)
            extra = sealed.metadata()  # runs the hashing pass (Content-MD5 of the ciphertext)
            body = sealed
        except CryptoError as exc:
            raise _crypto_error(path, exc) from exc
    if key is not None:
        # Every object of an encrypted sync is tagged, the empty one stored the SDK's way (plain) too.
        assert plain_sha is not None
        extra.update(tag_metadata(key, ctx.store.key_for(path), identity.size, plain_sha))
    check_unchanged(path, abs_path, fd, identity)
    sent_md5 = body.content_md5().hex()
    result = ctx.store.put(path, MeteredBody(body, ctx.meter_sent), write_options(ctx, identity, extra))
    if result.etag != sent_md5:
        raise IntegrityError(f"{path}: KS3 stored ETag {result.etag}, expected the MD5 sent {sent_md5}")
    check_unchanged(path, abs_path, fd, identity)
    # An empty file in an encrypted sync is stored the SDK's way (plain, 0 bytes): that *is* its
    # encrypted form, so the record says encrypted and the planner does not re-upload it every pass.
    ctx.checkpoint.synced(
        SyncedEntry(path, identity, plain_md5.hex(), result.etag, body.length, key is not None, ctx.clock())
    )
    return int(body.length)


# --------------------------------------------------------------------------------------------------
# multipart


def abort_upload(ctx: TransferContext, path: str, upload_id: str) -> None:
    """Abort an upload and forget it; an upload KS3 no longer knows is already gone, which is the goal."""
    try:
        ctx.store.abort_upload(path, upload_id)
    except (UploadGone, RemoteNotFound):
        log.debug("multipart upload %s of %s was already gone", upload_id, path)
    ctx.checkpoint.upload_finished(upload_id)


def _resume_state(
    ctx: TransferContext, path: str, identity: FileIdentity
) -> tuple[UploadRecord | None, dict[int, PartResult]]:
    """The recorded upload for ``path`` if it still belongs to this file, with what KS3 holds of it."""
    record = ctx.checkpoint.upload_for(path)
    if record is None:
        return None, {}
    wants_encryption = ctx.options.encryption_key is not None
    if (
        record.identity != identity
        or record.key != ctx.store.key_for(path)
        or (record.iv is not None) != wants_encryption
    ):
        # The file changed (or the options did) since the upload started: its parts are worthless.
        abort_upload(ctx, path, record.upload_id)
        return None, {}
    try:
        listed = ctx.store.list_parts(path, record.upload_id)
    except (UploadGone, RemoteNotFound):
        ctx.checkpoint.upload_finished(record.upload_id)
        return None, {}
    return record, {part.part_number: part for part in listed}


def _multipart(ctx: TransferContext, path: str, abs_path: Path, fd: int, identity: FileIdentity) -> int:
    key = ctx.options.encryption_key
    record, on_server = _resume_state(ctx, path, identity)
    resumed = record is not None
    encryptor: MultipartEncryptor | None = None
    digests: tuple[bytes, bytes | None] | None = None
    if key is not None:
        # The tag must go with Initiate, before the parts are read: a first read hashes the file (MD5
        # for the journal, SHA-256 for the tag; check_unchanged below proves the parts come from the same
        # file, as for a single PUT). docs/decisions.md D10.
        digests = content_digests(path, fd, identity.size, sha256=True, pool=ctx.part_pool)
    if record is None:
        part_size = choose_part_size(identity.size, ctx.options.part_size)
        extra: dict[str, str] = {}
        if key is not None:
            from ks3sync.crypto.multipart import MultipartEncryptor

            assert digests is not None and digests[1] is not None
            encryptor = MultipartEncryptor(key)
            extra = encryptor.initiate_metadata()
            extra.update(tag_metadata(key, ctx.store.key_for(path), identity.size, digests[1]))
        upload_id = ctx.store.create_upload(path, write_options(ctx, identity, extra))
        record = UploadRecord(
            path=path,
            key=ctx.store.key_for(path),
            upload_id=upload_id,
            part_size=part_size,
            identity=identity,
            started_at_ns=ctx.clock(),
            iv=encryptor.iv if encryptor is not None else None,
        )
        ctx.checkpoint.upload_started(record)
    elif key is not None:
        from ks3sync.crypto.multipart import MultipartEncryptor

        encryptor = MultipartEncryptor(key, record.iv)
    count = part_count(identity.size, record.part_size)
    try:
        parts, file_md5, sent = _send_parts(
            ctx, path, fd, identity, record, on_server, encryptor, whole_md5=digests is None
        )
        check_unchanged(path, abs_path, fd, identity)
    except FileChangedError:
        # What was sent belongs to no single version of the file: end the upload now (invariant 5).
        abort_upload(ctx, path, record.upload_id)
        raise
    except UploadGone as exc:
        ctx.checkpoint.upload_finished(record.upload_id)
        raise TransientError(f"{path}: multipart upload vanished; will start over") from exc
    ordered = [parts[number] for number in range(1, count + 1)]
    expected_crc = _combined_crc(ordered)
    try:
        result = ctx.store.complete_upload(
            path,
            record.upload_id,
            [PartResult(p.part_number, p.etag, p.size, p.crc64) for p in ordered],
            expected_crc64=expected_crc,
        )
    except UploadGone as exc:
        ctx.checkpoint.upload_finished(record.upload_id)
        raise TransientError(f"{path}: multipart upload vanished before Complete; will start over") from exc
    if expected_crc is not None and result.crc64 is not None and result.crc64 != expected_crc:
        raise IntegrityError(f"{path}: completed object CRC-64 {result.crc64} != parts' {expected_crc}")
    ctx.checkpoint.upload_finished(record.upload_id)
    total = sum(p.size for p in ordered)
    etag = _confirmed_multipart_etag(ctx, path, result.etag, ordered, total, expected_crc)
    if digests is None:
        assert file_md5 is not None  # whole_md5: the parts' read hashed the file
        md5_hex = file_md5.hexdigest()
    else:
        md5_hex = digests[0].hex()
        if resumed:
            # Initiated by an earlier run, with the tag of the file as read then (or none, by a ks3sync
            # without tags): only the object can tell.
            check_completed_tag(ctx, path, identity.size, digests[1], etag)
    ctx.checkpoint.synced(
        SyncedEntry(path, identity, md5_hex, etag, total, encryptor is not None, ctx.clock())
    )
    return sent


def _confirmed_multipart_etag(
    ctx: TransferContext, path: str, etag: str, parts: list[PartRecord], total: int, crc: int | None
) -> str:
    """The ETag to record for a completed upload. KS3 does not document the multipart ETag form: an
    answer in the S3 form (``<md5 of md5s>-N``, what local-server uses) must equal the parts' ETag, or
    Complete contradicted what was sent and nothing is recorded. An answer in another form is opaque:
    the object is asked (HEAD) and recorded only if its size and CRC-64 prove it holds the bytes sent."""
    expected = multipart_etag(p.md5 for p in parts)
    if etag == expected:
        return etag
    if _S3_MULTIPART_ETAG.fullmatch(etag):
        raise IntegrityError(
            f"{path}: Complete answered ETag {etag}, the parts sent make {expected}; not recorded"
        )
    meta = ctx.store.head(path)
    if meta is None or meta.size != total or crc is None or meta.crc64 != crc:
        raise IntegrityError(
            f"{path}: after Complete the object cannot be shown to hold the bytes sent; not recorded"
        )
    return meta.etag


def _send_parts(
    ctx: TransferContext,
    path: str,
    fd: int,
    identity: FileIdentity,
    record: UploadRecord,
    on_server: dict[int, PartResult],
    encryptor: MultipartEncryptor | None,
    *,
    whole_md5: bool,
) -> tuple[dict[int, PartRecord], hashlib._Hash | None, int]:
    """Read the parts in order — the whole file's MD5 (unless ``whole_md5`` is False: known already) and,
    with a key, the CBC chain are sequential — and hand each to the part pool, which hashes it and sends
    it unless KS3 already holds it. Returns every part's record, the whole file's MD5 object (or None)
    and the bytes sent."""
    recorded = {part.part_number: part for part in record.parts}
    count = part_count(identity.size, record.part_size)
    file_md5 = hashlib.md5() if whole_md5 else None  # noqa: S324
    parts: dict[int, PartRecord] = {}
    futures: list[concurrent.futures.Future[tuple[PartRecord, int]]] = []
    try:
        for number in range(1, count + 1):
            if ctx.stop.is_set():
                raise TransientError(f"{path}: run stopped before the upload finished (resumable)")
            offset = (number - 1) * record.part_size
            length = min(record.part_size, identity.size - offset)
            # An encrypted part holds its plaintext until hashed and its ciphertext until sent.
            taken = ctx.part_budget.acquire(length if encryptor is None else 2 * length)
            handed_off = False
            try:
                if ctx.stop.is_set():
                    # Checked again: waiting for budget may have outlasted the stop.
                    raise TransientError(f"{path}: run stopped before the upload finished (resumable)")
                data = read_exactly(path, fd, offset, length)
                if file_md5 is not None:
                    file_md5.update(data)
                done = recorded.get(number)
                server = on_server.get(number)
                if (
                    encryptor is not None
                    and done is not None
                    and done.chain_block is not None
                    and server is not None
                    and server.etag == done.etag
                    and server.size == done.size
                ):
                    # Confirmed earlier for this very file (same identity): continue the CBC chain from
                    # the recorded block instead of encrypting the part again.
                    encryptor.skip_part(done.chain_block)
                    parts[number] = done
                    continue
                body = _part_body(path, encryptor, data, last=number == count)
                futures.append(
                    ctx.part_pool.submit(
                        _finish_part, ctx, path, record.upload_id, number, body, server, done, taken
                    )
                )
                handed_off = True
            finally:
                if not handed_off:
                    ctx.part_budget.release(taken)
    finally:
        # Never leave part tasks running behind our back (they hold part buffers and budget).
        concurrent.futures.wait(futures)
    sent = 0
    for future in futures:
        part, part_sent = future.result()  # the first failed part raises here; the upload stays resumable
        parts[part.part_number] = part
        sent += part_sent
    return parts, file_md5, sent


class _PendingPart(Protocol):
    """A part read (and, with a key, encrypted) in order, handed to the part pool unhashed."""

    @property
    def chain_block(self) -> bytes | None: ...  # encrypted parts: the next part's chain IV

    def hashed(self) -> Body: ...  # the part's body, its MD5(s) computed on the calling thread

    def metadata(self) -> dict[str, str] | None: ...  # encrypted parts: the SDK's per-part metadata


def _part_body(path: str, encryptor: MultipartEncryptor | None, data: bytes, *, last: bool) -> _PendingPart:
    """The part's body, not yet hashed: the plain bytes, or (with a key) the next link of the CBC chain
    encrypted into memory — the only step that must run in part order."""
    if encryptor is None:
        return _PlainPart(data)
    from ks3sync.crypto.errors import CryptoError

    try:
        return encryptor.seal_part(data, last=last)
    except CryptoError as exc:
        raise _crypto_error(path, exc) from exc


class _PlainPart:
    """A plain part's bytes; ``hashed()`` makes the body (MD5 computed on the thread that calls it)."""

    __slots__ = ("data",)
    chain_block = None

    def __init__(self, data: bytes) -> None:
        self.data = data

    def hashed(self) -> MemoryBody:
        return MemoryBody(self.data)

    def metadata(self) -> None:
        return None


def _finish_part(
    ctx: TransferContext,
    path: str,
    upload_id: str,
    number: int,
    part: _PendingPart,
    server: PartResult | None,
    done: PartRecord | None,
    budget: int,
) -> tuple[PartRecord, int]:
    """On the part pool: hash the part (in parallel with the reader and other parts: MD5 releases the GIL)
    and send it unless KS3 already holds exactly these bytes. Returns its record and the bytes sent."""
    try:
        body = part.hashed()
        md5_hex = body.content_md5().hex()
        chain = part.chain_block
        if server is not None and server.etag == md5_hex and server.size == body.length:
            # KS3 already holds exactly these bytes (a kill hit between its answer and our record).
            confirmed = PartRecord(number, body.length, md5_hex, server.etag, server.crc64, chain)
            if done != confirmed:
                ctx.checkpoint.part_done(upload_id, confirmed)
            return confirmed, 0
        if ctx.stop.is_set():
            # Queued but not started when the run stopped: leave it for the resumed upload.
            raise TransientError(f"{path}: run stopped before part {number} was sent (resumable)")
        metadata = part.metadata()  # encrypted parts: the SDK's per-part plaintext metadata
        result = ctx.store.upload_part(path, upload_id, number, MeteredBody(body, ctx.meter_sent), metadata)
        if result.etag != md5_hex:
            raise IntegrityError(f"{path}: part {number} stored with ETag {result.etag}, sent MD5 {md5_hex}")
        sent = PartRecord(number, body.length, md5_hex, result.etag, result.crc64, chain)
        ctx.checkpoint.part_done(upload_id, sent)
        return sent, sent.size
    finally:
        ctx.part_budget.release(budget)


def _combined_crc(parts: list[PartRecord]) -> int | None:
    crc = 0
    for part in parts:
        if part.crc64 is None:
            return None
        crc = crc64_combine(crc, part.crc64, part.size)
    return crc
