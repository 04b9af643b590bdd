"""systemd's readiness protocol (sd_notify), written out because it is one datagram per message.

Owns: READY=1 / STATUS=... / WATCHDOG=1 / STOPPING=1 messages to ``$NOTIFY_SOCKET`` and the watchdog
period from ``$WATCHDOG_USEC``. Outside systemd (no ``$NOTIFY_SOCKET``) every call is a no-op, so the
service runs the same in a terminal. Imports nothing from ks3sync.

Protocol (sd_notify(3)): newline-separated ``KEY=VALUE`` assignments in one AF_UNIX datagram to the
path in ``$NOTIFY_SOCKET``; a leading ``@`` means a Linux abstract socket (the ``@`` becomes a NUL).
A failed send is logged once and otherwise ignored: losing a status line must never stop syncing.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

from ks3sync.digits import parse_decimal

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._address = _socket_address(env.get("NOTIFY_SOCKET", ""))
        self._sock: socket.socket | None = None
        self._warned = False
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        # WATCHDOG_PID names the process the watchdog is meant for; another pid (a child) must not ping.
        for_us = not pid or pid == str(os.getpid())
        timeout_us = parse_decimal(usec)
        self.watchdog_interval: float | None = (
            timeout_us / 1e6 / 2 if timeout_us and for_us else None
        )  # ping at half the timeout, as sd_watchdog_enabled(3) advises

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def ready(self, status: str = "") -> None:
        self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> None:
        self.send(f"STATUS={text}")

    def watchdog(self) -> None:
        self.send("WATCHDOG=1")

    def stopping(self, status: str = "") -> None:
        self.send("STOPPING=1", *([f"STATUS={status}"] if status else []))

    def send(self, *assignments: str) -> bool:
        if self._address is None:
            return False
        message = "\n".join(a.replace("\n", " ") for a in assignments).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(message, self._address)
        except OSError as exc:
            if not self._warned:
                log.warning("event=sd_notify_failed error=%r", exc.strerror or str(exc))
                self._warned = True
            return False
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _socket_address(value: str) -> str | bytes | None:
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None  # vsock and other transports are not used for services we install
