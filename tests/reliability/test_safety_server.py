"""The safety rules under faults a real server produces, through the real wire path: `ks3sync mirror`
(a subprocess) -> rewriting proxy -> local-server. The proxy refuses chosen requests or aborts an
upload behind the client's back; the server's request log says what the client then asked.

- a backup copy that fails: the object is not deleted (invariant 4); a fatal answer stops the deletes;
- DeleteObjects refused: nothing is forgotten, the objects are still there;
- a multipart upload gone at ListParts, vanishing mid-send or at Complete: started again, completed;
- a file changed since its upload was recorded: that upload is aborted, never completed;
- a Complete whose CRC-64 differs from the parts': never recorded.

The in-process counterparts against MemoryStore (where the upload layer's own checks are reachable)
are in tests/transfer/test_safety_faults.py.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from tests.serverkit import ServerHandle

from .helpers import (
    assert_bucket_equals_folder,
    assert_no_multipart_uploads,
    bucket_contents,
    client_for,
    journal_paths,
    mirror,
    write_tree,
)
from .proxy import Exchange, RewritingProxy

FLAGS = ("--jobs", "2", "--part-size", "100KiB", "--multipart-threshold", "400KiB")
BIG = "big.bin"


def _error(code: str, status: int) -> Callable[[str, str], Exchange]:
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
        f"<Message>refused by the test proxy</Message></Error>"
    ).encode()
    return lambda method, target: Exchange(
        method, target, {}, status, [("Content-Type", "application/xml")], body
    )


def _ops(server: ServerHandle, mark: int) -> list[tuple[str, int]]:
    return [(r["op"], r["status"]) for r in server.requests()[mark:]]


class Proxy:
    """One proxy for a whole test (the journal keys a mirror's sync by its endpoint), whose behaviour
    the test switches: ``refuse`` answers matching requests itself; ``before`` runs before forwarding."""

    def __init__(self, server: ServerHandle) -> None:
        self.server = server
        self.refuse: Callable[[str, str], Exchange | None] = lambda method, target: None
        self.before: Callable[[str, str], None] = lambda method, target: None
        self._proxy = RewritingProxy(server.endpoint, self._rewrite, self._short_circuit)
        self.rewrite: Callable[[Exchange], None] = lambda exchange: None

    def _short_circuit(self, method: str, target: str) -> Exchange | None:
        self.before(method, target)
        return self.refuse(method, target)

    def _rewrite(self, exchange: Exchange) -> None:
        self.rewrite(exchange)

    def __enter__(self) -> Proxy:
        self._proxy.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._proxy.__exit__(*exc)

    @property
    def seen(self) -> list[Exchange]:
        return self._proxy.seen

    def mirror(self, src: Path, dst: str, state: Path, *flags: str) -> Any:
        return mirror(replace(self.server, endpoint=self._proxy.endpoint), src, dst, state, *flags)


# ------------------------------------------------------------------------------------------ deletes


def _synced_then_removed(
    server: ServerHandle, bucket: str, tmp_path: Path, proxy: Proxy
) -> tuple[Path, Path]:
    src = tmp_path / "src"
    write_tree(src, {"keep.txt": b"keep", "a.txt": b"a", "b.txt": b"b", "c.txt": b"c"})
    state = tmp_path / "j.db"
    first = proxy.mirror(src, f"ks3://{bucket}/d/", state, *FLAGS)
    assert first.returncode == 0, first.stderr[-2000:]
    for name in ("a.txt", "b.txt", "c.txt"):
        (src / name).unlink()
    return src, state


def test_a_refused_backup_copy_keeps_the_object(
    local_server: ServerHandle, bucket: str, tmp_path: Path
) -> None:
    with Proxy(local_server) as proxy:
        src, state = _synced_then_removed(local_server, bucket, tmp_path, proxy)
        refused = _error("InvalidArgument", 400)
        proxy.refuse = lambda m, t: (
            refused(m, t) if m == "PUT" and t.startswith(f"/{bucket}/bak/b.txt") else None
        )
        mark = local_server.mark()
        run = proxy.mirror(
            src,
            f"ks3://{bucket}/d/",
            state,
            *FLAGS,
            "--delete",
            "--max-delete",
            "100%",
            "--backup-prefix",
            "bak/",
        )
    assert run.returncode == 1, run.stderr[-2000:]
    assert "b.txt" in run.stderr and "backup copy failed" in run.stderr
    remote = bucket_contents(local_server, bucket, "")
    # b.txt had no backup, so it is still there; a and c were backed up, then deleted.
    assert {k: v for k, v in remote.items() if k.startswith("d/")} == {"d/keep.txt": b"keep", "d/b.txt": b"b"}
    assert {k: v for k, v in remote.items() if k.startswith("bak/")} == {"bak/a.txt": b"a", "bak/c.txt": b"c"}
    assert [op for op, status in _ops(local_server, mark) if op == "DeleteObjects" and status == 200]
    assert "b.txt" in journal_paths(state)


def test_a_fatal_answer_to_a_backup_copy_stops_the_deletes(
    local_server: ServerHandle, bucket: str, tmp_path: Path
) -> None:
    with Proxy(local_server) as proxy:
        src, state = _synced_then_removed(local_server, bucket, tmp_path, proxy)
        denied = _error("AccessDenied", 403)
        proxy.refuse = lambda m, t: denied(m, t) if m == "PUT" and t.startswith(f"/{bucket}/bak/") else None
        mark = local_server.mark()
        run = proxy.mirror(
            src,
            f"ks3://{bucket}/d/",
            state,
            *FLAGS,
            "--delete",
            "--max-delete",
            "100%",
            "--backup-prefix",
            "bak/",
        )
    assert run.returncode != 0, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    ops = [op for op, _ in _ops(local_server, mark)]
    assert "DeleteObjects" not in ops and "DeleteObject" not in ops
    denied_copies = [e for e in proxy.seen if e.status == 403]
    assert len(denied_copies) == 1, "after the fatal answer no other backup copy may be tried"
    assert set(bucket_contents(local_server, bucket, "d/")) == {"keep.txt", "a.txt", "b.txt", "c.txt"}
    assert journal_paths(state) >= {"a.txt", "b.txt", "c.txt"}


def test_a_refused_delete_call_forgets_nothing(
    local_server: ServerHandle, bucket: str, tmp_path: Path
) -> None:
    with Proxy(local_server) as proxy:
        src, state = _synced_then_removed(local_server, bucket, tmp_path, proxy)
        refused = _error("MalformedXML", 400)
        proxy.refuse = lambda m, t: refused(m, t) if m == "POST" and "delete" in t.partition("?")[2] else None
        run = proxy.mirror(src, f"ks3://{bucket}/d/", state, *FLAGS, "--delete", "--max-delete", "100%")
        assert run.returncode == 1, run.stderr[-2000:]
        assert "delete failed" in run.stderr and all(
            name in run.stderr for name in ("a.txt", "b.txt", "c.txt")
        )
        assert set(bucket_contents(local_server, bucket, "d/")) == {"keep.txt", "a.txt", "b.txt", "c.txt"}
        assert journal_paths(state) == {"keep.txt", "a.txt", "b.txt", "c.txt"}
        proxy.refuse = lambda m, t: None
        again = proxy.mirror(src, f"ks3://{bucket}/d/", state, *FLAGS, "--delete", "--max-delete", "100%")
    assert again.returncode == 0, again.stderr[-2000:]
    assert_bucket_equals_folder(local_server, bucket, "d/", src)
    assert journal_paths(state) == {"keep.txt"}


# ------------------------------------------------------------------------------------------ multipart


def _upload_left_recorded(bucket: str, tmp_path: Path, proxy: Proxy) -> tuple[Path, Path, str]:
    """A first run whose Complete is refused: the upload stays recorded (resumable) with all its parts."""
    src = tmp_path / "src"
    write_tree(src, {BIG: os.urandom(450_000), "small.txt": b"small"})
    state = tmp_path / "j.db"
    proxy.refuse = lambda m, t: (
        _error("InvalidArgument", 400)(m, t) if m == "POST" and "uploadId=" in t else None
    )
    run = proxy.mirror(src, f"ks3://{bucket}/m/", state, *FLAGS)
    assert run.returncode == 1 and BIG in run.stderr, run.stderr[-2000:]
    proxy.refuse = lambda m, t: None
    with client_for(proxy.server) as client:
        uploads = list(client.iter_multipart_uploads(bucket))
    assert [u.key for u in uploads] == [f"m/{BIG}"]
    return src, state, uploads[0].upload_id


def test_an_upload_gone_at_listparts_is_started_again(
    local_server: ServerHandle, bucket: str, tmp_path: Path
) -> None:
    with Proxy(local_server) as proxy:
        src, state, upload_id = _upload_left_recorded(bucket, tmp_path, proxy)
        with client_for(local_server) as client:  # someone else aborts it (or a lifecycle rule)
            client.abort_multipart(bucket, f"m/{BIG}", upload_id)
        mark = local_server.mark()
        run = proxy.mirror(src, f"ks3://{bucket}/m/", state, *FLAGS)
    assert run.returncode == 0, run.stderr[-2000:]
    ops = _ops(local_server, mark)
    assert ("ListParts", 404) in ops, ops
    assert [op for op, status in ops if op == "InitiateMultipartUpload" and status == 200] != []
    assert_bucket_equals_folder(local_server, bucket, "m/", src)
    assert_no_multipart_uploads(local_server, bucket)


def test_a_file_changed_since_its_upload_was_recorded_aborts_that_upload(
    local_server: ServerHandle, bucket: str, tmp_path: Path
) -> None:
    with Proxy(local_server) as proxy:
        src, state, upload_id = _upload_left_recorded(bucket, tmp_path, proxy)
        (src / BIG).write_bytes(os.urandom(450_000))  # same size, new bytes and times
        mark = local_server.mark()
        run = proxy.mirror(src, f"ks3://{bucket}/m/", state, *FLAGS)
    assert run.returncode == 0, run.stderr[-2000:]
    requests = local_server.requests()[mark:]
    aborted = [r for r in requests if r["op"] == "AbortMultipartUpload" and upload_id in r["query"]]
    assert aborted and aborted[0]["status"] == 204, [(r["op"], r["status"]) for r in requests]
    assert not [
        r for r in requests if r["op"] in ("ListParts", "CompleteMultipartUpload") and upload_id in r["query"]
    ]
    assert_bucket_equals_folder(local_server, bucket, "m/", src)
    assert_no_multipart_uploads(local_server, bucket)


def _abort_behind_the_clients_back(bucket: str, proxy: Proxy, when: Callable[[str, str], bool]) -> list[str]:
    """Before the first request matching ``when`` is forwarded, abort the upload it belongs to."""
    aborted: list[str] = []
    lock = threading.Lock()

    def before(method: str, target: str) -> None:
        query = target.partition("?")[2]
        upload_id = next(
            (item.partition("=")[2] for item in query.split("&") if item.startswith("uploadId=")), ""
        )
        with lock:
            if aborted or not upload_id or not when(method, query):
                return
            aborted.append(upload_id)
        with client_for(proxy.server) as client:
            client.abort_multipart(bucket, target.partition("?")[0].split("/", 2)[2], upload_id)

    proxy.before = before
    return aborted


def test_an_upload_vanishing_mid_send_is_started_again(
    local_server: ServerHandle, bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    write_tree(src, {BIG: os.urandom(450_000)})
    with Proxy(local_server) as proxy:
        aborted = _abort_behind_the_clients_back(
            bucket, proxy, lambda m, q: m == "PUT" and "partNumber=3" in q
        )
        mark = local_server.mark()
        run = proxy.mirror(src, f"ks3://{bucket}/v/", tmp_path / "j.db", *FLAGS)
    assert run.returncode == 0, run.stderr[-2000:]
    ops = _ops(local_server, mark)
    assert aborted and ("UploadPart", 404) in ops, ops
    assert "ListParts" not in [op for op, _ in ops]  # the vanished upload was forgotten at once
    assert [op for op, s in ops if op == "InitiateMultipartUpload" and s == 200] == [
        "InitiateMultipartUpload"
    ] * 2
    assert_bucket_equals_folder(local_server, bucket, "v/", src)
    assert_no_multipart_uploads(local_server, bucket)


def test_an_upload_vanishing_at_complete_is_started_again(
    local_server: ServerHandle, bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    write_tree(src, {BIG: os.urandom(450_000)})
    with Proxy(local_server) as proxy:
        aborted = _abort_behind_the_clients_back(bucket, proxy, lambda m, q: m == "POST")
        mark = local_server.mark()
        run = proxy.mirror(src, f"ks3://{bucket}/v/", tmp_path / "j.db", *FLAGS)
    assert run.returncode == 0, run.stderr[-2000:]
    ops = _ops(local_server, mark)
    assert aborted and ("CompleteMultipartUpload", 404) in ops, ops
    assert "ListParts" not in [op for op, _ in ops]  # the vanished upload was forgotten at once
    assert [op for op, s in ops if op == "CompleteMultipartUpload" and s == 200] == [
        "CompleteMultipartUpload"
    ]
    assert_bucket_equals_folder(local_server, bucket, "v/", src)
    assert_no_multipart_uploads(local_server, bucket)


def test_a_complete_whose_crc64_differs_is_never_recorded(
    local_server: ServerHandle, bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    write_tree(src, {BIG: os.urandom(450_000), "small.txt": b"small"})
    state = tmp_path / "j.db"

    rewritten: list[str] = []

    def wrong_crc(exchange: Exchange) -> None:
        # local-server states the completed object's CRC-64 twice: in the XML body and in the header.
        if exchange.method == "POST" and "uploadId=" in exchange.query and exchange.status == 200:
            crc = exchange.header("x-kss-checksum-crc64ecma") or ""
            wrong = str((int(crc) + 1) % 2**64)
            exchange.set_header("x-kss-checksum-crc64ecma", wrong)
            tag = f"<ChecksumCRC64ECMA>{crc}</ChecksumCRC64ECMA>".encode()
            exchange.body = exchange.body.replace(
                tag, f"<ChecksumCRC64ECMA>{wrong}</ChecksumCRC64ECMA>".encode()
            )
            rewritten.append(crc)

    with Proxy(local_server) as proxy:
        proxy.rewrite = wrong_crc
        run = proxy.mirror(src, f"ks3://{bucket}/c/", state, *FLAGS)
        assert rewritten and "" not in rewritten, "no Complete answer was rewritten: the case tested nothing"
        assert run.returncode == 1, run.stderr[-2000:]
        assert BIG in run.stderr and "CRC-64" in run.stderr
        assert journal_paths(state) == {"small.txt"}
        proxy.rewrite = lambda exchange: None
        again = proxy.mirror(src, f"ks3://{bucket}/c/", state, *FLAGS)
    assert again.returncode == 0, again.stderr[-2000:]
    assert journal_paths(state) == {"small.txt", BIG}
    assert_bucket_equals_folder(local_server, bucket, "c/", src)
    assert_no_multipart_uploads(local_server, bucket)
