"""`ks3sync mirror` restores a large object as parallel ranged GETs against the real local-server: each
range is answered 206 with exactly its bytes, nothing more is fetched than the object, and the files come
back identical, plain (a single-PUT object checked by its MD5 ETag, a multipart one by the combined
CRC-64) and encrypted (decrypted across ranges, the integrity tag checked); an object replaced while its
ranges are read is refused by the server (If-Match, 412) and restored whole from its new version."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from ks3sync.cli.main import cli
from tests.serverkit import sdk_connection, unique_bucket_name

KIB = 1024
PART = 256 * KIB


def mirror(server: Any, state: Path, *args: str) -> Any:
    env = {"KS3_ACCESS_KEY": server.access_key, "KS3_SECRET_KEY": server.secret_key}
    return CliRunner().invoke(
        cli,
        ["mirror", *args, "--endpoint", server.endpoint, "--state-db", str(state / "journal.db")],
        env=env,
        catch_exceptions=False,
    )


def test_large_objects_come_back_through_ranges(local_server: Any, bucket: str, tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    files = {
        "single.bin": os.urandom(5 * PART + 17),  # below the threshold: one PUT, an MD5 ETag
        "multi.bin": os.urandom(9 * PART),  # multipart: an opaque ETag, checked by its CRC-64
        "small.txt": b"one GET, no range",
    }
    for name, data in files.items():
        (src / name).write_bytes(data)
    sizes = ["--part-size", f"{PART // KIB}KiB"]
    up = mirror(
        local_server, tmp_path / "up", str(src), f"ks3://{bucket}/r/", *sizes, "--multipart-threshold", "2MiB"
    )
    assert up.exit_code == 0, up.stderr
    mark = len(local_server.requests())
    down = mirror(local_server, tmp_path / "down", f"ks3://{bucket}/r/", str(dst), *sizes)
    assert down.exit_code == 0, down.stderr
    assert {p.name: p.read_bytes() for p in dst.iterdir()} == files
    gets = [e for e in local_server.requests()[mark:] if e["op"] == "GetObject"]
    by_key: dict[str, list[dict[str, Any]]] = {}
    for entry in gets:
        by_key.setdefault(entry["path"].rsplit("/", 1)[1], []).append(entry)
    assert [e["status"] for e in by_key["small.txt"]] == [200]
    for name in ("single.bin", "multi.bin"):
        size = len(files[name])
        assert len(by_key[name]) == -(-size // PART)
        assert {e["status"] for e in by_key[name]} == {206}
        assert sum(e["bytes_out"] for e in by_key[name]) == size  # each byte fetched once


def test_a_large_encrypted_object_is_restored_through_ranges(
    local_server: Any, bucket: str, tmp_path: Path
) -> None:
    key = tmp_path / "key"
    key.write_bytes(b"0123456789abcdef")
    os.chmod(key, 0o600)
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    data = os.urandom(7 * PART + 5)
    (src / "secret.bin").write_bytes(data)
    sizes = ["--part-size", f"{PART // KIB}KiB", "--encrypt-key", str(key)]
    up = mirror(local_server, tmp_path / "up", str(src), f"ks3://{bucket}/e/", *sizes)
    assert up.exit_code == 0, up.stderr
    mark = len(local_server.requests())
    down = mirror(local_server, tmp_path / "down", f"ks3://{bucket}/e/", str(dst), *sizes)
    assert down.exit_code == 0, down.stderr
    assert (dst / "secret.bin").read_bytes() == data
    statuses = [e["status"] for e in local_server.requests()[mark:] if e["op"] == "GetObject"]
    assert len(statuses) > 2 and set(statuses) == {206}


def restore_while(
    server_factory: Callable[..., Any],
    wait_until: Callable[..., object],
    tmp_path: Path,
    change: Callable[[Any], None],
) -> tuple[Any, subprocess.CompletedProcess[bytes], list[int]]:
    """Restore one 20-part object and ``change(bucket)`` as soon as the server answered its first range;
    returns the server, the finished restore, and the statuses of the GETs it made. 150 ms a request and
    two ranges at a time (--jobs 2): the 20 ranges take over a second."""
    server = server_factory(latency_ms=150, no_fsync=True)
    name = unique_bucket_name()
    conn = sdk_connection(server)
    conn.create_bucket(name)
    conn.get_bucket(name).new_key("p/big.bin").set_contents_from_string(OLD)
    env = dict(os.environ, KS3_ACCESS_KEY=server.access_key, KS3_SECRET_KEY=server.secret_key)
    mark = server.mark()
    argv = [
        sys.executable,
        "-m",
        "ks3sync",
        "mirror",
        f"ks3://{name}/p/",
        str(tmp_path / "dst"),
        "--endpoint",
        server.endpoint,
        "--state-db",
        str(tmp_path / "journal.db"),
        "--part-size",
        f"{PART // KIB}KiB",
        "--jobs",
        "2",
        "-v",
    ]
    with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        try:
            wait_until(lambda: any(e["op"] == "GetObject" for e in server.requests()[mark:]), timeout=60)
            change(conn.get_bucket(name))
            out, err = process.communicate(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    done = subprocess.CompletedProcess(argv, process.returncode, out, err)
    return server, done, [e["status"] for e in server.requests()[mark:] if e["op"] == "GetObject"]


OLD, NEW = os.urandom(20 * PART), os.urandom(20 * PART)


def test_an_object_replaced_mid_restore_is_never_stitched_from_two_versions(
    server_factory: Callable[..., Any],
    wait_until: Callable[..., object],
    tmp_path: Path,
) -> None:
    _server, done, statuses = restore_while(
        server_factory, wait_until, tmp_path, lambda b: b.new_key("p/big.bin").set_contents_from_string(NEW)
    )
    assert done.returncode == 0, done.stderr.decode()
    assert (tmp_path / "dst" / "big.bin").read_bytes() == NEW
    # The old version's later ranges were refused (they asked If-Match its ETag); none of its bytes
    # were kept: the retry read the new version, all of it, range by range.
    assert 412 in statuses, statuses
    assert statuses[-20:] == [206] * 20, statuses
    assert b"changed while it was being read" in done.stderr, done.stderr.decode()[-2000:]


def test_an_object_deleted_mid_restore_leaves_no_file_and_no_temp_file(
    server_factory: Callable[..., Any],
    wait_until: Callable[..., object],
    tmp_path: Path,
) -> None:
    """Ranges are written into the temp file at their offsets as they arrive: when the later ones fail
    (the object is gone), what was written is not kept, not even as a temp file."""
    _server, done, statuses = restore_while(
        server_factory, wait_until, tmp_path, lambda b: b.delete_key("p/big.bin")
    )
    assert 206 in statuses and 404 in statuses, statuses
    dst = tmp_path / "dst"
    assert not dst.exists() or list(dst.iterdir()) == [], list(dst.iterdir())
    assert b"Traceback" not in done.stderr, done.stderr.decode()[-2000:]
