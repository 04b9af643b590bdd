"""ONE conformance suite for the Store protocol, run against MemoryStore and against KS3Store talking to a
real local-server over loopback. Whatever the fake promises, the real path must do too (and vice versa)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import pytest

from ks3sync.errors import IntegrityError, RemoteNotFound, RemoteRejected, UploadGone
from ks3sync.store.base import Store, WriteOptions
from ks3sync.store.checksums import crc64_update, multipart_etag
from ks3sync.store.memory import MemoryStore
from ks3sync.transfer.bodies import MemoryBody
from tests.serverkit import client_config

PREFIX = "pre fix/ü+%/"
PART = 100 * 1024


class WrongMD5Body(MemoryBody):
    def content_md5(self) -> bytes:
        return hashlib.md5(b"something else").digest()


@pytest.fixture(params=["memory", "ks3"])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    if request.param == "memory":
        yield MemoryStore(bucket="mem", prefix=PREFIX)
        return
    from ks3sync.ks3 import Client
    from ks3sync.store.ks3store import KS3Store

    server = request.getfixturevalue("local_server")
    bucket = request.getfixturevalue("bucket")
    with Client(client_config(server)) as client:
        yield KS3Store(client, bucket, PREFIX)


def put(store: Store, path: str, data: bytes, **meta: str) -> str:
    return store.put(path, MemoryBody(data), WriteOptions(metadata=meta)).etag


def test_put_head_open_round_trip(store: Store) -> None:
    data = os.urandom(5000)
    result = store.put("dir/a b.txt", MemoryBody(data), WriteOptions(metadata={"MTime": "123", "iv": "x=="}))
    assert result.etag == hashlib.md5(data).hexdigest()
    assert result.crc64 in (None, crc64_update(0, data))
    meta = store.head("dir/a b.txt")
    assert meta is not None
    assert (meta.size, meta.etag, meta.is_multipart) == (len(data), result.etag, False)
    assert meta.metadata["mtime"] == "123" and meta.is_encrypted
    assert meta.crc64 == crc64_update(0, data)
    with store.open("dir/a b.txt") as reader:
        assert reader.meta.etag == result.etag
        assert b"".join(reader.iter_bytes(1000)) == data
    assert store.key_for("dir/a b.txt") == PREFIX + "dir/a b.txt"


def test_read_range_gives_those_bytes_and_the_objects_etag(store: Store) -> None:
    data = os.urandom(3000)
    etag = put(store, "r.bin", data)
    for first, last in ((0, 0), (0, 2999), (1000, 1031), (2968, 2999)):
        got = store.read_range("r.bin", first, last)
        assert (got.etag, got.data) == (etag, data[first : last + 1])
    with pytest.raises(RemoteNotFound):
        store.read_range("nope", 0, 15)
    with pytest.raises(ValueError, match="bad byte range"):
        store.read_range("r.bin", 10, 9)


def test_missing_objects(store: Store) -> None:
    assert store.head("nope") is None
    with pytest.raises(RemoteNotFound), store.open("nope") as reader:
        list(reader.iter_bytes())


def test_listing_is_sorted_by_utf8_bytes_and_relative(store: Store) -> None:
    names = ["b", "a/z", "a+b", "Z", "é", "e\u0301", "日本", "a b", "a/b/c", "~", "empty"]
    for name in names:
        put(store, name, b"" if name == "empty" else name.encode())
    put(store, "dir/", b"")  # a console's folder marker: not a file
    listed = list(store.list())
    paths = [e.path for e in listed]
    assert paths == sorted(names, key=lambda p: p.encode("utf-8"))
    by_path = {e.path: e for e in listed}
    assert (
        by_path["日本"].size == len("日本".encode())
        and by_path["日本"].etag == hashlib.md5("日本".encode()).hexdigest()
    )
    assert by_path["empty"].size == 0 and by_path["b"].last_modified_ns > 0
    assert by_path["b"].storage_class == "STANDARD"


def test_folder_markers_are_not_listed_but_objects_named_like_a_folder_are(store: Store) -> None:
    put(store, "dir/", b"")  # a console's folder marker
    put(store, "dir/file", b"x")
    put(store, "full/", b"data")  # data under a folder-like name: the planners decide (D9)
    assert [(e.path, e.size) for e in store.list()] == [("dir/file", 1), ("full/", 4)]


def test_body_that_lies_about_its_md5_is_refused(store: Store) -> None:
    with pytest.raises(IntegrityError):
        store.put("liar", WrongMD5Body(b"data"), WriteOptions())
    assert store.head("liar") is None


def test_longest_key_and_one_byte_more(store: Store) -> None:
    room = 1024 - len(PREFIX.encode())
    longest = "k" * room
    put(store, longest, b"x")
    assert [e.path for e in store.list()] == [longest]
    with pytest.raises(RemoteRejected):
        put(store, longest + "k", b"x")


def test_multipart_round_trip(store: Store) -> None:
    parts = [os.urandom(PART), os.urandom(PART + 7), os.urandom(1234)]
    upload_id = store.create_upload("big file", WriteOptions(metadata={"mtime": "9"}))
    assert [u.upload_id for u in store.list_uploads() if u.path == "big file"] == [upload_id]
    results = [store.upload_part("big file", upload_id, n, MemoryBody(p)) for n, p in enumerate(parts, 1)]
    for result, data in zip(results, parts, strict=True):
        assert result.etag == hashlib.md5(data).hexdigest() and result.size == len(data)
        assert result.crc64 in (None, crc64_update(0, data))
    listed = store.list_parts("big file", upload_id)
    assert [(p.part_number, p.etag, p.size) for p in listed] == [
        (r.part_number, r.etag, r.size) for r in results
    ]
    whole = b"".join(parts)
    done = store.complete_upload("big file", upload_id, listed, expected_crc64=crc64_update(0, whole))
    assert done.etag == multipart_etag(r.etag for r in results)
    meta = store.head("big file")
    assert (
        meta is not None
        and meta.size == len(whole)
        and meta.is_multipart
        and meta.crc64 == crc64_update(0, whole)
    )
    assert meta.metadata["mtime"] == "9"
    with store.open("big file") as reader:
        assert b"".join(reader.iter_bytes()) == whole
    assert not [u for u in store.list_uploads() if u.path == "big file"]


def test_a_range_is_the_slice_with_the_whole_objects_metadata(store: Store) -> None:
    data = os.urandom(10_000)
    etag = put(store, "r", data, mtime="5")
    with store.open("r", len(data), byte_range=(1000, 2999), if_match=etag) as reader:
        assert b"".join(reader.iter_bytes(700)) == data[1000:3000]
        assert (reader.meta.size, reader.meta.etag, reader.meta.metadata["mtime"]) == (len(data), etag, "5")
        assert reader.meta.crc64 == crc64_update(0, data) and not reader.checks_crc64
    with store.open("r", len(data), byte_range=(9000, 20_000)) as reader:  # clipped at the end
        assert b"".join(reader.iter_bytes()) == data[9000:]


def test_a_range_of_an_object_that_changed_is_an_integrity_error(store: Store) -> None:
    old = put(store, "c", b"first version")
    put(store, "c", b"second version")
    with (
        pytest.raises(IntegrityError, match="changed while it was being read"),
        store.open("c", byte_range=(0, 3), if_match=old),
    ):
        pass


def test_complete_rejects_small_parts_and_wrong_crc(store: Store) -> None:
    upload_id = store.create_upload("m", WriteOptions())
    small = [store.upload_part("m", upload_id, n, MemoryBody(os.urandom(1000))) for n in (1, 2)]
    with pytest.raises(RemoteRejected):
        store.complete_upload("m", upload_id, small)
    store.abort_upload("m", upload_id)
    upload_id = store.create_upload("m", WriteOptions())
    one = [store.upload_part("m", upload_id, 1, MemoryBody(b"abc"))]
    with pytest.raises(IntegrityError):
        store.complete_upload("m", upload_id, one, expected_crc64=12345)


def test_abort_makes_the_upload_gone(store: Store) -> None:
    upload_id = store.create_upload("x", WriteOptions())
    store.upload_part("x", upload_id, 1, MemoryBody(b"abc"))
    store.abort_upload("x", upload_id)
    with pytest.raises(UploadGone):
        store.upload_part("x", upload_id, 2, MemoryBody(b"def"))
    with pytest.raises(UploadGone):
        store.list_parts("x", upload_id)
    assert store.head("x") is None


def test_copy_keeps_bytes_and_metadata(store: Store) -> None:
    etag = put(store, "src name+1", b"content", mtime="42")
    result = store.copy("src name+1", "dst/é")
    assert result.etag == etag
    meta = store.head("dst/é")
    assert meta is not None and meta.metadata["mtime"] == "42" and meta.size == 7
    backup_key = "backup-area/src name+1"
    store.copy("src name+1", "src name+1", dst_key=backup_key)
    assert [e.path for e in store.list()] == ["dst/é", "src name+1"]  # the backup lies outside the prefix
    with pytest.raises(RemoteNotFound):
        store.copy("missing", "dst2")


def test_copy_of_a_multipart_object_gets_a_plain_md5_etag(store: Store) -> None:
    data = [os.urandom(PART), b"tail"]
    upload_id = store.create_upload("mp", WriteOptions())
    parts = [store.upload_part("mp", upload_id, n, MemoryBody(p)) for n, p in enumerate(data, 1)]
    store.complete_upload("mp", upload_id, parts)
    assert store.copy("mp", "copy").etag == hashlib.md5(b"".join(data)).hexdigest()


def test_delete_many(store: Store) -> None:
    for name in ("a", "b c", "d/e"):
        put(store, name, b"1")
    assert store.delete_many(["a", "d/e", "never-existed"]) == []
    assert [e.path for e in store.list()] == ["b c"]


def test_copy_with_options_replaces_metadata_and_storage_class(store: Store) -> None:
    put(store, "src", b"content", mtime="1", other="x")
    store.copy("src", "dst", options=WriteOptions(metadata={"mtime": "2"}, storage_class="STANDARD_IA"))
    meta = store.head("dst")
    assert meta is not None and meta.metadata.get("mtime") == "2" and "other" not in meta.metadata
    assert meta.storage_class == "STANDARD_IA" and meta.size == 7
    source = store.head("src")
    assert source is not None and source.metadata["mtime"] == "1"
