"""Plain connections keep their send and receive limits in the kernel (network.py's KernelTimedStream):
the limits still hold against a real socket peer that stops reading or stops answering."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from ks3sync.ks3 import KS3TransportError
from ks3sync.ks3.network import _timeval
from tests.ks3.scripted_http import Stall, client_for


class DeafServer:
    """Accepts connections and never reads from them (a peer whose receive window fills)."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(5.0)
        self.endpoint = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        try:
            conn, _ = self._listener.accept()
        except OSError:
            return  # closed before anyone connected
        self._held.append(conn)

    def close(self) -> None:
        self._listener.close()
        self._thread.join(timeout=10)
        for conn in self._held:
            conn.close()


@pytest.fixture
def deaf_server() -> Iterator[DeafServer]:
    server = DeafServer()
    yield server
    server.close()


def test_a_peer_that_stops_reading_ends_a_send_at_the_write_limit(deaf_server: DeafServer) -> None:
    body = b"x" * (64 * 1024 * 1024)  # far beyond what loopback's socket buffers take in
    started = time.monotonic()
    with (
        client_for(deaf_server, timeout=0.5) as client,
        pytest.raises(KS3TransportError, match="WriteTimeout"),
    ):
        client.put_object("bk", "k", body)
    assert time.monotonic() - started < 10


def test_a_silent_answer_ends_at_the_read_limit_not_later(servers) -> None:
    server = servers(Stall(5.0))
    started = time.monotonic()
    with client_for(server, timeout=0.3) as client, pytest.raises(KS3TransportError, match="ReadTimeout"):
        client.head_object("bk", "k")
    assert time.monotonic() - started < 3


@pytest.mark.parametrize(
    ("timeout", "expected"),
    [(None, (0, 0)), (0.3, (0, 300_000)), (61.5, (61, 500_000)), (1e-9, (0, 1)), (0.0, (0, 1))],
)
def test_a_limit_becomes_a_timeval_that_is_never_zero_unless_unlimited(
    timeout: float | None, expected: tuple[int, int]
) -> None:
    # A zero timeval means "no limit" to the kernel: a tiny or spent allowance must not turn into one.
    assert struct.unpack("@ll", _timeval(timeout)) == expected
