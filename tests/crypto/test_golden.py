"""Golden vectors captured from ks3sdk 1.18.0 on the wire (ks3-protocol.md §8.4): key
"0123456789abcdef", IV 00..0f, plaintext P(n) = bytes i mod 256."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable

import pytest

from ks3sync.crypto import EncryptedFileBody, EncryptionKey, MultipartEncryptor, ciphertext_length

IV_HEX = "000102030405060708090a0b0c0d0e0f"

# n -> full ciphertext hex (small n) or (sha256 of body, last 32 bytes hex or None)
SMALL = {
    1: IV_HEX + "0fc33aa59b8696e8f96046f7365b07d1",
    15: IV_HEX + "c8d742a522846357a264671e9b2cb496",
    16: IV_HEX + "0b9b15da4b44a0f5151dcfc4c01f35d5" + "443a7e8d4aa2940dbadbc7c0a8225f2d",
    17: IV_HEX + "0b9b15da4b44a0f5151dcfc4c01f35d5" + "d5d7421752c2f27f9a516c94c9c244a0",
}
LARGE = {
    8191: (
        8208,
        "76751c8551876eb73541d64e73c7ec51ab4b72e30127f8bc231d59d4e80a8caa",
        "cba345d9e673826edcc6f0a57940086330bec661a06d1dc50f70a8d4b79a1fc2",
    ),
    8192: (
        8224,
        "cdb57df45dda2b96856803d4d04b629203e70fe7d847c628c597e59192a7954a",
        "9bde39f86e11d6c9b5bb450731960880696ff6881483469178dc4c7dbd3e91f1",
    ),
    8193: (
        8224,
        "edb3c488f5cb8901c35da838d27b8d33ab4dcc9614cce7ab73760441771db299",
        "9bde39f86e11d6c9b5bb45073196088073ebc15821acb59428a9cc14ae50d689",
    ),
    20000: (20032, "8df012c07a188a35de5a6c6d5cb9f9bc5b0fa8848bf35ef024392eb4ace76eaa", None),
}


def _encrypt(
    key: EncryptionKey, iv: bytes, data: bytes, chunk_size: int = 1024
) -> tuple[EncryptedFileBody, bytes]:
    body = EncryptedFileBody(key, data, iv=iv, chunk_size=chunk_size)
    wire = b"".join(body.chunks())
    assert len(wire) == body.length == ciphertext_length(len(data))
    assert body.content_md5() == hashlib.md5(wire).digest()
    return body, wire


@pytest.mark.parametrize("n", sorted(SMALL))
def test_small_vectors(
    n: int, golden_key: EncryptionKey, golden_iv: bytes, plain: Callable[[int], bytes]
) -> None:
    _, wire = _encrypt(golden_key, golden_iv, plain(n))
    assert wire.hex() == SMALL[n]


@pytest.mark.parametrize("n", sorted(LARGE))
@pytest.mark.parametrize("chunk_size", [16, 8192, 65536])
def test_large_vectors(
    n: int, chunk_size: int, golden_key: EncryptionKey, golden_iv: bytes, plain: Callable[[int], bytes]
) -> None:
    size, sha, last32 = LARGE[n]
    _, wire = _encrypt(golden_key, golden_iv, plain(n), chunk_size)
    assert len(wire) == size
    assert hashlib.sha256(wire).hexdigest() == sha
    if last32 is not None:
        assert wire[-32:].hex() == last32


def test_empty_is_stored_unencrypted(golden_key: EncryptionKey, golden_iv: bytes) -> None:
    body = EncryptedFileBody(golden_key, b"", iv=golden_iv)
    assert body.length == 0
    assert list(body.chunks()) == []
    assert base64.b64encode(body.content_md5()).decode() == "1B2M2Y8AsgTpgAmY7PhCfg=="
    assert body.encryption is None
    assert body.metadata() == {} and body.headers() == {}


def test_headers_for_one_byte(
    golden_key: EncryptionKey, golden_iv: bytes, plain: Callable[[int], bytes]
) -> None:
    body, _ = _encrypt(golden_key, golden_iv, plain(1))
    assert body.headers() == {
        "x-kss-meta-key": "NDAzMmFmOGQ2MTAzNTEyMzkwNmU1OGUwNjcxNDBjYzU=",
        "x-kss-meta-iv": "AAECAwQFBgcICQoLDA0ODw==",
        "x-kss-meta-unencrypted-content-length": "1",
        "x-kss-meta-unencrypted-content-md5": "k7iFrf4NoInN9jSQT9WfcQ==",
    }
    assert body.metadata()["key"] == "NDAzMmFmOGQ2MTAzNTEyMzkwNmU1OGUwNjcxNDBjYzU="
    assert base64.b64encode(body.content_md5()).decode() == "fq3q/ONvBi2f/RLabNgGGQ=="
    assert body.length == 32


def test_pad_blocks_use_the_sdk_alphabet(
    golden_key: EncryptionKey, golden_iv: bytes, plain: Callable[[int], bytes]
) -> None:
    # n=16: the pad is a whole block of 'g'; n=1: fifteen 'f' (PKCS#7 would use 0x10 / 0x0f).
    for n, pad in ((16, b"g" * 16), (1, b"f" * 15)):
        _, wire = _encrypt(golden_key, golden_iv, plain(n))
        last = golden_key.new_cbc(wire[-32:-16]).decrypt(wire[-16:])
        assert last.endswith(pad)


def test_multipart_parts_concatenate_to_the_single_put_vector(
    golden_key: EncryptionKey, golden_iv: bytes, plain: Callable[[int], bytes]
) -> None:
    data = plain(20000)
    encryptor = MultipartEncryptor(golden_key, golden_iv)
    assert encryptor.initiate_headers() == {
        "x-kss-meta-key": "NDAzMmFmOGQ2MTAzNTEyMzkwNmU1OGUwNjcxNDBjYzU=",
        "x-kss-meta-iv": "AAECAwQFBgcICQoLDA0ODw==",
    }
    cuts = [(0, 8192), (8192, 16384), (16384, 20000)]
    parts = [encryptor.next_part(data[a:b], last=b == 20000) for a, b in cuts]
    wires = [b"".join(part.chunks()) for part in parts]
    # Wire part sizes: part 1 = plain + 16, middle = plain, last = plain + pad.
    assert [len(w) for w in wires] == [8192 + 16, 8192, 3616 + 16]
    assert [p.length for p in parts] == [len(w) for w in wires]
    assert hashlib.sha256(b"".join(wires)).hexdigest() == LARGE[20000][1]
    for part, wire in zip(parts, wires, strict=True):
        assert part.content_md5() == hashlib.md5(wire).digest()
        assert part.chain_block == wire[-16:]
    last = parts[-1]
    assert last.headers() == {
        "x-kss-meta-unencrypted-content-length": "3616",
        "x-kss-meta-unencrypted-content-md5": base64.b64encode(hashlib.md5(data[16384:]).digest()).decode(),
    }
    assert encryptor.finished


@pytest.mark.parametrize("n", sorted(LARGE))
@pytest.mark.parametrize("cache_limit", [0, 1 << 20])
def test_large_vectors_hash_first_then_send(
    n: int, cache_limit: int, golden_key: EncryptionKey, golden_iv: bytes, plain: Callable[[int], bytes]
) -> None:
    # The transfer order: hashing pass first, then the sending pass, which either re-encrypts (bodies over
    # the cache limit) or sends the ciphertext kept by the hashing pass.
    size, sha, _ = LARGE[n]
    body = EncryptedFileBody(golden_key, plain(n), iv=golden_iv, chunk_size=64, cache_limit=cache_limit)
    md5 = body.content_md5()
    wire = b"".join(body.chunks())
    assert hashlib.sha256(wire).hexdigest() == sha and len(wire) == size
    assert md5 == hashlib.md5(wire).digest()
    assert (
        body.metadata()["unencrypted-content-md5"]
        == base64.b64encode(hashlib.md5(plain(n)).digest()).decode()
    )
