"""Shared fixtures: real `ks3sync local-server` processes on loopback, and the official SDK against them.

- `local_server` (session): one server subprocess (`python -m ks3sync local-server`) on port 0 with a temp
  root, fixed test credentials and a request log. Yields a `ServerHandle`.
- `server_factory` (function): start extra servers with flags, e.g. `server_factory(fault_rate=0.1,
  fault_codes="500,503", latency_ms=5, drop_rate=0.05, seed=1)`, or `server_factory(root=path)` to restart
  on existing data. All are stopped at teardown.
- `bucket` (function): a fresh, uniquely named bucket on `local_server`, created with the official SDK.
- `ks3sdk_conn` (function): an official SDK `Connection` to `local_server`, path-style, plain HTTP;
  `sdk_connection(handle)` builds one for any other server.

Every server is stopped (SIGTERM, bounded wait, then SIGKILL) when its fixture ends. A developer's proxy
variables (HTTP_PROXY and friends, which the client honours) are removed for the session: every test
talks to loopback servers; the proxy tests set their own.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.serverkit import ServerHandle, sdk_connection, start_server, unique_bucket_name

PROXY_VARIABLES = frozenset({"http_proxy", "https_proxy", "all_proxy", "no_proxy"})


@pytest.fixture(scope="session", autouse=True)
def _no_proxy_from_the_environment() -> Iterator[None]:
    saved = {name: os.environ.pop(name) for name in list(os.environ) if name.lower() in PROXY_VARIABLES}
    yield
    os.environ.update(saved)


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


@pytest.fixture
def ks3sdk_conn(local_server: ServerHandle) -> Any:
    return sdk_connection(local_server)


@pytest.fixture
def bucket(local_server: ServerHandle) -> str:
    name = unique_bucket_name()
    sdk_connection(local_server).create_bucket(name)
    return name


def poll(condition: Callable[[], object], timeout: float = 30.0, interval: float = 0.02) -> object:
    """Return the first truthy value of ``condition()``; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s: {condition}")
        time.sleep(interval)


@pytest.fixture()
def wait_until() -> Callable[..., object]:
    """Bounded polling for tests that wait on a watcher, a service or a server."""
    return poll


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Tests that skipped here verified nothing here (file modes as root, mounts without CAP_SYS_ADMIN,
    a missing systemd-analyze or peer tool): said at the end of the log, where nobody can miss it."""
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return
    terminalreporter.write_sep(
        "!",
        f"{len(skipped)} test(s) SKIPPED: what they check was NOT verified on this machine",
        yellow=True,
        bold=True,
    )
    for report in skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        terminalreporter.write_line(
            f"NOT VERIFIED {report.nodeid}: {reason.removeprefix('Skipped: ')}", yellow=True
        )
