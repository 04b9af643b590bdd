"""The S3 dialect S3 tools rely on (issue 15 point 12), checked with boto3 against local-server.

Each test is one behaviour of AWS S3: a 304 carries the ETag; a repeated CompleteMultipartUpload of the
same parts returns the first result while the object is still the one it made; deleting a bucket that
holds only in-progress uploads succeeds and aborts them; ListObjectsV2 echoes the continuation token;
`encoding-type=url` encodes Prefix, Delimiter and StartAfter too (boto3 asks for it by default and
decodes them); a copy of a key onto itself with nothing changed is 400 InvalidRequest. Where KS3 is known
to differ is written down in ks3sync/localserver/README.md ("S3 dialect").
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from tests.serverkit import ServerHandle, unique_bucket_name

boto3 = pytest.importorskip("boto3")
from botocore.config import Config  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

PART = 100 * 1024  # KS3's minimum part size (the server enforces it)


@pytest.fixture
def s3(local_server: ServerHandle) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=local_server.endpoint,
        region_name="us-east-1",
        aws_access_key_id=local_server.access_key,
        aws_secret_access_key=local_server.secret_key,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


@pytest.fixture
def s3_bucket(s3: Any) -> Iterator[str]:
    name = unique_bucket_name("s3")
    s3.create_bucket(Bucket=name)
    yield name


def _code(error: ClientError) -> tuple[int, str]:
    return error.response["ResponseMetadata"]["HTTPStatusCode"], error.response["Error"]["Code"]


def _multipart(s3: Any, bucket: str, key: str, datas: list[bytes]) -> tuple[str, dict[str, Any]]:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts = [
        {
            "PartNumber": n,
            "ETag": s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=n, Body=data)[
                "ETag"
            ],
        }
        for n, data in enumerate(datas, 1)
    ]
    return upload_id, {"Parts": parts}


def test_not_modified_carries_the_etag(s3: Any, s3_bucket: str) -> None:
    etag = s3.put_object(Bucket=s3_bucket, Key="k", Body=b"hello", CacheControl="max-age=60")["ETag"]
    for conditions in ({"IfNoneMatch": etag}, {"IfModifiedSince": "2100-01-01T00:00:00Z"}):
        with pytest.raises(ClientError) as raised:
            s3.get_object(Bucket=s3_bucket, Key="k", **conditions)
        headers = raised.value.response["ResponseMetadata"]["HTTPHeaders"]
        assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
        assert headers["etag"] == etag
        assert "last-modified" in headers and headers["cache-control"] == "max-age=60"
    with pytest.raises(ClientError) as raised:
        s3.head_object(Bucket=s3_bucket, Key="k", IfNoneMatch=etag)
    assert raised.value.response["ResponseMetadata"]["HTTPHeaders"]["etag"] == etag


def test_a_repeated_complete_returns_the_same_result(s3: Any, s3_bucket: str) -> None:
    datas = [os.urandom(PART), b"tail"]
    upload_id, parts = _multipart(s3, s3_bucket, "mp", datas)
    first = s3.complete_multipart_upload(
        Bucket=s3_bucket, Key="mp", UploadId=upload_id, MultipartUpload=parts
    )
    again = s3.complete_multipart_upload(
        Bucket=s3_bucket, Key="mp", UploadId=upload_id, MultipartUpload=parts
    )
    assert (again["ETag"], again["Key"], again["Bucket"]) == (first["ETag"], "mp", s3_bucket)
    assert s3.get_object(Bucket=s3_bucket, Key="mp")["Body"].read() == b"".join(datas)
    # Not for another part list ...
    other = {"Parts": parts["Parts"][:1]}
    with pytest.raises(ClientError) as raised:
        s3.complete_multipart_upload(Bucket=s3_bucket, Key="mp", UploadId=upload_id, MultipartUpload=other)
    assert _code(raised.value) == (404, "NoSuchUpload")
    # ... nor for another key, nor once the key holds another object.
    with pytest.raises(ClientError) as raised:
        s3.complete_multipart_upload(Bucket=s3_bucket, Key="other", UploadId=upload_id, MultipartUpload=parts)
    assert _code(raised.value) == (404, "NoSuchUpload")
    s3.put_object(Bucket=s3_bucket, Key="mp", Body=b"overwritten")
    with pytest.raises(ClientError) as raised:
        s3.complete_multipart_upload(Bucket=s3_bucket, Key="mp", UploadId=upload_id, MultipartUpload=parts)
    assert _code(raised.value) == (404, "NoSuchUpload")
    assert s3.get_object(Bucket=s3_bucket, Key="mp")["Body"].read() == b"overwritten"


def test_a_complete_after_an_abort_is_no_such_upload(s3: Any, s3_bucket: str) -> None:
    upload_id, parts = _multipart(s3, s3_bucket, "aborted", [b"x"])
    s3.abort_multipart_upload(Bucket=s3_bucket, Key="aborted", UploadId=upload_id)
    with pytest.raises(ClientError) as raised:
        s3.complete_multipart_upload(
            Bucket=s3_bucket, Key="aborted", UploadId=upload_id, MultipartUpload=parts
        )
    assert _code(raised.value) == (404, "NoSuchUpload")


def test_deleting_a_bucket_with_only_uploads_in_progress_aborts_them(s3: Any) -> None:
    name = unique_bucket_name("s3")
    s3.create_bucket(Bucket=name)
    upload_id, _ = _multipart(s3, name, "pending", [os.urandom(PART), b"tail"])
    s3.create_multipart_upload(Bucket=name, Key="never-written")
    s3.delete_bucket(Bucket=name)
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.create_bucket(Bucket=name)  # the name is free, and nothing of the old uploads came back with it
    assert s3.list_multipart_uploads(Bucket=name).get("Uploads", []) == []
    with pytest.raises(ClientError) as raised:
        s3.list_parts(Bucket=name, Key="pending", UploadId=upload_id)
    assert _code(raised.value) == (404, "NoSuchUpload")
    s3.delete_bucket(Bucket=name)


def test_a_bucket_with_objects_is_still_not_empty(s3: Any, s3_bucket: str) -> None:
    s3.put_object(Bucket=s3_bucket, Key="k", Body=b"x")
    upload_id, _ = _multipart(s3, s3_bucket, "pending", [b"x"])
    with pytest.raises(ClientError) as raised:
        s3.delete_bucket(Bucket=s3_bucket)
    assert _code(raised.value) == (409, "BucketNotEmpty")
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=s3_bucket)["Uploads"]] == [upload_id]


def test_list_objects_v2_echoes_the_continuation_token(s3: Any, s3_bucket: str) -> None:
    for i in range(5):
        s3.put_object(Bucket=s3_bucket, Key=f"k{i}", Body=b"x")
    first = s3.list_objects_v2(Bucket=s3_bucket, MaxKeys=2)
    token = first["NextContinuationToken"]
    second = s3.list_objects_v2(Bucket=s3_bucket, MaxKeys=2, ContinuationToken=token, StartAfter="k0")
    assert second["ContinuationToken"] == token
    assert second["StartAfter"] == "k0"  # echoed, though the token decides where the page starts
    assert [o["Key"] for o in second["Contents"]] == ["k2", "k3"]
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=s3_bucket, MaxKeys=2)
        for o in page["Contents"]
    ]
    assert keys == [f"k{i}" for i in range(5)]


@pytest.mark.parametrize("prefix", ["100% +a b/", "dir%2F/", "ü é/"])
def test_url_encoding_covers_prefix_delimiter_and_start_after(s3: Any, s3_bucket: str, prefix: str) -> None:
    """boto3 sends encoding-type=url by default and decodes Prefix, Delimiter, StartAfter, Marker, keys and
    common prefixes: any field the server leaves raw would come back altered ('%' decoded)."""
    keys = [f"{prefix}a%20b+c", f"{prefix}sub%/x", f"{prefix}z"]
    for key in keys:
        s3.put_object(Bucket=s3_bucket, Key=key, Body=b"x")
    v2 = s3.list_objects_v2(Bucket=s3_bucket, Prefix=prefix, Delimiter="%/", StartAfter=prefix)
    assert (v2["Prefix"], v2["Delimiter"], v2["StartAfter"]) == (prefix, "%/", prefix)
    assert [o["Key"] for o in v2["Contents"]] == [keys[0], keys[2]]
    assert [p["Prefix"] for p in v2["CommonPrefixes"]] == [f"{prefix}sub%/"]
    v1 = s3.list_objects(Bucket=s3_bucket, Prefix=prefix, Delimiter="%/", Marker=f"{prefix}a", MaxKeys=1)
    assert (v1["Delimiter"], v1["Marker"]) == ("%/", f"{prefix}a")
    # V1's Prefix is encoded too (S3's documentation lists it), but botocore does not decode that one field
    assert v1["Prefix"] == quote(prefix, safe="/")
    assert v1["NextMarker"] == keys[0] and [o["Key"] for o in v1["Contents"]] == [keys[0]]
    versions = s3.list_object_versions(
        Bucket=s3_bucket, Prefix=prefix, Delimiter="%/", KeyMarker=f"{prefix}a"
    )
    assert (versions["Prefix"], versions["Delimiter"], versions["KeyMarker"]) == (prefix, "%/", f"{prefix}a")
    assert [v["Key"] for v in versions["Versions"]] == [keys[0], keys[2]]


def test_a_copy_onto_itself_must_change_something(s3: Any, s3_bucket: str) -> None:
    s3.put_object(Bucket=s3_bucket, Key="self", Body=b"data", Metadata={"a": "1"})
    source = {"Bucket": s3_bucket, "Key": "self"}
    with pytest.raises(ClientError) as raised:
        s3.copy_object(Bucket=s3_bucket, Key="self", CopySource=source)
    assert _code(raised.value) == (400, "InvalidRequest")
    assert "copy an object to itself" in raised.value.response["Error"]["Message"]
    with pytest.raises(ClientError):  # the same storage class is no change either
        s3.copy_object(Bucket=s3_bucket, Key="self", CopySource=source, StorageClass="STANDARD")
    s3.copy_object(
        Bucket=s3_bucket, Key="self", CopySource=source, MetadataDirective="REPLACE", Metadata={"a": "2"}
    )
    assert s3.head_object(Bucket=s3_bucket, Key="self")["Metadata"] == {"a": "2"}
    s3.copy_object(Bucket=s3_bucket, Key="self", CopySource=source, StorageClass="STANDARD_IA")
    assert s3.head_object(Bucket=s3_bucket, Key="self")["StorageClass"] == "STANDARD_IA"
    s3.copy_object(Bucket=s3_bucket, Key="elsewhere", CopySource=source)  # another key: a plain copy
    assert s3.get_object(Bucket=s3_bucket, Key="elsewhere")["Body"].read() == b"data"
