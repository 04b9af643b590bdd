"""Key files: the SDK's loading rule (strip ASCII whitespace, exactly 16 bytes), clear one-line errors
naming the file, a warning for group/world-readable files, secrets absent from every repr and message."""

from __future__ import annotations

import os
import pickle
import stat
import warnings
from pathlib import Path

import pytest

from ks3sync.crypto import EncryptionKey, InsecureKeyFileWarning, KeyFileError, KeyFileExistsError

SECRET = b"0123456789abcdef"


def _write(path: Path, content: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(content)
    path.chmod(mode)
    return path


@pytest.mark.parametrize("content", [SECRET, SECRET + b"\n", b"  \t" + SECRET + b"\r\n\x0b\x0c "])
def test_load_strips_surrounding_ascii_whitespace(tmp_path: Path, content: bytes) -> None:
    key = EncryptionKey.load(_write(tmp_path / "k", content))
    assert key == EncryptionKey(SECRET)
    assert key.fingerprint == "NDAzMmFmOGQ2MTAzNTEyMzkwNmU1OGUwNjcxNDBjYzU="


@pytest.mark.parametrize("content", [b"", b"\n", SECRET[:15], SECRET + b"x", b"0123456 789abcdef"])
def test_wrong_length_is_one_line_naming_the_file(tmp_path: Path, content: bytes) -> None:
    path = _write(tmp_path / "bad.key", content)
    with pytest.raises(KeyFileError) as info:
        EncryptionKey.load(path)
    message = str(info.value)
    assert str(path) in message and "16 bytes" in message and "\n" not in message


def test_huge_file_is_rejected_without_reading_it_all(tmp_path: Path) -> None:
    path = _write(tmp_path / "big", b"x" * 100_000)
    with pytest.raises(KeyFileError, match="more than 4096"):
        EncryptionKey.load(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match=r"encryption key file .*nope\.key does not exist"):
        EncryptionKey.load(tmp_path / "nope.key")


def test_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="directory|not a regular file"):
        EncryptionKey.load(tmp_path)


def test_fifo_is_an_error_not_a_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "k.fifo"
    os.mkfifo(fifo)
    with pytest.raises(KeyFileError, match="not a regular file"):
        EncryptionKey.load(fifo)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files regardless of mode")
def test_unreadable_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "k", SECRET, 0o000)
    with pytest.raises(KeyFileError, match="cannot read"):
        EncryptionKey.load(path)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_group_or_world_readable_warns_but_loads(tmp_path: Path, mode: int) -> None:
    path = _write(tmp_path / "k", SECRET, mode)
    with pytest.warns(InsecureKeyFileWarning, match=str(path)):
        key = EncryptionKey.load(path)
    assert key == EncryptionKey(SECRET)


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_private_file_does_not_warn(tmp_path: Path, mode: int) -> None:
    path = _write(tmp_path / "k", SECRET, mode)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        EncryptionKey.load(path)


def test_secret_never_shown(tmp_path: Path) -> None:
    key = EncryptionKey.load(_write(tmp_path / "k", SECRET))
    for text in (repr(key), str(key), f"{key}", repr([key])):
        assert "0123456789abcdef" not in text and SECRET.hex() not in text
    assert str(tmp_path / "k") in repr(key)
    with pytest.raises(TypeError):
        pickle.dumps(key)


def test_wrong_length_in_memory_does_not_echo_the_bytes() -> None:
    with pytest.raises(KeyFileError) as info:
        EncryptionKey(b"secret-ish-bytes-17")
    assert "secret-ish" not in str(info.value)


def test_equality_and_fingerprint_match() -> None:
    a, b = EncryptionKey(SECRET), EncryptionKey(b"fedcba9876543210")
    assert a == EncryptionKey(SECRET) and a != b
    assert a.matches_fingerprint(a.fingerprint) and not a.matches_fingerprint(b.fingerprint)
    assert not a.matches_fingerprint("nön-ascii")


def test_generate_avoids_keys_the_sdk_would_strip(monkeypatch: pytest.MonkeyPatch) -> None:
    draws = iter([b" " + b"a" * 15, b"a" * 15 + b"\n", b"\t" * 16, b"k" * 16])
    monkeypatch.setattr(os, "urandom", lambda n: next(draws))
    key = EncryptionKey.generate()
    assert key == EncryptionKey(b"k" * 16)


def test_generate_is_random() -> None:
    assert EncryptionKey.generate() != EncryptionKey.generate()


def test_write_new_file_is_0600_even_with_a_permissive_umask(tmp_path: Path) -> None:
    key = EncryptionKey.generate()
    path = tmp_path / "new.key"
    old = os.umask(0)
    try:
        key.write_new_file(path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.stat().st_size == 16
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert EncryptionKey.load(path) == key


def test_write_new_file_refuses_to_overwrite(tmp_path: Path) -> None:
    path = _write(tmp_path / "old.key", SECRET)
    with pytest.raises(KeyFileExistsError, match="already exists"):
        EncryptionKey.generate().write_new_file(path)
    assert path.read_bytes() == SECRET


def test_write_new_file_refuses_a_dangling_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    link = tmp_path / "link.key"
    link.symlink_to(target)
    with pytest.raises(KeyFileExistsError):
        EncryptionKey.generate().write_new_file(link)
    assert not target.exists()
