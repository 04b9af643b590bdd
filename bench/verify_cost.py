"""What continuous verification costs per object (docs/decisions.md D21): the service's verifier
(``ks3sync.daemon.verify``) driven chunk by chunk, with no pacing, against a local-server with
``--latency-ms``, for each kind of check: a plain object's HEAD; an encrypted object up to 1 MiB read
whole and decrypted; a larger one's decrypted tail; and ``bytes_per_day``'s whole read of a plain
object. Prints wall and client CPU per object, and the requests per object.

    python -m bench.verify_cost                       # 200 objects of each kind, --latency-ms 20
    python -m bench.verify_cost --objects 500 --latency-ms 0

Owns: a ``ks3sync local-server --no-fsync`` subprocess (bench.server), its folders under a temp dir.
Imports ks3sync to drive the verifier in process (the number wanted is the verifier's own cost).
"""

from __future__ import annotations

import argparse
import enum
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.profile_mirror import BUCKET, CREDS
from bench.server import LocalServer
from ks3sync.config import VerifyConfig
from ks3sync.crypto import EncryptionKey
from ks3sync.daemon.verify import Verifier
from ks3sync.journal import Journal
from ks3sync.ks3 import Client, ClientConfig
from ks3sync.store.ks3store import KS3Store
from ks3sync.transfer.context import TransferOptions


class _Idle(enum.Enum):
    WATCHING = "watching"


class Host:
    """What the verifier needs of a worker, for a sync already uploaded by ``mirror``."""

    def __init__(
        self, root: Path, journal: Journal, sync_id: int, store: KS3Store, key: EncryptionKey | None
    ) -> None:
        self.name, self.sync_id, self.journal, self.store, self.root = "bench", sync_id, journal, store, root
        self.sync = None
        self.transfer = TransferOptions(encryption_key=key)
        self.clock = time.time_ns
        self.state = _Idle.WATCHING

    def busy(self) -> bool:
        return False


def upload(server: LocalServer, src: Path, prefix: str, db: Path, *flags: str) -> None:
    env = {**os.environ, "KS3_ACCESS_KEY": CREDS.access_key, "KS3_SECRET_KEY": CREDS.secret_key}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ks3sync",
            "mirror",
            str(src),
            f"ks3://{BUCKET}/{prefix}",
            "--endpoint",
            server.endpoint,
            "--state-db",
            str(db),
            *flags,
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])


def measure(
    server: LocalServer, work: Path, name: str, sizes: list[int], config: VerifyConfig, key_file: Path | None
) -> None:
    src = work / name
    for i, size in enumerate(sizes):
        (src / f"d{i % 10}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 10}" / f"f{i:05d}").write_bytes(os.urandom(size))
    db = work / f"{name}.db"
    upload(server, src, name + "/", db, *(("--encrypt-key", str(key_file)) if key_file else ()))
    key = EncryptionKey.load(key_file) if key_file else None
    config_ = ClientConfig(endpoint=server.endpoint, access_key=CREDS.access_key, secret_key=CREDS.secret_key)
    with Journal.open(db) as journal, Client(config_) as client:
        (sync,) = journal.syncs()
        host = Host(src, journal, sync.id, KS3Store(client, BUCKET, name + "/"), key)
        verifier = Verifier(host, config)  # type: ignore[arg-type]
        verifier._load(time.time_ns())
        verifier._pace = _Unlimited()  # type: ignore[assignment]
        mark = server.mark()
        cpu0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        while verifier.last_full_ns is None:
            verifier._run_chunk(0)
        wall = time.perf_counter() - wall0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        stats = server.stats_between(mark, server.mark())
        verifier.close(5)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    n = len(sizes)
    ops = ", ".join(
        f"{op} {count / n:.2f}" for op, count in sorted(stats.by_op.items()) if not op.startswith("mark")
    )
    print(
        f"{name:<24} {n:>5} objects  wall {1000 * wall / n:7.2f} ms/object  client CPU {1000 * cpu / n:6.2f} "
        f"ms/object  mismatches {verifier.mismatches}  requests/object: {ops}",
        flush=True,
    )


class _Unlimited:
    def ready(self, now_ns: int) -> bool:
        return True

    def spend(self, cost: int, now_ns: int) -> None:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ks3sync-verify-cost-") as tmp:
        work = Path(tmp)
        with LocalServer(
            work / "server",
            work / "requests.jsonl",
            CREDS,
            quiet_log=work / "server.log",
            latency_ms=args.latency_ms,
        ) as server:
            server.mini.create_bucket(BUCKET)
            key_file = work / "k.key"
            EncryptionKey.generate().write_new_file(key_file)
            n = args.objects
            per_day = VerifyConfig(objects_per_day=1)
            measure(server, work, "plain-head", [4096] * n, per_day, None)
            measure(server, work, "encrypted-whole-64KiB", [64 * 1024] * n, per_day, key_file)
            measure(
                server, work, "encrypted-tail-2MiB", [2 * 1024 * 1024] * max(1, n // 10), per_day, key_file
            )
            measure(server, work, "bytes-whole-64KiB", [64 * 1024] * n, VerifyConfig(bytes_per_day=1), None)


if __name__ == "__main__":
    main()
