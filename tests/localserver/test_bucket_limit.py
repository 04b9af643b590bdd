"""KS3's per-account bucket limit, configurable so a long test session is not capped by it."""

from __future__ import annotations

import pytest

from tests.serverkit import sdk_connection


def test_bucket_limit_answers_too_many_buckets(server_factory) -> None:
    from ks3.exception import S3ResponseError

    handle = server_factory(max_buckets=2)
    conn = sdk_connection(handle)
    conn.create_bucket("limit-one")
    conn.create_bucket("limit-two")
    with pytest.raises(S3ResponseError) as caught:
        conn.create_bucket("limit-three")
    assert caught.value.status == 400
    assert "TooManyBuckets" in str(caught.value)
    conn.delete_bucket("limit-two")
    conn.create_bucket("limit-three")  # a freed slot can be used again
