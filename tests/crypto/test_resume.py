"""An encrypted multipart upload whose process is killed (SIGKILL) resumes in another process from the
recorded IV and per-part chain blocks, and the result decrypts with the official SDK and with ks3sync.

The recording here is a JSON file standing in for the journal's ``uploads``/``parts`` rows; what is
tested is that (key file, IV, chain blocks of finished parts) is all a new process needs, including when
parts finished out of order (part 2 was still in flight while 3 and 4 were confirmed).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ks3.connection import Connection, PathCallingFormat

from ks3sync.crypto import EncryptionKey, FileSlice, MultipartEncryptor, ObjectDecryptor
from ks3sync.ks3 import Client, ClientConfig, RetryPolicy

PART = 100 * 1024
WORKER = Path(__file__).with_name("resume_worker.py")


def wait_for_ready(record: Path, process: subprocess.Popen[bytes], timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"worker exited early: {process.stderr.read().decode() if process.stderr else ''}"
            )
        if record.exists():
            state: dict[str, Any] = json.loads(record.read_text())
            if state["ready"]:
                return state
        time.sleep(0.05)
    raise AssertionError("worker did not reach the kill point in time")


def test_killed_encrypted_multipart_upload_resumes(local_server: Any, bucket: str, tmp_path: Path) -> None:
    key_file = tmp_path / "k.key"
    EncryptionKey.generate().write_new_file(key_file)
    data = os.urandom(5 * PART + 1234)  # 6 parts
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    record = tmp_path / "journal.json"
    env = dict(os.environ, KS3_ACCESS_KEY=local_server.access_key, KS3_SECRET_KEY=local_server.secret_key)
    worker = subprocess.Popen(
        [
            sys.executable,
            str(WORKER),
            local_server.endpoint,
            bucket,
            "big",
            str(source),
            str(key_file),
            str(PART),
            str(record),
            "2,5",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        state = wait_for_ready(record, worker)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        if worker.stderr:
            worker.stderr.close()
    assert sorted(state["parts"]) == ["1", "3", "4", "6"]

    # A new process (this one) resumes with only the key file and the record.
    key = EncryptionKey.load(key_file)
    config = ClientConfig(
        endpoint=local_server.endpoint,
        access_key=local_server.access_key,
        secret_key=local_server.secret_key,
        retry=RetryPolicy(max_attempts=3, base_delay=0.01),
    )
    done = {int(n): part for n, part in state["parts"].items()}
    contiguous = 0
    while contiguous + 1 in done:
        contiguous += 1
    with Client(config) as client:
        listed = {p.part_number: p.etag for p in client.iter_parts(bucket, "big", state["upload_id"])}
        assert listed == {n: part["etag"] for n, part in done.items()}
        encryptor = MultipartEncryptor.resume(
            key,
            bytes.fromhex(state["iv"]),
            next_part_number=contiguous + 1,
            chain_block=bytes.fromhex(done[contiguous]["chain_block"]),
        )
        etags = {n: part["etag"] for n, part in done.items()}
        total_parts = -(-len(data) // PART)
        for number in range(contiguous + 1, total_parts + 1):
            if number in done:
                encryptor.skip_part(bytes.fromhex(done[number]["chain_block"]))
                continue
            offset = (number - 1) * PART
            length = min(PART, len(data) - offset)
            part = encryptor.next_part(FileSlice(str(source), offset, length), last=number == total_parts)
            assert part.part_number == number
            etags[number] = client.upload_part(
                bucket, "big", state["upload_id"], number, part, headers=part.headers()
            ).etag
        client.complete_multipart(bucket, "big", state["upload_id"], sorted(etags.items()))

        info = client.head_object(bucket, "big")
        decryptor = ObjectDecryptor(key, info.metadata, ciphertext_length=info.size)
        with client.get_object(bucket, "big") as response:
            plain = (
                b"".join(decryptor.update(chunk) for chunk in response.iter_bytes(65536)) + decryptor.finish()
            )
        assert plain == data

    sdk = Connection(
        local_server.access_key,
        local_server.secret_key,
        host=local_server.host,
        port=local_server.port,
        is_secure=False,
        calling_format=PathCallingFormat(),
        local_encrypt=True,
        local_key_path=str(key_file),
    )
    assert sdk.get_bucket(bucket).get_key("big", validate=True).get_contents_as_string() == data
