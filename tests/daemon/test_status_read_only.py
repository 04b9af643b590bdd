"""`ks3sync status` changes nothing it reports (D26), through the real command (`python -m ks3sync status`)
on real journal files:

- a journal written by this ks3sync, left by a clean stop or by a kill (its last transactions only in
  the WAL): reported as before, while the file's bytes, mtime and mode, its WAL's bytes, its
  ``user_version`` and its journal mode stay as they were (the command used to checkpoint a dead
  service's WAL into the file and chmod it to 0600);
- a journal at an older schema (what the still-running older service uses after a package upgrade):
  refused with one line naming the file, exit 2, the file not migrated;
- a journal a starting service has not created its schema in yet: nothing recorded, not an error;
- beside a running `ks3sync run`: what the service commits (to its WAL) is reported.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ks3sync.config import load_config
from ks3sync.journal import SCHEMA_VERSION
from tests.daemon.test_status import make_config
from tests.daemon.test_status_e2e import Run
from tests.journal.test_migrations import OLD_VERSIONS, old_journal
from tests.serverkit import ServerHandle

REPO = Path(__file__).resolve().parents[2]

# Writes a journal the way the service does (a sync, three synced files, the service row and the sync's
# health), then stops cleanly or dies like kill -9 (os._exit: nothing closed, no checkpoint).
WRITER = textwrap.dedent("""\
    import os, sys, time
    from pathlib import Path
    from ks3sync.config import load_config
    from ks3sync.journal import HealthRecord, Journal
    from tests.daemon.test_status import register
    from tests.journal.test_journal import entry

    config = load_config(Path(sys.argv[1]))
    journal = Journal.open(config.journal_path)
    sid = register(journal, config, 0)
    journal.record_synced(sid, [entry(f"f{i}.txt", i + 1) for i in range(3)])
    now = time.time_ns()
    journal.service_started(os.getpid(), now, [HealthRecord(sid, "watching", None, None, None, None, now)])
    if sys.argv[2] == "killed":
        os._exit(0)
    journal.write_health(os.getpid(), now, [], stopped=True)
    journal.close()
""")


def status(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ks3sync", "status", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def file_state(path: Path) -> tuple[str, int, int] | None:
    """What a write would change: the bytes, the mtime (ns) and the mode; None for no file."""
    if not path.exists():
        return None
    st = path.stat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), st.st_mtime_ns, st.st_mode


def version_and_mode(path: Path) -> tuple[int, str]:
    db = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
    try:
        return db.execute("PRAGMA user_version").fetchone()[0], db.execute("PRAGMA journal_mode").fetchone()[
            0
        ]
    finally:
        db.close()


@pytest.mark.parametrize("left_by", ["stopped", "killed"])
def test_status_reports_and_writes_nothing(tmp_path: Path, left_by: str) -> None:
    config = make_config(tmp_path)
    made = subprocess.run(
        [sys.executable, "-c", WRITER, str(config), left_by],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    path = load_config(config).journal_path
    wal = path.with_name(path.name + "-wal")
    assert wal.exists() == (left_by == "killed") and (left_by == "stopped" or wal.stat().st_size > 0)
    path.chmod(0o640)  # made readable to a monitoring group by its admin
    db_before, wal_before = file_state(path), file_state(wal)

    done = status(config, "--json")
    assert done.returncode == 3, done.stderr
    doc = json.loads(done.stdout)
    assert doc["service"]["state"] == "stopped"
    assert (doc["service"]["stopped_at"] is None) == (left_by == "killed")
    sync = doc["syncs"][0]
    assert (sync["name"], sync["state"], sync["files_synced"]) == ("a", "stopped", 3)
    text = status(config)
    assert text.returncode == 3 and text.stdout.startswith("service: stopped"), text.stderr
    assert "3 files synced" in text.stdout

    assert file_state(path) == db_before
    if wal_before is not None:
        assert file_state(wal) == wal_before  # not checkpointed into the file, not truncated
    else:
        # A read-only reader of a WAL file opens the -wal beside it (SQLite creates it, empty, with the
        # file's mode and owner, when no writer holds one): no content. The -shm is shared memory.
        assert not wal.exists() or (wal.stat().st_size, wal.stat().st_mode) == (0, path.stat().st_mode)
    assert version_and_mode(path) == (SCHEMA_VERSION, "wal")


@pytest.mark.parametrize("version", [v for v in sorted(OLD_VERSIONS) if v < SCHEMA_VERSION])
def test_an_older_schema_is_refused_not_migrated(tmp_path: Path, version: int) -> None:
    config = make_config(tmp_path)
    path = load_config(config).journal_path
    path.parent.mkdir()
    old_journal(path, OLD_VERSIONS[version])
    sqlite3.connect(path).execute("PRAGMA journal_mode = WAL").connection.close()  # as ks3sync left it
    before = file_state(path)

    for args in ((), ("--json",)):
        done = status(config, *args)
        assert done.returncode == 2, done.stdout
        message = (
            f"{path}: journal schema {version} is older than this ks3sync's {SCHEMA_VERSION}; "
            "start the service (or run a mirror) once to upgrade it"
        )
        if args:
            assert json.loads(done.stdout)["error"] == message
        else:
            assert (done.stdout, done.stderr) == ("", f"ks3sync: error: {message}\n")
    assert file_state(path) == before
    assert version_and_mode(path) == (version, "wal")


def test_a_journal_not_created_yet_reads_as_nothing_recorded(tmp_path: Path) -> None:
    """A service starting creates the file before it commits its schema."""
    config = make_config(tmp_path)
    path = load_config(config).journal_path
    path.parent.mkdir()
    path.touch()
    done = status(config)
    assert done.returncode == 3, done.stderr
    assert done.stdout.startswith("service: never started")
    assert path.stat().st_size == 0
    assert sorted(p.name for p in path.parent.iterdir()) == ["journal.db"]


def test_status_beside_a_running_service(
    tmp_path: Path,
    local_server: ServerHandle,
    bucket: str,
    wait_until: Callable[..., object],
) -> None:
    run = Run(tmp_path, local_server, f"ks3://{bucket}/p")
    try:
        (run.root / "a.txt").write_text("a")
        run.start()
        seen: list[dict[str, Any]] = []

        def synced(n: int) -> Callable[[], bool]:
            def check() -> bool:
                assert run.process is not None and run.process.poll() is None, run.log.read_text()
                code, doc = run.status()
                seen.append(doc)
                s = doc["syncs"][0]
                return code == 0 and s["state"] == "ok" and s.get("files_synced") == n

            return check

        wait_until(synced(1), timeout=60, interval=0.1)
        (run.root / "b.txt").write_text("b")  # committed by the service while status keeps reading
        wait_until(synced(2), timeout=60, interval=0.1)
        assert seen[-1]["service"]["pid"] == run.process.pid  # type: ignore[union-attr]
        assert run.cli("status", "--config", str(run.config)).stdout.startswith("service: running (pid ")
        assert run.sigterm() == 0
    finally:
        run.stop()
    code, doc = run.status()
    assert (code, doc["service"]["state"], doc["syncs"][0]["files_synced"]) == (3, "stopped", 2)
