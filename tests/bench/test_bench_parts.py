"""Unit tests for the harness's pure parts and its process measurement (no server needed)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench.measure import Invocation, median, run_measured
from bench.report import evaluate_goals
from bench.runner import QUICK, Row, RunRecord, select_workloads
from bench.server import RequestStats
from bench.workloads import TreeSpec, apply_mutation, make_tree, plan_mutation, tree_digest


def test_select_workloads_expands_families_and_rejects_unknown_names() -> None:
    assert select_workloads("W1,W3") == ["W1", "W3"]
    assert select_workloads("w4") == ["W4-2k", "W4-100k"]
    assert select_workloads("W5,W2e") == ["W2e", "W5-W1", "W5-W2"]
    assert select_workloads("W2") == ["W2"]
    with pytest.raises(ValueError, match="W9"):
        select_workloads("W1,W9")


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
    pm = run_measured(Invocation((sys.executable, "-c", "import time; time.sleep(30)"), {}), timeout_s=0.5,
                      log_path=tmp_path / "log")
    assert pm.timed_out and pm.wall_s < 10


def test_run_measured_hides_unset_variables(tmp_path: Path) -> None:
    code = "import os; print('VAR=' + os.environ.get('BENCH_PROBE_VAR', 'absent'))"
    log = tmp_path / "log"
    inv = Invocation((sys.executable, "-c", code), {"BENCH_PROBE_VAR": "x"}, unset=("BENCH_PROBE_VAR",))
    assert run_measured(inv, timeout_s=30, log_path=log).returncode == 0
    assert "VAR=absent" in log.read_text()


def _row(workload: str, tool: str, wall: float, *, bytes_in: int = 0, rss: float = 50.0) -> Row:
    stats = RequestStats(10, bytes_in, 0, {"PUT": 10}, 0)
    return Row(workload, tool, [RunRecord(wall, 1.0, rss, stats, 0.1, None)])


def test_goals_compare_with_the_fastest_successful_peer() -> None:
    rows = {
        ("W1", "ks3sync"): _row("W1", "ks3sync", 1.0),
        ("W1", "rclone"): _row("W1", "rclone", 1.4),
        ("W1", "aws"): _row("W1", "aws", 9.0),
        ("W3", "ks3sync"): _row("W3", "ks3sync", 0.2, bytes_in=QUICK.mutation[0] * QUICK.small.size),
        ("W3", "s3cmd"): _row("W3", "s3cmd", 0.5),
    }
    failed = Row("W1", "s3cmd", [RunRecord(0.1, 0.1, 1, RequestStats.empty(), 0, "exit 1")])
    rows[("W1", "s3cmd")] = failed     # a failed peer's fast time must not count
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
