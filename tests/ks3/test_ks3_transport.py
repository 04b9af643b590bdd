"""Request assembly of ``Transport.attempt``: what reaches the httpx pool, on the direct-to-pool path and
on the ``Client.send`` fallback. httpx.MockTransport records the request (no network: these check the
request's shape; the integration tests send the same requests to the local server)."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from ks3sync.ks3 import Client, ClientConfig, FileRangeBody, KS3IntegrityError, RetryPolicy
from ks3sync.ks3.checksums import crc64
from ks3sync.ks3.objectinfo import CRC_HEADER

BODY = b"x" * 5000


def recording_client(seen: list[httpx.Request], *, fallback: bool) -> Client:
    def answer(request: httpx.Request) -> httpx.Response:
        body = request.read()
        seen.append(request)
        return httpx.Response(200, headers={"ETag": f'"{hashlib.md5(body).hexdigest()}"',
                                            CRC_HEADER: str(crc64(body, 0))})

    client = Client(ClientConfig(endpoint="http://127.0.0.1:9", access_key="AK", secret_key="SK", timeout=7.0),
                    transport=httpx.MockTransport(answer))
    if fallback:
        client._transport._pick_pool = None  # as with an httpx that has no _transport_for_url
    return client


@pytest.mark.parametrize("fallback", [False, True])
@pytest.mark.parametrize("source", ["bytes", "file", "large-file"])
def test_put_request_shape_is_the_same_on_both_paths(tmp_path, fallback: bool, source: str) -> None:
    data = BODY if source != "large-file" else b"y" * (300 * 1024)  # above the inline limit: streamed
    path = tmp_path / "f"
    path.write_bytes(data)
    body = data if source == "bytes" else FileRangeBody(path)
    seen: list[httpx.Request] = []
    with recording_client(seen, fallback=fallback) as client:
        result = client.put_object("bkt", "dir/k ey", body)
    [request] = seen
    assert request.method == "PUT"
    assert str(request.url) == "http://127.0.0.1:9/bkt/dir/k%20ey"
    assert request.headers["Content-Length"] == str(len(data))
    assert request.headers["User-Agent"] == "ks3sync"
    assert request.headers["Accept-Encoding"] == "identity"
    assert request.headers["Host"] == "127.0.0.1:9"
    assert request.headers["Authorization"].startswith("KSS AK:")
    assert request.headers["Date"].endswith(" GMT")
    assert request.extensions["timeout"]["read"] == 7.0
    assert result.crc64 == crc64(data, 0)


def test_a_wrong_crc_from_the_service_is_refused_for_inline_bodies() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"ETag": hashlib.md5(request.read()).hexdigest(), CRC_HEADER: "1"})

    config = ClientConfig(endpoint="http://127.0.0.1:9", access_key="AK", secret_key="SK",
                          retry=RetryPolicy(max_attempts=1))
    with Client(config, transport=httpx.MockTransport(answer)) as client, \
            pytest.raises(KS3IntegrityError, match="CRC-64"):
        client.put_object("bkt", "k", BODY)
