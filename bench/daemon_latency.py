"""W6: the service (`ks3sync run`): file close -> object visible latency, and memory with many tracked files.

Owns: a daemon config for one sync, starting/stopping `ks3sync run` as a child process, waiting for its
initial sync, probing latency with newly written files, reading its RSS from /proc.
Must not import: ks3sync (the daemon is run as a command).

Latency = time from `close()` of a new 4 KiB file to the first HEAD that returns 200 for its key
(HEAD polled every 5 ms, so the figure is at most 5 ms pessimistic). It includes the configured
debounce (DEBOUNCE below), which is stated next to the numbers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.ks3mini import Ks3Mini, MiniError
from bench.measure import median
from bench.peers.ks3sync_peer import ks3sync_argv0
from bench.server import LocalServer
from bench.workloads import TreeSpec, make_tree

DEBOUNCE = "100ms"
POLL_S = 0.005
PROBE_TIMEOUT_S = 30.0
PROBES = 30
MAX_LOST_IN_A_ROW = 3     # the service is not delivering: stop probing instead of waiting 30 s each


@dataclass(frozen=True)
class DaemonResult:
    files: int
    initial_sync_s: float | None
    rss_after_initial_mb: float | None
    peak_rss_mb: float | None
    latencies_s: tuple[float, ...]
    lost_probes: int
    problem: str | None

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]

    def render(self) -> str:
        head = f"W6 daemon (`ks3sync run`, debounce {DEBOUNCE}), {self.files} tracked files: "
        if self.problem and not self.latencies_s:
            return head + f"FAILED: {self.problem}"
        parts = [
            f"initial sync {self.initial_sync_s:.1f} s" if self.initial_sync_s is not None else "",
            f"RSS after initial sync {self.rss_after_initial_mb:.0f} MB" if self.rss_after_initial_mb else "",
            f"peak RSS {self.peak_rss_mb:.0f} MB" if self.peak_rss_mb else "",
            f"close->visible p50 {1000 * median(self.latencies_s):.0f} ms, "
            f"p99 {1000 * self.percentile(0.99):.0f} ms, max {1000 * max(self.latencies_s):.0f} ms "
            f"over {len(self.latencies_s)} probes",
            f"{self.lost_probes} probes never appeared" if self.lost_probes else "",
            f"problem: {self.problem}" if self.problem else "",
        ]
        return head + "; ".join(p for p in parts if p)


def _rss_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) in MB from /proc/PID/status."""
    cur = peak = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            cur = int(line.split()[1]) / 1024
        elif line.startswith("VmHWM:"):
            peak = int(line.split()[1]) / 1024
    return cur, peak


def write_config(path: Path, *, endpoint: str, source: Path, state: Path, bucket: str, prefix: str) -> None:
    path.write_text(
        f"endpoint: {endpoint}\n"
        "credentials:\n"
        "  access_key: ${KS3_ACCESS_KEY}\n"
        "  secret_key: ${KS3_SECRET_KEY}\n"
        f"state_dir: {state}\n"
        "syncs:\n"
        "  - name: bench\n"
        f"    source: {source}\n"
        f"    target: ks3://{bucket}/{prefix}\n"
        "    delete: true\n"
        f"    debounce: {DEBOUNCE}\n"
        "    rescan_interval: 1h\n"
    )


def run_daemon_workload(server: LocalServer, workdir: Path, files: int, *, log: Callable[[str], None],
                        probes: int = PROBES, initial_timeout_s: float | None = None) -> DaemonResult:
    mini = server.mini
    bucket, prefix = "w6-daemon", "w6"
    mini.create_bucket(bucket)
    source = workdir / "src"
    spec = TreeSpec(files, max(20, files // 1000), 64)
    log(f"W6: generating {files} tracked files")
    make_tree(source, spec)
    (source / "probe").mkdir(exist_ok=True)
    state = workdir / "state"
    state.mkdir(parents=True, exist_ok=True)
    config = workdir / "ks3sync.yaml"
    write_config(config, endpoint=server.endpoint, source=source, state=state, bucket=bucket, prefix=prefix)
    env = {**os.environ, "KS3_ACCESS_KEY": server.creds.access_key, "KS3_SECRET_KEY": server.creds.secret_key}
    with (workdir / "daemon.log").open("ab") as out:
        proc = subprocess.Popen([*ks3sync_argv0(), "run", "--config", str(config)], env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    # Generous: 20 files/s is ~50x slower than the slowest peer uploads small files here.
    timeout = initial_timeout_s if initial_timeout_s is not None else 120.0 + files / 20.0
    try:
        return _measure(proc, mini, bucket, prefix, source, files, probes, timeout, log)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)


def _count(mini: Ks3Mini, bucket: str, prefix: str) -> int:
    return sum(1 for _ in mini.list(bucket, prefix + "/"))


def _measure(proc: subprocess.Popen[bytes], mini: Ks3Mini, bucket: str, prefix: str, source: Path,
             files: int, probes: int, initial_timeout_s: float, log: Callable[[str], None]) -> DaemonResult:
    t0 = time.monotonic()
    wait = 0.2
    log(f"W6: waiting for the daemon's initial sync of {files} files")
    while True:
        if proc.poll() is not None:
            return DaemonResult(files, None, None, None, (), 0, f"daemon exited with {proc.returncode}")
        try:
            if _count(mini, bucket, prefix) >= files:
                break
        except MiniError as exc:
            log(f"W6: listing failed ({exc}); retrying")
        if time.monotonic() - t0 > initial_timeout_s:
            return DaemonResult(files, None, None, None, (), 0, "initial sync did not finish in time")
        time.sleep(wait)
        wait = min(wait * 1.5, 5.0)
    initial = time.monotonic() - t0
    rss_initial, _ = _rss_mb(proc.pid)
    log(f"W6: initial sync {initial:.1f} s, RSS {rss_initial:.0f} MB; {probes} latency probes")
    latencies: list[float] = []
    lost = lost_in_a_row = 0
    for i in range(probes):
        if proc.poll() is not None:
            problem = f"daemon exited with {proc.returncode} after {len(latencies)} probes"
            return DaemonResult(files, initial, rss_initial, None, tuple(latencies), lost, problem)
        if lost_in_a_row >= MAX_LOST_IN_A_ROW:
            problem = f"stopped after {lost_in_a_row} probes in a row never became visible"
            _, peak = _rss_mb(proc.pid)
            return DaemonResult(files, initial, rss_initial, peak, tuple(latencies), lost, problem)
        key = f"{prefix}/probe/p{i:04d}.bin"
        path = source / "probe" / f"p{i:04d}.bin"
        with path.open("wb") as f:
            f.write(os.urandom(4096))
        t_close = time.perf_counter()
        deadline = t_close + PROBE_TIMEOUT_S
        seen = False
        while time.perf_counter() < deadline and proc.poll() is None:
            try:
                mini.head_meta(bucket, key)
                seen = True
                break
            except MiniError:
                time.sleep(POLL_S)
        if seen:
            latencies.append(time.perf_counter() - t_close)
            lost_in_a_row = 0
        else:
            lost += 1
            lost_in_a_row += 1
        time.sleep(0.2)    # independent probes: the next write does not share the previous debounce
    _, peak = _rss_mb(proc.pid)
    summary = None if lost == 0 else f"{lost} of {probes} probes not visible within {PROBE_TIMEOUT_S:.0f} s"
    return DaemonResult(files, initial, rss_initial, peak, tuple(latencies), lost, summary)
