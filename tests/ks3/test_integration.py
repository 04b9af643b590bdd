"""Every client operation against the real ``ks3sync local-server`` over loopback HTTP.

Fixtures come from tests/conftest.py (owned by the local-server engineer): ``local_server`` (session;
``.endpoint``, ``.access_key``, ``.secret_key``, ``.request_log``, ``.requests()``), ``server_factory``
and ``bucket`` (a fresh bucket per test).
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ks3sync.ks3 import (
    BucketAlreadyExists,
    BucketNotEmpty,
    Client,
    ClientConfig,
    FileRangeBody,
    KS3AuthError,
    KS3ServiceError,
    NoSuchBucket,
    NoSuchKey,
    NoSuchUpload,
    ObjectSummary,
    RetryPolicy,
    SourceChangedError,
    combine_parts,
    crc64,
)
from tests.serverkit import client_config

# Keys that exercise every encoding rule: spaces, '+', non-ASCII, '~()', empty path segments (the
# '//' -> '/%2F' rule), a leading '/', literal '%', and characters that mean something in a URL.
TRICKY_KEYS = [
    "plain.txt",
    "dir/sub dir/文件 ~(1).txt",
    "a+b c+d.txt",
    "/leading//slashes",
    "a//b",
    "a///b",
    "trailing//",
    "100% literal %2F and %20",
    "q?x=1&y=2#frag;semi,comma=eq",
    "star*quote'bang!dollar$at@colon:",
    "control\x01\ttab\nnewline\rcr\x7f",
    # Dot segments: the client sends the path as encoded, never normalised (httpx and the SDK drop them).
    "a/../b",
    "./x/./y",
    "..",
    "d/.",
]

PART = 100 * 1024  # KS3's minimum non-last part size


def make_client(server, **overrides) -> Client:
    return Client(client_config(server, **overrides))


@pytest.fixture
def client(local_server):
    with make_client(local_server) as c:
        yield c


def payload(size: int, seed: int = 0) -> bytes:
    return bytes((i * 31 + seed) % 251 for i in range(size))


# --- service / bucket ----------------------------------------------------------------------------


def test_list_buckets_shows_the_test_bucket(client, bucket):
    buckets = {b.name: b for b in client.list_buckets()}
    assert bucket in buckets
    assert buckets[bucket].creation_date is not None


def test_bucket_lifecycle(client):
    name = f"ks3-client-lifecycle-{os.getpid()}-{time.monotonic_ns() % 100000}"
    assert client.head_bucket(name) is False
    client.create_bucket(name)
    try:
        assert client.head_bucket(name) is True
        with pytest.raises(BucketAlreadyExists):
            client.create_bucket(name)
        client.put_object(name, "x", b"x")
        with pytest.raises(BucketNotEmpty):
            client.delete_bucket(name)
        client.delete_object(name, "x")
    finally:
        client.delete_bucket(name)
    assert client.head_bucket(name) is False
    with pytest.raises(NoSuchBucket):
        client.delete_bucket(name)


def test_create_bucket_with_acl_and_bucket_acl_roundtrip(client):
    name = f"ks3-client-acl-{os.getpid()}-{time.monotonic_ns() % 100000}"
    client.create_bucket(name, acl="public-read")
    try:
        assert client.get_bucket_acl(name) == "public-read"
        client.put_bucket_acl(name, "public-read-write")
        assert client.get_bucket_acl(name) == "public-read-write"
        client.put_bucket_acl(name, "private")
        assert client.get_bucket_acl(name) == "private"
    finally:
        client.delete_bucket(name)


def test_operations_on_missing_bucket_raise_no_such_bucket(client):
    with pytest.raises(NoSuchBucket):
        client.put_object("ks3-client-no-such-bucket", "k", b"x")
    with pytest.raises(NoSuchBucket):
        client.list_objects("ks3-client-no-such-bucket")


def test_wrong_secret_is_an_auth_error_without_the_secret(local_server, bucket):
    wrong = "definitely-wrong-secret-123"
    with make_client(local_server, secret_key=wrong) as bad, pytest.raises(KS3AuthError) as info:
        bad.put_object(bucket, "k", b"x")
    assert info.value.code == "SignatureDoesNotMatch"
    assert wrong not in str(info.value) and local_server.secret_key not in str(info.value)


# --- objects -------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", TRICKY_KEYS)
def test_put_head_get_delete_roundtrip_for_tricky_keys(client, bucket, key):
    data = payload(1000, seed=len(key))
    put = client.put_object(
        bucket, key, data, content_type="text/plain", metadata={"Author": "alice", "x-y": "1"}
    )
    assert put.etag == hashlib.md5(data).hexdigest()
    assert put.crc64 == crc64(data)
    assert put.request_id

    info = client.head_object(bucket, key)
    assert (info.key, info.size, info.etag, info.crc64) == (key, 1000, put.etag, crc64(data))
    assert info.content_type == "text/plain"
    assert info.metadata == {"author": "alice", "x-y": "1"}
    assert info.storage_class == "STANDARD"
    assert info.last_modified is not None

    with client.get_object(bucket, key) as response:
        assert response.status == 200
        assert response.read() == data

    listed = [o.key for o in client.iter_objects(bucket) if isinstance(o, ObjectSummary)]
    assert listed == [key]

    client.delete_object(bucket, key)
    with pytest.raises(NoSuchKey):
        client.head_object(bucket, key)
    with pytest.raises(NoSuchKey):
        client.get_object(bucket, key)
    client.delete_object(bucket, key)  # deleting a missing key is not an error


def test_put_from_file_range_streams_exact_range(client, bucket, tmp_path):
    path = tmp_path / "big.bin"
    data = os.urandom(3 * 1024 * 1024 + 17)
    path.write_bytes(data)
    result = client.put_object(bucket, "range.bin", FileRangeBody(path, offset=1000, length=2 * 1024 * 1024))
    expected = data[1000 : 1000 + 2 * 1024 * 1024]
    assert result.etag == hashlib.md5(expected).hexdigest() and result.crc64 == crc64(expected)
    target = tmp_path / "down.bin"
    info = client.download_to_file(bucket, "range.bin", target)
    assert target.read_bytes() == expected and info.size == len(expected)


def test_put_empty_object(client, bucket):
    result = client.put_object(bucket, "empty", b"")
    assert result.etag == hashlib.md5(b"").hexdigest()
    assert client.head_object(bucket, "empty").size == 0
    with client.get_object(bucket, "empty") as response:
        assert response.read() == b""


def test_storage_class_acl_and_extra_headers(client, bucket):
    client.put_object(
        bucket,
        "ia.txt",
        b"hello",
        storage_class="STANDARD_IA",
        acl="public-read",
        headers={"Cache-Control": "max-age=60", "Content-Disposition": "attachment"},
    )
    info = client.head_object(bucket, "ia.txt")
    assert info.storage_class == "STANDARD_IA"
    assert info.headers["cache-control"] == "max-age=60"
    assert info.headers["content-disposition"] == "attachment"
    assert client.get_object_acl(bucket, "ia.txt") == "public-read"
    client.put_object_acl(bucket, "ia.txt", "private")
    assert client.get_object_acl(bucket, "ia.txt") == "private"


def test_ranged_get_and_response_header_overrides(client, bucket, tmp_path):
    data = payload(10_000)
    client.put_object(bucket, "r.bin", data)
    with client.get_object(bucket, "r.bin", byte_range=(100, 199)) as response:
        assert response.status == 206
        assert response.info.size == 10_000
        assert response.read() == data[100:200]
    with client.get_object(bucket, "r.bin", byte_range=(9_990, None)) as response:
        assert response.read() == data[9_990:]
    overrides = {
        "response-content-type": "text/csv",
        "response-content-disposition": "attachment; filename=a b.csv",
    }
    with client.get_object(bucket, "r.bin", response_headers=overrides) as response:
        assert response.info.content_type == "text/csv"
        assert response.info.headers["content-disposition"] == "attachment; filename=a b.csv"
        assert response.read() == data
    target = tmp_path / "part"
    client.download_to_file(bucket, "r.bin", target, byte_range=(5, 9))
    assert target.read_bytes() == data[5:10]


def test_unsatisfiable_range_is_a_service_error(client, bucket):
    client.put_object(bucket, "small", b"abc")
    with pytest.raises(KS3ServiceError) as info:
        client.get_object(bucket, "small", byte_range=(10, 20))
    assert info.value.status == 416


def test_get_streams_in_chunks(client, bucket):
    data = os.urandom(5 * 1024 * 1024)
    client.put_object(bucket, "stream.bin", data)
    digest = hashlib.md5()
    chunks = 0
    with client.get_object(bucket, "stream.bin") as response:
        for chunk in response.iter_bytes(64 * 1024):
            assert len(chunk) <= 64 * 1024
            digest.update(chunk)
            chunks += 1
    assert digest.hexdigest() == hashlib.md5(data).hexdigest() and chunks >= 80


def test_copy_object_same_and_other_bucket(client, bucket):
    other = f"{bucket[:40]}-dst"
    client.create_bucket(other)
    try:
        src_key = "src dir/a+b c~(1).txt"
        data = payload(5000)
        client.put_object(bucket, src_key, data, content_type="text/plain", metadata={"k": "v"})

        same = client.copy_object(bucket, src_key, bucket, "copy/keep.txt")
        assert same.etag == hashlib.md5(data).hexdigest() and same.last_modified is not None
        kept = client.head_object(bucket, "copy/keep.txt")
        assert (kept.content_type, kept.metadata, kept.crc64) == ("text/plain", {"k": "v"}, crc64(data))

        replaced = client.copy_object(
            bucket,
            src_key,
            other,
            "x//y z+",
            metadata_directive="REPLACE",
            metadata={"new": "1"},
            content_type="application/json",
            storage_class="STANDARD_IA",
        )
        assert replaced.etag == hashlib.md5(data).hexdigest()
        info = client.head_object(other, "x//y z+")
        assert (info.content_type, info.metadata, info.storage_class) == (
            "application/json",
            {"new": "1"},
            "STANDARD_IA",
        )
        with client.get_object(other, "x//y z+") as response:
            assert response.read() == data

        # metadata / storage class change in place
        client.copy_object(
            bucket, src_key, bucket, src_key, metadata_directive="REPLACE", metadata={"v": "2"}
        )
        assert client.head_object(bucket, src_key).metadata == {"v": "2"}

        with pytest.raises(NoSuchKey):
            client.copy_object(bucket, "missing", bucket, "dst")
        client.delete_objects(other, ["x//y z+"])
    finally:
        client.delete_bucket(other)


def test_copy_rejects_metadata_with_copy_directive(client, bucket):
    with pytest.raises(ValueError, match="REPLACE"):
        client.copy_object(bucket, "a", bucket, "b", metadata={"x": "y"})


def test_delete_objects_batches_of_1000(client, bucket, local_server):
    keys = [f"many/{i:05d} é+ {i}" for i in range(1005)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: client.put_object(bucket, k, k.encode()), keys))
    result = client.delete_objects(bucket, keys + ["many/never-existed"])
    assert sorted(result.deleted) == sorted(keys + ["many/never-existed"])
    assert result.errors == []
    assert list(client.iter_objects(bucket, prefix="many/")) == []


def test_delete_objects_with_keys_xml_cannot_carry(client, bucket):
    keys = ["cr\rkey", "ctl\x01key", "plain key", "lf\nkey"]
    for key in keys:
        client.put_object(bucket, key, b"x")
    result = client.delete_objects(bucket, keys)
    assert sorted(result.deleted) == sorted(keys) and result.errors == []
    assert list(client.iter_objects(bucket)) == []


def test_delete_objects_quiet_returns_no_deleted_entries(client, bucket):
    client.put_object(bucket, "q1", b"1")
    result = client.delete_objects(bucket, ["q1", "q2"], quiet=True)
    assert result.deleted == [] and result.errors == []
    with pytest.raises(NoSuchKey):
        client.head_object(bucket, "q1")


def test_list_objects_pages_prefixes_and_markers(client, bucket):
    keys = sorted(
        ["a.txt", "b/1.txt", "b/2.txt", "b/c/3.txt", "d e/4.txt", "d e/5+.txt", "f", "文/6", "z%20/7"],
        key=lambda k: k.encode(),
    )
    for key in keys:
        client.put_object(bucket, key, key.encode())

    everything = list(client.iter_objects(bucket, max_keys=2))
    assert [o.key for o in everything if isinstance(o, ObjectSummary)] == keys
    assert all(o.size == len(o.key.encode()) for o in everything if isinstance(o, ObjectSummary))

    top = list(client.iter_objects(bucket, delimiter="/", max_keys=2))
    names = [o if isinstance(o, str) else o.key for o in top]
    assert names == ["a.txt", "b/", "d e/", "f", "z%20/", "文/"]

    page = client.list_objects(bucket, prefix="b/", delimiter="/", max_keys=10)
    assert [o.key for o in page.objects] == ["b/1.txt", "b/2.txt"]
    assert page.common_prefixes == ["b/c/"] and not page.is_truncated

    first = client.list_objects(bucket, max_keys=3)
    assert first.is_truncated and first.next_marker == keys[2]
    rest = client.list_objects(bucket, marker=first.next_marker)
    assert [o.key for o in rest.objects] == keys[3:]

    after = [
        o.key for o in client.iter_objects(bucket, start_after="d e/4.txt") if isinstance(o, ObjectSummary)
    ]
    assert after == keys[keys.index("d e/4.txt") + 1 :]


def test_restore_archived_object(client, bucket):
    client.put_object(bucket, "cold.bin", b"frozen", storage_class="ARCHIVE")
    status = client.restore_object(bucket, "cold.bin", days=2)
    assert status == 202
    info = client.head_object(bucket, "cold.bin")
    assert info.storage_class == "ARCHIVE"
    assert info.restore is not None and "ongoing-request" in info.restore


def test_restore_of_standard_object_is_rejected(client, bucket):
    client.put_object(bucket, "warm.bin", b"x")
    with pytest.raises(KS3ServiceError) as info:
        client.restore_object(bucket, "warm.bin")
    assert info.value.status in (400, 403)


# --- multipart -----------------------------------------------------------------------------------


def test_multipart_upload_list_parts_complete(client, bucket, tmp_path):
    key = "big dir/multi part+file.bin"
    path = tmp_path / "src.bin"
    sizes = [PART, PART, PART + 1, 12_345]
    data = os.urandom(sum(sizes))
    path.write_bytes(data)

    upload_id = client.initiate_multipart(
        bucket, key, content_type="application/x-test", metadata={"Owner": "bob"}
    )
    assert any(u.upload_id == upload_id and u.key == key for u in client.iter_multipart_uploads(bucket))

    results = []
    offset = 0
    for number, size in enumerate(sizes, start=1):
        body = FileRangeBody(path, offset=offset, length=size)
        results.append(client.upload_part(bucket, key, upload_id, number, body))
        offset += size
    assert [r.size for r in results] == sizes
    assert all(r.crc64 is not None for r in results)

    parts = list(client.iter_parts(bucket, key, upload_id, max_parts=2))  # forces paging
    assert [(p.part_number, p.etag, p.size, p.crc64) for p in parts] == [
        (r.part_number, r.etag, r.size, r.crc64) for r in results
    ]
    assert [p.part_number for p in client.iter_parts(bucket, key, upload_id)] == [1, 2, 3, 4]

    expected_crc = combine_parts([(r.crc64 or 0, r.size) for r in results])
    assert expected_crc == crc64(data)
    done = client.complete_multipart(
        bucket, key, upload_id, [(r.part_number, r.etag) for r in results], expected_crc64=expected_crc
    )
    assert done.crc64 == crc64(data)
    assert done.etag.endswith("-4")

    info = client.head_object(bucket, key)
    assert (info.size, info.crc64, info.etag) == (len(data), crc64(data), done.etag)
    assert info.metadata == {"owner": "bob"} and info.content_type == "application/x-test"
    target = tmp_path / "back.bin"
    client.download_to_file(bucket, key, target)
    assert target.read_bytes() == data
    assert all(u.upload_id != upload_id for u in client.iter_multipart_uploads(bucket))

    # local-server answers a repeated Complete of the same parts like the first (S3 does; KS3 documents
    # NoSuchUpload, which the client's retry handles by HEADing the object), another part list never
    again = client.complete_multipart(bucket, key, upload_id, [(r.part_number, r.etag) for r in results])
    assert (again.etag, again.crc64) == (done.etag, done.crc64)
    with pytest.raises(NoSuchUpload):
        client.complete_multipart(bucket, key, upload_id, [(r.part_number, r.etag) for r in results[:2]])


def test_multipart_abort_and_list_uploads_paging(client, bucket):
    ids = {client.initiate_multipart(bucket, f"up/{i} x") for i in range(5)}
    other = client.initiate_multipart(bucket, "elsewhere")
    listed = list(client.iter_multipart_uploads(bucket, prefix="up/", max_uploads=2))
    assert {u.upload_id for u in listed} == ids
    assert all(u.initiated is not None for u in listed)
    for u in listed:
        client.abort_multipart(bucket, u.key, u.upload_id)
    assert [u.upload_id for u in client.iter_multipart_uploads(bucket)] == [other]
    client.abort_multipart(bucket, "elsewhere", other)
    with pytest.raises(NoSuchUpload):
        client.abort_multipart(bucket, "elsewhere", other)
    with pytest.raises(NoSuchUpload):
        client.upload_part(bucket, "elsewhere", other, 1, b"x")


def test_upload_part_copy(client, bucket):
    src = os.urandom(3 * PART)
    client.put_object(bucket, "copy src+1.bin", src)
    upload_id = client.initiate_multipart(bucket, "assembled")
    first = client.upload_part_copy(
        bucket, "assembled", upload_id, 1, bucket, "copy src+1.bin", (0, 2 * PART - 1)
    )
    second = client.upload_part_copy(
        bucket, "assembled", upload_id, 2, bucket, "copy src+1.bin", (2 * PART, 3 * PART - 1)
    )
    whole = client.upload_part_copy(bucket, "assembled", upload_id, 3, bucket, "copy src+1.bin")
    tail = client.upload_part(bucket, "assembled", upload_id, 4, b"tail")
    assert (first.size, second.size, whole.size) == (2 * PART, PART, 3 * PART)
    assert first.etag == hashlib.md5(src[: 2 * PART]).hexdigest()
    assert second.crc64 == crc64(src[2 * PART :])
    expected = src + src + b"tail"
    parts = [first, second, whole, tail]
    assert all(p.crc64 is not None for p in parts)
    crc = combine_parts([(p.crc64 or 0, p.size) for p in parts])
    done = client.complete_multipart(
        bucket, "assembled", upload_id, [(p.part_number, p.etag) for p in parts], expected_crc64=crc
    )
    assert done.crc64 == crc64(expected)
    with client.get_object(bucket, "assembled") as response:
        assert response.read() == expected


def test_complete_with_wrong_etag_is_rejected(client, bucket):
    upload_id = client.initiate_multipart(bucket, "bad")
    client.upload_part(bucket, "bad", upload_id, 1, b"only part")
    with pytest.raises(KS3ServiceError) as info:
        client.complete_multipart(bucket, "bad", upload_id, [(1, "0" * 32)])
    assert info.value.code == "InvalidPart"
    client.abort_multipart(bucket, "bad", upload_id)


# --- presigned URLs ------------------------------------------------------------------------------


def test_presigned_get_and_put(client, bucket):
    key = "pre signed/文+.txt"
    put_url = client.presign("PUT", bucket, key, expires_in=300, headers={"Content-Type": "text/plain"})
    response = httpx.put(put_url, content=b"via url", headers={"Content-Type": "text/plain"})
    assert response.status_code == 200, response.text
    get_url = client.presign(
        "GET",
        bucket,
        key,
        expires_at=int(time.time()) + 300,
        params={"response-content-disposition": "attachment; filename=x y.txt"},
    )
    response = httpx.get(get_url)
    assert response.status_code == 200 and response.content == b"via url"
    assert response.headers["content-disposition"] == "attachment; filename=x y.txt"
    assert client.head_object(bucket, key).content_type == "text/plain"


def test_presigned_url_expires(client, bucket):
    client.put_object(bucket, "old", b"x")
    response = httpx.get(client.presign("GET", bucket, "old", expires_at=int(time.time()) - 5))
    assert response.status_code == 403


def test_presigned_put_with_wrong_header_is_refused(client, bucket):
    url = client.presign("PUT", bucket, "strict", expires_in=60, headers={"x-kss-acl": "public-read"})
    assert httpx.put(url, content=b"x").status_code == 403


# --- addressing, concurrency, faults, wire format ------------------------------------------------


def test_virtual_host_addressing(local_server, bucket, monkeypatch):
    """A real loopback request with virtual-host addressing (``<bucket>.localhost``, the bucket in the
    Host header): every ``*.localhost`` name resolves to 127.0.0.1 for this test, /etc/hosts untouched."""
    resolve = socket.getaddrinfo

    def loopback_dns(host, *args, **kwargs):
        return resolve("127.0.0.1" if str(host).endswith("localhost") else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_dns)
    port = httpx.URL(local_server.endpoint).port
    config = ClientConfig(
        endpoint=f"http://localhost:{port}",
        access_key=local_server.access_key,
        secret_key=local_server.secret_key,
        path_style=False,
    )
    with Client(config) as vhost:
        vhost.put_object(bucket, "/v//host key", b"vh")
        assert vhost.head_object(bucket, "/v//host key").size == 2
        assert [o.key for o in vhost.iter_objects(bucket) if isinstance(o, ObjectSummary)] == ["/v//host key"]
        assert bucket in {b.name for b in vhost.list_buckets()}


def test_one_client_shared_by_threads(client, bucket):
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(10):
                key = f"t{n}/{i}"
                data = payload(2000 + i, seed=n)
                client.put_object(bucket, key, data)
                with client.get_object(bucket, key) as response:
                    assert response.read() == data
        except BaseException as exc:  # noqa: BLE001 - collected and re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert len([o for o in client.iter_objects(bucket)]) == 80


@pytest.mark.parametrize(
    "faults",
    [{"fault_rate": 0.5, "fault_codes": "500,503"}, {"drop_rate": 0.3}],
    ids=["5xx", "dropped-connections"],
)
def test_retries_ride_through_injected_faults(server_factory, tmp_path, faults):
    server = server_factory(seed=7, **faults)
    with make_client(server, retry=RetryPolicy(max_attempts=12, base_delay=0.001, max_delay=0.01)) as c:
        name = "ks3-client-faults"
        c.create_bucket(name)
        path = tmp_path / "f"
        path.write_bytes(os.urandom(300_000))
        for i in range(10):
            c.put_object(name, f"k{i}", FileRangeBody(path, offset=i, length=200_000))
        assert len(list(c.iter_objects(name))) == 10
        for i in range(10):
            with c.get_object(name, f"k{i}") as response:
                assert len(response.read()) == 200_000
        assert c.delete_objects(name, [f"k{i}" for i in range(10)]).errors == []
    # 23 operations succeeded; the log must show the failed attempts the client retried.
    # The server appends log lines as it answers, so poll (bounded) until the tally settles.
    deadline = time.monotonic() + 5.0
    while True:
        logged = server.requests()
        failed = [e for e in logged if e.get("status") not in (200, 204, 206)]
        if (failed and len(logged) == 23 + len(failed)) or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert failed and len(logged) == 23 + len(failed)


def wait_for_log(server, predicate, count: int = 1, timeout: float = 5.0) -> list[dict]:
    """Request-log entries matching ``predicate``, polling (bounded) until ``count`` have appeared."""
    deadline = time.monotonic() + timeout
    while True:
        entries = [e for e in server.requests() if predicate(e)]
        if len(entries) >= count or time.monotonic() > deadline:
            return entries
        time.sleep(0.02)


def test_request_log_sees_signed_put_of_exact_bytes(local_server, bucket, client):
    client.put_object(bucket, "wire key", b"abc", metadata={"MixedCase": "v"})
    entries = wait_for_log(local_server, lambda e: e.get("path") == f"/{bucket}/wire%20key")
    assert [(e["method"], e["status"], e["bytes_in"], e["auth"]) for e in entries] == [
        ("PUT", 200, 3, "kss-v2")
    ]


def test_delete_objects_sends_one_request_per_1000_keys(local_server, bucket, client):
    keys = [f"d/{i}" for i in range(2001)]
    client.put_object(bucket, keys[0], b"x")
    result = client.delete_objects(bucket, keys)
    assert len(result.deleted) == 2001
    posts = wait_for_log(
        local_server, lambda e: e.get("path") == f"/{bucket}/" and e.get("method") == "POST", count=3
    )
    assert len(posts) == 3 and all("delete" in e["query"] for e in posts)


def test_file_shrinking_during_upload_fails_cleanly_and_client_stays_usable(client, bucket, tmp_path):
    path = tmp_path / "shrinks"
    path.write_bytes(os.urandom(3 * 1024 * 1024))
    body = FileRangeBody(path)
    body.content_md5()
    with open(path, "r+b") as handle:
        handle.truncate(1024 * 1024 + 5)
    with pytest.raises(SourceChangedError, match="changed while being read"):
        client.put_object(bucket, "shrinks", body)
    with pytest.raises(NoSuchKey):
        client.head_object(bucket, "shrinks")
    assert client.put_object(bucket, "after", b"still fine").etag == hashlib.md5(b"still fine").hexdigest()


def test_file_changed_in_place_is_rejected_by_content_md5(client, bucket, tmp_path):
    path = tmp_path / "mutates"
    path.write_bytes(b"A" * 10_000)
    body = FileRangeBody(path)
    body.content_md5()
    path.write_bytes(b"B" * 10_000)
    with pytest.raises(KS3ServiceError) as info:
        client.put_object(bucket, "mutates", body)
    assert info.value.code in ("InvalidDigest", "BadDigest")
    with pytest.raises(NoSuchKey):
        client.head_object(bucket, "mutates")


@pytest.fixture(scope="module")
def property_bucket(local_server):
    name = f"ks3-client-prop-{os.getpid()}"
    with make_client(local_server) as c:
        c.create_bucket(name)
        yield name
        c.delete_objects(name, [o.key for o in c.iter_objects(name) if isinstance(o, ObjectSummary)])
        c.delete_bucket(name)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.text(min_size=1, max_size=40))
def test_any_key_roundtrips_through_put_list_copy_get_delete(local_server, property_bucket, key):
    data = key.encode("utf-8", "surrogatepass")
    with make_client(local_server) as c:
        c.put_object(property_bucket, key, data, metadata={"n": "1"})
        listed = [o.key for o in c.iter_objects(property_bucket, prefix=key) if isinstance(o, ObjectSummary)]
        assert key in listed
        c.copy_object(property_bucket, key, property_bucket, key + ".copy")
        with c.get_object(property_bucket, key + ".copy") as response:
            assert response.read() == data
        result = c.delete_objects(property_bucket, [key, key + ".copy"])
        assert sorted(result.deleted) == sorted([key, key + ".copy"])
        with pytest.raises(NoSuchKey):
            c.head_object(property_bucket, key)
