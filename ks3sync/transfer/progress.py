"""Progress subscribers (s3transfer's idea): the executor calls them; they decide how to show it.

``NullProgress`` for tests and the daemon, ``LogProgress`` (one line per entry, for logs and pipes). The
terminal's live bar is the CLI's (``ks3sync.cli.progress``). Subscribers must be thread-safe: workers
call them concurrently. ``entry_started``/``entry_done`` bracket each entry, so a subscriber can tell
what is in flight (what a Ctrl-C waits for).

Imports nothing from ks3sync but model types.
"""

from __future__ import annotations

import logging
from typing import Protocol

from ks3sync.model import Operation

log = logging.getLogger("ks3sync.transfer")


class ProgressSubscriber(Protocol):
    def plan_ready(self, entries: int, total_bytes: int) -> None: ...

    def bytes_moved(self, n: int) -> None: ...

    def entry_started(self, op: Operation) -> None: ...

    def entry_done(self, path: str, action: str, ok: bool, message: str = "") -> None:
        """An entry ended: ``ok``, with the ``model.Action`` done; or failed, with the operation's name
        (``upload``, ``deleteremote``; ``delete`` for a batch of remote deletes) and why."""
        ...

    def close(self) -> None: ...


class NullProgress:
    def plan_ready(self, entries: int, total_bytes: int) -> None:
        return None

    def bytes_moved(self, n: int) -> None:
        return None

    def entry_started(self, op: Operation) -> None:
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

    def entry_started(self, op: Operation) -> None:
        return None

    def entry_done(self, path: str, action: str, ok: bool, message: str = "") -> None:
        if ok:
            self._log.info("%s %s", action, path)
        else:
            self._log.warning("failed %s %s: %s", action, path, message)

    def close(self) -> None:
        return None
