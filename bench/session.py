"""One benchmark session: every selected workload against one `local-server --latency-ms N`.

Owns: the order of phases within a session (limits, small chain, large file, restore, W3-20k, W4-100k,
the daemon, the throttled W1 on a second server), the generated data they share across sessions
(`Data`), and what a session hands to the report (`SessionResult`). Must not import: ks3sync.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.daemon_latency import DaemonResult, run_daemon_workload
from bench.limits import Limits, measure_limits
from bench.peers import Peer
from bench.peers.ks3sync_peer import command_missing
from bench.runner import Row, Runner, Scale, big_file_digest
from bench.server import Credentials, LocalServer
from bench.verify import Digest
from bench.workloads import TreeSpec, make_big_file, make_tree, tree_digest

DEFAULT_THROTTLE_INFLIGHT = 16


class Data:
    """The generated source trees and the large file (under the data dir, reused across runs), with their
    digests computed once per harness run."""

    def __init__(self, root: Path, scale: Scale, log: Callable[[str], None]) -> None:
        self.root = root
        self.scale = scale
        self.log = log
        self._trees: dict[TreeSpec, tuple[Path, Digest]] = {}
        self._big: tuple[Path, Digest] | None = None

    def tree(self, spec: TreeSpec) -> tuple[Path, Digest]:
        if spec not in self._trees:
            # The names of the trees generated before W3-20k existed are kept, so their caches stay valid.
            path = self.root / (f"small-{spec.files}" + ("" if spec.folders <= 100 else f"-{spec.folders}d"))
            self.log(f"data: {spec.files} x {spec.size} B files in {spec.folders} folders ({path})")
            make_tree(path, spec)
            self._trees[spec] = (path, tree_digest(path))
        return self._trees[spec]

    def big(self) -> tuple[Path, Digest]:
        if self._big is None:
            big_dir = self.root / f"big-{self.scale.big_size >> 20}m"
            self.log(f"data: one {self.scale.big_size >> 20} MiB file")
            make_big_file(big_dir / "file.bin", self.scale.big_size)
            self._big = (big_dir, big_file_digest(big_dir))
        return self._big


@dataclass
class SessionResult:
    latency_ms: float
    selected: list[str]
    max_inflight: int | None  # of the W1-throttled server (None: not run)
    rows: dict[tuple[str, str], Row] = field(default_factory=dict)
    limits: Limits | None = None
    daemon: DaemonResult | None = None


@dataclass(frozen=True)
class SessionPlan:
    latency_ms: float
    selected: list[str]
    peers: list[Peer]
    large_peers: list[Peer]  # W3-20k and W4-100k (seeding those trees costs minutes per tool)
    skipped: dict[str, str]  # tool -> why it cannot run here
    measure_limits: bool
    throttle_inflight: int


def run_session(
    plan: SessionPlan,
    *,
    scale: Scale,
    data: Data,
    workdir: Path,
    creds: Credentials,
    log: Callable[[str], None],
) -> SessionResult:
    result = SessionResult(plan.latency_ms, list(plan.selected), None)
    selected = plan.selected
    workdir.mkdir(parents=True, exist_ok=True)
    base, base_digest = data.tree(scale.small)
    big_dir, big_digest = data.big()
    with LocalServer(
        workdir / "server-root",
        workdir / "requests.jsonl",
        creds,
        quiet_log=workdir / "server.log",
        latency_ms=plan.latency_ms,
    ) as server:
        log(
            f"local-server at {server.endpoint} (latency {plan.latency_ms:g} ms, root {workdir / 'server-root'})"
        )
        if plan.measure_limits:
            result.limits = measure_limits(
                server.mini,
                server.endpoint,
                creds.access_key,
                creds.secret_key,
                "limits",
                big_dir / "file.bin",
                base,
                log,
                server.cpu_seconds,
            )
            log("limits: " + ", ".join(f"{k}={v:.0f}" for k, v in result.limits.as_dict().items()))
        runner = Runner(
            scale=scale,
            workdir=workdir,
            server=server,
            peers=plan.peers,
            selected=selected,
            runs=scale.runs,
            log=log,
        )
        for name, why in plan.skipped.items():
            for w in selected:
                runner.row(w, name).skipped = why
        log("small chain: " + ", ".join(w for w in ("W1", "W4-2k", "W3") if w in selected))
        runner.run_small_chain(base, base_digest)
        log("large file: " + ", ".join(w for w in ("W2", "W2e") if w in selected))
        runner.run_big(big_dir, big_digest)
        log("restore: " + ", ".join(w for w in ("W5-W1", "W5-W2") if w in selected))
        runner.run_restore(base, base_digest, big_dir, big_digest)
        if "W3-20k" in selected and scale.w3_large is not None:
            large_base, large_digest = data.tree(scale.w3_large)
            runner.run_w3_large(
                large_base, large_digest, scale.w3_large, scale.w3_large_mutation, plan.large_peers
            )
        if "W4-100k" in selected and scale.large is not None:
            large_base, large_digest = data.tree(scale.large)
            runner.run_w4_large(large_base, large_digest, plan.large_peers)
        if "W6" in selected:
            missing = command_missing("run")
            if not any(p.name == "ks3sync" for p in plan.peers):
                log("W6 needs ks3sync in --tools; skipped")
            elif missing is not None:
                log(f"W6 skipped: {missing}")
            else:
                result.daemon = run_daemon_workload(server, workdir / "w6", scale.daemon_files, log=log)
        result.rows = runner.rows
    if "W1-throttled" in selected:
        result.max_inflight = plan.throttle_inflight
        _run_throttled(
            plan,
            result,
            scale=scale,
            workdir=workdir / "throttled",
            creds=creds,
            base=base,
            base_digest=base_digest,
            log=log,
        )
    return result


def _run_throttled(
    plan: SessionPlan,
    result: SessionResult,
    *,
    scale: Scale,
    workdir: Path,
    creds: Credentials,
    base: Path,
    base_digest: Digest,
    log: Callable[[str], None],
) -> None:
    """W1 on a second server that refuses requests beyond `plan.throttle_inflight` in flight."""
    workdir.mkdir(parents=True, exist_ok=True)
    with LocalServer(
        workdir / "server-root",
        workdir / "requests.jsonl",
        creds,
        quiet_log=workdir / "server.log",
        latency_ms=plan.latency_ms,
        max_inflight=plan.throttle_inflight,
    ) as server:
        log(
            f"W1-throttled: local-server at {server.endpoint} (latency {plan.latency_ms:g} ms, "
            f"--max-inflight {plan.throttle_inflight})"
        )
        runner = Runner(
            scale=scale,
            workdir=workdir,
            server=server,
            peers=plan.peers,
            selected=["W1-throttled"],
            runs=scale.runs,
            log=log,
        )
        for name, why in plan.skipped.items():
            runner.row("W1-throttled", name).skipped = why
        runner.run_throttled(base, base_digest)
        result.rows.update(runner.rows)


def session_workloads(selected: Sequence[str], latency_ms: float, explicit: Sequence[str]) -> list[str]:
    """The workloads a session at `latency_ms` runs: W1-throttled only on a slow link (its goal is stated at
    20 ms) unless named in --only."""
    return [w for w in selected if w != "W1-throttled" or latency_ms > 0 or w in explicit]
