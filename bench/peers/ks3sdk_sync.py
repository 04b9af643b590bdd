"""A folder sync written with the official `ks3sdk`, the way its guide shows (the "SDK user" peer).

Owns: what a careful user of ks3sdk 1.18.0 would write, following `ks3-python-sdk-guide.txt`:
  * connection: `Connection(ak, sk, host, port, is_secure=False, domain_mode=False)` with path-style
    addressing (`PathCallingFormat`, required on loopback, protocol notes §1);
  * small files: one serial `Key.set_contents_from_filename` each (guide §5.4);
  * files >= 100 MiB: the guide's threaded multipart example (5 threads, 100 MiB parts, abort on
    failure); with local encryption the guide's serial example 2 (50 MiB parts, `is_last_part`), since
    the encrypted CBC chain forbids parallel parts;
  * "already in sync" = same key and size and ETag == MD5 of the local file (what a script can check
    with one listing); with encryption the ETag is of ciphertext, so an existing key is kept;
  * `--delete`: `Bucket.delete_key` for each remote key with no local file (guide §5.5);
  * restore: list, then `Key.get_contents_to_filename` for each key (guide §5.3).
The guide's `threadpool` / `FileChunkIO` helpers are not installed here: `concurrent.futures` and the
small `FileChunk` below play their roles. Must not import: ks3sync.

Usage: python ks3sdk_sync.py up SRC BUCKET PREFIX --endpoint http://127.0.0.1:PORT [--delete] [--encrypt-key F]
       python ks3sdk_sync.py down BUCKET PREFIX DST --endpoint URL [--encrypt-key F]
Credentials: env KS3_ACCESS_KEY / KS3_SECRET_KEY.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import math
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

from ks3.connection import Connection, PathCallingFormat

MULTIPART_THRESHOLD = 100 * 1024 * 1024
THREADED_PART = 104857600  # the guide's threaded example
ENCRYPTED_PART = 52428800  # the guide's encrypted example 2
THREADS = 5
RETRIES = 3


class FileChunk(io.FileIO):
    """A read-only window [offset, offset+length) of a file that looks like a whole file (FileChunkIO)."""

    def __init__(self, path: str, offset: int, length: int) -> None:
        super().__init__(path, "r")
        self._start = offset
        self._len = length
        super().seek(offset)

    def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self.tell(), os.SEEK_END: self._len}[whence]
        target = min(max(base + pos, 0), self._len)
        super().seek(self._start + target)
        return target

    def tell(self) -> int:
        return super().tell() - self._start

    def read(self, size: int | None = -1) -> bytes:
        left = self._len - self.tell()
        n = left if size is None or size < 0 else min(size, left)
        return super().read(n) if n > 0 else b""

    def readall(self) -> bytes:
        return self.read(-1)


def connect(endpoint: str, encrypt_key: str | None) -> Connection:
    url = urlsplit(endpoint)
    return Connection(
        os.environ["KS3_ACCESS_KEY"],
        os.environ["KS3_SECRET_KEY"],
        host=url.hostname,
        port=url.port or 80,
        is_secure=False,
        domain_mode=False,
        calling_format=PathCallingFormat(),
        local_encrypt=bool(encrypt_key),
        local_key_path=encrypt_key or "",
    )


def md5_of(path: Path) -> str:
    h = hashlib.md5()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def local_files(root: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            p = Path(dirpath) / name
            out[p.relative_to(root).as_posix()] = p
    return out


def remote_objects(bucket, prefix: str) -> dict[str, tuple[int, str]]:
    out: dict[str, tuple[int, str]] = {}
    # delimiter='' lists everything (the default '/' stops at the first level).
    for k in bucket.list(prefix=prefix, delimiter=""):
        out[k.name] = (int(k.size), (k.etag or "").strip('"'))
    return out


def upload_part_task(mp, path: Path, offset: int, size: int, part_num: int) -> None:
    for attempt in range(RETRIES):
        try:
            with FileChunk(str(path), offset, size) as fp:
                mp.upload_part_from_file(fp, part_num=part_num)
            return
        except Exception:  # the guide retries any failure of a part, then gives up
            if attempt + 1 >= RETRIES:
                raise


def multipart_threaded(bucket, key: str, path: Path) -> None:
    size = path.stat().st_size
    mp = bucket.initiate_multipart_upload(key)
    try:
        count = int(math.ceil(size / float(THREADED_PART)))
        with ThreadPoolExecutor(THREADS) as pool:
            futures = [
                pool.submit(
                    upload_part_task,
                    mp,
                    path,
                    i * THREADED_PART,
                    min(THREADED_PART, size - i * THREADED_PART),
                    i + 1,
                )
                for i in range(count)
            ]
            for f in futures:
                f.result()
        mp.complete_upload()
    except BaseException:
        mp.cancel_upload()
        raise


def multipart_encrypted(bucket, key: str, path: Path) -> None:
    size = path.stat().st_size
    mp = bucket.initiate_multipart_upload(key)
    try:
        count = int(math.ceil(size / float(ENCRYPTED_PART)))
        for i in range(count):
            offset = ENCRYPTED_PART * i
            with FileChunk(str(path), offset, min(ENCRYPTED_PART, size - offset)) as fp:
                mp.upload_part_from_file(fp, part_num=i + 1, is_last_part=(i + 1 == count))
        mp.complete_upload()
    except BaseException:
        mp.cancel_upload()
        raise


def up(args: argparse.Namespace) -> int:
    conn = connect(args.endpoint, args.encrypt_key)
    bucket = conn.get_bucket(args.bucket)
    prefix = args.prefix.strip("/") + "/" if args.prefix.strip("/") else ""
    local = local_files(Path(args.src))
    remote = remote_objects(bucket, prefix)
    for rel in sorted(local):
        path, key = local[rel], prefix + rel
        have = remote.get(key)
        if have is not None:
            if args.encrypt_key:
                continue
            if have[0] == path.stat().st_size and have[1] == md5_of(path):
                continue
        if path.stat().st_size >= MULTIPART_THRESHOLD:
            if args.encrypt_key:
                multipart_encrypted(bucket, key, path)
            else:
                multipart_threaded(bucket, key, path)
        else:
            bucket.new_key(key).set_contents_from_filename(str(path))
    if args.delete:
        wanted = {prefix + rel for rel in local}
        for key in sorted(set(remote) - wanted):
            bucket.delete_key(key)
    return 0


def down(args: argparse.Namespace) -> int:
    conn = connect(args.endpoint, args.encrypt_key)
    bucket = conn.get_bucket(args.bucket)
    prefix = args.prefix.strip("/") + "/" if args.prefix.strip("/") else ""
    dst = Path(args.dst)
    for key in sorted(remote_objects(bucket, prefix)):
        target = dst / key[len(prefix) :]
        target.parent.mkdir(parents=True, exist_ok=True)
        # Encrypted GETs need the HEAD (validate=True) for the IV and size (protocol notes §12).
        k = bucket.get_key(key, validate=bool(args.encrypt_key))
        k.get_contents_to_filename(str(target))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    u = sub.add_parser("up")
    u.add_argument("src")
    u.add_argument("bucket")
    u.add_argument("prefix")
    u.add_argument("--delete", action="store_true")
    d = sub.add_parser("down")
    d.add_argument("bucket")
    d.add_argument("prefix")
    d.add_argument("dst")
    for p in (u, d):
        p.add_argument("--endpoint", required=True)
        p.add_argument("--encrypt-key")
    args = ap.parse_args(argv)
    return up(args) if args.cmd == "up" else down(args)


if __name__ == "__main__":
    sys.exit(main())
