"""The local server's security promises, checked over real HTTP on loopback:

- unsigned requests cannot write or read private data; forged signatures, unknown access keys, a
  signature replayed onto another key/method and a stale Date are all refused (403) and change nothing;
- presigned URLs work until they expire and are refused (403) after;
- the server binds loopback by default and warns loudly when asked to bind 0.0.0.0;
- the request log never holds the secret or a signature;
- a hostile request target (invalid UTF-8 after percent-decoding) gets a 4xx answer, not a crash.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from email.utils import formatdate
from pathlib import Path

import httpx
import pytest

from ks3sync.ks3 import Client, ClientConfig, NoSuchKey
from ks3sync.ks3.signing import authorization, url_encode
from tests.serverkit import ServerHandle


def _client(handle: ServerHandle, secret: str | None = None) -> Client:
    return Client(
        ClientConfig(
            endpoint=handle.endpoint, access_key=handle.access_key, secret_key=secret or handle.secret_key
        )
    )


def _url(handle: ServerHandle, bucket: str, key: str | None = None) -> str:
    return f"{handle.endpoint}/{bucket}" + (f"/{url_encode(key)}" if key is not None else "")


def _signed_headers(
    handle: ServerHandle,
    method: str,
    bucket: str,
    key: str | None,
    *,
    secret: str | None = None,
    access_key: str | None = None,
    date: str | None = None,
) -> dict[str, str]:
    headers = {"Date": date or formatdate(usegmt=True)}
    headers["Authorization"] = authorization(
        access_key or handle.access_key, secret or handle.secret_key, method, bucket, key, headers
    )
    return headers


def _exists(handle: ServerHandle, bucket: str, key: str) -> bool:
    with _client(handle) as client:
        try:
            client.head_object(bucket, key)
        except NoSuchKey:
            return False
        return True


def test_unsigned_write_and_read_of_a_private_bucket_are_refused(
    local_server: ServerHandle, bucket: str
) -> None:
    with _client(local_server) as client:
        client.put_object(bucket, "private.txt", b"secret content")
    put = httpx.put(_url(local_server, bucket, "anon.txt"), content=b"x")
    get = httpx.get(_url(local_server, bucket, "private.txt"))
    listing = httpx.get(_url(local_server, bucket))
    assert (put.status_code, get.status_code, listing.status_code) == (403, 403, 403)
    assert b"secret content" not in get.content and b"private.txt" not in listing.content
    assert not _exists(local_server, bucket, "anon.txt")


@pytest.mark.parametrize(
    "forgery",
    [
        "wrong-secret",
        "unknown-access-key",
        "replayed-onto-other-key",
        "replayed-as-delete",
        "stale-date",
        "no-date",
    ],
)
def test_forged_requests_are_refused_and_change_nothing(
    local_server: ServerHandle, bucket: str, forgery: str
) -> None:
    with _client(local_server) as client:
        client.put_object(bucket, "keep.txt", b"original")
    method, key = ("DELETE", "keep.txt") if forgery == "replayed-as-delete" else ("PUT", "forged.txt")
    if forgery == "wrong-secret":
        headers = _signed_headers(local_server, "PUT", bucket, key, secret="not-the-secret")
    elif forgery == "unknown-access-key":
        headers = _signed_headers(local_server, "PUT", bucket, key, access_key="AKLTnobody")
    elif forgery == "replayed-onto-other-key":
        headers = _signed_headers(local_server, "PUT", bucket, "innocent.txt")
    elif forgery == "replayed-as-delete":
        headers = _signed_headers(local_server, "GET", bucket, "keep.txt")
    elif forgery == "stale-date":
        headers = _signed_headers(
            local_server, "PUT", bucket, key, date=formatdate(time.time() - 3600, usegmt=True)
        )
    else:
        headers = _signed_headers(local_server, "PUT", bucket, key)
        del headers["Date"]
    response = httpx.request(
        method,
        _url(local_server, bucket, key),
        headers=headers,
        content=b"forged" if method == "PUT" else None,
    )
    assert response.status_code == 403, response.text
    assert b"<Code>" in response.content
    assert _exists(local_server, bucket, "keep.txt")
    assert not _exists(local_server, bucket, "forged.txt")
    with _client(local_server) as client, client.get_object(bucket, "keep.txt") as got:
        assert got.read() == b"original"


def test_presigned_url_works_until_it_expires(local_server: ServerHandle, bucket: str) -> None:
    with _client(local_server) as client:
        client.put_object(bucket, "shared.txt", b"shared body")
        expired = client.presign("GET", bucket, "shared.txt", expires_at=int(time.time()) - 1)
        # A URL must work until its Expires second has passed. How soon the first GET is answered is up
        # to the machine's load, so a refusal is a failure only if it came back before the URL expired;
        # otherwise the URL is signed again with a longer life (bounded).
        for life in (2, 4, 8, 16):
            expires_at = int(time.time()) + life
            url = client.presign("GET", bucket, "shared.txt", expires_at=expires_at)
            first = httpx.get(url)
            answered = time.time()
            if first.status_code == 200:
                break
            assert answered > expires_at, f"refused {expires_at - answered:.1f} s before it expired"
        lasting = client.presign("GET", bucket, "shared.txt", expires_in=3600)
    assert (first.status_code, first.content) == (200, b"shared body")
    assert httpx.get(expired).status_code == 403
    # Once the Expires second is over (same clock as the server's), the same URL is refused.
    while time.time() <= expires_at + 1:
        time.sleep(0.05)
    assert httpx.get(url).status_code == 403
    # A valid URL whose key was changed is refused by its signature, not by its age.
    assert httpx.get(lasting).status_code == 200
    assert httpx.get(lasting.replace("shared.txt", "other.txt")).status_code == 403


def test_request_log_holds_no_secret_and_no_signature(local_server: ServerHandle, bucket: str) -> None:
    mark = local_server.mark()
    with _client(local_server) as client:
        client.put_object(bucket, "logged.txt", b"x")
        url = client.presign("GET", bucket, "logged.txt", expires_in=60)
    assert httpx.get(url).status_code == 200
    signature = url.split("Signature=", 1)[1].split("&", 1)[0]
    text = local_server.request_log.read_text(encoding="utf-8")
    assert len(local_server.requests()) > mark
    assert local_server.secret_key not in text
    assert signature not in text
    assert httpx.QueryParams(url.split("?", 1)[1])["Signature"] not in text


def test_invalid_utf8_request_target_gets_a_4xx_not_a_crash(local_server: ServerHandle, bucket: str) -> None:
    headers = _signed_headers(local_server, "GET", bucket, None)
    response = httpx.get(f"{local_server.endpoint}/{bucket}/%FF%FE", headers=headers)
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    # and the server still answers afterwards
    with _client(local_server) as client:
        assert client.head_bucket(bucket)


def _listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as /proc/net/tcp shows them) with a socket LISTENing on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].rsplit(":", 1)
            if int(port_hex, 16) == port and fields[3] == "0A":
                found.add(address)
    return found


def test_server_binds_loopback_by_default(local_server: ServerHandle) -> None:
    assert _listening_addresses(local_server.port) == {"0100007F"}  # 127.0.0.1, little-endian hex


def test_server_warns_when_binding_all_interfaces(tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    env = dict(os.environ, KS3_ACCESS_KEY="AKLTwarn", KS3_SECRET_KEY="warn-secret")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ks3sync",
            "local-server",
            "--root",
            str(tmp_path / "root"),
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--port-file",
            str(port_file),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        deadline = time.monotonic() + 20
        while not port_file.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert port_file.exists(), "server did not start"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            _, stderr = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate(timeout=10)
    text = stderr.decode(errors="replace")
    assert "WARNING" in text and "0.0.0.0" in text and "NON-LOOPBACK" in text
    assert "warn-secret" not in text
