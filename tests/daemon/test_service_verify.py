"""Continuous verification end to end (docs/decisions.md D21): `ks3sync run` as a real process with
``verify:``, a real local-server, real files and journal. Objects are changed behind the service's back
(a PUT with another client, or a byte flipped in the server's own storage, which HEAD cannot see); the
verifier finds them, re-uploads from the local file when it is unchanged, and only reports when the
local file changed too. `status` shows when everything was last verified and the mismatches.

The debounce is an hour, so the watcher's own changes stay queued and never race the verifier; files
are written with an mtime in the past, so a queued re-upload is not held back as "still being written".
Waiting is bounded polling, never a fixed sleep.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tests.statuskit as statuskit
from ks3sync.ks3 import Client
from tests.daemon.test_service_e2e import Service
from tests.serverkit import client_config

PAST = time.time() - 7200


def write(root: Path, path: str, data: bytes) -> None:
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    os.utime(target, (PAST, PAST))


def config_for(tmp_path: Path, server: Any, bucket: str, verify: str, extra: str = "") -> Path:
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
            debounce: 1h
            verify: {verify}
        """)
        + textwrap.indent(textwrap.dedent(extra), " " * 4)
    )
    return config


def verification(svc: Service) -> dict[str, Any]:
    doc = statuskit.report(svc.config, svc.env())
    assert doc is not None
    (sync,) = doc["syncs"]
    assert sync["verification"] is not None
    return dict(sync["verification"])


def rounds_after(svc: Service, n: int) -> Callable[[], bool]:
    def check() -> bool:
        assert svc.process is not None and svc.process.poll() is None, svc.log.read_text()[-3000:]
        return bool(verification(svc)["rounds"] > n)

    return check


def etag(server: Any, bucket: str, key: str) -> str:
    with Client(client_config(server)) as client:
        return client.head_object(bucket, key).etag


def puts_of(server: Any, mark: int, bucket: str, key: str) -> int:
    return sum(
        1 for r in server.requests()[mark:] if r["op"] == "PutObject" and r["path"] == f"/{bucket}/{key}"
    )


def test_the_verifier_reuploads_an_object_changed_behind_its_back_and_reports_when_the_file_changed_too(
    tmp_path: Path, local_server: Any, bucket: str, wait_until: Callable[..., object]
) -> None:
    root = tmp_path / "docs"
    files = {f"d{i % 3}/f{i:02d}.txt": f"file {i} ".encode() * (i + 1) for i in range(12)}
    for path, data in files.items():
        write(root, path, data)
    config = config_for(tmp_path, local_server, bucket, "{objects_per_day: 1000000}")
    svc = Service(config, tmp_path / "state", root, bucket, "backup/", local_server, tmp_path / "service.log")
    try:
        svc.start(wait_until)
        wait_until(rounds_after(svc, 0), timeout=60, interval=0.1)
        first = verification(svc)
        assert first["mismatches"] == 0 and first["last_full"] is not None
        assert first["budget"] == {"objects_per_day": 1000000}

        # Behind its back: one object replaced (its file untouched), another replaced while its file
        # also changed (the watcher queued that change, due in an hour).
        mark = local_server.mark()
        with Client(client_config(local_server)) as client:
            client.put_object(bucket, "backup/d0/f00.txt", b"not what was uploaded")
            client.put_object(bucket, "backup/d1/f01.txt", b"someone else's bytes")
        write(root, "d1/f01.txt", b"edited locally as well")
        wait_until(
            lambda: (
                etag(local_server, bucket, "backup/d0/f00.txt")
                == hashlib.md5(files["d0/f00.txt"]).hexdigest()
            ),
            timeout=60,
            interval=0.1,
        )
        wait_until(lambda: verification(svc)["mismatches"] == 2, timeout=60, interval=0.1)
        log = svc.log.read_text()
        assert "verify_mismatch" in log and "d0/f00.txt" in log and "d1/f01.txt" in log
        assert "re-upload queued" in log and "reported only" in log
        assert puts_of(local_server, mark, bucket, "backup/d0/f00.txt") == 2  # the foreign PUT, the re-upload
        # the changed file is the sync's business: it was not uploaded by the verifier
        assert puts_of(local_server, mark, bucket, "backup/d1/f01.txt") == 1  # only the foreign PUT
        assert (
            etag(local_server, bucket, "backup/d1/f01.txt")
            == hashlib.md5(b"someone else's bytes").hexdigest()
        )

        # status shows the last full verification and the mismatches, in JSON and in text; the mismatch
        # left to the sync is found again by every round, and reported once
        done = verification(svc)["rounds"]
        wait_until(rounds_after(svc, done + 1), timeout=60, interval=0.1)
        status = svc.cli("status", "--config", str(config), "--json")
        (sync,) = json.loads(status.stdout)["syncs"]
        assert (
            sync["verification"]["mismatches"] == 2 and sync["verification"]["last_full"] > first["last_full"]
        )
        assert svc.log.read_text().count("event=verify_mismatch") == 2
        assert any(
            "verification: " in e["message"] and e["path"] == "d0/f00.txt" for e in sync["last_errors"]
        )
        text = svc.cli("status", "--config", str(config)).stdout
        assert "verification (1000000 objects a day): last fully verified " in text
        assert "mismatches found" in text
        assert svc.sigterm() == 0
    finally:
        if svc.process is not None and svc.process.poll() is None:
            svc.process.kill()
            svc.process.wait(10)


def flip_stored_byte(server: Any, bucket: str, key: str, offset: int) -> None:
    """Bit rot: one byte of the object's body changed in the server's own storage. The server's index
    keeps the old ETag and CRC-64, so a HEAD shows nothing; only reading the bytes can."""
    db = sqlite3.connect(f"file:{server.root / 'meta.sqlite3'}?mode=ro", uri=True)
    try:
        (data_id,) = db.execute(
            "SELECT data_id FROM objects WHERE bucket = ? AND key = ?", (bucket, key.encode())
        ).fetchone()
    finally:
        db.close()
    body = server.root / "data" / data_id[:2] / data_id
    with open(body, "r+b") as f:
        f.seek(offset, os.SEEK_SET if offset >= 0 else os.SEEK_END)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x01]))


def test_encrypted_objects_are_read_back_and_a_flipped_stored_byte_is_found_and_reuploaded(
    tmp_path: Path, server_factory: Callable[..., Any], wait_until: Callable[..., object]
) -> None:
    server = server_factory()
    bucket = "verify-encrypted"
    with Client(client_config(server)) as client:
        client.create_bucket(bucket)
    key_file = tmp_path / "k.key"
    made = subprocess.run(
        [sys.executable, "-m", "ks3sync", "keygen", str(key_file)], capture_output=True, check=False
    )
    assert made.returncode == 0, made.stderr
    root = tmp_path / "docs"
    small, large = os.urandom(5000), os.urandom(1_500_000)  # read whole / only its decrypted end
    write(root, "small.bin", small)
    write(root, "large.bin", large)
    write(root, "other.txt", b"left alone")
    config = config_for(
        tmp_path, server, bucket, "{objects_per_day: 1000000}", f"encrypt_key_file: {key_file}\n"
    )
    svc = Service(config, tmp_path / "state", root, bucket, "backup/", server, tmp_path / "service.log")
    try:
        svc.start(wait_until)
        wait_until(rounds_after(svc, 0), timeout=60, interval=0.1)
        before = {name: etag(server, bucket, f"backup/{name}") for name in ("small.bin", "large.bin")}
        mark = server.mark()
        flip_stored_byte(server, bucket, "backup/small.bin", 100)
        flip_stored_byte(server, bucket, "backup/large.bin", -1000)  # in the tail, not in the pad's block
        wait_until(lambda: verification(svc)["mismatches"] == 2, timeout=60, interval=0.1)
        # both re-uploaded from their unchanged files (new IVs: new ETags), and the sync's own read-back
        # of the new objects finds them whole
        wait_until(
            lambda: (
                puts_of(server, mark, bucket, "backup/small.bin") == 1
                and puts_of(server, mark, bucket, "backup/large.bin") == 1
            ),
            timeout=60,
            interval=0.1,
        )
        assert all(etag(server, bucket, f"backup/{name}") != old for name, old in before.items())
        done = verification(svc)["rounds"]
        wait_until(rounds_after(svc, done + 1), timeout=60, interval=0.1)
        assert verification(svc)["mismatches"] == 2
        log = svc.log.read_text()
        assert log.count("event=verify_mismatch") == 2 and "re-upload queued" in log
        gets = [r for r in server.requests()[mark:] if r["op"] == "GetObject"]
        assert any(r["path"].endswith("/large.bin") for r in gets)
        assert svc.sigterm() == 0
    finally:
        if svc.process is not None and svc.process.poll() is None:
            svc.process.kill()
            svc.process.wait(10)
    restored = tmp_path / "restored"
    run = svc.cli(
        "mirror",
        f"ks3://{bucket}/backup/",
        str(restored),
        "--endpoint",
        server.endpoint,
        "--encrypt-key",
        str(key_file),
        "--state-db",
        str(tmp_path / "r.db"),
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert (restored / "small.bin").read_bytes() == small and (restored / "large.bin").read_bytes() == large
