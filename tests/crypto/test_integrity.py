"""ks3sync's keyed integrity tag (docs/encryption.md §8): the derivation and message layout as written
down (recomputed here with the standard library only, so the format cannot drift unnoticed), what the
tag binds (content, length, object key, encryption key), and ObjectDecryptor's checks in finish():
a flipped byte in a multipart object or in a single PUT without its plaintext MD5 fails; a tagged
object is never decrypted unchecked; an untagged (SDK-written) one passes as "untagged" unless a tag
is required; a ranged read refuses to pretend it was checked.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct

import pytest

from ks3sync.crypto import (
    EncryptedFileBody,
    EncryptionKey,
    IntegrityTagError,
    MissingIntegrityTagError,
    MultipartEncryptor,
    ObjectDecryptor,
    PlaintextMismatchError,
    decrypt_object,
    plan_range,
    stored_tag,
    tag_metadata,
    tag_value,
    verify_tag,
)

GOLDEN_KEY = b"0123456789abcdef"  # ks3-protocol.md §8.4's key
KEY = EncryptionKey(GOLDEN_KEY)
OTHER = EncryptionKey(b"fedcba9876543210")
OBJECT_KEY = "backups/docs/a.txt"
DATA = bytes(i % 251 for i in range(5000))


def _hkdf_sha256(ikm: bytes, info: bytes, length: int = 32) -> bytes:
    """RFC 5869 with an empty salt (= HashLen zero bytes), independently of pycryptodome."""
    prk = hmac.new(b"\x00" * 32, ikm, hashlib.sha256).digest()
    okm, block, counter = b"", b"", 1
    while len(okm) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
        counter += 1
    return okm[:length]


def _documented_tag(key: bytes, object_key: str, data: bytes) -> str:
    subkey = _hkdf_sha256(key, b"ks3sync integrity tag v1")
    name = object_key.encode()
    message = (
        b"ks3sync-tag-v1\x00"
        + struct.pack(">I", len(name))
        + name
        + struct.pack(">Q", len(data))
        + hashlib.sha256(data).digest()
    )
    return "v1:" + base64.b64encode(hmac.new(subkey, message, hashlib.sha256).digest()).decode()


def _tagged_single_put(data: bytes, object_key: str = OBJECT_KEY) -> tuple[dict[str, str], bytes]:
    body = EncryptedFileBody(KEY, data)
    meta = body.metadata() | tag_metadata(KEY, object_key, len(data), hashlib.sha256(data).digest())
    return meta, b"".join(body.chunks())


def _tagged_multipart(data: bytes, part: int = 1024) -> tuple[dict[str, str], bytes]:
    encryptor = MultipartEncryptor(KEY)
    offsets = list(range(0, len(data), part))
    wire = b"".join(
        b"".join(encryptor.next_part(data[o : o + part], last=o + part >= len(data)).chunks())
        for o in offsets
    )
    meta = encryptor.initiate_metadata() | tag_metadata(
        KEY, OBJECT_KEY, len(data), hashlib.sha256(data).digest()
    )
    return meta, wire


def test_the_tag_is_the_documented_formula() -> None:
    for object_key, data in [(OBJECT_KEY, DATA), ("ünï/c d/é.bin", b""), ("k", b"x" * 17)]:
        expected = _documented_tag(GOLDEN_KEY, object_key, data)
        assert tag_value(KEY, object_key, len(data), hashlib.sha256(data).digest()) == expected


def test_golden_tag_vector() -> None:
    # docs/encryption.md §8 quotes this vector: key 0123456789abcdef, object key p/a.txt, plaintext "abc".
    golden = "v1:Q8K54WgCjp+/psg3EtCAkHVHZGJ3xFnTqpJd/xiEfaU="
    assert _documented_tag(GOLDEN_KEY, "p/a.txt", b"abc") == golden
    assert tag_value(KEY, "p/a.txt", 3, hashlib.sha256(b"abc").digest()) == golden


def test_the_tag_is_not_an_hmac_under_the_raw_key() -> None:
    # A proper KDF, never the AES key itself as the MAC key.
    digest = hashlib.sha256(DATA).digest()
    raw = hmac.new(GOLDEN_KEY, b"ks3sync-tag-v1\x00", hashlib.sha256).digest()
    assert base64.b64encode(raw).decode() not in tag_value(KEY, OBJECT_KEY, len(DATA), digest)
    assert KEY.keyed_digest(b"a", b"m") != KEY.keyed_digest(b"b", b"m")


@pytest.mark.parametrize("change", ["object key", "length", "content", "encryption key"])
def test_a_tag_cannot_be_moved_to_another_key_content_or_length(change: str) -> None:
    digest = hashlib.sha256(DATA).digest()
    meta = tag_metadata(KEY, OBJECT_KEY, len(DATA), digest)
    kwargs = {"object_key": OBJECT_KEY, "plaintext_length": len(DATA), "plaintext_sha256": digest}
    key = KEY
    if change == "object key":
        kwargs["object_key"] = "backups/docs/b.txt"
    elif change == "length":
        kwargs["plaintext_length"] = len(DATA) + 1
    elif change == "content":
        kwargs["plaintext_sha256"] = hashlib.sha256(DATA + b"!").digest()
    else:
        key = OTHER
    assert verify_tag(KEY, meta, object_key=OBJECT_KEY, plaintext_length=len(DATA), plaintext_sha256=digest)
    with pytest.raises(IntegrityTagError, match="does not match its integrity tag"):
        verify_tag(key, meta, name="obj", **kwargs)  # type: ignore[arg-type]


def test_untagged_unknown_version_and_header_forms() -> None:
    digest = hashlib.sha256(DATA).digest()
    args = {"object_key": OBJECT_KEY, "plaintext_length": len(DATA), "plaintext_sha256": digest}
    assert verify_tag(KEY, {}, **args) is False  # type: ignore[arg-type]
    value = tag_value(KEY, OBJECT_KEY, len(DATA), digest)
    assert verify_tag(KEY, {"X-Kss-Meta-Ks3sync-Tag": value}, **args)  # type: ignore[arg-type]
    assert stored_tag({"x-kss-meta-ks3sync-tag": value}) == value
    with pytest.raises(IntegrityTagError, match="not a v1 tag"):
        verify_tag(KEY, {"ks3sync-tag": "v2:" + value[3:]}, **args)  # type: ignore[arg-type]
    with pytest.raises(IntegrityTagError):
        verify_tag(KEY, {"ks3sync-tag": "v1:\u00b2\u00b2"}, **args)  # type: ignore[arg-type]


def test_error_messages_show_no_tag_and_no_key() -> None:
    meta = tag_metadata(KEY, OBJECT_KEY, len(DATA), hashlib.sha256(DATA).digest())
    with pytest.raises(IntegrityTagError) as caught:
        verify_tag(
            KEY,
            meta,
            object_key="other",
            plaintext_length=len(DATA),
            plaintext_sha256=hashlib.sha256(DATA).digest(),
            name="obj",
        )
    text = str(caught.value)
    assert meta["ks3sync-tag"] not in text and meta["ks3sync-tag"][3:20] not in text
    assert GOLDEN_KEY.decode() not in text and GOLDEN_KEY.hex() not in text


# --- ObjectDecryptor ------------------------------------------------------------------------------


def _decrypt(meta: dict[str, str], wire: bytes, **kw: object) -> tuple[bytes, str]:
    decryptor = ObjectDecryptor(KEY, meta, ciphertext_length=len(wire), name="obj", **kw)  # type: ignore[arg-type]
    out = b"".join(decryptor.update(wire[i : i + 999]) for i in range(0, len(wire), 999)) + decryptor.finish()
    return out, decryptor.integrity


class _CountingSha256:
    """A caller-supplied hash object (the restore passes one that hashes on its part pool)."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self.fed = 0

    def update(self, data: bytes) -> None:
        self.fed += len(data)
        self._sha.update(data)

    def digest(self) -> bytes:
        return self._sha.digest()


def test_tagged_objects_verify_with_their_own_or_a_given_hash_object() -> None:
    for meta, wire in (_tagged_single_put(DATA), _tagged_multipart(DATA)):
        assert _decrypt(meta, wire, object_key=OBJECT_KEY) == (DATA, "verified")
        given = _CountingSha256()
        assert _decrypt(meta, wire, object_key=OBJECT_KEY, plaintext_sha256=given) == (DATA, "verified")
        assert given.fed == len(DATA)
        with pytest.raises(IntegrityTagError):  # a hash object that is not SHA-256 can only fail
            _decrypt(meta, wire, object_key=OBJECT_KEY, plaintext_sha256=hashlib.sha3_256())


@pytest.mark.parametrize("offset", [16, 40, 2000, 4000])
def test_a_flipped_byte_in_a_tagged_multipart_object_fails(offset: int) -> None:
    # Multipart objects record no plaintext MD5: the pad check alone misses a flip away from the end.
    meta, wire = _tagged_multipart(DATA)
    damaged = bytearray(wire)
    damaged[offset] ^= 0x01
    untagged = {k: v for k, v in meta.items() if k != "ks3sync-tag"}
    assert _decrypt(untagged, bytes(damaged))[0] != DATA  # what the SDK format alone lets through
    with pytest.raises(IntegrityTagError, match="obj: decrypted content does not match its integrity tag"):
        _decrypt(meta, bytes(damaged), object_key=OBJECT_KEY)


def test_a_flipped_byte_in_a_single_put_without_its_md5_fails() -> None:
    meta, wire = _tagged_single_put(DATA)
    del meta["unencrypted-content-md5"]
    damaged = bytearray(wire)
    damaged[100] ^= 0x80
    with pytest.raises(IntegrityTagError):
        _decrypt(meta, bytes(damaged), object_key=OBJECT_KEY)
    with pytest.raises(PlaintextMismatchError):  # the tag error is a PlaintextMismatchError for callers
        _decrypt(meta, bytes(damaged), object_key=OBJECT_KEY)


def test_a_tag_moved_to_another_object_key_fails() -> None:
    meta, wire = _tagged_multipart(DATA)
    with pytest.raises(IntegrityTagError):
        _decrypt(meta, wire, object_key="backups/docs/other.txt")


def test_a_tagged_object_is_never_decrypted_unchecked() -> None:
    meta, wire = _tagged_single_put(DATA)
    with pytest.raises(ValueError, match="pass object_key"):
        _decrypt(meta, wire)
    with pytest.raises(ValueError, match="pass object_key"):
        decrypt_object(KEY, meta, wire)
    assert decrypt_object(KEY, meta, wire, object_key=OBJECT_KEY) == DATA


def test_untagged_objects_pass_as_untagged_unless_a_tag_is_required() -> None:
    body = EncryptedFileBody(KEY, DATA)  # what the SDK writes: no tag
    wire = b"".join(body.chunks())
    assert _decrypt(body.metadata(), wire, object_key=OBJECT_KEY) == (DATA, "untagged")
    with pytest.raises(MissingIntegrityTagError, match="obj: no ks3sync integrity tag"):
        # Refused at construction, before any byte is decrypted.
        ObjectDecryptor(
            KEY,
            body.metadata(),
            ciphertext_length=len(wire),
            name="obj",
            object_key=OBJECT_KEY,
            require_tag=True,
        )


def test_empty_objects_are_tagged_too() -> None:
    tagged = tag_metadata(KEY, OBJECT_KEY, 0, hashlib.sha256(b"").digest())
    assert _decrypt(tagged, b"", object_key=OBJECT_KEY) == (b"", "verified")
    assert _decrypt({}, b"", object_key=OBJECT_KEY) == (b"", "untagged")
    # An empty object put over a file's object carries no tag that fits another object key.
    with pytest.raises(IntegrityTagError):
        _decrypt(tagged, b"", object_key="elsewhere")
    with pytest.raises(MissingIntegrityTagError):
        ObjectDecryptor(KEY, {}, ciphertext_length=0, name="obj", object_key=OBJECT_KEY, require_tag=True)


def test_a_ranged_read_is_never_called_verified() -> None:
    meta, wire = _tagged_single_put(DATA)
    plan = plan_range(10, 99, len(wire))
    with pytest.raises(ValueError, match="ranged read"):
        ObjectDecryptor(KEY, meta, ciphertext_length=len(wire), plan=plan, require_tag=True)
    decryptor = ObjectDecryptor(KEY, meta, ciphertext_length=len(wire), plan=plan)
    fetched = wire[plan.fetch_start : plan.fetch_end + 1]
    assert decryptor.update(fetched) + decryptor.finish() == DATA[10:100]
    assert decryptor.integrity == "unchecked"
