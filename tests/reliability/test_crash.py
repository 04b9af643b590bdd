"""Crashes: `ks3sync mirror` killed with SIGKILL inside a chosen operation - the answer to a PUT, a part,
the initiate or complete of a multipart upload, a server-side copy or a DeleteObjects is held at a proxy
(killpoint.py) until the kill, so the server has acted and the client has not heard - or right after the
n-th journal commit, or after a random delay (soak). Each trial first asserts that the kill landed while
the pass was running and inside that operation (for DeleteObjects: the server deleted the objects and the
journal still records them; for a part: the journal has the upload in flight), then, after a re-run:

- exit 0, and the bucket equals the folder byte for byte;
- no multipart upload is left (ListMultipartUploads is empty);
- the journal passes ``integrity_check()``;
- no part was uploaded more than once beyond those in flight at the kill: at most ``JOBS`` (upload,
  part) pairs were sent twice, none three times;
- a further run sends no data at all.

The re-run passes ``--abort-stale-after 0s``: an upload initiated just before the kill, whose id never
reached the journal, is otherwise kept for the grace period (for other writers' sake) and would still be
listed. Default run: 3 trials; ``-m soak``: 24. A restore killed in the middle of a download (a temp file
exists, or the answer to the n-th GET is held) leaves only whole files and converges on a re-run.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pytest

from ks3sync.journal import Journal

from .helpers import (
    assert_bucket_equals_folder,
    assert_journal_healthy,
    assert_no_multipart_uploads,
    bucket_contents,
    create_bucket,
    data_writes,
    folder_files,
    journal_paths,
    kill9,
    make_tree,
    mirror,
    part_upload_counts,
    start_mirror,
    write_tree,
)
from .killpoint import KillPoint

JOBS = 2
FLAGS = ("--jobs", str(JOBS), "--part-size", "100KiB", "--multipart-threshold", "400KiB", "--delete")
TRIGGERS = [
    ("PutObject", 1),
    ("PutObject", 3),
    ("UploadPart", 1),
    ("UploadPart", 4),
    ("InitiateMultipartUpload", 1),
    ("CompleteMultipartUpload", 1),
    ("CopyObject", 1),
    ("DeleteObjects", 1),
    ("delay", 0),
    ("journal", 3),
    ("journal", 12),
]


def _mutate(src: Path, rng: random.Random) -> None:
    """Changes that make the next pass do every kind of operation: puts, multipart, copies, deletes."""
    files = sorted(p for p in src.rglob("*") if p.is_file() and "big/" not in p.as_posix())
    renamed, deleted = files[:2], files[2:4]
    for path in renamed:  # a rename: the plan copies server-side, then deletes the old key
        path.rename(path.with_name("renamed-" + path.name))
    for path in deleted:
        path.unlink()
    for big in sorted((src / "big").glob("*.bin")):  # a changed large file: a new multipart upload
        big.write_bytes(rng.randbytes(big.stat().st_size + 1000))
    write_tree(src, {f"new/n{i}.bin": rng.randbytes(rng.randint(1, 30_000)) for i in range(5)})


def _wait_for_journal_writes(state: Path, count: int, process: Any, timeout: float = 60.0) -> bool:
    """Poll (bounded) until the journal's WAL changed ``count`` times, so the kill lands right after
    (or during) a journal commit."""
    wal = state.with_name(state.name + "-wal")
    last: tuple[int, int] | None = None
    changes = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            st = wal.stat()
            now = (st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            now = None
        if now is not None and now != last:
            if last is not None:
                changes += 1
            last = now
            if changes >= count:
                return True
        time.sleep(0.0005)
    return False


def _trial(
    server_factory: Any, tmp_path: Path, seed: int, trigger: tuple[str, int] | None = None
) -> dict[str, Any]:
    rng = random.Random(seed)
    server = server_factory(latency_ms=rng.choice([10, 20]), seed=seed)
    bucket = create_bucket(server)
    src = tmp_path / "src"
    make_tree(src, seed, files=16, big=2, big_size=900_000)
    state = tmp_path / "journal.db"
    op, count = trigger or rng.choice(TRIGGERS)
    held = op not in ("delay", "journal")
    # Every run of the trial goes through the kill point's proxy: the journal's sync is per endpoint.
    with KillPoint(server, op if held else "", count) as point:
        via = point.via
        first = mirror(via, src, f"ks3://{bucket}/data/", state, *FLAGS)
        assert first.returncode == 0, first.stderr[-3000:]
        _mutate(src, rng)
        before_kill = journal_paths(state)

        mark = server.mark()
        point.arm()
        process = start_mirror(via, src, f"ks3://{bucket}/data/", state, *FLAGS)
        try:
            if op == "delay":
                time.sleep(rng.uniform(0.2, 2.5))
                reached = process.poll() is None
            elif op == "journal":
                reached = _wait_for_journal_writes(state, count, process)
            else:
                # The answer to the count-th request is held at the proxy: the kill lands inside it.
                reached = point.wait(process)
            killed = process.poll() is None
        finally:
            kill9(process)
            point.release()
        # The kill must have landed inside the operation under test, or this was only a normal re-run.
        assert reached and killed, f"the kill missed {op} #{count}: reached={reached}, killed={killed}"
        requests = server.requests()[mark:]
        if held:
            assert point.held is not None and [r["op"] for r in requests].count(op) >= count, [
                r["op"] for r in requests
            ]
        if op == "DeleteObjects":
            # The server deleted the old names; the killed client never recorded it.
            remote = set(bucket_contents(server, bucket, "data/"))
            deleted = before_kill - set(folder_files(src)) - remote
            assert deleted and deleted <= journal_paths(state), (deleted, journal_paths(state))
        if op in ("UploadPart", "InitiateMultipartUpload"):
            with Journal.open(state) as journal:
                assert sum(journal.stats(s.id).uploads_in_flight for s in journal.syncs()) >= 1

        rerun = mirror(via, src, f"ks3://{bucket}/data/", state, *FLAGS, "--abort-stale-after", "0s")
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert_bucket_equals_folder(server, bucket, "data/", src)
        assert_no_multipart_uploads(server, bucket)
        assert_journal_healthy(state)
        counts = part_upload_counts(server.requests()[mark:])
        twice = [pair for pair, n in counts.items() if n == 2]
        more = [pair for pair, n in counts.items() if n > 2]
        assert not more, f"parts sent 3+ times: {more}"
        assert len(twice) <= JOBS, f"parts sent twice beyond the {JOBS} in flight: {twice}"

        settled = server.mark()
        quiet = mirror(via, src, f"ks3://{bucket}/data/", state, *FLAGS)
        assert quiet.returncode == 0, quiet.stderr[-3000:]
        assert data_writes(server.requests()[settled:]) == []
    server.stop()
    return {"trigger": (op, count), "reached": reached, "killed": killed, "resent_parts": len(twice)}


@pytest.mark.parametrize(
    ("seed", "trigger"), [(101, ("UploadPart", 4)), (102, ("DeleteObjects", 1)), (103, ("journal", 5))]
)
def test_kill9_mirror_then_rerun_ends_correct(
    server_factory: Any, tmp_path: Path, seed: int, trigger: tuple[str, int]
) -> None:
    outcome = _trial(server_factory, tmp_path, seed, trigger)
    print(outcome)


@pytest.mark.soak
@pytest.mark.parametrize("seed", range(200, 224))
def test_kill9_mirror_soak(server_factory: Any, tmp_path: Path, seed: int) -> None:
    outcome = _trial(server_factory, tmp_path, seed)
    print(outcome)


def _restore_trial(server_factory: Any, tmp_path: Path, seed: int, kill_after_gets: int) -> None:
    """kill -9 during a restore: what appeared in the target is whole (files appear only by rename of a
    verified temp file); after a re-run the folder equals the bucket exactly, temp files included."""
    server = server_factory(latency_ms=15, seed=seed)
    bucket = create_bucket(server)
    src = tmp_path / "src"
    tree = make_tree(src, seed, files=20, big=2, big_size=900_000)
    up = mirror(server, src, f"ks3://{bucket}/r/", tmp_path / "up.db", *FLAGS)
    assert up.returncode == 0, up.stderr[-3000:]
    target = tmp_path / "restore"
    state = tmp_path / "down.db"

    def temp_files() -> list[Path]:
        return [p for p in target.rglob("*") if p.name.startswith(".ks3sync-tmp-")] if target.exists() else []

    with KillPoint(server, "GetObject", kill_after_gets) as point:
        via = point.via  # the killed run and the re-run: one journal sync
        point.arm()
        # --bwlimit keeps each large file in flight long enough for the kill to land inside one.
        process = start_mirror(
            via, f"ks3://{bucket}/r/", target, state, "--jobs", str(JOBS), "--bwlimit", "2MB/s"
        )
        try:
            if kill_after_gets:  # the answer to the n-th GET is held: the kill lands inside that download
                landed = point.wait(process)
            else:  # the moment a temp file exists: a download is half done
                deadline = time.monotonic() + 30
                while process.poll() is None and time.monotonic() < deadline and not temp_files():
                    time.sleep(0.005)
                landed = process.poll() is None and bool(temp_files())
        finally:
            kill9(process)
            point.release()
        # The kill landed inside a download (else this was a normal re-run): a GET was held unanswered,
        # or a verified-then-renamed temp file was still being written.
        assert landed, "the restore was not killed in the middle of a download"
        assert kill_after_gets or temp_files(), "no temp file left by the kill: it did not land mid-download"
        for path in target.rglob("*") if target.exists() else []:
            if path.is_file() and not path.name.startswith(".ks3sync-tmp-"):
                rel = path.relative_to(target).as_posix()
                assert path.read_bytes() == tree[rel], f"{rel} appeared partial or wrong after the kill"
        rerun = mirror(via, f"ks3://{bucket}/r/", target, state, "--jobs", str(JOBS))
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert folder_files(target) == tree, "the restored folder differs from the bucket (leftover temp files?)"
    assert_journal_healthy(state)


@pytest.mark.parametrize(("seed", "gets"), [(111, 0)])
def test_kill9_restore_then_rerun_leaves_no_temp_files(
    server_factory: Any, tmp_path: Path, seed: int, gets: int
) -> None:
    _restore_trial(server_factory, tmp_path, seed, gets)


@pytest.mark.soak
@pytest.mark.parametrize("seed", range(500, 510))
def test_kill9_restore_soak(server_factory: Any, tmp_path: Path, seed: int) -> None:
    _restore_trial(server_factory, tmp_path, seed, random.Random(seed).randint(1, 20))
