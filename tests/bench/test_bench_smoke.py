"""Smoke test: `python -m bench` runs a tiny workload end to end against a real local-server.

Not a speed test (speed goals live in bench/ itself): it proves the harness starts and stops the
server, runs real peers as child processes, reads the request log, verifies the mirror, and writes
the report; and that its correctness check really fails on a wrong mirror.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytest.importorskip("ks3", reason="ks3sdk (the official SDK peer) is not installed")


def _run_bench(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--files", "24", "--big-mib", "1", "--no-limits",
         "--workdir", str(tmp_path / "wd"), "--data-dir", str(tmp_path / "data"), "--markdown", str(tmp_path / "report.md"), *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )


@pytest.mark.timeout(150)
def test_tiny_run_with_the_sdk_peer_verifies_and_reports(tmp_path: Path) -> None:
    out = _run_bench(tmp_path, "--only", "W1,W3,W5-W1", "--tools", "ks3sdk")
    assert out.returncode == 0, out.stderr[-2000:]
    lines = {(cols[0], cols[1]): cols for cols in (line.split() for line in out.stdout.splitlines()) if cols}
    for workload in ("W1", "W3", "W5-W1"):
        row = lines[(workload, "ks3sdk")]
        assert row[2] == "ok", row
        requests = int(row[6])
        assert requests > 0, row
    # W1 uploads 24 files: at least one PUT each (the request log is read between marks).
    assert int(lines[("W1", "ks3sdk")][6]) >= 24
    report = (tmp_path / "report.md").read_text()
    assert "| W1 | ks3sdk | ok x1 |" in report
    assert "## Machine" in report and "ks3sdk 1.18.0" in report
    # The server was stopped: nothing still listens on the port it announced.
    announced = re.search(r"local-server at http://127\.0\.0\.1:(\d+)", out.stderr)
    assert announced is not None, out.stderr[-2000:]
    port = int(announced.group(1))
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_check_bucket_reports_missing_and_wrong_objects(tmp_path: Path) -> None:
    from bench.server import Credentials, LocalServer
    from bench.verify import check_bucket, check_folder

    with LocalServer(tmp_path / "root", tmp_path / "req.jsonl", Credentials("AK", "SK/secret"),
                     quiet_log=tmp_path / "server.log") as server:
        mini = server.mini
        mini.create_bucket("verify")
        mini.put("verify", "p/a.bin", b"hello")
        mini.put("verify", "p/b.bin", b"world")
        exact = {"a.bin": (5, "5d41402abc4b2a76b9719d911017c592"), "b.bin": (5, "7d793037a0760186574b0282f2f435e7")}
        assert check_bucket(mini, "verify", "p", exact) is None
        wrong = {**exact, "b.bin": (5, "0" * 32)}
        assert "md5" in (check_bucket(mini, "verify", "p", wrong) or "")
        missing = {**exact, "c.bin": (1, "0" * 32)}
        assert "1 missing" in (check_bucket(mini, "verify", "p", missing) or "")
        assert "1 unexpected" in (check_bucket(mini, "verify", "p", {"a.bin": exact["a.bin"]}) or "")
        start = server.mark()
        mini.put("verify", "p/c.bin", b"!")
        stats = server.stats_between(start, server.mark())
        assert stats.requests == 1 and stats.by_method == {"PUT": 1} and stats.bytes_in == 1
    folder = tmp_path / "restored"
    (folder / "x").mkdir(parents=True)
    (folder / "x" / "a.bin").write_bytes(b"hello")
    assert check_folder(folder, {"x/a.bin": exact["a.bin"]}) is None
    assert "missing" in (check_folder(folder, {"x/a.bin": exact["a.bin"], "y": (1, "")}) or "")
