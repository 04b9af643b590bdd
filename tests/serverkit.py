"""Starting and driving real `ks3sync local-server` processes for tests (imported by conftest.py and
by tests that need the handle type or a second server: `from serverkit import ServerHandle`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TEST_ACCESS_KEY = "AKLTlocalTestAccessKey01"
TEST_SECRET_KEY = "localTestSecretKey/0123456789+abcdefgHIJ="
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


@dataclass(frozen=True)
class ServerHandle:
    endpoint: str
    host: str
    port: int
    access_key: str
    secret_key: str
    root: Path
    request_log: Path
    process: subprocess.Popen = None  # type: ignore[type-arg, assignment]

    def __repr__(self) -> str:
        return f"ServerHandle(endpoint={self.endpoint!r}, root={str(self.root)!r})"

    def requests(self) -> list[dict[str, Any]]:
        """Every request-log entry so far (the server flushes each line as it answers)."""
        if not self.request_log.exists():
            return []
        lines = self.request_log.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def mark(self) -> int:
        """The current log length: `handle.requests()[mark:]` are the requests made after this point."""
        return len(self.requests())

    def stop(self) -> int | None:
        """SIGTERM, wait (bounded), then SIGKILL; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)
        self._close_pipes()
        return self.process.returncode

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT)
        self._close_pipes()

    def _close_pipes(self) -> None:
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None and not pipe.closed:
                pipe.close()


def start_server(root: Path, log_dir: Path, **flags: Any) -> ServerHandle:
    """Start `python -m ks3sync local-server` and wait (bounded) for its port file."""
    log_dir.mkdir(parents=True, exist_ok=True)
    name = uuid.uuid4().hex[:8]
    port_file = log_dir / f"port-{name}"
    request_log = Path(flags.pop("request_log", log_dir / f"requests-{name}.jsonl"))
    access_key = flags.pop("access_key", TEST_ACCESS_KEY)
    secret_key = flags.pop("secret_key", TEST_SECRET_KEY)
    # One session server serves every test's fresh bucket: lift KS3's 100-bucket account limit.
    flags.setdefault("max_buckets", 100_000)
    scheme = "https" if flags.get("tls_cert") else "http"
    args = [
        sys.executable,
        "-m",
        "ks3sync",
        "local-server",
        "--root",
        str(root),
        "--port",
        str(flags.pop("port", 0)),
        "--port-file",
        str(port_file),
        "--request-log",
        str(request_log),
    ]
    for flag, value in flags.items():
        option = "--" + flag.replace("_", "-")
        if value is True:
            args.append(option)
        elif value is not False and value is not None:
            args += [option, str(value)]
    env = dict(os.environ, KS3_ACCESS_KEY=access_key, KS3_SECRET_KEY=secret_key)
    stderr_path = log_dir / f"stderr-{name}.txt"
    with open(stderr_path, "wb") as stderr:
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=stderr, env=env)
    deadline = time.monotonic() + START_TIMEOUT
    while not port_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait(STOP_TIMEOUT)
            raise RuntimeError(
                f"local-server did not start: {stderr_path.read_text(errors='replace')[-2000:]}"
            )
        time.sleep(0.02)
    port = int(port_file.read_text().strip())
    assert process.stdout is not None
    first_line = process.stdout.readline().decode().strip()
    assert first_line == f"listening on {scheme}://127.0.0.1:{port}", first_line
    return ServerHandle(
        f"{scheme}://127.0.0.1:{port}", "127.0.0.1", port, access_key, secret_key, root, request_log, process
    )


def sdk_connection(handle: ServerHandle, secret_key: str | None = None, **kwargs: Any) -> Any:
    """An official ks3sdk Connection to `handle`: path style, plain HTTP, explicit port."""
    from ks3.connection import Connection, PathCallingFormat

    return Connection(
        handle.access_key,
        secret_key or handle.secret_key,
        host=handle.host,
        port=handle.port,
        is_secure=False,
        calling_format=PathCallingFormat(),
        **kwargs,
    )


def client_config(handle: ServerHandle, **overrides: Any) -> Any:
    """A ks3sync ``ClientConfig`` for `handle` with quick retries (3 attempts, 10-50 ms apart), so a test
    that injects faults does not sleep through production backoff."""
    from ks3sync.ks3 import ClientConfig, RetryPolicy

    settings: dict[str, Any] = dict(
        endpoint=handle.endpoint,
        access_key=handle.access_key,
        secret_key=handle.secret_key,
        retry=RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05),
        timeout=30.0,
    )
    settings.update(overrides)
    return ClientConfig(**settings)


def unique_bucket_name(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:20]}"
