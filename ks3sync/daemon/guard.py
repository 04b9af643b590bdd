"""Never mass-delete: source health and a delete budget. Pure apart from ``probe_source`` (one stat).

A watched folder that vanished, was unmounted (the mount point left behind is an empty directory on
another device) or suddenly looks empty must not turn into thousands of queued deletes. The daemon
probes the folder before running deletes and before a reconcile; an unhealthy source pauses the sync
(nothing is sent or deleted) and is re-probed until it comes back.

The budget caps queued deletes per ``window`` (the rescan interval) at the sync's ``max_delete``:
a count, or a percentage of the objects the journal records. Deletes beyond it are held in the queue
(not parked) and logged; the reconcile's planner applies the same guard to its own deletes.

Imports nothing from ks3sync.
"""

from __future__ import annotations

import math
import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class SourceState:
    healthy: bool
    reason: str = ""
    device: int | None = None


def probe_source(root: Path, expected_device: int | None, has_entries: bool) -> SourceState:
    """Is ``root`` the folder we started watching, and does it look populated?"""
    try:
        st = os.stat(root)
    except FileNotFoundError:
        return SourceState(False, "source folder is missing")
    except OSError as exc:
        return SourceState(False, f"source folder unreadable: {exc.strerror}")
    if not os.path.isdir(root):
        return SourceState(False, "source is not a folder")
    if expected_device is not None and st.st_dev != expected_device:
        return SourceState(False, "source folder is on another device (unmounted?)", st.st_dev)
    if has_entries:
        try:
            with os.scandir(root) as it:
                empty = next(it, None) is None
        except OSError as exc:
            return SourceState(False, f"source folder unreadable: {exc.strerror}", st.st_dev)
        if empty:
            return SourceState(
                False, "source folder is empty but files were synced from it (unmounted?)", st.st_dev
            )
    return SourceState(True, "", st.st_dev)


class DeleteBudget:
    def __init__(self, count: int | None, percent: float | None, window_ns: int) -> None:
        self.count = count
        self.percent = percent
        self.window_ns = window_ns
        self._spent: deque[int] = deque()  # times of deletes within the window

    def limit(self, recorded: int) -> int | None:
        limits = []
        if self.count is not None:
            limits.append(self.count)
        if self.percent is not None:
            # at least one: a sync with a single file may still delete it
            limits.append(max(1, math.floor(recorded * self.percent / 100)))
        return min(limits) if limits else None

    def allow(self, wanted: int, recorded: int, now_ns: int) -> int:
        """How many of ``wanted`` deletes may run now; those are counted as spent."""
        while self._spent and self._spent[0] <= now_ns - self.window_ns:
            self._spent.popleft()
        limit = self.limit(recorded)
        granted = wanted if limit is None else max(0, min(wanted, limit - len(self._spent)))
        self._spent.extend([now_ns] * granted)
        return granted

    def refund(self, n: int) -> None:
        for _ in range(min(n, len(self._spent))):
            self._spent.pop()
