"""The service with ``versions:`` end to end: ``ks3sync run`` as a real process watching a real folder,
a real local-server and journal. A batch that overwrites or deletes keeps versions and writes a
manifest; ``restore --as-of`` a moment before it gives the old folder back; a restart with
``keep_passes`` prunes after its reconcile. Waiting is bounded polling, never a fixed sleep."""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ks3sync.ks3 import Client, ClientConfig
from tests.daemon.test_service_e2e import Service, folder_contents


def write_config(tmp_path: Path, server: Any, bucket: str, versions: str) -> Path:
    config = tmp_path / "ks3sync.yaml"
    config.write_text(
        textwrap.dedent(f"""\
        endpoint: {server.endpoint}
        credentials:
          access_key: ${{KS3_ACCESS_KEY}}
          secret_key: ${{KS3_SECRET_KEY}}
        state_dir: {tmp_path / "state"}
        syncs:
          - name: docs
            source: {tmp_path / "docs"}
            target: ks3://{bucket}/backup
            delete: true
            debounce: 300ms
            max_delete: 100%
            versions: {versions}
        """)
    )
    return config


def listing(server: Any, bucket: str) -> dict[str, str]:
    """key under backup/ -> MD5 of its bytes (objects here are single PUTs or copies of them)."""
    with Client(
        ClientConfig(endpoint=server.endpoint, access_key=server.access_key, secret_key=server.secret_key)
    ) as client:
        return {
            o.key[len("backup/") :]: o.etag
            for o in client.iter_objects(bucket, prefix="backup/")
            if not isinstance(o, str)
        }


def synced(svc: Service) -> Callable[[], bool]:
    def check() -> bool:
        assert svc.process is not None and svc.process.poll() is None, svc.log.read_text()[-3000:]
        objects = {k: v for k, v in listing(svc.server, svc.bucket).items() if not k.startswith(".versions/")}
        return objects == folder_contents(svc.root)

    return check


def passes(svc: Service) -> set[str]:
    return {
        k.split("/")[1].removesuffix(".json")
        for k in listing(svc.server, svc.bucket)
        if k.startswith(".versions/")
    }


def test_the_service_keeps_versions_and_a_restore_goes_back_before_a_batch(
    tmp_path: Path, local_server: Any, bucket: str, wait_until: Callable[..., object]
) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    config = write_config(tmp_path, local_server, bucket, "{}")
    svc = Service(config, tmp_path / "state", root, bucket, "backup/", local_server, tmp_path / "service.log")
    try:
        svc.start(wait_until)
        (root / "a.txt").write_text("a, first")
        (root / "b.txt").write_text("b, first")
        (root / "c.txt").write_text("c, new files keep nothing")
        wait_until(synced(svc), timeout=60, interval=0.1)
        assert passes(svc) == set()  # only new files: no version, no manifest
        before = folder_contents(root)
        as_of = time.time_ns()
        (root / "a.txt").write_text("a, second")
        (root / "b.txt").unlink()
        wait_until(synced(svc), timeout=60, interval=0.1)
        wait_until(lambda: any(k.endswith(".json") for k in listing(local_server, bucket)), timeout=30)
        kept = [
            k for k in listing(local_server, bucket) if k.startswith(".versions/") and not k.endswith(".json")
        ]
        assert sorted(k.split("/", 2)[2] for k in kept) == ["a.txt", "b.txt"]
        (root / "a.txt").write_text("a, third")
        wait_until(synced(svc), timeout=60, interval=0.1)
        wait_until(lambda: len(passes(svc)) >= 2, timeout=30)
        assert svc.sigterm() == 0
        iso = (
            time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(as_of // 10**9)) + f".{as_of // 10**6 % 1000:03d}Z"
        )
        result = svc.cli(
            "restore",
            f"ks3://{bucket}/backup/",
            str(tmp_path / "then"),
            "--as-of",
            iso,
            "--config",
            str(config),
            "--state-db",
            str(tmp_path / "r.db"),
            "--json",
        )
        assert result.returncode == 0, result.stderr
        assert folder_contents(tmp_path / "then") == before
        assert json.loads(result.stdout)["from_versions"] == 2

        # Retention: restarted with keep_passes: 1, the start-up reconcile prunes all but the newest pass.
        newest = max(passes(svc))
        write_config(tmp_path, local_server, bucket, "{keep_passes: 1}")
        svc.start(wait_until)
        wait_until(lambda: passes(svc) == {newest}, timeout=60, interval=0.1)
        assert svc.sigterm() == 0
        assert "versions_pruned" in svc.log.read_text()
    finally:
        if svc.process is not None and svc.process.poll() is None:
            svc.process.kill()
            svc.process.wait(10)
