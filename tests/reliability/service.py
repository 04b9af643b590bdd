"""A `ks3sync run` subprocess for the reliability and security suites: writes its config (one sync,
"docs" -> ks3://bucket/svc), starts it, reads its state from the status file, kills or stops it, and
waits (bounded) for the bucket to equal the folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import tests.statuskit as statuskit
from tests.serverkit import ServerHandle

from .helpers import bucket_contents, folder_files

JOBS = 2


class Service:
    def __init__(
        self, server: ServerHandle, tmp_path: Path, bucket: str, key_file: Path | None = None
    ) -> None:
        self.server = server
        self.root = tmp_path / "docs"
        self.root.mkdir()
        self.state = tmp_path / "state"
        self.config = tmp_path / "ks3sync.yaml"
        self.log = tmp_path / "service.log"
        self.config.write_text(
            textwrap.dedent(f"""\
            endpoint: {server.endpoint}
            credentials:
              access_key: ${{KS3_ACCESS_KEY}}
              secret_key: ${{KS3_SECRET_KEY}}
            state_dir: {self.state}
            transfer:
              jobs: {JOBS}
              part_size: 100KiB
              multipart_threshold: 400KiB
            syncs:
              - name: docs
                source: {self.root}
                target: ks3://{bucket}/svc
                delete: true
                debounce: 200ms
                max_delete: 100%
            """)
            + (f"    encrypt_key_file: {key_file}\n" if key_file is not None else "")
        )
        self.config.chmod(0o600)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = dict(os.environ, KS3_ACCESS_KEY=self.server.access_key, KS3_SECRET_KEY=self.server.secret_key)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ks3sync", "run", "--config", str(self.config)],
                stdout=log,
                stderr=log,
                env=env,
            )
        self._wait(lambda: self.sync_state() in ("watching", "scanning", "idle"), 60, "the service to start")

    def sync_state(self) -> str | None:
        """What the sync is doing, as `ks3sync status` reads it from the journal (None: not running)."""
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"service died: {self.log.read_text()[-3000:]}")
        env = dict(os.environ, KS3_ACCESS_KEY=self.server.access_key, KS3_SECRET_KEY=self.server.secret_key)
        return statuskit.activity(self.config, env, "docs", self.process.pid)

    def _wait(self, condition: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}: {self.log.read_text()[-3000:]}")
            time.sleep(0.1)

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
                raise AssertionError("the service ignored SIGTERM for 30 s") from None
        return self.process.returncode

    def converge(self, bucket: str, timeout: float = 120) -> None:
        def same() -> bool:
            self.sync_state()  # raises if the service died
            return bucket_contents(self.server, bucket, "svc/") == folder_files(self.root)

        self._wait(same, timeout, "the bucket to equal the folder")
