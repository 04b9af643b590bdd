"""`ks3sync run` end to end: a real subprocess with a real watcher on temp folders, a real local-server
and a real SQLite journal. Each scenario ends with the bucket equal to the folder, and the server's
request log shows no redundant data upload (each file's bytes sent once).

Waiting is always bounded polling (``wait_until``), never a fixed sleep.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import tests.statuskit as statuskit

DEBOUNCE = "300ms"
DATA_OPS = {"PutObject", "UploadPart"}


@dataclass
class Service:
    config: Path
    state_dir: Path
    root: Path
    bucket: str
    prefix: str
    server: Any
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self, wait_until: Callable[..., object]) -> None:
        env = dict(os.environ, KS3_ACCESS_KEY=self.server.access_key, KS3_SECRET_KEY=self.server.secret_key)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ks3sync", "run", "--config", str(self.config)],
                stdout=log,
                stderr=log,
                env=env,
            )
        wait_until(lambda: self.state() == "watching" or self._died(), timeout=60)
        assert self.state() == "watching", self.log.read_text()[-3000:]

    def _died(self) -> bool:
        assert self.process is not None
        return self.process.poll() is not None

    def env(self) -> dict[str, str]:
        return dict(os.environ, KS3_ACCESS_KEY=self.server.access_key, KS3_SECRET_KEY=self.server.secret_key)

    def state(self, sync: str = "docs") -> str | None:
        """What the sync is doing, as `ks3sync status` reads it from the journal (None: not running)."""
        return statuskit.activity(self.config, self.env(), sync, self.process.pid if self.process else None)

    def sigterm(self, timeout: float = 15) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill9(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, KS3_ACCESS_KEY=self.server.access_key, KS3_SECRET_KEY=self.server.secret_key)
        return subprocess.run(
            [sys.executable, "-m", "ks3sync", *args], capture_output=True, text=True, env=env, timeout=60
        )


@pytest.fixture()
def service(tmp_path: Path, local_server: Any, bucket: str) -> Iterator[Service]:
    root = tmp_path / "docs"
    root.mkdir()
    state = tmp_path / "state"
    config = tmp_path / "ks3sync.yaml"
    config.write_text(
        textwrap.dedent(f"""\
        endpoint: {local_server.endpoint}
        credentials:
          access_key: ${{KS3_ACCESS_KEY}}
          secret_key: ${{KS3_SECRET_KEY}}
        state_dir: {state}
        transfer:
          jobs: 4
          part_size: 1MiB
          multipart_threshold: 2MiB
        syncs:
          - name: docs
            source: {root}
            target: ks3://{bucket}/backup
            delete: true
            debounce: {DEBOUNCE}
            max_delete: 100%
        """)
    )
    svc = Service(config, state, root, bucket, "backup/", local_server, tmp_path / "service.log")
    yield svc
    if svc.process is not None and svc.process.poll() is None:
        svc.process.kill()
        svc.process.wait(10)


def bucket_contents(server: Any, bucket: str, prefix: str) -> dict[str, str]:
    """key (relative to prefix) -> MD5 of the object's bytes, read with the official SDK (the oracle).
    A single-PUT ETag is the MD5; multipart objects are downloaded and hashed."""
    from ks3.connection import Connection, PathCallingFormat  # the official SDK (tests/conftest.py)

    conn = Connection(
        server.access_key,
        server.secret_key,
        host=server.host,
        port=server.port,
        is_secure=False,
        calling_format=PathCallingFormat(),
    )
    b = conn.get_bucket(bucket)
    out = {}
    for key in b.list(prefix=prefix, delimiter=""):
        etag = key.etag.strip('"')
        if "-" in etag:
            etag = hashlib.md5(b.get_key(key.name).get_contents_as_string()).hexdigest()
        out[key.name[len(prefix) :]] = etag
    return out


def folder_contents(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            out[path.relative_to(root).as_posix()] = hashlib.md5(path.read_bytes()).hexdigest()
    return out


def converged(svc: Service) -> Callable[[], bool]:
    def check() -> bool:
        assert svc.process is not None and svc.process.poll() is None, svc.log.read_text()[-3000:]
        return bucket_contents(svc.server, svc.bucket, svc.prefix) == folder_contents(svc.root)

    return check


def data_uploads(svc: Service, mark: int) -> Counter[str]:
    """Bytes of file content received per key since ``mark`` (PUT bodies and parts)."""
    sent: Counter[str] = Counter()
    for entry in svc.server.requests()[mark:]:
        if entry["op"] in DATA_OPS and entry["status"] == 200:
            key = entry["path"].split("/", 2)[2].removeprefix(svc.prefix)
            sent[key] += entry["bytes_in"]
    return sent


def ops_since(svc: Service, mark: int) -> Counter[str]:
    return Counter(e["op"] for e in svc.server.requests()[mark:] if e["status"] < 300)


def assert_each_sent_once(svc: Service, mark: int, sizes: dict[str, int]) -> None:
    sent = data_uploads(svc, mark)
    assert dict(sent) == {k: v for k, v in sizes.items()}, (dict(sent), sizes)


# --------------------------------------------------------------------------------------------------


def test_create_modify_delete_rename_file_and_directory(service: Service, wait_until) -> None:
    svc = service
    svc.start(wait_until)
    root = svc.root

    mark = svc.server.mark()
    (root / "a.txt").write_text("alpha")
    (root / "sub").mkdir()
    (root / "sub" / "b.txt").write_text("bravo" * 100)
    wait_until(converged(svc), timeout=60, interval=0.2)
    assert_each_sent_once(svc, mark, {"a.txt": 5, "sub/b.txt": 500})

    mark = svc.server.mark()
    (root / "a.txt").write_text("alpha, modified")
    wait_until(converged(svc), timeout=60, interval=0.2)
    assert_each_sent_once(svc, mark, {"a.txt": 15})

    mark = svc.server.mark()
    os.rename(root / "a.txt", root / "renamed.txt")
    wait_until(converged(svc), timeout=60, interval=0.2)
    assert data_uploads(svc, mark) == Counter(), "a rename is a server-side copy"
    assert ops_since(svc, mark)["CopyObject"] == 1

    mark = svc.server.mark()
    for i in range(5):
        (root / "sub" / f"n{i}.bin").write_bytes(os.urandom(1000 + i))
    wait_until(converged(svc), timeout=60, interval=0.2)
    mark = svc.server.mark()
    os.rename(root / "sub", root / "moved")
    wait_until(converged(svc), timeout=60, interval=0.2)
    assert data_uploads(svc, mark) == Counter(), "a directory rename sends no file data"
    assert ops_since(svc, mark)["CopyObject"] == 6

    mark = svc.server.mark()
    (root / "renamed.txt").unlink()
    os.remove(root / "moved" / "n0.bin")
    wait_until(converged(svc), timeout=60, interval=0.2)
    assert data_uploads(svc, mark) == Counter()

    assert svc.sigterm() == 0


def test_burst_of_1000_files(service: Service, wait_until) -> None:
    svc = service
    svc.start(wait_until)
    mark = svc.server.mark()
    sizes = {}
    for i in range(1000):
        name = f"burst/{i // 100:02d}/f{i:04d}.txt"
        (svc.root / name).parent.mkdir(parents=True, exist_ok=True)
        data = f"file {i}\n".encode() * (1 + i % 7)
        (svc.root / name).write_bytes(data)
        sizes[name] = len(data)
    wait_until(converged(svc), timeout=180, interval=0.5)
    assert_each_sent_once(svc, mark, sizes)
    assert svc.sigterm() == 0


def test_kill9_then_restart_catches_up_with_changes_made_while_down(service: Service, wait_until) -> None:
    svc = service
    svc.start(wait_until)
    (svc.root / "keep.txt").write_text("keep")
    (svc.root / "change.txt").write_text("v1")
    (svc.root / "remove.txt").write_text("bye")
    wait_until(converged(svc), timeout=60, interval=0.2)
    svc.kill9()

    # while down: modify, delete, create, rename
    (svc.root / "change.txt").write_text("version two")
    (svc.root / "remove.txt").unlink()
    (svc.root / "new.txt").write_text("new while down")
    os.rename(svc.root / "keep.txt", svc.root / "kept.txt")
    mark = svc.server.mark()
    svc.start(wait_until)
    wait_until(converged(svc), timeout=60, interval=0.2)
    sent = data_uploads(svc, mark)
    assert sent == Counter({"change.txt": 11, "new.txt": 14}), sent  # the rename is a copy
    assert svc.sigterm() == 0


def test_sigterm_during_multipart_upload_then_restart_resumes(service: Service, wait_until) -> None:
    svc = service
    # slow the upload down (4 MiB/s) so that SIGTERM surely lands in the middle of it
    svc.config.write_text(svc.config.read_text().replace("  jobs: 4\n", "  jobs: 4\n  bwlimit: 4MiB/s\n"))
    svc.start(wait_until)
    big = svc.root / "big.bin"
    data = os.urandom(12 * 1024 * 1024)  # 12 parts of 1 MiB
    mark = svc.server.mark()
    big.write_bytes(data)
    # stop as soon as the first parts have landed
    wait_until(
        lambda: sum(1 for e in svc.server.requests()[mark:] if e["op"] == "UploadPart") >= 2, timeout=60
    )
    assert svc.sigterm(timeout=15) == 0
    first = data_uploads(svc, mark)["big.bin"]
    assert 0 < first < len(data), "stopped part-way"

    svc.start(wait_until)
    wait_until(converged(svc), timeout=120, interval=0.2)
    total = data_uploads(svc, mark)["big.bin"]
    assert total == len(data), f"resumed: {first} + {total - first} bytes for a {len(data)}-byte file"
    assert ops_since(svc, mark)["InitiateMultipartUpload"] == 1
    assert svc.sigterm() == 0


def test_status_while_running_and_after(service: Service, wait_until) -> None:
    svc = service
    result = svc.cli("status", "--config", str(svc.config))
    assert (
        result.returncode == 3
        and "service: never started" in result.stdout
        and "docs: stopped" in result.stdout
    )
    svc.start(wait_until)
    (svc.root / "x.txt").write_text("x")
    wait_until(converged(svc), timeout=60, interval=0.2)
    result = svc.cli("status", "--config", str(svc.config), "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["service"]["running"] is True
    (sync,) = doc["syncs"]
    assert (sync["state"], sync["activity"]) == ("ok", "watching")
    assert sync["files_synced"] == 1 and sync["queue_depth"] == 0
    assert sync["files_done"] >= 1 and sync["bytes_done"] >= 1 and sync["last_success"] is not None
    assert svc.server.secret_key not in result.stdout
    assert svc.sigterm() == 0
    result = svc.cli("status", "--config", str(svc.config))
    assert result.returncode == 3
    assert "service: stopped (at " in result.stdout and "docs: stopped" in result.stdout
    assert "1 files synced" in result.stdout


def test_an_emptied_source_never_mass_deletes(service: Service, wait_until) -> None:
    svc = service
    svc.start(wait_until)
    for i in range(20):
        (svc.root / f"f{i}.txt").write_text(str(i))
    wait_until(converged(svc), timeout=60, interval=0.2)
    mark = svc.server.mark()
    for i in range(20):
        (svc.root / f"f{i}.txt").unlink()  # e.g. a failed mount or a wrong rm: the folder is empty
    wait_until(lambda: svc.state() == "unavailable", timeout=30, interval=0.1)
    assert len(bucket_contents(svc.server, svc.bucket, svc.prefix)) == 20
    assert ops_since(svc, mark)["DeleteObject"] + ops_since(svc, mark)["DeleteMultipleObjects"] == 0
    result = svc.cli("status", "--config", str(svc.config), "--json")
    status = json.loads(result.stdout)
    assert result.returncode == 1 and status["syncs"][0]["state"] == "failing"
    assert "empty" in status["syncs"][0]["reason"] and "empty" in status["syncs"][0]["error"]
    # the files come back: the sync resumes and nothing was lost on either side
    for i in range(20):
        (svc.root / f"f{i}.txt").write_text(str(i))
    wait_until(lambda: svc.state() == "watching", timeout=30, interval=0.1)
    wait_until(converged(svc), timeout=60, interval=0.2)
    assert svc.sigterm() == 0
    assert svc.server.secret_key not in svc.log.read_text()


def test_two_syncs_one_folder_missing_at_start(
    tmp_path: Path, local_server: Any, bucket: str, wait_until
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()  # b does not exist yet (an unmounted disk)
    config = tmp_path / "two.yaml"
    config.write_text(
        textwrap.dedent(f"""\
        endpoint: {local_server.endpoint}
        credentials:
          access_key: ${{KS3_ACCESS_KEY}}
          secret_key: ${{KS3_SECRET_KEY}}
        state_dir: {tmp_path}/state
        syncs:
          - {{name: docs, source: {a}, target: "ks3://{bucket}/a", debounce: 200ms}}
          - {{name: media, source: {b}, target: "ks3://{bucket}/b", debounce: 200ms}}
        """)
    )
    svc = Service(config, tmp_path / "state", a, bucket, "a/", local_server, tmp_path / "two.log")
    try:
        svc.start(wait_until)  # waits for "docs" to be watching
        assert svc.state("media") == "unavailable"
        (a / "x.txt").write_text("x")
        wait_until(converged(svc), timeout=60, interval=0.2)
        b.mkdir()  # the disk is mounted
        (b / "y.txt").write_text("y")
        wait_until(lambda: svc.state("media") == "watching", timeout=30)
        wait_until(
            lambda: bucket_contents(local_server, bucket, "b/") == {"y.txt": hashlib.md5(b"y").hexdigest()},
            timeout=60,
            interval=0.2,
        )
        assert svc.sigterm() == 0
    finally:
        if svc.process is not None and svc.process.poll() is None:
            svc.process.kill()
            svc.process.wait(10)


def test_a_second_service_on_the_same_state_dir_is_refused(service: Service, wait_until) -> None:
    svc = service
    svc.start(wait_until)
    assert svc.process is not None
    second = svc.cli("run", "--config", str(svc.config))
    assert second.returncode == 2
    assert second.stderr.strip().endswith(
        f"another ks3sync run (pid {svc.process.pid}) is using this state directory"
    )
    assert svc.state() == "watching"  # the first one is untouched
    assert svc.sigterm() == 0
