"""ks3sync's keyed integrity tag (``ks3sync.crypto.integrity``) on the transfer side: the tag an upload
stores with each object of an encrypted sync, and what an object's tag says about a local file (Adopt,
Copy, repair). A restore checks the tag while it decrypts (``crypto.decrypt.ObjectDecryptor``).

The tag binds the plaintext's SHA-256 and length to the object's full key, so for an object that
carries one, "does it hold this file?" is answered from HEAD metadata plus the file's own SHA-256,
without downloading it, even for multipart objects, which record no plaintext digest of their own.

Must not import: ks3sync.ks3, the journal, the planner, the CLI. The crypto package is imported lazily,
so that plain syncs never load pycryptodome.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ks3sync.errors import IntegrityError
from ks3sync.transfer.context import TransferContext

if TYPE_CHECKING:
    from ks3sync.crypto.key import EncryptionKey


class TagVerdict(enum.Enum):
    VERIFIED = "verified"  # the tag matches this content at this key
    UNTAGGED = "untagged"  # no tag: written by the SDK (or an older ks3sync)
    MISMATCH = "mismatch"  # another content, another key, or an unreadable tag


def tag_metadata(key: EncryptionKey, object_key: str, size: int, sha256: bytes) -> dict[str, str]:
    """Metadata (names without ``x-kss-meta-``) that tags ``size`` plaintext bytes of digest ``sha256``
    stored at ``object_key``."""
    from ks3sync.crypto.integrity import tag_metadata as make

    return make(key, object_key, size, sha256)


def tag_verdict(
    key: EncryptionKey, object_key: str, metadata: Mapping[str, str], size: int, sha256: bytes | None
) -> TagVerdict:
    """What the object's tag (in ``metadata``) says about plaintext of ``size`` bytes and digest ``sha256``."""
    from ks3sync.crypto.errors import IntegrityTagError
    from ks3sync.crypto.integrity import stored_tag, verify_tag

    if stored_tag(metadata) is None:
        return TagVerdict.UNTAGGED
    if sha256 is None:
        raise ValueError("a tag can only be checked against the content's SHA-256")
    try:
        verify_tag(key, metadata, object_key=object_key, plaintext_length=size, plaintext_sha256=sha256)
    except IntegrityTagError:
        return TagVerdict.MISMATCH
    return TagVerdict.VERIFIED


def check_completed_tag(ctx: TransferContext, path: str, size: int, sha256: bytes | None, etag: str) -> None:
    """One HEAD: the completed object ``etag`` at ``path`` must carry the tag of this content, or it is
    not recorded (IntegrityError): the next pass then finds it unproven and uploads it anew."""
    key = ctx.options.encryption_key
    assert key is not None
    meta = ctx.store.head(path)
    if meta is None or meta.etag != etag:
        raise IntegrityError(f"{path}: the object changed right after Complete; not recorded")
    if tag_verdict(key, ctx.store.key_for(path), meta.metadata, size, sha256) is not TagVerdict.VERIFIED:
        raise IntegrityError(
            f"{path}: the resumed upload does not carry this file's integrity tag; not recorded"
        )
