"""What ``ks3sync check`` costs against ``rclone check`` (docs/decisions.md D14): the 2,000-file tree on a
slow link, one file edited locally at the same size so that every run must find exactly one difference.

    python -m bench.check_cost                    # --latency-ms 20, 3 rounds, 2,000 x 4 KiB files
    python -m bench.check_cost --latency-ms 0 --rounds 5

Runs, in an order that rotates each round: ``ks3sync check`` (metadata: sizes from the listing, the MD5
of every file against its single-PUT ETag; no journal), ``ks3sync check --download`` (as installed, 8
jobs, and with ``--jobs 32``), and ``rclone check --checkers 32`` with and without ``--download`` (the
issue-16 tuning of rclone's S3 page; the remote as bench.peers.rclone defines it). Every run must exit 1
(a difference found); a run that exits otherwise stops the benchmark. The table gives each run's wall
time, CPU and the requests the server logged from it, by operation (they do not depend on load).

Owns: a ``ks3sync local-server --no-fsync --latency-ms N`` subprocess (bench.server) and the folders
under --work. Must not import: ks3sync (the tools are driven as a user runs them).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from bench.measure import compile_bytecode
from bench.peers.rclone import REMOTE
from bench.profile_mirror import BUCKET, CREDS, run_child
from bench.server import LocalServer
from bench.versions_cost import Row, ks3sync_argv, print_table
from bench.workloads import TreeSpec, copy_tree, make_tree

PREFIX = "check/"
EDITED = 0  # the index of the file edited locally (its size kept)


def rclone_argv(server: LocalServer, conf: Path, src: Path, *extra: str) -> list[str]:
    """``rclone check`` through ``env``: the remote is defined by environment variables, AWS_CA_BUNDLE
    unset (rclone refuses to start with it), as bench.peers.rclone runs it."""
    p = f"RCLONE_CONFIG_{REMOTE}_"
    env = [
        f"{p}TYPE=s3",
        f"{p}PROVIDER=Other",
        f"{p}ENDPOINT={server.endpoint}",
        f"{p}ACCESS_KEY_ID={CREDS.access_key}",
        f"{p}SECRET_ACCESS_KEY={CREDS.secret_key}",
        f"{p}FORCE_PATH_STYLE=true",
        f"{p}REGION=us-east-1",
    ]
    return [
        "env",
        "-u",
        "AWS_CA_BUNDLE",
        *env,
        "rclone",
        "check",
        "--config",
        str(conf),
        "--checkers",
        "32",
        *extra,
        str(src),
        f"{REMOTE}:{BUCKET}/{PREFIX}",
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "ks3sync-check-bench")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--latency-ms", type=float, default=20.0)
    args = ap.parse_args()
    if shutil.which("rclone") is None:
        raise SystemExit("rclone is not installed")
    compile_bytecode(Path(__file__).resolve().parent.parent / "ks3sync")
    spec = TreeSpec(args.files, min(20, args.files), 4096)
    work: Path = args.work
    shutil.rmtree(work / "server", ignore_errors=True)
    (work / "runs").mkdir(parents=True, exist_ok=True)
    log = work / "runs.log"
    tree = work / "trees" / f"w1-{spec.files}"
    make_tree(tree, spec)
    src = work / "runs" / "src"
    shutil.rmtree(src, ignore_errors=True)
    copy_tree(tree, src)
    conf = work / "rclone.conf"
    conf.touch()
    state = Path(tempfile.mkdtemp(prefix="state-", dir=work / "runs"))
    rows: list[Row] = []
    with LocalServer(
        work / "server",
        work / "requests.jsonl",
        CREDS,
        quiet_log=work / "server.log",
        latency_ms=args.latency_ms,
    ) as server:
        server.mini.create_bucket(BUCKET)
        seeded = run_child(
            "seed",
            ks3sync_argv(
                "mirror",
                str(src),
                f"ks3://{BUCKET}/{PREFIX}",
                "--endpoint",
                server.endpoint,
                "--state-db",
                str(state / "journal.db"),
            ),
            server,
            log,
        )
        endpoint = ["--endpoint", server.endpoint, "--state-db", str(state / "none.db")]  # no journal
        if seeded.returncode != 0:
            raise SystemExit(f"seeding failed; see {log}")
        edited = src / spec.rel_path(EDITED)
        data = bytearray(edited.read_bytes())
        data[0] ^= 0xFF
        edited.write_bytes(bytes(data))
        runs = {
            "ks3sync check": ks3sync_argv("check", str(src), f"ks3://{BUCKET}/{PREFIX}", *endpoint),
            "ks3sync check --dl": ks3sync_argv(
                "check", str(src), f"ks3://{BUCKET}/{PREFIX}", *endpoint, "--download"
            ),
            "ks3sync --dl --jobs 32": ks3sync_argv(
                "check", str(src), f"ks3://{BUCKET}/{PREFIX}", *endpoint, "--download", "--jobs", "32"
            ),
            "rclone check -c32": rclone_argv(server, conf, src),
            "rclone check -c32 --dl": rclone_argv(server, conf, src, "--download"),
        }
        names = list(runs)
        for number in range(args.rounds):
            shift = number % len(names)
            for name in names[shift:] + names[:shift]:
                start = server.mark()
                result = run_child(name, runs[name], server, log)
                end = server.mark()
                if result.returncode != 1:
                    raise SystemExit(f"{name} exited {result.returncode}, not 1 (one difference); see {log}")
                rows.append(Row(name, result, server.stats_between(start, end)))
            print(f"round {number + 1}/{args.rounds} done (load {os.getloadavg()[0]:.1f})", file=sys.stderr)
    print(
        f"\n{spec.files} files of {spec.size} bytes in {spec.folders} folders, --latency-ms {args.latency_ms:g}, "
        f"one file edited locally"
    )
    print_table(rows)
    (work / "requests.jsonl").unlink(missing_ok=True)
    shutil.rmtree(state, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
