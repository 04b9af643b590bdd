"""A storage root has one owner (issue 14 point 2): a second `local-server --root` on it is refused with a
one-line error naming the root and the owner's PID, exit 2; nothing the owner wrote is touched; a
SIGKILLed owner's lock is taken over by the next one (the kernel dropped the flock)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ks3sync.localserver import EmbeddedServer, RootInUse
from ks3sync.localserver.rootlock import current_owner
from tests.localserver.ls_wire import request
from tests.serverkit import TEST_ACCESS_KEY, TEST_SECRET_KEY, ServerHandle

TIMEOUT = 30


def _second_server(root: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, KS3_ACCESS_KEY=TEST_ACCESS_KEY, KS3_SECRET_KEY=TEST_SECRET_KEY)
    return subprocess.run(
        [sys.executable, "-m", "ks3sync", "local-server", "--root", str(root), "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def test_a_second_server_on_a_root_is_refused_and_touches_nothing(
    server_factory: Callable[..., ServerHandle], tmp_path: Path
) -> None:
    root = tmp_path / "root"
    first = server_factory(root=root)
    assert request(first, "PUT", "owned").status_code == 200
    assert request(first, "PUT", "owned", "k", content=b"kept").status_code == 200
    # What a live owner has in flight: a body being received and a body renamed but not yet recorded.
    receiving = root / "tmp" / "in-flight"
    receiving.write_bytes(b"half a body")
    unrecorded = root / "data" / "ab" / "ab-not-yet-committed"
    unrecorded.write_bytes(b"a body whose row is being written")

    second = _second_server(root)

    assert second.returncode == 2, second
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1, second.stderr
    assert lines[0].startswith("ks3sync: error: ")
    assert str(root) in lines[0] and f"PID {first.process.pid}" in lines[0]
    assert second.stdout == ""
    assert receiving.read_bytes() == b"half a body"  # the second process cleaned nothing up
    assert unrecorded.exists()
    assert request(first, "GET", "owned", "k").content == b"kept"  # and the owner still serves


def test_an_embedded_server_and_a_cli_server_exclude_each_other(tmp_path: Path) -> None:
    root = tmp_path / "root"
    with EmbeddedServer(root, TEST_ACCESS_KEY, TEST_SECRET_KEY, fsync=False):
        second = _second_server(root)
        assert second.returncode == 2
        assert f"PID {os.getpid()}" in second.stderr and str(root) in second.stderr
        with pytest.raises(RootInUse) as refused:
            EmbeddedServer(root, TEST_ACCESS_KEY, TEST_SECRET_KEY, fsync=False).start()
        assert refused.value.owner.pid == os.getpid()
    assert current_owner(root) is None  # released on stop
    with EmbeddedServer(root, TEST_ACCESS_KEY, TEST_SECRET_KEY, fsync=False):  # and free for the next owner
        assert current_owner(root) is not None


def test_a_killed_owner_leaves_a_lock_the_next_server_takes_over(
    server_factory: Callable[..., ServerHandle], tmp_path: Path
) -> None:
    root = tmp_path / "root"
    first = server_factory(root=root)
    assert request(first, "PUT", "survives").status_code == 200
    assert request(first, "PUT", "survives", "k", content=b"data").status_code == 200
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(TIMEOUT)
    assert (root / "server.lock").exists()  # the file stays; the kernel dropped the lock with the process
    assert (root / "server.lock").read_text().strip() == str(first.process.pid)

    second = server_factory(root=root)

    assert current_owner(root) is not None and current_owner(root).pid == second.process.pid  # type: ignore[union-attr]
    assert request(second, "GET", "survives", "k").content == b"data"
