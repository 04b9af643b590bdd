"""Decryption refuses clearly instead of producing garbage; sources and metadata edge cases."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import pytest

from ks3sync.crypto import (
    CorruptCiphertextError,
    EncryptedFileBody,
    EncryptionKey,
    EncryptionMetadataError,
    FileSlice,
    MultipartEncryptor,
    ObjectDecryptor,
    ObjectEncryption,
    PlaintextMismatchError,
    SourceChangedError,
    WrongKeyError,
    decrypt_object,
    plan_range,
)

KEY = EncryptionKey(b"0123456789abcdef")
OTHER = EncryptionKey(b"fedcba9876543210")
DATA = os.urandom(1000)


def _object(data: bytes = DATA) -> tuple[dict[str, str], bytes]:
    body = EncryptedFileBody(KEY, data)
    return body.metadata(), b"".join(body.chunks())


def test_wrong_key_is_refused_before_any_output() -> None:
    meta, wire = _object()
    with pytest.raises(WrongKeyError, match="encrypted with a different key") as info:
        ObjectDecryptor(OTHER, meta, name="bkt/some/key")
    assert "bkt/some/key" in str(info.value)
    assert "fedcba9876543210" not in str(info.value)


def test_metadata_accepted_with_or_without_prefix_in_any_case() -> None:
    meta, wire = _object()
    as_headers = {"X-KSS-META-" + k.upper(): v for k, v in meta.items()}
    assert decrypt_object(KEY, as_headers, wire) == DATA
    assert decrypt_object(KEY, meta, wire) == DATA


@pytest.mark.parametrize("drop", ["iv", "key"])
def test_missing_key_or_iv_metadata(drop: str) -> None:
    meta, wire = _object()
    del meta[drop]
    with pytest.raises(EncryptionMetadataError, match=f"no x-kss-meta-{drop}"):
        ObjectDecryptor(KEY, meta)


def test_invalid_iv_metadata() -> None:
    meta, _ = _object()
    with pytest.raises(EncryptionMetadataError, match="not valid Base64"):
        ObjectDecryptor(KEY, {**meta, "iv": "***"})
    with pytest.raises(EncryptionMetadataError, match="8 bytes"):
        ObjectDecryptor(KEY, {**meta, "iv": base64.b64encode(b"12345678").decode()})


def test_iv_prefix_must_equal_the_metadata_iv() -> None:
    meta, wire = _object()
    meta["iv"] = base64.b64encode(bytes(16)).decode()
    with pytest.raises(EncryptionMetadataError, match="differ from its x-kss-meta-iv"):
        decrypt_object(KEY, meta, wire)


def test_recorded_md5_and_length_are_verified() -> None:
    meta, wire = _object()
    bad_md5 = {**meta, "unencrypted-content-md5": base64.b64encode(bytes(16)).decode()}
    with pytest.raises(PlaintextMismatchError, match="unencrypted-content-md5"):
        decrypt_object(KEY, bad_md5, wire)
    bad_length = {**meta, "unencrypted-content-length": "999"}
    with pytest.raises(PlaintextMismatchError, match="says 999"):
        decrypt_object(KEY, bad_length, wire)
    with pytest.raises(EncryptionMetadataError, match="not a length"):
        ObjectDecryptor(KEY, {**meta, "unencrypted-content-length": "-1"})


def test_bad_pad_on_an_object_without_recorded_md5() -> None:
    # A multipart object carries no plaintext MD5: the pad check is what stands between a bad tail and
    # garbage. Re-encrypt the last block with a non-alphabet pad byte.
    encryptor = MultipartEncryptor(KEY)
    wire = bytearray(b"".join(encryptor.next_part(DATA[:992], last=False).chunks()))
    wire += b"".join(encryptor.next_part(DATA[992:], last=True).chunks())
    forged_last = bytearray(KEY.new_cbc(wire[-32:-16]).decrypt(bytes(wire[-16:])))
    forged_last[-1] = 0x10  # a PKCS#7 pad byte: not in the SDK alphabet
    wire[-16:] = KEY.new_cbc(wire[-32:-16]).encrypt(bytes(forged_last))
    with pytest.raises(CorruptCiphertextError, match="invalid pad"):
        decrypt_object(KEY, encryptor.initiate_metadata(), bytes(wire))
    forged_last[-1] = ord("3")  # claims 3 pad bytes, but the two before it are not '3'
    forged_last[-3:-1] = b"xy"
    wire[-16:] = KEY.new_cbc(wire[-32:-16]).encrypt(bytes(forged_last))
    with pytest.raises(CorruptCiphertextError, match="inconsistent pad"):
        decrypt_object(KEY, encryptor.initiate_metadata(), bytes(wire))


def test_body_longer_or_shorter_than_announced() -> None:
    meta, wire = _object()
    for body in (wire + bytes(16), wire[:-16]):
        decryptor = ObjectDecryptor(KEY, meta, ciphertext_length=len(wire), name="b/k")
        decryptor.update(body)
        with pytest.raises(
            CorruptCiphertextError, match=f"b/k: received {len(body)} encrypted bytes, expected"
        ):
            decryptor.finish()


@pytest.mark.parametrize("size", [0, 15, 16, 31, 33, 1000])
def test_impossible_ciphertext_sizes(size: int) -> None:
    meta, _ = _object()
    with pytest.raises(CorruptCiphertextError):
        ObjectDecryptor(KEY, meta, ciphertext_length=size)


def test_empty_unencrypted_object_passes_through_but_nothing_else_does() -> None:
    assert decrypt_object(KEY, {}, b"") == b""
    with pytest.raises(EncryptionMetadataError, match="not client-side encrypted"):
        ObjectDecryptor(KEY, {}, ciphertext_length=5)
    decryptor = ObjectDecryptor(KEY, {"content-type": "text/plain"})
    with pytest.raises(EncryptionMetadataError, match="not client-side encrypted"):
        decryptor.update(b"plain text")


def test_ranged_read_from_zero_checks_the_iv_prefix() -> None:
    meta, wire = _object()
    plan = plan_range(0, 99, len(wire))
    fetched = bytearray(wire[plan.fetch_start : plan.fetch_end + 1])
    fetched[0] ^= 1
    with pytest.raises(EncryptionMetadataError):
        ObjectDecryptor(KEY, meta, plan=plan).update(bytes(fetched))


@pytest.mark.parametrize(
    ("start", "end", "message"), [(-1, 5, ">= 0"), (10, 5, "before its start"), (2000, None, "past the end")]
)
def test_bad_ranges(start: int, end: int | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plan_range(start, end, 1024)


def test_range_header_of_the_documented_example() -> None:
    # Plaintext 100..5000 of a large object: our minimal form starts one block later than the SDK's 80.
    plan = plan_range(100, 5000, 1 << 20)
    assert plan.range_header == "bytes=96-5023"
    assert (plan.skip, plan.strip_pad, plan.limit) == (4, False, 4901)


def test_file_source_and_slices(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(DATA)
    whole = EncryptedFileBody(KEY, path)
    assert whole.plaintext_length == len(DATA)
    assert decrypt_object(KEY, whole.metadata(), b"".join(whole.chunks())) == DATA
    middle = EncryptedFileBody(KEY, FileSlice(str(path), offset=100, length=300))
    assert decrypt_object(KEY, middle.metadata(), b"".join(middle.chunks())) == DATA[100:400]


def test_file_that_shrinks_between_passes_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(DATA)
    body = EncryptedFileBody(KEY, path, cache_limit=0)
    body.content_md5()
    path.write_bytes(DATA[:500])
    with pytest.raises(SourceChangedError, match="ended 500 bytes early"):
        b"".join(body.chunks())


def test_small_bodies_send_the_bytes_they_hashed(tmp_path: Path) -> None:
    # Below the cache limit the ciphertext of the hashing pass is what is sent (and re-sent on retries),
    # so a file rewritten in between cannot make the body disagree with its Content-MD5.
    path = tmp_path / "f.bin"
    path.write_bytes(DATA)
    body = EncryptedFileBody(KEY, path)
    md5 = body.content_md5()
    path.write_bytes(os.urandom(len(DATA)))
    sent = b"".join(body.chunks())
    assert hashlib.md5(sent).digest() == md5
    assert decrypt_object(KEY, body.metadata(), sent) == DATA


def test_object_encryption_round_trips_through_metadata() -> None:
    meta, _ = _object()
    parsed = ObjectEncryption.from_metadata(meta)
    assert parsed is not None and parsed.metadata() == meta
    assert parsed.plaintext_length == len(DATA)
    assert ObjectEncryption.from_metadata({"content-type": "x"}) is None
