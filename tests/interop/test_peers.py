"""rclone, aws-cli and s3cmd each sync a small tree to local-server and back, verified byte for byte.

These tools speak the S3 dialect (SigV4 header auth, path style, plain HTTP): rclone (V1 listings,
UNSIGNED-PAYLOAD puts, X-Amz-Meta-Mtime), aws-cli (ListObjectsV2, signed payloads, multipart above
8 MiB), s3cmd (no-space Authorization commas, multi-object delete). Each test also removes a file and
syncs again with deletion, so the delete path is exercised. A missing binary skips its test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.serverkit import ServerHandle, sdk_connection, unique_bucket_name

pytestmark = pytest.mark.peers


@pytest.fixture(params=["files", "inline"])
def peer_server(request: pytest.FixtureRequest) -> ServerHandle:
    """The session server (bodies as fsynced files), and a --no-fsync one (small bodies as SQLite rows)."""
    if request.param == "files":
        return request.getfixturevalue("local_server")  # type: ignore[no-any-return]
    return request.getfixturevalue("server_factory")(no_fsync=True)  # type: ignore[no-any-return]


TOOL_TIMEOUT = 120


def make_tree(root: Path) -> dict[str, bytes]:
    files = {
        "a file.txt": b"hello\n",
        "empty": b"",
        "nested/deep dir/data.bin": os.urandom(300_000),
        "nested/deep dir/more/x.txt": b"x" * 1000,
        "üni/ß+plus (1).txt": "unicode ✓".encode(),
        "big/nine-mib.bin": os.urandom(9 * 1024 * 1024),  # multipart for aws-cli (threshold 8 MiB)
    }
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def read_tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def clean_env(**extra: str) -> dict[str, str]:
    """The process environment without CA-bundle settings that make these tools reject plain HTTP."""
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_CA_BUNDLE", "AWS_PROFILE")}
    env.update(extra)
    return env


def run(args: list[str], env: dict[str, str]) -> None:
    result = subprocess.run(args, env=env, capture_output=True, timeout=TOOL_TIMEOUT, check=False)
    assert result.returncode == 0, (
        args,
        result.stdout.decode(errors="replace")[-2000:],
        result.stderr.decode(errors="replace")[-2000:],
    )


def remote_keys(server: ServerHandle, bucket: str, prefix: str) -> set[str]:
    b = sdk_connection(server).get_bucket(bucket)
    return {k.name for k in b.list(prefix=prefix, delimiter="")}


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (CI installs rclone, awscli and s3cmd from Debian)")
    return path


def round_trip(tmp_path: Path, server: ServerHandle, bucket: str, prefix: str, sync_up, sync_down) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "src"
    files = make_tree(src)
    sync_up(src)
    assert remote_keys(server, bucket, prefix + "/") == {f"{prefix}/{name}" for name in files}
    back = tmp_path / "back"
    back.mkdir()
    sync_down(back)
    assert read_tree(back) == files
    (src / "a file.txt").unlink()
    sync_up(src)
    assert f"{prefix}/a file.txt" not in remote_keys(server, bucket, prefix + "/")


def test_rclone_sync_round_trip(peer_server: ServerHandle, tmp_path: Path) -> None:
    local_server = peer_server
    rclone = require("rclone")
    bucket = unique_bucket_name("rclone")
    sdk_connection(local_server).create_bucket(bucket)
    env = clean_env(
        RCLONE_CONFIG=str(tmp_path / "rclone.conf"),
        RCLONE_CONFIG_LS_TYPE="s3",
        RCLONE_CONFIG_LS_PROVIDER="Other",
        RCLONE_CONFIG_LS_ACCESS_KEY_ID=local_server.access_key,
        RCLONE_CONFIG_LS_SECRET_ACCESS_KEY=local_server.secret_key,
        RCLONE_CONFIG_LS_ENDPOINT=local_server.endpoint,
        RCLONE_CONFIG_LS_FORCE_PATH_STYLE="true",
    )
    round_trip(
        tmp_path,
        local_server,
        bucket,
        "rc",
        lambda src: run([rclone, "sync", str(src), f"ls:{bucket}/rc"], env),
        lambda dst: run([rclone, "sync", f"ls:{bucket}/rc", str(dst)], env),
    )
    # rclone keeps modification times in X-Amz-Meta-Mtime; the server must return it
    head = sdk_connection(local_server).get_bucket(bucket).get_key("rc/empty", validate=True)
    assert "x-kss-meta-mtime" in head.user_meta


def test_aws_cli_sync_round_trip(peer_server: ServerHandle, tmp_path: Path) -> None:
    local_server = peer_server
    aws = require("aws")
    bucket = unique_bucket_name("aws")
    sdk_connection(local_server).create_bucket(bucket)
    config = tmp_path / "aws-config"
    config.write_text("[default]\nregion = us-east-1\n")
    env = clean_env(
        AWS_ACCESS_KEY_ID=local_server.access_key,
        AWS_SECRET_ACCESS_KEY=local_server.secret_key,
        AWS_CONFIG_FILE=str(config),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
        AWS_DEFAULT_REGION="us-east-1",
    )
    base = [aws, "--endpoint-url", local_server.endpoint, "s3", "sync", "--no-progress"]
    mark = local_server.mark()
    round_trip(
        tmp_path,
        local_server,
        bucket,
        "aws",
        lambda src: run([*base, "--delete", str(src), f"s3://{bucket}/aws"], env),
        lambda dst: run([*base, f"s3://{bucket}/aws", str(dst)], env),
    )
    ops = {entry["op"] for entry in local_server.requests()[mark:]}
    assert {"ListObjectsV2", "CompleteMultipartUpload"} <= ops


def test_s3cmd_sync_round_trip(peer_server: ServerHandle, tmp_path: Path) -> None:
    local_server = peer_server
    s3cmd = require("s3cmd")
    bucket = unique_bucket_name("s3cmd")
    sdk_connection(local_server).create_bucket(bucket)
    config = tmp_path / "s3cfg"
    config.write_text(
        "[default]\n"
        f"access_key = {local_server.access_key}\nsecret_key = {local_server.secret_key}\n"
        f"host_base = {local_server.host}:{local_server.port}\nhost_bucket = {local_server.host}:{local_server.port}\n"
        "use_https = False\nsignature_v2 = False\n"
    )
    base = [s3cmd, "-c", str(config), "--no-progress", "sync"]
    mark = local_server.mark()
    round_trip(
        tmp_path,
        local_server,
        bucket,
        "s3cmd",
        lambda src: run([*base, "--delete-removed", f"{src}/", f"s3://{bucket}/s3cmd/"], clean_env()),
        lambda dst: run([*base, f"s3://{bucket}/s3cmd/", f"{dst}/"], clean_env()),
    )
    assert "DeleteObjects" in {entry["op"] for entry in local_server.requests()[mark:]}


def rclone_env(server: ServerHandle, tmp_path: Path) -> dict[str, str]:
    return clean_env(
        RCLONE_CONFIG=str(tmp_path / "rclone.conf"),
        RCLONE_CONFIG_LS_TYPE="s3",
        RCLONE_CONFIG_LS_PROVIDER="Other",
        RCLONE_CONFIG_LS_ACCESS_KEY_ID=server.access_key,
        RCLONE_CONFIG_LS_SECRET_ACCESS_KEY=server.secret_key,
        RCLONE_CONFIG_LS_ENDPOINT=server.endpoint,
        RCLONE_CONFIG_LS_FORCE_PATH_STYLE="true",
    )


def ks3sync_mirror(server: ServerHandle, src: str, dst: str, tmp_path: Path) -> None:
    env = clean_env(KS3_ACCESS_KEY=server.access_key, KS3_SECRET_KEY=server.secret_key)
    run(
        [
            sys.executable,
            "-m",
            "ks3sync",
            "mirror",
            src,
            dst,
            "--endpoint",
            server.endpoint,
            "--state-db",
            str(tmp_path / "journal.db"),
            "-q",
        ],
        env,
    )


# 2023-11-14 22:13:20.123456789 UTC: a time with every digit of its nanoseconds set
MTIME_NS = 1_700_000_000_123_456_789


def test_rclone_and_ks3sync_read_each_others_modification_times(
    local_server: ServerHandle, tmp_path: Path
) -> None:
    # Both keep a file's mtime in the same user metadata ("mtime"; the server answers x-amz- and
    # x-kss- alike). ks3sync wrote nanoseconds, rclone reads seconds with a fraction: rclone logged
    # "value out of range" for every object and lost the times, and ks3sync restored rclone's objects
    # with the upload time.
    rclone = require("rclone")
    env = rclone_env(local_server, tmp_path)
    bucket = unique_bucket_name("mtime")
    sdk_connection(local_server).create_bucket(bucket)
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    for folder in (mine, theirs):
        folder.mkdir()
        (folder / "f.txt").write_text(folder.name)
        os.utime(folder / "f.txt", ns=(MTIME_NS, MTIME_NS))

    ks3sync_mirror(local_server, str(mine), f"ks3://{bucket}/mine", tmp_path)
    listed = subprocess.run(
        [rclone, "lsl", f"ls:{bucket}/mine"],
        env=clean_env(TZ="UTC", **env),
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert listed.stdout.split()[1:] == ["2023-11-14", "22:13:20.123456789", "f.txt"], listed.stdout
    assert "out of range" not in listed.stderr, listed.stderr[-2000:]

    run([rclone, "copy", str(theirs), f"ls:{bucket}/theirs"], env)
    restored = tmp_path / "restored"
    ks3sync_mirror(local_server, f"ks3://{bucket}/theirs", str(restored), tmp_path)
    assert (restored / "f.txt").read_text() == "theirs"
    assert (restored / "f.txt").stat().st_mtime_ns == MTIME_NS
