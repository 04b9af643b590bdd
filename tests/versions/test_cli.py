"""Versions through the command line against local-server, with real files (docs/versions.md): passes
that overwrite, delete, rename and create; ``restore --as-of`` each earlier pass byte for byte (also
after the journal is lost, from the bucket alone); one file; a sub-folder; kill -9 between the version
copy and the overwrite; retention exactly; cold storage; encrypted syncs and their integrity tag; the
versions area that no other run may delete or download; usage errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ks3sync.cli.main import cli
from ks3sync.crypto.decrypt import decrypt_object
from ks3sync.crypto.errors import CryptoError
from ks3sync.crypto.key import EncryptionKey
from ks3sync.ks3 import Client, ClientConfig
from ks3sync.versions.stamp import format_stamp

KIB = 1024
Tree = dict[str, tuple[bytes, int]]  # path -> (content, mtime_ns)


def run(server: Any, *args: str) -> Any:
    env = {"KS3_ACCESS_KEY": server.access_key, "KS3_SECRET_KEY": server.secret_key}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def client_for(server: Any) -> Client:
    return Client(
        ClientConfig(endpoint=server.endpoint, access_key=server.access_key, secret_key=server.secret_key)
    )


def write(root: Path, files: dict[str, bytes | None]) -> None:
    for path, data in files.items():
        target = root / path
        if data is None:
            target.unlink()
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def snapshot(root: Path) -> Tree:
    found: Tree = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            found[path.relative_to(root).as_posix()] = (path.read_bytes(), path.stat().st_mtime_ns)
    return found


class Sync:
    """A folder mirrored to ks3://bucket/docs/ with versions, one journal, passes run on request."""

    def __init__(self, server: Any, bucket: str, tmp: Path, *extra: str) -> None:
        self.server, self.bucket, self.tmp = server, bucket, tmp
        self.src = tmp / "src"
        self.src.mkdir()
        self.journal = tmp / "j.db"
        self.common = [
            "--endpoint",
            server.endpoint,
            "--part-size",
            "100KiB",
            "--multipart-threshold",
            "200KiB",
            *extra,
        ]
        self.target = f"ks3://{bucket}/docs/"

    def mirror(self, *args: str) -> Any:
        result = run(
            self.server,
            "mirror",
            str(self.src),
            self.target,
            "--delete",
            "--force",
            "--keep-versions",
            ".versions/",
            "--state-db",
            str(self.journal),
            *self.common,
            *args,
        )
        assert result.exit_code == 0, result.stderr
        return result

    def restore(self, as_of: str, dest: str, *args: str, src: str | None = None, code: int = 0) -> Any:
        result = run(
            self.server,
            "restore",
            src or self.target,
            str(self.tmp / dest),
            "--as-of",
            as_of,
            "--endpoint",
            self.server.endpoint,
            "--state-db",
            str(self.tmp / f"{dest}.db"),
            "--no-proxy",
            *[a for a in self.common if a.startswith("--encrypt") or a.endswith(".key")],
            *args,
        )
        assert result.exit_code == code, result.stderr
        return result

    def passes(self) -> list[dict[str, Any]]:
        result = run(
            self.server, "versions", self.target, "--endpoint", self.server.endpoint, "--json", "--no-proxy"
        )
        assert result.exit_code == 0, result.stderr
        return json.loads(result.stdout)["passes"]


def three_passes(sync: Sync) -> tuple[list[Tree], list[str]]:
    """Pass 1 creates, pass 2 overwrites/deletes/renames/creates, pass 3 overwrites again, deletes a
    new file and re-creates a deleted name. Returns the tree after each pass and the stamps of 2 and 3."""
    write(
        sync.src,
        {
            "a.txt": b"a1",
            "b.txt": b"b1",
            "d/c.txt": b"c1",
            "big.bin": os.urandom(300 * KIB),
            "empty": b"",
            "same.txt": b"unchanged",
        },
    )
    trees = []
    sync.mirror()
    trees.append(snapshot(sync.src))
    write(
        sync.src, {"a.txt": b"a2 longer", "big.bin": os.urandom(310 * KIB), "b.txt": None, "new.txt": b"n2"}
    )
    (sync.src / "e").mkdir()
    (sync.src / "d" / "c.txt").rename(sync.src / "e" / "c.txt")
    sync.mirror()
    trees.append(snapshot(sync.src))
    write(sync.src, {"a.txt": b"a3", "new.txt": None, "b.txt": b"b3, a new file of an old name"})
    sync.mirror()
    trees.append(snapshot(sync.src))
    stamps = [p["pass"] for p in sync.passes()]
    assert len(stamps) == 2  # pass 1 only created files: nothing to keep, no pass in the area
    return trees, stamps


@pytest.mark.parametrize("journal_lost", [False, True])
def test_restore_as_of_each_pass_byte_for_byte(
    local_server: Any, bucket: str, tmp_path: Path, journal_lost: bool
) -> None:
    sync = Sync(local_server, bucket, tmp_path)
    write(
        sync.src,
        {
            "a.txt": b"a1",
            "b.txt": b"b1",
            "d/c.txt": b"c1",
            "big.bin": os.urandom(300 * KIB),
            "empty": b"",
            "same.txt": b"unchanged",
        },
    )
    sync.mirror()
    first = snapshot(sync.src)
    write(
        sync.src, {"a.txt": b"a2 longer", "big.bin": os.urandom(310 * KIB), "b.txt": None, "new.txt": b"n2"}
    )
    (sync.src / "e").mkdir()
    (sync.src / "d" / "c.txt").rename(sync.src / "e" / "c.txt")
    sync.mirror()
    second = snapshot(sync.src)
    between = time.time_ns()
    if journal_lost:
        sync.journal.unlink()  # pass 3 adopts what it finds; the history lives in the bucket alone
    write(sync.src, {"a.txt": b"a3", "new.txt": None, "b.txt": b"b3, a new file of an old name"})
    out = sync.mirror()
    assert "versions: kept" in out.stderr
    third = snapshot(sync.src)
    stamps = [p["pass"] for p in sync.passes()]
    assert len(stamps) == 2  # pass 1 only created files: nothing kept, no pass in the area
    for i, (as_of, expected) in enumerate([(stamps[0], first), (stamps[1], second), ("now", third)]):
        sync.restore(as_of, f"r{i}")
        assert snapshot(tmp_path / f"r{i}") == expected, as_of  # bytes and mtimes
    iso = datetime.fromtimestamp(between / 1e9, UTC).isoformat(
        timespec="milliseconds"
    )  # …T18:30:05.123+00:00
    result = sync.restore(iso, "iso", "--json")
    assert snapshot(tmp_path / "iso") == second
    doc = json.loads(result.stdout)
    # a.txt and new.txt from pass 3's versions; b.txt was created by pass 3: absent then, not left out.
    assert (doc["as_of"], doc["from_versions"], doc["left_out"]) == (format_stamp(between), 2, 0)


def test_one_file_and_a_sub_folder_as_of_a_pass(local_server: Any, bucket: str, tmp_path: Path) -> None:
    sync = Sync(local_server, bucket, tmp_path)
    trees, stamps = three_passes(sync)
    sync.restore(stamps[0], "a-then.txt", src=f"ks3://{bucket}/docs/a.txt")
    assert (tmp_path / "a-then.txt").read_bytes() == b"a1"
    assert (tmp_path / "a-then.txt").stat().st_mtime_ns == trees[0]["a.txt"][1]
    (tmp_path / "into").mkdir()
    gone = sync.restore(stamps[1], "into", src=f"ks3://{bucket}/docs/b.txt", code=2)  # deleted by pass 2
    assert f"nothing to restore: ks3://{bucket}/docs/b.txt held no object at {stamps[1]}" in gone.stderr
    assert list((tmp_path / "into").iterdir()) == []
    sync.restore("now", "into", src=f"ks3://{bucket}/docs/b.txt")
    assert (tmp_path / "into" / "b.txt").read_bytes() == b"b3, a new file of an old name"
    sync.restore(stamps[0], "sub", src=f"ks3://{bucket}/docs/d/")
    assert snapshot(tmp_path / "sub") == {"c.txt": trees[0]["d/c.txt"]}


def test_nothing_there_then_is_an_error_not_an_empty_file(
    local_server: Any, bucket: str, tmp_path: Path
) -> None:
    sync = Sync(local_server, bucket, tmp_path)
    _, stamps = three_passes(sync)
    result = sync.restore(stamps[0], "x.txt", src=f"ks3://{bucket}/docs/new.txt", code=2)
    assert "held no object" in result.stderr and not (tmp_path / "x.txt").exists()


def test_kill_9_between_the_version_copy_and_the_overwrite_loses_nothing(
    local_server: Any, bucket: str, tmp_path: Path
) -> None:
    sync = Sync(local_server, bucket, tmp_path)
    v1, v2 = os.urandom(2 * 1024 * KIB), os.urandom(2 * 1024 * KIB)
    write(sync.src, {"big.bin": v1, "small.txt": b"s"})
    sync.mirror()
    write(sync.src, {"big.bin": v2})
    env = dict(os.environ, KS3_ACCESS_KEY=local_server.access_key, KS3_SECRET_KEY=local_server.secret_key)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ks3sync",
            "mirror",
            str(sync.src),
            sync.target,
            "--keep-versions",
            ".versions/",
            "--state-db",
            str(sync.journal),
            "--bwlimit",
            "256KiB/s",
            *sync.common,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with client_for(local_server) as client:

            def kept() -> list[str]:
                return [
                    o.key
                    for o in client.iter_objects(bucket, prefix="docs/.versions/")
                    if not isinstance(o, str)
                ]

            wait(lambda: bool(kept()), 60)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            keys = kept()
            assert len(keys) == 1 and keys[0].endswith("/big.bin")  # a version, and no manifest yet
            stamp = keys[0].split("/")[2]
            assert client.get_object(bucket, keys[0]).read() == v1
            assert client.get_object(bucket, "docs/big.bin").read() == v1  # the overwrite never completed
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    sync.restore(stamp, "killed")
    assert (tmp_path / "killed" / "big.bin").read_bytes() == v1
    sync.mirror()  # the next pass finishes the job, with its own version and manifest
    assert len(sync.passes()) == 2
    sync.restore(stamp, "before")
    sync.restore("now", "after")
    assert (tmp_path / "before" / "big.bin").read_bytes() == v1
    assert (tmp_path / "after" / "big.bin").read_bytes() == v2


def wait(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


# -- retention --------------------------------------------------------------------------------------

DAY_NS = 86400 * 1_000_000_000


def craft_pass(client: Client, bucket: str, days_ago: float, paths: list[str], *, manifest: bool) -> str:
    """A pass as an older ks3sync would have left it (its stamp in the past): server-side copies of the
    current objects, and a manifest in the documented format (docs/versions.md §4)."""
    stamp = format_stamp(time.time_ns() - int(days_ago * DAY_NS))
    entries = []
    for path in sorted(paths):
        result = client.copy_object(bucket, f"docs/{path}", bucket, f"docs/.versions/{stamp}/{path}")
        entries.append(
            {
                "path": path,
                "before": {
                    "etag": result.etag,
                    "size": 2,
                    "modified_ns": None,
                    "mtime_ns": None,
                    "encrypted": None,
                },
                "after": None,
            }
        )
    if manifest:
        body = json.dumps(
            {"ks3sync_manifest": 1, "pass": stamp, "finished": stamp, "entries": entries}
        ).encode()
        client.put_object(bucket, f"docs/.versions/{stamp}.json", body)
    return stamp


def area_keys(client: Client, bucket: str) -> set[str]:
    return {
        o.key[len("docs/.versions/") :]
        for o in client.iter_objects(bucket, prefix="docs/.versions/")
        if not isinstance(o, str)
    }


def test_retention_deletes_exactly_what_expired_versions_first_and_moves_old_ones_cold(
    local_server: Any, bucket: str, tmp_path: Path
) -> None:
    sync = Sync(local_server, bucket, tmp_path)
    write(sync.src, {"a.txt": b"a1", "b.txt": b"b1"})
    sync.mirror()
    common = [f"ks3://{bucket}/docs/", "--endpoint", local_server.endpoint, "--no-proxy"]
    with client_for(local_server) as client:
        p40 = craft_pass(client, bucket, 40, ["a.txt", "b.txt"], manifest=True)
        p20 = craft_pass(client, bucket, 20, ["a.txt"], manifest=False)
        p10 = craft_pass(client, bucket, 10, ["b.txt"], manifest=True)
        write(sync.src, {"a.txt": b"a2"})
        sync.mirror()
        now_pass = [p["pass"] for p in sync.passes()][-1]
        before = area_keys(client, bucket)
        assert len(before) == 8

        dry = run(local_server, "prune", *common, "--keep", "30d", "--dry-run", "--json")
        assert dry.exit_code == 0 and json.loads(dry.stdout)["expired_passes"] == [p40]
        assert json.loads(dry.stdout)["to_delete"] == 3 and area_keys(client, bucket) == before

        mark = local_server.mark()
        done = run(local_server, "prune", *common, "--keep", "30d")
        assert done.exit_code == 0, done.stderr
        assert area_keys(client, bucket) == {k for k in before if not k.startswith(p40)}
        deletes = [r for r in local_server.requests()[mark:] if r["op"] == "DeleteObjects"]
        assert len(deletes) == 2  # the pass's versions, then its manifest in a request of its own

        cold = run(local_server, "prune", *common, "--keep", "30d", "--cold-after", "7d")
        assert cold.exit_code == 0 and "moved 2 versions to STANDARD_IA" in cold.stderr
        for key in (f"{p20}/a.txt", f"{p10}/b.txt"):
            info = client.head_object(bucket, f"docs/.versions/{key}")
            assert info.storage_class == "STANDARD_IA" and "mtime" in info.metadata  # metadata kept
        assert client.head_object(bucket, f"docs/.versions/{now_pass}/a.txt").storage_class in (
            None,
            "STANDARD",
        )
        sync.restore(p10, "from-cold")  # cold versions are read directly
        assert (tmp_path / "from-cold" / "b.txt").read_bytes() == b"b1"

        refused = run(local_server, "prune", *common, "--keep-passes", "1")
        assert refused.exit_code == 1 and "refusing to delete 3 of 5" in refused.stderr
        assert len(area_keys(client, bucket)) == 5
        forced = run(local_server, "prune", *common, "--keep-passes", "1", "--max-delete", "100%")
        assert forced.exit_code == 0, forced.stderr
        assert area_keys(client, bucket) == {f"{now_pass}.json", f"{now_pass}/a.txt"}


# -- encrypted syncs ----------------------------------------------------------------------------------


def test_encrypted_versions_restore_and_are_verified_against_the_original_key(
    local_server: Any, bucket: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "sync.key"
    key_file.write_bytes(b"0123456789abcdef")
    key_file.chmod(0o600)
    sync = Sync(local_server, bucket, tmp_path, "--encrypt-key", str(key_file))
    big = os.urandom(300 * KIB)
    write(sync.src, {"a.txt": b"secret a1", "b.txt": b"secret b1", "big.bin": big})
    sync.mirror()
    first = snapshot(sync.src)
    write(sync.src, {"a.txt": b"secret a2", "b.txt": None, "big.bin": os.urandom(300 * KIB)})
    sync.mirror()
    [stamp] = [p["pass"] for p in sync.passes()]
    sync.restore(stamp, "then")
    assert snapshot(tmp_path / "then") == first  # decrypted, tags checked against docs/<path>
    key = EncryptionKey(b"0123456789abcdef")
    with client_for(local_server) as client:
        with client.get_object(bucket, f"docs/.versions/{stamp}/a.txt") as response:
            stored, meta = response.read(), response.info.metadata
        assert stored != b"secret a1"
        assert decrypt_object(key, meta, stored, object_key="docs/a.txt") == b"secret a1"
        with pytest.raises(CryptoError):  # the tag is bound to the original key, not the version's
            decrypt_object(key, meta, stored, object_key=f"docs/.versions/{stamp}/a.txt")
        # A version moved under another path's name is refused: its tag names docs/b.txt.
        client.copy_object(bucket, f"docs/.versions/{stamp}/b.txt", bucket, f"docs/.versions/{stamp}/a.txt")
    forged = sync.restore(stamp, "forged.txt", src=f"ks3://{bucket}/docs/a.txt", code=1)
    assert "integrity tag" in forged.stderr and not (tmp_path / "forged.txt").exists()


# -- the versions area belongs to ks3sync ---------------------------------------------------------------


def test_no_other_run_deletes_or_downloads_the_versions_area(
    local_server: Any, bucket: str, tmp_path: Path
) -> None:
    sync = Sync(local_server, bucket, tmp_path)
    _, stamps = three_passes(sync)
    with client_for(local_server) as client:
        kept = area_keys(client, bucket)
        write(sync.src, {".versions/mine.txt": b"a local folder of that name"})
        plain = run(
            local_server,
            "mirror",
            str(sync.src),
            sync.target,
            "--delete",
            "--delete-excluded",
            "--exclude",
            ".versions",
            "--exclude",
            "*.bin",
            "--force",
            "--endpoint",
            local_server.endpoint,
            "--state-db",
            str(tmp_path / "other.db"),
        )
        assert plain.exit_code == 0, plain.stderr
        assert ".versions/ in the source folder is not uploaded" in plain.stderr
        assert area_keys(client, bucket) == kept  # nothing deleted, nothing uploaded into it
        assert not any(
            o.key == "docs/big.bin" for o in client.iter_objects(bucket, prefix="docs/")
        )  # it did run
    down = run(
        local_server,
        "mirror",
        sync.target,
        str(tmp_path / "down"),
        "--endpoint",
        local_server.endpoint,
        "--state-db",
        str(tmp_path / "down.db"),
    )
    assert down.exit_code == 0, down.stderr
    assert not (tmp_path / "down" / ".versions").exists() and (tmp_path / "down" / "a.txt").exists()


# -- usage --------------------------------------------------------------------------------------------


def test_usage_errors_say_what_is_wrong(local_server: Any, bucket: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src, {"a.txt": b"a"})
    ep = ["--endpoint", local_server.endpoint, "--state-db", str(tmp_path / "j.db")]
    cases = [
        (["mirror", str(src), f"ks3://{bucket}/x/", "--keep", "30d", *ep], "--keep: only means something"),
        (["mirror", str(src), f"ks3://{bucket}/x/", "--keep-versions", "../up/", *ep], "--keep-versions:"),
        (
            [
                "mirror",
                str(src),
                f"ks3://{bucket}/x/",
                "--keep-versions",
                ".v/",
                "--backup-prefix",
                "bak/",
                *ep,
            ],
            "cannot be combined with --backup-prefix",
        ),
        (
            ["mirror", f"ks3://{bucket}/x/", str(tmp_path / "d"), "--keep-versions", ".v/", *ep],
            "versions are kept when uploading",
        ),
        (["restore", f"ks3://{bucket}/x/", str(tmp_path / "r"), "--as-of", "yesterday", *ep], "--as-of:"),
        (["restore", f"ks3://{bucket}/x/", str(tmp_path / "r"), "--as-of", "2h", *ep], "no versions found"),
        (
            ["restore", "ks3://no-such-bucket-here/x/", str(tmp_path / "r"), "--as-of", "2h", *ep],
            "does not exist",
        ),
        (["prune", f"ks3://{bucket}/x/", "--endpoint", local_server.endpoint], "nothing to do"),
        (["versions", f"ks3://{bucket}/x/", "../a", "--endpoint", local_server.endpoint], "PATH:"),
    ]
    for args, message in cases:
        result = run(local_server, *args)
        assert result.exit_code == 2 and message in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_restore_as_of_over_a_newer_folder_with_delete(
    local_server: Any, bucket: str, tmp_path: Path
) -> None:
    sync = Sync(local_server, bucket, tmp_path)
    trees, stamps = three_passes(sync)
    sync.restore("now", "x")
    assert snapshot(tmp_path / "x") == trees[2]
    (tmp_path / "x" / "local-only.txt").write_bytes(b"never in the bucket")
    back = sync.restore(stamps[0], "x", "--delete", "--max-delete", "100%")
    assert snapshot(tmp_path / "x") == trees[0]  # rewound, extra files gone
    assert "deleted 2" in back.stderr  # b.txt of pass 3 was a different file; local-only.txt and e/c.txt go


def test_mirror_prunes_after_a_clean_pass_with_the_syncs_retention(
    local_server: Any, bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    write(src, {"a.txt": b"a0"})
    config = tmp_path / "ks3sync.yaml"
    config.write_text(f"""\
endpoint: {local_server.endpoint}
state_dir: {tmp_path / "state"}
syncs:
  - name: docs
    source: {src}
    target: ks3://{bucket}/docs/
    delete: true
    max_delete: 100%
    versions: {{keep_passes: 1}}
""")
    seen = []
    for i in range(1, 4):
        write(src, {"a.txt": f"a{i}".encode()})
        result = run(
            local_server, "mirror", str(src), f"ks3://{bucket}/docs/", "--config", str(config), "--json"
        )
        assert result.exit_code == 0, result.stderr
        doc = json.loads(result.stdout)
        seen.append(doc["version_pass"])
        # Pass 1 only creates a.txt: nothing kept. Pass 2 keeps a1; pass 3 keeps a2 and expires pass 2.
        assert (doc["versions_kept"], doc["versions_pruned"]["deleted_passes"]) == [(0, 0), (1, 0), (1, 1)][
            i - 1
        ]
    with client_for(local_server) as client:
        assert area_keys(client, bucket) == {f"{seen[-1]}.json", f"{seen[-1]}/a.txt"}


def test_one_file_is_never_restored_over_ks3syncs_own_state(
    local_server: Any, bucket: str, tmp_path: Path
) -> None:
    sync = Sync(local_server, bucket, tmp_path)
    _, stamps = three_passes(sync)
    journal = tmp_path / "own.db"
    journal.write_bytes(b"not to be replaced")
    result = run(
        local_server,
        "restore",
        f"ks3://{bucket}/docs/a.txt",
        str(journal),
        "--as-of",
        stamps[0],
        "--endpoint",
        local_server.endpoint,
        "--state-db",
        str(journal),
    )
    assert result.exit_code == 1 and journal.read_bytes() == b"not to be replaced", result.stderr
