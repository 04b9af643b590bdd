"""`ks3sync mirror` as a real process against local-server: excluded entries are protected from
deletion in both directions unless --delete-excluded (which still goes through every delete guard)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.cli.test_mirror_limits import keys, mirror, put, read, write


def test_upload_keeps_excluded_objects_unless_delete_excluded(
    local_server: Any, bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    write(src, {"a.txt": "a", "app.log": "log", "build/x.o": "obj", "sub/k.txt": "k", "sub/t.tmp": "tmp"})
    db = ["--state-db", str(tmp_path / "j.db")]
    first = mirror(local_server, tmp_path, str(src), f"ks3://{bucket}/p", *db)
    assert first.returncode == 0, first.stderr
    # now some of what was synced becomes excluded, by every kind of rule
    (src / "sub" / ".ks3ignore").write_text("*.tmp\n")
    patterns = tmp_path / "patterns"
    patterns.write_text("build/\n")
    put(local_server, bucket, {"p/other.log": "theirs", "p/stale.txt": "stale"})  # never in the source
    rules = ["--exclude", "*.log", "--exclude-from", str(patterns), "--max-delete", "100%"]

    kept = mirror(local_server, tmp_path, str(src), f"ks3://{bucket}/p", *rules, "--delete", *db)
    assert kept.returncode == 0, kept.stderr
    assert keys(local_server, bucket, "p/") == {
        "a.txt",
        "app.log",
        "build/x.o",
        "other.log",
        "sub/.ks3ignore",
        "sub/k.txt",
        "sub/t.tmp",
    }  # only stale.txt went
    plan = mirror(
        local_server, tmp_path, str(src), f"ks3://{bucket}/p", *rules, "--delete-excluded", "--dry-run", *db
    )
    assert plan.returncode == 0, plan.stderr
    planned = sorted(line.split()[1] for line in plan.stdout.splitlines() if line.endswith("(excluded)"))
    assert planned == ["app.log", "build/x.o", "other.log", "sub/t.tmp"]

    # --delete-excluded is still guarded: an all-excluded source looks emptied, a count bound holds
    emptied = mirror(
        local_server, tmp_path, str(src), f"ks3://{bucket}/p", "--exclude", "*", "--delete-excluded", *db
    )
    assert emptied.returncode == 1 and "the source is empty" in emptied.stderr
    bounded = mirror(
        local_server, tmp_path, str(src), f"ks3://{bucket}/p", *rules[:-2], "--delete-excluded", *db
    )
    assert bounded.returncode == 1 and "more than --max-delete 50%" in bounded.stderr  # the default bound
    assert len(keys(local_server, bucket, "p/")) == 7

    gone = mirror(
        local_server,
        tmp_path,
        str(src),
        f"ks3://{bucket}/p",
        *rules,
        "--delete-excluded",
        "--backup-prefix",
        "bak/",
        *db,
    )
    assert gone.returncode == 0, gone.stderr
    assert keys(local_server, bucket, "p/") == {"a.txt", "sub/.ks3ignore", "sub/k.txt"}
    assert keys(local_server, bucket, "bak/") == {"app.log", "build/x.o", "other.log", "sub/t.tmp"}
    again = mirror(local_server, tmp_path, str(src), f"ks3://{bucket}/p", *rules, "--delete-excluded", *db)
    assert again.returncode == 0 and "deleted 0" in again.stderr and "uploaded 0" in again.stderr


def test_restore_never_overwrites_nor_deletes_excluded_files_unless_asked(
    local_server: Any, bucket: str, tmp_path: Path
) -> None:
    put(
        local_server,
        bucket,
        {
            "r/a.txt": "a",
            "r/app.log": "remote log",
            "r/build/x.o": "remote obj",
            "r/.ks3ignore": "*.tmp\n",
            "r/z.tmp": "remote tmp",
        },
    )
    dst = tmp_path / "dst"
    mine = {
        "app.log": "my log",
        "build/x.o": "my obj",
        "z.tmp": "my tmp",
        ".ks3ignore": "*.tmp\n",
        "extra.txt": "not in the bucket",
    }
    write(dst, mine)
    patterns = tmp_path / "patterns"
    patterns.write_text("build/\n")
    state = ["--state-db", str(dst / ".state" / "journal.db")]  # ks3sync's own files inside the folder
    rules = ["--exclude", "*.log", "--exclude-from", str(patterns), "--max-delete", "100%"]

    kept = mirror(local_server, tmp_path, f"ks3://{bucket}/r", str(dst), *rules, "--delete", *state)
    assert kept.returncode == 0, kept.stderr
    files = read(dst)
    assert {k: v for k, v in files.items() if not k.startswith(".state/")} == {
        "a.txt": "a",
        ".ks3ignore": "*.tmp\n",
        "app.log": "my log",
        "build/x.o": "my obj",
        "z.tmp": "my tmp",
    }

    gone = mirror(local_server, tmp_path, f"ks3://{bucket}/r", str(dst), *rules, "--delete-excluded", *state)
    assert gone.returncode == 0, gone.stderr
    files = read(dst)
    assert {k for k in files if not k.startswith(".state/")} == {"a.txt", ".ks3ignore"}
    assert (dst / ".state" / "journal.db").is_file()  # never deleted, whatever the options
    assert keys(local_server, bucket, "r/") == {"a.txt", "app.log", "build/x.o", ".ks3ignore", "z.tmp"}
