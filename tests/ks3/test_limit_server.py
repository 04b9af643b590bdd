"""The adaptive request limit (ks3sync/ks3/limiter.py) against a real throttling server: `local-server
--max-inflight N` answers 503 SlowDown to every request beyond N in flight, `--retry-after S` adds
Retry-After. No simulation: the refusals counted are the server's own (its request log).

- `mirror` with its defaults (64 jobs) through a server that takes 16 at 20 ms completes exactly and
  gets under 10% of its requests refused (a fixed 64 would get most of them refused);
- a client told Retry-After sends nothing new until the pause is over, and logs the retry with its
  reason."""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from ks3sync.ks3 import Client, RetryPolicy
from tests.serverkit import client_config, sdk_connection, unique_bucket_name

FILES = 400
TIMEOUT = 180


def test_mirror_with_its_defaults_settles_near_what_a_throttled_server_takes(
    server_factory: Callable[..., Any],
    tmp_path: Path,
) -> None:
    server = server_factory(max_inflight=16, latency_ms=20, no_fsync=True)
    name = unique_bucket_name()
    sdk_connection(server).create_bucket(name)
    src = tmp_path / "src"
    src.mkdir()
    files = {f"d{n % 8}/f{n:04d}.txt": os.urandom(1024) for n in range(FILES)}
    for rel, data in files.items():
        (src / rel).parent.mkdir(exist_ok=True)
        (src / rel).write_bytes(data)
    env = dict(os.environ, KS3_ACCESS_KEY=server.access_key, KS3_SECRET_KEY=server.secret_key)
    mark = server.mark()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ks3sync",
            "mirror",
            str(src),
            f"ks3://{name}/w/",
            "--endpoint",
            server.endpoint,
            "--state-db",
            str(tmp_path / "journal.db"),
            "-v",
        ],
        env=env,
        capture_output=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    entries = server.requests()[mark:]
    refused = [e for e in entries if e["status"] == 503]
    assert len(refused) < 0.10 * len(entries), (len(refused), len(entries))
    # Exactly the tree: every file once, with its content (a single PUT's ETag is its MD5).
    with Client(client_config(server)) as client:
        listed = {o.key: o.etag for o in client.iter_objects(name, prefix="w/") if not isinstance(o, str)}
    assert listed == {f"w/{rel}": hashlib.md5(data).hexdigest() for rel, data in files.items()}  # noqa: S324
    if refused:  # every refusal was retried, and said so at -v with its reason
        assert b"503 SlowDown" in done.stderr


def test_retry_after_pauses_every_new_request_and_the_retry_is_logged(
    server_factory: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = server_factory(max_inflight=2, retry_after=1, latency_ms=50, no_fsync=True)
    name = unique_bucket_name()
    sdk_connection(server).create_bucket(name)
    config = client_config(
        server, max_connections=16, retry=RetryPolicy(max_attempts=10, base_delay=0.01, max_delay=0.05)
    )
    mark = server.mark()
    errors: list[BaseException] = []
    lock = threading.Lock()

    def put(n: int) -> None:
        try:
            client.put_object(name, f"k{n}", b"x" * 100)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            with lock:
                errors.append(exc)

    caplog.set_level(logging.INFO, logger="ks3sync.ks3")
    with Client(config) as client, ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(32)))
    assert not errors, errors
    entries = server.requests()[mark:]
    refused = [e for e in entries if e["status"] == 503]
    assert refused, "the server refused nothing: the test did not throttle"
    # After the first refusal was answered (its log time), no request may arrive until its Retry-After
    # (1 s) is over; 0.2 s of slack either side for requests already on their way and a loaded machine.
    first = min(e["ts"] for e in refused)
    arrivals = sorted(e["ts"] - e["ms"] / 1000 for e in entries)
    early = [round(a - first, 3) for a in arrivals if first + 0.2 < a < first + 0.8]
    assert not early, f"requests arrived {early} s after a Retry-After of 1 s"
    assert {e["path"].rsplit("/", 1)[1] for e in entries if e["status"] == 200} == {
        f"k{n}" for n in range(32)
    }
    retries = [r.getMessage() for r in caplog.records if r.getMessage().startswith("retry ")]
    assert retries and all("503 SlowDown" in m and "Retry-After 1 s" in m for m in retries), retries
