"""Filesystem events → per-file change values, coalesced per path, for the journal's queue.

Owns: translating watchdog events (``translate``), the thread-safe buffer that coalesces them and
expands directory events into per-file changes (``buffer``), and the watchdog observer wrapper that
falls back to periodic scanning when inotify overflows or runs out of watches (``observer``).

Must not import: the journal, the store, the transfer engine, the CLI. The daemon wires this to the
journal: it drains the buffer and enqueues the changes durably before anything acts on them.
"""

from ks3sync.watch.buffer import ChangeBuffer
from ks3sync.watch.changes import FsChange, Kind, coalesce
from ks3sync.watch.observer import Watcher, WatchMode

__all__ = ["ChangeBuffer", "FsChange", "Kind", "Watcher", "WatchMode", "coalesce"]
