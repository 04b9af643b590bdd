"""Optional Prometheus metrics (``metrics: {listen: host:port}``; needs ``pip install 'ks3sync[metrics]'``).

Off by default: nothing is imported or listened on unless configured. Exposes per sync: files synced,
bytes sent, queue depth, parked changes, errors, state, verification (objects re-checked, mismatches,
the end of the last full round), and the latency from a change being observed to
it being confirmed by KS3. Uses its own registry so tests can run several services in one process.

Imports only ks3sync.daemon.logs; prometheus_client only when enabled.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ks3sync.daemon.logs import event

if TYPE_CHECKING:
    from ks3sync.journal.types import QueueCounts

log = logging.getLogger("ks3sync.daemon")

LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60, 300, 1800)


class MetricsUnavailable(Exception):
    pass


class Metrics:
    def __init__(self, listen: tuple[str, int]) -> None:
        try:
            import prometheus_client as prom
        except ImportError as exc:
            raise MetricsUnavailable(
                "metrics.listen is set but prometheus-client is not installed (pip install 'ks3sync[metrics]')"
            ) from exc
        self.registry = prom.CollectorRegistry()
        r = self.registry
        self.files = prom.Counter(
            "ks3sync_files_synced", "Files sent, copied or deleted by the service", ["sync"], registry=r
        )
        self.bytes = prom.Counter("ks3sync_bytes_sent", "Bytes of file content sent", ["sync"], registry=r)
        self.errors = prom.Gauge("ks3sync_errors", "Failed operations since start", ["sync"], registry=r)
        self.queue = prom.Gauge(
            "ks3sync_queue_depth", "Changes waiting (not parked, not in flight)", ["sync"], registry=r
        )
        self.in_flight = prom.Gauge("ks3sync_in_flight", "Changes being worked on", ["sync"], registry=r)
        self.parked = prom.Gauge(
            "ks3sync_parked", "Changes parked after repeated failures", ["sync"], registry=r
        )
        self.up = prom.Gauge(
            "ks3sync_sync_up", "1 while the sync is watching or polling, else 0", ["sync"], registry=r
        )
        # continuous verification (D21), for syncs with verify:
        self.verified = prom.Gauge(
            "ks3sync_verified_objects", "Objects re-checked since start", ["sync"], registry=r
        )
        self.mismatches = prom.Gauge(
            "ks3sync_verify_mismatches", "Objects found not to match their record, ever", ["sync"], registry=r
        )
        self.last_full = prom.Gauge(
            "ks3sync_verify_last_full_timestamp_seconds",
            "When every recorded object had last been verified (end of the last full round)",
            ["sync"],
            registry=r,
        )
        self.latency = prom.Histogram(
            "ks3sync_change_latency_seconds",
            "From a change being observed to KS3 confirming it",
            ["sync"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        host, port = listen
        server = prom.start_http_server(port, addr=host, registry=r)
        # start_http_server returns (server, thread) on recent versions
        self._server: Any = server[0] if isinstance(server, tuple) else None
        event(log, logging.INFO, "metrics_listening", address=f"{host}:{port}")

    def done(self, sync: str, action: str, size: int, latency_ns: int) -> None:
        self.files.labels(sync).inc()
        if size:
            self.bytes.labels(sync).inc(size)
        self.latency.labels(sync).observe(latency_ns / 1e9)

    def passed(self, sync: str, files: int, sent: int) -> None:
        """A reconcile's transfers (they have no per-change latency)."""
        self.files.labels(sync).inc(files)
        self.bytes.labels(sync).inc(sent)

    def update(self, sync: str, stats: QueueCounts | None, snapshot: dict[str, Any]) -> None:
        if stats is not None:
            self.queue.labels(sync).set(stats.queue_depth)
            self.in_flight.labels(sync).set(stats.in_flight)
            self.parked.labels(sync).set(stats.parked)
        self.errors.labels(sync).set(snapshot.get("errors", 0))
        self.up.labels(sync).set(1 if snapshot.get("state") in ("watching", "polling", "reconciling") else 0)
        if "verified" in snapshot:
            self.verified.labels(sync).set(snapshot["verified"])
            self.mismatches.labels(sync).set(snapshot["verify_mismatches"])
            if snapshot["last_full_verification_ns"] is not None:
                self.last_full.labels(sync).set(snapshot["last_full_verification_ns"] / 1e9)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
