"""Profile `ks3sync mirror` on the benchmark workloads, reproducibly, and print one table.

    python -m bench.profile_mirror                      # W1, W4-2k, W3 (fresh bucket + journal)
    python -m bench.profile_mirror --large              # also W4-100k (seeded once, then cached)
    python -m bench.profile_mirror --profile W4-2k      # cProfile one workload, top functions
    python -m bench.profile_mirror --runs 3 --only W1   # median of 3

Owns: a `ks3sync local-server --no-fsync` subprocess (bench.server), the W1 / W3 / W4 trees (bench.workloads,
cached under --work), running `ks3sync mirror` as a child process and measuring it with `os.wait4` (wall,
user, sys, peak RSS) plus the server's CPU over the same interval. With --profile the child runs under
`python -m cProfile` and the top functions by own time and by cumulative time are printed.
Must not import: ks3sync (the tool is driven as a user runs it).

The W4-100k state (tree, bucket, journal) is kept under --work between invocations, since seeding it
uploads 100,000 objects; delete the folder to start over. Each invocation first runs one untimed pass
(it warms the page cache; it also renames a journal row that a ks3sync before D16 named after the old
server's port).
"""

from __future__ import annotations

import argparse
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.measure import compile_bytecode
from bench.server import Credentials, LocalServer
from bench.workloads import TreeSpec, apply_mutation, copy_tree, make_tree, plan_mutation

W1_SPEC = TreeSpec(2000, 20, 4096)
LARGE_SPEC = TreeSpec(100_000, 100, 4096)
CREDS = Credentials("AKPROFILE0000001", "profile-secret-not-real-0123456789")
BUCKET = "profile"
RUN_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class Measured:
    name: str
    wall_s: float
    user_s: float
    sys_s: float
    rss_mb: float
    server_cpu_s: float
    returncode: int


def mirror_argv(
    src: Path,
    prefix: str,
    state: Path,
    endpoint: str,
    *,
    delete: bool = False,
    profile_out: Path | None = None,
) -> list[str]:
    script = Path(sys.executable).with_name("ks3sync")
    if profile_out is not None:
        head = [
            sys.executable,
            "-m",
            "bench.profile_mirror",
            "--child-profile",
            str(profile_out),
            str(script),
        ]
    else:
        head = [str(script)]
    argv = [
        *head,
        "mirror",
        str(src),
        f"ks3://{BUCKET}/{prefix}",
        "--endpoint",
        endpoint,
        "--state-db",
        str(state / "journal.db"),
    ]
    if delete:
        argv.append("--delete")
    return argv


def run_child(name: str, argv: list[str], server: LocalServer, log: Path) -> Measured:
    env = {**os.environ, "KS3_ACCESS_KEY": CREDS.access_key, "KS3_SECRET_KEY": CREDS.secret_key}
    server_cpu0 = server.cpu_seconds()
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(argv)}\n".encode())
        out.flush()
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait(timeout=10)
            raise
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Measured(
        name,
        wall,
        usage.ru_utime,
        usage.ru_stime,
        usage.ru_maxrss / 1024.0,
        server.cpu_seconds() - server_cpu0,
        proc.returncode,
    )


def small_chain(
    server: LocalServer, work: Path, run: int, only: set[str], profile: str | None, log: Path
) -> list[Measured]:
    """W1 (fresh bucket prefix + journal) -> W4-2k (nothing changed) -> W3 (mutation, --delete)."""
    tree = work / "trees" / "w1"
    make_tree(tree, W1_SPEC)
    src = work / "runs" / f"src-{run}"
    copy_tree(tree, src)
    state = Path(tempfile.mkdtemp(prefix=f"state-{run}-", dir=work / "runs"))
    prefix = f"w1-{os.getpid()}-{run}/"
    results = []
    for name in ("W1", "W4-2k", "W3"):
        if name == "W3":
            m = plan_mutation(W1_SPEC)
            apply_mutation(src, m, W1_SPEC.size)
        prof = work / f"{name}.prof" if profile == name else None
        argv = mirror_argv(src, prefix, state, server.endpoint, delete=name == "W3", profile_out=prof)
        measured = run_child(name, argv, server, log)
        if name in only or not only:
            results.append(measured)
        if prof is not None:
            print_profile(prof, name)
    shutil.rmtree(src, ignore_errors=True)
    shutil.rmtree(state, ignore_errors=True)
    return results


def large(server: LocalServer, work: Path, profile: str | None, log: Path, runs: int) -> list[Measured]:
    tree = work / "trees" / "large"
    make_tree(tree, LARGE_SPEC)
    state = work / "large-state"
    seeded = work / "large-state.seeded"
    if not seeded.exists():
        shutil.rmtree(state, ignore_errors=True)
        state.mkdir(parents=True)
        print("seeding W4-100k (100,000 uploads, once) ...", file=sys.stderr)
        m = run_child("seed", mirror_argv(tree, "large/", state, server.endpoint), server, log)
        if m.returncode != 0:
            raise SystemExit(f"seeding failed (exit {m.returncode}); see {log}")
        seeded.write_text("ok")
    # An untimed pass first: the page cache, and (with a journal seeded before D16, which named a pair
    # after its endpoint, new each invocation) the rename of the pair's row.
    run_child("warm", mirror_argv(tree, "large/", state, server.endpoint), server, log)
    results = []
    for _ in range(runs):
        prof = work / "W4-100k.prof" if profile == "W4-100k" else None
        results.append(
            run_child(
                "W4-100k", mirror_argv(tree, "large/", state, server.endpoint, profile_out=prof), server, log
            )
        )
        if prof is not None:
            print_profile(prof, "W4-100k")
    return results


def print_profile(path: Path, name: str, top: int = 25) -> None:
    stats = pstats.Stats(str(path), stream=sys.stdout)
    for key in ("tottime", "cumulative"):
        print(f"\n== {name}: top {top} by {key} ==")
        stats.sort_stats(key).print_stats(top)


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def print_table(results: list[Measured]) -> None:
    by_name: dict[str, list[Measured]] = {}
    for r in results:
        by_name.setdefault(r.name, []).append(r)
    print(
        f"\n{'workload':<9} {'runs':>4} {'wall s':>7} {'user s':>7} {'sys s':>6} {'RSS MB':>7} "
        f"{'server cpu s':>12} {'exit':>5}"
    )
    for name, rows in by_name.items():
        print(
            f"{name:<9} {len(rows):>4} {median([r.wall_s for r in rows]):>7.2f} "
            f"{median([r.user_s for r in rows]):>7.2f} {median([r.sys_s for r in rows]):>6.2f} "
            f"{median([r.rss_mb for r in rows]):>7.1f} {median([r.server_cpu_s for r in rows]):>12.2f} "
            f"{','.join(str(r.returncode) for r in rows):>5}"
        )


def child_profile(out: Path, script: str, argv: list[str]) -> None:
    """Run the console script under cProfile in EVERY thread (transfers run on pool threads, which
    ``python -m cProfile`` would not see), then write the merged stats to ``out``."""
    import cProfile
    import runpy
    import threading

    profilers: list[cProfile.Profile] = []

    def start_thread_profiler(*_: object) -> None:
        # Called once on a new thread's first event; enable() then replaces this hook for that thread.
        profiler = cProfile.Profile(time.thread_time)
        profilers.append(profiler)
        profiler.enable()

    threading.setprofile(start_thread_profiler)
    main_profiler = cProfile.Profile(time.thread_time)
    sys.argv = [script, *argv]
    code = 0
    main_profiler.enable()
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        main_profiler.disable()
        threading.setprofile(None)
        stats = pstats.Stats(main_profiler)
        for profiler in profilers:
            stats.add(profiler)
        stats.dump_stats(str(out))
    raise SystemExit(code)


def client_loop(server: LocalServer, requests: int, rounds: int, jobs: int = 8) -> None:
    """Client CPU per request of ``ks3sync.ks3.Client.put_object`` (4 KiB bodies, ``jobs`` threads, the
    pool size the CLI uses), in this process: the one place this script imports ks3sync."""
    from concurrent.futures import ThreadPoolExecutor

    from ks3sync.ks3 import Client, ClientConfig

    body = os.urandom(4096)
    config = ClientConfig(
        endpoint=server.endpoint,
        access_key=CREDS.access_key,
        secret_key=CREDS.secret_key,
        max_connections=max(32, 2 * jobs + 4),
    )
    with Client(config) as client, ThreadPoolExecutor(jobs) as pool:
        for number in range(rounds):
            cpu0, wall0 = time.process_time(), time.perf_counter()
            list(pool.map(lambda i: client.put_object(BUCKET, f"loop/{i}", body), range(requests)))
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            print(
                f"client loop round {number + 1}: {requests} PUTs x 4 KiB, {jobs} threads: "
                f"{requests / wall:6.0f} req/s, {cpu / requests * 1e6:5.0f} us client CPU/req "
                f"(load {os.getloadavg()[0]:.1f})"
            )


def main() -> int:
    if len(sys.argv) > 3 and sys.argv[1] == "--child-profile":
        child_profile(Path(sys.argv[2]), sys.argv[3], sys.argv[4:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--work",
        type=Path,
        default=Path(tempfile.gettempdir()) / "ks3sync-profile",
        help="trees, server root and the W4-100k state live here (kept between runs)",
    )
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--only", default="", help="comma list of W1,W4-2k,W3 to report (the chain still runs)")
    ap.add_argument("--large", action="store_true", help="also W4-100k")
    ap.add_argument(
        "--client-loop",
        type=int,
        default=0,
        metavar="N",
        help="instead: N put_object calls from 8 threads in-process, CPU per request",
    )
    ap.add_argument("--profile", choices=("W1", "W4-2k", "W3", "W4-100k"), help="cProfile this workload")
    args = ap.parse_args()
    compile_bytecode(Path(__file__).resolve().parent.parent / "ks3sync")
    only = {w.strip() for w in args.only.split(",") if w.strip()}
    work: Path = args.work
    (work / "runs").mkdir(parents=True, exist_ok=True)
    log = work / "profile.log"
    results: list[Measured] = []
    with LocalServer(
        work / "server", work / "requests.jsonl", CREDS, quiet_log=work / "server.log"
    ) as server:
        stamp = work / "bucket.created"
        if not stamp.exists():
            server.mini.create_bucket(BUCKET)
            stamp.write_text("ok")
        if args.client_loop:
            client_loop(server, args.client_loop, max(args.runs, 3))
            return 0
        if only != {"W4-100k"}:
            for run in range(args.runs):
                results += small_chain(server, work, run, only, args.profile, log)
        if args.large:
            results += large(server, work, args.profile, log, args.runs)
    print_table(results)
    # The request log grows with every run; it is not needed between invocations.
    (work / "requests.jsonl").unlink(missing_ok=True)
    return 0 if all(r.returncode == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
