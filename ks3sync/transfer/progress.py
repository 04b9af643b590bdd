"""Progress subscribers (s3transfer's idea): the executor calls them; they decide how to show it.

``NullProgress`` for tests and the daemon, ``LogProgress`` (one line per entry, for logs and pipes),
``RichProgress`` (a live bar with files, bytes, rate and ETA on a terminal; rich is imported only when a
terminal asks for it, so a no-op re-run does not pay for it). Subscribers must be thread-safe: workers
call them concurrently.

Imports nothing from ks3sync but errors-free model types.
"""

from __future__ import annotations

import logging
import threading
from typing import IO, Any, Protocol

log = logging.getLogger("ks3sync.transfer")


class ProgressSubscriber(Protocol):
    def plan_ready(self, entries: int, total_bytes: int) -> None: ...

    def bytes_moved(self, n: int) -> None: ...

    def entry_done(self, path: str, action: str, ok: bool, message: str = "") -> None: ...

    def close(self) -> None: ...


class NullProgress:
    def plan_ready(self, entries: int, total_bytes: int) -> None:
        return None

    def bytes_moved(self, n: int) -> None:
        return None

    def entry_done(self, path: str, action: str, ok: bool, message: str = "") -> None:
        return None

    def close(self) -> None:
        return None


class LogProgress:
    """Plain lines: ``uploaded dir/a.txt`` at INFO, failures at WARNING."""

    def __init__(self, logger: logging.Logger = log) -> None:
        self._log = logger

    def plan_ready(self, entries: int, total_bytes: int) -> None:
        self._log.info("%d entries to transfer, %d bytes", entries, total_bytes)

    def bytes_moved(self, n: int) -> None:
        return None

    def entry_done(self, path: str, action: str, ok: bool, message: str = "") -> None:
        if ok:
            self._log.info("%s %s", action, path)
        else:
            self._log.warning("failed %s %s: %s", action, path, message)

    def close(self) -> None:
        return None


class RichProgress:
    """A live bar on a terminal. Entry lines for failures are printed above the bar."""

    def __init__(self, stream: IO[str]) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._console = Console(file=stream)
        self._progress: Any = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self._console,
            transient=False,
        )
        self._lock = threading.Lock()
        self._task: Any = None
        self._entries = 0
        self._done = 0

    def plan_ready(self, entries: int, total_bytes: int) -> None:
        with self._lock:
            self._entries = entries
            self._progress.start()
            self._task = self._progress.add_task(f"0/{entries} files", total=total_bytes or None)

    def bytes_moved(self, n: int) -> None:
        if self._task is not None:
            self._progress.update(self._task, advance=n)

    def entry_done(self, path: str, action: str, ok: bool, message: str = "") -> None:
        with self._lock:
            self._done += 1
            done = self._done
        if self._task is not None:
            self._progress.update(self._task, description=f"{done}/{self._entries} files")
        if not ok:
            self._progress.console.print(f"failed {action} {path}: {message}", markup=False, highlight=False)

    def close(self) -> None:
        with self._lock:
            self._progress.stop()
