"""`python -m bench`: ks3sync against rclone, aws s3 sync, s3cmd and the official SDK on one local-server.

Owns: the command line and the order of sessions (one per server latency) and of what follows them
(report, JSON results). Every tool runs as its own process; the harness itself never imports ks3sync's
engine (only `ks3sync local-server` and `ks3sync mirror|run` are executed as commands).

    python -m bench                      # full: 3 runs each, W4 at 100,000 files, W3 at 20,000, 1 GiB W2
    python -m bench --quick              # < 5 minutes: 1 run, 500 files, 64 MiB, no W3-20k / W4-100k
    python -m bench --latency-ms 0,20    # every workload at 0 ms, then against a 20 ms link
    python -m bench --latency-ms 20 --only W1,W1-throttled,W3 --tools ks3sync,rclone-tuned --runs 2
    python -m bench --compare before.json after.json
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

from bench.docs import SessionReport, write_markdown
from bench.goals import evaluate_issue16
from bench.measure import compile_bytecode
from bench.peers import Peer, all_peers, variants
from bench.report import (
    evaluate_goals,
    machine_info,
    render_goals,
    render_markdown,
    render_request_mix,
    render_text,
    render_throttled,
    table_rows,
)
from bench.results import ResultsError, load_results, render_compare, write_results
from bench.runner import FULL, QUICK, WORKLOADS, Scale, mutation_for, select_workloads
from bench.server import Credentials
from bench.session import (
    DEFAULT_THROTTLE_INFLIGHT,
    Data,
    SessionPlan,
    SessionResult,
    run_session,
    session_workloads,
)
from bench.workloads import TreeSpec

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MARKDOWN = REPO / "docs" / "benchmarks.md"
# Not under /tmp: a shared machine's /tmp gets swept by other people's clean-ups mid-run.
DEFAULT_DATA = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ks3sync-bench"
CREDS = Credentials("AKLTbenchAccessKey01", "benchSecretKey/0123456789+abcdef")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument(
        "--quick", action="store_true", help="smaller counts, 1 run, no W3-20k / W4-100k (< 5 min)"
    )
    ap.add_argument(
        "--only",
        help=f"comma-separated workloads ({', '.join(WORKLOADS)}); a family name selects "
        "its members (W4 = W4-2k,W4-100k; W5 = W5-W1,W5-W2)",
    )
    ap.add_argument("--tools", help="comma-separated tools: " + ",".join(p.name for p in all_peers()))
    ap.add_argument(
        "--large-tools",
        help="tools for W3-20k and W4-100k only (default: --tools); seeding "
        "those trees costs each tool minutes (aws s3 sync ~20 min for 100,000 files here)",
    )
    ap.add_argument(
        "--latency-ms",
        default="0",
        metavar="N[,N...]",
        help="run every workload against a local-server answering each request N ms late; a list "
        "runs one session per value (default: %(default)s)",
    )
    ap.add_argument(
        "--throttle-inflight",
        type=int,
        default=DEFAULT_THROTTLE_INFLIGHT,
        metavar="N",
        help="W1-throttled's server refuses requests beyond N in flight (default: %(default)s)",
    )
    ap.add_argument("--runs", type=int, help="timed runs per (tool, workload); the median is reported")
    ap.add_argument("--files", type=int, help="override the small-tree file count (tests)")
    ap.add_argument(
        "--large-files",
        type=int,
        help="override the W3-20k and W4-100k tree sizes, and run them in --quick mode too (tests)",
    )
    ap.add_argument("--big-mib", type=int, help="override the large file size in MiB (tests)")
    ap.add_argument("--daemon-files", type=int, help="override W6's tracked-file count")
    ap.add_argument(
        "--workdir",
        type=Path,
        help="keep this run's buckets, copies and logs here (default: a "
        "fresh folder under the data dir, removed at the end)",
    )
    ap.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA,
        help="generated source trees and files, reused across runs (default: %(default)s)",
    )
    ap.add_argument(
        "--markdown",
        help="where to write the report ('-' to skip). Default: docs/benchmarks.md for a run "
        "of every tool and workload (quick or full); partial runs write no report unless asked",
    )
    ap.add_argument(
        "--append",
        action="store_true",
        help="add this run as a section at the end of --markdown instead of replacing it",
    )
    ap.add_argument(
        "--json",
        help="where to write every run's numbers as JSON ('-' to skip; default: "
        "DATA_DIR/results/UTC-TIMESTAMP.json)",
    )
    ap.add_argument(
        "--compare",
        nargs=2,
        type=Path,
        metavar=("A.json", "B.json"),
        help="print a before/after table of two --json results files and exit",
    )
    ap.add_argument("--no-limits", action="store_true", help="skip measuring the machine's ceilings")
    return ap.parse_args(argv)


def parse_latencies(spec: str) -> list[float]:
    values: list[float] = []
    for token in (t.strip() for t in spec.split(",") if t.strip()):
        try:
            value = float(token)
        except ValueError:
            raise SystemExit(f"--latency-ms: {token!r} is not a number of milliseconds") from None
        if value < 0 or value != value:
            raise SystemExit(f"--latency-ms: {token!r} must be >= 0")
        if value not in values:
            values.append(value)
    if not values:
        raise SystemExit("--latency-ms needs at least one value")
    return values


def build_scale(args: argparse.Namespace) -> Scale:
    scale = QUICK if args.quick else FULL
    if args.runs is not None:
        if args.runs < 1:
            raise SystemExit("--runs must be >= 1")
        scale = dataclasses.replace(scale, runs=args.runs)
    if args.files is not None:
        n = args.files
        scale = dataclasses.replace(
            scale, small=TreeSpec(n, min(20, n), scale.small.size), mutation=mutation_for(n)
        )
    if args.large_files is not None:
        n = args.large_files
        scale = dataclasses.replace(
            scale,
            large=TreeSpec(n, max(1, min(100, n // 100)), scale.small.size),
            w3_large=TreeSpec(n, max(1, min(200, n // 100)), scale.small.size),
            w3_large_mutation=mutation_for(n),
        )
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
    if args.compare:
        try:
            print(render_compare(load_results(args.compare[0]), load_results(args.compare[1])))
        except ResultsError as exc:
            raise SystemExit(str(exc)) from exc
        return 0
    compile_bytecode(Path(__file__).resolve().parent.parent / "ks3sync")
    scale = build_scale(args)
    latencies = parse_latencies(args.latency_ms)
    if args.throttle_inflight < 1:
        raise SystemExit("--throttle-inflight must be >= 1")
    try:
        selected = select_workloads(args.only)
        explicit = select_workloads(args.only) if args.only else []
    except ValueError as exc:
        raise SystemExit(str(exc)) from exc
    for name, spec in (("W3-20k", scale.w3_large), ("W4-100k", scale.large)):
        if spec is None and name in selected:
            selected.remove(name)
            log(f"{name} is skipped in --quick mode (--large-files N runs it)")
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
    large_names = {p.name for p in pick_peers(args.large_tools or args.tools)}
    started = dt.datetime.now(dt.UTC)
    load_at_start = os.getloadavg()[0]
    machine = machine_info()
    versions = {p.name: p.version() for p in runnable}
    tool_variants = variants(peers)

    own_workdir = args.workdir is None
    data_dir = args.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="run-", dir=data_dir)) if own_workdir else args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()
    results: list[SessionResult] = []
    try:
        data = Data(data_dir, scale, log)
        for latency in latencies:
            plan = SessionPlan(
                latency_ms=latency,
                selected=session_workloads(selected, latency, explicit),
                peers=runnable,
                large_peers=[p for p in runnable if p.name in large_names],
                skipped=skipped,
                measure_limits=not args.no_limits and latency == 0,
                throttle_inflight=args.throttle_inflight,
            )
            log(f"session at {latency:g} ms: {', '.join(plan.selected)}")
            results.append(
                run_session(
                    plan,
                    scale=scale,
                    data=data,
                    workdir=workdir / f"latency-{latency:g}ms",
                    creds=CREDS,
                    log=log,
                )
            )
    finally:
        if own_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.monotonic() - t_start

    reports: list[SessionReport] = []
    for res in results:
        ordered = sorted(res.rows.values(), key=lambda r: (_order(r.workload), _tool_order(r.tool, peers)))
        table = table_rows(ordered, scale, res.limits, tool_variants)
        goals = evaluate_issue16(res.rows, scale, res.latency_ms, tool_variants, res.max_inflight)
        goals7 = evaluate_goals(res.rows, scale, res.limits, tool_variants) if res.latency_ms == 0 else []
        throttled = render_throttled(ordered, res.max_inflight, res.latency_ms) if res.max_inflight else None
        print(f"\n== server latency {res.latency_ms:g} ms ==\n" + render_text(table))
        if throttled:
            print("\n" + throttled)
        if res.limits is not None:
            print("\nmachine limits: " + ", ".join(f"{k}={v:.0f}" for k, v in res.limits.as_dict().items()))
        if res.daemon is not None:
            print("\n" + res.daemon.render())
        print(f"\ngoals at {res.latency_ms:g} ms (issue 16):\n" + render_goals(goals))
        if goals7:
            print("\ngoals (issue 7):\n" + render_goals(goals7))
        reports.append(
            SessionReport(
                res.latency_ms,
                render_markdown(table),
                render_request_mix(ordered),
                throttled,
                res.limits,
                res.daemon,
                goals,
                goals7,
            )
        )
    print(f"\ntotal {elapsed:.0f} s")
    run_argv = sys.argv[1:] if argv is None else argv
    json_path = args.json or str(data_dir / "results" / f"{started:%Y%m%dT%H%M%SZ}.json")
    if json_path != "-":
        write_results(
            Path(json_path),
            started=started.isoformat(timespec="seconds"),
            elapsed_s=elapsed,
            argv=run_argv,
            machine=machine,
            versions=versions,
            variants=tool_variants,
            scale=scale,
            sessions=[
                (res.latency_ms, res.max_inflight, list(res.rows.values()), res.limits, res.daemon, rep.goals)
                for res, rep in zip(results, reports, strict=True)
            ],
        )
        log(f"wrote {json_path}")
    markdown = args.markdown
    if markdown is None:
        partial = any(
            v is not None
            for v in (args.only, args.tools, args.files, args.big_mib, args.daemon_files, args.large_files)
        )
        # A partial run (someone profiling one workload) must not replace the published page.
        markdown = "-" if partial else str(DEFAULT_MARKDOWN)
        if partial:
            log("partial run: docs/benchmarks.md left alone (use --markdown PATH to write a report)")
    if markdown != "-":
        write_markdown(
            Path(markdown),
            started=started,
            elapsed_s=elapsed,
            argv=run_argv,
            scale=scale,
            machine=machine,
            versions=versions,
            peers=runnable,
            sessions=reports,
            skipped=skipped,
            workloads=selected,
            load_at_start=load_at_start,
            append=args.append,
        )
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
