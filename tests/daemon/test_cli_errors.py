"""`ks3sync run` and `ks3sync status`: configuration and journal problems are one line, exit 2;
nothing is created by status; metrics are off by default and serve Prometheus text when enabled."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest

import tests.statuskit as statuskit


def ks3sync(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ks3sync", *args],
        capture_output=True,
        text=True,
        env=env or dict(os.environ),
        timeout=timeout,
    )


def write_config(tmp_path: Path, extra: str = "", endpoint: str = "http://127.0.0.1:9") -> Path:
    (tmp_path / "docs").mkdir(exist_ok=True)
    cfg = tmp_path / "ks3sync.yaml"
    cfg.write_text(
        textwrap.dedent(f"""\
        endpoint: {endpoint}
        credentials:
          access_key: AKTEST
          secret_key: ${{TEST_SECRET}}
        state_dir: {tmp_path}/state
        syncs:
          - name: docs
            source: {tmp_path}/docs
            target: ks3://bucket-one/docs
        """)
        + textwrap.dedent(extra)
    )
    cfg.chmod(0o600)
    return cfg


@pytest.mark.parametrize("command", ["run", "status"])
def test_config_error_is_one_line_exit_2(tmp_path: Path, command: str) -> None:
    cfg = write_config(tmp_path, "verbose: yes\n")
    result = ks3sync(command, "--config", str(cfg), env=dict(os.environ, TEST_SECRET="x"))
    assert result.returncode == 2
    assert result.stderr == f"ks3sync: error: {cfg}: verbose: unknown key\n"


@pytest.mark.parametrize("command", ["run", "status"])
def test_undefined_variable_names_the_key(tmp_path: Path, command: str) -> None:
    cfg = write_config(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "TEST_SECRET"}
    result = ks3sync(command, "--config", str(cfg), env=env)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"ks3sync: error: {cfg}: credentials.secret_key: environment variable ${{TEST_SECRET}} is not set"
    )


def test_status_without_a_journal_creates_nothing(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    result = ks3sync("status", "--config", str(cfg), "--json", env=dict(os.environ, TEST_SECRET="x"))
    assert result.returncode == 3, result.stderr  # not running
    assert '"state": "never started"' in result.stdout and '"running": false' in result.stdout
    assert not (tmp_path / "state").exists()


def test_status_with_a_corrupt_journal_is_one_line_exit_2(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "journal.db").write_bytes(b"this is not a database" * 100)
    result = ks3sync("status", "--config", str(cfg), env=dict(os.environ, TEST_SECRET="x"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "journal.db" in result.stderr


def test_run_with_an_empty_sync_list_is_exit_2(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("endpoint: http://127.0.0.1:9\nsyncs: []\n")
    result = ks3sync("run", "--config", str(cfg))
    assert result.returncode == 2 and "syncs: nothing to run" in result.stderr


def test_run_without_credentials_is_exit_2(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"endpoint: http://127.0.0.1:9\nstate_dir: {tmp_path}/s\n"
        f"syncs: [{{name: a, source: {tmp_path}/d, target: 'ks3://bkt'}}]\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("KS3_ACCESS_KEY", "KS3_SECRET_KEY")}
    result = ks3sync("run", "--config", str(cfg), env=env)
    assert result.returncode == 2 and "no credentials" in result.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_metrics_endpoint_serves_prometheus_text_when_enabled(
    tmp_path: Path, local_server, bucket, wait_until
) -> None:
    pytest.importorskip("prometheus_client")
    port = free_port()
    cfg = write_config(tmp_path, f"metrics:\n  listen: 127.0.0.1:{port}\n", endpoint=local_server.endpoint)
    cfg.write_text(
        cfg.read_text()
        .replace("ks3://bucket-one/docs", f"ks3://{bucket}/m")
        .replace("access_key: AKTEST", f"access_key: {local_server.access_key}")
    )
    env = dict(os.environ, TEST_SECRET=local_server.secret_key)
    with open(tmp_path / "log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ks3sync", "run", "--config", str(cfg)], stdout=log, stderr=log, env=env
        )
    try:

        def scrape() -> str | None:
            assert proc.poll() is None, (tmp_path / "log").read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
                    text = resp.read().decode()
            except OSError:
                return None
            return text if 'ks3sync_sync_up{sync="docs"}' in text else None

        text = str(wait_until(scrape, timeout=30, interval=0.2))
        assert 'ks3sync_queue_depth{sync="docs"}' in text
        wait_until(
            lambda: statuskit.activity(cfg, env, "docs", proc.pid) == "watching", timeout=30, interval=0.1
        )
        (tmp_path / "docs" / "one.txt").write_text("one")
        synced = 'ks3sync_files_synced_total{sync="docs"} 1.0'
        text = str(wait_until(lambda: (t := scrape()) and synced in t and t, timeout=30, interval=0.2))
        assert 'ks3sync_change_latency_seconds_count{sync="docs"} 1.0' in text
        assert 'ks3sync_bytes_sent_total{sync="docs"} 3.0' in text
        assert local_server.secret_key not in text
    finally:
        proc.terminate()
        assert proc.wait(15) == 0
    assert local_server.secret_key not in (tmp_path / "log").read_text()  # never logged


def test_metrics_are_off_by_default(tmp_path: Path) -> None:
    from ks3sync.config import load_config

    cfg = load_config(write_config(tmp_path), environ={"TEST_SECRET": "x"})
    assert cfg.metrics.enabled is False
