"""Pure pieces (CRC-64 combine, target parsing, query redaction) and the command line itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ks3sync.localserver import EmbeddedServer
from ks3sync.localserver.crc64 import combine, crc64
from ks3sync.localserver.reqlog import redact_query
from ks3sync.localserver.request import split_target
from ks3sync.localserver.server import is_loopback
from tests.serverkit import TEST_ACCESS_KEY, TEST_SECRET_KEY


def test_crc64_vectors() -> None:
    assert crc64(b"") == 0
    assert crc64(b"123456789") == 11051210869376104954
    assert crc64(b"hello") == 11177612005948864433
    assert crc64(b"\0" * 1024 * 1024) == 6947770692288575170
    assert combine(crc64(b"hello "), crc64(b"world"), 5) == 5981764153023615706


@given(st.binary(max_size=300), st.binary(max_size=300))
def test_crc64_combine_equals_crc_of_concatenation(a: bytes, b: bytes) -> None:
    assert combine(crc64(a), crc64(b), len(b)) == crc64(a + b)
    assert combine(0, crc64(b), len(b)) == crc64(b)


@pytest.mark.parametrize(
    ("path", "host", "expected"),
    [
        ("/", "127.0.0.1:9000", (None, None)),
        ("/b", "127.0.0.1:9000", ("b", None)),
        ("/b/", "127.0.0.1:9000", ("b", None)),
        ("/b/%2Flead/%2Fx", "127.0.0.1", ("b", "/lead//x")),
        ("/b/a//b", "127.0.0.1", ("b", "a//b")),
        ("/b/%E6%96%87 x+y", "127.0.0.1", ("b", "文 x+y")),
        ("/k/x", "mybucket.localhost:9000", ("mybucket", "k/x")),
    ],
)
def test_split_target_never_normalises(path: str, host: str, expected: tuple[str | None, str | None]) -> None:
    assert split_target(path, host, "localhost") == expected


def test_redaction_hides_signatures() -> None:
    query = "Signature=abc%3D&Expires=1&KSSAccessKeyId=AK&X-Amz-Signature=ff"
    assert redact_query(query) == "Signature=REDACTED&Expires=1&KSSAccessKeyId=AK&X-Amz-Signature=REDACTED"


def test_loopback_detection() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10")


def test_embedded_server_round_trip(tmp_path: Path) -> None:
    from ks3.connection import Connection, PathCallingFormat

    with EmbeddedServer(tmp_path / "root", TEST_ACCESS_KEY, TEST_SECRET_KEY, fsync=False) as server:
        assert server.endpoint == f"http://127.0.0.1:{server.port}"
        conn = Connection(
            TEST_ACCESS_KEY,
            TEST_SECRET_KEY,
            host="127.0.0.1",
            port=server.port,
            is_secure=False,
            calling_format=PathCallingFormat(),
        )
        conn.create_bucket("embedded").new_key("k").set_contents_from_string("v")
        assert conn.get_bucket("embedded").get_key("k").get_contents_as_string() == b"v"
    assert "secret" not in repr(server.config).lower().replace("secret_key='***'", "")


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "ks3sync", "local-server", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env or dict(os.environ),
    )


def test_cli_announces_writes_port_file_and_stops_cleanly(tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    env = dict(os.environ, KS3_ACCESS_KEY=TEST_ACCESS_KEY, KS3_SECRET_KEY=TEST_SECRET_KEY)
    process = _cli("--root", str(tmp_path / "root"), "--port-file", str(port_file), env=env)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode().strip()
        port = int(port_file.read_text())
        assert line == f"listening on http://127.0.0.1:{port}"
        for sig in (signal.SIGINT,):
            process.send_signal(sig)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        for pipe in (process.stdout, process.stderr):
            if pipe:
                pipe.close()


def test_cli_refuses_missing_credentials_with_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("KS3_ACCESS_KEY", "KS3_SECRET_KEY")}
    process = _cli("--root", str(tmp_path), env=env)
    out, err = process.communicate(timeout=20)
    assert process.returncode == 2
    assert b"--access-key" in err
    bad = _cli(
        "--root", str(tmp_path), "--access-key", "a", "--secret-key", "s", "--fault-codes", "200", env=env
    )
    out, err = bad.communicate(timeout=20)
    assert bad.returncode == 2 and b"fault codes" in err


@given(st.lists(st.binary(min_size=1, max_size=50), max_size=5), st.lists(st.integers(1, 40), max_size=30))
def test_aws_chunked_decoder_handles_any_split(chunks: list[bytes], cuts: list[int]) -> None:
    from ks3sync.localserver.awschunked import UNSIGNED_TRAILER, ChunkedDecoder

    framed = (
        b"".join(f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in chunks)
        + b"0\r\nx-amz-checksum-crc32:x\r\n\r\n"
    )
    decoder = ChunkedDecoder(UNSIGNED_TRAILER, None)
    out = b""
    position = 0
    for cut in cuts:
        out += decoder.feed(framed[position : position + cut])
        position += cut
    out += decoder.feed(framed[position:])
    decoder.finish()
    assert out == b"".join(chunks)


def test_concatenate_falls_back_when_copy_file_range_is_refused(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import errno

    from ks3sync.localserver.storage import Storage

    storage = Storage(tmp_path / "root", fsync=False)
    try:
        ids = []
        for data in (b"first part ", b"second part"):
            temp = storage.open_temp()
            os.write(temp.fd, data)
            ids.append(storage.seal_temp(temp).data_id)

        def refuse(*_args: object) -> int:
            raise OSError(errno.EXDEV, "cross-device")

        monkeypatch.setattr(os, "copy_file_range", refuse)
        target = storage.open_temp()
        storage.concatenate(ids, target)
        sealed = storage.seal_temp(target)
        assert Path(sealed.path).read_bytes() == b"first part second part"
    finally:
        storage.close()
