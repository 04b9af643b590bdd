"""Runs the workloads: prepares each run's starting state, times the tool, checks the result.

Owns: the order of steps per (tool, workload, run), what state each run starts from, and turning a
measured process + request-log slice + correctness check into a `RunRecord`. Must not import: ks3sync.

Starting states (each run starts from the same one; buckets are fresh per tool and run):
  small chain  fresh bucket, fresh journal -> W1 (upload 2,000 files) -> W4-2k (re-run, nothing changed)
               -> apply the W3 mutation to the run's private copy -> W3 (incremental with delete).
               Workloads not selected in the chain still run, untimed, to build the next one's state.
  W1-throttled W1 again, against a second server that refuses requests beyond --max-inflight (the
               session's latency too): fresh bucket and journal per run; a run that does not end with an
               exact mirror is recorded (its refusals counted) and reported FAILED.
  W3-20k       one seeding upload of the 20,000-file tree per tool (untimed); per run: apply the
               mutation (500 modified, 200 deleted, 300 renamed), W3 timed; before every run after the
               first, the mutation is reverted and synced back (untimed, checked).
  W4-100k      one seeding upload per tool (untimed), then `runs` timed re-runs on that state.
  W2 / W2e     fresh bucket and journal, the large file warm in the page cache, one upload.
  W5           one neutral bucket seeded by the harness (plain PUTs), restored into an empty folder.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from bench.ks3mini import Ks3Mini
from bench.limits import read_rate
from bench.measure import Invocation, median, run_measured, settle_disk
from bench.peers import Peer, PeerContext, Target
from bench.server import LocalServer, RequestStats
from bench.verify import Digest, check_bucket, check_folder
from bench.workloads import (
    TreeSpec,
    apply_mutation,
    copy_tree,
    file_md5,
    plan_mutation,
    revert_mutation,
    tree_digest,
)


@dataclass(frozen=True)
class Scale:
    name: str
    small: TreeSpec
    mutation: tuple[int, int, int]  # modify, delete, rename
    big_size: int
    large: TreeSpec | None  # W4-100k tree; None = skipped
    daemon_files: int
    runs: int
    timeout_s: float
    w3_large: TreeSpec | None = None  # W3-20k tree; None = skipped
    w3_large_mutation: tuple[int, int, int] = (500, 200, 300)


# The 20,000-file tree is the 2,000-file one ten times over: same file size, 100 files per folder.
FULL = Scale(
    "full",
    TreeSpec(2000, 20, 4096),
    (50, 20, 30),
    1 << 30,
    TreeSpec(100_000, 100, 4096),
    1_000_000,
    3,
    1800.0,
    TreeSpec(20_000, 200, 4096),
    (500, 200, 300),
)
QUICK = Scale("quick", TreeSpec(500, 20, 4096), (13, 5, 8), 64 << 20, None, 2000, 1, 300.0)

WORKLOADS = ("W1", "W1-throttled", "W2", "W2e", "W3", "W3-20k", "W4-2k", "W4-100k", "W5-W1", "W5-W2", "W6")
SMALL_CHAIN = ("W1", "W4-2k", "W3")
SEED_THREADS = 16
# Workloads made of many small requests: the table gives the client's CPU per request for these.
SMALL_REQUEST_WORKLOADS = frozenset({"W1", "W1-throttled", "W3", "W3-20k", "W5-W1"})


def select_workloads(spec: str | None) -> list[str]:
    """`W1,W3` -> exactly those; a name that is only a family (`W4`, `W5`) selects all its members."""
    if not spec:
        return list(WORKLOADS)
    wanted: list[str] = []
    for token in (t.strip() for t in spec.split(",") if t.strip()):
        hits = [w for w in WORKLOADS if w.lower() == token.lower()]
        if not hits:
            hits = [w for w in WORKLOADS if w.lower().startswith(token.lower() + "-")]
        if not hits:
            raise ValueError(f"unknown workload {token!r}; choose from {', '.join(WORKLOADS)}")
        wanted += [h for h in hits if h not in wanted]
    return [w for w in WORKLOADS if w in wanted]


def mutation_for(files: int) -> tuple[int, int, int]:
    """W3's proportions (2.5% modified, 1% deleted, 1.5% renamed) for a tree of `files`, at least one each."""
    return (max(1, files * 50 // 2000), max(1, files * 20 // 2000), max(1, files * 30 // 2000))


@dataclass(frozen=True)
class RunRecord:
    wall_s: float
    cpu_s: float
    max_rss_mb: float
    requests: RequestStats
    server_cpu_s: float
    problem: str | None


@dataclass
class Row:
    workload: str
    tool: str
    runs: list[RunRecord] = field(default_factory=list)
    skipped: str | None = None

    @property
    def failed(self) -> str | None:
        for r in self.runs:
            if r.problem:
                return r.problem
        return None

    @property
    def ok(self) -> bool:
        return self.skipped is None and bool(self.runs) and self.failed is None

    def med(self, attr: str) -> float:
        return median([float(getattr(r, attr)) for r in self.runs])

    def med_requests(self) -> float:
        return median([float(r.requests.requests) for r in self.runs])

    def med_bytes_in(self) -> float:
        return median([float(r.requests.bytes_in) for r in self.runs])

    def med_bytes_out(self) -> float:
        return median([float(r.requests.bytes_out) for r in self.runs])

    def med_cpu_ms_per_request(self) -> float:
        """The client's CPU per request the server saw (ms), median over runs."""
        return median([1000.0 * r.cpu_s / max(1, r.requests.requests) for r in self.runs])


class StepFailed(RuntimeError):
    """An untimed preparation step failed, so the timed steps after it cannot run."""


class Runner:
    def __init__(
        self,
        *,
        scale: Scale,
        workdir: Path,
        server: LocalServer,
        peers: Sequence[Peer],
        selected: Sequence[str],
        runs: int,
        log: Callable[[str], None],
    ) -> None:
        self.scale = scale
        self.workdir = workdir
        self.server = server
        self.peers = list(peers)
        self.selected = list(selected)
        self.runs = runs
        self.log = log
        self.rows: dict[tuple[str, str], Row] = {}
        self.ctx = PeerContext(
            server.endpoint,
            "127.0.0.1",
            server.port,
            server.creds.access_key,
            server.creds.secret_key,
            workdir / "peer-config",
        )
        self.ctx.workdir.mkdir(parents=True, exist_ok=True)
        self.tool_log = workdir / "tools.log"
        self.key_file = workdir / "encrypt.key"
        self.key_file.write_bytes(b"bench-key-0123ab")  # 16 bytes, no edge whitespace (SDK rule)
        self.key_file.chmod(0o600)

    @property
    def mini(self) -> Ks3Mini:
        return self.server.mini

    def row(self, workload: str, tool: str) -> Row:
        return self.rows.setdefault((workload, tool), Row(workload, tool))

    # -- one step --------------------------------------------------------------------------------
    def _step(self, inv: Invocation, check: Callable[[], str | None]) -> RunRecord:
        start = self.server.mark()
        cpu0 = self.server.cpu_seconds()
        pm = run_measured(inv, timeout_s=self.scale.timeout_s, log_path=self.tool_log)
        end = self.server.mark()
        server_cpu = self.server.cpu_seconds() - cpu0
        stats = self.server.stats_between(start, end)
        problem: str | None = None
        if pm.timed_out:
            problem = f"timed out after {self.scale.timeout_s:.0f} s"
        elif pm.returncode != 0:
            last = pm.output_tail.splitlines()[-1] if pm.output_tail else ""
            problem = f"exit {pm.returncode}: {last[:200]}"
        else:
            problem = check()
        return RunRecord(pm.wall_s, pm.cpu_s, pm.max_rss_mb, stats, server_cpu, problem)

    def _timed_or_seed(
        self, workload: str, peer: Peer, inv: Invocation, check: Callable[[], str | None]
    ) -> None:
        """Run a chain step: recorded when its workload is selected, else a seed that must succeed."""
        rec = self._step(inv, check)
        if workload in self.selected:
            self.row(workload, peer.name).runs.append(rec)
            refused = f"  {rec.requests.refused} refused" if rec.requests.refused else ""
            self.log(
                f"  {workload:12} {peer.name:12} {rec.wall_s:7.2f} s  {rec.requests.requests:6d} req{refused}  "
                f"{'ok' if rec.problem is None else 'FAILED: ' + rec.problem}"
            )
        if rec.problem is not None:
            raise StepFailed(f"{workload} by {peer.name} failed: {rec.problem}")

    def _skip_all(self, workloads: Sequence[str], peer: Peer, why: str) -> None:
        for w in workloads:
            if w in self.selected:
                row = self.row(w, peer.name)
                if not row.runs:
                    row.skipped = why

    # -- small chain: W1 -> W4-2k -> W3 ----------------------------------------------------------
    def run_small_chain(self, base: Path, base_digest: Digest) -> None:
        chain = [w for w in SMALL_CHAIN if w in self.selected]
        if not chain:
            return
        last = max(SMALL_CHAIN.index(w) for w in chain)
        steps = SMALL_CHAIN[: last + 1]
        spec = self.scale.small
        mutation = plan_mutation(spec, *self.scale.mutation)
        mutated_digest: Digest | None = None
        for peer in self.peers:
            for r in range(self.runs):
                run_dir = self.workdir / "runs" / peer.name / f"small-{r}"
                src, state = run_dir / "src", run_dir / "state"
                if run_dir.exists():
                    shutil.rmtree(run_dir)
                copy_tree(base, src)
                state.mkdir(parents=True)
                target = Target(f"s-{peer.name}-{r}", "w1")
                self.mini.create_bucket(target.bucket)
                try:
                    for w in steps:
                        if w == "W3":
                            apply_mutation(src, mutation, spec.size)
                            if mutated_digest is None:
                                mutated_digest = tree_digest(src)
                            expected = mutated_digest
                        else:
                            expected = base_digest
                        inv = peer.upload(self.ctx, src, target, delete=True, state=state)
                        self._timed_or_seed(
                            w,
                            peer,
                            inv,
                            partial(check_bucket, self.mini, target.bucket, target.prefix, expected),
                        )
                except StepFailed as exc:
                    self._skip_all(chain, peer, f"not run: {exc}")
                finally:
                    shutil.rmtree(src, ignore_errors=True)

    # -- W1-throttled ----------------------------------------------------------------------------
    def run_throttled(self, base: Path, base_digest: Digest) -> None:
        """W1 against this runner's server, which refuses requests beyond its --max-inflight. Every run is
        recorded, a failed one too (its refusals are the point)."""
        for peer in self.peers:
            for r in range(self.runs):
                src = self.workdir / "runs" / peer.name / f"throttled-{r}"
                state = self.workdir / "runs" / peer.name / f"throttled-{r}-state"
                for d in (src, state):
                    shutil.rmtree(d, ignore_errors=True)
                copy_tree(base, src)
                state.mkdir(parents=True)
                target = Target(f"t-{peer.name}-{r}", "w1")
                self.mini.create_bucket(target.bucket)
                inv = peer.upload(self.ctx, src, target, delete=True, state=state)
                try:
                    self._timed_or_seed(
                        "W1-throttled",
                        peer,
                        inv,
                        partial(check_bucket, self.mini, target.bucket, target.prefix, base_digest),
                    )
                except StepFailed:
                    pass  # recorded as FAILED in its row, with its request counts
                finally:
                    shutil.rmtree(src, ignore_errors=True)

    # -- W3-20k ----------------------------------------------------------------------------------
    def run_w3_large(
        self,
        base: Path,
        base_digest: Digest,
        spec: TreeSpec,
        mutation_counts: tuple[int, int, int],
        peers: Sequence[Peer],
    ) -> None:
        if "W3-20k" not in self.selected:
            return
        mutation = plan_mutation(spec, *mutation_counts)
        mutated_digest: Digest | None = None
        for peer in peers:
            run_dir = self.workdir / "runs" / peer.name / "w3-large"
            src, state = run_dir / "src", run_dir / "state"
            shutil.rmtree(run_dir, ignore_errors=True)
            copy_tree(base, src)
            state.mkdir(parents=True)
            target = Target(f"m-{peer.name}", "w3")
            self.mini.create_bucket(target.bucket)

            def sync(
                workload: str,
                expected: Digest,
                peer: Peer = peer,
                src: Path = src,
                state: Path = state,
                target: Target = target,
            ) -> None:
                inv = peer.upload(self.ctx, src, target, delete=True, state=state)
                self._timed_or_seed(
                    workload,
                    peer,
                    inv,
                    partial(check_bucket, self.mini, target.bucket, target.prefix, expected),
                )

            try:
                self.log(f"  W3-20k       {peer.name:12} seeding {len(base_digest)} files (untimed)")
                sync("W3-20k-seed", base_digest)
                for r in range(self.runs):
                    if r:
                        revert_mutation(src, base, mutation)
                        sync("W3-20k-revert", base_digest)
                    apply_mutation(src, mutation, spec.size)
                    if mutated_digest is None:
                        mutated_digest = tree_digest(src)
                    sync("W3-20k", mutated_digest)
            except StepFailed as exc:
                # A failed revert after a timed run leaves that run in the row ("ok x1" of --runs 2).
                self.log(f"  W3-20k       {peer.name:12} stopped: {exc}")
                self._skip_all(["W3-20k"], peer, f"not run: {exc}")
            finally:
                shutil.rmtree(run_dir, ignore_errors=True)

    # -- W4-100k ---------------------------------------------------------------------------------
    def run_w4_large(self, base: Path, digest: Digest, peers: Sequence[Peer]) -> None:
        if "W4-100k" not in self.selected:
            return
        for peer in peers:
            state = self.workdir / "runs" / peer.name / "large-state"
            state.mkdir(parents=True, exist_ok=True)
            target = Target(f"l-{peer.name}", "w4")
            self.mini.create_bucket(target.bucket)

            check = partial(check_bucket, self.mini, target.bucket, target.prefix, digest)
            inv = peer.upload(self.ctx, base, target, delete=True, state=state)
            try:
                self.log(f"  W4-100k      {peer.name:12} seeding {len(digest)} files (untimed)")
                self._timed_or_seed("W4-100k-seed", peer, inv, check)
                for _ in range(self.runs):
                    self._timed_or_seed("W4-100k", peer, inv, check)
            except StepFailed as exc:
                self._skip_all(["W4-100k"], peer, f"not run: {exc}")

    # -- W2 / W2e --------------------------------------------------------------------------------
    def run_big(self, big_dir: Path, big_digest: Digest) -> None:
        for workload in ("W2", "W2e"):
            if workload not in self.selected:
                continue
            encrypt = workload == "W2e"
            for peer in self.peers:
                if encrypt and not peer.encrypts:
                    continue
                key = self.key_file if encrypt else None
                aes_key = self.key_file.read_bytes().strip() if encrypt else None
                for r in range(self.runs):
                    state = self.workdir / "runs" / peer.name / f"{workload}-{r}"
                    shutil.rmtree(state, ignore_errors=True)
                    state.mkdir(parents=True)
                    target = Target(f"b-{peer.name}-{workload.lower()}-{r}", "w2")
                    self.mini.create_bucket(target.bucket)
                    settle_disk()
                    for f in big_dir.iterdir():
                        read_rate(f, cold=False)  # same warm page cache for every tool
                    inv = peer.upload(self.ctx, big_dir, target, delete=True, state=state, encrypt_key=key)
                    try:
                        self._timed_or_seed(
                            workload,
                            peer,
                            inv,
                            partial(
                                check_bucket,
                                self.mini,
                                target.bucket,
                                target.prefix,
                                big_digest,
                                encrypt_key=aes_key,
                            ),
                        )
                    except StepFailed:
                        pass  # recorded as FAILED in its row; the next run starts fresh anyway
                    finally:
                        for obj in list(self.mini.list(target.bucket)):
                            self.mini.delete(target.bucket, obj.key)

    # -- W5 --------------------------------------------------------------------------------------
    def seed_restore_bucket(self, base: Path, big_dir: Path) -> Target:
        target = Target("restore-src", "")
        self.mini.create_bucket(target.bucket)
        if "W5-W1" in self.selected:
            # Untimed set-up, but 2,000 serial PUTs cost 40 s of round trips on a 20 ms link: in parallel.
            with ThreadPoolExecutor(SEED_THREADS) as pool:
                list(
                    pool.map(
                        lambda rel: self.mini.put(target.bucket, f"small/{rel}", (base / rel).read_bytes()),
                        sorted(tree_digest(base)),
                    )
                )
        if "W5-W2" in self.selected:
            for f in sorted(big_dir.iterdir()):
                self.mini.put(target.bucket, f"big/{f.name}", _file_chunks(f), length=f.stat().st_size)
        return target

    def run_restore(self, base: Path, base_digest: Digest, big_dir: Path, big_digest: Digest) -> None:
        todo = [
            (w, p, d)
            for w, p, d in (("W5-W1", "small", base_digest), ("W5-W2", "big", big_digest))
            if w in self.selected
        ]
        if not todo:
            return
        src = self.seed_restore_bucket(base, big_dir)
        for workload, prefix, digest in todo:
            for peer in self.peers:
                for r in range(self.runs):
                    dst = self.workdir / "restore" / f"{peer.name}-{r}"
                    state = self.workdir / "runs" / peer.name / f"{workload}-{r}-state"
                    for d in (dst, state):
                        shutil.rmtree(d, ignore_errors=True)
                    state.mkdir(parents=True)
                    settle_disk()
                    inv = peer.download(self.ctx, Target(src.bucket, prefix), dst, state=state)
                    try:
                        self._timed_or_seed(workload, peer, inv, partial(check_folder, dst, digest))
                    except StepFailed:
                        pass  # recorded as FAILED in its row
                    finally:
                        shutil.rmtree(dst, ignore_errors=True)


def _file_chunks(path: Path, size: int = 1 << 20) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(size):
            yield chunk


def big_file_digest(big_dir: Path) -> Digest:
    return {f.name: (f.stat().st_size, file_md5(f)) for f in big_dir.iterdir()}
