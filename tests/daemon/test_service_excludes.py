"""`ks3sync run` with `excludes` (and a .ks3ignore): excluded objects are never deleted by the
service, not by its start-up reconcile, not when a synced file becomes excluded and is then renamed or
its folder deleted; with `delete_excluded: true` the reconcile deletes them. A real subprocess, a real
watcher, local-server and the SQLite journal; waits are bounded polls."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ks3sync.ks3 import Client
from tests.daemon.test_service_e2e import Service, bucket_contents


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def config_text(server: Any, state: Path, root: Path, bucket: str, *, delete_excluded: bool) -> str:
    text = textwrap.dedent(f"""\
        endpoint: {server.endpoint}
        credentials:
          access_key: ${{KS3_ACCESS_KEY}}
          secret_key: ${{KS3_SECRET_KEY}}
        state_dir: {state}
        syncs:
          - name: docs
            source: {root}
            target: ks3://{bucket}/backup
            delete: true
            excludes: ["*.log"]
            debounce: 300ms
            max_delete: 100%
        """)
    return (
        text.replace("delete: true\n", "delete: true\n    delete_excluded: true\n")
        if delete_excluded
        else text
    )


@pytest.fixture()
def excluding_service(tmp_path: Path, local_server: Any, bucket: str) -> Iterator[Service]:
    root = tmp_path / "docs"
    root.mkdir()
    state = tmp_path / "state"
    config = tmp_path / "ks3sync.yaml"
    config.write_text(config_text(local_server, state, root, bucket, delete_excluded=False))
    svc = Service(config, state, root, bucket, "backup/", local_server, tmp_path / "service.log")
    yield svc
    if svc.process is not None and svc.process.poll() is None:
        svc.process.kill()
        svc.process.wait(10)


def reconciles(svc: Service) -> int:
    """Reconciles finished so far, counted in the service's log (one `reconcile_done` line each)."""
    return svc.log.read_text(errors="replace").count("event=reconcile_done ") if svc.log.exists() else 0


def queue_empty(svc: Service) -> bool:
    result = svc.cli("status", "--config", str(svc.config), "--json")
    return result.returncode == 0 and json.loads(result.stdout)["syncs"][0]["queue_depth"] == 0


def test_service_never_deletes_excluded_objects_unless_delete_excluded(
    excluding_service: Service, wait_until
) -> None:
    svc = excluding_service
    root = svc.root
    for name, text in {"a.txt": "a", "app.log": "my log", "c.txt": "c", "logs/x.txt": "x"}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    from tests.serverkit import client_config

    with Client(client_config(svc.server)) as client:  # another client's objects, before the service
        for key, text in {"app.log": "old log", "other.log": "theirs", "stale.txt": "stale"}.items():
            client.put_object(svc.bucket, "backup/" + key, text.encode())

    svc.start(wait_until)
    # the start-up reconcile: stale.txt goes (not in the source); the excluded objects stay as they were
    wait_until(lambda: "stale.txt" not in bucket_contents(svc.server, svc.bucket, svc.prefix), timeout=60)
    wait_until(lambda: "logs/x.txt" in bucket_contents(svc.server, svc.bucket, svc.prefix), timeout=60)
    assert bucket_contents(svc.server, svc.bucket, svc.prefix) == {
        "a.txt": md5("a"),
        "c.txt": md5("c"),
        "logs/x.txt": md5("x"),
        "app.log": md5("old log"),
        "other.log": md5("theirs"),
    }

    # c.txt and logs/ become excluded after they were synced; then c.txt is renamed, logs/ deleted
    before = reconciles(svc)
    (root / ".ks3ignore").write_text("c.txt\nlogs/\n")
    wait_until(lambda: reconciles(svc) > before, timeout=60)  # the changed rules are reconciled at once
    os.rename(root / "c.txt", root / "d.txt")
    shutil.rmtree(root / "logs")
    wait_until(lambda: "d.txt" in bucket_contents(svc.server, svc.bucket, svc.prefix), timeout=60)
    (root / "e.txt").write_text("e")  # queued after the deletes above: once it is sent, they were decided
    wait_until(lambda: "e.txt" in bucket_contents(svc.server, svc.bucket, svc.prefix), timeout=60)
    wait_until(lambda: queue_empty(svc), timeout=60)
    assert bucket_contents(svc.server, svc.bucket, svc.prefix) == {
        "a.txt": md5("a"),
        "c.txt": md5("c"),
        "d.txt": md5("c"),
        "e.txt": md5("e"),
        "logs/x.txt": md5("x"),
        ".ks3ignore": md5("c.txt\nlogs/\n"),
        "app.log": md5("old log"),
        "other.log": md5("theirs"),
    }
    assert svc.sigterm() == 0

    # delete_excluded: the start-up reconcile deletes what the rules exclude, and only that
    svc.config.write_text(config_text(svc.server, svc.state_dir, root, svc.bucket, delete_excluded=True))
    svc.start(wait_until)
    wait_until(lambda: "other.log" not in bucket_contents(svc.server, svc.bucket, svc.prefix), timeout=60)
    assert bucket_contents(svc.server, svc.bucket, svc.prefix) == {
        "a.txt": md5("a"),
        "d.txt": md5("c"),
        "e.txt": md5("e"),
        ".ks3ignore": md5("c.txt\nlogs/\n"),
    }
    assert (root / "app.log").read_text() == "my log"  # the local side is only ever read
    assert svc.sigterm() == 0


def test_a_state_dir_inside_the_source_is_never_uploaded(
    tmp_path: Path, local_server: Any, bucket: str, wait_until
) -> None:
    # The watcher always skipped ks3sync's own files; the reconcile's scan did not, and sent the
    # journal, its -wal/-shm, service.json and service.lock to the bucket.
    root = tmp_path / "docs"
    root.mkdir()
    (root / "a.txt").write_text("a")
    state = root / ".state"
    config = tmp_path / "ks3sync.yaml"
    config.write_text(config_text(local_server, state, root, bucket, delete_excluded=True))
    svc = Service(config, state, root, bucket, "backup/", local_server, tmp_path / "service.log")
    try:
        svc.start(wait_until)
        wait_until(lambda: reconciles(svc) >= 1, timeout=60)
        (root / "b.txt").write_text("b")
        wait_until(lambda: "b.txt" in bucket_contents(svc.server, svc.bucket, svc.prefix), timeout=60)
        assert set(bucket_contents(svc.server, svc.bucket, svc.prefix)) == {"a.txt", "b.txt"}
        assert svc.sigterm() == 0
        assert (state / "journal.db").is_file()  # and delete_excluded never touches it locally
    finally:
        if svc.process is not None and svc.process.poll() is None:
            svc.process.kill()
            svc.process.wait(10)
