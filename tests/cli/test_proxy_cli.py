"""Proxies on the command line, through a real forward proxy on loopback (tinyproxy, tests/proxykit.py) in
front of a real local-server: the environment's HTTP_PROXY by default, NO_PROXY bypassing it,
``--proxy``/``--no-proxy`` and the config's ``proxy:`` overriding it, and proxy credentials that never
appear in output. Each command runs as a subprocess, as a user runs it; the proxy's own log proves
which requests went through it (tinyproxy logs the first request of each client connection)."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.proxykit import TinyProxy

PASSWORD = "pr0xy-s3cret-never-shown"


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


def dead_proxy() -> str:
    """A proxy URL nobody listens at: whatever uses it fails to connect."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    for name in ("a.txt", "sub/b.txt", "sub/c.txt"):
        (src / name).write_text(f"content of {name}\n")
    return src


def mirror(
    server: Any, src: Path, target: str, state: Path, *flags: str, **env: str
) -> subprocess.CompletedProcess[str]:
    return ks3sync(
        server,
        "mirror",
        str(src),
        target,
        "--endpoint",
        server.endpoint,
        "--state-db",
        str(state / "journal.db"),
        *flags,
        **env,
    )


def listed(server: Any, bucket: str, prefix: str) -> list[str]:
    result = ks3sync(
        server, "ls", "-r", f"ks3://{bucket}/{prefix}", "--endpoint", server.endpoint, "--no-proxy"
    )
    assert result.returncode == 0, result.stderr
    return sorted(line.split()[-1] for line in result.stdout.splitlines())


def test_mirror_goes_through_the_environments_proxy(
    local_server: Any, bucket: str, tree: Path, tmp_path: Path
) -> None:
    with TinyProxy(tmp_path / "proxy") as proxy:
        result = mirror(local_server, tree, f"ks3://{bucket}/env/", tmp_path, HTTP_PROXY=proxy.url)
        seen = proxy.requests(at_least=1)
    assert result.returncode == 0, result.stderr
    assert seen and all(line.startswith(("GET", "PUT", "HEAD", "POST", "DELETE")) for line in seen)
    assert all(f"{local_server.endpoint}/{bucket}" in line for line in seen)  # absolute-form: forwarded
    assert listed(local_server, bucket, "env/") == [
        f"env/{name}" for name in ("a.txt", "sub/b.txt", "sub/c.txt")
    ]


def test_no_proxy_bypasses_the_environments_proxy(
    local_server: Any, bucket: str, tree: Path, tmp_path: Path
) -> None:
    with TinyProxy(tmp_path / "proxy") as proxy:
        result = mirror(
            local_server,
            tree,
            f"ks3://{bucket}/bypass/",
            tmp_path,
            http_proxy=proxy.url,
            no_proxy="localhost,127.0.0.0/8",
        )
        seen = proxy.requests()
    assert result.returncode == 0, result.stderr
    assert seen == []
    assert len(listed(local_server, bucket, "bypass/")) == 3


def test_the_flag_and_the_config_override_the_environment(
    local_server: Any, bucket: str, tree: Path, tmp_path: Path
) -> None:
    broken = {"HTTP_PROXY": dead_proxy()}
    failed = mirror(local_server, tree, f"ks3://{bucket}/x/", tmp_path, **broken)
    assert failed.returncode != 0 and "ConnectError" in failed.stderr  # the environment's proxy is used
    with TinyProxy(tmp_path / "proxy") as proxy:
        flagged = mirror(
            local_server, tree, f"ks3://{bucket}/flag/", tmp_path, "--proxy", proxy.url, **broken
        )
        assert flagged.returncode == 0, flagged.stderr
        assert proxy.requests(at_least=1)
        direct = mirror(local_server, tree, f"ks3://{bucket}/direct/", tmp_path, "--no-proxy", **broken)
        assert direct.returncode == 0, direct.stderr
        for name, value in (("none", "none"), ("url", proxy.url)):
            config = tmp_path / f"{name}.yaml"
            config.write_text(
                f"endpoint: {local_server.endpoint}\nproxy: {value}\n"
                f"syncs: [{{name: s, source: {tree}, target: 'ks3://{bucket}/conf-{name}/'}}]\n"
            )
            before = len(proxy.requests())
            by_config = mirror(
                local_server,
                tree,
                f"ks3://{bucket}/conf-{name}/",
                tmp_path,
                "--config",
                str(config),
                **broken,
            )
            assert by_config.returncode == 0, by_config.stderr
            assert (len(proxy.requests(at_least=before + 1, timeout=2)) > before) == (name == "url")
    both = mirror(local_server, tree, f"ks3://{bucket}/x/", tmp_path, "--proxy", "http://h:1", "--no-proxy")
    assert both.returncode == 2 and "not both" in both.stderr
    for prefix in ("flag/", "direct/", "conf-none/", "conf-url/"):
        assert len(listed(local_server, bucket, prefix)) == 3


def test_proxy_credentials_are_used_and_never_shown(
    local_server: Any, bucket: str, tree: Path, tmp_path: Path
) -> None:
    encoded = base64.b64encode(f"ks3user:{PASSWORD}".encode()).decode()
    with TinyProxy(tmp_path / "proxy", auth=("ks3user", PASSWORD)) as proxy:
        good = mirror(local_server, tree, f"ks3://{bucket}/auth/", tmp_path, "-vv", "--proxy", proxy.url)
        assert good.returncode == 0, good.stderr[-3000:]
        assert proxy.requests(at_least=1)
        wrong = proxy.url.replace(PASSWORD, f"wrong-{PASSWORD}")
        refused = mirror(local_server, tree, f"ks3://{bucket}/auth2/", tmp_path, "-vv", "--proxy", wrong)
        assert refused.returncode != 0 and "401" in refused.stderr
        bad_env = ks3sync(
            local_server,
            "ls",
            f"ks3://{bucket}/",
            "--endpoint",
            local_server.endpoint,
            HTTP_PROXY=f"socks5://ks3user:{PASSWORD}@127.0.0.1:1",
        )
    assert bad_env.returncode == 2 and bad_env.stderr.count("\n") == 1 and "socks" in bad_env.stderr
    for output in (good.stdout, good.stderr, refused.stdout, refused.stderr, bad_env.stderr):
        assert PASSWORD not in output and encoded not in output
    assert len(listed(local_server, bucket, "auth/")) == 3


def test_check_config_masks_the_proxy_password(tmp_path: Path, tree: Path) -> None:
    config = tmp_path / "ks3sync.yaml"
    config.write_text(
        f"endpoint: https://ks3-cn-beijing.ksyuncs.com\nproxy: http://ks3user:{PASSWORD}@proxy.example:3128\n"
        f"syncs: [{{name: s, source: {tree}, target: 'ks3://bucket/p/'}}]\n"
    )
    shown = subprocess.run(
        [sys.executable, "-m", "ks3sync", "check-config", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert "proxy: http://ks3user:****@proxy.example:3128" in shown.stdout and PASSWORD not in shown.stdout
    config.write_text(config.read_text().replace("http://ks3user", "ftp://ks3user"))
    bad = subprocess.run(
        [sys.executable, "-m", "ks3sync", "check-config", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2 and "proxy" in bad.stderr and PASSWORD not in bad.stderr


def test_ls_takes_the_proxy_flag(local_server: Any, bucket: str, tree: Path, tmp_path: Path) -> None:
    assert mirror(local_server, tree, f"ks3://{bucket}/ls/", tmp_path, "--no-proxy").returncode == 0
    with TinyProxy(tmp_path / "proxy") as proxy:
        result = ks3sync(
            local_server,
            "ls",
            "-r",
            f"ks3://{bucket}/ls/",
            "--endpoint",
            local_server.endpoint,
            "--proxy",
            proxy.url,
        )
        seen = proxy.requests(at_least=1)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 3 and len(seen) == 1 and seen[0].startswith("GET ")
