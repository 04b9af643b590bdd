"""Fuzz the local server over real HTTP (hypothesis, bounded): correctly signed requests whose bodies
(CompleteMultipartUpload, multi-object Delete, ACL) and headers (Range, x-kss-copy-source, ACL, metadata)
are hostile. The server must answer every one with a KS3 error or a success - never a 5xx - and keep
serving; a body it refuses changes nothing in the bucket.
"""

from __future__ import annotations

import base64
import hashlib
from email.utils import formatdate

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ks3sync.ks3 import Client, ClientConfig
from ks3sync.ks3.signing import authorization, url_encode
from tests.serverkit import ServerHandle

from .strategies import HEADER_VALUE, complete_multipart_documents, delete_documents, mutated, xml_documents

HTTP_FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _send(
    server: ServerHandle,
    method: str,
    bucket: str,
    key: str | None,
    *,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> httpx.Response:
    # Header values travel as bytes; the server reads them as Latin-1, so that is what gets signed.
    headers = dict(headers or {})
    headers["Date"] = formatdate(usegmt=True)
    if body:
        headers["Content-MD5"] = base64.b64encode(hashlib.md5(body).digest()).decode()
    headers["Authorization"] = authorization(
        server.access_key, server.secret_key, method, bucket, key, headers, params
    )
    wire = {k.encode("latin-1"): v.encode("latin-1") for k, v in headers.items()}
    url = f"{server.endpoint}/{bucket}" + (f"/{url_encode(key)}" if key else "")
    query = "&".join(k if v == "" else f"{k}={v}" for k, v in (params or {}).items())
    return httpx.request(method, url + ("?" + query if query else ""), headers=wire, content=body, timeout=30)


@pytest.fixture
def seeded(local_server: ServerHandle, bucket: str) -> tuple[ServerHandle, str, str]:
    with Client(
        ClientConfig(
            endpoint=local_server.endpoint,
            access_key=local_server.access_key,
            secret_key=local_server.secret_key,
        )
    ) as client:
        client.put_object(bucket, "keep.txt", b"0123456789")
        upload_id = client.initiate_multipart(bucket, "mp.bin")
    return local_server, bucket, upload_id


def _alive(server: ServerHandle, bucket: str) -> None:
    response = _send(server, "GET", bucket, "keep.txt")
    assert (response.status_code, response.content) == (200, b"0123456789")


@HTTP_FUZZ
@given(
    body=st.one_of(
        complete_multipart_documents(),
        mutated(xml_documents("CompleteMultipartUpload", ["Part", "PartNumber", "ETag"])),
    )
)
def test_complete_multipart_bodies(seeded: tuple[ServerHandle, str, str], body: bytes) -> None:
    server, bucket, upload_id = seeded
    response = _send(server, "POST", bucket, "mp.bin", params={"uploadId": upload_id}, body=body)
    assert response.status_code < 500, (response.status_code, response.text[:500])
    _alive(server, bucket)


@HTTP_FUZZ
@given(
    body=st.one_of(
        delete_documents(), mutated(xml_documents("Delete", ["Object", "Key", "VersionId", "Quiet"]))
    )
)
def test_multi_delete_bodies(seeded: tuple[ServerHandle, str, str], body: bytes) -> None:
    server, bucket, _ = seeded
    response = _send(server, "POST", bucket, None, params={"delete": ""}, body=body)
    assert response.status_code < 500, (response.status_code, response.text[:500])
    _alive(server, bucket)  # keep.txt is never named by the generated bodies' keys... unless by chance:
    # the tricky-text alphabet does not contain "keep.txt", so its survival is a real check.


@HTTP_FUZZ
@given(
    body=mutated(
        xml_documents(
            "AccessControlPolicy",
            ["Owner", "ID", "AccessControlList", "Grant", "Grantee", "URI", "Permission"],
            depth=3,
        )
    )
)
def test_acl_bodies(seeded: tuple[ServerHandle, str, str], body: bytes) -> None:
    server, bucket, _ = seeded
    response = _send(server, "PUT", bucket, "keep.txt", params={"acl": ""}, body=body)
    assert response.status_code < 500, (response.status_code, response.text[:500])
    _alive(server, bucket)


HEADER_NAMES = st.sampled_from(
    [
        "Range",
        "x-kss-copy-source",
        "x-kss-acl",
        "x-kss-meta-a",
        "If-Match",
        "If-Modified-Since",
        "x-kss-storage-class",
        "Content-Type",
    ]
)


@HTTP_FUZZ
@given(
    name=HEADER_NAMES,
    value=HEADER_VALUE.filter(lambda v: v.isprintable() and v == v.strip()),
    method=st.sampled_from(["GET", "HEAD", "PUT"]),
)
def test_hostile_headers(seeded: tuple[ServerHandle, str, str], name: str, value: str, method: str) -> None:
    server, bucket, _ = seeded
    headers = {name: value.encode("utf-8").decode("latin-1")}  # the UTF-8 bytes, as the server will read them
    key = "keep.txt" if method != "PUT" else "fuzz-target.txt"
    response = _send(server, method, bucket, key, headers=headers, body=b"x" if method == "PUT" else b"")
    assert response.status_code < 500, (name, value, response.status_code, response.text[:500])
    _alive(server, bucket)
