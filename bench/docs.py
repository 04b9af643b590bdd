"""Writes docs/benchmarks.md: machine, versions, date, command, the table, limits, goals, methodology.

Owns: the report's prose. Must not import: ks3sync. Everything numeric comes from the caller.
"""

from __future__ import annotations

import datetime as dt
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path

from bench.daemon_latency import DEBOUNCE, DaemonResult
from bench.limits import Limits
from bench.peers import Peer
from bench.report import Goal, render_goals
from bench.runner import Scale

METHODOLOGY = """\
- **One server for everyone.** A single `ks3sync local-server --no-fsync` subprocess (fresh root in a
  temp dir, request log on) serves every tool in the session; without an fsync per object the disk
  does not hide differences between clients.
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
  still run untimed to build the next step's state. W2/W2e: fresh bucket and journal per run, the file
  read once before each run so the page cache is equally warm for every tool, and (W2, W2e, W5)
  `sync` before each run so nobody pays for an earlier step's disk writeback. W5: restore from one
  bucket seeded by the harness with plain PUTs into an empty folder. W4-100k: one untimed seeding
  upload per tool, then timed re-runs.
- **Wall time is the median** of the runs; so are the other columns (each independently).
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
  encrypt+MD5+PUT stream, W5-W2 min(MD5, GET egress).
- **Shared machine.** This machine has 2 cores, shared by the server, the tool under test, and (when
  these numbers were taken) several engineers building and testing concurrently; the load average
  at the start of the session is recorded above. Expect run-to-run noise of tens of percent; compare
  tools within one table, not across tables.
"""


def write_markdown(path: Path, *, started: dt.datetime, elapsed_s: float, argv: Sequence[str], scale: Scale,
                   machine: Mapping[str, str], versions: Mapping[str, str], peers: Sequence[Peer],
                   table_md: str, mix_md: str, limits: Limits | None, goals: Sequence[Goal], daemon: DaemonResult | None,
                   skipped: Mapping[str, str], workloads: Sequence[str], append: bool = False) -> None:
    cmd = "python -m bench" + ("" if not argv else " " + shlex.join(argv))
    h = "##" if append else "#"      # an appended run is a section of the page, one level down
    out: list[str] = [
        f"{h} " + (f"Additional run, {started:%Y-%m-%d %H:%M} UTC" if append
                  else "Benchmarks: ks3sync against rclone, aws s3 sync, s3cmd and the official SDK"),
        "",
        "Generated by `python -m bench` (see `bench/__main__.py`); re-run it to refresh this page. "
        "`python -m bench --quick` takes under 5 minutes; the full set takes much longer (W4 at "
        "100,000 files seeds every tool first).",
        "",
        f"- date: {started:%Y-%m-%d %H:%M} UTC, {elapsed_s:.0f} s",
        f"- command: `{cmd}`",
        f"- mode: {scale.name}; {scale.runs} timed run(s) per cell; small tree {scale.small.files} files x "
        f"{scale.small.size} B in {scale.small.folders} folders; W3 = modify {scale.mutation[0]}, delete "
        f"{scale.mutation[1]}, rename {scale.mutation[2]}; large file {scale.big_size >> 20} MiB"
        + (f"; W4-100k tree {scale.large.files} files" if scale.large and "W4-100k" in workloads
           else "; W4-100k not run"),
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
        "## Results",
        "",
        "Workloads: W1 first upload of the small tree; W2 one large file (W2e: client-side encrypted, "
        "SDK format); W3 incremental after modify/delete/rename with delete semantics; W4 re-run with "
        "nothing changed (2k and 100k files); W5 restore (download) of the small tree and of the large "
        "file; W6 the daemon.",
        "",
        table_md,
        "",
        "Requests each tool sent, by HTTP method (a server-side copy is a PUT without a body; a "
        "multi-object delete is one POST):",
        "",
        mix_md,
        "",
    ]
    if limits is not None:
        out += [
            "## This machine's limits (measured in the same session)",
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
    if daemon is not None:
        out += ["## W6: the service", "", daemon.render(), "",
                f"Measured with `ks3sync run --config` on one sync (delete on, debounce {DEBOUNCE}); "
                "latency is close() of a new 4 KiB file to the first successful HEAD of its key (polled "
                "every 5 ms); RSS from /proc (VmRSS after the initial sync, VmHWM at the end).", ""]
    out += ["## Goals (issue 7)", "", render_goals(goals), ""]
    if not append:   # an appended run shares the page's methodology and tool notes
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
