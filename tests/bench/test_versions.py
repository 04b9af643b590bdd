"""Smoke test: ``python -m bench.versions_cost`` runs a tiny W3 A/B and restore A/B end to end against a
real local-server and prints its table; the versions side shows exactly the copies and the manifest
that versions add (request counts do not depend on load)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(200)
def test_versions_cost_prints_its_table(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.versions_cost",
            "--rounds",
            "1",
            "--files",
            "40",
            "--work",
            str(tmp_path / "w"),
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    rows = {line[:22].strip(): line for line in out.stdout.splitlines() if line[:22].strip()}
    plain, kept = rows["W3 plain"], rows["W3 --keep-versions"]
    # 40 files: 1 modified, 1 deleted, 1 renamed. Versions add 3 copies (the modified file, the deleted
    # one, the renamed file's old name) and the manifest's PUT.
    assert "CopyObject 1," in plain and "PutObject 1" in plain
    assert "CopyObject 4," in kept and "PutObject 2" in kept
    assert "GetObject 39" in rows["restore (mirror, now)"]
    assert "GetObject 41" in rows["restore --as-of W3"]  # 40 files of the W1 state + the manifest
