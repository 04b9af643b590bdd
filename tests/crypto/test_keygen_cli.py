"""`ks3sync keygen FILE`, through click's CliRunner and as a real process."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from ks3sync.cli.main import cli
from ks3sync.crypto import EncryptionKey


def test_keygen_writes_a_loadable_0600_key(tmp_path: Path) -> None:
    path = tmp_path / "a.key"
    result = CliRunner().invoke(cli, ["keygen", str(path)])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key_bytes = path.read_bytes()
    assert len(key_bytes) == 16 and key_bytes.strip() == key_bytes
    key = EncryptionKey.load(path)
    assert key.fingerprint in result.output
    assert key_bytes.hex() not in result.output


def test_keygen_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "a.key"
    path.write_bytes(b"0123456789abcdef")
    result = CliRunner().invoke(cli, ["keygen", str(path)])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0
    assert "already exists" in result.output and str(path) in result.output
    assert path.read_bytes() == b"0123456789abcdef"


def test_keygen_in_missing_directory_fails_cleanly(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["keygen", str(tmp_path / "no" / "such" / "k")])
    assert result.exit_code == 1
    assert "cannot create key file" in result.output and result.output.strip().count("\n") == 0


def test_keygen_as_a_process(tmp_path: Path) -> None:
    path = tmp_path / "p.key"
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    first = subprocess.run(
        [sys.executable, "-m", "ks3sync", "keygen", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert first.returncode == 0, first.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.stat().st_size == 16
    original = path.read_bytes()
    second = subprocess.run(
        [sys.executable, "-m", "ks3sync", "keygen", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert second.returncode == 2
    assert (
        second.stderr.strip()
        == f"ks3sync: error: {path} already exists; refusing to overwrite it with a new key"
    )
    assert path.read_bytes() == original
