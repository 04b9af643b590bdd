"""A watchdog observer for one sync root, feeding a ChangeBuffer, with a scanning fallback.

Watching can fail in three ways, and each one means "events were or will be lost":
- the kernel's inotify queue overflows (watchdog logs it and re-adds its watches; we notice the log
  record and flag the buffer, and the daemon runs a full rescan);
- the watch limit (``fs.inotify.max_user_watches``) or instance limit is reached when watching starts
  or, later, when a new subdirectory is added (the emitter thread dies); the watcher then reports
  ``WatchMode.POLLING`` and the daemon rescans on a short interval instead of relying on events;
- the folder itself disappears (deleted, unmounted): the buffer's ``root_gone`` flag.

Imports watchdog and ks3sync.watch only.
"""

from __future__ import annotations

import enum
import errno
import logging
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from ks3sync.watch.buffer import ChangeBuffer
from ks3sync.watch.changes import log_event
from ks3sync.watch.translate import translate

log = logging.getLogger(__name__)

LIMIT_ERRNOS = {errno.ENOSPC, errno.EMFILE, errno.ENFILE, errno.ENOMEM}


class WatchMode(enum.Enum):
    WATCHING = "watching"  # events flow; periodic rescans only at rescan_interval
    POLLING = "polling"  # no events (limit reached, or watching failed): rescans stand in for them
    STOPPED = "stopped"


class _Handler(FileSystemEventHandler):
    def __init__(self, root: str, buffer: ChangeBuffer) -> None:
        self._root = root
        self._buffer = buffer

    def dispatch(self, event: FileSystemEvent) -> None:
        notes = translate(self._root, event)
        if notes:
            self._buffer.add(notes)


class _OverflowListener(logging.Handler):
    """watchdog reports a kernel queue overflow only as a log record; every live watcher rescans
    (the record does not say which watch overflowed, and an overflow is rare)."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.buffers: weakref.WeakSet[ChangeBuffer] = weakref.WeakSet()

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            for buffer in list(self.buffers):
                buffer.mark_overflow()


_overflow = _OverflowListener()
_install_lock = threading.Lock()
_installed = False


def _install_overflow_listener() -> None:
    global _installed
    with _install_lock:
        if not _installed:
            for name in ("watchdog.observers.inotify_c", "watchdog.observers.inotify"):
                logging.getLogger(name).addHandler(_overflow)
            _installed = True


class Watcher:
    def __init__(
        self,
        root: Path,
        buffer: ChangeBuffer,
        *,
        observer_factory: Callable[[], Any] = Observer,
        follow_symlinks: bool = False,
    ) -> None:
        self.root = root
        self.buffer = buffer
        self._factory = observer_factory
        self._follow = follow_symlinks
        self._observer: Any = None
        self.mode = WatchMode.STOPPED
        self.reason = ""

    def start(self) -> WatchMode:
        """Start watching; never raises for a limit or a missing folder (returns POLLING instead)."""
        _install_overflow_listener()
        _overflow.buffers.add(self.buffer)
        observer = self._factory()
        try:
            observer.schedule(
                _Handler(str(self.root), self.buffer),
                str(self.root),
                recursive=True,
                follow_symlink=self._follow,
            )
            observer.start()
        except OSError as exc:
            self._stop_quietly(observer)
            self.mode = WatchMode.POLLING
            limit = exc.errno in LIMIT_ERRNOS
            self.reason = ("inotify limit reached: " if limit else "cannot watch: ") + (
                exc.strerror or str(exc)
            )
            log_event(
                log,
                logging.WARNING,
                "watch_failed",
                root=str(self.root),
                error=self.reason,
                fallback="periodic rescans",
                hint="raise fs.inotify.max_user_watches" if limit else None,
            )
            return self.mode
        self._observer = observer
        self.mode = WatchMode.WATCHING
        self.reason = ""
        return self.mode

    def check(self) -> WatchMode:
        """Notice a dead observer or emitter thread (e.g. the watch limit hit while adding a new
        subdirectory) and fall back to scanning."""
        if self.mode is not WatchMode.WATCHING:
            return self.mode
        observer = self._observer
        emitters = list(getattr(observer, "emitters", ()))
        if not observer.is_alive() or any(not e.is_alive() for e in emitters):
            self.mode = WatchMode.POLLING
            self.reason = "watch thread stopped (inotify limit or folder gone)"
            log_event(log, logging.WARNING, "watch_lost", root=str(self.root), fallback="periodic rescans")
            self.buffer.mark_overflow()
            self._stop_quietly(observer)
            self._observer = None
        return self.mode

    def stop(self) -> None:
        _overflow.buffers.discard(self.buffer)
        if self._observer is not None:
            self._stop_quietly(self._observer)
            self._observer = None
        self.mode = WatchMode.STOPPED

    @staticmethod
    def _stop_quietly(observer: Any) -> None:
        try:
            observer.stop()
            if observer.is_alive():
                observer.join(timeout=5)
        except (OSError, RuntimeError) as exc:  # a thread that never started, an fd already closed
            log_event(log, logging.DEBUG, "observer_stop_error", error=str(exc))
