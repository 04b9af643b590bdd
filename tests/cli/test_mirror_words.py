"""`ks3sync mirror`'s plan, summaries and failures in plain words (issue 14 points 5 and 6), through the
CLI against the session's local-server: upload / copy (renamed from …) / record (already in the bucket)
/ delete / download, recorded entries not counted as transfers, one line per failure cause, a JSON
document on stdout also when the run fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from ks3sync.cli.main import cli

KIB = 1024


def mirror(server: Any, state_db: Path, *args: str) -> Any:
    env = {"KS3_ACCESS_KEY": server.access_key, "KS3_SECRET_KEY": server.secret_key}
    return CliRunner().invoke(
        cli,
        ["mirror", *args, "--endpoint", server.endpoint, "--state-db", str(state_db)],
        env=env,
        catch_exceptions=False,
    )


def process(server: Any, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, KS3_ACCESS_KEY=server.access_key, KS3_SECRET_KEY=server.secret_key)
    return subprocess.run(
        [sys.executable, "-m", "ks3sync", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_dry_run_and_summary_say_upload_copy_record_delete_and_do_not_count_records(
    local_server: Any, bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a.txt", "b.txt", "c.txt", "old-name.txt", "gone.txt"):
        (src / name).write_bytes(os.urandom(3 * KIB))
    target = f"ks3://{bucket}/w/"
    journal = tmp_path / "first.db"
    assert mirror(local_server, journal, str(src), target).exit_code == 0
    (src / "old-name.txt").rename(src / "new-name.txt")
    (src / "gone.txt").unlink()
    (src / "added.txt").write_bytes(b"new file")

    dry = mirror(local_server, journal, str(src), target, "--delete", "-n")
    assert dry.exit_code == 0, dry.stderr
    assert dry.stdout.splitlines() == [
        "upload   added.txt (new)",
        "copy     new-name.txt (renamed from old-name.txt)",
        "delete   gone.txt (not in the source)",
        "delete   old-name.txt (not in the source)",
    ]
    assert dry.stderr.strip().splitlines()[-1] == (
        "dry run: would upload 1, copy 1, delete 2; unchanged 3; nothing changed"
    )
    plan = json.loads(mirror(local_server, journal, str(src), target, "--delete", "-n", "--json").stdout)[
        "plan"
    ]
    assert {
        "action": "copy",
        "path": "new-name.txt",
        "reason": "renamed from old-name.txt",
        "source": "old-name.txt",
    } in plan
    assert {row["action"] for row in plan} == {"upload", "copy", "delete"}

    # A new journal (the first one lost) for the same bucket: the objects already there are recorded
    # (hashed and compared), not sent again, and not counted as transfers.
    fresh = tmp_path / "fresh.db"
    recorded = mirror(local_server, fresh, str(src), target, "-n")
    assert recorded.stdout.splitlines()[0] == "record   a.txt (already in the bucket, if the content matches)"
    assert (
        recorded.stderr.strip()
        .splitlines()[-1]
        .startswith("dry run: would upload 1, copy 1, record 3 (already")
    )
    real = mirror(local_server, fresh, str(src), target, "--delete", "--json")
    summary = json.loads(real.stdout)
    assert real.exit_code == 0, real.stderr
    assert (summary["uploaded"], summary["copied"], summary["recorded"], summary["deleted"]) == (1, 1, 3, 2)
    assert "adopted" not in summary and "skipped" not in summary
    text = mirror(local_server, fresh, str(src), target, "--delete")
    assert text.stderr.strip() == text.stderr.strip().splitlines()[0]
    assert text.stderr.startswith(
        "uploaded 0, deleted 0, unchanged 5, failed 0; sent 0 B in "
    )  # asked: answered

    restore = tmp_path / "restore"
    down = mirror(local_server, tmp_path / "down.db", target, str(restore), "-n")
    assert down.stdout.splitlines()[0] == "download a.txt (new)" and "would download 5" in down.stderr
    for words in (dry, recorded, down):
        assert "adopt" not in words.output and "deleteremote" not in words.output


def test_many_entries_failing_for_one_reason_make_one_line(
    local_server: Any, bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(12):
        (src / f"doc{i:02d}.txt").write_bytes(os.urandom(KIB))
    key = tmp_path / "key"
    key.write_bytes(b"0123456789abcdef")
    key.chmod(0o600)
    target = f"ks3://{bucket}/enc/"
    assert (
        mirror(local_server, tmp_path / "up.db", str(src), target, "--encrypt-key", str(key)).exit_code == 0
    )

    plain = mirror(local_server, tmp_path / "down.db", target, str(tmp_path / "out"))
    assert plain.exit_code == 1
    lines = plain.stderr.strip().splitlines()
    assert len(lines) == 2, plain.stderr  # one line for the cause, then the summary
    assert lines[0].startswith("ks3sync: failed 12 files: ") and "--encrypt-key" in lines[0]
    assert lines[0].endswith("(doc00.txt, doc01.txt, doc02.txt and 9 more; -v lists them all)")
    assert "failed 12;" in lines[1]

    verbose = mirror(local_server, tmp_path / "down.db", target, str(tmp_path / "out"), "-v")
    for i in range(12):  # every path named, each exactly once
        assert verbose.stderr.count(f"doc{i:02d}.txt") == 1, verbose.stderr
    assert verbose.stderr.count("--encrypt-key") == 1

    as_json = mirror(local_server, tmp_path / "down.db", target, str(tmp_path / "out"), "--json")
    summary = json.loads(as_json.stdout)  # a partial failure still prints the normal summary
    assert as_json.exit_code == 1 and len(summary["failed"]) == 12 and summary["downloaded"] == 0


def test_json_prints_a_document_on_stdout_when_the_run_fails(local_server: Any, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    usage = process(local_server, "mirror", str(src), "ks3://bucket-x/p", "--jobs", "0", "--json")
    assert usage.returncode == 2 and json.loads(usage.stdout) == {
        "error": "invalid value for '--jobs': 0 is not in the range 1<=x<=256 (see 'ks3sync mirror --help')",
        "exit": 2,
    }
    assert usage.stderr.startswith("ks3sync: error: invalid value for '--jobs'")
    missing = process(
        local_server,
        "mirror",
        "ks3://no-such-bucket-json/p",
        str(tmp_path / "out"),
        "--json",
        "--endpoint",
        local_server.endpoint,
        "--state-db",
        str(tmp_path / "j.db"),
    )
    document = json.loads(missing.stdout)
    assert missing.returncode == 2 and document["exit"] == 2 and "no-such-bucket-json" in document["error"]
    no_endpoint = process(
        local_server, "mirror", str(src), "ks3://bucket-x/p", "--json", "--state-db", str(tmp_path / "j.db")
    )
    assert no_endpoint.returncode == 2 and json.loads(no_endpoint.stdout)["error"].startswith("no endpoint")
