"""The service's liveness row and each sync's health, inside the journal (schema v3).

``ks3sync status`` reads them to tell a sync that is ``ok`` from one that is ``failing`` (since when,
with which error) and from a service that is not running; the service writes them on state changes
and with its heartbeat (``daemon/health.py`` bounds the rate). Messages arrive already one line and
free of secrets; they are cut to ``MAX_ERROR_CHARS`` here as a last bound.

Written against the raw sqlite3 connection of the journal, inside the caller's transaction (as
``queue.py``). Imports: sqlite3 + the journal's types.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from ks3sync.journal.types import HealthRecord, ServiceRecord

MAX_ERROR_CHARS = 1000


def service_started(db: sqlite3.Connection, pid: int, now_ns: int) -> None:
    db.execute("INSERT OR REPLACE INTO service (id, pid, started_ns, heartbeat_ns, stopped_ns)"
               " VALUES (1, ?, ?, ?, NULL)", (pid, now_ns, now_ns))


def heartbeat(db: sqlite3.Connection, pid: int, now_ns: int, *, stopped: bool = False) -> None:
    """Refresh the row of ``pid`` (a row another process wrote since is left alone)."""
    db.execute("UPDATE service SET heartbeat_ns = ?, stopped_ns = ? WHERE id = 1 AND pid = ?",
               (now_ns, now_ns if stopped else None, pid))


def write_health(db: sqlite3.Connection, records: Iterable[HealthRecord]) -> None:
    db.executemany(
        "INSERT OR REPLACE INTO health (sync_id, activity, reason, failing_since_ns, last_error, last_error_ns,"
        " updated_ns) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(r.sync_id, r.activity, r.reason, r.failing_since_ns,
          None if r.last_error is None else r.last_error[:MAX_ERROR_CHARS], r.last_error_ns, r.updated_ns)
         for r in records],
    )


def read_service(db: sqlite3.Connection) -> ServiceRecord | None:
    row = db.execute("SELECT pid, started_ns, heartbeat_ns, stopped_ns FROM service WHERE id = 1").fetchone()
    return None if row is None else ServiceRecord(*row)


def read_health(db: sqlite3.Connection) -> dict[int, HealthRecord]:
    rows = db.execute("SELECT sync_id, activity, reason, failing_since_ns, last_error, last_error_ns, updated_ns"
                      " FROM health").fetchall()
    return {r[0]: HealthRecord(*r) for r in rows}
