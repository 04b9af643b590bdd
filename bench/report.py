"""Turns rows + limits into the stdout table, the goal verdicts of issue 7, and the request mix.

Owns: presentation, the "fraction of this machine's limit" arithmetic, the ratio to the fastest tuned peer
shown on ks3sync's rows, and the goal checks from issue 7 (at 0 ms, against peers as installed; issue 16's
goals are in goals.py). Must not import: ks3sync. Pure functions of their inputs (the machine description
is gathered by `machine_info`, the only function here that looks at the system).
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.limits import Limits
from bench.measure import median
from bench.peers import DEFAULTS, ONLY, SUBJECT, TUNED
from bench.runner import SMALL_REQUEST_WORKLOADS, Row, Scale

MB = 1_000_000
GOAL_W4_LARGE_S = 5.0
GOAL_RSS_MB = 150.0


@dataclass(frozen=True)
class Goal:
    name: str
    verdict: str  # "met", "NOT met", "not measured"
    detail: str


# -- limits ---------------------------------------------------------------------------------------
def limit_seconds(row: Row, scale: Scale, limits: Limits | None) -> tuple[float, str] | None:
    """(seconds the machine's ceiling needs for this workload's minimal work, which ceiling)."""
    if limits is None:
        return None
    small = scale.small
    big_mb = scale.big_size / MB
    modified, deleted, renamed = scale.mutation
    w = row.workload
    if w == "W1":
        return small.files / limits.small_put_req_s, "small PUT/s"
    if w == "W1-throttled":
        return None  # the point is the refusals, not the speed
    if w == "W3":
        # Walk the tree, send the modified files, copy the renamed ones, one batch delete.
        return (
            small.files / limits.stat_walk_files_s + (modified + renamed + 1) / limits.small_put_req_s,
            "stat walk + small PUT/s",
        )
    if w == "W3-20k" and scale.w3_large is not None:
        lm, _ld, lr = scale.w3_large_mutation
        return (
            scale.w3_large.files / limits.stat_walk_files_s + (lm + lr + 1) / limits.small_put_req_s,
            "stat walk + small PUT/s",
        )
    if w == "W4-2k":
        return small.files / limits.stat_walk_files_s, "stat walk"
    if w == "W4-100k" and scale.large is not None:
        return scale.large.files / limits.stat_walk_files_s, "stat walk"
    if w == "W2":
        return big_mb / limits.w2_ceiling_mb_s, "min(disk, md5, ingest)"
    if w == "W2e":
        return big_mb / limits.encrypt_md5_put_mb_s, "read+AES+md5+PUT"
    if w == "W5-W1":
        return small.files / limits.small_get_req_s, "small GET/s"
    if w == "W5-W2":
        return big_mb / limits.w5_big_ceiling_mb_s, "min(md5, GET egress)"
    return None


# -- table ----------------------------------------------------------------------------------------
HEADER = (
    "workload",
    "tool",
    "status",
    "wall s",
    "CPU s",
    "peak RSS MB",
    "requests",
    "CPU ms/req",
    "MB in",
    "MB out",
    "server CPU s",
    "% of limit",
    "vs fastest tuned peer",
)


def table_rows(
    rows: Sequence[Row], scale: Scale, limits: Limits | None, variants: Mapping[str, str] | None = None
) -> list[tuple[str, ...]]:
    by_key = {(r.workload, r.tool): r for r in rows}
    out: list[tuple[str, ...]] = []
    for row in rows:
        blank = ("-",) * (len(HEADER) - 3)
        if row.skipped is not None:
            out.append((row.workload, row.tool, f"skipped: {row.skipped}", *blank))
            continue
        if not row.ok:
            out.append((row.workload, row.tool, f"FAILED: {row.failed}", *blank))
            continue
        lim = limit_seconds(row, scale, limits)
        wall = row.med("wall_s")
        pct = f"{100 * lim[0] / wall:.0f}% ({lim[1]})" if lim else "-"
        per_req = f"{row.med_cpu_ms_per_request():.2f}" if row.workload in SMALL_REQUEST_WORKLOADS else "-"
        vs = "-"
        if row.tool == "ks3sync" and variants is not None and row.workload != "W1-throttled":
            best = fastest_peer(by_key, row.workload, variants, tuned=True)
            if best is not None:
                vs = f"{best.med('wall_s') / wall:.2f}x ({best.tool})"
        out.append(
            (
                row.workload,
                row.tool,
                f"ok x{len(row.runs)}",
                f"{wall:.2f}",
                f"{row.med('cpu_s'):.2f}",
                f"{row.med('max_rss_mb'):.0f}",
                f"{row.med_requests():.0f}",
                per_req,
                f"{row.med_bytes_in() / MB:.1f}",
                f"{row.med_bytes_out() / MB:.1f}",
                f"{row.med('server_cpu_s'):.2f}",
                pct,
                vs,
            )
        )
    return out


def fastest_peer(
    rows: Mapping[tuple[str, str], Row], workload: str, variants: Mapping[str, str], *, tuned: bool
) -> Row | None:
    """The fastest successful peer row of `workload`: among peers as tuned by their docs (`tuned`: the
    tuned variants, and the tools with nothing to tune) or as installed (the defaults, and those tools)."""
    wanted = (TUNED, ONLY) if tuned else (DEFAULTS, ONLY)
    peers = [r for (w, t), r in rows.items() if w == workload and variants.get(t) in wanted and r.ok]
    return min(peers, key=lambda r: r.med("wall_s")) if peers else None


def render_text(table: Sequence[tuple[str, ...]]) -> str:
    cells = [HEADER, *table]
    # The status column can be long (failure reasons): cap it so the table stays readable.
    cells = [tuple(c if i != 2 or len(c) <= 60 else c[:57] + "..." for i, c in enumerate(r)) for r in cells]
    widths = [max(len(r[i]) for r in cells) for i in range(len(HEADER))]
    lines = ["  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_markdown(table: Sequence[tuple[str, ...]]) -> str:
    def esc(c: str) -> str:
        return c.replace("|", "\\|")

    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in table]
    return "\n".join(lines)


def render_request_mix(rows: Sequence[Row]) -> str:
    """Markdown: requests by operation for each cell that ran (its first run), e.g. `PutObject 500,
    ListObjects 1`, with the error answers among them and how many of those were throttling refusals."""
    lines = [
        "| workload | tool | requests by operation (first run) | error responses | of which refused (503) |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        if row.skipped is not None or not row.runs:
            continue
        stats = row.runs[0].requests
        counts = stats.by_op or stats.by_method
        mix = ", ".join(f"{m} {n}" for m, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
        lines.append(f"| {row.workload} | {row.tool} | {mix or '-'} | {stats.errors} | {stats.refused} |")
    return "\n".join(lines)


def render_throttled(rows: Sequence[Row], max_inflight: int | None, latency_ms: float) -> str:
    """Markdown: W1 against a server that refuses requests beyond N in flight: did each tool end with an exact
    mirror, and what share of its requests was refused (medians over runs, failed runs included)."""
    lines = [
        f"W1 against `local-server --max-inflight {max_inflight} --latency-ms {latency_ms:g}` (requests beyond "
        f"{max_inflight} in flight get 503 SlowDown):",
        "",
        "| tool | exact mirror | wall s | requests | refused (503) | refused share |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row.workload != "W1-throttled" or row.skipped is not None or not row.runs:
            continue
        exact = "yes" if row.ok else f"no: {row.failed}".replace("|", "\\|")
        requests = median([float(r.requests.requests) for r in row.runs])
        refused = median([float(r.requests.refused) for r in row.runs])
        share = median([r.requests.refused / max(1, r.requests.requests) for r in row.runs])
        lines.append(
            f"| {row.tool} | {exact} | {row.med('wall_s'):.2f} | {requests:.0f} | {refused:.0f} | "
            f"{100 * share:.1f}% |"
        )
    return "\n".join(lines)


# -- goals ----------------------------------------------------------------------------------------
def _ok(rows: Mapping[tuple[str, str], Row], workload: str, tool: str) -> Row | None:
    row = rows.get((workload, tool))
    return row if row is not None and row.ok else None


def _speedup_goal(
    rows: Mapping[tuple[str, str], Row], workload: str, factor: float, variants: Mapping[str, str]
) -> Goal:
    name = f"{workload}: >= {factor:g}x faster than the fastest peer"
    ours = _ok(rows, workload, "ks3sync")
    best = fastest_peer(rows, workload, variants, tuned=False)
    if ours is None or best is None:
        return Goal(name, "not measured", "ks3sync or every peer missing/failed")
    ratio = best.med("wall_s") / ours.med("wall_s")
    return Goal(
        name,
        "met" if ratio >= factor else "NOT met",
        f"ks3sync {ours.med('wall_s'):.2f} s vs {best.tool} {best.med('wall_s'):.2f} s = {ratio:.2f}x",
    )


def evaluate_goals(
    rows: Mapping[tuple[str, str], Row],
    scale: Scale,
    limits: Limits | None,
    variants: Mapping[str, str] | None = None,
) -> list[Goal]:
    """Issue 7's goals (at 0 ms), against the peers as installed (`variants`: tool -> variant; without it
    every tool but ks3sync counts as a peer as installed)."""
    if variants is None:
        variants = {t: (SUBJECT if t == "ks3sync" else DEFAULTS) for (_w, t) in rows}
    goals = [_speedup_goal(rows, "W1", 1.5, variants), _speedup_goal(rows, "W3", 1.5, variants)]

    w3 = _ok(rows, "W3", "ks3sync")
    modified, _deleted, renamed = scale.mutation
    name = "W3: no data sent for renamed files"
    if w3 is None:
        goals.append(Goal(name, "not measured", "no successful ks3sync W3 run"))
    else:
        sent = w3.med_bytes_in()
        allowed = modified * scale.small.size + min(64 * 1024, renamed * scale.small.size // 2)
        goals.append(
            Goal(
                name,
                "met" if sent <= allowed else "NOT met",
                f"{sent:.0f} bytes in; modified files account for {modified * scale.small.size}",
            )
        )

    name = "W4 2k: no slower than any peer"
    ours = _ok(rows, "W4-2k", "ks3sync")
    best = fastest_peer(rows, "W4-2k", variants, tuned=False)
    if ours is None or best is None:
        goals.append(Goal(name, "not measured", "ks3sync or every peer missing/failed"))
    else:
        goals.append(
            Goal(
                name,
                "met" if ours.med("wall_s") <= best.med("wall_s") else "NOT met",
                f"ks3sync {ours.med('wall_s'):.2f} s vs {best.tool} {best.med('wall_s'):.2f} s",
            )
        )

    big = _ok(rows, "W4-100k", "ks3sync")
    if big is None:
        goals += [
            Goal(
                "W4 100k: >= 3x faster than the fastest peer and < 5 s",
                "not measured",
                "W4-100k not run (quick mode or failed)",
            ),
            Goal(f"Memory: < {GOAL_RSS_MB:.0f} MB peak RSS at W4 100k", "not measured", "W4-100k not run"),
        ]
    else:
        g = _speedup_goal(rows, "W4-100k", 3.0, variants)
        wall = big.med("wall_s")
        under = wall < GOAL_W4_LARGE_S
        goals.append(
            Goal(
                "W4 100k: >= 3x faster than the fastest peer and < 5 s",
                "met" if g.verdict == "met" and under else "NOT met",
                f"{g.detail}; {wall:.2f} s",
            )
        )
        rss = big.med("max_rss_mb")
        goals.append(
            Goal(
                f"Memory: < {GOAL_RSS_MB:.0f} MB peak RSS at W4 100k",
                "met" if rss < GOAL_RSS_MB else "NOT met",
                f"{rss:.0f} MB",
            )
        )

    name = "W2: >= 80% of min(disk read, MD5, ingest)"
    w2 = _ok(rows, "W2", "ks3sync")
    if w2 is None or limits is None:
        goals.append(Goal(name, "not measured", "no successful ks3sync W2 run"))
    else:
        rate = scale.big_size / MB / w2.med("wall_s")
        frac = rate / limits.w2_ceiling_mb_s
        goals.append(
            Goal(
                name,
                "met" if frac >= 0.8 else "NOT met",
                f"{rate:.0f} MB/s of {limits.w2_ceiling_mb_s:.0f} MB/s = {100 * frac:.0f}%",
            )
        )

    name = "W2e: >= 1.5x the SDK's encrypted upload and >= 80% of read+AES+MD5+PUT"
    ours = _ok(rows, "W2e", "ks3sync")
    sdk = _ok(rows, "W2e", "ks3sdk")
    if ours is None or sdk is None or limits is None:
        goals.append(Goal(name, "not measured", "ks3sync or ks3sdk W2e missing/failed"))
    else:
        ratio = sdk.med("wall_s") / ours.med("wall_s")
        rate = scale.big_size / MB / ours.med("wall_s")
        frac = rate / limits.encrypt_md5_put_mb_s
        goals.append(
            Goal(
                name,
                "met" if ratio >= 1.5 and frac >= 0.8 else "NOT met",
                f"{ratio:.2f}x the SDK; {rate:.0f} of {limits.encrypt_md5_put_mb_s:.0f} MB/s "
                f"= {100 * frac:.0f}%",
            )
        )
    return goals


def render_goals(goals: Sequence[Goal]) -> str:
    return "\n".join(f"- [{g.verdict}] {g.name}: {g.detail}" for g in goals)


# -- machine --------------------------------------------------------------------------------------
def machine_info() -> dict[str, str]:
    mem_kb = 0
    model = platform.processor() or "unknown"
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cores": str(os.cpu_count()),
        "cpu": model,
        "ram": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "load average at start": ", ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
