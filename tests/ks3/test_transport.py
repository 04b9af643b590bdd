"""Request assembly of ``Transport.attempt``: what reaches the wire. A scripted loopback server
(scripted_http.py) records each request as it arrived; the integration tests send the same requests
to the local server."""

from __future__ import annotations

import hashlib

import pytest

from ks3sync.ks3 import Client, ClientConfig, FileRangeBody, KS3IntegrityError, RetryPolicy
from ks3sync.ks3.checksums import crc64
from ks3sync.ks3.objectinfo import CRC_HEADER
from tests.ks3.scripted_http import Reply, ScriptedServer, Seen

BODY = b"x" * 5000


def echo_put(request: Seen) -> Reply:
    return Reply(
        200, {"ETag": f'"{hashlib.md5(request.body).hexdigest()}"', CRC_HEADER: str(crc64(request.body, 0))}
    )


@pytest.fixture()
def server():
    scripted = ScriptedServer(echo_put)
    yield scripted
    scripted.close()


@pytest.mark.parametrize("source", ["bytes", "file", "large-file"])
def test_put_request_shape(tmp_path, server: ScriptedServer, source: str) -> None:
    data = BODY if source != "large-file" else b"y" * (300 * 1024)  # above the inline limit: streamed
    path = tmp_path / "f"
    path.write_bytes(data)
    body = data if source == "bytes" else FileRangeBody(path)
    config = ClientConfig(endpoint=server.endpoint, access_key="AK", secret_key="SK", timeout=7.0)
    with Client(config) as client:
        result = client.put_object("bkt", "dir/k ey", body)
    [request] = server.requests
    assert request.method == "PUT"
    assert request.target == "/bkt/dir/k%20ey"
    assert request.body == data
    assert request.headers["Content-Length"] == str(len(data))
    assert request.headers["User-Agent"] == "ks3sync"
    assert request.headers["Accept-Encoding"] == "identity"
    assert request.headers["Host"] == server.endpoint.removeprefix("http://")
    assert "Transfer-Encoding" not in request.headers
    assert request.headers["Authorization"].startswith("KSS AK:")
    assert request.headers["Date"].endswith(" GMT")
    assert result.crc64 == crc64(data, 0)


def test_a_wrong_crc_from_the_service_is_refused_for_inline_bodies() -> None:
    def answer(request: Seen) -> Reply:
        return Reply(200, {"ETag": hashlib.md5(request.body).hexdigest(), CRC_HEADER: "1"})

    server = ScriptedServer(answer)
    config = ClientConfig(
        endpoint=server.endpoint, access_key="AK", secret_key="SK", retry=RetryPolicy(max_attempts=1)
    )
    try:
        with Client(config) as client, pytest.raises(KS3IntegrityError, match="CRC-64"):
            client.put_object("bkt", "k", BODY)
    finally:
        server.close()
