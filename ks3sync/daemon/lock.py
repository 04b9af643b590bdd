"""One service per state directory: ``ks3sync run`` holds an exclusive ``flock`` on
``<state_dir>/service.lock`` for its whole life, and ``ks3sync status`` probes it.

The kernel drops the lock when the process ends, however it ends (kill -9 included), so a probe that
finds it free knows the service is not running, whatever the journal's last heartbeat says. The probe
takes a *shared* lock for an instant and lets go: it never blocks the service, and a service starting
in that instant retries for up to ``ACQUIRE_PATIENCE`` seconds instead of reporting a second service.

Imports nothing from ks3sync.
"""

from __future__ import annotations

import fcntl
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ks3sync.digits import parse_decimal

LOCK_FILE = "service.lock"
ACQUIRE_PATIENCE = 1.0  # seconds; a status probe holds its shared lock for microseconds


class StateDirBusy(Exception):
    """Another live process holds the state directory; ``holder`` is the pid it wrote ("?" if none)."""

    def __init__(self, holder: str) -> None:
        super().__init__(holder)
        self.holder = holder


def acquire(state_dir: Path, patience: float = ACQUIRE_PATIENCE) -> TextIO:
    """Take the lock (creating the folder and file), write our pid into it, and return the open file:
    keep it open for as long as the lock must be held. Raises StateDirBusy, or OSError when the folder
    cannot be used."""
    state_dir.mkdir(parents=True, exist_ok=True)
    handle = open(state_dir / LOCK_FILE, "a+", encoding="utf-8")  # noqa: SIM115 - kept open by the caller
    deadline = time.monotonic() + patience
    while True:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                handle.seek(0)
                holder = handle.read().strip() or "?"
                handle.close()
                raise StateDirBusy(holder) from None
            time.sleep(0.02)
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


@dataclass(frozen=True, slots=True)
class LockState:
    """``held``: True if a live process holds the lock, False if nobody does, None if it cannot be told
    (no lock file: no service ever ran here; or this user cannot open it). ``pid``: the pid written in
    the file, when ``held`` (None if unreadable)."""

    held: bool | None
    pid: int | None = None


def probe(state_dir: Path) -> LockState:
    try:
        fd = os.open(state_dir / LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return LockState(None)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 32).decode("ascii", "replace").strip()
            return LockState(True, parse_decimal(text))
        except OSError:
            return LockState(None)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return LockState(False)
    finally:
        os.close(fd)
