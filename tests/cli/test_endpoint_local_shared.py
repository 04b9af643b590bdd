"""`--endpoint local` from several processes at once (issue 14 point 2): they share one embedded server on
the state dir's root instead of running start-up clean-up on each other's files; the owner stays until
its users are done; an owner killed outright makes its users fail cleanly, and the next run takes the
root over; a root owned by a `local-server` is refused with one line naming the PID."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

from ks3sync.ks3 import Client, ClientConfig, RetryPolicy
from tests.serverkit import TEST_ACCESS_KEY, TEST_SECRET_KEY

TIMEOUT = 120

# A real process holding the shared server (as owner or user) until its stdin closes.
HOLDER = """
import sys
from pathlib import Path
from ks3sync.localserver import shared_server

with shared_server(Path(sys.argv[1]), sys.argv[2], sys.argv[3],
                   notice=lambda text: print("notice:", text, file=sys.stderr, flush=True)) as endpoint:
    print(endpoint, flush=True)
    sys.stdin.readline()
print("done", flush=True)
"""


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KS3_")}
    env.update(HOME=str(tmp_path / "home"), XDG_STATE_HOME=str(tmp_path / "state"))
    return env


def _ks3sync(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ks3sync", *args],
        env=_env(tmp_path),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _holder(
    root: Path,
    access_key: str = TEST_ACCESS_KEY,
    secret_key: str = TEST_SECRET_KEY,
) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(root), access_key, secret_key],
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    endpoint = proc.stdout.readline().strip()
    assert endpoint.startswith("http://127.0.0.1:"), proc.stderr.read() if proc.stderr else ""
    return proc, endpoint


def _client(endpoint: str) -> Client:
    return Client(
        ClientConfig(
            endpoint=endpoint,
            access_key=TEST_ACCESS_KEY,
            secret_key=TEST_SECRET_KEY,
            retry=RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02),
            timeout=10,
        )
    )


def _users_registered(root: Path) -> bool:
    """True while some process holds the users lock shared (a user of the owner's server)."""
    fd = os.open(root / "users.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _poll(condition: object, what: str, timeout: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"not reached in {timeout} s: {what}"
        time.sleep(0.02)


def _owner_record(root: Path) -> dict[str, object]:
    try:
        return dict(json.loads((root / "server.json").read_text()))
    except (OSError, ValueError):
        return {}


def test_a_mirror_and_ls_at_once_share_one_server(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for i in range(1500):
        folder = src / f"d{i % 15}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i}.bin").write_bytes(os.urandom(2000 + i))
    seed = tmp_path / "seed"
    seed.mkdir()
    (seed / "first.txt").write_text("first\n")
    first = _ks3sync(tmp_path, "mirror", str(seed), "ks3://demo/seed", "--endpoint", "local")
    assert first.wait(TIMEOUT) == 0, first.communicate()[1]  # the bucket exists from here on
    root = tmp_path / "state" / "ks3sync" / "local-server"

    mirror = _ks3sync(tmp_path, "mirror", str(src), "ks3://demo/big", "--endpoint", "local", "--jobs", "4")
    _poll(
        lambda: _owner_record(root).get("pid") == mirror.pid and "endpoint" in _owner_record(root),
        "the mirror owns the root and listens",
    )
    listings = []
    for _ in range(3):
        ls = _ks3sync(tmp_path, "ls", "ks3://demo/", "--endpoint", "local")
        out, err = ls.communicate(timeout=TIMEOUT)
        listings.append((ls.returncode, out, err))
    out, err = mirror.communicate(timeout=TIMEOUT)

    assert mirror.returncode == 0, err
    assert "Traceback" not in err and "Error" not in err, err
    assert "uploaded 1500" in out + err, out + err
    for code, ls_out, ls_err in listings:
        assert code == 0, ls_err
        assert "Traceback" not in ls_err, ls_err
        assert "seed/" in ls_out
    assert not (root / "server.json").exists()  # the owner unpublished itself
    again = _ks3sync(tmp_path, "ls", "ks3://demo/big/d3/", "--endpoint", "local")
    out, err = again.communicate(timeout=TIMEOUT)
    assert again.returncode == 0, err
    assert len(out.strip().splitlines()) == 100


def test_the_owner_waits_for_its_users(tmp_path: Path) -> None:
    root = tmp_path / "root"
    owner, endpoint = _holder(root)
    user, user_endpoint = _holder(root)
    try:
        assert user_endpoint == endpoint  # the second process uses the first one's server
        assert _owner_record(root)["pid"] == owner.pid
        _poll(lambda: _users_registered(root), "the user registered")
        assert owner.stdin is not None and owner.stderr is not None
        owner.stdin.close()  # the owner is done with its own work ...
        line = owner.stderr.readline()
        assert "waiting for the other ks3sync processes" in line, line
        assert owner.poll() is None  # ... but stays while the user runs
        with _client(endpoint) as client:
            client.create_bucket("still-served")
            assert client.head_bucket("still-served")
        assert user.stdin is not None
        user.stdin.close()
        assert user.wait(TIMEOUT) == 0
        assert owner.wait(TIMEOUT) == 0
    finally:
        for proc in (owner, user):
            if proc.poll() is None:
                proc.kill()
                proc.wait(TIMEOUT)
    assert not (root / "server.json").exists()


def test_a_killed_owner_fails_its_users_cleanly_and_the_next_process_takes_over(tmp_path: Path) -> None:
    root = tmp_path / "root"
    owner, endpoint = _holder(root)
    user, user_endpoint = _holder(root)
    try:
        assert user_endpoint == endpoint
        with _client(endpoint) as client:
            client.create_bucket("kept")
            client.put_object("kept", "k", b"confirmed")
        owner.kill()
        owner.wait(TIMEOUT)
        with _client(user_endpoint) as client:  # what the user's requests now meet: a refused connection
            try:
                client.head_bucket("kept")
            except Exception as exc:  # noqa: BLE001 - any transport error is the expected, clean failure
                assert "Connection" in type(exc).__name__ or "connect" in str(exc).lower(), exc
            else:
                raise AssertionError("the killed owner's server still answered")
        assert user.stdin is not None
        user.stdin.close()
        assert user.wait(TIMEOUT) == 0  # the user ends normally; it never owned anything to clean up
        successor, new_endpoint = _holder(root)  # the stale lock is taken over
        try:
            assert _owner_record(root)["pid"] == successor.pid
            with _client(new_endpoint) as client, client.get_object("kept", "k") as got:
                assert b"".join(got.iter_bytes()) == b"confirmed"
        finally:
            assert successor.stdin is not None
            successor.stdin.close()
            assert successor.wait(TIMEOUT) == 0
    finally:
        for proc in (owner, user):
            if proc.poll() is None:
                proc.kill()
                proc.wait(TIMEOUT)


def test_endpoint_local_on_a_root_a_local_server_owns_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "state" / "ks3sync" / "local-server"
    root.mkdir(parents=True)
    env = dict(os.environ, KS3_ACCESS_KEY=TEST_ACCESS_KEY, KS3_SECRET_KEY=TEST_SECRET_KEY)
    port_file = tmp_path / "port"
    server = subprocess.Popen(
        [sys.executable, "-m", "ks3sync", "local-server", "--root", str(root), "--port-file", str(port_file)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _poll(port_file.exists, "the local-server is listening")
        ls = _ks3sync(tmp_path, "ls", "ks3://demo/", "--endpoint", "local")
        _, err = ls.communicate(timeout=TIMEOUT)
        assert ls.returncode == 2
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("ks3sync: error: --endpoint local: "), err
        assert str(root) in lines[0] and f"PID {server.pid}" in lines[0]
    finally:
        server.terminate()
        server.wait(TIMEOUT)
