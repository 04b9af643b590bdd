"""Multipart uploads over HTTP: the happy path's ETag and CRC, and every Complete validation error."""

from __future__ import annotations

import base64
import hashlib
import os
import sqlite3
from concurrent.futures import ThreadPoolExecutor

import pytest

from ks3sync.localserver.crc64 import combine, crc64
from tests.localserver.ls_wire import error_code, request
from tests.serverkit import ServerHandle

PART = 100 * 1024


def initiate(server: ServerHandle, bucket: str, key: str) -> str:
    response = request(server, "POST", bucket, key, "uploads")
    assert response.status_code == 200, response.text
    assert f"<Key>{key}</Key>" in response.text
    return response.text.split("<UploadId>")[1].split("</UploadId>")[0]


def upload_part(server: ServerHandle, bucket: str, key: str, upload_id: str, number: int, data: bytes) -> str:
    response = request(server, "PUT", bucket, key, f"partNumber={number}&uploadId={upload_id}", content=data)
    assert response.status_code == 200, response.text
    assert response.headers["x-kss-checksum-crc64ecma"] == str(crc64(data))
    return response.headers["ETag"]


def complete(server: ServerHandle, bucket: str, key: str, upload_id: str, parts: list[tuple[int, str]]):  # type: ignore[no-untyped-def]
    body = (
        "<CompleteMultipartUpload>"
        + "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>" for n, etag in parts)
        + "</CompleteMultipartUpload>"
    )
    return request(
        server,
        "POST",
        bucket,
        key,
        f"uploadId={upload_id}",
        content=body.encode(),
        headers={"Content-Type": "text/xml"},
    )


def test_complete_yields_multipart_etag_and_combined_crc(local_server: ServerHandle, bucket: str) -> None:
    key = "mp/object with spaces"
    upload_id = initiate(local_server, bucket, key)
    assert len(upload_id) == 32 and all(c in "0123456789abcdef" for c in upload_id)
    datas = [os.urandom(PART + 17), os.urandom(PART), os.urandom(5)]
    etags = [upload_part(local_server, bucket, key, upload_id, n, d) for n, d in enumerate(datas, 1)]
    response = complete(
        local_server, bucket, key, upload_id, [(1, etags[0]), (2, etags[1].strip('"')), (3, etags[2])]
    )
    assert response.status_code == 200, response.text
    expected_etag = hashlib.md5(b"".join(hashlib.md5(d).digest() for d in datas)).hexdigest() + "-3"
    whole = b"".join(datas)
    expected_crc = 0
    for d in datas:
        expected_crc = combine(expected_crc, crc64(d), len(d))
    assert expected_crc == crc64(whole)
    assert f"<ChecksumCRC64ECMA>{expected_crc}</ChecksumCRC64ECMA>" in response.text
    assert f"&quot;{expected_etag}&quot;" in response.text
    got = request(local_server, "GET", bucket, key)
    assert got.content == whole
    assert got.headers["ETag"] == f'"{expected_etag}"'
    assert got.headers["x-kss-checksum-crc64ecma"] == str(expected_crc)
    # the upload id is finished now
    again = complete(local_server, bucket, key, upload_id, [(1, etags[0])])
    assert (again.status_code, error_code(again)) == (404, "NoSuchUpload")


@pytest.fixture
def three_parts(local_server: ServerHandle, bucket: str):  # type: ignore[no-untyped-def]
    key = "validate"
    upload_id = initiate(local_server, bucket, key)
    etags = [
        upload_part(local_server, bucket, key, upload_id, n, os.urandom(size))
        for n, size in ((1, PART), (2, 1000), (3, PART))
    ]
    return key, upload_id, etags


@pytest.mark.parametrize(
    ("parts", "status", "code"),
    [
        (lambda e: [(2, e[1]), (1, e[0])], 400, "InvalidPartOrder"),
        (lambda e: [(1, e[0]), (1, e[0])], 400, "InvalidPartOrder"),
        (lambda e: [(1, '"0123456789abcdef0123456789abcdef"')], 400, "InvalidPart"),
        (lambda e: [(1, e[0]), (4, e[2])], 400, "InvalidPart"),
        (lambda e: [(1, e[0]), (2, e[1]), (3, e[2])], 400, "EntityTooSmall"),
    ],
)
def test_complete_validation_errors(
    local_server: ServerHandle,
    bucket: str,
    three_parts,
    parts,
    status: int,  # type: ignore[no-untyped-def]
    code: str,
) -> None:
    key, upload_id, etags = three_parts
    response = complete(local_server, bucket, key, upload_id, parts(etags))
    assert (response.status_code, error_code(response)) == (status, code)
    # a failed complete leaves the upload intact: a valid list still completes it
    ok = complete(local_server, bucket, key, upload_id, [(1, etags[0]), (2, etags[1])])
    assert ok.status_code == 200, ok.text


def test_malformed_complete_body_and_bad_part_numbers(
    local_server: ServerHandle, bucket: str, three_parts
) -> None:  # type: ignore[no-untyped-def]
    key, upload_id, _ = three_parts
    for body in (b"<CompleteMultipartUpload/>", b"not xml", b"<Other/>"):
        response = request(local_server, "POST", bucket, key, f"uploadId={upload_id}", content=body)
        assert (response.status_code, error_code(response)) == (400, "MalformedXML")
    for number in ("0", "10001", "x"):
        response = request(
            local_server, "PUT", bucket, key, f"partNumber={number}&uploadId={upload_id}", content=b"x"
        )
        assert (response.status_code, error_code(response)) == (400, "InvalidArgument")
    response = request(
        local_server,
        "PUT",
        bucket,
        key,
        "partNumber=1&uploadId=ffffffffffffffffffffffffffffffff",
        content=b"x",
    )
    assert (response.status_code, error_code(response)) == (404, "NoSuchUpload")


def test_list_parts_returns_all_without_max_parts_and_pages_with_it(
    local_server: ServerHandle, bucket: str
) -> None:
    key = "many-parts"
    upload_id = initiate(local_server, bucket, key)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: upload_part(local_server, bucket, key, upload_id, n, b"p"), range(1, 1102)))
    everything = request(local_server, "GET", bucket, key, f"uploadId={upload_id}")
    assert everything.text.count("<Part>") == 1101
    assert "<IsTruncated>false</IsTruncated>" in everything.text
    page = request(local_server, "GET", bucket, key, f"max-parts=1000&uploadId={upload_id}")
    assert page.text.count("<Part>") == 1000
    assert "<IsTruncated>true</IsTruncated>" in page.text
    assert "<NextPartNumberMarker>1000</NextPartNumberMarker>" in page.text
    rest = request(
        local_server, "GET", bucket, key, f"max-parts=1000&part-number-marker=1000&uploadId={upload_id}"
    )
    assert rest.text.count("<Part>") == 101
    assert request(local_server, "DELETE", bucket, key, f"uploadId={upload_id}").status_code == 204


def test_upload_part_copy_with_range(local_server: ServerHandle, bucket: str) -> None:
    source = os.urandom(3 * PART)
    assert request(local_server, "PUT", bucket, "src", content=source).status_code == 200
    upload_id = initiate(local_server, bucket, "assembled")
    copied = request(
        local_server,
        "PUT",
        bucket,
        "assembled",
        f"partNumber=1&uploadId={upload_id}",
        headers={"x-kss-copy-source": f"/{bucket}/src", "x-kss-copy-source-range": f"bytes=0-{PART}"},
    )
    assert copied.status_code == 200, copied.text
    assert f"<ChecksumCRC64ECMA>{crc64(source[: PART + 1])}</ChecksumCRC64ECMA>" in copied.text
    etag1 = copied.text.split("<ETag>")[1].split("</ETag>")[0].replace("&quot;", '"')
    etag2 = upload_part(local_server, bucket, "assembled", upload_id, 2, b"tail")
    assert complete(local_server, bucket, "assembled", upload_id, [(1, etag1), (2, etag2)]).status_code == 200
    assert request(local_server, "GET", bucket, "assembled").content == source[: PART + 1] + b"tail"


def test_delete_bucket_with_only_pending_uploads_aborts_them(local_server: ServerHandle, bucket: str) -> None:
    """S3's behaviour (KS3 documents 409 BucketNotEmpty here): the uploads go, and their part files too."""
    upload_id = initiate(local_server, bucket, "pending")
    upload_part(local_server, bucket, "pending", upload_id, 1, os.urandom(PART))
    upload_part(local_server, bucket, "pending", upload_id, 3, b"out of place")  # a part body of its own
    before = {p for p in (local_server.root / "data").rglob("*") if p.is_file()}
    assert request(local_server, "DELETE", bucket).status_code == 204
    after = {p for p in (local_server.root / "data").rglob("*") if p.is_file()}
    assert [p for p in before if upload_id in p.name], "part 1 was not written in place (test premise)"
    assert not [p for p in after if upload_id in p.name], "the upload's assembly file outlived its bucket"
    assert len(before - after) == 2  # the assembly file and part 3's own body
    assert request(local_server, "PUT", bucket).status_code == 200
    response = request(local_server, "GET", bucket, "pending", f"uploadId={upload_id}")
    assert (response.status_code, error_code(response)) == (404, "NoSuchUpload")


def test_a_repeated_complete_is_answered_only_within_its_window(server_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "root"
    server = server_factory(root=root)
    assert request(server, "PUT", "replay").status_code == 200
    upload_id = initiate(server, "replay", "obj")
    parts = [(1, upload_part(server, "replay", "obj", upload_id, 1, b"only part"))]
    first = complete(server, "replay", "obj", upload_id, parts)
    assert first.status_code == 200
    assert complete(server, "replay", "obj", upload_id, parts).text == first.text  # the same answer, later
    server.stop()
    with sqlite3.connect(root / "meta.sqlite3") as db:  # 16 minutes pass
        db.execute("UPDATE completed_uploads SET completed = completed - 960")
    server = server_factory(root=root)
    again = complete(server, "replay", "obj", upload_id, parts)
    assert (again.status_code, error_code(again)) == (404, "NoSuchUpload")
    assert request(server, "GET", "replay", "obj").content == b"only part"


def test_list_multipart_uploads_pages(local_server: ServerHandle, bucket: str) -> None:
    ids = sorted((key, initiate(local_server, bucket, key)) for key in ["a/1", "a/2", "b", "b", "c/x"])
    seen = []
    key_marker = upload_marker = ""
    for _ in range(10):
        query = f"max-uploads=2&uploads&key-marker={key_marker}&upload-id-marker={upload_marker}"
        text = request(local_server, "GET", bucket, query=query).text
        seen += [
            (u.split("<Key>")[1].split("</Key>")[0], u.split("<UploadId>")[1].split("</UploadId>")[0])
            for u in text.split("<Upload>")[1:]
        ]
        if "<IsTruncated>true</IsTruncated>" not in text:
            break
        key_marker = text.split("<NextKeyMarker>")[1].split("</NextKeyMarker>")[0]
        upload_marker = text.split("<NextUploadIdMarker>")[1].split("</NextUploadIdMarker>")[0]
    assert seen == ids
    rolled = request(local_server, "GET", bucket, query="delimiter=/&uploads").text
    assert rolled.count("<CommonPrefixes>") == 2 and rolled.count("<Upload>") == 2


@pytest.mark.parametrize(
    "prolog",
    [
        '<!DOCTYPE CompleteMultipartUpload [<!ENTITY e "x">]>',
        '<!DOCTYPE CompleteMultipartUpload SYSTEM "file:///etc/passwd">',
    ],
    ids=["internal-subset", "external-dtd"],
)
def test_a_doctype_in_a_request_body_is_refused(local_server: ServerHandle, bucket: str, prolog: str) -> None:
    """Issue 15 point 11: request XML with a DOCTYPE is refused unparsed (400 MalformedXML), for
    Complete, multi-object Delete and ACL bodies alike; nothing changes."""
    assert request(local_server, "PUT", bucket, "kept", content=b"kept").status_code == 200
    upload = request(local_server, "POST", bucket, "doc.bin", "uploads")
    upload_id = upload.text.split("<UploadId>")[1].split("</UploadId>")[0]
    part = request(local_server, "PUT", bucket, "doc.bin", f"partNumber=1&uploadId={upload_id}", content=b"p")
    etag = part.headers["ETag"]
    complete = (
        prolog + f"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag></Part>"
        "</CompleteMultipartUpload>"
    ).encode()
    answer = request(local_server, "POST", bucket, "doc.bin", f"uploadId={upload_id}", content=complete)
    assert (answer.status_code, error_code(answer)) == (400, "MalformedXML")
    assert "Document type declarations" in answer.text
    delete = (
        prolog.replace("CompleteMultipartUpload", "Delete")
        + "<Delete><Object><Key>kept</Key></Object></Delete>"
    ).encode()
    md5 = base64.b64encode(hashlib.md5(delete).digest()).decode()
    answer = request(
        local_server, "POST", bucket, None, "delete", headers={"Content-MD5": md5}, content=delete
    )
    assert (answer.status_code, error_code(answer)) == (400, "MalformedXML")
    acl = (
        prolog.replace("CompleteMultipartUpload", "AccessControlPolicy") + "<AccessControlPolicy/>"
    ).encode()
    answer = request(local_server, "PUT", bucket, "kept", "acl", content=acl)
    assert (answer.status_code, error_code(answer)) == (400, "MalformedXML")
    utf16 = '<?xml version="1.0" encoding="UTF-16"?><Delete><Object><Key>kept</Key></Object></Delete>'.encode(
        "utf-16"
    )
    md5 = base64.b64encode(hashlib.md5(utf16).digest()).decode()
    answer = request(
        local_server, "POST", bucket, None, "delete", headers={"Content-MD5": md5}, content=utf16
    )
    assert (answer.status_code, error_code(answer)) == (400, "MalformedXML")
    assert request(local_server, "GET", bucket, "kept").content == b"kept"
    assert upload_id in request(local_server, "GET", bucket, None, "uploads").text
