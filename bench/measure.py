"""Run one tool invocation as its own child process and measure it.

Owns: wall time, CPU seconds (user + system from the child's rusage) and peak RSS (ru_maxrss) of one
invocation, with a hard timeout. Must not import: ks3sync.

`os.wait4` returns the rusage of exactly that child (plus any grandchildren it waited for, e.g. the
Python behind a shell shim), so the CPU numbers do not mix with the harness's own or the server's.

Peak RSS is the exception: Linux carries a process's high-water RSS across fork and exec, so a child
spawned by this (large) harness reports at least the harness's own peak (a 300 MB parent makes
``/bin/true`` report 311 MB). The tool is therefore started under GNU ``time -f %M``, a ~1 MB process
whose own child's peak is the tool's alone; without GNU time the wait4 figure is used and the report
says so.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

POLL_S = 0.002


@dataclass(frozen=True)
class Invocation:
    """What to run: argv, extra environment, working directory."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: Path | None = None
    unset: tuple[str, ...] = ()  # inherited variables the tool must not see

    def display(self) -> str:
        return " ".join(self.argv)


@dataclass(frozen=True)
class ProcessMeasure:
    wall_s: float
    cpu_s: float
    max_rss_mb: float
    returncode: int
    timed_out: bool
    output_tail: str  # last lines of stdout+stderr, for failure reports


GNU_TIME = "/usr/bin/time"


def gnu_time_available() -> bool:
    """Whether GNU time (``-f``/``-o``) is installed: the clean peak-RSS measurement needs it."""
    try:
        probe = subprocess.run([GNU_TIME, "-f", "%M", "true"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return probe.returncode == 0 and probe.stderr.strip().isdigit()


_GNU_TIME = gnu_time_available()


def run_measured(inv: Invocation, *, timeout_s: float, log_path: Path) -> ProcessMeasure:
    """Run `inv`, sending its output to `log_path` (appended); never raises for a failing tool."""
    env = {k: v for k, v in {**os.environ, **inv.env}.items() if k not in inv.unset}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    rss_file = log_path.with_name(log_path.name + ".rss")
    argv = list(inv.argv)
    if _GNU_TIME:
        rss_file.unlink(missing_ok=True)
        argv = [GNU_TIME, "-f", "%M", "-o", str(rss_file), *argv]
    with log_path.open("ab") as log:
        log.write(f"\n$ {inv.display()}\n".encode())
        log.flush()
        start_pos = log.tell()
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            argv,
            env=env,
            cwd=inv.cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        timed_out = False
        deadline = t0 + timeout_s
        try:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid == proc.pid:
                    break
                if time.perf_counter() > deadline:
                    timed_out = True
                    # The tool runs in its own session: end its whole group (only what we started).
                    os.killpg(proc.pid, signal.SIGKILL)
                    pid, status, usage = os.wait4(proc.pid, 0)
                    break
                time.sleep(POLL_S)
        except BaseException:
            # The harness is being stopped (Ctrl-C, SIGTERM): do not leave the tool running.
            os.killpg(proc.pid, signal.SIGKILL)
            os.wait4(proc.pid, 0)
            raise
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
    tail = _tail(log_path, start_pos)
    return ProcessMeasure(
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        max_rss_mb=_peak_rss_kib(rss_file, usage.ru_maxrss) / 1024.0,
        returncode=proc.returncode,
        timed_out=timed_out,
        output_tail=tail,
    )


def _peak_rss_kib(rss_file: Path, inherited_kib: int) -> int:
    """GNU time's %M for the tool (its last line; a failing tool's file starts with an exit note), or the
    wait4 figure, which includes the harness's own peak, when time could not report."""
    if _GNU_TIME:
        try:
            last = rss_file.read_text().strip().splitlines()[-1]
            rss_file.unlink()
            return int(last)
        except (OSError, IndexError, ValueError):
            return inherited_kib  # killed before time wrote it (a timeout): the upper bound is all there is
    return inherited_kib


def _tail(path: Path, start: int, lines: int = 8) -> str:
    with path.open("rb") as f:
        f.seek(start)
        text = f.read().decode(errors="replace")
    return "\n".join(text.strip().splitlines()[-lines:])


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        raise ValueError("median of nothing")
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def compile_bytecode(package_dir: Path) -> None:
    """Write ``__pycache__`` for ``package_dir`` before anything is timed.

    An installed wheel ships bytecode (pip compiles at install; Debian's python3 packages run
    py3compile); an editable checkout run with ``PYTHONDONTWRITEBYTECODE=1`` (as in this sandbox and
    many CI images) has none, so every timed ks3sync start would recompile ~60 modules (~70-90 ms)
    while the peers load compiled code. Python reads existing bytecode even with that variable set."""
    import compileall

    compileall.compile_dir(str(package_dir), quiet=1, workers=1)


def settle_disk() -> None:
    """Write back every dirty page before a timed large-file run (untimed). Otherwise the first tool
    after a phase that wrote gigabytes (the limits, the previous workload) shares the two cores and the
    disk with that writeback: in one session ks3sync's W2 took 5.4 s in the table and 3.4-3.8 s when
    re-run alone minutes later, the server's CPU 4.7 s instead of ~3.1 s."""
    os.sync()
