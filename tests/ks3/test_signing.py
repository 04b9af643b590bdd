"""Golden vectors from ks3-protocol.md §2.5 (computed with ks3sdk 1.18.0), plus addressing rules."""

from __future__ import annotations

from urllib.parse import unquote, unquote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ks3sync.ks3 import copy_source, presign_url, sign_v2
from ks3sync.ks3.addressing import Addressing, Endpoint, encode_query
from ks3sync.ks3.signing import canonical_resource, key_path, resource_path, string_to_sign

AK = "AKLTexampleAccessKey01"
SK = "exampleSecretKey/0123456789+abcdefgHIJ="
DATE = "Tue, 05 Mar 2024 08:00:00 GMT"
EXPIRES = 1709632800


@pytest.mark.parametrize(
    ("method", "bucket", "key", "headers", "params", "expected_sts", "expected_sig"),
    [
        pytest.param(
            "GET", None, None, {}, None, f"GET\n\n\n{DATE}\n/", "1Hac86zid2xzYc0zySj0mMh5FII=", id="V1"
        ),
        pytest.param(
            "GET",
            "my-bucket",
            None,
            {},
            {"delimiter": "/", "max-keys": "100", "prefix": "photos/"},
            f"GET\n\n\n{DATE}\n/my-bucket/",
            "KWL90Zzqo6XusyJlcYKbdeg2epw=",
            id="V2",
        ),
        pytest.param(
            "PUT",
            "my-bucket",
            "dir/sub dir/文件 ~(1).txt",
            {
                "Content-MD5": "XrY7u+Ae7tCTyyK7j1rNww==",
                "Content-Type": "text/plain",
                "x-kss-acl": "public-read",
                "X-Kss-Meta-Author": "alice",
                "x-kss-storage-class": "STANDARD_IA",
            },
            None,
            f"PUT\nXrY7u+Ae7tCTyyK7j1rNww==\ntext/plain\n{DATE}\nx-kss-acl:public-read\nx-kss-meta-author:alice\n"
            "x-kss-storage-class:STANDARD_IA\n/my-bucket/dir/sub%20dir/%E6%96%87%E4%BB%B6%20~%281%29.txt",
            "JKw9Rkf+0lbHmL5h8MAcZngoDQ4=",
            id="V3",
        ),
        pytest.param(
            "PUT",
            "my-bucket",
            "big/file.bin",
            {"Content-Type": "application/octet-stream"},
            {"partNumber": "3", "uploadId": "0123456789abcdef0123456789abcdef"},
            f"PUT\n\napplication/octet-stream\n{DATE}\n"
            "/my-bucket/big/file.bin?partNumber=3&uploadId=0123456789abcdef0123456789abcdef",
            "tHKWEUxD0tvxYWc5iCT0vgqwmzo=",
            id="V4",
        ),
        pytest.param(
            "GET",
            "my-bucket",
            "/leading//slashes",
            {},
            {"acl": ""},
            f"GET\n\n\n{DATE}\n/my-bucket/%2Fleading/%2Fslashes?acl",
            "Kn37CWIH3vnQtUfetau3HE5X/3U=",
            id="V5",
        ),
        pytest.param(
            "PUT",
            "dst-bucket",
            "copy of a+b.txt",
            {
                "Content-Type": "application/octet-stream",
                "x-kss-copy-source": "/src-bucket/a%2Fb+c.txt",
                "x-kss-metadata-directive": "REPLACE",
            },
            None,
            f"PUT\n\napplication/octet-stream\n{DATE}\nx-kss-copy-source:/src-bucket/a%2Fb+c.txt\n"
            "x-kss-metadata-directive:REPLACE\n/dst-bucket/copy%20of%20a%2Bb.txt",
            "kQ0wapxZi4ohNCqfSwtqRCMRBBk=",
            id="V6",
        ),
    ],
)
def test_header_signing_golden_vectors(method, bucket, key, headers, params, expected_sts, expected_sig):
    headers = {**headers, "Date": DATE}
    assert string_to_sign(method, canonical_resource(bucket, key, params), headers) == expected_sts
    assert sign_v2(SK, method, bucket, key, headers, params) == expected_sig


VHOST = Addressing.from_config("http://ks3-cn-beijing.ksyuncs.com", None, False)


@pytest.mark.parametrize(
    ("method", "key", "headers", "params", "expected_url"),
    [
        pytest.param(
            "GET",
            "dir/a b.txt",
            None,
            None,
            "http://my-bucket.ks3-cn-beijing.ksyuncs.com/dir/a%20b.txt?Signature=0MMo4oqNRUcZiWG0RkDWYaWJ4Ug%3D"
            "&Expires=1709632800&KSSAccessKeyId=AKLTexampleAccessKey01",
            id="P1",
        ),
        pytest.param(
            "GET",
            "dir/a b.txt",
            None,
            {
                "response-content-type": "text/plain",
                "response-content-disposition": "attachment; filename=x.txt",
            },
            "http://my-bucket.ks3-cn-beijing.ksyuncs.com/dir/a%20b.txt?Signature=v1%2FHKvSOxw%2B3EbP8Ja72uZnw%2Fpo%3D"
            "&Expires=1709632800&KSSAccessKeyId=AKLTexampleAccessKey01&response-content-type=text/plain"
            "&response-content-disposition=attachment%3B%20filename%3Dx.txt",
            id="P2",
        ),
        pytest.param(
            "PUT",
            "up.bin",
            {"Content-Type": "application/octet-stream", "x-kss-acl": "public-read"},
            None,
            "http://my-bucket.ks3-cn-beijing.ksyuncs.com/up.bin?Signature=suzTC6FPwog9Y2imkBQ1q2LJ3a0%3D"
            "&Expires=1709632800&KSSAccessKeyId=AKLTexampleAccessKey01",
            id="P3",
        ),
    ],
)
def test_presigned_url_golden_vectors(method, key, headers, params, expected_url):
    url = presign_url(VHOST, AK, SK, method, "my-bucket", key, EXPIRES, headers=headers, params=params)
    assert url == expected_url


def test_presigned_string_to_sign_p2_sorts_and_signs_raw_values():
    params = {
        "response-content-type": "text/plain",
        "response-content-disposition": "attachment; filename=x.txt",
    }
    sts = string_to_sign("GET", canonical_resource("my-bucket", "dir/a b.txt", params), {}, str(EXPIRES))
    assert sts == (
        "GET\n\n\n1709632800\n/my-bucket/dir/a%20b.txt?response-content-disposition=attachment; filename=x.txt"
        "&response-content-type=text/plain"
    )


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("/lead//x", "/b/%2Flead/%2Fx"),
        ("a//b", "/b/a/%2Fb"),
        ("a///b", "/b/a/%2F/b"),
        ("a//", "/b/a/%2F"),
        ("plain/key.txt", "/b/plain/key.txt"),
    ],
)
def test_double_slash_rule(key, expected):
    assert resource_path("b", key) == expected


def test_unsigned_params_are_not_in_resource():
    assert canonical_resource("b", None, {"prefix": "x", "marker": "y", "uploads": ""}) == "/b/?uploads"


@pytest.mark.parametrize(
    ("endpoint", "path_style", "domain_mode", "bucket", "key", "expected"),
    [
        ("http://127.0.0.1:9000", None, False, "bk", "a b", "http://127.0.0.1:9000/bk/a%20b"),
        ("http://localhost:9000", None, False, "bk", None, "http://localhost:9000/bk/"),
        ("http://[::1]:9000", None, False, "bk", "k", "http://[::1]:9000/bk/k"),
        (
            "https://ks3-cn-beijing.ksyuncs.com",
            None,
            False,
            "bk",
            "/x",
            "https://bk.ks3-cn-beijing.ksyuncs.com/%2Fx",
        ),
        ("ks3-cn-beijing.ksyuncs.com", None, False, "bk", None, "https://bk.ks3-cn-beijing.ksyuncs.com/"),
        (
            "http://ks3-cn-beijing.ksyuncs.com:8080",
            True,
            False,
            "bk",
            "k",
            "http://ks3-cn-beijing.ksyuncs.com:8080/bk/k",
        ),
        ("https://files.example.com", None, True, "bk", "d/k", "https://files.example.com/d/k"),
        ("http://127.0.0.1:9000", None, False, None, None, "http://127.0.0.1:9000/"),
    ],
)
def test_addressing(endpoint, path_style, domain_mode, bucket, key, expected):
    assert Addressing.from_config(endpoint, path_style, domain_mode).url(bucket, key) == expected


@pytest.mark.parametrize("bad", ["ftp://x", "http://", "http://h/path", "http://h:notaport"])
def test_bad_endpoints_are_rejected(bad):
    with pytest.raises(ValueError, match="endpoint"):
        Endpoint.parse(bad)


def test_query_encoding_keeps_bare_sub_resources():
    assert encode_query({"uploads": "", "prefix": "a b/c+d"}) == "?uploads&prefix=a%20b/c%2Bd"


@given(st.text(min_size=1, max_size=60))
def test_encoded_paths_decode_back_to_the_key(key):
    path = resource_path("bk", key)
    assert "//" not in path
    assert unquote(path, errors="strict")[len("/bk/") :] == key
    assert unquote(key_path(key), errors="strict")[1:] == key


@given(st.text(min_size=1, max_size=60))
def test_copy_source_decodes_under_unquote_and_unquote_plus(key):
    source = copy_source("src", key)
    assert source.startswith("/src/")
    encoded = source[len("/src/") :]
    assert "/" not in encoded and " " not in encoded and "+" not in encoded
    assert unquote_plus(encoded) == key == unquote(encoded)


def test_copy_source_examples():
    assert copy_source("src-bucket", "a/b c+d.txt") == "/src-bucket/a%2Fb%20c%2Bd.txt"
