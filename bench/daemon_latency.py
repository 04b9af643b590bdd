"""W6: the service (`ks3sync run`): file close -> object visible latency, and memory with many tracked files.

Owns: a daemon config for one sync, starting/stopping `ks3sync run` as a child process, waiting for its
initial sync, probing latency with newly written files, reading its RSS from /proc.
Must not import: ks3sync (the daemon is run as a command).

Latency = time from `close()` of a new 4 KiB file to the first HEAD that returns 200 for its key
(HEAD polled every 5 ms, so the figure is at most 5 ms pessimistic). It includes the configured
debounce (DEBOUNCE below), which is stated next to the numbers.

Reconcile memory (issue 6: flat with a million tracked files), `python -m bench.daemon_latency
--reconcile-rss 100000,300000,1000000`: for each size, a tree of 64-byte files, its objects PUT straight
to local-server (16 threads) and its journal rows written through `Journal.record_synced` (seeding
through the service itself would take hours at a million files), then `ks3sync run` is started and its
peak RSS (VmHWM) read when its start-up reconcile (a full scan + listing + journal march that finds
nothing to do) logs `reconcile_done`. Seeded trees, buckets and journals are cached under --work.
`seed_journal` is the one place this module imports ks3sync.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.ks3mini import Ks3Mini, MiniError
from bench.measure import median
from bench.peers.ks3sync_peer import ks3sync_argv0
from bench.server import Credentials, LocalServer
from bench.workloads import TreeSpec, make_tree

DEBOUNCE = "100ms"
POLL_S = 0.005
PROBE_TIMEOUT_S = 30.0
PROBES = 30
MAX_LOST_IN_A_ROW = 3  # the service is not delivering: stop probing instead of waiting 30 s each


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


def write_config(
    path: Path, *, endpoint: str, source: Path, state: Path, bucket: str, prefix: str, name: str = "bench"
) -> None:
    path.write_text(
        f"endpoint: {endpoint}\n"
        "credentials:\n"
        "  access_key: ${KS3_ACCESS_KEY}\n"
        "  secret_key: ${KS3_SECRET_KEY}\n"
        f"state_dir: {state}\n"
        "syncs:\n"
        f"  - name: {name}\n"
        f"    source: {source}\n"
        f"    target: ks3://{bucket}/{prefix}\n"
        "    delete: true\n"
        f"    debounce: {DEBOUNCE}\n"
        "    rescan_interval: 1h\n"
    )


def run_daemon_workload(
    server: LocalServer,
    workdir: Path,
    files: int,
    *,
    log: Callable[[str], None],
    probes: int = PROBES,
    initial_timeout_s: float | None = None,
) -> DaemonResult:
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
    proc = _start_daemon(server, config, workdir / "daemon.log")
    # Generous: 20 files/s is ~50x slower than the slowest peer uploads small files here.
    timeout = initial_timeout_s if initial_timeout_s is not None else 120.0 + files / 20.0
    try:
        return _measure(proc, mini, bucket, prefix, source, files, probes, timeout, log)
    finally:
        _stop_daemon(proc, grace_s=30)


def _start_daemon(server: LocalServer, config: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """``ks3sync run --config`` in its own session, output appended to ``log_path``."""
    env = {**os.environ, "KS3_ACCESS_KEY": server.creds.access_key, "KS3_SECRET_KEY": server.creds.secret_key}
    with log_path.open("ab") as out:
        return subprocess.Popen(
            [*ks3sync_argv0(), "run", "--config", str(config)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def _stop_daemon(proc: subprocess.Popen[bytes], *, grace_s: float) -> None:
    """SIGTERM, ``grace_s`` to exit (checkpointing takes a while with many files), then kill its group."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def _count(mini: Ks3Mini, bucket: str, prefix: str) -> int:
    return sum(1 for _ in mini.list(bucket, prefix + "/"))


def _measure(
    proc: subprocess.Popen[bytes],
    mini: Ks3Mini,
    bucket: str,
    prefix: str,
    source: Path,
    files: int,
    probes: int,
    initial_timeout_s: float,
    log: Callable[[str], None],
) -> DaemonResult:
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
        time.sleep(0.2)  # independent probes: the next write does not share the previous debounce
    _, peak = _rss_mb(proc.pid)
    summary = None if lost == 0 else f"{lost} of {probes} probes not visible within {PROBE_TIMEOUT_S:.0f} s"
    return DaemonResult(files, initial, rss_initial, peak, tuple(latencies), lost, summary)


# --------------------------------------------------------------------------------------------------
# Reconcile memory with many tracked files (issue 6)

RSS_BUCKET = "w6-rss"
RSS_CREDS = Credentials("AKRECONCILERSS001", "reconcile-rss-secret-not-real-0123")
SEED_THREADS = 16
RECONCILE_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class ReconcileMemory:
    files: int
    skipped: int | None  # files the reconcile found in sync (must equal files)
    reconcile_s: float | None  # from the daemon's start to `reconcile_done`
    peak_rss_mb: float | None
    rss_after_mb: float | None
    problem: str | None


def _tree_files(source: Path, spec: TreeSpec) -> Iterator[tuple[str, Path]]:
    for i in range(spec.files):
        rel = spec.rel_path(i)
        yield rel, source / rel


def seed_objects(
    server: LocalServer, source: Path, spec: TreeSpec, prefix: str, log: Callable[[str], None]
) -> None:
    """PUT every file of the tree to local-server under ``prefix`` (16 threads, one client each)."""
    local = threading.local()
    clients: list[Ks3Mini] = []
    lock = threading.Lock()

    def put(item: tuple[str, Path]) -> None:
        mini = getattr(local, "mini", None)
        if mini is None:
            mini = Ks3Mini(server.endpoint, server.creds.access_key, server.creds.secret_key)
            local.mini = mini
            with lock:
                clients.append(mini)
        rel, path = item
        mini.put(RSS_BUCKET, prefix + rel, path.read_bytes())

    t0 = time.monotonic()
    try:
        with concurrent.futures.ThreadPoolExecutor(SEED_THREADS) as pool:
            for n, _ in enumerate(pool.map(put, _tree_files(source, spec), chunksize=256), 1):
                if n % 100_000 == 0:
                    log(f"  {n:,} objects PUT ({n / (time.monotonic() - t0):.0f}/s)")
    finally:
        for mini in clients:
            mini.close()


def seed_journal(db: Path, name: str, source: Path, spec: TreeSpec, prefix: str) -> None:
    """Journal rows for every file, as a sync would have recorded them (identity from stat, MD5 of the
    content = the single-PUT ETag), written in batches through the journal's own API."""
    from ks3sync.journal import Journal
    from ks3sync.model import FileIdentity, SyncedEntry

    with Journal.open(db) as journal:
        sync_id = journal.register_sync(name, str(source), RSS_BUCKET, prefix, "seeded-by-bench")
        batch: list[SyncedEntry] = []
        for rel, path in _tree_files(source, spec):
            st = path.stat()
            md5 = hashlib.md5(path.read_bytes()).hexdigest()  # noqa: S324 - the object's ETag
            ident = FileIdentity(st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)
            batch.append(SyncedEntry(rel, ident, md5, md5, st.st_size, False, time.time_ns()))
            if len(batch) >= 10_000:
                journal.record_synced(sync_id, batch)
                batch = []
        if batch:
            journal.record_synced(sync_id, batch)


def measure_reconcile(
    server: LocalServer, work: Path, files: int, *, log: Callable[[str], None]
) -> ReconcileMemory:
    spec = TreeSpec(files, max(20, files // 1000), 64)
    prefix = f"n{files}/"
    source = (work / f"tree-{files}").resolve()
    log(f"reconcile RSS, {files:,} files: tree")
    make_tree(source, spec)
    objects_stamp = work / f"objects-{files}.seeded"
    if not objects_stamp.exists():
        log(f"reconcile RSS, {files:,} files: PUT objects")
        seed_objects(server, source, spec, prefix, log)
        objects_stamp.write_text("ok")
    state = work / f"state-{files}"
    journal_stamp = work / f"journal-{files}.seeded"
    if not journal_stamp.exists():
        log(f"reconcile RSS, {files:,} files: journal rows")
        shutil.rmtree(state, ignore_errors=True)
        state.mkdir(parents=True)
        seed_journal(state / "journal.db", "rss", source, spec, prefix)
        journal_stamp.write_text("ok")
    config = work / f"rss-{files}.yaml"
    # The sync's name must be the one seed_journal registered; the debounce plays no part (no events).
    write_config(
        config,
        endpoint=server.endpoint,
        source=source,
        state=state,
        bucket=RSS_BUCKET,
        prefix=prefix,
        name="rss",
    )
    daemon_log = work / f"daemon-{files}.log"
    daemon_log.unlink(missing_ok=True)
    log(f"reconcile RSS, {files:,} files: ks3sync run")
    proc = _start_daemon(server, config, daemon_log)
    t0 = time.monotonic()
    try:
        while True:
            text = daemon_log.read_text(errors="replace")
            done = next((line for line in text.splitlines() if "reconcile_done" in line), None)
            if done is not None:
                elapsed = time.monotonic() - t0
                cur, peak = _rss_mb(proc.pid)
                skipped = _field(done, "skipped")
                problem = None if skipped == files else f"reconcile did not skip every file: {done}"
                return ReconcileMemory(files, skipped, elapsed, peak, cur, problem)
            if proc.poll() is not None:
                return ReconcileMemory(files, None, None, None, None, f"daemon exited with {proc.returncode}")
            if time.monotonic() - t0 > RECONCILE_TIMEOUT_S:
                return ReconcileMemory(files, None, None, None, None, "no reconcile_done in time")
            time.sleep(0.2)
    finally:
        _stop_daemon(proc, grace_s=60)


def _field(line: str, name: str) -> int | None:
    for token in line.split():
        key, _, value = token.partition("=")
        if key == name and value.isdigit():
            return int(value)
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--reconcile-rss",
        required=True,
        metavar="N,N,...",
        help="tracked-file counts whose no-change start-up reconcile is measured",
    )
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "ks3sync-reconcile-rss")
    args = ap.parse_args()
    sizes = [int(n.replace("_", "")) for n in args.reconcile_rss.split(",") if n.strip()]
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    results = []
    # No request log worth keeping: a million PUTs would write a ~300 MB one.
    with LocalServer(work / "server", Path(os.devnull), RSS_CREDS, quiet_log=work / "server.log") as server:
        server.mini.create_bucket(RSS_BUCKET)
        for files in sizes:
            results.append(measure_reconcile(server, work, files, log=log))
            log(repr(results[-1]))
    print("| tracked files | start-up reconcile (s) | peak RSS (MB) | RSS after (MB) | skipped |")
    print("|---:|---:|---:|---:|---:|")
    for r in results:
        secs = f"{r.reconcile_s:.1f}" if r.reconcile_s is not None else "-"
        peak = f"{r.peak_rss_mb:.0f}" if r.peak_rss_mb is not None else "-"
        after = f"{r.rss_after_mb:.0f}" if r.rss_after_mb is not None else "-"
        print(
            f"| {r.files:,} | {secs} | {peak} | {after} | {r.skipped if r.skipped is not None else '-'} |"
            + (f" {r.problem}" if r.problem else "")
        )
    return 0 if all(r.problem is None for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
