"""`ks3sync status` against a real `ks3sync run` subprocess and a real local-server (issue 14, point 3):
a wrong secret or a missing bucket is `failing` with the error (exit 1), the bucket created with the
command the error suggests or the right secret is `ok` again (exit 0), a service stopped by SIGTERM or
killed with -9 is `stopped` (exit 3), and KS3 going away while the service watches is `failing` too.

The service retries a failing sync every 0.3 s here ($KS3SYNC_RETRY_INTERVAL) instead of 30 s.
Waiting is bounded polling of `ks3sync status` subprocesses, never a fixed sleep.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.serverkit import ServerHandle, unique_bucket_name

RETRY = "300ms"
WRONG_SECRET = "wrong-secret-0123456789abcdefghijklmnop"


class Run:
    """One `ks3sync run --config` subprocess at a time over the same config and state directory."""

    def __init__(self, tmp_path: Path, server: ServerHandle, target: str) -> None:
        self.server = server
        self.root = tmp_path / "docs"
        self.root.mkdir()
        self.config = tmp_path / "ks3sync.yaml"
        self.config.write_text(
            textwrap.dedent(f"""\
            endpoint: {server.endpoint}
            credentials:
              access_key: ${{KS3_ACCESS_KEY}}
              secret_key: ${{KS3_SECRET_KEY}}
            state_dir: {tmp_path / "state"}
            syncs:
              - name: docs
                source: {self.root}
                target: {target}
                debounce: 100ms
            """)
        )
        self.log = tmp_path / "service.log"
        self.process: subprocess.Popen[bytes] | None = None

    def env(self, secret: str | None = None) -> dict[str, str]:
        return dict(
            os.environ,
            KS3_ACCESS_KEY=self.server.access_key,
            KS3_SECRET_KEY=secret or self.server.secret_key,
            KS3SYNC_RETRY_INTERVAL=RETRY,
        )

    def start(self, secret: str | None = None) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ks3sync", "run", "--config", str(self.config)],
                stdout=log,
                stderr=log,
                env=self.env(secret),
            )

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ks3sync", *args],
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=60,
        )

    def status(self) -> tuple[int, dict[str, Any]]:
        done = self.cli("status", "--config", str(self.config), "--json")
        assert done.returncode in (0, 1, 3), done.stderr
        return done.returncode, json.loads(done.stdout)

    def wait_for(self, wait_until: Callable[..., object], state: str, code: int) -> dict[str, Any]:
        """Poll `status` until the sync is in ``state`` and the exit status is ``code``."""
        seen: list[tuple[int, dict[str, Any]]] = []

        def reached() -> bool:
            assert self.process is None or self.process.poll() is None or state == "stopped", (
                self.log.read_text()
            )
            seen.append(self.status())
            rc, doc = seen[-1]
            return rc == code and doc["syncs"][0]["state"] == state

        wait_until(reached, timeout=60, interval=0.1)
        return seen[-1][1]

    def sigterm(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30)

    def kill9(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)


@pytest.fixture()
def runs() -> Iterator[list[Run]]:
    started: list[Run] = []
    yield started
    for run in started:
        run.stop()


def test_wrong_secret_is_failing_then_ok_then_stopped(
    tmp_path: Path,
    local_server: ServerHandle,
    bucket: str,
    runs: list[Run],
    wait_until: Callable[..., object],
) -> None:
    run = Run(tmp_path, local_server, f"ks3://{bucket}/p")
    runs.append(run)
    run.start(secret=WRONG_SECRET)
    doc = run.wait_for(wait_until, "failing", 1)
    sync = doc["syncs"][0]
    assert (
        sync["error"].startswith("credentials refused by KS3: ") and "SignatureDoesNotMatch" in sync["error"]
    )
    assert sync["failing_since"] is not None and doc["service"]["pid"] == run.process.pid  # type: ignore[union-attr]
    text = run.cli("status", "--config", str(run.config))
    assert text.returncode == 1
    assert "docs: failing since " in text.stdout and "  error: credentials refused by KS3: " in text.stdout
    for secret in (WRONG_SECRET, local_server.secret_key):
        assert secret not in text.stdout and secret not in json.dumps(doc)

    # SIGTERM: stopped, exit 3; the failure is still told
    assert run.sigterm() == 0
    code, doc = run.status()
    assert (code, doc["service"]["state"], doc["syncs"][0]["state"]) == (3, "stopped", "stopped")
    assert "was failing since" in run.cli("status", "--config", str(run.config)).stdout
    first_since = sync["failing_since"]

    # restarted, still wrong: the streak goes on from the first failure, not from the restart
    run.start(secret=WRONG_SECRET)
    doc = run.wait_for(wait_until, "failing", 1)
    assert doc["syncs"][0]["failing_since"] == first_since
    assert doc["service"]["started_at"] > first_since
    assert run.sigterm() == 0

    # the right secret: ok, and the file gets there
    (run.root / "a.txt").write_text("a")
    run.start()
    run.wait_for(wait_until, "ok", 0)
    wait_until(
        lambda: "p/a.txt" in run.cli("ls", f"ks3://{bucket}/p/", "--config", str(run.config)).stdout,
        timeout=30,
        interval=0.1,
    )

    # kill -9: nothing is written on the way out, the lock tells status at once
    run.kill9()
    code, doc = run.status()
    assert (code, doc["service"]["state"], doc["syncs"][0]["state"]) == (3, "stopped", "stopped")
    assert doc["service"]["stopped_at"] is None  # it did not stop cleanly
    assert "did not stop cleanly" in run.cli("status", "--config", str(run.config)).stdout


def test_missing_bucket_says_how_to_create_it_and_recovers(
    tmp_path: Path, local_server: ServerHandle, runs: list[Run], wait_until: Callable[..., object]
) -> None:
    name = unique_bucket_name("later")
    run = Run(tmp_path, local_server, f"ks3://{name}/p")
    runs.append(run)
    (run.root / "a.txt").write_text("a")
    run.start()
    doc = run.wait_for(wait_until, "failing", 1)
    hint = f"ks3sync mb ks3://{name} --config {run.config.absolute()}"
    assert doc["syncs"][0]["error"] == f"bucket '{name}' does not exist (create it with: {hint})"
    # the suggested command, as it is written
    made = run.cli(*hint.split()[1:])
    assert made.returncode == 0, made.stderr
    run.wait_for(wait_until, "ok", 0)
    wait_until(
        lambda: "p/a.txt" in run.cli("ls", f"ks3://{name}/p/", "--config", str(run.config)).stdout,
        timeout=30,
        interval=0.1,
    )
    assert run.sigterm() == 0
    code, doc = run.status()
    assert (code, doc["syncs"][0]["state"]) == (3, "stopped")


def test_ks3_going_away_while_watching(
    tmp_path: Path,
    server_factory: Callable[..., ServerHandle],
    runs: list[Run],
    wait_until: Callable[..., object],
) -> None:
    server = server_factory()
    run = Run(tmp_path, server, "ks3://away-bucket/p")
    runs.append(run)
    assert run.cli("mb", "ks3://away-bucket", "--config", str(run.config)).returncode == 0
    run.start()
    doc = run.wait_for(wait_until, "ok", 0)
    # the start-up reconcile done (before it ends the sync is ok too: nothing has failed yet)
    wait_until(
        lambda: (s := run.status()[1]["syncs"][0])["activity"] == "watching" and s["last_success"],
        timeout=60,
        interval=0.1,
    )
    server.stop()
    (run.root / "b.txt").write_text("b")  # a batch whose every transfer finds nobody to talk to
    doc = run.wait_for(wait_until, "failing", 1)
    # the batch's own message, or already that of the reconcile it brought forward (the next one was an
    # hour away: without the batch's verdict the sync would have stayed "ok" that long)
    error = doc["syncs"][0]["error"]
    assert (
        error.startswith(
            ("cannot reach KS3 (1 transfer failed): b.txt: PUT away-bucket/p/b.txt: ", "GET away-bucket: ")
        )
        and "Connection refused" in error
    ), error
    server_factory(root=server.root, port=server.port)  # back, same data, same address
    run.wait_for(wait_until, "ok", 0)
    wait_until(
        lambda: "p/b.txt" in run.cli("ls", "ks3://away-bucket/p/", "--config", str(run.config)).stdout,
        timeout=60,
        interval=0.2,
    )
    assert run.sigterm() == 0
