"""A mirror pass asks the bucket its two questions together, as soon as it has a client (engine/ahead.py,
D24): the listing and, for an upload, the pending multipart uploads go out at once instead of one after
the other's answer. Observed through `ks3sync mirror` as a subprocess against a local-server that answers
every request 300 ms late, from the server's own request log."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.serverkit import ServerHandle, sdk_connection, unique_bucket_name

LATENCY_S = 0.3


def run_mirror(server: ServerHandle, state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, KS3_ACCESS_KEY=server.access_key, KS3_SECRET_KEY=server.secret_key)
    argv = [sys.executable, "-m", "ks3sync", "mirror", *args, "--endpoint", server.endpoint]
    argv += ["--state-db", str(state), "-q", "--no-progress"]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)


def arrivals(entries: list[dict[str, Any]], op: str) -> list[float]:
    """When each request of ``op`` reached the server (the log stamps the answer; ``ms`` is its time)."""
    return [e["ts"] - e["ms"] / 1000 for e in entries if e["op"] == op]


def test_an_upload_asks_for_its_listing_and_the_pending_uploads_together(
    server_factory: Callable[..., ServerHandle], tmp_path: Path
) -> None:
    server = server_factory(latency_ms=LATENCY_S * 1000)
    bucket = unique_bucket_name()
    sdk_connection(server).create_bucket(bucket)
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a.txt", "b.txt"):
        (src / name).write_text(name)
    mark = server.mark()
    done = run_mirror(server, tmp_path / "journal.db", str(src), f"ks3://{bucket}/p/")
    assert done.returncode == 0, done.stderr
    entries = server.requests()[mark:]
    (listed,) = arrivals(entries, "ListObjects")
    (pending,) = arrivals(entries, "ListMultipartUploads")
    # Sent together: neither waited for the other's answer, which takes LATENCY_S.
    assert abs(pending - listed) < LATENCY_S * 0.8
    puts = arrivals(entries, "PutObject")
    assert len(puts) == 2 and min(puts) > max(listed, pending)  # the plan needed the listing's answer
    assert sorted(
        k.name for k in sdk_connection(server).get_bucket(bucket).list(prefix="p/", delimiter="")
    ) == [
        "p/a.txt",
        "p/b.txt",
    ]


def test_a_restore_and_a_dry_run_ask_only_for_the_listing(
    server_factory: Callable[..., ServerHandle], tmp_path: Path
) -> None:
    server = server_factory()
    bucket = unique_bucket_name()
    connection = sdk_connection(server)
    connection.create_bucket(bucket)
    connection.get_bucket(bucket).new_key("p/a.txt").set_contents_from_string("a")
    src = tmp_path / "src"
    src.mkdir()
    (src / "b.txt").write_text("b")
    mark = server.mark()
    dry = run_mirror(server, tmp_path / "up.db", str(src), f"ks3://{bucket}/p/", "--dry-run")
    restore = run_mirror(server, tmp_path / "down.db", f"ks3://{bucket}/p/", str(tmp_path / "dst"))
    assert dry.returncode == 0, dry.stderr
    assert restore.returncode == 0, restore.stderr
    ops = [e["op"] for e in server.requests()[mark:]]
    assert "ListMultipartUploads" not in ops and ops.count("ListObjects") == 2
    assert (tmp_path / "dst" / "a.txt").read_text() == "a"
