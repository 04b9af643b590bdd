"""Fixtures of the client tests: ``servers`` starts scripted loopback servers (scripted_http.py) and stops
every one of them when the test ends."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.ks3.scripted_http import ScriptedServer


@pytest.fixture()
def servers() -> Iterator[Callable[..., ScriptedServer]]:
    """``servers(*replies, tls=..., handler=...)``: a started ``ScriptedServer``."""
    started: list[ScriptedServer] = []

    def start(*replies: Any, **options: Any) -> ScriptedServer:
        server = ScriptedServer(*replies, **options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()
