"""Running `python -m ks3sync ...` under a pseudo-terminal, so that it sees a real terminal on stdout and
stderr (the live progress bar is active), reading what it writes while it runs, sending it signals and
waiting for it with bounded waits. Every process a `TerminalRun` starts is killed at `close()`;
`ended_at_exit` does the same for a plain subprocess."""

from __future__ import annotations

import fcntl
import os
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

COLUMNS, ROWS = 160, 40


class TerminalRun:
    """One process on a pty; ``output`` is everything it has written so far (stdout and stderr share
    the terminal, as they do for a person)."""

    def __init__(self, args: list[str], env: Mapping[str, str], cwd: Path | None = None) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        self.started = time.monotonic()
        # stdin, stdout and stderr are the terminal; a session of its own, so signals reach only it.
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ks3sync", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
        )
        os.close(slave)
        self.pid = self.process.pid
        self._fd = master
        self._data = bytearray()
        self.exit_code: int | None = None
        self.ended: float | None = None

    @property
    def output(self) -> str:
        return self._data.decode("utf-8", "replace")

    def _read(self, timeout: float) -> None:
        ready, _, _ = select.select([self._fd], [], [], timeout)
        if not ready:
            return
        try:
            chunk = os.read(self._fd, 65536)
        except OSError:  # EIO: every writer of the terminal is gone
            chunk = b""
        self._data += chunk

    def _reap(self) -> bool:
        if self.exit_code is not None:
            return True
        code = self.process.poll()
        if code is None:
            return False
        self.exit_code = code
        self.ended = time.monotonic()
        return True

    def wait_for(self, condition: Callable[[str], bool], timeout: float) -> None:
        """Read until ``condition(output)`` holds; fail if the process ends first or time runs out."""
        deadline = time.monotonic() + timeout
        while not condition(self.output):
            if self._reap():
                self._drain()
                if condition(self.output):
                    return
                raise AssertionError(
                    f"process ended ({self.exit_code}) before the condition held:\n{self.output}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout}s:\n{self.output[-4000:]}")
            self._read(0.05)

    def interrupt(self) -> float:
        """Send SIGINT (Ctrl-C); returns when it was sent (time.monotonic())."""
        os.kill(self.pid, signal.SIGINT)
        return time.monotonic()

    def wait(self, timeout: float) -> int:
        """Read everything until the process has ended; its exit status."""
        deadline = time.monotonic() + timeout
        while not self._reap():
            if time.monotonic() > deadline:
                raise AssertionError(f"process still running after {timeout}s:\n{self.output[-4000:]}")
            self._read(0.05)
        self._drain()
        assert self.exit_code is not None
        return self.exit_code

    def _drain(self) -> None:
        for _ in range(1000):  # bounded: whatever the terminal still holds after the process ended
            before = len(self._data)
            self._read(0.05)
            if len(self._data) == before:
                return

    def close(self) -> None:
        if not self._reap():
            self.process.kill()
            self.process.wait(10)
        os.close(self._fd)


@contextmanager
def ended_at_exit(process: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    """The block owns ``process``: whatever happens in it, the process is not left running."""
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
