"""Shared fixtures: real `ks3sync local-server` processes on loopback, and the official SDK against them.

- `local_server` (session): one server subprocess (`python -m ks3sync local-server`) on port 0 with a temp
  root, fixed test credentials and a request log. Yields a `ServerHandle`.
- `server_factory` (function): start extra servers with flags, e.g. `server_factory(fault_rate=0.1,
  fault_codes="500,503", latency_ms=5, drop_rate=0.05, seed=1)`, or `server_factory(root=path)` to restart
  on existing data. All are stopped at teardown.
- `bucket` (function): a fresh, uniquely named bucket on `local_server`, created with the official SDK.
- `ks3sdk_conn` (function): an official SDK `Connection` to `local_server`, path-style, plain HTTP;
  `sdk_connection(handle)` builds one for any other server.

Every server is stopped (SIGTERM, bounded wait, then SIGKILL) when its fixture ends.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


def _import_official_sdk() -> None:
    """Import ks3sdk's top-level package `ks3` for real, before anything else can claim the name.

    tests/ks3/ is a package (the client's tests) and pytest's default import mode puts tests/ on sys.path,
    so `import ks3` would find it instead of the SDK. Import the SDK with tests/ hidden, then let the SDK
    package also find the modules in tests/ks3, so pytest can still import them as `ks3.test_*`.
    Drop this once tests/ks3 is renamed (e.g. tests/ks3client).
    """
    tests_dir = Path(__file__).resolve().parent
    saved = sys.path[:]
    sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != tests_dir]
    try:
        import ks3
        import ks3.connection  # noqa: F401
    finally:
        sys.path[:] = saved
    client_tests = tests_dir / "ks3"
    if client_tests.is_dir() and str(client_tests) not in ks3.__path__:
        ks3.__path__.append(str(client_tests))


_import_official_sdk()

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
    args = [sys.executable, "-m", "ks3sync", "local-server", "--root", str(root), "--port", str(flags.pop("port", 0)),
            "--port-file", str(port_file), "--request-log", str(request_log)]
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
            raise RuntimeError(f"local-server did not start: {stderr_path.read_text(errors='replace')[-2000:]}")
        time.sleep(0.02)
    port = int(port_file.read_text().strip())
    assert process.stdout is not None
    first_line = process.stdout.readline().decode().strip()
    assert first_line == f"listening on http://127.0.0.1:{port}", first_line
    return ServerHandle(f"http://127.0.0.1:{port}", "127.0.0.1", port, access_key, secret_key, root, request_log,
                        process)


@pytest.fixture(scope="session")
def local_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    base = tmp_path_factory.mktemp("local-server")
    handle = start_server(base / "root", base)
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., ServerHandle]]:
    started: list[ServerHandle] = []

    def factory(root: Path | None = None, **flags: Any) -> ServerHandle:
        handle = start_server(root or tmp_path / f"root-{len(started)}", tmp_path / "logs", **flags)
        started.append(handle)
        return handle

    try:
        yield factory
    finally:
        for handle in started:
            handle.stop()


def sdk_connection(handle: ServerHandle, secret_key: str | None = None, **kwargs: Any) -> Any:
    """An official ks3sdk Connection to `handle`: path style, plain HTTP, explicit port."""
    from ks3.connection import Connection, PathCallingFormat

    return Connection(handle.access_key, secret_key or handle.secret_key, host=handle.host, port=handle.port,
                      is_secure=False, calling_format=PathCallingFormat(), **kwargs)


@pytest.fixture
def ks3sdk_conn(local_server: ServerHandle) -> Any:
    return sdk_connection(local_server)


def unique_bucket_name(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:20]}"


@pytest.fixture
def bucket(local_server: ServerHandle) -> str:
    name = unique_bucket_name()
    sdk_connection(local_server).create_bucket(name)
    return name
