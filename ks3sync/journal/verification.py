"""The continuous verifier's state in the journal (schema v4, table ``verification``) and the one
transaction that acts on a mismatch.

- ``records_after``: the sync's records in path order after a cursor, a bounded batch (a range scan of
  the entries' primary key): a round walks them in a stable order across restarts.
- ``save_progress``: the cursor and counts after a batch; a finished round clears the cursor and sets
  ``last_full_ns``.
- ``confirm_mismatch``: the verifier saw an object that does not match its record. Inside one durable
  write transaction it checks that the record is still the one verified and that no queued or in-flight
  change touches the path (either means the sync path is rewriting it: the "mismatch" may be its own
  upload, so nothing is reported); then it counts the mismatch, keeps a per-path error for ``status``,
  and, when asked, drops the record and queues an upload of the path (write-ahead, invariant 2). No
  record is ever written here: an upload is recorded by the executor once KS3 confirmed it
  (invariant 1).

Core statements over ``schema.py``'s tables, run with SQLAlchemy's ``execute`` inside the caller's
transaction (a few rows per batch of verified objects). Imports: SQLAlchemy, the journal's schema,
queue and types, ks3sync.model.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, or_, select, update

from ks3sync.journal.schema import changes, entries, verification
from ks3sync.journal.types import VerifyState
from ks3sync.model import SyncedEntry

_v = verification.c
_STATE = select(
    _v.sync_id,
    _v.cursor,
    _v.round_started_ns,
    _v.last_full_ns,
    _v.rounds,
    _v.checked,
    _v.mismatches,
    _v.last_mismatch_ns,
    _v.updated_ns,
).where(_v.sync_id == bindparam("sync_id"))
_NEW_STATE = insert(verification).prefix_with("OR IGNORE")
_UPDATE_STATE = update(verification).where(_v.sync_id == bindparam("v_sync"))
_RECORD_NOW = select(
    entries.c.remote_etag, entries.c.remote_size, entries.c.md5, entries.c.synced_at_ns
).where(entries.c.sync_id == bindparam("sync_id"), entries.c.path == bindparam("path"))
_IN_FLIGHT_ON_PATH = (
    select(func.count())
    .select_from(changes)
    .where(
        changes.c.sync_id == bindparam("sync_id"),
        changes.c.claimed == 1,
        or_(changes.c.path == bindparam("path"), changes.c.src_path == bindparam("path")),
    )
)
_DROP_RECORD = delete(entries).where(
    entries.c.sync_id == bindparam("sync_id"), entries.c.path == bindparam("path")
)


def read_state(db: Connection, sync_id: int) -> VerifyState | None:
    row = db.execute(_STATE, {"sync_id": sync_id}).first()
    return None if row is None else VerifyState(*row)


def _ensure(db: Connection, sync_id: int, now_ns: int) -> None:
    db.execute(_NEW_STATE, {"sync_id": sync_id, "updated_ns": now_ns})


def save_progress(
    db: Connection,
    sync_id: int,
    *,
    cursor: str | None,
    checked: int,
    round_started_ns: int,
    finished_ns: int | None,
    now_ns: int,
) -> None:
    """After a batch: ``checked`` more objects, the round at ``cursor``; ``finished_ns`` ends the round."""
    _ensure(db, sync_id, now_ns)
    values: dict[str, Any] = {"checked": _v.checked + checked, "updated_ns": now_ns}
    if finished_ns is None:
        values.update(cursor=cursor, round_started_ns=round_started_ns)
    else:
        values.update(cursor=None, round_started_ns=None, last_full_ns=finished_ns, rounds=_v.rounds + 1)
    db.execute(_UPDATE_STATE.values(values), {"v_sync": sync_id})


def confirm_mismatch(
    db: Connection, sync_id: int, record: SyncedEntry, now_ns: int, *, requeue: bool
) -> bool:
    """Count a mismatch of ``record`` (and with ``requeue`` drop the record, for the caller to queue the
    upload in the same transaction) if the record is unchanged and no change of the path is in flight. False:
    nothing written, the sync path owns the path right now."""
    params = {"sync_id": sync_id, "path": record.path}
    now = db.execute(_RECORD_NOW, params).first()
    if now is None or tuple(now) != (record.remote_etag, record.remote_size, record.md5, record.synced_at_ns):
        return False
    if db.execute(_IN_FLIGHT_ON_PATH, params).scalar_one():
        return False
    _ensure(db, sync_id, now_ns)
    db.execute(
        _UPDATE_STATE.values(mismatches=_v.mismatches + 1, last_mismatch_ns=now_ns, updated_ns=now_ns),
        {"v_sync": sync_id},
    )
    if requeue:
        db.execute(_DROP_RECORD, params)
    return True
