"""Is the destination an exact mirror of the source? (key set + size + MD5 of every object)

Owns: the correctness check after each timed run. A run that fails it is reported FAILED, not timed.
Must not import: ks3sync or ks3sdk (the check uses the harness's own tiny client, bench.ks3mini).

MD5 of an object: its ETag when that is a plain 32-hex MD5 (the server computes it from the bytes it
stored); for multipart ETags (`…-N`) the object is downloaded and hashed. Encrypted objects are
downloaded, decrypted (SDK format: IV ‖ AES-128-CBC ‖ "123456789abcdefg" pad) and the plaintext hashed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path

from Crypto.Cipher import AES

from bench.ks3mini import Ks3Mini
from bench.workloads import tree_digest

_MD5 = re.compile(r"^[0-9a-f]{32}$")
_PAD = "123456789abcdefg"

Digest = Mapping[str, tuple[int, str]]  # relative path -> (size, md5 hex)


def check_bucket(
    mini: Ks3Mini, bucket: str, prefix: str, expected: Digest, *, encrypt_key: bytes | None = None
) -> str | None:
    """None when bucket/prefix mirrors `expected` exactly, else the first few differences."""
    base = f"{prefix}/" if prefix else ""
    listed = {o.key[len(base) :]: o for o in mini.list(bucket, base) if o.key.startswith(base)}
    problems = _key_set_problems(set(expected), set(listed))
    for rel in sorted(set(expected) & set(listed)):
        if len(problems) >= 5:
            break
        size, md5 = expected[rel]
        obj = listed[rel]
        if encrypt_key is not None:
            want = 16 + 16 * (size // 16 + 1) if size else 0
            if obj.size != want:
                problems.append(f"{rel}: ciphertext size {obj.size}, expected {want}")
                continue
            got = _decrypted_md5(mini, bucket, obj.key, encrypt_key) if size else hashlib.md5().hexdigest()
        else:
            if obj.size != size:
                problems.append(f"{rel}: size {obj.size}, expected {size}")
                continue
            got = obj.etag.lower() if _MD5.match(obj.etag.lower()) else _downloaded_md5(mini, bucket, obj.key)
        if got != md5:
            problems.append(f"{rel}: md5 {got}, expected {md5}")
    return "; ".join(problems) if problems else None


def check_folder(root: Path, expected: Digest) -> str | None:
    if not root.is_dir():
        return f"{root} does not exist"
    got = tree_digest(root)
    problems = _key_set_problems(set(expected), set(got))
    for rel in sorted(set(expected) & set(got)):
        if len(problems) >= 5:
            break
        if got[rel] != expected[rel]:
            problems.append(f"{rel}: (size, md5) {got[rel]}, expected {expected[rel]}")
    return "; ".join(problems) if problems else None


def _key_set_problems(expected: set[str], got: set[str]) -> list[str]:
    problems = []
    missing = sorted(expected - got)
    extra = sorted(got - expected)
    if missing:
        problems.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if extra:
        problems.append(f"{len(extra)} unexpected (e.g. {extra[0]})")
    return problems


def _downloaded_md5(mini: Ks3Mini, bucket: str, key: str) -> str:
    h = hashlib.md5()
    for chunk in mini.iter_get(bucket, key):
        h.update(chunk)
    return h.hexdigest()


def _decrypted_md5(mini: Ks3Mini, bucket: str, key: str, aes_key: bytes) -> str:
    h = hashlib.md5()
    buf = bytearray()
    cipher = None
    for chunk in mini.iter_get(bucket, key):
        buf += chunk
        if cipher is None:
            if len(buf) < 16:
                continue
            cipher = AES.new(aes_key, AES.MODE_CBC, iv=bytes(buf[:16]))
            del buf[:16]
        # Hold the last block back: it carries the pad, known only at the end of the stream.
        ready = (len(buf) // 16) * 16 - 16
        if ready > 0:
            h.update(cipher.decrypt(bytes(buf[:ready])))
            del buf[:ready]
    if cipher is None or len(buf) % 16 or not buf:
        return "undecryptable (truncated ciphertext)"
    tail = cipher.decrypt(bytes(buf))
    pad_char = chr(tail[-1])
    if pad_char not in _PAD:
        return "undecryptable (bad pad)"
    h.update(tail[: len(tail) - (_PAD.index(pad_char) + 1)])
    return h.hexdigest()
