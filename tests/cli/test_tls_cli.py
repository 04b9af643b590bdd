"""HTTPS end to end: `ks3sync local-server --tls-cert/--tls-key` serving a certificate signed by a test CA
(tests/tlskit.py), and `mirror`, `run` and the official SDK talking to it, trusting that CA through
`--ca-bundle` / `ca_bundle:` (ks3sdk: through requests' REQUESTS_CA_BUNDLE); a certificate the client does
not trust stops the command at once with one line naming the endpoint and what failed (exit 2); HTTPS
through a CONNECT proxy (tinyproxy) for the mirror."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.proxykit import TinyProxy
from tests.serverkit import unique_bucket_name
from tests.tlskit import make_ca, make_cert, self_signed

FILES = {"a.txt": b"alpha\n", "sub/b.bin": os.urandom(300_000), "sub/deeper/c.txt": b"gamma\n"}


@pytest.fixture()
def tls_server(server_factory: Any, tmp_path: Path) -> tuple[Any, Path]:
    """A local-server on https://127.0.0.1:PORT, and the CA bundle (PEM) that trusts its certificate."""
    ca = make_ca(tmp_path / "ca")
    pair = make_cert(tmp_path / "ca", ca)
    return server_factory(tls_cert=pair.cert, tls_key=pair.key), ca.cert


def ks3sync(server: Any, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "KS3_ACCESS_KEY": server.access_key, "KS3_SECRET_KEY": server.secret_key, **env}
    return subprocess.run(
        [sys.executable, "-m", "ks3sync", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def make_tree(root: Path) -> Path:
    for name, data in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def tree_of(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_local_server_serves_https_and_mirror_round_trips_with_a_ca_bundle(
    tls_server: Any, tmp_path: Path
) -> None:
    server, bundle = tls_server
    assert server.endpoint.startswith("https://127.0.0.1:")
    bucket = unique_bucket_name()
    src = make_tree(tmp_path / "src")
    common = ["--endpoint", server.endpoint, "--ca-bundle", str(bundle), "--state-db", str(tmp_path / "j.db")]
    assert ks3sync(server, "mirror", str(src), f"ks3://{bucket}/p", *common).returncode == 2  # no bucket yet
    sdk = sdk_over_https(server, bundle)
    sdk.create_bucket(bucket)
    up = ks3sync(server, "mirror", str(src), f"ks3://{bucket}/p", *common)
    assert up.returncode == 0, up.stderr
    down = ks3sync(server, "mirror", f"ks3://{bucket}/p", str(tmp_path / "back"), *common)
    assert down.returncode == 0, down.stderr
    assert tree_of(tmp_path / "back") == FILES
    listed = ks3sync(
        server, "ls", "-r", f"ks3://{bucket}/p/", "--endpoint", server.endpoint, "--ca-bundle", str(bundle)
    )
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == len(FILES)


def sdk_over_https(server: Any, bundle: Path) -> Any:
    """The official SDK with is_secure=True. It sends through requests, which verifies certificates
    against REQUESTS_CA_BUNDLE when it is set (the SDK has no CA parameter of its own)."""
    from ks3.connection import Connection, PathCallingFormat

    os.environ["REQUESTS_CA_BUNDLE"] = str(bundle)  # restored by the autouse fixture below
    return Connection(
        server.access_key,
        server.secret_key,
        host=server.host,
        port=server.port,
        is_secure=True,
        calling_format=PathCallingFormat(),
    )


@pytest.fixture(autouse=True)
def _restore_requests_ca_bundle() -> Any:
    saved = os.environ.get("REQUESTS_CA_BUNDLE")
    yield
    if saved is None:
        os.environ.pop("REQUESTS_CA_BUNDLE", None)
    else:
        os.environ["REQUESTS_CA_BUNDLE"] = saved


def test_the_official_sdk_reads_over_https_what_mirror_wrote(tls_server: Any, tmp_path: Path) -> None:
    server, bundle = tls_server
    bucket = unique_bucket_name()
    sdk = sdk_over_https(server, bundle)
    sdk.create_bucket(bucket)
    src = make_tree(tmp_path / "src")
    up = ks3sync(
        server,
        "mirror",
        str(src),
        f"ks3://{bucket}/p",
        "--endpoint",
        server.endpoint,
        "--ca-bundle",
        str(bundle),
        "--state-db",
        str(tmp_path / "j.db"),
    )
    assert up.returncode == 0, up.stderr
    key = sdk.get_bucket(bucket).get_key("p/sub/b.bin")
    assert key.get_contents_as_string() == FILES["sub/b.bin"]
    os.environ.pop("REQUESTS_CA_BUNDLE")  # the SDK verifies: without the CA it refuses the server
    with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
        sdk_without_ca = type(sdk)(
            server.access_key,
            server.secret_key,
            host=server.host,
            port=server.port,
            is_secure=True,
            calling_format=sdk.calling_format,
        )
        sdk_without_ca.get_bucket(bucket).get_key("p/a.txt").get_contents_as_string()


@pytest.mark.parametrize(
    ("problem", "words"),
    [("untrusted", "unknown issuer"), ("other-name", "host-name mismatch"), ("expired", "expired")],
)
def test_a_refused_certificate_stops_mirror_at_once_naming_the_endpoint(
    server_factory: Any, tmp_path: Path, problem: str, words: str
) -> None:
    ca = make_ca(tmp_path / "ca")
    if problem == "untrusted":
        pair = self_signed(tmp_path / "own")
    else:
        pair = make_cert(
            tmp_path / "ca",
            ca,
            "DNS:other.example" if problem == "other-name" else "IP:127.0.0.1",
            expired=problem == "expired",
        )
    server = server_factory(tls_cert=pair.cert, tls_key=pair.key)
    src = make_tree(tmp_path / "src")
    started = time.monotonic()
    result = ks3sync(
        server,
        "mirror",
        str(src),
        "ks3://some-bucket/p",
        "--endpoint",
        server.endpoint,
        "--ca-bundle",
        str(ca.cert),
        "--state-db",
        str(tmp_path / "j.db"),
    )
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"ks3sync: error: {server.endpoint}: TLS certificate refused: {words}")
    assert "--ca-bundle FILE or ca_bundle:" in line
    assert time.monotonic() - started < 30  # not retried
    assert server.requests() == []  # no request got through


def test_a_bad_ca_bundle_is_a_usage_error(tls_server: Any, tmp_path: Path) -> None:
    server, _bundle = tls_server
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    result = ks3sync(
        server, "ls", "ks3://some-bucket/", "--endpoint", server.endpoint, "--ca-bundle", str(junk)
    )
    assert result.returncode == 2 and result.stderr.startswith("ks3sync: error: --ca-bundle: CA bundle")
    assert len(result.stderr.splitlines()) == 1


def test_mirror_over_https_through_a_connect_proxy(tls_server: Any, tmp_path: Path) -> None:
    server, bundle = tls_server
    bucket = unique_bucket_name()
    sdk_over_https(server, bundle).create_bucket(bucket)
    src = make_tree(tmp_path / "src")
    with TinyProxy(tmp_path / "proxy") as proxy:
        result = ks3sync(
            server,
            "mirror",
            str(src),
            f"ks3://{bucket}/p",
            "--endpoint",
            server.endpoint,
            "--ca-bundle",
            str(bundle),
            "--state-db",
            str(tmp_path / "j.db"),
            HTTPS_PROXY=proxy.url,
        )
        seen = proxy.requests(at_least=1)
    assert result.returncode == 0, result.stderr
    assert seen and all(line == f"CONNECT 127.0.0.1:{server.port} HTTP/1.1" for line in seen)


def test_run_syncs_over_https_with_the_configs_ca_bundle(
    tls_server: Any, tmp_path: Path, wait_until: Any
) -> None:
    server, bundle = tls_server
    bucket = unique_bucket_name()
    sdk = sdk_over_https(server, bundle)
    sdk.create_bucket(bucket)
    src = make_tree(tmp_path / "src")
    state = tmp_path / "state"
    config = tmp_path / "ks3sync.yaml"
    config.write_text(
        f"endpoint: {server.endpoint}\nca_bundle: {bundle}\nstate_dir: {state}\n"
        f"syncs: [{{name: docs, source: {src}, target: 'ks3://{bucket}/svc', debounce: 200ms}}]\n"
    )
    shown = ks3sync(server, "check-config", "--config", str(config))
    assert shown.returncode == 0 and f"ca_bundle: {bundle}" in shown.stdout
    env = {**os.environ, "KS3_ACCESS_KEY": server.access_key, "KS3_SECRET_KEY": server.secret_key}
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "ks3sync", "run", "--config", str(config)], stdout=out, stderr=out, env=env
        )
    try:

        def uploaded() -> bool:
            keys = {key.name for key in sdk.get_bucket(bucket).list(prefix="svc/", delimiter="")}
            return keys == {f"svc/{name}" for name in FILES} or process.poll() is not None

        wait_until(uploaded, timeout=60)
        assert process.poll() is None, log.read_text()[-3000:]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    assert sdk.get_bucket(bucket).get_key("svc/sub/b.bin").get_contents_as_string() == FILES["sub/b.bin"]


def test_local_server_wants_both_tls_files(tmp_path: Path) -> None:
    pair = self_signed(tmp_path)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ks3sync",
            "local-server",
            "--root",
            str(tmp_path / "root"),
            "--access-key",
            "AK",
            "--secret-key",
            "SK",
            "--tls-cert",
            str(pair.cert),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2 and "--tls-cert and --tls-key go together" in result.stderr
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ks3sync",
            "local-server",
            "--root",
            str(tmp_path / "root"),
            "--access-key",
            "AK",
            "--secret-key",
            "SK",
            "--tls-cert",
            str(pair.key),
            "--tls-key",
            str(pair.key),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2 and "not a PEM certificate" in result.stderr


def test_bucket_commands_take_the_network_options(tls_server: Any, tmp_path: Path) -> None:
    server, bundle = tls_server
    bucket = unique_bucket_name()
    common = ["--endpoint", server.endpoint, "--ca-bundle", str(bundle)]
    with TinyProxy(tmp_path / "proxy") as proxy:
        made = ks3sync(server, "mb", f"ks3://{bucket}", *common, "--proxy", proxy.url)
        assert made.returncode == 0, made.stderr
        assert proxy.requests(at_least=1) == [f"CONNECT 127.0.0.1:{server.port} HTTP/1.1"]
    listed = ks3sync(server, "ls", *common)
    assert listed.returncode == 0 and bucket in listed.stdout
    refused = ks3sync(server, "ls", "--endpoint", server.endpoint)  # the system trust store: refused
    assert refused.returncode == 2 and "TLS certificate refused: unknown issuer" in refused.stderr
    removed = ks3sync(server, "rb", f"ks3://{bucket}", *common, "--no-proxy")
    assert removed.returncode == 0, removed.stderr
