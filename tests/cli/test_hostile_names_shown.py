"""Keys and file names are shown escaped wherever a person reads them (issue 15 point 8): a key holding
``ESC ] 0;…`` (set the terminal title), ``ESC [`` (colours, cursor), CR (overwrite the line: forge a log
line), U+202E (reverse what follows) or a backslash is written as ``\\x1b``, ``\\r``, ``\\u202e``,
``\\\\`` by `ls`, `mirror -v`, the failure report and the service's text log; JSON output carries the
exact key, with those characters as ``\\uNNNN`` escapes. Real processes against the session's
local-server (and `ks3sync run` for the service's log)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from ks3sync.ks3 import Client
from tests.ptykit import ended_at_exit
from tests.serverkit import client_config

HOSTILE = {
    "title\x1b]0;pwned\x07.txt": "title\\x1b]0;pwned\\x07.txt",
    "red\x1b[31mtext.txt": "red\\x1b[31mtext.txt",
    "cr\rINFO forged line.txt": "cr\\rINFO forged line.txt",
    "rtl\u202etxt.exe": "rtl\\u202etxt.exe",
    "back\\slash.txt": "back\\\\slash.txt",
    "c1\x9bcsi.txt": "c1\\u009bcsi.txt",
}
RAW = ("\x1b", "\r", "\u202e", "\x9b", "\x07")


def run(server: Any, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, KS3_ACCESS_KEY=server.access_key, KS3_SECRET_KEY=server.secret_key)
    return subprocess.run(
        [sys.executable, "-m", "ks3sync", *args], env=env, capture_output=True, text=True, timeout=120
    )


def assert_no_raw(text: str) -> None:
    for char in RAW:
        assert char not in text, f"raw {char!r} in output:\n{text!r}"


def test_ls_mirror_and_json_show_hostile_keys_escaped(local_server: Any, bucket: str, tmp_path: Path) -> None:
    with Client(client_config(local_server)) as client:
        for name in HOSTILE:
            client.put_object(bucket, f"h/{name}", name.encode("utf-8", "surrogatepass"))
        client.put_object(bucket, "h/sub\x1b[2J/inner.txt", b"in a folder")

    listing = run(local_server, "ls", f"ks3://{bucket}/h/", "--endpoint", local_server.endpoint)
    assert listing.returncode == 0, listing.stderr
    assert_no_raw(listing.stdout)
    for shown in HOSTILE.values():
        assert listing.stdout.count(f"  h/{shown}\n") == 1, listing.stdout
    assert "PRE  h/sub\\x1b[2J/\n" in listing.stdout

    restore = tmp_path / "restore"
    common = [
        f"ks3://{bucket}/h/",
        str(restore),
        "--endpoint",
        local_server.endpoint,
        "--state-db",
        str(tmp_path / "j.db"),
    ]
    verbose = run(local_server, "mirror", *common, "-v")
    assert verbose.returncode == 0, verbose.stderr
    assert_no_raw(verbose.stderr)
    for shown in HOSTILE.values():
        assert f"downloaded {shown}\n" in verbose.stderr, verbose.stderr
    assert (restore / "title\x1b]0;pwned\x07.txt").read_bytes() == b"title\x1b]0;pwned\x07.txt"

    for name in HOSTILE:  # changed here: a dry run plans to download each again
        (restore / name).write_bytes(b"changed here")
    dry = run(local_server, "mirror", *common, "--dry-run")
    assert_no_raw(dry.stdout + dry.stderr)
    for shown in HOSTILE.values():
        assert f"download {shown} (changed locally)\n" in dry.stdout, dry.stdout

    as_json = run(local_server, "mirror", *common, "--dry-run", "--json")
    assert_no_raw(as_json.stdout)
    assert "\\u001b" in as_json.stdout and "\\u202e" in as_json.stdout and "\\u009b" in as_json.stdout
    document = json.loads(as_json.stdout)
    assert sorted(row["path"] for row in document["plan"]) == sorted(HOSTILE)  # the exact keys, once parsed


def test_a_failure_naming_a_hostile_key_is_escaped(local_server: Any, bucket: str, tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_bytes(b"0123456789abcdef")
    key_file.chmod(0o600)
    src = tmp_path / "src"
    src.mkdir()
    (src / "evil\x1b]0;x\x07\r.txt").write_bytes(b"secret")
    up = run(
        local_server,
        "mirror",
        str(src),
        f"ks3://{bucket}/e/",
        "--endpoint",
        local_server.endpoint,
        "--state-db",
        str(tmp_path / "up.db"),
        "--encrypt-key",
        str(key_file),
    )
    assert up.returncode == 0, up.stderr
    down = run(
        local_server,
        "mirror",
        f"ks3://{bucket}/e/",
        str(tmp_path / "out"),
        "--endpoint",
        local_server.endpoint,
        "--state-db",
        str(tmp_path / "down.db"),
    )
    assert down.returncode == 1
    assert_no_raw(down.stderr)
    assert "ks3sync: failed: evil\\x1b]0;x\\x07\\r.txt: " in down.stderr, down.stderr


def test_the_service_text_log_escapes_hostile_file_names(
    local_server: Any, bucket: str, tmp_path: Path
) -> None:
    folder = tmp_path / "watched"
    folder.mkdir()
    # No space, quote or '=': the old formatter wrote such a value unquoted, so unescaped.
    name = "svc\x1b]0;pwned\x07\rerror\u202eforged.txt"
    (folder / name).write_bytes(b"watched")
    config = tmp_path / "ks3sync.yaml"
    config.write_text(
        textwrap.dedent(f"""\
        endpoint: {local_server.endpoint}
        credentials:
          access_key: ${{KS3_ACCESS_KEY}}
          secret_key: ${{KS3_SECRET_KEY}}
        state_dir: {tmp_path / "state"}
        logging:
          level: info
          format: text
        syncs:
          - name: docs
            source: {folder}
            target: ks3://{bucket}/svc
        """)
    )
    log = tmp_path / "service.log"
    env = dict(os.environ, KS3_ACCESS_KEY=local_server.access_key, KS3_SECRET_KEY=local_server.secret_key)
    with open(log, "wb") as out:
        service = subprocess.Popen(
            [sys.executable, "-m", "ks3sync", "run", "--config", str(config)], stdout=out, stderr=out, env=env
        )
    with ended_at_exit(service), Client(client_config(local_server)) as client:
        deadline = time.monotonic() + 60
        while not [o for o in client.iter_objects(bucket, prefix="svc/") if not isinstance(o, str)]:
            assert time.monotonic() < deadline and service.poll() is None, log.read_text()
            time.sleep(0.05)
        service.send_signal(signal.SIGTERM)
        assert service.wait(30) == 0
    text = log.read_text(encoding="utf-8")
    assert_no_raw(text)
    assert 'path="svc\\u001b]0;pwned\\u0007\\rerror\\u202eforged.txt"' in text, text
