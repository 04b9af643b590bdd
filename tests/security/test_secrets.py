"""Secrets stay secret (invariant 7): the access secret and the encryption key never appear in what
ks3sync writes or shows - stdout/stderr of `mirror` at -vv (a good run, a failing run, a restore),
exception messages and reprs, the journal file (and its WAL), the server's request log, `status` -
in any of the forms a leak would take (plain, hex, base64). Config and key files that others can read
produce a warning.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ks3sync.ks3 import Client, ClientConfig, KS3Error
from tests.reliability.helpers import bucket_contents, cli_env, client_for, make_tree, mirror, run_cli
from tests.reliability.service import Service
from tests.serverkit import ServerHandle


def _forms(secret: bytes) -> list[bytes]:
    """The spellings a leaked secret could take."""
    forms = [
        secret,
        secret.hex().encode(),
        secret.hex().upper().encode(),
        base64.b64encode(secret),
        base64.urlsafe_b64encode(secret),
        base64.b64encode(secret).rstrip(b"="),
    ]
    return [f for f in forms if len(f) >= 8]


def _assert_absent(haystack: bytes, secrets: list[bytes], where: str) -> None:
    for secret in secrets:
        for form in _forms(secret):
            assert form not in haystack, f"a secret ({form[:4]!r}...) leaked into {where}"


def _state_bytes(state_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(state_dir.rglob("*")) if p.is_file())


def _keygen(path: Path) -> bytes:
    made = subprocess.run(
        [sys.executable, "-m", "ks3sync", "keygen", str(path)], capture_output=True, check=False
    )
    assert made.returncode == 0, made.stderr
    return path.read_bytes().strip()


def _tag_subkey(key: bytes) -> bytes:
    """The integrity tag's HKDF-SHA256 subkey (docs/encryption.md §8), derived here independently."""
    prk = hmac.new(b"\x00" * 32, key, hashlib.sha256).digest()
    return hmac.new(prk, b"ks3sync integrity tag v1\x01", hashlib.sha256).digest()


def test_secrets_never_reach_output_journal_or_request_log(
    local_server: ServerHandle, bucket: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "keys" / "k.key"
    key_file.parent.mkdir()
    key = _keygen(key_file)
    secrets = [local_server.secret_key.encode(), key]
    src = tmp_path / "src"
    tree = make_tree(src, 71, files=6, big=1, big_size=500_000)
    state_dir = tmp_path / "state"
    state = state_dir / "journal.db"
    flags = (
        "--part-size",
        "100KiB",
        "--multipart-threshold",
        "400KiB",
        "--encrypt-key",
        str(key_file),
        "-vv",
    )
    outputs = []
    up = mirror(local_server, src, f"ks3://{bucket}/s/", state, *flags)
    assert up.returncode == 0, up.stderr[-2000:]
    outputs.append(up)
    (src / "f000.bin").write_bytes(b"changed")
    outputs.append(mirror(local_server, src, f"ks3://{bucket}/s/", state, *flags, "--json"))
    outputs.append(
        mirror(local_server, f"ks3://{bucket}/s/", tmp_path / "back", tmp_path / "down.db", *flags)
    )
    # a failing restore: an object whose content no longer matches its integrity tag (derived from the key)
    victim = "s/" + next(p for p in sorted(tree) if tree[p] and not p.endswith("f000.bin") and "big" not in p)
    with client_for(local_server) as client:
        info = client.head_object(bucket, victim)
        with client.get_object(bucket, victim) as got:
            damaged = bytearray(got.read())
        damaged[20] ^= 1
        client.put_object(
            bucket,
            victim,
            bytes(damaged),
            metadata={k: v for k, v in info.metadata.items() if k != "unencrypted-content-md5"},
        )
    tampered = mirror(local_server, f"ks3://{bucket}/s/", tmp_path / "back2", tmp_path / "down2.db", *flags)
    assert tampered.returncode == 1 and "integrity tag" in tampered.stderr, tampered.stderr[-2000:]
    outputs.append(tampered)
    secrets.append(_tag_subkey(key))
    # a failing run: the server refuses the signature, and the error is reported
    bad_env = cli_env(local_server, KS3_SECRET_KEY="wrong-" + local_server.secret_key)
    failing = run_cli(
        [
            sys.executable,
            "-m",
            "ks3sync",
            "mirror",
            str(src),
            f"ks3://{bucket}/s/",
            "--endpoint",
            local_server.endpoint,
            "--state-db",
            str(tmp_path / "bad.db"),
            "-vv",
        ],
        bad_env,
    )
    assert failing.returncode != 0
    outputs.append(failing)
    secrets.append(("wrong-" + local_server.secret_key).encode())
    for i, run in enumerate(outputs):
        _assert_absent(run.stdout.encode() + run.stderr.encode(), secrets, f"the output of run {i}")
    _assert_absent(_state_bytes(state_dir), secrets, "the journal")
    _assert_absent(local_server.request_log.read_bytes(), secrets, "the server's request log")


@pytest.mark.skipif(
    importlib.util.find_spec("ks3sync.cli.status") is None, reason="`ks3sync status` not built yet"
)
def test_status_output_holds_no_secret(local_server: ServerHandle, bucket: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src, 72, files=3)
    config = tmp_path / "ks3sync.yaml"
    config.write_text(
        f"endpoint: {local_server.endpoint}\ncredentials:\n  access_key: {local_server.access_key}\n"
        f"  secret_key: {local_server.secret_key}\nstate_dir: {tmp_path / 'state'}\n"
        f"syncs:\n  - name: s\n    source: {src}\n    target: ks3://{bucket}/st\n"
    )
    config.chmod(0o600)
    status = run_cli(
        [sys.executable, "-m", "ks3sync", "status", "--config", str(config)], cli_env(local_server)
    )
    _assert_absent(
        status.stdout.encode() + status.stderr.encode(), [local_server.secret_key.encode()], "status"
    )


def test_reprs_and_error_messages_hold_no_secret(
    local_server: ServerHandle, bucket: str, tmp_path: Path
) -> None:
    secret = "reprSecret/0123456789+abcdefghijk="
    config = ClientConfig(
        endpoint=local_server.endpoint, access_key=local_server.access_key, secret_key=secret
    )
    from ks3sync.crypto.key import EncryptionKey

    key = EncryptionKey.generate()
    raw = key._key  # the test needs the bytes it looks for
    texts = [repr(config), str(config), repr(key), str(key)]
    with Client(config) as client:
        texts.append(repr(client))
        with pytest.raises(KS3Error) as caught:
            client.put_object(bucket, "x", b"refused: wrong secret")
        texts += [str(caught.value), repr(caught.value)]
    _assert_absent("\n".join(texts).encode(), [secret.encode(), raw], "a repr or an exception message")


def test_world_readable_config_with_a_literal_secret_warns(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    config = tmp_path / "ks3sync.yaml"
    config.write_text(
        f"endpoint: http://127.0.0.1:9\ncredentials:\n  access_key: AKLTx\n  secret_key: literalSecret1\n"
        f"syncs:\n  - name: s\n    source: {src}\n    target: ks3://bucket/p\n"
    )
    args = [sys.executable, "-m", "ks3sync", "check-config", "--config", str(config)]
    config.chmod(0o644)
    loose = subprocess.run(args, capture_output=True, check=False, env=dict(os.environ))
    config.chmod(0o600)
    tight = subprocess.run(args, capture_output=True, check=False, env=dict(os.environ))
    assert loose.returncode == 0 and tight.returncode == 0
    assert b"warning" in loose.stderr and b"readable" in loose.stderr and b"secret_key" in loose.stderr
    assert b"warning" not in tight.stderr
    assert b"literalSecret1" not in loose.stdout + loose.stderr + tight.stdout + tight.stderr


def test_world_readable_key_file_warns(local_server: ServerHandle, bucket: str, tmp_path: Path) -> None:
    key_file = tmp_path / "k.key"
    key = _keygen(key_file)
    key_file.chmod(0o644)
    src = tmp_path / "src"
    make_tree(src, 73, files=2)
    run = mirror(local_server, src, f"ks3://{bucket}/kw/", tmp_path / "j.db", "--encrypt-key", str(key_file))
    assert run.returncode == 0, run.stderr[-2000:]
    assert "warning" in run.stderr and "readable" in run.stderr and str(key_file) in run.stderr
    _assert_absent(run.stderr.encode(), [key], "the warning")


def test_service_debug_log_status_and_state_hold_no_secret(server_factory: Any, tmp_path: Path) -> None:
    key_file = tmp_path / "svc.key"
    key = _keygen(key_file)
    server = server_factory()
    with client_for(server) as client:
        client.create_bucket("sec")
    service = Service(server, tmp_path, "sec", key_file=key_file)
    service.config.write_text(
        service.config.read_text().replace("syncs:", "logging:\n  level: debug\nsyncs:", 1)
    )
    try:
        service.start()
        make_tree(service.root, 74, files=5, big=1, big_size=500_000)
        service._wait(lambda: len(bucket_contents(server, "sec", "svc/")) == 6, 90, "the upload")
        status = run_cli(
            [sys.executable, "-m", "ks3sync", "status", "--config", str(service.config)], cli_env(server)
        )
        assert service.stop() == 0
    finally:
        if service.process is not None and service.process.poll() is None:
            service.process.kill()
            service.process.wait(10)
    secrets = [server.secret_key.encode(), key]
    log = service.log.read_bytes()
    assert b"DEBUG" in log or b"debug" in log, "debug logging was not on: the check proves little"
    _assert_absent(log, secrets, "the service's debug log")
    _assert_absent(status.stdout.encode() + status.stderr.encode(), secrets, "status")
    _assert_absent(_state_bytes(service.state), secrets, "the state dir (journal, status file)")
    _assert_absent(server.request_log.read_bytes(), secrets, "the request log")
