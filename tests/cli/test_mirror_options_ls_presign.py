"""More of the mirror command line over local-server (--encrypt-key, --backup-prefix, --storage-class,
--exclude, --config), plus `ks3sync ls` and `ks3sync presign`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner

from ks3sync.cli.main import cli
from ks3sync.crypto.decrypt import decrypt_object
from ks3sync.crypto.key import EncryptionKey
from ks3sync.ks3 import Client, ClientConfig

KIB = 1024


def run(server: Any, *args: str, **env: str) -> Any:
    full_env = {"KS3_ACCESS_KEY": server.access_key, "KS3_SECRET_KEY": server.secret_key, **env}
    return CliRunner().invoke(cli, list(args), env=full_env, catch_exceptions=False)


def client_for(server: Any) -> Client:
    return Client(
        ClientConfig(endpoint=server.endpoint, access_key=server.access_key, secret_key=server.secret_key)
    )


def test_encrypted_mirror_round_trip(local_server: Any, bucket: str, tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_bytes(b"0123456789abcdef")
    key_file.chmod(0o600)
    src = tmp_path / "src"
    src.mkdir()
    files = {"small.txt": b"top secret", "empty": b"", "big.bin": os.urandom(350 * KIB + 9)}
    for name, data in files.items():
        (src / name).write_bytes(data)
    common = [
        "--endpoint",
        local_server.endpoint,
        "--state-db",
        str(tmp_path / "j.db"),
        "--encrypt-key",
        str(key_file),
        "--part-size",
        "100KiB",
        "--multipart-threshold",
        "200KiB",
    ]
    up = run(local_server, "mirror", str(src), f"ks3://{bucket}/enc/", *common)
    assert up.exit_code == 0, up.stderr
    key = EncryptionKey(b"0123456789abcdef")
    with client_for(local_server) as client:
        for name, data in files.items():
            with client.get_object(bucket, f"enc/{name}") as response:
                stored = response.read()
                if data:
                    assert stored != data
                    assert (
                        decrypt_object(key, response.info.metadata, stored, object_key=f"enc/{name}") == data
                    )
                else:
                    assert stored == b""
    again = run(local_server, "mirror", str(src), f"ks3://{bucket}/enc/", *common)
    assert again.exit_code == 0 and "unchanged 3" in again.stderr and "uploaded 0" in again.stderr
    restore = tmp_path / "restore"
    down = run(local_server, "mirror", f"ks3://{bucket}/enc/", str(restore), *common)
    assert down.exit_code == 0, down.stderr
    assert {p.name: p.read_bytes() for p in restore.iterdir()} == files
    plain = run(
        local_server,
        "mirror",
        f"ks3://{bucket}/enc/",
        str(tmp_path / "nokey"),
        "--endpoint",
        local_server.endpoint,
        "--state-db",
        str(tmp_path / "j2.db"),
    )
    assert plain.exit_code == 1 and "--encrypt-key" in plain.stderr


def test_backup_prefix_storage_class_and_ls(local_server: Any, bucket: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "keep.txt").write_bytes(b"v1")
    (src / "drop.txt").write_bytes(b"bye")
    (src / "third.txt").write_bytes(b"3")
    common = ["--endpoint", local_server.endpoint, "--state-db", str(tmp_path / "j.db")]
    assert (
        run(
            local_server,
            "mirror",
            str(src),
            f"ks3://{bucket}/data/",
            "--storage-class",
            "standard_ia",
            *common,
        ).exit_code
        == 0
    )
    (src / "keep.txt").write_bytes(b"version 2")
    (src / "drop.txt").unlink()
    result = run(
        local_server,
        "mirror",
        str(src),
        f"ks3://{bucket}/data/",
        "--delete",
        "--backup-prefix",
        "backup/",
        *common,
    )
    assert result.exit_code == 0, result.stderr
    with client_for(local_server) as client:
        assert client.get_object(bucket, "backup/keep.txt").read() == b"v1"
        assert client.get_object(bucket, "backup/drop.txt").read() == b"bye"
        assert client.get_object(bucket, "data/keep.txt").read() == b"version 2"
        assert client.head_object(bucket, "data/third.txt").storage_class == "STANDARD_IA"

    listing = run(local_server, "ls", f"ks3://{bucket}/data/", "--endpoint", local_server.endpoint)
    assert listing.exit_code == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert [line.split()[-1] for line in lines] == ["data/keep.txt", "data/third.txt"]
    assert "STANDARD_IA" in lines[1] and lines[0].split()[-2] == "9"
    top = run(local_server, "ls", f"ks3://{bucket}", "--endpoint", local_server.endpoint)
    assert [line.split() for line in top.stdout.splitlines()] == [["PRE", "backup/"], ["PRE", "data/"]]
    recursive = run(local_server, "ls", f"ks3://{bucket}", "-r", "--endpoint", local_server.endpoint)
    assert len(recursive.stdout.splitlines()) == 4 and "4 objects" in recursive.stderr
    missing = run(local_server, "ls", "ks3://no-such-bucket-zz", "--endpoint", local_server.endpoint)
    assert missing.exit_code == 2 and "no-such-bucket-zz" in missing.stderr


def test_presign_get_and_put(local_server: Any, bucket: str) -> None:
    with client_for(local_server) as client:
        client.put_object(bucket, "shared/a b.txt", b"shared content")
    get = run(
        local_server,
        "presign",
        f"ks3://{bucket}/shared/a b.txt",
        "--expires",
        "10m",
        "--endpoint",
        local_server.endpoint,
    )
    assert get.exit_code == 0, get.stderr
    url = get.stdout.strip()
    assert local_server.secret_key not in url
    assert httpx.get(url).content == b"shared content"
    put = run(local_server, "presign", f"ks3://{bucket}/up.bin", "--put", "--endpoint", local_server.endpoint)
    assert put.exit_code == 0
    assert httpx.put(put.stdout.strip(), content=b"uploaded").status_code == 200
    with client_for(local_server) as client:
        assert client.get_object(bucket, "up.bin").read() == b"uploaded"
    bad = run(
        local_server, "presign", f"ks3://{bucket}/x", "--expires", "soon", "--endpoint", local_server.endpoint
    )
    assert bad.exit_code == 2 and "--expires" in bad.stderr
    nokey = run(local_server, "presign", f"ks3://{bucket}", "--endpoint", local_server.endpoint)
    assert nokey.exit_code == 2


def test_config_file_supplies_endpoint_credentials_and_sync_settings(
    local_server: Any, bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"a")
    (src / "skip.log").write_bytes(b"log")
    config = tmp_path / "ks3sync.yaml"
    config.write_text(
        f"endpoint: {local_server.endpoint}\n"
        f"credentials:\n  access_key: ${{MY_AK}}\n  secret_key: ${{MY_SK}}\n"
        f"state_dir: {tmp_path / 'state'}\n"
        f"syncs:\n  - name: docs\n    source: {src}\n    target: ks3://{bucket}/cfg\n"
        f"    excludes: ['*.log']\n"
    )
    result = CliRunner().invoke(
        cli,
        ["mirror", str(src), f"ks3://{bucket}/cfg", "--config", str(config)],
        env={
            "MY_AK": local_server.access_key,
            "MY_SK": local_server.secret_key,
            "KS3_ACCESS_KEY": None,
            "KS3_SECRET_KEY": None,
        },
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.stderr
    with client_for(local_server) as client:
        assert [o.key for o in client.iter_objects(bucket, prefix="cfg/")] == ["cfg/a.txt"]
    assert (tmp_path / "state" / "journal.db").exists()


def test_unknown_stale_uploads_under_the_prefix_are_aborted(
    local_server: Any, bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_bytes(b"a")
    with client_for(local_server) as client:
        orphan = client.initiate_multipart(bucket, "st/orphan.bin")
        elsewhere = client.initiate_multipart(bucket, "other/keep.bin")
    common = ["--endpoint", local_server.endpoint, "--state-db", str(tmp_path / "j.db")]
    young = run(local_server, "mirror", str(src), f"ks3://{bucket}/st/", *common)
    assert young.exit_code == 0
    with client_for(local_server) as client:
        ids = {u.upload_id for u in client.iter_multipart_uploads(bucket)}
        assert ids == {orphan, elsewhere}  # younger than the 24 h grace: left alone
    old = run(local_server, "mirror", str(src), f"ks3://{bucket}/st/", "--abort-stale-after", "0s", *common)
    assert old.exit_code == 0, old.stderr
    with client_for(local_server) as client:
        assert {u.upload_id for u in client.iter_multipart_uploads(bucket)} == {elsewhere}


def test_excludes_ignore_file_and_scan_problems(local_server: Any, bucket: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "build").mkdir(parents=True)
    (src / "keep.txt").write_bytes(b"k")
    (src / "debug.log").write_bytes(b"log")
    (src / "build" / "out.o").write_bytes(b"obj")
    (src / "notes.tmp").write_bytes(b"tmp")
    (src / ".ks3ignore").write_text("*.tmp\n")
    patterns = tmp_path / "patterns"
    patterns.write_text("build/\n")
    os.mkfifo(src / "a-fifo")
    common = ["--endpoint", local_server.endpoint, "--state-db", str(tmp_path / "j.db")]
    result = run(
        local_server,
        "mirror",
        str(src),
        f"ks3://{bucket}/x/",
        "--exclude",
        "*.log",
        "--exclude-from",
        str(patterns),
        *common,
    )
    assert result.exit_code == 0, result.stderr  # a FIFO is skipped and named, but it is not data
    assert "skipped: a-fifo" in result.stderr
    with client_for(local_server) as client:
        keys = sorted(o.key for o in client.iter_objects(bucket, prefix="x/"))
    assert keys == ["x/.ks3ignore", "x/keep.txt"]

    with open(os.path.join(os.fsencode(src), b"bad-\xff-name"), "wb") as fh:
        fh.write(b"unrepresentable")
    bad = run(
        local_server,
        "mirror",
        str(src),
        f"ks3://{bucket}/x/",
        "--exclude",
        "*.log",
        "--exclude-from",
        str(patterns),
        *common,
    )
    # A file that cannot be synced: not in sync, and counted as failed (issue 14 point 6).
    assert bad.exit_code == 1 and "failed: bad-" in bad.stderr and "failed 1;" in bad.stderr, bad.stderr
    as_json = run(
        local_server,
        "mirror",
        str(src),
        f"ks3://{bucket}/x/",
        "--exclude",
        "*.log",
        "--exclude-from",
        str(patterns),
        "--json",
        *common,
    )
    summary = json.loads(as_json.stdout)
    assert as_json.exit_code == 1 and [f["path"] for f in summary["failed"]] == ["bad-\\xff-name"]
    missing = run(
        local_server,
        "mirror",
        str(src),
        f"ks3://{bucket}/x/",
        "--exclude-from",
        str(tmp_path / "nope"),
        *common,
    )
    assert missing.exit_code == 2 and "nope" in missing.stderr


def test_restore_what_the_official_sdk_encrypted(local_server: Any, bucket: str, tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_bytes(b"fedcba9876543210")
    key_file.chmod(0o600)
    sdk = official_sdk(local_server, key_file)
    files = {"a.txt": b"sdk encrypted", "b/16.bin": bytes(range(16)), "c.bin": os.urandom(20_001)}
    for name, data in files.items():
        sdk.get_bucket(bucket).new_key(f"sdk/{name}").set_contents_from_string(data)
    restore = tmp_path / "restore"
    result = run(
        local_server,
        "mirror",
        f"ks3://{bucket}/sdk/",
        str(restore),
        "--encrypt-key",
        str(key_file),
        "--endpoint",
        local_server.endpoint,
        "--state-db",
        str(tmp_path / "j.db"),
    )
    assert result.exit_code == 0, result.stderr
    assert {
        p.relative_to(restore).as_posix(): p.read_bytes() for p in restore.rglob("*") if p.is_file()
    } == files


def official_sdk(server: Any, key_file: Path) -> Any:
    """The official ks3sdk with client-side encryption, path style, against ``server`` (tests/conftest.py
    makes ``import ks3`` find the SDK rather than tests/ks3)."""
    from ks3.connection import Connection, PathCallingFormat

    return Connection(
        server.access_key,
        server.secret_key,
        host=server.host,
        port=server.port,
        is_secure=False,
        calling_format=PathCallingFormat(),
        local_encrypt=True,
        local_key_path=str(key_file),
    )
