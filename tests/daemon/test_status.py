"""`ks3sync status` from a real journal: each sync's state (ok / failing / stopped), the service's
(running / starting / not responding / stopped / never started), the exit codes, parked changes and
errors. The rows are written here the way the service writes them; tests/daemon/test_status_e2e.py
drives a real `ks3sync run`."""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path

from click.testing import CliRunner

from ks3sync.cli.main import cli
from ks3sync.cli.status import collect, render
from ks3sync.config import load_config
from ks3sync.daemon.lock import LOCK_FILE, acquire, probe
from ks3sync.daemon.worker import options_hash
from ks3sync.journal import Change, ChangeKind, HealthRecord, Journal

S = 1_000_000_000
DEAD_PID = 2**22 + 12345  # above the default pid_max: no such process


def make_config(tmp_path: Path) -> Path:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"endpoint: http://127.0.0.1:9\nstate_dir: {tmp_path}/state\nsyncs:\n"
        f"  - {{name: a, source: {tmp_path}/a, target: 'ks3://bkt/a'}}\n"
        f"  - {{name: b, source: {tmp_path}/b, target: 'ks3://bkt/b'}}\n"
    )
    return cfg


def register(journal: Journal, config: object, index: int) -> int:
    sync = config.syncs[index]  # type: ignore[attr-defined]
    return journal.register_sync(sync.name, str(sync.source), sync.bucket, sync.prefix, options_hash(sync))


def test_parked_changes_and_errors_are_shown(tmp_path: Path) -> None:
    config = load_config(make_config(tmp_path))
    now = time.time_ns()
    with Journal.open(config.journal_path) as journal:
        sid = register(journal, config, 0)
        journal.enqueue(
            sid,
            [
                Change("locked.db", ChangeKind.UPSERT, observed_ns=now, due_ns=now),
                Change("ok.txt", ChangeKind.UPSERT, observed_ns=now, due_ns=now + 10**12),
            ],
        )
        (claimed,) = journal.due(sid, now, 1)
        journal.failed(claimed.id, "[Errno 13] Permission denied", now, park=True)
    report = collect(config)
    a, b = report["syncs"]
    assert a["state"] == "stopped" and a["parked"] == 1 and a["queue_depth"] == 1
    assert a["parked_changes"] == [
        {"path": "locked.db", "kind": "upsert", "attempts": 1, "error": "[Errno 13] Permission denied"}
    ]
    assert a["last_errors"][0]["path"] == "locked.db"
    assert b["state"] == "stopped" and "queue_depth" not in b
    assert (report["service"]["state"], report["exit"]) == ("never started", 3)
    text = render(report)
    assert "service: never started" in text
    assert "locked.db: 1 attempts, [Errno 13] Permission denied" in text
    assert "\nb: stopped\n" in text


def test_running_service_with_one_sync_failing(tmp_path: Path) -> None:
    config = load_config(make_config(tmp_path))
    now = time.time_ns()
    with Journal.open(config.journal_path) as journal:
        a, b = register(journal, config, 0), register(journal, config, 1)
        journal.service_started(
            os.getpid(),
            now - 60 * S,
            [
                HealthRecord(
                    a,
                    "paused",
                    "credentials refused",
                    now - 50 * S,
                    "credentials refused by KS3: 403",
                    now - 5 * S,
                    now - 5 * S,
                ),
                HealthRecord(b, "polling", "inotify watch limit reached", None, None, None, now - 60 * S),
            ],
        )
        journal.write_health(os.getpid(), now - 2 * S, [], heartbeat=True)
    report = collect(config)  # no lock file here: the pid (ours) and the heartbeat say it runs
    assert (report["service"]["state"], report["service"]["pid"], report["exit"]) == (
        "running",
        os.getpid(),
        1,
    )
    item_a, item_b = report["syncs"]
    assert (item_a["state"], item_a["activity"], item_a["error"]) == (
        "failing",
        "paused",
        "credentials refused by KS3: 403",
    )
    assert item_a["failing_since"] == round((now - 50 * S) / 1e9, 3)
    assert (item_b["state"], item_b["activity"], item_b["reason"]) == (
        "ok",
        "polling",
        "inotify watch limit reached",
    )
    text = render(report)
    assert f"service: running (pid {os.getpid()}, up 1m)" in text
    assert "a: failing since " in text and "(50s ago)" in text
    assert "  error: credentials refused by KS3: 403\n  now: paused" in text
    assert "b: ok (polling: inotify watch limit reached)" in text


def test_all_ok_exits_0_and_json_is_one_document(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    config = load_config(cfg)
    now = time.time_ns()
    with Journal.open(config.journal_path) as journal:
        ids = register(journal, config, 0), register(journal, config, 1)
        journal.service_started(
            os.getpid(), now, [HealthRecord(i, "watching", None, None, None, None, now) for i in ids]
        )
    result = CliRunner().invoke(cli, ["status", "--config", str(cfg), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert [(s["name"], s["state"], s["activity"]) for s in doc["syncs"]] == [
        ("a", "ok", "watching"),
        ("b", "ok", "watching"),
    ]
    assert doc["service"]["running"] is True and doc["exit"] == 0


def test_a_service_that_died_without_stopping_is_stopped(tmp_path: Path) -> None:
    config = load_config(make_config(tmp_path))
    now = time.time_ns()
    with Journal.open(config.journal_path) as journal:
        a = register(journal, config, 0)
        journal.service_started(DEAD_PID, now, [HealthRecord(a, "watching", None, None, None, None, now)])
    report = collect(config)
    assert report["service"]["state"] == "stopped" and report["service"]["running"] is False
    assert report["exit"] == 3
    assert [s["state"] for s in report["syncs"]] == ["stopped", "stopped"]
    assert "did not stop cleanly" in render(report)


def test_the_lock_decides_over_the_pid(tmp_path: Path) -> None:
    """A live pid in the journal is not enough (pids are reused): a free lock file means stopped; a held
    lock whose pid is not the journal's is a service still starting."""
    config = load_config(make_config(tmp_path))
    now = time.time_ns()
    with Journal.open(config.journal_path) as journal:
        a = register(journal, config, 0)
        journal.service_started(os.getpid(), now, [HealthRecord(a, "watching", None, None, None, None, now)])
    (config.state_dir / LOCK_FILE).write_text(str(os.getpid()))
    assert probe(config.state_dir).held is False
    assert collect(config)["service"]["state"] == "stopped"
    handle = acquire(config.state_dir)  # held, by "us", with our pid: running
    try:
        assert probe(config.state_dir).held is True
        assert collect(config)["service"]["state"] == "running"
        handle.seek(0)
        handle.truncate()
        handle.write("4242")  # held by another pid than the journal's row: a new service starting
        handle.flush()
        report = collect(config)
        assert (report["service"]["state"], report["service"]["pid"], report["exit"]) == ("starting", 4242, 0)
        assert [s["activity"] for s in report["syncs"]] == ["starting", "starting"]
    finally:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()


def test_a_silent_heartbeat_is_not_responding(tmp_path: Path) -> None:
    config = load_config(make_config(tmp_path))
    long_ago = time.time_ns() - 600 * S
    with Journal.open(config.journal_path) as journal:
        a = register(journal, config, 0)
        journal.service_started(
            os.getpid(), long_ago, [HealthRecord(a, "watching", None, None, None, None, long_ago)]
        )
    report = collect(config)
    assert (report["service"]["state"], report["exit"]) == ("not responding", 3)
    assert "service: not responding" in render(report)


def test_a_sync_the_running_service_does_not_run(tmp_path: Path) -> None:
    config = load_config(make_config(tmp_path))
    now = time.time_ns()
    with Journal.open(config.journal_path) as journal:
        a, b = register(journal, config, 0), register(journal, config, 1)
        journal.write_health(
            1, now - 100 * S, [HealthRecord(b, "watching", None, None, None, None, now - 100 * S)]
        )
        journal.service_started(os.getpid(), now, [HealthRecord(a, "watching", None, None, None, None, now)])
    report = collect(config)
    assert [s["state"] for s in report["syncs"]] == ["ok", "stopped"]
    assert "does not run this sync" in report["syncs"][1]["reason"]
    assert report["exit"] == 3


def test_no_journal_no_files_created(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    result = CliRunner().invoke(cli, ["status", "--config", str(cfg)])
    assert result.exit_code == 3, result.output
    assert result.stdout.startswith("service: never started")
    assert not (tmp_path / "state").exists()
