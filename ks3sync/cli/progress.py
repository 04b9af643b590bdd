"""What ``mirror`` shows while it runs (docs/decisions.md D12): the executor's progress subscriber.

- :class:`BarDisplay` on a terminal (unless ``--no-progress`` or ``-q``): one live line with files done,
  failures, a bar, bytes, rate and time left, all sizes binary (KiB, MiB: ks3sync.display). With ``-v``
  each finished entry is printed *above* the bar, as ``rclone -v -P`` does; log records are too (the
  CLI's log handler writes to whatever ``sys.stderr`` is now, which rich redirects above the bar).
- :class:`LineDisplay` otherwise: with ``-v`` one plain line per finished entry, else nothing.

Failures are not printed while the run goes on: the report at the end names each once, grouped by
cause (ks3sync.cli.report). Both displays track the entries in flight, which is what the first Ctrl-C
waits for and says (``stopping()``); ``freeze()`` stops all drawing before the process quits at once.
rich is imported only when a bar is shown, so a no-op re-run in a pipe does not pay for it.
"""

from __future__ import annotations

import os
import threading
from typing import IO, Any

from ks3sync.cli import output
from ks3sync.cli.words import done_line
from ks3sync.display import escape, human_rate, human_size
from ks3sync.model import Operation

REFRESH_S = 0.1  # the bar redraws ten times a second
FREEZE_WAIT_S = 0.5  # how long quitting waits for a redraw in progress to end


def stop_message(in_flight: int) -> str:
    if in_flight:
        what = "transfer" if in_flight == 1 else "transfers"
        return f"stopping: waiting for {in_flight} {what} in flight (Ctrl-C again to quit now)"
    return "stopping (Ctrl-C again to quit now)"


def abandon_message(in_flight: int) -> str:
    if not in_flight:
        return "interrupted"
    what, them = ("transfer", "it") if in_flight == 1 else ("transfers", "them")
    return (
        f"interrupted: quit with {in_flight} {what} in flight; nothing unconfirmed was recorded, a re-run "
        f"sends {them} again (multipart uploads resume from their recorded parts)"
    )


class LineDisplay:
    """No bar: ``-v`` lines only (pipes, logs, ``--no-progress``, ``-q``); also the bookkeeping the bar
    shares: totals, entries in flight."""

    def __init__(self, *, verbose: bool, upload: bool) -> None:
        self._verbose = verbose
        self._upload = upload
        self._lock = threading.RLock()  # re-entrant: a signal handler may run while the main thread holds it
        self._running: dict[str, Operation] = {}
        self._entries = 0
        self._done = 0
        self._failed = 0
        self._stopping = False

    # ------------------------------------------------------------------ ProgressSubscriber

    def plan_ready(self, entries: int, total_bytes: int) -> None:
        with self._lock:
            self._entries = entries

    def bytes_moved(self, n: int) -> None:
        return None

    def entry_started(self, op: Operation) -> None:
        with self._lock:
            self._running[op.path] = op

    def entry_done(self, path: str, action: str, ok: bool, message: str = "") -> None:
        with self._lock:
            op = self._running.pop(path, None)
            self._done += 1
            self._failed += not ok
        if ok and self._verbose:
            text = done_line(path, action, op, upload=self._upload)
            if text is not None:
                self.show(text)

    def close(self) -> None:
        return None

    # ------------------------------------------------------------------ the CLI's side

    @property
    def in_flight(self) -> int:
        with self._lock:
            return len(self._running)

    def show(self, text: str) -> None:
        output.line(text, err=True)

    def stopping(self) -> None:
        """The first Ctrl-C: say what the run waits for."""
        with self._lock:
            self._stopping = True
            text = stop_message(len(self._running))
        self.show_note(text)

    def show_note(self, text: str) -> None:
        output.note(text)

    def freeze(self) -> None:
        return None


class BarDisplay(LineDisplay):
    """The live bar on a terminal; ``-v`` lines and log records above it."""

    def __init__(self, stream: IO[str], *, verbose: bool, upload: bool) -> None:
        super().__init__(verbose=verbose, upload=upload)
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self._stream = stream
        self._console = Console(file=stream, highlight=False)
        # Redrawn by our own thread (not rich's auto refresh) so that quitting can stop every redraw.
        self._progress: Any = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            _bytes_column(),
            _rate_column(),
            TimeRemainingColumn(),
            console=self._console,
            auto_refresh=False,
            transient=False,
        )
        self._task: Any = None
        self._draw = threading.Lock()  # held while drawing; quitting takes it to stop all drawing
        self._frozen = False
        self._closed = threading.Event()
        self._refresher = threading.Thread(target=self._refresh_loop, name="ks3sync-bar", daemon=True)

    def plan_ready(self, entries: int, total_bytes: int) -> None:
        super().plan_ready(entries, total_bytes)
        with self._draw:
            if self._frozen or self._task is not None:
                return
            self._progress.start()
            self._task = self._progress.add_task(self._description(), total=total_bytes or None)
        self._refresher.start()

    def bytes_moved(self, n: int) -> None:
        task = self._task
        if task is not None:
            self._progress.update(task, advance=n)

    def show(self, text: str) -> None:
        self._print(escape(text))

    def show_note(self, text: str) -> None:
        self._print(output.PREFIX + escape(text))

    def _print(self, text: str) -> None:
        """A line above the bar (or a plain line before the bar exists)."""
        with self._draw:
            if self._frozen:
                return
            if self._task is None:
                print(text, file=self._stream, flush=True)
                return
            self._console.print(text, markup=False, highlight=False, emoji=False, soft_wrap=True)

    def stopping(self) -> None:
        """The sentence once above the bar (LineDisplay.stopping); the bar then counts what is left."""
        super().stopping()
        self._redraw()

    def close(self) -> None:
        self._closed.set()
        with self._draw:
            if self._task is not None and not self._frozen:
                self._redraw_locked()
                self._progress.stop()
            self._frozen = True
        if self._refresher.is_alive():
            self._refresher.join()

    def freeze(self) -> None:
        """Stop drawing now and leave the terminal usable (the process is about to quit)."""
        self._closed.set()
        drawing = self._draw.acquire(timeout=FREEZE_WAIT_S)
        try:
            was_live = self._task is not None and not self._frozen
            self._frozen = True
        finally:
            if drawing:
                self._draw.release()
        if was_live:
            try:
                fd = self._stream.fileno()
            except (OSError, ValueError):
                return
            # The bar stays as it was; the next line starts below it, and the cursor rich hid is shown.
            os.write(fd, b"\n\x1b[?25h")

    # ------------------------------------------------------------------ drawing

    def _description(self) -> str:
        with self._lock:
            if self._stopping:
                return f"stopping: {len(self._running)} in flight"
            text = f"{self._done}/{self._entries} files"
            return f"{text}, {self._failed} failed" if self._failed else text

    def _refresh_loop(self) -> None:
        while not self._closed.wait(REFRESH_S):
            self._redraw()

    def _redraw(self) -> None:
        with self._draw:
            if not self._frozen and self._task is not None:
                self._redraw_locked()

    def _redraw_locked(self) -> None:
        self._progress.update(self._task, description=self._description())
        self._progress.refresh()


def _bytes_column() -> Any:
    from rich.progress import ProgressColumn
    from rich.text import Text

    class BytesColumn(ProgressColumn):
        """``1.5/60.0 MiB``-style, binary units (rich's own DownloadColumn would say MB)."""

        def render(self, task: Any) -> Text:
            done = human_size(task.completed)
            return Text(f"{done}/{human_size(task.total)}" if task.total else done, style="progress.download")

    return BytesColumn()


def _rate_column() -> Any:
    from rich.progress import ProgressColumn
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text(human_rate(speed) if speed else "?", style="progress.data.speed")

    return RateColumn()
