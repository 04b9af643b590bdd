"""Crashes of the service: `ks3sync run` killed with SIGKILL while it uploads what the watcher saw -
inside a PUT or a part of a multipart upload (its answer held at a proxy until the kill: see
killpoint.py), or at a random moment soon after the first data write - then started again. Each trial
first asserts that the kill landed while work remained (the bucket lacked files), then that the service
converges: the bucket equals the folder byte for byte, no multipart upload is left, the journal passes
``integrity_check()``, no part was sent more than once beyond those in flight, and a SIGTERM then stops
it with exit 0. Default: 2 trials; ``-m soak``: 20. (An upload initiated by KS3 but killed before the
journal recorded it is left for the 24 h grace period, as designed; the check allows it only unused.)
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from .helpers import (
    assert_journal_healthy,
    bucket_contents,
    client_for,
    create_bucket,
    data_writes,
    folder_files,
    make_tree,
    part_upload_counts,
    wait_for_requests,
)
from .killpoint import KillPoint
from .service import JOBS, Service


def _trial(server_factory: Any, tmp_path: Path, seed: int, trigger: tuple[str, int] | None) -> dict[str, Any]:
    rng = random.Random(seed)
    server = server_factory(latency_ms=15, seed=seed)
    bucket = create_bucket(server)
    op, count = trigger or rng.choice([("PutObject", 2), ("UploadPart", 3), ("UploadPart", 8), ("delay", 0)])
    # The service talks to the server through the kill point's proxy, before and after the kill.
    with KillPoint(server, op, count) as point:
        service = Service(point.via, tmp_path, bucket)
        try:
            service.start()
            mark = server.mark()
            point.arm()
            make_tree(service.root, seed, files=10, big=2, big_size=900_000)
            assert service.process is not None
            if op == "delay":  # anywhere shortly after the first data write
                wait_for_requests(server, mark, ["PutObject", "UploadPart"], 1, service.process)
                time.sleep(rng.uniform(0, 0.1))
            else:  # the answer to the count-th request is held: the kill lands inside that request
                assert point.wait(service.process), f"{op} #{count} was never reached"
            service.kill9()
            point.release()
            # Proof that the kill landed mid-work (else the restart only re-checked a finished sync):
            # the bucket lacked files at that moment, and a held request was the one named.
            assert bucket_contents(server, bucket, "svc/") != folder_files(service.root), (
                "killed after the work"
            )
            assert op == "delay" or (point.held is not None and "/svc/" in point.held.path)
            service.start()
            service.converge(bucket)
            assert service.stop() == 0, service.log.read_text()[-3000:]
        finally:
            if service.process is not None and service.process.poll() is None:
                service.process.kill()
                service.process.wait(10)
    with client_for(server) as client:
        uploads = [(u.key, u.upload_id) for u in client.iter_multipart_uploads(bucket)]
    requests = server.requests()[mark:]
    # One upload may be left, by design: one the kill caught between KS3's answer to its Initiate and the
    # journal's record of it. The service cannot know it is its own, so its start-up sweep leaves it to
    # the grace period (24 h) for other writers' sake. Such an upload was never used: no request names it.
    used = [(key, upload_id) for key, upload_id in uploads if any(upload_id in r["query"] for r in requests)]
    assert used == [] and len(uploads) <= 1, f"orphaned multipart uploads after the restart: {uploads}"
    assert_journal_healthy(service.state / "journal.db")
    counts = part_upload_counts(requests)
    assert not [p for p, n in counts.items() if n > 2], counts
    assert len([p for p, n in counts.items() if n == 2]) <= JOBS, counts
    return {"trigger": (op, count)}


@pytest.mark.parametrize(("seed", "trigger"), [(301, ("UploadPart", 4)), (302, ("PutObject", 2))])
def test_kill9_service_then_restart_converges(
    server_factory: Any, tmp_path: Path, seed: int, trigger: tuple[str, int]
) -> None:
    print(_trial(server_factory, tmp_path, seed, trigger))


@pytest.mark.soak
@pytest.mark.parametrize("seed", range(400, 420))
def test_kill9_service_soak(server_factory: Any, tmp_path: Path, seed: int) -> None:
    print(_trial(server_factory, tmp_path, seed, None))


@pytest.mark.parametrize(
    "faults",
    [
        pytest.param(
            dict(fault_rate=0.1, fault_codes="500,503", drop_rate=0.05), id="errors-10pct-drops-5pct"
        ),
        pytest.param(
            dict(fault_rate=0.2, fault_codes="503", latency_ms=5), id="slowdown-20pct", marks=pytest.mark.soak
        ),
    ],
)
def test_service_under_faults_converges(server_factory: Any, tmp_path: Path, faults: dict[str, Any]) -> None:
    server = server_factory(seed=9, **faults)
    bucket = create_bucket(server)
    service = Service(server, tmp_path, bucket)
    try:
        service.start()
        tree = make_tree(service.root, 9, files=25, big=1, big_size=700_000)
        service.converge(bucket)
        (service.root / sorted(tree)[0]).unlink()
        (service.root / "later.txt").write_bytes(b"written after the first wave")
        service.converge(bucket)
        assert service.stop() == 0, service.log.read_text()[-3000:]
    finally:
        if service.process is not None and service.process.poll() is None:
            service.process.kill()
            service.process.wait(10)
    assert [r for r in server.requests() if r.get("fault")], "no fault was injected: the test tested nothing"
    assert "Traceback" not in service.log.read_text()
    with client_for(server) as client:
        assert list(client.iter_multipart_uploads(bucket)) == []
    assert_journal_healthy(service.state / "journal.db")


def test_repair_of_a_lost_service_journal_then_restart_sends_no_data(
    server_factory: Any, tmp_path: Path
) -> None:
    """Encrypted multipart objects cannot be adopted by a reconcile (their metadata has no plaintext MD5),
    so without the journal the service would upload them again; `repair --config --sync` decrypts and
    hashes them instead, and the restarted service sends nothing."""
    key = tmp_path / "docs.key"
    made = subprocess.run(
        [sys.executable, "-m", "ks3sync", "keygen", str(key)], capture_output=True, check=False
    )
    assert made.returncode == 0, made.stderr
    server = server_factory()
    bucket = create_bucket(server)
    service = Service(server, tmp_path, bucket, key_file=key)
    try:
        service.start()
        make_tree(service.root, 17, files=6, big=1, big_size=700_000)
        service._wait(lambda: len(bucket_contents(server, bucket, "svc/")) == 7, 120, "the first upload")
        service._wait(lambda: service.sync_state() == "watching", 60, "the queue to drain")
        assert service.stop() == 0
        for path in service.state.glob("journal.db*"):
            path.unlink()
        env = dict(os.environ, KS3_ACCESS_KEY=server.access_key, KS3_SECRET_KEY=server.secret_key)
        fixed = subprocess.run(
            [
                sys.executable,
                "-m",
                "ks3sync",
                "repair",
                "--config",
                str(service.config),
                "--sync",
                "docs",
                "--json",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        assert fixed.returncode == 0, fixed.stderr[-2000:]
        assert json.loads(fixed.stdout)["recorded"] == 7, fixed.stdout
        mark = server.mark()
        service.start()
        service._wait(lambda: service.sync_state() == "watching", 60, "the start-up reconcile")
        assert service.stop() == 0
    finally:
        if service.process is not None and service.process.poll() is None:
            service.process.kill()
            service.process.wait(10)
    assert data_writes(server.requests()[mark:]) == []
    assert_journal_healthy(service.state / "journal.db")


def test_service_rides_out_a_server_restart(server_factory: Any, tmp_path: Path) -> None:
    """The local-server is killed mid-transfer and comes back on the same root and port a moment later;
    the service (which never stops) retries and converges, with no upload left behind."""
    server = server_factory(latency_ms=15, seed=12)
    bucket = create_bucket(server)
    service = Service(server, tmp_path, bucket)
    try:
        service.start()
        make_tree(service.root, 12, files=8, big=2, big_size=900_000)
        assert service.process is not None
        assert wait_for_requests(server, 0, ["UploadPart"], 3, service.process), service.log.read_text()[
            -2000:
        ]
        server.kill()
        time.sleep(1.0)
        server = server_factory(root=server.root, port=server.port, seed=13)
        service.server = server
        service.converge(bucket, timeout=180)
        assert service.stop() == 0, service.log.read_text()[-3000:]
    finally:
        if service.process is not None and service.process.poll() is None:
            service.process.kill()
            service.process.wait(10)
    assert "Traceback" not in service.log.read_text()
    with client_for(server) as client:
        assert [(u.key, u.upload_id) for u in client.iter_multipart_uploads(bucket)] == []
    assert_journal_healthy(service.state / "journal.db")


@pytest.mark.parametrize("damage", ["garbage-journal", "read-only-state"])
def test_service_with_a_damaged_state_exits_with_one_line_and_sends_nothing(
    server_factory: Any, tmp_path: Path, damage: str
) -> None:
    from .helpers import read_only

    server = server_factory()
    bucket = create_bucket(server)
    service = Service(server, tmp_path, bucket)
    make_tree(service.root, 19, files=4)
    service.state.mkdir()
    env = dict(os.environ, KS3_ACCESS_KEY=server.access_key, KS3_SECRET_KEY=server.secret_key)
    args = [sys.executable, "-m", "ks3sync", "run", "--config", str(service.config)]
    mark = server.mark()
    if damage == "garbage-journal":
        (service.state / "journal.db").write_bytes(random.Random(1).randbytes(16384))
        run = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60, check=False)
    else:
        with read_only(service.state):
            run = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert run.returncode in (1, 2), run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, run.stderr[-2000:]
    assert str(service.state) in errors[0], errors[0]
    print(errors[0])
    assert [r for r in server.requests()[mark:] if r["op"] not in ("ListBuckets", "HeadBucket")] == []
