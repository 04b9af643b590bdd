"""Each run's results as JSON, and `python -m bench --compare A.json B.json` (a before/after table).

Owns: the results file format (every timed run of every cell, per session latency, with the goals and the
tool variants) and reading it back into `Row`s, so before/after tables come from the harness and not by
hand. Must not import: ks3sync.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.daemon_latency import DaemonResult
from bench.limits import Limits
from bench.report import Goal
from bench.runner import SMALL_REQUEST_WORKLOADS, WORKLOADS, Row, RunRecord
from bench.server import RequestStats

FORMAT = 1


@dataclass
class SavedSession:
    latency_ms: float
    max_inflight: int | None
    rows: dict[tuple[str, str], Row]
    goals: list[Goal]


@dataclass
class Saved:
    path: Path
    started: str
    argv: list[str]
    versions: dict[str, str]
    variants: dict[str, str]
    sessions: list[SavedSession]


def _row_json(row: Row) -> dict[str, Any]:
    return {
        "workload": row.workload,
        "tool": row.tool,
        "skipped": row.skipped,
        "runs": [dataclasses.asdict(r) for r in row.runs],
    }


def _row_from(data: Mapping[str, Any]) -> Row:
    runs = []
    for r in data["runs"]:
        stats = RequestStats(**r["requests"])
        runs.append(
            RunRecord(r["wall_s"], r["cpu_s"], r["max_rss_mb"], stats, r["server_cpu_s"], r["problem"])
        )
    return Row(data["workload"], data["tool"], runs, data.get("skipped"))


def write_results(
    path: Path,
    *,
    started: str,
    elapsed_s: float,
    argv: Sequence[str],
    machine: Mapping[str, str],
    versions: Mapping[str, str],
    variants: Mapping[str, str],
    scale: object,
    sessions: Sequence[
        tuple[float, int | None, Sequence[Row], Limits | None, DaemonResult | None, Sequence[Goal]]
    ],
) -> None:
    doc = {
        "format": FORMAT,
        "started": started,
        "elapsed_s": round(elapsed_s, 1),
        "argv": list(argv),
        "machine": dict(machine),
        "versions": dict(versions),
        "variants": dict(variants),
        "scale": dataclasses.asdict(scale),  # type: ignore[call-overload]
        "sessions": [
            {
                "latency_ms": latency,
                "max_inflight": inflight,
                "rows": [_row_json(r) for r in rows],
                "limits": dataclasses.asdict(limits) if limits is not None else None,
                "daemon": dataclasses.asdict(daemon) if daemon is not None else None,
                "goals": [dataclasses.asdict(g) for g in goals],
            }
            for latency, inflight, rows, limits, daemon, goals in sessions
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    tmp.replace(path)


class ResultsError(ValueError):
    """A results file that is not one this harness wrote."""


def load_results(path: Path) -> Saved:
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{path}: cannot read benchmark results: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ResultsError(f"{path}: not a benchmark results file (format {FORMAT})")
    try:
        sessions = []
        for s in doc["sessions"]:
            rows = {(r["workload"], r["tool"]): _row_from(r) for r in s["rows"]}
            sessions.append(
                SavedSession(
                    float(s["latency_ms"]),
                    s.get("max_inflight"),
                    rows,
                    [Goal(**g) for g in s.get("goals", [])],
                )
            )
        return Saved(path, doc["started"], doc["argv"], doc["versions"], doc["variants"], sessions)
    except (KeyError, TypeError) as exc:
        raise ResultsError(f"{path}: malformed benchmark results ({exc!r})") from exc


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _cell(row: Row | None) -> tuple[float | None, float | None, float | None, float | None]:
    """(wall s, CPU ms/req, requests, peak RSS MB) medians of a successful row, else Nones."""
    if row is None or not row.ok:
        return None, None, None, None
    per_req = row.med_cpu_ms_per_request() if row.workload in SMALL_REQUEST_WORKLOADS else None
    return row.med("wall_s"), per_req, row.med_requests(), row.med("max_rss_mb")


def _status(row: Row | None) -> str:
    if row is None:
        return "not run"
    if row.skipped is not None:
        return "skipped"
    return "ok" if row.ok else "FAILED"


def _order(key: tuple[str, str], tools: Sequence[str]) -> tuple[int, int]:
    """Table order: workloads as the harness runs them, tools as it lists them."""
    workload, tool = key
    return (
        WORKLOADS.index(workload) if workload in WORKLOADS else len(WORKLOADS),
        tools.index(tool) if tool in tools else len(tools),
    )


def render_compare(a: Saved, b: Saved) -> str:
    """Markdown: every (latency, workload, tool) cell of A and B side by side, B's speed-up over A, then the
    goal verdicts that changed."""
    out = [
        f"A: {a.path} ({a.started}; {a.versions.get('ks3sync', 'ks3sync not run')})",
        f"B: {b.path} ({b.started}; {b.versions.get('ks3sync', 'ks3sync not run')})",
        "",
        "| latency | workload | tool | wall s A | wall s B | B speed-up | CPU ms/req A | CPU ms/req B | "
        "requests A | requests B | peak RSS MB A | peak RSS MB B |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    tools = [*a.variants, *[t for t in b.variants if t not in a.variants]]
    a_sessions = {s.latency_ms: s for s in a.sessions}
    b_sessions = {s.latency_ms: s for s in b.sessions}
    for latency in sorted(set(a_sessions) | set(b_sessions)):
        sa, sb = a_sessions.get(latency), b_sessions.get(latency)
        keys: list[tuple[str, str]] = []
        for s in (sa, sb):
            for key in s.rows if s is not None else {}:
                if key not in keys:
                    keys.append(key)
        for workload, tool in sorted(keys, key=lambda key: _order(key, tools)):
            ra = sa.rows.get((workload, tool)) if sa is not None else None
            rb = sb.rows.get((workload, tool)) if sb is not None else None
            wa, ca, qa, ma = _cell(ra)
            wb, cb, qb, mb = _cell(rb)
            speed = f"{wa / wb:.2f}x" if wa and wb else f"{_status(ra)} / {_status(rb)}"
            out.append(
                f"| {latency:g} ms | {workload} | {tool} | {_fmt(wa, '.2f')} | {_fmt(wb, '.2f')} | {speed} | "
                f"{_fmt(ca, '.2f')} | {_fmt(cb, '.2f')} | {_fmt(qa, '.0f')} | {_fmt(qb, '.0f')} | "
                f"{_fmt(ma, '.0f')} | {_fmt(mb, '.0f')} |"
            )
        goals_a = {g.name: g for g in (sa.goals if sa is not None else [])}
        goals_b = {g.name: g for g in (sb.goals if sb is not None else [])}
        changed = [
            (n, goals_a.get(n), goals_b.get(n)) for n in [*goals_a, *[n for n in goals_b if n not in goals_a]]
        ]
        changed = [
            (n, ga, gb)
            for n, ga, gb in changed
            if (ga.verdict if ga else None) != (gb.verdict if gb else None)
        ]
        if changed:
            out += ["", f"Goal verdicts that changed at {latency:g} ms:"]
            out += [
                f"- {n}: {ga.verdict if ga else 'absent'} -> {gb.verdict if gb else 'absent'}"
                f" ({gb.detail if gb else ga.detail if ga else ''})"
                for n, ga, gb in changed
            ]
            out.append("")
    return "\n".join(out)
