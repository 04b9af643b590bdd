"""Shared tools of the reliability suite: seeded trees, running `ks3sync mirror` as a real subprocess
(so it can be killed with SIGKILL), and the end-state checks every scenario asserts:

- ``assert_bucket_equals_folder``: the listing under the prefix has exactly the folder's files, and
  every object's bytes equal the file's bytes (downloaded and compared, not only sizes/ETags);
- ``assert_no_multipart_uploads``: ListMultipartUploads is empty (no orphaned uploads);
- ``assert_journal_healthy``: the journal opens and ``integrity_check()`` is empty;
- ``part_upload_counts`` / ``writes``: what the server's request log says was sent.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ks3sync.ks3 import Client, ClientConfig, RetryPolicy
from ks3sync.ks3.errors import NoSuchKey
from tests.serverkit import ServerHandle

WRITE_OPS = frozenset(
    {
        "PutObject",
        "UploadPart",
        "UploadPartCopy",
        "CopyObject",
        "DeleteObject",
        "DeleteObjects",
        "InitiateMultipartUpload",
        "CompleteMultipartUpload",
        "AbortMultipartUpload",
        "PutObjectAcl",
        "CreateBucket",
        "DeleteBucket",
        "PutBucketAcl",
    }
)
DATA_OPS = frozenset({"PutObject", "UploadPart", "UploadPartCopy", "CopyObject"})
MIRROR_TIMEOUT = 120.0


# --------------------------------------------------------------------------------------------------
# trees


def make_tree(
    root: Path,
    seed: int,
    *,
    files: int = 12,
    big: int = 0,
    big_size: int = 1_200_000,
    max_small: int = 40_000,
) -> dict[str, bytes]:
    """A deterministic tree: ``files`` small files in a few folders plus ``big`` multipart-sized ones.
    Returns {relative path: content}."""
    rng = random.Random(seed)
    tree: dict[str, bytes] = {}
    for i in range(files):
        folder = rng.choice(["", "a/", "a/b/", "c d/", "ünï/"])
        tree[f"{folder}f{i:03d}.bin"] = rng.randbytes(rng.randint(0, max_small))
    for i in range(big):
        tree[f"big/large{i}.bin"] = rng.randbytes(big_size + rng.randint(0, 50_000))
    write_tree(root, tree)
    return tree


def write_tree(root: Path, tree: dict[str, bytes]) -> None:
    for rel, data in tree.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def folder_files(root: Path) -> dict[str, bytes]:
    out = {}
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            out[path.relative_to(root).as_posix()] = path.read_bytes()
    return out


# --------------------------------------------------------------------------------------------------
# running the CLI


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def cli_env(handle: ServerHandle, **extra: str) -> dict[str, str]:
    env = dict(os.environ, KS3_ACCESS_KEY=handle.access_key, KS3_SECRET_KEY=handle.secret_key)
    env.pop("KS3SYNC_CONFIG", None)
    env.update(extra)
    return env


def mirror_args(src: str | Path, dst: str | Path, endpoint: str, state_db: Path, *flags: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "ks3sync",
        "mirror",
        str(src),
        str(dst),
        "--endpoint",
        endpoint,
        "--state-db",
        str(state_db),
        *flags,
    ]


def run_cli(
    args: Sequence[str], env: dict[str, str], *, timeout: float = MIRROR_TIMEOUT, cwd: Path | None = None
) -> Run:
    started = time.monotonic()
    proc = subprocess.run(list(args), env=env, capture_output=True, timeout=timeout, cwd=cwd, check=False)
    return Run(
        proc.returncode,
        proc.stdout.decode(errors="replace"),
        proc.stderr.decode(errors="replace"),
        time.monotonic() - started,
    )


def mirror(
    handle: ServerHandle,
    src: str | Path,
    dst: str | Path,
    state_db: Path,
    *flags: str,
    timeout: float = MIRROR_TIMEOUT,
) -> Run:
    return run_cli(mirror_args(src, dst, handle.endpoint, state_db, *flags), cli_env(handle), timeout=timeout)


def start_mirror(
    handle: ServerHandle, src: str | Path, dst: str | Path, state_db: Path, *flags: str
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        mirror_args(src, dst, handle.endpoint, state_db, *flags),
        env=cli_env(handle),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def kill9(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.wait(10)
    if process.stderr is not None:
        process.stderr.close()


def wait_for_requests(
    handle: ServerHandle,
    mark: int,
    ops: Iterable[str],
    count: int,
    process: subprocess.Popen[bytes],
    timeout: float = 60.0,
) -> bool:
    """Poll (bounded) until ``count`` successful requests of ``ops`` were logged after ``mark``; False
    if the process ended first or the time ran out."""
    wanted = set(ops)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = sum(1 for r in handle.requests()[mark:] if r["op"] in wanted and r["status"] < 300)
        if seen >= count:
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.01)
    return False


# --------------------------------------------------------------------------------------------------
# end-state checks


def client_for(handle: ServerHandle) -> Client:
    return Client(
        ClientConfig(
            endpoint=handle.endpoint,
            access_key=handle.access_key,
            secret_key=handle.secret_key,
            retry=RetryPolicy(max_attempts=8, base_delay=0.05),
        )
    )


def bucket_contents(handle: ServerHandle, bucket: str, prefix: str = "") -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    with client_for(handle) as client:
        for item in client.iter_objects(bucket, prefix=prefix):
            if isinstance(item, str):
                continue
            try:
                with client.get_object(bucket, item.key) as response:
                    out[item.key[len(prefix) :]] = response.read()
            except NoSuchKey:
                # Deleted between the listing and this GET (a running service catching up with a local
                # delete): it is not in the bucket any more, so not in this snapshot either.
                continue
    return out


def assert_bucket_equals_folder(handle: ServerHandle, bucket: str, prefix: str, folder: Path) -> None:
    local = folder_files(folder)
    remote = bucket_contents(handle, bucket, prefix)
    assert sorted(remote) == sorted(local), (
        f"only remote: {sorted(set(remote) - set(local))[:10]}, only local: {sorted(set(local) - set(remote))[:10]}"
    )
    differing = [
        path for path in local if hashlib.md5(local[path]).digest() != hashlib.md5(remote[path]).digest()
    ]
    assert not differing, f"bytes differ: {differing[:10]}"


def assert_no_multipart_uploads(handle: ServerHandle, bucket: str) -> None:
    with client_for(handle) as client:
        uploads = list(client.iter_multipart_uploads(bucket))
    assert uploads == [], f"orphaned multipart uploads: {[(u.key, u.upload_id) for u in uploads]}"


def assert_journal_healthy(state_db: Path) -> None:
    from ks3sync.journal import Journal

    with Journal.open(state_db) as journal:
        assert journal.integrity_check() == []


def journal_paths(state_db: Path) -> set[str]:
    """Every path recorded as synced, over all syncs of the journal."""
    from ks3sync.journal import Journal

    with Journal.open(state_db) as journal:
        return {path for sync in journal.syncs() for path in journal.synced_entries(sync.id)}


def _query_arg(query: str, name: str) -> str | None:
    for item in query.split("&"):
        key, _, value = item.partition("=")
        if key == name:
            return value
    return None


def part_upload_counts(requests: Iterable[dict[str, Any]]) -> Counter[tuple[str, str]]:
    """Successful UploadPart requests per (upload id, part number)."""
    counts: Counter[tuple[str, str]] = Counter()
    for r in requests:
        if r["op"] == "UploadPart" and 200 <= r["status"] < 300:
            counts[
                (_query_arg(r["query"], "uploadId") or "", _query_arg(r["query"], "partNumber") or "")
            ] += 1
    return counts


def writes(requests: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in requests if r["op"] in WRITE_OPS]


def data_writes(requests: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in requests if r["op"] in DATA_OPS and r["status"] < 300]


def create_bucket(handle: ServerHandle, name: str = "rel") -> str:
    with client_for(handle) as client:
        client.create_bucket(name)
    return name


def restart(factory: Any, handle: ServerHandle, **flags: Any) -> ServerHandle:
    """Stop ``handle`` and start a server on the same root and port (same endpoint, so the journal's
    sync for that endpoint is the same one)."""
    handle.stop()
    return factory(root=handle.root, port=handle.port, **flags)


# --------------------------------------------------------------------------------------------------
# mounts (we run as root: chmod does not stop root, a read-only or full file system does)


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tiny tmpfs at ``path`` for the block; skips the test if mounting is not allowed here."""
    import pytest

    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, check=False
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode(errors='replace').strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False, timeout=30)


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[Path]:
    """``path`` (an existing folder) bind-mounted read-only onto itself for the block."""
    import pytest

    if os.geteuid() != 0:
        pytest.skip("a read-only bind mount needs root")
    bound = subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True, check=False)
    if bound.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {bound.stderr.decode(errors='replace').strip()}")
    try:
        ro = subprocess.run(["mount", "-o", "remount,ro,bind", str(path)], capture_output=True, check=False)
        if ro.returncode != 0:
            pytest.skip(f"cannot remount read-only here: {ro.stderr.decode(errors='replace').strip()}")
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False, timeout=30)


def repair(handle: ServerHandle, src: str | Path, dst: str | Path, state_db: Path, *flags: str) -> Run:
    args = [
        sys.executable,
        "-m",
        "ks3sync",
        "repair",
        str(src),
        str(dst),
        "--endpoint",
        handle.endpoint,
        "--state-db",
        str(state_db),
        *flags,
    ]
    return run_cli(args, cli_env(handle))


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("ks3sync: error:")]
