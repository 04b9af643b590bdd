"""A damaged state: a journal full of garbage, a lost journal, a read-only state folder, a full disk.

Each must end in one clear error line and a non-zero exit with no remote change (the request log shows
no writes), or, for `ks3sync repair`, a rebuilt journal after which the next mirror sends no data except
for files whose content really differs. Repair never trusts a size alone: a same-size file with other
bytes is not recorded, an encrypted object is recorded only with the right key.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

from tests.serverkit import ServerHandle

from .helpers import (
    assert_bucket_equals_folder,
    assert_journal_healthy,
    assert_no_multipart_uploads,
    client_for,
    data_writes,
    error_lines,
    journal_paths,
    make_tree,
    mirror,
    read_only,
    repair,
    tmpfs,
    writes,
)

FLAGS = ("--jobs", "4", "--part-size", "100KiB", "--multipart-threshold", "400KiB")


def _synced_tree(server: ServerHandle, bucket: str, tmp_path: Path, *extra: str) -> tuple[Path, Path, str]:
    src = tmp_path / "src"
    make_tree(src, 11, files=10, big=1, big_size=700_000)
    state = tmp_path / "state" / "journal.db"
    dst = f"ks3://{bucket}/r/"
    run = mirror(server, src, dst, state, *FLAGS, *extra)
    assert run.returncode == 0, run.stderr[-3000:]
    return src, state, dst


def _same_size_edit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _garbage(state: Path) -> None:
    for side in (state.with_name(state.name + "-wal"), state.with_name(state.name + "-shm")):
        side.unlink(missing_ok=True)
    state.write_bytes(random.Random(3).randbytes(max(8192, state.stat().st_size)))


def test_corrupted_journal_is_one_clear_error_and_no_remote_write(
    local_server: ServerHandle, bucket: str, tmp_path: Path
) -> None:
    src, state, dst = _synced_tree(local_server, bucket, tmp_path)
    (src / "changed.txt").write_bytes(b"a change the mirror would upload")
    _garbage(state)
    mark = local_server.mark()
    run = mirror(local_server, src, dst, state, *FLAGS, "--delete")
    assert run.returncode in (1, 2), run.returncode
    assert "Traceback" not in run.stderr
    lines = error_lines(run.stderr)
    assert len(lines) == 1 and str(state) in lines[0], run.stderr[-2000:]
    assert writes(local_server.requests()[mark:]) == []


def test_repair_rebuilds_a_corrupted_journal_and_the_next_mirror_sends_only_real_changes(
    local_server: ServerHandle, bucket: str, tmp_path: Path
) -> None:
    src, state, dst = _synced_tree(local_server, bucket, tmp_path)
    edited = sorted(p for p in src.rglob("*.bin") if p.stat().st_size > 100 and "big" not in p.parts)[0]
    _same_size_edit(edited)  # same size, other bytes: repair must not record it
    _garbage(state)
    mark = local_server.mark()
    fixed = repair(local_server, src, dst, state)
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    assert writes(local_server.requests()[mark:]) == []  # repair itself changes nothing remotely here
    moved = list(state.parent.glob("journal.db.corrupt-*"))
    assert len(moved) == 1 and not moved[0].name.endswith(("-wal", "-shm")), moved
    assert_journal_healthy(state)
    rel = edited.relative_to(src).as_posix()
    assert rel not in journal_paths(state)
    assert len(journal_paths(state)) == len([p for p in src.rglob("*") if p.is_file()]) - 1

    mark = local_server.mark()
    run = mirror(local_server, src, dst, state, *FLAGS)
    assert run.returncode == 0, run.stderr[-3000:]
    sent = data_writes(local_server.requests()[mark:])
    assert [(r["op"], r["path"].rsplit("/", 1)[-1]) for r in sent] == [("PutObject", edited.name)]
    assert_bucket_equals_folder(local_server, bucket, "r/", src)


def test_repair_of_a_lost_journal_adopts_multipart_objects_without_sending_data(
    local_server: ServerHandle, bucket: str, tmp_path: Path
) -> None:
    src, state, dst = _synced_tree(local_server, bucket, tmp_path)
    for path in state.parent.iterdir():
        path.unlink()
    fixed = repair(local_server, src, dst, state, "--json")
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    assert '"recorded": 11' in fixed.stdout, fixed.stdout
    mark = local_server.mark()
    run = mirror(local_server, src, dst, state, *FLAGS)
    assert run.returncode == 0, run.stderr[-3000:]
    assert data_writes(local_server.requests()[mark:]) == []


def test_repair_of_an_encrypted_sync_needs_the_key(
    local_server: ServerHandle, bucket: str, tmp_path: Path
) -> None:
    key = tmp_path / "keys" / "k.key"
    key.parent.mkdir()
    made = subprocess.run(
        [sys.executable, "-m", "ks3sync", "keygen", str(key)], capture_output=True, check=False
    )
    assert made.returncode == 0, made.stderr
    src, state, dst = _synced_tree(local_server, bucket, tmp_path, "--encrypt-key", str(key))
    for path in state.parent.iterdir():
        path.unlink()
    without_key = repair(local_server, src, dst, state, "--dry-run", "--json")
    assert without_key.returncode == 0, without_key.stderr[-2000:]
    assert '"recorded": 0' in without_key.stdout  # ciphertext never passes for the plaintext
    fixed = repair(local_server, src, dst, state, "--encrypt-key", str(key), "--json")
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    assert '"recorded": 11' in fixed.stdout, fixed.stdout
    mark = local_server.mark()
    run = mirror(local_server, src, dst, state, *FLAGS, "--encrypt-key", str(key))
    assert run.returncode == 0, run.stderr[-3000:]
    assert data_writes(local_server.requests()[mark:]) == []


def test_repair_aborts_uploads_the_new_journal_cannot_resume(
    local_server: ServerHandle, bucket: str, tmp_path: Path
) -> None:
    src, state, dst = _synced_tree(local_server, bucket, tmp_path)
    with client_for(local_server) as client:
        client.initiate_multipart(bucket, "r/orphan.bin")
        client.initiate_multipart(bucket, "elsewhere/not-ours.bin")
    for path in state.parent.iterdir():
        path.unlink()
    fixed = repair(local_server, src, dst, state)
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    with client_for(local_server) as client:
        left = [u.key for u in client.iter_multipart_uploads(bucket)]
        client.abort_multipart(
            bucket, "elsewhere/not-ours.bin", next(u.upload_id for u in client.iter_multipart_uploads(bucket))
        )
    assert left == ["elsewhere/not-ours.bin"]  # outside the prefix: not this sync's business
    assert_no_multipart_uploads(local_server, bucket)


def test_read_only_state_dir_is_one_clear_error_and_no_remote_write(
    local_server: ServerHandle, bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    make_tree(src, 12, files=4)
    state_dir = tmp_path / "ro-state"
    state_dir.mkdir()
    mark = local_server.mark()
    with read_only(state_dir):
        run = mirror(local_server, src, f"ks3://{bucket}/ro/", state_dir / "journal.db", *FLAGS)
    assert run.returncode in (1, 2)
    assert "Traceback" not in run.stderr
    lines = error_lines(run.stderr)
    assert len(lines) == 1 and "journal.db" in lines[0], run.stderr[-2000:]
    assert writes(local_server.requests()[mark:]) == []


def test_existing_journal_on_a_now_read_only_dir_is_one_clear_error(
    local_server: ServerHandle, bucket: str, tmp_path: Path
) -> None:
    src, state, dst = _synced_tree(local_server, bucket, tmp_path)
    (src / "more.txt").write_bytes(b"more")
    mark = local_server.mark()
    with read_only(state.parent):
        run = mirror(local_server, src, dst, state, *FLAGS)
    assert run.returncode in (1, 2)
    assert "Traceback" not in run.stderr
    assert len(error_lines(run.stderr)) == 1, run.stderr[-2000:]
    # Nothing may be written that the journal could not record... except a PUT the journal then fails
    # to record, which the next run adopts. Deletes and multipart leftovers are never acceptable.
    assert [r for r in writes(local_server.requests()[mark:]) if r["op"] != "PutObject"] == []
    assert_no_multipart_uploads(local_server, bucket)


def test_full_disk_under_the_journal_is_a_clear_error_then_recovers(
    local_server: ServerHandle, bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    make_tree(src, 13, files=300, max_small=2000)
    state_dir = tmp_path / "full"
    with tmpfs(state_dir, "160k"):
        state = state_dir / "journal.db"
        run = mirror(local_server, src, f"ks3://{bucket}/full/", state, *FLAGS)
        assert run.returncode in (1, 2), run.stderr[-2000:]
        assert "Traceback" not in run.stderr
        assert error_lines(run.stderr) or "failed" in run.stderr
        # Whatever reached the bucket is byte-exact: nothing partial, nothing deleted.
        with client_for(local_server) as client:
            remote = {
                o.key[len("full/") :]
                for o in client.iter_objects(bucket, prefix="full/")
                if not isinstance(o, str)
            }
        local = {p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file()}
        assert remote <= local
    # On a disk with room, the same journal path works and the pass completes.
    roomy = tmp_path / "roomy" / "journal.db"
    again = mirror(local_server, src, f"ks3://{bucket}/full/", roomy, *FLAGS)
    assert again.returncode == 0, again.stderr[-3000:]
    assert_bucket_equals_folder(local_server, bucket, "full/", src)
    assert_no_multipart_uploads(local_server, bucket)


def test_full_disk_on_restore_leaves_no_partial_file(
    local_server: ServerHandle, bucket: str, tmp_path: Path
) -> None:
    with client_for(local_server) as client:
        client.put_object(bucket, "restore/small.txt", b"fits")
        client.put_object(bucket, "restore/huge.bin", os.urandom(600_000))
    target = tmp_path / "target"
    with tmpfs(target, "256k"):
        run = mirror(local_server, f"ks3://{bucket}/restore/", target, tmp_path / "j.db", "--jobs", "1")
        assert run.returncode == 1, run.stderr[-2000:]
        assert "Traceback" not in run.stderr
        assert "huge.bin" in run.stderr
        left = sorted(p.name for p in target.rglob("*") if p.is_file())
        assert "huge.bin" not in left
        assert all(name == "small.txt" for name in left), left  # no temp files left behind
