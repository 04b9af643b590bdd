"""With --no-fsync, bodies up to 64 KiB live as SQLite rows: every object operation must behave the same."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ks3sync.localserver.crc64 import crc64
from tests.localserver.ls_wire import error_code, request
from tests.serverkit import ServerHandle, sdk_connection

SMALL = os.urandom(1000)
EDGE = os.urandom(64 * 1024)  # exactly the inline limit
BIG = os.urandom(64 * 1024 + 1)  # one byte over: a file


def data_files(root: Path) -> int:
    return sum(1 for p in (root / "data").rglob("*") if p.is_file())


@pytest.fixture
def fast_server(server_factory) -> ServerHandle:  # type: ignore[no-untyped-def]
    server = server_factory(no_fsync=True)
    assert request(server, "PUT", "inline").status_code == 200
    return server


def test_small_bodies_are_rows_and_read_back_like_files(fast_server: ServerHandle) -> None:
    for key, body in (("small", SMALL), ("edge", EDGE), ("big", BIG), ("empty", b"")):
        response = request(fast_server, "PUT", "inline", key, content=body)
        assert response.headers["x-kss-checksum-crc64ecma"] == str(crc64(body))
    assert data_files(fast_server.root) == 1  # only "big" became a file
    for key, body in (("small", SMALL), ("edge", EDGE), ("big", BIG), ("empty", b"")):
        got = request(fast_server, "GET", "inline", key)
        assert got.content == body, key
        assert request(fast_server, "HEAD", "inline", key).headers["Content-Length"] == str(len(body))
    ranged = request(fast_server, "GET", "inline", "small", headers={"Range": "bytes=10-19"})
    assert (ranged.status_code, ranged.content) == (206, SMALL[10:20])
    assert request(fast_server, "GET", "inline", "small", headers={"Range": "bytes=1000-"}).status_code == 416


def test_overwrite_copy_part_copy_and_delete(fast_server: ServerHandle) -> None:
    request(fast_server, "PUT", "inline", "k", content=SMALL)
    request(fast_server, "PUT", "inline", "k", content=BIG)  # row -> file
    assert request(fast_server, "GET", "inline", "k").content == BIG
    request(fast_server, "PUT", "inline", "k", content=SMALL)  # file -> row, the file is removed
    assert data_files(fast_server.root) == 0
    copied = request(fast_server, "PUT", "inline", "copy", headers={"x-kss-copy-source": "/inline/k"})
    assert copied.status_code == 200, copied.text
    request(fast_server, "DELETE", "inline", "k")
    assert request(fast_server, "GET", "inline", "copy").content == SMALL  # the copy is independent
    upload = request(fast_server, "POST", "inline", "mp", "uploads").text.split("<UploadId>")[1][:32]
    part = request(
        fast_server,
        "PUT",
        "inline",
        "mp",
        f"partNumber=1&uploadId={upload}",
        headers={"x-kss-copy-source": "/inline/copy", "x-kss-copy-source-range": "bytes=100-599"},
    )
    assert f"<ChecksumCRC64ECMA>{crc64(SMALL[100:600])}</ChecksumCRC64ECMA>" in part.text
    etag = part.text.split("<ETag>")[1].split("</ETag>")[0].replace("&quot;", "")
    body = (
        f"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag></Part>"
        "</CompleteMultipartUpload>"
    )
    assert (
        request(fast_server, "POST", "inline", "mp", f"uploadId={upload}", content=body.encode()).status_code
        == 200
    )
    assert request(fast_server, "GET", "inline", "mp").content == SMALL[100:600]
    bad = request(
        fast_server,
        "PUT",
        "inline",
        "bad",
        content=SMALL,
        headers={"Content-MD5": "AAAAAAAAAAAAAAAAAAAAAA=="},
    )
    assert (bad.status_code, error_code(bad)) == (400, "InvalidDigest")
    assert request(fast_server, "GET", "inline", "bad").status_code == 404


def test_rows_survive_a_restart_and_orphans_are_swept(server_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    root = tmp_path / "inline-root"
    server = server_factory(root=root, no_fsync=True)
    request(server, "PUT", "inline")
    request(server, "PUT", "inline", "kept", content=SMALL)
    assert server.stop() == 0
    with sqlite3.connect(root / "meta.sqlite3") as db:
        db.execute("INSERT INTO inline_bodies VALUES ('iorphan', x'00')")
    restarted = server_factory(root=root, no_fsync=True)
    assert request(restarted, "GET", "inline", "kept").content == SMALL
    with sqlite3.connect(root / "meta.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM inline_bodies WHERE data_id = 'iorphan'").fetchone() == (0,)


def test_the_sdk_guide_flow_on_a_fast_server(fast_server: ServerHandle) -> None:
    b = sdk_connection(fast_server).get_bucket("inline")
    b.new_key("a b.txt").set_contents_from_string("hello", headers={"x-kss-meta-x": "y"})
    b.copy_key("c d.txt", "inline", "a b.txt")
    assert b.get_key("c d.txt", validate=True).user_meta == {"x-kss-meta-x": "y"}
    assert b.get_key("c d.txt").get_contents_as_string() == b"hello"
    mp = b.initiate_multipart_upload("parts")
    import io

    mp.upload_part_from_file(io.BytesIO(b"a" * 102400), 1)
    mp.upload_part_from_file(io.BytesIO(b"b" * 10), 2)
    mp.complete_upload()
    assert b.get_key("parts").get_contents_as_string() == b"a" * 102400 + b"b" * 10
