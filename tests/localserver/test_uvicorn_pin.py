"""The uvicorn the local server is built on (issue 15 point 11): the installed version is inside the range
pyproject.toml pins, and every uvicorn internal the server's protocol subclass relies on (ks3sync/
localserver/protocol.py: methods it overrides or calls, attributes it reads) is still there, with the
same parameters, and still reached. A uvicorn release that moves one of them fails here, naming the pin,
instead of as a wrong header spelling or a limit that silently stopped working."""

from __future__ import annotations

import asyncio
import inspect
import re
import tomllib
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _pin() -> Requirement:
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    pins = [Requirement(item) for item in dependencies if re.match(r"uvicorn\b", item)]
    assert len(pins) == 1, f"pyproject.toml should name uvicorn once among the dependencies: {pins}"
    return pins[0]


PIN = _pin()
WHY = (
    f"ks3sync's local server subclasses uvicorn's httptools protocol at pinned hook points; pyproject.toml "
    f"pins {PIN} (the tested range). Moving the pin means running tests/localserver, tests/interop and "
    f"tests/fuzz against the new uvicorn and updating this test (docs/decisions.md D7)"
)

# (object path, parameters as (name, kind, default)): what protocol.py and server.py override or call.
P = inspect.Parameter
_EMPTY = P.empty
HOOKS: dict[str, list[tuple[str, Any, Any]]] = {
    "HttpToolsProtocol.__init__": [
        ("self", P.POSITIONAL_OR_KEYWORD, _EMPTY),
        ("config", P.POSITIONAL_OR_KEYWORD, _EMPTY),
        ("server_state", P.POSITIONAL_OR_KEYWORD, _EMPTY),
        ("app_state", P.POSITIONAL_OR_KEYWORD, _EMPTY),
        ("_loop", P.POSITIONAL_OR_KEYWORD, None),
    ],
    "HttpToolsProtocol.connection_made": [
        ("self", P.POSITIONAL_OR_KEYWORD, _EMPTY),
        ("transport", P.POSITIONAL_OR_KEYWORD, _EMPTY),
    ],
    "HttpToolsProtocol.connection_lost": [
        ("self", P.POSITIONAL_OR_KEYWORD, _EMPTY),
        ("exc", P.POSITIONAL_OR_KEYWORD, _EMPTY),
    ],
    "HttpToolsProtocol.data_received": [
        ("self", P.POSITIONAL_OR_KEYWORD, _EMPTY),
        ("data", P.POSITIONAL_OR_KEYWORD, _EMPTY),
    ],
    "HttpToolsProtocol.on_message_begin": [("self", P.POSITIONAL_OR_KEYWORD, _EMPTY)],
    "HttpToolsProtocol.on_header": [
        ("self", P.POSITIONAL_OR_KEYWORD, _EMPTY),
        ("name", P.POSITIONAL_OR_KEYWORD, _EMPTY),
        ("value", P.POSITIONAL_OR_KEYWORD, _EMPTY),
    ],
    "HttpToolsProtocol.on_headers_complete": [("self", P.POSITIONAL_OR_KEYWORD, _EMPTY)],
    "HttpToolsProtocol.on_body": [
        ("self", P.POSITIONAL_OR_KEYWORD, _EMPTY),
        ("body", P.POSITIONAL_OR_KEYWORD, _EMPTY),
    ],
    "HttpToolsProtocol.on_message_complete": [("self", P.POSITIONAL_OR_KEYWORD, _EMPTY)],
    "HttpToolsProtocol._start_asgi_task": [
        ("self", P.POSITIONAL_OR_KEYWORD, _EMPTY),
        ("cycle", P.POSITIONAL_OR_KEYWORD, _EMPTY),
        ("app", P.POSITIONAL_OR_KEYWORD, _EMPTY),
    ],
    "HttpToolsProtocol._unset_keepalive_if_required": [("self", P.POSITIONAL_OR_KEYWORD, _EMPTY)],
    "HttpToolsProtocol.timeout_keep_alive_handler": [("self", P.POSITIONAL_OR_KEYWORD, _EMPTY)],
    "HttpToolsProtocol.on_response_complete": [("self", P.POSITIONAL_OR_KEYWORD, _EMPTY)],
    "HttpToolsProtocol.shutdown": [("self", P.POSITIONAL_OR_KEYWORD, _EMPTY)],
    "RequestResponseCycle.run_asgi": [
        ("self", P.POSITIONAL_OR_KEYWORD, _EMPTY),
        ("app", P.POSITIONAL_OR_KEYWORD, _EMPTY),
    ],
    "FlowControl.drain": [("self", P.POSITIONAL_OR_KEYWORD, _EMPTY)],
    "FlowControl.pause_reading": [("self", P.POSITIONAL_OR_KEYWORD, _EMPTY)],
    "FlowControl.resume_reading": [("self", P.POSITIONAL_OR_KEYWORD, _EMPTY)],
    "Server.__init__": [
        ("self", P.POSITIONAL_OR_KEYWORD, _EMPTY),
        ("config", P.POSITIONAL_OR_KEYWORD, _EMPTY),
    ],
    "Server.serve": [("self", P.POSITIONAL_OR_KEYWORD, _EMPTY), ("sockets", P.POSITIONAL_OR_KEYWORD, None)],
    "Server.startup": [("self", P.POSITIONAL_OR_KEYWORD, _EMPTY), ("sockets", P.POSITIONAL_OR_KEYWORD, None)],
    "Server.shutdown": [
        ("self", P.POSITIONAL_OR_KEYWORD, _EMPTY),
        ("sockets", P.POSITIONAL_OR_KEYWORD, None),
    ],
    "Server.capture_signals": [("self", P.POSITIONAL_OR_KEYWORD, _EMPTY)],
    "Server.handle_exit": [
        ("self", P.POSITIONAL_OR_KEYWORD, _EMPTY),
        ("sig", P.POSITIONAL_OR_KEYWORD, _EMPTY),
        ("frame", P.POSITIONAL_OR_KEYWORD, _EMPTY),
    ],
}
# uvicorn.Config parameters server.py passes (public, but a rename would only show as a TypeError at start)
CONFIG_PARAMETERS = (
    "http",
    "ws",
    "lifespan",
    "interface",
    "server_header",
    "date_header",
    "access_log",
    "proxy_headers",
    "log_config",
    "log_level",
    "timeout_keep_alive",
    "timeout_graceful_shutdown",
    "backlog",
    "ssl_certfile",
    "ssl_keyfile",
)
# Attributes protocol.py and server.py read or set, after one request has been parsed and answered.
PROTOCOL_ATTRIBUTES = (
    "config",
    "loop",
    "parser",
    "flow",
    "transport",
    "client",
    "cycle",
    "url",
    "pipeline",
    "timeout_keep_alive",
    "timeout_keep_alive_task",
)
CYCLE_ATTRIBUTES = (
    "scope",
    "transport",
    "flow",
    "body",
    "more_body",
    "message_event",
    "disconnected",
    "keep_alive",
    "waiting_for_100_continue",
    "response_started",
    "response_complete",
    "on_response",
)
FLOW_ATTRIBUTES = ("write_paused",)
SERVER_ATTRIBUTES = ("started", "should_exit", "server_state")


def _owner(name: str) -> Any:
    import uvicorn
    from uvicorn.protocols.http import flow_control, httptools_impl

    return {
        "HttpToolsProtocol": httptools_impl.HttpToolsProtocol,
        "RequestResponseCycle": httptools_impl.RequestResponseCycle,
        "FlowControl": flow_control.FlowControl,
        "Server": uvicorn.Server,
    }[name]


def test_the_pin_is_a_closed_range() -> None:
    """An open-ended `>=` was issue 15's complaint: the pin names a lowest and an excluded highest version."""
    operators = {spec.operator for spec in PIN.specifier}
    assert ">=" in operators and "<" in operators, f"pyproject.toml pins {PIN}: it needs both >= and <"
    assert "standard" in PIN.extras, f"{PIN}: the [standard] extra brings httptools and uvloop"


def test_the_installed_uvicorn_is_inside_the_pinned_range() -> None:
    installed = Version(version("uvicorn"))
    assert PIN.specifier.contains(installed, prereleases=True), f"uvicorn {installed} is installed. {WHY}."


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_each_hook_point_keeps_its_parameters(hook: str) -> None:
    owner, _, name = hook.partition(".")
    function = getattr(_owner(owner), name, None)
    assert callable(function), f"uvicorn {version('uvicorn')} has no {hook}. {WHY}."
    found = [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]
    assert found == HOOKS[hook], (
        f"uvicorn {version('uvicorn')} changed {hook}{inspect.signature(function)}. {WHY}."
    )


def test_the_config_parameters_exist() -> None:
    import uvicorn

    parameters = inspect.signature(uvicorn.Config).parameters
    missing = [name for name in CONFIG_PARAMETERS if name not in parameters]
    assert not missing, f"uvicorn {version('uvicorn')}'s Config lost {missing}. {WHY}."


class _Transport(asyncio.Transport):
    """Records writes; enough of a transport for uvicorn's protocol."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def test_the_hooks_are_reached_and_the_attributes_are_there() -> None:
    """One request through the real subclass on uvicorn's protocol: the app runs with protocol.py's
    receive/send (so `_start_asgi_task` is still where uvicorn starts a request), the head keeps the app's
    spelling and leaves in one write with the body, and every attribute the subclass touches exists."""
    import uvicorn
    from uvicorn.server import ServerState

    from ks3sync.localserver.protocol import Limits, protocol_class

    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen["receive"] = getattr(receive, "__self__", None)
        message = await receive()
        seen["body"] = message["body"]
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"Content-Length", b"2"), (b"ETag", b'"x"')],
            }
        )
        await send({"type": "http.response.body", "body": b"ok"})

    async def exchange() -> tuple[Any, _Transport]:
        config = uvicorn.Config(app, lifespan="off", interface="asgi3", ws="none", log_config=None)
        config.load()
        protocol = protocol_class(Limits())(
            config=config, server_state=ServerState(), app_state={}, _loop=asyncio.get_running_loop()
        )
        transport = _Transport()
        protocol.connection_made(transport)
        protocol.data_received(b"PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
        for _ in range(100):
            if transport.writes:
                break
            await asyncio.sleep(0.01)
        return protocol, transport

    protocol, transport = asyncio.run(exchange())
    where = f"uvicorn {version('uvicorn')}"
    assert type(seen.get("receive")).__name__ == "_Exchange", (
        f"{where} no longer starts requests through HttpToolsProtocol._start_asgi_task. {WHY}."
    )
    assert seen["body"] == b"abc"
    assert len(transport.writes) == 1 and transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n"), (
        transport.writes
    )
    assert b'\r\nContent-Length: 2\r\nETag: "x"\r\n\r\nok' in transport.writes[0], transport.writes
    missing = [f"protocol.{name}" for name in PROTOCOL_ATTRIBUTES if not hasattr(protocol, name)]
    missing += [f"cycle.{name}" for name in CYCLE_ATTRIBUTES if not hasattr(protocol.cycle, name)]
    missing += [f"flow.{name}" for name in FLOW_ATTRIBUTES if not hasattr(protocol.flow, name)]
    missing += [
        f"Server.{name}"
        for name in SERVER_ATTRIBUTES
        if not hasattr(uvicorn.Server(uvicorn.Config(app)), name)
    ]
    assert not missing, f"{where} lacks {missing}. {WHY}."
    assert hasattr(ServerState(), "connections"), f"{where}: ServerState.connections is gone. {WHY}."
