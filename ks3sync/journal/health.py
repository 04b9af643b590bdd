"""The service's liveness row and each sync's health, inside the journal (schema v3).

``ks3sync status`` reads them to tell a sync that is ``ok`` from one that is ``failing`` (since when,
with which error) and from a service that is not running; the service writes them on state changes
and with its heartbeat (``daemon/health.py`` bounds the rate). Messages arrive already one line and
free of secrets; they are cut to ``MAX_ERROR_CHARS`` here as a last bound.

Core statements over ``schema.py``'s tables, run with SQLAlchemy's ``execute`` on the journal's
connection, inside the caller's transaction (a few rows every few seconds: no need to prepare them).
Imports: SQLAlchemy, the journal's schema and types.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, bindparam, insert, select, update

from ks3sync.journal.schema import health, service
from ks3sync.journal.types import HealthRecord, ServiceRecord

MAX_ERROR_CHARS = 1000

_ONE_ROW = 1  # the service table's only id (a CHECK holds it there)

_SERVICE_STARTED = insert(service).prefix_with("OR REPLACE")
_HEARTBEAT = update(service).where(service.c.id == _ONE_ROW, service.c.pid == bindparam("for_pid"))
_WRITE_HEALTH = insert(health).prefix_with("OR REPLACE")
_READ_SERVICE = select(
    service.c.pid, service.c.started_ns, service.c.heartbeat_ns, service.c.stopped_ns
).where(service.c.id == _ONE_ROW)
_READ_HEALTH = select(
    health.c.sync_id,
    health.c.activity,
    health.c.reason,
    health.c.failing_since_ns,
    health.c.last_error,
    health.c.last_error_ns,
    health.c.updated_ns,
)


def service_started(db: Connection, pid: int, now_ns: int) -> None:
    db.execute(
        _SERVICE_STARTED,
        {"id": _ONE_ROW, "pid": pid, "started_ns": now_ns, "heartbeat_ns": now_ns, "stopped_ns": None},
    )


def heartbeat(db: Connection, pid: int, now_ns: int, *, stopped: bool = False) -> None:
    """Refresh the row of ``pid`` (a row another process wrote since is left alone)."""
    db.execute(
        _HEARTBEAT, {"for_pid": pid, "heartbeat_ns": now_ns, "stopped_ns": now_ns if stopped else None}
    )


def write_health(db: Connection, records: Sequence[HealthRecord]) -> None:
    if not records:
        return
    db.execute(
        _WRITE_HEALTH,
        [
            {
                "sync_id": r.sync_id,
                "activity": r.activity,
                "reason": r.reason,
                "failing_since_ns": r.failing_since_ns,
                "last_error": None if r.last_error is None else r.last_error[:MAX_ERROR_CHARS],
                "last_error_ns": r.last_error_ns,
                "updated_ns": r.updated_ns,
            }
            for r in records
        ],
    )


def read_service(db: Connection) -> ServiceRecord | None:
    row = db.execute(_READ_SERVICE).first()
    return None if row is None else ServiceRecord(*row)


def read_health(db: Connection) -> dict[int, HealthRecord]:
    return {r[0]: HealthRecord(*r) for r in db.execute(_READ_HEALTH)}
