"""Restore safety (docs/threat-model.md, "Restore safety"; docs/decisions.md D9), end to end through
`ks3sync mirror ks3://... DST` against a real local-server:

- a folder inside DST swapped for a symlink *while* the restore runs redirects nothing outside DST
  (no file, no temp file, no delete), and every file reported as downloaded is inside DST;
- a symlinked folder inside DST is not written through (rsync's default; no `--keep-dirlinks`);
- one object with unusable metadata (an mtime or a length that is no number) fails or degrades alone;
- a non-empty object whose key ends in '/' is reported as failed, not skipped in silence;
- ks3sync's own state (the journal, its -wal/-shm/-journal files, the state folder) is never
  restored over, whatever path leads to it: such keys are reported as failed.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.helpers import cli_env, client_for, folder_files, mirror, run_cli
from tests.serverkit import ServerHandle

RACE_FILES = 400
RACE_DEADLINE_S = 90.0


def _put_many(server: ServerHandle, bucket: str, objects: dict[str, bytes]) -> None:
    with client_for(server) as client, concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda item: client.put_object(bucket, item[0], item[1]), objects.items()))


_RENAME_EXCHANGE = 2  # renameat2(2): swap two names atomically


def _exchange(a: Path, b: Path) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    at_fdcwd = -100
    if libc.renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), str(a))


@contextmanager
def _swapping(folder: Path, outside: Path, start: Callable[[], bool] = lambda: True) -> Iterator[list[int]]:
    """A thread that, once ``start()`` is true and until the block ends, keeps exchanging ``folder``
    with a symlink to ``outside`` (renameat2 RENAME_EXCHANGE: at every instant the name is either the
    real folder or the symlink, never absent). Yields a one-element list: the number of round trips."""
    link = folder.with_name(folder.name + ".link")
    link.symlink_to(outside, target_is_directory=True)
    done = threading.Event()
    swaps = [0]
    errors: list[BaseException] = []

    def swap() -> None:
        while not done.is_set() and not start():
            time.sleep(0.0005)
        try:
            while not done.is_set():
                _exchange(folder, link)  # folder is now the symlink
                time.sleep(0.0005)
                _exchange(folder, link)  # and the real folder again
                swaps[0] += 1
                time.sleep(0.0005)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test below
            errors.append(exc)

    thread = threading.Thread(target=swap, daemon=True)
    thread.start()
    try:
        yield swaps
    finally:
        done.set()
        thread.join(timeout=30)
    assert not thread.is_alive(), "the swapping thread did not stop"
    assert errors == [], errors
    assert folder.is_dir() and not folder.is_symlink()
    link.unlink()


@dataclass(frozen=True)
class Pass:
    """One `mirror --json` run: its exit status, the summary on stdout, stderr."""

    returncode: int
    summary: dict[str, Any]
    stderr: str

    @property
    def failed(self) -> dict[str, str]:
        return {item["path"]: item["error"] for item in self.summary["failed"]}


def _mirror_json(
    server: ServerHandle,
    src: str | Path,
    dst: str | Path,
    state: Path | None,
    *flags: str,
    env: dict[str, str] | None = None,
) -> Pass:
    args = [
        sys.executable,
        "-m",
        "ks3sync",
        "mirror",
        str(src),
        str(dst),
        "--endpoint",
        server.endpoint,
        "--json",
        *flags,
    ]
    if state is not None:
        args += ["--state-db", str(state)]
    proc = subprocess.run(
        args, env=env or cli_env(server), capture_output=True, timeout=RACE_DEADLINE_S, check=False
    )
    stderr = proc.stderr.decode(errors="replace")
    assert "Traceback" not in stderr, stderr[-3000:]
    return Pass(proc.returncode, json.loads(proc.stdout), stderr)


def _run_racing(
    server: ServerHandle,
    bucket: str,
    dst: Path,
    outside: Path,
    state: Path,
    *flags: str,
    start: Callable[[], bool] = lambda: True,
) -> tuple[Pass, int]:
    with _swapping(dst / "sub", outside, start) as swaps:
        run = _mirror_json(server, f"ks3://{bucket}/p/", dst, state, "--jobs", "16", *flags)
    return run, swaps[0]


def test_a_folder_swapped_for_a_symlink_during_a_restore_redirects_nothing(
    local_server: ServerHandle, bucket: str, tmp_path: Path
) -> None:
    objects = {f"p/sub/f{i:04d}": f"content {i}".encode() for i in range(RACE_FILES)}
    objects |= {f"p/sub/deep/g{i:03d}": f"deep {i}".encode() for i in range(50)}
    _put_many(local_server, bucket, objects)
    dst, outside = tmp_path / "dst", tmp_path / "outside"
    (dst / "sub").mkdir(parents=True)
    outside.mkdir()
    run, swaps = _run_racing(local_server, bucket, dst, outside, tmp_path / "j.db")
    assert swaps > 0
    assert sorted(p.name for p in outside.rglob("*")) == []  # no file, no folder, no temp file
    # Every entry was tried during the race: restored, or refused because it met the symlink (how many
    # of each depends on the scheduling). What is reported as downloaded is all inside dst, with its bytes.
    failed = run.failed
    assert all("'sub' is a symbolic link inside the target folder" in m for m in failed.values()), failed
    assert run.summary["downloaded"] == len(objects) - len(failed) and run.returncode == (1 if failed else 0)
    assert folder_files(dst) == {k[2:]: v for k, v in objects.items() if k[2:] not in failed}
    # A pass without the race completes the restore.
    again = mirror(local_server, f"ks3://{bucket}/p/", dst, tmp_path / "j.db")
    assert again.returncode == 0, again.stderr[-2000:]
    assert folder_files(dst) == {k[2:]: v for k, v in objects.items()}
    assert list(outside.iterdir()) == []


def test_a_folder_swapped_for_a_symlink_during_deletes_deletes_nothing_outside(
    local_server: ServerHandle, bucket: str, tmp_path: Path
) -> None:
    """--delete removes local-only files and prunes the folders it emptied (sub/deep here; sub keeps
    a file the bucket has) while sub keeps turning into a symlink to a folder of the same shape."""
    _put_many(local_server, bucket, {"p/sub/keep.txt": b"keep"})
    dst, outside = tmp_path / "dst", tmp_path / "outside"
    names = [f"x{i:04d}" for i in range(RACE_FILES)] + [f"deep/y{i:03d}" for i in range(50)]
    (dst / "sub" / "deep").mkdir(parents=True)
    (outside / "deep").mkdir(parents=True)
    (dst / "sub" / "keep.txt").write_bytes(b"keep")
    for name in names:
        (dst / "sub" / name).write_bytes(b"local only")
        (outside / name).write_bytes(b"precious")
    first = mirror(local_server, f"ks3://{bucket}/p/", dst, tmp_path / "j.db")  # records keep.txt
    assert first.returncode == 0, first.stderr[-2000:]
    # The race starts with the deletes (the scan must see sub as a folder, or its deletes are withheld).
    first_doomed = dst / "sub" / names[0]
    run, swaps = _run_racing(
        local_server,
        bucket,
        dst,
        outside,
        tmp_path / "j.db",
        "--delete",
        "--force",
        start=lambda: not first_doomed.exists(),
    )
    assert swaps > 0
    assert folder_files(outside) == dict.fromkeys(names, b"precious")
    failed = run.failed
    assert all("'sub' is a symbolic link inside the target folder" in m for m in failed.values()), failed
    assert run.summary["deleted"] == len(names) - len(failed)  # and those are gone from dst, the rest stay:
    assert folder_files(dst) == {"sub/keep.txt": b"keep"} | {p: b"local only" for p in failed}
    again = mirror(local_server, f"ks3://{bucket}/p/", dst, tmp_path / "j.db", "--delete", "--force")
    assert again.returncode == 0, again.stderr[-2000:]
    assert folder_files(dst) == {"sub/keep.txt": b"keep"} and not (dst / "sub" / "deep").exists()
    assert folder_files(outside) == dict.fromkeys(names, b"precious")


# ------------------------------------------------------------------------------------------ hostile metadata

BAD_NUMBERS = {"huge": "9" * 26, "superscript": "\u00b2", "underscore": "1_0", "plus": "+1700000000000000000"}


def test_an_unusable_mtime_costs_the_file_its_mtime_not_its_restore(
    local_server: ServerHandle, bucket: str, tmp_path: Path
) -> None:
    """300 ordinary objects and four whose x-kss-meta-mtime is no time: every file is restored (the
    pass used to stop at the first of them: an OverflowError or a ValueError ended it); those four get
    the object's Last-Modified time, as an object without the field does, and a warning naming them."""
    good = {f"p/f{i:03d}": f"file {i}".encode() for i in range(300)}
    _put_many(local_server, bucket, good)
    with client_for(local_server) as client:
        for name, value in BAD_NUMBERS.items():  # raw header values: the SDK's checks are not the bucket's
            client.put_object(bucket, f"p/{name}", name.encode(), headers={"x-kss-meta-mtime": value})
        client.put_object(bucket, "p/dated", b"dated", metadata={"mtime": "1700000000123456789"})
        modified = {name: client.head_object(bucket, f"p/{name}").last_modified for name in BAD_NUMBERS}
    dst = tmp_path / "dst"
    run = mirror(local_server, f"ks3://{bucket}/p/", dst, tmp_path / "j.db", "--jobs", "4")
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    expected = (
        {k[2:]: v for k, v in good.items()} | {n: n.encode() for n in BAD_NUMBERS} | {"dated": b"dated"}
    )
    assert folder_files(dst) == expected
    assert os.stat(dst / "dated").st_mtime_ns == 1700000000123456789
    for name, when in modified.items():
        assert f"{name}: x-kss-meta-mtime is not a time" in run.stderr, run.stderr[-2000:]
        assert when is not None and os.stat(dst / name).st_mtime_ns == int(when.timestamp()) * 10**9


def test_an_encrypted_object_whose_length_is_no_number_fails_alone(
    local_server: ServerHandle, bucket: str, tmp_path: Path
) -> None:
    """x-kss-meta-unencrypted-content-length is what the decrypted bytes are checked against: without
    a usable one the object is not restored (failed, with the field named), the others are."""
    key = tmp_path / "key"
    made = run_cli([sys.executable, "-m", "ks3sync", "keygen", str(key)], cli_env(local_server))
    assert made.returncode == 0, made.stderr
    src = tmp_path / "src"
    src.mkdir()
    tree = {f"f{i:02d}.txt": f"secret {i}".encode() * (i + 1) for i in range(20)}
    for name, data in tree.items():
        (src / name).write_bytes(data)
    up = mirror(local_server, src, f"ks3://{bucket}/e/", tmp_path / "up.db", "--encrypt-key", str(key))
    assert up.returncode == 0, up.stderr[-2000:]
    length = "x-kss-meta-unencrypted-content-length"
    with client_for(local_server) as client:
        info = client.head_object(bucket, "e/f00.txt")
        with client.get_object(bucket, "e/f00.txt") as got:
            ciphertext = got.read()
        for name, value in BAD_NUMBERS.items():
            headers = {f"x-kss-meta-{k}": v for k, v in info.metadata.items()} | {length: value}
            client.put_object(bucket, f"e/bad-{name}", ciphertext, headers=headers)
    dst = tmp_path / "dst"
    run = _mirror_json(
        local_server, f"ks3://{bucket}/e/", dst, tmp_path / "down.db", "--encrypt-key", str(key)
    )
    assert run.returncode == 1, run.stderr[-2000:]
    failed = run.failed
    assert sorted(failed) == sorted(f"bad-{name}" for name in BAD_NUMBERS), run.summary
    assert all(length in message for message in failed.values())
    assert folder_files(dst) == tree


# ------------------------------------------------------------------------------------------ keys ending in '/'


def test_a_non_empty_key_ending_in_slash_is_reported_and_a_folder_marker_is_not(
    local_server: ServerHandle, bucket: str, tmp_path: Path
) -> None:
    """``full/`` holds data no file can be named after: a failure naming it (so the pass exits 1 and
    runs no deletes, as for other keys that cannot become files). ``marker/`` and ``e/`` (0 bytes) are
    folder markers: skipped without a word, and no folder is made for them (as before)."""
    _put_many(
        local_server,
        bucket,
        {"p/full/": b"data", "p/marker/": b"", "p/e/": b"", "p/e/inner.txt": b"i", "p/ok": b"ok"},
    )
    dst = tmp_path / "dst"
    run = _mirror_json(local_server, f"ks3://{bucket}/p/", dst, tmp_path / "j.db")
    assert run.returncode == 1, run.stderr[-2000:]
    failed = run.failed
    assert list(failed) == ["full/"], run.summary
    assert "ends in '/'" in failed["full/"] and "4 bytes" in failed["full/"]
    assert run.summary["downloaded"] == 2 and "marker" not in run.stderr and "marker" not in str(run.summary)
    assert folder_files(dst) == {"e/inner.txt": b"i", "ok": b"ok"}
    assert not (dst / "marker").exists() and not (dst / "full").exists()
    # Uploading to that prefix with --delete leaves such objects alone, as before they were listed.
    (dst / "ok").write_bytes(b"changed")
    up = mirror(local_server, dst, f"ks3://{bucket}/p/", tmp_path / "j.db", "--delete", "--force")
    assert up.returncode == 0, up.stderr[-2000:]
    with client_for(local_server) as client:
        keys = {o.key: o.size for o in client.iter_objects(bucket, prefix="p/") if not isinstance(o, str)}
    assert keys == {"p/full/": 4, "p/marker/": 0, "p/e/": 0, "p/e/inner.txt": 1, "p/ok": 7}


# ------------------------------------------------------------------------------------------ own state

STATE_NAMES = ("journal.db", "journal.db-wal", "journal.db-shm", "journal.db-journal", "journal.db.lock")
OWN_STATE = "ks3sync's own state"  # in the planner's refusal and in the executor's


def _assert_journal_intact(state_db: Path, restored: str) -> None:
    from ks3sync.journal import Journal

    with Journal.open(state_db) as journal:  # still a ks3sync journal, not the planted bytes
        assert journal.integrity_check() == []
        recorded = {path for sync in journal.syncs() for path in journal.synced_entries(sync.id)}
    assert restored in recorded


@pytest.mark.parametrize("layout", ["state-db-inside-dst", "dst-is-a-symlink-to-the-journal-folder"])
def test_the_journal_and_its_companion_files_are_never_restored_over(
    local_server: ServerHandle, bucket: str, tmp_path: Path, layout: str
) -> None:
    planted = {f"p/{name}": b"planted by whoever can write the bucket" for name in STATE_NAMES}
    _put_many(local_server, bucket, planted | {"p/fine.txt": b"fine"})
    if layout == "state-db-inside-dst":
        dst = tmp_path / "dst"
        state_db = dst / "journal.db"
    else:  # the user's DST argument is itself a symlink: followed once, and the journal is still known
        (tmp_path / "real").mkdir()
        state_db = tmp_path / "real" / "journal.db"
        dst = tmp_path / "link"
        dst.symlink_to(tmp_path / "real", target_is_directory=True)
    run = _mirror_json(local_server, f"ks3://{bucket}/p/", dst, state_db, "--jobs", "4")
    assert run.returncode == 1, run.stderr[-2000:]
    failed = run.failed
    assert sorted(failed) == sorted(STATE_NAMES), run.summary
    assert all(OWN_STATE in message for message in failed.values())
    assert (dst / "fine.txt").read_bytes() == b"fine"
    assert not [p for p in (tmp_path).rglob("*") if p.is_file() and p.read_bytes() == planted["p/journal.db"]]
    _assert_journal_intact(state_db, "fine.txt")


def test_a_restore_into_home_leaves_the_default_state_folder_alone(
    local_server: ServerHandle, bucket: str, tmp_path: Path
) -> None:
    """No --state-db: the journal is ~/.local/state/ks3sync/journal.db, inside the restore target $HOME.
    Nothing is written into that folder (its other files are ks3sync's too), the rest is restored."""
    state = ".local/state/ks3sync"
    _put_many(
        local_server,
        bucket,
        {
            f"p/{state}/journal.db": b"planted",
            f"p/{state}/service.json": b"{}",
            "p/.local/state/other/x": b"x",
            "p/docs/a.txt": b"a",
        },
    )
    home = tmp_path / "home"
    home.mkdir()
    env = cli_env(local_server, HOME=str(home))
    for name in ("XDG_STATE_HOME", "STATE_DIRECTORY"):
        env.pop(name, None)
    run = _mirror_json(local_server, f"ks3://{bucket}/p/", home, None, env=env)
    assert run.returncode == 1, run.stderr[-2000:]
    failed = run.failed
    assert sorted(failed) == [f"{state}/journal.db", f"{state}/service.json"], run.summary
    assert all(OWN_STATE in message for message in failed.values())
    assert (home / "docs" / "a.txt").read_bytes() == b"a" and (
        home / ".local/state/other/x"
    ).read_bytes() == b"x"
    assert not (home / state / "service.json").exists()
    _assert_journal_intact(home / state / "journal.db", "docs/a.txt")
