"""scan_tree on real trees: order, names, nesting, special files, links, permissions, limits."""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ks3sync.model import LocalEntry
from ks3sync.scan import Filters, ScanProblem, ScanRootError, changed_since, scan_tree, stat_identity


def scan(root: Path, **kw: object) -> tuple[list[LocalEntry], list[ScanProblem]]:
    entries: list[LocalEntry] = []
    problems: list[ScanProblem] = []
    filters = kw.pop("filters", None) or Filters.build(root)
    for item in scan_tree(root, filters, **kw):  # type: ignore[arg-type]
        (entries if isinstance(item, LocalEntry) else problems).append(item)  # type: ignore[arg-type]
    return entries, problems


def make(root: Path, *paths: str, content: bytes = b"x") -> None:
    for p in paths:
        target = root / p
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)


def utf8_sorted(paths: list[str]) -> list[str]:
    return sorted(paths, key=lambda p: p.encode("utf-8"))


def test_order_is_utf8_byte_order_of_full_paths_not_per_folder(tmp_path: Path) -> None:
    paths = ["a/b", "a-b", "a.b", "a/c/d", "a0", "a b", "ab", "b", "\u00e9", "z/\u00e9/x", "A", "a/-"]
    make(tmp_path, *paths)
    entries, problems = scan(tmp_path)
    got = [e.path for e in entries]
    assert problems == []
    assert got == utf8_sorted(paths)
    assert got.index("a-b") < got.index("a.b") < got.index("a/-") < got.index("a/b") < got.index("a0")


names = st.sampled_from(["a", "b", "a-b", "a.b", "-", ".x", "\u00e9", "e\u0301", "a b", "+", "~"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(names, min_size=1, max_size=4), min_size=1, max_size=12))
def test_order_property(tmp_path_factory: pytest.TempPathFactory, trees: list[list[str]]) -> None:
    root = tmp_path_factory.mktemp("tree")
    files: set[str] = set()
    for parts in trees:
        path = "/".join(parts)
        # a name cannot be both a file and a folder
        if any(path.startswith(f + "/") for f in files) or any(f.startswith(path + "/") for f in files):
            continue
        files.add(path)
        make(root, path)
    got = [e.path for e in scan(root)[0]]
    assert got == utf8_sorted(list(files))


def test_nfc_and_nfd_names_are_two_files(tmp_path: Path) -> None:
    nfc = unicodedata.normalize("NFC", "caf\u00e9.txt")
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfc != nfd
    (tmp_path / nfc).write_bytes(b"1")
    (tmp_path / nfd).write_bytes(b"22")
    entries, _ = scan(tmp_path)
    assert [(e.path, e.size) for e in entries] == [(nfd, 2), (nfc, 1)]  # "e" < "\u00e9": NFD first


def test_awkward_names_empty_files_and_deep_nesting(tmp_path: Path) -> None:
    deep = "/".join(f"level{i}" for i in range(60)) + "/bottom.txt"
    odd = [
        "with space.txt",
        "plus+sign",
        "100% done",
        "#hash",
        "what?",
        "semi;colon",
        "quote'\"",
        "tab\there",
    ]
    make(tmp_path, deep, *odd)
    (tmp_path / "empty.bin").write_bytes(b"")
    (tmp_path / "empty-folder").mkdir()
    entries, problems = scan(tmp_path)
    assert problems == []
    by_path = {e.path: e for e in entries}
    assert set(by_path) == {deep, *odd, "empty.bin"}
    assert by_path["empty.bin"].size == 0
    st = os.stat(tmp_path / "plus+sign")
    assert by_path["plus+sign"].identity.inode == st.st_ino
    assert by_path["plus+sign"].identity.mtime_ns == st.st_mtime_ns


def test_non_utf8_name_is_reported_with_a_printable_path(tmp_path: Path) -> None:
    make(tmp_path, "sub/good.txt")
    bad = os.path.join(os.fsencode(tmp_path / "sub"), b"bad\xff\xfe.txt")
    with open(bad, "wb") as fh:
        fh.write(b"data")
    os.mkdir(os.path.join(os.fsencode(tmp_path), b"dir\xe9"))
    entries, problems = scan(tmp_path)
    assert [e.path for e in entries] == ["sub/good.txt"]
    shown = sorted((p.path, p.kind) for p in problems)
    assert shown == [("dir\\xe9", "name"), ("sub/bad\\xff\\xfe.txt", "name")]
    for p in problems:
        p.path.encode("utf-8")  # printable: no lone surrogates


def test_key_length_limit_counts_the_prefix_in_bytes(tmp_path: Path) -> None:
    # 4 folders of 200 bytes + "/" each = 804 bytes, then a file name filling up to the limit.
    folder = "/".join(["d" * 200] * 4) + "/"
    prefix = "backup/\u00e9/"  # 10 bytes in UTF-8, 9 characters
    fits = folder + "f" * (1024 - len(prefix.encode()) - len(folder))
    too_long = folder + "g" * (1025 - len(prefix.encode()) - len(folder))
    make(tmp_path, fits, too_long)
    assert len((prefix + fits).encode()) == 1024 and len((prefix + too_long).encode()) == 1025
    entries, problems = scan(tmp_path, key_prefix=prefix)
    assert [e.path for e in entries] == [fits]
    assert [(p.path, p.kind) for p in problems] == [(too_long, "too-long")]
    assert "1025 bytes" in problems[0].reason


def test_fifo_and_socket_are_reported_not_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    sock_path = tmp_path / "sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(sock_path))
        make(tmp_path, "file")
        entries, problems = scan(tmp_path)
    finally:
        sock.close()
    assert [e.path for e in entries] == ["file"]
    assert sorted((p.path, p.kind, p.reason) for p in problems) == [
        ("pipe", "special", "special file (FIFO): not synced"),
        ("sock", "special", "special file (socket): not synced"),
    ]


def test_symlinks_are_reported_unless_followed(tmp_path: Path) -> None:
    make(tmp_path, "real/file.txt", content=b"hello")
    os.symlink("real/file.txt", tmp_path / "link.txt")
    os.symlink("real", tmp_path / "linkdir")
    os.symlink("nowhere", tmp_path / "broken")
    entries, problems = scan(tmp_path)
    assert [e.path for e in entries] == ["real/file.txt"]
    assert sorted((p.path, p.kind) for p in problems) == [
        ("broken", "symlink"),
        ("link.txt", "symlink"),
        ("linkdir", "symlink"),
    ]

    entries, problems = scan(tmp_path, follow_symlinks=True)
    assert [e.path for e in entries] == ["link.txt", "linkdir/file.txt", "real/file.txt"]
    assert all(e.size == 5 for e in entries)
    assert [(p.path, p.reason) for p in problems] == [("broken", "broken symbolic link")]


def test_symlink_loop_is_detected_when_following(tmp_path: Path) -> None:
    make(tmp_path, "a/b/file")
    os.symlink("../..", tmp_path / "a" / "b" / "up")  # points back at the root
    os.symlink("self", tmp_path / "self")  # a link to itself
    entries, problems = scan(tmp_path, follow_symlinks=True)
    assert [e.path for e in entries] == ["a/b/file"]
    assert sorted((p.path, p.kind) for p in problems) == [("a/b/up", "loop"), ("self", "loop")]


def _scan_as_nobody(root: Path) -> list[list[str]]:
    """Root ignores permissions: as root, scan in a forked child that became 'nobody' (no exec, so
    the interpreter and ks3sync need not be readable by that user). Otherwise scan here."""
    filters = Filters.build(root)

    def run() -> list[list[str]]:
        return [
            [i.path, i.kind] if isinstance(i, ScanProblem) else [i.path, "file"]
            for i in scan_tree(root, filters)
        ]

    if os.geteuid() != 0:
        return run()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop privileges, scan, report, exit without running pytest's teardown
        code = 1
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            with os.fdopen(write_end, "w") as out:
                out.write(json.dumps(run()))
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as inp:
        data = inp.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the unprivileged scan failed"
    return json.loads(data)  # type: ignore[no-any-return]


def test_unreadable_folder_and_file_are_reported() -> None:
    base = Path(tempfile.mkdtemp(prefix="ks3sync-perm-"))  # under /tmp: traversable by 'nobody'
    try:
        os.chmod(base, 0o755)
        make(base, "open/ok.txt", "closed/secret.txt", "private.txt")
        os.chmod(base / "open", 0o755)
        os.chmod(base / "open" / "ok.txt", 0o644)
        os.chmod(base / "closed", 0o000)
        os.chmod(base / "private.txt", 0o000)
        assert _scan_as_nobody(base) == [
            ["closed", "unreadable"],
            ["open/ok.txt", "file"],
            ["private.txt", "unreadable"],
        ]
    finally:
        os.chmod(base / "closed", 0o755)
        shutil.rmtree(base, ignore_errors=True)


def test_missing_root_is_an_error_not_a_problem(tmp_path: Path) -> None:
    with pytest.raises(ScanRootError, match="cannot use as the source folder"):
        list(scan_tree(tmp_path / "nope", Filters.build(tmp_path)))
    make(tmp_path, "file")
    with pytest.raises(ScanRootError, match="not a folder"):
        list(scan_tree(tmp_path / "file", Filters.build(tmp_path)))


def test_identity_and_change_detection(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes(b"one")
    ident = stat_identity(path)
    assert ident is not None and ident.size == 3
    (entry,) = scan(tmp_path)[0]
    assert entry.identity == ident
    assert not changed_since(ident, path)
    os.utime(path, ns=(ident.mtime_ns, ident.mtime_ns + 1))  # touched: same size, new mtime
    assert changed_since(ident, path)
    ident = stat_identity(path)
    assert ident is not None
    os.chmod(path, 0o600)  # ctime only
    assert changed_since(ident, path)
    ident = stat_identity(path)
    assert ident is not None
    replacement = tmp_path / "new.txt"
    replacement.write_bytes(b"one")
    os.utime(replacement, ns=(ident.mtime_ns, ident.mtime_ns))
    os.replace(replacement, path)  # same size and mtime, other inode (an editor's save)
    assert changed_since(ident, path)
    path.unlink()
    assert stat_identity(path) is None and changed_since(ident, path)
