"""`ks3sync mirror` through the real path: the CLI (in-process via click's runner), the httpx client,
local-server over loopback, real files, the SQLite journal. Writes are counted in the server's request log.
"""

from __future__ import annotations

import json
import os
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from ks3sync.cli.main import cli

KIB = 1024
WRITE_OPS = {
    "PutObject",
    "UploadPart",
    "CopyObject",
    "DeleteObject",
    "DeleteObjects",
    "InitiateMultipartUpload",
    "CompleteMultipartUpload",
    "UploadPartCopy",
    "AbortMultipartUpload",
}
PREFIX = "nasty/"
SMALL_PARTS = ["--part-size", "100KiB", "--multipart-threshold", "200KiB", "--jobs", "4"]


def mirror(server: Any, state: Path, *args: str) -> Any:
    runner = CliRunner()
    env = {"KS3_ACCESS_KEY": server.access_key, "KS3_SECRET_KEY": server.secret_key}
    return runner.invoke(
        cli,
        ["mirror", *args, "--endpoint", server.endpoint, "--state-db", str(state / "journal.db")],
        env=env,
        catch_exceptions=False,
    )


def writes(server: Any, since: int) -> Counter[str]:
    return Counter(entry["op"] for entry in server.requests()[since:] if entry["op"] in WRITE_OPS)


def nasty_files() -> dict[str, bytes]:
    long_path = "/".join(["L" * 250] * 4)
    long_path += "/" + "k" * (1024 - len(PREFIX) - len(long_path) - 1)
    assert len((PREFIX + long_path).encode()) == 1024
    files = {
        "plain.txt": b"plain\n",
        "space name.txt": b"spaces in the name",
        "plus+percent%hash#question?.txt": b"url-special characters",
        unicodedata.normalize("NFC", "unicode/café-nfc.txt"): b"composed",
        unicodedata.normalize("NFD", "unicode/café-nfd.txt"): b"decomposed",
        unicodedata.normalize("NFD", "unicode/café-nfc.txt"): b"same name, other normal form",
        "日本語/ファイル 名.txt": "テキスト".encode(),
        "deep/" + "/".join(f"level{i}" for i in range(25)) + "/leaf.txt": b"deep",
        "empty.txt": b"",
        "empty-folder-sibling/zero": b"",
        "multi/big1.bin": os.urandom(350 * KIB + 3),
        "multi/big2.bin": os.urandom(250 * KIB),
        long_path: b"longest key",
    }
    assert len(set(files)) == len(files)
    return files


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    for path, data in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_nasty_tree_round_trip_no_op_rerun_and_exact_delta(
    local_server: Any, bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    files = nasty_files()
    write_tree(src, files)
    target = f"ks3://{bucket}/{PREFIX}"

    first = mirror(local_server, tmp_path, str(src), target, *SMALL_PARTS)
    assert first.exit_code == 0, first.stderr
    assert "uploaded 13" in first.stderr

    mark = local_server.mark()
    second = mirror(local_server, tmp_path, str(src), target, *SMALL_PARTS)
    assert second.exit_code == 0, second.stderr
    assert writes(local_server, mark) == Counter(), "a no-op re-run must send no writes"

    (src / "plain.txt").write_bytes(b"plain, modified\n")
    (src / "empty.txt").unlink()
    (src / "renamed").mkdir()
    os.rename(src / "space name.txt", src / "renamed" / "space name.txt")
    mark = local_server.mark()
    third = mirror(local_server, tmp_path, str(src), target, "--delete", *SMALL_PARTS)
    assert third.exit_code == 0, third.stderr
    assert writes(local_server, mark) == Counter({"PutObject": 1, "CopyObject": 1, "DeleteObjects": 1})
    deleted = [e for e in local_server.requests()[mark:] if e["op"] == "DeleteObjects"]
    assert len(deleted) == 1

    restore = tmp_path / "restore"
    down = mirror(local_server, tmp_path, target, str(restore), *SMALL_PARTS)
    assert down.exit_code == 0, down.stderr
    assert read_tree(restore) == read_tree(src)
    for path in read_tree(src):
        assert os.stat(restore / path).st_mtime_ns == os.stat(src / path).st_mtime_ns, path
    assert not [p for p in restore.rglob(".ks3sync-tmp-*")]

    mark = local_server.mark()
    again = mirror(local_server, tmp_path, target, str(restore))
    assert again.exit_code == 0 and "downloaded 0" in again.stderr
    assert not [e for e in local_server.requests()[mark:] if e["op"] == "GetObject"]


def test_json_summary_and_dry_run(local_server: Any, bucket: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_tree(src, {"a": b"1", "b/c": b"22"})
    target = f"ks3://{bucket}/j/"
    mark = local_server.mark()
    dry = mirror(local_server, tmp_path, str(src), target, "--dry-run", "--json")
    assert dry.exit_code == 0, dry.stderr
    summary = json.loads(dry.stdout)
    assert summary["dry_run"] is True and summary["uploaded"] == 0
    assert sorted((row["action"], row["path"]) for row in summary["plan"]) == [
        ("upload", "a"),
        ("upload", "b/c"),
    ]
    assert writes(local_server, mark) == Counter()

    real = mirror(local_server, tmp_path, str(src), target, "--json")
    assert real.exit_code == 0, real.stderr
    summary = json.loads(real.stdout)
    assert (summary["uploaded"], summary["failed"], summary["bytes_sent"]) == (2, [], 3)

    (src / "a").unlink()
    (src / "b" / "c").unlink()
    guard = mirror(local_server, tmp_path, str(src), target, "--delete", "--json")
    assert guard.exit_code == 1
    summary = json.loads(guard.stdout)
    assert summary["refused_deletes"] == 2 and summary["deleted"] == 0
    assert "source is empty" in guard.stderr
    forced = mirror(local_server, tmp_path, str(src), target, "--delete", "--force", "--json")
    assert forced.exit_code == 0 and json.loads(forced.stdout)["deleted"] == 2


def test_exit_codes(local_server: Any, bucket: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_tree(src, {"x": b"x"})
    both_local = mirror(local_server, tmp_path, str(src), str(tmp_path / "other"))
    assert both_local.exit_code == 2 and len(both_local.stderr.strip().splitlines()) == 1
    missing = mirror(local_server, tmp_path, str(tmp_path / "nope"), f"ks3://{bucket}/p/")
    assert missing.exit_code == 2 and "no such folder" in missing.stderr
    bad_limit = mirror(local_server, tmp_path, str(src), f"ks3://{bucket}/p/", "--max-delete", "lots")
    assert bad_limit.exit_code == 2 and "--max-delete" in bad_limit.stderr
    no_bucket = mirror(local_server, tmp_path, str(src), "ks3://no-such-bucket-here/p/")
    assert no_bucket.exit_code == 2 and "no-such-bucket-here" in no_bucket.stderr

    runner = CliRunner()
    wrong = runner.invoke(
        cli,
        [
            "mirror",
            str(src),
            f"ks3://{bucket}/p/",
            "--endpoint",
            local_server.endpoint,
            "--state-db",
            str(tmp_path / "j.db"),
        ],
        env={"KS3_ACCESS_KEY": local_server.access_key, "KS3_SECRET_KEY": "wrong-secret"},
    )
    assert wrong.exit_code == 2 and "wrong-secret" not in wrong.stderr + wrong.stdout
    assert len(wrong.stderr.strip().splitlines()) == 1 and "Traceback" not in wrong.stderr


def raw_put(server: Any, bucket: str, key: str, data: bytes) -> None:
    """PUT with the path sent byte for byte: HTTP libraries (httpx, requests) normalise '..' segments
    away, which is exactly what a hostile bucket would not do."""
    import http.client
    from email.utils import formatdate

    from ks3sync.ks3.signing import authorization, resource_path

    headers = {"Date": formatdate(usegmt=True), "Content-Type": "application/octet-stream"}
    headers["Authorization"] = authorization(
        server.access_key, server.secret_key, "PUT", bucket, key, headers
    )
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        conn.request("PUT", resource_path(bucket, key), body=data, headers=headers)
        response = conn.getresponse()
        assert response.status == 200, response.read()
    finally:
        conn.close()


def test_restore_refuses_escaping_keys_with_exit_1(local_server: Any, bucket: str, tmp_path: Path) -> None:
    raw_put(local_server, bucket, "r/../escape.txt", b"evil")
    raw_put(local_server, bucket, "r/a//b", b"evil too")
    raw_put(local_server, bucket, "r/fine.txt", b"fine")
    restore = tmp_path / "restore"
    result = mirror(local_server, tmp_path, f"ks3://{bucket}/r/", str(restore))
    assert result.exit_code == 1
    assert "failed: ../escape.txt" in result.stderr and "failed: a//b" in result.stderr
    assert read_tree(restore) == {"fine.txt": b"fine"}
    assert not (tmp_path / "escape.txt").exists()


def test_restore_with_delete_and_its_guard(local_server: Any, bucket: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_tree(src, {"a": b"1", "b/c": b"2", "d": b"3"})
    target = f"ks3://{bucket}/r/"
    assert mirror(local_server, tmp_path, str(src), target).exit_code == 0
    restore = tmp_path / "restore"
    write_tree(restore, {"a": b"stale", "extra.txt": b"not in the bucket", "old/deep.txt": b"x"})
    result = mirror(local_server, tmp_path, target, str(restore), "--delete", "--max-delete", "5")
    assert result.exit_code == 0, result.stderr
    assert read_tree(restore) == {"a": b"1", "b/c": b"2", "d": b"3"}
    assert not (restore / "old").exists()  # folders emptied by deletes are pruned

    from ks3sync.ks3 import Client, ClientConfig

    with Client(
        ClientConfig(
            endpoint=local_server.endpoint,
            access_key=local_server.access_key,
            secret_key=local_server.secret_key,
        )
    ) as client:
        client.delete_objects(bucket, ["r/a", "r/b/c", "r/d"])
        nothing = mirror(local_server, tmp_path, target, str(restore), "--delete")
        assert nothing.exit_code == 1 and f"nothing to restore: {target} holds no objects" in nothing.stderr
        assert read_tree(restore) == {"a": b"1", "b/c": b"2", "d": b"3"}
        client.put_object(bucket, "r/x.tmp", b"")  # an object, but nothing of the (filtered) source
    emptied = mirror(local_server, tmp_path, target, str(restore), "--delete", "--exclude", "*.tmp")
    assert emptied.exit_code == 1 and "source is empty" in emptied.stderr
    assert read_tree(restore) == {"a": b"1", "b/c": b"2", "d": b"3"}


def test_verbose_names_each_entry_and_quiet_default_does_not(
    local_server: Any, bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    write_tree(src, {"one.txt": b"1", "two/three.txt": b"3"})
    quiet = mirror(local_server, tmp_path, str(src), f"ks3://{bucket}/v/")
    assert quiet.exit_code == 0 and quiet.stderr.strip().splitlines() == [
        quiet.stderr.strip()
    ]  # summary only
    (src / "one.txt").write_bytes(b"one, again")
    loud = mirror(local_server, tmp_path, str(src), f"ks3://{bucket}/v/", "-v")
    assert loud.exit_code == 0
    assert "uploaded one.txt" in loud.stderr and "three.txt" not in loud.stderr
    assert local_server.secret_key not in loud.stderr
