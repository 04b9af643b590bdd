"""Objects written by our client are what the official SDK reads, and the other way round, on the
same local server (the SDK is the oracle for byte/metadata compatibility)."""

from __future__ import annotations

import hashlib
import io

import pytest

from ks3sync.ks3 import Client, ClientConfig, ObjectSummary, crc64

pytest.importorskip("ks3.connection")

KEY = "interop dir/文件 a+b ~(1).txt"


@pytest.fixture
def client(local_server):
    with Client(ClientConfig(local_server.endpoint, local_server.access_key, local_server.secret_key)) as c:
        yield c


def test_sdk_reads_what_we_wrote(client, ks3sdk_conn, bucket):
    data = b"written by ks3sync\n" * 100
    client.put_object(bucket, KEY, data, content_type="text/plain", metadata={"Origin": "ks3sync"})
    key = ks3sdk_conn.get_bucket(bucket).get_key(KEY, validate=True)
    assert key is not None
    assert key.get_contents_as_string() == data
    assert key.user_meta.get("x-kss-meta-origin") == "ks3sync"
    assert key.content_type == "text/plain"


def test_we_read_what_the_sdk_wrote(client, ks3sdk_conn, bucket):
    sdk_bucket = ks3sdk_conn.get_bucket(bucket)
    data = bytes(range(256)) * 2000  # 512,000 bytes: SDK multipart with 2 parts of 256,000
    upload = sdk_bucket.initiate_multipart_upload(KEY)
    upload.upload_part_from_file(io.BytesIO(data[:256_000]), part_num=1)
    upload.upload_part_from_file(io.BytesIO(data[256_000:]), part_num=2)
    upload.complete_upload()
    info = client.head_object(bucket, KEY)
    assert info.size == len(data) and info.crc64 == crc64(data)
    with client.get_object(bucket, KEY) as response:
        assert hashlib.md5(response.read()).digest() == hashlib.md5(data).digest()
    assert [o.key for o in client.iter_objects(bucket) if isinstance(o, ObjectSummary)] == [KEY]
