"""The official SDK's own crypto code, run in-process, as the oracle (both directions).

ks3sdk 1.18.0 encrypts through ``ks3.encryptFp.EncryptFp`` (a file wrapper read in 8192-byte blocks, as
its HTTP layer does) with a ``ks3.encryption.Crypts`` context whose ``first_iv`` we pin; it decrypts with
``Crypts.decrypt`` and strips the pad through ``Crypts.pad_dict``. Nothing of the SDK is imported by
ks3sync itself.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os

import ks3.encryptFp as sdk_encrypt_fp
import ks3.encryption as sdk_encryption  # the SDK is a test dependency: a missing SDK must fail, not skip
import pytest

from ks3sync.crypto import EncryptedFileBody, EncryptionKey, MultipartEncryptor, ObjectDecryptor

KEY_BYTES = b"0123456789abcdef"
KEY = EncryptionKey(KEY_BYTES)
SDK_READ = 8192  # the SDK's HTTP block size; its encryptor only works with 8192-byte reads


def _boundary_lengths() -> list[int]:
    lengths = {1, 2}
    for base in (16, 32, 8192, 16384, 65536, 3 * 8192):
        lengths.update({base - 1, base, base + 1, base - 16, base + 16})
    lengths.update({100_000, 262_145})
    return sorted(n for n in lengths if n > 0)


LENGTHS = _boundary_lengths()


def _crypts(iv: bytes) -> object:
    context = sdk_encryption.Crypts(KEY_BYTES)
    context.first_iv = iv
    return context


def _drain(fp: object) -> bytes:
    out = []
    while True:
        block = fp.read(SDK_READ)  # type: ignore[attr-defined]
        if not block:
            return b"".join(out)
        out.append(block)


def sdk_encrypt(data: bytes, iv: bytes) -> bytes:
    context = _crypts(iv)
    context.action_info = "put"  # type: ignore[attr-defined]
    return _drain(sdk_encrypt_fp.EncryptFp(io.BytesIO(data), context, "put"))


def sdk_encrypt_parts(parts: list[bytes], iv: bytes) -> list[bytes]:
    context = _crypts(iv)
    wires = []
    for index, part in enumerate(parts):
        first, last = index == 0, index == len(parts) - 1
        context.part_num, context.is_last_part, context.action_info = index + 1, last, "upload_part"  # type: ignore[attr-defined]
        fp = sdk_encrypt_fp.EncryptFp(
            io.BytesIO(part), context, "upload_part", isUploadFirstPart=first, isUploadLastPart=last
        )
        wires.append(_drain(fp))
    return wires


def sdk_decrypt(wire: bytes) -> bytes:
    context = sdk_encryption.Crypts(KEY_BYTES)
    full = context.decrypt(wire[16:], wire[:16])
    marker = chr(full[-1])
    pad = next(n for n, char in context.pad_dict.items() if char == marker)
    return full[:-pad]


def sdk_metadata(data: bytes, iv: bytes) -> dict[str, str]:
    """What the SDK sends with a PUT (its header code runs only with a network request, so the values are
    derived here from its documented definitions; the golden test pins them to captured bytes)."""
    return {
        "key": base64.b64encode(hashlib.md5(KEY_BYTES).hexdigest().encode()).decode(),
        "iv": base64.b64encode(iv).decode(),
        "unencrypted-content-length": str(len(data)),
        "unencrypted-content-md5": base64.b64encode(hashlib.md5(data).digest()).decode(),
    }


@pytest.mark.parametrize("n", LENGTHS)
def test_ks3sync_encryption_equals_the_sdks(n: int) -> None:
    data, iv = os.urandom(n), os.urandom(16)
    ours = EncryptedFileBody(KEY, data, iv=iv)
    wire = b"".join(ours.chunks())
    assert wire == sdk_encrypt(data, iv)
    assert ours.metadata() == sdk_metadata(data, iv)


@pytest.mark.parametrize("n", LENGTHS)
def test_sdk_decrypts_ks3sync_objects(n: int) -> None:
    data = os.urandom(n)
    assert sdk_decrypt(b"".join(EncryptedFileBody(KEY, data).chunks())) == data


@pytest.mark.parametrize("n", LENGTHS)
def test_ks3sync_decrypts_sdk_objects(n: int) -> None:
    data, iv = os.urandom(n), os.urandom(16)
    wire = sdk_encrypt(data, iv)
    # Feed in the SDK's own 8192-byte blocks and in odd sizes.
    for step in (SDK_READ, 1000, 7):
        decryptor = ObjectDecryptor(KEY, sdk_metadata(data, iv), ciphertext_length=len(wire))
        out = [decryptor.update(wire[i : i + step]) for i in range(0, len(wire), step)]
        assert b"".join(out) + decryptor.finish() == data


@pytest.mark.parametrize(
    "part_sizes",
    [
        [8192, 1],
        [8192, 8192],
        [16384, 8192, 8191],
        [8192, 8192, 8193],
        [5 * 8192, 3 * 8192, 100],
        [16, 16, 1],
    ],
)
def test_multipart_parts_equal_the_sdks(part_sizes: list[int]) -> None:
    data, iv = os.urandom(sum(part_sizes)), os.urandom(16)
    offsets = [sum(part_sizes[:i]) for i in range(len(part_sizes))]
    plain_parts = [data[o : o + s] for o, s in zip(offsets, part_sizes, strict=True)]
    encryptor = MultipartEncryptor(KEY, iv)
    ours = [
        b"".join(encryptor.next_part(p, last=i == len(plain_parts) - 1).chunks())
        for i, p in enumerate(plain_parts)
    ]
    sdk = sdk_encrypt_parts(plain_parts, iv)
    assert [len(w) for w in ours] == [len(w) for w in sdk]
    assert ours == sdk
    decryptor = ObjectDecryptor(KEY, encryptor.initiate_metadata())
    assert decryptor.update(b"".join(sdk)) + decryptor.finish() == data
