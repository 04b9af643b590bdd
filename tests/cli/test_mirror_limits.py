"""`ks3sync mirror` as a real process against local-server: part sizes outside KS3's limits are refused
before anything is sent, and a restore from a prefix with no objects is an error that creates nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from ks3sync.ks3 import Client
from tests.serverkit import client_config

TIMEOUT = 120


def mirror(server: Any, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ,
        KS3_ACCESS_KEY=server.access_key,
        KS3_SECRET_KEY=server.secret_key,
        XDG_STATE_HOME=str(tmp_path / "xdg"),
    )
    return subprocess.run(
        [sys.executable, "-m", "ks3sync", "mirror", *args, "--endpoint", server.endpoint],
        capture_output=True,
        text=True,
        env=env,
        timeout=TIMEOUT,
    )


def write(root: Path, files: dict[str, str]) -> None:
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)


def read(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): p.read_text(errors="replace") for p in root.rglob("*") if p.is_file()
    }


def keys(server: Any, bucket: str, prefix: str) -> set[str]:
    with Client(client_config(server)) as client:
        return {o.key[len(prefix) :] for o in client.iter_objects(bucket, prefix=prefix)}


def put(server: Any, bucket: str, objects: dict[str, str]) -> None:
    with Client(client_config(server)) as client:
        for key, text in objects.items():
            client.put_object(bucket, key, text.encode())


def test_part_sizes_outside_ks3_limits_are_refused(local_server: Any, bucket: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src, {"a.txt": "a"})
    for flags, message in [
        (
            ("--part-size", "50KiB"),
            "--part-size: must be between 100KiB and 5GiB (KS3's part size limits), got 50KiB",
        ),
        (
            ("--part-size", "0"),
            "--part-size: must be between 100KiB and 5GiB (KS3's part size limits), got 0 bytes",
        ),
        (
            ("--part-size", "6GiB"),
            "--part-size: must be between 100KiB and 5GiB (KS3's part size limits), got 6GiB",
        ),
        (
            ("--multipart-threshold", "6GiB"),
            "--multipart-threshold: must be between 100KiB and 5GiB (the largest single PUT KS3 takes), got 6GiB",
        ),
    ]:
        result = mirror(
            local_server,
            tmp_path,
            str(src),
            f"ks3://{bucket}/ps",
            *flags,
            "--state-db",
            str(tmp_path / "j.db"),
        )
        assert result.returncode == 2, (flags, result.stderr)
        assert result.stderr == f"ks3sync: error: {message}\n"
    assert keys(local_server, bucket, "ps/") == set()  # refused before anything was sent
    config = tmp_path / "c.yaml"
    config.write_text(
        f"endpoint: {local_server.endpoint}\ntransfer: {{part_size: 64KiB}}\n"
        f"syncs: [{{name: a, source: {src}, target: 'ks3://{bucket}/ps'}}]\n"
    )
    result = mirror(
        local_server,
        tmp_path,
        str(src),
        f"ks3://{bucket}/ps",
        "--config",
        str(config),
        "--state-db",
        str(tmp_path / "j.db"),
    )
    assert result.returncode == 2
    assert result.stderr == (
        f"ks3sync: error: {config}: transfer.part_size: must be between 100KiB and 5GiB "
        "(KS3's part size limits), got 64KiB\n"
    )


def test_restore_from_a_prefix_with_no_objects_is_an_error(
    local_server: Any, bucket: str, tmp_path: Path
) -> None:
    put(local_server, bucket, {"photos/a.jpg": "a"})
    target = tmp_path / "restored"
    result = mirror(
        local_server, tmp_path, f"ks3://{bucket}/fotos", str(target), "--state-db", str(tmp_path / "j.db")
    )
    assert result.returncode == 1
    assert result.stderr == f"ks3sync: error: nothing to restore: ks3://{bucket}/fotos/ holds no objects\n"
    assert not target.exists()
    plan = mirror(
        local_server,
        tmp_path,
        f"ks3://{bucket}/fotos",
        str(target),
        "--dry-run",
        "--state-db",
        str(tmp_path / "j.db"),
    )
    assert plan.returncode == 1 and "nothing to restore" in plan.stderr and not target.exists()
    fine = mirror(
        local_server, tmp_path, f"ks3://{bucket}/photos", str(target), "--state-db", str(tmp_path / "j.db")
    )
    assert fine.returncode == 0, fine.stderr
    assert read(target) == {"a.jpg": "a"}
