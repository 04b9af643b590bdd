"""Smoke test: `python -m bench` runs a tiny workload end to end against a real local-server.

Not a speed test (speed goals live in bench/ itself): it proves the harness starts and stops the
server, runs real peers as child processes, reads the request log, verifies the mirror, and writes
the report; and that its correctness check really fails on a wrong mirror.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bench.results import load_results
from bench.runner import Row

REPO = Path(__file__).resolve().parents[2]

pytest.importorskip("ks3", reason="ks3sdk (the official SDK peer) is not installed")


def _run_bench(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--files",
            "24",
            "--big-mib",
            "1",
            "--no-limits",
            "--workdir",
            str(tmp_path / "wd"),
            "--data-dir",
            str(tmp_path / "data"),
            "--markdown",
            str(tmp_path / "report.md"),
            "--json",
            str(tmp_path / "results.json"),
            *args,
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )


def _rows(tmp_path: Path, latency_ms: float) -> dict[tuple[str, str], Row]:
    saved = load_results(tmp_path / "results.json")
    return next(s for s in saved.sessions if s.latency_ms == latency_ms).rows


@pytest.mark.timeout(150)
def test_tiny_run_with_the_sdk_peer_verifies_and_reports(tmp_path: Path) -> None:
    out = _run_bench(tmp_path, "--only", "W1,W3,W5-W1", "--tools", "ks3sdk")
    assert out.returncode == 0, out.stderr[-2000:]
    rows = _rows(tmp_path, 0.0)
    for workload in ("W1", "W3", "W5-W1"):
        row = rows[(workload, "ks3sdk")]
        assert row.ok, (workload, row.failed, row.skipped)
        assert row.runs[0].requests.requests > 0
    # W1 uploads 24 files: one PUT each (the request log is read between marks).
    assert rows[("W1", "ks3sdk")].runs[0].requests.by_op["PutObject"] == 24
    assert ("W1-throttled", "ks3sdk") not in rows  # a 0 ms session runs it only when named
    report = (tmp_path / "report.md").read_text()
    assert "| W1 | ks3sdk | ok x1 |" in report and "## Results at 0 ms" in report
    assert "## Machine" in report and "ks3sdk 1.18.0" in report
    # The server was stopped: nothing still listens on the port it announced.
    announced = re.search(r"local-server at http://127\.0\.0\.1:(\d+)", out.stderr)
    assert announced is not None, out.stderr[-2000:]
    port = int(announced.group(1))
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


@pytest.mark.timeout(150)
def test_slow_link_session_throttled_w1_and_the_large_w3(tmp_path: Path) -> None:
    # N = 2 against ks3sync's concurrency: some of its requests must be refused; the serial SDK script
    # never has two in flight. W3-20k on a 30-file stand-in, two runs (the second after a revert).
    out = _run_bench(
        tmp_path,
        "--latency-ms",
        "20",
        "--only",
        "W1-throttled,W3-20k",
        "--tools",
        "ks3sync,ks3sdk",
        "--large-files",
        "30",
        "--throttle-inflight",
        "2",
        "--runs",
        "2",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    rows = _rows(tmp_path, 20.0)
    sdk = rows[("W1-throttled", "ks3sdk")]
    assert sdk.ok and [r.requests.refused for r in sdk.runs] == [0, 0]
    ours = rows[("W1-throttled", "ks3sync")]
    assert len(ours.runs) == 2 and all(r.requests.refused > 0 for r in ours.runs)
    for tool in ("ks3sync", "ks3sdk"):
        row = rows[("W3-20k", tool)]
        assert row.ok and len(row.runs) == 2, (tool, row.failed, row.skipped)
    # The latency reached the server and delays every request, bucket creation included.
    log = [
        json.loads(line)
        for line in (tmp_path / "wd" / "latency-20ms" / "requests.jsonl").read_text().splitlines()
    ]
    assert {e["op"] for e in log} >= {"CreateBucket", "PutObject", "ListObjects"}
    assert min(e["ms"] for e in log) >= 20
    report = (tmp_path / "report.md").read_text()
    assert "### Throttled W1 at 20 ms" in report and "--max-inflight 2 --latency-ms 20" in report
    assert "throttling, N = 2 at 20 ms" in report
    compare = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--compare",
            str(tmp_path / "results.json"),
            str(tmp_path / "results.json"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    assert compare.returncode == 0, compare.stderr
    assert "| 20 ms | W3-20k | ks3sync |" in compare.stdout and "| 1.00x |" in compare.stdout


def test_check_bucket_reports_missing_and_wrong_objects(tmp_path: Path) -> None:
    from bench.server import Credentials, LocalServer
    from bench.verify import check_bucket, check_folder

    with LocalServer(
        tmp_path / "root",
        tmp_path / "req.jsonl",
        Credentials("AK", "SK/secret"),
        quiet_log=tmp_path / "server.log",
    ) as server:
        mini = server.mini
        mini.create_bucket("verify")
        mini.put("verify", "p/a.bin", b"hello")
        mini.put("verify", "p/b.bin", b"world")
        exact = {
            "a.bin": (5, "5d41402abc4b2a76b9719d911017c592"),
            "b.bin": (5, "7d793037a0760186574b0282f2f435e7"),
        }
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
