"""Unit tests for the harness's pure parts and its process measurement (no server needed)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from bench.goals import evaluate_issue16, memory_goal, request_count_goal, throttle_goal
from bench.measure import Invocation, median, run_measured
from bench.report import evaluate_goals, table_rows
from bench.results import ResultsError, load_results, render_compare, write_results
from bench.runner import QUICK, Row, RunRecord, select_workloads
from bench.server import RequestStats
from bench.session import session_workloads
from bench.workloads import (
    TreeSpec,
    apply_mutation,
    copy_tree,
    make_tree,
    plan_mutation,
    revert_mutation,
    tree_digest,
)


def test_select_workloads_expands_families_and_rejects_unknown_names() -> None:
    assert select_workloads("W1,W3") == ["W1", "W3"]  # an exact name is only itself
    assert select_workloads("w4") == ["W4-2k", "W4-100k"]
    assert select_workloads("W5,W2e") == ["W2e", "W5-W1", "W5-W2"]
    assert select_workloads("W2") == ["W2"]
    assert select_workloads("W3-20k,W1-throttled") == ["W1-throttled", "W3-20k"]
    with pytest.raises(ValueError, match="W9"):
        select_workloads("W1,W9")


def test_the_throttled_w1_runs_on_a_slow_link_or_when_named() -> None:
    every = select_workloads(None)
    assert "W1-throttled" not in session_workloads(every, 0.0, [])
    assert "W1-throttled" in session_workloads(every, 20.0, [])
    assert session_workloads(["W1", "W1-throttled"], 0.0, ["W1-throttled"]) == ["W1", "W1-throttled"]


def test_a_reverted_mutation_restores_the_tree_with_fresh_mtimes(tmp_path: Path) -> None:
    spec = TreeSpec(40, 4, 64)
    base, work = tmp_path / "base", tmp_path / "work"
    make_tree(base, spec)
    copy_tree(base, work)
    m = plan_mutation(spec, 3, 2, 2)
    apply_mutation(work, m, spec.size)
    uploaded_at = time.time()
    revert_mutation(work, base, m)
    assert tree_digest(work) == tree_digest(base)
    for rel in m.modified:  # newer than anything a tool uploaded before the revert (aws compares mtimes)
        assert (work / rel).stat().st_mtime > uploaded_at + 1
    apply_mutation(work, m, spec.size)
    assert (work / m.modified[0]).stat().st_mtime > (base / m.modified[0]).stat().st_mtime


def test_mutation_is_deterministic_disjoint_and_applied(tmp_path: Path) -> None:
    spec = TreeSpec(60, 6, 32)
    m = plan_mutation(spec, 5, 3, 4)
    assert m == plan_mutation(spec, 5, 3, 4)
    touched = [*m.modified, *m.deleted, *(old for old, _ in m.renamed)]
    assert len(set(touched)) == 12
    root = tmp_path / "tree"
    make_tree(root, spec)
    before = tree_digest(root)
    apply_mutation(root, m, spec.size)
    after = tree_digest(root)
    assert len(after) == 60 - 3
    for rel in m.modified:
        assert after[rel][0] == spec.size and after[rel][1] != before[rel][1]
    for rel in m.deleted:
        assert rel not in after
    for old, new in m.renamed:
        assert old not in after and after[new] == before[old]


def test_make_tree_is_reproducible_and_keeps_no_stamp_inside(tmp_path: Path) -> None:
    spec = TreeSpec(10, 3, 100)
    make_tree(tmp_path / "a", spec)
    make_tree(tmp_path / "b", spec)
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")
    assert len(tree_digest(tmp_path / "a")) == 10


def test_run_measured_reports_the_childs_own_rss_cpu_and_exit(tmp_path: Path) -> None:
    code = "b = bytearray(120 * 1024 * 1024); sum(range(3_000_000)); raise SystemExit(3)"
    pm = run_measured(Invocation((sys.executable, "-c", code), {}), timeout_s=60, log_path=tmp_path / "log")
    assert pm.returncode == 3 and not pm.timed_out
    assert pm.max_rss_mb >= 120
    assert pm.cpu_s > 0 and pm.wall_s >= pm.cpu_s * 0.5


def test_run_measured_kills_a_tool_that_overruns(tmp_path: Path) -> None:
    pm = run_measured(
        Invocation((sys.executable, "-c", "import time; time.sleep(30)"), {}),
        timeout_s=0.5,
        log_path=tmp_path / "log",
    )
    assert pm.timed_out and pm.wall_s < 10


def test_run_measured_hides_unset_variables(tmp_path: Path) -> None:
    code = "import os; print('VAR=' + os.environ.get('BENCH_PROBE_VAR', 'absent'))"
    log = tmp_path / "log"
    inv = Invocation((sys.executable, "-c", code), {"BENCH_PROBE_VAR": "x"}, unset=("BENCH_PROBE_VAR",))
    assert run_measured(inv, timeout_s=30, log_path=log).returncode == 0
    assert "VAR=absent" in log.read_text()


def _row(
    workload: str,
    tool: str,
    wall: float,
    *,
    bytes_in: int = 0,
    rss: float = 50.0,
    ops: dict[str, int] | None = None,
    refused: int = 0,
    problem: str | None = None,
) -> Row:
    ops = ops or {"PutObject": 10}
    stats = RequestStats(sum(ops.values()), bytes_in, 0, {"PUT": 10}, refused, ops, refused)
    return Row(workload, tool, [RunRecord(wall, 1.0, rss, stats, 0.1, problem)])


VARIANTS = {
    "ks3sync": "subject",
    "rclone": "defaults",
    "rclone-tuned": "tuned",
    "aws": "defaults",
    "aws-tuned": "tuned",
    "s3cmd": "only",
    "ks3sdk": "only",
}


def test_issue16_goals_compare_with_the_fastest_tuned_peer_only() -> None:
    rows = {
        ("W1", "ks3sync"): _row("W1", "ks3sync", 1.0),
        ("W1", "rclone"): _row("W1", "rclone", 0.5),  # as installed: not what the goal compares
        ("W1", "rclone-tuned"): _row("W1", "rclone-tuned", 1.6),
        ("W1", "s3cmd"): _row("W1", "s3cmd", 3.0),
        ("W3", "ks3sync"): _row("W3", "ks3sync", 1.0),
        ("W3", "aws-tuned"): _row("W3", "aws-tuned", 0.99),
        ("W5-W1", "ks3sync"): _row("W5-W1", "ks3sync", 1.0),
        ("W5-W1", "ks3sdk"): _row("W5-W1", "ks3sdk", 0.2, problem="exit 1"),  # failed: does not count
    }
    goals = {g.name: g for g in evaluate_issue16(rows, QUICK, 20.0, VARIANTS, 16)}
    w1 = goals["at 20 ms: W1 >= 1.5x the fastest tuned peer"]
    assert w1.verdict == "met" and "rclone-tuned 1.60 s = 1.60x" in w1.detail
    assert goals["at 20 ms: W3 no slower than the fastest tuned peer"].verdict == "NOT met"
    assert goals["at 20 ms: W5-W1 >= 1.5x the fastest tuned peer"].verdict == "not measured"
    w1_rows = [r for (w, _t), r in rows.items() if w == "W1"]
    table = {r[1]: r for r in table_rows(w1_rows, QUICK, None, VARIANTS)}
    assert table["ks3sync"][-1] == "1.60x (rclone-tuned)" and table["rclone"][-1] == "-"
    zero = {g.name: g for g in evaluate_issue16(rows, QUICK, 0.0, VARIANTS, None)}
    assert zero["at 0 ms: W1 >= 0.8x the fastest tuned peer"].verdict == "met"
    assert not [n for n in zero if "throttling" in n]


def test_throttle_goal_needs_an_exact_mirror_and_few_refusals() -> None:
    def verdict(refused: int, problem: str | None = None) -> str:
        row = _row("W1-throttled", "ks3sync", 1.0, ops={"PutObject": 100}, refused=refused, problem=problem)
        return throttle_goal({("W1-throttled", "ks3sync"): row}, 16, 20.0).verdict

    assert verdict(9) == "met"
    assert verdict(10) == "NOT met"  # 10 of 100: not under 10%
    assert verdict(0, problem="3 missing (e.g. d000/f0000001.bin)") == "NOT met"
    assert throttle_goal({}, 16, 20.0).verdict == "not measured"


def test_request_count_and_memory_goals() -> None:
    fine = {
        ("W1", "ks3sync"): _row("W1", "ks3sync", 1.0, ops={"PutObject": 500, "ListObjects": 1}),
        ("W5-W1", "ks3sync"): _row(
            "W5-W1", "ks3sync", 1.0, ops={"GetObject": 500, "ListObjects": 1}, rss=140
        ),
    }
    assert request_count_goal(fine, QUICK).verdict == "met"
    assert memory_goal(fine).verdict == "met"
    heads = {("W1", "ks3sync"): _row("W1", "ks3sync", 1.0, ops={"PutObject": 500, "HeadObject": 500})}
    assert "W1: 500 HEAD" in request_count_goal(heads, QUICK).detail
    per_folder = {("W3", "ks3sync"): _row("W3", "ks3sync", 1.0, ops={"ListObjects": 20}, rss=151)}
    assert request_count_goal(per_folder, QUICK).verdict == "NOT met"
    assert memory_goal(per_folder).verdict == "NOT met"


def test_results_round_trip_and_compare(tmp_path: Path) -> None:
    before = [_row("W1", "ks3sync", 2.0), _row("W1", "rclone-tuned", 1.0)]
    after = [_row("W1", "ks3sync", 1.0), _row("W1", "rclone-tuned", 1.0)]
    for name, rows in (("a.json", before), ("b.json", after)):
        write_results(
            tmp_path / name,
            started="2026-01-01T00:00:00+00:00",
            elapsed_s=1.0,
            argv=["--quick"],
            machine={},
            versions={"ks3sync": "v"},
            variants=VARIANTS,
            scale=QUICK,
            sessions=[(20.0, 16, rows, None, None, [])],
        )
    a = load_results(tmp_path / "a.json")
    assert a.sessions[0].rows[("W1", "ks3sync")] == before[0]
    text = render_compare(a, load_results(tmp_path / "b.json"))
    assert "| 20 ms | W1 | ks3sync | 2.00 | 1.00 | 2.00x |" in text
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ResultsError, match="bad.json"):
        load_results(tmp_path / "bad.json")


def test_goals_compare_with_the_fastest_successful_peer() -> None:
    rows = {
        ("W1", "ks3sync"): _row("W1", "ks3sync", 1.0),
        ("W1", "rclone"): _row("W1", "rclone", 1.4),
        ("W1", "aws"): _row("W1", "aws", 9.0),
        ("W3", "ks3sync"): _row("W3", "ks3sync", 0.2, bytes_in=QUICK.mutation[0] * QUICK.small.size),
        ("W3", "s3cmd"): _row("W3", "s3cmd", 0.5),
    }
    failed = Row("W1", "s3cmd", [RunRecord(0.1, 0.1, 1, RequestStats.empty(), 0, "exit 1")])
    rows[("W1", "s3cmd")] = failed  # a failed peer's fast time must not count
    goals = {g.name: g for g in evaluate_goals(rows, QUICK, None)}
    assert goals["W1: >= 1.5x faster than the fastest peer"].verdict == "NOT met"
    assert "rclone 1.40 s" in goals["W1: >= 1.5x faster than the fastest peer"].detail
    assert goals["W3: >= 1.5x faster than the fastest peer"].verdict == "met"
    assert goals["W3: no data sent for renamed files"].verdict == "met"
    assert goals["W2: >= 80% of min(disk read, MD5, ingest)"].verdict == "not measured"


def test_renamed_data_sent_fails_the_w3_goal() -> None:
    modified, _, renamed = QUICK.mutation
    sent = (modified + renamed) * QUICK.small.size
    rows = {("W3", "ks3sync"): _row("W3", "ks3sync", 0.2, bytes_in=sent)}
    goals = {g.name: g for g in evaluate_goals(rows, QUICK, None)}
    assert goals["W3: no data sent for renamed files"].verdict == "NOT met"


def test_median() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0]) == 2.5
    with pytest.raises(ValueError):
        median([])
