"""The official ks3sdk (1.18.0) through every example of the KS3 Python SDK guide, against local-server.

Each test follows one section of /work/shared/seed/ks3-python-sdk-guide.txt (section numbers in the
docstrings), with the SDK quirks of protocol §12 accounted for: path-style addressing on loopback,
`get_key(..., validate=True)` for HEAD, `Connection.generate_url` instead of `Key.generate_url` with
absolute expiry, and `threadpool`/`filechunkio` (not installed) replaced by concurrent.futures and a
small file-slice reader doing what FileChunkIO does.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from ks3.exception import S3CreateError, S3ResponseError
from ks3.key import Key
from ks3.prefix import Prefix

from tests.serverkit import ServerHandle, sdk_connection, unique_bucket_name

ALL_USERS = "http://acs.ksyun.com/groups/global/AllUsers"


class FileSlice(io.RawIOBase):
    """`bytes` bytes of a file from `offset`, seekable within the slice (what FileChunkIO provides)."""

    def __init__(self, path: Path, offset: int, length: int) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 - closed in close()
        self._offset = offset
        self._length = length
        self._position = 0
        self.name = str(path)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, position: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._length}[whence]
        self._position = max(0, min(self._length, base + position))
        return self._position

    def tell(self) -> int:
        return self._position

    def read(self, size: int = -1) -> bytes:
        remaining = self._length - self._position
        if size is None or size < 0 or size > remaining:
            size = remaining
        self._file.seek(self._offset + self._position)
        data = self._file.read(size)
        self._position += len(data)
        return data

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def, override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._file.close()
        super().close()


def grants(policy) -> set[tuple[str, str | None, str | None]]:  # type: ignore[no-untyped-def]
    return {(g.permission, g.id, g.uri) for g in policy.acl.grants}


def anonymous_get(server: ServerHandle, bucket: str, key: str) -> httpx.Response:
    return httpx.get(f"{server.endpoint}/{bucket}/{key}", timeout=10)


# ------------------------------------------------------------ 3, 5.1, 5.2, 7.2, 7.3: connection and buckets


def test_connection_create_and_list_buckets(local_server: ServerHandle) -> None:
    """3 (Connection), 5.1/7.3.1 (create_bucket), 5.2/7.2 (get_all_buckets)."""
    conn = sdk_connection(local_server)
    name = unique_bucket_name("guide")
    created = conn.create_bucket(name)
    assert created.name == name
    names = [b.name for b in conn.get_all_buckets()]
    assert name in names
    assert conn.get_bucket(name).name == name


def test_creating_an_existing_bucket_is_a_409_conflict(local_server: ServerHandle, bucket: str) -> None:
    """5.1 note: a 409 conflict means the name is taken."""
    with pytest.raises(S3CreateError) as raised:
        sdk_connection(local_server).create_bucket(bucket)
    assert raised.value.status == 409
    assert raised.value.error_code == "BucketAlreadyExists"


def test_delete_bucket_after_deleting_its_keys(local_server: ServerHandle) -> None:
    """7.3.2: delete_bucket; a bucket with keys must be emptied first (for k in b.list(): k.delete())."""
    conn = sdk_connection(local_server)
    name = unique_bucket_name("guide")
    b = conn.create_bucket(name)
    for i in range(3):
        b.new_key(f"dir/k{i}").set_contents_from_string(f"v{i}")
    with pytest.raises(S3ResponseError) as raised:
        conn.delete_bucket(name)
    assert (raised.value.status, raised.value.error_code) == (409, "BucketNotEmpty")
    for k in b.list(delimiter=""):
        k.delete()
    conn.delete_bucket(name)
    assert name not in [x.name for x in conn.get_all_buckets()]


def test_bucket_acl_get_and_put(local_server: ServerHandle, bucket: str) -> None:
    """7.3.3 get_acl (grants: permission, display_name, email_address, id), 7.3.4 set_acl."""
    b = sdk_connection(local_server).get_bucket(bucket)
    policy = b.get_acl()
    assert [(g.permission, g.display_name) for g in policy.acl.grants] == [("FULL_CONTROL", "1234567")]
    b.set_acl("public-read")
    assert ("READ", None, ALL_USERS) in grants(b.get_acl())
    b.set_acl("public-read-write")
    assert {("READ", None, ALL_USERS), ("WRITE", None, ALL_USERS)} <= grants(b.get_acl())
    b.set_acl("private")
    assert grants(b.get_acl()) == {("FULL_CONTROL", "1234567", None)}


def test_bucket_crr_and_policy_are_refused_as_not_implemented(
    local_server: ServerHandle, bucket: str
) -> None:
    """7.3.5 / 7.3.6: CRR and bucket policy are outside local-server's scope; they fail clearly (501)."""
    b = sdk_connection(local_server).get_bucket(bucket)
    with pytest.raises(S3ResponseError) as raised:
        b.set_bucket_policy(policy='{"Statement":[]}')
    assert (raised.value.status, raised.value.error_code) == (501, "NotImplemented")
    with pytest.raises(S3ResponseError) as raised:
        b.set_bucket_crr("target-bucket", "Disabled")
    assert raised.value.status == 501


# ------------------------------------------------------------ 5.3, 5.4, 7.4.1-3: objects


def test_put_from_filename_with_acl_storage_class_and_callback_headers(
    local_server: ServerHandle, bucket: str, tmp_path: Path
) -> None:
    """5.4 / 7.4.3: set_contents_from_filename with policy=, STANDARD_IA, callback headers accepted."""
    b = sdk_connection(local_server).get_bucket(bucket)
    source = tmp_path / "report.txt"
    source.write_bytes(os.urandom(50_000))
    ret = b.new_key("plain.txt").set_contents_from_filename(str(source), policy="private")
    assert ret and ret.status == 200
    ia = b.new_key("ia.txt")
    resp = ia.set_contents_from_filename(
        str(source), policy="private", headers={"x-kss-storage-class": "STANDARD_IA"}
    )
    assert resp.status == 200
    callback = {
        "x-kss-callbackurl": "http://127.0.0.1:9/cb",
        "x-kss-callbackbody": "objectKey=${key}&etag=${etag}",
    }
    assert b.new_key("cb.txt").set_contents_from_filename(str(source), headers=callback).status == 200
    head = b.get_key("ia.txt", validate=True)
    assert head.storage_class == "STANDARD_IA"
    assert head.size == 50_000
    assert head.content_type == "text/plain"  # guessed from the file name by the SDK
    assert b.get_key("plain.txt", validate=True).get_contents_as_string() == source.read_bytes()


def test_put_string_get_as_string_and_to_filename(
    local_server: ServerHandle, bucket: str, tmp_path: Path
) -> None:
    """5.3 / 7.4.2: get_contents_as_string().decode(), get_contents_to_filename; 5.4 set_contents_from_string."""
    b = sdk_connection(local_server).get_bucket(bucket)
    k = b.new_key("目录/hello world+(1).txt")
    k.set_contents_from_string("你好, KS3")
    got = b.get_key("目录/hello world+(1).txt")
    assert got.get_contents_as_string().decode() == "你好, KS3"
    target = tmp_path / "saved.txt"
    b.get_key("目录/hello world+(1).txt").get_contents_to_filename(str(target))
    assert target.read_text(encoding="utf-8") == "你好, KS3"


def test_head_object(local_server: ServerHandle, bucket: str) -> None:
    """7.4.1: name, size, last_modified of an existing key; a missing key is None (validate=True, §12)."""
    b = sdk_connection(local_server).get_bucket(bucket)
    b.new_key("head-me").set_contents_from_string("x" * 123, headers={"x-kss-meta-Color": "blue"})
    k = b.get_key("head-me", validate=True)
    assert (k.name, k.size) == ("head-me", 123)
    assert k.last_modified.endswith("GMT")
    assert k.etag == '"' + hashlib.md5(b"x" * 123).hexdigest() + '"'
    assert k.user_meta == {"x-kss-meta-color": "blue"}
    assert b.get_key("not-there", validate=True) is None


def test_copy_key_between_buckets(local_server: ServerHandle, bucket: str) -> None:
    """7.4.4: copy_key(dst_key, src_bucket, src_key), keys with spaces and '+' (form-encoded source)."""
    conn = sdk_connection(local_server)
    src = conn.get_bucket(bucket)
    src.new_key("a/b c+d.txt").set_contents_from_string("copied bytes", headers={"x-kss-meta-k": "v"})
    dst_name = unique_bucket_name("dst")
    dst = conn.create_bucket(dst_name)
    dst.copy_key("copy of a+b.txt", bucket, "a/b c+d.txt")
    copied = dst.get_key("copy of a+b.txt", validate=True)
    assert copied.get_contents_as_string() == b"copied bytes"
    assert copied.user_meta == {"x-kss-meta-k": "v"}


def test_delete_key(local_server: ServerHandle, bucket: str) -> None:
    """5.5 / 7.4.5: delete_key; deleting again is still a success (204)."""
    b = sdk_connection(local_server).get_bucket(bucket)
    b.new_key("gone").set_contents_from_string("bye")
    b.delete_key("gone")
    assert b.get_key("gone", validate=True) is None
    b.delete_key("gone")


def test_list_with_delimiter_prefix_and_time_filter(local_server: ServerHandle, bucket: str) -> None:
    """5.6 / 7.4.6: list() gives Key and Prefix objects; prefix=; listObjects with a time filter."""
    b = sdk_connection(local_server).get_bucket(bucket)
    for name in ["top.txt", "photos/2024/a.jpg", "photos/2024/b.jpg", "photos/c.jpg", "docs/readme"]:
        b.new_key(name).set_contents_from_string(name)
    entries = list(b.list(delimiter="/"))
    assert {("file", e.name) for e in entries if isinstance(e, Key)} == {("file", "top.txt")}
    assert {e.name for e in entries if isinstance(e, Prefix)} == {"photos/", "docs/"}
    assert sorted(k.name for k in b.list(prefix="photos/", delimiter="")) == [
        "photos/2024/a.jpg",
        "photos/2024/b.jpg",
        "photos/c.jpg",
    ]
    assert [e.name for e in b.list(prefix="photos/", delimiter="/")] == ["photos/c.jpg", "photos/2024/"]
    assert sorted(b.listObjects(prefix="photos/", delimiter="", end_time=int(time.time()) - 3600)) == [
        "photos/2024/a.jpg",
        "photos/2024/b.jpg",
        "photos/c.jpg",
    ]


def test_list_pages_of_100_with_a_delimiter(local_server: ServerHandle, bucket: str) -> None:
    """Bucket.list() defaults to delimiter '/': pages of 100 (§4.8), followed through NextMarker."""
    b = sdk_connection(local_server).get_bucket(bucket)
    names = [f"k{i:03d}" for i in range(130)] + [f"d{i:03d}/x" for i in range(120)]
    for name in names:
        b.new_key(name).set_contents_from_string("")
    mark = local_server.mark()
    listed = [e.name for e in b.list()]
    # within a page Contents come before CommonPrefixes, so compare as multisets: no loss, no repeats
    assert sorted(listed) == sorted([n for n in names if "/" not in n] + [f"d{i:03d}/" for i in range(120)])
    pages = [e for e in local_server.requests()[mark:] if e["op"] == "ListObjects"]
    assert len(pages) == 3


def test_object_acl_get_and_put(local_server: ServerHandle, bucket: str) -> None:
    """7.4.7 get_acl(key).to_xml(), 7.4.8 set_acl('public-read', key): anonymous GET then works."""
    b = sdk_connection(local_server).get_bucket(bucket)
    b.new_key("shared.txt").set_contents_from_string("for everyone")
    assert "FULL_CONTROL" in b.get_acl("shared.txt").to_xml()
    assert anonymous_get(local_server, bucket, "shared.txt").status_code == 403
    b.set_acl("public-read", "shared.txt")
    assert ("READ", None, ALL_USERS) in grants(b.get_acl("shared.txt"))
    response = anonymous_get(local_server, bucket, "shared.txt")
    assert (response.status_code, response.content) == (200, b"for everyone")
    b.set_acl("private", "shared.txt")
    assert anonymous_get(local_server, bucket, "shared.txt").status_code == 403


# ------------------------------------------------------------ 7.4.9: multipart


def _source_file(tmp_path: Path, size: int) -> Path:
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(size))
    return path


def test_multipart_single_thread(local_server: ServerHandle, bucket: str, tmp_path: Path) -> None:
    """7.4.9 single-thread example (FileChunkIO slices, complete_upload) with a STANDARD_IA initiate."""
    b = sdk_connection(local_server).get_bucket(bucket)
    source_path = _source_file(tmp_path, 1_000_000)
    source_size = os.stat(source_path).st_size
    mp = b.initiate_multipart_upload(
        os.path.basename(source_path), policy="private", headers={"x-kss-storage-class": "STANDARD_IA"}
    )
    chunk_size = 300 * 1024
    chunk_count = int(math.ceil(source_size * 1.0 / chunk_size * 1.0))
    for i in range(chunk_count):
        offset = chunk_size * i
        nbytes = min(chunk_size, source_size - offset)
        with FileSlice(source_path, offset, nbytes) as fp:
            mp.upload_part_from_file(fp, part_num=i + 1)
    ret = mp.complete_upload()
    assert ret and ret.status == 200
    k = b.get_key("big.bin", validate=True)
    assert (k.size, k.storage_class) == (source_size, "STANDARD_IA")
    assert k.etag.endswith(f'-{chunk_count}"')
    assert k.get_contents_as_string() == source_path.read_bytes()


def test_multipart_threaded(local_server: ServerHandle, bucket: str, tmp_path: Path) -> None:
    """7.4.9 multi-thread example: parts uploaded by a pool (5 threads), complete, all parts present."""
    conn = sdk_connection(local_server)
    b = conn.get_bucket(bucket)
    local_path = _source_file(tmp_path, 2_000_000)
    f_size = os.stat(local_path).st_size
    mp = b.initiate_multipart_upload("threaded/big.bin")
    chunk_size = 256 * 1024
    chunk_count = int(math.ceil(f_size / float(chunk_size)))

    def upload_part_task(part_num: int) -> bool:
        offset = chunk_size * (part_num - 1)
        with FileSlice(local_path, offset, min(chunk_size, f_size - offset)) as fp:
            mp.upload_part_from_file(fp, part_num=part_num)
        return True

    with ThreadPoolExecutor(5) as pool:
        results = list(pool.map(upload_part_task, range(1, chunk_count + 1)))
    assert results == [True] * chunk_count
    mp.complete_upload()
    assert b.get_key("threaded/big.bin").get_contents_as_string() == local_path.read_bytes()


def test_list_parts_list_uploads_and_cancel(local_server: ServerHandle, bucket: str) -> None:
    """7.4.9: get_all_parts(part_number_marker=2), list_multipart_uploads (iterating parts), cancel_upload."""
    b = sdk_connection(local_server).get_bucket(bucket)
    mp = b.initiate_multipart_upload("pending/object.bin")
    part = os.urandom(100 * 1024)
    for number in (1, 2, 3):
        mp.upload_part_from_file(io.BytesIO(part), part_num=number)
    assert [p.part_number for p in mp.get_all_parts(part_number_marker=2)] == [3]
    uploads = list(b.list_multipart_uploads())
    assert [(u.id, u.key_name) for u in uploads] == [(mp.id, "pending/object.bin")]
    listed = [(i.part_number, i.size, i.etag) for i in uploads[0]]
    assert listed == [(n, len(part), '"' + hashlib.md5(part).hexdigest() + '"') for n in (1, 2, 3)]
    mp.cancel_upload()
    assert list(b.list_multipart_uploads()) == []
    with pytest.raises(S3ResponseError) as raised:
        mp.get_all_parts()
    assert raised.value.error_code == "NoSuchUpload"


# ------------------------------------------------------------ 7.4.10: URLs


def test_generate_url_fetched_with_plain_http(local_server: ServerHandle, bucket: str) -> None:
    """7.4.10: a download URL valid for 60 s (relative) and until an absolute time; expired → 403."""
    conn = sdk_connection(local_server)
    b = conn.get_bucket(bucket)
    b.new_key("private/report 1.txt").set_contents_from_string("secret report")
    k = b.get_key("private/report 1.txt", validate=True)
    url = k.generate_url(60)
    response = httpx.get(url, timeout=10)
    assert (response.status_code, response.content) == (200, b"secret report")
    absolute = conn.generate_url(
        int(time.time()) + 120, "GET", bucket, "private/report 1.txt", expires_in_absolute=True
    )
    assert httpx.get(absolute, timeout=10).content == b"secret report"
    expired = conn.generate_url(
        int(time.time()) - 10, "GET", bucket, "private/report 1.txt", expires_in_absolute=True
    )
    response = httpx.get(expired, timeout=10)
    assert response.status_code == 403
    assert "<Code>AccessDenied</Code>" in response.text
    assert "Signature=REDACTED" in local_server.requests()[-1]["query"]


def test_presigned_put_url(local_server: ServerHandle, bucket: str) -> None:
    """7.4.10: get_presigned_url(60) on a new key; a plain HTTP PUT uploads through it."""
    b = sdk_connection(local_server).get_bucket(bucket)
    url = b.new_key("uploads/via url.bin").get_presigned_url(60)
    body = os.urandom(10_000)
    response = httpx.put(url, content=body, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == '"' + hashlib.md5(body).hexdigest() + '"'
    assert b.get_key("uploads/via url.bin").get_contents_as_string() == body


# ------------------------------------------------------------ 7.4.11-13: copy REPLACE, storage class, restore


def test_modify_object_meta_via_copy_replace(local_server: ServerHandle, bucket: str) -> None:
    """7.4.11: copy onto itself with x-kss-metadata-directive REPLACE and a new content-type."""
    b = sdk_connection(local_server).get_bucket(bucket)
    b.new_key("1copykey.jpg").set_contents_from_string("jpeg?", headers={"x-kss-meta-old": "1"})
    b.copy_key(
        "1copykey.jpg",
        bucket,
        "1copykey.jpg",
        headers={"content-type": "text/plain", "x-kss-metadata-directive": "REPLACE"},
    )
    k = b.get_key("1copykey.jpg", validate=True)
    assert k.content_type == "text/plain"
    assert k.user_meta == {}
    assert k.get_contents_as_string() == b"jpeg?"


def test_modify_storage_class_via_copy(local_server: ServerHandle, bucket: str) -> None:
    """7.4.12: copy onto itself with x-kss-storage-class STANDARD_IA."""
    b = sdk_connection(local_server).get_bucket(bucket)
    b.new_key("1copykey.jpg").set_contents_from_string("jpeg!")
    b.copy_key("1copykey.jpg", bucket, "1copykey.jpg", headers={"x-kss-storage-class": "STANDARD_IA"})
    k = b.get_key("1copykey.jpg", validate=True)
    assert k.storage_class == "STANDARD_IA"
    assert k.get_contents_as_string() == b"jpeg!"


def test_restore_archived_object(local_server: ServerHandle, bucket: str) -> None:
    """7.4.13: restore_object on an ARCHIVE object: 403 InvalidObjectState before, 202, readable, then 200."""
    b = sdk_connection(local_server).get_bucket(bucket)
    b.new_key("test_key").set_contents_from_string("cold data", headers={"x-kss-storage-class": "ARCHIVE"})
    with pytest.raises(S3ResponseError) as raised:
        b.get_key("test_key").get_contents_as_string()
    assert (raised.value.status, raised.value.error_code) == (403, "InvalidObjectState")
    restore_result = b.restore_object("test_key")
    assert restore_result.status == 202
    head = b.get_key("test_key", validate=True)
    assert head.ongoing_restore is False
    assert head.expiry_date
    assert b.get_key("test_key").get_contents_as_string() == b"cold data"
    assert b.restore_object("test_key", days=3).status == 200
    b.new_key("standard").set_contents_from_string("warm")
    with pytest.raises(S3ResponseError) as raised:
        b.restore_object("standard")
    assert raised.value.error_code == "InvalidObjectState"


def test_restore_in_progress_is_409(server_factory) -> None:  # type: ignore[no-untyped-def]
    """A restore takes --restore-seconds; asking again meanwhile is 409 RestoreAlreadyInProgress."""
    server = server_factory(restore_seconds=30)
    conn = sdk_connection(server)
    b = conn.create_bucket(unique_bucket_name("restore"))
    b.new_key("cold").set_contents_from_string("zzz", headers={"x-kss-storage-class": "ARCHIVE"})
    assert b.restore_object("cold").status == 202
    assert b.get_key("cold", validate=True).ongoing_restore is True
    with pytest.raises(S3ResponseError) as raised:
        b.restore_object("cold")
    assert (raised.value.status, raised.value.error_code) == (409, "RestoreAlreadyInProgress")


# ------------------------------------------------------------ auth and section 8 (client-side encryption)


def test_wrong_secret_raises_signature_does_not_match(local_server: ServerHandle, bucket: str) -> None:
    conn = sdk_connection(local_server, secret_key="not-the-secret")
    with pytest.raises(S3ResponseError) as raised:
        conn.get_bucket(bucket).new_key("x").set_contents_from_string("nope")
    assert (raised.value.status, raised.value.error_code) == (403, "SignatureDoesNotMatch")
    with pytest.raises(S3ResponseError) as raised:
        conn.get_all_buckets()
    assert raised.value.status == 403


def test_encrypted_put_and_get(local_server: ServerHandle, bucket: str, tmp_path: Path) -> None:
    """8: local_encrypt=True put/get round trip; the server returns the x-kss-meta-* names lower-case."""
    key_path = tmp_path / "key"
    key_path.write_bytes(b"0123456789abcdef")
    conn = sdk_connection(local_server, local_encrypt=True, local_key_path=str(key_path))
    b = conn.get_bucket(bucket)
    b.new_key("your_key").set_contents_from_string("some string")
    got = b.get_key("your_key", validate=True)
    assert got.size == 32  # IV + one block
    assert got.get_contents_as_string() == b"some string"


def test_fetch_is_refused(local_server: ServerHandle, bucket: str) -> None:
    """7.4.3 fetch: a loopback test server never pulls from the network; the request fails with 501."""
    import ks3.auth as auth

    conn = sdk_connection(local_server)
    if "fetch" not in auth.qsa_of_interest:
        auth.qsa_of_interest.append("fetch")
    headers = {
        "x-kss-sourceurl": "http%3A%2F%2Fexample.com%2Fa.jpg",
        "x-kss-acl": "public-read",
        "Content-Type": "application/xml",
    }
    resp = conn.make_request("PUT", bucket, "testfetch", query_args="fetch", headers=headers)
    assert resp.status == 501
    assert b"NotImplemented" in resp.read()


def test_create_bucket_with_location_and_acl(local_server: ServerHandle) -> None:
    """create_bucket(location=...) sends a literal '%s' CreateBucketConfiguration (SDK bug); it is tolerated."""
    conn = sdk_connection(local_server)
    name = unique_bucket_name("loc")
    conn.create_bucket(name, location="BEIJING", policy="public-read")
    assert ("READ", None, ALL_USERS) in grants(conn.get_bucket(name).get_acl())
    with pytest.raises(S3ResponseError) as raised:
        conn.create_bucket("ab")  # passes the SDK's own check, not the service's
    assert (raised.value.status, raised.value.error_code) == (400, "InvalidBucketName")
