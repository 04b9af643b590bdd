"""One embedded server per storage root, shared by every `--endpoint local` process that needs it.

The first process to want the root owns it (rootlock.py) and runs the server in a thread; it publishes
where it listens (`server.json`). A second process finds the root owned and uses that server (same root,
hence the same state dir and credentials). The owner does not leave while others use its server: each
user holds a shared `flock` on `<root>/users.lock` for as long as it runs, and the owner, done with its
own work, takes that lock exclusively before it stops - it waits (and says so) like ssh's ControlMaster
waiting for its sessions. An owner killed outright (SIGKILL) leaves its users with connection errors:
their requests fail and are retried, then the run ends with an error and nothing recorded that KS3 (the
server) did not confirm; the next process takes the root over, the kernel having dropped the lock.

A root owned by something else (a `ks3sync local-server --root`, or an embedded server that does not
share) is refused with RootInUse naming the owner's PID. Imports nothing else from ks3sync.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ks3sync.localserver.rootlock import RootInUse, current_owner
from ks3sync.localserver.server import EmbeddedServer

USERS_LOCK = "users.lock"
# an owner that has the lock publishes its address within a few ms; 10 s covers a loaded machine
START_WAIT = 10.0


@contextlib.contextmanager
def shared_server(
    root: Path,
    access_key: str,
    secret_key: str,
    *,
    notice: Callable[[str], None] = lambda _message: None,
    start_wait: float = START_WAIT,
) -> Iterator[str]:
    """The endpoint of the server on `root` for the duration of the block: this process's own, or the
    one another process runs and shares. Raises RootInUse when the root's owner does not share."""
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    users = os.open(root / USERS_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        # Blocks only while an owner is stopping (it holds the lock exclusively for that moment).
        fcntl.flock(users, fcntl.LOCK_SH)
        endpoint, server = _join_or_start(root, access_key, secret_key, start_wait)
        if server is None:
            yield endpoint  # a user: the shared lock tells the owner to wait for us
            return
        fcntl.flock(users, fcntl.LOCK_UN)  # the owner waits for the others, not for itself
        try:
            yield endpoint
        finally:
            try:
                _wait_for_users(users, root, notice)
            finally:
                server.stop()  # unpublishes the address and releases the root
    finally:
        os.close(users)


def _join_or_start(
    root: Path, access_key: str, secret_key: str, start_wait: float
) -> tuple[str, EmbeddedServer | None]:
    deadline = time.monotonic() + start_wait
    while True:
        try:
            server = EmbeddedServer(root, access_key, secret_key, "127.0.0.1", 0, shared=True).start()
        except RootInUse as busy:
            owner = current_owner(root) or busy.owner
            if owner.shared and owner.endpoint is not None:
                return owner.endpoint, None
            if owner.shared is False or time.monotonic() > deadline:
                raise RootInUse(root, owner) from None  # a server that does not share its root
            time.sleep(0.02)  # the owner is starting, or just left: look again
            continue
        return server.endpoint, server


def _wait_for_users(users: int, root: Path, notice: Callable[[str], None]) -> None:
    try:
        fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        notice(
            f"waiting for the other ks3sync processes using the embedded server in {root} to finish "
            "(Ctrl-C stops it now; they then fail and can be run again)"
        )
        fcntl.flock(users, fcntl.LOCK_EX)
