"""Throughput of SDK-compatible client-side encryption, in-process, against its raw ingredients.

    /work/venv/bin/python -m bench.bench_crypto                 # 256 MiB
    /work/venv/bin/python -m bench.bench_crypto --size-mib 1024 # 1 GiB
    /work/venv/bin/python -m bench.bench_crypto --size-mib 1024 --upload   # + uploads to a local-server

Rows (MB/s = 10^6 bytes of plaintext per second, best of --runs; the file is in the page cache):
  raw AES-128-CBC        pycryptodome on an in-memory buffer, 64 KiB calls with output= (the ceiling)
  raw MD5                hashlib over the same buffer
  SDK EncryptFp          ks3sdk 1.18.0's encrypting file wrapper read in its 8192-byte blocks (reference)
  body pass 1 (hash)     EncryptedFileBody.content_md5(): read file + AES + MD5(ciphertext) + MD5(plaintext)
  body pass 1, md5 known the same with the plaintext MD5 supplied by the caller (the scan already has it)
  body pass 2 (send)     EncryptedFileBody.chunks(): read file + AES + one bytes object per 64 KiB chunk
  PUT path total         pass 1 (md5 known) + pass 2: what a single encrypted PUT costs the client CPU
  multipart parts        MultipartEncryptor.next_part (sequential hash pass) + chunks() of every part
  decrypt                ObjectDecryptor over 64 KiB chunks, verifying the plaintext MD5

With --upload, the same file is also uploaded to a `ks3sync local-server` subprocess (loopback, --no-fsync;
the server's CPU shares the machine with the client), wall time from first byte read to confirmed ETag:
  ks3sync PUT plain / encrypted              Client.put_object with FileRangeBody / EncryptedFileBody
  ks3sync multipart plain / encrypted        16 MiB parts, 4 upload threads (encrypted: parts encrypted
                                             in order by MultipartEncryptor, uploaded concurrently)
  SDK PUT plain / encrypted                  ks3sdk 1.18.0 set_contents_from_filename (local_encrypt=True)
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from Crypto.Cipher import AES

from ks3sync.crypto import EncryptedFileBody, EncryptionKey, FileSlice, MultipartEncryptor, ObjectDecryptor
from ks3sync.ks3 import Body, Client, ClientConfig, FileRangeBody, RetryPolicy

CHUNK = 64 * 1024
MB = 1_000_000


def make_file(directory: Path, size: int) -> Path:
    path = directory / "plain.bin"
    block = os.urandom(1 << 20)
    with open(path, "wb") as out:
        for _ in range(size >> 20):
            out.write(block)
    with open(path, "rb") as warm:  # into the page cache, so rows compare CPU cost, not the disk
        while warm.read(1 << 22):
            pass
    return path


def best_of(runs: int, action: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - started)
    return best


AK, SK = "BENCHCRYPTOAK", "bench-crypto-secret"


@contextmanager
def local_server(root: Path) -> Iterator[tuple[str, int]]:
    port_file = root / "port"
    env = dict(os.environ, KS3_ACCESS_KEY=AK, KS3_SECRET_KEY=SK)
    argv = [
        sys.executable,
        "-m",
        "ks3sync",
        "local-server",
        "--root",
        str(root / "data"),
        "--port",
        "0",
        "--port-file",
        str(port_file),
        "--no-fsync",
    ]
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("local-server did not start")
            time.sleep(0.05)
        port = int(port_file.read_text().strip())
        yield f"http://127.0.0.1:{port}", port
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def upload_rows(
    tmp: Path, path: Path, key: EncryptionKey, part: int, skip_sdk: bool
) -> list[tuple[str, float]]:
    size = path.stat().st_size
    key_file = tmp / "bench.key"
    key_file.write_bytes(b"bench-key-16byte")
    key_file.chmod(0o600)
    rows: list[tuple[str, float]] = []
    with local_server(tmp / "server") as (endpoint, port):
        config = ClientConfig(
            endpoint=endpoint,
            access_key=AK,
            secret_key=SK,
            timeout=300.0,
            retry=RetryPolicy(max_attempts=2, base_delay=0.1),
        )
        with Client(config) as client:
            client.create_bucket("bench-crypto")

            def timed(name: str, action: Callable[[], object]) -> None:
                started = time.perf_counter()
                action()
                rows.append((name, time.perf_counter() - started))

            def put_plain() -> None:
                client.put_object("bench-crypto", "plain", FileRangeBody(path))

            def put_encrypted() -> None:
                body = EncryptedFileBody(key, path)
                client.put_object("bench-crypto", "enc", body, metadata=body.metadata())

            def multipart(encrypted: bool) -> None:
                encryptor = MultipartEncryptor(key)
                name = "mp-enc" if encrypted else "mp-plain"
                upload_id = client.initiate_multipart(
                    "bench-crypto", name, metadata=encryptor.initiate_metadata() if encrypted else None
                )
                with ThreadPoolExecutor(4) as pool:
                    futures = []
                    for number, offset in enumerate(range(0, size, part), start=1):
                        length = min(part, size - offset)
                        body: Body
                        if encrypted:
                            body = encryptor.next_part(
                                FileSlice(str(path), offset, length), last=offset + length == size
                            )
                        else:
                            body = FileRangeBody(path, offset, length)
                        futures.append(
                            pool.submit(client.upload_part, "bench-crypto", name, upload_id, number, body)
                        )
                    results = [f.result() for f in futures]
                client.complete_multipart(
                    "bench-crypto", name, upload_id, [(r.part_number, r.etag) for r in results]
                )

            timed("upload: ks3sync PUT plain", put_plain)
            timed("upload: ks3sync PUT encrypted", put_encrypted)
            timed(f"upload: ks3sync multipart plain ({part >> 20} MiB x4)", lambda: multipart(False))
            timed(f"upload: ks3sync multipart encrypted ({part >> 20} MiB x4)", lambda: multipart(True))
        if not skip_sdk:
            from ks3.connection import Connection, PathCallingFormat

            for encrypted in (False, True):
                extra = {"local_encrypt": True, "local_key_path": str(key_file)} if encrypted else {}
                connection = Connection(
                    AK,
                    SK,
                    host="127.0.0.1",
                    port=port,
                    is_secure=False,
                    calling_format=PathCallingFormat(),
                    timeout=300,
                    **extra,
                )
                target = connection.get_bucket("bench-crypto").new_key(
                    "sdk-enc" if encrypted else "sdk-plain"
                )
                label = "encrypted" if encrypted else "plain"

                def sdk_put(target: Any = target) -> None:
                    target.set_contents_from_filename(str(path))

                timed(f"upload: SDK PUT {label}", sdk_put)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--part-mib", type=int, default=16)
    parser.add_argument("--skip-sdk", action="store_true", help="skip the (slow) SDK reference rows")
    parser.add_argument("--upload", action="store_true", help="also upload the file to a local-server")
    args = parser.parse_args(argv)
    size = args.size_mib << 20
    key = EncryptionKey(b"bench-key-16byte")
    rows: list[tuple[str, float]] = []

    with tempfile.TemporaryDirectory(prefix="bench-crypto-") as tmp:
        path = make_file(Path(tmp), size)
        buffer = bytearray(CHUNK)
        output = bytearray(CHUNK)
        sample = os.urandom(CHUNK)
        buffer[:] = sample

        def raw_aes() -> None:
            cipher = AES.new(b"bench-key-16byte", AES.MODE_CBC, iv=bytes(16))
            for _ in range(size // CHUNK):
                cipher.encrypt(buffer, output=output)

        def raw_md5() -> None:
            digest = hashlib.md5(usedforsecurity=False)
            for _ in range(size // CHUNK):
                digest.update(buffer)

        rows.append(("raw AES-128-CBC (memory)", best_of(args.runs, raw_aes)))
        rows.append(("raw MD5 (memory)", best_of(args.runs, raw_md5)))

        if not args.skip_sdk:
            try:
                from ks3.encryptFp import EncryptFp
                from ks3.encryption import Crypts
            except ImportError:
                print("ks3sdk not installed: SDK row skipped", file=sys.stderr)
            else:

                def sdk() -> None:
                    context = Crypts(b"bench-key-16byte")
                    context.action_info = "put"
                    with open(path, "rb") as handle:
                        fp = EncryptFp(handle, context, "put")
                        digest = hashlib.md5(usedforsecurity=False)
                        while block := fp.read(8192):
                            digest.update(block)

                rows.append(("SDK EncryptFp + MD5 (one pass)", best_of(1, sdk)))

        plain_md5 = hashlib.file_digest(open(path, "rb"), "md5").digest()

        def pass1() -> None:
            EncryptedFileBody(key, path).content_md5()

        def pass1_known() -> None:
            EncryptedFileBody(key, path, plaintext_md5=plain_md5).content_md5()

        def pass2() -> None:
            for _ in EncryptedFileBody(key, path).chunks():
                pass

        def put_path() -> None:
            body = EncryptedFileBody(key, path, plaintext_md5=plain_md5)
            body.content_md5()
            for _ in body.chunks():
                pass

        part = args.part_mib << 20

        def multipart() -> None:
            encryptor = MultipartEncryptor(key)
            for offset in range(0, size, part):
                length = min(part, size - offset)
                encrypted = encryptor.next_part(
                    FileSlice(str(path), offset, length), last=offset + length == size
                )
                for _ in encrypted.chunks():
                    pass

        rows.append(("body pass 1: hash (2x MD5)", best_of(args.runs, pass1)))
        rows.append(("body pass 1: hash, plaintext MD5 known", best_of(args.runs, pass1_known)))
        rows.append(("body pass 2: send (chunks)", best_of(args.runs, pass2)))
        rows.append(("PUT path total (pass 1 known + pass 2)", best_of(args.runs, put_path)))
        rows.append((f"multipart, {args.part_mib} MiB parts (both passes)", best_of(args.runs, multipart)))

        body = EncryptedFileBody(key, path)
        metadata = body.metadata()
        cipher_path = Path(tmp) / "cipher.bin"
        with open(cipher_path, "wb") as out:
            for chunk in body.chunks():
                out.write(chunk)

        def decrypt() -> None:
            decryptor = ObjectDecryptor(key, metadata)
            with open(cipher_path, "rb", buffering=0) as handle:
                reader = io.BufferedReader(handle, CHUNK)
                while chunk := reader.read(CHUNK):
                    decryptor.update(chunk)
            decryptor.finish()

        rows.append(("decrypt + verify MD5", best_of(args.runs, decrypt)))
        cipher_path.unlink()
        if args.upload:
            rows.extend(upload_rows(Path(tmp), path, key, args.part_mib << 20, args.skip_sdk))

    aes = rows[0][1]
    print(
        f"\nclient-side encryption, {args.size_mib} MiB, best of {args.runs}, CPU: {os.cpu_count()} cores shared"
    )
    print(f"{'what':48} {'MB/s':>8} {'x raw AES time':>15}")
    for name, seconds in rows:
        print(f"{name:48} {size / seconds / MB:8.0f} {seconds / aes:15.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
