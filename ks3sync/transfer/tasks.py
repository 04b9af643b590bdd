"""The per-operation tasks that are not plain uploads/downloads: server-side Copy and Adopt. Both keep
what they are about to overwrite first (``transfer.keep``: backup prefix or versions).

Copy: the local file must really hold the expected content (hashed here, not trusted), the copy result
must carry the expected ETag, and the file must be unchanged afterwards; otherwise it falls back to an
upload. Adopt (invariant 8): a remote object of the same size may already hold the file — hash it and
compare with the ETag (single PUT), the CRC-64 (multipart), or, encrypted, ks3sync's integrity tag
(``transfer.tagging``) and for an untagged (SDK-written) object the recorded plaintext MD5; record on a
match, upload otherwise. Never re-upload blindly, never record unconfirmed. With a key, a plaintext
object never holds the file: uploading, it is replaced by the encrypted form; restoring, it is refused
unless ``allow_unencrypted``. In an encrypted sync a copy's source must carry a tag that proves the
file's content, and the copy gets a tag of its own (a tag binds the object's key).

Must not import: ks3sync.ks3, the journal, the planner, the CLI.
"""

from __future__ import annotations

import base64
import os

from ks3sync.errors import FileChangedError, RemoteNotFound
from ks3sync.model import Action, Adopt, Copy, Direction, SyncedEntry
from ks3sync.store.base import (
    META_ENC_IV,
    META_ENC_KEY,
    META_ENC_PLAIN_LENGTH,
    META_ENC_PLAIN_MD5,
    ObjectMeta,
)
from ks3sync.transfer.context import TransferContext
from ks3sync.transfer.files import FileDigest, hash_file, identity_of
from ks3sync.transfer.keep import keep_before_overwrite
from ks3sync.transfer.tagging import TagVerdict, tag_metadata, tag_verdict
from ks3sync.transfer.upload import upload_file, write_options

_ENVELOPE_METADATA = (META_ENC_KEY, META_ENC_IV, META_ENC_PLAIN_LENGTH, META_ENC_PLAIN_MD5)


def _still_same(ctx: TransferContext, path: str, before: SyncedEntry) -> None:
    try:
        now = identity_of(os.stat(ctx.abs_path(path)))
    except OSError as exc:
        raise FileChangedError(f"{path}: file vanished while it was being synced") from exc
    if now != before.identity:
        raise FileChangedError(f"{path}: file changed while it was being synced; not recorded")


def copy_object(ctx: TransferContext, op: Copy) -> tuple[Action, int]:
    """Returns (action, bytes sent): (COPIED, 0), or (UPLOADED, n) when a copy cannot be proven."""
    # Every way out below writes op.path (a copy, or an upload instead): keep what is there first. (A
    # moved file may land on a path that has an object: the service's Copy does not know.)
    keep_before_overwrite(ctx, op.path)
    key = ctx.options.encryption_key
    encrypting = key is not None
    digest = hash_file(op.path, ctx.abs_path(op.path), sha256=encrypting)
    source = ctx.synced.get(op.source_path)
    source_encrypted = source.encrypted if source is not None else False
    if digest.md5 != op.expected_md5 or source_encrypted != encrypting:
        return Action.UPLOADED, upload_file(ctx, op.path)
    if source_encrypted:
        # The copy carries the source's ciphertext; its ETag is the ciphertext MD5 we recorded.
        assert source is not None  # source_encrypted is only True with a record
        expected_etag: str | None = None if "-" in source.remote_etag else source.remote_etag
        remote_size = source.remote_size
    else:
        expected_etag = op.expected_md5
        remote_size = digest.size
    if expected_etag is None:
        return Action.UPLOADED, upload_file(ctx, op.path)
    extra: dict[str, str] = {}
    if source_encrypted:
        # The copy's metadata is replaced (the file's own mtime); the envelope's must come along.
        meta = ctx.store.head(op.source_path)
        if meta is None or meta.etag != expected_etag:
            return Action.UPLOADED, upload_file(ctx, op.path)
        assert key is not None
        source_key = ctx.store.key_for(op.source_path)
        if tag_verdict(key, source_key, meta.metadata, digest.size, digest.sha256) is not TagVerdict.VERIFIED:
            # Only a tag proves the source's ciphertext holds this content; an upload tags it anew.
            return Action.UPLOADED, upload_file(ctx, op.path)
        extra = {name: meta.metadata[name] for name in _ENVELOPE_METADATA if name in meta.metadata}
        assert digest.sha256 is not None
        extra.update(tag_metadata(key, ctx.store.key_for(op.path), digest.size, digest.sha256))
    try:
        # REPLACE, not COPY: a duplicate's x-kss-meta-mtime must be its own, or a restore would give it
        # the source file's modification time.
        result = ctx.store.copy(op.source_path, op.path, options=write_options(ctx, digest.identity, extra))
    except RemoteNotFound:
        return Action.UPLOADED, upload_file(ctx, op.path)
    if result.etag != expected_etag:
        # The source object changed since it was listed: the bytes now at op.path are not the file's.
        return Action.UPLOADED, upload_file(ctx, op.path)
    entry = SyncedEntry(
        op.path, digest.identity, digest.md5, result.etag, remote_size, source_encrypted, ctx.clock()
    )
    _still_same(ctx, op.path, entry)
    ctx.checkpoint.synced(entry)
    return Action.COPIED, 0


def adopt_object(ctx: TransferContext, op: Adopt) -> tuple[Action, int]:
    """Returns (ADOPTED, 0) when the remote object already holds the file; otherwise the file is
    uploaded (upload direction: (UPLOADED, n)) or the object downloaded ((DOWNLOADED, n))."""
    digest = hash_file(op.path, ctx.abs_path(op.path), sha256=ctx.options.encryption_key is not None)
    matches, encrypted = _remote_holds(ctx, op, digest)
    if not matches:
        if ctx.options.direction is Direction.DOWNLOAD:
            from ks3sync.transfer.download import download_file

            return Action.DOWNLOADED, download_file(ctx, op.path, op.remote.size)
        keep_before_overwrite(ctx, op.path)
        return Action.UPLOADED, upload_file(ctx, op.path)
    remote = op.remote
    entry = SyncedEntry(
        op.path, digest.identity, digest.md5, remote.etag, remote.size, encrypted, ctx.clock()
    )
    _still_same(ctx, op.path, entry)
    ctx.checkpoint.synced(entry)
    return Action.ADOPTED, 0


def _remote_holds(ctx: TransferContext, op: Adopt, digest: FileDigest) -> tuple[bool, bool]:
    """(does the object hold exactly the file's content in the form this sync wants, is it encrypted)."""
    remote = op.remote
    has_key = ctx.options.encryption_key is not None
    # With a key, a plaintext object is the wrong form even if its bytes equal the file: uploading, it is
    # replaced by the encrypted one; restoring, download_file refuses it (unless allow_unencrypted).
    plain_ok = not has_key or (ctx.options.direction is Direction.DOWNLOAD and ctx.options.allow_unencrypted)
    known = ctx.synced.get(op.path)
    if known is not None and (known.remote_etag, known.remote_size) == (remote.etag, remote.size):
        # The journal recorded this very object: its plaintext MD5 speaks for the content.
        return known.md5 == digest.md5 and (known.encrypted or plain_ok), known.encrypted
    if plain_ok and not has_key and not remote.is_multipart_etag:
        # A single-PUT object's ETag is its MD5 (no key: it cannot be one of our encrypted objects).
        return remote.size == digest.size and remote.etag == digest.md5, False
    meta = ctx.store.head(op.path)
    if meta is None or meta.etag != remote.etag:
        return False, False  # gone or replaced since the listing: transfer it
    if has_key and (meta.is_encrypted or meta.size == 0):
        return _holds_encrypted(ctx, op.path, meta, digest), True
    if meta.is_encrypted:
        return False, True  # no key: it cannot be this sync's object
    if not plain_ok or meta.size != digest.size:
        return False, False
    if meta.is_multipart:
        return meta.crc64 is not None and meta.crc64 == digest.crc64, False
    return meta.etag == digest.md5, False


def _holds_encrypted(ctx: TransferContext, path: str, meta: ObjectMeta, digest: FileDigest) -> bool:
    """With a key: does this encrypted object (or an empty one, the SDK's form of an empty file) hold the
    file's content? Its integrity tag decides; an untagged one (SDK-written) is judged by the plaintext
    MD5 and length it records, unless integrity is required: then an upload re-tags it and a restore
    refuses it (download_file says why)."""
    key = ctx.options.encryption_key
    assert key is not None
    if meta.is_encrypted and not _fingerprint_matches(ctx, meta.metadata.get(META_ENC_KEY, "")):
        return False
    verdict = tag_verdict(key, ctx.store.key_for(path), meta.metadata, digest.size, digest.sha256)
    if verdict is not TagVerdict.UNTAGGED:
        return verdict is TagVerdict.VERIFIED
    if ctx.options.require_integrity:
        return False
    if not meta.is_encrypted:
        return digest.size == 0
    md5_b64 = base64.b64encode(bytes.fromhex(digest.md5)).decode("ascii")
    return meta.metadata.get(META_ENC_PLAIN_MD5, "").strip() == md5_b64 and meta.metadata.get(
        META_ENC_PLAIN_LENGTH, ""
    ).strip() == str(digest.size)


def _fingerprint_matches(ctx: TransferContext, fingerprint: str) -> bool:
    key = ctx.options.encryption_key
    return key is not None and bool(fingerprint) and key.matches_fingerprint(fingerprint.strip())
