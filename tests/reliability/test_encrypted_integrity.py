"""Encrypted means authenticated where the format allows (issue #15 points 6-7), through the real path:
`ks3sync mirror` subprocesses against local-server; objects planted or tampered by "someone who can
write the bucket" with raw signed requests (consistently: the server's ETag and CRC-64 match the
tampered bytes, so only the content checks can notice); objects written by the official SDK
(``local_encrypt=True``) restored by ks3sync, and ks3sync's read by the SDK.

Every failing object fails alone: exit 1, named on stderr, no file and no temp file for it, the rest of
the pass restored.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ks3.connection import Connection, PathCallingFormat

from tests.serverkit import ServerHandle

from .helpers import (
    client_for,
    data_writes,
    folder_files,
    make_tree,
    mirror,
    write_tree,
)

FLAGS = ("--jobs", "4", "--part-size", "100KiB", "--multipart-threshold", "400KiB")
PART = 100 * 1024
TAG = "ks3sync-tag"
UNTAGGED_LINE = "encrypted objects carry no ks3sync integrity tag"


def _keygen(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    made = subprocess.run(
        [sys.executable, "-m", "ks3sync", "keygen", str(path)], capture_output=True, check=False
    )
    assert made.returncode == 0, made.stderr
    return path


def _upload(
    server: ServerHandle, bucket: str, tmp_path: Path, key: Path, *, seed: int = 5, prefix: str = "e/"
) -> dict[str, bytes]:
    """A tree with small files, an empty one and a multipart-sized one, uploaded encrypted."""
    src = tmp_path / f"src-{seed}"
    tree = make_tree(src, seed, files=5, big=1, big_size=450_000)
    tree["empty.txt"] = b""
    write_tree(src, {"empty.txt": b""})
    run = mirror(
        server, src, f"ks3://{bucket}/{prefix}", tmp_path / f"up-{seed}.db", *FLAGS, "--encrypt-key", str(key)
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return tree


def _restore(
    server: ServerHandle, bucket: str, tmp_path: Path, name: str, *flags: str, prefix: str = "e/"
) -> tuple[object, Path]:
    target = tmp_path / name
    run = mirror(server, f"ks3://{bucket}/{prefix}", target, tmp_path / f"{name}.db", *FLAGS, *flags)
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    return run, target


def _no_temp_files(target: Path) -> bool:
    return not [p for p in target.rglob("*") if p.name.startswith(".ks3sync")]


def _big(tree: dict[str, bytes]) -> str:
    return next(p for p in tree if p.startswith("big/"))


def _reupload_multipart(
    server: ServerHandle, bucket: str, key: str, body: bytes, metadata: dict[str, str]
) -> None:
    """Write ``body`` at ``key`` as a real multipart upload carrying ``metadata`` from Initiate on: what
    a bucket writer with another tool does. KS3 computes ETag and CRC-64 of these bytes itself."""
    with client_for(server) as client:
        upload_id = client.initiate_multipart(bucket, key, metadata=metadata)
        parts = []
        for number, offset in enumerate(range(0, len(body), PART), start=1):
            result = client.upload_part(bucket, key, upload_id, number, body[offset : offset + PART])
            parts.append((number, result.etag))
        client.complete_multipart(bucket, key, upload_id, parts)
        assert "-" in client.head_object(bucket, key).etag  # still a multipart object


def _read(server: ServerHandle, bucket: str, key: str) -> tuple[bytes, dict[str, str]]:
    with client_for(server) as client:
        info = client.head_object(bucket, key)
        with client.get_object(bucket, key) as response:
            return response.read(), dict(info.metadata)


def _sdk(server: ServerHandle, key_file: Path) -> Connection:
    return Connection(
        server.access_key,
        server.secret_key,
        host=server.host,
        port=server.port,
        is_secure=False,
        calling_format=PathCallingFormat(),
        local_encrypt=True,
        local_key_path=str(key_file),
    )


def _config(
    tmp_path: Path, server: ServerHandle, folder: Path, bucket: str, prefix: str, key: Path, **settings: bool
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    extra = "".join(f"    {name}: {str(value).lower()}\n" for name, value in settings.items())
    path = tmp_path / "ks3sync.yaml"
    path.write_text(
        f"endpoint: {server.endpoint}\n"
        "credentials: {access_key: '${KS3_ACCESS_KEY}', secret_key: '${KS3_SECRET_KEY}'}\n"
        f"state_dir: {tmp_path / 'state'}\n"
        "syncs:\n"
        f"  - name: restore\n    source: {folder}\n    target: ks3://{bucket}/{prefix}\n"
        f"    encrypt_key_file: {key}\n{extra}"
    )
    path.chmod(0o600)
    return path


# ------------------------------------------------------------------------------ 6: unencrypted objects


def test_an_unencrypted_object_in_an_encrypted_prefix_fails_alone(
    local_server: ServerHandle, bucket: str, tmp_path: Path
) -> None:
    key = _keygen(tmp_path / "k.key")
    tree = _upload(local_server, bucket, tmp_path, key)
    with client_for(local_server) as client:
        client.put_object(bucket, "e/planted.txt", b"not encrypted at all")
        client.put_object(
            bucket, "e/one-byte.txt", b"x"
        )  # the smallest object that is not the SDK's empty file
    run, target = _restore(local_server, bucket, tmp_path, "restore", "--encrypt-key", str(key))
    assert run.returncode == 1, run.stderr[-3000:]
    assert "not client-side encrypted" in run.stderr and "(one-byte.txt, planted.txt)" in run.stderr
    assert "--allow-unencrypted" in run.stderr
    assert folder_files(target) == tree  # the rest of the pass went on; nothing written for it
    assert _no_temp_files(target)

    # --allow-unencrypted accepts it as plaintext; the encrypted ones are still decrypted and checked.
    run, target = _restore(
        local_server, bucket, tmp_path, "allowed", "--encrypt-key", str(key), "--allow-unencrypted"
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert folder_files(target) == tree | {"planted.txt": b"not encrypted at all", "one-byte.txt": b"x"}

    # ... and so does a configured sync's `allow_unencrypted: true` (the sync lends its settings to mirror).
    folder = tmp_path / "configured"
    config = _config(tmp_path, local_server, folder, bucket, "e/", key, allow_unencrypted=True)
    run = mirror(
        local_server, f"ks3://{bucket}/e/", folder, tmp_path / "cfg.db", *FLAGS, "--config", str(config)
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert folder_files(folder) == tree | {"planted.txt": b"not encrypted at all", "one-byte.txt": b"x"}


def test_allow_unencrypted_and_require_integrity_need_a_key(
    local_server: ServerHandle, bucket: str, tmp_path: Path
) -> None:
    for flag in ("--allow-unencrypted", "--require-integrity"):
        run, _ = _restore(local_server, bucket, tmp_path, "x", flag)
        assert (
            run.returncode == 2
            and f"ks3sync: error: {flag}: only means something with --encrypt-key" in run.stderr
        )


def test_an_upload_under_a_key_replaces_a_plaintext_object_even_with_the_same_bytes(
    local_server: ServerHandle, bucket: str, tmp_path: Path
) -> None:
    key = _keygen(tmp_path / "k.key")
    src = tmp_path / "src"
    tree = {"same.txt": b"identical bytes on both sides", "other.bin": os.urandom(3000)}
    write_tree(src, tree)
    with client_for(local_server) as client:  # plaintext already in the prefix, no journal
        for name, data in tree.items():
            client.put_object(bucket, f"p/{name}", data)
    run = mirror(
        local_server, src, f"ks3://{bucket}/p/", tmp_path / "up.db", *FLAGS, "--encrypt-key", str(key)
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "uploaded 2" in run.stderr  # not "adopted": plaintext is never in sync with an encrypted sync
    sdk = _sdk(local_server, key).get_bucket(bucket)
    for name, data in tree.items():
        stored, metadata = _read(local_server, bucket, f"p/{name}")
        assert stored != data and "iv" in metadata and TAG in metadata
        assert sdk.get_key(f"p/{name}", validate=True).get_contents_as_string() == data
    again = mirror(
        local_server, src, f"ks3://{bucket}/p/", tmp_path / "up.db", *FLAGS, "--encrypt-key", str(key)
    )
    assert again.returncode == 0 and "uploaded 0" in again.stderr and "unchanged 2" in again.stderr


# ------------------------------------------------------------------------------ 7: tampered objects


@pytest.mark.parametrize("offset", [20, 150_000, -100])
def test_a_flipped_byte_in_a_multipart_object_fails_alone(
    local_server: ServerHandle, bucket: str, tmp_path: Path, offset: int
) -> None:
    key = _keygen(tmp_path / "k.key")
    tree = _upload(local_server, bucket, tmp_path, key)
    victim = _big(tree)
    stored, metadata = _read(local_server, bucket, "e/" + victim)
    assert "unencrypted-content-md5" not in metadata  # a multipart object: the SDK format has no digest
    damaged = bytearray(stored)
    damaged[offset] ^= 0x01
    _reupload_multipart(local_server, bucket, "e/" + victim, bytes(damaged), metadata)
    run, target = _restore(local_server, bucket, tmp_path, "restore", "--encrypt-key", str(key))
    assert run.returncode == 1, run.stderr[-3000:]
    assert f"ks3sync: failed: {victim}:" in run.stderr
    assert "integrity tag" in run.stderr or "pad" in run.stderr  # a flip near the end breaks the pad first
    assert folder_files(target) == {p: b for p, b in tree.items() if p != victim}
    assert _no_temp_files(target)


def test_a_flipped_byte_in_a_single_put_without_its_md5_fails_alone(
    local_server: ServerHandle, bucket: str, tmp_path: Path
) -> None:
    key = _keygen(tmp_path / "k.key")
    tree = _upload(local_server, bucket, tmp_path, key)
    victim = max((p for p in tree if not p.startswith("big/")), key=lambda p: len(tree[p]))
    stored, metadata = _read(local_server, bucket, "e/" + victim)
    del metadata["unencrypted-content-md5"]  # what the SDK format would then rely on: nothing
    damaged = bytearray(stored)
    damaged[len(damaged) // 2] ^= 0x40
    with client_for(local_server) as client:
        client.put_object(bucket, "e/" + victim, bytes(damaged), metadata=metadata)
    run, target = _restore(local_server, bucket, tmp_path, "restore", "--encrypt-key", str(key))
    assert run.returncode == 1, run.stderr[-3000:]
    assert f"ks3sync: failed: {victim}: decrypted content does not match its integrity tag" in run.stderr
    assert folder_files(target) == {p: b for p, b in tree.items() if p != victim}
    assert _no_temp_files(target)


def test_an_object_moved_to_another_key_fails(
    local_server: ServerHandle, bucket: str, tmp_path: Path
) -> None:
    # A valid ciphertext with its valid tag, copied over another file's object: the SDK format would
    # restore one file's content under the other's name.
    key = _keygen(tmp_path / "k.key")
    tree = _upload(local_server, bucket, tmp_path, key)
    small = sorted(p for p in tree if tree[p] and not p.startswith("big/"))
    source, victim = small[0], small[1]
    with client_for(local_server) as client:
        client.copy_object(bucket, "e/" + source, bucket, "e/" + victim)  # COPY: metadata and tag come along
    run, target = _restore(local_server, bucket, tmp_path, "restore", "--encrypt-key", str(key))
    assert run.returncode == 1, run.stderr[-3000:]
    assert f"ks3sync: failed: {victim}:" in run.stderr and "integrity tag" in run.stderr
    assert folder_files(target) == {p: b for p, b in tree.items() if p != victim}


def test_a_stripped_tag_is_a_warning_or_with_require_integrity_a_failure(
    local_server: ServerHandle, bucket: str, tmp_path: Path
) -> None:
    key = _keygen(tmp_path / "k.key")
    tree = _upload(local_server, bucket, tmp_path, key)
    victim = _big(tree)
    stored, metadata = _read(local_server, bucket, "e/" + victim)
    del metadata[TAG]  # a downgrade to the SDK's (unauthenticated) form
    _reupload_multipart(local_server, bucket, "e/" + victim, stored, metadata)
    run, target = _restore(local_server, bucket, tmp_path, "restore", "--encrypt-key", str(key))
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"ks3sync: warning: 1 {UNTAGGED_LINE}" in run.stderr
    assert folder_files(target) == tree
    run, target = _restore(
        local_server, bucket, tmp_path, "strict", "--encrypt-key", str(key), "--require-integrity"
    )
    assert run.returncode == 1, run.stderr[-3000:]
    assert f"ks3sync: failed: {victim}: no ks3sync integrity tag" in run.stderr
    assert folder_files(target) == {p: b for p, b in tree.items() if p != victim}
    assert _no_temp_files(target)


# ------------------------------------------------------------------------------ SDK interop


def _sdk_objects(
    server: ServerHandle, bucket: str, key_file: Path, tmp_path: Path, prefix: str
) -> dict[str, bytes]:
    """Three objects written by the official SDK: a single PUT, an empty one, a sequential multipart."""
    sdk = _sdk(server, key_file).get_bucket(bucket)
    objects = {
        "sdk/one.txt": os.urandom(5000),
        "sdk/empty.txt": b"",
        "sdk/multi.bin": os.urandom(2 * PART + 77),
    }
    sdk.new_key(prefix + "sdk/one.txt").set_contents_from_string(objects["sdk/one.txt"])
    sdk.new_key(prefix + "sdk/empty.txt").set_contents_from_string(b"")
    data = objects["sdk/multi.bin"]
    upload = sdk.initiate_multipart_upload(prefix + "sdk/multi.bin")
    offsets = list(range(0, len(data), PART))
    for number, offset in enumerate(offsets, start=1):
        part = tmp_path / f"part{number}"  # the SDK fstat()s the file it is given (ks3-protocol.md §12)
        part.write_bytes(data[offset : offset + PART])
        with open(part, "rb") as fp:
            upload.upload_part_from_file(fp, number, is_last_part=number == len(offsets))
    upload.complete_upload()
    return objects


def test_sdk_written_objects_restore_with_one_warning_unless_integrity_is_required(
    local_server: ServerHandle, bucket: str, tmp_path: Path
) -> None:
    key = _keygen(tmp_path / "k.key")
    tree = _upload(local_server, bucket, tmp_path, key)
    sdk_objects = _sdk_objects(local_server, bucket, key, tmp_path, "e/")
    run, target = _restore(local_server, bucket, tmp_path, "restore", "--encrypt-key", str(key))
    assert run.returncode == 0, run.stderr[-3000:]
    warnings = [line for line in run.stderr.splitlines() if UNTAGGED_LINE in line]
    assert warnings == [
        f"ks3sync: warning: 3 {UNTAGGED_LINE} (written by the KS3 SDK or an older ks3sync): "
        f"accepted with the SDK format's checks only; --require-integrity refuses them"
    ]
    assert folder_files(target) == tree | sdk_objects

    run, target = _restore(
        local_server, bucket, tmp_path, "strict", "--encrypt-key", str(key), "--require-integrity"
    )
    assert run.returncode == 1, run.stderr[-3000:]
    names = ", ".join(sorted(sdk_objects))
    assert f"ks3sync: failed {len(sdk_objects)} files: no ks3sync integrity tag" in run.stderr
    assert f"refused because integrity is required ({names})" in run.stderr
    assert UNTAGGED_LINE not in run.stderr
    assert folder_files(target) == tree  # ks3sync's own objects are tagged and restored
    assert _no_temp_files(target)

    # `require_integrity: true` in the configured sync does the same.
    folder = tmp_path / "configured"
    config = _config(tmp_path, local_server, folder, bucket, "e/", key, require_integrity=True)
    run = mirror(
        local_server, f"ks3://{bucket}/e/", folder, tmp_path / "cfg.db", *FLAGS, "--config", str(config)
    )
    assert run.returncode == 1 and folder_files(folder) == tree, run.stderr[-3000:]


def test_the_sdk_reads_what_ks3sync_mirror_writes(
    local_server: ServerHandle, bucket: str, tmp_path: Path
) -> None:
    key = _keygen(tmp_path / "k.key")
    tree = _upload(local_server, bucket, tmp_path, key)
    sdk = _sdk(local_server, key).get_bucket(bucket)
    for name, data in tree.items():
        _, metadata = _read(local_server, bucket, "e/" + name)
        assert metadata[TAG].startswith("v1:")  # tagged, the empty (SDK-form, plain) object included
        got = sdk.get_key("e/" + name, validate=True).get_contents_as_string()
        assert (got if isinstance(got, bytes) else got.encode()) == data, name


# ------------------------------------------------------------------------------ adopting by the tag


def test_a_lost_journal_adopts_tagged_objects_without_uploading_and_re_sends_a_mismatch(
    local_server: ServerHandle, bucket: str, tmp_path: Path
) -> None:
    key = _keygen(tmp_path / "k.key")
    tree = _upload(local_server, bucket, tmp_path, key)
    src = tmp_path / "src-5"
    mark = len(local_server.requests())
    run = mirror(
        local_server, src, f"ks3://{bucket}/e/", tmp_path / "fresh.db", *FLAGS, "--encrypt-key", str(key)
    )
    assert run.returncode == 0, run.stderr[-3000:]
    # The multipart object too: its tag proves the content (the SDK format records no digest for it).
    assert f"recorded {len(tree)}" in run.stderr and "uploaded 0" in run.stderr
    assert data_writes(local_server.requests()[mark:]) == []

    victim = _big(tree)
    other = sorted(p for p in tree if tree[p] and not p.startswith("big/"))[0]
    _, other_meta = _read(local_server, bucket, "e/" + other)
    stored, metadata = _read(local_server, bucket, "e/" + victim)
    metadata[TAG] = other_meta[TAG]  # a valid tag, but of another object
    _reupload_multipart(local_server, bucket, "e/" + victim, stored, metadata)
    run = mirror(
        local_server, src, f"ks3://{bucket}/e/", tmp_path / "third.db", *FLAGS, "--encrypt-key", str(key)
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "uploaded 1" in run.stderr and f"recorded {len(tree) - 1}" in run.stderr
    _, metadata = _read(local_server, bucket, "e/" + victim)
    assert metadata[TAG] != other_meta[TAG]
    run, target = _restore(local_server, bucket, tmp_path, "restore", "--encrypt-key", str(key))
    assert run.returncode == 0 and folder_files(target) == tree, run.stderr[-3000:]
    assert UNTAGGED_LINE not in run.stderr


def test_tag_values_are_base64_of_32_bytes(local_server: ServerHandle, bucket: str, tmp_path: Path) -> None:
    key = _keygen(tmp_path / "k.key")
    tree = _upload(local_server, bucket, tmp_path, key)
    tags = {_read(local_server, bucket, "e/" + name)[1][TAG] for name in tree}
    assert len(tags) == len(tree)  # bound to each object's key: no two alike, even for equal contents
    assert all(len(base64.b64decode(tag[3:], validate=True)) == 32 for tag in tags)
