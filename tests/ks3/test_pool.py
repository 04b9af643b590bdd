"""The direct connection pool (ks3sync/ks3/pool.py) over real loopback sockets: a connection's place is
given back however its request ends, the most recently returned connection is the one reused, waiting
requests are served as connections come back, and closing the client wakes and refuses them."""

from __future__ import annotations

import threading

import pytest

from ks3sync.ks3 import KS3ServiceError, KS3TransportError
from ks3sync.ks3.pool import OriginPool
from tests.ks3.scripted_http import DROP, Reply, Stall, client_for
from tests.threadkit import run_together


def test_a_failed_exchange_gives_its_place_back(servers) -> None:
    # One connection allowed: a lost answer, a stalled one and an error answer must each leave the
    # place free, or the next request would wait for a connection that never comes back.
    server = servers(DROP, Stall(2.0), Reply(500), Reply(200))
    with client_for(server, max_connections=1, timeout=0.3) as client:
        with pytest.raises(KS3TransportError, match="RemoteProtocolError"):
            client.head_bucket("bk")
        with pytest.raises(KS3TransportError, match="ReadTimeout"):
            client.head_bucket("bk")
        with pytest.raises(KS3ServiceError):
            client.delete_object("bk", "k")
        assert client.head_bucket("bk")
    assert len(server.requests) == 4


def test_connections_are_reused_not_opened_again(servers) -> None:
    # Two connections open at once (the first response is left unread); afterwards every request
    # goes out on one of those two, none is opened anew.
    server = servers(Reply(200, {}, b"x" * 10), Reply(200, {}, b"y" * 10), handler=lambda _r: Reply(200))
    with client_for(server, max_connections=4) as client:
        first = client.get_object("bk", "a")
        second = client.get_object("bk", "b")
        assert server.connections_opened == 2
        assert first.read() == b"x" * 10 and second.read() == b"y" * 10
        for _ in range(5):
            assert client.head_bucket("bk")
    assert server.connections_opened == 2 and len(server.requests) == 7


def test_requests_beyond_the_bound_wait_for_a_connection(servers) -> None:
    server = servers(handler=lambda _r: Reply(200))
    with client_for(server, max_connections=2) as client:
        errors = run_together(16, lambda _n: [client.head_bucket("bk") for _ in range(10)], timeout=30)
    assert errors == [] and len(server.requests) == 160
    assert server.connections_opened <= 2


def _pool(client) -> OriginPool:
    (pool,) = client._transport.wire._pools.values()
    assert isinstance(pool, OriginPool)
    return pool


def test_closing_the_client_refuses_requests_waiting_for_a_connection(servers, wait_until) -> None:
    server = servers(Reply(200, {}, b"x" * 10), handler=lambda _r: Reply(200))
    client = client_for(server, max_connections=1, max_in_flight=2, timeout=10)
    held = client.get_object("bk", "held")  # keeps the only connection
    outcome: list[BaseException | None] = []

    def waiter() -> None:
        try:
            client.head_bucket("bk")
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            outcome.append(exc)

    thread = threading.Thread(target=waiter)
    thread.start()
    try:
        wait_until(lambda: _pool(client).waiting == 1, timeout=10)
        client.close()
        thread.join(timeout=10)
        assert not thread.is_alive()
        assert len(outcome) == 1 and isinstance(outcome[0], RuntimeError)
    finally:
        held.close()
        client.close()
    assert len(server.requests) == 1
