"""Proxies (ks3sync/ks3/proxies.py, wire.py): which proxy the environment or the caller names, the NO_PROXY
match, credentials that never show, and requests through a real forward proxy on loopback (tinyproxy,
tests/proxykit.py) -- plain HTTP forwarded, HTTPS tunnelled with CONNECT -- proved from the proxy's own
log."""

from __future__ import annotations

import hashlib
import ssl

import pytest

from ks3sync.ks3 import (
    KS3ServiceError,
    KS3TransportError,
    ProxySettings,
    ProxyURL,
)
from ks3sync.ks3.checksums import crc64
from tests.ks3.scripted_http import Reply, ScriptedServer, Seen, client_for
from tests.proxykit import TinyProxy
from tests.tlskit import make_ca, make_cert

PASSWORD = "pr0xy-s3cret-never-shown"


def ok(request: Seen) -> Reply:
    body = b"got it" if request.method == "GET" else b""
    checked = body if request.method == "GET" else request.body
    return Reply(
        200,
        {"ETag": f'"{hashlib.md5(checked).hexdigest()}"', "x-kss-checksum-crc64ecma": str(crc64(checked, 0))},
        body,
    )


def via(url: str) -> ProxySettings:
    return ProxySettings(ProxyURL.parse(url))


# --- choosing the proxy -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("http://proxy.example:3128", "http://proxy.example:3128"),
        ("proxy.example:8080", "http://proxy.example:8080"),
        ("https://user:p%40ss@proxy.example", "https://user:****@proxy.example:443"),
        ("http://user@[::1]:3128", "http://user@[::1]:3128"),
    ],
)
def test_proxy_urls_parse_and_show_without_their_password(text: str, shown: str) -> None:
    proxy = ProxyURL.parse(text)
    assert proxy.masked() == shown and str(proxy) == shown
    assert "p@ss" not in repr(proxy) and "p%40ss" not in repr(proxy)
    if "p%40ss" in text:
        assert (proxy.username, proxy.password) == ("user", "p@ss")  # percent-decoded, as curl does


@pytest.mark.parametrize(
    "text", ["socks5://u:secret@h:1080", "ftp://h", "http://", "http://h:99999", "http://h/path"]
)
def test_bad_proxy_urls_are_refused_with_the_password_masked(text: str) -> None:
    with pytest.raises(ValueError, match="proxy") as info:
        ProxyURL.parse(text)
    assert "secret" not in str(info.value)


def test_the_environment_is_read_like_curl() -> None:
    env = {
        "HTTPS_PROXY": "http://upper:1",
        "https_proxy": "http://lower:2",
        "ALL_PROXY": "http://all:3",
        "HTTP_PROXY": "http://plain:4",
    }
    assert ProxySettings().resolve("https", env).proxy == ProxyURL.parse("http://lower:2")  # lower case first
    assert ProxySettings().resolve("http", env).proxy == ProxyURL.parse("http://plain:4")
    assert ProxySettings().resolve("http", {"ALL_PROXY": "all:3"}).proxy == ProxyURL.parse("http://all:3")
    # Under CGI an upper-case HTTP_PROXY may come from a request's "Proxy:" header (httpoxy): ignored.
    assert (
        ProxySettings().resolve("http", {"HTTP_PROXY": "http://evil:1", "REQUEST_METHOD": "GET"}).proxy
        is None
    )
    assert ProxySettings.direct().resolve("https", env).proxy is None
    explicit = via("http://mine:8")
    assert explicit.resolve("https", env).proxy == ProxyURL.parse("http://mine:8")  # beats the environment
    with pytest.raises(ValueError, match="HTTPS_PROXY"):
        ProxySettings().resolve("https", {"HTTPS_PROXY": "socks5://u:secret@h"})


@pytest.mark.parametrize(
    ("no_proxy", "host", "bypassed"),
    [
        ("example.com", "example.com", True),
        ("example.com", "bucket.example.com", True),
        (".example.com", "bucket.example.com", True),
        ("*.example.com", "example.com", True),
        ("example.com", "badexample.com", False),
        ("ksyuncs.com,localhost", "localhost", True),
        ("10.0.0.0/8", "10.1.2.3", True),
        ("10.0.0.0/8", "11.1.2.3", False),
        ("127.0.0.1", "127.0.0.1", True),
        ("::1", "::1", True),
        ("[::1]", "::1", True),
        ("*", "anything.example", True),
        ("EXAMPLE.COM", "Bucket.Example.com", True),
        ("other.example", "example.com", False),
    ],
)
def test_no_proxy_matches_names_suffixes_addresses_and_ranges(
    no_proxy: str, host: str, bypassed: bool
) -> None:
    for settings in (ProxySettings(), via("http://mine:8")):  # an explicit proxy honours NO_PROXY too
        route = settings.resolve("https", {"HTTPS_PROXY": "http://p:1", "NO_PROXY": no_proxy})
        assert (route.for_host(host) is None) == bypassed


# --- through a real proxy ---------------------------------------------------------------------------


def test_plain_http_is_forwarded_by_the_proxy_with_the_target_as_signed(servers, tmp_path) -> None:
    server = servers(ok, ok)
    # keepalive_expiry=0: a connection per request, so that tinyproxy (which relays a kept-alive
    # connection's later requests without parsing them) logs each one.
    with (
        TinyProxy(tmp_path / "proxy") as proxy,
        client_for(server, proxy=via(proxy.url), keepalive_expiry=0) as client,
    ):
        client.put_object("bk", "a/../b", b"data")  # a dot segment: the signature covers it verbatim
        with client.get_object("bk", "a/../b") as response:
            assert response.read() == b"got it"
        seen = proxy.requests(at_least=2)
    port = server.endpoint.rpartition(":")[2]
    assert seen == [
        f"PUT http://127.0.0.1:{port}/bk/a/../b HTTP/1.1",
        f"GET http://127.0.0.1:{port}/bk/a/../b HTTP/1.1",
    ]
    assert [request.target for request in server.requests] == ["/bk/a/../b", "/bk/a/../b"]


def tls_server(servers, tmp_path, *replies) -> tuple[ScriptedServer, str]:
    """A scripted https server with a certificate for 127.0.0.1, and the CA bundle that trusts it."""
    ca = make_ca(tmp_path)
    pair = make_cert(tmp_path, ca)
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(pair.cert, pair.key)
    return servers(*replies, tls=server_side), str(ca.cert)


def test_https_goes_through_a_connect_tunnel(servers, tmp_path) -> None:
    server, cert = tls_server(servers, tmp_path, ok, ok)
    with (
        TinyProxy(tmp_path / "proxy") as proxy,
        client_for(server, proxy=via(proxy.url), ca_bundle=cert) as client,
    ):
        client.put_object("bk", "secret-path", b"data")
        client.put_object("bk", "again", b"data")
        seen = proxy.requests(at_least=1)
    port = server.endpoint.rpartition(":")[2]
    assert seen == [f"CONNECT 127.0.0.1:{port} HTTP/1.1"]  # one tunnel, reused; the paths stay inside TLS
    assert [request.target for request in server.requests] == ["/bk/secret-path", "/bk/again"]


def test_the_environments_proxy_is_used_unless_no_proxy_names_the_host(
    servers, tmp_path, monkeypatch
) -> None:
    server = servers(ok, ok)
    with TinyProxy(tmp_path / "proxy") as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)  # (each client below has its own connections)
        with client_for(server) as client:
            client.put_object("bk", "via-env", b"data")
        assert len(proxy.requests(at_least=1)) == 1
        monkeypatch.setenv("no_proxy", "localhost,127.0.0.1")
        with client_for(server) as client:
            client.put_object("bk", "direct", b"data")
        assert len(proxy.requests()) == 1  # the second request never reached the proxy
    assert [request.target for request in server.requests] == ["/bk/via-env", "/bk/direct"]


def test_proxy_credentials_are_sent_and_never_shown(servers, tmp_path) -> None:
    server = servers(ok)
    with TinyProxy(tmp_path / "proxy", auth=("ks3user", PASSWORD)) as proxy:
        bare = f"http://127.0.0.1:{proxy.port}"
        # tinyproxy refuses with 401 (RFC 9110 says 407); either way the proxy's own answer, not retried.
        with client_for(server, proxy=via(bare)) as client, pytest.raises(KS3ServiceError) as refused:
            client.put_object("bk", "k", b"data")
        assert refused.value.status in (401, 407) and not refused.value.retryable
        wrong = f"http://ks3user:wrong-{PASSWORD}@127.0.0.1:{proxy.port}"
        with client_for(server, proxy=via(wrong)) as client, pytest.raises(KS3ServiceError) as refused:
            client.put_object("bk", "k", b"data")
        assert refused.value.status in (401, 407) and PASSWORD not in str(refused.value)
        with client_for(server, proxy=via(proxy.url)) as client:
            client.put_object("bk", "k", b"data")
            assert PASSWORD not in repr(client.config)
    assert [request.target for request in server.requests] == ["/bk/k"]


def test_a_refused_tunnel_is_a_transport_error_without_the_password(servers, tmp_path) -> None:
    server, cert = tls_server(servers, tmp_path, ok)
    with TinyProxy(tmp_path / "proxy", auth=("ks3user", PASSWORD)) as proxy:
        wrong = f"http://ks3user:wrong-{PASSWORD}@127.0.0.1:{proxy.port}"
        with client_for(server, proxy=via(wrong), ca_bundle=cert) as client:
            with pytest.raises(KS3TransportError, match="ProxyError: 40[17]") as refused:
                client.head_bucket("bk")
    assert PASSWORD not in str(refused.value) and server.requests == []
