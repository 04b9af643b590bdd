"""``MultipartEncryptor.seal_part`` (one AES pass into memory, hashing deferred to the sending thread)
must put on the wire exactly what ``next_part`` does: same bytes, MD5s, chain blocks and part metadata,
for any part layout, mixed with ``next_part`` and ``skip_part`` in one chain, and the golden vector."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ks3sync.crypto import EncryptedFileBody, EncryptionKey, MultipartEncryptor, ObjectDecryptor
from ks3sync.crypto.multipart import SEND_CHUNK, SealedPart
from tests.crypto.test_golden import LARGE
from tests.crypto.test_properties import multipart_layout

KEY = EncryptionKey(b"0123456789abcdef")
SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _cut(data: bytes, sizes: list[int]) -> list[bytes]:
    offsets = [sum(sizes[:i]) for i in range(len(sizes))]
    return [data[o : o + s] for o, s in zip(offsets, sizes, strict=True)]


@SETTINGS
@given(
    layout=multipart_layout(),
    iv=st.binary(min_size=16, max_size=16),
    sealed=st.lists(st.booleans(), min_size=1, max_size=60),
)
def test_sealed_parts_equal_streamed_parts(
    layout: tuple[bytes, list[int]], iv: bytes, sealed: list[bool]
) -> None:
    data, sizes = layout
    pieces = _cut(data, sizes)
    reference = MultipartEncryptor(KEY, iv)
    mixed = MultipartEncryptor(KEY, iv)
    wires = []
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        expected = reference.next_part(piece, last=last)
        # Any mix of the two forms continues one chain.
        part = (
            mixed.seal_part(piece, last=last)
            if sealed[index % len(sealed)]
            else mixed.next_part(piece, last=last)
        )
        wire = b"".join(part.chunks())
        assert wire == b"".join(expected.chunks())
        assert (part.length, part.plaintext_length) == (expected.length, expected.plaintext_length)
        assert part.content_md5() == expected.content_md5() == hashlib.md5(wire).digest()
        assert part.plaintext_md5 == expected.plaintext_md5 == hashlib.md5(piece).digest()
        assert part.chain_block == expected.chain_block
        assert part.metadata() == expected.metadata()
        assert b"".join(part.chunks()) == wire  # re-iterable from the first byte (retries)
        wires.append(wire)
    assert mixed.finished and reference.finished
    whole = b"".join(wires)
    if data:
        assert whole == b"".join(EncryptedFileBody(KEY, data, iv=iv).chunks())
    decryptor = ObjectDecryptor(KEY, mixed.initiate_metadata(), ciphertext_length=len(whole))
    assert decryptor.update(whole) + decryptor.finish() == data


def test_sealed_parts_match_the_golden_multipart_vector(
    golden_key: EncryptionKey, golden_iv: bytes, plain
) -> None:  # type: ignore[no-untyped-def]
    data = plain(20000)
    encryptor = MultipartEncryptor(golden_key, golden_iv)
    parts = [
        encryptor.seal_part(data[a:b], last=b == 20000) for a, b in [(0, 8192), (8192, 16384), (16384, 20000)]
    ]
    wires = [b"".join(part.chunks()) for part in parts]
    assert [len(w) for w in wires] == [8192 + 16, 8192, 3616 + 16]
    assert hashlib.sha256(b"".join(wires)).hexdigest() == LARGE[20000][1]


def test_sealed_part_hashes_once_on_any_thread_and_releases_the_plaintext() -> None:
    data = bytes(range(256)) * 4096  # 1 MiB: several send chunks
    part = MultipartEncryptor(KEY, b"\x00" * 16).seal_part(data, last=True)
    assert isinstance(part, SealedPart) and part.length > SEND_CHUNK
    with ThreadPoolExecutor(4) as pool:
        digests = set(pool.map(lambda _: part.hashed().content_md5(), range(8)))
    assert digests == {hashlib.md5(b"".join(part.chunks())).digest()}
    assert part.plaintext_md5 == hashlib.md5(data).digest()
    assert part._plaintext is None  # the plaintext buffer is not kept once hashed


def test_seal_part_refuses_what_next_part_refuses() -> None:
    encryptor = MultipartEncryptor(KEY)
    with pytest.raises(ValueError, match="multiple of 16"):
        encryptor.seal_part(b"x" * 17, last=False)
    encryptor.seal_part(b"x" * 17, last=True)
    with pytest.raises(ValueError, match="already produced"):
        encryptor.seal_part(b"x" * 16, last=True)
