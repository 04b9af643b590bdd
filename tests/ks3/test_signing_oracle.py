"""Our signing against the official SDK's own functions (ks3sdk 1.18.0 ``ks3.auth``) on random
requests: keys of any text, random x-kss-* headers, random sub-resources mixed with unsigned params.
The SDK is a test oracle only; ks3sync never imports it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ks3sync.ks3 import sign_v2
from ks3sync.ks3.signing import SUB_RESOURCES, canonical_resource, string_to_sign

sdk_auth = pytest.importorskip("ks3.auth")

SECRET = "exampleSecretKey/0123456789+abcdefgHIJ="
header_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)
kss_headers = st.dictionaries(
    st.sampled_from(
        [
            "x-kss-acl",
            "X-Kss-Meta-Author",
            "x-kss-meta-a",
            "x-kss-storage-class",
            "x-kss-copy-source",
            "x-kss-metadata-directive",
            "X-KSS-TAGGING",
        ]
    ),
    header_values,
    max_size=4,
)
params = st.dictionaries(
    st.sampled_from(
        sorted(SUB_RESOURCES)[:20]
        + [
            "uploadId",
            "partNumber",
            "prefix",
            "marker",
            "max-keys",
            "delimiter",
            "response-content-disposition",
        ]
    ),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="&="), max_size=12),
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(
    method=st.sampled_from(["GET", "PUT", "POST", "DELETE", "HEAD"]),
    bucket=st.sampled_from(["", "my-bucket", "b1"]),
    key=st.text(max_size=40),
    headers=kss_headers,
    query=params,
    content_type=st.sampled_from(["", "text/plain", "application/octet-stream"]),
    content_md5=st.sampled_from(["", "XrY7u+Ae7tCTyyK7j1rNww=="]),
)
def test_string_to_sign_and_signature_match_the_sdk(
    method, bucket, key, headers, query, content_type, content_md5
):
    # The SDK drops the key when there is no bucket, as a request without a bucket has no key.
    key = key if bucket else ""
    all_headers = dict(headers, Date="Tue, 05 Mar 2024 08:00:00 GMT")
    if content_type:
        all_headers["Content-Type"] = content_type
    if content_md5:
        all_headers["Content-MD5"] = content_md5
    expected = sdk_auth.canonical_string(method, bucket, key, dict(query), all_headers)
    ours = string_to_sign(method, canonical_resource(bucket or None, key or None, query), all_headers)
    assert ours == expected
    assert sign_v2(SECRET, method, bucket or None, key or None, all_headers, query) == sdk_auth.encode(
        SECRET, expected
    )
