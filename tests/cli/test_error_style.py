"""One error style in every command (issue 14 point 5): a usage or configuration error is exactly one line,
``ks3sync: error: <what>``, with exit status 2 — also for the errors click finds before a command runs
(an unknown option, a missing one, a bad value), which used to print a ``Usage:`` block and ``Error:``.
Real processes, no server needed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

CASES = {
    "mirror-two-local-folders": ["mirror", "a", "b"],
    "mirror-unknown-option": ["mirror", "--nope", "a", "ks3://bucket-x"],
    "mirror-bad-value": ["mirror", "--jobs", "0", "a", "ks3://bucket-x"],
    "run-missing-config": ["run", "--config", "missing.yaml"],
    "status-missing-config": ["status", "--config", "missing.yaml"],
    "check-config-missing-config": ["check-config", "--config", "missing.yaml"],
    "check-config-no-option": ["check-config"],
    "ls-not-a-url": ["ls", "not-a-url"],
    "presign-bad-expiry": ["presign", "ks3://bucket-x/key", "--expires", "0s"],
    "keygen-existing-file": ["keygen", "existing.key"],
    "repair-no-endpoint": ["repair"],
    "local-server-no-root": ["local-server", "--access-key", "a", "--secret-key", "b"],
    "local-server-bad-rates": [
        "local-server",
        "--root",
        "r",
        "--access-key",
        "a",
        "--secret-key",
        "b",
        "--fault-rate",
        "0.6",
        "--drop-rate",
        "0.6",
    ],
    "unknown-command": ["no-such-command"],
}


def ks3sync(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KS3_")}
    env.update(HOME=str(cwd), XDG_STATE_HOME=str(cwd / "state"))
    return subprocess.run(
        [sys.executable, "-m", "ks3sync", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("args", list(CASES.values()), ids=list(CASES))
def test_usage_and_configuration_errors_are_one_line_in_one_style(args: list[str], tmp_path: Path) -> None:
    (tmp_path / "existing.key").write_bytes(b"k" * 16)
    result = ks3sync(args, tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ks3sync: error: "), result.stderr
    assert "Usage:" not in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_a_server_that_cannot_bind_says_so_in_the_same_style(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = ks3sync(
            ["local-server", "--root", "r", "--port", str(port), "--access-key", "a", "--secret-key", "b"],
            tmp_path,
        )
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith(f"ks3sync: error: cannot serve on 127.0.0.1:{port}"), result.stderr
    assert len(result.stderr.splitlines()) == 1
