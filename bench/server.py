"""One `ks3sync local-server` subprocess per benchmark session, and reading its request log.

Owns: starting the server (fresh root, request log on, free port, the session's `--latency-ms`, and
`--max-inflight` for the throttled W1), stopping it on every exit path, and turning the JSON-lines
request log into per-run counters between two marks (by method, by operation, refusals).
Must not import: the rest of ks3sync (the server is driven as a subprocess, like any user would).

A mark is a real request with a unique path; the server answers it and logs it like any other, so
"everything between mark A and mark B" is exactly what a tool sent in between, even if the server
buffers its log writes (we wait until the mark line is visible).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.ks3mini import Ks3Mini

STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
MARK_TIMEOUT_S = 10.0


class ServerError(RuntimeError):
    """The local server did not start, died, or its log could not be read."""


@dataclass(frozen=True)
class RequestStats:
    """What the server saw between two marks."""

    requests: int
    bytes_in: int
    bytes_out: int
    by_method: dict[str, int]
    errors: int  # responses with status >= 400 (retries, 404 probes, refusals, ...)
    by_op: dict[str, int] = field(default_factory=dict)  # PutObject, HeadObject, ListObjects, ...
    refused: int = 0  # answered 503 SlowDown by --max-inflight (request log: fault "throttle")

    @staticmethod
    def empty() -> RequestStats:
        return RequestStats(0, 0, 0, {}, 0)

    def listings(self) -> int:
        return sum(n for op, n in self.by_op.items() if op in LISTING_OPS)


LISTING_OPS = frozenset({"ListObjects", "ListObjectsV2", "ListObjectVersions"})


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str


class LocalServer:
    """A running `ks3sync local-server`; use as a context manager so it is always stopped."""

    def __init__(
        self,
        root: Path,
        log_path: Path,
        creds: Credentials,
        *,
        quiet_log: Path,
        fsync: bool = False,
        latency_ms: float = 0.0,
        max_inflight: int | None = None,
    ) -> None:
        self.root = root
        self.fsync = fsync
        self.latency_ms = latency_ms
        self.max_inflight = max_inflight
        self.log_path = log_path
        self.creds = creds
        self._quiet_log = quiet_log
        self._proc: subprocess.Popen[bytes] | None = None
        self.endpoint = ""
        self.port = 0
        self._log_offset = 0
        self._mini: Ks3Mini | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        port_file = self.root.parent / "server.port"
        port_file.unlink(missing_ok=True)
        argv = [
            sys.executable,
            "-m",
            "ks3sync",
            "local-server",
            "--root",
            str(self.root),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--port-file",
            str(port_file),
            "--access-key",
            self.creds.access_key,
            "--secret-key",
            self.creds.secret_key,
            "--request-log",
            str(self.log_path),
        ]
        if not self.fsync:
            # Without fsync per object the disk does not hide differences between clients.
            argv.append("--no-fsync")
        if self.latency_ms:
            argv += ["--latency-ms", f"{self.latency_ms:g}"]
        if self.max_inflight is not None:
            argv += ["--max-inflight", str(self.max_inflight)]
        stderr = self._quiet_log.open("ab")
        try:
            self._proc = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL
            )
        finally:
            stderr.close()
        assert self._proc.stdout is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        line = b""
        # The first stdout line is the contract: `listening on http://HOST:PORT`.
        while time.monotonic() < deadline:
            line = self._proc.stdout.readline()
            if line or self._proc.poll() is not None:
                break
        text = line.decode(errors="replace").strip()
        if not text.startswith("listening on http://"):
            self.stop()
            raise ServerError(f"local-server did not start (first line {text!r}); see {self._quiet_log}")
        self.endpoint = text.removeprefix("listening on ").strip()
        self.port = int(self.endpoint.rsplit(":", 1)[1].rstrip("/"))
        # The port file appears once the socket accepts connections.
        while not port_file.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        self._mini = Ks3Mini(self.endpoint, self.creds.access_key, self.creds.secret_key)

    def stop(self) -> None:
        if self._mini is not None:
            self._mini.close()
            self._mini = None
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT_S)
        if proc.stdout is not None:
            proc.stdout.close()

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise ServerError("server not running")
        return self._proc.pid

    @property
    def mini(self) -> Ks3Mini:
        if self._mini is None:
            raise ServerError("server not running")
        return self._mini

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def cpu_seconds(self) -> float:
        """User+system CPU the server process has used so far (from /proc)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    # -- request log -----------------------------------------------------------------------------
    def mark(self) -> int:
        """Send a uniquely named request, wait until the log shows it, return the log offset after it."""
        token = f"bench-mark-{uuid.uuid4().hex[:12]}"
        self.mini.probe(token)
        deadline = time.monotonic() + MARK_TIMEOUT_S
        while time.monotonic() < deadline:
            offset = self._find_line_end(token)
            if offset is not None:
                return offset
            time.sleep(0.01)
        raise ServerError(f"mark {token} never appeared in the request log {self.log_path}")

    def _find_line_end(self, token: str) -> int | None:
        if not self.log_path.exists():
            return None
        with self.log_path.open("rb") as f:
            f.seek(self._log_offset)
            pos = self._log_offset
            needle = token.encode()
            for raw in f:
                pos += len(raw)
                if needle in raw and raw.endswith(b"\n"):
                    self._log_offset = pos
                    return pos
        return None

    def stats_between(self, start: int, end: int) -> RequestStats:
        """Counters for the log lines in [start, end), excluding the closing mark line itself."""
        by_method: dict[str, int] = {}
        by_op: dict[str, int] = {}
        requests = bytes_in = bytes_out = errors = refused = 0
        for rec in self._records(start, end):
            if "bench-mark-" in str(rec.get("path", "")):
                continue
            method = str(rec.get("method", "?"))
            by_method[method] = by_method.get(method, 0) + 1
            op = str(rec.get("op", "?"))
            by_op[op] = by_op.get(op, 0) + 1
            requests += 1
            bytes_in += _int(rec.get("bytes_in"))
            bytes_out += _int(rec.get("bytes_out"))
            if _int(rec.get("status")) >= 400:
                errors += 1
            if rec.get("fault") == "throttle":
                refused += 1
        return RequestStats(requests, bytes_in, bytes_out, by_method, errors, by_op, refused)

    def _records(self, start: int, end: int) -> Iterator[dict[str, object]]:
        with self.log_path.open("rb") as f:
            f.seek(start)
            data = f.read(end - start)
        for raw in data.splitlines():
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ServerError(f"request log line is not JSON: {raw[:120]!r}") from exc
            if isinstance(rec, dict):
                yield rec


def _int(value: object) -> int:
    """A request-log number (absent or null counts as 0)."""
    if value is None:
        return 0
    if isinstance(value, int | float | str):
        return int(value)
    raise ServerError(f"request log field is not a number: {value!r}")
