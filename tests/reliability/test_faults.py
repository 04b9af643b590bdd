"""Faults: `ks3sync mirror` against a local-server that answers 500/503 (SlowDown), adds latency and drops
connections at 5-20% rates must still end correct (exit 0): the bucket equals the folder byte for byte,
no multipart upload is left, the journal is healthy, and a second run sends no data. A server that always
fails (fault rate 1.0) or is not there ends the mirror with exit 1 and one clear message in bounded time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .helpers import (
    assert_bucket_equals_folder,
    assert_journal_healthy,
    assert_no_multipart_uploads,
    create_bucket,
    data_writes,
    make_tree,
    mirror,
    part_upload_counts,
    restart,
)

SMALL_PARTS = ("--part-size", "100KiB", "--multipart-threshold", "400KiB")

FAULTS = [
    pytest.param(dict(fault_rate=0.05, fault_codes="500,503"), 12, 1, id="errors-5pct"),
    pytest.param(
        dict(fault_rate=0.15, fault_codes="503", latency_ms=3, drop_rate=0.05),
        12,
        1,
        id="slowdown-15pct-drops-5pct",
    ),
    pytest.param(
        dict(fault_rate=0.1, fault_codes="500,502,503,504", drop_rate=0.1, latency_ms=5),
        40,
        2,
        id="mixed-20pct",
        marks=pytest.mark.soak,
    ),
    pytest.param(
        dict(fault_rate=0.2, fault_codes="500,503"), 150, 3, id="errors-20pct-large", marks=pytest.mark.soak
    ),
]


@pytest.mark.parametrize(("faults", "files", "big"), FAULTS)
@pytest.mark.parametrize("seed", [7])
def test_mirror_under_faults_ends_correct(
    server_factory: Any, tmp_path: Path, faults: dict[str, Any], files: int, big: int, seed: int
) -> None:
    server = server_factory(seed=seed, **faults)
    bucket = create_bucket(server)
    src = tmp_path / "src"
    make_tree(src, seed, files=files, big=big)
    state = tmp_path / "state" / "journal.db"

    run = mirror(server, src, f"ks3://{bucket}/p/", state, "--jobs", "4", *SMALL_PARTS)
    assert run.returncode == 0, run.stderr[-3000:]
    injected = [r for r in server.requests() if r.get("fault")]
    assert injected, "the server injected no faults: the scenario tested nothing"
    assert "Traceback" not in run.stderr
    # Faults are injected before a request is handled, so a retried part never lands twice.
    counts = part_upload_counts(server.requests())
    assert [pair for pair, n in counts.items() if n > 1] == []

    clean = restart(server_factory, server)  # same root and port, no faults: an exact view of the result
    assert_bucket_equals_folder(clean, bucket, "p/", src)
    assert_no_multipart_uploads(clean, bucket)
    assert_journal_healthy(state)
    again = mirror(clean, src, f"ks3://{bucket}/p/", state, "--jobs", "4", *SMALL_PARTS)
    assert again.returncode == 0, again.stderr[-3000:]
    assert data_writes(clean.requests()) == []


@pytest.mark.parametrize("how", ["fault-rate-1", "server-stopped"])
def test_permanently_failing_server_ends_with_exit_1_and_a_clear_message(
    server_factory: Any, tmp_path: Path, how: str
) -> None:
    server = server_factory(seed=1)
    bucket = create_bucket(server)
    src = tmp_path / "src"
    make_tree(src, 3, files=4)
    if how == "fault-rate-1":
        server = restart(server_factory, server, fault_rate=1.0, fault_codes="500,503", seed=1)
    else:
        server.stop()
    run = mirror(server, src, f"ks3://{bucket}/p/", tmp_path / "journal.db", "--jobs", "2", timeout=150)
    assert run.returncode == 1, (run.returncode, run.stderr[-2000:])
    assert "Traceback" not in run.stderr
    error_lines = [line for line in run.stderr.splitlines() if line.startswith("ks3sync: ")]
    assert error_lines, run.stderr[-2000:]
    assert run.seconds < 120, f"took {run.seconds:.0f} s: retries are not bounded tightly enough"
    print(f"{how}: exit {run.returncode} after {run.seconds:.1f} s: {error_lines[-1]}")
    assert server.secret_key not in run.stderr
