"""Issue 16's goals, checked on one session's rows (one server latency): ks3sync with its defaults against
the fastest *tuned* peer (rclone-tuned, aws-tuned, and the tools with nothing to tune: s3cmd, the SDK).

Owns: which goal applies at which latency and how each verdict is computed. At a latency above 0 the
slow-link goals (stated at 20 ms) and the throttling goal (N = 16 at 20 ms) are checked; at 0 ms the CPU
discipline goals. Memory and the request count are checked at every latency. Must not import: ks3sync.
Pure functions of their inputs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from bench.report import Goal, fastest_peer
from bench.runner import Row, Scale

GOAL_RSS_MB = 150.0
THROTTLE_SHARE = 0.10
W4_2K_S = 0.5
# "No HEAD per object, no listing per folder": a few fixed requests are fine (a bucket check, a probe),
# a HEAD per object or a listing per folder is not. Listing pages hold 1,000 keys.
MAX_HEADS = 5
EXTRA_LISTINGS = 3
STATED_LATENCY_MS = 20.0
STATED_INFLIGHT = 16


def objects_in(workload: str, scale: Scale) -> int:
    """How many objects the workload's tree holds (what a listing has to page through)."""
    if workload == "W3-20k" and scale.w3_large is not None:
        return scale.w3_large.files
    if workload == "W4-100k" and scale.large is not None:
        return scale.large.files
    if workload in ("W2", "W2e", "W5-W2"):
        return 1
    return scale.small.files


def _ks3sync(rows: Mapping[tuple[str, str], Row], workload: str) -> Row | None:
    row = rows.get((workload, "ks3sync"))
    return row if row is not None and row.ok else None


def ratio_goal(
    rows: Mapping[tuple[str, str], Row], workload: str, factor: float, variants: Mapping[str, str], at: str
) -> Goal:
    """ks3sync's wall time against the fastest tuned peer's: met when peer / ks3sync >= factor."""
    wording = "no slower than" if factor == 1.0 else f">= {factor:g}x"
    name = f"{at}: {workload} {wording} the fastest tuned peer"
    ours = _ks3sync(rows, workload)
    best = fastest_peer(rows, workload, variants, tuned=True)
    if ours is None or best is None:
        why = "no successful ks3sync run" if ours is None else "no successful tuned peer run"
        return Goal(name, "not measured", f"{why} of {workload}")
    ratio = best.med("wall_s") / ours.med("wall_s")
    return Goal(
        name,
        "met" if ratio >= factor else "NOT met",
        f"ks3sync {ours.med('wall_s'):.2f} s vs {best.tool} {best.med('wall_s'):.2f} s = {ratio:.2f}x",
    )


def throttle_goal(rows: Mapping[tuple[str, str], Row], max_inflight: int | None, latency_ms: float) -> Goal:
    """`max_inflight` is None when the throttled W1 did not run in this session."""
    n = STATED_INFLIGHT if max_inflight is None else max_inflight
    name = (
        f"throttling, N = {n} at {latency_ms:g} ms: W1 ends an exact mirror in every run, under "
        f"{100 * THROTTLE_SHARE:.0f}% of its requests refused"
    )
    if n != STATED_INFLIGHT or latency_ms != STATED_LATENCY_MS:
        name += f" (the goal is stated for N = {STATED_INFLIGHT} at {STATED_LATENCY_MS:g} ms)"
    row = rows.get(("W1-throttled", "ks3sync"))
    if row is None or row.skipped is not None or not row.runs:
        return Goal(name, "not measured", "W1-throttled was not run for ks3sync")
    shares = [r.requests.refused / max(1, r.requests.requests) for r in row.runs]
    exact = row.failed is None
    worst = max(shares)
    detail = (
        f"{'exact' if exact else 'NOT exact: ' + str(row.failed)}; refused {worst:.1%} of requests in the "
        f"worst of {len(shares)} run(s) ({max(r.requests.refused for r in row.runs)} of "
        f"{max(r.requests.requests for r in row.runs)})"
    )
    return Goal(name, "met" if exact and worst < THROTTLE_SHARE else "NOT met", detail)


def memory_goal(rows: Mapping[tuple[str, str], Row]) -> Goal:
    name = f"memory: ks3sync's peak RSS < {GOAL_RSS_MB:.0f} MB in every workload"
    ours = [r for (w, t), r in rows.items() if t == "ks3sync" and r.skipped is None and r.runs]
    if not ours:
        return Goal(name, "not measured", "no ks3sync run")
    worst = max(ours, key=lambda r: max(run.max_rss_mb for run in r.runs))
    peak = max(run.max_rss_mb for run in worst.runs)
    return Goal(
        name,
        "met" if peak < GOAL_RSS_MB else "NOT met",
        f"highest {peak:.0f} MB ({worst.workload}) over {len(ours)} workload(s)",
    )


def request_count_goal(rows: Mapping[tuple[str, str], Row], scale: Scale) -> Goal:
    name = (
        f"requests: no HEAD per object (at most {MAX_HEADS}), no listing per folder (at most one per "
        f"1,000 objects + {EXTRA_LISTINGS})"
    )
    ours = [
        r
        for (w, t), r in rows.items()
        if t == "ks3sync" and w != "W1-throttled" and r.skipped is None and r.runs
    ]
    if not ours:
        return Goal(name, "not measured", "no ks3sync run")
    problems: list[str] = []
    most = ("", 0, 0)
    for row in ours:
        objects = objects_in(row.workload, scale)
        allowed = math.ceil(objects / 1000) + EXTRA_LISTINGS
        heads = max(r.requests.by_op.get("HeadObject", 0) for r in row.runs)
        listings = max(r.requests.listings() for r in row.runs)
        if heads > MAX_HEADS:
            problems.append(f"{row.workload}: {heads} HEAD")
        if listings > allowed:
            problems.append(f"{row.workload}: {listings} listings for {objects} objects")
        if listings >= most[1]:
            most = (row.workload, listings, objects)
    if problems:
        return Goal(name, "NOT met", "; ".join(problems))
    return Goal(
        name, "met", f"most listings: {most[0]} {most[1]} for {most[2]} objects; HEADs within the bound"
    )


def evaluate_issue16(
    rows: Mapping[tuple[str, str], Row],
    scale: Scale,
    latency_ms: float,
    variants: Mapping[str, str],
    max_inflight: int | None,
) -> list[Goal]:
    goals: list[Goal] = []
    if latency_ms > 0:
        at = f"at {latency_ms:g} ms" + (
            "" if latency_ms == STATED_LATENCY_MS else f" (stated at {STATED_LATENCY_MS:g} ms)"
        )
        goals += [
            ratio_goal(rows, "W1", 1.5, variants, at),
            ratio_goal(rows, "W5-W1", 1.5, variants, at),
            ratio_goal(rows, "W3-20k", 1.5, variants, at),
            ratio_goal(rows, "W3", 1.0, variants, at),
            ratio_goal(rows, "W2", 1.0, variants, at),
            ratio_goal(rows, "W5-W2", 1.0, variants, at),
            throttle_goal(rows, max_inflight, latency_ms),
        ]
    else:
        at = "at 0 ms"
        goals += [ratio_goal(rows, w, 0.8, variants, at) for w in ("W1", "W3", "W5-W1", "W5-W2")]
        goals.append(ratio_goal(rows, "W4-100k", 3.0, variants, at))
        name = f"{at}: W4-2k (no-change re-run of the small tree) under {W4_2K_S:g} s"
        ours = _ks3sync(rows, "W4-2k")
        if ours is None:
            goals.append(Goal(name, "not measured", "no successful ks3sync W4-2k run"))
        else:
            wall = ours.med("wall_s")
            goals.append(Goal(name, "met" if wall < W4_2K_S else "NOT met", f"{wall:.2f} s"))
    goals += [memory_goal(rows), request_count_goal(rows, scale)]
    return goals
