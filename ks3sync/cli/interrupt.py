"""Ctrl-C, the same way in every command (docs/decisions.md D12).

- ``mirror`` runs inside a :class:`GracefulStop`: the first Ctrl-C asks the pass to stop (nothing new
  starts, no delete runs), the display says what it waits for (``stopping: waiting for 3 transfers in
  flight (Ctrl-C again to quit now)``), and transfers in flight get ``STOP_GRACE_S`` to end; multipart
  parts that complete in that time are checkpointed. Then the pass's summary, exit 130. If they have
  not ended by then, the process quits as a second Ctrl-C would.
- Every other command: the first Ctrl-C raises ``KeyboardInterrupt`` as usual; ``handle_errors`` turns
  it into ``ks3sync: interrupted`` and exit 130 after the normal unwinding (the journal closed, an
  embedded server stopped).
- A second Ctrl-C quits at once (:func:`quit_now`): the live bar is frozen and left on its own line with
  the cursor shown, one line says what was abandoned, ``{"error": "interrupted…", "exit": 130}`` goes
  to stdout under ``--json``, and the process ends with ``os._exit(130)``. No unwinding, so no thread
  (a transfer's, the embedded server's) can print a traceback on the way out. Nothing is lost that was
  promised: only confirmed transfers are ever recorded (invariant 1), so an abandoned one is simply not
  in the journal and is sent again next time; a multipart upload resumes from its checkpointed parts.

The signal handler only counts and sets events; the display work runs on the stop watcher's thread, so
a handler that interrupts the main thread inside a lock cannot deadlock on it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import NoReturn

from ks3sync.cli import output
from ks3sync.display import escape

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a command ended by Ctrl-C
STOP_GRACE_S = 1.5  # after the first Ctrl-C, how long transfers in flight may take to end


class _Handler:
    def __init__(self) -> None:
        self.count = 0
        self.graceful: GracefulStop | None = None
        # Called, bounded, before quitting now: a live display stops drawing and restores the terminal.
        self.freezers: list[Callable[[], None]] = []


_handler = _Handler()


def install() -> None:
    """Route SIGINT through this module (``main()`` calls it once; only the main thread may)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _on_sigint)


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    _handler.count += 1
    graceful = _handler.graceful
    if _handler.count > 1:
        quit_now(graceful.abandoned() if graceful is not None else "interrupted")
    if graceful is not None:
        graceful.request()
        return
    raise KeyboardInterrupt


def add_freezer(freeze: Callable[[], None]) -> Callable[[], None]:
    """Register ``freeze`` for :func:`quit_now`; returns the function that unregisters it."""
    _handler.freezers.append(freeze)

    def remove() -> None:
        with contextlib.suppress(ValueError):  # already removed
            _handler.freezers.remove(freeze)

    return remove


def quit_now(message: str) -> NoReturn:
    """End the process at once with exit status 130 (see the module docstring)."""
    for freeze in list(_handler.freezers):
        freeze()
    # Text the main thread left in Python's buffers (a dry run's plan) goes first. A flush that finds
    # the buffer busy (this may run inside a write the handler interrupted) is skipped, not waited for.
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(RuntimeError, OSError, ValueError):
            stream.flush()
    _write(2, f"{output.PREFIX}{escape(message)}\n")
    if output.json_errors():
        _write(1, output.error_document(message, EXIT_INTERRUPTED) + "\n")
    os._exit(EXIT_INTERRUPTED)


def _write(fd: int, text: str) -> None:
    data = text.encode("utf-8", "backslashreplace")
    with contextlib.suppress(OSError):  # a closed or broken stream must not keep the process alive
        while data:
            data = data[os.write(fd, data) :]


class GracefulStop:
    """Wraps a run that can stop cleanly: ``event`` is the run's stop event (``run_mirror(stop=…)``).

    ``on_stop`` is called once, on the watcher thread, when the first Ctrl-C arrives: it shows what the
    run waits for. ``abandoned`` says, when the process has to quit now, what is left behind. Call
    :meth:`finished` once the run has returned: from then on nothing is abandoned by a timer."""

    def __init__(
        self, on_stop: Callable[[], None], abandoned: Callable[[], str], grace: float = STOP_GRACE_S
    ) -> None:
        self.event = threading.Event()
        self._on_stop = on_stop
        self._abandoned = abandoned
        self._grace = grace
        self._wake = threading.Event()
        self._finished = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="ks3sync-stop", daemon=True)

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    def __enter__(self) -> GracefulStop:
        self._watcher.start()
        _handler.graceful = self
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        _handler.graceful = None
        self.finished()

    def request(self) -> None:
        """The first Ctrl-C (from the signal handler: only events are set here)."""
        self.event.set()
        self._wake.set()

    def finished(self) -> None:
        self._finished.set()
        self._wake.set()

    def abandoned(self) -> str:
        return self._abandoned()

    def _watch(self) -> None:
        self._wake.wait()
        if self._finished.is_set():
            return
        self._on_stop()
        if not self._finished.wait(self._grace):
            quit_now(self._abandoned())
