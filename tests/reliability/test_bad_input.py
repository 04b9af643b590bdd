"""Bad input: names the scan cannot sync, files that vanish or change, a folder replaced by a file,
unreadable entries, a huge folder, an emptied or unmounted source with --delete, wrong/tampered
encryption, keys that would escape a restore, and a server that answers with a broken body or a wrong
ETag. Each asserts the exact end state (what the bucket holds, what the journal recorded, what the
server was asked), not only that nothing crashed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.serverkit import ServerHandle

from .helpers import (
    assert_bucket_equals_folder,
    assert_journal_healthy,
    assert_no_multipart_uploads,
    bucket_contents,
    client_for,
    error_lines,
    folder_files,
    journal_paths,
    make_tree,
    mirror,
    tmpfs,
    write_tree,
    writes,
)
from .proxy import Exchange, RewritingProxy

FLAGS = ("--jobs", "4", "--part-size", "100KiB", "--multipart-threshold", "400KiB")


def _keygen(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    made = subprocess.run(
        [sys.executable, "-m", "ks3sync", "keygen", str(path)], capture_output=True, check=False
    )
    assert made.returncode == 0, made.stderr
    return path


# ------------------------------------------------------------------------------------------ names


def test_non_utf8_and_overlong_names_are_reported_and_skipped(
    local_server: ServerHandle, bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    write_tree(src, {"ok.txt": b"fine"})
    bad = os.path.join(os.fsencode(src), b"latin1-\xe9t\xe9.txt")
    with open(bad, "wb") as fh:
        fh.write(b"not utf-8 name")
    prefix = "k/"
    # 1,024-byte key: allowed; 1,025 bytes: refused. Components stay under NAME_MAX (255).
    folders = "/".join(["d" * 200] * 4)  # 803 bytes with slashes
    fits = f"{folders}/" + "x" * (1024 - len(prefix) - len(folders) - 1)
    too_long = f"{folders}/" + "y" * (1025 - len(prefix) - len(folders) - 1)
    write_tree(src, {fits: b"1024", too_long: b"1025"})
    assert len((prefix + fits).encode()) == 1024 and len((prefix + too_long).encode()) == 1025

    state = tmp_path / "j.db"
    run = mirror(local_server, src, f"ks3://{bucket}/{prefix}", state, *FLAGS)
    assert run.returncode in (0, 1), run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    assert "latin1-" in run.stderr and "y" * 50 in run.stderr  # both named in a 'skipped' line
    remote = bucket_contents(local_server, bucket, prefix)
    assert remote == {"ok.txt": b"fine", fits: b"1024"}
    assert journal_paths(state) == {"ok.txt", fits}


def test_a_folder_replaced_by_a_file_mirrors_exactly(
    local_server: ServerHandle, bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    write_tree(src, {"thing/a.txt": b"a", "thing/b/c.txt": b"c", "other.txt": b"o"})
    state = tmp_path / "j.db"
    assert mirror(local_server, src, f"ks3://{bucket}/f/", state, *FLAGS).returncode == 0
    shutil.rmtree(src / "thing")
    (src / "thing").write_bytes(b"now a file")
    run = mirror(local_server, src, f"ks3://{bucket}/f/", state, *FLAGS, "--delete", "--force")
    assert run.returncode == 0, run.stderr[-3000:]
    assert bucket_contents(local_server, bucket, "f/") == {"thing": b"now a file", "other.txt": b"o"}
    assert_journal_healthy(state)


def test_restore_of_a_key_that_is_both_file_and_folder_fails_cleanly(
    local_server: ServerHandle, bucket: str, tmp_path: Path
) -> None:
    with client_for(local_server) as client:
        client.put_object(bucket, "both/x", b"file")
        client.put_object(bucket, "both/x/inner.txt", b"inner")
        client.put_object(bucket, "both/plain.txt", b"plain")
    target = tmp_path / "restore"
    run = mirror(local_server, f"ks3://{bucket}/both/", target, tmp_path / "j.db", *FLAGS)
    assert run.returncode == 1, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    assert (target / "plain.txt").read_bytes() == b"plain"
    files = folder_files(target)
    assert files.get("x") == b"file" or files.get("x/inner.txt") == b"inner"  # one of them wins, whole
    assert not [p for p in target.rglob("*") if p.name.startswith(".ks3sync")], "temp files left behind"


# ------------------------------------------------------------------------------------------ changes


def test_files_vanishing_during_the_pass_then_converge(
    local_server: ServerHandle, bucket: str, tmp_path: Path
) -> None:
    """A third of the files are deleted in the middle of the pass, at a moment the test controls: while
    the 10th PutObject is held at the proxy. A file whose upload KS3 had confirmed before that moment
    may be recorded (it was synced; the next --delete pass removes it); every other deleted file must
    not be. Then a --delete pass makes the bucket equal the folder."""
    src = tmp_path / "src"
    tree = make_tree(src, 21, files=60, max_small=3000)
    victims = set(sorted(tree)[::3])
    state = tmp_path / "j.db"
    lock = threading.Lock()
    puts: list[str] = []
    confirmed_before: set[str] = set()  # keys whose PutObject was answered before the deletion

    def short_circuit(method: str, target: str) -> Exchange | None:
        if method == "PUT" and "uploadId=" not in target:
            with lock:  # concurrent PUTs wait here until the deletion is over
                puts.append(target)
                if len(puts) == 10:
                    for rel in victims:
                        (src / rel).unlink()
                    confirmed_before.update(
                        e.path for e in proxy.seen if e.method == "PUT" and e.status == 200
                    )
        return None  # forwarded as it is

    with RewritingProxy(local_server.endpoint, lambda exchange: None, short_circuit) as proxy:
        via = _via(local_server, proxy.endpoint)
        run = mirror(via, src, f"ks3://{bucket}/v/", state, "--jobs", "2")
        assert len(puts) >= 10, "the pass sent fewer than 10 files: the deletion never happened"
        assert run.returncode in (0, 1), run.stderr[-2000:]
        assert "Traceback" not in run.stderr
        from urllib.parse import unquote

        confirmed = {unquote(path).split("/v/", 1)[1] for path in confirmed_before}
        recorded = journal_paths(state)
        assert recorded & victims <= confirmed, (
            f"recorded after it vanished: {sorted(recorded & victims - confirmed)}"
        )
        assert victims - confirmed, "every victim was uploaded before the deletion: the case tested nothing"
        assert recorded >= set(tree) - victims  # the files that stayed were all synced
        again = mirror(via, src, f"ks3://{bucket}/v/", state, "--jobs", "2", "--delete", "--force")
    assert again.returncode == 0, again.stderr[-3000:]
    assert_bucket_equals_folder(local_server, bucket, "v/", src)
    assert journal_paths(state) == set(tree) - victims


def test_a_file_rewritten_during_upload_is_never_recorded_with_bytes_the_bucket_lacks(
    server_factory: Any, tmp_path: Path
) -> None:
    server = server_factory(latency_ms=15)
    with client_for(server) as client:
        client.create_bucket("chg")
    src = tmp_path / "src"
    write_tree(src, {"steady.txt": b"steady"})
    hot = src / "hot.bin"
    hot.write_bytes(os.urandom(900_000))
    stop = threading.Event()

    def rewrite() -> None:
        n = 0
        while not stop.is_set() and n < 2000:
            hot.write_bytes(os.urandom(900_000 + n % 7))
            n += 1
            time.sleep(0.01)

    writer = threading.Thread(target=rewrite, daemon=True)
    writer.start()
    state = tmp_path / "j.db"
    try:
        run = mirror(server, src, "ks3://chg/h/", state, *FLAGS, timeout=120)
    finally:
        stop.set()
        writer.join(10)
    assert run.returncode in (0, 1), run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    from ks3sync.journal import Journal

    with Journal.open(state) as journal:
        entries = {path: e for sync in journal.syncs() for path, e in journal.synced_entries(sync.id).items()}
    if "hot.bin" in entries:  # recorded only if the bucket holds exactly the bytes recorded
        import hashlib

        assert (
            hashlib.md5(bucket_contents(server, "chg", "h/")["hot.bin"]).hexdigest() == entries["hot.bin"].md5
        )
    run = mirror(server, src, "ks3://chg/h/", state, *FLAGS)
    assert run.returncode == 0, run.stderr[-3000:]
    assert_bucket_equals_folder(server, "chg", "h/", src)
    assert_no_multipart_uploads(server, "chg")


# ------------------------------------------------------------------------------------------ permissions


def _as_nobody() -> list[str]:
    for tool in (
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"],
        ["runuser", "-u", "nobody", "--"],
    ):
        if shutil.which(tool[0]):
            return tool
    pytest.skip("no setpriv/runuser to drop root (root ignores file modes)")


@pytest.fixture
def world_usable_dir() -> Any:
    """A folder 'nobody' can use, outside pytest's per-user temp root: pytest resets that root to 0700
    whenever another pytest process on the machine starts, which made this test fail under load."""
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="ks3sync-perm-"))
    base.chmod(0o777)
    try:
        yield base
    finally:
        for path in [base, *base.rglob("*")]:
            path.chmod(0o777 if path.is_dir() else 0o666)
        shutil.rmtree(base)


def test_unreadable_file_and_folder_are_reported_and_their_objects_kept(
    local_server: ServerHandle, bucket: str, world_usable_dir: Path
) -> None:
    # Root reads everything regardless of modes, so this mirror runs as 'nobody' in a world-usable folder.
    base = world_usable_dir
    src = base / "src"
    write_tree(src, {"open.txt": b"open", "locked/inside.txt": b"inside", "secret.txt": b"s"})
    for path in [src, *src.rglob("*")]:
        path.chmod(0o777 if path.is_dir() else 0o666)
    state = base / "state"
    state.mkdir(mode=0o777)
    state.chmod(0o777)
    env = dict(
        os.environ,
        KS3_ACCESS_KEY=local_server.access_key,
        KS3_SECRET_KEY=local_server.secret_key,
        HOME=str(base),
    )
    args = [
        *_as_nobody(),
        sys.executable,
        "-m",
        "ks3sync",
        "mirror",
        str(src),
        f"ks3://{bucket}/perm/",
        "--endpoint",
        local_server.endpoint,
        "--state-db",
        str(state / "j.db"),
    ]
    first = subprocess.run(args, env=env, capture_output=True, timeout=120, check=False)
    assert first.returncode == 0, first.stderr.decode()[-3000:]
    (src / "secret.txt").chmod(0o000)
    (src / "locked").chmod(0o000)
    mark = local_server.mark()
    second = subprocess.run(
        [*args, "--delete", "--force"], env=env, capture_output=True, timeout=120, check=False
    )
    stderr = second.stderr.decode(errors="replace")
    assert second.returncode in (0, 1), stderr[-3000:]
    assert "Traceback" not in stderr
    assert "secret.txt" in stderr and "locked" in stderr
    # Unreadable is not deleted: the objects stay, nothing was deleted.
    assert [r for r in writes(local_server.requests()[mark:]) if "Delete" in r["op"]] == []
    remote = bucket_contents(local_server, bucket, "perm/")
    assert remote == {"open.txt": b"open", "locked/inside.txt": b"inside", "secret.txt": b"s"}


# ------------------------------------------------------------------------------------------ size


@pytest.mark.parametrize(
    "count", [pytest.param(1000, id="1000"), pytest.param(30000, id="30000", marks=pytest.mark.soak)]
)
def test_a_folder_with_many_entries(
    local_server: ServerHandle, bucket: str, tmp_path: Path, count: int
) -> None:
    src = tmp_path / "many"
    src.mkdir()
    for i in range(count):
        (src / f"{i:06d}").write_bytes(str(i).encode())
    state = tmp_path / "j.db"
    run = mirror(local_server, src, f"ks3://{bucket}/m/", state, "--jobs", "16", timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    with client_for(local_server) as client:
        keys = [o.key for o in client.iter_objects(bucket, prefix="m/") if not isinstance(o, str)]
    assert keys == [f"m/{i:06d}" for i in range(count)]
    mark = local_server.mark()
    again = mirror(local_server, src, f"ks3://{bucket}/m/", state, "--jobs", "16", timeout=600)
    assert again.returncode == 0
    assert writes(local_server.requests()[mark:]) == []


# ------------------------------------------------------------------------------------------ the delete guard


@pytest.mark.parametrize("how", ["emptied", "unmounted", "missing"])
def test_empty_or_unmounted_source_with_delete_deletes_nothing(
    local_server: ServerHandle, bucket: str, tmp_path: Path, how: str
) -> None:
    src = tmp_path / "src"
    make_tree(src, 31, files=12)
    state = tmp_path / "j.db"
    assert mirror(local_server, src, f"ks3://{bucket}/g/", state, *FLAGS).returncode == 0
    before = bucket_contents(local_server, bucket, "g/")
    mark = local_server.mark()
    if how == "emptied":
        for child in list(src.iterdir()):
            shutil.rmtree(child) if child.is_dir() else child.unlink()
        run = mirror(local_server, src, f"ks3://{bucket}/g/", state, *FLAGS, "--delete")
    elif how == "missing":
        shutil.rmtree(src)
        run = mirror(local_server, src, f"ks3://{bucket}/g/", state, *FLAGS, "--delete")
    else:
        with tmpfs(
            src, "1m"
        ):  # an empty file system mounted over the folder: what an unmounted disk looks like
            run = mirror(local_server, src, f"ks3://{bucket}/g/", state, *FLAGS, "--delete")
    assert run.returncode in (1, 2), run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    assert writes(local_server.requests()[mark:]) == []
    assert bucket_contents(local_server, bucket, "g/") == before
    assert "ks3sync: " in run.stderr


# ------------------------------------------------------------------------------------------ encryption


def _encrypted_bucket(
    server: ServerHandle, bucket: str, tmp_path: Path
) -> tuple[Path, Path, dict[str, bytes]]:
    key = _keygen(tmp_path / "keys" / "right.key")
    src = tmp_path / "src"
    tree = make_tree(src, 41, files=4, big=1, big_size=500_000)
    run = mirror(server, src, f"ks3://{bucket}/e/", tmp_path / "up.db", *FLAGS, "--encrypt-key", str(key))
    assert run.returncode == 0, run.stderr[-3000:]
    return key, src, tree


def test_restore_with_the_wrong_key_is_a_clear_error_and_writes_no_file(
    local_server: ServerHandle, bucket: str, tmp_path: Path
) -> None:
    _, _, _ = _encrypted_bucket(local_server, bucket, tmp_path)
    wrong = _keygen(tmp_path / "keys" / "wrong.key")
    target = tmp_path / "restore"
    run = mirror(
        local_server, f"ks3://{bucket}/e/", target, tmp_path / "down.db", *FLAGS, "--encrypt-key", str(wrong)
    )
    assert run.returncode in (1, 2), run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    assert "key" in run.stderr.lower()
    assert folder_files(target) == {} if target.exists() else True


@pytest.mark.parametrize("damage", [pytest.param("truncated", marks=pytest.mark.soak), "tampered"])
def test_a_damaged_encrypted_object_is_refused_and_no_file_written(
    local_server: ServerHandle, bucket: str, tmp_path: Path, damage: str
) -> None:
    key, _, tree = _encrypted_bucket(local_server, bucket, tmp_path)
    victim = sorted(p for p in tree if tree[p])[0]
    with client_for(local_server) as client:
        info = client.head_object(bucket, "e/" + victim)
        with client.get_object(bucket, "e/" + victim) as got:
            data = bytearray(got.read())
        if damage == "truncated":
            data = data[: len(data) - 16]
        else:
            data[len(data) // 2] ^= 0x01
        client.put_object(bucket, "e/" + victim, bytes(data), metadata=info.metadata)
    target = tmp_path / "restore"
    run = mirror(
        local_server, f"ks3://{bucket}/e/", target, tmp_path / "down.db", *FLAGS, "--encrypt-key", str(key)
    )
    assert run.returncode == 1, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    assert victim in run.stderr
    restored = folder_files(target)
    assert victim not in restored
    assert restored == {p: b for p, b in tree.items() if p != victim}  # the others are intact
    assert not [p for p in target.rglob("*") if p.name.startswith(".ks3sync")], "temp files left behind"


# ------------------------------------------------------------------------------------------ restore escapes


def test_keys_that_would_escape_the_restore_folder_are_refused(
    local_server: ServerHandle, bucket: str, tmp_path: Path
) -> None:
    bad_keys = ["x/../../escape.txt", "x/..", "x/a/../../../up.txt", "x//double.txt", "x/./dot.txt"]
    with client_for(local_server) as client:
        client.put_object(bucket, "x/good.txt", b"good")
    for key in bad_keys:  # written by "another tool": raw HTTP, dot segments sent as they are
        _raw_put(local_server, bucket, key, b"evil")
    outer = tmp_path / "outer"
    target = outer / "restore"
    run = mirror(local_server, f"ks3://{bucket}/x/", target, tmp_path / "j.db", *FLAGS)
    assert run.returncode == 1, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    assert folder_files(outer) == {"restore/good.txt": b"good"}
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "up.txt").exists()


def _raw_put(server: ServerHandle, bucket: str, key: str, data: bytes) -> None:
    """PUT through http.client, which (unlike httpx and the SDK) sends dot segments verbatim."""
    import http.client
    from email.utils import formatdate

    from ks3sync.ks3.signing import authorization

    headers = {"Date": formatdate(usegmt=True)}
    headers["Authorization"] = authorization(
        server.access_key, server.secret_key, "PUT", bucket, key, headers
    )
    conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
    try:
        conn.request("PUT", f"/{bucket}/{key}", body=data, headers=headers)
        response = conn.getresponse()
        assert response.status == 200, response.read()
    finally:
        conn.close()


# ------------------------------------------------------------------------------------------ a misbehaving server


def _is(exchange: Exchange, op: str) -> bool:
    q = exchange.query
    if op == "ListObjects":
        return (
            exchange.method == "GET"
            and exchange.path.rstrip("/").count("/") == 1
            and "uploads" not in q
            and "acl" not in q
        )
    if op == "PutObject":
        return (
            exchange.method == "PUT"
            and "uploadId" not in q
            and exchange.request_headers.get("x-kss-copy-source") is None
        )
    if op == "CompleteMultipartUpload":
        return exchange.method == "POST" and "uploadId" in q
    return False


ERROR_200 = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code>'
    b"<Message>We encountered an internal error. Please try again.</Message></Error>"
)


@pytest.mark.parametrize(
    "breakage",
    [
        "truncated-listing",
        pytest.param("error-mid-listing", marks=pytest.mark.soak),
        "error-in-complete",
        "error-in-complete-not-done",
    ],
)
def test_broken_xml_answers_fail_cleanly_and_record_nothing(
    local_server: ServerHandle, bucket: str, tmp_path: Path, breakage: str
) -> None:
    src = tmp_path / "src"
    make_tree(src, 51, files=5, big=1, big_size=500_000)
    with client_for(local_server) as client:
        client.put_object(bucket, "b/existing.txt", b"already there")

    def rewrite(ex: Exchange) -> None:
        if breakage == "truncated-listing" and _is(ex, "ListObjects"):
            ex.body = ex.body[: len(ex.body) // 2]
        elif breakage == "error-mid-listing" and _is(ex, "ListObjects"):
            cut = ex.body.find(b"<Contents>")
            ex.body = ex.body[:cut] + b"<Error><Code>InternalError</Code><Message>mid-body</Message></Error>"
        elif breakage == "error-in-complete" and _is(ex, "CompleteMultipartUpload") and ex.status == 200:
            ex.body = ERROR_200  # S3-style: 200 OK, then an <Error> document instead of the result

    def short_circuit(method: str, target: str) -> Exchange | None:
        # The server fails the Complete for real (it never happens) but answers 200 + <Error>.
        if breakage == "error-in-complete-not-done" and method == "POST" and "uploadId=" in target:
            return Exchange(method, target, {}, 200, [("Content-Type", "application/xml")], ERROR_200)
        return None

    state = tmp_path / "j.db"
    with RewritingProxy(local_server.endpoint, rewrite, short_circuit) as proxy:
        run = mirror(
            _via(local_server, proxy.endpoint),
            src,
            f"ks3://{bucket}/b/",
            state,
            *FLAGS,
            "--delete",
            "--force",
            timeout=120,
        )
    assert "Traceback" not in run.stderr
    if breakage == "error-in-complete-not-done":
        assert run.returncode == 1, run.stderr[-2000:]
        assert "big/large0.bin" not in _journal_entries(state)
        assert "big/large0.bin" in run.stderr
    elif breakage == "error-in-complete":
        # The server did complete the upload; only its answer was replaced. Either the client verifies
        # the object by HEAD (size + CRC-64) and records the ETag it really has, or it records nothing.
        assert run.returncode in (0, 1), run.stderr[-2000:]
        entries = _journal_entries(state)
        if "big/large0.bin" in entries:
            with client_for(local_server) as client:
                real = client.head_object(bucket, "b/big/large0.bin")
            assert (entries["big/large0.bin"].remote_etag, entries["big/large0.bin"].remote_size) == (
                real.etag,
                real.size,
            )
        else:
            assert run.returncode == 1
    else:
        assert run.returncode == 1, run.stderr[-2000:]
        assert len(error_lines(run.stderr)) == 1 or "stopped" in run.stderr, run.stderr[-2000:]
        assert [e for e in proxy.seen if e.method in ("PUT", "POST", "DELETE")] == []
        with client_for(local_server) as client:
            assert client.head_object(bucket, "b/existing.txt").size == len(b"already there")
    rerun = mirror(
        local_server,
        src,
        f"ks3://{bucket}/b/",
        state,
        *FLAGS,
        "--delete",
        "--force",
        "--abort-stale-after",
        "0s",
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert_bucket_equals_folder(local_server, bucket, "b/", src)
    assert_no_multipart_uploads(local_server, bucket)


def _journal_entries(state: Path) -> dict[str, Any]:
    from ks3sync.journal import Journal

    with Journal.open(state) as journal:
        return {path: e for sync in journal.syncs() for path, e in journal.synced_entries(sync.id).items()}


def _via(server: ServerHandle, endpoint: str) -> Any:
    """The same server as seen through a proxy endpoint (credentials unchanged)."""
    from dataclasses import replace

    return replace(server, endpoint=endpoint)


@pytest.mark.parametrize("where", ["put", pytest.param("complete", marks=pytest.mark.soak), "copy"])
def test_a_wrong_etag_is_never_recorded_as_synced(
    local_server: ServerHandle, bucket: str, tmp_path: Path, where: str
) -> None:
    src = tmp_path / "src"
    tree = make_tree(src, 61, files=3, big=1, big_size=500_000)
    state = tmp_path / "j.db"
    lying = [where != "copy"]  # the copy case first syncs honestly through the same proxy (same sync)

    def rewrite(ex: Exchange) -> None:
        if not lying[0] or ex.status != 200:
            return
        if where == "put" and _is(ex, "PutObject"):
            ex.set_header("ETag", '"0123456789abcdef0123456789abcdef"')
        elif (
            where == "complete"
            and _is(ex, "CompleteMultipartUpload")
            or where == "copy"
            and ex.method == "PUT"
            and ex.request_headers.get("x-kss-copy-source")
        ):
            start, end = ex.body.find(b"<ETag>"), ex.body.find(b"</ETag>")
            ex.body = ex.body[:start] + b"<ETag>&quot;0123456789abcdef0123456789abcdef&quot;" + ex.body[end:]

    with RewritingProxy(local_server.endpoint, rewrite) as proxy:
        via = _via(local_server, proxy.endpoint)
        if (
            where == "copy"
        ):  # a synced file is renamed: the pass copies it server-side, then deletes the old key
            assert mirror(via, src, f"ks3://{bucket}/w/", state, *FLAGS).returncode == 0
            old = sorted(p for p in tree if "big/" not in p and tree[p])[0]
            renamed = "renamed-" + old.rsplit("/", 1)[-1]
            (src / old).rename(src / renamed)
            lying[0] = True
        run = mirror(via, src, f"ks3://{bucket}/w/", state, *FLAGS, "--delete")
    assert "Traceback" not in run.stderr
    proxy_sync = _journal_entries_of(state)  # what the runs through the proxy recorded
    with client_for(local_server) as client:
        for path, entry in proxy_sync.items():
            # Whatever was recorded is what the bucket really holds (a HEAD-verified fallback is fine).
            real = client.head_object(bucket, "w/" + path)
            assert (entry.remote_etag, entry.remote_size) == (real.etag, real.size), path
    if where == "put":
        assert run.returncode == 1, run.stderr[-2000:]
        assert not {p for p in proxy_sync if "big/" not in p}, proxy_sync
    elif where == "copy":
        copies = [e for e in proxy.seen if e.method == "PUT" and e.request_headers.get("x-kss-copy-source")]
        assert copies, "the rename was not tried as a server-side copy: the case tested nothing"
        # Falling back to an honest upload after an unverifiable copy is fine; recording the lie is not.
        assert run.returncode == 1 or renamed in proxy_sync, run.stderr[-2000:]
        if run.returncode == 1:
            assert old in bucket_contents(local_server, bucket, "w/")  # deletes withheld after a failure
    else:
        assert run.returncode == 1 or "big/large0.bin" in proxy_sync, run.stderr[-2000:]
    rerun = mirror(local_server, src, f"ks3://{bucket}/w/", state, *FLAGS, "--delete")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert_bucket_equals_folder(local_server, bucket, "w/", src)


def _journal_entries_of(state: Path) -> dict[str, Any]:
    """The synced entries of the journal's one mirror pair (whatever endpoint reached it)."""
    from ks3sync.journal import Journal

    with Journal.open(state) as journal:
        syncs = journal.syncs()
        assert len(syncs) <= 1, syncs
        return journal.synced_entries(syncs[0].id) if syncs else {}


@pytest.mark.parametrize(
    "breakage", ["truncated-listing", pytest.param("error-mid-listing", marks=pytest.mark.soak)]
)
def test_restore_with_delete_through_a_broken_listing_deletes_no_local_file(
    local_server: ServerHandle, bucket: str, tmp_path: Path, breakage: str
) -> None:
    with client_for(local_server) as client:
        for i in range(30):
            client.put_object(bucket, f"rd/obj{i:02d}.txt", f"object {i}".encode())
    target = tmp_path / "target"
    local = {f"obj{i:02d}.txt": f"object {i}".encode() for i in range(30)} | {"only-local.txt": b"mine"}
    write_tree(target, local)

    def rewrite(ex: Exchange) -> None:
        if _is(ex, "ListObjects") and breakage == "truncated-listing":
            ex.body = ex.body[: len(ex.body) * 2 // 3]
        elif _is(ex, "ListObjects"):
            cut = ex.body.find(b"<Contents>", len(ex.body) // 2)
            ex.body = ex.body[:cut] + b"<Error><Code>InternalError</Code><Message>mid-body</Message></Error>"

    with RewritingProxy(local_server.endpoint, rewrite) as proxy:
        run = mirror(
            _via(local_server, proxy.endpoint),
            f"ks3://{bucket}/rd/",
            target,
            tmp_path / "j.db",
            "--delete",
            "--force",
        )
    assert run.returncode == 1, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    assert folder_files(target) == local  # nothing deleted, nothing half-written
