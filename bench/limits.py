"""This machine's ceilings, measured in the same session as the workloads.

Owns: MD5 and AES-128-CBC throughput, disk read of the large file (page cache warm, and cold after
`posix_fadvise(DONTNEED)`), a stat-walk rate, and what the local-server sustains from a simple
threaded httpx client (small PUTs/s, one-stream large PUT and GET MB/s, one-stream
read + AES + MD5 + PUT). Must not import: ks3sync (the ceiling must not depend on the code under test).

Each number is the best of a few short repetitions: a ceiling, not a typical value.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from Crypto.Cipher import AES

from bench.ks3mini import Ks3Mini

MB = 1_000_000
CHUNK = 1 << 20


@dataclass(frozen=True)
class Limits:
    md5_mb_s: float
    aes_cbc_mb_s: float
    disk_read_warm_mb_s: float
    disk_read_cold_mb_s: float
    stat_walk_files_s: float
    small_put_req_s: float
    server_us_per_small_put: float
    small_get_req_s: float
    put_ingest_mb_s: float  # the better of one stream and 4 parallel streams
    get_egress_mb_s: float
    encrypt_md5_put_mb_s: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    @property
    def w2_ceiling_mb_s(self) -> float:
        """What a single large upload can reach: read it, hash it, the server ingests it."""
        return min(self.disk_read_warm_mb_s, self.md5_mb_s, self.put_ingest_mb_s)

    @property
    def w5_big_ceiling_mb_s(self) -> float:
        return min(self.md5_mb_s, self.get_egress_mb_s)


def _best(reps: int, fn: Callable[[], float]) -> float:
    return max(fn() for _ in range(reps))


def md5_rate(total: int = 128 << 20) -> float:
    buf = os.urandom(CHUNK)

    def once() -> float:
        h = hashlib.md5()
        t0 = time.perf_counter()
        for _ in range(total // CHUNK):
            h.update(buf)
        return total / MB / (time.perf_counter() - t0)

    return _best(3, once)


def aes_rate(total: int = 128 << 20) -> float:
    buf = os.urandom(CHUNK)

    def once() -> float:
        cipher = AES.new(b"0123456789abcdef", AES.MODE_CBC, iv=bytes(16))
        t0 = time.perf_counter()
        for _ in range(total // CHUNK):
            cipher.encrypt(buf)
        return total / MB / (time.perf_counter() - t0)

    return _best(3, once)


def read_rate(path: Path, *, cold: bool) -> float:
    size = path.stat().st_size
    with path.open("rb", buffering=0) as f:
        if cold:
            os.fsync(f.fileno())
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        buf = bytearray(CHUNK)
        t0 = time.perf_counter()
        while f.readinto(buf):
            pass
        return size / MB / (time.perf_counter() - t0)


def stat_walk_rate(root: Path) -> float:
    def once() -> float:
        n = 0
        t0 = time.perf_counter()
        for dirpath, _dirs, names in os.walk(root):
            for name in names:
                os.stat(os.path.join(dirpath, name))
                n += 1
        return n / (time.perf_counter() - t0)

    return _best(3, once)


def small_rate(
    endpoint: str,
    ak: str,
    sk: str,
    bucket: str,
    op: str,
    *,
    processes: int = 2,
    threads: int = 4,
    per_thread: int = 150,
) -> float:
    """Small requests per second from `processes` x `threads` clients ("put" 4 KiB, or "get" them back).

    Several processes, so the harness's own GIL is not the ceiling; they start together at an agreed
    wall-clock instant after their imports, and the rate is over the union of their busy spans.
    """
    ctx = multiprocessing.get_context("spawn")
    start_at = time.time() + 2.0
    with ProcessPoolExecutor(processes, mp_context=ctx) as pool:
        futures = [
            pool.submit(_small_worker, endpoint, ak, sk, bucket, op, p, threads, per_thread, start_at)
            for p in range(processes)
        ]
        spans = [f.result(timeout=600) for f in futures]
    busy = max(end for _, end in spans) - min(begin for begin, _ in spans)
    return processes * threads * per_thread / busy


def _small_worker(
    endpoint: str,
    ak: str,
    sk: str,
    bucket: str,
    op: str,
    proc: int,
    threads: int,
    per_thread: int,
    start_at: float,
) -> tuple[float, float]:
    body = os.urandom(4096)
    errors: list[BaseException] = []
    minis = [Ks3Mini(endpoint, ak, sk) for _ in range(threads)]

    def worker(idx: int) -> None:
        mini = minis[idx]
        try:
            for i in range(per_thread):
                key = f"limits/small/{proc}-{idx}/{i}"
                if op == "put":
                    mini.put(bucket, key, body)
                else:
                    for _ in mini.iter_get(bucket, key):
                        pass
        except Exception as exc:  # reported below: a ceiling measured with errors is no ceiling
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    time.sleep(max(0.0, start_at - time.time()))
    begin = time.time()
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=300)
    end = time.time()
    for mini in minis:
        mini.close()
    if errors:
        raise RuntimeError(f"small-request ceiling ({op}) failed: {errors[0]}")
    return begin, end


def _chunks(buf: bytes, total: int) -> Iterator[bytes]:
    view = memoryview(buf)
    left = total
    while left:
        n = min(len(view), left)
        yield bytes(view[:n]) if n < len(view) else buf
        left -= n


def put_ingest_rate(mini: Ks3Mini, bucket: str, total: int) -> float:
    """One stream of `total` bytes from memory (leaves `limits/large` behind for the GET test)."""
    buf = os.urandom(CHUNK)

    def once() -> float:
        t0 = time.perf_counter()
        mini.put(bucket, "limits/large", _chunks(buf, total), length=total)
        return total / MB / (time.perf_counter() - t0)

    return _best(2, once)


def parallel_ingest_rate(endpoint: str, ak: str, sk: str, bucket: str, total: int, streams: int = 4) -> float:
    """`streams` concurrent PUTs of total/streams bytes each (what multipart uploaders do)."""
    buf = os.urandom(CHUNK)
    each = max(CHUNK, total // streams // CHUNK * CHUNK)
    minis = [Ks3Mini(endpoint, ak, sk) for _ in range(streams)]
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            minis[i].put(bucket, f"limits/parallel-{i}", _chunks(buf, each), length=each)
        except Exception as exc:  # a ceiling measured with errors is no ceiling
            errors.append(exc)

    def once() -> float:
        pool = [threading.Thread(target=one, args=(i,)) for i in range(streams)]
        t0 = time.perf_counter()
        for t in pool:
            t.start()
        for t in pool:
            t.join(timeout=600)
        elapsed = time.perf_counter() - t0
        if errors:
            raise RuntimeError(f"parallel ingest ceiling failed: {errors[0]}")
        return streams * each / MB / elapsed

    try:
        return _best(2, once)
    finally:
        for m in minis:
            m.close()


def get_egress_rate(mini: Ks3Mini, bucket: str, total: int) -> float:
    def once() -> float:
        n = 0
        t0 = time.perf_counter()
        for chunk in mini.iter_get(bucket, "limits/large"):
            n += len(chunk)
        if n != total:
            raise RuntimeError(f"GET returned {n} bytes, expected {total}")
        return total / MB / (time.perf_counter() - t0)

    return _best(2, once)


def encrypt_md5_put_rate(mini: Ks3Mini, bucket: str, path: Path) -> float:
    """One stream: read the file, AES-CBC it, MD5 the ciphertext, PUT it. The W2e ceiling."""
    size = path.stat().st_size
    cipher_len = 16 + 16 * (size // 16 + 1)

    digests: list[str] = []

    def body() -> Iterator[bytes]:
        iv = os.urandom(16)
        cipher = AES.new(b"0123456789abcdef", AES.MODE_CBC, iv=iv)
        # MD5 of the ciphertext while it streams: what a client compares with the returned ETag.
        h = hashlib.md5(iv)
        yield iv
        with path.open("rb") as f:
            chunk = f.read(CHUNK)
            while True:
                nxt = f.read(CHUNK)
                if not nxt:
                    # The SDK's pad: n copies of "123456789abcdefg"[n-1], always 1..16 bytes.
                    n = 16 - len(chunk) % 16
                    chunk += "123456789abcdefg"[n - 1].encode() * n
                out = cipher.encrypt(chunk)
                h.update(out)
                yield out
                if not nxt:
                    digests.append(h.hexdigest())
                    return
                chunk = nxt

    def once() -> float:
        t0 = time.perf_counter()
        etag = mini.put(bucket, "limits/encrypted", body(), length=cipher_len)
        elapsed = time.perf_counter() - t0
        if etag != digests[-1]:
            raise RuntimeError(f"encrypted ceiling PUT: ETag {etag} != streamed MD5 {digests[-1]}")
        return size / MB / elapsed

    return _best(2, once)


def measure_limits(
    mini: Ks3Mini,
    endpoint: str,
    ak: str,
    sk: str,
    bucket: str,
    big_file: Path,
    small_tree: Path,
    log: Callable[[str], None],
    server_cpu: Callable[[], float],
) -> Limits:
    mini.create_bucket(bucket)
    size = big_file.stat().st_size
    log("limits: md5, aes")
    md5 = md5_rate()
    aes = aes_rate()
    log("limits: disk read")
    cold = read_rate(big_file, cold=True)
    warm = _best(2, lambda: read_rate(big_file, cold=False))
    log("limits: stat walk")
    walk = stat_walk_rate(small_tree)
    log("limits: small PUTs")
    cpu0 = server_cpu()
    small = _best(2, lambda: small_rate(endpoint, ak, sk, bucket, "put"))
    server_us = (server_cpu() - cpu0) / (2 * 2 * 4 * 150) * 1e6
    small_get = _best(2, lambda: small_rate(endpoint, ak, sk, bucket, "get"))
    log("limits: large PUT/GET")
    ingest = max(put_ingest_rate(mini, bucket, size), parallel_ingest_rate(endpoint, ak, sk, bucket, size))
    egress = get_egress_rate(mini, bucket, size)
    log("limits: encrypt+md5+PUT")
    enc = encrypt_md5_put_rate(mini, bucket, big_file)
    return Limits(md5, aes, warm, cold, walk, small, server_us, small_get, ingest, egress, enc)
