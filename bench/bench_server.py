"""Benchmark `ks3sync local-server` on its own: small PUTs per second and large-object MB/s.

Usage: python -m bench.bench_server [--no-fsync] [--seconds 3] [--big-mib 1024]

Starts the server as a subprocess (so it has its own interpreter and GIL), then measures
  - small PUTs/s (1 KiB bodies) at concurrency 1, 8 and 32: one thread and one pooled httpx.Client per
    connection, KSS V2 signed (hashlib/hmac; a few microseconds per request);
  - one PUT of --big-mib MiB streamed from memory in 8 MiB chunks, then one GET of it, in MB/s;
  - the server's CPU time per small PUT and per MiB moved (from /proc/<pid>/stat, all its threads);
  - listing times over an index of --list-objects keys (rows written straight into the index first).
Prints a table. Client and server share this machine's cores, so the numbers are for the pair.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import os
import subprocess
import sys
import tempfile
import threading
import time
from email.utils import formatdate
from pathlib import Path

import httpx

AK = "AKLTbenchAccessKey000001"
SK = "benchSecretKey/0123456789+abcdefgHIJ="
BUCKET = "bench"


def sign(method: str, resource: str, content_type: str = "") -> dict[str, str]:
    date = formatdate(time.time(), usegmt=True)
    to_sign = f"{method}\n\n{content_type}\n{date}\n{resource}"
    signature = base64.b64encode(hmac.new(SK.encode(), to_sign.encode(), hashlib.sha1).digest()).decode()
    headers = {"Date": date, "Authorization": f"KSS {AK}:{signature}"}
    if content_type:
        headers["Content-Type"] = content_type
    return headers


def server_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(root: Path, fsync: bool) -> tuple[subprocess.Popen[bytes], str]:
    port_file = root.parent / "port"
    args = [
        sys.executable,
        "-m",
        "ks3sync",
        "local-server",
        "--root",
        str(root),
        "--port-file",
        str(port_file),
    ]
    if not fsync:
        args.append("--no-fsync")
    env = dict(os.environ, KS3_ACCESS_KEY=AK, KS3_SECRET_KEY=SK)
    process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while not port_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("local-server did not start")
        time.sleep(0.02)
    return process, f"http://127.0.0.1:{port_file.read_text().strip()}"


def small_puts(endpoint: str, concurrency: int, seconds: float, body: bytes) -> tuple[int, float]:
    # Clients are built before the clock starts: an httpx.Client costs ~20 ms (TLS context) to create.
    clients = [httpx.Client(timeout=30) for _ in range(concurrency)]
    counts = [0] * concurrency
    errors: list[str] = []
    start = threading.Barrier(concurrency + 1)
    stop_at = [0.0]

    def worker(index: int) -> None:
        client = clients[index]
        start.wait()
        n = 0
        while time.monotonic() < stop_at[0]:
            resource = f"/{BUCKET}/small/{index}/{n}"
            response = client.put(endpoint + resource, content=body, headers=sign("PUT", resource))
            if response.status_code != 200:
                errors.append(response.text[:200])
                return
            n += 1
        counts[index] = n

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    stop_at[0] = started + seconds
    start.wait()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    for client in clients:
        client.close()
    if errors:
        raise RuntimeError(errors[0])
    return sum(counts), elapsed


def big_put_get(endpoint: str, mib: int, server_pid: int) -> list[tuple[float, float]]:
    """[(MB/s, server CPU ms per MiB)] for one streamed PUT of `mib` MiB and one GET of it."""
    chunk = os.urandom(8 * 1024 * 1024)
    total = mib * 1024 * 1024
    resource = f"/{BUCKET}/big.bin"

    def body():  # type: ignore[no-untyped-def]
        sent = 0
        while sent < total:
            piece = chunk[: min(len(chunk), total - sent)]
            sent += len(piece)
            yield piece

    results = []
    with httpx.Client(timeout=600) as client:
        headers = sign("PUT", resource)
        headers["Content-Length"] = str(total)
        cpu = server_cpu_seconds(server_pid)
        started = time.monotonic()
        response = client.put(endpoint + resource, content=body(), headers=headers)
        elapsed = time.monotonic() - started
        assert response.status_code == 200, response.text
        results.append((total / elapsed / 1e6, (server_cpu_seconds(server_pid) - cpu) / mib * 1000))
        cpu = server_cpu_seconds(server_pid)
        started = time.monotonic()
        received = 0
        with client.stream("GET", endpoint + resource, headers=sign("GET", resource)) as stream:
            for piece in stream.iter_raw(1024 * 1024):
                received += len(piece)
        elapsed = time.monotonic() - started
        assert received == total
        results.append((total / elapsed / 1e6, (server_cpu_seconds(server_pid) - cpu) / mib * 1000))
    return results


def populate(root: Path, count: int) -> None:
    """`count` object rows (100 dirs x 10 subdirs x files) written straight into the server's index."""
    from ks3sync.localserver.storage import ObjectRecord, Storage

    storage = Storage(root, fsync=False)
    storage.create_bucket("listing", "private")
    storage.db.execute("BEGIN")
    for i in range(count):
        key = f"dir{i % 100:03d}/sub{(i // 100) % 10}/file{i:07d}.dat"
        storage.put_object(
            ObjectRecord("listing", key, 1, "0" * 32, 0, time.time(), "STANDARD", "private", {}, "0" * 32)
        )
    storage.db.execute("COMMIT")
    storage.close()


def time_listings(endpoint: str, count: int) -> list[tuple[str, str, str]]:
    rows = []
    with httpx.Client(timeout=120) as client:

        def page(query: str) -> str:
            response = client.get(f"{endpoint}/listing/?{query}", headers=sign("GET", "/listing/"))
            assert response.status_code == 200
            return response.text

        started = time.monotonic()
        marker, pages, keys = "", 0, 0
        while True:
            text = page(f"max-keys=1000&marker={marker}")
            pages += 1
            keys += text.count("<Contents>")
            if "<IsTruncated>true</IsTruncated>" not in text:
                break
            marker = text.split("<NextMarker>")[1].split("</NextMarker>")[0]
        elapsed = time.monotonic() - started
        assert keys == count
        rows.append(
            (
                f"list all {count:,} keys (pages of 1000)",
                f"{elapsed * 1000:,.0f} ms",
                f"{elapsed / pages * 1000:.1f} ms per page",
            )
        )
        started = time.monotonic()
        text = page("delimiter=/")
        elapsed = time.monotonic() - started
        assert text.count("<CommonPrefixes>") == 100
        rows.append(("delimiter '/' at the root (100 prefixes)", f"{elapsed * 1000:,.1f} ms", ""))
        started = time.monotonic()
        text = page("delimiter=/&prefix=dir042/")
        elapsed = time.monotonic() - started
        assert text.count("<CommonPrefixes>") == 10
        rows.append(("prefix dir042/ + delimiter (10 prefixes)", f"{elapsed * 1000:,.1f} ms", ""))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-fsync", action="store_true")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--big-mib", type=int, default=1024)
    parser.add_argument(
        "--list-objects", type=int, default=100_000, help="index size for the listing timings"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-server-") as tmp:
        populate(Path(tmp) / "root", args.list_objects)
        process, endpoint = start_server(Path(tmp) / "root", fsync=not args.no_fsync)
        try:
            with httpx.Client() as client:
                assert (
                    client.put(f"{endpoint}/{BUCKET}/", headers=sign("PUT", f"/{BUCKET}/")).status_code == 200
                )
            rows = []
            body = os.urandom(1024)
            for concurrency in (1, 8, 32):
                cpu_before = server_cpu_seconds(process.pid)
                count, elapsed = small_puts(endpoint, concurrency, args.seconds, body)
                cpu = server_cpu_seconds(process.pid) - cpu_before
                rows.append(
                    (
                        f"small PUT (1 KiB), concurrency {concurrency}",
                        f"{count / elapsed:,.0f} PUT/s",
                        f"{cpu / max(count, 1) * 1e6:,.0f} us server CPU per PUT",
                    )
                )
            rows.extend(time_listings(endpoint, args.list_objects))
            (put_mbs, put_cpu), (get_mbs, get_cpu) = big_put_get(endpoint, args.big_mib, process.pid)
            rows.append(
                (f"{args.big_mib} MiB PUT", f"{put_mbs:,.0f} MB/s", f"{put_cpu:.2f} ms server CPU per MiB")
            )
            rows.append(
                (f"{args.big_mib} MiB GET", f"{get_mbs:,.0f} MB/s", f"{get_cpu:.2f} ms server CPU per MiB")
            )
        finally:
            process.terminate()
            process.wait(20)
    print(f"local-server benchmark (fsync {'off' if args.no_fsync else 'on'}, {os.cpu_count()} cores)")
    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"  {name:<{width}}  {value:>14}  {note}")


if __name__ == "__main__":
    main()
