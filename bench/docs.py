"""Writes docs/benchmarks.md: machine, versions, date, command, then per server latency the table, the
request mix, the throttled W1, limits, the daemon and the goals; then methodology and how each tool runs.

Owns: the report's prose. Must not import: ks3sync. Everything numeric comes from the caller.
"""

from __future__ import annotations

import datetime as dt
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.daemon_latency import DEBOUNCE, DaemonResult
from bench.limits import Limits
from bench.peers import Peer
from bench.report import Goal, render_goals
from bench.runner import Scale

METHODOLOGY = """\
- **One server for everyone.** A single `ks3sync local-server --no-fsync` subprocess (fresh root in a
  temp dir, request log on) serves every tool in the session; without an fsync per object the disk
  does not hide differences between clients (a real KS3 is never the bottleneck of one client).
- **A slow link.** `--latency-ms N` starts that server with `--latency-ms N`: every request, whatever
  its kind (object PUT/GET/HEAD, listings, deletes, multipart steps, bucket checks, errors), is
  answered N ms late, as over a link with that round trip, so tools that send more or serialised
  requests pay for them as they would against KS3. Each latency in the list is its own session with
  its own server; ratios are only ever taken within one session.
- **Peers twice.** rclone and the aws cli run as installed and with their documented small-file tuning
  (`rclone-tuned`, `aws-tuned`; see "How each tool is run"). s3cmd has no concurrency setting and the
  SDK script is run as written: each runs once and stands as its own tuned variant. Issue 16's goals
  compare ks3sync (its defaults, always) with the fastest *tuned* peer; issue 7's (0 ms) with the
  fastest peer as installed.
- **Throttling.** W1-throttled is W1 against a second server started with `--max-inflight N` (16
  unless `--throttle-inflight` says otherwise) at the session's latency: requests beyond N in flight
  (the latency included) get `503 SlowDown`. Every run is recorded, failed ones too; the table says
  whether the bucket ended an exact mirror and what share of the tool's requests were refused
  (request-log lines marked `fault: throttle`). It runs in sessions with a latency above 0 (or when
  named in `--only`).
- **CPU per request.** "CPU ms/req" is the tool's CPU time (user + system) divided by the requests the
  server saw from it, for the workloads made of many small requests (W1, W1-throttled, W3, W3-20k,
  W5-W1); it includes the tool's start-up and its local work (walk, hashing).
- **Each tool invocation is its own process.** Wall time is measured around the child; CPU seconds
  (user + system) come from `os.wait4` on that child, so the harness's and the server's own work are
  not included. Peak RSS is GNU `time -f %M` of the tool: `ru_maxrss` from `wait4` would include the
  harness's own peak, which Linux carries into a child across fork and exec (runs before 2026-11-25
  20:00 UTC reported that floor, e.g. ~134 MB for every tool at W4-100k). The server's CPU for the
  same interval is shown apart ("server CPU s", from `/proc/PID/stat`).
- **Requests, MB in/out** are counted from the server's request log between two marker requests that
  the harness sends just before and just after the tool runs (the markers themselves are excluded).
  "MB in" is request bodies received by the server (uploaded data), "MB out" response bodies sent.
- **Correctness before timing.** After each run the bucket listing (or the restored folder) is
  compared with the source: same key set, same sizes, same MD5 per object (the ETag when it is a
  plain MD5, otherwise the object is downloaded and hashed; encrypted objects are downloaded,
  decrypted with the SDK's format and the plaintext hashed). A run that does not leave an exact
  mirror, exits non-zero or times out is reported FAILED and not timed. The check uses the harness's
  own 150-line client (`bench/ks3mini.py`), not ks3sync's.
- **Same starting state for every run.** Small-file chain per tool and run: fresh bucket and journal
  -> W1 (first upload) -> W4-2k (re-run, nothing changed) -> W3 (after modifying, deleting and
  renaming files in the run's private copy of the tree, with delete semantics). Steps not selected
  still run untimed to build the next step's state. W3-20k: the 20,000-file tree (200 folders) is
  uploaded once per tool (untimed); each run applies its mutation (500 modified, 200 deleted, 300
  renamed) and times the sync, and before each later run the mutation is undone and synced back
  (untimed, checked), reverted files carrying a fresh mtime so that mtime-comparing tools see them.
  W2/W2e: fresh bucket and journal per run, the file
  read once before each run so the page cache is equally warm for every tool, and (W2, W2e, W5)
  `sync` before each run so nobody pays for an earlier step's disk writeback. W5: restore from one
  bucket seeded by the harness with plain PUTs into an empty folder. W4-100k: one untimed seeding
  upload per tool, then timed re-runs.
- **Wall time is the median** of the runs; so are the other columns (each independently). Every run's
  numbers are also written as JSON (`--json`, by default under the data dir's `results/`);
  `python -m bench --compare A.json B.json` prints a before/after table from two such files.
- **Fixed seeds.** File contents come from `random.Random(seed)` (seeds in `bench/workloads.py`), so
  every machine uploads the same bytes; W3 changes the same files every time.
- **% of limit** = the time this machine's ceiling needs for the workload's minimal work, divided by
  the measured wall time (100% = as fast as the ceiling). Ceilings are measured in the same session
  (best of a few repetitions): MD5 and AES-128-CBC in-process, disk read of the large file (warm page
  cache, and cold after `posix_fadvise(DONTNEED)`), an `os.walk`+`stat` rate over the small tree, and
  what the local-server sustains from the harness's simple httpx client (2 processes x 4 threads of
  4 KiB PUTs, then GETs of them; large PUT as one stream and as 4 parallel streams, the better counts;
  one-stream GET; one stream of read + AES-CBC + MD5 + PUT for W2e). These ceilings are those of a
  plain Python client on the same 2 cores, so a lean native client (rclone is Go) can exceed 100%. W1/W5-W1 use the
  small PUT (W1) or GET (W5-W1) rate, W4 the stat-walk rate, W3 both, W2 min(disk read warm, MD5, PUT ingest), W2e the
  encrypt+MD5+PUT stream, W5-W2 min(MD5, GET egress). The ceilings are measured in the 0 ms session only
  (on a slow link the round trips, not the machine, are the limit).
- **Shared machine.** This machine has 2 cores, shared by the server, the tool under test, and (when
  these numbers were taken) several engineers building and testing concurrently; the load average
  at the start of the session is recorded above. Expect run-to-run noise of tens of percent; compare
  tools within one table, not across tables.
"""


BUSY_LOAD = 1.0  # 1-minute load average at the start above which the page warns (2 cores)


@dataclass(frozen=True)
class SessionReport:
    """One latency's part of the page, already rendered by the caller."""

    latency_ms: float
    table_md: str
    mix_md: str
    throttled_md: str | None
    limits: Limits | None
    daemon: DaemonResult | None
    goals: Sequence[Goal]  # issue 16
    goals_issue7: Sequence[Goal]  # at 0 ms only; empty otherwise


def write_markdown(
    path: Path,
    *,
    started: dt.datetime,
    elapsed_s: float,
    argv: Sequence[str],
    scale: Scale,
    machine: Mapping[str, str],
    versions: Mapping[str, str],
    peers: Sequence[Peer],
    sessions: Sequence[SessionReport],
    skipped: Mapping[str, str],
    workloads: Sequence[str],
    load_at_start: float,
    append: bool = False,
) -> None:
    cmd = "python -m bench" + ("" if not argv else " " + shlex.join(argv))
    h = "##" if append else "#"  # an appended run is a section of the page, one level down
    latencies = ", ".join(f"{s.latency_ms:g} ms" for s in sessions)
    out: list[str] = [
        f"{h} "
        + (
            f"Additional run, {started:%Y-%m-%d %H:%M} UTC"
            if append
            else "Benchmarks: ks3sync against rclone, aws s3 sync, s3cmd and the official SDK"
        ),
        "",
    ]
    if load_at_start >= BUSY_LOAD:
        out += [
            f"> **Load average {load_at_start:.2f} at start: these numbers are not comparable** with a quiet "
            "machine's (other work shared the 2 cores); they show that every cell runs, not how fast.",
            "",
        ]
    out += [
        "Generated by `python -m bench` (see `bench/__main__.py`); re-run it to refresh this page. "
        "`python -m bench --quick` takes under 5 minutes; the full set takes much longer (W4 at "
        "100,000 files seeds every tool first). `python -m bench --latency-ms 0,20` runs every workload at "
        "0 ms and again against a server that answers every request 20 ms late.",
        "",
        f"- date: {started:%Y-%m-%d %H:%M} UTC, {elapsed_s:.0f} s",
        f"- command: `{cmd}`",
        f"- server latency: {latencies}",
        f"- mode: {scale.name}; {scale.runs} timed run(s) per cell; small tree {scale.small.files} files x "
        f"{scale.small.size} B in {scale.small.folders} folders; W3 = modify {scale.mutation[0]}, delete "
        f"{scale.mutation[1]}, rename {scale.mutation[2]}; large file {scale.big_size >> 20} MiB"
        + (
            f"; W3-20k tree {scale.w3_large.files} files in {scale.w3_large.folders} folders, modify "
            f"{scale.w3_large_mutation[0]}, delete {scale.w3_large_mutation[1]}, rename {scale.w3_large_mutation[2]}"
            if scale.w3_large and "W3-20k" in workloads
            else "; W3-20k not run"
        )
        + (
            f"; W4-100k tree {scale.large.files} files"
            if scale.large and "W4-100k" in workloads
            else "; W4-100k not run"
        ),
        "",
        "## Machine",
        "",
        *[f"- {k}: {v}" for k, v in machine.items()],
        "",
        "## Tool versions",
        "",
        *[f"- {name}: {v}" for name, v in versions.items()],
        *[f"- {name}: skipped ({why})" for name, why in skipped.items()],
        "",
    ]
    for session in sessions:
        out += _session_section(session)
    if not append:  # an appended run shares the page's methodology and tool notes
        out += ["## Methodology", "", METHODOLOGY, "## How each tool is run", ""]
        out += [f"- **{p.name}**: {p.notes}" for p in peers]
    out.append("")
    if append:
        out = [line.replace("## ", f"{h}# ", 1) if line.startswith("## ") else line for line in out]
    text = "\n".join(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    if append and path.exists():
        text = path.read_text().rstrip("\n") + "\n\n---\n\n" + text
    path.write_text(text)


def _session_section(s: SessionReport) -> list[str]:
    at = f"{s.latency_ms:g} ms"
    out = [
        f"## Results at {at}",
        "",
        "Workloads: W1 first upload of the small tree (W1-throttled: the same against a server that refuses "
        "requests beyond N in flight); W2 one large file (W2e: client-side encrypted, SDK format); W3 "
        "incremental after modify/delete/rename with delete semantics (W3-20k: on the 20,000-file tree); W4 "
        "re-run with nothing changed (2k and 100k files); W5 restore (download) of the small tree and of the "
        "large file; W6 the daemon. \"vs fastest tuned peer\" is that peer's wall time over ks3sync's "
        "(above 1 = ks3sync faster).",
        "",
        s.table_md,
        "",
        "Requests each tool sent, by operation (from the server's request log):",
        "",
        s.mix_md,
        "",
    ]
    if s.throttled_md:
        out += [f"### Throttled W1 at {at}", "", s.throttled_md, ""]
    if s.limits is not None:
        limits = s.limits
        out += [
            "### This machine's limits (measured in the same session)",
            "",
            "| ceiling | value |",
            "|---|---|",
            f"| MD5 | {limits.md5_mb_s:.0f} MB/s |",
            f"| AES-128-CBC encrypt (pycryptodome) | {limits.aes_cbc_mb_s:.0f} MB/s |",
            f"| disk read of the large file, warm / cold | {limits.disk_read_warm_mb_s:.0f} / "
            f"{limits.disk_read_cold_mb_s:.0f} MB/s |",
            f"| os.walk + stat | {limits.stat_walk_files_s:.0f} files/s |",
            f"| local-server small PUTs (2 processes x 4 threads, 4 KiB) | {limits.small_put_req_s:.0f} req/s "
            f"({limits.server_us_per_small_put:.0f} us of server CPU each) |",
            f"| local-server small GETs (2 processes x 4 threads, 4 KiB) | {limits.small_get_req_s:.0f} req/s |",
            f"| local-server PUT ingest (best of 1 and 4 streams) / one-stream GET egress | {limits.put_ingest_mb_s:.0f} / "
            f"{limits.get_egress_mb_s:.0f} MB/s |",
            f"| one stream read + AES-CBC + MD5 + PUT | {limits.encrypt_md5_put_mb_s:.0f} MB/s |",
            "",
        ]
    if s.daemon is not None:
        out += [
            f"### W6: the service at {at}",
            "",
            s.daemon.render(),
            "",
            f"Measured with `ks3sync run --config` on one sync (delete on, debounce {DEBOUNCE}); "
            "latency is close() of a new 4 KiB file to the first successful HEAD of its key (polled "
            "every 5 ms); RSS from /proc (VmRSS after the initial sync, VmHWM at the end).",
            "",
        ]
    out += [
        f"### Goals at {at} (issue 16: ks3sync's defaults against the fastest tuned peer)",
        "",
        render_goals(s.goals),
        "",
    ]
    if s.goals_issue7:
        out += [
            "### Goals (issue 7: at 0 ms, against the peers as installed)",
            "",
            render_goals(s.goals_issue7),
            "",
        ]
    return out
