"""CreateBucket's optional parts, as they go on the wire: `ks3sync mb --region R --acl A` sends
``x-kss-acl`` and a CreateBucketConfiguration body with the LocationConstraint (protocol §4.1); without
``--region`` the body is empty. A scripted loopback server records the requests (local-server accepts
and ignores the body, so it cannot show it)."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest

from tests.ks3.scripted_http import Reply, ScriptedServer

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


@pytest.fixture()
def script() -> Iterator[ScriptedServer]:
    server = ScriptedServer(Reply(200, {"x-kss-request-id": "r1"}))
    yield server
    server.close()


def mb(script: ScriptedServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, KS3_ACCESS_KEY="AK", KS3_SECRET_KEY="SK")
    return subprocess.run(
        [sys.executable, "-m", "ks3sync", "mb", "ks3://new-bucket", "--endpoint", script.endpoint, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_region_and_acl_go_in_the_request(script: ScriptedServer) -> None:
    done = mb(script, "--region", "SHANGHAI", "--acl", "public-read")
    assert done.returncode == 0, done.stderr
    (seen,) = script.requests
    assert (seen.method, seen.target) == ("PUT", "/new-bucket/")
    assert seen.headers["x-kss-acl"] == "public-read"
    assert seen.headers["Content-Type"] == "application/xml"
    root = ET.fromstring(seen.body)
    assert root.tag == f"{NS}CreateBucketConfiguration"
    assert [(child.tag, child.text) for child in root] == [(f"{NS}LocationConstraint", "SHANGHAI")]


def test_without_region_the_body_is_empty(script: ScriptedServer) -> None:
    done = mb(script)
    assert done.returncode == 0, done.stderr
    (seen,) = script.requests
    assert seen.body == b"" and "x-kss-acl" not in seen.headers
