"""`python -m bench`: ks3sync against rclone, aws s3 sync, s3cmd and the official SDK on one local-server.

Owns: the command line and the order of phases (data, server, limits, workloads, report). Every tool
runs as its own process; the harness itself never imports ks3sync's engine (only `ks3sync local-server`
and `ks3sync mirror|run` are executed as commands).

    python -m bench                      # full: 3 runs each, W4 at 100,000 files, 1 GiB W2
    python -m bench --quick              # < 5 minutes: 1 run, 500 files, 64 MiB, no W4-100k
    python -m bench --only W1,W3 --tools ks3sync,rclone --runs 5
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from bench.daemon_latency import DaemonResult, run_daemon_workload
from bench.docs import write_markdown
from bench.limits import Limits, measure_limits
from bench.measure import compile_bytecode
from bench.peers import Peer, all_peers
from bench.peers.ks3sync_peer import command_missing
from bench.report import (
    evaluate_goals,
    machine_info,
    render_goals,
    render_markdown,
    render_request_mix,
    render_text,
    table_rows,
)
from bench.runner import FULL, QUICK, Row, Runner, Scale, big_file_digest, select_workloads
from bench.server import Credentials, LocalServer
from bench.workloads import TreeSpec, make_big_file, make_tree, tree_digest

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MARKDOWN = REPO / "docs" / "benchmarks.md"
# Not under /tmp: a shared machine's /tmp gets swept by other people's clean-ups mid-run.
DEFAULT_DATA = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ks3sync-bench"
CREDS = Credentials("AKLTbenchAccessKey01", "benchSecretKey/0123456789+abcdef")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller counts, 1 run, no W4-100k (< 5 min)")
    ap.add_argument("--only", help="comma-separated workloads, e.g. W1,W3 (W4 = W4-2k,W4-100k)")
    ap.add_argument("--tools", help="comma-separated tools: ks3sync,rclone,aws,s3cmd,ks3sdk")
    ap.add_argument("--large-tools", help="tools for W4-100k only (default: --tools); seeding 100,000 files "
                    "costs each tool minutes (aws s3 sync ~20 min here)")
    ap.add_argument("--runs", type=int, help="timed runs per (tool, workload); the median is reported")
    ap.add_argument("--files", type=int, help="override the small-tree file count (tests)")
    ap.add_argument("--big-mib", type=int, help="override the large file size in MiB (tests)")
    ap.add_argument("--daemon-files", type=int, help="override W6's tracked-file count")
    ap.add_argument("--workdir", type=Path, help="keep this run's buckets, copies and logs here (default: a "
                    "fresh folder under the data dir, removed at the end)")
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA,
                    help="generated source trees and files, reused across runs (default: %(default)s)")
    ap.add_argument("--markdown",
                    help="where to write the report ('-' to skip). Default: docs/benchmarks.md for a run "
                    "of every tool and workload (quick or full); partial runs write no report unless asked")
    ap.add_argument("--append", action="store_true",
                    help="add this run as a section at the end of --markdown instead of replacing it")
    ap.add_argument("--no-limits", action="store_true", help="skip measuring the machine's ceilings")
    return ap.parse_args(argv)


def build_scale(args: argparse.Namespace) -> Scale:
    scale = QUICK if args.quick else FULL
    if args.runs is not None:
        if args.runs < 1:
            raise SystemExit("--runs must be >= 1")
        scale = dataclasses.replace(scale, runs=args.runs)
    if args.files is not None:
        # Keep W3's proportions (2.5% modified, 1% deleted, 1.5% renamed), at least one of each.
        n = args.files
        mutation = (max(1, n * 50 // 2000), max(1, n * 20 // 2000), max(1, n * 30 // 2000))
        scale = dataclasses.replace(scale, small=TreeSpec(n, min(20, n), scale.small.size), mutation=mutation)
    if args.big_mib is not None:
        scale = dataclasses.replace(scale, big_size=args.big_mib << 20)
    if args.daemon_files is not None:
        scale = dataclasses.replace(scale, daemon_files=args.daemon_files)
    return scale


def pick_peers(spec: str | None) -> list[Peer]:
    peers = all_peers()
    if not spec:
        return peers
    names = [n.strip() for n in spec.split(",") if n.strip()]
    known = {p.name: p for p in peers}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown tool {unknown[0]!r}; choose from {', '.join(known)}")
    return [known[n] for n in names]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _terminate(signum: int, _frame: object) -> None:
    # Turn SIGTERM/SIGHUP into an exception so every `finally` runs: the local-server and any tool or
    # daemon still running are stopped, the temp dir removed.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    args = parse_args(argv)
    compile_bytecode(Path(__file__).resolve().parent.parent / "ks3sync")
    scale = build_scale(args)
    try:
        selected = select_workloads(args.only)
    except ValueError as exc:
        raise SystemExit(str(exc)) from exc
    if scale.large is None and "W4-100k" in selected:
        selected.remove("W4-100k")
        log("W4-100k is skipped in --quick mode")
    peers = pick_peers(args.tools)
    runnable: list[Peer] = []
    skipped: dict[str, str] = {}
    for p in peers:
        why = p.missing()
        if why is None:
            runnable.append(p)
        else:
            skipped[p.name] = why
            log(f"skipping {p.name}: {why}")
    started = dt.datetime.now(dt.UTC)
    machine = machine_info()
    versions = {p.name: p.version() for p in runnable}

    own_workdir = args.workdir is None
    data = args.data_dir.resolve()
    data.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="run-", dir=data)) if own_workdir else args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()
    rows: dict[tuple[str, str], Row] = {}
    limits: Limits | None = None
    daemon: DaemonResult | None = None
    try:
        base = data / f"small-{scale.small.files}"
        big_dir = data / f"big-{scale.big_size >> 20}m"
        log(f"data: {scale.small.files} x {scale.small.size} B files, {scale.big_size >> 20} MiB file")
        make_tree(base, scale.small)
        make_big_file(big_dir / "file.bin", scale.big_size)
        base_digest = tree_digest(base)
        big_digest = big_file_digest(big_dir)

        with LocalServer(workdir / "server-root", workdir / "requests.jsonl", CREDS,
                         quiet_log=workdir / "server.log") as server:
            log(f"local-server at {server.endpoint} (root {workdir / 'server-root'})")
            if not args.no_limits:
                limits = measure_limits(server.mini, server.endpoint, CREDS.access_key, CREDS.secret_key,
                                        "limits", big_dir / "file.bin", base, log, server.cpu_seconds)
                log("limits: " + ", ".join(f"{k}={v:.0f}" for k, v in limits.as_dict().items()))
            runner = Runner(scale=scale, workdir=workdir, server=server, peers=runnable, selected=selected,
                            runs=scale.runs, log=log)
            for name, why in skipped.items():
                for w in selected:
                    runner.row(w, name).skipped = why
            log("small chain: " + ", ".join(w for w in ("W1", "W4-2k", "W3") if w in selected))
            runner.run_small_chain(base, base_digest)
            log("large file: " + ", ".join(w for w in ("W2", "W2e") if w in selected))
            runner.run_big(big_dir, big_digest)
            log("restore: " + ", ".join(w for w in ("W5-W1", "W5-W2") if w in selected))
            runner.run_restore(base, base_digest, big_dir, big_digest)
            if "W4-100k" in selected and scale.large is not None:
                large = data / f"small-{scale.large.files}"
                log(f"W4-100k: generating {scale.large.files} files")
                make_tree(large, scale.large)
                wanted = {p.name for p in pick_peers(args.large_tools or args.tools)}
                runner.run_w4_large(large, tree_digest(large), [p for p in runnable if p.name in wanted])
            if "W6" in selected:
                why = command_missing("run")
                if not any(p.name == "ks3sync" for p in runnable):
                    log("W6 needs ks3sync in --tools; skipped")
                elif why is not None:
                    log(f"W6 skipped: {why}")
                else:
                    daemon = run_daemon_workload(server, workdir / "w6", scale.daemon_files, log=log)
            rows = runner.rows
    finally:
        if own_workdir:
            shutil.rmtree(workdir, ignore_errors=True)

    ordered = sorted(rows.values(), key=lambda r: (_order(r.workload), _tool_order(r.tool, peers)))
    table = table_rows(ordered, scale, limits)
    goals = evaluate_goals(rows, scale, limits)
    elapsed = time.monotonic() - t_start
    print(render_text(table))
    if limits is not None:
        print("\nmachine limits: " + ", ".join(f"{k}={v:.0f}" for k, v in limits.as_dict().items()))
    if daemon is not None:
        print("\n" + daemon.render())
    print("\ngoals (issue 7):\n" + render_goals(goals))
    print(f"\ntotal {elapsed:.0f} s")
    markdown = args.markdown
    if markdown is None:
        partial = any(v is not None for v in (args.only, args.tools, args.files, args.big_mib, args.daemon_files))
        # A partial run (someone profiling one workload) must not replace the published page.
        markdown = "-" if partial else str(DEFAULT_MARKDOWN)
        if partial:
            log("partial run: docs/benchmarks.md left alone (use --markdown PATH to write a report)")
    if markdown != "-":
        write_markdown(Path(markdown), started=started, elapsed_s=elapsed, argv=sys.argv[1:] if argv is None
                       else argv, scale=scale, machine=machine, versions=versions, peers=runnable,
                       table_md=render_markdown(table), mix_md=render_request_mix(ordered), limits=limits, goals=goals, daemon=daemon,
                       skipped=skipped, workloads=selected, append=args.append)
        log(f"wrote {markdown}")
    return 0


def _order(workload: str) -> int:
    from bench.runner import WORKLOADS

    return WORKLOADS.index(workload) if workload in WORKLOADS else len(WORKLOADS)


def _tool_order(tool: str, peers: list[Peer]) -> int:
    names = [p.name for p in peers]
    return names.index(tool) if tool in names else len(names)


if __name__ == "__main__":
    sys.exit(main())
