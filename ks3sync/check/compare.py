"""The comparison core of ``ks3sync check``: one path present on both sides (a ``LocalEntry``, the
listed ``RemoteEntry``, the journal's ``SyncedEntry`` if any) → a typed :class:`Verdict`, or the next
thing to find out before one can be given (a HEAD, a hash of the local file, a download).

Pure: no I/O, no clock. The caller (``check.examine``) does what a step asks and hands the answer
back: :func:`triage` → :class:`Head` → :func:`after_head` → :class:`Hash` → :func:`settle`.

Decision table without ``--download`` (first match wins; "size" is always compared first):

| object | compared | requests |
|---|---|---|
| both empty | size | none |
| plain, ETag is an MD5 (single PUT) | size, MD5 of the file = ETag | none |
| plain, multipart (or other non-MD5 ETag) | size, CRC-64 of the file = the HEAD's ``x-kss-checksum-crc64ecma`` | one HEAD |
| same, no CRC-64 on the HEAD, journal record of this ETag | size, MD5 of the file = the record's | one HEAD |
| same, no record, ``<md5>-N`` | size, multipart ETag recomputed for part sizes that give N parts; no match → unverified | one HEAD |
| encrypted, journal record of this ETag | ciphertext size, MD5 of the file = the record's plaintext MD5 | none |
| encrypted, no record, ks3sync's integrity tag | ciphertext size; HEAD: key fingerprint, the tag of the file's SHA-256 at this key | one HEAD |
| encrypted, untagged (the SDK's), plaintext MD5 metadata | ciphertext size; HEAD: fingerprint, plaintext length and MD5 | one HEAD |
| encrypted, untagged, no plaintext MD5 (an SDK multipart upload) | → unverified: "cannot verify without --download" | one HEAD |

With ``require_tag`` (``--require-integrity``) an untagged encrypted object differs: a restore refuses it.
KS3 does not document its multipart ETag (docs/ks3-protocol.md §7), so a recomputed one that does not
match never makes a path "differ", only "unverified". With ``--size-only`` only sizes are compared.
With ``--download`` sizes are compared from the listing and everything else by reading the object back
(``check.download``).

Imports ``ks3sync.model``, ``ks3sync.digits`` and ``ks3sync.store.base`` (values only); ``ks3sync.crypto`` (its pure size
arithmetic and the tag's HMAC) only where an object is encrypted, so a plain check never loads the cipher.
"""

from __future__ import annotations

import base64
import binascii
import enum
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ks3sync.digits import parse_decimal
from ks3sync.model import LocalEntry, RemoteEntry, SyncedEntry
from ks3sync.store.base import META_ENC_KEY, META_ENC_PLAIN_LENGTH, META_ENC_PLAIN_MD5, ObjectMeta

if TYPE_CHECKING:  # the cipher package is imported only when a key is used
    from ks3sync.crypto.key import EncryptionKey

MIB = 1024 * 1024
# Part sizes that produced most multipart objects: ks3sync's and the aws cli's 8 MiB, rclone's 5 MiB,
# s3cmd's 15 MiB, and 16 MiB. The configured part size is tried first (CompareOptions.part_sizes).
COMMON_PART_SIZES = (8 * MIB, 5 * MIB, 15 * MIB, 16 * MIB)
MAX_PART_SIZE_TRIES = 4  # each one is one more MD5 pass over the file, in the same read
_MD5_ETAG = re.compile(r"[0-9a-f]{32}")
_MULTIPART_ETAG = re.compile(r"[0-9a-f]{32}-([1-9][0-9]{0,4})")


class Status(enum.Enum):
    EQUAL = "equal"
    DIFFER = "differ"
    MISSING = "missing"  # in SRC, not in DST
    EXTRA = "extra"  # in DST, not in SRC
    ERROR = "error"  # could not be compared (read error, network error after retries, ...)
    UNVERIFIED = "unverified"  # sizes equal; the content cannot be compared without reading the object


class Method(enum.Enum):
    """What proved (or disproved) a path's content, besides its size."""

    SIZE = "size"
    MD5 = "md5"  # the file's MD5 against a single-PUT ETag
    CRC64 = "crc64"  # the file's CRC-64 against the object's x-kss-checksum-crc64ecma
    MULTIPART_ETAG = "multipart-etag"  # the multipart ETag recomputed from the file
    JOURNAL = "journal-md5"  # the file's MD5 against the journal's record of this very object
    PLAINTEXT_MD5 = "plaintext-md5"  # the file's MD5 against x-kss-meta-unencrypted-content-md5
    TAG = "integrity-tag"  # ks3sync's keyed tag (x-kss-meta-ks3sync-tag) against the file's SHA-256
    CONTENT = "content"  # --download: byte for byte


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome for one path. ``detail`` says what differs or failed ("size 10 != 12", "md5",
    "content at byte 4096", an error message); ``compared`` what was compared, in order."""

    path: str
    status: Status
    detail: str = ""
    compared: tuple[Method, ...] = ()


@dataclass(frozen=True, slots=True)
class CompareOptions:
    """``key``: the sync's encryption key (objects are expected to be client-side encrypted);
    ``require_tag``: an encrypted object must carry ks3sync's integrity tag. ``key_prefix``: the
    store's prefix (a tag binds the object's full key). ``local_is_source``: sizes are shown SRC first.
    ``part_sizes``: part sizes to try first when a multipart ETag has to be recomputed (the configured one)."""

    key: EncryptionKey | None = None
    require_tag: bool = False
    size_only: bool = False
    download: bool = False
    local_is_source: bool = True
    part_sizes: tuple[int, ...] = ()
    key_prefix: str = ""


@dataclass(frozen=True, slots=True)
class Hashes:
    """What to compute from the local file, all in one read."""

    md5: bool = False
    crc64: bool = False
    sha256: bool = False
    part_sizes: tuple[int, ...] = ()  # multipart ETags for these part sizes


@dataclass(frozen=True, slots=True)
class LocalDigest:
    size: int
    md5: str | None = None
    crc64: int | None = None
    sha256: bytes | None = None
    multipart_etags: tuple[tuple[int, str], ...] = ()  # (part size, ETag)


@dataclass(frozen=True, slots=True)
class Hash:
    """Hash the local file and compare with ``expected`` by ``method`` (:func:`settle`); ``size`` is the
    size the file had when it was found equal to the object's (a file read at another size changed).
    For ``Method.TAG``, ``expected`` is the object's metadata entry and ``object_key`` its full key."""

    method: Method
    expected: str | int
    hashes: Hashes
    size: int
    object_key: str = ""


@dataclass(frozen=True, slots=True)
class Head:
    """HEAD the object, then :func:`after_head`. ``suspect_encrypted``: sizes differ exactly as
    encryption would make them, and no key was given (only asked to say so)."""

    suspect_encrypted: bool = False


@dataclass(frozen=True, slots=True)
class Download:
    """Read the object back and compare it byte for byte (``check.download``)."""


Step = Verdict | Head | Hash | Download


def triage(local: LocalEntry, remote: RemoteEntry, record: SyncedEntry | None, opts: CompareOptions) -> Step:
    """What the listing (and the journal) already decide for a path on both sides, or what to do next."""
    path = local.path
    if opts.key is not None:
        expected = _encrypted_size(local.size)
        if remote.size != expected:
            return Verdict(
                path, Status.DIFFER, _encrypted_size_detail(local.size, remote.size, opts), (Method.SIZE,)
            )
    elif remote.size != local.size:
        if _encrypted_size(local.size) == remote.size and local.size > 0:
            return Head(suspect_encrypted=True)
        return Verdict(path, Status.DIFFER, size_detail(local.size, remote.size, opts), (Method.SIZE,))
    if local.size == 0 or opts.size_only:
        return Verdict(path, Status.EQUAL, compared=(Method.SIZE,))
    if opts.download:
        return Download()
    if opts.key is not None:
        if _records(record, remote.etag, remote.size) and record is not None and record.encrypted:
            return Hash(Method.JOURNAL, record.md5, Hashes(md5=True), local.size)
        return Head()
    if _MD5_ETAG.fullmatch(remote.etag):
        return Hash(Method.MD5, remote.etag, Hashes(md5=True), local.size)
    return Head()


def after_head(
    local: LocalEntry,
    remote: RemoteEntry,
    record: SyncedEntry | None,
    meta: ObjectMeta | None,
    head: Head,
    opts: CompareOptions,
) -> Verdict | Hash:
    """The next step once the object's HEAD (``None``: gone) is known."""
    path = local.path
    if meta is None:
        return Verdict(path, Status.ERROR, "the object vanished after it was listed", (Method.SIZE,))
    if head.suspect_encrypted or (opts.key is None and meta.is_encrypted):
        if meta.is_encrypted:
            return Verdict(
                path, Status.ERROR, "the object is client-side encrypted: pass --encrypt-key to compare it"
            )
        return Verdict(path, Status.DIFFER, size_detail(local.size, meta.size, opts), (Method.SIZE,))
    if opts.key is not None:
        return _encrypted_after_head(local, record, meta, opts)
    if meta.size != local.size:  # replaced since the listing
        return Verdict(path, Status.DIFFER, size_detail(local.size, meta.size, opts), (Method.SIZE,))
    if meta.crc64 is not None:
        return Hash(Method.CRC64, meta.crc64, Hashes(crc64=True), local.size)
    if _records(record, meta.etag, meta.size) and record is not None:
        return Hash(Method.JOURNAL, record.md5, Hashes(md5=True), local.size)
    if _MD5_ETAG.fullmatch(meta.etag):
        return Hash(Method.MD5, meta.etag, Hashes(md5=True), local.size)
    multipart = _MULTIPART_ETAG.fullmatch(meta.etag)
    sizes = part_size_candidates(local.size, int(multipart.group(1)), opts.part_sizes) if multipart else ()
    if sizes:
        return Hash(Method.MULTIPART_ETAG, meta.etag, Hashes(part_sizes=sizes), local.size)
    return Verdict(
        path,
        Status.UNVERIFIED,
        "no CRC-64 and an ETag that is not an MD5: cannot verify without --download",
        (Method.SIZE,),
    )


def _encrypted_after_head(
    local: LocalEntry, record: SyncedEntry | None, meta: ObjectMeta, opts: CompareOptions
) -> Verdict | Hash:
    path = local.path
    if meta.size != _encrypted_size(local.size):  # replaced since the listing
        return Verdict(
            path, Status.DIFFER, _encrypted_size_detail(local.size, meta.size, opts), (Method.SIZE,)
        )
    if not meta.is_encrypted:
        return Verdict(path, Status.DIFFER, "not client-side encrypted", (Method.SIZE,))
    assert opts.key is not None
    fingerprint = meta.metadata.get(META_ENC_KEY, "").strip()
    if not fingerprint or not opts.key.matches_fingerprint(fingerprint):
        return Verdict(path, Status.DIFFER, "encrypted with a different key", (Method.SIZE,))
    # Hostile text: a length that is not a plain number is left to the tag or the MD5 to judge.
    plain_length = parse_decimal(meta.metadata.get(META_ENC_PLAIN_LENGTH))
    if plain_length is not None and plain_length != local.size:
        return Verdict(path, Status.DIFFER, size_detail(local.size, plain_length, opts), (Method.SIZE,))
    from ks3sync.crypto.integrity import stored_tag

    tag = stored_tag(meta.metadata)
    if tag is not None:
        return Hash(Method.TAG, tag, Hashes(sha256=True), local.size, opts.key_prefix + path)
    if opts.require_tag:
        return Verdict(
            path, Status.DIFFER, "no integrity tag (written by the SDK?), and it is required", (Method.SIZE,)
        )
    plain_md5 = _hex_of_base64_md5(meta.metadata.get(META_ENC_PLAIN_MD5, ""))
    if plain_md5 is not None:
        return Hash(Method.PLAINTEXT_MD5, plain_md5, Hashes(md5=True), local.size)
    if _records(record, meta.etag, meta.size) and record is not None and record.encrypted:
        return Hash(Method.JOURNAL, record.md5, Hashes(md5=True), local.size)
    return Verdict(
        path,
        Status.UNVERIFIED,
        "encrypted without an integrity tag or a plaintext MD5: cannot verify without --download",
        (Method.SIZE,),
    )


def settle(path: str, step: Hash, digest: LocalDigest, opts: CompareOptions) -> Verdict:
    """The verdict once the local file was hashed as ``step.hashes`` asked."""
    if digest.size != step.size:  # the file changed since the scan (and was stable while read)
        return Verdict(path, Status.DIFFER, size_detail(digest.size, step.size, opts), (Method.SIZE,))
    compared = (Method.SIZE, step.method)
    if step.method is Method.MULTIPART_ETAG:
        if any(etag == step.expected for _, etag in digest.multipart_etags):
            return Verdict(path, Status.EQUAL, compared=compared)
        tried = ", ".join(_size_text(size) for size, _ in digest.multipart_etags)
        return Verdict(
            path,
            Status.UNVERIFIED,
            f"no part size tried ({tried}) reproduces the multipart ETag: cannot verify without --download",
            (Method.SIZE,),
        )
    if step.method is Method.TAG:
        return _settle_tag(path, step, digest, opts)
    actual = digest.crc64 if step.method is Method.CRC64 else digest.md5
    if actual is None:
        raise ValueError(f"{path}: the digest lacks what {step.method.value} needs")
    if actual == step.expected:
        return Verdict(path, Status.EQUAL, compared=compared)
    return Verdict(path, Status.DIFFER, _DIFFER_DETAIL[step.method], compared)


def _settle_tag(path: str, step: Hash, digest: LocalDigest, opts: CompareOptions) -> Verdict:
    """The object's integrity tag against the file's SHA-256 and length at the object's key."""
    from ks3sync.crypto.errors import IntegrityTagError
    from ks3sync.crypto.integrity import TAG_METADATA, TAG_VERSION, verify_tag

    if digest.sha256 is None:
        raise ValueError(f"{path}: the digest lacks the SHA-256 the integrity tag needs")
    stored = str(step.expected)
    if stored.strip().partition(":")[0] != TAG_VERSION:
        return Verdict(
            path,
            Status.DIFFER,
            "integrity tag of an unknown version (a newer ks3sync, or damaged)",
            (Method.SIZE, Method.TAG),
        )
    try:
        assert opts.key is not None  # a tag step is planned only with a key
        verify_tag(
            opts.key,
            {TAG_METADATA: stored},
            object_key=step.object_key,
            plaintext_length=digest.size,
            plaintext_sha256=digest.sha256,
            name=path,
        )
    except IntegrityTagError:
        return Verdict(path, Status.DIFFER, "integrity tag", (Method.SIZE, Method.TAG))
    return Verdict(path, Status.EQUAL, compared=(Method.SIZE, Method.TAG))


_DIFFER_DETAIL = {
    Method.MD5: "md5",
    Method.CRC64: "crc64",
    Method.JOURNAL: "md5, against the journal's record of this object",
    Method.PLAINTEXT_MD5: "plaintext md5",
}


def detail_of(path: str, message: str) -> str:
    """An error message as a verdict's detail: the line already names the path, so a message that
    starts with it (most of ks3sync's do) loses that prefix."""
    for prefix in (f"{path}: ", f"{path!r}: "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message


def size_detail(local_size: int, remote_size: int, opts: CompareOptions) -> str:
    """``size SRC != DST``."""
    first, second = (local_size, remote_size) if opts.local_is_source else (remote_size, local_size)
    return f"size {first} != {second}"


def _encrypted_size_detail(local_size: int, remote_size: int, opts: CompareOptions) -> str:
    """The sizes compared for an encrypted object are stored sizes: the file's once encrypted."""
    expected = _encrypted_size(local_size)
    note = f"encrypted: a {local_size}-byte file takes {expected} bytes"
    if remote_size == local_size:
        note += "; the object looks unencrypted"
    return f"{size_detail(expected, remote_size, opts)}, {note}"


def part_size_candidates(size: int, parts: int, preferred: tuple[int, ...] = ()) -> tuple[int, ...]:
    """Part sizes that split ``size`` bytes into exactly ``parts`` parts (all but the last of that size),
    from the preferred ones, the common ones and those doubled until 10,000 parts suffice (what
    ks3sync and the aws cli do for large files); at most ``MAX_PART_SIZE_TRIES``."""
    if parts == 1:
        return (max(size, 1),)  # the whole file is the part: its size does not matter
    low = -(-size // parts)  # parts * p >= size
    high = (size - 1) // (parts - 1)  # (parts - 1) * p < size
    found: list[int] = []
    for base in (*preferred, *COMMON_PART_SIZES):
        part = base
        while -(-size // part) > 10_000:
            part *= 2
        for candidate in (base, part, -(-part // 16) * 16):
            if low <= candidate <= high and candidate not in found:
                found.append(candidate)
    # Tools that size parts as "the file over the part count, in whole MiB".
    whole_mib = -(-low // MIB) * MIB
    if low <= whole_mib <= high and whole_mib not in found:
        found.append(whole_mib)
    return tuple(found[:MAX_PART_SIZE_TRIES])


def _records(record: SyncedEntry | None, etag: str, size: int) -> bool:
    """True when the journal recorded this very object (KS3 confirmed this ETag for the recorded file)."""
    return record is not None and (record.remote_etag, record.remote_size) == (etag, size)


def _encrypted_size(plain_size: int) -> int:
    from ks3sync.crypto.envelope import ciphertext_length

    return ciphertext_length(plain_size)


def _hex_of_base64_md5(text: str) -> str | None:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 16 else None


def _size_text(size: int) -> str:
    return f"{size // MIB} MiB" if size % MIB == 0 else f"{size} B"
