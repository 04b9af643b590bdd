"""Client CPU per small signed PUT: the ks3sync client against the HTTP layers it could be built on, from
threads sharing one pool, against a real `ks3sync local-server --no-fsync` on loopback (the disk must not
hide client costs).

Modes:
- ``ks3sync.ks3.Client``: the real client (signing, MD5, CRC-64, ETag/CRC checks, its deadline-aware
  httpcore pool; docs/decisions.md D6).
- ``httpcore.ConnectionPool``: httpcore's pool driven directly with pre-signed requests: the floor of
  the stack the client is built on.
- ``httpx.Client``: ``httpx.Client.put`` shared by threads: what using httpx's own API would cost.

This measures requests/s and client-process CPU per request; the server runs as a separate process so
its CPU is not counted. To compare with an older client, run the same command with that tree first on
``PYTHONPATH`` (its ``ks3sync.ks3.Client`` mode is then the old client).

    python -m bench.bench_client --requests 2000 --concurrency 8 --size 4096

Requests are signed exactly like the client does (ks3sync.ks3.signing), so the raw modes pay the same
signing cost as the real client (but not its CRC-64 and checks).
"""

from __future__ import annotations

import argparse
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

import httpcore
import httpx

from ks3sync.ks3 import Client, ClientConfig, RetryPolicy
from ks3sync.ks3.signing import authorization

AK, SK = "BENCHAK", "bench-secret-key"
BUCKET = "bench-client"


def start_server(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    argv = [
        sys.executable,
        "-m",
        "ks3sync",
        "local-server",
        "--root",
        str(root / "data"),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--access-key",
        AK,
        "--secret-key",
        SK,
        "--no-fsync",
    ]
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


def run_httpx_client(endpoint: str, n: int, concurrency: int, body: bytes) -> None:
    with httpx.Client(
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        headers={"Accept-Encoding": "identity"},
        trust_env=False,
    ) as http:

        def put(i: int) -> None:
            key = f"httpx/{i}"
            response = http.put(f"{endpoint}/{BUCKET}/{key}", content=body, headers=signed_headers(key, body))
            if response.status_code != 200:
                raise SystemExit(f"PUT {key}: {response.status_code} {response.text[:200]}")

        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(put, range(n)))


def run_httpcore_pool(endpoint: str, n: int, concurrency: int, body: bytes) -> None:
    scheme, _, netloc = endpoint.partition("://")
    host, _, port = netloc.rpartition(":")
    timeouts = {"connect": 10.0, "read": 60.0, "write": 60.0, "pool": 60.0}
    with httpcore.ConnectionPool(max_connections=concurrency, keepalive_expiry=30.0) as pool:

        def put(i: int) -> None:
            key = f"httpcore/{i}"
            headers = [
                (b"Host", netloc.encode()),
                (b"Accept-Encoding", b"identity"),
                *((k.encode(), v.encode()) for k, v in signed_headers(key, body).items()),
            ]
            url = httpcore.URL(
                scheme=scheme.encode(), host=host.encode(), port=int(port), target=f"/{BUCKET}/{key}".encode()
            )
            response = pool.handle_request(
                httpcore.Request("PUT", url, headers=headers, content=body, extensions={"timeout": timeouts})
            )
            try:
                b"".join(response.stream)
            finally:
                response.stream.close()
            if response.status != 200:
                raise SystemExit(f"PUT {key}: {response.status}")

        with ThreadPoolExecutor(concurrency) as executor:
            list(executor.map(put, range(n)))


def run_ks3_client(endpoint: str, n: int, concurrency: int, body: bytes) -> None:
    config = ClientConfig(
        endpoint=endpoint,
        access_key=AK,
        secret_key=SK,
        max_connections=concurrency,
        retry=RetryPolicy(max_attempts=1),
    )
    with Client(config) as client, ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda i: client.put_object(BUCKET, f"client/{i}", body), range(n)))


MODES: dict[str, Callable[[str, int, int, bytes], None]] = {
    "ks3sync.ks3.Client": run_ks3_client,
    "httpcore.ConnectionPool": run_httpcore_pool,
    "httpx.Client": run_httpx_client,
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
    parser.add_argument("--modes", default=",".join(MODES), help="comma list of: " + ", ".join(MODES))
    args = parser.parse_args()
    modes = [mode for mode in args.modes.split(",") if mode]
    unknown = [mode for mode in modes if mode not in MODES]
    if unknown:
        parser.error(f"unknown mode(s) {', '.join(unknown)}")
    body = os.urandom(args.size)
    with tempfile.TemporaryDirectory(prefix="bench-client-") as tmp:
        proc, endpoint = start_server(Path(tmp))
        try:
            with Client(ClientConfig(endpoint=endpoint, access_key=AK, secret_key=SK)) as client:
                client.create_bucket(BUCKET)
            print(
                f"{args.requests} PUTs of {args.size} B, concurrency {args.concurrency}, {os.cpu_count()} CPUs, "
                f"httpcore {httpcore.__version__}, httpx {httpx.__version__}, server --no-fsync, "
                f"load {os.getloadavg()[0]:.1f}"
            )
            for round_number in range(1, args.rounds + 1):
                for mode in modes:
                    rate, cpu_ms = measure(mode, endpoint, args.requests, args.concurrency, body)
                    print(
                        f"round {round_number}  {mode:24s} {rate:7.0f} req/s  {cpu_ms * 1000:5.0f} us client CPU/req"
                    )
        finally:
            proc.terminate()
            proc.wait(timeout=10)


if __name__ == "__main__":
    main()
