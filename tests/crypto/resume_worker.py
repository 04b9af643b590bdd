"""Child process for test_resume.py: starts an encrypted multipart upload, uploads every part
except the ones it is told to hold back (parts in flight when the process dies), records each confirmed
part as the journal would (IV once, then part number, ETag and chain block), and then waits to be killed.

    python resume_worker.py ENDPOINT BUCKET OBJECT FILE KEYFILE PART_SIZE RECORD HOLD[,HOLD...]
Credentials come from KS3_ACCESS_KEY / KS3_SECRET_KEY.
"""

from __future__ import annotations

import json
import os
import sys
import time

from ks3sync.crypto import EncryptionKey, FileSlice, MultipartEncryptor
from ks3sync.ks3 import Client, ClientConfig, RetryPolicy


def save(record_path: str, record: dict[str, object]) -> None:
    temporary = record_path + ".tmp"
    with open(temporary, "w", encoding="utf-8") as out:
        json.dump(record, out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, record_path)


def main() -> None:
    endpoint, bucket, name, path, key_file, part_size_text, record_path, hold_text = sys.argv[1:9]
    part_size = int(part_size_text)
    hold = {int(n) for n in hold_text.split(",") if n}
    key = EncryptionKey.load(key_file)
    config = ClientConfig(
        endpoint=endpoint,
        access_key=os.environ["KS3_ACCESS_KEY"],
        secret_key=os.environ["KS3_SECRET_KEY"],
        retry=RetryPolicy(max_attempts=3, base_delay=0.01),
    )
    size = os.stat(path).st_size
    with Client(config) as client:
        encryptor = MultipartEncryptor(key)
        upload_id = client.initiate_multipart(bucket, name, metadata=encryptor.initiate_metadata())
        record: dict[str, object] = {
            "upload_id": upload_id,
            "iv": encryptor.iv.hex(),
            "parts": {},
            "ready": False,
        }
        save(record_path, record)  # write-ahead: the upload is known before any part is sent
        parts: dict[str, object] = {}
        for offset in range(0, size, part_size):
            length = min(part_size, size - offset)
            part = encryptor.next_part(FileSlice(path, offset, length), last=offset + length == size)
            if part.part_number in hold:
                continue
            result = client.upload_part(
                bucket, name, upload_id, part.part_number, part, headers=part.headers()
            )
            parts[str(part.part_number)] = {"etag": result.etag, "chain_block": part.chain_block.hex()}
            record["parts"] = parts
            save(record_path, record)
        record["ready"] = True
        save(record_path, record)
    time.sleep(600)  # "in the middle of the upload": the test kills us with SIGKILL


if __name__ == "__main__":
    main()
