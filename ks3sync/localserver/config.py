"""The local server's settings, one frozen value shared by the CLI, the embedded server and the app."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class ServerConfig:
    root: Path
    access_key: str
    secret_key: str
    host: str = "127.0.0.1"
    port: int = 0
    request_log: Path | None = None
    # fault injection (data plane only, see faults.py); the latency applies to every request
    fault_rate: float = 0.0
    fault_codes: tuple[int, ...] = (500, 503)
    latency_ms: float = 0.0
    # throttling (throttle.py): requests beyond this many in flight get 503 SlowDown; None = no limit
    max_inflight: int | None = None
    # seconds for a Retry-After header on every SlowDown answer; None = no header (KS3 and S3 send none)
    retry_after: int | None = None
    drop_rate: float = 0.0
    seed: int | None = None
    # durability / timing
    fsync: bool = True
    body_timeout: float = 20.0
    restore_seconds: float = 0.0
    # bodies up to this size kept as SQLite rows instead of files; None: 64 KiB without fsync, else 0
    inline_max: int | None = None
    # KS3 allows 100 buckets per account; a long test session creates more than that
    max_buckets: int = 100
    # buckets addressed as <bucket>.<domain> in the Host header (virtual-host style)
    virtual_host_domain: str | None = "localhost"
    # what one connection may make the server hold (http1.Limits); body_timeout also bounds a response
    # the client stops reading
    max_head_bytes: int = 64 * 1024
    head_timeout: float = 10.0
    idle_timeout: float = 30.0
    # other `--endpoint local` processes may use this server (rootlock.py's server.json says where)
    shared: bool = False

    @property
    def effective_inline_max(self) -> int:
        if self.inline_max is not None:
            return self.inline_max
        return 0 if self.fsync else 64 * 1024

    def __repr__(self) -> str:  # keep the secret out of logs and tracebacks
        return (
            f"ServerConfig(root={str(self.root)!r}, host={self.host!r}, port={self.port}, "
            f"access_key={self.access_key!r}, secret_key='***')"
        )
