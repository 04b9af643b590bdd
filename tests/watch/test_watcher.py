"""The real watchdog observer on temp folders → coalesced per-file changes."""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from watchdog.events import DirMovedEvent, FileClosedNoWriteEvent, FileCreatedEvent, FileMovedEvent

from ks3sync.watch import ChangeBuffer, FsChange, Kind, Watcher, WatchMode
from ks3sync.watch.translate import Note, Observed, translate

U, D, M = Kind.UPSERT, Kind.DELETE, Kind.MOVE


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    return folder


@pytest.fixture()
def watched(root: Path) -> Iterator[tuple[Watcher, ChangeBuffer]]:
    buffer = ChangeBuffer(root)
    watcher = Watcher(root, buffer)
    assert watcher.start() is WatchMode.WATCHING
    yield watcher, buffer
    watcher.stop()


def collect(
    buffer: ChangeBuffer,
    wait_until: Callable[..., object],
    want: Callable[[dict], bool],
    known: dict[str, list[str]] | None = None,
) -> dict[str, FsChange]:
    """Drain until ``want(seen)`` holds; later changes for a path replace earlier ones."""
    seen: dict[str, FsChange] = {}

    def step() -> bool:
        for change in buffer.drain(lambda d: (known or {}).get(d, [])):
            seen[change.path] = change
        return want(seen)

    wait_until(step, timeout=20)
    return seen


def kinds(seen: dict[str, FsChange]) -> dict[str, tuple[Kind, str | None]]:
    return {p: (c.kind, c.src_path) for p, c in seen.items()}


def test_create_modify_delete(watched: tuple[Watcher, ChangeBuffer], root: Path, wait_until) -> None:
    _, buffer = watched
    (root / "a.txt").write_text("one")
    seen = collect(buffer, wait_until, lambda s: "a.txt" in s)
    assert seen["a.txt"].kind is U
    with open(root / "a.txt", "a") as f:
        f.write("two")
    assert collect(buffer, wait_until, lambda s: "a.txt" in s)["a.txt"].kind is U
    (root / "a.txt").unlink()
    assert collect(buffer, wait_until, lambda s: s.get("a.txt") and s["a.txt"].kind is D)


def test_many_writes_coalesce_to_one_change(
    watched: tuple[Watcher, ChangeBuffer], root: Path, wait_until
) -> None:
    _, buffer = watched
    with open(root / "big.log", "w") as f:
        for i in range(200):
            f.write(f"line {i}\n")
            f.flush()
    wait_until(lambda: buffer.pending() >= 2)
    (root / "marker").write_text("")
    changes: list[FsChange] = []
    wait_until(lambda: changes.extend(buffer.drain(lambda d: [])) or any(c.path == "marker" for c in changes))
    assert [c.path for c in changes].count("big.log") <= 2  # one per drain at most


def test_rename_file_is_a_move(watched: tuple[Watcher, ChangeBuffer], root: Path, wait_until) -> None:
    _, buffer = watched
    (root / "old.txt").write_text("x")
    collect(buffer, wait_until, lambda s: "old.txt" in s)
    os.rename(root / "old.txt", root / "new.txt")
    seen = collect(buffer, wait_until, lambda s: "new.txt" in s)
    assert kinds(seen) == {"new.txt": (M, "old.txt")}


def test_rename_directory_expands_to_per_file_moves(root: Path, wait_until) -> None:
    (root / "d" / "sub").mkdir(parents=True)
    for name in ("d/1", "d/2", "d/sub/3"):
        (root / name).write_text(name)
    # watch only after the files exist, so no late write event mixes into what the rename produces
    buffer = ChangeBuffer(root)
    watcher = Watcher(root, buffer)
    assert watcher.start() is WatchMode.WATCHING
    try:
        _rename_dir(root, buffer, wait_until)
    finally:
        watcher.stop()


def _rename_dir(root: Path, buffer: ChangeBuffer, wait_until: Callable[..., object]) -> None:
    known = {"d": ["d/1", "d/2", "d/sub/3", "d/gone-before"]}
    os.rename(root / "d", root / "e")
    seen = collect(buffer, wait_until, lambda s: {"e/1", "e/2", "e/sub/3"} <= s.keys(), known)
    assert kinds(seen) == {
        "e/1": (M, "d/1"),
        "e/2": (M, "d/2"),
        "e/sub/3": (M, "d/sub/3"),
        "d/gone-before": (D, None),  # known under the old name, not found under the new one
    }


def test_directory_moved_out_deletes_what_the_journal_knew(
    watched: tuple[Watcher, ChangeBuffer], root: Path, tmp_path: Path, wait_until
) -> None:
    _, buffer = watched
    (root / "d").mkdir()
    (root / "d" / "f").write_text("f")
    collect(buffer, wait_until, lambda s: "d/f" in s)
    os.rename(root / "d", tmp_path / "outside")
    seen = collect(buffer, wait_until, lambda s: s.get("d/f") and s["d/f"].kind is D, {"d": ["d/f"]})
    assert kinds(seen) == {"d/f": (D, None)}


def test_directory_moved_in_uploads_its_files(
    watched: tuple[Watcher, ChangeBuffer], root: Path, tmp_path: Path, wait_until
) -> None:
    _, buffer = watched
    (tmp_path / "incoming" / "x").mkdir(parents=True)
    (tmp_path / "incoming" / "x" / "f").write_text("f")
    os.rename(tmp_path / "incoming", root / "in")
    seen = collect(buffer, wait_until, lambda s: "in/x/f" in s)
    assert kinds(seen) == {"in/x/f": (U, None)}


def test_root_deleted_is_flagged_not_expanded(
    watched: tuple[Watcher, ChangeBuffer], root: Path, wait_until
) -> None:
    _, buffer = watched
    (root / "f").write_text("f")
    collect(buffer, wait_until, lambda s: "f" in s)
    (root / "f").unlink()
    root.rmdir()
    flags: list[tuple[bool, bool]] = []
    wait_until(lambda: flags.append(buffer.take_flags()) or any(gone for _, gone in flags))


def test_watch_limit_falls_back_to_scanning(root: Path, caplog: pytest.LogCaptureFixture) -> None:
    class FullObserver:
        def schedule(self, *a: object, **k: object) -> None:
            raise OSError(errno.ENOSPC, "inotify watch limit reached")

        def stop(self) -> None: ...

        def is_alive(self) -> bool:
            return False

    watcher = Watcher(root, ChangeBuffer(root), observer_factory=FullObserver)
    with caplog.at_level(logging.WARNING):
        assert watcher.start() is WatchMode.POLLING
    assert "inotify limit reached" in watcher.reason
    (record,) = [r for r in caplog.records if r.getMessage() == "watch_failed"]
    assert record.ks3sync_fields["fallback"] == "periodic rescans"  # type: ignore[attr-defined]
    assert "max_user_watches" in record.ks3sync_fields["hint"]  # type: ignore[attr-defined]


def test_missing_folder_falls_back_to_scanning(tmp_path: Path) -> None:
    watcher = Watcher(tmp_path / "absent", ChangeBuffer(tmp_path / "absent"))
    assert watcher.start() is WatchMode.POLLING
    assert "cannot watch" in watcher.reason


def test_overflow_log_record_flags_every_live_buffer(watched: tuple[Watcher, ChangeBuffer]) -> None:
    _, buffer = watched
    logging.getLogger("watchdog.observers.inotify_c").warning(
        "Inotify queue overflowed; filesystem events were lost"
    )
    assert buffer.take_flags() == (True, False)
    assert buffer.take_flags() == (False, False)  # flags are taken once


def test_dead_emitter_is_noticed(watched: tuple[Watcher, ChangeBuffer]) -> None:
    watcher, buffer = watched
    assert watcher.check() is WatchMode.WATCHING
    for emitter in list(watcher._observer.emitters):  # simulate the emitter thread dying
        emitter.stop()
        emitter.join(5)
    assert watcher.check() is WatchMode.POLLING
    assert buffer.take_flags()[0] is True


# -- translate (pure) -------------------------------------------------------------------------------


def test_translate_paths_and_edges() -> None:
    r = "/w"
    assert translate(r, FileCreatedEvent("/w/a/b.txt")) == [Observed(Note.FILE_CHANGED, "a/b.txt")]
    assert translate(r, FileCreatedEvent("/elsewhere/x")) == []
    assert translate(r, FileCreatedEvent("/w/.ks3sync-tmp-123")) == []
    assert translate(r, FileClosedNoWriteEvent("/w/a")) == []
    assert translate(r, FileMovedEvent("/w/a", "/w/b")) == [Observed(Note.FILE_MOVED, "b", "a")]
    assert translate(r, FileMovedEvent("/w/a", "/x/b")) == [Observed(Note.FILE_DELETED, "a")]
    assert translate(r, FileMovedEvent("/x/a", "/w/b")) == [Observed(Note.FILE_CHANGED, "b")]
    assert translate(r, FileMovedEvent("/w/.ks3sync-tmp-1", "/w/b")) == [Observed(Note.FILE_CHANGED, "b")]
    assert translate(r, DirMovedEvent("/w/d", "/w/e")) == [Observed(Note.DIR_MOVED, "e", "d")]
    assert translate(r, DirMovedEvent("/w", "/elsewhere")) == [Observed(Note.ROOT_GONE, "")]
    assert translate(r, FileMovedEvent("/w/d/f", "/w/e/f", is_synthetic=True)) == []
    assert translate(r, FileCreatedEvent(b"/w/\xff.txt")) == []  # not UTF-8: left to the scanner
