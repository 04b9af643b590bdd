"""`ks3sync.engine.repair` in-process: the journal file handling (a damaged file is moved aside, never deleted;
an unusable location is a FatalError) and the rebuild rules over the in-memory store (recorded only when
the object provably holds the file; nothing uploaded; stale records dropped; unknown uploads aborted).
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ks3sync.engine.repair import RepairOptions, RepairResult, open_or_replace_journal, rebuild
from ks3sync.errors import FatalError
from ks3sync.journal import Journal
from ks3sync.ks3 import BytesBody
from ks3sync.model import FileIdentity, SyncedEntry, UploadRecord
from ks3sync.store.base import (
    META_ENC_IV,
    META_ENC_KEY,
    META_ENC_PLAIN_LENGTH,
    META_ENC_PLAIN_MD5,
    WriteOptions,
)
from ks3sync.store.memory import MemoryStore

from .helpers import read_only, write_tree

# ---------------------------------------------------------------------------------------- the journal file


def test_a_healthy_journal_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with Journal.open(path) as journal:
        sync_id = journal.register_sync("s", "/src", "b", "p/", "h")
    journal, moved = open_or_replace_journal(path)
    with journal:
        assert moved is None
        assert [s.id for s in journal.syncs()] == [sync_id]


@pytest.mark.parametrize("damage", ["garbage", "truncated-header", "foreign-database"])
def test_a_damaged_journal_is_moved_aside_and_replaced(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "j.db"
    with Journal.open(path) as journal:
        journal.register_sync("s", "/src", "b", "p/", "h")
    original = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(os.urandom(len(original)))
    elif damage == "truncated-header":
        path.write_bytes(original[:50])
    else:
        import sqlite3

        path.unlink()
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE other (x)")
        db.close()
    damaged = path.read_bytes()
    journal, moved = open_or_replace_journal(path)
    with journal:
        assert moved is not None
        if damage == "foreign-database":
            import sqlite3

            with sqlite3.connect(moved) as db:  # someone else's database survives, tables intact
                assert db.execute("SELECT name FROM sqlite_master").fetchall() == [("other",)]
            db.close()
        else:
            assert moved.read_bytes() == damaged  # kept for inspection, byte for byte
        assert moved.name.startswith("j.db.corrupt-")
        assert journal.syncs() == [] and journal.integrity_check() == []
    journal2, moved2 = open_or_replace_journal(path)
    journal2.close()
    assert moved2 is None


def test_journal_open_does_not_modify_a_foreign_database(tmp_path: Path) -> None:
    """Pointing --state-db at another program's SQLite file must be refused without touching it
    (today the journal switches the file to WAL mode before it notices the tables are foreign)."""
    import sqlite3

    from ks3sync.journal import JournalError

    path = tmp_path / "someone-elses.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE other (x)")
    db.close()
    before = path.read_bytes()
    with pytest.raises(JournalError):
        Journal.open(path)
    assert path.read_bytes() == before


def test_a_journal_in_a_read_only_folder_is_a_fatal_error(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    with read_only(folder), pytest.raises(FatalError) as caught:
        open_or_replace_journal(folder / "j.db")
    assert "j.db" in str(caught.value)


# ---------------------------------------------------------------------------------------- rebuild rules


def _put(store: MemoryStore, path: str, data: bytes, metadata: dict[str, str] | None = None) -> None:
    store.put(path, BytesBody(data), WriteOptions(metadata=metadata or {}))


def _multipart(store: MemoryStore, path: str, data: bytes, part: int = 1000) -> None:
    upload_id = store.create_upload(path, WriteOptions())
    parts = [
        store.upload_part(path, upload_id, n + 1, BytesBody(data[i : i + part]))
        for n, i in enumerate(range(0, len(data), part))
    ]
    store.complete_upload(path, upload_id, parts)


def _rebuild(store: MemoryStore, root: Path, journal: Journal, sync_id: int, **opts: Any) -> RepairResult:
    return rebuild(store, journal, sync_id, root, RepairOptions(jobs=2, **opts))


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal.open(tmp_path / "state" / "j.db") as j:
        yield j


def test_rebuild_records_only_objects_that_hold_the_file(tmp_path: Path, journal: Journal) -> None:
    root = tmp_path / "src"
    files = {
        "same.txt": b"same content",
        "edited.txt": b"local version!",
        "resized.txt": b"longer locally",
        "local-only.txt": b"new",
        "big-same.bin": os.urandom(3500),
        "big-edited.bin": os.urandom(3500),
        "empty.txt": b"",
    }
    write_tree(root, files)
    store = MemoryStore(prefix="p/", min_part_size=1)
    _put(store, "same.txt", b"same content")
    _put(store, "edited.txt", b"remote version")  # same size, other bytes
    _put(store, "resized.txt", b"short")
    _put(store, "remote-only.txt", b"old")
    _put(store, "empty.txt", b"")
    _multipart(store, "big-same.bin", files["big-same.bin"])
    _multipart(store, "big-edited.bin", os.urandom(3500))
    sync_id = journal.register_sync("s", str(root), "memory", "p/", "h")
    before = len(store.writes())

    result = _rebuild(store, root, journal, sync_id)

    entries = journal.synced_entries(sync_id)
    assert sorted(entries) == ["big-same.bin", "empty.txt", "same.txt"]
    assert result.recorded == 3
    assert result.differ == ("big-edited.bin", "edited.txt", "resized.txt")
    assert (result.local_only, result.remote_only, result.unverified) == (1, 1, ())
    assert entries["same.txt"].md5 == hashlib.md5(b"same content").hexdigest()
    remote = {r.path: r for r in store.list()}
    assert (entries["big-same.bin"].remote_etag, entries["big-same.bin"].remote_size) == (
        remote["big-same.bin"].etag,
        remote["big-same.bin"].size,
    )
    st = (root / "same.txt").stat()
    assert entries["same.txt"].identity == FileIdentity(st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)
    assert store.writes()[before:] == []  # nothing uploaded, copied or deleted


def test_rebuild_drops_stale_records_and_dry_run_changes_nothing(tmp_path: Path, journal: Journal) -> None:
    root = tmp_path / "src"
    write_tree(root, {"a.txt": b"a"})
    store = MemoryStore()
    _put(store, "a.txt", b"a")
    sync_id = journal.register_sync("s", str(root), "memory", "", "h")
    ghost = SyncedEntry("ghost.txt", FileIdentity(1, 1, 1, 1), "0" * 32, "0" * 32, 1)
    journal.record_synced(sync_id, [ghost])

    dry = _rebuild(store, root, journal, sync_id, dry_run=True)
    assert dry.recorded == 1 and dry.dry_run
    assert list(journal.synced_entries(sync_id)) == ["ghost.txt"]

    _rebuild(store, root, journal, sync_id)
    assert list(journal.synced_entries(sync_id)) == ["a.txt"]


def test_rebuild_aborts_uploads_the_journal_cannot_resume(tmp_path: Path, journal: Journal) -> None:
    root = tmp_path / "src"
    write_tree(root, {"a.txt": b"a"})
    store = MemoryStore(prefix="p/")
    orphan = store.create_upload("orphan.bin", WriteOptions())
    known = store.create_upload("known.bin", WriteOptions())
    sync_id = journal.register_sync("s", str(root), "memory", "p/", "h")
    journal.checkpoint(sync_id).upload_started(
        UploadRecord("known.bin", "p/known.bin", known, 100 * 1024, FileIdentity(1, 1, 1, 1), 0)
    )

    kept = _rebuild(store, root, journal, sync_id, abort_unknown_uploads=False)
    assert kept.aborted_uploads == 0 and {u.upload_id for u in store.list_uploads()} == {orphan, known}
    result = _rebuild(store, root, journal, sync_id)
    assert result.aborted_uploads == 1
    assert [u.upload_id for u in store.list_uploads()] == [known]


def test_encrypted_objects_are_recorded_only_with_the_matching_key(tmp_path: Path, journal: Journal) -> None:
    from ks3sync.crypto.key import EncryptionKey

    root = tmp_path / "src"
    plain = b"secret plaintext"
    write_tree(root, {"e.txt": plain, "e2.txt": b"other plaintext!"})
    key, other = EncryptionKey.generate(), EncryptionKey.generate()
    store = MemoryStore()

    def envelope(k: EncryptionKey, data: bytes) -> dict[str, str]:
        return {
            META_ENC_KEY: k.fingerprint,
            META_ENC_IV: base64.b64encode(b"\0" * 16).decode(),
            META_ENC_PLAIN_MD5: base64.b64encode(hashlib.md5(data).digest()).decode(),
            META_ENC_PLAIN_LENGTH: str(len(data)),
        }

    _put(store, "e.txt", os.urandom(32), envelope(key, plain))  # ciphertext: size differs from plaintext
    _put(store, "e2.txt", os.urandom(32), envelope(key, b"a different file"))
    sync_id = journal.register_sync("s", str(root), "memory", "", "h")

    assert _rebuild(store, root, journal, sync_id).recorded == 0  # no key: never
    assert _rebuild(store, root, journal, sync_id, encryption_key=other).recorded == 0  # wrong key
    result = _rebuild(store, root, journal, sync_id, encryption_key=key)
    assert result.recorded == 1 and result.differ == ("e2.txt",)
    entry = journal.synced_entries(sync_id)["e.txt"]
    assert entry.encrypted and entry.md5 == hashlib.md5(plain).hexdigest()


# ---------------------------------------------------------------------------------------- the command line


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ([], "expected SRC DST"),
        (["only-one-arg"], "expected SRC DST"),
        (["--sync", "docs"], "--sync needs --config"),
        (["/nonexistent/ks3sync/folder", "ks3://bucket/p"], "no such folder"),
        (["ks3://bucket/a", "ks3://bucket/b"], "exactly one of SRC and DST"),
    ],
)
def test_repair_usage_errors_are_one_line_and_exit_2(tmp_path: Path, args: list[str], needle: str) -> None:
    from click.testing import CliRunner

    from ks3sync.cli.main import cli

    env = {"KS3_ACCESS_KEY": "AKLTx", "KS3_SECRET_KEY": "repair-secret", "XDG_STATE_HOME": str(tmp_path)}
    result = CliRunner().invoke(cli, ["repair", *args, "--endpoint", "http://127.0.0.1:9"], env=env)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], lines
    assert "repair-secret" not in result.output
    assert not (tmp_path / "ks3sync" / "journal.db").exists()  # nothing created on a usage error


def test_repair_of_an_unknown_service_sync_names_the_choices(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ks3sync.cli.main import cli

    src = tmp_path / "docs"
    src.mkdir()
    config = tmp_path / "ks3sync.yaml"
    config.write_text(
        f"endpoint: http://127.0.0.1:9\nstate_dir: {tmp_path / 'state'}\n"
        f"syncs:\n  - name: docs\n    source: {src}\n    target: ks3://bucket/p\n"
    )
    env = {"KS3_ACCESS_KEY": "AKLTx", "KS3_SECRET_KEY": "repair-secret"}
    result = CliRunner().invoke(cli, ["repair", "--config", str(config), "--sync", "photos"], env=env)
    assert result.exit_code == 2, result.output
    assert "no sync named 'photos'" in result.stderr and "docs" in result.stderr
