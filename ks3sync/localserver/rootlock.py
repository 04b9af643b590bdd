"""Who owns a storage root: one process at a time, by an exclusive `flock` held for the owner's life.

Owns two files in the root:
  server.lock   the lock itself (`flock(LOCK_EX)`, never replaced, so every process locks the same inode);
                its text is the owner's PID, written right after the lock is taken. The kernel drops the
                lock when the owner dies, even by SIGKILL, so a stale file never blocks the next owner.
  server.json   {"pid": ..., "shared": bool, "endpoint": "http://..." (once listening)}, replaced
                atomically. `shared` marks a server that other `--endpoint local` processes may use
                (cli/common.py); it is only trusted while its PID is the lock file's, so a record left by
                a killed owner is never mistaken for the current one.

Start-up clean-up of a root (storage.py) runs only under the lock: nothing another live process wrote
is ever removed. Imports nothing else from ks3sync.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

LOCK_FILE = "server.lock"
OWNER_FILE = "server.json"
_PROBE_RETRIES = 100


@dataclass(frozen=True, slots=True)
class Owner:
    """The process holding a root, as far as its records tell (None where they do not yet)."""

    pid: int | None
    shared: bool | None = None
    endpoint: str | None = None


class RootInUse(Exception):
    """Another process owns the storage root."""

    def __init__(self, root: Path, owner: Owner) -> None:
        self.root = root
        self.owner = owner
        pid = f"PID {owner.pid}" if owner.pid is not None else "PID unknown"
        super().__init__(
            f"{root}: storage root in use by another process ({pid}); stop it, or use the server it runs"
        )


def _read_pid(root: Path) -> int | None:
    try:
        text = (root / LOCK_FILE).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def _read_record(root: Path) -> dict[str, object]:
    try:
        record = json.loads((root / OWNER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive
    return True


def current_owner(root: Path) -> Owner | None:
    """The live owner of `root`, or None when nobody holds it. Its record's `shared` and `endpoint` are
    given only when the record belongs to the lock holder."""
    try:
        fd = os.open(root / LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # held: read who holds it
        else:
            return None
    finally:
        os.close(fd)
    pid = _read_pid(root)
    if pid is None or not _alive(pid):
        return Owner(None)  # the owner is between taking the lock and writing its PID
    record = _read_record(root)
    if record.get("pid") != pid:
        return Owner(pid)
    endpoint = record.get("endpoint")
    return Owner(pid, record.get("shared") is True, endpoint if isinstance(endpoint, str) else None)


class RootLock:
    """The held lock on a root; `release()` (or process death) gives it up."""

    def __init__(self, root: Path, fd: int, shared: bool) -> None:
        self.root = root
        self._fd: int | None = fd
        self.shared = shared

    @classmethod
    def acquire(cls, root: Path, *, shared: bool = False) -> RootLock:
        """Own `root` or raise RootInUse at once (never waits)."""
        fd = os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            for _ in range(_PROBE_RETRIES):
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    owner = current_owner(root)
                    if owner is not None:
                        raise RootInUse(root, owner) from None
                    time.sleep(
                        0.001
                    )  # only another process's probe (current_owner) held it, for microseconds
            else:
                raise RootInUse(root, Owner(None))
        except BaseException:
            os.close(fd)
            raise
        lock = cls(root, fd, shared)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
            lock._write_record(None)
        except BaseException:
            lock.release()
            raise
        return lock

    def _write_record(self, endpoint: str | None) -> None:
        record: dict[str, object] = {"pid": os.getpid(), "shared": self.shared}
        if endpoint is not None:
            record["endpoint"] = endpoint
        path = self.root / OWNER_FILE
        tmp = path.with_name(f"{OWNER_FILE}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record) + "\n", encoding="utf-8")
        tmp.replace(path)

    def publish(self, endpoint: str) -> None:
        """Say where the owner listens (read by `current_owner`)."""
        self._write_record(endpoint)

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            with contextlib.suppress(FileNotFoundError):
                (self.root / OWNER_FILE).unlink()
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # drops the flock
