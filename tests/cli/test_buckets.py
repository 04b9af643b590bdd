"""`ks3sync mb`, `ks3sync rb`, `ks3sync ls` without a bucket, a missing bucket's "create it with"
hint, and $KS3_ENDPOINT: `ks3sync` subprocesses against a real local-server (issue 14, points 4 and 9).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from ks3sync.ks3 import Client, ClientConfig
from tests.serverkit import unique_bucket_name

DEAD_ENDPOINT = "http://127.0.0.1:9"  # discard port: nothing listens


def ks3sync(server: Any, *args: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {name: value for name, value in os.environ.items() if name != "KS3_ENDPOINT"}
    full_env.update(
        KS3_ACCESS_KEY=server.access_key,
        KS3_SECRET_KEY=server.secret_key,
        XDG_STATE_HOME=str(tmp_path / "xdg"),
        **env,
    )
    return subprocess.run(
        [sys.executable, "-m", "ks3sync", *args], capture_output=True, text=True, env=full_env, timeout=60
    )


def client_for(server: Any) -> Client:
    return Client(
        ClientConfig(endpoint=server.endpoint, access_key=server.access_key, secret_key=server.secret_key)
    )


def bucket_names(server: Any) -> set[str]:
    with client_for(server) as client:
        return {b.name for b in client.list_buckets()}


def test_mb_ls_rb_round_trip(local_server: Any, tmp_path: Path) -> None:
    name = unique_bucket_name("mb")
    made = ks3sync(
        local_server, "mb", f"ks3://{name}", "--endpoint", local_server.endpoint, tmp_path=tmp_path
    )
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == f"made bucket ks3://{name}"
    assert name in bucket_names(local_server)
    with client_for(local_server) as client:
        assert client.get_bucket_acl(name) == "private"

    for args in ((), ("ks3://",)):
        listed = ks3sync(local_server, "ls", *args, "--endpoint", local_server.endpoint, tmp_path=tmp_path)
        assert listed.returncode == 0, listed.stderr
        (line,) = [line for line in listed.stdout.splitlines() if line.endswith(f"  {name}")]
        date, clock, region, shown = line.split()
        assert len(date) == 10 and len(clock) == 8 and region == "BEIJING" and shown == name

    again = ks3sync(
        local_server, "mb", f"ks3://{name}", "--endpoint", local_server.endpoint, tmp_path=tmp_path
    )
    assert again.returncode == 1
    assert again.stderr.strip() == f"ks3sync: error: bucket '{name}' already exists (it is yours)"

    removed = ks3sync(
        local_server, "rb", f"ks3://{name}/", "--endpoint", local_server.endpoint, tmp_path=tmp_path
    )
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.strip() == f"removed bucket ks3://{name}"
    assert name not in bucket_names(local_server)


def test_mb_with_region_and_acl(local_server: Any, tmp_path: Path) -> None:
    name = unique_bucket_name("mb")
    made = ks3sync(
        local_server,
        "mb",
        f"ks3://{name}",
        "--region",
        "BEIJING",
        "--acl",
        "public-read",
        "--endpoint",
        local_server.endpoint,
        tmp_path=tmp_path,
    )
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == f"made bucket ks3://{name} in BEIJING"
    with client_for(local_server) as client:
        assert client.get_bucket_acl(name) == "public-read"
        client.delete_bucket(name)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("mb", "ks3://ab"), "BUCKET: bucket name must be 3-63 characters"),
        (("mb", "ks3://good-name/prefix"), "BUCKET: expected ks3://bucket without a key prefix"),
        (("mb", "ks3://good-name", "--region", "bei jing"), "--region: expected a KS3 region name"),
        (("rb", "not-a-url"), "BUCKET: "),
    ],
)
def test_bad_arguments_are_one_line_exit_2(
    local_server: Any, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    done = ks3sync(local_server, *args, "--endpoint", local_server.endpoint, tmp_path=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith(f"ks3sync: error: {message}") and done.stderr.count("\n") == 1, done.stderr


def test_rb_refuses_a_bucket_with_objects(local_server: Any, bucket: str, tmp_path: Path) -> None:
    with client_for(local_server) as client:
        client.put_object(bucket, "keep/me.txt", b"data")
    done = ks3sync(
        local_server, "rb", f"ks3://{bucket}", "--endpoint", local_server.endpoint, tmp_path=tmp_path
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"ks3sync: error: bucket '{bucket}' is not empty (it holds objects, e.g. 'keep/me.txt'); "
        "delete them first, then remove the bucket"
    )
    assert bucket in bucket_names(local_server)
    with client_for(local_server) as client:
        assert client.head_object(bucket, "keep/me.txt").size == 4


def test_a_missing_bucket_says_how_to_create_it(local_server: Any, tmp_path: Path) -> None:
    name = unique_bucket_name("gone")
    endpoint = local_server.endpoint
    hint = f"bucket '{name}' does not exist (create it with: ks3sync mb ks3://{name} --endpoint {endpoint})"
    for args in (
        ("rb", f"ks3://{name}"),
        ("ls", f"ks3://{name}/p"),
        ("mirror", f"ks3://{name}/p", str(tmp_path / "restore"), "--state-db", str(tmp_path / "j.db")),
    ):
        done = ks3sync(local_server, *args, "--endpoint", endpoint, tmp_path=tmp_path)
        assert (done.returncode, done.stderr.strip()) == (2, f"ks3sync: error: {hint}"), args
    # an upload too; and with the endpoint from a config file, the hint names the file
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    cfg = tmp_path / "my config.yaml"
    cfg.write_text(
        textwrap.dedent(f"""\
        endpoint: {endpoint}
        state_dir: {tmp_path / "state"}
        syncs: []
        """)
    )
    done = ks3sync(
        local_server, "mirror", str(src), f"ks3://{name}/p", "--config", str(cfg), tmp_path=tmp_path
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"ks3sync: error: bucket '{name}' does not exist (create it with: "
        f"ks3sync mb ks3://{name} --config '{cfg}')"
    )
    assert name not in bucket_names(local_server)  # nothing was created behind the user's back


def test_ks3_endpoint_saves_repeating_endpoint(local_server: Any, bucket: str, tmp_path: Path) -> None:
    with client_for(local_server) as client:
        client.put_object(bucket, "p/x.txt", b"x")
    # the environment alone
    done = ks3sync(
        local_server, "ls", f"ks3://{bucket}/p/", tmp_path=tmp_path, KS3_ENDPOINT=local_server.endpoint
    )
    assert done.returncode == 0 and done.stdout.rstrip().endswith("p/x.txt"), done.stderr
    # --endpoint beats it
    done = ks3sync(
        local_server,
        "ls",
        f"ks3://{bucket}/p/",
        "--endpoint",
        local_server.endpoint,
        tmp_path=tmp_path,
        KS3_ENDPOINT=DEAD_ENDPOINT,
    )
    assert done.returncode == 0 and "p/x.txt" in done.stdout, done.stderr
    # so does the endpoint of a --config file (named on this command line: more specific)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"endpoint: {local_server.endpoint}\nstate_dir: {tmp_path / 'state'}\nsyncs: []\n")
    done = ks3sync(
        local_server,
        "ls",
        f"ks3://{bucket}/p/",
        "--config",
        str(cfg),
        tmp_path=tmp_path,
        KS3_ENDPOINT=DEAD_ENDPOINT,
    )
    assert done.returncode == 0 and "p/x.txt" in done.stdout, done.stderr
    # a missing bucket's hint needs no --endpoint when KS3_ENDPOINT gives it
    done = ks3sync(
        local_server, "rb", "ks3://no-such-bucket-here", tmp_path=tmp_path, KS3_ENDPOINT=local_server.endpoint
    )
    assert done.stderr.strip() == (
        "ks3sync: error: bucket 'no-such-bucket-here' does not exist "
        "(create it with: ks3sync mb ks3://no-such-bucket-here)"
    )
    # and mirror uses it too
    src = tmp_path / "src"
    src.mkdir()
    (src / "y.txt").write_text("y")
    done = ks3sync(
        local_server,
        "mirror",
        str(src),
        f"ks3://{bucket}/m",
        "--state-db",
        str(tmp_path / "j.db"),
        tmp_path=tmp_path,
        KS3_ENDPOINT=local_server.endpoint,
    )
    assert done.returncode == 0, done.stderr
    with client_for(local_server) as client:
        assert client.head_object(bucket, "m/y.txt").size == 1


def test_no_endpoint_anywhere_is_one_line(local_server: Any, tmp_path: Path) -> None:
    done = ks3sync(local_server, "ls", tmp_path=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "ks3sync: error: no endpoint: pass --endpoint URL (or 'local' for an "
        "embedded test server), --config FILE, or set KS3_ENDPOINT"
    )


def test_buckets_of_the_embedded_server(local_server: Any, tmp_path: Path) -> None:
    """`--endpoint local` (here from KS3_ENDPOINT): make, list and remove a bucket in the state dir's
    embedded server; its data stays under $XDG_STATE_HOME/ks3sync/local-server."""
    env = {"KS3_ENDPOINT": "local"}
    made = ks3sync(local_server, "mb", "ks3://demo-bucket", tmp_path=tmp_path, **env)
    assert made.returncode == 0, made.stderr
    listed = ks3sync(local_server, "ls", tmp_path=tmp_path, **env)
    assert listed.returncode == 0 and listed.stdout.rstrip().endswith("  demo-bucket"), listed.stderr
    assert (tmp_path / "xdg" / "ks3sync" / "local-server").is_dir()
    removed = ks3sync(local_server, "rb", "ks3://demo-bucket", tmp_path=tmp_path, **env)
    assert removed.returncode == 0, removed.stderr
    assert ks3sync(local_server, "ls", tmp_path=tmp_path, **env).stdout == ""
