"""Sync httpx.Client shared by threads vs httpx.AsyncClient, for small signed PUTs against a real
`ks3sync local-server` on loopback (run with --no-fsync so the disk does not hide client costs);
plus the full ks3sync.ks3.Client on the same workload.

Why: the KS3 client had to pick one transport shape (docs/decisions.md). This measures requests/s and
client-process CPU per request; the server runs as a separate process so its CPU is not counted.

    /work/venv/bin/python -m bench.bench_client --requests 2000 --concurrency 8 --size 4096

Requests are signed exactly like the client does (ks3sync.ks3.signing), so the raw-httpx modes pay
the same signing cost as the real client.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import email.utils
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from ks3sync.ks3 import Client, ClientConfig, RetryPolicy
from ks3sync.ks3.signing import authorization

AK, SK = "BENCHAK", "bench-secret-key"
BUCKET = "bench-client"


def start_server(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    argv = [sys.executable, "-m", "ks3sync", "local-server", "--root", str(root / "data"), "--host", "127.0.0.1",
            "--port", "0", "--access-key", AK, "--secret-key", SK, "--no-fsync"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode().strip()
    if not line.startswith("listening on "):
        proc.terminate()
        raise SystemExit(f"local-server did not start: {line!r}")
    return proc, line.removeprefix("listening on ").strip()


def signed_headers(key: str, body: bytes) -> dict[str, str]:
    headers = {
        "Date": email.utils.formatdate(usegmt=True),
        "Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode(),
        "Content-Type": "application/octet-stream",
        "Content-Length": str(len(body)),
    }
    headers["Authorization"] = authorization(AK, SK, "PUT", BUCKET, key, headers)
    return headers


def run_sync(endpoint: str, n: int, concurrency: int, body: bytes) -> None:
    with httpx.Client(limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
                      headers={"Accept-Encoding": "identity"}) as http:
        def put(i: int) -> None:
            key = f"sync/{i}"
            response = http.put(f"{endpoint}/{BUCKET}/{key}", content=body, headers=signed_headers(key, body))
            if response.status_code != 200:
                raise SystemExit(f"PUT {key}: {response.status_code} {response.text[:200]}")

        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(put, range(n)))


def run_async(endpoint: str, n: int, concurrency: int, body: bytes) -> None:
    async def main() -> None:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(limits=limits, headers={"Accept-Encoding": "identity"}) as http:
            counter = iter(range(n))

            async def worker() -> None:
                for i in counter:
                    key = f"async/{i}"
                    response = await http.put(f"{endpoint}/{BUCKET}/{key}", content=body,
                                              headers=signed_headers(key, body))
                    if response.status_code != 200:
                        raise SystemExit(f"PUT {key}: {response.status_code}")

            await asyncio.gather(*(worker() for _ in range(concurrency)))

    asyncio.run(main())


def run_ks3_client(endpoint: str, n: int, concurrency: int, body: bytes) -> None:
    config = ClientConfig(endpoint=endpoint, access_key=AK, secret_key=SK, max_connections=concurrency,
                          retry=RetryPolicy(max_attempts=1))
    with Client(config) as client, ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda i: client.put_object(BUCKET, f"client/{i}", body), range(n)))


MODES: dict[str, Callable[[str, int, int, bytes], None]] = {
    "httpx.Client+threads": run_sync,
    "httpx.AsyncClient": run_async,
    "ks3sync.ks3.Client+threads": run_ks3_client,
}


def measure(mode: str, endpoint: str, n: int, concurrency: int, body: bytes) -> tuple[float, float]:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    MODES[mode](endpoint, n, concurrency, body)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return n / wall, cpu / n * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    body = os.urandom(args.size)
    with tempfile.TemporaryDirectory(prefix="bench-client-") as tmp:
        proc, endpoint = start_server(Path(tmp))
        try:
            with Client(ClientConfig(endpoint=endpoint, access_key=AK, secret_key=SK)) as client:
                client.create_bucket(BUCKET)
            print(f"{args.requests} PUTs of {args.size} B, concurrency {args.concurrency}, {os.cpu_count()} CPUs, "
                  f"httpx {httpx.__version__}, server --no-fsync, load {os.getloadavg()[0]:.1f}")
            for round_number in range(1, args.rounds + 1):
                for mode in MODES:
                    rate, cpu_ms = measure(mode, endpoint, args.requests, args.concurrency, body)
                    print(f"round {round_number}  {mode:28s} {rate:7.0f} req/s  {cpu_ms:5.2f} ms client CPU/req")
        finally:
            proc.terminate()
            proc.wait(timeout=10)


if __name__ == "__main__":
    main()
