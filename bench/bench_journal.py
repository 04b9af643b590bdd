"""Journal throughput: bulk write / bulk read of synced entries, per-call checkpoint writes at NORMAL
and FULL durability, and queue enqueue/due/done. Real SQLite files in a temp folder.

    python bench/bench_journal.py [--entries 100000] [--calls 2000]

Prints one line per measurement; numbers go to docs/journal.md.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

from ks3sync.journal import Change, ChangeKind, Journal
from ks3sync.model import FileIdentity, PartRecord, SyncedEntry, UploadRecord


def entry(i: int) -> SyncedEntry:
    path = f"dir{i % 100:03d}/sub{i % 7}/file-{i:07d}.dat"
    return SyncedEntry(
        path,
        FileIdentity(i * 10, 1_700_000_000_000_000_000 + i, 1000 + i, 1_700_000_000_000_000_000 + i),
        f"{i:032x}",
        f"{i:032x}",
        i * 10,
        False,
        1_700_000_000_000_000_000,
    )


def timed(label: str, n: int, fn) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    fn()
    dt = time.perf_counter() - t0
    print(f"{label:<58} {dt * 1000:9.1f} ms  ({n / dt:,.0f}/s)")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--calls", type=int, default=2_000)
    ap.add_argument("--dir", type=Path, default=None, help="where to put the database (default: a temp dir)")
    args = ap.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="ks3sync-bench-"))
    j = Journal.open(base / "bench.db")
    sid = j.register_sync("bench", "/src", "bucket", "", "h")
    batch = [entry(i) for i in range(args.entries)]

    timed(
        f"record_synced: {args.entries:,} entries, one transaction",
        args.entries,
        lambda: j.record_synced(sid, batch),
    )
    timed(
        "record_synced again (all upserts hit existing rows)",
        args.entries,
        lambda: j.record_synced(sid, batch),
    )
    got: dict[str, SyncedEntry] = {}
    timed(
        f"synced_entries: load {args.entries:,} entries",
        args.entries,
        lambda: got.update(j.synced_entries(sid)),
    )
    assert len(got) == args.entries

    cp = j.checkpoint(sid)
    n = args.calls
    timed(
        f"checkpoint.synced x{n:,} (one commit each, NORMAL)",
        n,
        lambda: [cp.synced(entry(args.entries + i)) for i in range(n)],
    )
    ident = FileIdentity(1, 2, 3, 4)
    timed(
        f"checkpoint.upload_started x{n // 4:,} (FULL)",
        n // 4,
        lambda: [
            cp.upload_started(UploadRecord(f"big{i}", f"big{i}", f"U{i}", 8 << 20, ident, 0))
            for i in range(n // 4)
        ],
    )
    timed(
        f"checkpoint.part_done x{n:,} (NORMAL)",
        n,
        lambda: [
            cp.part_done(f"U{i % (n // 4)}", PartRecord(i // (n // 4) + 1, 8 << 20, "m" * 32, "e" * 32, i))
            for i in range(n)
        ],
    )

    def threaded() -> None:
        def work(k: int) -> None:
            for i in range(n // 8):
                cp.synced(entry(10 * args.entries + k * n + i))

        threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    timed(f"checkpoint.synced from 8 threads, {n:,} calls total", n, threaded)

    from sqlalchemy import bindparam, update

    from ks3sync.journal.schema import syncs
    from ks3sync.journal.sql import Prepared, dbapi

    one_update = Prepared(
        update(syncs).where(syncs.c.id == bindparam("row")).values(options_hash=bindparam("h")), "h", "row"
    )

    def one_row(durable: bool) -> None:
        for i in range(n):
            with j._write(durable=durable) as db:
                one_update.run(dbapi(db), (str(i), sid))

    timed(f"same one-row commit x{n:,}, synchronous=NORMAL", n, lambda: one_row(False))
    timed(f"same one-row commit x{n:,}, synchronous=FULL", n, lambda: one_row(True))

    timed(
        f"enqueue x{n:,} single-change batches (FULL each)",
        n,
        lambda: [
            j.enqueue(sid, [Change(f"q{i}", ChangeKind.UPSERT, observed_ns=i, due_ns=i)]) for i in range(n)
        ],
    )
    burst = [Change(f"burst/{i}", ChangeKind.UPSERT, observed_ns=i, due_ns=i) for i in range(10 * n)]
    timed(f"enqueue one burst of {10 * n:,} changes (one FULL commit)", 10 * n, lambda: j.enqueue(sid, burst))
    timed("enqueue the same burst again (all coalesce)", 10 * n, lambda: j.enqueue(sid, burst))

    def drain() -> None:
        while True:
            batch_ = j.due(sid, 1 << 62, 64)
            if not batch_:
                return
            j.done([c.id for c in batch_])

    timed(f"due(limit=64)+done until empty: {11 * n:,} changes", 11 * n, drain)
    j.close()
    print(f"database: {base / 'bench.db'}")


if __name__ == "__main__":
    main()
