"""Server-side crash: the local-server process is killed (SIGKILL) in the middle of a multipart
transfer and restarted on the same root and port. The mirror either rides through the outage on its
retries or stops with exit 1 and a clear message; either way, at most one re-run later the bucket equals
the folder byte for byte, no multipart upload is left and the journal is healthy. The server's own data
(objects, uploads, parts) survives the kill.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from .helpers import (
    assert_bucket_equals_folder,
    assert_journal_healthy,
    assert_no_multipart_uploads,
    create_bucket,
    make_tree,
    mirror,
    start_mirror,
    wait_for_requests,
)

FLAGS = ("--jobs", "2", "--part-size", "100KiB", "--multipart-threshold", "400KiB")


@pytest.mark.parametrize("downtime", [pytest.param(0.0, marks=pytest.mark.soak), 1.5])
def test_server_killed_and_restarted_mid_transfer(
    server_factory: Any, tmp_path: Path, downtime: float
) -> None:
    server = server_factory(latency_ms=15, seed=5)
    bucket = create_bucket(server)
    src = tmp_path / "src"
    make_tree(src, 5, files=6, big=2, big_size=1_500_000)
    state = tmp_path / "journal.db"

    process = start_mirror(server, src, f"ks3://{bucket}/p/", state, *FLAGS)
    try:
        assert wait_for_requests(server, 0, ["UploadPart"], 4, process), "the mirror never reached its parts"
        server.kill()
        time.sleep(downtime)
        server = server_factory(root=server.root, port=server.port, latency_ms=15, seed=6)
        status = process.wait(150)
        stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        if process.stderr is not None:
            process.stderr.close()
    assert status in (0, 1), (status, stderr[-2000:])
    assert "Traceback" not in stderr
    if status == 1:  # it gave up during the outage: it must say why
        assert "ks3sync: " in stderr
    # Either way one re-run finishes the job (and aborts an upload whose Initiate answer the kill swallowed).
    rerun = mirror(server, src, f"ks3://{bucket}/p/", state, *FLAGS, "--abort-stale-after", "0s")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert_bucket_equals_folder(server, bucket, "p/", src)
    assert_no_multipart_uploads(server, bucket)
    assert_journal_healthy(state)
