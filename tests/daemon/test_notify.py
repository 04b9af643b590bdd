"""sd_notify against a real AF_UNIX datagram socket, as systemd listens for it."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ks3sync.daemon.notify import Notifier


@pytest.fixture()
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    yield sock, str(path)
    sock.close()


def test_ready_status_watchdog_stopping(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = Notifier({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    notifier.ready("watching 2 syncs")
    assert sock.recv(4096) == b"READY=1\nSTATUS=watching 2 syncs"
    notifier.status("queue=3\ninflight=1")  # a newline would start a new assignment: flattened
    assert sock.recv(4096) == b"STATUS=queue=3 inflight=1"
    notifier.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"
    notifier.stopping("draining")
    assert sock.recv(4096) == b"STOPPING=1\nSTATUS=draining"
    notifier.close()


def test_abstract_socket_name() -> None:
    name = f"ks3sync-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(5)
    try:
        notifier = Notifier({"NOTIFY_SOCKET": "@" + name})
        notifier.ready()
        assert sock.recv(4096) == b"READY=1"
        notifier.close()
    finally:
        sock.close()


def test_watchdog_interval_is_half_the_timeout() -> None:
    env = {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}
    assert Notifier(env).watchdog_interval == 15.0
    assert Notifier({"WATCHDOG_USEC": "0"}).watchdog_interval is None
    # not a decimal number: no watchdog, and no crash at start-up ('²' passes str.isdigit())
    for bad in ("²", "-5", "1_000", "9" * 30):
        assert Notifier({"WATCHDOG_USEC": bad}).watchdog_interval is None
    assert Notifier({}).watchdog_interval is None
    # meant for another process (e.g. our parent): we must not ping
    assert Notifier(dict(env, WATCHDOG_PID=str(os.getpid() + 1))).watchdog_interval is None


def test_outside_systemd_everything_is_a_no_op() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert notifier.send("READY=1") is False


def test_a_vanished_socket_is_reported_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert notifier.send("READY=1") is False
    assert notifier.send("WATCHDOG=1") is False
    assert sum("sd_notify_failed" in r.getMessage() for r in caplog.records) == 1  # warned once
