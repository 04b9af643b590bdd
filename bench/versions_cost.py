"""What versions cost (docs/versions.md, docs/decisions.md D15): W3 with and without ``--keep-versions``,
and a ``restore --as-of`` of the 2,000-file tree against a plain restore, interleaved A/B and printed as
one table with each run's numbers and the request counts by operation (which do not depend on load).

    python -m bench.versions_cost                 # 3 rounds of W3 A/B, then restore A/B per round
    python -m bench.versions_cost --rounds 5 --files 2000

Each round: a fresh prefix and journal; W1 (untimed seed), the W3 mutation, then W3 timed plain (A) or
with versions (B), alternating which goes first; after B, a plain ``mirror ks3://… DIR`` (the current
state, 1,980 files) and ``restore ks3://… DIR --as-of <W3's pass>`` (the W1 state, 2,000 files, 100 of
them from versions) into fresh folders, again alternating.

Owns: a ``ks3sync local-server --no-fsync`` subprocess (bench.server), the runs' folders under --work.
Must not import: ks3sync (the tool is driven as a user runs it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.measure import compile_bytecode
from bench.profile_mirror import BUCKET, CREDS, Measured, median, run_child
from bench.server import LocalServer, RequestStats
from bench.workloads import TreeSpec, apply_mutation, copy_tree, make_tree, plan_mutation


@dataclass(frozen=True)
class Row:
    name: str
    measured: Measured
    requests: RequestStats


def ks3sync_argv(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("ks3sync")), *args]


def measured(server: LocalServer, name: str, argv: list[str], log: Path) -> Row:
    start = server.mark()
    result = run_child(name, argv, server, log)
    end = server.mark()
    if result.returncode != 0:
        raise SystemExit(f"{name} failed (exit {result.returncode}); see {log}")
    return Row(name, result, server.stats_between(start, end))


def one_round(
    server: LocalServer, work: Path, spec: TreeSpec, mutation: tuple[int, int, int], number: int, log: Path
) -> list[Row]:
    tree = work / "trees" / f"w1-{spec.files}"
    make_tree(tree, spec)
    rows: list[Row] = []
    order = ("A", "B") if number % 2 == 0 else ("B", "A")
    stamp = ""
    prefix_b = ""
    for side in order:
        src = work / "runs" / f"src-{number}-{side}"
        copy_tree(tree, src)
        state = Path(tempfile.mkdtemp(prefix=f"state-{number}-{side}-", dir=work / "runs"))
        prefix = f"v-{os.getpid()}-{number}-{side}/"
        versions = ["--keep-versions", ".versions/"] if side == "B" else []
        common = ["--endpoint", server.endpoint, "--state-db", str(state / "journal.db"), "--delete"]
        run_child(
            "seed",
            ks3sync_argv("mirror", str(src), f"ks3://{BUCKET}/{prefix}", *common, *versions),
            server,
            log,
        )
        apply_mutation(src, plan_mutation(spec, *mutation), spec.size)
        name = "W3 --keep-versions" if side == "B" else "W3 plain"
        rows.append(
            measured(
                server,
                name,
                ks3sync_argv("mirror", str(src), f"ks3://{BUCKET}/{prefix}", *common, *versions),
                log,
            )
        )
        if side == "B":
            prefix_b = prefix
            stamp = _last_pass(server, prefix)
        shutil.rmtree(src, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)
    for kind in ("plain", "as-of") if number % 2 == 0 else ("as-of", "plain"):
        dest = work / "runs" / f"restore-{number}-{kind}"
        state = Path(tempfile.mkdtemp(prefix=f"rstate-{number}-{kind}-", dir=work / "runs"))
        common = ["--endpoint", server.endpoint, "--state-db", str(state / "journal.db")]
        if kind == "plain":
            argv = ks3sync_argv("mirror", f"ks3://{BUCKET}/{prefix_b}", str(dest), *common)
            rows.append(measured(server, "restore (mirror, now)", argv, log))
        else:
            argv = ks3sync_argv("restore", f"ks3://{BUCKET}/{prefix_b}", str(dest), "--as-of", stamp, *common)
            rows.append(measured(server, "restore --as-of W3", argv, log))
        shutil.rmtree(dest, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)
    return rows


def _last_pass(server: LocalServer, prefix: str) -> str:
    out = subprocess.run(
        ks3sync_argv("versions", f"ks3://{BUCKET}/{prefix}", "--endpoint", server.endpoint, "--json"),
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "KS3_ACCESS_KEY": CREDS.access_key, "KS3_SECRET_KEY": CREDS.secret_key},
    )
    passes = json.loads(out.stdout)["passes"]
    if len(passes) != 1:
        raise SystemExit(f"expected one pass with versions under {prefix}, found {len(passes)}")
    return str(passes[0]["pass"])


def print_table(rows: list[Row]) -> None:
    by_name: dict[str, list[Row]] = {}
    for row in rows:
        by_name.setdefault(row.name, []).append(row)
    print(
        f"\n{'run':<22} {'n':>2} {'wall s (median; each)':<32} {'user+sys s':>10} {'server s':>8} "
        f"{'requests':>8}  by operation"
    )
    for name, group in by_name.items():
        walls = [r.measured.wall_s for r in group]
        cpu = median([r.measured.user_s + r.measured.sys_s for r in group])
        server_cpu = median([r.measured.server_cpu_s for r in group])
        ops = group[0].requests.by_op
        same = all(r.requests.by_op == ops for r in group)
        wall = f"{median(walls):.2f} ({', '.join(f'{w:.2f}' for w in walls)})"
        requests = ", ".join(f"{op} {n}" for op, n in sorted(ops.items())) + ("" if same else " (varied)")
        print(
            f"{name:<22} {len(group):>2} {wall:<32} {cpu:>10.2f} {server_cpu:>8.2f} "
            f"{group[0].requests.requests:>8}  {requests}"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "ks3sync-versions-bench")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--files", type=int, default=2000, help="files in the tree (W3's proportions are kept)")
    args = ap.parse_args()
    compile_bytecode(Path(__file__).resolve().parent.parent / "ks3sync")
    n = args.files
    spec = TreeSpec(n, min(20, n), 4096)
    mutation = (max(1, n * 50 // 2000), max(1, n * 20 // 2000), max(1, n * 30 // 2000))
    work: Path = args.work
    (work / "runs").mkdir(parents=True, exist_ok=True)
    log = work / "runs.log"
    rows: list[Row] = []
    with LocalServer(
        work / "server", work / "requests.jsonl", CREDS, quiet_log=work / "server.log"
    ) as server:
        if not (work / "bucket.created").exists():
            server.mini.create_bucket(BUCKET)
            (work / "bucket.created").write_text("ok")
        for number in range(args.rounds):
            rows += one_round(server, work, spec, mutation, number, log)
            print(f"round {number + 1}/{args.rounds} done (load {os.getloadavg()[0]:.1f})", file=sys.stderr)
    print_table(rows)
    (work / "requests.jsonl").unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
