"""`ks3sync check` as a real process against the session local-server, on trees `ks3sync mirror` uploaded:
plain (single PUT and multipart, small part sizes to keep them cheap) and client-side encrypted.

Damage is done the way it happens: a same-size object written over ours by another client (the official
SDK), an object deleted or added behind our back, a local file edited, and a byte flipped in the
server's stored body file. local-server keeps an object's ETag and CRC-64 in its index and does not
re-hash a body when it serves it, so the flipped byte is the silent corruption that only `--download`
can find (the metadata check must still call the object equal: asserted, so the test shows the gap).
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from ks3sync.cli.main import cli
from tests.serverkit import sdk_connection

KIB = 1024
SMALL_PARTS = ["--part-size", "100KiB", "--multipart-threshold", "200KiB"]


def ks3sync(server: Any, home: Path, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    """``ks3sync ARGS --endpoint SERVER`` with its default state dir under ``home``."""
    env = dict(
        os.environ,
        KS3_ACCESS_KEY=server.access_key,
        KS3_SECRET_KEY=server.secret_key,
        XDG_STATE_HOME=str(home / "state"),
        **extra_env,
    )
    return subprocess.run(
        [sys.executable, "-m", "ks3sync", *args, "--endpoint", server.endpoint],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def mirror(server: Any, state: Path, *args: str) -> None:
    env = {"KS3_ACCESS_KEY": server.access_key, "KS3_SECRET_KEY": server.secret_key}
    done = CliRunner().invoke(
        cli,
        ["mirror", *args, *SMALL_PARTS, "--endpoint", server.endpoint, "--state-db", str(state)],
        env=env,
        catch_exceptions=False,
    )
    assert done.exit_code == 0, done.stderr


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)


def flip_stored_byte(server: Any, bucket: str, key: str, offset: int) -> None:
    """Flip one bit of the body file local-server keeps for ``key`` (its index is left alone)."""
    with sqlite3.connect(f"file:{server.root / 'meta.sqlite3'}?mode=ro", uri=True) as db:
        row = db.execute(
            "SELECT data_id FROM objects WHERE bucket = ? AND key = ?", (bucket, key.encode())
        ).fetchone()
    data_id = row[0]
    assert not data_id.startswith("i"), "the session server keeps bodies in files"
    with open(server.root / "data" / data_id[:2] / data_id, "r+b") as body:
        body.seek(offset)
        byte = body.read(1)
        body.seek(offset)
        body.write(bytes([byte[0] ^ 0x01]))


def one_file_mirrored(server: Any, bucket: str, tmp_path: Path, prefix: str) -> tuple[Path, str]:
    """``tmp_path/src`` holding a.txt, mirrored to ``ks3://bucket/prefix`` (journal ``tmp_path/j.db``)."""
    src = tmp_path / "src"
    write_tree(src, {"a.txt": b"alpha"})
    target = f"ks3://{bucket}/{prefix}"
    mirror(server, tmp_path / "j.db", str(src), target)
    return src, target


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line]


PLAIN_FILES = {
    "a.txt": b"alpha\n",
    "big.bin": os.urandom(350 * KIB + 5),  # four 100 KiB parts
    "c.txt": b"charlie",
    "empty": b"",
    "sub/b.txt": b"bravo\n",
}


def test_plain_and_multipart_tree_equal_then_damaged_on_both_sides(
    local_server: Any, bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    write_tree(src, PLAIN_FILES)
    target = f"ks3://{bucket}/plain/"
    mirror(local_server, tmp_path / "j.db", str(src), target)

    equal = ks3sync(local_server, tmp_path, "check", str(src), target, "-v")
    assert equal.returncode == 0, equal.stderr
    assert lines(equal.stdout) == [
        "equal   a.txt (size, md5)",
        "equal   big.bin (size, crc64)",
        "equal   c.txt (size, md5)",
        "equal   empty (size)",
        "equal   sub/b.txt (size, md5)",
    ]
    assert lines(equal.stderr) == ["5 equal, 0 differ, 0 missing, 0 extra, 0 errors"]

    sdk_bucket = sdk_connection(local_server).get_bucket(bucket)
    sdk_bucket.new_key("plain/a.txt").set_contents_from_string(b"ALPHA\n")  # same size, other bytes
    sdk_bucket.delete_key("plain/sub/b.txt")
    sdk_bucket.new_key("plain/zz.txt").set_contents_from_string(b"not in the folder")
    (src / "c.txt").write_bytes(b"Charlie")  # edited locally, same size
    flip_stored_byte(local_server, bucket, "plain/big.bin", 123_456)

    found = ks3sync(local_server, tmp_path, "check", str(src), target, "-v")
    assert found.returncode == 1, found.stderr
    assert lines(found.stdout) == [
        "differ  a.txt (md5)",
        "equal   big.bin (size, crc64)",  # the stored CRC-64 still matches the file: metadata cannot see it
        "differ  c.txt (md5)",
        "equal   empty (size)",
        "missing sub/b.txt",
        "extra   zz.txt",
    ]
    assert lines(found.stderr) == ["2 equal, 2 differ, 1 missing, 1 extra, 0 errors"]

    read_back = ks3sync(local_server, tmp_path, "check", str(src), target, "--download")
    assert read_back.returncode == 1, read_back.stderr
    assert lines(read_back.stdout) == [
        "differ  a.txt (content at byte 0)",
        "differ  big.bin (content at byte 123456)",
        "differ  c.txt (content at byte 0)",
        "missing sub/b.txt",
        "extra   zz.txt",
    ]
    assert lines(read_back.stderr) == ["1 equal, 3 differ, 1 missing, 1 extra, 0 errors"]

    # The order of the arguments decides what is missing and what is extra.
    backwards = ks3sync(local_server, tmp_path, "check", target, str(src), "--size-only")
    assert backwards.returncode == 1
    assert lines(backwards.stdout) == ["extra   sub/b.txt", "missing zz.txt"]
    assert lines(backwards.stderr) == ["4 equal, 0 differ, 1 missing, 1 extra, 0 errors"]


def test_json_document(local_server: Any, bucket: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_tree(src, {"a.txt": b"alpha", "big.bin": os.urandom(250 * KIB), "gone.txt": b"x", "z": b"zulu"})
    target = f"ks3://{bucket}/j/"
    mirror(local_server, tmp_path / "j.db", str(src), target)
    (src / "a.txt").write_bytes(b"alpha, longer")
    (src / "gone.txt").unlink()
    (src / "new\nline.txt").write_bytes(b"a name a terminal must not act on")

    done = ks3sync(local_server, tmp_path, "check", str(src), target, "--json")
    assert done.returncode == 1, done.stderr
    doc = json.loads(done.stdout)
    assert doc == {
        "src": str(src),
        "dst": target,
        "mode": "metadata",
        "ok": False,
        "counts": {"equal": 2, "differ": 1, "missing": 1, "extra": 1, "errors": 0, "unverified": 0},
        "differ": [{"path": "a.txt", "detail": "size 13 != 5", "compared": ["size"]}],
        "missing": ["new\nline.txt"],
        "extra": ["gone.txt"],
        "errors": [],
        "unverified": [],
        "verified_by": {"crc64": 1, "md5": 1},
        "notes": [],
        "seconds": doc["seconds"],
    }
    assert "\n" not in done.stdout.strip() and done.stderr == ""
    text = ks3sync(local_server, tmp_path, "check", str(src), target)
    assert "missing new\\nline.txt" in lines(text.stdout)  # escaped, on one line


def strip_integrity_tag(server: Any, bucket: str, key: str) -> None:
    """Copy the object onto itself without ks3sync's tag: what an SDK-written object looks like (the
    copy's ETag is the MD5 of its bytes, so the journal's record no longer speaks for it either)."""
    from ks3sync.crypto.integrity import TAG_METADATA
    from ks3sync.ks3 import Client
    from tests.serverkit import client_config

    with Client(client_config(server)) as client:
        metadata = dict(client.head_object(bucket, key).metadata)
        assert metadata.pop(TAG_METADATA)
        client.copy_object(bucket, key, bucket, key, metadata_directive="REPLACE", metadata=metadata)


def test_encrypted_tree_by_journal_tag_metadata_and_download(
    local_server: Any, bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    files = {"a.txt": b"alpha\n", "big.bin": os.urandom(300 * KIB + 7), "c.txt": b"charlie", "empty": b""}
    write_tree(src, files)
    key = tmp_path / "key"
    key.write_bytes(secrets.token_hex(8).encode())  # 16 bytes, none of them whitespace (which is stripped)
    key.chmod(0o600)
    journal = tmp_path / "j.db"
    target = f"ks3://{bucket}/enc/"
    mirror(local_server, journal, str(src), target, "--encrypt-key", str(key))
    keyed = ["--encrypt-key", str(key)]
    no_journal = ["--state-db", str(tmp_path / "none.db")]

    # The journal recorded every object: their plaintext MD5s prove them without a request.
    by_journal = ks3sync(
        local_server, tmp_path, "check", str(src), target, *keyed, "--state-db", str(journal), "-v"
    )
    assert by_journal.returncode == 0, by_journal.stderr
    assert lines(by_journal.stdout) == [
        "equal   a.txt (size, journal-md5)",
        "equal   big.bin (size, journal-md5)",
        "equal   c.txt (size, journal-md5)",
        "equal   empty (size)",
    ]
    # Without it: one HEAD each, and ks3sync's integrity tag proves the file's content, multipart too.
    by_tag = ks3sync(local_server, tmp_path, "check", str(src), target, *keyed, *no_journal, "-v")
    assert by_tag.returncode == 0, by_tag.stderr
    assert lines(by_tag.stdout) == [
        "equal   a.txt (size, integrity-tag)",
        "equal   big.bin (size, integrity-tag)",
        "equal   c.txt (size, integrity-tag)",
        "equal   empty (size)",
    ]
    assert not (tmp_path / "none.db").exists()  # check never creates a journal

    # An untagged (SDK-written) multipart object has no plaintext digest in its metadata at all.
    strip_integrity_tag(local_server, bucket, "enc/big.bin")
    untagged = ks3sync(local_server, tmp_path, "check", str(src), target, *keyed, *no_journal)
    assert untagged.returncode == 0, untagged.stderr
    assert lines(untagged.stdout) == [
        "unverified big.bin (encrypted without an integrity tag or a plaintext MD5: "
        "cannot verify without --download)"
    ]
    assert lines(untagged.stderr) == [
        "ks3sync: 1 entry has equal sizes but could not be verified without --download",
        "3 equal, 0 differ, 0 missing, 0 extra, 0 errors, 1 unverified",
    ]
    required = ks3sync(
        local_server, tmp_path, "check", str(src), target, *keyed, *no_journal, "--require-integrity"
    )
    assert required.returncode == 1
    assert lines(required.stdout) == [
        "differ  big.bin (no integrity tag (written by the SDK?), and it is required)"
    ]
    read_untagged = ks3sync(local_server, tmp_path, "check", str(src), target, *keyed, "--download", "-v")
    assert read_untagged.returncode == 0, read_untagged.stderr
    assert lines(read_untagged.stdout) == [
        "equal   a.txt (size, content, integrity-tag)",
        "equal   big.bin (size, content)",
        "equal   c.txt (size, content, integrity-tag)",
        "equal   empty (size)",
    ]

    flip_stored_byte(local_server, bucket, "enc/big.bin", 200_000)
    (src / "c.txt").write_bytes(b"Charlie")
    sdk_connection(local_server).get_bucket(bucket).new_key("enc/a.txt").set_contents_from_string(b"alpha\n")

    found = ks3sync(local_server, tmp_path, "check", str(src), target, *keyed, "--state-db", str(journal))
    assert found.returncode == 1
    assert lines(found.stdout) == [
        "differ  a.txt (size 32 != 6, encrypted: a 6-byte file takes 32 bytes; the object looks unencrypted)",
        "unverified big.bin (encrypted without an integrity tag or a plaintext MD5: cannot verify without --download)",
        "differ  c.txt (md5, against the journal's record of this object)",
    ]
    by_tag = ks3sync(local_server, tmp_path, "check", str(src), target, *keyed, *no_journal)
    assert "differ  c.txt (integrity tag)" in lines(by_tag.stdout)
    read_back = ks3sync(local_server, tmp_path, "check", str(src), target, *keyed, "--download")
    assert read_back.returncode == 1
    out = lines(read_back.stdout)
    assert (
        out[0]
        == "differ  a.txt (size 32 != 6, encrypted: a 6-byte file takes 32 bytes; the object looks unencrypted)"
    )
    # The flipped bit garbles the plaintext block decrypted from the ciphertext block holding it.
    first_bad = int(out[1].removeprefix("differ  big.bin (content at byte ").removesuffix(")"))
    assert 200_000 - 16 <= first_bad < 200_000
    assert out[2] == "differ  c.txt (content at byte 0)"
    assert lines(read_back.stderr) == ["1 equal, 3 differ, 0 missing, 0 extra, 0 errors"]

    forgot = ks3sync(local_server, tmp_path, "check", str(src), target)
    assert forgot.returncode == 1
    assert (
        "error   big.bin (the object is client-side encrypted: pass --encrypt-key to compare it)"
        in forgot.stdout
    )


def test_download_verifies_the_integrity_tag_even_when_the_bytes_equal_the_file(
    local_server: Any, bucket: str, tmp_path: Path
) -> None:
    """A tag bound to another key (the object was moved there whole, metadata and all) fails the
    read-back although every decrypted byte equals the file: a restore would refuse it."""
    from ks3sync.ks3 import Client
    from tests.serverkit import client_config

    src = tmp_path / "src"
    write_tree(src, {"a.txt": b"alpha\n"})
    key = tmp_path / "key"
    key.write_bytes(secrets.token_hex(8).encode())  # 16 bytes, none of them whitespace (which is stripped)
    key.chmod(0o600)
    mirror(local_server, tmp_path / "j.db", str(src), f"ks3://{bucket}/one/", "--encrypt-key", str(key))
    with Client(client_config(local_server)) as client:
        client.copy_object(
            bucket, "one/a.txt", bucket, "two/a.txt"
        )  # metadata copied: the tag names one/a.txt
    done = ks3sync(
        local_server,
        tmp_path,
        "check",
        str(src),
        f"ks3://{bucket}/two/",
        "--encrypt-key",
        str(key),
        "--download",
    )
    assert done.returncode == 1
    (only,) = lines(done.stdout)
    assert only.startswith(
        "differ  a.txt (the object does not decrypt: decrypted content does not match its integrity tag"
    )  # the message's own "a.txt: " is left out: the line names the path
    by_metadata = ks3sync(
        local_server,
        tmp_path,
        "check",
        str(src),
        f"ks3://{bucket}/two/",
        "--encrypt-key",
        str(key),
        "--state-db",
        str(tmp_path / "none.db"),
    )
    assert lines(by_metadata.stdout) == ["differ  a.txt (integrity tag)"]


def test_usage_errors_exit_2_with_one_line(local_server: Any, bucket: str, tmp_path: Path) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    cases = [
        (
            ["check", str(folder), f"ks3://{bucket}/p/", "--download", "--size-only"],
            "--download and --size-only cannot be combined",
        ),
        (["check", str(folder), str(tmp_path)], "exactly one of SRC and DST must be ks3://"),
        (
            ["check", str(tmp_path / "nope"), f"ks3://{bucket}/p/"],
            "SRC: " + str(tmp_path / "nope") + ": no such folder",
        ),
        (
            ["check", f"ks3://{bucket}/p/", str(tmp_path / "nope")],
            "DST: " + str(tmp_path / "nope") + ": no such folder",
        ),
        (["check", str(folder), "ks3://no-such-bucket-for-check/p/"], "does not exist"),
    ]
    for args, message in cases:
        done = ks3sync(local_server, tmp_path, *args)
        assert done.returncode == 2, (args, done.stderr)
        assert len(lines(done.stderr)) == 1 and message in done.stderr and "Traceback" not in done.stderr


# Runs the real entry point in a child and reports, at exit, whether the cipher package was imported.
PROBE = """
import atexit, sys
atexit.register(lambda: print("CIPHER", "Crypto" in sys.modules))
from ks3sync.cli.main import main
sys.argv = ["ks3sync", *sys.argv[1:]]
main()
"""


def test_a_plain_check_never_loads_the_cipher_on_its_worker_threads(
    local_server: Any, bucket: str, tmp_path: Path
) -> None:
    """Worker threads that imported the cipher package while the march imported it too (for the first
    size that differs) could see it half initialised: a plain --download check failed with an
    ImportError on 20,000 files. Plain objects never need it, on any thread."""
    src = tmp_path / "src"
    write_tree(src, {f"f{i}": b"x" * i for i in range(1, 30)})
    target = f"ks3://{bucket}/probe/"
    mirror(local_server, tmp_path / "j.db", str(src), target)
    env = dict(
        os.environ,
        KS3_ACCESS_KEY=local_server.access_key,
        KS3_SECRET_KEY=local_server.secret_key,
        XDG_STATE_HOME=str(tmp_path / "state"),
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            PROBE,
            "check",
            str(src),
            target,
            "--download",
            "--endpoint",
            local_server.endpoint,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert lines(done.stdout) == ["CIPHER False"]


def test_a_configured_sync_lends_its_excludes_key_and_journal(
    local_server: Any, bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    write_tree(src, {"a.txt": b"alpha", "skip.log": b"never synced"})
    key = tmp_path / "key"
    key.write_bytes(secrets.token_hex(8).encode())  # 16 bytes, none of them whitespace (which is stripped)
    key.chmod(0o600)
    config = tmp_path / "ks3sync.yaml"
    config.write_text(
        f"endpoint: {local_server.endpoint}\nstate_dir: {tmp_path / 'state'}\n"
        f"syncs:\n  - name: docs\n    source: {src}\n    target: ks3://{bucket}/cfg/\n"
        f"    excludes: ['*.log']\n    encrypt_key_file: {key}\n"
    )
    env = {"KS3_ACCESS_KEY": local_server.access_key, "KS3_SECRET_KEY": local_server.secret_key}
    up = CliRunner().invoke(
        cli,
        ["mirror", str(src), f"ks3://{bucket}/cfg/", "--config", str(config)],
        env=env,
        catch_exceptions=False,
    )
    assert up.exit_code == 0, up.stderr
    sdk_connection(local_server).get_bucket(bucket).new_key("cfg/old.log").set_contents_from_string(
        b"excluded"
    )

    done = ks3sync(
        local_server, tmp_path, "check", str(src), f"ks3://{bucket}/cfg/", "--config", str(config), "-v"
    )
    assert done.returncode == 0, done.stderr
    assert lines(done.stdout) == [
        "equal   a.txt (size, journal-md5)"
    ]  # the key, and the journal in state_dir


def test_the_journal_records_of_a_pair_are_found_by_name_then_former_name_then_folder_and_prefix(
    tmp_path: Path,
) -> None:
    from ks3sync.cli.check import _sync_of
    from ks3sync.cli.common import Target, mirror_former_name, mirror_sync_name
    from ks3sync.journal import Journal

    folder, target = tmp_path / "docs", Target("bkt", "p/")
    with Journal.open(tmp_path / "j.db") as journal:
        assert _sync_of(journal, folder, target) is None
        other = journal.register_sync("elsewhere", str(folder), "bkt", "q/", "h")
        service = journal.register_sync("docs", str(folder), "bkt", "p/", "h")
        assert _sync_of(journal, folder, target) == service != other
        # A mirror named by an older ks3sync (with its endpoint), twice: the latest one.
        former = mirror_former_name(folder, target)
        journal.register_sync(former + "http://a", str(folder), "bkt", "p/", "h")
        latest_former = journal.register_sync(former + "http://b", str(folder), "bkt", "p/", "h")
        assert _sync_of(journal, folder, target) == latest_former
        mirrored = journal.register_sync(mirror_sync_name(folder, target), str(folder), "bkt", "p/", "h")
        assert _sync_of(journal, folder, target) == mirrored
        # check only reads: the older names stay as they were.
        assert {former + "http://a", former + "http://b"} <= {sync.name for sync in journal.syncs()}


def test_check_reads_the_journal_without_changing_it_and_skips_an_older_one(
    local_server: Any, bucket: str, tmp_path: Path
) -> None:
    """D26: check opens the journal read-only. Its records are used, and the file (bytes, mtime, mode)
    stays as it was; a journal at an older schema is not upgraded: a warning, then a check without it."""
    import hashlib

    from ks3sync.journal import SCHEMA_VERSION
    from tests.journal.test_migrations import OLD_VERSIONS, old_journal

    def state(path: Path) -> tuple[str, int, int]:
        return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns, path.stat().st_mode

    src = tmp_path / "src"
    write_tree(src, {"a.txt": b"alpha"})
    key = tmp_path / "key"
    key.write_bytes(secrets.token_hex(8).encode())
    key.chmod(0o600)
    journal, target, keyed = tmp_path / "j.db", f"ks3://{bucket}/ro/", ["--encrypt-key", str(key)]
    mirror(local_server, journal, str(src), target, *keyed)
    journal.chmod(0o640)
    before = state(journal)
    done = ks3sync(
        local_server, tmp_path, "check", str(src), target, *keyed, "--state-db", str(journal), "-v"
    )
    assert done.returncode == 0, done.stderr
    assert lines(done.stdout) == ["equal   a.txt (size, journal-md5)"]  # the record, not a HEAD
    assert state(journal) == before

    old = old_journal(tmp_path / "old.db", OLD_VERSIONS[SCHEMA_VERSION - 1])
    before = state(old)
    done = ks3sync(local_server, tmp_path, "check", str(src), target, *keyed, "--state-db", str(old), "-v")
    assert done.returncode == 0, done.stderr
    assert lines(done.stdout) == ["equal   a.txt (size, integrity-tag)"]
    assert (
        f"ks3sync: warning: {old}: journal schema {SCHEMA_VERSION - 1} is older than this ks3sync's "
        f"{SCHEMA_VERSION}; start the service (or run a mirror) once to upgrade it; comparing without the "
        "journal's records"
    ) in done.stderr
    assert state(old) == before


def test_check_reaches_ks3_as_every_command_does_through_the_proxy_options(
    local_server: Any, bucket: str, tmp_path: Path
) -> None:
    import socket

    from tests.proxykit import TinyProxy

    src, target = one_file_mirrored(local_server, bucket, tmp_path, "proxied/")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"  # nobody listens there once the socket is closed
    with TinyProxy(tmp_path / "proxy") as proxy:
        through = ks3sync(local_server, tmp_path, "check", str(src), target, "--proxy", proxy.url)
        assert through.returncode == 0, through.stderr
        assert proxy.requests(at_least=1)
    refused = ks3sync(local_server, tmp_path, "check", str(src), target, "--proxy", dead)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    direct = ks3sync(local_server, tmp_path, "check", str(src), target, "--no-proxy", HTTP_PROXY=dead)
    assert direct.returncode == 0, direct.stderr


def test_an_unusable_journal_is_a_warning_and_the_check_goes_on_without_it(
    local_server: Any, bucket: str, tmp_path: Path
) -> None:
    src, target = one_file_mirrored(local_server, bucket, tmp_path, "badjournal/")
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"this is not an SQLite database, just some bytes" * 100)
    done = ks3sync(local_server, tmp_path, "check", str(src), target, "--state-db", str(broken), "-v")
    assert done.returncode == 0, done.stderr
    assert lines(done.stdout) == ["equal   a.txt (size, md5)"]
    warning, summary = lines(done.stderr)
    assert warning.startswith("ks3sync: warning: ") and str(broken) in warning
    assert warning.endswith("comparing without the journal's records")
    assert summary == "1 equal, 0 differ, 0 missing, 0 extra, 0 errors"
    assert broken.read_bytes().startswith(b"this is not an SQLite database")  # left as it was


def test_the_versions_area_is_not_compared_as_for_mirror(
    local_server: Any, bucket: str, tmp_path: Path
) -> None:
    """Versions mirror kept (under .versions/, always reserved, or a configured prefix) are never
    "extra"; a local folder of that name is not "missing" (mirror does not upload it either)."""
    src = tmp_path / "src"
    write_tree(src, {"a.txt": b"alpha\n", "b.txt": b"bravo\n"})
    journal = tmp_path / "j.db"
    for where, keep in (("kept/", ".versions/"), ("old/", ".old/")):
        target = f"ks3://{bucket}/{where}"
        mirror(local_server, journal, str(src), target, "--keep-versions", keep)
        (src / "a.txt").write_bytes(b"alpha, second\n")
        mirror(local_server, journal, str(src), target, "--keep-versions", keep, "--delete")
        (src / "a.txt").write_bytes(b"alpha\n")
        mirror(local_server, journal, str(src), target, "--keep-versions", keep, "--delete")
    listed = {key.name for key in sdk_connection(local_server).get_bucket(bucket).list(delimiter="")}
    assert any(name.startswith("kept/.versions/") for name in listed), listed
    assert any(name.startswith("old/.old/") for name in listed)

    kept = ks3sync(local_server, tmp_path, "check", str(src), f"ks3://{bucket}/kept/", "-v")
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert lines(kept.stdout) == ["equal   a.txt (size, md5)", "equal   b.txt (size, md5)"]

    # Another prefix is ks3sync's only when told (as for restore and prune), or by the --config sync.
    unnamed = ks3sync(local_server, tmp_path, "check", str(src), f"ks3://{bucket}/old/")
    assert unnamed.returncode == 1
    assert lines(unnamed.stdout) and all(line.startswith("extra   .old/") for line in lines(unnamed.stdout))
    named = ks3sync(
        local_server, tmp_path, "check", str(src), f"ks3://{bucket}/old/", "--versions-prefix", ".old/"
    )
    assert named.returncode == 0, named.stdout + named.stderr
    config = tmp_path / "ks3sync.yaml"
    config.write_text(
        f"endpoint: {local_server.endpoint}\nsyncs:\n  - name: docs\n    source: {src}\n"
        f"    target: ks3://{bucket}/old/\n    versions: {{prefix: .old/}}\n"
    )
    configured = ks3sync(
        local_server, tmp_path, "check", str(src), f"ks3://{bucket}/old/", "--config", str(config)
    )
    assert configured.returncode == 0, configured.stdout + configured.stderr

    # A local folder called .versions is the target's reserved name: a note, not a missing entry.
    write_tree(src, {".versions/x.txt": b"mine\n"})
    local_area = ks3sync(local_server, tmp_path, "check", str(src), f"ks3://{bucket}/kept/")
    assert local_area.returncode == 0, local_area.stdout + local_area.stderr
    assert lines(local_area.stdout) == []
    assert "ks3sync: skipped .versions/: the target reserves it for versions: not compared" in lines(
        local_area.stderr
    )
    bad = ks3sync(
        local_server, tmp_path, "check", str(src), f"ks3://{bucket}/kept/", "--versions-prefix", "/abs"
    )
    assert bad.returncode == 2
    assert lines(bad.stderr)[0].startswith("ks3sync: error: --versions-prefix: ")


def test_an_object_the_official_sdk_encrypted_is_proven_by_its_plaintext_md5(
    local_server: Any, bucket: str, tmp_path: Path
) -> None:
    """The SDK's single PUT (local_encrypt=True) carries no integrity tag but records the plaintext
    MD5 in x-kss-meta-unencrypted-content-md5: one HEAD proves or disproves the file; --download
    reads it back; --require-integrity refuses it, as a restore with that setting would."""
    src = tmp_path / "src"
    write_tree(src, {"a.txt": b"alpha\n", "sdk.txt": b"written by the SDK\n"})
    key = tmp_path / "key"
    key.write_bytes(secrets.token_hex(8).encode())
    key.chmod(0o600)
    target = f"ks3://{bucket}/sdk/"
    mirror(local_server, tmp_path / "j.db", str(src), target, "--encrypt-key", str(key))
    sdk = sdk_connection(local_server, local_encrypt=True, local_key_path=str(key))
    sdk.get_bucket(bucket).new_key("sdk/sdk.txt").set_contents_from_string(b"written by the SDK\n")
    keyed = ["--encrypt-key", str(key), "--state-db", str(tmp_path / "none.db")]

    equal = ks3sync(local_server, tmp_path, "check", str(src), target, *keyed, "-v")
    assert equal.returncode == 0, equal.stderr
    assert lines(equal.stdout) == [
        "equal   a.txt (size, integrity-tag)",
        "equal   sdk.txt (size, plaintext-md5)",
    ]
    read_back = ks3sync(local_server, tmp_path, "check", str(src), target, *keyed, "--download", "-v")
    assert read_back.returncode == 0, read_back.stderr
    assert lines(read_back.stdout) == [
        "equal   a.txt (size, content, integrity-tag)",
        "equal   sdk.txt (size, content)",
    ]
    required = ks3sync(local_server, tmp_path, "check", str(src), target, *keyed, "--require-integrity")
    assert required.returncode == 1
    assert lines(required.stdout) == [
        "differ  sdk.txt (no integrity tag (written by the SDK?), and it is required)"
    ]

    (src / "sdk.txt").write_bytes(b"edited by the user\n")  # the same size
    edited = ks3sync(local_server, tmp_path, "check", str(src), target, *keyed)
    assert edited.returncode == 1
    assert lines(edited.stdout) == ["differ  sdk.txt (plaintext md5)"]
