"""A real forward proxy on loopback for tests: Debian's ``tinyproxy`` (``.ci/run`` installs it), started per
test with its own config and log, stopped at the end (`from proxykit import TinyProxy`).

``with TinyProxy(tmp_path) as proxy: proxy.url`` - ``proxy.requests()`` are the request lines the proxy
itself logged (``GET http://127.0.0.1:9000/bucket/key HTTP/1.1`` for plain HTTP it forwarded,
``CONNECT 127.0.0.1:9443 HTTP/1.1`` for a tunnel), which is how a test proves that traffic went through
it. ``TinyProxy(tmp_path, auth=("user", "password"))`` demands Basic proxy authentication.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import pytest

START_TIMEOUT = 20.0
_REQUEST = re.compile(r"Request \(file descriptor \d+\): (.+)$")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TinyProxy:
    def __init__(self, folder: Path, auth: tuple[str, str] | None = None) -> None:
        binary = shutil.which("tinyproxy")
        if binary is None:
            pytest.skip("tinyproxy is not installed (apt-get install tinyproxy; .ci/run does)")
        self._binary = binary
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.log = folder / "tinyproxy.log"
        self.auth = auth
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        user = f"{self.auth[0]}:{self.auth[1]}@" if self.auth else ""
        return f"http://{user}127.0.0.1:{self.port}"

    def requests(self, at_least: int = 0, timeout: float = 10.0) -> list[str]:
        """The request lines the proxy logged, oldest first; with ``at_least``, waits (bounded) until
        that many are there: tinyproxy writes its log line while the client may already have its
        answer."""
        deadline = time.monotonic() + timeout
        while True:
            lines = (
                self.log.read_text(encoding="utf-8", errors="replace").splitlines()
                if self.log.exists()
                else []
            )
            seen = [match.group(1) for line in lines if (match := _REQUEST.search(line))]
            if len(seen) >= at_least or time.monotonic() > deadline:
                return seen
            time.sleep(0.02)

    def __enter__(self) -> TinyProxy:
        for _ in range(5):  # the free port may be taken between probing it and tinyproxy's bind
            self.port = _free_port()
            config = self.folder / "tinyproxy.conf"
            lines = [
                f"Port {self.port}",
                "Listen 127.0.0.1",
                "Timeout 60",
                f'LogFile "{self.log}"',
                "LogLevel Connect",
                "MaxClients 200",
                "Allow 127.0.0.1",
                "DisableViaHeader Yes",
            ]
            if self.auth:
                lines.append(f"BasicAuth {self.auth[0]} {self.auth[1]}")
            config.write_text("\n".join(lines) + "\n")
            self._process = subprocess.Popen(
                [self._binary, "-d", "-c", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if self._wait_listening():
                return self
            self._stop()
        raise RuntimeError(f"tinyproxy did not start; see {self.log}")

    def _wait_listening(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                return False
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                time.sleep(0.05)
        return False

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop()
