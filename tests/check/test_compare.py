"""The pure comparison core of `ks3sync check` (ks3sync.check.compare): one row of its decision table
per test, the steps it asks for, and the part-size search for multipart ETags."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ks3sync.check.compare import (
    MIB,
    CompareOptions,
    Download,
    Hash,
    Hashes,
    Head,
    LocalDigest,
    Method,
    Status,
    Verdict,
    after_head,
    part_size_candidates,
    settle,
    triage,
)
from ks3sync.model import FileIdentity, LocalEntry, RemoteEntry, SyncedEntry
from ks3sync.store.base import (
    META_ENC_IV,
    META_ENC_KEY,
    META_ENC_PLAIN_LENGTH,
    META_ENC_PLAIN_MD5,
    ObjectMeta,
)
from ks3sync.store.checksums import multipart_etag
from ks3sync.transfer.sizing import choose_part_size, part_count

CONTENT = b"0123456789"
MD5 = hashlib.md5(CONTENT).hexdigest()
ENCRYPTED_SIZE = 32  # the IV, then ten bytes padded to one block


class Key:
    def matches_fingerprint(self, fingerprint: str) -> bool:
        return fingerprint == "good"


PLAIN = CompareOptions()
KEYED = CompareOptions(key=Key())


def local(size: int = len(CONTENT), path: str = "f") -> LocalEntry:
    return LocalEntry(path, FileIdentity(size, 1, 1, 1))


def remote(size: int = len(CONTENT), etag: str = MD5, path: str = "f") -> RemoteEntry:
    return RemoteEntry(path, size, etag)


def record(obj: RemoteEntry, md5: str = MD5, *, encrypted: bool = False) -> SyncedEntry:
    return SyncedEntry(obj.path, FileIdentity(len(CONTENT), 1, 1, 1), md5, obj.etag, obj.size, encrypted)


def meta(
    size: int = len(CONTENT), etag: str = "a" * 32 + "-2", *, crc64: int | None = None, **metadata: str
) -> ObjectMeta:
    return ObjectMeta("f", size, etag, metadata=metadata, crc64=crc64)


def encrypted_meta(
    *,
    key: str = "good",
    length: int | str | None = len(CONTENT),
    md5: bytes | None = None,
    etag: str = "b" * 32,
) -> ObjectMeta:
    metadata = {META_ENC_KEY: key, META_ENC_IV: base64.b64encode(b"\0" * 16).decode()}
    if length is not None:
        metadata[META_ENC_PLAIN_LENGTH] = str(length)
    if md5 is not None:
        metadata[META_ENC_PLAIN_MD5] = base64.b64encode(md5).decode()
    return ObjectMeta("f", ENCRYPTED_SIZE, etag, metadata=metadata)


# ------------------------------------------------------------------ what the listing decides


def test_sizes_that_differ_are_shown_src_first_whichever_side_is_local() -> None:
    assert triage(local(10), remote(12), None, PLAIN) == Verdict(
        "f", Status.DIFFER, "size 10 != 12", (Method.SIZE,)
    )
    reversed_order = CompareOptions(local_is_source=False)
    assert triage(local(10), remote(12), None, reversed_order).detail == "size 12 != 10"


def test_empty_files_and_size_only_are_decided_by_size_without_any_io() -> None:
    empty = triage(local(0), remote(0, hashlib.md5(b"").hexdigest()), None, PLAIN)
    assert empty == Verdict("f", Status.EQUAL, compared=(Method.SIZE,))
    multipart = remote(etag="c" * 32 + "-3")
    assert triage(local(), multipart, None, CompareOptions(size_only=True)).status is Status.EQUAL
    assert triage(local(), remote(11), None, CompareOptions(size_only=True)).status is Status.DIFFER


def test_a_single_put_etag_is_compared_with_the_files_md5_without_a_request() -> None:
    step = triage(local(), remote(), None, PLAIN)
    assert step == Hash(Method.MD5, MD5, Hashes(md5=True), 10)
    assert settle("f", step, LocalDigest(10, md5=MD5), PLAIN) == Verdict(
        "f", Status.EQUAL, compared=(Method.SIZE, Method.MD5)
    )
    # The file was read at another size than the scan saw: it changed, and now differs by size.
    assert settle("f", step, LocalDigest(11, md5=MD5), PLAIN) == Verdict(
        "f", Status.DIFFER, "size 11 != 10", (Method.SIZE,)
    )
    assert settle("f", step, LocalDigest(10, md5="0" * 32), PLAIN) == Verdict(
        "f", Status.DIFFER, "md5", (Method.SIZE, Method.MD5)
    )


def test_a_multipart_object_is_compared_by_the_crc64_of_its_head() -> None:
    obj = remote(etag="c" * 32 + "-2")
    step = triage(local(), obj, None, PLAIN)
    assert step == Head()
    assert isinstance(step, Head)
    hashed = after_head(local(), obj, None, meta(etag=obj.etag, crc64=1234), step, PLAIN)
    assert hashed == Hash(Method.CRC64, 1234, Hashes(crc64=True), 10)
    assert isinstance(hashed, Hash)
    assert settle("f", hashed, LocalDigest(10, crc64=1234), PLAIN).status is Status.EQUAL
    assert settle("f", hashed, LocalDigest(10, crc64=4321), PLAIN).detail == "crc64"


def test_without_a_crc64_the_journal_record_then_the_part_size_search_then_unverified() -> None:
    size = 20 * MIB + 1
    obj = remote(size, "c" * 32 + "-3")
    no_crc = meta(size, obj.etag)
    by_record = after_head(local(size), obj, record(obj), no_crc, Head(), PLAIN)
    assert by_record == Hash(Method.JOURNAL, MD5, Hashes(md5=True), size)
    searched = after_head(local(size), obj, None, no_crc, Head(), PLAIN)
    assert searched == Hash(Method.MULTIPART_ETAG, obj.etag, Hashes(part_sizes=(8 * MIB, 7 * MIB)), size)
    assert isinstance(searched, Hash)
    # A recomputed multipart ETag that does not match is never "differ": KS3 does not document the form.
    missed = settle("f", searched, LocalDigest(size, multipart_etags=((8 * MIB, "d" * 32 + "-3"),)), PLAIN)
    assert missed.status is Status.UNVERIFIED and "(8 MiB)" in missed.detail and "--download" in missed.detail
    # Ten bytes in two parts: no plausible part size does that.
    tiny = after_head(local(), remote(etag="c" * 32 + "-2"), None, meta(), Head(), PLAIN)
    assert isinstance(tiny, Verdict) and tiny.status is Status.UNVERIFIED
    other_etag = after_head(local(), remote(etag="opaque"), None, meta(etag="opaque"), Head(), PLAIN)
    assert isinstance(other_etag, Verdict) and other_etag.status is Status.UNVERIFIED


def test_the_head_can_still_find_the_object_gone_replaced_or_encrypted() -> None:
    obj = remote(etag="c" * 32 + "-2")
    gone = after_head(local(), obj, None, None, Head(), PLAIN)
    assert isinstance(gone, Verdict) and gone.status is Status.ERROR and "vanished" in gone.detail
    replaced = after_head(local(), obj, None, meta(size=11, crc64=1), Head(), PLAIN)
    assert replaced == Verdict("f", Status.DIFFER, "size 10 != 11", (Method.SIZE,))
    secret = after_head(local(), obj, None, encrypted_meta(), Head(), PLAIN)
    assert isinstance(secret, Verdict) and secret.status is Status.ERROR and "--encrypt-key" in secret.detail


def test_sizes_that_differ_as_encryption_would_make_them_ask_whether_a_key_was_forgotten() -> None:
    obj = remote(ENCRYPTED_SIZE, "b" * 32)
    step = triage(local(), obj, None, PLAIN)
    assert step == Head(suspect_encrypted=True)
    assert isinstance(step, Head)
    forgot = after_head(local(), obj, None, encrypted_meta(), step, PLAIN)
    assert isinstance(forgot, Verdict) and forgot.status is Status.ERROR and "--encrypt-key" in forgot.detail
    plain = after_head(local(), obj, None, meta(size=ENCRYPTED_SIZE, etag="b" * 32), step, PLAIN)
    assert plain == Verdict("f", Status.DIFFER, "size 10 != 32", (Method.SIZE,))


# ------------------------------------------------------------------ encrypted objects


def test_an_encrypted_size_is_the_ciphertext_length_of_the_file() -> None:
    wrong = triage(local(), remote(48, "b" * 32), None, KEYED)
    assert wrong == Verdict(
        "f", Status.DIFFER, "size 32 != 48, encrypted: a 10-byte file takes 32 bytes", (Method.SIZE,)
    )
    unencrypted = triage(local(), remote(), None, KEYED)
    assert isinstance(unencrypted, Verdict) and unencrypted.detail.endswith("; the object looks unencrypted")
    assert triage(local(0), remote(0, hashlib.md5(b"").hexdigest()), None, KEYED).status is Status.EQUAL


def test_an_encrypted_object_the_journal_recorded_needs_no_request() -> None:
    obj = remote(ENCRYPTED_SIZE, "b" * 32)
    assert triage(local(), obj, record(obj, encrypted=True), KEYED) == Hash(
        Method.JOURNAL, MD5, Hashes(md5=True), 10
    )
    # A record of another ETag (the object was replaced) does not speak for this one.
    stale = SyncedEntry("f", FileIdentity(10, 1, 1, 1), MD5, "e" * 32, ENCRYPTED_SIZE, True)
    assert triage(local(), obj, stale, KEYED) == Head()


def test_an_encrypted_object_is_judged_by_its_key_fingerprint_and_plaintext_metadata() -> None:
    obj = remote(ENCRYPTED_SIZE, "b" * 32)
    digest = hashlib.md5(CONTENT).digest()

    def after(found: ObjectMeta) -> Verdict | Hash:
        return after_head(local(), obj, None, found, Head(), KEYED)

    assert after(encrypted_meta(md5=digest)) == Hash(Method.PLAINTEXT_MD5, MD5, Hashes(md5=True), 10)
    assert after(encrypted_meta(key="other", md5=digest)) == Verdict(
        "f", Status.DIFFER, "encrypted with a different key", (Method.SIZE,)
    )
    assert after(encrypted_meta(length=11, md5=digest)) == Verdict(
        "f", Status.DIFFER, "size 10 != 11", (Method.SIZE,)
    )
    plaintext = after(meta(size=ENCRYPTED_SIZE, etag="b" * 32))
    assert isinstance(plaintext, Verdict) and plaintext.detail == "not client-side encrypted"
    # A length that is not a plain number ('²' passes str.isdigit() and fails int()) decides nothing.
    for hostile in ("\u00b2", "+10", "1_0", "99999999999999999999999"):
        assert after(encrypted_meta(length=hostile, md5=digest)) == Hash(
            Method.PLAINTEXT_MD5, MD5, Hashes(md5=True), 10
        )
    multipart = after(encrypted_meta(length=None))
    assert isinstance(multipart, Verdict) and multipart.status is Status.UNVERIFIED
    assert "cannot verify without --download" in multipart.detail
    step = after(encrypted_meta(md5=digest))
    assert isinstance(step, Hash)
    assert settle("f", step, LocalDigest(10, md5="0" * 32), PLAIN).detail == "plaintext md5"


def test_download_compares_sizes_first_then_reads_the_object() -> None:
    download = CompareOptions(download=True)
    assert triage(local(), remote(etag="c" * 32 + "-2"), None, download) == Download()
    assert triage(local(), remote(11), None, download).status is Status.DIFFER  # type: ignore[union-attr]
    assert (
        triage(local(), remote(ENCRYPTED_SIZE), None, CompareOptions(key=Key(), download=True)) == Download()
    )


@pytest.mark.parametrize(
    ("method", "detail"),
    [
        (Method.MD5, "md5"),
        (Method.CRC64, "crc64"),
        (Method.PLAINTEXT_MD5, "plaintext md5"),
        (Method.JOURNAL, "md5, against the journal's record of this object"),
    ],
)
def test_every_mismatch_says_what_was_compared(method: Method, detail: str) -> None:
    expected: str | int = 1 if method is Method.CRC64 else MD5
    verdict = settle("f", Hash(method, expected, Hashes(), 10), LocalDigest(10, md5="0" * 32, crc64=2), PLAIN)
    assert verdict == Verdict("f", Status.DIFFER, detail, (Method.SIZE, method))


# ------------------------------------------------------------------ the part-size search


@given(size=st.integers(1, 50 * 1024**3), requested=st.sampled_from([100 * 1024, 5 * MIB, 8 * MIB, 32 * MIB]))
def test_the_search_finds_the_part_size_ks3sync_used_and_only_sizes_that_give_n_parts(
    size: int, requested: int
) -> None:
    used = choose_part_size(size, requested)
    parts = part_count(size, used)
    found = part_size_candidates(size, parts, (requested,))
    assert used in found or parts == 1
    assert 1 <= len(found) <= 4
    assert all(part_count(size, candidate) == parts for candidate in found)


def test_the_common_part_sizes_are_tried_without_a_hint() -> None:
    size = 20 * MIB + 1
    assert 8 * MIB in part_size_candidates(size, 3)  # aws cli, ks3sync
    assert 5 * MIB in part_size_candidates(size, 5)  # rclone
    assert part_size_candidates(size, 1) == (size,)
    assert part_size_candidates(size, 7) == (3 * MIB,)  # "size over the part count, in whole MiB"
    assert part_size_candidates(size, 10_001) == ()  # only 2,097-byte parts would do: nothing plausible


def test_a_recomputed_multipart_etag_that_matches_proves_the_content() -> None:
    data = bytes(range(256)) * 100
    part = 10_000
    etag = multipart_etag(hashlib.md5(data[i : i + part]).hexdigest() for i in range(0, len(data), part))
    step = Hash(Method.MULTIPART_ETAG, etag, Hashes(part_sizes=(part,)), len(data))
    verdict = settle("f", step, LocalDigest(len(data), multipart_etags=((9_999, "x"), (part, etag))), PLAIN)
    assert verdict == Verdict("f", Status.EQUAL, compared=(Method.SIZE, Method.MULTIPART_ETAG))


# ------------------------------------------------------------------ ks3sync's integrity tag


def test_a_tagged_object_is_proven_by_its_tag_over_the_files_sha256_at_its_full_key() -> None:
    from ks3sync.crypto.integrity import TAG_METADATA, tag_value
    from ks3sync.crypto.key import EncryptionKey

    key = EncryptionKey(b"k" * 16)
    sha = hashlib.sha256(CONTENT).digest()
    opts = CompareOptions(key=key, key_prefix="p/")
    obj = remote(ENCRYPTED_SIZE, "b" * 32 + "-2")  # multipart: no plaintext MD5, the tag still proves it
    tagged = encrypted_meta(key=key.fingerprint, length=None)
    tagged = ObjectMeta(
        "f",
        ENCRYPTED_SIZE,
        obj.etag,
        metadata={**tagged.metadata, TAG_METADATA: tag_value(key, "p/f", 10, sha)},
    )
    step = after_head(local(), obj, None, tagged, Head(), opts)
    assert step == Hash(Method.TAG, tagged.metadata[TAG_METADATA], Hashes(sha256=True), 10, "p/f")
    assert isinstance(step, Hash)
    assert settle("f", step, LocalDigest(10, sha256=sha), opts) == Verdict(
        "f", Status.EQUAL, compared=(Method.SIZE, Method.TAG)
    )
    other = hashlib.sha256(b"9123456789").digest()
    assert settle("f", step, LocalDigest(10, sha256=other), opts) == Verdict(
        "f", Status.DIFFER, "integrity tag", (Method.SIZE, Method.TAG)
    )
    moved = Hash(Method.TAG, step.expected, Hashes(sha256=True), 10, "q/f")  # a tag binds the object's key
    assert settle("f", moved, LocalDigest(10, sha256=sha), opts).status is Status.DIFFER
    newer = Hash(Method.TAG, "v9:abc", Hashes(sha256=True), 10, "p/f")
    assert "unknown version" in settle("f", newer, LocalDigest(10, sha256=sha), opts).detail


def test_with_require_tag_an_untagged_encrypted_object_differs() -> None:
    obj = remote(ENCRYPTED_SIZE, "b" * 32)
    untagged = encrypted_meta(md5=hashlib.md5(CONTENT).digest())
    required = after_head(local(), obj, None, untagged, Head(), CompareOptions(key=Key(), require_tag=True))
    assert isinstance(required, Verdict) and required.status is Status.DIFFER
    assert required.detail.startswith("no integrity tag")
    assert isinstance(after_head(local(), obj, None, untagged, Head(), KEYED), Hash)
