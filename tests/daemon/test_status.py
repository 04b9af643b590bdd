"""`ks3sync status` from a real journal: parked changes, errors, never-run syncs, a stale status file."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from click.testing import CliRunner

from ks3sync.cli.main import cli
from ks3sync.cli.status import collect, render
from ks3sync.config import load_config
from ks3sync.daemon.service import write_status
from ks3sync.daemon.worker import options_hash
from ks3sync.journal import Change, ChangeKind, Journal


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


def test_parked_changes_and_errors_are_shown(tmp_path: Path) -> None:
    config = load_config(make_config(tmp_path))
    sync = config.syncs[0]
    now = time.time_ns()
    with Journal.open(config.journal_path) as journal:
        sid = journal.register_sync(sync.name, str(sync.source), sync.bucket, sync.prefix, options_hash(sync))
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
    assert b["state"] == "never run" and "queue_depth" not in b
    text = render(report)
    assert "service: not running" in text
    assert "locked.db: 1 attempts, [Errno 13] Permission denied" in text
    assert "b: never run" in text


def test_a_status_file_from_a_dead_process_means_not_running(tmp_path: Path) -> None:
    config = load_config(make_config(tmp_path))
    with Journal.open(config.journal_path):
        pass
    dead_pid = 2**22 + 12345  # above the default pid_max: no such process
    write_status(
        config.state_dir / "service.json",
        {
            "pid": dead_pid,
            "running": True,
            "updated_at": time.time(),
            "started_at": time.time(),
            "syncs": {"a": {"state": "watching"}},
        },
    )
    report = collect(config)
    assert report["service"]["running"] is False
    assert report["syncs"][0]["state"] == "never run"  # live state is ignored when nobody runs
    # our own pid with a fresh file: running, live state shown
    write_status(
        config.state_dir / "service.json",
        {
            "pid": os.getpid(),
            "running": True,
            "updated_at": time.time(),
            "started_at": time.time(),
            "syncs": {"a": {"state": "polling", "reason": "inotify limit reached"}},
        },
    )
    report = collect(config)
    assert report["service"]["running"] is True
    assert (report["syncs"][0]["state"], report["syncs"][0]["reason"]) == ("polling", "inotify limit reached")


def test_json_output_is_one_document(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    result = CliRunner().invoke(cli, ["status", "--config", str(cfg), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert [s["name"] for s in doc["syncs"]] == ["a", "b"]
    assert doc["service"]["running"] is False
